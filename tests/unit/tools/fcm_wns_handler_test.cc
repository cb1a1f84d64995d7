// Table tests of pns-mock's FCM and WNS request checks (fcm_handler.h, wns_handler.h) and of the
// access tokens they share (access_token.h): every rejection and the success paths, with no
// sockets and a fixed clock.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>
#include <random>

#include "providers/common/jwt.h"
#include "tools/pns-mock/access_token.h"
#include "tools/pns-mock/fcm_handler.h"
#include "tools/pns-mock/wns_handler.h"

namespace pushhub::mock {
namespace {

namespace json = boost::json;

constexpr int64_t kNowS = 1'700'000'000;
constexpr int64_t kNowMs = kNowS * 1000;
constexpr const char* kEmail = "pusher@proj-1.iam.gserviceaccount.com";
constexpr const char* kAuthority = "127.0.0.1:4443";
constexpr const char* kAudience = "https://127.0.0.1:4443/token";
constexpr const char* kScope = "https://www.googleapis.com/auth/firebase.messaging";

std::shared_ptr<EVP_PKEY> rsaKey() {
  return std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(2048), EVP_PKEY_free);
}

// One RSA key per test binary: generating keys is slow.
EVP_PKEY* accountKey() {
  static std::shared_ptr<EVP_PKEY> key = rsaKey();
  return key.get();
}
EVP_PKEY* otherKey() {
  static std::shared_ptr<EVP_PKEY> key = rsaKey();
  return key.get();
}

std::string assertion(json::object claims, EVP_PKEY* key = accountKey(),
                      const std::string& header = R"({"alg":"RS256","typ":"JWT"})") {
  auto jwt = providers::signJwtRs256(key, header, json::serialize(claims));
  EXPECT_TRUE(jwt.has_value());
  return jwt ? *jwt : std::string();
}

json::object goodClaims() {
  return {{"iss", kEmail},
          {"scope", kScope},
          {"aud", kAudience},
          {"iat", kNowS - 10},
          {"exp", kNowS - 10 + 3600}};
}

H2Request tokenRequest(const std::string& body,
                       const std::string& content_type = "application/x-www-form-urlencoded") {
  H2Request r;
  r.method = "POST";
  r.path = "/token";
  r.authority = kAuthority;
  r.headers.emplace_back("content-type", content_type);
  r.body = body;
  return r;
}

std::string grantBody(const std::string& jwt) {
  return "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + jwt;
}

class FcmTest : public ::testing::Test {
 protected:
  FcmTest() {
    rules_.minter = std::make_shared<AccessTokenMinter>("ya29.m");
    rules_.accounts.push_back(
        FcmAccount{kEmail, fcmProjectOfEmail(kEmail),
                   std::shared_ptr<EVP_PKEY>(accountKey(), [](EVP_PKEY*) {})});
    rules_.accounts.push_back(
        FcmAccount{"ops@example.com", "", std::shared_ptr<EVP_PKEY>(otherKey(), [](EVP_PKEY*) {})});
    rules_.projects = {"proj-1", "proj-2"};
    token_ = rules_.minter->issue(0, kNowMs + 3600'000);
  }

  H2Request send(const std::string& body, const std::string& project = "proj-1") {
    H2Request r;
    r.method = "POST";
    r.path = "/v1/projects/" + project + "/messages:send";
    r.authority = kAuthority;
    r.headers.emplace_back("authorization", "Bearer " + token_);
    r.headers.emplace_back("content-type", "application/json");
    r.body = body;
    return r;
  }

  FcmVerdict check(const H2Request& r, uint64_t revoked_below = 0, int64_t now_ms = kNowMs) {
    BearerCache bearer;
    FcmVerdict v = checkFcmSend(r, rules_, bearer, revoked_below, now_ms);
    applyFcmTokenRules(v, rules_);
    return v;
  }

  FcmRules rules_;
  std::string token_;
};

TEST_F(FcmTest, TokenEndpointAcceptsAGoodAssertion) {
  OAuthVerdict v =
      checkFcmTokenRequest(tokenRequest(grantBody(assertion(goodClaims()))), rules_, kNowS);
  EXPECT_EQ(v.status, 200) << v.description;
  EXPECT_EQ(v.account, 0u);
  // cloud-platform works too, in a space-separated list.
  json::object c = goodClaims();
  c["scope"] = "openid https://www.googleapis.com/auth/cloud-platform";
  EXPECT_EQ(checkFcmTokenRequest(tokenRequest(grantBody(assertion(c))), rules_, kNowS).status, 200);

  H2Response resp;
  buildOAuthSuccess("ya29.x", 3600, "Bearer", resp);
  json::object body = json::parse(resp.body).as_object();
  EXPECT_EQ(body.at("access_token").as_string(), "ya29.x");
  EXPECT_EQ(body.at("expires_in").as_int64(), 3600);
  EXPECT_EQ(body.at("token_type").as_string(), "Bearer");
}

TEST_F(FcmTest, TokenEndpointRejections) {
  auto claimsWith = [](std::string_view key, json::value v) {
    json::object c = goodClaims();
    if (v.is_null()) {
      c.erase(key);
    } else {
      c[key] = std::move(v);
    }
    return c;
  };
  struct Case {
    std::string name;
    H2Request request;
    int status;
    std::string error;
    std::string description_part;
  };
  std::vector<Case> cases = {
      {"wrong signature", tokenRequest(grantBody(assertion(goodClaims(), otherKey()))), 400,
       "invalid_grant", "Invalid JWT Signature."},
      {"ES256 header",
       tokenRequest(grantBody(assertion(goodClaims(), accountKey(), R"({"alg":"ES256"})"))), 400,
       "invalid_grant", "Signature"},
      {"not a JWT", tokenRequest(grantBody("abc")), 400, "invalid_grant", "Signature"},
      {"unknown iss", tokenRequest(grantBody(assertion(claimsWith("iss", "x@y.z")))), 401,
       "invalid_client", "not found"},
      {"wrong aud",
       tokenRequest(grantBody(assertion(claimsWith("aud", "https://oauth2.googleapis.com/token")))),
       400, "invalid_grant", "audience"},
      {"no scope", tokenRequest(grantBody(assertion(claimsWith("scope", nullptr)))), 400,
       "invalid_scope", "scope"},
      {"wrong scope",
       tokenRequest(grantBody(
           assertion(claimsWith("scope", "https://www.googleapis.com/auth/devstorage.read_only")))),
       400, "invalid_scope", "scope"},
      {"expired", tokenRequest(grantBody(assertion(claimsWith("exp", kNowS - 1)))), 400,
       "invalid_grant", "short-lived"},
      {"too long", tokenRequest(grantBody(assertion(claimsWith("exp", kNowS - 10 + 3601)))), 400,
       "invalid_grant", "short-lived"},
      {"iat in the future", tokenRequest(grantBody(assertion([] {
         json::object c = goodClaims();
         c["iat"] = kNowS + 120;
         c["exp"] = kNowS + 600;
         return c;
       }()))),
       400, "invalid_grant", "short-lived"},
      {"no exp", tokenRequest(grantBody(assertion(claimsWith("exp", nullptr)))), 400,
       "invalid_grant", "short-lived"},
      {"grant type",
       tokenRequest("grant_type=client_credentials&assertion=" + assertion(goodClaims())), 400,
       "unsupported_grant_type", "client_credentials"},
      {"no assertion",
       tokenRequest("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"), 400,
       "invalid_request", "assertion"},
      {"json body", tokenRequest(grantBody(assertion(goodClaims())), "application/json"), 400,
       "invalid_request", "Content-Type"},
  };
  for (const Case& c : cases) {
    OAuthVerdict v = checkFcmTokenRequest(c.request, rules_, kNowS);
    EXPECT_EQ(v.status, c.status) << c.name;
    EXPECT_EQ(v.error, c.error) << c.name;
    EXPECT_NE(v.description.find(c.description_part), std::string::npos)
        << c.name << ": " << v.description;
    H2Response resp;
    buildOAuthError(v, resp);
    json::object body = json::parse(resp.body).as_object();
    EXPECT_EQ(body.at("error").as_string(), c.error) << c.name;
  }
  // A 60 s skew on iat is tolerated.
  json::object skewed = goodClaims();
  skewed["iat"] = kNowS + 50;
  skewed["exp"] = kNowS + 600;
  EXPECT_EQ(checkFcmTokenRequest(tokenRequest(grantBody(assertion(skewed))), rules_, kNowS).status,
            200);
}

TEST_F(FcmTest, SendSucceeds) {
  // The verdict's project is a view into the request: keep the request alive.
  H2Request request = send(R"({"message":{"token":"abc:DEF_123-x.y","data":{"k":"v"},)"
                           R"("notification":{"title":"t","body":"b"},)"
                           R"("android":{"priority":"HIGH","ttl":"3600.5s"}}})");
  FcmVerdict v = check(request);
  ASSERT_EQ(v.status, 200) << v.message;
  EXPECT_EQ(v.project, "proj-1");
  EXPECT_EQ(v.registration_token, "abc:DEF_123-x.y");
  H2Response resp;
  buildFcmResponse(v, "0:1%ab", 1, resp);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, R"({"name":"projects/proj-1/messages/0:1%ab"})");

