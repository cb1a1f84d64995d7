// Providers misbehaving, driven by pns-mock's run-time faults: a throttling storm that ends, and a
// route that is down while the others carry on.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;

struct Audience {
  std::set<std::string> apns, fcm, wns;  // tokens as pns-mock records them
};

// A direct send of `hub` to `apns` APNs, `fcm` FCM and `wns` WNS handles, new ones each.
v1::SendNotificationRequest directSend(Stack& stack, const std::string& hub, int apns, int fcm,
                                       int wns, Audience& audience, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> apns_handles, fcm_handles, wns_handles;
  for (int i = 0; i < apns; ++i) apns_handles.push_back(randomHex(rng, 64, "a"));
  for (int i = 0; i < fcm; ++i) fcm_handles.push_back(randomHex(rng, 152, "f"));
  for (int i = 0; i < wns; ++i) {
    std::string token = randomHex(rng, 40, "w");
    audience.wns.insert(token);
    wns_handles.push_back(stack.wnsChannel(token));
  }
  audience.apns.insert(apns_handles.begin(), apns_handles.end());
  audience.fcm.insert(fcm_handles.begin(), fcm_handles.end());
  return directSendTo(hub, apns_handles, fcm_handles, wns_handles);
}

// The send's id; throws when it is refused (nothing to wait for then).
std::string accept(Stack& stack, const v1::SendNotificationRequest& send) {
  v1::SendNotificationResponse accepted;
  auto rpc = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  if (!rpc.ok()) throw std::runtime_error("send refused: " + rpc.error_message());
  return accepted.notification_id();
}

void fault(Stack& stack, const std::string& body) {
  mock::controlCall(stack.controlPort(), "POST", "/_mock/faults", body);
}

struct Request {
  int64_t at_us;
  int status;
};

// What pns-mock received for `provider`, by token, in order.
std::map<std::string, std::vector<Request>> receivedByToken(Stack& stack,
                                                            const std::string& provider) {
  auto entries = mock::controlCall(stack.controlPort(), "GET",
                                   "/_mock/received?provider=" + provider + "&limit=100000");
  std::map<std::string, std::vector<Request>> out;
  for (const auto& e : entries.as_array()) {
    const auto& o = e.as_object();
    out[json::value_to<std::string>(o.at("token"))].push_back(
        {o.at("received_at_us").to_number<int64_t>(), o.at("status").to_number<int>()});
  }
  for (auto& [token, requests] : out) {
    std::sort(requests.begin(), requests.end(),
              [](const Request& a, const Request& b) { return a.at_us < b.at_us; });
  }
  return out;
}

// Every token was answered 200 exactly once; a request answered `throttled` is retried no
// sooner than `retry_after_s` later. Returns how many requests were throttled.
int checkDeliveries(Stack& stack, const std::string& provider, const std::set<std::string>& tokens,
                    int throttled, int retry_after_s) {
  auto got = receivedByToken(stack, provider);
  int throttles = 0;
  for (const auto& token : tokens) {
    auto it = got.find(token);
    if (it == got.end()) {
      ADD_FAILURE() << provider << " never received " << token;
      continue;
    }
    const auto& requests = it->second;
    EXPECT_EQ(std::count_if(requests.begin(), requests.end(),
                            [](const Request& r) { return r.status == 200; }),
              1)
        << provider << " " << token;
    for (size_t i = 0; i + 1 < requests.size(); ++i) {
      if (requests[i].status != throttled) continue;
      ++throttles;
      EXPECT_GE(requests[i + 1].at_us - requests[i].at_us, retry_after_s * 1'000'000)
          << provider << " retried " << token << " before its Retry-After";
    }
  }
  return throttles;
}

