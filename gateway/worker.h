#pragma once
// A worker: one thread running one io_context that owns everything it touches on the hot path:
// its Redis clients (one for commands, and one per queue partition for its blocking reads), the
// registry and queue bound to them, its provider connections per hub, its dispatcher, its registry
// sweeper and its counters. Nothing here is shared with another worker; other threads hand work in
// with post().

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/config.h"
#include "gateway/dispatcher.h"
#include "gateway/hub_catalog.h"
#include "gateway/metrics.h"
#include "gateway/provider_factory.h"
#include "gateway/sweeper.h"
#include "registry/hub_store.h"
#include "registry/notification_queue.h"
#include "registry/redis_client.h"
#include "registry/registry.h"

namespace pushhub::gateway {

class Worker {
 public:
  // Worker `index` of `workers`. `config` and `catalog` must outlive the worker. Construct and
  // destroy on the main thread.
  Worker(size_t index, size_t workers, const Config& config, const HubCatalog& catalog);
  ~Worker();

  // Starts the thread: connects to Redis and begins claiming jobs.
  void start();
  // Stops claiming new jobs and releases running ones (Dispatcher::stop), waits until `deadline`
  // for their in-flight sends to answer, then stops the thread. Workers stopping together call
  // beginStop() on each first, so they wind down at the same time.
  void beginStop();
  void stop(std::chrono::steady_clock::time_point deadline);

  boost::asio::io_context& ioc() { return ioc_; }
  const WorkerMetrics& metrics() const { return metrics_; }
  WorkerMetrics& metrics() { return metrics_; }

  // Worker-thread only.
  registry::Registry& registry() { return registry_; }
  registry::NotificationQueue& queue() { return queue_; }
  registry::HubStore& hubStore() { return hub_store_; }
  // A copy of the counters only this worker's thread writes (metrics.h), with its open provider
  // connections.
  WorkerView view() const;

 private:
  size_t index_;
  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  WorkerMetrics metrics_;  // before the Redis clients, which count into it
  registry::RedisClient commands_;
  std::vector<std::unique_ptr<registry::RedisClient>> readers_;  // one per queue partition
  registry::Registry registry_;
  registry::NotificationQueue queue_;
  registry::HubStore hub_store_;
  Dispatcher dispatcher_;
  Sweeper sweeper_;
  std::thread thread_;
  bool stopping_ = false;  // beginStop() was called (by the thread that stops the worker)
};

}  // namespace pushhub::gateway
