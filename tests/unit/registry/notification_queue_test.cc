#include "registry/notification_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "registry/cluster_slots.h"

#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

class NotificationQueueTest : public ::testing::Test {
 protected:
  RedisClient::Options options() { return redis_.options(); }
  void SetUp() override {
    for (auto* c : {&commands_, &blocking_, &commands_b_, &blocking_b_}) {
      c->connect();
    }
    ASSERT_TRUE(runUntil(io_, [&] {
      return commands_.connected() && blocking_.connected() && commands_b_.connected() &&
             blocking_b_.connected();
    }));
    ASSERT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_.init(cb); }));
  }
  NotificationQueue::Options queueOptions(std::string consumer) {
    NotificationQueue::Options o;
    o.consumer = std::move(consumer);
    o.partitions = kPartitions;
    o.record_ttl = std::chrono::seconds(3600);
    return o;
  }
  Result<void> enqueue(NotificationQueue& q, const std::string& id, std::string body,
                       std::vector<std::string> jobs) {
    return await<Result<void>>(
        io_, [&](auto cb) { q.enqueue(id, "myhub", std::move(body), std::move(jobs), cb); });
  }
  // Up to `max` jobs from the partitions in turn (the first waits up to `block`), in enqueue
  // order: a send's jobs go round the partitions from the one its id picks.
  Result<std::vector<Job>> claim(NotificationQueue& q, size_t max,
                                 std::chrono::milliseconds block = 200ms) {
    std::vector<Job> all;
    for (uint32_t p = 0; p < kPartitions && all.size() < max; ++p) {
      auto part = await<Result<std::vector<Job>>>(
          io_, [&](auto cb) { q.claim(p, max - all.size(), p == 0 ? block : 1ms, cb); });
      if (!part) return part.error();
      all.insert(all.end(), part->begin(), part->end());
    }
    std::sort(all.begin(), all.end(),
              [](const Job& a, const Job& b) { return a.payload < b.payload; });
    return all;
  }
  Result<std::vector<Job>> reclaim(NotificationQueue& q, std::chrono::milliseconds idle) {
    std::vector<Job> all;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      auto part =
          await<Result<std::vector<Job>>>(io_, [&](auto cb) { q.reclaim(p, idle, 10, cb); });
      if (!part) return part.error();
      all.insert(all.end(), part->begin(), part->end());
    }
    std::sort(all.begin(), all.end(),
              [](const Job& a, const Job& b) { return a.payload < b.payload; });
    return all;
  }
  // A sum over the partitions' streams of an integer command, e.g. XLEN.
  int64_t sum(std::vector<std::string> argv, size_t stream_arg) {
    int64_t total = 0;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      argv[stream_arg] = queue_.streamKey(p);
      auto r = cmd(io_, commands_, argv);
      if (!r) return -1;
      total += r->type == RedisReply::Type::kInteger ? r->integer : r->elements.at(0).integer;
    }
    return total;
  }
  Result<void> complete(NotificationQueue& q, const Job& job, std::map<std::string, int64_t> counts,
                        std::vector<DeliveryFailure> failures = {}, std::string from = "0",
                        std::string abandoned = {}) {
    return await<Result<void>>(
        io_, [&](auto cb) { q.complete(job, counts, failures, from, abandoned, cb); });
  }
  Result<JobStart> start(NotificationQueue& q, const Job& job) {
    return await<Result<JobStart>>(io_, [&](auto cb) { q.startJob(job, true, cb); });
  }
  Result<bool> progress(NotificationQueue& q, const Job& job, std::string from, std::string to,
                        std::map<std::string, int64_t> counts,
                        std::vector<DeliveryFailure> failures = {}) {
    return await<Result<bool>>(io_,
                               [&](auto cb) { q.progress(job, from, to, counts, failures, cb); });
  }
  std::optional<NotificationState> state(const std::string& id) {
    auto r = await<Result<std::optional<NotificationState>>>(
        io_, [&](auto cb) { queue_.state(id, cb); });
    EXPECT_TRUE(r);
    return r ? *r : std::nullopt;
  }
  int64_t pendingCount() { return sum({"XPENDING", "", "dispatch"}, 1); }
  int64_t streamLength() { return sum({"XLEN", ""}, 1); }

  static constexpr uint32_t kPartitions = 4;
  boost::asio::io_context io_;
  TestRedis redis_;
  RedisClient commands_{io_, options()};
  RedisClient blocking_{io_, options()};
  RedisClient commands_b_{io_, options()};
  RedisClient blocking_b_{io_, options()};
  NotificationQueue queue_{commands_, {&blocking_}, queueOptions("worker-a")};
  NotificationQueue queue_b_{commands_b_, {&blocking_b_}, queueOptions("worker-b")};
};

