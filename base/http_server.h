#pragma once
// A small plain-HTTP/1.1 keep-alive server (Boost.Beast) for loopback control and admin
// endpoints: pns-mock's /_mock API, the gateway's admin endpoint. Not for the data path and not
// for untrusted networks: no TLS, no authentication; request bodies are capped at 1 MiB.
//
// Threading: everything inside runs on the io_context given to the constructor. The handler is
// called on that io_context's thread; it may answer at once or later from ANY thread (the
// answer is posted back to the io_context). Each connection serves one request at a time, so a
// slow answer only delays that connection.

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace pushhub::http {

struct HttpRequest {
  std::string method;                        // "GET", "POST", ... as sent
  std::string target;                        // path + query as sent ("/_mock/received?limit=5")
  std::string path;                          // target before '?', not decoded
  std::map<std::string, std::string> query;  // percent- and '+'-decoded; last value wins
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Called once per request. `respond` must be called exactly once (extra calls are ignored); it
// may be called later and from any thread. If the connection closed in between, the response
// is dropped.
using HttpHandler =
    std::function<void(const HttpRequest&, std::function<void(HttpResponse)> respond)>;

// Listens on address:port (port 0 = let the kernel pick; see port()) and serves requests with
// `handler` until stop() or destruction. The constructor binds and listens synchronously and
// throws boost::system::system_error if that fails (a start-up error, not a data-path one).
class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const std::string& address, uint16_t port,
             HttpHandler handler);
  // Stops accepting and closes open connections (same as stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port. Any thread.
  uint16_t port() const;

  // Stops accepting and closes every open connection; responses still pending are dropped.
  // Any thread: the work is posted to the io_context (so it happens once that context runs);
  // done directly when the io_context is stopped. The io_context must outlive this object.
  void stop();

  struct Impl;  // implementation detail, public only so the .cc's session class can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushhub::http