  EXPECT_EQ(check(send(R"({"message":{"topic":"/topics/news"}})")).status, 200);
  EXPECT_EQ(check(send(R"({"message":{"condition":"'a' in topics"}})")).status, 200);
  EXPECT_TRUE(check(send(R"({"validate_only":true,"message":{"token":"t"}})")).validate_only);
}

TEST_F(FcmTest, AuthenticationAndProject) {
  H2Request r = send(R"({"message":{"token":"t"}})");
  r.headers[0].second = "Bearer ya29.not-ours";
  FcmVerdict v = check(r);
  EXPECT_EQ(v.status, 401);
  EXPECT_EQ(v.reason(), "UNAUTHENTICATED");
  H2Response resp;
  buildFcmResponse(v, "", 1, resp);
  bool www = false;
  for (const auto& [n, value] : resp.headers) {
    www = www || (n == "www-authenticate" && value.find("invalid_token") != std::string::npos);
  }
  EXPECT_TRUE(www);
  json::object err = json::parse(resp.body).at("error").as_object();
  EXPECT_EQ(err.at("code").as_int64(), 401);
  EXPECT_EQ(err.at("status").as_string(), "UNAUTHENTICATED");

  r.headers.erase(r.headers.begin());
  EXPECT_EQ(check(r).status, 401);
  // Expired, and revoked by /_mock/expire-tokens.
  EXPECT_EQ(check(send(R"({"message":{"token":"t"}})"), 0, kNowMs + 3600'000).status, 401);
  EXPECT_EQ(check(send(R"({"message":{"token":"t"}})"), rules_.minter->nextSerial()).status, 401);
  // A tampered token.
  std::string tampered = token_;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  H2Request t = send(R"({"message":{"token":"t"}})");
  t.headers[0].second = "Bearer " + tampered;
  EXPECT_EQ(check(t).status, 401);

  FcmVerdict unknown = check(send(R"({"message":{"token":"t"}})", "proj-9"));
  EXPECT_EQ(unknown.status, 403);
  EXPECT_EQ(unknown.reason(), "PERMISSION_DENIED");
  // proj-2 is served, but this account belongs to proj-1.
  EXPECT_EQ(check(send(R"({"message":{"token":"t"}})", "proj-2")).status, 403);
  // An account whose email names no project may send to any served project.
  token_ = rules_.minter->issue(1, kNowMs + 1000);
  EXPECT_EQ(check(send(R"({"message":{"token":"t"}})", "proj-2")).status, 200);

  H2Request get = send("");
  get.method = "GET";
  EXPECT_EQ(check(get).status, 404);
  H2Request path = send(R"({"message":{"token":"t"}})");
  path.path = "/v1/projects/proj-1/messages:sendAll";
  EXPECT_EQ(check(path).status, 404);
}

TEST_F(FcmTest, BodyRejections) {
  std::string big(4097, 'x');
  struct Case {
    std::string body;
    std::string error_code;  // "" = no FcmError detail
    std::string message_part;
  };
  std::vector<Case> cases = {
      {"not json", "", "Invalid JSON payload"},
      {R"({"message":{"token":"t"},"extra":1})", "", "Unknown name \"extra\""},
      {R"({"message":{"token":"t","colour":"red"}})", "", "Unknown name \"colour\" at 'message'"},
      {R"({"notmessage":{}})", "", "Unknown name"},
      {R"({})", "INVALID_ARGUMENT", "Message must be set"},
      {R"({"message":{}})", "INVALID_ARGUMENT", "Recipient of the message is not set."},
      {R"({"message":{"token":"t","topic":"x"}})", "", "Oneof field 'target' is already set"},
      {R"({"message":{"token":"t","data":{"n":1}}})", "", "message.data[0].value"},
      {R"({"message":{"token":"t","data":{"from":"x"}}})", "INVALID_ARGUMENT", "from"},
      {R"({"message":{"token":"t","data":{"google.x":"y"}}})", "INVALID_ARGUMENT", "google.x"},
      {R"({"message":{"token":"t","data":{"k":")" + big + R"("}}})", "INVALID_ARGUMENT", "too big"},
      {R"({"message":{"topic":"t","data":{"k":")" + std::string(2100, 'y') + R"("}}})",
       "INVALID_ARGUMENT", "too big"},
      {R"({"message":{"token":"has space"}})", "INVALID_ARGUMENT",
       "The registration token is not a valid FCM registration token"},
      {R"({"message":{"token":""}})", "INVALID_ARGUMENT", "not a valid FCM registration token"},
      {R"({"message":{"token":")" + std::string(4097, 'a') + R"("}})", "INVALID_ARGUMENT",
       "not a valid FCM registration token"},
      {R"({"message":{"token":5}})", "", "message.token"},
      {R"({"message":{"topic":"bad topic"}})", "INVALID_ARGUMENT", "topic"},
      {R"({"message":{"token":"t","notification":{"title":1}}})", "", "message.notification.title"},
      {R"({"message":{"token":"t","notification":{"subtitle":"x"}}})", "", "Unknown name"},
      {R"({"message":{"token":"t","android":{"priority":"high"}}})", "", "android.priority"},
      {R"({"message":{"token":"t","android":{"ttl":"3600"}}})", "", "android.ttl"},
      {R"({"message":{"token":"t","android":{"ttl":"2419201s"}}})", "INVALID_ARGUMENT", "4 weeks"},
      {R"({"validate_only":"yes","message":{"token":"t"}})", "", "validate_only"},
  };
  for (const Case& c : cases) {
    FcmVerdict v = check(send(c.body));
    EXPECT_EQ(v.status, 400) << c.body.substr(0, 80);
    EXPECT_EQ(v.status_name, "INVALID_ARGUMENT") << c.body.substr(0, 80);
    EXPECT_EQ(v.error_code, c.error_code) << c.body.substr(0, 80);
    EXPECT_NE(v.message.find(c.message_part), std::string::npos)
        << c.body.substr(0, 80) << " -> " << v.message;
    H2Response resp;
    buildFcmResponse(v, "", 1, resp);
    json::object err = json::parse(resp.body).at("error").as_object();
    EXPECT_EQ(err.at("status").as_string(), "INVALID_ARGUMENT");
    if (!c.error_code.empty()) {
      const json::array& details = err.at("details").as_array();
      EXPECT_EQ(details[0].at("@type").as_string(),
                "type.googleapis.com/google.firebase.fcm.v1.FcmError");
      EXPECT_EQ(details[0].at("errorCode").as_string(), c.error_code);
    }
  }
  // 4096 bytes of keys + values is still fine.
  std::string fits(4095, 'x');
  EXPECT_EQ(check(send(R"({"message":{"token":"t","data":{"k":")" + fits + R"("}}})")).status, 200);
}

// The fast body check (one pass, no DOM) may only accept what the full check accepts, with the
// same registration token and validate_only; it must accept the usual bodies (or it saves
// nothing). Everything it is unsure of goes to the full check.
struct BodyVerdicts {
  bool fast = false;
  FcmVerdict fast_verdict;
  FcmVerdict full;
};

BodyVerdicts checkBothWays(const std::string& body) {
  BodyVerdicts out;
  out.fast = acceptFcmBodyFast(body, out.fast_verdict);
  H2Request r;
  r.body = body;
  checkFcmBodyFull(r, out.full);
  return out;
}

void expectFastAgrees(const std::string& body) {
  BodyVerdicts b = checkBothWays(body);
  if (b.fast) {
    EXPECT_EQ(b.full.status, 200) << "fast path accepted what the full check refuses: " << body
                                  << " -> " << b.full.message;
    EXPECT_EQ(b.fast_verdict.registration_token, b.full.registration_token) << body;
    EXPECT_EQ(b.fast_verdict.validate_only, b.full.validate_only) << body;
  } else {
    // Undecided leaves nothing behind.
    EXPECT_EQ(b.fast_verdict.registration_token, "") << body;
    EXPECT_FALSE(b.fast_verdict.validate_only) << body;
  }
}

TEST(FcmBodyFastPathTest, AcceptsTheUsualBodies) {
  std::string token = "f" + std::string(152, 'a');
  std::vector<std::string> usual = {
      R"({"message":{"token":")" + token +
          R"(","notification":{"title":"pushhub","body":"Hello tag"}}})",
      R"({"message":{"token":"abc:DEF_123-x.y","data":{"k":"v","n":"1"},)"
      R"("notification":{"title":"t","body":"b","image":"https://x/y.png"},)"
      R"("android":{"priority":"HIGH","ttl":"3600.5s","collapse_key":"c",)"
      R"("notification":{"channel_id":"x","tag":null}},)"
      R"("apns":{"headers":{"apns-priority":"10"},"payload":{"aps":{"badge":1}}},)"
      R"("webpush":{},"fcm_options":{"analytics_label":"l"},"name":{"any":[1,2.5,true]}}})",
      R"({"validate_only":true,"message":{"topic":"/topics/news"}})",
      R"({"validateOnly":false,"message":{"condition":"'a' in topics"}})",
      // Escapes where only the length counts.
      R"({"message":{"token":"t","notification":{"title":"caf\u00e9 \"q\""},"data":{"k":"\n"}}})",
      " \n{ \"message\" : { \"token\" : \"t\" } } \t",
  };
  for (const std::string& body : usual) {
    BodyVerdicts b = checkBothWays(body);
    EXPECT_TRUE(b.fast) << body;
    EXPECT_EQ(b.full.status, 200) << body << " -> " << b.full.message;
    EXPECT_EQ(b.fast_verdict.registration_token, b.full.registration_token) << body;
    EXPECT_EQ(b.fast_verdict.validate_only, b.full.validate_only) << body;
  }
  EXPECT_EQ(checkBothWays(usual[0]).fast_verdict.registration_token, token);
  EXPECT_TRUE(checkBothWays(usual[2]).fast_verdict.validate_only);
}

