#include "base/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cassert>
#include <cctype>
#include <deque>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "base/log.h"
#include "base/url_encoding.h"

namespace pushhub::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxBodyBytes = 1 << 20;
constexpr size_t kMaxStreamBacklog = 1 << 20;  // bytes queued on a stream before it is cut
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

void parseTarget(HttpRequest& req) {
  std::string_view target = req.target;
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q == std::string_view::npos) {
    return;
  }
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    std::string key = url::decode(pair.substr(0, eq));
    std::string value =
        eq == std::string_view::npos ? std::string{} : url::decode(pair.substr(eq + 1));
    req.query[std::move(key)] = std::move(value);
  }
}

// The status line and header of a streamed answer: no length, the connection closes after it.
std::string streamHead(const HttpResponse& response, unsigned version) {
  std::string head = fmt::format(
      "HTTP/{}.{} {} {}\r\nServer: pushhub\r\nContent-Type: {}\r\nConnection: close\r\n",
      version / 10, version % 10, response.status,
      std::string_view(bhttp::obsolete_reason(static_cast<bhttp::status>(response.status))),
      response.content_type);
  for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
  return head + "\r\n";
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void shutdown() = 0;  // closes the connection, whatever it is doing
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpHandler h, std::shared_ptr<asio::ssl::context> tls,
       size_t max_connections)
      : io(io),
        acceptor(io),
        accept_retry(io),
        handler(std::move(h)),
        tls(std::move(tls)),
        max_connections(max_connections) {}

  void accept();
  void stopOnThread();

  asio::io_context& io;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  HttpHandler handler;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain HTTP
  size_t max_connections;
  uint16_t port = 0;
  bool stopped = false;
  // Open sessions, so stop() can close them. Touched only on io's thread.
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;
};

namespace {

[[maybe_unused]] bool onThread(asio::io_context& io) {
  return io.get_executor().running_in_this_thread();
}

// One accepted connection: read a request, hand it to the handler, write the answer, repeat
// while keep-alive; or, for a streamed answer, write what the stream is given until it closes.
// Lives on the server's io_context.
template <typename Stream>
class Session : public SessionBase,
                public ResponseStream,
                public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(stream)), server_(std::move(server)) {}

  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      readRequest();
    } else {
      beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                beast::get_lowest_layer(self->stream_).expires_never();
                                if (ec) return self->finish();
                                self->readRequest();
                              });
    }
  }

  // Whoever calls this holds a reference: dropping the session's own is safe here, and the one
  // way a session whose answer or stream is still pending gets freed when its server stops
  // (the io_context may be stopped before the write's completion would drop it).
  void shutdown() override {
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    streaming_ = false;
    pending_self_.reset();
  }

  // ResponseStream, on the io_context's thread.
  bool write(std::string chunk) override {
    assert(onThread(server_->io) && "ResponseStream used off its io_context");
    if (!streaming_) return false;
    backlog_ += chunk.size();
    if (backlog_ > kMaxStreamBacklog) {  // the client does not read: let it go
      endStream();
      return false;
    }
    queue_.push_back(std::move(chunk));
    if (queue_.size() == 1) writeQueued();
    return true;
  }
  bool open() const override { return streaming_; }
  void close() override {
    assert(onThread(server_->io) && "ResponseStream used off its io_context");
    on_close_ = nullptr;
    endStream();
  }
  void onClose(std::function<void()> callback) override { on_close_ = std::move(callback); }

 private:
  void readRequest() {
    parser_.emplace();
    parser_->body_limit(kMaxBodyBytes);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
        HttpResponse r;
        r.status = 413;
        r.body = "{\"error\":\"request too large (limit 1 MiB)\"}";
        keep_alive_ = false;
        writeResponse(std::move(r));
        return;
      }
      finish();
      return;
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [it, fresh] = req.headers.emplace(name, std::string(field.value()));
      if (!fresh) (it->second += name == "cookie" ? "; " : ", ") += field.value();
    }
    req.body = std::move(msg.body());
    parseTarget(req);

    // The responder may run on another thread and after this session is gone.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Session> weak = this->shared_from_this();
    asio::io_context& io = server_->io;
    auto respond = [weak, answered, &io](HttpResponse response) {
      if (answered->exchange(true)) {
        return;
      }
      asio::post(io, [weak, response = std::move(response)]() mutable {
        if (auto self = weak.lock()) self->writeResponse(std::move(response));
      });
    };
    // Hold the session alive until the response is written even though the read loop is idle.
    pending_self_ = this->shared_from_this();
    server_->handler(req, std::move(respond));
  }

  void writeResponse(HttpResponse response) {
    if (response.on_stream) return startStream(std::move(response));
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), version_);
    res->set(bhttp::field::server, "pushhub");
    res->set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res->insert(name, value);
    res->keep_alive(keep_alive_);
    res->body() = std::move(response.body);
    res->prepare_payload();
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                         self->pending_self_.reset();
                         if (ec || !self->keep_alive_ || self->server_->stopped) {
                           self->shutdown();
                           self->finish();
                           return;
                         }
                         self->readRequest();
                       });
  }

  // A streamed answer: the head and first body go out like any chunk, then the feeder's chunks;
  // a read is kept pending so the client's leaving is seen.
  void startStream(HttpResponse response) {
    streaming_ = true;
    write(streamHead(response, version_) + response.body);
    watchPeer();
    auto on_stream = std::move(response.on_stream);
    on_stream(std::static_pointer_cast<ResponseStream>(this->shared_from_this()));
  }

  void watchPeer() {
    stream_.async_read_some(asio::buffer(discard_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (!self->streaming_) return;
                              if (ec) return self->endStream();
                              self->watchPeer();
                            });
  }

  void writeQueued() {
    asio::async_write(stream_, asio::buffer(queue_.front()),
                      [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                        self->backlog_ -= n;
                        self->queue_.pop_front();
                        if (ec) return self->endStream();
                        if (!self->queue_.empty()) self->writeQueued();
                      });
  }

  void endStream() {
    if (!streaming_) return;
    shutdown();
    finish();
    if (auto callback = std::move(on_close_)) callback();
  }

  void finish() {
    pending_self_.reset();
    server_->sessions.erase(this);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::shared_ptr<Session> pending_self_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  // A streamed answer's state.
  bool streaming_ = false;
  std::deque<std::string> queue_;
  size_t backlog_ = 0;
  std::function<void()> on_close_;
  std::array<char, 512> discard_{};
};

