#pragma once
// Configuration of one FCM credential (a Google service account) and endpoint, as the gateway
// reads it. Plain values; copy freely between threads.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pushhub::providers::fcm {

// The fields of a downloaded service-account key file (JSON) that FCM HTTP v1 needs.
struct ServiceAccount {
  std::string project_id;       // goes into the send path /v1/projects/<project_id>/...
  std::string client_email;     // JWT "iss"
  std::string private_key_pem;  // PKCS#8 RSA; a secret: never log it
  std::string private_key_id;   // JWT "kid"
  std::string token_uri;        // OAuth token endpoint, also the JWT "aud"
};

// Parses a service-account key file. Requires project_id, client_email, private_key and
// private_key_id; "type" must be "service_account" when present; token_uri defaults to
// https://oauth2.googleapis.com/token and must be an https URL. The key must load as an RSA
// key. Errors name the field and never contain the key. Any thread.
Result<ServiceAccount> parseServiceAccount(std::string_view json);

struct FcmConfig {
  ServiceAccount account;
  std::string host = "fcm.googleapis.com";
  uint16_t port = 443;
  // Replaces account.token_uri as the token endpoint (and the assertion's "aud"); tests point
  // it at the mock. Empty = account.token_uri.
  std::string token_uri_override;
  std::string ca_file;  // PEM bundle; empty = system roots
  size_t connections = 1;
};

}  // namespace pushhub::providers::fcm
