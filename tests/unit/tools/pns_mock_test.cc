// Starts the real pns-mock binary on loopback ports chosen at run time and checks, with real
// HTTP/2 requests (nghttp and h2load from nghttp2-client), that the answers, the stream limits,
// GOAWAY, and the control API (/_mock/stats, /received, /reset, /tokens, /config) behave.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "tests/unit/tools/pns_mock_process.h"

namespace pushhub::mock {
namespace {

namespace json = boost::json;
using testing::httpRequest;
using testing::HttpResult;
using testing::TempDir;

const std::string kToken(64, 'a');
const std::string kDeadToken = "dead" + std::string(60, 'b');
constexpr const char* kTopic = "com.example.app";

json::value getJson(uint16_t port, const std::string& target) {
  return controlCall(port, "GET", target);
}

class PnsMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!haveTool("nghttp") || !haveTool("h2load")) {
      GTEST_SKIP() << "nghttp2-client (nghttp, h2load) is not installed";
    }
    pki_ = testing::makeTestPki(dir_.path());
    mock_ = std::make_unique<PnsMockProcess>(
        dir_.path(), std::vector<std::string>{
                         "--cert", pki_.cert().string(), "--key", pki_.key().string(), "--apns-key",
                         "KEY1234567:TEAM123456:" + pki_.apnsPublicKey().string(), "--apns-topic",
                         kTopic, "--threads", "2", "--max-concurrent-streams", "777"});
    ASSERT_TRUE(mock_->started()) << "pns-mock did not write its ports file\n" << mock_->log();
    apns_port_ = mock_->port("apns");
    control_port_ = mock_->port("control");
    ASSERT_NE(apns_port_, 0);
    ASSERT_NE(control_port_, 0);
    jwt_ = trimNewlines(runCommand(testing::binaryPath("pns-mock").string() +
                                   " --print-jwt --apns-key-file " + pki_.apnsKey().string() +
                                   " --apns-key-id KEY1234567 --apns-team-id TEAM123456"));
    ASSERT_EQ(std::count(jwt_.begin(), jwt_.end(), '.'), 2) << jwt_;
    payload_ = (dir_.path() / "payload.json").string();
    std::ofstream(payload_) << R"({"aps":{"alert":"hello"}})";
  }

  // One request with nghttp -v; returns its verbose output (frames, headers, body).
  std::string push(const std::string& token, bool with_auth = true) {
    std::string cmd =
        "timeout 20 nghttp -v --no-verify-peer -d " + payload_ + " -H 'apns-topic: " + kTopic + "'";
    if (with_auth) {
      cmd += " -H 'authorization: bearer " + jwt_ + "'";
    }
    return runCommand(cmd + " https://127.0.0.1:" + std::to_string(apns_port_) + "/3/device/" +
                      token);
  }

  json::object apnsStats() { return getJson(control_port_, "/_mock/stats").at("apns").as_object(); }

  TempDir dir_;
  testing::TestPki pki_;
  std::unique_ptr<PnsMockProcess> mock_;
  uint16_t apns_port_ = 0;
  uint16_t control_port_ = 0;
  std::string jwt_;
  std::string payload_;
};

