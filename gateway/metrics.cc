#include "gateway/metrics.h"

#include <fmt/format.h>

namespace pushhub::gateway {
namespace {

constexpr std::array<std::string_view, kPlatforms> kPlatformNames{"apns", "fcm", "wns"};

template <typename Get>
uint64_t sum(const std::vector<const WorkerMetrics*>& workers, Get get) {
  uint64_t total = 0;
  for (const auto* w : workers) total += get(*w).load(std::memory_order_relaxed);
  return total;
}

}  // namespace

size_t outcomeIndex(std::string_view azure_name) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == azure_name) return i;
  }
  return kOutcomeNames.size() - 1;
}

std::string renderPrometheus(const std::vector<const WorkerMetrics*>& workers) {
  std::string out;
  auto counter = [&](std::string_view name, std::string_view help, auto get) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name,
                       sum(workers, get));
  };
  counter("pushhub_notifications_accepted_total", "Notifications stored and queued.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& {
            return m.notifications_accepted;
          });
  counter("pushhub_notifications_cancelled_total", "Scheduled sends called off before their time.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& {
            return m.notifications_cancelled;
          });
  counter(
      "pushhub_scheduled_fired_total", "Scheduled sends moved to the queue at their time.",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.scheduled_fired; });
  counter("pushhub_jobs_started_total", "Jobs claimed from the queue.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.jobs_started; });
  counter("pushhub_jobs_completed_total", "Jobs whose every target has a final outcome.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.jobs_completed; });
  counter("pushhub_jobs_reclaimed_total",
          "Jobs taken over from a consumer that stopped touching them (a dead worker, or a claim "
          "lost with a Redis master).",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.jobs_reclaimed; });
  counter(
      "pushhub_targets_resolved_total", "Installations selected by sends.",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.targets_resolved; });
  counter(
      "pushhub_buckets_resolved_total", "Buckets read by sends (one Redis round trip each).",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.buckets_resolved; });
  counter("pushhub_retries_total", "Deliveries retried after a retryable outcome.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.retries; });
  counter(
      "pushhub_handles_expired_total",
      "Installations marked pushChannelExpired because a provider called the handle dead.",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.handles_expired; });
  counter(
      "pushhub_installations_swept_total",
      "Installations deleted by the sweep: expiration time passed, or a dead handle kept past the "
      "retention.",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& {
        return m.installations_swept;
      });
  counter("pushhub_redis_errors_total", "Redis commands that failed.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.redis_errors; });
  counter("pushhub_redis_moved_total",
          "MOVED redirections from Redis Cluster (a slot changed master: resharding, failover).",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.redis.moved; });
  counter("pushhub_redis_ask_total",
          "ASK redirections from Redis Cluster (a command for a slot being migrated).",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.redis.ask; });
  counter("pushhub_redis_retries_total",
          "Redis commands retried after TRYAGAIN, CLUSTERDOWN, LOADING or an unreachable master.",
          [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.redis.retried; });
  counter(
      "pushhub_redis_topology_refreshes_total", "Redis Cluster slot maps read.",
      [](const WorkerMetrics& m) -> const WorkerMetrics::Counter& { return m.redis.refreshes; });

  int64_t in_flight = 0;
  for (const auto* w : workers) in_flight += w->in_flight.load(std::memory_order_relaxed);
  out += fmt::format(
      "# HELP pushhub_deliveries_in_flight Deliveries handed to providers and not yet answered.\n"
      "# TYPE pushhub_deliveries_in_flight gauge\npushhub_deliveries_in_flight {}\n",
      in_flight);

  out +=
      "# HELP pushhub_deliveries_total Final delivery outcomes by platform and Azure outcome "
      "name.\n"
      "# TYPE pushhub_deliveries_total counter\n";
  for (size_t p = 0; p < kPlatforms; ++p) {
    for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
      uint64_t total = 0;
      for (const auto* w : workers) total += w->outcomes[p][o].load(std::memory_order_relaxed);
      if (total == 0) continue;
      out += fmt::format("pushhub_deliveries_total{{platform=\"{}\",outcome=\"{}\"}} {}\n",
                         kPlatformNames[p], kOutcomeNames[o], total);
    }
  }
  return out;
}

}  // namespace pushhub::gateway
