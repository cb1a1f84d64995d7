#include "registry/notification_queue.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cassert>
#include <charconv>
#include <memory>
#include <optional>

namespace pushhub::registry {
namespace {

// A job's progress (field p:<job mark>) is an opaque token the caller defines; '0' when none is
// recorded. Scripts that move it check the caller's idea of it first, so a run that lost its job
// to a reclaim (or never saw another run's write) changes nothing.

// KEYS: record. ARGV: body, hub, created_ms, jobs_total, state, ttl seconds, the ordinal of the
// first job held back, the payloads of the jobs held back (q:<ordinal>, added as earlier ones
// start).
const Script& writeRecordScript() {
  static const Script s(R"lua(
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'hub', ARGV[2], 'created_ms', ARGV[3],
           'jobs_total', ARGV[4], 'jobs_done', 0, 'state', ARGV[5])
local first = tonumber(ARGV[7])
for i = 8, #ARGV do redis.call('HSET', KEYS[1], 'q:' .. (first + i - 8), ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
)lua");
  return s;
}

// KEYS: the hub's recent list. ARGV: id, how many to keep, TTL (s): a hub that stops sending
// lets its list expire with its last records.
const Script& rememberScript() {
  static const Script s(R"lua(
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
)lua");
  return s;
}

// KEYS: record. ARGV: job mark, 1 to return the body, now ms, the ordinal of the job's successor
// or ''.
// false: record gone; {1}: the job was already counted; {0, progress, body, successor's payload
// or ''}: start it (the notification becomes running, its start time is set once).
const Script& startJobScript() {
  static const Script s(R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HEXISTS', KEYS[1], 'j:' .. ARGV[1]) == 1 then return {1} end
if redis.call('HGET', KEYS[1], 'state') == 'enqueued' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
redis.call('HSETNX', KEYS[1], 'start_ms', ARGV[3])
local progress = redis.call('HGET', KEYS[1], 'p:' .. ARGV[1]) or '0'
local body = ''
if ARGV[2] == '1' then body = redis.call('HGET', KEYS[1], 'body') end
local successor = ''
if ARGV[4] ~= '' then successor = redis.call('HGET', KEYS[1], 'q:' .. ARGV[4]) or '' end
return {0, progress, body, successor}
)lua");
  return s;
}

// Shared by the progress and complete scripts: adds the outcome counts (ARGV[first..] pairs up
// to the failures) and the failures (at most ARGV[2] kept in KEYS[2]).
// ARGV: job mark, failure limit, number of count pairs, pairs..., failures...
constexpr std::string_view kAddOutcomes = R"lua(
local function add_outcomes(first)
  local npairs = tonumber(ARGV[3])
  local targets = 0
  for i = first, first + 2 * npairs - 1, 2 do
    redis.call('HINCRBY', KEYS[1], 'o:' .. ARGV[i], ARGV[i + 1])
    targets = targets + tonumber(ARGV[i + 1])
  end
  if targets > 0 then redis.call('HINCRBY', KEYS[1], 'targets', targets) end
  local room = tonumber(ARGV[2]) - redis.call('LLEN', KEYS[2])
  local kept = 0
  for i = first + 2 * npairs, #ARGV do
    if kept >= room then break end
    redis.call('RPUSH', KEYS[2], ARGV[i])
    kept = kept + 1
  end
  local ttl = redis.call('TTL', KEYS[1])
  if kept > 0 and ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
end
)lua";

// Shared by the progress and split scripts: moves the job's progress token (ARGV[1] is the job
// mark) from `from` to `to`. 1: moved; 2: already there (a retry of a write whose reply was
// lost); 0: the token is neither, or the job was completed: another run owns it; -1: record gone.
constexpr std::string_view kMoveProgress = R"lua(
local function move_progress(from, to)
  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
  if redis.call('HEXISTS', KEYS[1], 'j:' .. ARGV[1]) == 1 then return 0 end
  local mark = 'p:' .. ARGV[1]
  local now = redis.call('HGET', KEYS[1], mark) or '0'
  if now == to then return 2 end
  if now ~= from then return 0 end
  redis.call('HSET', KEYS[1], mark, to)
  return 1
end
)lua";

// KEYS: record, failures. ARGV: job mark, failure limit, pairs, from, to, pairs..., failures...
// move_progress's answer; a move adds the counts and failures.
const Script& progressScript() {
  static const Script s(std::string(kAddOutcomes) + std::string(kMoveProgress) + R"lua(
local moved = move_progress(ARGV[4], ARGV[5])
if moved == 1 then add_outcomes(6) end
return moved
)lua");
  return s;
}

// KEYS: record. ARGV: job mark, progress from, progress to. move_progress's answer; a move adds
// one job to the notification (jobs_total): the job's child.
const Script& splitScript() {
  static const Script s(std::string(kMoveProgress) + R"lua(
local moved = move_progress(ARGV[2], ARGV[3])
if moved == 1 then redis.call('HINCRBY', KEYS[1], 'jobs_total', 1) end
return moved
)lua");
  return s;
}

