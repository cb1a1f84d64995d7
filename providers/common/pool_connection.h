#pragma once
// Internal to ConnectionPool (not for providers): the per-connection interface the pool places
// requests on, and the connect phase both connection kinds share (resolve, TCP, TLS handshake
// with SNI, host name verification and the pool's ALPN list).
//
// A connection is owned by the pool's vector and by its own pending async operations
// (shared_from_this), so it outlives the pool's reference while a handler is queued. Once
// closed it never touches the pool again (pool_ is cleared).
//
// Threading: the pool's io_context thread only, like the pool.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "providers/common/connection_pool.h"

namespace pushhub::providers::detail {

using Clock = std::chrono::steady_clock;
using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// Largest response body kept (bigger bodies are truncated for HTTP/2, fail for HTTP/1.1).
constexpr size_t kMaxResponseBodyBytes = 1024 * 1024;

class PoolConnection : public std::enable_shared_from_this<PoolConnection> {
 public:
  enum class State { kConnecting, kReady, kDraining, kClosed };

  // `established`: a stream that already finished its TLS handshake (kNegotiate hand-over);
  // null = start() connects.
  PoolConnection(ConnectionPool* pool, uint64_t id, std::unique_ptr<TlsStream> established);
  virtual ~PoolConnection() = default;
  PoolConnection(const PoolConnection&) = delete;
  PoolConnection& operator=(const PoolConnection&) = delete;

  uint64_t id() const { return id_; }
  State state() const { return state_; }
  size_t active() const { return active_; }  // requests open on this connection
  Clock::time_point readyAt() const { return ready_at_; }
  virtual bool isHttp1() const = 0;

  // Requests this connection can take now; 0 unless ready. Called for every submit.
  virtual size_t freeCapacity() const = 0;
  // Precondition: freeCapacity() > 0.
  virtual void submit(Queued&& queued) = 0;
  // Takes no new requests, finishes the open ones, then closes. Idempotent.
  virtual void startDraining(const std::string& why) = 0;
  // Moves the handlers of requests whose deadline passed into `expired` (the pool calls them).
  virtual void sweep(Clock::time_point now, std::vector<ResponseHandler>& expired) = 0;
  // Closes now: open requests are requeued (never sent) or failed (sent). Idempotent.
  virtual void close(const std::string& why) = 0;

  // Connects (or, for an established stream, continues at once) and calls onEstablished().
  void start();

 protected:
  // After the TLS handshake; `alpn` is the protocol the server selected ("" if none).
  virtual void onEstablished(std::string_view alpn) = 0;
  std::string endpoint() const { return host_ + ":" + std::to_string(port_); }
  // The first half of every close(): marks the connection closed, stops its timer and resolver,
  // closes the socket and tells the pool. Returns the pool it belonged to (nullptr if none), to
  // which the caller hands back its open requests. Keep a reference to this connection across
  // the call: the pool may drop its own. Precondition: not closed yet.
  ConnectionPool* closeTransport(const std::string& why);

  ConnectionPool* pool_;
  const uint64_t id_;
  boost::asio::io_context& ioc_;
  const std::string host_;
  const uint16_t port_;
  const std::string authority_;  // host name for SNI and certificate checks
  // What goes in :authority (h2) and Host (HTTP/1.1): the host, with the port unless it is 443,
  // as RFC 9110 asks; servers (and pns-mock's audience check) rebuild URLs from it.
  const std::string host_header_;
  const ConnectionPool::Protocol protocol_;
  const std::chrono::milliseconds connect_timeout_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<spdlog::logger> log_;
  const bool established_;  // handed over already connected
  boost::asio::ip::tcp::resolver resolver_;
  std::unique_ptr<TlsStream> stream_;
  boost::asio::steady_timer timer_;  // connect timeout, then the kind's own timer
  State state_ = State::kConnecting;
  bool ready_once_ = false;
  bool graceful_ = false;  // closing because draining finished, not because of an error
  Clock::time_point ready_at_{};
  size_t active_ = 0;

 private:
  void onConnected(boost::system::error_code ec);
  void onHandshake(boost::system::error_code ec);
};

std::shared_ptr<PoolConnection> makeH2Connection(ConnectionPool* pool, uint64_t id);
std::shared_ptr<PoolConnection> makeHttp1Connection(ConnectionPool* pool, uint64_t id,
                                                    std::unique_ptr<TlsStream> established);

}  // namespace pushhub::providers::detail
