// WnsProvider: headers, encode, classification of every WNS answer (spec §4.4 / §6) and the
// client-credentials token request.
#include "providers/wns/wns_provider.h"

#include <gtest/gtest.h>

#include "providers/wns/wns_auth.h"
#include "tests/unit/providers/fcm/token_source_util.h"

namespace pushhub::providers::wns {
namespace {

using std::chrono::system_clock;
using K = OutcomeKind;
namespace util = pushhub::providers::fcm::testing;

constexpr const char* kChannel = "https://dm3p.notify.windows.com/?token=AwYAAAB%2bQ%3d%3d";
constexpr const char* kToast =
    "<toast><visual><binding template=\"ToastGeneric\"><text>Hi</text></binding></visual></toast>";

struct Fixture : ::testing::Test {
  Fixture() {
    config.package_sid = "ms-app://S-1-15-2-1";
    config.secret = "s3cr3t";
    tokens = util::makeTokenSource();
    provider = std::make_unique<WnsProvider>(config, tokens, [this] { return now; });
  }

  Result<Request> encode(std::vector<Header> headers, std::string body = kToast,
                         std::string channel = kChannel,
                         std::optional<system_clock::time_point> expiry = std::nullopt) {
    Notification n;
    n.body = std::move(body);
    n.headers = std::move(headers);
    n.expiry = expiry;
    return provider->encode(Target{"inst-1", std::move(channel)},
                            std::make_shared<const Notification>(std::move(n)));
  }