// KEYS: record, failures. ARGV: job mark, failure limit, pairs, now ms, why abandoned or '',
// progress the caller counted from, pairs..., failures...
// -1: record gone; 0: this job was already counted, or another run recorded progress: 1: counted.
// The last job sets the end time and the final state: the one given (abandoned), else completed, or
// notargetfound when no target had an outcome.
const Script& completeScript() {
  static const Script s(std::string(kAddOutcomes) + R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'p:' .. ARGV[1]) or '0') ~= ARGV[6] then return 0 end
if redis.call('HSETNX', KEYS[1], 'j:' .. ARGV[1], 1) == 0 then return 0 end
redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1])
add_outcomes(7)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'abandoned', ARGV[5]) end
local done = redis.call('HINCRBY', KEYS[1], 'jobs_done', 1)
local total = tonumber(redis.call('HGET', KEYS[1], 'jobs_total'))
if done < total then
  redis.call('HSET', KEYS[1], 'state', 'running')
  return 1
end
local state = 'completed'
if redis.call('HEXISTS', KEYS[1], 'abandoned') == 1 then
  state = 'abandoned'
elseif tonumber(redis.call('HGET', KEYS[1], 'targets') or '0') == 0 then
  state = 'notargetfound'
end
redis.call('HSET', KEYS[1], 'state', state, 'end_ms', ARGV[4])
return 1
)lua");
  return s;
}

// KEYS: the idempotency key. ARGV: id, window ms. '' when reserved for the id, else the id it
// is tied to.
const Script& reserveKeyScript() {
  static const Script s(R"lua(
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return '' end
return redis.call('GET', KEYS[1]) or ''
)lua");
  return s;
}

// KEYS: schedule (zset of partition p), stream p (same slot). ARGV: now ms, max.
// Moves the sends whose time has come from the schedule into the stream as fire jobs, each
// exactly once whoever runs it. Returns how many moved.
const Script& moveDueScript() {
  static const Script s(R"lua(
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'n', id, 'j', 'fire')
end
return #due
)lua");
  return s;
}

// KEYS: record. ARGV: now ms, 1 when a plan is given, ttl seconds, how many jobs to return, then
// the plan's job payloads.
// false: record gone or the send cancelled; 0: still scheduled and no plan given. Otherwise
// {hub, payloads of the first jobs}: the plan is the one given if the send was still scheduled
// (stored as q:<ordinal>; the send becomes enqueued, or notargetfound with no job), else the
// one stored by the run that fired it first.
const Script& fireScript() {
  static const Script s(R"lua(
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'cancelled' then return false end
if state == 'scheduled' then
  if ARGV[2] ~= '1' then return 0 end
  local jobs = #ARGV - 4
  redis.call('HSET', KEYS[1], 'jobs_total', jobs, 'created_ms', ARGV[1],
             'state', jobs == 0 and 'notargetfound' or 'enqueued')
  for i = 5, #ARGV do redis.call('HSET', KEYS[1], 'q:' .. (i - 5), ARGV[i]) end
  if jobs == 0 then redis.call('HSET', KEYS[1], 'end_ms', ARGV[1]) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local out = {redis.call('HGET', KEYS[1], 'hub') or ''}
for i = 0, tonumber(ARGV[4]) - 1 do
  local payload = redis.call('HGET', KEYS[1], 'q:' .. i)
  if not payload then break end
  out[#out + 1] = payload
end
return out
)lua");
  return s;
}

// KEYS: stream, its once-mark for this job (same slot). ARGV: id, payload, ttl seconds, hub, the
// job's ordinal in its send or ''.
// XADDs the job unless its mark says it was added before (by an earlier run of whoever adds it).
const Script& addOnceScript() {
  static const Script s(R"lua(
if redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[3]) then
  if ARGV[5] == '' then
    redis.call('XADD', KEYS[1], '*', 'n', ARGV[1], 'h', ARGV[4], 'j', ARGV[2])
  else
    redis.call('XADD', KEYS[1], '*', 'n', ARGV[1], 'h', ARGV[4], 'j', ARGV[2], 'i', ARGV[5])
  end
end
return 1
)lua");
  return s;
}

// KEYS: record. ARGV: hub, now ms. false: no such notification of this hub; 1: cancelled; else
// the state it is in.
const Script& cancelScript() {
  static const Script s(R"lua(
local state = redis.call('HGET', KEYS[1], 'state')
if not state or redis.call('HGET', KEYS[1], 'hub') ~= ARGV[1] then return false end
if state ~= 'scheduled' then return state end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'end_ms', ARGV[2])
return 1
)lua");
  return s;
}

