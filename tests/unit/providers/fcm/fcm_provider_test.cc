// FcmProvider: encode (path, headers, token splice, transform cache, ttl, limits) and the
// classification of every FCM answer of spec §3.5 / §6.
#include "providers/fcm/fcm_provider.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "tests/unit/providers/fcm/token_source_util.h"

namespace pushhub::providers::fcm {
namespace {

using std::chrono::system_clock;
using K = OutcomeKind;

constexpr const char* kToken = "dKx3_fcm-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";
constexpr const char* kBody = R"({"message":{"notification":{"title":"Hi","body":"There"}}})";

struct Fixture : ::testing::Test {
  Fixture() {
    config.account.project_id = "my-project-123";
    config.account.client_email = "pushhub@my-project-123.iam.gserviceaccount.com";
    config.account.private_key_pem = "unused here";
    config.account.private_key_id = "kid";
    config.account.token_uri = "https://oauth2.googleapis.com/token";
    tokens = testing::makeTokenSource();
    provider = std::make_unique<FcmProvider>(config, tokens, [this] { return now; });
  }

  Result<Request> encode(std::string body = kBody, std::string token = kToken,
                         std::optional<system_clock::time_point> expiry = std::nullopt) {
    Notification n;
    n.body = std::move(body);
    n.expiry = expiry;
    return provider->encode(Target{"inst-1", std::move(token)},
                            std::make_shared<const Notification>(std::move(n)));
  }

  // The message object of an encoded request.
  boost::json::object message(const Request& r) {
    boost::system::error_code ec;
    auto doc = boost::json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return doc.at("message").as_object();
  }

  system_clock::time_point now = system_clock::time_point(std::chrono::seconds(1700000000));
  FcmConfig config;
  std::shared_ptr<AccessTokenSource> tokens;
  std::unique_ptr<FcmProvider> provider;
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

// ---- encode ----

TEST_F(Fixture, BuildsTheSendRequest) {
  auto r = encode();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->path, "/v1/projects/my-project-123/messages:send");
  EXPECT_TRUE(r->host.empty());  // the pool's endpoint
  const Header* auth = find(*r, "authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->value, tokens->current()->authorization);
  EXPECT_EQ(auth->value.rfind("Bearer ", 0), 0u);
  EXPECT_TRUE(auth->sensitive);
  const Header* type = find(*r, "content-type");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->value, "application/json");
  EXPECT_FALSE(type->sensitive);
  size_t headers = 0;
  r->forEachHeader([&](const Header&) { ++headers; });
  EXPECT_EQ(headers, 2u);
  // The headers are the same for every request until the token changes: one shared vector.
  auto again = encode(kBody, "another-token");
  ASSERT_TRUE(again);
  ASSERT_NE(r->shared_headers, nullptr);
  EXPECT_EQ(again->shared_headers, r->shared_headers);
  EXPECT_EQ(r->body, R"({"message":{"token":"dKx3_fcm-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx",)"
                     R"("notification":{"title":"Hi","body":"There"}}})");
  EXPECT_EQ(provider->config().account.private_key_pem, "");  // no second copy of the key
}

TEST_F(Fixture, SplicesTokensThatNeedEscaping) {
  for (std::string token : {std::string("a\"b"), std::string("back\\slash"),
                            std::string("x\",\"topic\":\"all"), std::string("~!@#$%^&*()")}) {
    auto r = encode(kBody, token);
    ASSERT_TRUE(r) << r.error().message;
    auto m = message(*r);
    EXPECT_EQ(m.at("token").as_string(), token);
    EXPECT_FALSE(m.contains("topic"));  // the quote did not break out of the string
  }
}

TEST_F(Fixture, EmptyMessageAndValidateOnly) {
  auto r = encode(R"({"message":{}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, std::string(R"({"message":{"token":")") + kToken + R"("}})");

  auto dry = encode(R"({"validate_only":true,"message":{"data":{"k":"v"}}})");
  ASSERT_TRUE(dry) << dry.error().message;
  auto doc = boost::json::parse(dry->body).as_object();
  EXPECT_TRUE(doc.at("validate_only").as_bool());
  EXPECT_EQ(doc.at("message").at("token").as_string(), kToken);
  EXPECT_EQ(doc.at("message").at("data").at("k").as_string(), "v");
}

TEST_F(Fixture, KeepsUnicodeAndNestedContent) {
  std::string body =
      R"({"message":{"data":{"emoji":"\u00e9\u4e2d","q":"a\"b"},"android":{"priority":"HIGH"},)"
      R"("apns":{"payload":{"aps":{"badge":3}}}}})";
  auto r = encode(body);
  ASSERT_TRUE(r) << r.error().message;
  auto m = message(*r);
  EXPECT_EQ(m.at("data").at("emoji").as_string(), "\xc3\xa9\xe4\xb8\xad");
  EXPECT_EQ(m.at("data").at("q").as_string(), "a\"b");
  EXPECT_EQ(m.at("android").at("priority").as_string(), "HIGH");
  EXPECT_EQ(m.at("apns").at("payload").at("aps").at("badge").as_int64(), 3);
}

