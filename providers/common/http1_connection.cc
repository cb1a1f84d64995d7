// One HTTP/1.1 keep-alive connection of a ConnectionPool: one request at a time, see
// connection_pool.h for the behaviour.
//
// After the handshake (done by PoolConnection through Asio's SSL stream), OpenSSL is driven on
// the socket itself (SSL_set_fd) instead of through the stream's BIO pair: a WNS request is one
// TLS record each way, and Asio's engine spent more on it than the record did (two BIO-pair
// copies each way, an ERR_clear_error before every call, and an SSL_read plus a recv() that
// found nothing after every response). Responses are parsed with Beast's parser, fed by hand.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
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

// What a failed SSL_read or SSL_write means, as the error codes Asio's SSL stream would give.
// `io_errno` is errno right after the call.
boost::system::error_code sslFailure(int ssl_error, int io_errno) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    return asio::error::eof;  // the peer's close_notify
  }
  unsigned long queued = ERR_get_error();
  ERR_clear_error();
  if (ssl_error == SSL_ERROR_SYSCALL && queued == 0) {
    return io_errno != 0 ? boost::system::error_code(io_errno, boost::system::system_category())
                         : boost::system::error_code(asio::ssl::error::stream_truncated);
  }
  if (ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return asio::ssl::error::stream_truncated;
  }
  return {static_cast<int>(queued), asio::error::get_ssl_category()};
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
    written_ = 0;
    writeSome();
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
    ssl_ = stream_->native_handle();
    auto& socket = stream_->next_layer();
    // The handshake read only what it needed: a server says nothing more before our first
    // request (TLS 1.3 session tickets come after our Finished). Bytes left in the BIO pair
    // would be lost with it.
    if (BIO_ctrl_pending(SSL_get_rbio(ssl_)) != 0 || SSL_has_pending(ssl_) != 0) {
      close("server sent data before the first request");
      return;
    }
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    if (ec || SSL_set_fd(ssl_, static_cast<int>(socket.native_handle())) != 1) {
      ERR_clear_error();
      close("cannot attach TLS to the socket" + (ec ? ": " + ec.message() : std::string()));
      return;
    }
    // Without read-ahead OpenSSL reads a record's 5-byte header and then its body: two read()
    // calls for every response. With it, one read takes what the socket has; records read
    // beyond the current one wait in OpenSSL's buffer, which SSL_has_pending() reports and
    // startRead() drains before waiting on the socket.
    SSL_set_read_ahead(ssl_, 1);
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
  // connection is noticed at once rather than when the next request is written. Right after a
  // response nothing can be there yet, so it waits for the socket to be readable before
  // reading (bytes OpenSSL or the parse buffer already hold are taken first).
  void startRead() {
    parser_.emplace();
    parser_->body_limit(kMaxResponseBodyBytes);
    parser_->header_limit(kMaxHeaderBytes);
    if (buffer_.size() > 0 && parse()) {
      return;
    }
    if (SSL_has_pending(ssl_) != 0) {
      readSome();
      return;
    }
    waitFor(asio::socket_base::wait_read, &Http1Connection::readSome);
  }

  // Runs `then` once the socket is ready for `what`; a failed wait closes the connection unless
  // it was closed already (which is what cancels the wait).
  void waitFor(asio::socket_base::wait_type what, void (Http1Connection::*then)()) {
    auto self = selfPtr();
    stream_->next_layer().async_wait(what, [self, then](boost::system::error_code ec) {
      if (self->state_ == State::kClosed) {
        return;
      }
      if (ec) {
        self->close("wait: " + ec.message());
        return;
      }
      ((*self).*then)();
    });
  }

  // When OpenSSL has to wait for the socket (either way: a read may need to write, and a write
  // to read), waits and runs `then` again; false for anything else.
  bool waitIfWanted(int ssl_error, void (Http1Connection::*then)()) {
    if (ssl_error != SSL_ERROR_WANT_READ && ssl_error != SSL_ERROR_WANT_WRITE) {
      return false;
    }
    waitFor(ssl_error == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                             : asio::socket_base::wait_write,
            then);
    return true;
  }

  // Reads what OpenSSL can give and parses it, until the response is whole or OpenSSL has to
  // wait for the socket.
  void readSome() {
    constexpr size_t kReadBytes = 16 * 1024;
    for (;;) {
      // The parser takes body bytes as they come, so only an unfinished header or chunk line
      // stays unparsed; the parser's own limits stop a long header.
      if (buffer_.size() > kMaxHeaderBytes) {
        onRead(http::error::buffer_overflow);
        return;
      }
      auto space = buffer_.prepare(kReadBytes);
      clearStaleErrors();
      int n = SSL_read(ssl_, space.data(), static_cast<int>(space.size()));
      if (n > 0) {
        buffer_.commit(static_cast<size_t>(n));
        if (parse()) {
          return;
        }
        continue;
      }
      int io_errno = errno;
      int error = SSL_get_error(ssl_, n);
      if (waitIfWanted(error, &Http1Connection::readSome)) {
        return;
      }
      boost::system::error_code ec = sslFailure(error, io_errno);
      if (isPeerClose(ec) && parser_->got_some()) {
        // A body that runs to the end of the connection (no length, not chunked) ends here;
        // anything else cut short is partial_message.
        parser_->put_eof(ec);
      }
      onRead(ec);
      return;
    }
  }

  // SSL_get_error reads the thread's error queue, so it must be empty before each call; other
  // OpenSSL users on this thread may leave entries. Peeking is much cheaper than clearing.
  static void clearStaleErrors() {
    if (ERR_peek_error() != 0) {
      ERR_clear_error();
    }
    errno = 0;
  }

  // Feeds buffer_ to the parser. True when it is done with this response (onRead was called).
  bool parse() {
    while (buffer_.size() > 0 && !parser_->is_done()) {
      boost::system::error_code ec;
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        break;
      }
      if (ec) {
        onRead(ec);
        return true;
      }
    }
    if (parser_->is_done()) {
      onRead({});
      return true;
    }
    return false;
  }

  // Writes the rest of wire_ (one TLS record for a small request). Completes at once when
  // OpenSSL takes it all, else after waiting for the socket; a failure reaches onWrite through
  // the io_context, never inside submit().
  void writeSome() {
    while (written_ < wire_.size()) {
      clearStaleErrors();
      int n = SSL_write(ssl_, wire_.data() + written_, static_cast<int>(wire_.size() - written_));
      if (n > 0) {
        written_ += static_cast<size_t>(n);
        continue;
      }
      int io_errno = errno;
      int error = SSL_get_error(ssl_, n);
      if (waitIfWanted(error, &Http1Connection::writeSome)) {
        return;
      }
      auto self = selfPtr();
      asio::post(ioc_, [self, ec = sslFailure(error, io_errno)] { self->onWrite(ec); });
      return;
    }
    log_->trace("http/1.1 connection {}: request written", id_);
    onWrite({});
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
  SSL* ssl_ = nullptr;         // the stream's, driven on the socket once established
  beast::flat_buffer buffer_;  // read, not parsed yet
  std::string wire_;           // the request being written; its capacity is reused
  size_t written_ = 0;
  std::optional<http::response_parser<http::string_body>> parser_;
};

std::shared_ptr<PoolConnection> makeHttp1Connection(ConnectionPool* pool, uint64_t id,
                                                    std::unique_ptr<TlsStream> established) {
  return std::make_shared<Http1Connection>(pool, id, std::move(established));
}

}  // namespace pushhub::providers::detail
