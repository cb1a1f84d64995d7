#include "gateway/metrics.h"

#include <fmt/format.h>

#include <chrono>

namespace pushhub::gateway {
namespace {

struct CounterRow {
  std::string_view name;
  std::string_view help;
  WorkerMetrics::Counter WorkerMetrics::*member;
};

constexpr CounterRow kCounters[] = {
    {"pushhub_notifications_accepted_total", "Notifications stored and queued.",
     &WorkerMetrics::notifications_accepted},
    {"pushhub_notifications_cancelled_total", "Scheduled sends called off before their time.",
     &WorkerMetrics::notifications_cancelled},
    {"pushhub_scheduled_fired_total", "Scheduled sends moved to the queue at their time.",
     &WorkerMetrics::scheduled_fired},
    {"pushhub_jobs_started_total", "Jobs claimed from the queue.", &WorkerMetrics::jobs_started},
    {"pushhub_jobs_completed_total", "Jobs whose every target has a final outcome.",
     &WorkerMetrics::jobs_completed},
    {"pushhub_jobs_reclaimed_total",
     "Jobs taken over from a consumer that stopped touching them (a dead instance, or a claim "
     "lost with a Redis master).",
     &WorkerMetrics::jobs_reclaimed},
    {"pushhub_jobs_released_total",
     "Jobs given back to the queue unfinished (at stop, or a hub this instance does not serve).",
     &WorkerMetrics::jobs_released},
    {"pushhub_jobs_split_total",
     "Jobs that handed a lagging platform's remaining devices to a job of their own "
     "(dispatch.split_lagging_platform_ms), so that platform no longer paced the others.",
     &WorkerMetrics::jobs_split},
    {"pushhub_targets_resolved_total", "Installations selected by sends.",
     &WorkerMetrics::targets_resolved},
    {"pushhub_buckets_resolved_total", "Buckets read by sends (one Redis round trip each).",
     &WorkerMetrics::buckets_resolved},
    {"pushhub_handles_expired_total",
     "Installations marked pushChannelExpired because a provider called the handle dead.",
     &WorkerMetrics::handles_expired},
    {"pushhub_installations_swept_total",
     "Installations deleted by the sweep: expiration time passed, or a dead handle kept past the "
     "retention.",
     &WorkerMetrics::installations_swept},
    {"pushhub_redis_errors_total", "Redis commands that failed.", &WorkerMetrics::redis_errors},
};

struct RedisRow {
  std::string_view name;
  std::string_view help;
  std::atomic<uint64_t> registry::RedisClient::Stats::*member;
};

constexpr RedisRow kRedisCounters[] = {
    {"pushhub_redis_moved_total",
     "MOVED redirections from Redis Cluster (a slot changed master: resharding, failover).",
     &registry::RedisClient::Stats::moved},
    {"pushhub_redis_ask_total",
     "ASK redirections from Redis Cluster (a command for a slot being migrated).",
     &registry::RedisClient::Stats::ask},
    {"pushhub_redis_retries_total",
     "Redis commands retried after TRYAGAIN, CLUSTERDOWN, LOADING or an unreachable master.",
     &registry::RedisClient::Stats::retried},
    {"pushhub_redis_topology_refreshes_total", "Redis Cluster slot maps read.",
     &registry::RedisClient::Stats::refreshes},
};

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Prometheus label values escape backslash, double quote and newline.
std::string escapeLabel(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

double secondsSince(int64_t then_ms, int64_t now_ms) {
  return then_ms == 0 ? 0.0 : std::max<int64_t>(0, now_ms - then_ms) / 1000.0;
}

}  // namespace

size_t outcomeIndex(std::string_view azure_name) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == azure_name) return i;
  }
  return kOutcomeNames.size() - 1;
}

void LatencyHistogram::observe(std::chrono::steady_clock::duration latency) {
  double seconds = std::chrono::duration<double>(latency).count();
  size_t i = 0;
  while (i < kLatencyBounds.size() && seconds > kLatencyBounds[i]) ++i;
  ++buckets[i];
  ++count;
  sum_seconds += seconds;
}

void LatencyHistogram::add(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum_seconds += other.sum_seconds;
}

void RouteCounters::add(const RouteCounters& other) {
  in_flight += other.in_flight;
  connections += other.connections;
  for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
    deliveries[o] += other.deliveries[o];
    retries[o] += other.retries[o];
  }
}

bool RouteCounters::active() const {
  if (in_flight != 0 || connections != 0) return true;
  for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
    if (deliveries[o] != 0 || retries[o] != 0) return true;
  }
  return false;
}

void InstanceSnapshot::add(WorkerView view) {
  ++workers_answered;
  if (view.redis_connected) ++workers_connected;
  for (auto& [name, counters] : view.hubs) {
    auto& into = hubs[name];
    for (size_t p = 0; p < kPlatforms; ++p) into[p].add(counters[p]);
  }
  for (size_t p = 0; p < kPlatforms; ++p) latency[p].add(view.latency[p]);
}

