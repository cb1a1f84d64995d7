#pragma once
// A small HTTP/1.1 keep-alive server (Boost.Beast) for control and admin endpoints: pns-mock's
// /_mock API, the gateway's admin listener (metrics, health, the operators' console). Not for the
// data path. Plain HTTP, or HTTPS when given a TLS context (serverTlsContext); no authentication
// of its own. Request bodies are capped at 1 MiB.
//
// Threading: everything inside runs on the io_context given to the constructor. The handler is
// called on that io_context's thread; it may answer at once or later from ANY thread (the
// answer is posted back to the io_context). Each connection serves one request at a time, so a
// slow answer only delays that connection. A streamed answer (HttpResponse::on_stream) keeps its
// connection until either side closes it; the ResponseStream it hands out is for the
// io_context's thread only.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace pushhub::http {

struct HttpRequest {
  std::string method;                        // "GET", "POST", ... as sent
  std::string target;                        // path + query as sent ("/_mock/received?limit=5")
  std::string path;                          // target before '?', not decoded
  std::map<std::string, std::string> query;  // percent- and '+'-decoded; last value wins
  // Header names lower-cased; a repeated header's values joined with ", " ("; " for cookie).
  std::map<std::string, std::string> headers;
  std::string body;

  // The header's value, "" when absent. `lower_name` must be lower case.
  std::string_view header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string_view{} : std::string_view(it->second);
  }
};

// An open streamed answer (Server-Sent Events): chunks written in order, as they are given.
// Only on the server's io_context thread. Held by whoever feeds it; the connection closes when
// the client goes, the server stops, the feeder calls close(), or the client reads too slowly
// (more than 1 MiB waiting).
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues `chunk`; false once the stream is closed (the chunk is dropped).
  virtual bool write(std::string chunk) = 0;
  virtual bool open() const = 0;
  virtual void close() = 0;
  // Called once when the stream closes, for any reason (not when close() is called by the feeder).
  virtual void onClose(std::function<void()> callback) = 0;
};

struct HttpResponse {
  HttpResponse(int status = 200, std::string content_type = "application/json",
               std::string body = {})
      : status(status), content_type(std::move(content_type)), body(std::move(body)) {}

  int status;
  std::string content_type;
  std::string body;
  // Further header fields (Set-Cookie, Cache-Control, ...): written as given, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the answer is a stream: its header and `body` go out, with no length and
  // "Connection: close", and then `on_stream` is called on the io_context's thread with the
  // stream to feed. The connection serves no further request.
  std::function<void(std::shared_ptr<ResponseStream>)> on_stream;
};

// Called once per request. `respond` must be called exactly once (extra calls are ignored); it
// may be called later and from any thread. If the connection closed in between, the response
// is dropped.
using HttpHandler =
    std::function<void(const HttpRequest&, std::function<void(HttpResponse)> respond)>;

// A TLS server context (TLS 1.2 and later) with the PEM certificate chain and key at these paths.
// The error names `config_keys` (e.g. "server.tls_cert / server.tls_key") and the reason.
Result<std::shared_ptr<boost::asio::ssl::context>> serverTlsContext(const std::string& cert_file,
                                                                    const std::string& key_file,
                                                                    std::string_view config_keys);

// Listens on address:port (port 0 = let the kernel pick; see port()) and serves requests with
// `handler` until stop() or destruction; over TLS when `tls` is set. The constructor binds and
// listens synchronously and throws boost::system::system_error if that fails (a start-up error,
// not a data-path one). A failed accept (out of file descriptors, say) is retried after 100 ms.
class HttpServer {
 public:
  // Connections open at once by default; past the bound a new one is closed at once (a flood of
  // idle connections cannot take the listener's memory or file descriptors).
  static constexpr size_t kDefaultMaxConnections = 512;

  HttpServer(boost::asio::io_context& io, const std::string& address, uint16_t port,
             HttpHandler handler, std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
             size_t max_connections = kDefaultMaxConnections);
  // Stops accepting and closes open connections (same as stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port. Any thread.
  uint16_t port() const;
  // Serving HTTPS. Any thread.
  bool tls() const;

  // Stops accepting and closes every open connection and stream; responses still pending are
  // dropped. Any thread: the work is posted to the io_context (so it happens once that context
  // runs); done directly when the io_context is stopped. The io_context must outlive this object.
  void stop();

  struct Impl;  // implementation detail, public only so the .cc's session class can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace pushhub::http
