#include "gateway/sweeper.h"

#include "base/log.h"

namespace pushhub::gateway {

Sweeper::Sweeper(boost::asio::io_context& ioc, const Config& config, const HubCatalog& catalog,
                 registry::Registry& registry, WorkerMetrics& metrics, size_t worker_index,
                 size_t workers)
    : ioc_(ioc),
      config_(config),
      catalog_(catalog),
      registry_(registry),
      metrics_(metrics),
      step_(std::max<size_t>(1, workers)),
      first_(worker_index),
      timer_(ioc) {}

void Sweeper::start() {
  if (config_.sweep_interval_ms == 0) return;
  timer_.expires_after(std::chrono::milliseconds(config_.sweep_interval_ms));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) tick();
  });
}

void Sweeper::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Sweeper::tick() {
  // The next tick waits for this one's answers: a slow Redis slows the sweep instead of piling
  // sweeps up.
  auto hubs = catalog_.snapshot();
  if (hubs->empty()) return start();
  ++pending_;  // held until every sweep below was sent, so none of them restarts the timer early
  for (const auto& [key, runtime] : *hubs) {
    const HubSettings& hub = runtime->settings;
    auto [it, fresh] = next_.try_emplace(key, static_cast<uint32_t>(first_ % hub.buckets));
    uint32_t bucket = it->second % hub.buckets;
    it->second = static_cast<uint32_t>((bucket + step_) % hub.buckets);
    ++pending_;
    registry_.sweep(registry::Hub{hub.name, hub.buckets}, bucket,
                    std::chrono::hours(config_.dead_channel_retention_hours),
                    [this, name = hub.name, bucket](Result<size_t> swept) {
                      if (swept) {
                        WorkerMetrics::add(metrics_.installations_swept, *swept);
                      } else {
                        WorkerMetrics::add(metrics_.redis_errors);
                        log::get("sweep")->debug("hub {} bucket {}: {}", name, bucket,
                                                 swept.error().message);
                      }
                      if (--pending_ == 0 && !stopped_) start();
                    });
  }
  if (--pending_ == 0 && !stopped_) start();
}

}  // namespace pushhub::gateway
