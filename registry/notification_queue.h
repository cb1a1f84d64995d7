#pragma once
// NotificationQueue: the durable send queue (DESIGN.md, Data flow of a send, steps 2-3 and 5).
// The gateway owns a notification's content as an opaque blob; this class stores it, splits the
// work into jobs on a Redis Stream read by a consumer group, and counts outcomes.
//
// Redis layout:
//   ph:n:{<id>}   hash, TTL Options::record_ttl (refreshed by nothing: it is the retention)
//       body, hub, created_ms, jobs_total, jobs_done, state (enqueued | running | completed),
//       o:<platform>:<AzureOutcome> outcome counters (HINCRBY),
//       j:<stream>/<stream id> = 1 for every job already counted (makes complete() idempotent when
//       a reclaimed job is completed twice).
//   <stream>:{<p>} for p in 0..partitions-1 (default ph:jobs:{0} .. ph:jobs:{7}), each a Stream
//       with consumer group <group> (default dispatch); entry fields n = notification id,
//       j = opaque job payload. Each partition has its own hash tag, so on a Redis Cluster the
//       streams, and the queue traffic, spread over the masters; a send's jobs go round them.
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
#include <vector>

#include "base/result.h"
#include "registry/redis_client.h"

namespace pushhub::registry {

struct Job {
  std::string stream;  // the partition's stream key
  std::string stream_id;
  std::string notification_id;
  std::string payload;
};

struct NotificationState {
  std::string body;
  std::string hub;
  int64_t created_ms = 0;
  int64_t jobs_total = 0;
  int64_t jobs_done = 0;
  std::string state;                              // enqueued | running | completed
  std::map<std::string, int64_t> outcome_counts;  // "apns:Success" -> n
};

class NotificationQueue {
 public:
  struct Options {
    std::string stream = "ph:jobs";  // the partitions' key prefix
    uint32_t partitions = 8;
    std::string group = "dispatch";
    std::string consumer;  // empty: "<hostname>-<pid>-<n>"
    std::chrono::seconds record_ttl{7 * 24 * 3600};
  };

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

  // Writes the record (one script: HSET + EXPIRE), then XADDs every job (pipelined), then calls
  // back. Only after a successful callback may the caller hand out the id. With no jobs the
  // record is written as completed. On error some jobs may have been added; the record expires.
  void enqueue(const std::string& id, const std::string& hub, std::string body,
               std::vector<std::string> job_payloads, std::function<void(Result<void>)> cb);

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

  // The opaque body; marks the notification running. kNotFound when the record is gone.
  void loadBody(const std::string& id, std::function<void(Result<std::string>)> cb);

  // Adds the job's outcome counts ("apns:Success" -> n) to the record, increments jobs_done
  // (state completed when it reaches jobs_total, else running), then XACKs and XDELs the job
  // in its partition.
  // A job already counted (redelivered) or whose record expired is just acknowledged.
  void complete(const Job& job, const std::map<std::string, int64_t>& outcome_counts,
                std::function<void(Result<void>)> cb);

  // nullopt when the record does not exist (never enqueued or expired).
  void state(const std::string& id,
             std::function<void(Result<std::optional<NotificationState>>)> cb);

  static std::string recordKey(const std::string& id) { return "ph:n:{" + id + "}"; }

 private:
  RedisClient& commands_;
  std::vector<RedisClient*> readers_;
  Options options_;
  // Per partition; shared with in-flight reclaim callbacks, so none of them touches `this`.
  std::shared_ptr<std::vector<std::string>> reclaim_cursors_ =
      std::make_shared<std::vector<std::string>>();
};

}  // namespace pushhub::registry
