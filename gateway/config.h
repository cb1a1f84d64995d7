#pragma once
// pushhubd's configuration: parsed once from TOML at start-up into an immutable Config, validated
// completely (every error names its key), then shared read-only by every thread.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "providers/apns/apns_config.h"
#include "providers/fcm/fcm_config.h"
#include "providers/wns/wns_config.h"
#include "registry/cluster_slots.h"

namespace pushhub::gateway {

// What a Shared Access key may do (Azure's rights).
enum Right : uint8_t { kListen = 1, kSend = 2, kManage = 4 };

struct AccessKey {
  std::string name;
  std::string secret;
  uint8_t rights = 0;  // a set of Right bits; Manage implies the others
  // After a rotation: the old secret, still accepted until previous_valid_until (unix seconds).
  std::string previous_secret;
  int64_t previous_valid_until = 0;
  bool allows(Right right) const { return (rights & kManage) || (rights & right); }
};

struct HubSettings {
  std::string name;
  uint32_t buckets = 1024;
  std::vector<AccessKey> keys;
  // Provider credentials and endpoints; unset: the hub's installations of that platform are
  // skipped and counted as InvalidCredentials.
  std::optional<providers::apns::ApnsConfig> apns;
  std::optional<providers::fcm::FcmConfig> fcm;
  std::optional<providers::wns::WnsConfig> wns;

  const AccessKey* findKey(std::string_view name) const;
};

struct Config {
  // Listeners.
  std::string grpc_listen = "127.0.0.1:50051";
  // /metrics, /healthz, /readyz and the console; HTTPS with admin_tls_cert/admin_tls_key.
  std::string admin_listen = "127.0.0.1:9090";
  std::string admin_tls_cert_file;
  std::string admin_tls_key_file;
  std::string tls_cert_file;  // gRPC serves TLS when both are set
  std::string tls_key_file;
  // The Azure Notification Hubs REST API (HTTPS with tls_cert/tls_key); empty: not served.
  std::string rest_listen;
  bool rest_plain_http = false;        // plain HTTP instead of TLS: loopback only
  size_t rest_max_connections = 1024;  // open REST connections per instance
  size_t workers = 0;                  // 0: one per core
  // Signs hub management calls (HubAdmin) with key name kAdminKeyName; empty: management is off.
  std::string admin_key;

  // The operators' console on the admin listener (gateway/console.h).
  bool console = true;
  uint32_t console_session_minutes = 30;
  size_t console_max_live_pages = 16;

  // Redis.
  std::string redis_host = "127.0.0.1";
  uint16_t redis_port = 6379;
  // The seeds: [redis] nodes, or host:port. A standalone server or any nodes of a cluster.
  std::vector<registry::ClusterNode> redis_nodes{{"127.0.0.1", 6379}};
  std::string redis_password;

  // Dispatch.
  uint32_t buckets_per_job = 64;   // a tag or broadcast send is split in jobs of this many buckets
  size_t max_jobs_per_worker = 4;  // jobs one worker works on at once
  size_t max_in_flight_per_job = 4096;      // targets handed to providers and not yet answered
  uint32_t resolves_in_flight_per_job = 8;  // bucket resolves one job keeps in flight
  // A job held up this long by one platform alone (its other platforms' sends are done) hands
  // the rest of that platform to a job of its own, so a slow route does not pace the others;
  // 0: never.
  uint32_t split_lagging_platform_ms = 250;
  uint32_t max_attempts = 3;  // per target, for retryable outcomes
  uint32_t queue_partitions = 8;
  uint32_t job_idle_timeout_ms = 30000;  // a pending job untouched this long is reclaimed
  uint32_t max_retry_delay_ms = 300000;  // a provider's Retry-After is honoured up to this
  // A send not handed to its provider within this long after it was accepted counts Expired
  // (Azure's 30 minutes); a send's own deadline overrides it.
  uint32_t default_deadline_s = 1800;
  uint32_t failures_per_notification = 1000;   // per-handle failures kept for outcome details
  uint32_t outcome_retention_hours = 7 * 24;   // how long a notification's record is kept
  uint32_t idempotency_window_hours = 24;      // how long a send's idempotency key is remembered
  uint32_t max_schedule_ahead_hours = 7 * 24;  // how far ahead a send may be scheduled
  uint32_t shutdown_grace_ms = 10000;  // SIGTERM: in-flight sends answer within this, or are left

  // Registry upkeep: each worker sweeps one bucket of each hub per interval (0: never), deleting
  // expired installations and dead handles older than the retention.
  uint32_t sweep_interval_ms = 100;
  uint32_t dead_channel_retention_hours = 7 * 24;

  std::map<std::string, HubSettings> hubs;  // by lower-cased name

  const HubSettings* findHub(std::string_view name) const;
};

inline constexpr const char* kAdminKeyName = "pushhub-admin";

// host and port (443 when absent) of an https URL; false when it is not one.
bool parseHttpsUrl(const std::string& url, std::string& host, uint16_t& port);
// 1 to 50 characters of [A-Za-z0-9._-].
bool validHubName(std::string_view name);
std::string lowerName(std::string_view name);

// Parses and validates a config file; the error names the file, the key and what is wrong.
Result<Config> loadConfig(const std::filesystem::path& path);
Result<Config> parseConfig(std::string_view toml_text, const std::filesystem::path& base_dir);

}  // namespace pushhub::gateway
