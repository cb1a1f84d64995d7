#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cassert>
#include <cstring>

#include "base/log.h"
#include "providers/common/pool_connection.h"

namespace pushhub::providers::detail {

namespace asio = boost::asio;

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr size_t kMaxWriteBatchBytes = 256 * 1024;
constexpr size_t kMaxFreeStreams = 4096;
// Our own cap when the server announces "unlimited" (or a huge value).
constexpr uint32_t kLocalMaxStreams = 10000;
// Streams ids are 31-bit and odd for a client: drain well before running out.
constexpr int32_t kStreamIdDrainThreshold = (1 << 30) + (1 << 29);
constexpr int32_t kLocalWindowBytes = 16 * 1024 * 1024;
constexpr uint32_t kStreamWindowBytes = 1024 * 1024;

bool isLowercase(std::string_view name) {
  return std::none_of(name.begin(), name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

}  // namespace

// One HTTP/2 connection (see connection_pool.h for the behaviour).
class H2Connection final : public PoolConnection {
 public:
  H2Connection(ConnectionPool* pool, uint64_t id)
      : PoolConnection(pool, id, nullptr), ping_interval_(pool->options_.ping_interval) {}

  ~H2Connection() override {
    if (session_ != nullptr) {
      nghttp2_session_del(session_);
    }
    releaseAll();
  }

  bool isHttp1() const override { return false; }

  size_t freeCapacity() const override {
    if (state_ != State::kReady) {
      return 0;
    }
    uint32_t limit = std::min(
        nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
        kLocalMaxStreams);
    return active_ < limit ? limit - active_ : 0;
  }

  void submit(Queued&& queued) override {
    assert(freeCapacity() > 0);
    Stream* s = acquireStream();
    s->queued = std::move(queued);
    const Request& r = s->queued.request;
    nv_.clear();
    // nghttp2 keeps these pointers instead of copying every name and value (NO_COPY_*); it
    // reads them until the HEADERS frame is serialized or given up (on_frame_send /
    // on_frame_not_send). They point into `s->queued.request` (and the shared headers it keeps
    // alive), into host_header_ and at string literals. The Stream is heap-allocated and never
    // moves, and its request leaves it only once nghttp2 is done with the frame: after nghttp2
    // closed the stream (deliverClosed), when the submission below fails, or in close(), which
    // deletes the session before anything could be serialized again. host_header_ belongs to this
    // connection, which outlives its session. nghttp2 lower-cases names it copies and not the ones
    // it borrows, so a name with capitals (providers should not send any) is still copied.
    auto add = [this](std::string_view name, std::string_view value, bool sensitive) {
      uint8_t flags = NGHTTP2_NV_FLAG_NO_COPY_VALUE;
      if (sensitive) {
        flags |= NGHTTP2_NV_FLAG_NO_INDEX;
      }
      if (isLowercase(name)) {
        flags |= NGHTTP2_NV_FLAG_NO_COPY_NAME;
      }
      nv_.push_back(nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                               const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                               name.size(), value.size(), flags});
    };
    add(":method", r.method, false);
    add(":scheme", "https", false);
    add(":authority", host_header_, false);
    add(":path", r.path, r.sensitive_path);
    r.forEachHeader([&add](const Header& h) { add(h.name, h.value, h.sensitive); });
    nghttp2_data_provider body;
    body.source.ptr = s;
    body.read_callback = &H2Connection::readBody;
    int32_t stream_id = nghttp2_submit_request(session_, nullptr, nv_.data(), nv_.size(),
                                               r.bodyView().empty() ? nullptr : &body, s);
    if (stream_id < 0) {
      // Out of stream ids or the session is going away: let the pool place it elsewhere.
      Queued q = std::move(s->queued);
      releaseStream(s);
      startDraining("cannot open a stream: " + std::string(nghttp2_strerror(stream_id)));
      if (pool_ != nullptr) {
        pool_->requeue(std::move(q));
      }
      return;
    }
    s->id = stream_id;
    link(s);
    ++active_;
    if (stream_id > kStreamIdDrainThreshold) {
      startDraining("stream ids nearly exhausted");
    }
    scheduleFlush();
  }

  // Stops new streams; closes once the open ones finish.
  void startDraining(const std::string& why) override {
    if (state_ == State::kClosed || state_ == State::kDraining) {
      return;
    }
    bool was_connecting = state_ == State::kConnecting;
    state_ = State::kDraining;
    log_->debug("h2 connection {} draining: {}", id_, why);
    if (pool_ != nullptr) {
      pool_->onDraining(this);
    }
    if (was_connecting) {
      close(why);
      return;
    }
    closeIfIdle();
  }

  // Times out streams whose deadline passed; returns their handlers' count.
  void sweep(Clock::time_point now, std::vector<ResponseHandler>& expired) override {
    if (state_ == State::kClosed) {
      return;
    }
    bool any = false;
    for (Stream* s = head_; s != nullptr; s = s->next) {
      if (!s->answered && s->queued.deadline <= now) {
        s->answered = true;
        expired.push_back(std::move(s->queued.handler));
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        any = true;
      }
    }
    if (any) {
      scheduleFlush();
    }
  }

  void close(const std::string& why) override {
    if (state_ == State::kClosed) {
      return;
    }
    auto self = selfPtr();  // the pool may drop its reference in closeTransport()
    ConnectionPool* pool = closeTransport(why);
    // Streams nghttp2 already closed were answered or refused; deliver those first.
    deliverClosed(pool);
    std::vector<Queued> refused;
    std::vector<ResponseHandler> failed;
    while (head_ != nullptr) {
      Stream* s = head_;
      unlink(s);
      if (!s->answered) {
        if (!s->sent) {
          refused.push_back(std::move(s->queued));
        } else {
          failed.push_back(std::move(s->queued.handler));
        }
      }
      releaseStream(s);
    }
    active_ = 0;
    if (session_ != nullptr) {
      nghttp2_session_del(session_);
      session_ = nullptr;
    }
    if (!failed.empty() || !refused.empty()) {
      log_->debug("h2 connection {} closed with {} streams outstanding: {}", id_,
                  failed.size() + refused.size(), why);
    }
    for (auto& q : refused) {
      if (pool != nullptr) {
        pool->requeue(std::move(q));
      } else {
        failed.push_back(std::move(q.handler));
      }
    }
    for (auto& handler : failed) {
      if (pool != nullptr) {
        ++pool->stats_.transport_errors;
      }
      handler(Error::unavailable("connection lost before the response: " + why));
    }
  }

 private:
  struct Stream {
    Queued queued;
    Response response;
    size_t body_offset = 0;
    int32_t id = -1;
    uint32_t close_code = 0;
    bool sent = false;      // our HEADERS reached the write buffer
    bool answered = false;  // handler already called (timeout)
    Stream* prev = nullptr;
    Stream* next = nullptr;
  };

  // ---- nghttp2 callbacks (C ABI; user_data is the connection) ----

  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    std::string_view body = s->queued.request.bodyView();
    size_t n = std::min(length, body.size() - s->body_offset);
    std::memcpy(buf, body.data() + s->body_offset, n);
    s->body_offset += n;
    if (s->body_offset == body.size()) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) {
      return 0;
    }
    auto* s =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (s == nullptr) {
      return 0;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int status = 0;
      for (char c : v) {
        status = status * 10 + (c - '0');
      }
      s->response.status = status;
    } else {
      s->response.headers.push_back(Header{std::string(n), std::string(v), false});
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void*) {
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s != nullptr && s->response.body.size() + len <= kMaxResponseBodyBytes) {
      s->response.body.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }

  static int onFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if (frame->hd.type == NGHTTP2_HEADERS) {
      auto* s =
          static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (s != nullptr) {
        s->sent = true;
      }
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto* c = static_cast<H2Connection*>(user_data);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          c->settings_changed_ = true;
        }
        break;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
          c->ping_outstanding_ = false;
        }
        break;
      case NGHTTP2_GOAWAY:
        c->goaway_ = true;
        c->goaway_debug_.assign(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                                frame->goaway.opaque_data_len);
        c->goaway_error_ = frame->goaway.error_code;
        break;
      default:
        break;
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    auto* c = static_cast<H2Connection*>(user_data);
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s == nullptr) {
      return 0;
    }
    nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
    s->close_code = error_code;
    c->unlink(s);
    --c->active_;
    c->closed_.push_back(s);
    return 0;
  }

  // ---- I/O ----

  void onEstablished(std::string_view alpn) override {
    if (!alpn.empty() && alpn != "h2") {
      if (protocol_ == ConnectionPool::Protocol::kNegotiate && pool_ != nullptr) {
        handOverToHttp1();
        return;
      }
      close("server selected ALPN '" + std::string(alpn) + "', not h2");
      return;
    }
    if (alpn.empty() && protocol_ == ConnectionPool::Protocol::kNegotiate && pool_ != nullptr) {
      // A server that ignores ALPN speaks HTTP/1.1 (RFC 7540 3.3 requires ALPN for h2 over TLS).
      handOverToHttp1();
      return;
    }
    if (!createSession()) {
      close("cannot create the HTTP/2 session");
      return;
    }
    last_recv_ = Clock::now();
    flush();
    doRead();
  }

  // kNegotiate and the server did not pick h2: an HTTP/1.1 connection with the same id takes
  // over the TLS stream; this object ends without counting as a failure.
  void handOverToHttp1() {
    ConnectionPool* pool = pool_;
    pool_ = nullptr;
    state_ = State::kClosed;
    timer_.cancel();
    auto replacement = makeHttp1Connection(pool, id_, std::move(stream_));
    stream_ = std::make_unique<TlsStream>(ioc_, *tls_);  // keeps close() and the destructor simple
    pool->replace(this, replacement);
    replacement->start();
  }

  bool createSession() {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) {
      return false;
    }
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &H2Connection::onHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                              &H2Connection::onDataChunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &H2Connection::onFrameSend);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &H2Connection::onFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &H2Connection::onStreamClose);
    int rv = nghttp2_session_client_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) {
      session_ = nullptr;
      return false;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindowBytes},
    };
    if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) {
      return false;
    }
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kLocalWindowBytes);
    return true;
  }

  void doRead() {
    auto self = selfPtr();
    stream_->async_read_some(asio::buffer(read_buf_), [self](boost::system::error_code ec,
                                                             size_t n) { self->onRead(ec, n); });
  }

  void onRead(boost::system::error_code ec, size_t n) {
    if (state_ == State::kClosed) {
      return;
    }
    if (ec) {
      close(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                ? std::string("connection closed by the server")
                : "read: " + ec.message());
      return;
    }
    last_recv_ = Clock::now();
    ssize_t rv = nghttp2_session_mem_recv(session_, read_buf_.data(), n);
    if (rv < 0) {
      close(std::string("HTTP/2 protocol error: ") + nghttp2_strerror(static_cast<int>(rv)));
      return;
    }
    afterFrames();
    if (state_ == State::kClosed) {
      return;
    }
    flush();
    if (state_ == State::kClosed) {
      return;
    }
    doRead();
  }

  // Acts on what the callbacks recorded during mem_recv/mem_send (never from inside them).
  void afterFrames() {
    if (settings_changed_) {
      settings_changed_ = false;
      if (state_ == State::kConnecting) {
        state_ = State::kReady;
        ready_once_ = true;
        ready_at_ = Clock::now();
        timer_.cancel();
        armPing();
        if (pool_ != nullptr) {
          pool_->onReady(this);
        }
      }
    }
    if (goaway_ && !goaway_handled_) {
      goaway_handled_ = true;
      if (pool_ != nullptr) {
        ++pool_->stats_.goaways;
      }
      log_->info("h2 connection {} got GOAWAY (error {}, debug '{}')", id_, goaway_error_,
                 goaway_debug_);
      startDraining("GOAWAY");
    }
    deliverClosed(pool_);
    if (state_ == State::kClosed) {
      return;
    }
    if (pool_ != nullptr) {
      pool_->onCapacity();
    }
    closeIfIdle();
  }

  void closeIfIdle() {
    if (state_ == State::kClosed || session_ == nullptr) {
      return;
    }
    if (state_ == State::kDraining && active_ == 0 && !writing_) {
      graceful_ = true;
      close("drained");
      return;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) &&
        !writing_) {
      close("HTTP/2 session finished");
    }
  }

  void deliverClosed(ConnectionPool* pool) {
    if (closed_.empty()) {
      return;
    }
    std::vector<Stream*> done;
    done.swap(closed_);
    for (Stream* s : done) {
      if (!s->answered) {
        if (s->close_code == NGHTTP2_NO_ERROR && s->response.status != 0) {
          s->response.connection_id = id_;
          s->queued.handler(std::move(s->response));
        } else if (s->response.status == 0 &&
                   (s->close_code == NGHTTP2_REFUSED_STREAM || !s->sent) && pool != nullptr) {
          ++pool->stats_.resubmitted;
          pool->requeue(std::move(s->queued));
        } else {
          if (pool != nullptr) {
            ++pool->stats_.transport_errors;
          }
          s->queued.handler(Error::unavailable(
              std::string("stream reset: ") +
              nghttp2_http2_strerror(s->close_code == 0
                                         ? static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR)
                                         : s->close_code)));
        }
      }
      releaseStream(s);
    }
  }

  void scheduleFlush() {
    if (flush_scheduled_ || writing_ || state_ == State::kClosed) {
      return;
    }
    flush_scheduled_ = true;
    auto self = selfPtr();
    asio::post(ioc_, [self] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  void flush() {
    if (writing_ || session_ == nullptr || state_ == State::kClosed) {
      return;
    }
    while (out_buf_.size() < kMaxWriteBatchBytes) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(std::string("HTTP/2 send error: ") + nghttp2_strerror(static_cast<int>(n)));
        return;
      }
      if (n == 0) {
        break;
      }
      out_buf_.insert(out_buf_.end(), data, data + n);
    }
    // Streams can close while sending (RST_STREAM, refused HEADERS).
    if (!closed_.empty()) {
      deliverClosed(pool_);
      if (state_ == State::kClosed) {
        return;
      }
      if (pool_ != nullptr) {
        pool_->onCapacity();
      }
      if (state_ == State::kClosed) {
        return;
      }
    }
    if (out_buf_.empty()) {
      closeIfIdle();
      return;
    }
    writing_ = true;
    write_buf_.swap(out_buf_);
    auto self = selfPtr();
    asio::async_write(*stream_, asio::buffer(write_buf_),
                      [self](boost::system::error_code ec, size_t) {
                        self->writing_ = false;
                        self->write_buf_.clear();
                        if (self->state_ == State::kClosed) {
                          return;
                        }
                        if (ec) {
                          self->close("write: " + ec.message());
                          return;
                        }
                        self->flush();
                      });
  }

  void armPing() {
    auto self = selfPtr();
    timer_.expires_after(ping_interval_);
    timer_.async_wait([self](boost::system::error_code ec) {
      if (ec || self->state_ == State::kClosed) {
        return;
      }
      self->onPingTimer();
    });
  }

  void onPingTimer() {
    if (ping_outstanding_) {
      close("no PING ACK within " + std::to_string(ping_interval_.count()) + " s");
      return;
    }
    if (Clock::now() - last_recv_ >= ping_interval_) {
      nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
      ping_outstanding_ = true;
      flush();
      if (state_ == State::kClosed) {
        return;
      }
    }
    armPing();
  }

  std::shared_ptr<H2Connection> selfPtr() {
    return std::static_pointer_cast<H2Connection>(shared_from_this());
  }

  // ---- stream bookkeeping ----

  Stream* acquireStream() {
    if (free_.empty()) {
      return new Stream();
    }
    Stream* s = free_.back().release();
    free_.pop_back();
    return s;
  }

  void releaseStream(Stream* s) {
    if (free_.size() >= kMaxFreeStreams) {
      delete s;
      return;
    }
    s->queued = Queued{};
    s->response.status = 0;
    s->response.headers.clear();
    s->response.body.clear();
    s->response.connection_id = 0;
    s->body_offset = 0;
    s->id = -1;
    s->close_code = 0;
    s->sent = false;
    s->answered = false;
    s->prev = s->next = nullptr;
    free_.emplace_back(s);
  }

  void releaseAll() {
    while (head_ != nullptr) {
      Stream* s = head_;
      unlink(s);
      delete s;
    }
    for (Stream* s : closed_) {
      delete s;
    }
    closed_.clear();
  }

  void link(Stream* s) {
    s->prev = tail_;
    s->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = s;
    } else {
      head_ = s;
    }
    tail_ = s;
  }

  void unlink(Stream* s) {
    if (s->prev != nullptr) {
      s->prev->next = s->next;
    } else {
      head_ = s->next;
    }
    if (s->next != nullptr) {
      s->next->prev = s->prev;
    } else {
      tail_ = s->prev;
    }
    s->prev = s->next = nullptr;
  }

  const std::chrono::seconds ping_interval_;
  nghttp2_session* session_ = nullptr;
  Clock::time_point last_recv_{};
  bool ping_outstanding_ = false;
  bool settings_changed_ = false;
  bool goaway_ = false;
  bool goaway_handled_ = false;
  uint32_t goaway_error_ = 0;
  std::string goaway_debug_;
  Stream* head_ = nullptr;
  Stream* tail_ = nullptr;
  std::vector<Stream*> closed_;
  std::vector<std::unique_ptr<Stream>> free_;
  std::vector<nghttp2_nv> nv_;
  std::array<uint8_t, kReadBufferBytes> read_buf_;
  std::vector<uint8_t> out_buf_;
  std::vector<uint8_t> write_buf_;
  bool writing_ = false;
  bool flush_scheduled_ = false;
};

std::shared_ptr<PoolConnection> makeH2Connection(ConnectionPool* pool, uint64_t id) {
  return std::make_shared<H2Connection>(pool, id);
}

}  // namespace pushhub::providers::detail