TEST_F(Fixture, ParsesEachDistinctPayloadOnce) {
  for (int i = 0; i < 100; ++i) {
    auto r = encode(kBody, "token-" + std::to_string(i));
    ASSERT_TRUE(r);
    EXPECT_EQ(message(*r).at("token").as_string(), "token-" + std::to_string(i));
  }
  EXPECT_EQ(provider->transformsComputed(), 1u);

  // Two payloads interleaved (two jobs on one worker) both stay cached.
  std::string other = R"({"message":{"data":{"n":"2"}}})";
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(encode(i % 2 == 0 ? std::string(kBody) : other, "t" + std::to_string(i)));
  }
  EXPECT_EQ(provider->transformsComputed(), 2u);
}

TEST_F(Fixture, EvictsTheLeastRecentlyUsedPayload) {
  auto body = [](size_t i) { return R"({"message":{"data":{"n":")" + std::to_string(i) + "\"}}}"; };
  for (size_t i = 0; i < FcmProvider::kTransformCacheSize; ++i) {
    ASSERT_TRUE(encode(body(i)));
  }
  ASSERT_TRUE(encode(body(0)));  // 0 is now the most recent; 1 the least
  EXPECT_EQ(provider->transformsComputed(), FcmProvider::kTransformCacheSize);
  ASSERT_TRUE(encode(body(100)));  // evicts 1
  ASSERT_TRUE(encode(body(0)));
  EXPECT_EQ(provider->transformsComputed(), FcmProvider::kTransformCacheSize + 1);
  auto r = encode(body(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(provider->transformsComputed(), FcmProvider::kTransformCacheSize + 2);
  EXPECT_EQ(message(*r).at("data").at("n").as_string(), "1");
}

TEST_F(Fixture, ExpiryBecomesAndroidTtl) {
  auto r = encode(kBody, kToken, now + std::chrono::seconds(3600));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(message(*r).at("android").at("ttl").as_string(), "3600s");

  // An existing android object keeps its members.
  auto with_android = encode(R"({"message":{"android":{"priority":"HIGH"}}})", kToken,
                             now + std::chrono::seconds(90));
  ASSERT_TRUE(with_android);
  auto android = message(*with_android).at("android").as_object();
  EXPECT_EQ(android.at("ttl").as_string(), "90s");
  EXPECT_EQ(android.at("priority").as_string(), "HIGH");

  // Sub-second remainders round down (never deliver after the expiry); past = 0s; far = 4 weeks.
  auto partial = encode(kBody, kToken, now + std::chrono::milliseconds(1999));
  ASSERT_TRUE(partial);
  EXPECT_EQ(message(*partial).at("android").at("ttl").as_string(), "1s");
  auto past = encode(kBody, kToken, now - std::chrono::seconds(5));
  ASSERT_TRUE(past);
  EXPECT_EQ(message(*past).at("android").at("ttl").as_string(), "0s");
  auto far = encode(kBody, kToken, now + std::chrono::hours(24 * 365));
  ASSERT_TRUE(far);
  EXPECT_EQ(message(*far).at("android").at("ttl").as_string(), "2419200s");

  // No expiry: no ttl.
  auto none = encode();
  ASSERT_TRUE(none);
  EXPECT_FALSE(message(*none).contains("android"));
}

TEST_F(Fixture, PayloadTtlWins) {
  std::string body = R"({"message":{"android":{"ttl":"60s"}}})";
  auto r = encode(body, kToken, now + std::chrono::seconds(3600));
  ASSERT_TRUE(r);
  EXPECT_EQ(message(*r).at("android").at("ttl").as_string(), "60s");
  // It does not depend on the expiry, so the clock moving on reuses the transform.
  size_t before = provider->transformsComputed();
  now += std::chrono::seconds(10);
  ASSERT_TRUE(encode(body, kToken, now + std::chrono::seconds(3600)));
  EXPECT_EQ(provider->transformsComputed(), before);
}

TEST_F(Fixture, TtlIsPartOfTheCacheKey) {
  auto expiry = now + std::chrono::seconds(100);
  ASSERT_TRUE(encode(kBody, "a", expiry));
  ASSERT_TRUE(encode(kBody, "b", expiry));
  EXPECT_EQ(provider->transformsComputed(), 1u);
  now += std::chrono::seconds(1);
  auto r = encode(kBody, "c", expiry);
  ASSERT_TRUE(r);
  EXPECT_EQ(message(*r).at("android").at("ttl").as_string(), "99s");
  EXPECT_EQ(provider->transformsComputed(), 2u);
  // Same body without expiry is yet another entry: no ttl in it.
  auto plain = encode(kBody, "d");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(message(*plain).contains("android"));
}

struct BadPayload {
  std::string body;
  const char* expect;
};

class BadPayloadTest : public Fixture, public ::testing::WithParamInterface<BadPayload> {};

TEST_P(BadPayloadTest, RefusedByValidateAndEncode) {
  const BadPayload& row = GetParam();
  auto v = FcmProvider::validatePayload(row.body);
  ASSERT_FALSE(v) << row.body;
  EXPECT_EQ(v.error().code, Error::Code::kInvalidArgument);
  EXPECT_NE(v.error().message.find(row.expect), std::string::npos) << v.error().message;
  auto r = encode(row.body);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, v.error().message);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, BadPayloadTest,
    ::testing::Values(BadPayload{"", "empty"}, BadPayload{"{\"message\":", "not valid JSON"},
                      BadPayload{"[]", "JSON object"}, BadPayload{R"({"data":{}})", "payload.data"},
                      BadPayload{R"({"message":[]})", "payload.message"},
                      BadPayload{R"({"notification":{}})", "unknown field"},
                      BadPayload{R"({"message":{"token":"x"}})", "payload.message.token"},
                      BadPayload{R"({"message":{"topic":"news"}})", "payload.message.topic"},
                      BadPayload{R"({"message":{"condition":"'a' in topics"}})",
                                 "payload.message.condition"},
                      BadPayload{R"({"message":{},"validate_only":"yes"})", "validate_only"},
                      BadPayload{R"({"message":{"android":"x"}})", "payload.message.android"},
                      BadPayload{R"({"message":{"android":{"ttl":60}}})", "android.ttl"},
                      BadPayload{R"({"message":{"data":{"k":")" + std::string(4100, 'x') + "\"}}}",
                                 "at most 4096"}));

