// End to end: registrations over gRPC into a real Redis, a tag send through the durable queue,
// delivery over TLS HTTP/2 to pns-mock acting as APNs, outcome counts, and dead-token cleanup.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;
using google::protobuf::util::TimeUtil;

std::string randomToken(std::mt19937_64& rng, const std::string& prefix = "") {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token = prefix;
  while (token.size() < 64) token += kHex[rng() & 15];
  return token;
}

grpc::Status put(Stack& stack, const std::string& id, const std::string& token,
                 const std::vector<std::string>& tags,
                 const std::map<std::string, std::string>& templates = {}) {
  v1::CreateOrUpdateInstallationRequest request;
  request.set_hub(kHub);
  auto* inst = request.mutable_installation();
  inst->set_installation_id(id);
  inst->set_platform(v1::PLATFORM_APNS);
  inst->set_push_channel(token);
  for (const auto& tag : tags) inst->add_tags(tag);
  for (const auto& [name, body] : templates) (*inst->mutable_templates())[name].set_body(body);
  v1::CreateOrUpdateInstallationResponse response;
  return stack.stub().CreateOrUpdateInstallation(stack.context().get(), request, &response);
}

int64_t outcomeCount(const v1::NotificationStatus& status, const std::string& outcome) {
  int64_t total = 0;
  for (const auto& o : status.outcomes()) {
    if (o.outcome() == outcome) total += o.count();
  }
  return total;
}

json::array received(Stack& stack) {
  auto result =
      httpRequest("GET", stack.controlPort(), "/_mock/received?provider=apns&limit=100000");
  EXPECT_EQ(result.status, 200) << result.body;
  return json::parse(result.body).as_array();
}

