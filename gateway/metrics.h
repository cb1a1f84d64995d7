#pragma once
// What pushhubd counts, and the operators' view of it (/metrics, /healthz, /readyz and
// HubAdmin.GetStats).
//
// Two kinds of counters, by who reads them:
// - WorkerMetrics' atomics (jobs, Redis, sweeps): written by one worker with relaxed atomics,
//   summed by any thread when scraped;
// - per route, per hub and per platform (deliveries, retries, in flight, provider latency):
//   plain integers the worker's hot path bumps without an atomic, read only on the worker's own
//   thread, which copies them into a WorkerView when asked (Worker::view).
// InstanceSnapshot merges every worker's view with the queue as Redis holds it.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "registry/installation.h"
#include "registry/notification_queue.h"
#include "registry/redis_client.h"

namespace pushhub::gateway {

// Azure's outcome names, in the order of their counters.
inline constexpr std::array<std::string_view, 16> kOutcomeNames{"Success",
                                                                "WrongToken",
                                                                "ExpiredChannel",
                                                                "Throttled",
                                                                "InvalidCredentials",
                                                                "InvalidNotificationSize",
                                                                "InvalidNotificationFormat",
                                                                "PnsUnreachable",
                                                                "PnsUnavailable",
                                                                "PnsInterfaceError",
                                                                "BadChannel",
                                                                "Dropped",
                                                                "Expired",
                                                                "Skipped",
                                                                "AbandonedNotificationMessages",
                                                                "UnknownError"};
inline constexpr size_t kPlatforms = registry::kPlatformCount;
inline constexpr std::array<std::string_view, kPlatforms> kPlatformNames{"apns", "fcm", "wns"};

size_t outcomeIndex(std::string_view azure_name);  // unknown names count as UnknownError

// Upper bounds (seconds) of the provider latency histogram's buckets (and +Inf).
inline constexpr std::array<double, 12> kLatencyBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1,    2.5,   10};

struct LatencyHistogram {
  std::array<uint64_t, kLatencyBounds.size() + 1> buckets{};  // not cumulative; last: +Inf
  uint64_t count = 0;
  double sum_seconds = 0;

  void observe(std::chrono::steady_clock::duration latency);
  void add(const LatencyHistogram& other);
};

// One (hub, platform) route of one worker.
struct RouteCounters {
  int64_t in_flight = 0;                                    // handed to the provider, unanswered
  std::array<uint64_t, kOutcomeNames.size()> deliveries{};  // final outcomes
  std::array<uint64_t, kOutcomeNames.size()> retries{};     // by the outcome that was retried
  size_t connections = 0;                                   // open, filled in by Worker::view

  void add(const RouteCounters& other);
  // Anything happened on the route, or it holds connections: operators see it.
  bool active() const;
};
using HubCounters = std::array<RouteCounters, kPlatforms>;

struct WorkerMetrics {
  using Counter = std::atomic<uint64_t>;
  Counter notifications_accepted{0};
  Counter notifications_cancelled{0};  // scheduled sends called off
  Counter scheduled_fired{0};          // scheduled sends moved to the queue at their time
  Counter jobs_started{0};
  Counter jobs_completed{0};
  Counter jobs_reclaimed{0};  // taken over after job_idle_timeout_ms without progress
  Counter jobs_released{0};   // given back to the group unfinished (stop, or a hub not served)
  Counter jobs_split{0};      // a lagging platform's rest handed to a job of its own
  Counter targets_resolved{0};
  Counter buckets_resolved{0};  // bucket resolves of sends: how selective the tag index made them
  Counter handles_expired{0};
  Counter installations_swept{0};
  Counter redis_errors{0};
  registry::RedisClient::Stats redis;  // every Redis client of the worker adds to these

  // Worker thread only. By hub name; an entry, once made, stays where it is (a job keeps a
  // pointer to its hub's).
  std::unordered_map<std::string, HubCounters> hubs;
  std::array<LatencyHistogram, kPlatforms> latency;  // by platform, from send to answer

  static void add(Counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

// What one worker's thread copied of its own counters.
struct WorkerView {
  bool redis_connected = false;
  std::unordered_map<std::string, HubCounters> hubs;  // with connections filled in
  std::array<LatencyHistogram, kPlatforms> latency;
};

// This instance at one moment.
struct InstanceSnapshot {
  size_t workers = 0;
  size_t workers_answered = 0;   // within the collection's timeout (a stuck worker does not)
  size_t workers_connected = 0;  // of those, with their Redis connection up
  std::vector<const WorkerMetrics*> atomics;  // every worker's, read when rendered
  std::map<std::string, HubCounters> hubs;    // summed over the workers that answered
  std::array<LatencyHistogram, kPlatforms> latency;
  std::optional<registry::QueueStats> queue;  // when asked for and Redis answered
  std::string queue_error;

  void add(WorkerView view);
  bool healthy() const { return workers_answered == workers && workers_connected == workers; }
};

// Prometheus text exposition (version 0.0.4) of the snapshot.
std::string renderPrometheus(const InstanceSnapshot& snapshot);

}  // namespace pushhub::gateway
