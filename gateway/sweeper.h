#pragma once
// Registry upkeep on one worker: every `sweep_interval_ms` it sweeps the next bucket of every
// hub (Registry::sweep: expired installations, and dead handles past the retention), one bucket
// per hub per tick, so the work per tick is bounded however large the hubs are. Workers start at
// different buckets and step by the number of workers, so together they cover each hub once per
// round without coordinating; several pushhubd instances sweep the same buckets again, which is
// harmless (the sweep is idempotent).
//
// Thread: everything runs on the owning worker's io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gateway/config.h"
#include "gateway/hub_catalog.h"
#include "gateway/metrics.h"
#include "registry/registry.h"

namespace pushhub::gateway {

class Sweeper {
 public:
  // All references must outlive the sweeper and belong to the same worker.
  Sweeper(boost::asio::io_context& ioc, const Config& config, const HubCatalog& catalog,
          registry::Registry& registry, WorkerMetrics& metrics, size_t worker_index,
          size_t workers);

  void start();
  void stop();

 private:
  void tick();

  boost::asio::io_context& ioc_;
  const Config& config_;
  const HubCatalog& catalog_;
  registry::Registry& registry_;
  WorkerMetrics& metrics_;
  size_t step_;
  size_t first_;                          // this worker's first bucket of every hub
  std::map<std::string, uint32_t> next_;  // per hub: the next bucket to sweep
  size_t pending_ = 0;                    // sweeps of this tick not answered yet
  bool stopped_ = false;
  boost::asio::steady_timer timer_;
};

}  // namespace pushhub::gateway