// Calls `cb` once `left` parts are done, with the first error if any.
struct Join {
  Join(size_t parts, std::function<void(Result<void>)> callback)
      : left(parts), cb(std::move(callback)) {}
  void done(Result<void> part) {
    if (!part && !error) error = part.error();
    if (--left == 0) error ? cb(*error) : cb(Result<void>());
  }
  size_t left;
  std::optional<Error> error;
  std::function<void(Result<void>)> cb;
};

std::string defaultConsumer() {
  static std::atomic<int> counter{0};
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  return fmt::format("{}-{}-{}", host[0] != '\0' ? host : "pushhubd", ::getpid(), ++counter);
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<void> validateId(const std::string& id) {
  if (id.empty() || id.size() > 128) {
    return Error::invalidArgument("notificationId: must be 1-128 characters");
  }
  if (id.find_first_of("{}") != std::string::npos) {
    return Error::invalidArgument("notificationId: must not contain '{' or '}'");
  }
  return {};
}

// Entries of XREADGROUP / XAUTOCLAIM: [[id, [field, value, ...]], ...].
std::vector<Job> parseEntries(const std::string& stream, const RedisReply& entries) {
  std::vector<Job> jobs;
  jobs.reserve(entries.elements.size());
  for (const auto& e : entries.elements) {
    if (e.elements.size() != 2 || e.elements[1].type != RedisReply::Type::kArray) {
      continue;  // deleted entry (older servers return it with nil fields)
    }
    Job job;
    job.stream = stream;
    job.stream_id = e.elements[0].str;
    const auto& fields = e.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "n") {
        job.notification_id = fields[i + 1].str;
      } else if (fields[i].str == "j") {
        job.payload = fields[i + 1].str;
      } else if (fields[i].str == "h") {
        job.hub = fields[i + 1].str;
      } else if (fields[i].str == "i") {
        const std::string& v = fields[i + 1].str;
        uint32_t ordinal = 0;
        if (std::from_chars(v.data(), v.data() + v.size(), ordinal).ec == std::errc()) {
          job.ordinal = ordinal;
        }
      }
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

}  // namespace

NotificationQueue::NotificationQueue(RedisClient& commands, std::vector<RedisClient*> readers,
                                     Options options)
    : commands_(commands), readers_(std::move(readers)), options_(std::move(options)) {
  assert(!readers_.empty() && options_.partitions > 0);
  if (options_.consumer.empty()) {
    options_.consumer = defaultConsumer();
  }
  reclaim_cursors_->assign(options_.partitions, "0-0");
}

std::string NotificationQueue::streamKey(uint32_t partition) const {
  return options_.stream + ":{" + std::to_string(partition) + "}";
}

void NotificationQueue::init(std::function<void(Result<void>)> cb) {
  auto join = std::make_shared<Join>(options_.partitions, std::move(cb));
  for (uint32_t p = 0; p < options_.partitions; ++p) {
    commands_.command({"XGROUP", "CREATE", streamKey(p), options_.group, "0", "MKSTREAM"},
                      [join](Result<RedisReply> r) {
                        if (!r && r.error().message.rfind("BUSYGROUP", 0) != 0) {
                          return join->done(r.error());
                        }
                        join->done({});
                      });
  }
}

void NotificationQueue::enqueue(const std::string& id, const std::string& hub, std::string body,
                                std::vector<std::string> job_payloads,
                                std::function<void(Result<void>)> cb) {
  if (auto r = validateId(id); !r) {
    boost::asio::post(commands_.ioContext(), [cb = std::move(cb), e = r.error()] { cb(e); });
    return;
  }
  size_t total = job_payloads.size();
  size_t queued = std::min<size_t>(total, options_.partitions);
  std::vector<std::string> args{std::move(body),
                                hub,
                                std::to_string(nowMs()),
                                std::to_string(total),
                                total == 0 ? "notargetfound" : "enqueued",
                                std::to_string(options_.record_ttl.count()),
                                std::to_string(queued)};
  // Held back in the record: job n + partitions is added when job n starts.
  for (size_t n = queued; n < total; ++n) args.push_back(std::move(job_payloads[n]));
  job_payloads.resize(queued);
  RedisClient* redis = &commands_;
  commands_.evalScript(
      writeRecordScript(), {recordKey(id)}, std::move(args),
      [this, redis, id, hub, payloads = std::move(job_payloads),
       cb = std::move(cb)](Result<RedisReply> r) mutable {
        if (!r) {
          return cb(r.error());
        }
        remember(*redis, hub, id);
        if (payloads.empty()) {
          return cb(Result<void>());
        }
        // Every XADD is written at once (pipelined per master); the callback waits for all.
        auto join = std::make_shared<Join>(payloads.size(), std::move(cb));
        uint32_t first = partitionOf(id);
        for (size_t n = 0; n < payloads.size(); ++n) {
          redis->command(
              {"XADD", streamKey(static_cast<uint32_t>((first + n) % options_.partitions)), "*",
               "n", id, "h", hub, "j", std::move(payloads[n]), "i", std::to_string(n)},
              [join](Result<RedisReply> x) {
                join->done(x ? Result<void>() : Result<void>(x.error()));
              });
        }
      });
}

std::string NotificationQueue::scheduleKey(uint32_t partition) const {
  return "ph:sched:{" + std::to_string(partition) + "}";
}

uint32_t NotificationQueue::partitionOf(const std::string& id) const {
  return crc16Xmodem(id) % options_.partitions;
}

void NotificationQueue::schedule(const std::string& id, const std::string& hub, std::string body,
                                 int64_t at_ms, std::function<void(Result<void>)> cb) {
  if (auto r = validateId(id); !r) {
    boost::asio::post(commands_.ioContext(), [cb = std::move(cb), e = r.error()] { cb(e); });
    return;
  }
  int64_t now = nowMs();
  // Kept until its time and for the retention after it.
  int64_t ttl_s = std::max<int64_t>(0, at_ms - now) / 1000 + 1 + options_.record_ttl.count();
  std::vector<std::string> args{std::move(body),      hub, std::to_string(now), "0", "scheduled",
                                std::to_string(ttl_s)};
  RedisClient* redis = &commands_;
  commands_.evalScript(writeRecordScript(), {recordKey(id)}, std::move(args),
                       [this, redis, id, hub, at_ms, key = scheduleKey(partitionOf(id)),
                        cb = std::move(cb)](Result<RedisReply> r) mutable {
                         if (!r) return cb(r.error());
                         remember(*redis, hub, id);
                         redis->command(
                             {"HSET", recordKey(id), "scheduled_ms", std::to_string(at_ms)},
                             [](Result<RedisReply>) {});
                         redis->command({"ZADD", key, std::to_string(at_ms), id},
                                        [cb = std::move(cb)](Result<RedisReply> z) {
                                          if (!z) return cb(z.error());
                                          cb(Result<void>());
                                        });
                       });
}

void NotificationQueue::moveDue(uint32_t partition, size_t max,
                                std::function<void(Result<size_t>)> cb) {
  commands_.evalScript(moveDueScript(), {scheduleKey(partition), streamKey(partition)},
                       {std::to_string(nowMs()), std::to_string(max)},
                       [cb = std::move(cb)](Result<RedisReply> r) {
                         if (!r) return cb(r.error());
                         cb(static_cast<size_t>(r->integer));
                       });
}

void NotificationQueue::fire(const Job& fire_job, std::optional<std::vector<std::string>> plan,
                             std::function<void(Result<bool>)> cb) {
  int64_t ttl_s = options_.record_ttl.count();
  std::vector<std::string> args{std::to_string(nowMs()), plan ? "1" : "0", std::to_string(ttl_s),
                                std::to_string(options_.partitions)};
  if (plan) std::move(plan->begin(), plan->end(), std::back_inserter(args));
  auto added = [this, fire_job, cb](Result<void> ok) mutable {
    if (!ok) return cb(ok.error());  // not acknowledged: the fire job is redone
    acknowledge(fire_job, [cb = std::move(cb)](Result<void> acked) {
      if (!acked) return cb(acked.error());
      cb(true);
    });
  };
  commands_.evalScript(
      fireScript(), {recordKey(fire_job.notification_id)}, std::move(args),
      [this, fire_job, added = std::move(added), cb = std::move(cb)](Result<RedisReply> r) mutable {
        if (!r) return cb(r.error());
        if (r->type == RedisReply::Type::kInteger) {
          return cb(Error::internal("notification " + fire_job.notification_id +
                                    ": still scheduled, and no plan given"));
        }
        if (r->type != RedisReply::Type::kArray || r->elements.empty()) {
          // Gone or cancelled: nothing to add.
          return acknowledge(fire_job, [cb = std::move(cb)](Result<void> acked) {
            if (!acked) return cb(acked.error());
            cb(false);
          });
        }
        // The plan's first jobs, one per partition; each adds its successor when it starts.
        const std::string& id = fire_job.notification_id;
        const std::string& hub = r->elements[0].str;
        size_t jobs = r->elements.size() - 1;
        if (jobs == 0) return added(Result<void>());
        auto join = std::make_shared<Join>(jobs, std::move(added));
        uint32_t first = partitionOf(id);
        for (uint32_t n = 0; n < jobs; ++n) {
          addOnce(streamKey((first + n) % options_.partitions), id, hub,
                  std::move(r->elements[n + 1].str), std::to_string(n), n,
                  [join](Result<void> x) { join->done(std::move(x)); });
        }
      });
}

void NotificationQueue::addOnce(const std::string& stream, const std::string& id,
                                const std::string& hub, std::string payload, std::string_view name,
                                std::optional<uint32_t> ordinal,
                                std::function<void(Result<void>)> cb) {
  // The mark shares the stream's hash tag ("{p}"), so the script touches one slot.
  std::string mark = "ph:once:" + stream.substr(std::min(stream.find('{'), stream.size())) + ":" +
                     id + ":" + std::string(name);
  commands_.evalScript(addOnceScript(), {stream, std::move(mark)},
                       {id, std::move(payload), std::to_string(options_.record_ttl.count()), hub,
                        ordinal ? std::to_string(*ordinal) : std::string()},
                       [cb = std::move(cb)](Result<RedisReply> x) {
                         if (!x) return cb(x.error());
                         cb(Result<void>());
                       });
}

void NotificationQueue::cancel(const std::string& hub, const std::string& id,
                               std::function<void(Result<void>)> cb) {
  if (auto r = validateId(id); !r) {
    boost::asio::post(commands_.ioContext(), [cb = std::move(cb), e = r.error()] { cb(e); });
    return;
  }
  RedisClient* redis = &commands_;
  commands_.evalScript(
      cancelScript(), {recordKey(id)}, {hub, std::to_string(nowMs())},
      [redis, id, key = scheduleKey(partitionOf(id)), cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) return cb(r.error());
        if (r->type == RedisReply::Type::kNil) {
          return cb(Error::notFound("notification '" + id + "' not found"));
        }
        if (r->type != RedisReply::Type::kInteger) {
          return cb(Error::failedPrecondition("notification '" + id + "' is " + r->str +
                                              ": only a scheduled send can be cancelled"));
        }
        // Should this fail, the send still moves to the queue at its time, and its fire job
        // finds it cancelled.
        redis->command({"ZREM", key, id}, [](Result<RedisReply>) {});
        cb(Result<void>());
      });
}