  system_clock::time_point now = system_clock::time_point(std::chrono::seconds(1700000000));
  WnsConfig config;
  std::shared_ptr<AccessTokenSource> tokens;
  std::unique_ptr<WnsProvider> provider;
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

// ---- parseHeaders ----

TEST(WnsHeaders, AllKnownHeaders) {
  auto h = WnsProvider::parseHeaders({{"X-WNS-Type", "wns/tile", false},
                                      {"x-wns-cache-policy", "No-Cache", false},
                                      {"X-WNS-RequestForStatus", "TRUE", false},
                                      {"X-WNS-Tag", "Tag16charsABCDEF", false},
                                      {"X-WNS-Group", "g1", false},
                                      {"X-WNS-TTL", "600", false},
                                      {"X-WNS-SuppressPopup", "false", false},
                                      {"X-WNS-PRIORITY", "2", false},
                                      {"apns-push-type", "alert", false},
                                      {"Content-Type", "application/json", false}},
                                     100);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->type, "wns/tile");
  EXPECT_EQ(h->content_type, "text/xml");
  EXPECT_EQ(h->cache_policy, "no-cache");
  EXPECT_EQ(h->request_for_status, "true");
  EXPECT_EQ(h->tag, "Tag16charsABCDEF");
  EXPECT_EQ(h->group, "g1");
  EXPECT_EQ(h->ttl, "600");
  EXPECT_EQ(h->suppress_popup, "false");
  EXPECT_EQ(h->priority, "2");
}

TEST(WnsHeaders, TypesAndContentTypes) {
  for (auto [type, content_type] : {std::pair{"wns/toast", "text/xml"},
                                    {"wns/tile", "text/xml"},
                                    {"WNS/Badge", "text/xml"},
                                    {"wns/raw", "application/octet-stream"}}) {
    auto h = WnsProvider::parseHeaders({{"x-wns-type", type, false}}, 10);
    ASSERT_TRUE(h) << type;
    EXPECT_EQ(h->content_type, content_type) << type;
  }
}

struct BadHeaders {
  const char* name;
  std::vector<Header> headers;
  size_t body_size;
  const char* expect;
};

void PrintTo(const BadHeaders& row, std::ostream* os) { *os << row.name; }

class BadHeadersTest : public ::testing::TestWithParam<BadHeaders> {};

TEST_P(BadHeadersTest, Refused) {
  const BadHeaders& row = GetParam();
  auto h = WnsProvider::parseHeaders(row.headers, row.body_size);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, Error::Code::kInvalidArgument);
  EXPECT_NE(h.error().message.find(row.expect), std::string::npos) << h.error().message;
}

const Header kType{"X-WNS-Type", "wns/toast", false};

INSTANTIATE_TEST_SUITE_P(
    Rows, BadHeadersTest,
    ::testing::Values(
        BadHeaders{"missing_type", {}, 10, "x-wns-type: required"},
        BadHeaders{"bad_type", {{"X-WNS-Type", "wns/popup", false}}, 10, "x-wns-type"},
        BadHeaders{"dup_type", {kType, {"x-wns-type", "wns/raw", false}}, 10, "more than once"},
        BadHeaders{
            "cache", {kType, {"X-WNS-Cache-Policy", "sometimes", false}}, 10, "x-wns-cache-policy"},
        BadHeaders{
            "rfs", {kType, {"X-WNS-RequestForStatus", "yes", false}}, 10, "x-wns-requestforstatus"},
        BadHeaders{"tag_long", {kType, {"X-WNS-Tag", "Tag17charsABCDEFG", false}}, 10, "x-wns-tag"},
        BadHeaders{"tag_chars", {kType, {"X-WNS-Tag", "a-b", false}}, 10, "x-wns-tag"},
        BadHeaders{"tag_empty", {kType, {"X-WNS-Tag", "", false}}, 10, "x-wns-tag"},
        BadHeaders{"group_chars", {kType, {"X-WNS-Group", "a b", false}}, 10, "x-wns-group"},
        BadHeaders{"ttl_neg", {kType, {"X-WNS-TTL", "-1", false}}, 10, "x-wns-ttl"},
        BadHeaders{"ttl_text", {kType, {"X-WNS-TTL", "1h", false}}, 10, "x-wns-ttl"},
        BadHeaders{"ttl_big", {kType, {"X-WNS-TTL", "2147483648", false}}, 10, "x-wns-ttl"},
        BadHeaders{
            "popup", {kType, {"X-WNS-SuppressPopup", "1", false}}, 10, "x-wns-suppresspopup"},
        BadHeaders{"prio_0", {kType, {"X-WNS-PRIORITY", "0", false}}, 10, "x-wns-priority"},
        BadHeaders{"prio_5", {kType, {"X-WNS-Priority", "5", false}}, 10, "x-wns-priority"},
        BadHeaders{"prio_12", {kType, {"X-WNS-Priority", "12", false}}, 10, "x-wns-priority"},
        BadHeaders{
            "match", {kType, {"X-WNS-Match", "type:wns/toast;all", false}}, 10, "not a WNS header"},
        BadHeaders{"dup_ttl",
                   {kType, {"x-wns-ttl", "1", false}, {"X-WNS-TTL", "2", false}},
                   10,
                   "more than once"},
        BadHeaders{"empty_body", {kType}, 0, "empty"},
        BadHeaders{"big_body", {kType}, 5001, "at most 5000"}));

TEST(WnsHeaders, BodyLimitIsInclusive) {
  EXPECT_TRUE(WnsProvider::parseHeaders({kType}, 5000));
  EXPECT_TRUE(WnsProvider::parseHeaders({{"X-WNS-TTL", "2147483647", false}, kType}, 1));
}

// ---- encode ----

TEST_F(Fixture, PostsToTheChannel) {
  auto r = encode({{"X-WNS-Type", "wns/toast", false},
                   {"X-WNS-Tag", "t1", false},
                   {"X-WNS-PRIORITY", "1", false},
                   {"apns-priority", "10", false}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->host, "dm3p.notify.windows.com");
  EXPECT_EQ(r->port, 443);
  EXPECT_EQ(r->path, "/?token=AwYAAAB%2bQ%3d%3d");
  EXPECT_TRUE(r->sensitive_path);
  EXPECT_EQ(r->bodyView(), kToast);
  const Header* auth = find(*r, "authorization");
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->value, tokens->current()->authorization);
  EXPECT_EQ(auth->value.rfind("Bearer ", 0), 0u);
  EXPECT_TRUE(auth->sensitive);
  EXPECT_EQ(find(*r, "content-type")->value, "text/xml");
  EXPECT_EQ(find(*r, "x-wns-type")->value, "wns/toast");
  EXPECT_EQ(find(*r, "x-wns-tag")->value, "t1");
  EXPECT_EQ(find(*r, "x-wns-priority")->value, "1");
  EXPECT_EQ(find(*r, "x-wns-ttl"), nullptr);
  EXPECT_EQ(find(*r, "apns-priority"), nullptr);
  EXPECT_EQ(r->headers.size(), 5u);
  for (const Header& h : r->headers) {
    EXPECT_EQ(h.name, [&] {
      std::string lower = h.name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return lower;
    }());
  }
  EXPECT_EQ(provider->config().secret, "");  // no second copy of the secret
}

TEST_F(Fixture, RawNotifications) {
  auto r = encode({{"x-wns-type", "wns/raw", false}, {"x-wns-cache-policy", "cache", false}},
                  std::string("\x00\x01raw", 5));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(find(*r, "content-type")->value, "application/octet-stream");
  EXPECT_EQ(find(*r, "x-wns-cache-policy")->value, "cache");
  EXPECT_EQ(r->bodyView(), std::string("\x00\x01raw", 5));
}

TEST_F(Fixture, EncodeSharesTheBodyAndRechecksEveryNewNotification) {
  auto n = std::make_shared<Notification>();
  n->body = kToast;
  n->headers = {{"X-WNS-Type", "wns/toast", false}, {"X-WNS-Tag", "t1", false}};
  auto a = provider->encode(Target{"i", kChannel}, n);
  auto b = provider->encode(Target{"j", "https://db5p.notify.windows.com/?token=BBB"}, n);
  ASSERT_TRUE(a && b);
  // Both requests point at the notification's own body, which they keep alive.
  EXPECT_EQ(a->shared_body.get(), &n->body);
  EXPECT_EQ(b->shared_body.get(), &n->body);
  EXPECT_TRUE(a->body.empty());
  EXPECT_EQ(find(*b, "x-wns-tag")->value, "t1");
  EXPECT_EQ(b->host, "db5p.notify.windows.com");

  // The remembered headers belong to that object only: a notification created after it is
  // gone (often at the same address) is checked afresh.
  n.reset();
  a = Error::internal("released");
  b = Error::internal("released");
  for (const char* type : {"wns/badge", "wns/nonsense", "wns/raw"}) {
    auto next = std::make_shared<Notification>();
    next->body = "<badge value=\"1\"/>";
    next->headers = {{"X-WNS-Type", type, false}};
    auto r = provider->encode(Target{"i", kChannel}, next);
    if (std::string_view(type) == "wns/nonsense") {
      EXPECT_FALSE(r);
    } else {
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(find(*r, "x-wns-type")->value, type);
      EXPECT_EQ(find(*r, "x-wns-tag"), nullptr);
    }
  }
}

TEST_F(Fixture, TtlFromExpiry) {
  auto r = encode({kType}, kToast, kChannel, now + std::chrono::seconds(3600));
  ASSERT_TRUE(r);
  ASSERT_NE(find(*r, "x-wns-ttl"), nullptr);
  EXPECT_EQ(find(*r, "x-wns-ttl")->value, "3600");
  auto past = encode({kType}, kToast, kChannel, now - std::chrono::seconds(3));
  ASSERT_TRUE(past);
  EXPECT_EQ(find(*past, "x-wns-ttl")->value, "1");
  // The sender's TTL wins.
  auto given = encode({kType, {"X-WNS-TTL", "60", false}}, kToast, kChannel,
                      now + std::chrono::seconds(3600));
  ASSERT_TRUE(given);
  EXPECT_EQ(find(*given, "x-wns-ttl")->value, "60");
}

TEST_F(Fixture, ChecksTheChannelAgain) {
  auto r = encode({kType}, kToast, "https://evil.example.com/?token=AwYAAAB");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not an allowed"), std::string::npos);
  EXPECT_EQ(r.error().message.find("AwYAAAB"), std::string::npos);
  EXPECT_FALSE(encode({kType}, kToast, "http://dm3p.notify.windows.com/?token=x"));

  // The hub's own patterns apply (here: a test endpoint on loopback).
  config.allowed_hosts = {"127.0.0.1:8443"};
  WnsProvider local(config, tokens, [this] { return now; });
  Notification n;
  n.body = kToast;
  n.headers = {kType};
  auto ok = local.encode(Target{"i", "https://127.0.0.1:8443/w/?token=abc"},
                         std::make_shared<const Notification>(n));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->host, "127.0.0.1");
  EXPECT_EQ(ok->port, 8443);
  EXPECT_EQ(ok->path, "/w/?token=abc");
  EXPECT_FALSE(local.encode(Target{"i", kChannel}, std::make_shared<const Notification>(n)));
}

