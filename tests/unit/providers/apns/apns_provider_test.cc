#include "providers/apns/apns_provider.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "providers/common/jwt.h"
#include "tests/unit/providers/apns/apns_test_key.h"

namespace pushhub::providers::apns {
namespace {

using std::chrono::system_clock;

constexpr const char* kToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Fixture : ::testing::Test {
  Fixture() {
    auto [priv, pub] = testing::generateP256Pem();
    public_pem = pub;
    config.key_pem = priv;
    config.key_id = "ABC123DEFG";
    config.team_id = "DEF123GHIJ";
    config.topic = "com.example.app";
    auto source = ApnsTokenSource::create(config, [this] { return now; });
    EXPECT_TRUE(source) << source.error().message;
    tokens = *source;
    provider = std::make_unique<ApnsProvider>(config, tokens);
  }

  Result<Request> encode(std::vector<Header> headers, std::string body = R"({"aps":{}})",
                         std::optional<system_clock::time_point> expiry = std::nullopt) {
    Notification n;
    n.body = std::move(body);
    n.headers = std::move(headers);
    n.expiry = expiry;
    return provider->encode(Target{"inst-1", kToken},
                            std::make_shared<const Notification>(std::move(n)));
  }

  system_clock::time_point now = system_clock::time_point(std::chrono::seconds(1700000000));
  std::string public_pem;
  ApnsConfig config;
  std::shared_ptr<ApnsTokenSource> tokens;
  std::unique_ptr<ApnsProvider> provider;
};

const Header* find(const Request& r, std::string_view name) {
  const Header* found = nullptr;
  r.forEachHeader([&](const Header& h) {
    if (found == nullptr && h.name == name) {
      found = &h;
    }
  });
  return found;
}

Response response(int status, std::string reason) {
  Response r;
  r.status = status;
  if (!reason.empty()) {
    r.body = "{\"reason\":\"" + reason + "\"}";
    r.headers.push_back({"content-type", "application/json", false});
  }
  return r;
}

// ---- classify: every row of spec §2.5, mapped per §6 ----

struct ClassifyRow {
  int status;
  const char* reason;
  OutcomeKind kind;
  const char* azure;
  bool recycle;
};

class ClassifyTable : public Fixture, public ::testing::WithParamInterface<ClassifyRow> {};

TEST_P(ClassifyTable, MapsStatusAndReason) {
  const ClassifyRow& row = GetParam();
  Outcome o = provider->classify(response(row.status, row.reason));
  EXPECT_EQ(toString(o.kind), toString(row.kind)) << row.status << " " << row.reason;
  EXPECT_EQ(o.azure_outcome, row.azure) << row.status << " " << row.reason;
  EXPECT_EQ(o.recycle_connection, row.recycle) << row.status << " " << row.reason;
  EXPECT_EQ(o.http_status, row.status);
  EXPECT_EQ(o.reason, row.reason);
}

using K = OutcomeKind;
INSTANTIATE_TEST_SUITE_P(
    SpecRows, ClassifyTable,
    ::testing::Values(
        ClassifyRow{200, "", K::kDelivered, "Success", false},
        ClassifyRow{400, "BadCollapseId", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "BadDeviceToken", K::kDropToken, "WrongToken", false},
        ClassifyRow{400, "BadExpirationDate", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "BadMessageId", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "BadPriority", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "BadTopic", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{400, "DeviceTokenNotForTopic", K::kDropToken, "WrongToken", false},
        ClassifyRow{400, "DuplicateHeaders", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "IdleTimeout", K::kRetryBackoff, "PnsUnavailable", true},
        ClassifyRow{400, "InvalidPushType", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "MissingDeviceToken", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "MissingTopic", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "PayloadEmpty", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{400, "TopicDisallowed", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "BadCertificate", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "BadCertificateEnvironment", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "ExpiredProviderToken", K::kRefreshAuth, "InvalidCredentials", true},
        ClassifyRow{403, "Forbidden", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "InvalidProviderToken", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "MissingProviderToken", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "UnrelatedKeyIdInToken", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{403, "BadEnvironmentKeyIdInToken", K::kConfigError, "InvalidCredentials",
                    false},
        ClassifyRow{403, "BadEnvironmentKeyInToken", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{404, "BadPath", K::kPermanentBadRequest, "PnsInterfaceError", false},
        ClassifyRow{405, "MethodNotAllowed", K::kPermanentBadRequest, "PnsInterfaceError", false},
        ClassifyRow{410, "ExpiredToken", K::kDropToken, "ExpiredChannel", false},
        ClassifyRow{410, "Unregistered", K::kDropToken, "ExpiredChannel", false},
        ClassifyRow{413, "PayloadTooLarge", K::kPermanentBadRequest, "InvalidNotificationSize",
                    false},
        ClassifyRow{429, "TooManyProviderTokenUpdates", K::kConfigError, "Throttled", false},
        ClassifyRow{429, "TooManyRequests", K::kRetryAfter, "Throttled", false},
        ClassifyRow{500, "InternalServerError", K::kRetryBackoff, "PnsUnavailable", false},
        ClassifyRow{503, "ServiceUnavailable", K::kRetryBackoff, "PnsUnavailable", true},
        ClassifyRow{503, "Shutdown", K::kRetryBackoff, "PnsUnavailable", true},
        // Unknown reasons fall back to the status class (spec §7.2).
        ClassifyRow{400, "SomethingNew", K::kPermanentBadRequest, "InvalidNotificationFormat",
                    false},
        ClassifyRow{403, "SomethingNew", K::kConfigError, "InvalidCredentials", false},
        ClassifyRow{410, "SomethingNew", K::kDropToken, "ExpiredChannel", false},
        ClassifyRow{413, "", K::kPermanentBadRequest, "InvalidNotificationSize", false},
        ClassifyRow{429, "", K::kRetryAfter, "Throttled", false},
        ClassifyRow{502, "", K::kRetryBackoff, "PnsUnavailable", false},
        ClassifyRow{504, "Whatever", K::kRetryBackoff, "PnsUnavailable", false},
        ClassifyRow{418, "", K::kPermanentBadRequest, "UnknownError", false},
        // A known reason under an unexpected status is classified by the status.
        ClassifyRow{500, "Unregistered", K::kRetryBackoff, "PnsUnavailable", false}));

TEST_F(Fixture, ClassifyToleratesGarbageBodiesAndReadsRetryAfter) {
  Response r;
  r.status = 400;
  r.body = "not json";
  EXPECT_EQ(provider->classify(r).kind, OutcomeKind::kPermanentBadRequest);
  r.body = R"({"reason":42})";
  EXPECT_EQ(provider->classify(r).kind, OutcomeKind::kPermanentBadRequest);
  Response throttled = response(429, "TooManyRequests");
  throttled.headers.push_back({"retry-after", "120", false});
  EXPECT_EQ(provider->classify(throttled).retry_after, std::chrono::seconds(120));
  Response unregistered = response(410, "");
  unregistered.body = R"({"reason":"Unregistered","timestamp":1700000000000})";
  Outcome o = provider->classify(unregistered);
  EXPECT_EQ(o.kind, OutcomeKind::kDropToken);
  EXPECT_EQ(o.reason, "Unregistered");
}

// ---- encode ----

TEST_F(Fixture, TargetsOfOneNotificationShareItsHeadersUntilTheTokenChanges) {
  Notification proto;
  proto.body = R"({"aps":{}})";
  proto.headers = {{"apns-priority", "5", false}};
  auto n = std::make_shared<const Notification>(proto);
  std::string other_device(64, 'b');
  auto a = provider->encode(Target{"inst-1", kToken}, n);
  auto b = provider->encode(Target{"inst-2", other_device}, n);
  ASSERT_TRUE(a && b);
  ASSERT_NE(a->shared_headers, nullptr);
  EXPECT_EQ(a->shared_headers, b->shared_headers);  // built once for the send
  EXPECT_EQ(b->path, "/3/device/" + other_device);  // the path is each target's own
  EXPECT_EQ(find(*b, "apns-priority")->value, "5");
  // Another notification gets its own headers.
  auto c = provider->encode(Target{"inst-1", kToken}, std::make_shared<const Notification>(proto));
  ASSERT_TRUE(c);
  EXPECT_NE(c->shared_headers, a->shared_headers);
  // A new provider token (they are refreshed well within APNs' hour) rebuilds them.
  now += std::chrono::hours(1);
  auto d = provider->encode(Target{"inst-2", other_device}, n);
  ASSERT_TRUE(d);
  EXPECT_NE(d->shared_headers, a->shared_headers);
  EXPECT_NE(find(*d, "authorization")->value, find(*a, "authorization")->value);
}

TEST_F(Fixture, EncodeBuildsPathHeadersAndSensitiveFlags) {
  auto r = encode({});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->path, std::string("/3/device/") + kToken);
  EXPECT_TRUE(r->sensitive_path);
  EXPECT_EQ(r->bodyView(), R"({"aps":{}})");
  const Header* auth = find(*r, "authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->sensitive);
  ASSERT_EQ(auth->value.rfind("bearer ", 0), 0u);
  EXPECT_EQ(find(*r, "apns-topic")->value, "com.example.app");
  EXPECT_FALSE(find(*r, "apns-topic")->sensitive);
  EXPECT_EQ(find(*r, "apns-push-type")->value, "alert");
  EXPECT_EQ(find(*r, "content-type")->value, "application/json");
  EXPECT_EQ(find(*r, "apns-priority"), nullptr);
  EXPECT_EQ(find(*r, "apns-expiration"), nullptr);
  EXPECT_EQ(find(*r, "apns-collapse-id"), nullptr);
  EXPECT_EQ(find(*r, "apns-id"), nullptr);

  // The bearer token is a valid ES256 JWT with the documented header and claims.
  auto jwt = decodeJwt(auth->value.substr(7));
  ASSERT_TRUE(jwt);
  EXPECT_EQ(jwt->header_json, R"({"alg":"ES256","kid":"ABC123DEFG"})");
  EXPECT_EQ(jwt->claims_json, R"({"iss":"DEF123GHIJ","iat":1700000000})");
  auto pub = loadPublicKeyPem(public_pem);
  ASSERT_TRUE(pub);
  EXPECT_TRUE(verifyEs256(pub->get(), jwt->signing_input, jwt->signature));
}

TEST_F(Fixture, EncodePassesThroughValidatedApnsHeaders) {
  auto r = encode({{"APNs-Push-Type", "background", false},
                   {"apns-priority", "5", false},
                   {"apns-expiration", "1700003600", false},
                   {"apns-collapse-id", "score", false},
                   {"apns-id", "123E4567-E89B-12D3-A456-4266554400A0", false},
                   {"x-wns-type", "wns/toast", false}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(find(*r, "apns-push-type")->value, "background");
  EXPECT_EQ(find(*r, "apns-priority")->value, "5");
  EXPECT_EQ(find(*r, "apns-expiration")->value, "1700003600");
  EXPECT_TRUE(find(*r, "apns-expiration")->sensitive);
  EXPECT_EQ(find(*r, "apns-collapse-id")->value, "score");
  EXPECT_EQ(find(*r, "apns-id")->value, "123e4567-e89b-12d3-a456-4266554400a0");
  EXPECT_TRUE(find(*r, "apns-id")->sensitive);
  EXPECT_EQ(find(*r, "x-wns-type"), nullptr);  // another platform's header is not sent
}

TEST_F(Fixture, EncodeDerivesExpirationFromExpiry) {
  auto r = encode({}, R"({"aps":{}})", system_clock::time_point(std::chrono::seconds(1700000600)));
  ASSERT_TRUE(r);
  ASSERT_NE(find(*r, "apns-expiration"), nullptr);
  EXPECT_EQ(find(*r, "apns-expiration")->value, "1700000600");
  // An explicit header wins over the expiry.
  r = encode({{"apns-expiration", "0", false}}, R"({"aps":{}})",
             system_clock::time_point(std::chrono::seconds(1700000600)));
  ASSERT_TRUE(r);
  EXPECT_EQ(find(*r, "apns-expiration")->value, "0");
}

TEST_F(Fixture, EncodeSharesTheBodyAndRechecksEveryNewNotification) {
  auto n = std::make_shared<Notification>();
  n->body = R"({"aps":{"alert":"x"}})";
  n->headers = {{"apns-priority", "5", false}};
  auto a = provider->encode(Target{"i", kToken}, n);
  auto b = provider->encode(Target{"j", std::string(64, 'a')}, n);
  ASSERT_TRUE(a && b);
  // Both requests point at the notification's own body, which they keep alive.
  EXPECT_EQ(a->shared_body.get(), &n->body);
  EXPECT_EQ(b->shared_body.get(), &n->body);
  EXPECT_TRUE(a->body.empty());
  EXPECT_EQ(find(*b, "apns-priority")->value, "5");
  EXPECT_EQ(b->path, "/3/device/" + std::string(64, 'a'));

  // The remembered headers belong to that object only: a notification created after it is
  // gone (often at the same address) is checked afresh.
  n.reset();
  a = Error::internal("released");
  b = Error::internal("released");
  for (const char* priority : {"10", "7", "1"}) {
    auto next = std::make_shared<Notification>();
    next->body = "{}";
    next->headers = {{"apns-priority", priority, false}};
    auto r = provider->encode(Target{"i", kToken}, next);
    if (std::string_view(priority) == "7") {
      EXPECT_FALSE(r);
    } else {
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(find(*r, "apns-priority")->value, priority);
    }
  }
}

TEST_F(Fixture, EncodeAcceptsTopicSuffixOnly) {
  auto r = encode({{"apns-topic", "com.example.app.voip", false}, {"apns-push-type", "voip"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(find(*r, "apns-topic")->value, "com.example.app.voip");
  EXPECT_FALSE(encode({{"apns-topic", "com.other.app", false}}));
  EXPECT_FALSE(encode({{"apns-topic", "com.example.apple", false}}));
}

struct BadHeaderCase {
  std::vector<Header> headers;
  const char* mentions;
};

class EncodeRejects : public Fixture, public ::testing::WithParamInterface<BadHeaderCase> {};

TEST_P(EncodeRejects, MalformedHeaders) {
  auto r = encode(GetParam().headers);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message.find(GetParam().mentions), std::string::npos) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, EncodeRejects,
    ::testing::Values(
        BadHeaderCase{{{"apns-push-type", "banner"}}, "apns-push-type"},
        BadHeaderCase{{{"apns-priority", "7"}}, "apns-priority"},
        BadHeaderCase{{{"apns-priority", ""}}, "apns-priority"},
        BadHeaderCase{{{"apns-expiration", "tomorrow"}}, "apns-expiration"},
        BadHeaderCase{{{"apns-expiration", "-5"}}, "apns-expiration"},
        BadHeaderCase{{{"apns-collapse-id", std::string(65, 'c')}}, "apns-collapse-id"},
        BadHeaderCase{{{"apns-collapse-id", ""}}, "apns-collapse-id"},
        BadHeaderCase{{{"apns-id", "not-a-uuid"}}, "apns-id"},
        BadHeaderCase{{{"apns-id", "123e4567e89b12d3a4564266554400a0"}}, "apns-id"},
        BadHeaderCase{{{"apns-unknown", "x"}}, "apns-unknown"},
        BadHeaderCase{{{"apns-priority", "10"}, {"APNS-PRIORITY", "5"}}, "more than once"}));

TEST_F(Fixture, EncodeChecksPayloadLimitsAndToken) {
  EXPECT_TRUE(encode({}, std::string(4096, 'x')));
  auto big = encode({}, std::string(4097, 'x'));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("4096"), std::string::npos);
  EXPECT_TRUE(encode({{"apns-push-type", "voip"}}, std::string(5120, 'x')));
  EXPECT_FALSE(encode({{"apns-push-type", "voip"}}, std::string(5121, 'x')));
  EXPECT_FALSE(encode({}, ""));
  Notification n;
  n.body = "{}";
  EXPECT_FALSE(provider->encode(Target{"i", "abc"}, std::make_shared<const Notification>(n)));
  EXPECT_FALSE(
      provider->encode(Target{"i", std::string(64, 'g')}, std::make_shared<const Notification>(n)));
}

TEST(ApnsDeviceToken, Validation) {
  EXPECT_TRUE(ApnsProvider::validateDeviceToken(kToken));
  EXPECT_TRUE(ApnsProvider::validateDeviceToken(std::string(64, 'A')));
  EXPECT_TRUE(ApnsProvider::validateDeviceToken(std::string(200, 'f')));
  EXPECT_FALSE(ApnsProvider::validateDeviceToken(std::string(62, 'a')));
  EXPECT_FALSE(ApnsProvider::validateDeviceToken(std::string(202, 'a')));
  EXPECT_FALSE(ApnsProvider::validateDeviceToken(std::string(65, 'a')));
  EXPECT_FALSE(ApnsProvider::validateDeviceToken(std::string(63, 'a') + "z"));
  EXPECT_FALSE(ApnsProvider::validateDeviceToken(""));
  auto err = ApnsProvider::validateDeviceToken("abcd");
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message.find("64 to 200"), std::string::npos);
}

// ---- token source ----

std::string bearerOf(const Request& r) { return find(r, "authorization")->value; }

TEST_F(Fixture, TokenIsReusedThenRefreshedAfterFiftyMinutes) {
  std::string first = bearerOf(*encode({}));
  uint64_t generation = tokens->generation();
  now += std::chrono::minutes(49);
  EXPECT_EQ(bearerOf(*encode({})), first);
  EXPECT_EQ(tokens->generation(), generation);
  now += std::chrono::minutes(1);
  std::string second = bearerOf(*encode({}));
  EXPECT_NE(second, first);
  EXPECT_EQ(tokens->generation(), generation + 1);
  auto claims = decodeJwt(second.substr(7))->claims_json;
  EXPECT_EQ(claims, R"({"iss":"DEF123GHIJ","iat":1700003000})");
}

TEST_F(Fixture, InvalidateRespectsTheTwentyMinuteFloor) {
  std::string first = bearerOf(*encode({}));
  now += std::chrono::minutes(5);
  provider->onAuthRejected();
  EXPECT_EQ(bearerOf(*encode({})), first);  // too young to replace
  now += std::chrono::minutes(15);          // 20 minutes old
  EXPECT_EQ(bearerOf(*encode({})), first);  // the earlier invalidate() was consumed
  provider->onAuthRejected();
  std::string second = bearerOf(*encode({}));
  EXPECT_NE(second, first);
  // The new token is then kept as usual.
  now += std::chrono::minutes(10);
  EXPECT_EQ(bearerOf(*encode({})), second);
}

TEST_F(Fixture, WorkersShareOneTokenAndSeeRefreshes) {
  ApnsProvider other(config, tokens);  // a second worker's provider, same source
  Notification n;
  n.body = "{}";
  std::string a = bearerOf(*encode({}));
  std::string b =
      bearerOf(*other.encode(Target{"i", kToken}, std::make_shared<const Notification>(n)));
  EXPECT_EQ(a, b);
  now += std::chrono::minutes(25);
  other.onAuthRejected();
  std::string c = bearerOf(*encode({}));  // this worker notices the invalidation
  EXPECT_NE(c, a);
  EXPECT_EQ(bearerOf(*other.encode(Target{"i", kToken}, std::make_shared<const Notification>(n))),
            c);
}

TEST(ApnsTokenSourceCreate, RejectsBadConfig) {
  auto [priv, pub] = testing::generateP256Pem();
  ApnsConfig c;
  c.key_pem = priv;
  c.key_id = "ABC123DEFG";
  c.team_id = "DEF123GHIJ";
  EXPECT_TRUE(ApnsTokenSource::create(c));
  ApnsConfig bad = c;
  bad.key_id = "AB\"C";
  EXPECT_FALSE(ApnsTokenSource::create(bad));
  bad = c;
  bad.team_id = "";
  EXPECT_FALSE(ApnsTokenSource::create(bad));
  bad = c;
  bad.key_pem = pub;
  EXPECT_FALSE(ApnsTokenSource::create(bad));
  bad = c;
  bad.key_pem = "garbage";
  auto r = ApnsTokenSource::create(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("key_pem"), std::string::npos);
}

}  // namespace
}  // namespace pushhub::providers::apns
