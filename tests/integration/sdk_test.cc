// Azure's own JavaScript SDK (@azure/notification-hubs 2.1.0, installed from npm into tests/sdk
// by ./run test), unchanged, against a live pushhubd's REST API: tests/sdk/walkthrough.mjs
// registers devices with a Listen key, sends every way a backend does with the full key, and
// checks what the SDK returns; this test then checks each device's deliveries at pns-mock.
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;

constexpr char kTokenPrefix[] = "5dc0ffee5dc0ffee5dc0ffee5dc0ffee5dc0ffee5dc0ffee5dc0ffee5dc0ff";

std::string token(int n) {
  char digits[3];
  std::snprintf(digits, sizeof digits, "%02d", n);
  return std::string(kTokenPrefix) + digits;
}

std::map<std::string, int> delivered(Stack& stack, const std::string& provider) {
  auto result = httpRequest("GET", stack.controlPort(),
                            "/_mock/received?provider=" + provider + "&limit=100000");
  json::value entries = json::parse(result.body);
  std::map<std::string, int> out;
  for (const auto& e : entries.as_array()) {
    const auto& o = e.as_object();
    if (o.at("status").to_number<int>() == 200) ++out[json::value_to<std::string>(o.at("token"))];
  }
  return out;
}

TEST(SdkIntegrationTest, AzuresJavaScriptSdkWorksUnchanged) {
  auto sdk = sourcePath("tests/sdk");
  ASSERT_TRUE(std::filesystem::exists(sdk / "node_modules/@azure/notification-hubs/package.json"))
      << "the SDK is not installed: npm ci --prefix tests/sdk (./run test does it)";
  Stack stack;
  auto connection = [&](const std::string& name, const std::string& key) {
    return "Endpoint=sb://127.0.0.1:" + std::to_string(stack.restPort()) +
           "/;SharedAccessKeyName=" + name + ";SharedAccessKey=" + key;
  };
  std::string command = "cd '" + sdk.string() + "' && env PUSHHUB_FULL='" +
                        connection(kFullKeyName, kFullKey) + "' PUSHHUB_LISTEN='" +
                        connection(kListenKeyName, kListenKey) + "' PUSHHUB_HUB='" + kHub +
                        "' PUSHHUB_TOKEN_PREFIX='" + kTokenPrefix + "' NODE_EXTRA_CA_CERTS='" +
                        stack.caFile() + "' timeout 120 node walkthrough.mjs";
  auto [status, output] = runShell(command);
  ASSERT_EQ(status, 0) << output;
  auto last = output.substr(output.rfind('{'));
  auto ids = json::parse(last).as_object();
  for (const char* send : {"tagged", "templated", "direct", "batch", "scheduled"}) {
    auto id = json::value_to<std::string>(ids.at(send));
    EXPECT_EQ(stack.waitFinal(id).state(), v1::NotificationStatus::STATE_COMPLETED) << send;
  }
  EXPECT_EQ(stack.notification(json::value_to<std::string>(ids.at("cancelled"))).state(),
            v1::NotificationStatus::STATE_CANCELLED);

  // Each installation: the tag send (all but sdk-3, after sdk-1's patch), the template
  // broadcast, the scheduled broadcast, and sdk-3 the test send. The direct handles once each;
  // the deleted installation's and registration's handles never. The Apple registration gets
  // the scheduled broadcast (it has no template), the FCM template registration the template
  // broadcast, rendered.
  auto got = delivered(stack, "apns");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[token(i)], 3) << token(i);
  for (int i : {10, 11, 12}) EXPECT_EQ(got[token(i)], 1) << token(i);
  EXPECT_EQ(got[token(20)], 1);  // stored upper-case, keyed lower-case by pns-mock
  EXPECT_EQ(got.count(token(99)), 0u);
  EXPECT_EQ(got.size(), 8u);
  EXPECT_EQ(delivered(stack, "fcm"), (std::map<std::string, int>{{"sdk-fcm-registration", 1}}));
}

}  // namespace
}  // namespace pushhub::testing