TEST_F(Fixture, RefusesBadHeadersAndBodies) {
  EXPECT_FALSE(encode({}));
  EXPECT_FALSE(encode({kType}, std::string(5001, 'x')));
  EXPECT_TRUE(encode({kType}, std::string(5000, 'x')));
}

TEST_F(Fixture, NoAccessTokenIsUnavailable) {
  auto empty = util::makeEmptyTokenSource();
  WnsProvider p(config, empty, [this] { return now; });
  EXPECT_FALSE(p.ready());
  Notification n;
  n.body = kToast;
  n.headers = {kType};
  auto r = p.encode(Target{"i", kChannel}, std::make_shared<const Notification>(n));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kUnavailable);
  EXPECT_TRUE(provider->ready());
}

TEST_F(Fixture, AuthRejectionInvalidatesTheGenerationUsed) {
  auto first = encode({kType});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->credential_generation, tokens->current()->generation);
  tokens->invalidate(first->credential_generation);
  util::fetch(*tokens);
  auto second = encode({kType});
  ASSERT_TRUE(second);
  ASSERT_GT(second->credential_generation, first->credential_generation);
  Response late;
  late.status = 401;
  late.credential_generation = first->credential_generation;
  provider->onAuthRejected(late);  // stale: the newer token stays
  ASSERT_NE(tokens->current(), nullptr);
  provider->onAuthRejected();  // without a response: the latest generation encode() used
  EXPECT_EQ(tokens->current(), nullptr);
  EXPECT_FALSE(provider->ready());
}

