#pragma once
// ConnectionPool: HTTP/2 or HTTP/1.1 keep-alive over TLS to one provider endpoint (host:port).
// The pool owns connections of two kinds behind one interface (detail::PoolConnection) and
// places each request on the connection with free capacity and the fewest requests open.
//
// Protocol (Options::protocol):
// - kH2 (default): ALPN "h2" only; every connection is HTTP/2 (APNs, FCM).
// - kHttp1: ALPN "http/1.1" only; every connection is HTTP/1.1 keep-alive.
// - kNegotiate: ALPN "h2","http/1.1"; a connection is HTTP/2 when the server picks h2 and
//   HTTP/1.1 otherwise (also when the server ignores ALPN). WNS documents HTTP/1.1.
// The pool sets this ALPN list on every connection itself, so the TLS context's own list does
// not matter (tls.h's AlpnOffer makes a matching one for clarity).
//
// HTTP/2 (nghttp2 driven by Asio): nghttp2 owns no socket; each connection pumps bytes between
// its TLS stream and its nghttp2 session, coalescing many frames per write.
//
// - Streams per connection are gated on the LIVE peer SETTINGS_MAX_CONCURRENT_STREAMS (re-read
//   on every SETTINGS frame; APNs drops it to 1 and raises it again at will). Requests beyond
//   the capacity of every ready connection wait in a FIFO queue (bounded by max_pending).
// - Connection states: connecting (TCP + TLS + waiting for the server's first SETTINGS),
//   ready, draining (after GOAWAY or recycle(): no new streams, closes when idle).
// - GOAWAY: streams above last_stream_id and streams refused with RST_STREAM(REFUSED_STREAM)
//   were not processed by the server and are resubmitted transparently (up to a small bound).
//   A connection lost while streams are outstanding fails those streams (the server may have
//   processed them; the caller's retry policy decides).
// - Reconnects while there is queued work, with exponential backoff (100 ms doubling to 10 s)
//   after failed attempts; when a connect attempt fails and no connection is usable, queued
//   requests fail at once rather than waiting out their timeout.
// - PING after ping_interval without any frame from the server; closed if no ACK follows within
//   another interval. Per-request timeout from submit() (covers queueing and the stream).
// - kH2 opens all `connections` as soon as there is traffic (as before). kHttp1 and kNegotiate
//   open one connection per waiting request, up to `connections` (so a kNegotiate pool whose
//   server picks h2 usually stays at one connection).
//
// HTTP/1.1 (Boost.Beast): one request at a time per connection (no pipelining: POST is not
// idempotent), Content-Length always, never `Expect: 100-continue`, at most `connections`
// connections, opened only while requests wait. A response with `Connection: close` (or
// HTTP/1.0 without keep-alive) closes the connection after it; a connection idle for
// `idle_timeout` is closed by us (servers close idle connections too, and a request racing the
// server's close would fail). A request whose bytes were not all written is requeued; one that
// was written and then lost its connection fails (the server may have processed it). A timed
// out request closes its connection (HTTP/1.1 cannot cancel a request otherwise). Reconnects use
// the same backoff as HTTP/2.
//
// Threading: a pool lives on one io_context run by one thread (a worker); every member function
// must be called from that thread (inside its handlers). Handlers are always invoked on that
// thread, never from inside submit() itself.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "providers/common/http_message.h"
#include "providers/common/tls.h"

namespace spdlog {
class logger;
}

