#include "gateway/dispatcher.h"

#include <algorithm>
#include <random>

#include <boost/asio/post.hpp>

#include "base/log.h"
#include "gateway/provider_factory.h"

namespace pushhub::gateway {
namespace {

using namespace std::chrono_literals;
using providers::OutcomeKind;

constexpr auto kClaimBlock = 1000ms;
constexpr auto kClaimRoundBlock = 100ms;
constexpr auto kRedisRetryDelay = 500ms;
constexpr auto kSchedulePoll = 250ms;
constexpr size_t kDueSendsPerPoll = 100;
constexpr size_t kRecentNotifications = 8;
// Distinct templates a job keeps rendered; past this, further ones are rendered per target.
constexpr size_t kRenderedPerJob = 16;

// Exponential with full jitter: 100 ms .. 500 ms * 2^attempt (at most 32 s), so a burst of
// failures spreads out.
std::chrono::milliseconds backoff(uint32_t attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  auto cap = 500ms * (1u << std::min(attempt, 6u));
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(100, cap.count())(rng));
}

using OutcomeCounts = std::array<int64_t, kOutcomeNames.size()>;
using Counts = std::array<OutcomeCounts, kPlatforms>;

// What Redis records: "<platform>:<outcome>" -> n, only for outcomes that happened.
std::map<std::string, int64_t> toRecord(const Counts& counts) {
  std::map<std::string, int64_t> out;
  for (size_t p = 0; p < kPlatforms; ++p) {
    for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
      if (counts[p][o] == 0) continue;
      std::string key(registry::toString(static_cast<registry::Platform>(p)));
      key += ':';
      key += kOutcomeNames[o];
      out.emplace(std::move(key), counts[p][o]);
    }
  }
  return out;
}

}  // namespace

// One unit of one lane, between its resolve and the moment every target of the lane in it is
// final.
struct Dispatcher::LaneUnit {
  uint32_t outstanding = 1;  // targets without a final outcome, plus 1 while resolving
  OutcomeCounts counts{};
  std::vector<registry::DeliveryFailure> failures;
};

// A job's work for one platform. Lanes move through the job's units together while they keep
// pace, and each records its own progress, so a lane that lags can be split off: the units it has
// not reached go to a child job (the parent's remaining units of the lane stay its own), and the
// other lanes go on at their pace.
struct Dispatcher::Lane {
  uint32_t start = 0;  // this run delivers the platform's targets of units [start, end)
  uint32_t end = 0;
  bool split = false;           // `end` is where the lane was split off to a child job
  uint32_t settled = 0;         // every target of units [start, settled) is final
  uint32_t recorded = 0;        // units before this are counted in Redis
  std::deque<LaneUnit> window;  // units [settled, settled + window.size()), resolved or resolving
  size_t in_flight = 0;         // sends at a provider, waiting for a retry, or a dead handle's mark
  size_t retrying = 0;          // of those, waiting for a retry timer
  bool seen = false;            // a target of this platform turned up
  OutcomeCounts unrecorded{};   // counts of [recorded, settled), and of a write that failed
  std::vector<registry::DeliveryFailure> unrecorded_failures;

  bool covers(uint32_t unit) const { return unit >= start && unit < end; }
  bool done() const { return settled >= end; }
  LaneUnit& unit(uint32_t u) { return window[u - settled]; }
};

struct Dispatcher::Run {
  registry::Job job;
  std::shared_ptr<const PreparedNotification> notification;
  std::shared_ptr<const HubRuntime> runtime;
  registry::Hub hub;
  std::shared_ptr<HubClients> clients;     // kept alive by the job if the hub changes meanwhile
  HubCounters* counters = nullptr;         // the worker's counters of the hub (set by begin())
  std::vector<uint32_t> units;             // the bucket of each unit, in the job's order
  std::optional<registry::Platform> only;  // a child job: this platform alone
  uint32_t next_unit = 0;                  // the next unit to resolve
  std::array<Lane, kPlatforms> lanes;
  std::string progress = "0";  // the progress token Redis holds for the job (JobProgress)
  size_t failures_kept = 0;    // failures this run listed; at most failures_per_notification
  size_t test_targets = 0;     // a test send: targets delivered so far
  bool recording = false;      // a progress write (or a split) is in flight
  uint32_t resolving = 0;      // bucket resolves in flight
  size_t in_flight = 0;        // over every lane
  // Since when no unit could be resolved because of one lagging lane; zero: not held up.
  std::chrono::steady_clock::time_point held_since{};
  bool begun = false;  // loaded and started: pump() may run
  bool finishing = false;
  bool releasing = false;  // stop(): no new work; released once in-flight sends answered
  bool lost = false;       // another run recorded progress for this job: it owns it now
  // Retries waiting for their time, cancelled when the job is released.
  std::map<uint64_t, std::shared_ptr<boost::asio::steady_timer>> retries;
  uint64_t next_retry = 0;
  // Templates this job has rendered. Rendering depends only on the notification and the
  // template, and a hub's installations mostly share a few templates: rendering once per job
  // instead of once per target saved ~5% of a templated broadcast's instructions.
  struct Rendered {
    registry::Platform platform;
    std::shared_ptr<const registry::InstallationTemplate> tpl;
    PreparedNotification::Rendered result;
  };
  std::vector<Rendered> rendered;

