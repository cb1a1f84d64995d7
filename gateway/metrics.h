#pragma once
// Counters of one worker. Each worker writes only its own (relaxed atomics, so the hot path takes
// no lock); the admin endpoint reads every worker's and sums them when scraped.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
inline constexpr size_t kPlatforms = 3;

size_t outcomeIndex(std::string_view azure_name);  // unknown names count as UnknownError

struct WorkerMetrics {
  using Counter = std::atomic<uint64_t>;
  Counter notifications_accepted{0};
  Counter notifications_cancelled{0};  // scheduled sends called off
  Counter scheduled_fired{0};          // scheduled sends moved to the queue at their time
  Counter jobs_started{0};
  Counter jobs_completed{0};
  Counter jobs_reclaimed{0};  // taken over after job_idle_timeout_ms without progress
  Counter jobs_released{0};   // given back to the group unfinished (stop, or a hub not served)
  Counter targets_resolved{0};
  Counter buckets_resolved{0};  // bucket resolves of sends: how selective the tag index made them
  Counter retries{0};
  Counter handles_expired{0};
  Counter installations_swept{0};
  Counter redis_errors{0};
  registry::RedisClient::Stats redis;  // every Redis client of the worker adds to these
  std::atomic<int64_t> in_flight{0};   // gauge: targets handed to providers, not yet answered
  std::array<std::array<Counter, kOutcomeNames.size()>, kPlatforms> outcomes{};

  static void add(Counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

// Prometheus text exposition of the sum of `workers`.
std::string renderPrometheus(const std::vector<const WorkerMetrics*>& workers);

}  // namespace pushhub::gateway
