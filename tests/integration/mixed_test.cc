// Issue 3 end to end: installations of all three platforms under shared tags, native and template
// sends rendered per platform, dead handles of every kind removed, access tokens refreshed
// without losing a notification, channel URIs checked against the hub's allowed hosts, and two
// hubs with different credentials side by side.
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;

constexpr char kApnsTemplate[] = R"j({"aps":{"alert":"$(msg)"}})j";
constexpr char kFcmTemplate[] = R"j({"message":{"notification":{"title":"t","body":"$(msg)"}}})j";
constexpr char kWnsTemplate[] =
    R"j(<toast><visual><binding template="ToastGeneric"><text>$(msg)</text></binding></visual></toast>)j";

std::string hex(std::mt19937_64& rng, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += kHex[rng() & 15];
  return out;
}

struct Device {
  std::string id;
  v1::Platform platform;
  std::string handle;  // what the provider sees as the token (WNS: the channel's token)
  std::vector<std::string> tags;
  bool dead = false;
};

// Device i: 50% APNs, 35% FCM, 15% WNS; a few of each are ones their provider calls dead.
Device makeDevice(std::mt19937_64& rng, int i) {
  Device d;
  d.id = "mixed-" + std::to_string(i);
  int slot = i % 100;
  d.dead = i % 50 == 7 || i % 100 == 91;
  if (slot < 50) {
    d.platform = v1::PLATFORM_APNS;
    d.handle = (d.dead ? "dead" : "a") + hex(rng, d.dead ? 60 : 63);
  } else if (slot < 85) {
    d.platform = v1::PLATFORM_FCM;
    d.handle = (d.dead ? "dead" : "f") + hex(rng, 100);
  } else {
    d.platform = v1::PLATFORM_WNS;
    d.handle = (d.dead ? "expired" : "w") + hex(rng, 40);
  }
  std::vector<std::string> pool{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"};
  std::shuffle(pool.begin(), pool.end(), rng);
  d.tags.assign(pool.begin(), pool.begin() + 3);
  return d;
}

void fill(Stack& stack, const Device& d, v1::Installation& inst, const std::string& wns_host = "") {
  inst.set_installation_id(d.id);
  inst.set_platform(d.platform);
  std::string channel =
      wns_host.empty() ? stack.wnsChannel(d.handle) : "https://" + wns_host + "/?token=" + d.handle;
  inst.set_push_channel(d.platform == v1::PLATFORM_WNS ? channel : d.handle);
  for (const auto& tag : d.tags) inst.add_tags(tag);
  auto& tpl = (*inst.mutable_templates())["alert"];
  if (d.platform == v1::PLATFORM_APNS) tpl.set_body(kApnsTemplate);
  if (d.platform == v1::PLATFORM_FCM) tpl.set_body(kFcmTemplate);
  if (d.platform == v1::PLATFORM_WNS) {
    tpl.set_body(kWnsTemplate);
    (*tpl.mutable_headers())["X-WNS-Type"] = "wns/toast";
  }
}

v1::NotificationStatus send(Stack& stack, v1::SendNotificationRequest request,
                            const std::string& hub = kHub) {
  request.set_hub(hub);
  v1::SendNotificationResponse accepted;
  auto rpc = stack.stub().SendNotification(stack.context().get(), request, &accepted);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  auto status = stack.waitFinal(accepted.notification_id(), 0, 60, hub);
  EXPECT_EQ(status.state(), v1::NotificationStatus::STATE_COMPLETED) << stack.daemonLog();
  return status;
}

int64_t count(const v1::NotificationStatus& s, v1::Platform platform, const std::string& outcome) {
  for (const auto& o : s.outcomes()) {
    if (o.platform() == platform && o.outcome() == outcome) return o.count();
  }
  return 0;
}

// provider -> token -> bodies received
std::map<std::string, std::map<std::string, std::vector<json::object>>> received(Stack& stack) {
  std::map<std::string, std::map<std::string, std::vector<json::object>>> out;
  for (const char* provider : {"apns", "fcm", "wns"}) {
    auto r = httpRequest("GET", stack.controlPort(),
                         std::string("/_mock/received?provider=") + provider + "&limit=100000");
    EXPECT_EQ(r.status, 200) << r.body;
    json::value parsed = json::parse(r.body);
    for (const auto& entry : parsed.as_array()) {
      const auto& obj = entry.as_object();
      out[provider][json::value_to<std::string>(obj.at("token"))].push_back(obj);
    }
  }
  return out;
}

void reset(Stack& stack) {
  EXPECT_EQ(httpRequest("POST", stack.controlPort(), "/_mock/reset").status, 200);
}

const char* providerOf(v1::Platform p) {
  return p == v1::PLATFORM_APNS ? "apns" : p == v1::PLATFORM_FCM ? "fcm" : "wns";
}

class MixedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(2024);
    for (int batch = 0; batch < 3; ++batch) {
      v1::BatchCreateOrUpdateInstallationsRequest request;
      request.set_hub(kHub);
      for (int i = batch * 1000; i < (batch + 1) * 1000; ++i) {
        devices_.push_back(makeDevice(rng, i));
        fill(stack_, devices_.back(), *request.add_installations());
      }
      v1::BatchCreateOrUpdateInstallationsResponse response;
      auto rpc = stack_.stub().BatchCreateOrUpdateInstallations(stack_.context().get(), request,
                                                                &response);
      ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    }
  }

  std::vector<const Device*> withTag(const std::string& tag) const {
    std::vector<const Device*> out;
    for (const auto& d : devices_) {
      if (std::find(d.tags.begin(), d.tags.end(), tag) != d.tags.end()) out.push_back(&d);
    }
    return out;
  }

  Stack stack_;
  std::vector<Device> devices_;
};