TEST_F(NotificationQueueTest, InitIsIdempotent) {
  EXPECT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_.init(cb); }));
  EXPECT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_b_.init(cb); }));
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_EQ(queue_.streamKey(p), "ph:jobs:{" + std::to_string(p) + "}");
    auto groups = cmd(io_, commands_, {"XINFO", "GROUPS", queue_.streamKey(p)});
    ASSERT_TRUE(groups) << groups.error().message;
    EXPECT_EQ(groups->elements.size(), 1u);
  }
}

TEST_F(NotificationQueueTest, ASendsJobsGoRoundThePartitionsOneJobAheadInEach) {
  std::vector<std::string> planned;
  for (int n = 0; n < 10; ++n) planned.push_back("j" + std::to_string(n));
  ASSERT_TRUE(enqueue(queue_, "spread", "b", planned));
  std::set<std::string> masters;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    auto len = cmd(io_, commands_, {"XLEN", queue_.streamKey(p)});
    ASSERT_TRUE(len);
    EXPECT_EQ(len->integer, 1) << queue_.streamKey(p);  // the rest wait in the record
    masters.insert(commands_.masterOf(queue_.streamKey(p)).endpoint());
  }
  // The four partitions' slots (13907, 9842, 5649, 1584: CRC16 of "0".."3") fall in all three
  // masters' ranges of a fresh 3-master cluster, so the queue's traffic is spread.
  if (redis_.cluster()) {
    EXPECT_EQ(masters.size(), 3u);
  }
  // A send that comes later waits behind one job of the broadcast, not behind all ten.
  ASSERT_TRUE(enqueue(queue_, "later", "b", {"l0"}));

  std::vector<Job> all;
  // Claims what is queued, then starts each job claimed (which adds its successor).
  auto round = [&](size_t expected) {
    auto jobs = claim(queue_, 100);
    ASSERT_TRUE(jobs);
    ASSERT_EQ(jobs->size(), expected);
    for (const auto& job : *jobs) {
      ASSERT_TRUE(start(queue_, job));
      ASSERT_TRUE(start(queue_, job));  // started again (a reclaim): nothing is added twice
      all.push_back(job);
    }
  };
  round(5);
  EXPECT_EQ(all.back().payload, "l0");  // sorted by payload: j0..j3, l0
  EXPECT_EQ(streamLength(), 9);         // the five claimed and j4..j7
  round(4);
  round(2);
  round(0);
  std::map<std::string, const Job*> by_payload;
  for (const auto& job : all) by_payload[job.payload] = &job;
  ASSERT_EQ(by_payload.size(), 11u);
  for (int n = 0; n < 10; ++n) {
    const Job& job = *by_payload.at("j" + std::to_string(n));
    EXPECT_EQ(job.ordinal, static_cast<uint32_t>(n));
    // Job n + partitions follows job n into its stream.
    if (n >= static_cast<int>(kPartitions)) {
      EXPECT_EQ(job.stream, by_payload.at("j" + std::to_string(n - kPartitions))->stream);
    }
  }
  for (const auto& job : all) ASSERT_TRUE(complete(queue_, job, {{"apns:Success", 1}}));
  EXPECT_EQ(state("spread")->state, "completed");
  EXPECT_EQ(state("spread")->jobs_done, 10);
  EXPECT_EQ(state("later")->state, "completed");
  EXPECT_EQ(streamLength(), 0);
}

