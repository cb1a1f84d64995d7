#pragma once
// A blocking HTTPS/1.1 client for tests of pushhubd's REST API: one keep-alive connection to
// 127.0.0.1:port that trusts `ca_file` and checks the certificate's IP address, reconnecting when
// the server closed it. Not thread-safe; one per test thread.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pushhub::testing {

struct HttpsResult {
  int status = 0;  // 0: the request failed (refused, reset, closed before an answer)
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
  bool keep_alive = false;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpsClient {
 public:
  HttpsClient(uint16_t port, std::string ca_file);
  ~HttpsClient();

  using Headers = std::vector<std::pair<std::string, std::string>>;
  HttpsResult request(const std::string& method, const std::string& target,
                      const Headers& headers = {}, const std::string& body = "");
  // How many TLS connections were opened so far (a kept-alive connection is one).
  int connections() const { return connections_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int connections_ = 0;
};

}  // namespace pushhub::testing