TEST_F(PnsMockTest, AnswersAndRecordsRequests) {
  json::object before = apnsStats();
  EXPECT_EQ(before.at("first_accepted_us").as_int64(), 0);
  EXPECT_EQ(before.at("last_accepted_us").as_int64(), 0);
  std::string ok = push(kToken);
  EXPECT_NE(ok.find(":status: 200"), std::string::npos) << ok;
  EXPECT_NE(ok.find("apns-id: "), std::string::npos) << ok;

  std::string dead = push(kDeadToken);
  EXPECT_NE(dead.find(":status: 410"), std::string::npos) << dead;
  EXPECT_NE(dead.find(R"({"reason":"Unregistered","timestamp":)"), std::string::npos) << dead;

  std::string noauth = push(kToken, false);
  EXPECT_NE(noauth.find(":status: 403"), std::string::npos) << noauth;
  EXPECT_NE(noauth.find(R"({"reason":"MissingProviderToken"})"), std::string::npos) << noauth;

  json::object s = apnsStats();
  EXPECT_EQ(s.at("accepted").as_int64(), 1);
  EXPECT_EQ(s.at("rejected").at("Unregistered").as_int64(), 1);
  EXPECT_EQ(s.at("rejected").at("MissingProviderToken").as_int64(), 1);
  EXPECT_EQ(s.at("distinct_tokens").as_int64(), 2);
  EXPECT_EQ(s.at("connections").as_int64(), 3);
  EXPECT_GT(s.at("bytes_received").as_int64(), 0);

  json::array received = getJson(control_port_, "/_mock/received?provider=apns").as_array();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].at("token").as_string(), kToken);
  EXPECT_EQ(received[0].at("status").as_int64(), 200);
  EXPECT_EQ(received[0].at("headers").at("apns-topic").as_string(), kTopic);
  EXPECT_EQ(received[0].at("headers").at("authorization").as_string(), "<redacted>");
  EXPECT_EQ(received[0].at("body").as_string(), R"({"aps":{"alert":"hello"}})");
  EXPECT_EQ(received[1].at("reason").as_string(), "Unregistered");
  EXPECT_EQ(received[2].at("reason").as_string(), "MissingProviderToken");
  EXPECT_EQ(received[2].at("headers").as_object().count("authorization"), 0u);
  EXPECT_GT(received[0].at("received_at_ms").as_int64(), 0);
  // Microsecond receipt times: the same instant as received_at_ms, ordered like the requests.
  int64_t us0 = received[0].at("received_at_us").as_int64();
  EXPECT_EQ(us0 / 1000, received[0].at("received_at_ms").as_int64());
  EXPECT_LE(us0, received[1].at("received_at_us").as_int64());
  // Only the accepted request set the accepted window.
  EXPECT_EQ(s.at("first_accepted_us").as_int64(), us0);
  EXPECT_EQ(s.at("last_accepted_us").as_int64(), us0);

  // tokens=0 skips the distinct-token union (for pollers) and keeps every other field.
  json::object light = getJson(control_port_, "/_mock/stats?tokens=0").at("apns").as_object();
  EXPECT_EQ(light.count("distinct_tokens"), 0u);
  EXPECT_EQ(light.at("accepted").as_int64(), 1);
  EXPECT_EQ(light.at("last_accepted_us").as_int64(), us0);

  json::array last = getJson(control_port_, "/_mock/received?limit=1").as_array();
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].at("reason").as_string(), "MissingProviderToken");

  HttpResult reset = httpRequest("POST", control_port_, "/_mock/reset");
  EXPECT_EQ(reset.status, 200);
  s = apnsStats();
  EXPECT_EQ(s.at("accepted").as_int64(), 0);
  EXPECT_TRUE(s.at("rejected").as_object().empty());
  EXPECT_EQ(s.at("distinct_tokens").as_int64(), 0);
  EXPECT_EQ(s.at("first_accepted_us").as_int64(), 0);
  EXPECT_EQ(s.at("last_accepted_us").as_int64(), 0);
  EXPECT_TRUE(getJson(control_port_, "/_mock/received").as_array().empty());
}

TEST_F(PnsMockTest, RaisesTheStreamLimitAfterTheFirstValidToken) {
  std::string out = push(kToken);
  size_t initial = out.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1]");
  size_t raised = out.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):777]");
  ASSERT_NE(initial, std::string::npos) << out;
  ASSERT_NE(raised, std::string::npos) << out;
  EXPECT_LT(initial, raised);

  // A rejected request does not lift the limit.
  std::string rejected = push(kToken, false);
  EXPECT_EQ(rejected.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):777]"), std::string::npos);
}

