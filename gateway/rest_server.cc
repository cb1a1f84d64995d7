#include "gateway/rest_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <atomic>
#include <cassert>
#include <optional>
#include <unordered_map>

#include "base/http_server.h"
#include "base/log.h"

namespace pushhub::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr auto kLingerTime = std::chrono::seconds(2);

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void close() = 0;
};

}  // namespace

struct RestServer::Listener : std::enable_shared_from_this<RestServer::Listener> {
  Listener(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, size_t max_sessions,
           std::shared_ptr<const Handler> handler)
      : io(io),
        acceptor(io),
        tls(std::move(tls)),
        max_sessions(max_sessions),
        handler(std::move(handler)) {}

  void accept();
  void stopOnThread();

  asio::io_context& io;
  tcp::acceptor acceptor;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
  size_t max_sessions;
  std::shared_ptr<const Handler> handler;
  bool stopped = false;
  // Open sessions, so stop() can close them. Touched only on io's thread.
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
};

namespace {

// One connection: (TLS handshake,) then read a request, hand it to the handler, write the
// answer, and again while keep-alive. Lives on its listener's io_context.
template <typename Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, std::shared_ptr<RestServer::Listener> listener)
      : stream_(std::move(stream)), listener_(std::move(listener)) {}

  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      readRequest();
    } else {
      beast::get_lowest_layer(stream_).expires_after(RestServer::kRequestTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->finish();
                                self->readRequest();
                              });
    }
  }

  void close() override {
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

 private:
  void readRequest() {
    parser_.emplace();
    parser_->header_limit(RestServer::kMaxHeadBytes);
    parser_->body_limit(RestServer::kMaxBodyBytes);
    // Also the idle keep-alive timeout: the clock runs from the end of the previous answer.
    beast::get_lowest_layer(stream_).expires_after(RestServer::kRequestTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      keep_alive_ = false;
      refused_ = true;
      if (ec == http::error::body_limit) {
        return write(azureError(413, "the body is over the limit of " +
                                         std::to_string(RestServer::kMaxBodyBytes) + " bytes"));
      }
      if (ec == http::error::header_limit) {
        return write(azureError(431, "the request head is over the limit of " +
                                         std::to_string(RestServer::kMaxHeadBytes) + " bytes"));
      }
      if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        return write(azureError(400, "malformed HTTP request: " + ec.message()));
      }
      close();
      return finish();  // closed, timed out, or reset
    }
    beast::get_lowest_layer(stream_).expires_never();  // the handler may take its time
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    // The answer may come from another thread, and after this session is gone.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Session> weak = this->shared_from_this();
    asio::io_context& io = listener_->io;
    auto respond = [weak, answered, &io](RestResponse&& response) {
      if (answered->exchange(true)) return;
      asio::post(io, [weak, response = std::move(response)]() mutable {
        if (auto self = weak.lock()) self->write(std::move(response));
      });
    };
    pending_self_ = this->shared_from_this();  // alive until answered, though no read waits
    (*listener_->handler)(request_, std::move(respond));
  }

  void write(RestResponse&& response) {
    auto answer = std::make_shared<RestResponse>(std::move(response));
    answer->version(request_.version() == 10 ? 10 : 11);
    answer->set(http::field::server, "pushhub");
    answer->keep_alive(keep_alive_ && !listener_->stopped);
    beast::get_lowest_layer(stream_).expires_after(RestServer::kRequestTimeout);
    http::async_write(stream_, *answer,
                      [self = this->shared_from_this(), answer](beast::error_code ec, size_t) {
                        self->pending_self_.reset();
                        if (ec || !answer->keep_alive()) {
                          if (!ec && self->refused_) return self->lingerClose();
                          self->close();
                          return self->finish();
                        }
                        self->readRequest();
                      });
  }

  // After refusing a request whose rest is still arriving: closing with unread data would reset
  // the connection, and the client could lose the answer before reading it. So send FIN, then
  // read and drop what comes, for at most kLingerTime.
  void lingerClose() {
    auto& lowest = beast::get_lowest_layer(stream_);
    beast::error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest.expires_after(kLingerTime);
    drain();
  }
  void drain() {
    beast::get_lowest_layer(stream_).async_read_some(
        asio::buffer(drain_buffer_),
        [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (!ec) return self->drain();
          self->close();
          self->finish();
        });
  }

  void finish() {
    pending_self_.reset();
    listener_->sessions.erase(this);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  RestRequest request_;
  std::shared_ptr<RestServer::Listener> listener_;
  std::shared_ptr<Session> pending_self_;
  bool keep_alive_ = true;
  bool refused_ = false;  // the request was not read whole: linger before closing
  std::array<char, 4096> drain_buffer_{};
};