TEST_F(NotificationQueueTest, EnqueueClaimCompleteAndState) {
  std::string body("opaque\0blob", 11);
  ASSERT_TRUE(enqueue(queue_, "n1", body, {"job-0", "job-1", "job-2"}));
  auto st = state("n1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, "enqueued");
  EXPECT_EQ(st->body, body);
  EXPECT_EQ(st->hub, "myhub");
  EXPECT_EQ(st->jobs_total, 3);
  EXPECT_EQ(st->jobs_done, 0);
  EXPECT_GT(st->created_ms, 1600000000000);
  auto ttl = cmd(io_, commands_, {"TTL", NotificationQueue::recordKey("n1")});
  EXPECT_GT(ttl->integer, 3000);
  EXPECT_LE(ttl->integer, 3600);

  auto jobs = claim(queue_, 10);
  ASSERT_TRUE(jobs) << jobs.error().message;
  ASSERT_EQ(jobs->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*jobs)[i].notification_id, "n1");
    EXPECT_EQ((*jobs)[i].payload, "job-" + std::to_string(i));
  }
  EXPECT_EQ(pendingCount(), 3);

  auto loaded = start(queue_, (*jobs)[0]);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->body, body);
  EXPECT_FALSE(loaded->done);
  EXPECT_EQ(loaded->progress, "0");
  EXPECT_EQ(state("n1")->state, "running");
  EXPECT_GT(state("n1")->start_ms, 0);
  EXPECT_EQ(state("n1")->end_ms, 0);

  ASSERT_TRUE(complete(queue_, (*jobs)[0], {{"apns:Success", 10}, {"apns:WrongToken", 1}}));
  ASSERT_TRUE(complete(queue_, (*jobs)[1], {{"apns:Success", 5}, {"fcmv1:Success", 7}}));
  st = state("n1");
  EXPECT_EQ(st->state, "running");
  EXPECT_EQ(st->jobs_done, 2);
  ASSERT_TRUE(complete(queue_, (*jobs)[2], {{"fcmv1:Throttled", 2}}));
  // Completing a job twice (e.g. after a reclaim) does not count it twice.
  ASSERT_TRUE(complete(queue_, (*jobs)[2], {{"fcmv1:Throttled", 2}}));
  st = state("n1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, "completed");
  EXPECT_GE(st->end_ms, st->start_ms);
  EXPECT_EQ(st->jobs_done, 3);
  auto again = start(queue_, (*jobs)[2]);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->done);  // a redelivered job is recognised as counted
  EXPECT_EQ(st->outcome_counts, (std::map<std::string, int64_t>{{"apns:Success", 15},
                                                                {"apns:WrongToken", 1},
                                                                {"fcmv1:Success", 7},
                                                                {"fcmv1:Throttled", 2}}));
  EXPECT_EQ(pendingCount(), 0);
  EXPECT_EQ(streamLength(), 0);  // acked jobs are deleted

  auto nothing = claim(queue_, 10, 100ms);
  ASSERT_TRUE(nothing);
  EXPECT_TRUE(nothing->empty());
}

TEST_F(NotificationQueueTest, JobsAreSharedBetweenConsumers) {
  ASSERT_TRUE(enqueue(queue_, "n2", "b", {"0", "1", "2", "3"}));
  auto a = claim(queue_, 2);
  auto b = claim(queue_b_, 10);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 2u);
  EXPECT_EQ(b->size(), 2u);
  std::set<std::string> payloads;
  for (const auto& j : *a) payloads.insert(j.payload);
  for (const auto& j : *b) payloads.insert(j.payload);
  EXPECT_EQ(payloads.size(), 4u);  // each job went to one consumer
}

TEST_F(NotificationQueueTest, ClaimWaitsForAJobEnqueuedLater) {
  // A one-job send lands in the partition its id picks; wait on that one.
  const std::string id = "n3";
  uint32_t partition = crc16Xmodem(id) % kPartitions;
  std::optional<Result<std::vector<Job>>> got;
  queue_.claim(partition, 5, 3000ms,
               [&](Result<std::vector<Job>> r) { got.emplace(std::move(r)); });
  runFor(io_, 100ms);
  EXPECT_FALSE(got.has_value());
  // The commands connection is free while the blocking one waits.
  ASSERT_TRUE(enqueue(queue_, id, "b", {"late"}));
  ASSERT_TRUE(runUntil(io_, [&] { return got.has_value(); }));
  ASSERT_TRUE(*got);
  ASSERT_EQ((*got)->size(), 1u);
  EXPECT_EQ((*got)->front().payload, "late");
}

TEST_F(NotificationQueueTest, PendingJobsOfADeadWorkerAreReclaimed) {
  ASSERT_TRUE(enqueue(queue_, "n4", "b", {"x", "y"}));
  auto a = claim(queue_, 10);  // worker-a claims both and "crashes"
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 2u);

  auto early = reclaim(queue_b_, std::chrono::hours(1));
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_TRUE(early->empty());  // not idle long enough

  runFor(io_, 60ms);
  auto taken = reclaim(queue_b_, 50ms);
  ASSERT_TRUE(taken) << taken.error().message;
  ASSERT_EQ(taken->size(), 2u);
  EXPECT_EQ((*taken)[0].payload, "x");
  EXPECT_EQ((*taken)[1].notification_id, "n4");
  for (uint32_t p = 0; p < kPartitions; ++p) {
    auto consumers =
        cmd(io_, commands_, {"XPENDING", queue_.streamKey(p), "dispatch", "-", "+", "10"});
    ASSERT_TRUE(consumers);
    for (auto& e : consumers->elements) {
      EXPECT_EQ(e.elements.at(1).str, "worker-b");
    }
  }
  for (auto& job : *taken) {
    ASSERT_TRUE(complete(queue_b_, job, {{"wns:Success", 1}}));
  }
  EXPECT_EQ(pendingCount(), 0);
  EXPECT_EQ(state("n4")->state, "completed");
  EXPECT_EQ(state("n4")->outcome_counts.at("wns:Success"), 2);
}