TEST(FcmBodyFastPathTest, LeavesEveryDoubtToTheFullCheck) {
  std::string big(4097, 'x');
  const std::vector<std::string> refused = {
      "",
      "not json",
      "[]",
      "null",
      R"("message")",
      R"({})",
      R"({"message":null})",
      R"({"message":[]})",
      R"({"message":{}})",
      R"({"message":{"token":"t"},"extra":1})",
      R"({"message":{"token":"t","colour":"red"}})",
      R"({"message":{"token":"t","topic":"x"}})",
      R"({"message":{"token":"t","data":{"n":1}}})",
      R"({"message":{"token":"t","data":[]}})",
      R"({"message":{"token":"t","data":{"from":"x"}}})",
      R"({"message":{"token":"t","data":{"gcm":"x"}}})",
      R"({"message":{"token":"t","data":{"google.x":"y"}}})",
      R"({"message":{"token":"t","data":{"k":")" + big + R"("}}})",
      R"({"message":{"topic":"t","data":{"k":")" + std::string(2100, 'y') + R"("}}})",
      R"({"message":{"token":"has space"}})",
      R"({"message":{"token":""}})",
      R"({"message":{"token":")" + std::string(4097, 'a') + R"("}})",
      R"({"message":{"token":5}})",
      R"({"message":{"token":null}})",
      R"({"message":{"topic":"bad topic"}})",
      R"({"message":{"topic":"/topics/"}})",
      R"({"message":{"condition":""}})",
      R"({"message":{"token":"t","notification":{"title":1}}})",
      R"({"message":{"token":"t","notification":{"subtitle":"x"}}})",
      R"({"message":{"token":"t","notification":null}})",
      R"({"message":{"token":"t","android":{"priority":"high"}}})",
      R"({"message":{"token":"t","android":{"ttl":"3600"}}})",
      R"({"message":{"token":"t","android":{"ttl":"2419201s"}}})",
      R"({"message":{"token":"t","android":[]}})",
      R"({"message":{"token":"t","apns":null}})",
      R"({"message":{"token":"t","webpush":"x"}})",
      R"({"message":{"token":"t","fcmOptions":1}})",
      R"({"validate_only":"yes","message":{"token":"t"}})",
      R"({"validate_only":null,"message":{"token":"t"}})",
      R"({"message":{"token":"t"}} x)",
      R"({"message":{"token":"t"},})",
      R"({"message":{"token":"t"}/*c*/})",
      "{\"message\":{\"token\":\"t\xff\"}}",
      // Too deep, inside an object nobody checks.
      R"({"message":{"token":"t","apns":)" + std::string(40, '[') + std::string(40, ']') + "}}",
  };
  for (const std::string& body : refused) {
    BodyVerdicts b = checkBothWays(body);
    EXPECT_NE(b.full.status, 200) << body;
    EXPECT_FALSE(b.fast) << body;
    expectFastAgrees(body);
  }
  // Accepted by the full check, but not plainly: duplicates (the DOM keeps one of them) and
  // escaped keys or targets.
  const std::vector<std::string> doubtful = {
      R"({"message":{"token":"a","token":"b"}})",
      R"({"message":{"token":"a"},"message":{"token":"b"}})",
      R"({"validate_only":true,"validateOnly":false,"message":{"token":"t"}})",
      R"({"message":{"tok\u0065n":"t"}})",
      R"({"message":{"token":"t\u0041"}})",
      R"({"message":{"token":"t","notification":{"title":"a","title":"b"}}})",
      R"({"message":{"token":"t","android":{"ttl":"1s","ttl":"2s"}}})",
  };
  for (const std::string& body : doubtful) {
    EXPECT_EQ(checkBothWays(body).full.status, 200) << body;
    expectFastAgrees(body);
  }
}