namespace {

// The time part of a stream entry id ("<ms>-<seq>").
int64_t entryMs(const std::string& stream_id) {
  int64_t ms = 0;
  std::from_chars(stream_id.data(), stream_id.data() + stream_id.size(), ms);
  return ms;
}

void keepOldest(int64_t& oldest, int64_t ms) {
  if (ms > 0 && (oldest == 0 || ms < oldest)) oldest = ms;
}

// Calls `done` with `value` (or the first error) once every command started through it answered.
template <typename T>
struct Gather {
  Gather(T initial, std::function<void(Result<T>)> callback)
      : value(std::move(initial)), cb(std::move(callback)) {}
  // Wraps a reply handler: the handler runs only on success.
  template <typename F>
  std::function<void(Result<RedisReply>)> step(std::shared_ptr<Gather> self, F on_reply) {
    ++left;
    return [self = std::move(self), on_reply = std::move(on_reply)](Result<RedisReply> r) mutable {
      if (!r) {
        if (!self->error) self->error = r.error();
      } else if (!self->error) {
        on_reply(*r);
      }
      if (--self->left == 0)
        self->error ? self->cb(*self->error) : self->cb(std::move(self->value));
    };
  }
  T value;
  size_t left = 0;
  std::optional<Error> error;
  std::function<void(Result<T>)> cb;
};

}  // namespace

