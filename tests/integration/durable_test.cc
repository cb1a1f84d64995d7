// Crash safety end to end: two pushhubd instances share one Redis; one of them dies (SIGKILL) or
// is stopped (SIGTERM) in the middle of a 100,000-device broadcast, and the survivor completes
// it: every device is reached, the notification ends Completed, and the duplicates a crash
// causes stay within the bound docs/ARCHITECTURE.md states (the jobs' windows past their
// recorded progress). Also: an instance killed while its targets wait for a retry, and scheduled
// sends with two instances and across a restart of both.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <map>
#include <thread>
#include <vector>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;

constexpr int kInstallations = 100000;
constexpr int kBuckets = 64;                         // the itest hub's, stack.h
constexpr int kResolvesInFlight = 2;                 // [dispatch] below
constexpr int kWindowUnits = 4 * kResolvesInFlight;  // Dispatcher: buckets past the progress

std::string tokenOf(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%056x%08x", i * 2654435761u + 777u, i);
  return std::string(buf, 64);
}

class DurableTest : public ::testing::Test {
 protected:
  static StackOptions options() {
    StackOptions o;
    o.instances = 2;
    // A broadcast lasts a few seconds, long enough to be interrupted, and its four jobs (16
    // buckets each) spread over both instances (one job per worker, two workers each).
    o.mock_flags = {"--delay-ms", "10"};
    o.extra_config =
        "job_idle_timeout_ms = 1500\nmax_jobs_per_worker = 1\n"
        "max_in_flight_per_job = 64\nresolves_in_flight_per_job = " +
        std::to_string(kResolvesInFlight) + "\n";
    return o;
  }

  void registerAll() {
    for (int first = 0; first < kInstallations; first += 1000) {
      v1::BatchCreateOrUpdateInstallationsRequest batch;
      batch.set_hub(kHub);
      for (int i = first; i < first + 1000; ++i) {
        auto* inst = batch.add_installations();
        inst->set_installation_id("d-" + std::to_string(i));
        inst->set_platform(v1::PLATFORM_APNS);
        inst->set_push_channel(tokenOf(i));
      }
      v1::BatchCreateOrUpdateInstallationsResponse response;
      auto rpc =
          stack_.stub(0).BatchCreateOrUpdateInstallations(stack_.context().get(), batch, &response);
      ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    }
  }

  json::object apnsStats() {
    auto r = httpRequest("GET", stack_.controlPort(), "/_mock/stats");
    EXPECT_EQ(r.status, 200);
    return json::parse(r.body).as_object().at("apns").as_object();
  }

  std::string broadcast(int instance) {
    httpRequest("POST", stack_.controlPort(), "/_mock/reset");
    v1::SendNotificationRequest request;
    request.set_hub(kHub);
    request.set_broadcast(true);
    auto* native = request.add_native();
    native->set_platform(v1::PLATFORM_APNS);
    native->set_body(R"({"aps":{"alert":"durable"}})");
    v1::SendNotificationResponse accepted;
    auto rpc = stack_.stub(instance).SendNotification(stack_.context().get(), request, &accepted);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    return accepted.notification_id();
  }