// Every one-byte change (replace, delete, insert) of some valid bodies: whatever the fast path
// accepts, the full check accepts the same way.
TEST(FcmBodyFastPathTest, MutationsNeverFoolTheFastPath) {
  const std::vector<std::string> seeds = {
      R"({"message":{"token":"f0a1","notification":{"title":"t","body":"b"}}})",
      R"({"validate_only":true,"message":{"topic":"/topics/a","data":{"k":"v"}}})",
      R"({"message":{"condition":"c","android":{"priority":"NORMAL","ttl":"9.5s","x":[1]},)"
      R"("apns":{"a":{}},"name":"n"}})",
  };
  const std::string alphabet = "{}[]\":,\\ 0afntu.-/sx\x01\xc3";
  std::mt19937 rng(42);
  size_t fast_accepted = 0;
  for (const std::string& seed : seeds) {
    for (size_t i = 0; i <= seed.size(); ++i) {
      for (int k = 0; k < 6; ++k) {
        char c = alphabet[rng() % alphabet.size()];
        std::string replaced = seed;
        std::string inserted = seed;
        inserted.insert(inserted.begin() + static_cast<ptrdiff_t>(i), c);
        expectFastAgrees(inserted);
        if (i < seed.size()) {
          replaced[i] = c;
          expectFastAgrees(replaced);
        }
      }
      if (i < seed.size()) {
        std::string deleted = seed;
        deleted.erase(i, 1);
        expectFastAgrees(deleted);
        fast_accepted += checkBothWays(deleted).fast ? 1 : 0;
      }
    }
  }
  EXPECT_GT(fast_accepted, 0u);
}

TEST_F(FcmTest, AReusedVerdictStartsAfresh) {
  FcmVerdict v;
  BearerCache bearer;
  checkFcmSend(send(R"({"validate_only":true,"message":{"token":"abc"}})"), rules_, bearer, 0,
               kNowMs, v);
  ASSERT_EQ(v.status, 200);
  EXPECT_TRUE(v.validate_only);
  EXPECT_EQ(v.registration_token, "abc");
  checkFcmSend(send(R"({"message":{"token":"has space"}})"), rules_, bearer, 0, kNowMs, v);
  EXPECT_EQ(v.status, 400);
  EXPECT_EQ(v.field, "message.token");
  EXPECT_FALSE(v.validate_only);
  EXPECT_EQ(v.registration_token, "");
  checkFcmSend(send(R"({"message":{"topic":"news"}})"), rules_, bearer, 0, kNowMs, v);
  EXPECT_EQ(v.status, 200);
  EXPECT_EQ(v.status_name, "");
  EXPECT_EQ(v.error_code, "");
  EXPECT_EQ(v.message, "");
  EXPECT_EQ(v.field, "");
  EXPECT_EQ(v.registration_token, "");
  H2Request unauthenticated = send(R"({"message":{"token":"abc"}})");
  unauthenticated.headers[0].second = "Bearer nope";
  checkFcmSend(unauthenticated, rules_, bearer, 0, kNowMs, v);
  EXPECT_EQ(v.status, 401);
  EXPECT_TRUE(v.www_authenticate);
  H2Request good = send(R"({"message":{"token":"abc"}})");  // v.project is a view into it
  checkFcmSend(good, rules_, bearer, 0, kNowMs, v);
  EXPECT_EQ(v.status, 200);
  EXPECT_FALSE(v.www_authenticate);
  EXPECT_EQ(v.project, "proj-1");
}