void NotificationQueue::inspect(size_t scan, std::function<void(Result<QueueStats>)> cb) {
  auto gather = std::make_shared<Gather<QueueStats>>(QueueStats{}, std::move(cb));
  for (uint32_t p = 0; p < options_.partitions; ++p) {
    std::string stream = streamKey(p);
    commands_.command({"XLEN", stream},
                      gather->step(gather, [g = gather.get()](const RedisReply& r) {
                        g->value.jobs += static_cast<uint64_t>(r.integer);
                      }));
    commands_.command({"XPENDING", stream, options_.group},
                      gather->step(gather, [g = gather.get()](const RedisReply& r) {
                        if (!r.elements.empty()) g->value.running += r.elements[0].integer;
                      }));
    commands_.command({"XRANGE", stream, "-", "+", "COUNT", std::to_string(scan)},
                      gather->step(gather, [g = gather.get(), stream, scan](const RedisReply& r) {
                        auto& stats = g->value;
                        if (r.elements.size() >= scan) stats.partial = true;
                        for (const auto& job : parseEntries(stream, r)) {
                          int64_t ms = entryMs(job.stream_id);
                          keepOldest(stats.oldest_ms, ms);
                          if (job.hub.empty()) continue;
                          auto& hub = stats.hubs[job.hub];
                          ++hub.jobs;
                          keepOldest(hub.oldest_ms, ms);
                        }
                      }));
    std::string schedule = scheduleKey(p);
    commands_.command({"ZCARD", schedule},
                      gather->step(gather, [g = gather.get()](const RedisReply& r) {
                        g->value.scheduled += static_cast<uint64_t>(r.integer);
                      }));
    commands_.command({"ZRANGE", schedule, "0", "0", "WITHSCORES"},
                      gather->step(gather, [g = gather.get()](const RedisReply& r) {
                        if (r.elements.size() == 2) {
                          keepOldest(g->value.next_scheduled_ms, entryMs(r.elements[1].str));
                        }
                      }));
  }
}