  Lane& lane(registry::Platform p) { return lanes[static_cast<size_t>(p)]; }
  bool winding_down() const { return releasing || lost; }
  bool done() const {
    return resolving == 0 &&
           std::all_of(lanes.begin(), lanes.end(), [](const Lane& l) { return l.done(); });
  }
  bool unrecorded() const {
    return std::any_of(lanes.begin(), lanes.end(),
                       [](const Lane& l) { return l.settled > l.recorded; });
  }
  // Where resolving stops: the last unit any lane still needs.
  uint32_t resolve_end() const {
    uint32_t end = 0;
    for (const auto& l : lanes) end = std::max(end, l.end);
    return end;
  }
  // The token for the lanes as they would be with `done` units each counted.
  std::string token(const std::array<uint32_t, kPlatforms>& done) const {
    JobProgress p;
    for (size_t i = 0; i < kPlatforms; ++i) {
      p.lanes[i].done = done[i];
      if (lanes[i].split) p.lanes[i].split_at = lanes[i].end;
    }
    return encodeProgress(p);
  }
};

Dispatcher::Dispatcher(boost::asio::io_context& ioc, const Config& config,
                       const HubCatalog& catalog, registry::Registry& registry,
                       registry::NotificationQueue& queue, WorkerMetrics& metrics,
                       std::vector<uint32_t> home)
    : ioc_(ioc),
      config_(config),
      registry_(registry),
      queue_(queue),
      catalog_(catalog),
      metrics_(metrics),
      home_(std::move(home)),
      upkeep_timer_(ioc),
      schedule_timer_(ioc) {}

void Dispatcher::start() {
  armUpkeep();
  armScheduler();
  starting_ = true;
  claiming_.assign(queue_.partitions(), false);
  queue_.init([this](Result<void> ok) {
    starting_ = false;
    if (!ok) {
      log::get("dispatch")->warn("cannot create the consumer group yet: {}", ok.error().message);
      return retryLater(kRedisRetryDelay, [this] { start(); });
    }
    claimMore();
  });
}

void Dispatcher::stop() {
  stopping_ = true;
  upkeep_timer_.cancel();
  schedule_timer_.cancel();
  // pump() of a releasing job may erase it from active_.
  std::vector<RunPtr> runs;
  for (const auto& [key, run] : active_) runs.push_back(run);
  for (const auto& run : runs) {
    run->releasing = true;
    for (auto& [id, timer] : run->retries) timer->cancel();
    if (run->begun && !run->finishing) pump(run);  // else load() or finish() sees `releasing`
  }
}

void Dispatcher::retryLater(std::chrono::milliseconds delay, std::function<void()> action) {
  auto timer = std::make_shared<boost::asio::steady_timer>(ioc_, delay);
  timer->async_wait([timer, action = std::move(action)](boost::system::error_code) { action(); });
}

bool Dispatcher::parked(const Run& run) {
  if (!run.begun || run.finishing || run.recording || run.resolving != 0 || run.in_flight == 0) {
    return false;
  }
  return std::all_of(run.lanes.begin(), run.lanes.end(), [](const Lane& lane) {
    return lane.split || lane.in_flight == lane.retrying;
  });
}

size_t Dispatcher::freeSlots() const {
  if (active_.size() >= kParkedJobsPerSlot * config_.max_jobs_per_worker) return 0;
  size_t busy = 0;
  for (const auto& [key, run] : active_) busy += parked(*run) ? 0 : 1;
  return config_.max_jobs_per_worker - std::min(busy, config_.max_jobs_per_worker);
}

// A blocked read (one job each) on as many home partitions as there are free job slots, so a
// job in any of them starts at once and a worker never holds more than max_jobs_per_worker
// busy jobs. When slots are fewer than home partitions, reads go round them, each blocking only
// briefly so no partition waits long for this worker.
void Dispatcher::claimMore() {
  if (stopping_ || starting_) return;
  size_t slots = freeSlots();
  auto block = slots >= home_.size() ? kClaimBlock : kClaimRoundBlock;
  for (size_t i = 0; i < home_.size(); ++i) {
    if (claims_waiting_ >= slots) return;
    uint32_t p = home_[next_home_];
    next_home_ = (next_home_ + 1) % home_.size();
    if (claiming_[p]) continue;
    claiming_[p] = true;
    ++claims_waiting_;
    queue_.claim(p, 1, block, [this, p](Result<std::vector<registry::Job>> jobs) {
      claiming_[p] = false;
      --claims_waiting_;
      if (!jobs) {
        WorkerMetrics::add(metrics_.redis_errors);
        return retryLater(kRedisRetryDelay, [this] { claimMore(); });
      }
      for (auto& job : *jobs) {
        if (!stopping_) {
          startJob(std::move(job));
        } else {
          queue_.release(job, [](Result<void>) {});  // claimed as we stopped: someone else's
        }
      }
      claimMore();
    });
  }
}