TEST_F(NotificationQueueTest, TouchedJobsAreNotReclaimed) {
  ASSERT_TRUE(enqueue(queue_, "n5", "b", {"busy", "idle"}));
  auto a = claim(queue_, 10);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 2u);
  runFor(io_, 150ms);
  const Job& busy = (*a)[0];  // sorted by payload: "busy", "idle"
  ASSERT_EQ(busy.payload, "busy");
  ASSERT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_.touch(busy, cb); }));
  auto taken = reclaim(queue_b_, 100ms);
  ASSERT_TRUE(taken) << taken.error().message;
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ(taken->front().payload, "idle");
}

TEST_F(NotificationQueueTest, ProgressIsRecordedOnceAndARunThatLostItsJobCountsNothing) {
  ASSERT_TRUE(enqueue(queue_, "p1", "b", {"0-64"}));
  auto jobs = claim(queue_, 1);
  ASSERT_TRUE(jobs && jobs->size() == 1u);
  const Job job = jobs->front();
  DeliveryFailure gone{"apns", "i1", "tok1", 410, "ExpiredChannel", "Unregistered"};
  auto first =
      progress(queue_, job, "0", "5", {{"apns:Success", 40}, {"apns:ExpiredChannel", 1}}, {gone});
  ASSERT_TRUE(first && *first);
  // The same write again (its reply was lost) is recognised, not counted twice.
  auto retried = progress(queue_, job, "0", "5", {{"apns:Success", 40}});
  ASSERT_TRUE(retried && *retried);
  EXPECT_EQ(state("p1")->outcome_counts.at("apns:Success"), 40);

  // Another run reclaims it and starts after unit 5.
  runFor(io_, 30ms);
  auto taken = reclaim(queue_b_, 20ms);
  ASSERT_TRUE(taken && taken->size() == 1u);
  auto resumed = start(queue_b_, taken->front());
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->progress, "5");
  auto b_moves = progress(queue_b_, taken->front(), "5", "9", {{"apns:Success", 30}});
  ASSERT_TRUE(b_moves && *b_moves);
  // The first run, still alive, has lost the job: its write and its completion count nothing.
  auto a_moves = progress(queue_, job, "5", "8", {{"apns:Success", 99}});
  ASSERT_TRUE(a_moves);
  EXPECT_FALSE(*a_moves);
  ASSERT_TRUE(complete(queue_, job, {{"apns:Success", 99}}, {}, "5"));
  EXPECT_EQ(state("p1")->outcome_counts.at("apns:Success"), 70);
  EXPECT_EQ(state("p1")->jobs_done, 0);

  ASSERT_TRUE(complete(queue_b_, taken->front(), {{"apns:Success", 1}}, {}, "9"));
  auto st = state("p1");
  EXPECT_EQ(st->state, "completed");
  EXPECT_EQ(st->outcome_counts.at("apns:Success"), 71);
  ASSERT_EQ(st->failures.size(), 1u);
  EXPECT_EQ(st->failures[0].installation_id, "i1");
  EXPECT_EQ(st->failures[0].handle, "tok1");
  EXPECT_EQ(st->failures[0].http_status, 410);
  EXPECT_EQ(st->failures[0].outcome, "ExpiredChannel");
  EXPECT_EQ(st->failures[0].reason, "Unregistered");
}

