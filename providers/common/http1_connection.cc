// One HTTP/1.1 keep-alive connection of a ConnectionPool (Boost.Beast over the shared TLS
// stream): one request at a time, see connection_pool.h for the behaviour.

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cassert>
#include <cstring>
#include <optional>

#include "base/log.h"
#include "providers/common/pool_connection.h"

namespace pushhub::providers::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr uint32_t kMaxHeaderBytes = 64 * 1024;

// Headers the connection owns; a provider's value for them is ignored.
bool isConnectionHeader(std::string_view name) {
  return beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
         beast::iequals(name, "expect") || beast::iequals(name, "connection") ||
         beast::iequals(name, "host") || beast::iequals(name, "keep-alive") ||
         beast::iequals(name, "upgrade") || (!name.empty() && name.front() == ':');
}

// A CR, LF or NUL would let a value end its header line and start another (request smuggling).
bool breaksLine(std::string_view text) {
  return !text.empty() && (std::memchr(text.data(), '\r', text.size()) != nullptr ||
                           std::memchr(text.data(), '\n', text.size()) != nullptr ||
                           std::memchr(text.data(), '\0', text.size()) != nullptr);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') {
      ch = static_cast<char>(ch - 'A' + 'a');
    }
  }
  return out;
}

bool isPeerClose(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset;
}

}  // namespace

class Http1Connection final : public PoolConnection {
 public:
  Http1Connection(ConnectionPool* pool, uint64_t id, std::unique_ptr<TlsStream> established)
      : PoolConnection(pool, id, std::move(established)),
        idle_timeout_(pool->options_.idle_timeout) {}

  bool isHttp1() const override { return true; }

  size_t freeCapacity() const override { return state_ == State::kReady && !current_ ? 1 : 0; }

  void submit(Queued&& queued) override {
    assert(freeCapacity() > 0);
    current_ = std::move(queued);
    answered_ = false;
    write_done_ = false;
    early_response_.reset();
    active_ = 1;
    timer_.cancel();  // the idle timer
    const Request& r = current_->request;
    if (auto ok = serialize(r); !ok) {
      // Nothing was written, so the connection stays usable: only this request fails.
      Queued failed = std::move(*current_);
      current_.reset();
      active_ = 0;
      armIdle();
      auto self = selfPtr();
      asio::post(ioc_, [self, failed = std::move(failed), error = ok.error()]() mutable {
        failed.handler(error);
        if (self->state_ != State::kClosed && self->pool_ != nullptr) {
          self->pool_->onCapacity();
        }
      });
      return;
    }
    log_->trace("http/1.1 connection {}: request written", id_);
    auto self = selfPtr();
    // One buffer, so one SSL_write and one TLS record: Beast's serializer hands asio's SSL
    // stream a sequence of buffers, and the SSL stream writes each as a record of its own.
    asio::async_write(*stream_, asio::buffer(wire_),
                      [self](boost::system::error_code ec, size_t) { self->onWrite(ec); });
  }

  void startDraining(const std::string& why) override {
    if (state_ == State::kClosed || state_ == State::kDraining) {
      return;
    }
    bool was_connecting = state_ == State::kConnecting;
    state_ = State::kDraining;
    log_->debug("http/1.1 connection {} draining: {}", id_, why);
    if (pool_ != nullptr) {
      pool_->onDraining(this);
    }
    if (was_connecting) {
      close(why);
      return;
    }
    if (!current_) {
      graceful_ = true;
      close(why);
    }
  }

  void sweep(Clock::time_point now, std::vector<ResponseHandler>& expired) override {
    if (state_ == State::kClosed || !current_ || answered_ || current_->deadline > now) {
      return;
    }
    answered_ = true;
    expired.push_back(std::move(current_->handler));
    // HTTP/1.1 cannot abandon one request and keep the connection: the late response would be
    // taken for the next one's. Closed after the sweep (not inside the pool's loop).
    graceful_ = true;
    auto self = selfPtr();
    asio::post(ioc_, [self] { self->close("request timed out"); });
  }

  void close(const std::string& why) override {
    if (state_ == State::kClosed) {
      return;
    }
    auto self = selfPtr();  // the pool may drop its reference in closeTransport()
    ConnectionPool* pool = closeTransport(why);
    std::optional<Queued> open = std::move(current_);
    current_.reset();
    active_ = 0;
    if (!open || answered_) {
      return;
    }
    if (early_response_) {
      // Answered already; only our write's completion was missing.
      Response response = std::move(*early_response_);
      early_response_.reset();
      open->handler(std::move(response));
      return;
    }
    if (!write_done_ && pool != nullptr) {
      // Not every byte reached the server, so it cannot have acted on the request.
      ++pool->stats_.resubmitted;
      pool->requeue(std::move(*open));
      return;
    }
    if (pool != nullptr) {
      ++pool->stats_.transport_errors;
    }
    log_->debug("http/1.1 connection {} closed with a request outstanding: {}", id_, why);
    open->handler(Error::unavailable("connection lost before the response: " + why));
  }

 private:
  std::shared_ptr<Http1Connection> selfPtr() {
    return std::static_pointer_cast<Http1Connection>(shared_from_this());
  }

  void onEstablished(std::string_view alpn) override {
    if (!alpn.empty() && alpn != "http/1.1") {
      close("server selected ALPN '" + std::string(alpn) + "', not http/1.1");
      return;
    }
    state_ = State::kReady;
    ready_once_ = true;
    ready_at_ = Clock::now();
    timer_.cancel();
    armIdle();
    startRead();
    if (pool_ != nullptr) {
      pool_->onReady(this);
    }
  }