void NotificationQueue::listScheduled(const std::string& hub, size_t max,
                                      std::function<void(Result<std::vector<ScheduledSend>>)> cb) {
  auto done = [max, cb = std::move(cb)](Result<std::vector<ScheduledSend>> sends) {
    if (!sends) return cb(sends.error());
    std::sort(sends->begin(), sends->end(), [](const ScheduledSend& a, const ScheduledSend& b) {
      return a.at_ms != b.at_ms ? a.at_ms < b.at_ms : a.id < b.id;
    });
    if (sends->size() > max) sends->resize(max);
    cb(std::move(sends));
  };
  using Sends = std::vector<ScheduledSend>;
  auto gather = std::make_shared<Gather<Sends>>(Sends{}, std::move(done));
  // Each partition's earliest entries, then whose each one is (the records are in other slots).
  for (uint32_t p = 0; p < options_.partitions; ++p) {
    commands_.command(
        {"ZRANGE", scheduleKey(p), "0", std::to_string(kScheduleScan - 1), "WITHSCORES"},
        gather->step(gather, [this, gather, hub](const RedisReply& r) {
          for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
            ScheduledSend send{r.elements[i].str, entryMs(r.elements[i + 1].str), 0};
            commands_.command({"HMGET", recordKey(send.id), "hub", "created_ms"},
                              gather->step(gather, [g = gather.get(), hub,
                                                    send](const RedisReply& record) mutable {
                                if (record.elements.size() != 2 || record.elements[0].str != hub)
                                  return;
                                send.created_ms = entryMs(record.elements[1].str);
                                g->value.push_back(std::move(send));
                              }));
          }
        }));
  }
}

void NotificationQueue::acknowledge(const Job& job, std::function<void(Result<void>)> cb) {
  commands_.command({"XACK", job.stream, options_.group, job.stream_id}, [](Result<RedisReply>) {});
  commands_.command({"XDEL", job.stream, job.stream_id},
                    [cb = std::move(cb)](Result<RedisReply> d) {
                      if (!d) return cb(d.error());
                      cb(Result<void>());
                    });
}

void NotificationQueue::reserveIdempotencyKey(const std::string& hub, const std::string& key,
                                              const std::string& id,
                                              std::chrono::milliseconds window,
                                              std::function<void(Result<std::string>)> cb) {
  commands_.evalScript(reserveKeyScript(), {idempotencyKey(hub, key)},
                       {id, std::to_string(window.count())},
                       [cb = std::move(cb)](Result<RedisReply> r) {
                         if (!r) return cb(r.error());
                         cb(std::move(r->str));
                       });
}

void NotificationQueue::releaseIdempotencyKey(const std::string& hub, const std::string& key) {
  commands_.command({"DEL", idempotencyKey(hub, key)}, [](Result<RedisReply>) {});
}

void NotificationQueue::claim(uint32_t partition, size_t max, std::chrono::milliseconds block,
                              std::function<void(Result<std::vector<Job>>)> cb) {
  assert(partition < options_.partitions);
  RedisClient& reader = *readers_[partition % readers_.size()];
  // The reply may legitimately take `block`; the command timeout applies on top of it.
  auto timeout = block + reader.options().command_timeout;
  reader.command(
      {"XREADGROUP", "GROUP", options_.group, options_.consumer, "COUNT", std::to_string(max),
       "BLOCK", std::to_string(block.count()), "STREAMS", streamKey(partition), ">"},
      [cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) {
          return cb(r.error());
        }
        std::vector<Job> jobs;
        // nil on timeout, else [[stream, entries]].
        for (const auto& stream : r->elements) {
          if (stream.elements.size() == 2) {
            auto part = parseEntries(stream.elements[0].str, stream.elements[1]);
            std::move(part.begin(), part.end(), std::back_inserter(jobs));
          }
        }
        cb(std::move(jobs));
      },
      timeout);
}

void NotificationQueue::reclaim(uint32_t partition, std::chrono::milliseconds min_idle, size_t max,
                                std::function<void(Result<std::vector<Job>>)> cb) {
  assert(partition < options_.partitions);
  std::string stream = streamKey(partition);
  commands_.command(
      {"XAUTOCLAIM", stream, options_.group, options_.consumer, std::to_string(min_idle.count()),
       (*reclaim_cursors_)[partition], "COUNT", std::to_string(max)},
      [cursors = reclaim_cursors_, partition, stream, cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) {
          return cb(r.error());
        }
        // [next cursor, entries, deleted ids]
        if (r->elements.size() < 2) {
          return cb(Error::internal("XAUTOCLAIM: unexpected reply"));
        }
        (*cursors)[partition] = r->elements[0].str;
        cb(parseEntries(stream, r->elements[1]));
      });
}

void NotificationQueue::touch(const Job& job, std::function<void(Result<void>)> cb) {
  commands_.command(
      {"XCLAIM", job.stream, options_.group, options_.consumer, "0", job.stream_id, "JUSTID"},
      [cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) return cb(r.error());
        cb(Result<void>());
      });
}