TEST(FcmTokenTest, Characters) {
  for (int c = 0; c < 256; ++c) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == ':' || c == '.' || c == '-';
    std::string token = "ab" + std::string(1, static_cast<char>(c)) + "cd";
    EXPECT_EQ(isFcmToken(token), allowed) << c;
  }
  EXPECT_FALSE(isFcmToken(""));
  EXPECT_TRUE(isFcmToken(std::string(kFcmMaxTokenLength, 'a')));
  EXPECT_FALSE(isFcmToken(std::string(kFcmMaxTokenLength + 1, 'a')));
}

TEST_F(FcmTest, TokenRulesAndThrottling) {
  FcmVerdict dead = check(send(R"({"message":{"token":"dead-123"}})"));
  EXPECT_EQ(dead.status, 404);
  EXPECT_EQ(dead.status_name, "NOT_FOUND");
  EXPECT_EQ(dead.reason(), "UNREGISTERED");
  EXPECT_EQ(dead.message, "Requested entity was not found.");

  FcmVerdict bogus = check(send(R"({"message":{"token":"bogus-1"}})"));
  EXPECT_EQ(bogus.status, 400);
  EXPECT_EQ(bogus.reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(bogus.field, "message.token");

  rules_.dead_tokens.insert("listed-dead");
  rules_.bad_tokens.insert("listed-bad");
  EXPECT_EQ(check(send(R"({"message":{"token":"listed-dead"}})")).status, 404);
  EXPECT_EQ(check(send(R"({"message":{"token":"listed-bad"}})")).status, 400);
  rules_.dead_prefix.clear();
  EXPECT_EQ(check(send(R"({"message":{"token":"dead-123"}})")).status, 200);

  FcmVerdict throttled = check(send(R"({"message":{"token":"t"}})"));
  throttleFcm(throttled);
  H2Response resp;
  buildFcmResponse(throttled, "", 7, resp);
  EXPECT_EQ(resp.status, 429);
  EXPECT_EQ(throttled.reason(), "QUOTA_EXCEEDED");
  bool retry_after = false;
  for (const auto& [n, value] : resp.headers) {
    retry_after = retry_after || (n == "retry-after" && value == "7");
  }
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(json::parse(resp.body).at("error").at("details").at(0).at("errorCode").as_string(),
            "QUOTA_EXCEEDED");
}

TEST(AccessTokenTest, MintsAndChecks) {
  AccessTokenMinter a("ya29.m");
  AccessTokenMinter b("ya29.m");
  std::string t = a.issue(3, 1234);
  auto claims = a.check(t);
  ASSERT_TRUE(claims.has_value());
  EXPECT_EQ(claims->account, 3u);
  EXPECT_EQ(claims->expires_ms, 1234);
  EXPECT_FALSE(b.check(t).has_value());  // another secret
  EXPECT_FALSE(a.check(t + "x").has_value());
  EXPECT_LT(claims->serial, a.nextSerial());

  BearerCache cache;
  uint32_t account = 0;
  std::string header = "bearer " + t;
  EXPECT_EQ(checkBearer(&header, a, 0, 1000, cache, account), BearerStatus::kOk);
  EXPECT_EQ(account, 3u);
  EXPECT_EQ(checkBearer(&header, a, 0, 1234, cache, account), BearerStatus::kExpired);
  EXPECT_EQ(checkBearer(&header, a, a.nextSerial(), 1000, cache, account), BearerStatus::kRevoked);
  std::string basic = "Basic abc";
  EXPECT_EQ(checkBearer(&basic, a, 0, 1000, cache, account), BearerStatus::kMissing);
  EXPECT_EQ(checkBearer(nullptr, a, 0, 1000, cache, account), BearerStatus::kMissing);
}

TEST(FormTest, Parses) {
  auto f = parseForm("a=1+2&b=%3a%2F&c&=x");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(*formField(*f, "a"), "1 2");
  EXPECT_EQ(*formField(*f, "b"), ":/");
  EXPECT_EQ(*formField(*f, "c"), "");
  EXPECT_EQ(formField(*f, "d"), nullptr);
  EXPECT_FALSE(parseForm("a=%zz").has_value());
  EXPECT_FALSE(parseForm("a=%2").has_value());
  std::string ct = "Text/XML; charset=utf-8";
  EXPECT_TRUE(mediaTypeIs(&ct, "text/xml"));
  EXPECT_FALSE(mediaTypeIs(&ct, "application/xml"));
}

class WnsTest : public ::testing::Test {
 protected:
  WnsTest() {
    rules_.minter = std::make_shared<AccessTokenMinter>("EwA");
    rules_.apps.push_back(WnsApp{"ms-app://S-1-15-2-1", "s3cret"});
    token_ = rules_.minter->issue(0, kNowMs + 86400'000);
  }

  H2Request notification(const std::string& channel = "abc123",
                         const std::string& type = "wns/toast") {
    H2Request r;
    r.method = "POST";
    r.path = "/?token=" + channel;
    r.http1 = true;
    r.headers.emplace_back("authorization", "Bearer " + token_);
    r.headers.emplace_back("x-wns-type", type);
    r.headers.emplace_back("content-type",
                           type == "wns/raw" ? "application/octet-stream" : "text/xml");
    r.body =
        "<toast><visual><binding template=\"ToastGeneric\"><text>hi</text></binding>"
        "</visual></toast>";
    return r;
  }

  WnsVerdict check(const H2Request& r, uint64_t revoked_below = 0) {
    BearerCache bearer;
    WnsVerdict v = checkWnsSend(r, rules_, bearer, revoked_below, kNowMs);
    applyWnsChannelRules(v, rules_);
    return v;
  }

  static const std::string* header(const H2Response& r, std::string_view name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) {
        return &v;
      }
    }
    return nullptr;
  }

  WnsRules rules_;
  std::string token_;
};

TEST_F(WnsTest, TokenEndpoint) {
  auto req = [](const std::string& body) {
    H2Request r = tokenRequest(body);
    r.path = "/accesstoken.srf";
    return r;
  };
  const std::string good =
      "grant_type=client_credentials&client_id=ms-app%3a%2f%2fS-1-15-2-1&client_secret=s3cret"
      "&scope=notify.windows.com";
  EXPECT_EQ(checkWnsTokenRequest(req(good), rules_).status, 200);
  OAuthVerdict wrong = checkWnsTokenRequest(
      req("grant_type=client_credentials&client_id=ms-app%3a%2f%2fS-1-15-2-1&client_secret=no"
          "&scope=notify.windows.com"),
      rules_);
  EXPECT_EQ(wrong.status, 400);
  EXPECT_EQ(wrong.error, "invalid_client");
  EXPECT_EQ(
      checkWnsTokenRequest(req("grant_type=client_credentials&client_id=ms-app%3a%2f%2fS-1-15-2-1"
                               "&client_secret=s3cret&scope=wns.windows.com"),
                           rules_)
          .error,
      "invalid_scope");
  EXPECT_EQ(
      checkWnsTokenRequest(req("grant_type=password&client_id=x&client_secret=y"), rules_).error,
      "unsupported_grant_type");
  H2Request json_body = req(good);
  json_body.headers[0].second = "application/json";
  EXPECT_EQ(checkWnsTokenRequest(json_body, rules_).error, "invalid_request");
}