// Every third of the idle timeout: running jobs are touched (their idle time reset, so nobody
// reclaims them), and jobs idle longer than the timeout in any consumer's pending list (a dead
// worker's, or one whose claim reply a failed Redis master never delivered) are taken over.
void Dispatcher::armUpkeep() {
  upkeep_timer_.expires_after(std::chrono::milliseconds(config_.job_idle_timeout_ms / 3));
  upkeep_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    for (const auto& [key, run] : active_) {
      if (run->lost) continue;  // touching would take it back from its new owner
      queue_.touch(run->job, [this](Result<void> ok) {
        if (!ok) WorkerMetrics::add(metrics_.redis_errors);
      });
    }
    // Up to the free slots from every partition; what arrives beyond them (replies cross) is
    // released at once for the next round, here or elsewhere.
    size_t room = freeSlots();
    for (uint32_t p = 0; p < queue_.partitions() && room > 0; ++p) {
      queue_.reclaim(p, std::chrono::milliseconds(config_.job_idle_timeout_ms), room,
                     [this](Result<std::vector<registry::Job>> jobs) {
                       if (!jobs) return WorkerMetrics::add(metrics_.redis_errors);
                       for (auto& job : *jobs) {
                         if (active_.count(registry::NotificationQueue::jobMark(job)) != 0)
                           continue;  // ours
                         if (stopping_ || freeSlots() == 0) {
                           queue_.release(job, [](Result<void>) {});
                           continue;
                         }
                         WorkerMetrics::add(metrics_.jobs_reclaimed);
                         log::get("dispatch")
                             ->info("job {} of notification {}: reclaimed", job.stream_id,
                                    job.notification_id);
                         startJob(std::move(job));
                       }
                     });
    }
    armUpkeep();
  });
}

void Dispatcher::armScheduler() {
  schedule_timer_.expires_after(kSchedulePoll);
  schedule_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    for (uint32_t p : home_) {
      queue_.moveDue(p, kDueSendsPerPoll, [this](Result<size_t> moved) {
        if (!moved) return WorkerMetrics::add(metrics_.redis_errors);
        WorkerMetrics::add(metrics_.scheduled_fired, *moved);
      });
    }
    armScheduler();
  });
}

void Dispatcher::countConnections(std::unordered_map<std::string, HubCounters>& hubs) const {
  for (const auto& [key, entry] : clients_) {
    auto& counters = hubs[entry.runtime->settings.name];
    for (size_t p = 0; p < kPlatforms; ++p) {
      if (const auto& client = entry.clients->by_platform[p]) {
        counters[p].connections += client->openConnections();
      }
    }
  }
}

bool Dispatcher::idle() const { return active_.empty() && !starting_ && claims_waiting_ == 0; }

std::shared_ptr<const PreparedNotification> Dispatcher::cached(const std::string& id) {
  for (const auto& n : recent_) {
    if (n->id == id) return n;
  }
  return nullptr;
}

void Dispatcher::remember(const std::shared_ptr<const PreparedNotification>& notification) {
  recent_.push_front(notification);
  if (recent_.size() > kRecentNotifications) recent_.pop_back();
}

void Dispatcher::startJob(registry::Job job) {
  WorkerMetrics::add(metrics_.jobs_started);
  auto run = std::make_shared<Run>();
  run->job = std::move(job);
  active_.emplace(registry::NotificationQueue::jobMark(run->job), run);
  if (run->job.payload == registry::NotificationQueue::kFireJob) return fireScheduled(run);
  run->notification = cached(run->job.notification_id);
  load(run);
}

void Dispatcher::fireScheduled(const RunPtr& run) {
  auto done = [this, run](Result<bool> fired) {
    if (!fired) {
      WorkerMetrics::add(metrics_.redis_errors);
      log::get("dispatch")
          ->warn("scheduled notification {}: cannot fire yet: {}", run->job.notification_id,
                 fired.error().message);
      if (run->releasing) return release(run);
      return retryLater(kRedisRetryDelay, [this, run] { fireScheduled(run); });
    }
    active_.erase(registry::NotificationQueue::jobMark(run->job));
    claimMore();
  };
  queue_.state(run->job.notification_id, [this, run, done](auto state) {
    if (!state) return done(state.error());
    // Gone, cancelled, or fired by an earlier run of this job (its plan is stored): fire() knows.
    if (!*state || (*state)->state != "scheduled") return queue_.fire(run->job, std::nullopt, done);
    auto request = std::make_shared<v1::SendNotificationRequest>();
    if (!request->ParseFromString((*state)->body)) {
      log::get("dispatch")
          ->error("scheduled notification {}: stored body does not parse; dropped",
                  run->job.notification_id);
      return queue_.fire(run->job, std::vector<std::string>{}, done);
    }
    auto runtime = catalog_.find(request->hub());
    if (!runtime) {
      log::get("dispatch")
          ->warn("scheduled notification {}: hub '{}' is not served here; released",
                 run->job.notification_id, request->hub());
      return release(run);
    }
    registry::Hub hub{runtime->settings.name, runtime->settings.buckets};
    planSend(registry_, hub, request, config_.buckets_per_job,
             [this, run, done](Result<std::vector<std::string>> plan) {
               if (!plan) return done(plan.error());
               queue_.fire(run->job, std::move(*plan), done);
             });
  });
}

