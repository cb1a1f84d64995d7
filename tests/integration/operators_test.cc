// What operators see: the queue, the routes and the provider latency while a send is held up
// and after it, through HubAdmin.GetStats, /metrics, /healthz and /readyz, scheduled sends listed
// per hub, and pushhubctl's operator commands against a live pushhubd.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;
using google::protobuf::util::TimeUtil;

constexpr int kApns = 200;
constexpr int kDeadApns = 10;  // every 20th APNs handle
constexpr int kFcm = 100;

// A direct send to 200 APNs handles (10 of them dead) and 100 FCM ones.
v1::SendNotificationRequest mixedDirectSend() {
  std::mt19937_64 rng(11);
  std::vector<std::string> apns, fcm;
  for (int i = 0; i < kApns; ++i) apns.push_back(randomHex(rng, 64, i % 20 == 0 ? "dead" : "a"));
  for (int i = 0; i < kFcm; ++i) fcm.push_back(randomHex(rng, 152, "f"));
  return directSendTo(kHub, apns, fcm);
}

v1::Stats stats(Stack& stack, const std::string& hub = "") {
  v1::GetStatsRequest request;
  request.set_hub(hub);
  v1::Stats out;
  auto rpc = stack.admin().GetStats(stack.adminContext().get(), request, &out);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  return out;
}

const v1::Stats::HubStats* hubOf(const v1::Stats& s, const std::string& name) {
  for (const auto& hub : s.hubs()) {
    if (hub.hub() == name) return &hub;
  }
  return nullptr;
}

const v1::Stats::Route* routeOf(const v1::Stats& s, const std::string& hub,
                                const std::string& platform) {
  const auto* h = hubOf(s, hub);
  if (!h) return nullptr;
  for (const auto& route : h->routes()) {
    if (route.platform() == platform) return &route;
  }
  return nullptr;
}

uint64_t deliveries(const v1::Stats::Route* route, const std::string& outcome) {
  if (!route) return 0;
  auto it = route->deliveries().find(outcome);
  return it == route->deliveries().end() ? 0 : it->second;
}

