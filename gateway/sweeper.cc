#include "gateway/sweeper.h"

#include "base/log.h"

namespace pushhub::gateway {

Sweeper::Sweeper(boost::asio::io_context& ioc, const Config& config, registry::Registry& registry,
                 WorkerMetrics& metrics, size_t worker_index, size_t workers)
    : ioc_(ioc),
      config_(config),
      registry_(registry),
      metrics_(metrics),
      step_(std::max<size_t>(1, workers)),
      timer_(ioc) {
  for (const auto& [key, hub] : config_.hubs) {
    next_.push_back(static_cast<uint32_t>(worker_index % hub.buckets));
  }
}

void Sweeper::start() {
  if (config_.sweep_interval_ms == 0 || config_.hubs.empty()) return;
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
  size_t i = 0;
  for (const auto& [key, hub] : config_.hubs) {
    uint32_t bucket = next_[i];
    next_[i] = static_cast<uint32_t>((bucket + step_) % hub.buckets);
    ++i;
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
}

}  // namespace pushhub::gateway
