#pragma once
// A blocking plain-HTTP/1.1 request to 127.0.0.1, for tests that read control and admin
// endpoints (pns-mock's /_mock API, pushhubd's /metrics).

#include <cstdint>
#include <string>

namespace pushhub::testing {

struct HttpResult {
  int status = 0;  // 0: the request failed (connection refused, ...)
  std::string body;
};

HttpResult httpRequest(const std::string& method, uint16_t port, const std::string& target,
                       const std::string& body = "");

}  // namespace pushhub::testing