void Dispatcher::load(const RunPtr& run) {
  bool want_body = run->notification == nullptr;
  queue_.startJob(run->job, want_body, [this, run](Result<registry::JobStart> start) {
    if (!start && start.error().code != Error::Code::kNotFound) {
      WorkerMetrics::add(metrics_.redis_errors);
      log::get("dispatch")
          ->warn("notification {}: cannot load yet: {}", run->job.notification_id,
                 start.error().message);
      if (run->releasing) return release(run);
      return retryLater(kRedisRetryDelay, [this, run] { load(run); });
    }
    if (!start || start->done) return finish(run);  // record expired, or a redelivery: ack it
    run->progress = std::move(start->progress);
    if (run->releasing) return release(run);
    if (!run->notification) {
      auto prepared = prepareNotification(run->job.notification_id, start->body);
      if (!prepared) {
        log::get("dispatch")->error("{}", prepared.error().message);
        // Nothing can ever deliver it: give it up so it is not retried forever.
        return finish(run, "the stored notification cannot be read");
      }
      remember(*prepared);
      run->notification = std::move(*prepared);
    }
    begin(run);
  });
}

void Dispatcher::begin(const RunPtr& run) {
  auto work = decodeJob(run->job.payload);
  auto progress = decodeProgress(run->progress);
  if (!work || !progress) {
    log::get("dispatch")
        ->error("notification {}: bad job '{}' (progress '{}')", run->job.notification_id,
                run->job.payload, run->progress);
    return finish(run, "bad job");
  }
  auto runtime = catalog_.find(run->notification->hub);
  if (!runtime) {
    return setAside(run, "hub '" + run->notification->hub + "' is not served here");
  }
  const HubSettings* hub = &runtime->settings;
  run->begun = true;
  run->runtime = runtime;
  run->hub = registry::Hub{hub->name, hub->buckets};
  ClientsOf& entry = clients_[lowerName(hub->name)];
  if (entry.runtime != runtime) {  // first use, or the hub changed: new credentials
    entry.runtime = runtime;
    entry.clients = makeHubClients(ioc_, runtime->platforms);
  }
  run->clients = entry.clients;
  run->counters = &metrics_.hubs[hub->name];
  // A direct send's units are runs of its handles; everyone else's are buckets.
  const auto& direct = run->notification->direct;
  uint32_t units = direct.empty() ? hub->buckets : directUnits(direct.size());
  for (const auto& r : work->buckets) {
    for (uint32_t b = r.first; b < std::min(r.last, units); ++b) run->units.push_back(b);
  }
  run->only = work->only;
  auto size = static_cast<uint32_t>(run->units.size());
  run->next_unit = size;
  for (size_t p = 0; p < kPlatforms; ++p) {
    Lane& lane = run->lanes[p];
    const auto& recorded = progress->lanes[p];
    bool mine = !run->only || static_cast<size_t>(*run->only) == p;
    lane.end = mine ? std::min(recorded.split_at.value_or(size), size) : 0;
    lane.split = recorded.split_at.has_value();
    lane.start = lane.settled = lane.recorded = std::min(recorded.done, lane.end);
    if (!lane.done()) run->next_unit = std::min(run->next_unit, lane.start);
  }
  if (std::any_of(run->lanes.begin(), run->lanes.end(), [](const Lane& l) { return l.split; })) {
    return confirmSplits(run);  // an earlier run split the job: its children must exist
  }
  pump(run);
}

void Dispatcher::setAside(const RunPtr& run, std::string why) {
  if (run->notification->expired(std::chrono::system_clock::now())) {
    log::get("dispatch")
        ->warn("notification {}: {} and its deadline has passed; abandoned",
               run->job.notification_id, why);
    return finish(run, std::move(why));
  }
  log::get("dispatch")
      ->warn("notification {}: {}; job {} released for another instance", run->job.notification_id,
             why, run->job.stream_id);
  release(run);
}

bool Dispatcher::roomToResolve(const Run& run) const {
  if (run.next_unit >= run.resolve_end()) return false;
  size_t in_flight = 0;
  for (const auto& lane : run.lanes) {
    if (lane.end <= run.next_unit) continue;  // done with resolving, or split off
    // The units past a lane's recorded progress are what a reclaim may redo: they stay within
    // windowUnits(), whatever one slow target holds up.
    if (run.next_unit >= lane.settled + windowUnits()) return false;
    in_flight += lane.in_flight;
  }
  return in_flight < config_.max_in_flight_per_job;
}