// The APNs tokens of `audience` pns-mock answered 200, polled until all are (at most 60 s).
std::set<std::string> apnsReached(Stack& stack, const Audience& audience) {
  std::set<std::string> reached;
  for (int i = 0; i < 1200 && reached.size() < audience.apns.size(); ++i) {
    reached.clear();
    for (const auto& [token, requests] : receivedByToken(stack, "apns")) {
      if (audience.apns.count(token) && requests.back().status == 200) reached.insert(token);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return reached;
}

int64_t success(const v1::NotificationStatus& status, v1::Platform platform) {
  int64_t n = 0;
  for (const auto& o : status.outcomes()) {
    if (o.platform() == platform && o.outcome() == "Success") n += o.count();
  }
  return n;
}

TEST(FaultsIntegrationTest, AThrottlingStormEndsWithEveryDeviceDeliveredAndNoRetryTooSoon) {
  StackOptions options;
  options.extra_config = "max_attempts = 5\n";
  Stack stack(options);
  constexpr int kApns = 200, kFcm = 100, kWns = 60;
  // FCM: 150 sends throttled with Retry-After 1 s; WNS: throttled with Retry-After 2 s for
  // 1.5 s; APNs: 300 answered 503 (retried with backoff: APNs sends no Retry-After).
  fault(stack, R"({"provider":"fcm","fault":"throttle","retry_after":1,"count":150})");
  fault(stack, R"({"provider":"wns","fault":"throttle","retry_after":2,"duration_ms":1500})");
  fault(stack, R"({"provider":"apns","fault":"unavailable","count":300})");
  Audience audience;
  std::string id = accept(stack, directSend(stack, kHub, kApns, kFcm, kWns, audience, 1));
  auto status = stack.waitFinal(id, 0, 120);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_APNS), kApns) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_FCM), kFcm) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_WNS), kWns) << status.DebugString();

  int fcm_throttles = checkDeliveries(stack, "fcm", audience.fcm, 429, 1);
  int wns_throttles = checkDeliveries(stack, "wns", audience.wns, 406, 2);
  checkDeliveries(stack, "apns", audience.apns, 503, 0);
  EXPECT_EQ(fcm_throttles, 150);
  EXPECT_GE(wns_throttles, kWns);  // every WNS device was throttled at least once
  std::printf("storm: %d FCM and %d WNS throttles, 300 APNs 503s; all %d devices delivered\n",
              fcm_throttles, wns_throttles, kApns + kFcm + kWns);
  // The retries are counted by reason.
  auto metrics = httpRequest("GET", stack.adminPort(), "/metrics").body;
  EXPECT_NE(
      metrics.find("pushhub_retries_total{hub=\"itest\",platform=\"fcm\",reason=\"Throttled\"} "
                   "150\n"),
      std::string::npos);
  EXPECT_NE(metrics.find("pushhub_retries_total{hub=\"itest\",platform=\"apns\",reason="
                         "\"PnsUnavailable\"} 300\n"),
            std::string::npos);
}

