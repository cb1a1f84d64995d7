#include "base/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <unordered_map>

#include "base/log.h"
#include "base/url_encoding.h"

namespace pushhub::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxBodyBytes = 1 << 20;

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

class Session;

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, HttpHandler h) : io(io), acceptor(io), handler(std::move(h)) {}

  void accept();
  void stopOnThread();

  asio::io_context& io;
  tcp::acceptor acceptor;
  HttpHandler handler;
  uint16_t port = 0;
  bool stopped = false;
  // Open sessions, so stop() can close them. Touched only on io's thread.
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
};

namespace {

// One accepted connection: read a request, hand it to the handler, write the answer, repeat
// while keep-alive. Lives on the server's io_context.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server)
      : stream_(std::move(socket)), server_(std::move(server)) {}

  void start() { readRequest(); }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void readRequest() {
    parser_.emplace();
    parser_->body_limit(kMaxBodyBytes);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
        HttpResponse r;
        r.status = 413;
        r.body = "{\"error\":\"request too large (limit 1 MiB)\"}";
        keep_alive_ = false;
        write(std::move(r), version_);
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
    req.body = std::move(msg.body());
    parseTarget(req);

    // The responder may run on another thread and after this session is gone.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Session> weak = shared_from_this();
    asio::io_context& io = server_->io;
    auto respond = [weak, answered, &io](HttpResponse response) {
      if (answered->exchange(true)) {
        return;
      }
      asio::post(io, [weak, response = std::move(response)]() mutable {
        if (auto self = weak.lock()) {
          self->write(std::move(response), self->version_);
        }
      });
    };
    // Hold the session alive until the response is written even though the read loop is idle.
    pending_self_ = shared_from_this();
    server_->handler(req, std::move(respond));
  }

  void write(HttpResponse response, unsigned version) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(response.status), version);
    res->set(bhttp::field::server, "pushhub");
    res->set(bhttp::field::content_type, response.content_type);
    res->keep_alive(keep_alive_);
    res->body() = std::move(response.body);
    res->prepare_payload();
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, size_t) {
                         self->pending_self_.reset();
                         if (ec || !self->keep_alive_ || self->server_->stopped) {
                           self->close();
                           self->finish();
                           return;
                         }
                         self->readRequest();
                       });
  }

  void finish() {
    pending_self_.reset();
    server_->sessions.erase(this);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::shared_ptr<Session> pending_self_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->stopped) {
      return;
    }
    if (!ec) {
      auto session = std::make_shared<Session>(std::move(socket), self);
      self->sessions.emplace(session.get(), session);
      session->start();
    } else if (ec == asio::error::operation_aborted) {
      return;
    } else {
      log::get("http")->warn("accept failed: {}", ec.message());
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
  auto open = std::move(sessions);
  sessions.clear();
  for (auto& [raw, weak] : open) {
    if (auto s = weak.lock()) {
      s->close();
    }
  }
}

HttpServer::HttpServer(asio::io_context& io, const std::string& address, uint16_t port,
                       HttpHandler handler)
    : impl_(std::make_shared<Impl>(io, std::move(handler))) {
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

void HttpServer::stop() {
  // A stopped io_context runs no handler, so nothing races with a direct call then.
  if (impl_->io.stopped()) {
    impl_->stopOnThread();
    return;
  }
  asio::post(impl_->io, [impl = impl_] { impl->stopOnThread(); });
}

}  // namespace pushhub::http