TEST_F(NotificationQueueTest, ASplitAddsItsChildJobOnceAndOnlyForTheJobsOwner) {
  ASSERT_TRUE(enqueue(queue_, "s1", "b", {"0-64"}));
  auto jobs = claim(queue_, 1);
  ASSERT_TRUE(jobs && jobs->size() == 1u);
  const Job parent = jobs->front();
  auto split = [&](NotificationQueue& q, std::string from, std::string to) {
    return await<Result<bool>>(io_,
                               [&](auto cb) { q.split(parent, from, to, "32-64/wns", "wns", cb); });
  };
  const std::string token = "40,40,12@32";
  auto first = split(queue_, "0", token);
  ASSERT_TRUE(first && *first) << (first ? "" : first.error().message);
  EXPECT_EQ(state("s1")->jobs_total, 2);
  auto child = claim(queue_, 10);
  ASSERT_TRUE(child);
  ASSERT_EQ(child->size(), 1u);
  EXPECT_EQ(child->front().payload, "32-64/wns");
  EXPECT_EQ(child->front().hub, "myhub");
  EXPECT_EQ(child->front().stream, parent.stream);  // the parent's partition

  // A reclaimed run confirms the split it finds in the token: no second child, no extra job.
  auto confirmed = split(queue_, token, token);
  ASSERT_TRUE(confirmed && *confirmed);
  EXPECT_EQ(state("s1")->jobs_total, 2);
  auto none = claim(queue_, 10, 50ms);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  // A run that did not see the split has lost the job: it splits nothing.
  auto stale = split(queue_, "0", "1,1,0@1");
  ASSERT_TRUE(stale);
  EXPECT_FALSE(*stale);
  auto resumed = start(queue_, parent);
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->progress, token);

  // The notification completes with both jobs.
  ASSERT_TRUE(complete(queue_, parent, {{"apns:Success", 40}}, {}, token));
  EXPECT_EQ(state("s1")->state, "running");
  ASSERT_TRUE(complete(queue_, child->front(), {{"wns:Success", 32}}));
  auto st = state("s1");
  EXPECT_EQ(st->state, "completed");
  EXPECT_EQ(st->jobs_done, 2);
  EXPECT_EQ(st->outcome_counts.at("wns:Success"), 32);
}

TEST_F(NotificationQueueTest, FailuresAreBoundedAndKeptAsLongAsTheRecord) {
  auto options = queueOptions("worker-c");
  options.failures_per_notification = 3;
  options.record_ttl = std::chrono::seconds(600);
  NotificationQueue small{commands_, {&blocking_}, options};
  ASSERT_TRUE(enqueue(small, "f1", "b", {"0-1"}));
  auto jobs = claim(small, 1);
  ASSERT_TRUE(jobs && jobs->size() == 1u);
  std::vector<DeliveryFailure> many;
  for (int i = 0; i < 5; ++i) {
    many.push_back({"fcmv1", "i" + std::to_string(i), "t", 429, "Throttled", "QUOTA_EXCEEDED"});
  }
  ASSERT_TRUE(complete(small, jobs->front(), {{"fcmv1:Throttled", 5}}, many));
  auto st = state("f1");
  ASSERT_EQ(st->failures.size(), 3u);
  EXPECT_EQ(st->failures[2].installation_id, "i2");  // the first ones are kept
  auto ttl = cmd(io_, commands_, {"TTL", NotificationQueue::failuresKey("f1")});
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->integer, 500);
  EXPECT_LE(ttl->integer, 600);
}

TEST_F(NotificationQueueTest, AReleasedJobIsReclaimedAtOnceAndAnAbandonedOneEndsTheNotification) {
  ASSERT_TRUE(enqueue(queue_, "r1", "b", {"a", "b"}));
  auto jobs = claim(queue_, 10);
  ASSERT_TRUE(jobs && jobs->size() == 2u);
  // Not idle yet: nobody may take them.
  auto early = reclaim(queue_b_, std::chrono::minutes(10));
  ASSERT_TRUE(early && early->empty());
  ASSERT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_.release((*jobs)[0], cb); }));
  auto taken = reclaim(queue_b_, std::chrono::minutes(10));
  ASSERT_TRUE(taken);
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ(taken->front().payload, "a");

  ASSERT_TRUE(complete(queue_b_, taken->front(), {}, {}, "0", "hub 'h' is not served here"));
  EXPECT_EQ(state("r1")->state, "running");
  ASSERT_TRUE(complete(queue_, (*jobs)[1], {{"wns:Success", 2}}));
  auto st = state("r1");
  EXPECT_EQ(st->state, "abandoned");  // one job given up: the notification says so
  EXPECT_EQ(st->abandoned, "hub 'h' is not served here");
  EXPECT_GT(st->end_ms, 0);
}

