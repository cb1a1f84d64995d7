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
  size_t connections = 4;  // per host
};

}  // namespace pushhub::providers::wns
