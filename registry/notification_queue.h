#pragma once
// NotificationQueue: the durable send queue (DESIGN.md, Data flow of a send, steps 2-3 and 5).
// The gateway owns a notification's content as an opaque blob; this class stores it, splits the
// work into jobs on a Redis Stream read by a consumer group, and counts outcomes.
//
// Redis layout:
//   ph:n:{<id>}   hash, TTL Options::record_ttl (refreshed by nothing: it is the retention)
//       body, hub, created_ms, start_ms, end_ms, jobs_total, jobs_done,
//       state (scheduled | enqueued | running | completed | notargetfound | abandoned |
//       cancelled), scheduled_ms for a scheduled send, q:<n> = the payload of job n of the send
//       while it is held back (see "One job ahead" below; a scheduled send keeps its whole plan
//       there), o:<platform>:<AzureOutcome> outcome counters (HINCRBY), targets = their sum,
//       p:<job mark> = a running job's progress: an opaque token its runs define (how far it got;
//       '0' when absent), compared before every move so only the job's owner moves it,
//       j:<job mark> = 1 for every job already counted (makes complete() idempotent when a
//       reclaimed job is completed twice), abandoned = why, when a job was given up.
//       The job mark is <stream>/<stream id>.
//   ph:idem:{<hub>:<key>} string, the notification id a send's idempotency key is tied to, TTL
//       the idempotency window.
//   ph:sched:{<p>} sorted set: scheduled sends of partition p by their time (ms); same slot as
//       the partition's stream. ph:once:{<p>}:<id>:<n> marks that job n of a send was added to
//       stream p by a step that a rerun repeats (a fire job, a job adding its successor, a
//       split; TTL the retention).
//   ph:n:{<id>}:f list of per-handle failures (at most Options::failures_per_notification, the
//       first ones), same TTL.
//   <stream>:{<p>} for p in 0..partitions-1 (default ph:jobs:{0} .. ph:jobs:{7}), each a Stream
//       with consumer group <group> (default dispatch); entry fields n = notification id,
//       h = its hub, j = opaque job payload, i = the job's ordinal n in its send. Each partition
//       has its own hash tag, so on a Redis Cluster the streams, and the queue traffic, spread
//       over the masters; a send's jobs go round them.
// One job ahead: a send's job n goes to partition (partitionOf(id) + n) % partitions, but only
// jobs 0 .. partitions-1 are XADDed at once. Job n + partitions (same partition) is added when
// job n starts (startJob), before job n can complete, from the record's q:<n + partitions>.
// So each send has at most one job waiting in each partition, and a send that comes later
// waits behind one job of each earlier send, not behind all of a broadcast's: slots go round
// the sends with work, whichever hub they are of. A send alone loses nothing: its next job is
// queued as soon as a worker takes the previous one.
// Ordering (the record and the stream sit in different Cluster slots, so no MULTI spans them):
// enqueue writes the record first and XADDs the jobs only after Redis confirmed it, so a worker
// never sees a job without its record; complete() updates the record first and XACKs + XDELs
// the job after, so a crash in between redelivers the job and the j:<id> mark stops a double
// count.
//
// Threading: all clients must live on the same io_context; only its thread calls this class.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "registry/redis_client.h"