TEST_F(NotificationQueueTest, NoTargetAndUnknownIdsAreReported) {
  ASSERT_TRUE(enqueue(queue_, "empty", "b", {}));
  EXPECT_EQ(state("empty")->state, "notargetfound");
  ASSERT_TRUE(enqueue(queue_, "nobody", "b", {"0-1"}));
  auto jobs = claim(queue_, 10);
  ASSERT_TRUE(jobs && jobs->size() == 1u);
  ASSERT_TRUE(complete(queue_, jobs->front(), {}));
  EXPECT_EQ(state("nobody")->state, "notargetfound");
  EXPECT_FALSE(state("never-enqueued").has_value());
  auto body = start(queue_, Job{queue_.streamKey(0), "1-1", "nope", "", "0-1", std::nullopt});
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, Error::Code::kNotFound);
  auto bad = enqueue(queue_, "a{b}", "b", {"j"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(streamLength(), 0);
}

TEST_F(NotificationQueueTest, AScheduledSendFiresOnceAtItsTimeAndACancelledOneNever) {
  auto nowMs = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  auto schedule = [&](const std::string& id, int64_t at_ms) {
    return await<Result<void>>(
        io_, [&](auto cb) { queue_.schedule(id, "myhub", "body-" + id, at_ms, cb); });
  };
  auto moveDue = [&](NotificationQueue& q) {
    size_t moved = 0;
    for (uint32_t p = 0; p < kPartitions; ++p) {
      auto r = await<Result<size_t>>(io_, [&](auto cb) { q.moveDue(p, 100, cb); });
      EXPECT_TRUE(r);
      if (r) moved += *r;
    }
    return moved;
  };
  auto fire = [&](const Job& job, std::optional<std::vector<std::string>> plan) {
    return await<Result<bool>>(io_, [&](auto cb) { queue_.fire(job, std::move(plan), cb); });
  };
  auto cancel = [&](const std::string& hub, const std::string& id) {
    return await<Result<void>>(io_, [&](auto cb) { queue_.cancel(hub, id, cb); });
  };

  ASSERT_TRUE(schedule("due", nowMs() - 1));
  ASSERT_TRUE(schedule("later", nowMs() + 3'600'000));
  ASSERT_TRUE(schedule("called-off", nowMs() - 1));
  EXPECT_EQ(state("due")->state, "scheduled");
  EXPECT_GT(state("later")->scheduled_ms, nowMs());
  EXPECT_EQ(streamLength(), 0);

  // Cancelling: only by its own hub, only while scheduled.
  EXPECT_EQ(cancel("otherhub", "called-off").error().code, Error::Code::kNotFound);
  EXPECT_EQ(cancel("myhub", "never-sent").error().code, Error::Code::kNotFound);
  ASSERT_TRUE(cancel("myhub", "called-off"));
  EXPECT_EQ(state("called-off")->state, "cancelled");
  auto again = cancel("myhub", "called-off");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Error::Code::kFailedPrecondition);
  EXPECT_NE(again.error().message.find("is cancelled"), std::string::npos);

  // Two instances move due sends at once: each moves exactly once, the later one not at all.
  EXPECT_EQ(moveDue(queue_) + moveDue(queue_b_), 1u);
  EXPECT_EQ(moveDue(queue_), 0u);
  auto fires = claim(queue_, 10);
  ASSERT_TRUE(fires);
  ASSERT_EQ(fires->size(), 1u);
  const Job fire_job = fires->front();
  EXPECT_EQ(fire_job.notification_id, "due");
  EXPECT_EQ(fire_job.payload, NotificationQueue::kFireJob);

  // Without a plan a still-scheduled send is left alone (the job stays pending).
  EXPECT_FALSE(fire(fire_job, std::nullopt));
  // The first run stores its plan; a rerun (say the job was reclaimed after a crash) adds the
  // same jobs, none twice, even when it planned differently.
  ASSERT_EQ(*fire(fire_job, std::vector<std::string>{"0-4", "4-8", "8-12", "12-16", "16-20"}),
            true);
  EXPECT_EQ(state("due")->state, "enqueued");
  EXPECT_EQ(state("due")->jobs_total, 5);
  Job rerun = fire_job;
  ASSERT_TRUE(fire(rerun, std::vector<std::string>{"0-20"}));
  ASSERT_TRUE(fire(rerun, std::nullopt));
  auto jobs = claim(queue_, 10);
  ASSERT_TRUE(jobs);
  std::vector<std::string> payloads;
  for (const auto& j : *jobs) payloads.push_back(j.payload);
  // One job ahead in each partition, as an enqueued send: the fifth follows the first's start.
  EXPECT_EQ(payloads, (std::vector<std::string>{"0-4", "12-16", "4-8", "8-12"}));
  for (const auto& j : *jobs) EXPECT_EQ(j.hub, "myhub");  // told by the record, for operators
  EXPECT_EQ(fire_job.hub, "");   // moved by a script that cannot read the record's slot
  EXPECT_EQ(streamLength(), 4);  // the fire job was acknowledged and deleted
  for (const auto& j : *jobs) ASSERT_TRUE(start(queue_, j));
  auto last = claim(queue_, 10);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ(last->front().payload, "16-20");
  EXPECT_EQ(last->front().stream, jobs->front().stream);
  jobs->push_back(last->front());
  for (const auto& j : *jobs) ASSERT_TRUE(complete(queue_, j, {{"apns:Success", 1}}));
  EXPECT_EQ(state("due")->state, "completed");
  EXPECT_EQ(state("due")->outcome_counts["apns:Success"], 5);
  EXPECT_FALSE(cancel("myhub", "due"));

  // A cancelled send whose entry still reached the queue (the ZREM was lost) adds nothing.
  Job stale{queue_.streamKey(0), "0-1", "called-off", "", std::string(NotificationQueue::kFireJob),
            std::nullopt};
  ASSERT_EQ(*fire(stale, std::vector<std::string>{"0-4"}), false);
  EXPECT_EQ(state("called-off")->jobs_total, 0);
  // No plan means no target.
  ASSERT_TRUE(schedule("nobody", nowMs() - 1));
  EXPECT_EQ(moveDue(queue_), 1u);
  fires = claim(queue_, 10);
  ASSERT_TRUE(fires && fires->size() == 1u);
  ASSERT_TRUE(fire(fires->front(), std::vector<std::string>{}));
  EXPECT_EQ(state("nobody")->state, "notargetfound");
  EXPECT_EQ(streamLength(), 0);  // every job completed or acknowledged
}