namespace pushhub::providers {

// Gets the response, or an Error (kUnavailable) on a transport failure: connect failure,
// connection lost with the request unanswered, stream reset, timeout, queue full, shutdown.
using ResponseHandler = std::function<void(Result<Response>)>;

class ConnectionPool;

namespace detail {
class PoolConnection;
class H2Connection;
class Http1Connection;

// A request waiting in the pool or open on a connection.
struct Queued {
  Request request;
  ResponseHandler handler;
  std::chrono::steady_clock::time_point deadline;
  uint32_t attempts = 0;
};
}  // namespace detail

class ConnectionPool {
 public:
  struct Options {
    enum class Protocol { kH2, kHttp1, kNegotiate };
    Protocol protocol = Protocol::kH2;
    std::string host;
    uint16_t port = 443;
    std::string authority;  // :authority and TLS SNI / verified host name; empty = host
    std::shared_ptr<boost::asio::ssl::context> tls;  // from makeTlsClientContext(.., true)
    size_t connections = 1;
    size_t max_pending = 100000;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{30000};
    std::chrono::seconds ping_interval{15};  // HTTP/2 only
    std::chrono::seconds idle_timeout{50};   // HTTP/1.1 only: close a connection idle this long
  };
  using Protocol = Options::Protocol;

  // Options for `connections` (0 = 1) connections to host:port over TLS verified against
  // `ca_file` (empty = the system trust store), offering `alpn`; the rest keep their defaults.
  static Result<Options> overTls(const std::string& ca_file, AlpnOffer alpn, std::string host,
                                 uint16_t port, size_t connections);

  // Counters for tests and metrics; read on the pool's thread.
  struct Stats {
    uint64_t connects = 0;          // connections that reached ready
    uint64_t http1_connects = 0;    // of those, how many speak HTTP/1.1
    uint64_t connect_failures = 0;  // attempts that closed before ready
    uint64_t goaways = 0;
    uint64_t resubmitted = 0;  // refused streams (GOAWAY / REFUSED_STREAM / unsent) requeued
    uint64_t timeouts = 0;
    uint64_t transport_errors = 0;  // handlers that got an error for any reason
  };

  ConnectionPool(boost::asio::io_context& ioc, Options options);
  // Calls shutdown(): outstanding handlers get an error before the destructor returns.
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Sends `request`; `handler` is called exactly once. Queues when every ready connection is
  // at the server's SETTINGS_MAX_CONCURRENT_STREAMS; fails fast when the queue holds
  // max_pending requests or the pool is shut down.
  void submit(Request request, ResponseHandler handler);

  // Drains the connection that carried a response (Response::connection_id): it takes no new
  // streams, finishes its streams and closes; a fresh connection replaces it. Idempotent.
  void recycle(uint64_t connection_id);

  size_t inFlight() const;  // streams open on all connections (including draining ones)
  size_t pending() const;   // requests waiting for stream capacity
  size_t readyConnections() const;
  const Stats& stats() const { return stats_; }
  const Options& options() const { return options_; }

  // Fails queued and in-flight requests with an error and closes every connection. The pool
  // accepts nothing afterwards (submit() fails).
  void shutdown();

 private:
  friend class detail::PoolConnection;
  friend class detail::H2Connection;
  friend class detail::Http1Connection;
  using Queued = detail::Queued;

  detail::PoolConnection* pickConnection();
  void dispatchPending();
  void ensureConnections();
  void armSweep();
  void sweep();
  void fail(Queued& queued, const std::string& why);
  void failAllPending(const std::string& why);

  // Callbacks from connections.
  void onReady(detail::PoolConnection* connection);
  void onCapacity();
  void onDraining(detail::PoolConnection* connection);
  void onClosed(detail::PoolConnection* connection, bool was_ready, bool was_live, bool graceful,
                const std::string& why);
  void requeue(Queued&& queued);
  // kNegotiate: `replacement` (HTTP/1.1, same id, already connected) takes over from `from`,
  // whose server did not pick h2.
  void replace(detail::PoolConnection* from, std::shared_ptr<detail::PoolConnection> replacement);

  boost::asio::io_context& ioc_;
  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::shared_ptr<detail::PoolConnection>> connections_;
  std::deque<Queued> pending_;
  size_t live_ = 0;  // connecting + ready connections (not draining)
  uint64_t next_connection_id_ = 1;
  bool shut_down_ = false;
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  boost::asio::steady_timer reconnect_timer_;
  bool reconnect_armed_ = false;
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_connect_at_{};
  std::shared_ptr<bool> alive_;  // timer handlers hold a weak_ptr: the pool may be gone
  Stats stats_;
};

}  // namespace pushhub::providers
