#pragma once
// RestServer: the transport of the Azure REST front end. HTTP/1.1 keep-alive over TLS (plain
// HTTP only when configured, and only on loopback: Config checks it) on Boost.Beast. Every
// worker's io_context has its own acceptor on the same port (SO_REUSEPORT), so the kernel spreads
// connections over the workers and a connection lives on one worker's thread from accept to
// close: no locks, no hand-over.
//
// Limits, each answered with Azure's error body and the connection closed: a request head over
// kMaxHeadBytes (431), a body over kMaxBodyBytes (413), a malformed request (400). A client gets
// kRequestTimeout for the TLS handshake and for each request, and an idle keep-alive connection
// is closed after it too. Beyond `max_connections` open connections (split evenly over the
// workers) a new connection is closed at once.
//
// Threads: start() and stop() from the main thread; the handler is called on the connection's
// worker thread and may answer later from any thread (the answer is posted back).

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "gateway/rest_api.h"

namespace pushhub::gateway {

class RestServer {
 public:
  static constexpr size_t kMaxHeadBytes = 16 * 1024;
  static constexpr size_t kMaxBodyBytes = 1024 * 1024;
  static constexpr auto kRequestTimeout = std::chrono::seconds(30);

  // `respond` must be called exactly once.
  using Handler =
      std::function<void(const RestRequest& request, std::function<void(RestResponse&&)> respond)>;

  struct Options {
    std::string listen;  // host:port; port 0 picks one (port() tells)
    bool plain_http = false;
    std::string cert_file, key_file;  // PEM, for TLS
    size_t max_connections = 1024;
  };

  // Binds and listens on every io_context (which must outlive the server and run on their own
  // threads); errors name the option.
  static Result<std::unique_ptr<RestServer>> start(
      const std::vector<boost::asio::io_context*>& contexts, const Options& options,
      Handler handler);
  ~RestServer();

  uint16_t port() const { return port_; }
  bool tls() const { return !plain_http_; }
  // Stops accepting and closes every connection (posted to each io_context). Any thread.
  void stop();

  struct Listener;  // one per io_context; public only for the .cc's sessions

 private:
  RestServer() = default;
  std::vector<std::shared_ptr<Listener>> listeners_;
  uint16_t port_ = 0;
  bool plain_http_ = false;
};

}  // namespace pushhub::gateway
