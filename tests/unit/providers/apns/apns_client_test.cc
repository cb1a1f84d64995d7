// ProviderClient + ApnsProvider against the real pns-mock: outcomes end to end over TLS/HTTP/2.

#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "providers/apns/apns_provider.h"
#include "providers/common/provider_client.h"
#include "tests/support/run_until.h"
#include "tests/unit/providers/common/pns_mock_fixture.h"

namespace pushhub::providers::apns {
namespace {

using namespace std::chrono_literals;
using pushhub::testing::PnsMock;

constexpr const char* kGood = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr const char* kDead = "dead456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr const char* kBad = "0bad456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

using testing::runUntil;

struct ApnsClientTest : ::testing::Test {
  ApnsClientTest() {
    config.key_pem = mock.keyPem();
    config.key_id = PnsMock::kKeyId;
    config.team_id = PnsMock::kTeamId;
    config.topic = PnsMock::kTopic;
    config.host = "127.0.0.1";
    config.port = mock.apnsPort();
    config.ca_file = mock.pki().ca().string();
    auto tokens = ApnsTokenSource::create(config);
    EXPECT_TRUE(tokens) << tokens.error().message;
    auto options = ApnsProvider::poolOptions(config);
    EXPECT_TRUE(options) << options.error().message;
    client = std::make_unique<ProviderClient>(ioc, std::make_unique<ApnsProvider>(config, *tokens),
                                              *options);
  }

  Outcome sendOne(const std::string& token, std::vector<Header> headers = {}) {
    std::optional<Outcome> outcome;
    Notification n;
    n.body = R"({"aps":{"alert":"hi"}})";
    n.headers = std::move(headers);
    client->send(Target{"inst", token}, std::make_shared<const Notification>(std::move(n)),
                 [&](Outcome o) { outcome = std::move(o); });
    EXPECT_TRUE(runUntil(ioc, [&] { return outcome.has_value(); }));
    return outcome.value_or(Outcome{});
  }

  PnsMock mock;
  boost::asio::io_context ioc;
  ApnsConfig config;
  std::unique_ptr<ProviderClient> client;
};

TEST_F(ApnsClientTest, DeliversAndClassifiesDeadAndBadTokens) {
  Outcome ok = sendOne(kGood);
  EXPECT_EQ(ok.kind, OutcomeKind::kDelivered) << ok.reason;
  EXPECT_EQ(ok.azure_outcome, "Success");
  Outcome dead = sendOne(kDead);
  EXPECT_EQ(dead.kind, OutcomeKind::kDropToken);
  EXPECT_EQ(dead.http_status, 410);
  EXPECT_EQ(dead.reason, "Unregistered");
  EXPECT_EQ(dead.azure_outcome, "ExpiredChannel");
  Outcome bad = sendOne(kBad);
  EXPECT_EQ(bad.kind, OutcomeKind::kDropToken);
  EXPECT_EQ(bad.reason, "BadDeviceToken");
  EXPECT_EQ(bad.azure_outcome, "WrongToken");
  EXPECT_EQ(client->inFlight(), 0u);
}

TEST_F(ApnsClientTest, EncodeErrorIsPermanentWithoutIo) {
  Outcome o = sendOne(kGood, {{"apns-priority", "7", false}});
  EXPECT_EQ(o.kind, OutcomeKind::kPermanentBadRequest);
  EXPECT_EQ(o.http_status, 0);
  EXPECT_NE(o.reason.find("apns-priority"), std::string::npos);
  EXPECT_EQ(mock.stat("accepted") + mock.stats().at("rejected_total").to_number<uint64_t>(), 0u);
}

TEST_F(ApnsClientTest, HeadersReachTheServerAsSent) {
  ASSERT_EQ(sendOne(kGood, {{"apns-priority", "5", false}, {"apns-collapse-id", "c1", false}}).kind,
            OutcomeKind::kDelivered);
  auto received = boost::json::parse(mock.get("/_mock/received?provider=apns&limit=1"));
  ASSERT_EQ(received.as_array().size(), 1u);
  const auto& entry = received.as_array()[0].as_object();
  EXPECT_EQ(entry.at("token").as_string(), kGood);
  EXPECT_EQ(entry.at("status").to_number<int>(), 200);
  const auto& headers = entry.at("headers").as_object();
  EXPECT_EQ(headers.at("apns-priority").as_string(), "5");
  EXPECT_EQ(headers.at("apns-collapse-id").as_string(), "c1");
  EXPECT_EQ(headers.at("apns-topic").as_string(), PnsMock::kTopic);
  EXPECT_EQ(headers.at("apns-push-type").as_string(), "alert");
  EXPECT_EQ(entry.at("body").as_string(), R"({"aps":{"alert":"hi"}})");
}

TEST_F(ApnsClientTest, ManySendsAllDelivered) {
  size_t delivered = 0;
  size_t other = 0;
  // One notification shared by every send, as a broadcast does.
  auto n = std::make_shared<Notification>();
  n->body = R"({"aps":{"alert":"hi"}})";
  for (int i = 0; i < 2000; ++i) {
    client->send(Target{"inst", kGood}, n,
                 [&](Outcome o) { (o.kind == OutcomeKind::kDelivered ? delivered : other) += 1; });
  }
  n.reset();  // the sends keep it alive
  ASSERT_TRUE(runUntil(ioc, [&] { return delivered + other == 2000; }));
  EXPECT_EQ(delivered, 2000u);
  EXPECT_EQ(mock.stat("accepted"), 2000u);
}

TEST_F(ApnsClientTest, UnreachableServerIsRetryBackoff) {
  config.port = pushhub::testing::freePort();
  auto tokens = ApnsTokenSource::create(config);
  auto options = ApnsProvider::poolOptions(config);
  client = std::make_unique<ProviderClient>(ioc, std::make_unique<ApnsProvider>(config, *tokens),
                                            *options);
  Outcome o = sendOne(kGood);
  EXPECT_EQ(o.kind, OutcomeKind::kRetryBackoff);
  EXPECT_EQ(o.azure_outcome, "PnsUnreachable");
}

TEST_F(ApnsClientTest, ExpiredProviderTokenRetriesOnceThenReportsAndRecycles) {
  // A clock two hours behind: the token's iat is too old for the server, but young by our clock,
  // so the 20-minute floor keeps it and the one retry is rejected again.
  auto skewed = std::chrono::system_clock::now() - std::chrono::hours(2);
  auto tokens = ApnsTokenSource::create(config, [skewed] { return skewed; });
  ASSERT_TRUE(tokens);
  client = std::make_unique<ProviderClient>(ioc, std::make_unique<ApnsProvider>(config, *tokens),
                                            *ApnsProvider::poolOptions(config));
  Outcome o = sendOne(kGood);
  EXPECT_EQ(o.kind, OutcomeKind::kRefreshAuth);
  EXPECT_EQ(o.reason, "ExpiredProviderToken");
  EXPECT_EQ(o.azure_outcome, "InvalidCredentials");
  EXPECT_TRUE(o.recycle_connection);
  auto stats = mock.stats();
  EXPECT_EQ(stats.at("rejected").as_object().at("ExpiredProviderToken").to_number<uint64_t>(), 2u);
  // The retry went out on a fresh connection: the first one was recycled.
  EXPECT_EQ(client->pool().stats().connects, 2u);
}

}  // namespace
}  // namespace pushhub::providers::apns