TEST(WnsPool, OptionsForPerHostPools) {
  WnsConfig c;
  c.connections = 6;
  auto o = WnsProvider::poolOptions(c);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_TRUE(o->host.empty());
  EXPECT_EQ(o->connections, 6u);
  EXPECT_EQ(o->protocol, ConnectionPool::Protocol::kNegotiate);
  EXPECT_NE(o->tls, nullptr);
}

// ---- classify ----

struct ClassifyRow {
  const char* name;
  int status;
  std::vector<Header> headers;
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
  r.headers = row.headers;
  Outcome o = provider->classify(r);
  EXPECT_EQ(toString(o.kind), toString(row.kind));
  EXPECT_EQ(o.azure_outcome, row.azure);
  EXPECT_EQ(o.reason, row.reason);
  EXPECT_EQ(o.http_status, row.status);
  EXPECT_EQ(o.retry_after.count(), row.retry_seconds);
}

Header status(const char* v) { return {"x-wns-status", v, false}; }
Header retryAfter(const char* v) { return {"retry-after", v, false}; }
Header description(const char* v) { return {"x-wns-error-description", v, false}; }

INSTANTIATE_TEST_SUITE_P(
    SpecRows, ClassifyTable,
    ::testing::Values(
        ClassifyRow{"received", 200, {status("received")}, K::kDelivered, "Success", "received", 0},
        ClassifyRow{"received_mixed_case",
                    200,
                    {status("Received")},
                    K::kDelivered,
                    "Success",
                    "received",
                    0},
        ClassifyRow{"no_status", 200, {}, K::kDelivered, "Success", "", 0},
        ClassifyRow{"throttled",
                    200,
                    {status("channelthrottled")},
                    K::kRetryAfter,
                    "Throttled",
                    "channelthrottled",
                    0},
        ClassifyRow{"throttled_retry_after",
                    200,
                    {status("channelthrottled"), retryAfter("30")},
                    K::kRetryAfter,
                    "Throttled",
                    "channelthrottled",
                    30},
        ClassifyRow{"throttled_continue_after",
                    200,
                    {status("channelthrottled"), {"x-wns-continue-after", "45", false}},
                    K::kRetryAfter,
                    "Throttled",
                    "channelthrottled",
                    45},
        ClassifyRow{
            "dropped", 200, {status("dropped")}, K::kPermanentBadRequest, "Dropped", "dropped", 0},
        ClassifyRow{"bad_request",
                    400,
                    {description("Invalid header X-WNS-Type")},
                    K::kPermanentBadRequest,
                    "InvalidNotificationFormat",
                    "Invalid header X-WNS-Type",
                    0},
        ClassifyRow{"unauthorized", 401, {}, K::kRefreshAuth, "InvalidCredentials", "", 0},
        ClassifyRow{"forbidden", 403, {}, K::kConfigError, "InvalidCredentials", "", 0},
        ClassifyRow{"not_found", 404, {}, K::kDropToken, "BadChannel", "", 0},
        ClassifyRow{"method", 405, {}, K::kPermanentBadRequest, "PnsInterfaceError", "", 0},
        ClassifyRow{
            "not_acceptable", 406, {retryAfter("120")}, K::kRetryAfter, "Throttled", "", 120},
        ClassifyRow{"not_acceptable_no_header", 406, {}, K::kRetryAfter, "Throttled", "", 0},
        ClassifyRow{
            "gone", 410, {status("dropped")}, K::kDropToken, "ExpiredChannel", "dropped", 0},
        ClassifyRow{
            "too_large", 413, {}, K::kPermanentBadRequest, "InvalidNotificationSize", "", 0},
        ClassifyRow{"internal", 500, {}, K::kRetryBackoff, "PnsUnavailable", "", 0},
        ClassifyRow{"unavailable_retry_after",
                    503,
                    {retryAfter("9")},
                    K::kRetryAfter,
                    "PnsUnavailable",
                    "",
                    9},
        ClassifyRow{"unavailable_date",
                    503,
                    {retryAfter("Tue, 14 Nov 2023 22:14:20 GMT")},
                    K::kRetryAfter,
                    "PnsUnavailable",
                    "",
                    60},
        ClassifyRow{"unavailable_backoff", 503, {}, K::kRetryBackoff, "PnsUnavailable", "", 0},
        ClassifyRow{"other_4xx", 418, {}, K::kPermanentBadRequest, "UnknownError", "", 0},
        ClassifyRow{"other_5xx", 502, {}, K::kRetryBackoff, "PnsUnavailable", "", 0},
        ClassifyRow{"redirect", 301, {}, K::kRetryBackoff, "UnknownError", "", 0}),
    [](const ::testing::TestParamInfo<ClassifyRow>& info) { return std::string(info.param.name); });