TEST(SendIntegrationTest, TagSendReachesExactlyTheTaggedInstallationsOnceAndDropsDeadTokens) {
  Stack stack;
  std::mt19937_64 rng(42);
  const std::vector<std::string> pool{"news",   "sports", "weather", "music",  "tech",
                                      "travel", "food",   "games",   "movies", "science"};
  std::map<std::string, std::string> tagged;  // token -> installation id, for "sports"
  std::set<std::string> dead_ids;
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::string> tags = pool;
    std::shuffle(tags.begin(), tags.end(), rng);
    tags.resize(3);
    bool has_sports = std::find(tags.begin(), tags.end(), "sports") != tags.end();
    // Every 97th sports device is one pns-mock calls dead (410 Unregistered).
    bool dead = has_sports && i % 97 == 0;
    std::string id = "inst-" + std::to_string(i);
    std::string token = randomToken(rng, dead ? "dead" : "");
    ASSERT_TRUE(put(stack, id, token, tags).ok()) << id;
    if (has_sports) tagged[token] = id;
    if (dead) dead_ids.insert(id);
  }
  ASSERT_GT(tagged.size(), 200u);
  ASSERT_FALSE(dead_ids.empty());

  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  send.set_tag("sports");
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"Goal!"}})");
  (*native->mutable_headers())["apns-push-type"] = "alert";
  send.set_idempotency_key("goal-2026-12-05T18:03");
  v1::SendNotificationResponse accepted;
  auto rpc = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  ASSERT_EQ(accepted.notification_id().size(), 32u);

  auto status = stack.waitFinal(accepted.notification_id());
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << stack.daemonLog();
  EXPECT_EQ(outcomeCount(status, "Success"), static_cast<int64_t>(tagged.size() - dead_ids.size()));
  EXPECT_EQ(outcomeCount(status, "ExpiredChannel"), static_cast<int64_t>(dead_ids.size()));
  // The outcome details: times, platforms, and each dead handle with pns-mock's answer.
  EXPECT_TRUE(status.has_start_time() && status.has_end_time());
  EXPECT_LE(TimeUtil::TimestampToMilliseconds(status.enqueue_time()),
            TimeUtil::TimestampToMilliseconds(status.start_time()));
  EXPECT_LE(TimeUtil::TimestampToMilliseconds(status.start_time()),
            TimeUtil::TimestampToMilliseconds(status.end_time()));
  ASSERT_EQ(status.target_platforms_size(), 1);
  EXPECT_EQ(status.target_platforms(0), v1::PLATFORM_APNS);
  ASSERT_EQ(status.failures_size(), static_cast<int>(dead_ids.size()));
  for (const auto& failure : status.failures()) {
    EXPECT_TRUE(dead_ids.count(failure.installation_id())) << failure.installation_id();
    EXPECT_EQ(tagged.at(failure.push_handle()), failure.installation_id());
    EXPECT_EQ(failure.http_status(), 410);
    EXPECT_EQ(failure.outcome(), "ExpiredChannel");
    EXPECT_EQ(failure.reason(), "Unregistered");
  }

  // The same send again with the same idempotency key (a client retrying): the first id, and
  // nothing sent.
  int64_t accepted_before =
      json::parse(httpRequest("GET", stack.controlPort(), "/_mock/stats").body)
          .at("apns")
          .at("accepted")
          .to_number<int64_t>();
  v1::SendNotificationResponse retried;
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &retried).ok());
  EXPECT_EQ(retried.notification_id(), accepted.notification_id());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(json::parse(httpRequest("GET", stack.controlPort(), "/_mock/stats").body)
                .at("apns")
                .at("accepted")
                .to_number<int64_t>(),
            accepted_before);
  send.clear_idempotency_key();

  std::map<std::string, int> seen;
  for (const auto& entry : received(stack)) {
    const auto& obj = entry.as_object();
    ++seen[json::value_to<std::string>(obj.at("token"))];
    EXPECT_EQ(json::value_to<std::string>(obj.at("body")), R"({"aps":{"alert":"Goal!"}})");
  }
  EXPECT_EQ(seen.size(), tagged.size());
  for (const auto& [token, id] : tagged) {
    EXPECT_EQ(seen[token], 1) << "token of " << id << " received " << seen[token] << " times";
  }

  // Dead installations are kept and marked, as Azure does (pushChannelExpired), before the job
  // completes.
  for (const auto& id : dead_ids) {
    v1::GetInstallationRequest get;
    get.set_hub(kHub);
    get.set_installation_id(id);
    v1::Installation installation;
    auto rpc = stack.stub().GetInstallation(stack.context().get(), get, &installation);
    ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    EXPECT_TRUE(installation.push_channel_expired()) << id;
  }
  // A live one is not marked.
  for (const auto& [token, id] : tagged) {
    if (dead_ids.count(id)) continue;
    v1::GetInstallationRequest get;
    get.set_hub(kHub);
    get.set_installation_id(id);
    v1::Installation installation;
    ASSERT_TRUE(stack.stub().GetInstallation(stack.context().get(), get, &installation).ok());
    EXPECT_FALSE(installation.push_channel_expired());
    break;
  }
  // A second send to the same tag no longer targets the dead handles.
  httpRequest("POST", stack.controlPort(), "/_mock/reset");
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &accepted).ok());
  status = stack.waitFinal(accepted.notification_id());
  EXPECT_EQ(outcomeCount(status, "Success"), static_cast<int64_t>(tagged.size() - dead_ids.size()));
  EXPECT_EQ(outcomeCount(status, "ExpiredChannel"), 0);

  // A test send: at most 10 devices, and the answer lists each one's outcome.
  httpRequest("POST", stack.controlPort(), "/_mock/reset");
  send.set_test(true);
  v1::SendNotificationResponse test;
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &test).ok());
  EXPECT_TRUE(test.test_completed());
  ASSERT_EQ(test.test_results_size(), 10);
  std::set<std::string> tested;
  for (const auto& result : test.test_results()) {
    EXPECT_EQ(tagged.at(result.push_handle()), result.installation_id());
    EXPECT_EQ(result.outcome(), "Success");
    EXPECT_EQ(result.http_status(), 200);
    tested.insert(result.push_handle());
  }
  EXPECT_EQ(tested.size(), 10u);
  std::set<std::string> got;
  for (const auto& entry : received(stack)) {
    got.insert(json::value_to<std::string>(entry.as_object().at("token")));
  }
  EXPECT_EQ(got, tested);

  auto metrics = httpRequest("GET", stack.adminPort(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("pushhub_deliveries_total{hub=\"itest\",platform=\"apns\",outcome="
                              "\"Success\"}"),
            std::string::npos);
}