TEST_F(Fixture, SizeLimitIsInclusive) {
  std::string prefix = R"({"message":{"data":{"k":")";
  std::string body = prefix + std::string(4096 - prefix.size() - 4, 'x') + "\"}}}";
  ASSERT_EQ(body.size(), 4096u);
  EXPECT_TRUE(FcmProvider::validatePayload(body));
  EXPECT_TRUE(encode(body));
  body.insert(prefix.size(), "x");
  EXPECT_FALSE(FcmProvider::validatePayload(body));
}

TEST_F(Fixture, BadPayloadIsParsedOnce) {
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(encode(R"({"message":{"topic":"x"}})", "t" + std::to_string(i)));
  }
  EXPECT_EQ(provider->transformsComputed(), 1u);
}

TEST_F(Fixture, RefusesBadRegistrationTokens) {
  EXPECT_FALSE(encode(kBody, ""));
  EXPECT_FALSE(encode(kBody, "a\nb"));
  EXPECT_FALSE(encode(kBody, std::string("a\0b", 3)));
  EXPECT_FALSE(encode(kBody, "caf\xc3\xa9"));
  EXPECT_FALSE(encode(kBody, std::string(4097, 'a')));
  EXPECT_TRUE(encode(kBody, std::string(4096, 'a')));
  auto r = encode(kBody, "secret\x01token");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("secret"), std::string::npos);  // never echoes the token
}