namespace pushhub::registry {

struct Job {
  std::string stream;  // the partition's stream key
  std::string stream_id;
  std::string notification_id;
  std::string hub;  // the notification's hub; empty for a fire job
  std::string payload;
  // The job's place among its send's planned jobs; none for a fire job or a split's child.
  std::optional<uint32_t> ordinal;
};

// What the queue holds now (NotificationQueue::inspect): for operators.
struct QueueStats {
  struct Hub {
    uint64_t jobs = 0;      // queued or running
    int64_t oldest_ms = 0;  // when the oldest of them was queued
  };
  // Queued or running, over every partition (done jobs leave the stream). A send's jobs not yet
  // in the queue (one job ahead) are not counted.
  uint64_t jobs = 0;
  uint64_t running = 0;           // of those, claimed by an instance
  int64_t oldest_ms = 0;          // when the oldest job was queued; 0: none
  uint64_t scheduled = 0;         // scheduled sends not yet due
  int64_t next_scheduled_ms = 0;  // 0: none
  // By the hub of each job read; a fire job (a scheduled send being planned) has no hub and is
  // not listed here.
  std::map<std::string, Hub> hubs;
  // Some partition held more jobs than were read: `hubs` counts only its oldest ones.
  bool partial = false;
};

// One scheduled send, as NotificationQueue::listScheduled lists it.
struct ScheduledSend {
  std::string id;
  int64_t at_ms = 0;
  int64_t created_ms = 0;
};

// One target's final outcome other than Success (or any outcome, for a test send), as the
// notification's outcome details list it.
struct DeliveryFailure {
  std::string platform;  // registry::toString(platform)
  std::string installation_id;
  std::string handle;
  int http_status = 0;  // 0: no provider response
  std::string outcome;  // Azure's name
  std::string reason;   // the provider's reason or the transport error
};

struct NotificationState {
  std::string body;
  std::string hub;
  int64_t created_ms = 0;
  int64_t start_ms = 0;  // 0: not started
  int64_t end_ms = 0;    // 0: not ended
  int64_t jobs_total = 0;
  int64_t jobs_done = 0;
  // scheduled | enqueued | running | completed | notargetfound | abandoned | cancelled
  std::string state;
  std::string abandoned;                          // why, when abandoned
  int64_t scheduled_ms = 0;                       // a scheduled send's time; 0: sent at once
  std::map<std::string, int64_t> outcome_counts;  // "apns:Success" -> n
  std::vector<DeliveryFailure> failures;
};

// What startJob() finds in the record for one job.
struct JobStart {
  bool done = false;           // already counted (a redelivery): acknowledge it and do nothing else
  std::string progress = "0";  // the job's progress token as an earlier run recorded it
  std::string body;            // when asked for
};

class NotificationQueue {
 public:
  struct Options {
    std::string stream = "ph:jobs";  // the partitions' key prefix
    uint32_t partitions = 8;
    std::string group = "dispatch";
    std::string consumer;  // empty: "<hostname>-<pid>-<n>"
    std::chrono::seconds record_ttl{7 * 24 * 3600};
    uint32_t failures_per_notification = 1000;
  };
  // The idle time release() gives a job: older than any reclaim timeout.
  static constexpr std::chrono::hours kReleasedIdle{24};

  // `commands` serves normal commands; `readers` only XREADGROUP BLOCK (a blocked connection
  // cannot serve others): partition p is read through readers[p % readers.size()], so one
  // reader per partition lets every partition be waited on at once. All are borrowed and must
  // outlive the queue.
  NotificationQueue(RedisClient& commands, std::vector<RedisClient*> readers, Options options);

  const std::string& consumer() const { return options_.consumer; }
  uint32_t partitions() const { return options_.partitions; }
  std::string streamKey(uint32_t partition) const;

  // XGROUP CREATE <stream> <group> 0 MKSTREAM on every partition; an existing group (BUSYGROUP)
  // is success.
  void init(std::function<void(Result<void>)> cb);

  // Writes the record (one script: HSET + EXPIRE, with the jobs held back), then XADDs the first
  // job of each partition (pipelined), then calls back. Only after a successful callback may the
  // caller hand out the id. With no jobs the record is written as completed. On error some jobs may
  // have been added; the record expires.
  void enqueue(const std::string& id, const std::string& hub, std::string body,
               std::vector<std::string> job_payloads, std::function<void(Result<void>)> cb);