TEST_F(MixedTest, NativeTagSendReachesEachDeviceInItsFormatAndDropsDeadHandlesOfEveryKind) {
  v1::SendNotificationRequest request;
  request.set_tag("t4");
  auto* apns = request.add_native();
  apns->set_platform(v1::PLATFORM_APNS);
  apns->set_body(R"({"aps":{"alert":"native"}})");
  auto* fcm = request.add_native();
  fcm->set_platform(v1::PLATFORM_FCM);
  fcm->set_body(R"({"message":{"data":{"k":"native"}}})");
  auto* wns = request.add_native();
  wns->set_platform(v1::PLATFORM_WNS);
  wns->set_body("<badge value=\"3\"/>");
  (*wns->mutable_headers())["X-WNS-Type"] = "wns/badge";
  auto status = send(stack_, request);

  auto got = received(stack_);
  std::map<v1::Platform, int64_t> live, dead;
  for (const Device* d : withTag("t4")) {
    (d->dead ? dead : live)[d->platform]++;
    const auto& bodies = got[providerOf(d->platform)][d->handle];
    ASSERT_EQ(bodies.size(), 1u) << d->id << " received " << bodies.size() << " times";
    std::string body = json::value_to<std::string>(bodies[0].at("body"));
    if (d->platform == v1::PLATFORM_APNS) {
      EXPECT_EQ(body, R"({"aps":{"alert":"native"}})");
    }
    if (d->platform == v1::PLATFORM_FCM) {
      json::value parsed = json::parse(body);
      const auto& message = parsed.at("message").as_object();
      EXPECT_EQ(json::value_to<std::string>(message.at("token")), d->handle);
      EXPECT_EQ(json::value_to<std::string>(message.at("data").at("k")), "native");
    }
    if (d->platform == v1::PLATFORM_WNS) {
      EXPECT_EQ(body, "<badge value=\"3\"/>");
      EXPECT_EQ(json::value_to<std::string>(bodies[0].at("headers").at("x-wns-type")), "wns/badge");
    }
  }
  size_t total = 0;
  for (const auto& [provider, tokens] : got) total += tokens.size();
  EXPECT_EQ(total, withTag("t4").size()) << "a device without the tag received it";
  for (auto p : {v1::PLATFORM_APNS, v1::PLATFORM_FCM, v1::PLATFORM_WNS}) {
    EXPECT_GT(live[p], 0);
    EXPECT_GT(dead[p], 0) << providerOf(p);
    EXPECT_EQ(count(status, p, "Success"), live[p]) << providerOf(p);
    EXPECT_EQ(count(status, p, "ExpiredChannel"), dead[p]) << providerOf(p);
  }
  // The dead ones are marked (Azure's pushChannelExpired) once the notification completed.
  for (const Device* d : withTag("t4")) {
    v1::GetInstallationRequest get;
    get.set_hub(kHub);
    get.set_installation_id(d->id);
    v1::Installation installation;
    auto rpc = stack_.stub().GetInstallation(stack_.context().get(), get, &installation);
    ASSERT_TRUE(rpc.ok()) << d->id << ": " << rpc.error_message();
    EXPECT_EQ(installation.push_channel_expired(), d->dead) << d->id;
  }
}

