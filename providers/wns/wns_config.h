#pragma once
// Configuration of one WNS credential (package SID + secret, the legacy Partner Center flow)
// and of the hosts channel URIs may point at, as the gateway reads it.

#include <cstddef>
#include <string>
#include <vector>

namespace pushhub::providers::wns {

struct WnsConfig {
  std::string package_sid;  // "ms-app://S-1-15-2-..."
  std::string secret;       // client secret; never log it
  std::string token_url = "https://login.live.com/accesstoken.srf";
  std::string scope = "notify.windows.com";
  // Hosts a channel URI may name (see WnsProvider::parseChannelUri): "*.domain" matches every
  // subdomain of domain, anything else exactly; ":port" allows that port instead of 443.
  std::vector<std::string> allowed_hosts = {"*.notify.windows.com"};
  std::string ca_file;     // PEM bundle; empty = system roots
  // Per host and worker. HTTP/1.1 carries one request per connection at a time (WNS allows no
  // pipelining), so a connection's rate is 1 / round trip: at the 20-50 ms to WNS, 16 carry
  // 320-800 requests/s. The pool opens them only while requests wait.
  size_t connections = 16;
};

}  // namespace pushhub::providers::wns