TEST_F(WnsTest, NotificationSucceeds) {
  H2Request r = notification();
  r.headers.emplace_back("x-wns-requestforstatus", "true");
  r.headers.emplace_back("x-wns-priority", "2");
  r.headers.emplace_back("x-wns-tag", "Tag1");
  r.headers.emplace_back("x-wns-ttl", "60");
  r.headers.emplace_back("ms-cv", "abc.1");
  WnsVerdict v = check(r);
  ASSERT_EQ(v.status, 200) << v.description;
  EXPECT_EQ(v.channel_token, "abc123");
  H2Response resp;
  buildWnsResponse(v, r, "0123456789ABCDEF", 1, resp);
  EXPECT_EQ(resp.status, 200);
  ASSERT_NE(header(resp, "x-wns-status"), nullptr);
  EXPECT_EQ(*header(resp, "x-wns-status"), "received");
  EXPECT_EQ(*header(resp, "x-wns-deviceconnectionstatus"), "connected");
  EXPECT_EQ(*header(resp, "x-wns-msg-id"), "0123456789ABCDEF");
  EXPECT_EQ(*header(resp, "ms-cv"), "abc.1");

  H2Request raw = notification("w1", "wns/raw");
  raw.path = "/w/?token=w1";
  raw.body = std::string(5000, '\x01');
  WnsVerdict rv = check(raw);
  EXPECT_EQ(rv.status, 200) << rv.description;
  EXPECT_EQ(rv.channel_token, "w1");
  H2Response plain;
  buildWnsResponse(rv, raw, "1", 1, plain);
  EXPECT_EQ(header(plain, "x-wns-deviceconnectionstatus"), nullptr);
}

TEST_F(WnsTest, Rejections) {
  struct Case {
    std::string name;
    std::function<void(H2Request&)> change;
    int status;
  };
  auto set = [](std::string name, std::string value) {
    return [name, value](H2Request& r) {
      for (auto& h : r.headers) {
        if (h.first == name) {
          h.second = value;
          return;
        }
      }
      r.headers.emplace_back(name, value);
    };
  };
  auto remove = [](std::string name) {
    return [name](H2Request& r) {
      std::erase_if(r.headers, [&](const auto& h) { return h.first == name; });
    };
  };
  std::vector<Case> cases = {
      {"GET", [](H2Request& r) { r.method = "GET"; }, 405},
      {"DELETE", [](H2Request& r) { r.method = "DELETE"; }, 405},
      {"no channel", [](H2Request& r) { r.path = "/"; }, 404},
      {"other path", [](H2Request& r) { r.path = "/x/?token=abc"; }, 404},
      {"no auth", remove("authorization"), 401},
      {"bad auth", set("authorization", "Bearer EwAnope"), 401},
      {"no type", remove("x-wns-type"), 400},
      {"bad type", set("x-wns-type", "wns/popup"), 400},
      {"no content type", remove("content-type"), 400},
      {"toast as octets", set("content-type", "application/octet-stream"), 400},
      {"chunked", [](H2Request& r) { r.chunked = true; }, 400},
      {"cache policy", set("x-wns-cache-policy", "always"), 400},
      {"request for status", set("x-wns-requestforstatus", "yes"), 400},
      {"tag too long", set("x-wns-tag", std::string(17, 'a')), 400},
      {"tag not alnum", set("x-wns-tag", "a-b"), 400},
      {"group", set("x-wns-group", ""), 400},
      {"ttl", set("x-wns-ttl", "-1"), 400},
      {"suppress popup", set("x-wns-suppresspopup", "1"), 400},
      {"priority", set("x-wns-priority", "0"), 400},
      {"match on POST", set("x-wns-match", "type:wns/toast;all"), 400},
      {"repeated type", [](H2Request& r) { r.headers.emplace_back("x-wns-type", "wns/toast"); },
       400},
      {"too big", [](H2Request& r) { r.body.assign(5001, 'x'); }, 413},
      {"expired channel", [](H2Request& r) { r.path = "/?token=expired-1"; }, 410},
      {"unknown channel", [](H2Request& r) { r.path = "/?token=unknown-1"; }, 404},
  };
  for (const Case& c : cases) {
    H2Request r = notification();
    c.change(r);
    WnsVerdict v = check(r);
    EXPECT_EQ(v.status, c.status) << c.name << ": " << v.description;
    EXPECT_EQ(v.reason(), std::to_string(c.status)) << c.name;
    H2Response resp;
    buildWnsResponse(v, r, "1", 1, resp);
    EXPECT_NE(header(resp, "x-wns-error-description"), nullptr) << c.name;
    EXPECT_EQ(header(resp, "x-wns-status"), nullptr) << c.name;
  }
  // Expired or revoked access tokens.
  EXPECT_EQ(check(notification(), rules_.minter->nextSerial()).status, 401);
  token_ = rules_.minter->issue(0, kNowMs);
  EXPECT_EQ(check(notification()).status, 401);
}