  // Waits (bounded: 30 s) until `instance` is delivering a job of the broadcast, and a while more.
  void waitWorking(int instance) {
    for (int i = 0; i < 3000; ++i) {
      if (metric(instance, "pushhub_deliveries_in_flight") > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "instance " << instance << " never took a job\n" << stack_.daemonLog(instance);
  }

  uint64_t metric(int instance, const std::string& name) {
    return static_cast<uint64_t>(metricSum(stack_.adminPort(instance), name));
  }

  // Checks the broadcast reached everyone and reports the duplicates; returns them.
  int64_t expectEveryoneReached(const v1::NotificationStatus& status, const std::string& what) {
    EXPECT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << what;
    int64_t success = 0;
    for (const auto& o : status.outcomes()) {
      EXPECT_EQ(o.outcome(), "Success") << what;
      success += o.count();
    }
    auto stats = apnsStats();
    int64_t distinct = stats.at("distinct_tokens").to_number<int64_t>();
    int64_t accepted = stats.at("accepted").to_number<int64_t>();
    EXPECT_EQ(distinct, kInstallations) << what;
    // Deliveries the survivor counted: each device once, whoever delivered it first.
    EXPECT_GE(success, kInstallations - (accepted - distinct)) << what;
    std::cout << what << ": " << distinct << " devices reached, " << accepted - distinct
              << " duplicate deliveries\n";
    RecordProperty(what + "_duplicates", std::to_string(accepted - distinct));
    return accepted - distinct;
  }

  Stack stack_{options()};
};

TEST_F(DurableTest, ABroadcastSurvivesAKilledInstanceAndAStoppedOne) {
  registerAll();
  const int64_t bucket_max = 2 * kInstallations / kBuckets;  // generous: ids hash unevenly

  // SIGKILL in the middle: the survivor reclaims the dead instance's jobs after the idle timeout
  // and starts each after its recorded progress.
  auto id = broadcast(0);
  waitWorking(1);
  stack_.killInstance(1);
  auto status = stack_.waitFinal(id, 0, 120);
  int64_t duplicates = expectEveryoneReached(status, "killed");
  uint64_t reclaimed = metric(0, "pushhub_jobs_reclaimed_total");
  EXPECT_GT(reclaimed, 0u) << "the killed instance held no job: the test proved nothing";
  std::cout << "killed: " << reclaimed << " jobs reclaimed\n";
  EXPECT_LE(duplicates, static_cast<int64_t>(reclaimed) * kWindowUnits * bucket_max)
      << "more duplicates than the reclaimed jobs' windows allow";

  // SIGKILL while its bucket resolves wait for their answers: Redis pauses every client (CLIENT
  // PAUSE), so the resolves the instance has sent stay unanswered when it dies.
  stack_.startInstance(1);
  id = broadcast(0);
  waitWorking(1);
  redisCli(stack_.redisPort(), {"CLIENT", "PAUSE", "1500", "ALL"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stack_.killInstance(1);
  status = stack_.waitFinal(id, 0, 120);
  duplicates = expectEveryoneReached(status, "killed while resolving");
  uint64_t reclaimed_before = reclaimed;
  reclaimed = metric(0, "pushhub_jobs_reclaimed_total");
  EXPECT_GT(reclaimed, reclaimed_before) << "the killed instance held no job";
  EXPECT_LE(duplicates,
            static_cast<int64_t>(reclaimed - reclaimed_before) * kWindowUnits * bucket_max);

  // SIGTERM in the middle: the stopping instance lets its in-flight sends answer, records its
  // progress and releases its jobs, exits 0, and the other takes them at once.
  stack_.startInstance(1);
  id = broadcast(1);
  waitWorking(1);
  EXPECT_EQ(stack_.terminateInstance(1), 0) << stack_.daemonLog(1);
  status = stack_.waitFinal(id, 0, 120);
  EXPECT_GT(metric(0, "pushhub_jobs_reclaimed_total"), reclaimed)
      << "the stopped instance released no job: the test proved nothing\n"
      << stack_.daemonLog(1);
  duplicates = expectEveryoneReached(status, "stopped");
  EXPECT_LE(duplicates, 0) << "a graceful stop redelivers nothing that was answered";
}

// An instance killed while its targets wait for their Retry-After: the other instance takes the
// job over and delivers every device exactly once (the throttled attempts delivered nothing).
TEST_F(DurableTest, AnInstanceKilledWhileRetryingLeavesTheRetriesToTheOther) {
  httpRequest("POST", stack_.controlPort(), "/_mock/reset");
  mock::controlCall(stack_.controlPort(), "POST", "/_mock/faults",
                    R"({"provider":"apns","fault":"throttle","retry_after":3,"count":400})");
  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  for (int i = 0; i < 400; ++i) {
    auto* target = send.mutable_direct()->add_targets();
    target->set_platform(v1::PLATFORM_APNS);
    target->set_push_handle(tokenOf(200000 + i));
  }
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"retried"}})");
  v1::SendNotificationResponse accepted;
  ASSERT_TRUE(stack_.stub(0).SendNotification(stack_.context().get(), send, &accepted).ok());

  int retrying = -1;  // the instance whose targets wait for their retry
  for (int i = 0; i < 300 && retrying < 0; ++i) {
    for (int instance = 0; instance < 2; ++instance) {
      if (metric(instance, "pushhub_retries_total") > 0) retrying = instance;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(retrying, 0) << "no instance retried: the test proved nothing";
  stack_.killInstance(retrying);
  int survivor = 1 - retrying;
  auto status = stack_.waitFinal(accepted.notification_id(), survivor, 60);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
  EXPECT_GT(metric(survivor, "pushhub_jobs_reclaimed_total"), 0u);
  auto r = httpRequest("GET", stack_.controlPort(), "/_mock/received?provider=apns&limit=100000");
  json::value entries = json::parse(r.body);
  std::map<std::string, int> delivered;
  for (const auto& e : entries.as_array()) {
    if (e.at("status").to_number<int>() == 200) {
      ++delivered[json::value_to<std::string>(e.at("token"))];
    }
  }
  EXPECT_EQ(delivered.size(), 400u);
  for (const auto& [token, n] : delivered) EXPECT_EQ(n, 1) << token;
  stack_.startInstance(retrying);
}

// Scheduled sends with two instances: each fires exactly once, a cancelled one never; one whose
// time comes while every instance is down fires when they are back.
TEST_F(DurableTest, ScheduledSendsFireOnceWithTwoInstancesAndAfterAFullRestart) {
  auto nowMs = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  // A direct send to 50 handles of its own, scheduled `at_ms`.
  auto schedule = [&](int first, int64_t at_ms) {
    v1::SendNotificationRequest send;
    send.set_hub(kHub);
    for (int i = first; i < first + 50; ++i) {
      auto* target = send.mutable_direct()->add_targets();
      target->set_platform(v1::PLATFORM_APNS);
      target->set_push_handle(tokenOf(i));
    }
    auto* native = send.add_native();
    native->set_platform(v1::PLATFORM_APNS);
    native->set_body(R"({"aps":{"alert":"scheduled"}})");
    *send.mutable_scheduled_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(at_ms);
    v1::SendNotificationResponse accepted;
    auto rpc =
        stack_.stub(first / 50 % 2).SendNotification(stack_.context().get(), send, &accepted);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    return accepted.notification_id();
  };
  // How often pns-mock received each of the 50 handles from `first`.
  auto deliveries = [&](int first) {
    auto r = httpRequest("GET", stack_.controlPort(), "/_mock/received?provider=apns&limit=100000");
    std::map<std::string, int> count;
    json::value entries = json::parse(r.body);
    for (const auto& e : entries.as_array()) {
      count[json::value_to<std::string>(e.at("token"))] += e.at("status").to_number<int>() == 200;
    }
    std::vector<int> out;
    for (int i = first; i < first + 50; ++i) out.push_back(count[tokenOf(i)]);
    return out;
  };
  const std::vector<int> once(50, 1), never(50, 0);
  httpRequest("POST", stack_.controlPort(), "/_mock/reset");

  std::string fires = schedule(0, nowMs() + 1500);
  std::string called_off = schedule(50, nowMs() + 1500);
  v1::CancelNotificationRequest cancel;
  cancel.set_hub(kHub);
  cancel.set_notification_id(called_off);
  v1::CancelNotificationResponse cancelled;
  ASSERT_TRUE(stack_.stub(1).CancelNotification(stack_.context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(stack_.waitFinal(fires, 0, 60).state(), v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(stack_.notification(called_off).state(), v1::NotificationStatus::STATE_CANCELLED);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // room for a second firing, were there one
  EXPECT_EQ(deliveries(0), once);
  EXPECT_EQ(deliveries(50), never);

  // Every instance stops; the send's time passes while none runs; they come back and it fires.
  int64_t at_ms = nowMs() + 5000;
  std::string after_restart = schedule(100, at_ms);
  EXPECT_EQ(stack_.terminateInstance(0), 0);
  EXPECT_EQ(stack_.terminateInstance(1), 0);
  ASSERT_LT(nowMs(), at_ms) << "the instances took too long to stop: the send fired before";
  while (nowMs() < at_ms + 1000) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(deliveries(100), never);
  stack_.startInstance(0);
  stack_.startInstance(1);
  EXPECT_EQ(stack_.waitFinal(after_restart, 1, 60).state(),
            v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(deliveries(100), once);
}

}  // namespace
}  // namespace pushhub::testing