void Dispatcher::pump(const RunPtr& run) {
  if (run->finishing) return;
  if (run->winding_down()) {
    if (run->resolving != 0 || run->in_flight != 0 || run->recording) return;
    if (run->lost) {
      active_.erase(registry::NotificationQueue::jobMark(run->job));
      return claimMore();
    }
    if (run->unrecorded()) return record(run);
    return release(run);
  }
  // Several buckets resolve at once: a broadcast is one Redis round trip per bucket, and waiting
  // for each in turn would leave the providers idle between them.
  while (run->resolving < config_.resolves_in_flight_per_job && roomToResolve(*run)) {
    run->held_since = {};
    uint32_t unit = run->next_unit++;
    bool needed = false;
    for (auto& lane : run->lanes) {
      if (!lane.covers(unit)) continue;
      lane.window.emplace_back();
      needed = true;
    }
    if (needed) resolveBucket(run, unit, run->units[unit]);
  }
  if (run->done()) {
    if (!run->recording) finish(run);
    return;
  }
  if (run->next_unit < run->resolve_end() && run->resolving < config_.resolves_in_flight_per_job) {
    splitIfLagging(run);
  }
  // Left with only a split-off lane's sends or retries: the slot is free for another job.
  if (parked(*run)) claimMore();
}

// Held up with nothing left to resolve: when one lane alone holds the others back (its front
// unit resolved and waiting only for its own sends, every other lane past it) for
// split_lagging_platform_ms, its units from next_unit on become a child job.
void Dispatcher::splitIfLagging(const RunPtr& run) {
  if (config_.split_lagging_platform_ms == 0 || run->only || run->notification->test ||
      run->recording) {
    return;
  }
  Lane* lagging = nullptr;
  size_t lagging_platform = 0;
  for (size_t p = 0; p < kPlatforms; ++p) {
    Lane& lane = run->lanes[p];
    if (lane.split || lane.end <= run->next_unit) continue;
    if (!lagging || lane.settled < lagging->settled) {
      lagging = &lane;
      lagging_platform = p;
    }
  }
  bool others_ahead = false;
  if (lagging && !lagging->window.empty() && lagging->window.front().outstanding > 0 &&
      lagging->in_flight > 0) {
    others_ahead = true;
    bool another_seen = false;
    for (const auto& lane : run->lanes) {
      if (&lane == lagging || lane.split || lane.end <= run->next_unit) continue;
      others_ahead &= lane.settled > lagging->settled;
      another_seen |= lane.seen;
    }
    others_ahead &= another_seen;
  }
  if (!others_ahead) {
    run->held_since = {};
    return;
  }
  auto now = std::chrono::steady_clock::now();
  auto after = std::chrono::milliseconds(config_.split_lagging_platform_ms);
  if (run->held_since == std::chrono::steady_clock::time_point{}) {
    run->held_since = now;
    // Look again then, whether or not an answer comes meanwhile.
    return retryLater(after, [this, run] { pump(run); });
  }
  if (now - run->held_since < after) return;
  run->held_since = {};
  auto platform = static_cast<registry::Platform>(lagging_platform);
  lagging->end = run->next_unit;
  lagging->split = true;
  WorkerMetrics::add(metrics_.jobs_split);
  log::get("dispatch")
      ->info("job {} of notification {}: {} lags; its units {}..{} become a job of their own",
             run->job.stream_id, run->job.notification_id, registry::toString(platform),
             lagging->end, run->units.size());
  std::array<uint32_t, kPlatforms> recorded;
  for (size_t p = 0; p < kPlatforms; ++p) recorded[p] = run->lanes[p].recorded;
  writeSplit(run, platform, run->token(recorded), [this, run] { afterWrite(run); });
}

void Dispatcher::confirmSplits(const RunPtr& run, size_t from) {
  for (size_t p = from; p < kPlatforms; ++p) {
    if (!run->lanes[p].split) continue;
    return writeSplit(run, static_cast<registry::Platform>(p), run->progress,
                      [this, run, p] { confirmSplits(run, p + 1); });
  }
  run->recording = false;
  pump(run);
}

void Dispatcher::writeSplit(const RunPtr& run, registry::Platform platform, std::string to,
                            std::function<void()> then) {
  run->recording = true;
  // The child's buckets: the parent's units from the split on, as runs.
  JobBuckets buckets;
  for (uint32_t u = run->lane(platform).end; u < run->units.size(); ++u) {
    appendBucket(buckets, run->units[u]);
  }
  queue_.split(run->job, run->progress, to, encodeJob(buckets, platform),
               registry::toString(platform),
               [this, run, platform, to, then = std::move(then)](Result<bool> ok) mutable {
                 if (!ok) {
                   WorkerMetrics::add(metrics_.redis_errors);
                   return retryLater(kRedisRetryDelay, [this, run, platform, to, then] {
                     writeSplit(run, platform, to, then);
                   });
                 }
                 if (!*ok) return lose(run);
                 run->progress = std::move(to);
                 then();
               });
}