std::string NotificationQueue::jobMark(const Job& job) {
  return job.stream + "/" + job.stream_id;  // stream ids repeat across partitions
}

std::string NotificationQueue::encodeFailure(const DeliveryFailure& f) {
  return fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", f.platform, f.installation_id, f.handle,
                     f.http_status, f.outcome, f.reason);
}

void NotificationQueue::startJob(const Job& job, bool want_body,
                                 std::function<void(Result<JobStart>)> cb) {
  std::optional<uint32_t> successor;
  if (job.ordinal) successor = *job.ordinal + options_.partitions;
  commands_.evalScript(
      startJobScript(), {recordKey(job.notification_id)},
      {jobMark(job), want_body ? "1" : "0", std::to_string(nowMs()),
       successor ? std::to_string(*successor) : std::string()},
      [this, job, successor, cb = std::move(cb)](Result<RedisReply> r) mutable {
        if (!r) return cb(r.error());
        if (r->isNil())
          return cb(Error::notFound("notification " + job.notification_id + " not found"));
        if (r->elements.empty()) return cb(Error::internal("startJob: unexpected reply"));
        JobStart start;
        start.done = r->elements[0].integer == 1;
        if (start.done || r->elements.size() != 4) return cb(std::move(start));
        start.progress = std::move(r->elements[1].str);
        start.body = std::move(r->elements[2].str);
        std::string& next = r->elements[3].str;
        if (next.empty()) return cb(std::move(start));
        // The successor goes to this job's stream (ordinals n and n + partitions share one), and
        // is added before this job can complete, so a send never loses the rest of its jobs.
        addOnce(job.stream, job.notification_id, job.hub, std::move(next),
                std::to_string(*successor), successor,
                [start = std::move(start), cb = std::move(cb)](Result<void> added) mutable {
                  if (!added) return cb(added.error());
                  cb(std::move(start));
                });
      });
}

std::vector<std::string> NotificationQueue::outcomeArgs(
    std::vector<std::string> head, const std::map<std::string, int64_t>& outcome_counts,
    const std::vector<DeliveryFailure>& failures) const {
  head.insert(head.begin() + 1, {std::to_string(options_.failures_per_notification),
                                 std::to_string(outcome_counts.size())});
  for (const auto& [key, count] : outcome_counts) {
    head.push_back(key);
    head.push_back(std::to_string(count));
  }
  for (const auto& f : failures) head.push_back(encodeFailure(f));
  return head;
}

void NotificationQueue::progress(const Job& job, std::string_view from, std::string_view to,
                                 const std::map<std::string, int64_t>& outcome_counts,
                                 const std::vector<DeliveryFailure>& failures,
                                 std::function<void(Result<bool>)> cb) {
  auto args =
      outcomeArgs({jobMark(job), std::string(from), std::string(to)}, outcome_counts, failures);
  commands_.evalScript(progressScript(),
                       {recordKey(job.notification_id), failuresKey(job.notification_id)},
                       std::move(args), [cb = std::move(cb)](Result<RedisReply> r) {
                         if (!r) return cb(r.error());
                         cb(r->integer == 1 || r->integer == 2);
                       });
}

void NotificationQueue::complete(const Job& job,
                                 const std::map<std::string, int64_t>& outcome_counts,
                                 const std::vector<DeliveryFailure>& failures,
                                 std::string_view from, std::string_view abandoned_because,
                                 std::function<void(Result<void>)> cb) {
  auto args = outcomeArgs(
      {jobMark(job), std::to_string(nowMs()), std::string(abandoned_because), std::string(from)},
      outcome_counts, failures);
  commands_.evalScript(
      completeScript(), {recordKey(job.notification_id), failuresKey(job.notification_id)},
      std::move(args), [this, job, cb = std::move(cb)](Result<RedisReply> r) mutable {
        if (!r) {
          return cb(r.error());  // not acknowledged: the job stays pending and is redone
        }
        acknowledge(job, std::move(cb));
      });
}

void NotificationQueue::split(const Job& job, std::string_view from, std::string_view to,
                              std::string child_payload, std::string_view child_name,
                              std::function<void(Result<bool>)> cb) {
  auto add = [this, job, name = job.stream_id + ":" + std::string(child_name),
              payload = std::move(child_payload), cb](Result<RedisReply> r) mutable {
    if (!r) return cb(r.error());
    if (r->integer != 1 && r->integer != 2) return cb(false);
    addOnce(job.stream, job.notification_id, job.hub, std::move(payload), name, std::nullopt,
            [cb = std::move(cb)](Result<void> x) {
              if (!x) return cb(x.error());
              cb(true);
            });
  };
  commands_.evalScript(splitScript(), {recordKey(job.notification_id)},
                       {jobMark(job), std::string(from), std::string(to)}, std::move(add));
}