TEST_F(PnsMockTest, TokensEndpointMarksTokensDeadOrBad) {
  const std::string dead(64, '1');
  const std::string bad(64, '2');
  HttpResult r = httpRequest("POST", control_port_, "/_mock/tokens",
                             R"({"dead":[")" + dead + R"("],"bad":[")" + bad + R"("]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(push(dead).find(R"({"reason":"Unregistered")"), std::string::npos);
  EXPECT_NE(push(bad).find(R"({"reason":"BadDeviceToken"})"), std::string::npos);

  HttpResult invalid = httpRequest("POST", control_port_, "/_mock/tokens", R"({"dead":["xyz"]})");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_NE(invalid.body.find("dead[0]"), std::string::npos) << invalid.body;
}

TEST_F(PnsMockTest, DropPrefixClosesTheConnectionWithoutAnswer) {
  std::string out = push("c105e" + std::string(59, '0'));
  EXPECT_EQ(out.find(":status:"), std::string::npos) << out;
  EXPECT_EQ(apnsStats().at("dropped_connections").as_int64(), 1);
}

TEST_F(PnsMockTest, GoawayFinishesInFlightStreams) {
  ASSERT_EQ(httpRequest("POST", control_port_, "/_mock/config", R"({"delay_ms":1500})").status,
            200);
  auto pending = std::async(std::launch::async, [this] { return push(kToken); });
  // Wait (bounded) until the request is in flight on the mock.
  for (int i = 0; i < 200; ++i) {
    if (!getJson(control_port_, "/_mock/received").as_array().empty()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  HttpResult g = httpRequest("POST", control_port_, "/_mock/goaway", R"({"reason":"Shutdown"})");
  EXPECT_EQ(g.status, 200);
  std::string out = pending.get();
  size_t goaway = out.find("recv GOAWAY");
  size_t status = out.find(":status: 200");
  ASSERT_NE(goaway, std::string::npos) << out;
  ASSERT_NE(status, std::string::npos) << out;
  EXPECT_LT(goaway, status);  // GOAWAY first, then the answer of the stream already accepted
  EXPECT_NE(out.find(R"({"reason":"Shutdown"})"), std::string::npos) << out;

  HttpResult bad = httpRequest("POST", control_port_, "/_mock/config", R"({"delay_ms":-1})");
  EXPECT_EQ(bad.status, 400);
}

TEST_F(PnsMockTest, ConcurrentStreamsAreCountedUnderLoad) {
  std::string out =
      runCommand("timeout 60 h2load -n 200 -c 2 -m 10 -H 'authorization: bearer " + jwt_ +
                 "' -H 'apns-topic: " + kTopic + "' -d " + payload_ +
                 " https://127.0.0.1:" + std::to_string(apns_port_) + "/3/device/" + kToken);
  // h2load opens its 10 streams before it sees our SETTINGS, so until the first valid token
  // succeeds the mock (like APNs) refuses all but one of them with REFUSED_STREAM; those count
  // as "errored" in h2load and never reach the handler.
  size_t at = out.find(" succeeded, ");
  ASSERT_NE(at, std::string::npos) << out;
  size_t begin = out.rfind(", ", at) + 2;
  int succeeded = std::stoi(out.substr(begin, at - begin));
  EXPECT_GE(succeeded, 200 - 2 * 9) << out;
  EXPECT_NE(out.find(" 0 timeout"), std::string::npos) << out;
  json::object s = apnsStats();
  EXPECT_EQ(s.at("accepted").as_int64(), succeeded);
  EXPECT_TRUE(s.at("rejected").as_object().empty());
  EXPECT_EQ(s.at("connections").as_int64(), 2);
  EXPECT_GT(s.at("max_concurrent_seen").as_int64(), 1);
  EXPECT_LE(s.at("max_concurrent_seen").as_int64(), 10);
}

TEST_F(PnsMockTest, UnknownControlPathIs404) {
  EXPECT_EQ(httpRequest("GET", control_port_, "/nope").status, 404);
  EXPECT_EQ(httpRequest("GET", control_port_, "/_mock/reset").status, 405);
  EXPECT_EQ(httpRequest("GET", control_port_, "/_mock/received?provider=xyz").status, 400);
}

}  // namespace
}  // namespace pushhub::mock