// Polls `done` every 50 ms for up to 30 s.
bool eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 600; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(OperatorsIntegrationTest, QueueRoutesAndLatencyAreVisibleWhileASendIsHeldUpAndAfter) {
  Stack stack;
  EXPECT_EQ(httpRequest("GET", stack.adminPort(), "/healthz").status, 200);
  auto ready = httpRequest("GET", stack.adminPort(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(json::value_to<std::string>(json::parse(ready.body).at("status")), "ok");

  // Providers answer every request 1.5 s late: the send's jobs stay in the queue, its targets
  // in flight.
  mock::controlCall(stack.controlPort(), "POST", "/_mock/config", R"({"delay_ms":1500})");
  v1::SendNotificationResponse accepted;
  auto rpc = stack.stub().SendNotification(stack.context().get(), mixedDirectSend(), &accepted);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  v1::Stats held;
  ASSERT_TRUE(eventually([&] {
    held = stats(stack);
    const auto* apns = routeOf(held, kHub, "apns");
    return apns && apns->in_flight() > 0;
  })) << held.DebugString();
  const auto* hub = hubOf(held, kHub);
  ASSERT_NE(hub, nullptr);
  EXPECT_GT(hub->queued_jobs(), 0u);
  EXPECT_TRUE(hub->has_oldest_job_time());
  EXPECT_GE(held.queue().jobs(), hub->queued_jobs());
  EXPECT_GT(held.queue().running(), 0u);
  EXPECT_TRUE(held.queue().error().empty());
  EXPECT_GT(metricSum(stack.adminPort(), "pushhub_queue_hub_jobs"), 0);
  EXPECT_GT(metricSum(stack.adminPort(), "pushhub_deliveries_in_flight"), 0);

  ASSERT_EQ(stack.waitFinal(accepted.notification_id()).state(),
            v1::NotificationStatus::STATE_COMPLETED);
  // The job leaves the queue right after its outcome is recorded.
  v1::Stats after;
  ASSERT_TRUE(eventually([&] {
    after = stats(stack);
    return after.queue().jobs() == 0;
  })) << after.DebugString();
  const auto* apns = routeOf(after, kHub, "apns");
  const auto* fcm = routeOf(after, kHub, "fcm");
  ASSERT_NE(apns, nullptr) << after.DebugString();
  ASSERT_NE(fcm, nullptr) << after.DebugString();
  EXPECT_EQ(deliveries(apns, "Success"), uint64_t{kApns - kDeadApns});
  EXPECT_EQ(deliveries(apns, "ExpiredChannel"), uint64_t{kDeadApns});
  EXPECT_EQ(deliveries(fcm, "Success"), uint64_t{kFcm});
  EXPECT_EQ(apns->in_flight(), 0);
  EXPECT_GE(apns->connections(), 1u);
  EXPECT_EQ(hubOf(after, kHub)->queued_jobs(), 0u);
  ASSERT_EQ(after.latency_size(), 3);
  EXPECT_EQ(after.latency(0).platform(), "apns");
  EXPECT_EQ(after.latency(0).count(), uint64_t{kApns});
  // Every answer came at least 1.5 s after its request.
  uint64_t within_1s = 0;
  for (int i = 0; i < after.latency(0).upper_bounds_size(); ++i) {
    if (after.latency(0).upper_bounds(i) <= 1) within_1s += after.latency(0).counts(i);
  }
  EXPECT_EQ(within_1s, 0u) << after.latency(0).DebugString();
  EXPECT_EQ(metricSum(stack.adminPort(), "pushhub_deliveries_total"), kApns + kFcm);
  EXPECT_EQ(metricSum(stack.adminPort(), "pushhub_provider_latency_seconds_count"), kApns + kFcm);
  EXPECT_EQ(metricSum(stack.adminPort(), "pushhub_deliveries_in_flight"), 0);
  EXPECT_EQ(metricSum(stack.adminPort(), "pushhub_workers_responsive"), 2);

  // Only the hub asked for; nothing of another hub.
  v1::Stats other = stats(stack, kOtherHub);
  EXPECT_EQ(hubOf(other, kHub), nullptr);
  // A hub's key, even with Manage, is not the admin key.
  v1::Stats refused;
  auto denied = stack.admin().GetStats(stack.context().get(), {}, &refused);
  EXPECT_FALSE(denied.ok());

  // Without Redis: /healthz and /readyz answer 503 (within the collection's bound) instead of
  // hanging, and /metrics still has the instance's own counters.
  stack.killRedis();
  HttpResult health;
  ASSERT_TRUE(eventually([&] {
    health = httpRequest("GET", stack.adminPort(), "/healthz");
    return health.status == 503;
  })) << health.body;
  EXPECT_EQ(json::value_to<std::string>(json::parse(health.body).at("status")),
            "redis unavailable");
  EXPECT_EQ(httpRequest("GET", stack.adminPort(), "/readyz").status, 503);
  EXPECT_EQ(metricSum(stack.adminPort(), "pushhub_deliveries_total"), kApns + kFcm);
}

// pushhubctl with the environment `./run up` writes; its output.
std::string pushhubctl(Stack& stack, const std::string& args) {
  return runPushhubctl(stack, args).second;
}

TEST(OperatorsIntegrationTest, ScheduledSendsAreListedPerHubAndPushhubctlShowsTheWholePicture) {
  Stack stack;
  int64_t now = TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime());
  std::vector<std::string> ids;
  for (int minutes : {20, 5, 10}) {
    v1::SendNotificationRequest send = mixedDirectSend();
    *send.mutable_scheduled_time() = TimeUtil::MillisecondsToTimestamp(now + minutes * 60'000);
    v1::SendNotificationResponse accepted;
    auto rpc = stack.stub().SendNotification(stack.context().get(), send, &accepted);
    ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    ids.push_back(accepted.notification_id());
  }
  auto list = [&](int max, const std::string& hub = kHub,
                  const std::string& key_name = kFullKeyName, const std::string& key = kFullKey) {
    v1::ListScheduledNotificationsRequest request;
    request.set_hub(hub);
    request.set_max(max);
    v1::ListScheduledNotificationsResponse response;
    grpc::Status rpc = stack.stub().ListScheduledNotifications(stack.context(key_name, key).get(),
                                                               request, &response);
    std::vector<std::string> out;
    for (const auto& n : response.notifications()) out.push_back(n.notification_id());
    return std::make_pair(rpc, out);
  };
  auto [ok, earliest_first] = list(0);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(earliest_first, (std::vector<std::string>{ids[1], ids[2], ids[0]}));
  EXPECT_EQ(list(2).second, (std::vector<std::string>{ids[1], ids[2]}));
  auto [too_many, none] = list(1001);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_many.error_message().find("max"), std::string::npos);
  EXPECT_EQ(list(0, kHub, kListenKeyName, kListenKey).first.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);  // listing needs Manage
  auto [other_ok, others] = list(0, kOtherHub);
  ASSERT_TRUE(other_ok.ok()) << other_ok.error_message();
  EXPECT_TRUE(others.empty());
  v1::Stats s = stats(stack);
  EXPECT_EQ(s.queue().scheduled(), 3u);
  EXPECT_NEAR(TimeUtil::TimestampToMilliseconds(s.queue().next_scheduled_time()), now + 5 * 60'000,
              1000);

  // pushhubctl, for scripts (--json) and for people.
  auto listed = json::parse(pushhubctl(stack, "schedule list --json"));
  ASSERT_EQ(listed.at("notifications").as_array().size(), 3u);
  EXPECT_EQ(json::value_to<std::string>(listed.at("notifications").at(0).at("notification_id")),
            ids[1]);
  EXPECT_EQ(pushhubctl(stack, "schedule cancel " + ids[1]), "cancelled " + ids[1] + "\n");
  EXPECT_EQ(list(0).second, (std::vector<std::string>{ids[2], ids[0]}));
  std::string shown = pushhubctl(stack, "notification " + ids[1]);
  EXPECT_NE(shown.find("notification " + ids[1] + ": Cancelled"), std::string::npos) << shown;
  std::string people = pushhubctl(stack, "schedule list");
  EXPECT_NE(people.find(ids[2]), std::string::npos) << people;
  EXPECT_EQ(people.find(ids[1]), std::string::npos) << people;

  std::string queues = pushhubctl(stack, "queues");
  EXPECT_NE(queues.find("scheduled: 2, next in"), std::string::npos) << queues;
  auto queue = json::parse(pushhubctl(stack, "queues --json"));
  EXPECT_EQ(json::value_to<std::string>(queue.at("scheduled")),
            "2");  // proto JSON writes 64-bit integers as strings

  // A direct send now, then the live view: two refreshes a second apart, as JSON lines.
  v1::SendNotificationResponse sent;
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), mixedDirectSend(), &sent).ok());
  ASSERT_EQ(stack.waitFinal(sent.notification_id()).state(),
            v1::NotificationStatus::STATE_COMPLETED);
  std::string watched = pushhubctl(stack, "stats --json --watch 1 --count 2");
  std::istringstream lines(watched);
  int rounds = 0;
  for (std::string line; std::getline(lines, line); ++rounds) {
    auto round = json::parse(line);
    EXPECT_EQ(round.at("workers").to_number<int>(), 2);
  }
  EXPECT_EQ(rounds, 2) << watched;
  std::string table = pushhubctl(stack, "stats --hub " + std::string(kHub));
  EXPECT_NE(table.find("apns"), std::string::npos) << table;
  EXPECT_NE(table.find(std::to_string(kApns)), std::string::npos) << table;
  std::string hubs = pushhubctl(stack, "hubs");
  EXPECT_NE(hubs.find(std::string(kHub) + " "), std::string::npos) << hubs;
  EXPECT_NE(hubs.find(std::string(kOtherHub) + " "), std::string::npos) << hubs;
  EXPECT_EQ(hubs.find(kFullKey), std::string::npos);  // never a secret
  EXPECT_NE(pushhubctl(stack, "stats --watch 0").find("--watch must be a whole number from 1"),
            std::string::npos);
}

}  // namespace
}  // namespace pushhub::testing