void NotificationQueue::release(const Job& job, std::function<void(Result<void>)> cb) {
  // IDLE far in the past: the next reclaim() anywhere takes it without waiting for the timeout.
  commands_.command(
      {"XCLAIM", job.stream, options_.group, options_.consumer, "0", job.stream_id, "IDLE",
       std::to_string(std::chrono::milliseconds(kReleasedIdle).count()), "JUSTID"},
      [cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) return cb(r.error());
        cb(Result<void>());
      });
}

namespace {

std::optional<DeliveryFailure> decodeFailure(std::string_view encoded) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= encoded.size(); ++i) {
    if (i == encoded.size() || encoded[i] == '\x1f') {
      parts.push_back(encoded.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts.size() != 6) return std::nullopt;
  DeliveryFailure f{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]), 0,
                    std::string(parts[4]), std::string(parts[5])};
  std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), f.http_status);
  return f;
}

}  // namespace

namespace {

// A record as HGETALL returns it, without its failures (they are a list of their own).
NotificationState parseRecord(const RedisReply& reply) {
  NotificationState s;
  auto num = [](const std::string& v) -> int64_t {
    int64_t n = 0;
    std::from_chars(v.data(), v.data() + v.size(), n);
    return n;
  };
  const auto& e = reply.elements;
  for (size_t i = 0; i + 1 < e.size(); i += 2) {
    const std::string& k = e[i].str;
    const std::string& v = e[i + 1].str;
    if (k == "body") {
      s.body = v;
    } else if (k == "hub") {
      s.hub = v;
    } else if (k == "created_ms") {
      s.created_ms = num(v);
    } else if (k == "start_ms") {
      s.start_ms = num(v);
    } else if (k == "end_ms") {
      s.end_ms = num(v);
    } else if (k == "jobs_total") {
      s.jobs_total = num(v);
    } else if (k == "jobs_done") {
      s.jobs_done = num(v);
    } else if (k == "state") {
      s.state = v;
    } else if (k == "abandoned") {
      s.abandoned = v;
    } else if (k == "scheduled_ms") {
      s.scheduled_ms = num(v);
    } else if (k.rfind("o:", 0) == 0) {
      s.outcome_counts[k.substr(2)] = num(v);
    }
  }
  return s;
}

}  // namespace

void NotificationQueue::state(const std::string& id,
                              std::function<void(Result<std::optional<NotificationState>>)> cb) {
  RedisClient* redis = &commands_;
  commands_.command(
      {"HGETALL", recordKey(id)}, [redis, id, cb = std::move(cb)](Result<RedisReply> r) mutable {
        if (!r) {
          return cb(r.error());
        }
        if (r->elements.empty()) {
          return cb(std::optional<NotificationState>());
        }
        redis->command({"LRANGE", failuresKey(id), "0", "-1"},
                       [s = parseRecord(*r), cb = std::move(cb)](Result<RedisReply> list) mutable {
                         if (!list) return cb(list.error());
                         for (const auto& item : list->elements) {
                           if (auto f = decodeFailure(item.str))
                             s.failures.push_back(std::move(*f));
                         }
                         cb(std::optional<NotificationState>(std::move(s)));
                       });
      });
}

void NotificationQueue::remember(RedisClient& redis, const std::string& hub,
                                 const std::string& id) {
  redis.evalScript(rememberScript(), {recentKey(hub)},
                   {id, std::to_string(kRecentKept), std::to_string(options_.record_ttl.count())},
                   [](Result<RedisReply>) {});
}

void NotificationQueue::recent(
    const std::string& hub, size_t max,
    std::function<void(Result<std::vector<std::pair<std::string, NotificationState>>>)> cb) {
  using Listed = std::vector<std::pair<std::string, NotificationState>>;
  RedisClient* redis = &commands_;
  commands_.command(
      {"LRANGE", recentKey(hub), "0", std::to_string(std::clamp<size_t>(max, 1, kRecentKept) - 1)},
      [redis, hub, cb = std::move(cb)](Result<RedisReply> ids) mutable {
        if (!ids) return cb(ids.error());
        auto listed = std::make_shared<Listed>();
        for (const auto& id : ids->elements) listed->emplace_back(id.str, NotificationState{});
        if (listed->empty()) return cb(Listed{});
        // Every record read at once (pipelined); the answer waits for all, in list order.
        auto join = std::make_shared<Join>(
            listed->size(), [hub, listed, cb = std::move(cb)](Result<void> all) {
              if (!all) return cb(all.error());
              // Expired records (no hub left) and, defensively, another hub's.
              std::erase_if(*listed, [&hub](const auto& entry) { return entry.second.hub != hub; });
              cb(std::move(*listed));
            });
        for (auto& [id, state] : *listed) {
          redis->command({"HGETALL", recordKey(id)}, [join, listed, &state](Result<RedisReply> r) {
            if (r) state = parseRecord(*r);
            join->done(r ? Result<void>() : Result<void>(r.error()));
          });
        }
      });
}

}  // namespace pushhub::registry