template <typename Stream>
void startSession(Stream stream, const std::shared_ptr<RestServer::Listener>& listener) {
  auto session = std::make_shared<Session<Stream>>(std::move(stream), listener);
  listener->sessions.emplace(session.get(), session);
  session->start();
}

}  // namespace

void RestServer::Listener::accept() {
  acceptor.async_accept(io, [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      log::get("rest")->warn("accept failed: {}", ec.message());
    } else if (self->sessions.size() >= self->max_sessions) {
      beast::error_code ignored;
      socket.close(ignored);  // over the connection limit
    } else if (self->tls) {
      startSession(beast::ssl_stream<beast::tcp_stream>(std::move(socket), *self->tls), self);
    } else {
      startSession(beast::tcp_stream(std::move(socket)), self);
    }
    self->accept();
  });
}

void RestServer::Listener::stopOnThread() {
  if (stopped) return;
  stopped = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  auto open = std::move(sessions);
  sessions.clear();
  for (auto& [raw, weak] : open) {
    if (auto s = weak.lock()) s->close();
  }
}

Result<std::unique_ptr<RestServer>> RestServer::start(
    const std::vector<asio::io_context*>& contexts, const Options& options, Handler handler) {
  assert(!contexts.empty());
  auto colon = options.listen.rfind(':');
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return Error::invalidArgument("server.rest_listen: '" + host + "' is not an address");
  uint16_t port = static_cast<uint16_t>(std::stoi(options.listen.substr(colon + 1)));

  std::shared_ptr<asio::ssl::context> tls;
  if (!options.plain_http) {
    auto context = pushhub::http::serverTlsContext(options.cert_file, options.key_file,
                                                   "server.tls_cert / server.tls_key");
    if (!context) return context.error();
    tls = std::move(*context);
  }

  std::unique_ptr<RestServer> server(new RestServer());
  server->plain_http_ = options.plain_http;
  auto shared_handler = std::make_shared<const Handler>(std::move(handler));
  size_t per_listener = (options.max_connections + contexts.size() - 1) / contexts.size();
  for (auto* io : contexts) {
    auto listener = std::make_shared<Listener>(*io, tls, per_listener, shared_handler);
    tcp::endpoint endpoint(address, server->port_ != 0 ? server->port_ : port);
    auto& acceptor = listener->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    // Every listener on the one port: the kernel spreads new connections over them.
    if (!ec) {
      int one = 1;
      if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        ec.assign(errno, boost::system::system_category());
    }
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      server->stop();
      return Error::unavailable("server.rest_listen: cannot listen on " + options.listen + ": " +
                                ec.message());
    }
    server->port_ = acceptor.local_endpoint().port();
    server->listeners_.push_back(listener);
  }
  for (auto& listener : server->listeners_) {
    asio::post(listener->io, [listener] { listener->accept(); });
  }
  return server;
}

RestServer::~RestServer() { stop(); }

void RestServer::stop() {
  for (auto& listener : listeners_) {
    // A stopped io_context runs no handler, so nothing races with a direct call then.
    if (listener->io.stopped()) {
      listener->stopOnThread();
    } else {
      asio::post(listener->io, [listener] { listener->stopOnThread(); });
    }
  }
}

}  // namespace pushhub::gateway