TEST_F(NotificationQueueTest, InspectTellsDepthAgeAndHubsAndListScheduledFiltersByHub) {
  auto inspect = [&](size_t scan) {
    auto r = await<Result<QueueStats>>(io_, [&](auto cb) { queue_.inspect(scan, cb); });
    EXPECT_TRUE(r);
    return r ? *r : QueueStats{};
  };
  auto nowMs = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  QueueStats empty = inspect(100);
  EXPECT_EQ(empty.jobs, 0u);
  EXPECT_EQ(empty.oldest_ms, 0);
  EXPECT_TRUE(empty.hubs.empty());
  EXPECT_EQ(empty.next_scheduled_ms, 0);

  int64_t before = nowMs();
  ASSERT_TRUE(enqueue(queue_, "n-a", "body", {"0-1", "1-2", "2-3"}));  // hub myhub
  ASSERT_TRUE(await<Result<void>>(
      io_, [&](auto cb) { queue_.enqueue("n-b", "hub-b", "body", {"0-1"}, cb); }));
  auto claimed = claim(queue_, 1);
  ASSERT_TRUE(claimed && claimed->size() == 1u);

  QueueStats stats = inspect(100);
  EXPECT_EQ(stats.jobs, 4u);
  EXPECT_EQ(stats.running, 1u);
  EXPECT_GE(stats.oldest_ms, before);
  EXPECT_LE(stats.oldest_ms, nowMs());
  EXPECT_FALSE(stats.partial);
  ASSERT_EQ(stats.hubs.size(), 2u);
  EXPECT_EQ(stats.hubs["myhub"].jobs, 3u);
  EXPECT_EQ(stats.hubs["hub-b"].jobs, 1u);
  EXPECT_GE(stats.hubs["hub-b"].oldest_ms, stats.hubs["myhub"].oldest_ms);
  // Reading one job per partition: the totals stay exact, the spread over hubs is marked partial.
  QueueStats one = inspect(1);
  EXPECT_EQ(one.jobs, 4u);
  EXPECT_TRUE(one.partial);

  // Done jobs leave the queue.
  ASSERT_TRUE(complete(queue_, claimed->front(), {{"apns:Success", 1}}));
  EXPECT_EQ(inspect(100).jobs, 3u);

  // Scheduled sends: counted, the next one's time, and listed per hub, earliest first.
  int64_t soon = nowMs() + 60'000;
  auto schedule = [&](const std::string& id, const std::string& hub, int64_t at_ms) {
    return await<Result<void>>(io_, [&](auto cb) { queue_.schedule(id, hub, "b", at_ms, cb); });
  };
  ASSERT_TRUE(schedule("s-late", "myhub", soon + 2000));
  ASSERT_TRUE(schedule("s-early", "myhub", soon));
  ASSERT_TRUE(schedule("s-other", "hub-b", soon - 1000));
  stats = inspect(100);
  EXPECT_EQ(stats.scheduled, 3u);
  EXPECT_EQ(stats.next_scheduled_ms, soon - 1000);
  auto list = [&](const std::string& hub, size_t max) {
    auto r = await<Result<std::vector<ScheduledSend>>>(
        io_, [&](auto cb) { queue_.listScheduled(hub, max, cb); });
    EXPECT_TRUE(r);
    std::vector<std::string> ids;
    if (r) {
      for (const auto& send : *r) {
        ids.push_back(send.id);
        EXPECT_GE(send.created_ms, before);
      }
    }
    return ids;
  };
  EXPECT_EQ(list("myhub", 10), (std::vector<std::string>{"s-early", "s-late"}));
  EXPECT_EQ(list("myhub", 1), (std::vector<std::string>{"s-early"}));
  EXPECT_EQ(list("hub-b", 10), (std::vector<std::string>{"s-other"}));
  EXPECT_TRUE(list("nohub", 10).empty());
  ASSERT_TRUE(await<Result<void>>(io_, [&](auto cb) { queue_.cancel("myhub", "s-early", cb); }));
  EXPECT_EQ(list("myhub", 10), (std::vector<std::string>{"s-late"}));
}

}  // namespace
}  // namespace pushhub::registry