template <typename Stream>
void startSession(Stream stream, const std::shared_ptr<HttpServer::Impl>& server) {
  auto session = std::make_shared<Session<Stream>>(std::move(stream), server);
  server->sessions.emplace(session.get(), session);
  session->start();
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> serverTlsContext(const std::string& cert_file,
                                                             const std::string& key_file,
                                                             std::string_view config_keys) {
  auto tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  tls->use_certificate_chain_file(cert_file, ec);
  if (!ec) tls->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) return Error::invalidArgument(fmt::format("{}: {}", config_keys, ec.message()));
  return tls;
}

void HttpServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      // Out of file descriptors, say: retrying at once would spin until some are freed.
      log::get("http")->warn("accept failed: {}; retrying in 100 ms", ec.message());
      self->accept_retry.expires_after(std::chrono::milliseconds(100));
      self->accept_retry.async_wait([self](beast::error_code wait) {
        if (!wait && !self->stopped) self->accept();
      });
      return;
    }
    if (self->sessions.size() >= self->max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else if (self->tls) {
      startSession(beast::ssl_stream<beast::tcp_stream>(std::move(socket), *self->tls), self);
    } else {
      startSession(beast::tcp_stream(std::move(socket)), self);
    }
    self->accept();
  });
}

void HttpServer::Impl::stopOnThread() {
  if (stopped) {
    return;
  }
  stopped = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  accept_retry.cancel();
  auto open = std::move(sessions);
  sessions.clear();
  for (auto& [raw, weak] : open) {
    if (auto s = weak.lock()) {
      s->shutdown();
    }
  }
}

HttpServer::HttpServer(asio::io_context& io, const std::string& address, uint16_t port,
                       HttpHandler handler, std::shared_ptr<asio::ssl::context> tls,
                       size_t max_connections)
    : impl_(std::make_shared<Impl>(io, std::move(handler), std::move(tls), max_connections)) {
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return impl_->port; }

bool HttpServer::tls() const { return impl_->tls != nullptr; }

void HttpServer::stop() {
  // A stopped io_context runs no handler, so nothing races with a direct call then.
  if (impl_->io.stopped()) {
    impl_->stopOnThread();
    return;
  }
  asio::post(impl_->io, [impl = impl_] { impl->stopOnThread(); });
}

}  // namespace pushhub::http