TEST_F(Fixture, LongErrorDescriptionsAreCut) {
  Response r;
  r.status = 400;
  r.headers.push_back(description(std::string(1000, 'd').c_str()));
  EXPECT_EQ(provider->classify(r).reason.size(), 200u);
}

// ---- token requests ----

TEST(WnsTokenRequests, ClientCredentialsForm) {
  WnsConfig c;
  c.package_sid = "ms-app://S-1-15-2-2972962901-2322836549";
  c.secret = "Vex8L9WOFZuj95euaLrvSH7XyoDhLJc7+&=x y";
  auto r = makeWnsTokenRequests(c)();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->url, "https://login.live.com/accesstoken.srf");
  EXPECT_EQ(r->content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(r->body,
            "grant_type=client_credentials"
            "&client_id=ms-app%3A%2F%2FS-1-15-2-2972962901-2322836549"
            "&client_secret=Vex8L9WOFZuj95euaLrvSH7XyoDhLJc7%2B%26%3Dx%20y"
            "&scope=notify.windows.com");

  c.token_url = "https://127.0.0.1:5555/accesstoken.srf";
  c.scope = "s.notify.live.net";
  auto local = makeWnsTokenRequests(c)();
  ASSERT_TRUE(local);
  EXPECT_EQ(local->url, "https://127.0.0.1:5555/accesstoken.srf");
  EXPECT_NE(local->body.find("&scope=s.notify.live.net"), std::string::npos);
}

TEST(WnsTokenRequests, MissingCredentials) {
  WnsConfig c;
  c.secret = "x";
  auto r = makeWnsTokenRequests(c)();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("package_sid"), std::string::npos);
  c.package_sid = "ms-app://s";
  c.secret.clear();
  auto r2 = makeWnsTokenRequests(c)();
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("secret"), std::string::npos);
}

TEST(WnsTokenRequests, FormUrlEncode) {
  EXPECT_EQ(formUrlEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(formUrlEncode(" +&=/:%\xff"), "%20%2B%26%3D%2F%3A%25%FF");
}

}  // namespace
}  // namespace pushhub::providers::wns