  // Scheduled sends. schedule() writes the record (state scheduled, kept until `at_ms` plus the
  // retention), then adds the id to its partition's schedule (scheduleKey, a sorted set by time
  // in the same Cluster slot as the partition's stream). moveDue() moves the sends whose time has
  // come into their stream as fire jobs (payload kFireJob), atomically, so each moves exactly
  // once whichever instances call it. A fire job is handled by fire(): the first run stores
  // `plan` (the job payloads, from planning the send then) and the send becomes enqueued; a run
  // of a reclaimed fire job adds the stored plan instead (nullopt: the plan is not known yet and
  // the send is still scheduled, so nothing happens). The plan's first job of each partition is
  // XADDed at most once (a mark ph:once:{p}:<id>:<n> in its stream's slot; the others follow one
  // job ahead, as an enqueued send's), then the fire job is acknowledged. False when the
  // send was cancelled or its record is gone (the fire job is acknowledged, nothing added).
  static constexpr std::string_view kFireJob = "fire";
  std::string scheduleKey(uint32_t partition) const;
  void schedule(const std::string& id, const std::string& hub, std::string body, int64_t at_ms,
                std::function<void(Result<void>)> cb);
  void moveDue(uint32_t partition, size_t max, std::function<void(Result<size_t>)> cb);
  void fire(const Job& fire_job, std::optional<std::vector<std::string>> plan,
            std::function<void(Result<bool>)> cb);
  // Calls off a scheduled send of `hub` (its stored, canonical name): kNotFound when there is no
  // such notification of this hub, kFailedPrecondition when it is no longer scheduled.
  void cancel(const std::string& hub, const std::string& id, std::function<void(Result<void>)> cb);
  // Lists the scheduled sends of `hub` (stored name), earliest first, at most `max`; reads at
  // most kScheduleScan of each partition's earliest entries.
  static constexpr size_t kScheduleScan = 10000;
  void listScheduled(const std::string& hub, size_t max,
                     std::function<void(Result<std::vector<ScheduledSend>>)> cb);

  // Depth, age and spread of the queue, reading at most `scan` jobs of each partition to tell
  // their hubs (XLEN, XPENDING, XRANGE, ZCARD and ZRANGE per partition, all at once).
  void inspect(size_t scan, std::function<void(Result<QueueStats>)> cb);

  // XACK + XDEL: the job is done and leaves the stream.
  void acknowledge(const Job& job, std::function<void(Result<void>)> cb);

  // Ties an idempotency key of `hub` to `id` for `window`, unless it is tied already: then the
  // callback gets the id it is tied to (empty when the key was free and is now `id`'s).
  void reserveIdempotencyKey(const std::string& hub, const std::string& key, const std::string& id,
                             std::chrono::milliseconds window,
                             std::function<void(Result<std::string>)> cb);
  // Frees a key reserved for a send that could not be stored.
  void releaseIdempotencyKey(const std::string& hub, const std::string& key);
  static std::string idempotencyKey(const std::string& hub, const std::string& key) {
    return "ph:idem:{" + hub + ":" + key + "}";
  }

  // XREADGROUP GROUP <group> <consumer> COUNT max BLOCK block STREAMS <partition's stream> >,
  // on the partition's reader. An empty vector when nothing arrived within `block`.
  void claim(uint32_t partition, size_t max, std::chrono::milliseconds block,
             std::function<void(Result<std::vector<Job>>)> cb);

  // XAUTOCLAIM on one partition: takes over up to `max` jobs idle longer than `min_idle` in any
  // consumer's pending list (a crashed worker's). Continues from where the previous call on the
  // partition stopped and wraps around. Entries deleted meanwhile are dropped by Redis.
  void reclaim(uint32_t partition, std::chrono::milliseconds min_idle, size_t max,
               std::function<void(Result<std::vector<Job>>)> cb);

  // XCLAIM <stream> <group> <consumer> 0 <id> JUSTID: resets the idle time of a job this
  // consumer is working on, so reclaim() elsewhere leaves it alone.
  void touch(const Job& job, std::function<void(Result<void>)> cb);

  // Before working on a job: marks the notification running (and its start time), adds the
  // job's successor if it has one (once, however often the job is started), and tells whether the
  // job was already counted and how far an earlier run of it got. With `want_body` the opaque
  // body comes too. kNotFound when the record is gone.
  void startJob(const Job& job, bool want_body, std::function<void(Result<JobStart>)> cb);