std::string renderPrometheus(const InstanceSnapshot& s) {
  std::string out;
  for (const auto& row : kCounters) {
    uint64_t total = 0;
    for (const auto* w : s.atomics) total += (w->*row.member).load(std::memory_order_relaxed);
    header(out, row.name, "counter", row.help);
    out += fmt::format("{} {}\n", row.name, total);
  }
  for (const auto& row : kRedisCounters) {
    uint64_t total = 0;
    for (const auto* w : s.atomics) total += (w->redis.*row.member).load(std::memory_order_relaxed);
    header(out, row.name, "counter", row.help);
    out += fmt::format("{} {}\n", row.name, total);
  }

  // Per route: the routes that saw traffic or hold connections.
  auto per_route = [&](std::string_view name, std::string_view type, std::string_view help,
                       auto value) {
    header(out, name, type, help);
    for (const auto& [hub, routes] : s.hubs) {
      for (size_t p = 0; p < kPlatforms; ++p) {
        if (!routes[p].active()) continue;
        value(fmt::format("hub=\"{}\",platform=\"{}\"", escapeLabel(hub), kPlatformNames[p]),
              routes[p]);
      }
    }
  };
  per_route("pushhub_deliveries_in_flight", "gauge",
            "Deliveries handed to a provider and not yet answered, by route.",
            [&](const std::string& labels, const RouteCounters& r) {
              out += fmt::format("pushhub_deliveries_in_flight{{{}}} {}\n", labels, r.in_flight);
            });
  per_route("pushhub_provider_connections", "gauge", "Open connections to a provider, by route.",
            [&](const std::string& labels, const RouteCounters& r) {
              out += fmt::format("pushhub_provider_connections{{{}}} {}\n", labels, r.connections);
            });
  per_route("pushhub_deliveries_total", "counter",
            "Final delivery outcomes by hub, platform and Azure outcome name.",
            [&](const std::string& labels, const RouteCounters& r) {
              for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
                if (r.deliveries[o] == 0) continue;
                out += fmt::format("pushhub_deliveries_total{{{},outcome=\"{}\"}} {}\n", labels,
                                   kOutcomeNames[o], r.deliveries[o]);
              }
            });
  per_route("pushhub_retries_total", "counter",
            "Deliveries retried, by hub, platform and the outcome that was retried (Throttled: "
            "the provider's Retry-After; PnsUnavailable, PnsUnreachable: backoff).",
            [&](const std::string& labels, const RouteCounters& r) {
              for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
                if (r.retries[o] == 0) continue;
                out += fmt::format("pushhub_retries_total{{{},reason=\"{}\"}} {}\n", labels,
                                   kOutcomeNames[o], r.retries[o]);
              }
            });

  header(out, "pushhub_provider_latency_seconds", "histogram",
         "Time from handing a delivery to the provider connection to its answer, by platform.");
  for (size_t p = 0; p < kPlatforms; ++p) {
    const auto& h = s.latency[p];
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i];
      std::string le = i < kLatencyBounds.size() ? fmt::format("{}", kLatencyBounds[i]) : "+Inf";
      out +=
          fmt::format("pushhub_provider_latency_seconds_bucket{{platform=\"{}\",le=\"{}\"}} {}\n",
                      kPlatformNames[p], le, cumulative);
    }
    out += fmt::format("pushhub_provider_latency_seconds_sum{{platform=\"{}\"}} {}\n",
                       kPlatformNames[p], h.sum_seconds);
    out += fmt::format("pushhub_provider_latency_seconds_count{{platform=\"{}\"}} {}\n",
                       kPlatformNames[p], h.count);
  }

  header(out, "pushhub_workers", "gauge", "Worker threads configured.");
  out += fmt::format("pushhub_workers {}\n", s.workers);
  header(out, "pushhub_workers_responsive", "gauge",
         "Workers that answered this scrape within its timeout, with their Redis connection up.");
  out += fmt::format("pushhub_workers_responsive {}\n", s.workers_connected);

  if (!s.queue) return out;
  const auto& q = *s.queue;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  header(out, "pushhub_queue_jobs", "gauge",
         "Jobs queued or running, in Redis (shared by every instance), by state.");
  out += fmt::format("pushhub_queue_jobs{{state=\"running\"}} {}\n", q.running);
  out += fmt::format("pushhub_queue_jobs{{state=\"waiting\"}} {}\n",
                     q.jobs - std::min(q.jobs, q.running));
  header(out, "pushhub_queue_oldest_job_age_seconds", "gauge",
         "Age of the oldest job queued or running (0: none).");
  out += fmt::format("pushhub_queue_oldest_job_age_seconds {}\n", secondsSince(q.oldest_ms, now));
  header(out, "pushhub_queue_hub_jobs", "gauge", "Jobs queued or running, by hub.");
  for (const auto& [hub, h] : q.hubs) {
    out += fmt::format("pushhub_queue_hub_jobs{{hub=\"{}\"}} {}\n", escapeLabel(hub), h.jobs);
  }
  header(out, "pushhub_queue_hub_oldest_job_age_seconds", "gauge",
         "Age of the oldest job queued or running, by hub.");
  for (const auto& [hub, h] : q.hubs) {
    out += fmt::format("pushhub_queue_hub_oldest_job_age_seconds{{hub=\"{}\"}} {}\n",
                       escapeLabel(hub), secondsSince(h.oldest_ms, now));
  }
  header(out, "pushhub_queue_scheduled", "gauge", "Scheduled sends waiting for their time.");
  out += fmt::format("pushhub_queue_scheduled {}\n", q.scheduled);
  return out;
}

}  // namespace pushhub::gateway