TEST(SendIntegrationTest, DirectSendsReachTheirHandlesAndScheduledSendsFireOnceOrNever) {
  Stack stack;
  std::mt19937_64 rng(7);
  // A batch direct send: 250 handles (three units), every 50th one pns-mock calls dead.
  v1::SendNotificationRequest direct;
  direct.set_hub(kHub);
  std::set<std::string> live, dead;
  for (int i = 0; i < 250; ++i) {
    std::string token = randomToken(rng, i % 50 == 0 ? "dead" : "");
    (i % 50 == 0 ? dead : live).insert(token);
    auto* target = direct.mutable_direct()->add_targets();
    target->set_platform(v1::PLATFORM_APNS);
    target->set_push_handle(token);
  }
  auto* native = direct.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"direct"}})");
  v1::SendNotificationResponse accepted;
  auto rpc = stack.stub().SendNotification(stack.context().get(), direct, &accepted);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  auto status = stack.waitFinal(accepted.notification_id());
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << stack.daemonLog();
  EXPECT_EQ(outcomeCount(status, "Success"), static_cast<int64_t>(live.size()));
  EXPECT_EQ(outcomeCount(status, "ExpiredChannel"), static_cast<int64_t>(dead.size()));
  ASSERT_EQ(status.failures_size(), static_cast<int>(dead.size()));
  for (const auto& f : status.failures()) {
    EXPECT_TRUE(dead.count(f.push_handle())) << f.push_handle();
    EXPECT_EQ(f.installation_id(), "");
  }
  std::map<std::string, int> got;
  for (const auto& r : received(stack)) got[json::value_to<std::string>(r.at("token"))]++;
  for (const auto& token : live) EXPECT_EQ(got[token], 1) << token;
  EXPECT_EQ(got.size(), live.size() + dead.size());

  // A WNS channel outside the hub's allowed hosts is refused, and nothing is stored.
  v1::SendNotificationRequest evil = direct;
  auto* wns_target = evil.mutable_direct()->add_targets();
  wns_target->set_platform(v1::PLATFORM_WNS);
  wns_target->set_push_handle("https://evil.example.com/?token=secret");
  auto* wns = evil.add_native();
  wns->set_platform(v1::PLATFORM_WNS);
  wns->set_body("<badge value=\"1\"/>");
  (*wns->mutable_headers())["X-WNS-Type"] = "wns/badge";
  rpc = stack.stub().SendNotification(stack.context().get(), evil, &accepted);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(rpc.error_message().find("direct.targets[250].push_handle"), std::string::npos)
      << rpc.error_message();
  EXPECT_EQ(rpc.error_message().find("secret"), std::string::npos);

  // Two scheduled sends to one installation, 2 s ahead; one is cancelled before its time.
  std::string token = randomToken(rng);
  ASSERT_TRUE(put(stack, "scheduled-one", token, {"later"}).ok());
  auto schedule = [&](const std::string& alert) {
    v1::SendNotificationRequest send;
    send.set_hub(kHub);
    send.set_tag("later");
    auto* n = send.add_native();
    n->set_platform(v1::PLATFORM_APNS);
    n->set_body(R"({"aps":{"alert":")" + alert + R"("}})");
    *send.mutable_scheduled_time() = TimeUtil::MillisecondsToTimestamp(
        TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime()) + 2000);
    v1::SendNotificationResponse response;
    auto r = stack.stub().SendNotification(stack.context().get(), send, &response);
    EXPECT_TRUE(r.ok()) << r.error_message();
    return response.notification_id();
  };
  auto get = [&](const std::string& id) { return stack.notification(id); };
  auto cancel = [&](const std::string& id) {
    v1::CancelNotificationRequest request;
    request.set_hub(kHub);
    request.set_notification_id(id);
    v1::CancelNotificationResponse response;
    return stack.stub().CancelNotification(stack.context().get(), request, &response);
  };
  std::string fires = schedule("fires"), cancelled = schedule("cancelled");
  auto waiting = get(fires);
  EXPECT_EQ(waiting.state(), v1::NotificationStatus::STATE_SCHEDULED);
  ASSERT_TRUE(waiting.has_scheduled_time());
  ASSERT_TRUE(cancel(cancelled).ok());
  EXPECT_EQ(get(cancelled).state(), v1::NotificationStatus::STATE_CANCELLED);
  status = stack.waitFinal(fires);
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << stack.daemonLog();
  EXPECT_EQ(outcomeCount(status, "Success"), 1);
  EXPECT_GE(TimeUtil::TimestampToMilliseconds(status.start_time()),
            TimeUtil::TimestampToMilliseconds(status.scheduled_time()));
  EXPECT_EQ(cancel(fires).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past the cancelled one's time
  EXPECT_EQ(get(cancelled).state(), v1::NotificationStatus::STATE_CANCELLED);
  std::vector<std::string> alerts;
  for (const auto& r : received(stack)) {
    if (json::value_to<std::string>(r.at("token")) == token) {
      alerts.push_back(json::value_to<std::string>(r.at("body")));
    }
  }
  EXPECT_EQ(alerts, (std::vector<std::string>{R"({"aps":{"alert":"fires"}})"}));
  EXPECT_EQ(cancel("0123456789abcdef0123456789abcdef").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(cancel("nope").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(SendIntegrationTest, TemplateSendRendersPropertiesAndBroadcastReachesEveryone) {
  Stack stack;
  std::mt19937_64 rng(7);
  std::set<std::string> tokens;
  for (int i = 0; i < 50; ++i) {
    std::string token = randomToken(rng);
    tokens.insert(token);
    ASSERT_TRUE(put(stack, "tpl-" + std::to_string(i), token, {"all"},
                    {{"alert", R"j({"aps":{"alert":"{$(Message) + ' \u2014 ' + $(missing)}"}})j"}})
                    .ok());
  }
  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  send.set_broadcast(true);
  (*send.mutable_template_properties())["message"] = "Hi \"there\"";
  v1::SendNotificationResponse accepted;
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &accepted).ok());
  auto status = stack.waitFinal(accepted.notification_id());
  ASSERT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(outcomeCount(status, "Success"), 50);
  std::set<std::string> seen;
  for (const auto& entry : received(stack)) {
    const auto& obj = entry.as_object();
    seen.insert(json::value_to<std::string>(obj.at("token")));
    // The value is JSON-escaped into the string, and a missing property renders empty.
    EXPECT_EQ(json::value_to<std::string>(obj.at("body")),
              "{\"aps\":{\"alert\":\"Hi \\\"there\\\" \u2014 \"}}");
  }
  EXPECT_EQ(seen, tokens);
}

TEST(SendIntegrationTest, ExpressionAndUserSendsReachExactlyTheirAudienceAndVisitFewBuckets) {
  Stack stack;
  std::mt19937_64 rng(13);
  struct Device {
    std::string user;
    std::set<std::string> tags;
  };
  std::map<std::string, Device> devices;  // token -> device
  const std::vector<std::string> pool{"news", "sports", "muted", "fr"};
  for (int i = 0; i < 400; ++i) {
    v1::CreateOrUpdateInstallationRequest request;
    request.set_hub(kHub);
    auto* inst = request.mutable_installation();
    inst->set_installation_id("u-" + std::to_string(i));
    inst->set_platform(v1::PLATFORM_APNS);
    std::string token = randomToken(rng);
    inst->set_push_channel(token);
    Device d;
    d.user = "user" + std::to_string(i % 80);
    inst->set_user_id(d.user);
    for (const auto& tag : pool) {
      if (rng() % 2) {
        inst->add_tags(tag);
        d.tags.insert(tag);
      }
    }
    devices[token] = d;
    v1::CreateOrUpdateInstallationResponse response;
    ASSERT_TRUE(
        stack.stub().CreateOrUpdateInstallation(stack.context().get(), request, &response).ok());
  }
  auto sendTo = [&](const std::string& expression) {
    v1::SendNotificationRequest send;
    send.set_hub(kHub);
    send.set_tag_expression(expression);
    auto* native = send.add_native();
    native->set_platform(v1::PLATFORM_APNS);
    native->set_body(R"({"aps":{"alert":"x"}})");
    v1::SendNotificationResponse accepted;
    auto rpc = stack.stub().SendNotification(stack.context().get(), send, &accepted);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    auto status = stack.waitFinal(accepted.notification_id());
    std::set<std::string> tokens;
    for (const auto& entry : received(stack)) {
      tokens.insert(json::value_to<std::string>(entry.as_object().at("token")));
    }
    // Nothing matched: Azure's NoTargetFound, not Completed.
    EXPECT_EQ(status.state(), tokens.empty() ? v1::NotificationStatus::STATE_NO_TARGET_FOUND
                                             : v1::NotificationStatus::STATE_COMPLETED)
        << expression;
    httpRequest("POST", stack.controlPort(), "/_mock/reset");
    return tokens;
  };

  int64_t buckets_before = metricSum(stack.adminPort(), "pushhub_buckets_resolved_total");
  std::set<std::string> want;
  for (const auto& [token, d] : devices) {
    if (d.user == "user7") want.insert(token);
  }
  ASSERT_EQ(want.size(), 5u);
  EXPECT_EQ(sendTo("$UserId:{user7}"), want);
  // Five devices are in at most five buckets: the tag index kept the send off the others.
  int64_t visited = metricSum(stack.adminPort(), "pushhub_buckets_resolved_total") - buckets_before;
  EXPECT_GE(visited, 1);
  EXPECT_LE(visited, 5);

  want.clear();
  for (const auto& [token, d] : devices) {
    if ((d.tags.count("news") || d.tags.count("sports")) && !d.tags.count("muted")) {
      want.insert(token);
    }
  }
  EXPECT_EQ(sendTo("(news || sports) && !muted"), want);

  // No installation matches: accepted, completed at once with no job.
  EXPECT_TRUE(sendTo("$UserId:{nobody}").empty());
}

TEST(SendIntegrationTest, PatchInstallationChangesPartsAllOrNothing) {
  Stack stack;
  std::mt19937_64 rng(5);
  std::string token = randomToken(rng);
  ASSERT_TRUE(put(stack, "patched", token, {"news"}).ok());
  auto patch =
      [&](std::vector<std::tuple<std::string, std::string, std::optional<std::string>>> ops,
          v1::Installation* out, const std::string& id = "patched") {
        v1::PatchInstallationRequest request;
        request.set_hub(kHub);
        request.set_installation_id(id);
        for (const auto& [op, path, value] : ops) {
          auto* o = request.add_operations();
          o->set_op(op);
          o->set_path(path);
          if (value) o->set_value(*value);
        }
        return stack.stub().PatchInstallation(stack.context().get(), request, out);
      };
  v1::Installation out;
  auto rpc = patch({{"add", "/tags", "sports"},
                    {"remove", "/tags/news", std::nullopt},
                    {"add", "/userId", "alice"},
                    {"add", "/templates/alert", R"({"body":"{\"aps\":{\"alert\":\"$(m)\"}}"})"}},
                   &out);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(std::vector<std::string>(out.tags().begin(), out.tags().end()),
            std::vector<std::string>{"sports"});
  EXPECT_EQ(out.user_id(), "alice");
  EXPECT_EQ(out.templates().at("alert").body(), R"j({"aps":{"alert":"$(m)"}})j");

  // One bad operation: nothing of the call is stored.
  v1::Installation ignored;
  rpc = patch({{"add", "/tags", "weather"}, {"replace", "/platform", "wns"}}, &ignored);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(rpc.error_message().find("operations[1].path"), std::string::npos)
      << rpc.error_message();
  rpc = patch({{"add", "/tags", "has space"}}, &ignored);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(patch({{"add", "/tags", "x"}}, &ignored, "nobody").error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetInstallationRequest get;
  get.set_hub(kHub);
  get.set_installation_id("patched");
  v1::Installation stored;
  ASSERT_TRUE(stack.stub().GetInstallation(stack.context().get(), get, &stored).ok());
  EXPECT_EQ(std::vector<std::string>(stored.tags().begin(), stored.tags().end()),
            std::vector<std::string>{"sports"});

  // The patched tags and user select it; the removed tag no longer does.
  for (const char* expression : {"sports", "$UserId:{alice}", "news"}) {
    v1::SendNotificationRequest send;
    send.set_hub(kHub);
    send.set_tag_expression(expression);
    auto* native = send.add_native();
    native->set_platform(v1::PLATFORM_APNS);
    native->set_body(R"({"aps":{"alert":"p"}})");
    v1::SendNotificationResponse accepted;
    ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &accepted).ok());
    auto status = stack.waitFinal(accepted.notification_id());
    EXPECT_EQ(outcomeCount(status, "Success"), std::string(expression) == "news" ? 0 : 1)
        << expression;
  }
}

TEST(SendIntegrationTest, BadInputIsRefusedWithTheFieldAndNothingIsStored) {
  Stack stack;
  std::mt19937_64 rng(1);
  // A tag with a space: INVALID_ARGUMENT naming the field, and the installation is not stored.
  auto bad = put(stack, "bad-1", randomToken(rng), {"ok", "not ok"});
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("tags[1]"), std::string::npos) << bad.error_message();
  v1::GetInstallationRequest get;
  get.set_hub(kHub);
  get.set_installation_id("bad-1");
  v1::Installation installation;
  EXPECT_EQ(stack.stub().GetInstallation(stack.context().get(), get, &installation).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // A handle that is not hex.
  auto bad_token = put(stack, "bad-2", std::string(64, 'z'), {"ok"});
  EXPECT_EQ(bad_token.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Unknown hub.
  v1::CreateOrUpdateInstallationRequest request;
  request.set_hub("nohub");
  request.mutable_installation()->set_installation_id("x");
  v1::CreateOrUpdateInstallationResponse response;
  EXPECT_EQ(stack.stub()
                .CreateOrUpdateInstallation(stack.context().get(), request, &response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  // A wrong key, and a Listen key trying to send.
  EXPECT_EQ(put(stack, "x", randomToken(rng), {}).error_code(), grpc::StatusCode::OK);
  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  send.set_broadcast(true);
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body("{}");
  v1::SendNotificationResponse accepted;
  auto forged = stack.context(kFullKeyName, "not-the-key-at-all-0000000");
  EXPECT_EQ(stack.stub().SendNotification(forged.get(), send, &accepted).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto listen = stack.context(kListenKeyName, kListenKey);
  EXPECT_EQ(stack.stub().SendNotification(listen.get(), send, &accepted).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // An oversized APNs payload and an invalid header are refused before anything is queued.
  native->set_body("{\"aps\":{\"alert\":\"" + std::string(5000, 'x') + "\"}}");
  auto too_big = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  EXPECT_EQ(too_big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(too_big.error_message().find("at most 4096"), std::string::npos)
      << too_big.error_message();
  native->set_body("{}");
  (*native->mutable_headers())["apns-priority"] = "7";
  auto bad_priority = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  EXPECT_EQ(bad_priority.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad_priority.error_message().find("apns-priority"), std::string::npos);
  (*native->mutable_headers()).erase("apns-priority");
  send.set_idempotency_key(std::string(129, 'k'));
  auto long_key = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  EXPECT_EQ(long_key.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(long_key.error_message().find("idempotency_key"), std::string::npos);
  send.clear_idempotency_key();
  send.mutable_deadline()->set_seconds(8 * 24 * 3600);
  auto long_deadline = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  EXPECT_EQ(long_deadline.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(long_deadline.error_message().find("deadline"), std::string::npos);
  send.clear_deadline();
  auto past = TimeUtil::GetCurrentTime();
  past.set_seconds(past.seconds() - 10);
  *send.mutable_expiry() = past;
  auto expired = stack.stub().SendNotification(stack.context().get(), send, &accepted);
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(expired.error_message().find("expiry"), std::string::npos);
  auto stats = httpRequest("GET", stack.controlPort(), "/_mock/stats");
  EXPECT_EQ(json::parse(stats.body).at("apns").at("accepted").to_number<int64_t>(), 0);
  // Nothing was stored: no notification record and no idempotency key in Redis.
  auto keys = redisCli(stack.redisPort(), {"KEYS", "ph:*"});
  EXPECT_EQ(keys.find("ph:n:"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("ph:idem:"), std::string::npos) << keys;
}

// Both hubs have a key of the same name and secret: a token's sr decides which hub it is for. The
// namespace root (what Azure's SDKs sign) covers every hub; a hub's path only that hub.
TEST(SendIntegrationTest, ATokenActsOnlyOnTheHubsItsSrCovers) {
  Stack stack;
  auto get = [&](const std::string& resource_path) {
    v1::GetInstallationRequest request;
    request.set_hub(kHub);
    request.set_installation_id("nobody");
    v1::Installation installation;
    return stack.stub()
        .GetInstallation(stack.context(kFullKeyName, kFullKey, resource_path).get(), request,
                         &installation)
        .error_code();
  };
  // Authorized, and then not found.
  EXPECT_EQ(get("/"), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get(std::string("/") + kHub), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get("/ITEST/"), grpc::StatusCode::NOT_FOUND);  // case and a trailing slash aside
  // Signed for the other hub, or for a hub whose name merely starts like this one's.
  EXPECT_EQ(get(std::string("/") + kOtherHub), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(get(std::string("/") + kHub + "x"), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(SendIntegrationTest, ConfigErrorsNameTheKeyAndExitNonZero) {
  TempDir dir;
  std::ofstream(dir.path() / "bad.toml") << "[server]\nworkers = \"two\"\n[[hubs]]\nname = \"h\"\n";
  Subprocess daemon(
      {binaryPath("pushhubd").string(), "--config", (dir.path() / "bad.toml").string()},
      dir.path() / "out.log");
  int status = -1;
  for (int i = 0; i < 200 && daemon.running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  status = daemon.stop();
  EXPECT_NE(status, 0);
  EXPECT_NE(readText(dir.path() / "out.log").find("server.workers"), std::string::npos)
      << readText(dir.path() / "out.log");
}

}  // namespace
}  // namespace pushhub::testing

namespace pushhub::testing {
namespace {

TEST(SendIntegrationTest, BatchRegistrationIsAllOrNothingOnBadInputAndNeedsManage) {
  Stack stack;
  std::mt19937_64 rng(3);
  v1::BatchCreateOrUpdateInstallationsRequest batch;
  batch.set_hub(kHub);
  for (int i = 0; i < 300; ++i) {
    auto* inst = batch.add_installations();
    inst->set_installation_id("batch-" + std::to_string(i));
    inst->set_platform(v1::PLATFORM_APNS);
    inst->set_push_channel(randomToken(rng));
    inst->add_tags("batch");
  }
  batch.mutable_installations(7)->add_tags("no spaces allowed");
  v1::BatchCreateOrUpdateInstallationsResponse response;
  auto refused =
      stack.stub().BatchCreateOrUpdateInstallations(stack.context().get(), batch, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("installations[7].tags[1]"), std::string::npos)
      << refused.error_message();
  v1::GetInstallationRequest get;
  get.set_hub(kHub);
  get.set_installation_id("batch-0");
  v1::Installation installation;
  EXPECT_EQ(stack.stub().GetInstallation(stack.context().get(), get, &installation).error_code(),
            grpc::StatusCode::NOT_FOUND);

  batch.mutable_installations(7)->mutable_tags()->RemoveLast();
  auto listen = stack.context(kListenKeyName, kListenKey);
  EXPECT_EQ(
      stack.stub().BatchCreateOrUpdateInstallations(listen.get(), batch, &response).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  auto stored =
      stack.stub().BatchCreateOrUpdateInstallations(stack.context().get(), batch, &response);
  ASSERT_TRUE(stored.ok()) << stored.error_message();
  EXPECT_EQ(response.stored(), 300);
  get.set_installation_id("batch-299");
  ASSERT_TRUE(stack.stub().GetInstallation(stack.context().get(), get, &installation).ok());
  EXPECT_EQ(installation.tags(0), "batch");

  // A send to the batch's tag reaches all 300.
  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  send.set_tag("batch");
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"bulk"}})");
  v1::SendNotificationResponse accepted;
  ASSERT_TRUE(stack.stub().SendNotification(stack.context().get(), send, &accepted).ok());
  EXPECT_EQ(outcomeCount(stack.waitFinal(accepted.notification_id()), "Success"), 300);
}

}  // namespace
}  // namespace pushhub::testing