// The headers are read in one pass (each checked header's first value and whether it repeats).
TEST_F(WnsTest, RepeatedAndUnrelatedHeaders) {
  const std::vector<std::pair<std::string, std::string>> singles = {
      {"authorization", ""},  // filled in below: the valid bearer token
      {"content-type", "text/xml"},
      {"x-wns-type", "wns/toast"},
      {"x-wns-cache-policy", "cache"},
      {"x-wns-requestforstatus", "true"},
      {"x-wns-tag", "t1"},
      {"x-wns-group", "g1"},
      {"x-wns-ttl", "60"},
      {"x-wns-suppresspopup", "false"},
      {"x-wns-priority", "1"},
  };
  for (auto [name, value] : singles) {
    if (name == "authorization") {
      value = "Bearer " + token_;
    }
    H2Request once = notification();
    std::erase_if(once.headers, [&](const auto& h) { return h.first == name; });
    once.headers.emplace_back(name, value);
    EXPECT_EQ(check(once).status, 200) << name << ": " << check(once).description;
    H2Request twice = once;
    twice.headers.emplace_back(name, value);
    WnsVerdict v = check(twice);
    EXPECT_EQ(v.status, 400) << name;
    EXPECT_EQ(v.description, "A header was repeated.") << name;
  }
  // Headers nobody checks may repeat; the X-WNS-* names are whole names, not prefixes.
  H2Request r = notification();
  r.headers.emplace_back("ms-cv", "a");
  r.headers.emplace_back("ms-cv", "b");
  r.headers.emplace_back("x-wns-tags", "not-a-tag");
  r.headers.emplace_back("x-wns-typ", "x");
  r.headers.emplace_back("x-wns-", "x");
  r.headers.emplace_back("content-types", "x");
  r.headers.emplace_back("x-wns-priority-x", "9");
  r.headers.emplace_back("user-agent", "t");
  r.headers.emplace_back("user-agent", "t");
  EXPECT_EQ(check(r).status, 200) << check(r).description;
  // The first Authorization is the one checked, then the repeat is refused.
  H2Request auth_first = notification();
  auth_first.headers.emplace_back("authorization", "Bearer EwAnope");
  EXPECT_EQ(check(auth_first).status, 400);
  H2Request bad_first = notification();
  bad_first.headers.insert(bad_first.headers.begin(), {"authorization", "Bearer EwAnope"});
  EXPECT_EQ(check(bad_first).status, 401);
  // X-WNS-Match is refused however often it comes; X-WNS-Type is checked by its first value.
  H2Request match = notification();
  match.headers.emplace_back("x-wns-match", "a");
  match.headers.emplace_back("x-wns-match", "b");
  EXPECT_EQ(check(match).description, "X-WNS-Match is only valid on DELETE.");
  H2Request raw = notification("abc", "wns/raw");
  EXPECT_EQ(check(raw).status, 200);
}

TEST(Http1HeaderNameTest, LowercasesAsciiLettersOnly) {
  // Every byte value at every position of names up to 24 bytes long (the 8-byte steps and the
  // tail), against the byte-by-byte rule.
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int c = 0; c < 256; ++c) {
        std::string s(len, 'K');
        s[pos] = static_cast<char>(c);
        std::string expected = s;
        for (char& e : expected) {
          if (e >= 'A' && e <= 'Z') {
            e = static_cast<char>(e - 'A' + 'a');
          }
        }
        lowercaseAscii(s);
        ASSERT_EQ(s, expected) << "len " << len << " pos " << pos << " byte " << c;
      }
    }
  }
  std::string empty;
  lowercaseAscii(empty);
  EXPECT_EQ(empty, "");
  std::string name = "X-WNS-RequestForStatus";
  lowercaseAscii(name);
  EXPECT_EQ(name, "x-wns-requestforstatus");
}

// HTTP/1.1: a plain request (what pushhubd and h2load send) is parsed without Beast's parser;
// whatever that fast path takes, Beast's parser must take the same way.
struct Http1Parse {
  bool ok = false;
  H2Request request;
  bool keep_alive = false;
  size_t consumed = 0;
};

Http1Parse parseHttp1(const std::string& bytes, bool plain) {
  Http1Parse p;
  p.ok = parseHttp1RequestForTest(bytes, plain, p.request, p.keep_alive, p.consumed);
  return p;
}

// True when the fast path declined, or took the request exactly as Beast's parser does.
void expectPlainAgrees(const std::string& bytes) {
  Http1Parse plain = parseHttp1(bytes, true);
  if (!plain.ok) {
    return;
  }
  Http1Parse beast = parseHttp1(bytes, false);
  ASSERT_TRUE(beast.ok) << "the fast path took what Beast refuses: " << bytes;
  EXPECT_EQ(plain.request.method, beast.request.method) << bytes;
  EXPECT_EQ(plain.request.path, beast.request.path) << bytes;
  EXPECT_EQ(plain.request.authority, beast.request.authority) << bytes;
  EXPECT_EQ(plain.request.headers, beast.request.headers) << bytes;
  EXPECT_EQ(plain.request.body, beast.request.body) << bytes;
  EXPECT_EQ(plain.request.body_truncated, beast.request.body_truncated) << bytes;
  EXPECT_EQ(plain.request.chunked, beast.request.chunked) << bytes;
  EXPECT_EQ(plain.request.http1, beast.request.http1) << bytes;
  EXPECT_EQ(plain.request.scheme, beast.request.scheme) << bytes;
  EXPECT_EQ(plain.keep_alive, beast.keep_alive) << bytes;
  EXPECT_EQ(plain.consumed, beast.consumed) << bytes;
}

const std::string kPushhubRequest =
    "POST /?token=w0123 HTTP/1.1\r\nHost: 127.0.0.1:4443\r\nauthorization: Bearer EwAabc\r\n"
    "content-type: text/xml\r\nx-wns-type: wns/toast\r\nContent-Length: 8\r\n\r\n<toast/>";

TEST(Http1PlainParserTest, TakesPlainRequestsAsBeastDoes) {
  const std::vector<std::string> plain = {
      kPushhubRequest,
      "POST /w/?token=t HTTP/1.1\r\nhost: h\r\nUser-Agent: h2load nghttp2/1.52.0\r\n"
      "Accept: */*\r\nContent-Length: 0\r\nX-WNS-Type: wns/raw\r\n\r\n",
      "GET /x HTTP/1.1\r\nHost:h\r\n\r\n",
      "POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nconnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nX-A:   spaced \t \r\nX-B:\r\nx-a: again\r\nContent-Length: "
      "003\r\n\r\nabc",
      "PATCH * HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
      "POST / HTTP/1.1\r\nCONTENT-LENGTH: 3\r\nCONNECTION: CLOSE\r\nHOST: H\r\n\r\nabc",
      // Names like the special ones but not them.
      "POST / HTTP/1.1\r\nContent-Lengtx: 3\r\nConnectiom: x\r\nExpecT-: y\r\n\r\n",
      // Pipelined: only the first request is taken.
      kPushhubRequest + kPushhubRequest,
  };
  for (const std::string& bytes : plain) {
    EXPECT_TRUE(parseHttp1(bytes, true).ok) << bytes;
    expectPlainAgrees(bytes);
  }
  Http1Parse p = parseHttp1(kPushhubRequest, true);
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.path, "/?token=w0123");
  EXPECT_EQ(p.request.authority, "127.0.0.1:4443");
  ASSERT_EQ(p.request.headers.size(), 5u);
  EXPECT_EQ(p.request.headers[0].first, "host");
  EXPECT_EQ(p.request.headers[4], (std::pair<std::string, std::string>("content-length", "8")));
  EXPECT_EQ(p.request.body, "<toast/>");
  EXPECT_EQ(p.consumed, kPushhubRequest.size());
  EXPECT_TRUE(p.keep_alive);
  EXPECT_FALSE(parseHttp1("POST / HTTP/1.1\r\nConnection: close\r\n\r\n", true).keep_alive);
  EXPECT_FALSE(parseHttp1(plain[7], true).keep_alive);
  EXPECT_EQ(parseHttp1(plain[7], true).request.body, "abc");
  EXPECT_EQ(parseHttp1(plain[7], true).request.authority, "H");
  EXPECT_EQ(parseHttp1(kPushhubRequest + kPushhubRequest, true).consumed, kPushhubRequest.size());
}