TEST(FaultsIntegrationTest, OneHubsFcmDownLeavesItsApnsAndTheOtherHubUntouched) {
  StackOptions options;
  // Enough attempts that the FCM devices are still being retried when the route comes back; one
  // job slot per worker (two in all) and one queue partition (jobs are taken in send order): the
  // down route's two jobs take both slots before the other hub's job is read.
  options.extra_config = "max_attempts = 12\nmax_jobs_per_worker = 1\nqueue_partitions = 1\n";
  Stack stack(options);
  fault(stack, R"({"provider":"fcm","fault":"refuse","duration_ms":600000})");
  Audience mixed;
  std::vector<std::string> ids;
  for (uint64_t seed : {2, 4}) {
    ids.push_back(accept(stack, directSend(stack, kHub, 150, 50, 0, mixed, seed)));
  }
  Audience other;
  std::string other_id = accept(stack, directSend(stack, kOtherHub, 300, 0, 0, other, 3));

  // While FCM is down: every APNs device of the same sends is delivered while their FCM devices
  // wait, and the other hub's send completes: the jobs waiting only for FCM retries gave their
  // slots up.
  auto other_status = stack.waitFinal(other_id, 0, 60, kOtherHub);
  EXPECT_EQ(other_status.state(), v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(success(other_status, v1::PLATFORM_APNS), 300);
  EXPECT_EQ(apnsReached(stack, mixed), mixed.apns);
  for (const auto& id : ids) {
    EXPECT_EQ(stack.notification(id).state(), v1::NotificationStatus::STATE_PROCESSING);
  }
  EXPECT_TRUE(receivedByToken(stack, "fcm").empty());  // nothing got through

  // FCM comes back: the waiting devices are delivered.
  fault(stack, R"({"provider":"fcm","fault":"none"})");
  for (const auto& id : ids) {
    auto status = stack.waitFinal(id, 0, 120);
    ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
    EXPECT_EQ(success(status, v1::PLATFORM_APNS), 150);
    EXPECT_EQ(success(status, v1::PLATFORM_FCM), 50) << status.DebugString();
  }
}

// Installations of `hub` for new APNs and FCM handles, interleaved so every bucket holds both.
void registerMixed(Stack& stack, const std::string& hub, int apns, int fcm, Audience& audience,
                   uint64_t seed) {
  std::mt19937_64 rng(seed);
  v1::BatchCreateOrUpdateInstallationsRequest batch;
  batch.set_hub(hub);
  int a = 0, f = 0;
  while (a < apns || f < fcm) {
    // Keep the mix even all along: the platform further behind its share goes next.
    bool next_apns = f >= fcm || (a < apns && int64_t{a} * fcm <= int64_t{f} * apns);
    auto* inst = batch.add_installations();
    inst->set_installation_id(randomHex(rng, 24, "i"));
    if (next_apns) {
      inst->set_platform(v1::PLATFORM_APNS);
      inst->set_push_channel(randomHex(rng, 64, "a"));
      audience.apns.insert(inst->push_channel());
      ++a;
    } else {
      inst->set_platform(v1::PLATFORM_FCM);
      inst->set_push_channel(randomHex(rng, 152, "f"));
      audience.fcm.insert(inst->push_channel());
      ++f;
    }
    if (batch.installations_size() == 500 || (a == apns && f == fcm)) {
      v1::BatchCreateOrUpdateInstallationsResponse response;
      auto rpc =
          stack.stub().BatchCreateOrUpdateInstallations(stack.context().get(), batch, &response);
      if (!rpc.ok()) throw std::runtime_error("register: " + rpc.error_message());
      batch.clear_installations();
    }
  }
}

// One broadcast whose every bucket holds APNs and FCM devices, while FCM refuses connections: the
// job can hold only a few buckets past its recorded progress (one resolve in flight: a window of
// 4 of its 64), so without the split the FCM devices waiting for retries would stop the APNs ones
// after 4 buckets. FCM lags, is split off to a job of its own, and every APNs device is reached
// while FCM is still down; once FCM is back, each FCM device is delivered exactly once.
TEST(FaultsIntegrationTest, ALaggingPlatformIsSplitOffAndTheSameSendsOthersKeepTheirPace) {
  StackOptions options;
  options.extra_config =
      "max_attempts = 12\nresolves_in_flight_per_job = 1\nsplit_lagging_platform_ms = 200\n";
  Stack stack(options);
  Audience audience;
  registerMixed(stack, kHub, 640, 320, audience, 11);
  fault(stack, R"({"provider":"fcm","fault":"refuse","duration_ms":600000})");
  auto send = directSendTo(kHub, {}, {});
  send.set_broadcast(true);
  std::string id = accept(stack, send);

  EXPECT_EQ(apnsReached(stack, audience).size(), audience.apns.size());
  EXPECT_EQ(stack.notification(id).state(), v1::NotificationStatus::STATE_PROCESSING);
  EXPECT_TRUE(receivedByToken(stack, "fcm").empty());
  EXPECT_GE(metricSum(stack.adminPort(), "pushhub_jobs_split_total"), 1);

  fault(stack, R"({"provider":"fcm","fault":"none"})");
  auto status = stack.waitFinal(id, 0, 120);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_APNS), 640);
  EXPECT_EQ(success(status, v1::PLATFORM_FCM), 320) << status.DebugString();
  checkDeliveries(stack, "apns", audience.apns, 0, 0);
  checkDeliveries(stack, "fcm", audience.fcm, 0, 0);
}

// A broadcast of 64 jobs (one bucket each) whose APNs route answers slowly, then another hub's
// send of one job. Job slots go round the sends: the broadcast keeps one job waiting in each queue
// partition, so the other send waits behind one of its jobs, not behind the 8 of each partition,
// and completes while most of the broadcast's devices have not been reached. (Taken in the order
// they were queued, the other send would start only once nearly every broadcast job had.)
TEST(FaultsIntegrationTest, AnotherHubsSendIsNotQueuedBehindABroadcast) {
  StackOptions options;
  options.extra_config = "buckets_per_job = 1\nmax_jobs_per_worker = 1\n";
  Stack stack(options);
  Audience broadcast;
  registerMixed(stack, kHub, 640, 0, broadcast, 21);
  fault(stack, std::string(R"({"provider":"apns","fault":"slow","delay_ms":100,"match":")") +
                   kTopic + R"(","duration_ms":600000})");
  auto send = directSendTo(kHub, {}, {});
  send.set_broadcast(true);
  std::string id = accept(stack, send);
  Audience other;
  std::string other_id = accept(stack, directSend(stack, kOtherHub, 20, 0, 0, other, 22));

  auto other_status = stack.waitFinal(other_id, 0, 60, kOtherHub);
  ASSERT_EQ(other_status.state(), v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(success(other_status, v1::PLATFORM_APNS), 20);
  size_t reached = 0;
  for (const auto& [token, requests] : receivedByToken(stack, "apns")) {
    reached += broadcast.apns.count(token);
  }
  EXPECT_LT(reached, broadcast.apns.size() / 2) << "of the broadcast's devices were reached first";

  fault(stack, R"({"provider":"apns","fault":"none"})");
  auto status = stack.waitFinal(id, 0, 120);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_APNS), 640);
  checkDeliveries(stack, "apns", broadcast.apns, 0, 0);
}

