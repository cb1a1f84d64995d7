#include "gateway/dispatcher.h"

#include <algorithm>
#include <random>

#include "base/log.h"
#include "gateway/provider_factory.h"

namespace pushhub::gateway {
namespace {

using namespace std::chrono_literals;
using providers::OutcomeKind;

constexpr auto kClaimBlock = 1000ms;
constexpr auto kRedisRetryDelay = 500ms;
constexpr size_t kRecentNotifications = 8;
// Distinct templates a job keeps rendered; past this, further ones are rendered per target.
constexpr size_t kRenderedPerJob = 16;

std::chrono::milliseconds backoff(uint32_t attempt, std::chrono::seconds retry_after) {
  if (retry_after.count() > 0) return retry_after;
  // Exponential with full jitter: 0..(500 ms * 2^attempt), so a burst of failures spreads out.
  thread_local std::mt19937 rng{std::random_device{}()};
  auto cap = 500ms * (1u << std::min(attempt, 6u));
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(100, cap.count())(rng));
}

}  // namespace

struct Dispatcher::Run {
  registry::Job job;
  std::shared_ptr<const PreparedNotification> notification;
  registry::Hub hub;
  std::shared_ptr<HubClients> clients;  // kept alive by the job if the hub changes meanwhile
  JobBuckets buckets;
  size_t next_run = 0;       // buckets[next_run] holds the next bucket to resolve
  uint32_t next_bucket = 0;  // within it
  uint32_t resolving = 0;    // bucket resolves in flight
  bool finishing = false;
  size_t in_flight = 0;
  // Outcomes by [platform][outcomeIndex]: counted on every delivery, so a plain array rather
  // than a string-keyed map; finish() turns it into the "apns:Success" -> n map Redis takes.
  static_assert(static_cast<size_t>(registry::Platform::kWns) + 1 == kPlatforms);
  std::array<std::array<int64_t, kOutcomeNames.size()>, kPlatforms> counts{};
  // Templates this job has rendered. Rendering depends only on the notification and the
  // template, and a hub's installations mostly share a few templates: rendering once per job
  // instead of once per target saved ~5% of a templated broadcast's instructions.
  struct Rendered {
    registry::Platform platform;
    std::shared_ptr<const registry::InstallationTemplate> tpl;
    PreparedNotification::Rendered result;
  };
  std::vector<Rendered> rendered;
};

Dispatcher::Dispatcher(boost::asio::io_context& ioc, const Config& config,
                       const HubCatalog& catalog, registry::Registry& registry,
                       registry::NotificationQueue& queue, WorkerMetrics& metrics)
    : ioc_(ioc),
      config_(config),
      registry_(registry),
      queue_(queue),
      catalog_(catalog),
      metrics_(metrics),
      upkeep_timer_(ioc) {}

void Dispatcher::start() {
  armUpkeep();
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
}

void Dispatcher::retryLater(std::chrono::milliseconds delay, std::function<void()> action) {
  auto timer = std::make_shared<boost::asio::steady_timer>(ioc_, delay);
  timer->async_wait([timer, action = std::move(action)](boost::system::error_code) { action(); });
}