TEST_F(Fixture, NoAccessTokenIsUnavailable) {
  auto empty = testing::makeEmptyTokenSource();
  FcmProvider p(config, empty, [this] { return now; });
  EXPECT_FALSE(p.ready());
  Notification n;
  n.body = kBody;
  auto r = p.encode(Target{"i", kToken}, std::make_shared<const Notification>(n));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kUnavailable);
  EXPECT_TRUE(provider->ready());
}

TEST_F(Fixture, AuthRejectionInvalidatesTheGenerationUsed) {
  uint64_t generation = tokens->current()->generation;
  auto r = encode();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->credential_generation, generation);
  provider->onAuthRejected();
  EXPECT_EQ(tokens->current(), nullptr);
  EXPECT_FALSE(provider->ready());
}

TEST_F(Fixture, AuthRejectionNamesTheRejectedRequestsGeneration) {
  auto first = encode();
  ASSERT_TRUE(first);
  tokens->invalidate(first->credential_generation);
  testing::fetch(*tokens);
  auto second = encode();
  ASSERT_TRUE(second);
  ASSERT_GT(second->credential_generation, first->credential_generation);
  EXPECT_NE(find(*second, "authorization")->value, find(*first, "authorization")->value);
  EXPECT_NE(second->shared_headers, first->shared_headers);
  // A late 401 of the first request must not discard its successor.
  Response late;
  late.status = 401;
  late.credential_generation = first->credential_generation;
  provider->onAuthRejected(late);
  ASSERT_NE(tokens->current(), nullptr);
  EXPECT_EQ(tokens->current()->generation, second->credential_generation);
  Response current;
  current.status = 401;
  current.credential_generation = second->credential_generation;
  provider->onAuthRejected(current);
  EXPECT_EQ(tokens->current(), nullptr);
}

TEST(FcmPool, OptionsForTheConfiguredEndpoint) {
  FcmConfig c;
  c.host = "127.0.0.1";
  c.port = 8443;
  c.connections = 0;
  auto o = FcmProvider::poolOptions(c);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 8443);
  EXPECT_EQ(o->connections, 1u);
  EXPECT_EQ(o->protocol, ConnectionPool::Protocol::kH2);
  c.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(FcmProvider::poolOptions(c));
}

// ---- classify ----

std::string envelope(int code, const char* status, const char* message,
                     const char* fcm_error = nullptr, const char* extra_detail = nullptr) {
  std::string details;
  if (fcm_error != nullptr) {
    details += std::string(R"({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError",)") +
               R"("errorCode":")" + fcm_error + "\"}";
  }
  if (extra_detail != nullptr) {
    details += (details.empty() ? "" : ",") + std::string(extra_detail);
  }
  return R"({"error":{"code":)" + std::to_string(code) + R"(,"message":")" + message +
         R"(","status":")" + status + R"(","details":[)" + details + "]}}";
}

struct ClassifyRow {
  const char* name;
  int status;
  std::string body;
  const char* retry_after;  // header value or nullptr
  K kind;
  const char* azure;
  const char* reason;
  int64_t retry_seconds;
};

void PrintTo(const ClassifyRow& row, std::ostream* os) { *os << row.name; }

class ClassifyTable : public Fixture, public ::testing::WithParamInterface<ClassifyRow> {};

TEST_P(ClassifyTable, Maps) {
  const ClassifyRow& row = GetParam();
  Response r;
  r.status = row.status;
  r.body = row.body;
  if (row.retry_after != nullptr) {
    r.headers.push_back({"retry-after", row.retry_after, false});
  }
  Outcome o = provider->classify(r);
  EXPECT_EQ(toString(o.kind), toString(row.kind));
  EXPECT_EQ(o.azure_outcome, row.azure);
  EXPECT_EQ(o.reason, row.reason);
  EXPECT_EQ(o.http_status, row.status);
  EXPECT_EQ(o.retry_after.count(), row.retry_seconds);
  EXPECT_FALSE(o.recycle_connection);
}

constexpr const char* kBadToken = "The registration token is not a valid FCM registration token";
constexpr const char* kTokenViolation =
    R"({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":)"
    R"([{"field":"message.token","description":"Invalid registration token"}]})";
