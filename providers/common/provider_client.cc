#include "providers/common/provider_client.h"

#include <boost/asio/post.hpp>

#include <cassert>

#include "base/log.h"

namespace pushhub::providers {

namespace {
constexpr uint16_t kDefaultHttpsPort = 443;
}  // namespace

struct ProviderClient::Send {
  Target target;
  std::shared_ptr<const Notification> notification;
  Done done;
  bool auth_retried = false;
  bool provider_ready = false;  // whenReady() just said so: encode without asking ready() again
  uint64_t credential_generation = 0;
};

ProviderClient::ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                               ConnectionPool::Options pool_options)
    : ProviderClient(ioc, std::move(provider), std::move(pool_options), HostPoolOptions{}) {}

ProviderClient::ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                               ConnectionPool::Options pool_options, HostPoolOptions host_pools)
    : ioc_(ioc),
      provider_(std::move(provider)),
      pool_options_(pool_options),
      host_options_(host_pools),
      pool_(ioc, std::move(pool_options)),
      idle_timer_(ioc),
      alive_(std::make_shared<bool>(true)) {}

ProviderClient::~ProviderClient() {
  idle_timer_.cancel();
  // Shut down while every member is still alive: failed handlers call back into this object.
  for (auto& [key, entry] : host_pools_) {
    entry.pool->shutdown();
  }
  pool_.shutdown();
  std::vector<std::shared_ptr<Send>> waiting;
  waiting.swap(waiting_);
  for (auto& send : waiting) {
    Outcome outcome;
    outcome.kind = OutcomeKind::kRetryBackoff;
    outcome.reason = "provider client shut down";
    outcome.azure_outcome = "PnsUnreachable";
    finish(std::move(send), std::move(outcome), false);
  }
  alive_.reset();
  host_pools_.clear();
}

void ProviderClient::send(Target target, std::shared_ptr<const Notification> notification,
                          Done done) {
  assert(notification != nullptr);
  ++in_flight_;
  start(std::make_shared<Send>(
      Send{std::move(target), std::move(notification), std::move(done), false, false, 0}));
}

size_t ProviderClient::openConnections() const {
  size_t open = pool_.readyConnections();
  for (const auto& [key, host] : host_pools_) open += host.pool->readyConnections();
  return open;
}

ConnectionPool* ProviderClient::hostPool(const std::string& host, uint16_t port) {
  auto it = host_pools_.find(host + ":" + std::to_string(port == 0 ? kDefaultHttpsPort : port));
  return it == host_pools_.end() ? nullptr : it->second.pool.get();
}

void ProviderClient::start(std::shared_ptr<Send> send) {
  if (!send->provider_ready && !provider_->ready()) {
    waitForProvider(std::move(send));
    return;
  }
  send->provider_ready = false;
  Result<Request> request = provider_->encode(send->target, send->notification);
  if (!request) {
    // Unavailable means a credential vanished between ready() and encode() (another worker
    // invalidated it): worth a retry. Anything else is this payload or handle, for good.
    bool transient = request.error().code == Error::Code::kUnavailable;
    Outcome outcome;
    outcome.kind = transient ? OutcomeKind::kRetryBackoff : OutcomeKind::kPermanentBadRequest;
    outcome.reason = request.error().message;
    outcome.azure_outcome = transient ? "PnsUnreachable" : "InvalidNotificationFormat";
    finish(std::move(send), std::move(outcome), true);
    return;
  }
  send->credential_generation = request->credential_generation;
  HostPool* entry = nullptr;
  ConnectionPool* pool = poolFor(*request, &entry);
  if (pool == nullptr) {
    Outcome outcome;
    outcome.kind = OutcomeKind::kRetryBackoff;
    outcome.reason = "too many provider hosts: " + std::to_string(host_options_.max_host_pools) +
                     " connection pools busy";
    outcome.azure_outcome = "PnsUnreachable";
    finish(std::move(send), std::move(outcome), true);
    return;
  }
  if (entry == nullptr) {
    pool->submit(std::move(request).value(),
                 [this, send = std::move(send), pool](Result<Response> response) mutable {
                   onResponse(std::move(send), std::move(response), pool);
                 });
    return;
  }
  ++entry->outstanding;
  entry->last_used = std::chrono::steady_clock::now();
  // unordered_map nodes are stable and an entry with outstanding requests is never erased.
  pool->submit(std::move(request).value(),
               [this, send = std::move(send), entry, pool](Result<Response> response) mutable {
                 --entry->outstanding;
                 entry->last_used = std::chrono::steady_clock::now();
                 onResponse(std::move(send), std::move(response), pool);
               });
}

void ProviderClient::waitForProvider(std::shared_ptr<Send> send) {
  waiting_.push_back(std::move(send));
  if (whenready_outstanding_) {
    return;
  }
  whenready_outstanding_ = true;
  std::weak_ptr<bool> alive = alive_;
  provider_->whenReady(ioc_.get_executor(), [this, alive](Result<void> ready) {
    if (alive.expired()) {
      return;
    }
    onProviderReady(std::move(ready));
  });
}