TEST(Http1PlainParserTest, LeavesTheRestToBeast) {
  const std::string big_head = "POST / HTTP/1.1\r\nX-Big: " + std::string(8200, 'a') + "\r\n\r\n";
  std::string many_fields = "POST / HTTP/1.1\r\n";
  for (int i = 0; i < 33; ++i) {
    many_fields += "X-" + std::to_string(i) + ": v\r\n";
  }
  many_fields += "\r\n";
  const std::vector<std::string> declined = {
      "",
      "POST / HTTP/1.1\r\nHost: h\r\n",                     // head not complete
      "POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort",  // body not complete
      "POST / HTTP/1.0\r\n\r\n",
      "POST / http/1.1\r\n\r\n",
      "POST  / HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1 \r\n\r\n",
      "\r\nPOST / HTTP/1.1\r\n\r\n",
      "POST /\xc3\xa9 HTTP/1.1\r\n\r\n",
      "PO(ST / HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
      "POST / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
      "POST / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
      "POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nEXPECT: 100-continue\r\n\r\n",
      "POST / HTTP/1.1\r\nuPgRaDe: h2c\r\n\r\n",
      "POST / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
      "POST / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n",
      "POST / HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
      "POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\nx",
      "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
      "POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n" + std::string(65537, 'x'),
      "POST / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",  // obs-fold
      "POST / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n",
      "POST / HTTP/1.1\r\nX-A: a\nX-B: b\r\n\r\n",
      "POST / HTTP/1.1\r\nX-A : a\r\n\r\n",
      "POST / HTTP/1.1\r\n: a\r\n\r\n",
      "POST / HTTP/1.1\r\nno colon\r\n\r\n",
      "POST / HTTP/1.1\r\nX-A: \x01\r\n\r\n",
      big_head,
      many_fields,
  };
  for (const std::string& bytes : declined) {
    EXPECT_FALSE(parseHttp1(bytes, true).ok) << bytes.substr(0, 100);
  }
  // Beast's parser still takes some of them, as before.
  EXPECT_TRUE(parseHttp1("POST / HTTP/1.0\r\n\r\n", false).ok);
  EXPECT_TRUE(parseHttp1(declined[10], false).ok);
  EXPECT_TRUE(parseHttp1(declined[10], false).request.chunked);
  EXPECT_TRUE(parseHttp1(big_head, false).ok);
  EXPECT_TRUE(parseHttp1(many_fields, false).ok);
}

// Every byte value at every position of a header value and of a target (checked eight bytes
// at a time): the fast path takes exactly visible ASCII (and SP / HTAB in values).
TEST(Http1PlainParserTest, ByteByByte) {
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    if (c == '\r' || c == '\n') {
      continue;  // they make other lines
    }
    for (size_t pos = 0; pos < 20; ++pos) {
      std::string value(20, 'v');
      value[pos] = c;
      std::string bytes = "POST / HTTP/1.1\r\nX-V: " + value + "\r\n\r\n";
      bool visible = (b >= 0x20 && b < 0x7f) || b == '\t';
      EXPECT_EQ(parseHttp1(bytes, true).ok, visible) << b << " at " << pos;
      expectPlainAgrees(bytes);
      std::string target(20, 't');
      target[pos] = c;
      bytes = "POST /" + target + " HTTP/1.1\r\n\r\n";
      EXPECT_EQ(parseHttp1(bytes, true).ok, b > 0x20 && b < 0x7f) << b << " at " << pos;
      expectPlainAgrees(bytes);
    }
  }
}

// Every one-byte change (replace, delete, insert) of plain requests: whatever the fast path
// takes, Beast's parser takes the same way.
TEST(Http1PlainParserTest, MutationsNeverFoolTheFastPath) {
  const std::vector<std::string> seeds = {
      kPushhubRequest,
      "GET /a?b=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Y:  z \r\n\r\n",
  };
  const std::string alphabet = " \t\r\n:,0123/HTPaA-xX\x7f\x80\xff";
  std::mt19937 rng(7);
  size_t taken = 0;
  for (const std::string& seed : seeds) {
    for (size_t i = 0; i <= seed.size(); ++i) {
      for (int k = 0; k < 8; ++k) {
        char c = alphabet[rng() % alphabet.size()];
        std::string inserted = seed;
        inserted.insert(inserted.begin() + static_cast<ptrdiff_t>(i), c);
        expectPlainAgrees(inserted);
        if (i < seed.size()) {
          std::string replaced = seed;
          replaced[i] = c;
          expectPlainAgrees(replaced);
          taken += parseHttp1(replaced, true).ok ? 1 : 0;
        }
      }
      if (i < seed.size()) {
        std::string deleted = seed;
        deleted.erase(i, 1);
        expectPlainAgrees(deleted);
      }
    }
  }
  EXPECT_GT(taken, 100u);
}

TEST_F(WnsTest, ListsAndThrottling) {
  rules_.dead_tokens.insert("gone1");
  rules_.bad_tokens.insert("bad1");
  EXPECT_EQ(check(notification("gone1")).status, 410);
  EXPECT_EQ(check(notification("bad1")).status, 404);
  EXPECT_EQ(check(notification("fine")).status, 200);

  H2Request r = notification();
  WnsVerdict v = check(r);
  throttleWns(v);
  H2Response resp;
  buildWnsResponse(v, r, "1", 3, resp);
  EXPECT_EQ(resp.status, 406);
  ASSERT_NE(header(resp, "retry-after"), nullptr);
  EXPECT_EQ(*header(resp, "retry-after"), "3");

  EXPECT_EQ(wnsChannelToken("/?token=a%2Bb&x=1"), "a%2Bb");
  EXPECT_EQ(wnsChannelToken("/w/?x=1&token=q"), "q");
  EXPECT_EQ(wnsChannelToken("/?tok=q"), "");
}

}  // namespace
}  // namespace pushhub::mock