// Every partition has its own blocked read, one job at a time, so a job in any partition starts
// at once; a worker may therefore hold up to one job per partition beyond max_jobs_per_worker
// when reads return together. The next round starts after the partition that last had work.
void Dispatcher::claimMore() {
  if (stopping_ || starting_) return;
  const uint32_t partitions = queue_.partitions();
  for (uint32_t i = 0; i < partitions; ++i) {
    uint32_t p = (next_partition_ + i) % partitions;
    if (active_.size() >= config_.max_jobs_per_worker) return;
    if (claiming_[p]) continue;
    claiming_[p] = true;
    queue_.claim(p, 1, kClaimBlock, [this, p](Result<std::vector<registry::Job>> jobs) {
      claiming_[p] = false;
      if (!jobs) {
        WorkerMetrics::add(metrics_.redis_errors);
        return retryLater(kRedisRetryDelay, [this] { claimMore(); });
      }
      if (!jobs->empty()) next_partition_ = p + 1;
      for (auto& job : *jobs) startJob(std::move(job));
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
      queue_.touch(run->job, [this](Result<void> ok) {
        if (!ok) WorkerMetrics::add(metrics_.redis_errors);
      });
    }
    for (uint32_t p = 0; p < queue_.partitions(); ++p) {
      if (active_.size() >= config_.max_jobs_per_worker) break;
      queue_.reclaim(p, std::chrono::milliseconds(config_.job_idle_timeout_ms), 1,
                     [this](Result<std::vector<registry::Job>> jobs) {
                       if (!jobs) return WorkerMetrics::add(metrics_.redis_errors);
                       for (auto& job : *jobs) {
                         if (active_.count(jobKey(job)) != 0) continue;  // our own, running
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

bool Dispatcher::idle() const {
  return active_.empty() && !starting_ &&
         std::none_of(claiming_.begin(), claiming_.end(), [](bool c) { return c; });
}

std::string Dispatcher::jobKey(const registry::Job& job) {
  return job.stream + "/" + job.stream_id;
}

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
  active_.emplace(jobKey(run->job), run);
  if (auto n = cached(run->job.notification_id)) {
    run->notification = std::move(n);
    return begin(run);
  }
  load(run);
}

void Dispatcher::load(const RunPtr& run) {
  queue_.loadBody(run->job.notification_id, [this, run](Result<std::string> body) {
    if (!body && body.error().code != Error::Code::kNotFound) {
      WorkerMetrics::add(metrics_.redis_errors);
      log::get("dispatch")
          ->warn("notification {}: cannot load yet: {}", run->job.notification_id,
                 body.error().message);
      return retryLater(kRedisRetryDelay, [this, run] { load(run); });
    }
    if (!body) {
      log::get("dispatch")->warn("job {}: {}", run->job.stream_id, body.error().message);
      return finish(run);  // the record expired: nothing to deliver
    }
    auto prepared = prepareNotification(run->job.notification_id, *body);
    if (!prepared) {
      log::get("dispatch")->error("{}", prepared.error().message);
      return finish(run);  // nothing can ever deliver it: acknowledge so it is not retried forever
    }
    remember(*prepared);
    run->notification = std::move(*prepared);
    begin(run);
  });
}

void Dispatcher::begin(const RunPtr& run) {
  auto runtime = catalog_.find(run->notification->hub);
  auto range = decodeJob(run->job.payload);
  if (!runtime || !range) {
    log::get("dispatch")
        ->error("notification {}: unknown hub '{}' or bad job '{}'; dropping",
                run->notification->id, run->notification->hub, run->job.payload);
    return finish(run);
  }
  const HubSettings* hub = &runtime->settings;
  run->hub = registry::Hub{hub->name, hub->buckets};
  ClientsOf& entry = clients_[lowerName(hub->name)];
  if (entry.runtime != runtime) {  // first use, or the hub changed: new credentials
    entry.runtime = runtime;
    entry.clients = makeHubClients(ioc_, runtime->platforms);
  }
  run->clients = entry.clients;
  for (auto r : *range) {
    r.last = std::min(r.last, hub->buckets);
    if (r.first < r.last) run->buckets.push_back(r);
  }
  if (!run->buckets.empty()) run->next_bucket = run->buckets.front().first;
  pump(run);
}

void Dispatcher::pump(const RunPtr& run) {
  if (run->finishing) return;
  // Several buckets resolve at once: a broadcast is one Redis round trip per bucket, and waiting
  // for each in turn would leave the providers idle between them.
  while (run->resolving < config_.resolves_in_flight_per_job &&
         run->next_run < run->buckets.size() && run->in_flight < config_.max_in_flight_per_job) {
    resolveBucket(run, run->next_bucket++);
    if (run->next_bucket >= run->buckets[run->next_run].last &&
        ++run->next_run < run->buckets.size()) {
      run->next_bucket = run->buckets[run->next_run].first;
    }
  }
  if (run->resolving == 0 && run->next_run >= run->buckets.size() && run->in_flight == 0) {
    finish(run);
  }
}

void Dispatcher::resolveBucket(const RunPtr& run, uint32_t bucket) {
  ++run->resolving;
  registry_.resolve(run->hub, bucket, run->notification->selector,
                    [this, run, bucket](Result<std::vector<registry::ResolvedTarget>> targets) {
                      if (!targets) {
                        // Still counted as resolving while it waits, so the job cannot finish.
                        WorkerMetrics::add(metrics_.redis_errors);
                        return retryLater(kRedisRetryDelay, [this, run, bucket] {
                          --run->resolving;
                          resolveBucket(run, bucket);
                        });
                      }
                      --run->resolving;
                      WorkerMetrics::add(metrics_.buckets_resolved);
                      WorkerMetrics::add(metrics_.targets_resolved, targets->size());
                      // The targets are ours: deliver() takes their strings instead of copying.
                      for (auto& target : *targets) deliver(run, std::move(target));
                      pump(run);
                    });
}

void Dispatcher::deliver(const RunPtr& run, registry::ResolvedTarget&& target) {
  const auto& n = *run->notification;
  providers::Target to{std::move(target.installation_id), std::move(target.push_channel)};
  if (!n.uses_templates) {
    if (auto payload = n.native[static_cast<size_t>(target.platform)]) {
      sendOne(run, target.platform, std::move(to), std::move(payload), 1);
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
      count(run, target.platform, result.failure);
    } else if (i + 1 < templates.size()) {
      sendOne(run, target.platform, to, std::move(result.notification), 1);
    } else {
      sendOne(run, target.platform, std::move(to), std::move(result.notification), 1);
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

void Dispatcher::sendOne(const RunPtr& run, registry::Platform platform, providers::Target target,
                         std::shared_ptr<const providers::Notification> notification,
                         uint32_t attempt) {
  auto& client = run->clients->by_platform[static_cast<size_t>(platform)];
  if (!client) return count(run, platform, "InvalidCredentials");
  if (run->notification->expired(std::chrono::system_clock::now())) {
    return count(run, platform, "Expired");
  }
  ++run->in_flight;
  metrics_.in_flight.fetch_add(1, std::memory_order_relaxed);
  // The client keeps its own target until the outcome; the callback keeps this one for a retry
  // or expireChannel. The notification is shared by both (and by every other target of the job),
  // never copied.
  providers::Target sent = target;
  client->send(std::move(sent), notification,
               [this, run, platform, target = std::move(target), notification,
                attempt](providers::Outcome outcome) mutable {
                 // The client calls this exactly once: what it holds can be handed on.
                 onOutcome(run, platform, std::move(target), std::move(notification), attempt,
                           std::move(outcome));
               });
}

void Dispatcher::onOutcome(const RunPtr& run, registry::Platform platform, providers::Target target,
                           std::shared_ptr<const providers::Notification> notification,
                           uint32_t attempt, providers::Outcome outcome) {
  --run->in_flight;
  metrics_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  bool retryable =
      outcome.kind == OutcomeKind::kRetryAfter || outcome.kind == OutcomeKind::kRetryBackoff;
  if (retryable && attempt < config_.max_attempts && !stopping_) {
    WorkerMetrics::add(metrics_.retries);
    ++run->in_flight;  // still ours until the retry answers
    return retryLater(backoff(attempt, outcome.retry_after),
                      [this, run, platform, target = std::move(target),
                       notification = std::move(notification), attempt]() mutable {
                        --run->in_flight;
                        sendOne(run, platform, std::move(target), std::move(notification),
                                attempt + 1);
                        pump(run);
                      });
  }
  count(run, platform, outcome.azure_outcome);
  if (outcome.kind == OutcomeKind::kDropToken) {
    // The job stays open until the handle is marked, so a completed notification means its dead
    // handles are no longer targeted.
    ++run->in_flight;
    return registry_.expireChannel(run->hub, target.installation_id, target.push_channel,
                                   [this, run](Result<bool> marked) {
                                     --run->in_flight;
                                     if (marked && *marked) {
                                       WorkerMetrics::add(metrics_.handles_expired);
                                     }
                                     if (!marked) WorkerMetrics::add(metrics_.redis_errors);
                                     pump(run);
                                   });
  }
  pump(run);
}

void Dispatcher::count(const RunPtr& run, registry::Platform platform, std::string_view outcome) {
  size_t p = static_cast<size_t>(platform);
  size_t index = outcomeIndex(outcome);
  WorkerMetrics::add(metrics_.outcomes[p][index]);
  ++run->counts[p][index];
}

void Dispatcher::finish(const RunPtr& run) {
  run->finishing = true;
  // What Redis records: "<platform>:<outcome>" -> n, only for outcomes that happened.
  std::map<std::string, int64_t> counts;
  for (size_t p = 0; p < kPlatforms; ++p) {
    for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
      if (run->counts[p][o] != 0) {
        std::string key(registry::toString(static_cast<registry::Platform>(p)));
        key += ':';
        key += kOutcomeNames[o];
        counts.emplace(std::move(key), run->counts[p][o]);
      }
    }
  }
  queue_.complete(run->job, counts, [this, run](Result<void> ok) {
    if (!ok) {
      WorkerMetrics::add(metrics_.redis_errors);
      log::get("dispatch")
          ->warn("job {}: cannot acknowledge yet: {}", run->job.stream_id, ok.error().message);
      return retryLater(kRedisRetryDelay, [this, run] { finish(run); });
    }
    WorkerMetrics::add(metrics_.jobs_completed);
    active_.erase(jobKey(run->job));
    claimMore();
  });
}

}  // namespace pushhub::gateway