void Dispatcher::resolveDirect(const RunPtr& run, uint32_t unit) {
  ++run->resolving;
  // Posted, as a resolve's answer would be: pump() must not run inside its own loop.
  boost::asio::post(ioc_, [this, run, unit] {
    --run->resolving;
    if (run->winding_down()) return pump(run);  // the unit stays open for whoever takes the job
    const auto& direct = run->notification->direct;
    size_t first = size_t{run->units[unit]} * kDirectTargetsPerUnit;
    for (size_t i = first; i < std::min(direct.size(), first + kDirectTargetsPerUnit); ++i) {
      registry::ResolvedTarget target;
      target.platform = direct[i].platform;
      target.push_channel = direct[i].handle;
      deliver(run, unit, std::move(target));
    }
    resolved(run, unit);
  });
}

void Dispatcher::resolveBucket(const RunPtr& run, uint32_t unit, uint32_t bucket) {
  if (!run->notification->direct.empty()) return resolveDirect(run, unit);
  ++run->resolving;
  registry_.resolve(
      run->hub, bucket, run->notification->selector,
      [this, run, unit, bucket](Result<std::vector<registry::ResolvedTarget>> targets) {
        if (!targets) {
          // Still counted as resolving while it waits, so the job cannot finish.
          WorkerMetrics::add(metrics_.redis_errors);
          return retryLater(kRedisRetryDelay, [this, run, unit, bucket] {
            --run->resolving;
            if (run->winding_down()) return pump(run);
            resolveBucket(run, unit, bucket);
          });
        }
        --run->resolving;
        WorkerMetrics::add(metrics_.buckets_resolved);
        WorkerMetrics::add(metrics_.targets_resolved, targets->size());
        // The targets are ours: deliver() takes their strings instead of copying.
        for (auto& target : *targets) deliver(run, unit, std::move(target));
        resolved(run, unit);
      });
}

void Dispatcher::resolved(const RunPtr& run, uint32_t unit) {
  for (auto& lane : run->lanes) {
    if (lane.covers(unit)) --lane.unit(unit).outstanding;  // the resolve's own part
  }
  advance(run);
  pump(run);
}

void Dispatcher::deliver(const RunPtr& run, uint32_t unit, registry::ResolvedTarget&& target) {
  Lane& lane = run->lane(target.platform);
  if (!lane.covers(unit)) return;  // counted before, or another job's (a split)
  lane.seen = true;
  const auto& n = *run->notification;
  if (n.test && run->test_targets++ >= kMaxTestTargets) return;
  providers::Target to{std::move(target.installation_id), std::move(target.push_channel)};
  if (!n.uses_templates) {
    if (target.template_registration) return;  // as Azure: a template registration is not native
    if (auto payload = n.native[static_cast<size_t>(target.platform)]) {
      sendOne(run, unit, target.platform, std::move(to), std::move(payload), 1);
    }
    return;
  }
  // One send per template; only the last one can have the target's strings.
  const auto& templates = target.templates;
  for (size_t i = 0; i < templates.size(); ++i) {
    auto result = rendered(run, target.platform, templates[i].second);
    if (!result.notification) {
      // Over the platform's limit once rendered (or no longer valid): this device's outcome,
      // not the notification's failure.
      count(run, unit, target.platform, to, result.failure);
    } else if (i + 1 < templates.size()) {
      sendOne(run, unit, target.platform, to, std::move(result.notification), 1);
    } else {
      sendOne(run, unit, target.platform, std::move(to), std::move(result.notification), 1);
    }
  }
}

PreparedNotification::Rendered Dispatcher::rendered(
    const RunPtr& run, registry::Platform platform,
    const std::shared_ptr<const registry::InstallationTemplate>& tpl) {
  for (auto& r : run->rendered) {
    // Targets of one resolve share the template object; other buckets bring equal copies.
    if (r.platform == platform && (r.tpl == tpl || *r.tpl == *tpl)) {
      r.tpl = tpl;
      return r.result;
    }
  }
  auto result = run->notification->render(platform, *tpl);
  if (run->rendered.size() < kRenderedPerJob) {
    run->rendered.push_back({platform, tpl, result});
  }
  return result;
}