  // Moves the job's progress token from `from` to `to`, adding the outcome counts ("apns:Success"
  // -> n) and failures of the work between, only if the recorded progress is still `from` (a run
  // that lost its job to a reclaim must not count twice). True when recorded (or recorded before:
  // a retried write); false when another run owns the job.
  void progress(const Job& job, std::string_view from, std::string_view to,
                const std::map<std::string, int64_t>& outcome_counts,
                const std::vector<DeliveryFailure>& failures, std::function<void(Result<bool>)> cb);

  // Hands part of a running job to a new job (its child): moves the progress token from `from`
  // to `to` (which tells the job's runs what is no longer theirs), adds one to the
  // notification's jobs, then XADDs `child_payload` to the job's own partition, once per
  // (job, `child_name`) whoever calls it: calling it again with from == to (a reclaimed run that
  // finds the split in its token) adds the child only if it was not added. False when another
  // run owns the job.
  void split(const Job& job, std::string_view from, std::string_view to, std::string child_payload,
             std::string_view child_name, std::function<void(Result<bool>)> cb);

  // Adds the outcome counts and failures of the work after `from` (the progress the caller
  // recorded or started from; if the record says otherwise another run owns the job, and nothing
  // is counted) to the record, increments
  // jobs_done (the last job sets the end time and the final state: completed, notargetfound
  // when no target had an outcome, or abandoned when this or another job was given up with a
  // reason), then XACKs and XDELs the job in its partition. A job already counted (redelivered)
  // or whose record expired is just acknowledged.
  void complete(const Job& job, const std::map<std::string, int64_t>& outcome_counts,
                const std::vector<DeliveryFailure>& failures, std::string_view from,
                std::string_view abandoned_because, std::function<void(Result<void>)> cb);

  // Gives a job this consumer holds back to the group, idle as if abandoned long ago, so the
  // next reclaim() of any instance takes it (at shutdown, or a hub this instance lacks).
  void release(const Job& job, std::function<void(Result<void>)> cb);

  // nullopt when the record does not exist (never enqueued or expired).
  void state(const std::string& id,
             std::function<void(Result<std::optional<NotificationState>>)> cb);

  // The latest sends of `hub` (stored name), newest first: enqueue() and schedule() list each id
  // in recentKey(hub), trimmed to kRecentKept, after its record is written (so a send whose
  // listing failed is still delivered, only not listed). recent() reads at most `max` of them
  // with their records (failures left out), skipping those whose record has expired.
  static constexpr size_t kRecentKept = 100;
  static std::string recentKey(const std::string& hub) { return "ph:recent:{" + hub + "}"; }
  void recent(
      const std::string& hub, size_t max,
      std::function<void(Result<std::vector<std::pair<std::string, NotificationState>>>)> cb);

  static std::string recordKey(const std::string& id) { return "ph:n:{" + id + "}"; }
  static std::string failuresKey(const std::string& id) { return recordKey(id) + ":f"; }
  static std::string jobMark(const Job& job);
  static std::string encodeFailure(const DeliveryFailure& failure);

 private:
  // ARGV of the progress and complete scripts: the job mark, the failure limit, the number of
  // count pairs, then `head`'s other values, the pairs and the failures.
  std::vector<std::string> outcomeArgs(std::vector<std::string> head,
                                       const std::map<std::string, int64_t>& outcome_counts,
                                       const std::vector<DeliveryFailure>& failures) const;

  // The partition a notification's first job (and its schedule entry) goes to.
  uint32_t partitionOf(const std::string& id) const;
  // Lists `id` first in recentKey(hub); not waited for.
  void remember(RedisClient& redis, const std::string& hub, const std::string& id);
  // XADDs a job of notification `id` to `stream` unless the same (id, `name`) was added there
  // before: for adds that a rerun of their caller repeats.
  void addOnce(const std::string& stream, const std::string& id, const std::string& hub,
               std::string payload, std::string_view name, std::optional<uint32_t> ordinal,
               std::function<void(Result<void>)> cb);

  RedisClient& commands_;
  std::vector<RedisClient*> readers_;
  Options options_;
  // Per partition; shared with in-flight reclaim callbacks, so none of them touches `this`.
  std::shared_ptr<std::vector<std::string>> reclaim_cursors_ =
      std::make_shared<std::vector<std::string>>();
};

}  // namespace pushhub::registry
