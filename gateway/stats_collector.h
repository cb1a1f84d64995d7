#pragma once
// StatsCollector: takes an InstanceSnapshot (metrics.h) of this instance for /metrics, /healthz,
// /readyz and HubAdmin.GetStats. Every worker copies its own counters on its own thread
// (Worker::view); the queue is read from Redis through the first worker. The parts are merged on
// `home`, an io_context run by one thread, which also calls `done`. What has not answered within
// kTimeout is left out (the snapshot says so), so a stuck worker or an unreachable Redis makes
// /healthz fail instead of hang.

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "gateway/metrics.h"
#include "gateway/worker.h"

namespace pushhub::gateway {

class StatsCollector {
 public:
  static constexpr std::chrono::milliseconds kTimeout{2000};
  // Jobs read per queue partition to tell which hub they belong to.
  static constexpr size_t kQueueScan = 1000;

  // `home` and the workers must outlive the collector and every collection in progress.
  StatsCollector(boost::asio::io_context& home, std::vector<std::unique_ptr<Worker>>& workers);

  using Done = std::function<void(std::shared_ptr<const InstanceSnapshot>)>;
  // Any thread. `done` runs on `home`, once.
  void collect(bool with_queue, Done done);

 private:
  boost::asio::io_context& home_;
  std::vector<std::unique_ptr<Worker>>& workers_;
};

// The snapshot as the HubAdmin.GetStats answer; `hub` non-empty keeps only that hub.
v1::Stats toProto(const InstanceSnapshot& snapshot, const std::string& hub);

}  // namespace pushhub::gateway