void Dispatcher::sendOne(const RunPtr& run, uint32_t unit, registry::Platform platform,
                         providers::Target target,
                         std::shared_ptr<const providers::Notification> notification,
                         uint32_t attempt) {
  Lane& lane = run->lane(platform);
  if (attempt == 1) ++lane.unit(unit).outstanding;  // settled once final, whatever the attempts
  auto& client = run->clients->by_platform[static_cast<size_t>(platform)];
  if (!client) {
    count(run, unit, platform, target, "InvalidCredentials");
    return settle(run, unit, platform);
  }
  if (run->notification->expired(std::chrono::system_clock::now())) {
    count(run, unit, platform, target, "Expired");
    return settle(run, unit, platform);
  }
  ++run->in_flight;
  ++lane.in_flight;
  ++(*run->counters)[static_cast<size_t>(platform)].in_flight;
  // The client keeps its own target until the outcome; the callback keeps this one for a retry
  // or expireChannel. The notification is shared by both (and by every other target of the job),
  // never copied.
  providers::Target sent = target;
  client->send(std::move(sent), notification,
               [this, run, unit, platform, target = std::move(target), notification, attempt,
                sent_at = std::chrono::steady_clock::now()](providers::Outcome outcome) mutable {
                 metrics_.latency[static_cast<size_t>(platform)].observe(
                     std::chrono::steady_clock::now() - sent_at);
                 // The client calls this exactly once: what it holds can be handed on.
                 onOutcome(run, unit, platform, std::move(target), std::move(notification), attempt,
                           std::move(outcome));
               });
}

void Dispatcher::onOutcome(const RunPtr& run, uint32_t unit, registry::Platform platform,
                           providers::Target target,
                           std::shared_ptr<const providers::Notification> notification,
                           uint32_t attempt, providers::Outcome outcome) {
  Lane& lane = run->lane(platform);
  --run->in_flight;
  --lane.in_flight;
  RouteCounters& route = (*run->counters)[static_cast<size_t>(platform)];
  --route.in_flight;
  bool retryable =
      outcome.kind == OutcomeKind::kRetryAfter || outcome.kind == OutcomeKind::kRetryBackoff;
  if (retryable && run->winding_down()) {
    return pump(run);  // not final: the unit stays open, so whoever takes the job redoes it
  }
  if (retryable && attempt < config_.max_attempts) {
    // The provider's Retry-After when it gave one (capped), else exponential backoff.
    auto delay =
        outcome.retry_after.count() > 0
            ? std::min<std::chrono::milliseconds>(
                  outcome.retry_after, std::chrono::milliseconds(config_.max_retry_delay_ms))
            : backoff(attempt);
    if (run->notification->expired(std::chrono::system_clock::now() + delay)) {
      count(run, unit, platform, target, "Expired", outcome.http_status, outcome.reason);
      return settle(run, unit, platform);
    }
    ++route.retries[outcomeIndex(outcome.azure_outcome)];
    // Still ours until the retry answers.
    ++run->in_flight;
    ++lane.in_flight;
    ++lane.retrying;
    uint64_t id = run->next_retry++;
    auto timer = std::make_shared<boost::asio::steady_timer>(ioc_, delay);
    run->retries.emplace(id, timer);
    // A job whose every target in flight now waits for a retry yields its slot.
    if (parked(*run)) claimMore();
    timer->async_wait([this, run, id, unit, platform, target = std::move(target),
                       notification = std::move(notification),
                       attempt](boost::system::error_code ec) mutable {
      Lane& lane = run->lane(platform);
      run->retries.erase(id);
      --run->in_flight;
      --lane.in_flight;
      --lane.retrying;
      if (!ec && !run->winding_down()) {
        sendOne(run, unit, platform, std::move(target), std::move(notification), attempt + 1);
      }
      pump(run);
    });
    return;
  }
  count(run, unit, platform, target, outcome.azure_outcome, outcome.http_status, outcome.reason);
  // A direct send's handle belongs to no installation: there is nothing to mark.
  if (outcome.kind == OutcomeKind::kDropToken && !target.installation_id.empty()) {
    // The unit stays open until the handle is marked, so a completed notification means its dead
    // handles are no longer targeted.
    ++run->in_flight;
    ++lane.in_flight;
    return registry_.expireChannel(run->hub, target.installation_id, target.push_channel,
                                   [this, run, unit, platform](Result<bool> marked) {
                                     --run->in_flight;
                                     --run->lane(platform).in_flight;
                                     if (marked && *marked) {
                                       WorkerMetrics::add(metrics_.handles_expired);
                                     }
                                     if (!marked) WorkerMetrics::add(metrics_.redis_errors);
                                     settle(run, unit, platform);
                                   });
  }
  settle(run, unit, platform);
}

void Dispatcher::count(const RunPtr& run, uint32_t unit, registry::Platform platform,
                       const providers::Target& target, std::string_view outcome, int http_status,
                       std::string_view reason) {
  size_t p = static_cast<size_t>(platform);
  size_t index = outcomeIndex(outcome);
  ++(*run->counters)[p].deliveries[index];
  LaneUnit& u = run->lanes[p].unit(unit);
  ++u.counts[index];
  // A test send lists every outcome (at most kMaxTestTargets), others what was not Success.
  if ((index != 0 || run->notification->test) &&
      run->failures_kept < std::max<size_t>(config_.failures_per_notification, kMaxTestTargets)) {
    ++run->failures_kept;
    u.failures.push_back({std::string(registry::toString(platform)), target.installation_id,
                          target.push_channel, http_status, std::string(kOutcomeNames[index]),
                          std::string(reason)});
  }
}

