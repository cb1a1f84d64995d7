#pragma once
// Configuration of one APNs credential (token auth) and endpoint, as the gateway reads it.

#include <cstddef>
#include <cstdint>
#include <string>

namespace pushhub::providers::apns {

struct ApnsConfig {
  std::string key_pem;  // the .p8 key (PKCS#8 PEM, EC P-256); a secret: never log it
  std::string key_id;   // 10-character Key ID (JWT "kid")
  std::string team_id;  // 10-character Team ID (JWT "iss")
  std::string topic;    // bundle id; apns-topic of every request
  std::string host = "api.push.apple.com";
  uint16_t port = 443;
  std::string ca_file;  // PEM bundle; empty = system roots
  size_t connections = 1;
};

}  // namespace pushhub::providers::apns
