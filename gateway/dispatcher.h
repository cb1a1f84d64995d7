#pragma once
// The delivery loop of one worker: claims jobs from the Redis Stream, resolves each job's buckets
// (or a direct send's handles) to targets, renders and hands every target to its provider, retries
// retryable outcomes with backoff within the notification's deadline, removes handles providers
// call dead, and acknowledges a job (with its outcome counts) only when every target has a final
// outcome.
//
// Lanes. A job's work on each platform is a lane with its own progress: lane p is at k once
// every target of platform p in the job's first k units (buckets) has a final outcome. Lanes move
// through the units together: a unit is resolved once for all of them, and only while each lane
// still working is fewer than windowUnits() = 4 x resolves_in_flight_per_job units past its own
// position. A lane that alone holds the job up for split_lagging_platform_ms is split off: its
// units from the next unresolved one on become a child job for that platform alone, and the
// other lanes go on at their own pace.
//
// Crash safety. Running jobs are touched in Redis so they never look abandoned; jobs pending
// longer than job_idle_timeout_ms (a dead instance's, or one whose claim reply was lost with a
// Redis master) are reclaimed. A job records the lanes' positions and split points as one token
// (JobProgress) with the newly final units' counts (one write in flight per job), and a reclaimed
// job starts each lane where it was recorded. What a reclaim can deliver twice is therefore
// bounded by one window per lane. At stop() a job stops resolving, lets what is in flight answer,
// drops its pending retries, records its progress and is released to the group for another
// instance, not counted as failed. A job for a hub this instance does not know (yet) is released
// the same way, and given up (state abandoned) only once the notification's deadline has passed.
//
// Memory stays bounded whatever the audience: a job resolves at most resolves_in_flight_per_job
// buckets at a time, and only while its working lanes have fewer than max_in_flight_per_job
// targets outstanding, and a worker runs at most max_jobs_per_worker busy jobs. A job whose every
// target in flight waits for a retry (a route throttled or down) or belongs to a split-off lane
// is parked: it keeps its state but not its slot, so the worker claims other jobs (other hubs'
// sends are not held up behind it); at most kParkedJobsPerSlot x max_jobs_per_worker jobs are
// held in all. A parked job that wakes may briefly make the busy jobs exceed the slots.
//
// Scheduled sends: every worker moves the due sends of its home partitions into the queue each
// kSchedulePoll (250 ms), so a send fires within about a second of its time while any instance
// runs; the fire job that arrives plans the send and adds its jobs.
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
  // All references must outlive the dispatcher and belong to the same worker. `home`: the queue
  // partitions this worker waits on for new jobs (reclaim looks at all of them).
  Dispatcher(boost::asio::io_context& ioc, const Config& config, const HubCatalog& catalog,
             registry::Registry& registry, registry::NotificationQueue& queue,
             WorkerMetrics& metrics, std::vector<uint32_t> home);

  // Creates the consumer group if needed and starts claiming jobs.
  void start();
  // Stops claiming and releases every running job once its in-flight sends have answered (see
  // above). `idle()` tells when every job is released or done.
  void stop();
  bool idle() const;
  // Adds the open provider connections of each hub's clients to `hubs` (by hub name).
  void countConnections(std::unordered_map<std::string, HubCounters>& hubs) const;

 private:
  struct Run;
  struct Lane;
  struct LaneUnit;
  using RunPtr = std::shared_ptr<Run>;

  static constexpr size_t kParkedJobsPerSlot = 4;

  uint32_t windowUnits() const { return 4 * config_.resolves_in_flight_per_job; }
  // Every target the job has in flight waits for a retry timer or belongs to a split-off lane;
  // nothing else is going on.
  static bool parked(const Run& run);
  // Job slots not taken by busy (not parked) jobs; 0 when the worker holds all the jobs it may.
  size_t freeSlots() const;
  void claimMore();
  void startJob(registry::Job job);
  void load(const RunPtr& run);
  void armUpkeep();
  void begin(const RunPtr& run);
  // A job this instance cannot serve now (hub unknown here): released for another instance, or
  // given up once the notification's deadline has passed.
  void setAside(const RunPtr& run, std::string why);
  void pump(const RunPtr& run);
  // The next unit may be resolved: within every lane's window and the in-flight bound.
  bool roomToResolve(const Run& run) const;
  void splitIfLagging(const RunPtr& run);
  // Records that `platform`'s lane now ends at its `end` (progress token `to`) and adds the
  // child job with the rest of its units; then `then`. A lost job is left (lose()).
  void writeSplit(const RunPtr& run, registry::Platform platform, std::string to,
                  std::function<void()> then);
  // A reclaimed job split before: makes sure each child was added (splits from `from` on).
  void confirmSplits(const RunPtr& run, size_t from = 0);
  void resolveBucket(const RunPtr& run, uint32_t unit, uint32_t bucket);
  // A direct send's unit: its handles, from the notification itself (no Redis).
  void resolveDirect(const RunPtr& run, uint32_t unit);
  // A fire job (a scheduled send whose time came): plans the send against the registry as it is
  // now and adds its jobs (NotificationQueue::fire), or releases it when the hub is not served
  // here. Takes a job slot while it runs.
  void fireScheduled(const RunPtr& run);
  // Every kSchedulePoll, moves the due scheduled sends of the home partitions into the queue.
  void armScheduler();
  // Takes the target's strings (the resolve's vector is not used afterwards).
  void deliver(const RunPtr& run, uint32_t unit, registry::ResolvedTarget&& target);
  // `tpl` compiled and rendered for this job's notification, from the job's cache when an equal
  // template was rendered before: a template is parsed and rendered once per job, not per device.
  PreparedNotification::Rendered rendered(
      const RunPtr& run, registry::Platform platform,
      const std::shared_ptr<const registry::InstallationTemplate>& tpl);
  // `unit`: the job's unit (bucket ordinal) the target came from.
  void sendOne(const RunPtr& run, uint32_t unit, registry::Platform platform,
               providers::Target target,
               std::shared_ptr<const providers::Notification> notification, uint32_t attempt);
  // The provider's final word on one send: retry it later, count it, drop a dead handle.
  void onOutcome(const RunPtr& run, uint32_t unit, registry::Platform platform,
                 providers::Target target,
                 std::shared_ptr<const providers::Notification> notification, uint32_t attempt,
                 providers::Outcome outcome);
  // A final outcome for one target of `unit`; a failure is listed with the target's handle.
  // The unit is settled separately (a dead handle's stays open until it is marked).
  void count(const RunPtr& run, uint32_t unit, registry::Platform platform,
             const providers::Target& target, std::string_view outcome, int http_status = 0,
             std::string_view reason = {});
  void settle(const RunPtr& run, uint32_t unit, registry::Platform platform);
  // The resolve of `unit` delivered its targets.
  void resolved(const RunPtr& run, uint32_t unit);
  // Moves each lane's progress past the units whose every target is final, and records it.
  void advance(const RunPtr& run);
  void record(const RunPtr& run);
  struct ProgressWrite {
    std::array<uint32_t, kPlatforms> done{};  // each lane's settled units
    std::string to;                           // their token
    std::map<std::string, int64_t> counts;
    std::vector<registry::DeliveryFailure> failures;
  };
  void writeProgress(const RunPtr& run, std::shared_ptr<ProgressWrite> write);
  // A write (progress or split) is done: the next one if there is more to record, else pump().
  void afterWrite(const RunPtr& run);
  // Another run recorded progress for the job: it is theirs now.
  void lose(const RunPtr& run);
  void finish(const RunPtr& run, std::string abandoned_because = {});
  void release(const RunPtr& run);
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
  std::vector<uint32_t> home_;
  std::vector<bool> claiming_;  // per queue partition: a read is waiting
  size_t claims_waiting_ = 0;
  size_t next_home_ = 0;  // where the next round of reads starts in home_
  boost::asio::steady_timer upkeep_timer_;
  boost::asio::steady_timer schedule_timer_;
  std::map<std::string, RunPtr> active_;  // by NotificationQueue::jobMark()
  // Jobs of one notification usually follow each other; keep the last few parsed.
  std::deque<std::shared_ptr<const PreparedNotification>> recent_;
};

}  // namespace pushhub::gateway
