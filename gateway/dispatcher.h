#pragma once
// The delivery loop of one worker: claims jobs from the Redis Stream, resolves each job's buckets
// to targets, renders and hands every target to its provider, retries retryable outcomes with
// backoff within the notification's expiry, removes handles providers call dead, and
// acknowledges a job (with its outcome counts) only when every target has a final outcome.
// Running jobs are touched in Redis so they never look abandoned; jobs pending longer than
// job_idle_timeout_ms (a dead worker's, or one whose claim reply was lost with a Redis master)
// are reclaimed.
//
// Memory stays bounded whatever the audience: a job resolves at most resolves_in_flight_per_job
// buckets at a time, and only while fewer than max_in_flight_per_job targets are outstanding, and a
// worker runs at most max_jobs_per_worker jobs.
//
// Thread: everything runs on the owning worker's io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/config.h"
#include "gateway/hub_catalog.h"
#include "gateway/metrics.h"
#include "gateway/notification.h"
#include "providers/common/provider_client.h"
#include "registry/notification_queue.h"
#include "registry/registry.h"

namespace pushhub::gateway {

class Dispatcher {
 public:
  // All references must outlive the dispatcher and belong to the same worker.
  Dispatcher(boost::asio::io_context& ioc, const Config& config, const HubCatalog& catalog,
             registry::Registry& registry, registry::NotificationQueue& queue,
             WorkerMetrics& metrics);

  // Creates the consumer group if needed and starts claiming jobs.
  void start();
  // Stops claiming; running jobs go on. `idle()` tells when they are done.
  void stop();
  bool idle() const;

 private:
  struct Run;
  using RunPtr = std::shared_ptr<Run>;

  void claimMore();
  static std::string jobKey(const registry::Job& job);  // stream ids repeat across partitions
  void startJob(registry::Job job);
  void load(const RunPtr& run);
  void armUpkeep();
  void begin(const RunPtr& run);
  void pump(const RunPtr& run);
  void resolveBucket(const RunPtr& run, uint32_t bucket);
  // Takes the target's strings (the resolve's vector is not used afterwards).
  void deliver(const RunPtr& run, registry::ResolvedTarget&& target);
  // `tpl` compiled and rendered for this job's notification, from the job's cache when an equal
  // template was rendered before: a template is parsed and rendered once per job, not per device.
  PreparedNotification::Rendered rendered(
      const RunPtr& run, registry::Platform platform,
      const std::shared_ptr<const registry::InstallationTemplate>& tpl);
  void sendOne(const RunPtr& run, registry::Platform platform, providers::Target target,
               std::shared_ptr<const providers::Notification> notification, uint32_t attempt);
  // The provider's final word on one send: retry it later, count it, drop a dead handle.
  void onOutcome(const RunPtr& run, registry::Platform platform, providers::Target target,
                 std::shared_ptr<const providers::Notification> notification, uint32_t attempt,
                 providers::Outcome outcome);
  void count(const RunPtr& run, registry::Platform platform, std::string_view outcome);
  void finish(const RunPtr& run);
  void retryLater(std::chrono::milliseconds delay, std::function<void()> action);
  std::shared_ptr<const PreparedNotification> cached(const std::string& id);
  void remember(const std::shared_ptr<const PreparedNotification>& notification);

  boost::asio::io_context& ioc_;
  const Config& config_;
  registry::Registry& registry_;
  registry::NotificationQueue& queue_;
  const HubCatalog& catalog_;
  // This worker's provider clients per hub, built on first use from the hub's runtime and
  // rebuilt when the hub changed; a job keeps its clients alive until it is done.
  struct ClientsOf {
    std::shared_ptr<const HubRuntime> runtime;
    std::shared_ptr<HubClients> clients;
  };
  std::unordered_map<std::string, ClientsOf> clients_;
  WorkerMetrics& metrics_;

  bool stopping_ = false;
  bool starting_ = false;
  std::vector<bool> claiming_;  // per queue partition: a read is waiting
  uint32_t next_partition_ = 0;
  boost::asio::steady_timer upkeep_timer_;
  std::map<std::string, RunPtr> active_;  // by jobKey()
  // Jobs of one notification usually follow each other; keep the last few parsed.
  std::deque<std::shared_ptr<const PreparedNotification>> recent_;
};

}  // namespace pushhub::gateway
