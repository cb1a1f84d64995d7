#pragma once
// ProviderClient joins one Provider (encode/classify, no I/O) to its ConnectionPools (the I/O):
// one per worker per hub per platform, living on that worker's io_context.
//
// send() turns every way a send can end into exactly one Outcome:
// - provider not ready       -> waits for Provider::whenReady() (one call shared by every send
//                              waiting at the time); its error gives kConfigError
//                              ("InvalidCredentials") for kUnauthenticated/kPermissionDenied,
//                              else kRetryBackoff ("PnsUnreachable");
// - encode error            -> kPermanentBadRequest ("InvalidNotificationFormat"), no I/O;
// - transport error         -> kRetryBackoff ("PnsUnreachable"), reason = the error text;
// - kRefreshAuth            -> Provider::onAuthRejected(response), re-encode and retry once (after
//                              waiting for the provider if it is no longer ready), then report
//                              whatever the retry gives;
// - recycle_connection      -> the connection that carried the response is drained and replaced.
//
// Endpoints: a Request with an empty `host` goes to the default pool (the constructor's options).
// A Request naming another host:port goes to that endpoint's own pool, created on first use with
// the default pool's options (same TLS context, protocol, connections, timeouts; authority = the
// host). At most HostPoolOptions::max_host_pools such pools are open; one without a request for
// idle_timeout is shut down; when the limit is reached the least recently used idle pool is
// closed, and if none is idle the send fails with kRetryBackoff ("PnsUnreachable").
//
// Threading: every member function runs on the io_context's thread; `done` is called there,
// never from inside send() itself.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"

namespace pushhub::providers {

class ProviderClient {
 public:
  using Done = std::function<void(Outcome)>;

  struct HostPoolOptions {
    size_t max_host_pools = 256;
    std::chrono::milliseconds idle_timeout{60000};
  };

  ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                 ConnectionPool::Options pool_options);
  ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                 ConnectionPool::Options pool_options, HostPoolOptions host_pools);
  // Shuts every pool down: outstanding sends get their outcome (kRetryBackoff) before it returns.
  ~ProviderClient();
  ProviderClient(const ProviderClient&) = delete;
  ProviderClient& operator=(const ProviderClient&) = delete;

  // Sends one notification to one target; `done` is called exactly once. The target and the
  // notification are kept until the outcome is final (an auth retry re-encodes them). The
  // notification is shared, not copied: a broadcast hands the same object to every target, and
  // the provider may share its body with the request (Provider::encode). It must not be null
  // and must not change while shared.
  void send(Target target, std::shared_ptr<const Notification> notification, Done done);

  size_t inFlight() const { return in_flight_; }
  Provider& provider() { return *provider_; }
  // The default endpoint's pool.
  ConnectionPool& pool() { return pool_; }
  // The open pool of another endpoint (port 0 = 443), or nullptr. For tests and metrics.
  ConnectionPool* hostPool(const std::string& host, uint16_t port);
  size_t hostPoolCount() const { return host_pools_.size(); }
  // Ready connections over the default pool and every host pool.
  size_t openConnections() const;
  // Sends waiting for Provider::whenReady().
  size_t waitingForProvider() const { return waiting_.size(); }

 private:
  struct Send;
  struct HostPool {
    std::unique_ptr<ConnectionPool> pool;
    std::chrono::steady_clock::time_point last_used;
    size_t outstanding = 0;
  };

  void start(std::shared_ptr<Send> send);
  void waitForProvider(std::shared_ptr<Send> send);
  void onProviderReady(Result<void> ready);
  void onResponse(std::shared_ptr<Send> send, Result<Response> response, ConnectionPool* pool);
  void finish(std::shared_ptr<Send> send, Outcome outcome, bool post);
  // The pool for `request` (creating it), or nullptr when the host pool limit is reached.
  ConnectionPool* poolFor(const Request& request, HostPool** entry);
  void retire(std::unique_ptr<ConnectionPool> pool);
  void armIdleSweep();
  void sweepIdlePools();

  boost::asio::io_context& ioc_;
  std::unique_ptr<Provider> provider_;
  ConnectionPool::Options pool_options_;
  HostPoolOptions host_options_;
  ConnectionPool pool_;
  std::unordered_map<std::string, HostPool> host_pools_;  // key "host:port"
  boost::asio::steady_timer idle_timer_;
  bool idle_timer_armed_ = false;
  std::vector<std::shared_ptr<Send>> waiting_;  // for whenReady()
  bool whenready_outstanding_ = false;
  size_t in_flight_ = 0;
  std::shared_ptr<bool> alive_;  // callbacks from the provider hold a weak_ptr
};

}  // namespace pushhub::providers