// Redis, persisting every write (AOF, appendfsync always), crashes and restarts in the middle of a
// send: pushhubd reconnects, the send completes, and nothing accepted before the crash is lost
// (the registrations, a send still queued behind it, a scheduled send).
TEST(FaultsIntegrationTest, ARedisCrashAndRestartMidSendLosesNothingAccepted) {
  StackOptions options;
  options.redis_aof = true;
  // APNs answers 10 streams at a time, each 50 ms late: the send lasts a few seconds.
  options.mock_flags = {"--delay-ms", "50", "--max-concurrent-streams", "10"};
  Stack stack(options);
  constexpr int kRegistered = 300;
  std::mt19937_64 rng(4);
  std::set<std::string> registered;
  v1::BatchCreateOrUpdateInstallationsRequest batch;
  batch.set_hub(kHub);
  for (int i = 0; i < kRegistered; ++i) {
    std::string token = randomHex(rng, 64, "b");
    registered.insert(token);
    auto* inst = batch.add_installations();
    inst->set_installation_id("r-" + std::to_string(i));
    inst->set_platform(v1::PLATFORM_APNS);
    inst->set_push_channel(token);
  }
  v1::BatchCreateOrUpdateInstallationsResponse stored;
  ASSERT_TRUE(
      stack.stub().BatchCreateOrUpdateInstallations(stack.context().get(), batch, &stored).ok());

  Audience running, queued;
  std::string running_id = accept(stack, directSend(stack, kHub, 1000, 0, 0, running, 5));
  std::string queued_id = accept(stack, directSend(stack, kHub, 200, 0, 0, queued, 6));
  v1::SendNotificationRequest later;
  later.set_hub(kHub);
  later.set_broadcast(true);
  auto* native = later.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"after the crash"}})");
  int64_t at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count() +
                  2000;
  *later.mutable_scheduled_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(at_ms);
  std::string scheduled_id = accept(stack, later);

  // In the middle of the first send: some delivered, not all.
  for (int i = 0; i < 600 && receivedByToken(stack, "apns").size() < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  size_t before = receivedByToken(stack, "apns").size();
  stack.crashAndRestartRedis();
  std::printf("redis crashed and restarted after %zu of %d deliveries\n", before, 1000);
  EXPECT_LT(before, 1000u) << "the send was over before the crash: the test proved nothing";

  for (const auto& [id, audience] :
       {std::pair{running_id, &running}, std::pair{queued_id, &queued}}) {
    auto status = stack.waitFinal(id, 0, 120);
    ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
    EXPECT_GE(success(status, v1::PLATFORM_APNS), static_cast<int64_t>(audience->apns.size()));
  }
  auto status = stack.waitFinal(scheduled_id, 0, 120);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << status.DebugString();
  EXPECT_EQ(success(status, v1::PLATFORM_APNS), kRegistered);
  auto got = receivedByToken(stack, "apns");
  for (const auto* tokens : {&running.apns, &queued.apns, &registered}) {
    for (const auto& token : *tokens) {
      auto it = got.find(token);
      EXPECT_TRUE(it != got.end() && std::any_of(it->second.begin(), it->second.end(),
                                                 [](const Request& r) { return r.status == 200; }))
          << token << " was never delivered";
    }
  }
  std::printf("Redis errors seen by pushhubd: %lld, commands retried: %lld\n",
              static_cast<long long>(metricSum(stack.adminPort(), "pushhub_redis_errors_total")),
              static_cast<long long>(metricSum(stack.adminPort(), "pushhub_redis_retries_total")));
}

}  // namespace
}  // namespace pushhub::testing