TEST_F(MixedTest, TemplateBroadcastRendersPerPlatformAndSurvivesExpiredAccessTokens) {
  // First a send so FCM and WNS hold access tokens, then pns-mock revokes them all: the next
  // send gets 401s, and pushhub must refresh and resend without losing a device.
  v1::SendNotificationRequest first;
  first.set_tag("t1");
  (*first.mutable_template_properties())["msg"] = "warm up";
  send(stack_, first);
  for (const char* provider : {"fcm", "wns"}) {
    auto r = httpRequest("POST", stack_.controlPort(), "/_mock/expire-tokens",
                         std::string("{\"provider\":\"") + provider + "\"}");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  reset(stack_);

  v1::SendNotificationRequest request;
  request.set_broadcast(true);
  (*request.mutable_template_properties())["MSG"] = "Hi <all> & \"you\"";
  auto status = send(stack_, request);
  auto got = received(stack_);
  std::map<v1::Platform, int64_t> live;
  for (const auto& d : devices_) {
    if (d.dead) continue;  // removed by the warm-up or still dead: either way not a success
    live[d.platform]++;
    const auto& bodies = got[providerOf(d.platform)][d.handle];
    ASSERT_FALSE(bodies.empty()) << d.id << " lost its notification";
    std::string body = json::value_to<std::string>(bodies.back().at("body"));
    if (d.platform == v1::PLATFORM_APNS) {
      EXPECT_EQ(body, R"({"aps":{"alert":"Hi <all> & \"you\""}})");
    } else if (d.platform == v1::PLATFORM_FCM) {
      json::value parsed = json::parse(body);
      EXPECT_EQ(json::value_to<std::string>(parsed.at("message").at("notification").at("body")),
                "Hi <all> & \"you\"");
    } else {
      EXPECT_NE(body.find("<text>Hi &lt;all&gt; &amp; &quot;you&quot;</text>"), std::string::npos)
          << body;
    }
  }
  for (auto p : {v1::PLATFORM_APNS, v1::PLATFORM_FCM, v1::PLATFORM_WNS}) {
    EXPECT_EQ(count(status, p, "Success"), live[p]) << providerOf(p);
    EXPECT_EQ(count(status, p, "InvalidCredentials"), 0) << providerOf(p);
  }
  auto stats = json::parse(httpRequest("GET", stack_.controlPort(), "/_mock/stats").body);
  // Counted since the reset, which came after the first tokens were issued: a new one was fetched.
  EXPECT_GE(stats.at("fcm").at("tokens_issued").to_number<int64_t>(), 1);
  EXPECT_GE(stats.at("wns").at("tokens_issued").to_number<int64_t>(), 1);
}

TEST_F(MixedTest, ChannelUrisOutsideTheAllowedHostsAreRefused) {
  for (const std::string channel :
       {"https://evil.example.com/?token=abc", "http://127.0.0.1:1/?token=abc",
        "https://db5p.notify.windows.com/?token=abc" /* allowed by default, not by this hub */}) {
    v1::CreateOrUpdateInstallationRequest request;
    request.set_hub(kHub);
    auto* inst = request.mutable_installation();
    inst->set_installation_id("win-evil");
    inst->set_platform(v1::PLATFORM_WNS);
    inst->set_push_channel(channel);
    v1::CreateOrUpdateInstallationResponse response;
    auto rpc = stack_.stub().CreateOrUpdateInstallation(stack_.context().get(), request, &response);
    EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << channel;
    EXPECT_NE(rpc.error_message().find("pushChannel"), std::string::npos) << rpc.error_message();
    EXPECT_EQ(rpc.error_message().find("abc"), std::string::npos) << "echoes the channel token";
  }
}

TEST_F(MixedTest, TwoHubsWithTheirOwnCredentialsAndMissingPlatformsCountedNotFailed) {
  // The other hub has its own APNs key, team and topic, and no FCM or WNS credentials.
  std::mt19937_64 rng(5);
  v1::BatchCreateOrUpdateInstallationsRequest batch;
  batch.set_hub(kOtherHub);
  std::vector<Device> others;
  for (int i = 0; i < 40; ++i) {
    Device d;
    d.id = "other-" + std::to_string(i);
    d.platform = i % 3 == 0 ? v1::PLATFORM_APNS : i % 3 == 1 ? v1::PLATFORM_FCM : v1::PLATFORM_WNS;
    d.handle = d.platform == v1::PLATFORM_APNS  ? "a" + hex(rng, 63)
               : d.platform == v1::PLATFORM_FCM ? "f" + hex(rng, 100)
                                                : "w" + hex(rng, 40);
    d.tags = {"x"};
    others.push_back(d);
    // This hub allows WNS's default hosts; it never connects there, having no WNS credentials.
    fill(stack_, d, *batch.add_installations(), "db5p.notify.windows.com");
  }
  v1::BatchCreateOrUpdateInstallationsResponse response;
  ASSERT_TRUE(stack_.stub()
                  .BatchCreateOrUpdateInstallations(stack_.context().get(), batch, &response)
                  .ok());

  v1::SendNotificationRequest request;
  request.set_broadcast(true);
  (*request.mutable_template_properties())["msg"] = "other hub";
  reset(stack_);
  auto status = send(stack_, request, kOtherHub);
  std::map<v1::Platform, int64_t> per_platform;
  for (const auto& d : others) per_platform[d.platform]++;
  EXPECT_EQ(count(status, v1::PLATFORM_APNS, "Success"), per_platform[v1::PLATFORM_APNS]);
  EXPECT_EQ(count(status, v1::PLATFORM_FCM, "InvalidCredentials"), per_platform[v1::PLATFORM_FCM]);
  EXPECT_EQ(count(status, v1::PLATFORM_WNS, "InvalidCredentials"), per_platform[v1::PLATFORM_WNS]);
  auto got = received(stack_);
  EXPECT_EQ(got["apns"].size(), static_cast<size_t>(per_platform[v1::PLATFORM_APNS]));
  EXPECT_TRUE(got["fcm"].empty());
  for (const auto& [token, bodies] : got["apns"]) {
    EXPECT_EQ(json::value_to<std::string>(bodies[0].at("headers").at("apns-topic")), kOtherTopic);
  }
}

}  // namespace
}  // namespace pushhub::testing