  // A read is always outstanding while the connection is open, so a server closing an idle
  // connection is noticed at once rather than when the next request is written. Started right
  // after a response, it first finds the socket empty (asio tries every new read at once: one
  // recv() per request that fails with EAGAIN). Waiting for readability instead
  // (socket::async_wait) costs an epoll_ctl() per request in its place: measured, no cheaper.
  void startRead() {
    parser_.emplace();
    parser_->body_limit(kMaxResponseBodyBytes);
    parser_->header_limit(kMaxHeaderBytes);
    auto self = selfPtr();
    http::async_read(*stream_, buffer_, *parser_,
                     [self](boost::system::error_code ec, size_t) { self->onRead(ec); });
  }

  // The request line, Host, the request's headers (minus hop-by-hop ones), Content-Length (WNS
  // takes no chunked bodies) and the body, into wire_. A CR, LF or NUL in the target or a header
  // would let one header end another's line: refused, nothing is written.
  Result<void> serialize(const Request& r) {
    auto refused = [](std::string_view what) {
      return Error::invalidArgument(std::string(what) + ": contains CR, LF or NUL");
    };
    std::string_view target = r.path.empty() ? std::string_view("/") : std::string_view(r.path);
    if (breaksLine(r.method)) return refused("method");
    if (breaksLine(target)) return refused("request target");
    std::string_view body = r.bodyView();
    wire_.clear();
    wire_.append(r.method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
    wire_.append(host_header_).append("\r\n");
    const Header* bad = nullptr;
    r.forEachHeader([this, &bad](const Header& h) {
      if (bad != nullptr || isConnectionHeader(h.name)) return;
      if (breaksLine(h.name) || breaksLine(h.value)) {
        bad = &h;
        return;
      }
      wire_.append(h.name).append(": ").append(h.value).append("\r\n");
    });
    if (bad != nullptr) return refused("header " + bad->name);
    wire_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    wire_.append(body);
    return {};
  }

  void onWrite(boost::system::error_code ec) {
    if (state_ == State::kClosed) {
      return;
    }
    if (ec && !early_response_) {
      close("write: " + ec.message());
      return;
    }
    write_done_ = true;
    if (early_response_) {
      // The response was read before this handler ran (common on fast links), or the server
      // answered without reading our whole body (then the write failed and we must not reuse
      // the connection).
      Response response = std::move(*early_response_);
      early_response_.reset();
      complete(std::move(response), early_keep_alive_ && !ec);
    }
  }

  void onRead(boost::system::error_code ec) {
    if (state_ == State::kClosed) {
      return;
    }
    if (ec) {
      if (isPeerClose(ec)) {
        // Closing an idle keep-alive connection is the server's right, not a failure.
        graceful_ = !current_;
        close(current_ ? "connection closed by the server before the response"
                       : "closed by the server while idle");
      } else {
        close("read: " + ec.message());
      }
      return;
    }
    auto& message = parser_->get();
    unsigned status = message.result_int();
    if (status / 100 == 1 && status != 101) {
      startRead();  // interim response (we never ask for 100-continue, but servers may send it)
      return;
    }
    if (!current_) {
      close("response without a request (HTTP " + std::to_string(status) + ")");
      return;
    }
    Response response;
    response.status = static_cast<int>(status);
    response.headers.reserve(static_cast<size_t>(std::distance(message.begin(), message.end())));
    for (const auto& field : message) {
      response.headers.push_back(
          Header{lowercase(field.name_string()), std::string(field.value()), false});
    }
    response.body = std::move(message.body());
    response.connection_id = id_;
    if (!write_done_) {
      // Our write's completion has not run yet: finish in onWrite.
      early_response_ = std::move(response);
      early_keep_alive_ = message.keep_alive();
      return;
    }
    complete(std::move(response), message.keep_alive());
  }

  // Delivers the response of the current request once both its write and its read are done.
  void complete(Response response, bool keep_alive) {
    log_->trace("http/1.1 connection {}: HTTP {} (keep-alive {})", id_, response.status,
                keep_alive);
    Queued done = std::move(*current_);
    current_.reset();
    active_ = 0;
    bool answered = answered_;
    answered_ = false;

    if (!keep_alive || state_ == State::kDraining) {
      graceful_ = true;
      close(!keep_alive ? "server sent Connection: close (or the request was cut short)"
                        : "drained");
    } else {
      armIdle();
      startRead();
    }
    if (!answered) {
      done.handler(std::move(response));
    }
    if (state_ != State::kClosed && pool_ != nullptr) {
      pool_->onCapacity();
    }
  }

  void armIdle() {
    auto self = selfPtr();
    timer_.expires_after(idle_timeout_);
    timer_.async_wait([self](boost::system::error_code ec) {
      if (ec || self->state_ != State::kReady || self->current_) {
        return;
      }
      self->graceful_ = true;
      self->close("idle for " + std::to_string(self->idle_timeout_.count()) + " s");
    });
  }

  const std::chrono::seconds idle_timeout_;
  std::optional<Queued> current_;  // the one request on this connection
  bool answered_ = false;          // its handler was already called (timeout)
  bool write_done_ = false;
  std::optional<Response> early_response_;  // read before onWrite ran
  bool early_keep_alive_ = false;
  beast::flat_buffer buffer_;
  std::string wire_;  // the request being written; its capacity is reused
  std::optional<http::response_parser<http::string_body>> parser_;
};

std::shared_ptr<PoolConnection> makeHttp1Connection(ConnectionPool* pool, uint64_t id,
                                                    std::unique_ptr<TlsStream> established) {
  return std::make_shared<Http1Connection>(pool, id, std::move(established));
}

}  // namespace pushhub::providers::detail