void Dispatcher::settle(const RunPtr& run, uint32_t unit, registry::Platform platform) {
  --run->lane(platform).unit(unit).outstanding;
  advance(run);
  pump(run);
}

void Dispatcher::advance(const RunPtr& run) {
  bool moved = false;
  for (auto& lane : run->lanes) {
    while (!lane.window.empty() && lane.window.front().outstanding == 0) {
      LaneUnit& done = lane.window.front();
      for (size_t o = 0; o < done.counts.size(); ++o) lane.unrecorded[o] += done.counts[o];
      std::move(done.failures.begin(), done.failures.end(),
                std::back_inserter(lane.unrecorded_failures));
      lane.window.pop_front();
      ++lane.settled;
      moved = true;
    }
  }
  // The last units' counts go with complete(): one write instead of two for a small send.
  if (moved && !run->recording && !run->finishing && !run->winding_down() && !run->done()) {
    record(run);
  }
}

void Dispatcher::record(const RunPtr& run) {
  run->recording = true;
  auto write = std::make_shared<ProgressWrite>();
  Counts counts{};
  for (size_t p = 0; p < kPlatforms; ++p) {
    Lane& lane = run->lanes[p];
    write->done[p] = lane.settled;
    counts[p] = std::exchange(lane.unrecorded, OutcomeCounts{});
    std::move(lane.unrecorded_failures.begin(), lane.unrecorded_failures.end(),
              std::back_inserter(write->failures));
    lane.unrecorded_failures.clear();
  }
  write->to = run->token(write->done);
  write->counts = toRecord(counts);
  writeProgress(run, std::move(write));
}

void Dispatcher::writeProgress(const RunPtr& run, std::shared_ptr<ProgressWrite> write) {
  queue_.progress(run->job, run->progress, write->to, write->counts, write->failures,
                  [this, run, write](Result<bool> ok) {
                    if (!ok) {
                      // Unknown whether it was written: the same write again is recognised if
                      // it was.
                      WorkerMetrics::add(metrics_.redis_errors);
                      return retryLater(kRedisRetryDelay,
                                        [this, run, write] { writeProgress(run, write); });
                    }
                    if (!*ok) return lose(run);
                    run->progress = write->to;
                    for (size_t p = 0; p < kPlatforms; ++p) {
                      run->lanes[p].recorded = write->done[p];
                    }
                    afterWrite(run);
                  });
}

void Dispatcher::afterWrite(const RunPtr& run) {
  run->recording = false;
  if (run->unrecorded() && !run->done() && !run->winding_down()) return record(run);
  pump(run);
}

void Dispatcher::lose(const RunPtr& run) {
  log::get("dispatch")
      ->warn("job {} of notification {}: taken over by another instance; leaving it",
             run->job.stream_id, run->job.notification_id);
  run->recording = false;
  run->lost = true;
  for (auto& [id, timer] : run->retries) timer->cancel();
  pump(run);
}

void Dispatcher::finish(const RunPtr& run, std::string abandoned_because) {
  run->finishing = true;
  Counts counts{};
  std::vector<registry::DeliveryFailure> failures;
  for (size_t p = 0; p < kPlatforms; ++p) {
    counts[p] = run->lanes[p].unrecorded;
    const auto& f = run->lanes[p].unrecorded_failures;
    failures.insert(failures.end(), f.begin(), f.end());
  }
  queue_.complete(
      run->job, toRecord(counts), failures, run->progress, abandoned_because,
      [this, run, abandoned_because](Result<void> ok) {
        if (!ok) {
          WorkerMetrics::add(metrics_.redis_errors);
          log::get("dispatch")
              ->warn("job {}: cannot acknowledge yet: {}", run->job.stream_id, ok.error().message);
          return retryLater(kRedisRetryDelay,
                            [this, run, abandoned_because] { finish(run, abandoned_because); });
        }
        WorkerMetrics::add(metrics_.jobs_completed);
        active_.erase(registry::NotificationQueue::jobMark(run->job));
        claimMore();
      });
}

void Dispatcher::release(const RunPtr& run) {
  run->finishing = true;
  log::get("dispatch")
      ->info("job {} of notification {}: released at progress {} of {} units", run->job.stream_id,
             run->job.notification_id, run->progress, run->units.size());
  queue_.release(run->job, [this, run](Result<void> ok) {
    // If the release is lost, the job waits for job_idle_timeout_ms instead.
    if (!ok) WorkerMetrics::add(metrics_.redis_errors);
    WorkerMetrics::add(metrics_.jobs_released);
    active_.erase(registry::NotificationQueue::jobMark(run->job));
    claimMore();
  });
}

}  // namespace pushhub::gateway
