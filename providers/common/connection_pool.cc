#include "providers/common/connection_pool.h"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "base/log.h"
#include "providers/common/pool_connection.h"

namespace pushhub::providers {

using detail::PoolConnection;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {
constexpr uint32_t kMaxResubmits = 5;
constexpr std::chrono::milliseconds kInitialBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{10000};
}  // namespace

Result<ConnectionPool::Options> ConnectionPool::overTls(const std::string& ca_file, AlpnOffer alpn,
                                                        std::string host, uint16_t port,
                                                        size_t connections) {
  auto tls = makeTlsClientContext(ca_file, alpn);
  if (!tls) {
    return tls.error();
  }
  Options o;
  o.host = std::move(host);
  o.port = port;
  o.tls = std::move(tls).value();
  o.connections = connections == 0 ? 1 : connections;
  return o;
}

ConnectionPool::ConnectionPool(asio::io_context& ioc, Options options)
    : ioc_(ioc),
      options_(std::move(options)),
      log_(log::get(options_.protocol == Protocol::kH2 ? "h2" : "http")),
      sweep_timer_(ioc),
      reconnect_timer_(ioc),
      alive_(std::make_shared<bool>(true)) {
  if (options_.connections == 0) {
    options_.connections = 1;
  }
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::submit(Request request, ResponseHandler handler) {
  if (shut_down_) {
    ++stats_.transport_errors;
    asio::post(ioc_, [h = std::move(handler)] { h(Error::unavailable("pool is shut down")); });
    return;
  }
  Queued q{std::move(request), std::move(handler), Clock::now() + options_.request_timeout, 0};
  if (pending_.empty()) {
    if (PoolConnection* c = pickConnection()) {
      c->submit(std::move(q));
      armSweep();
      // HTTP/2 opens every connection up front; HTTP/1.1 only for requests that wait.
      if (live_ < options_.connections && options_.protocol == Protocol::kH2) {
        ensureConnections();
      }
      return;
    }
  }
  if (pending_.size() >= options_.max_pending) {
    ++stats_.transport_errors;
    asio::post(ioc_, [h = std::move(q.handler), n = options_.max_pending] {
      h(Error::unavailable("pool queue full (" + std::to_string(n) + " requests pending)"));
    });
    return;
  }
  pending_.push_back(std::move(q));
  armSweep();
  ensureConnections();
}

void ConnectionPool::recycle(uint64_t connection_id) {
  for (auto& c : connections_) {
    if (c->id() == connection_id) {
      c->startDraining("recycled");
      return;
    }
  }
}

size_t ConnectionPool::inFlight() const {
  size_t n = 0;
  for (const auto& c : connections_) {
    n += c->active();
  }
  return n;
}

size_t ConnectionPool::pending() const { return pending_.size(); }

size_t ConnectionPool::readyConnections() const {
  return static_cast<size_t>(std::count_if(connections_.begin(), connections_.end(), [](auto& c) {
    return c->state() == PoolConnection::State::kReady;
  }));
}

void ConnectionPool::shutdown() {
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  sweep_timer_.cancel();
  reconnect_timer_.cancel();
  failAllPending("pool shut down");
  auto connections = connections_;
  for (auto& c : connections) {
    c->close("pool shut down");
  }
  connections_.clear();
  live_ = 0;
}

PoolConnection* ConnectionPool::pickConnection() {
  PoolConnection* best = nullptr;
  for (auto& c : connections_) {
    if (c->freeCapacity() > 0 && (best == nullptr || c->active() < best->active())) {
      best = c.get();
    }
  }
  return best;
}

void ConnectionPool::dispatchPending() {
  while (!pending_.empty() && !shut_down_) {
    PoolConnection* c = pickConnection();
    if (c == nullptr) {
      break;
    }
    Queued q = std::move(pending_.front());
    pending_.pop_front();
    c->submit(std::move(q));
  }
}

void ConnectionPool::ensureConnections() {
  if (shut_down_ || live_ >= options_.connections) {
    return;
  }
  auto now = Clock::now();
  if (now < next_connect_at_) {
    if (!reconnect_armed_) {
      reconnect_armed_ = true;
      reconnect_timer_.expires_at(next_connect_at_);
      std::weak_ptr<bool> alive = alive_;
      reconnect_timer_.async_wait([this, alive](boost::system::error_code ec) {
        if (ec || alive.expired()) {
          return;
        }
        reconnect_armed_ = false;
        if (!pending_.empty()) {
          ensureConnections();
        }
      });
    }
    return;
  }
  size_t wanted = options_.connections - live_;
  if (options_.protocol != Protocol::kH2) {
    // One new connection per waiting request not already covered by one being set up (an
    // HTTP/1.1 connection carries one request at a time).
    size_t connecting =
        static_cast<size_t>(std::count_if(connections_.begin(), connections_.end(), [](auto& c) {
          return c->state() == PoolConnection::State::kConnecting;
        }));
    wanted = std::min(wanted, pending_.size() > connecting ? pending_.size() - connecting : 0);
  }
  for (size_t i = 0; i < wanted; ++i) {
    auto c = options_.protocol == Protocol::kHttp1
                 ? detail::makeHttp1Connection(this, next_connection_id_++, nullptr)
                 : detail::makeH2Connection(this, next_connection_id_++);
    connections_.push_back(c);
    ++live_;
    c->start();
  }
}

void ConnectionPool::armSweep() {
  if (sweep_armed_ || shut_down_) {
    return;
  }
  sweep_armed_ = true;
  auto period = std::clamp<std::chrono::milliseconds>(
      options_.request_timeout / 4, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
  sweep_timer_.expires_after(period);
  std::weak_ptr<bool> alive = alive_;
  sweep_timer_.async_wait([this, alive](boost::system::error_code ec) {
    if (ec || alive.expired()) {
      return;
    }
    sweep_armed_ = false;
    sweep();
  });
}

void ConnectionPool::sweep() {
  auto now = Clock::now();
  std::vector<ResponseHandler> expired;
  auto connections = connections_;
  for (auto& c : connections) {
    c->sweep(now, expired);
  }
  while (!pending_.empty() && pending_.front().deadline <= now) {
    expired.push_back(std::move(pending_.front().handler));
    pending_.pop_front();
  }
  std::weak_ptr<bool> alive = alive_;
  for (auto& handler : expired) {
    if (!alive.expired()) {
      ++stats_.timeouts;
      ++stats_.transport_errors;
    }
    handler(Error::unavailable("request timed out after " +
                               std::to_string(options_.request_timeout.count()) + " ms"));
  }
  if (!alive.expired() && (inFlight() > 0 || !pending_.empty())) {
    armSweep();
  }
}

void ConnectionPool::fail(Queued& queued, const std::string& why) {
  ++stats_.transport_errors;
  queued.handler(Error::unavailable(why));
}

void ConnectionPool::failAllPending(const std::string& why) {
  std::deque<Queued> failed;
  failed.swap(pending_);
  for (auto& q : failed) {
    fail(q, why);
  }
}

void ConnectionPool::onReady(PoolConnection* connection) {
  ++stats_.connects;
  if (connection->isHttp1()) {
    ++stats_.http1_connects;
  }
  backoff_ = std::chrono::milliseconds(0);
  dispatchPending();
}

void ConnectionPool::onCapacity() { dispatchPending(); }

void ConnectionPool::onDraining(PoolConnection*) {
  --live_;
  if (!pending_.empty()) {
    ensureConnections();
  }
}

void ConnectionPool::onClosed(PoolConnection* connection, bool was_ready, bool was_live,
                              bool graceful, const std::string& why) {
  std::shared_ptr<PoolConnection> keep;
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [connection](auto& c) { return c.get() == connection; });
  if (it != connections_.end()) {
    keep = *it;
    connections_.erase(it);
  }
  if (was_live) {
    --live_;
  }
  if (shut_down_) {
    return;
  }
  auto now = Clock::now();
  // A connection that dies right after becoming ready counts as a failed attempt, so a server
  // that accepts and hangs up cannot make us spin.
  bool failed_attempt =
      !was_ready || (!graceful && now - connection->readyAt() < std::chrono::seconds(1));
  if (failed_attempt) {
    if (!was_ready) {
      ++stats_.connect_failures;
    }
    backoff_ = backoff_.count() == 0 ? kInitialBackoff : std::min(backoff_ * 2, kMaxBackoff);
    next_connect_at_ = now + backoff_;
    log_->warn("connection to {}:{} failed: {} (next attempt in {} ms)", options_.host,
               options_.port, why, backoff_.count());
  } else if (graceful && connection->isHttp1()) {
    // Routine for HTTP/1.1 (Connection: close, idle timeout): not worth an info line each.
    log_->debug("connection {} to {}:{} closed: {}", connection->id(), options_.host, options_.port,
                why);
  } else {
    log_->info("connection {} to {}:{} closed: {}", connection->id(), options_.host, options_.port,
               why);
  }
  if (!was_ready && readyConnections() == 0) {
    bool connecting = std::any_of(connections_.begin(), connections_.end(), [](auto& c) {
      return c->state() == PoolConnection::State::kConnecting;
    });
    if (!connecting) {
      failAllPending("cannot connect to " + options_.host + ":" + std::to_string(options_.port) +
                     ": " + why);
    }
  }
  if (!pending_.empty()) {
    ensureConnections();
  }
}

void ConnectionPool::replace(PoolConnection* from, std::shared_ptr<PoolConnection> replacement) {
  for (auto& c : connections_) {
    if (c.get() == from) {
      c = std::move(replacement);
      return;
    }
  }
}

void ConnectionPool::requeue(Queued&& queued) {
  if (shut_down_) {
    fail(queued, "pool shut down");
    return;
  }
  if (++queued.attempts > kMaxResubmits) {
    fail(queued, "request refused by the server " + std::to_string(kMaxResubmits) + " times");
    return;
  }
  pending_.push_front(std::move(queued));
  dispatchPending();
  if (!pending_.empty()) {
    ensureConnections();
  }
}

}  // namespace pushhub::providers