void ProviderClient::onProviderReady(Result<void> ready) {
  whenready_outstanding_ = false;
  std::vector<std::shared_ptr<Send>> waiting;
  waiting.swap(waiting_);
  for (auto& send : waiting) {
    if (ready) {
      send->provider_ready = true;
      start(std::move(send));
      continue;
    }
    Outcome outcome;
    const Error& error = ready.error();
    if (error.code == Error::Code::kUnauthenticated ||
        error.code == Error::Code::kPermissionDenied) {
      outcome.kind = OutcomeKind::kConfigError;
      outcome.azure_outcome = "InvalidCredentials";
    } else {
      outcome.kind = OutcomeKind::kRetryBackoff;
      outcome.azure_outcome = "PnsUnreachable";
    }
    outcome.reason = error.message;
    finish(std::move(send), std::move(outcome), false);
  }
}

void ProviderClient::onResponse(std::shared_ptr<Send> send, Result<Response> response,
                                ConnectionPool* pool) {
  if (!response) {
    Outcome outcome;
    outcome.kind = OutcomeKind::kRetryBackoff;
    outcome.reason = response.error().message;
    outcome.azure_outcome = "PnsUnreachable";
    finish(std::move(send), std::move(outcome), false);
    return;
  }
  response->credential_generation = send->credential_generation;
  Outcome outcome = provider_->classify(*response);
  if (outcome.recycle_connection) {
    // Connection ids are per pool. A retired host pool is still alive here (its destruction
    // is posted), so `pool` is valid.
    pool->recycle(response->connection_id);
  }
  if (outcome.kind == OutcomeKind::kRefreshAuth) {
    provider_->onAuthRejected(*response);
    if (!send->auth_retried) {
      send->auth_retried = true;
      start(std::move(send));
      return;
    }
  }
  finish(std::move(send), std::move(outcome), false);
}

void ProviderClient::finish(std::shared_ptr<Send> send, Outcome outcome, bool post) {
  if (!post) {
    --in_flight_;
    send->done(std::move(outcome));
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(ioc_,
                    [this, alive, send = std::move(send), outcome = std::move(outcome)]() mutable {
                      if (!alive.expired()) {
                        --in_flight_;
                      }
                      send->done(std::move(outcome));
                    });
}

ConnectionPool* ProviderClient::poolFor(const Request& request, HostPool** entry) {
  *entry = nullptr;
  if (request.host.empty()) {
    return &pool_;
  }
  uint16_t port = request.port == 0 ? kDefaultHttpsPort : request.port;
  if (request.host == pool_options_.host && port == pool_options_.port) {
    return &pool_;
  }
  std::string key = request.host + ":" + std::to_string(port);
  auto it = host_pools_.find(key);
  if (it != host_pools_.end()) {
    *entry = &it->second;
    return it->second.pool.get();
  }
  if (host_pools_.size() >= host_options_.max_host_pools) {
    // Make room: close the least recently used pool with nothing outstanding.
    auto victim = host_pools_.end();
    for (auto i = host_pools_.begin(); i != host_pools_.end(); ++i) {
      if (i->second.outstanding == 0 &&
          (victim == host_pools_.end() || i->second.last_used < victim->second.last_used)) {
        victim = i;
      }
    }
    if (victim == host_pools_.end()) {
      return nullptr;
    }
    retire(std::move(victim->second.pool));
    host_pools_.erase(victim);
  }
  ConnectionPool::Options options = pool_options_;
  options.host = request.host;
  options.port = port;
  options.authority.clear();
  HostPool& created = host_pools_[key];
  created.pool = std::make_unique<ConnectionPool>(ioc_, std::move(options));
  created.last_used = std::chrono::steady_clock::now();
  *entry = &created;
  armIdleSweep();
  return created.pool.get();
}

void ProviderClient::retire(std::unique_ptr<ConnectionPool> pool) {
  pool->shutdown();
  // Destroyed later: we may be inside one of its handlers (a done callback that sent again).
  boost::asio::post(ioc_, [doomed = std::shared_ptr<ConnectionPool>(std::move(pool))] {});
}

void ProviderClient::armIdleSweep() {
  if (idle_timer_armed_ || host_pools_.empty()) {
    return;
  }
  idle_timer_armed_ = true;
  auto period = std::max(host_options_.idle_timeout / 2, std::chrono::milliseconds(10));
  idle_timer_.expires_after(period);
  std::weak_ptr<bool> alive = alive_;
  idle_timer_.async_wait([this, alive](boost::system::error_code ec) {
    if (ec || alive.expired()) {
      return;
    }
    idle_timer_armed_ = false;
    sweepIdlePools();
    armIdleSweep();
  });
}

void ProviderClient::sweepIdlePools() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = host_pools_.begin(); it != host_pools_.end();) {
    HostPool& entry = it->second;
    if (entry.outstanding == 0 && now - entry.last_used >= host_options_.idle_timeout) {
      log::get("providers")->debug("closing idle connection pool to {}", it->first);
      retire(std::move(entry.pool));
      it = host_pools_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pushhub::providers