constexpr const char* kDataViolation =
    R"({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":)"
    R"([{"field":"message.data[0].key","description":"Invalid data key: from"}]})";

INSTANTIATE_TEST_SUITE_P(
    SpecRows, ClassifyTable,
    ::testing::Values(
        ClassifyRow{"ok", 200, R"({"name":"projects/p/messages/0:1500415314455276%31bd"})", nullptr,
                    K::kDelivered, "Success", "", 0},
        ClassifyRow{"unregistered", 404,
                    envelope(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
                    nullptr, K::kDropToken, "ExpiredChannel", "UNREGISTERED", 0},
        // Without FCM's UNREGISTERED detail a 404 may as well be a wrong project or path:
        // dropping tokens is not undoable, so it is counted, not acted on.
        ClassifyRow{"not_found_without_detail", 404,
                    envelope(404, "NOT_FOUND", "Requested entity was not found."), nullptr,
                    K::kPermanentBadRequest, "PnsInterfaceError", "NOT_FOUND", 0},
        ClassifyRow{"invalid_token_by_message", 400,
                    envelope(400, "INVALID_ARGUMENT", kBadToken, "INVALID_ARGUMENT"), nullptr,
                    K::kDropToken, "WrongToken", "INVALID_ARGUMENT", 0},
        ClassifyRow{"invalid_token_by_field", 400,
                    envelope(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                             "INVALID_ARGUMENT", kTokenViolation),
                    nullptr, K::kDropToken, "WrongToken", "INVALID_ARGUMENT", 0},
        ClassifyRow{"invalid_payload", 400,
                    envelope(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                             "INVALID_ARGUMENT", kDataViolation),
                    nullptr, K::kPermanentBadRequest, "InvalidNotificationFormat",
                    "INVALID_ARGUMENT", 0},
        ClassifyRow{"invalid_status_only", 400,
                    envelope(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'"),
                    nullptr, K::kPermanentBadRequest, "InvalidNotificationFormat",
                    "INVALID_ARGUMENT", 0},
        ClassifyRow{"too_big", 400,
                    envelope(400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT"),
                    nullptr, K::kPermanentBadRequest, "InvalidNotificationSize", "INVALID_ARGUMENT",
                    0},
        ClassifyRow{"sender_id_mismatch", 403,
                    envelope(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
                    nullptr, K::kDropToken, "WrongToken", "SENDER_ID_MISMATCH", 0},
        ClassifyRow{"quota_with_retry_after", 429,
                    envelope(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"), "120",
                    K::kRetryAfter, "Throttled", "QUOTA_EXCEEDED", 120},
        ClassifyRow{"quota_default_minute", 429,
                    envelope(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
                    nullptr, K::kRetryAfter, "Throttled", "QUOTA_EXCEEDED", 60},
        ClassifyRow{"resource_exhausted_status", 429,
                    envelope(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), nullptr, K::kRetryAfter,
                    "Throttled", "RESOURCE_EXHAUSTED", 60},
        ClassifyRow{"quota_http_date", 429,
                    envelope(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"),
                    "Tue, 14 Nov 2023 22:13:50 GMT",  // now + 30 s
                    K::kRetryAfter, "Throttled", "QUOTA_EXCEEDED", 30},
        ClassifyRow{
            "unavailable_retry_after", 503,
            envelope(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
            "7", K::kRetryAfter, "PnsUnavailable", "UNAVAILABLE", 7},
        ClassifyRow{
            "unavailable_no_header", 503,
            envelope(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
            nullptr, K::kRetryAfter, "PnsUnavailable", "UNAVAILABLE", 0},
        ClassifyRow{"internal", 500,
                    envelope(500, "INTERNAL", "Internal error encountered.", "INTERNAL"), nullptr,
                    K::kRetryBackoff, "PnsUnavailable", "INTERNAL", 0},
        ClassifyRow{"internal_retry_after", 500,
                    envelope(500, "INTERNAL", "Internal error encountered.", "INTERNAL"), "3",
                    K::kRetryBackoff, "PnsUnavailable", "INTERNAL", 3},
        ClassifyRow{"unauthenticated", 401,
                    envelope(401, "UNAUTHENTICATED",
                             "Request had invalid authentication "
                             "credentials."),
                    nullptr, K::kRefreshAuth, "InvalidCredentials", "UNAUTHENTICATED", 0},
        ClassifyRow{"third_party_auth", 401,
                    envelope(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                             "THIRD_PARTY_AUTH_ERROR"),
                    nullptr, K::kConfigError, "InvalidCredentials", "THIRD_PARTY_AUTH_ERROR", 0},
        ClassifyRow{"apns_auth", 401,
                    envelope(401, "UNAUTHENTICATED", "Auth error from APNS", "APNS_AUTH_ERROR"),
                    nullptr, K::kConfigError, "InvalidCredentials", "APNS_AUTH_ERROR", 0},
        ClassifyRow{"permission_denied", 403,
                    envelope(403, "PERMISSION_DENIED",
                             "Permission 'cloudmessaging.messages.create' denied"),
                    nullptr, K::kConfigError, "InvalidCredentials", "PERMISSION_DENIED", 0},
        ClassifyRow{"unspecified", 500, envelope(500, "UNKNOWN", "?", "UNSPECIFIED_ERROR"), nullptr,
                    K::kRetryBackoff, "UnknownError", "UNSPECIFIED_ERROR", 0},
        // The FcmError detail wins over error.status and over the HTTP status.
        ClassifyRow{"detail_beats_status", 400,
                    envelope(400, "INVALID_ARGUMENT", "x", "UNREGISTERED"), nullptr, K::kDropToken,
                    "ExpiredChannel", "UNREGISTERED", 0},
        ClassifyRow{"status_beats_http", 500, envelope(500, "UNAUTHENTICATED", "x"), nullptr,
                    K::kRefreshAuth, "InvalidCredentials", "UNAUTHENTICATED", 0},
        ClassifyRow{"unknown_code_by_http", 409, envelope(409, "ABORTED", "x"), nullptr,
                    K::kPermanentBadRequest, "UnknownError", "ABORTED", 0},
        ClassifyRow{"unknown_code_5xx", 504, envelope(504, "DEADLINE_EXCEEDED", "x"), nullptr,
                    K::kRetryBackoff, "PnsUnavailable", "DEADLINE_EXCEEDED", 0},
        // Bodies that are not a google.rpc.Status: by HTTP status only.
        ClassifyRow{"html_400", 400, "<html>bad</html>", nullptr, K::kPermanentBadRequest,
                    "InvalidNotificationFormat", "", 0},
        ClassifyRow{"html_401", 401, "<html>no</html>", nullptr, K::kRefreshAuth,
                    "InvalidCredentials", "", 0},
        ClassifyRow{"html_403", 403, "", nullptr, K::kConfigError, "InvalidCredentials", "", 0},
        ClassifyRow{"html_404_keeps_token", 404, "<html>Not Found</html>", nullptr,
                    K::kPermanentBadRequest, "PnsInterfaceError", "", 0},
        ClassifyRow{"json_without_envelope_404", 404, R"({"message":"UNREGISTERED"})", nullptr,
                    K::kPermanentBadRequest, "PnsInterfaceError", "", 0},
        ClassifyRow{"html_413", 413, "too large", nullptr, K::kPermanentBadRequest,
                    "InvalidNotificationSize", "", 0},
        ClassifyRow{"html_429", 429, "slow down", "15", K::kRetryAfter, "Throttled", "", 15},
        ClassifyRow{"html_429_default", 429, "", nullptr, K::kRetryAfter, "Throttled", "", 60},
        ClassifyRow{"html_500", 500, "oops", nullptr, K::kRetryBackoff, "PnsUnavailable", "", 0},
        ClassifyRow{"html_502", 502, "bad gateway", nullptr, K::kRetryBackoff, "PnsUnavailable", "",
                    0},
        ClassifyRow{"html_503", 503, "", "bogus", K::kRetryAfter, "PnsUnavailable", "", 0},
        ClassifyRow{"html_503_retry_after", 503, "", "11", K::kRetryAfter, "PnsUnavailable", "",
                    11},
        ClassifyRow{"truncated_json", 400, R"({"error":{"status":"INVALID_ARG)", nullptr,
                    K::kPermanentBadRequest, "InvalidNotificationFormat", "", 0},
        ClassifyRow{"redirect", 302, "", nullptr, K::kRetryBackoff, "UnknownError", "", 0}),
    [](const ::testing::TestParamInfo<ClassifyRow>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace pushhub::providers::fcm