namespace pushhub::registry {
namespace {

using namespace testing;

// The console's "latest sends": newest first, trimmed, one hub's only, expired records skipped,
// scheduled sends listed too.
TEST_F(NotificationQueueTest, RecentListsAHubsLatestSendsNewestFirst) {
  auto recent = [&](const std::string& hub, size_t max) {
    auto r = await<Result<std::vector<std::pair<std::string, NotificationState>>>>(
        io_, [&](auto cb) { queue_.recent(hub, max, cb); });
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    std::vector<std::string> ids;
    if (r) {
      for (const auto& [id, s] : *r) {
        EXPECT_EQ(s.hub, hub);
        ids.push_back(id + ":" + s.state);
      }
    }
    return ids;
  };
  EXPECT_TRUE(recent("myhub", 10).empty());
  ASSERT_TRUE(enqueue(queue_, "first", "b", {}));
  ASSERT_TRUE(enqueue(queue_, "second", "b", {"0-1"}));
  ASSERT_TRUE(await<Result<void>>(io_, [&](auto cb) {
    queue_.schedule("later", "myhub", "b", 4102444800000, cb);  // 2100-01-01
  }));
  ASSERT_TRUE(await<Result<void>>(
      io_, [&](auto cb) { queue_.enqueue("elsewhere", "otherhub", "b", {}, cb); }));
  EXPECT_EQ(recent("myhub", 10), (std::vector<std::string>{"later:scheduled", "second:enqueued",
                                                           "first:notargetfound"}));
  EXPECT_EQ(recent("myhub", 2), (std::vector<std::string>{"later:scheduled", "second:enqueued"}));
  EXPECT_EQ(recent("otherhub", 10), (std::vector<std::string>{"elsewhere:notargetfound"}));

  // A record gone (its retention over) is skipped.
  ASSERT_TRUE(cmd(io_, commands_, {"DEL", NotificationQueue::recordKey("second")}));
  EXPECT_EQ(recent("myhub", 10),
            (std::vector<std::string>{"later:scheduled", "first:notargetfound"}));

  // Only the latest kRecentKept stay listed, and the list expires with the records.
  for (size_t i = 0; i < NotificationQueue::kRecentKept + 5; ++i) {
    ASSERT_TRUE(enqueue(queue_, "n" + std::to_string(i), "b", {}));
  }
  auto length = cmd(io_, commands_, {"LLEN", NotificationQueue::recentKey("myhub")});
  ASSERT_TRUE(length);
  EXPECT_EQ(length->integer, static_cast<int64_t>(NotificationQueue::kRecentKept));
  auto listed = recent("myhub", 1000);
  ASSERT_EQ(listed.size(), NotificationQueue::kRecentKept);
  EXPECT_EQ(listed.front(),
            "n" + std::to_string(NotificationQueue::kRecentKept + 4) + ":notargetfound");
  auto ttl = cmd(io_, commands_, {"TTL", NotificationQueue::recentKey("myhub")});
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->integer, 3000);
  EXPECT_LE(ttl->integer, 3600);
}

}  // namespace
}  // namespace pushhub::registry
