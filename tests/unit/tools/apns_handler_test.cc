// Table-driven tests of pns-mock's pure APNs validation (tools/pns-mock/apns_handler.h): every
// rejection reason, the validation order, success, and the JWT checks with real ES256 keys.

#include "tools/pns-mock/apns_handler.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "tests/support/process.h"

namespace pushhub::mock {
namespace {

constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kNowS = kNowMs / 1000;
const std::string kToken(64, 'a');

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<EVP_PKEY> shared(providers::EvpPkeyPtr key) {
  return std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
}

class ApnsHandlerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto pki = testing::makeTestPki(dir_->path());
    private_key_ = shared(providers::loadPrivateKeyPem(readFile(pki.apnsKey())).value());
    public_key_ = shared(providers::loadPublicKeyPem(readFile(pki.apnsPublicKey())).value());
    other_key_ = std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-256"), EVP_PKEY_free);
    ASSERT_TRUE(other_key_);
  }
  static void TearDownTestSuite() {
    private_key_.reset();
    public_key_.reset();
    other_key_.reset();
    delete dir_;
  }

  void SetUp() override {
    rules_.keys["KEY1"] = ApnsKey{"TEAM1", public_key_};
    // A second key of another team: signed by other_key_.
    rules_.keys["KEY2"] = ApnsKey{"TEAM2", other_key_};
    rules_.topics = {"com.example.app"};
  }

  static std::string jwt(EVP_PKEY* key, const std::string& kid, const std::string& team,
                         int64_t iat, const std::string& alg = "ES256") {
    std::string header = R"({"alg":")" + alg + R"(","kid":")" + kid + "\"}";
    std::string claims = R"({"iss":")" + team + R"(","iat":)" + std::to_string(iat) + "}";
    return *providers::signJwtEs256(key, header, claims);
  }
  static std::string goodJwt() { return jwt(private_key_.get(), "KEY1", "TEAM1", kNowS - 60); }

  // A request that passes every check; tests break one thing at a time.
  static H2Request good() {
    H2Request r;
    r.method = "POST";
    r.path = "/3/device/" + kToken;
    r.scheme = "https";
    r.authority = "api.push.apple.com";
    r.headers = {{"authorization", "bearer " + goodJwt()},
                 {"apns-topic", "com.example.app"},
                 {"apns-push-type", "alert"},
                 {"apns-priority", "10"}};
    r.body = R"({"aps":{"alert":"hi"}})";
    return r;
  }

  static void set(H2Request& r, const std::string& name, const std::string& value) {
    for (auto& h : r.headers) {
      if (h.first == name) {
        h.second = value;
        return;
      }
    }
    r.headers.emplace_back(name, value);
  }
  static void remove(H2Request& r, const std::string& name) {
    std::erase_if(r.headers, [&](const auto& h) { return h.first == name; });
  }

  ApnsVerdict check(const H2Request& r) { return validateApnsRequest(r, rules_, conn_, kNowMs); }

  static testing::TempDir* dir_;
  static std::shared_ptr<EVP_PKEY> private_key_;
  static std::shared_ptr<EVP_PKEY> public_key_;
  static std::shared_ptr<EVP_PKEY> other_key_;
  ApnsRules rules_;
  ApnsConnectionState conn_;
};

testing::TempDir* ApnsHandlerTest::dir_ = nullptr;
std::shared_ptr<EVP_PKEY> ApnsHandlerTest::private_key_;
std::shared_ptr<EVP_PKEY> ApnsHandlerTest::public_key_;
std::shared_ptr<EVP_PKEY> ApnsHandlerTest::other_key_;

TEST_F(ApnsHandlerTest, AcceptsAValidRequest) {
  H2Request r = good();  // the verdict holds views into the request
  ApnsVerdict v = check(r);
  EXPECT_EQ(v.status, 200);
  EXPECT_TRUE(v.reason.empty());
  EXPECT_FALSE(v.drop_connection);
  EXPECT_EQ(v.device_token, kToken);
  EXPECT_TRUE(v.apns_id.empty());  // none sent: the caller generates one
  EXPECT_EQ(conn_.team_id, "TEAM1");
}

TEST_F(ApnsHandlerTest, EchoesTheRequestApnsId) {
  H2Request r = good();
  set(r, "apns-id", "123e4567-e89b-12d3-a456-4266554400a0");
  ApnsVerdict v = check(r);
  EXPECT_EQ(v.status, 200);
  EXPECT_EQ(v.apns_id, "123e4567-e89b-12d3-a456-4266554400a0");
}

struct Case {
  const char* name;
  std::function<void(H2Request&)> mutate;
  int status;
  std::string_view reason;
};

TEST_F(ApnsHandlerTest, RejectsEachFaultWithTheRightReason) {
  const std::string long_collapse(65, 'c');
  const std::vector<Case> cases = {
      {"duplicate header", [](H2Request& r) { r.headers.emplace_back("apns-topic", "x"); }, 400,
       apns_reason::kDuplicateHeaders},
      {"bad apns-id", [](H2Request& r) { set(r, "apns-id", "not-a-uuid"); }, 400,
       apns_reason::kBadMessageId},
      {"GET", [](H2Request& r) { r.method = "GET"; }, 405, apns_reason::kMethodNotAllowed},
      {"no topic", [](H2Request& r) { remove(r, "apns-topic"); }, 400, apns_reason::kMissingTopic},
      {"topic not allowed", [](H2Request& r) { set(r, "apns-topic", "com.other.app"); }, 400,
       apns_reason::kBadTopic},
      {"collapse id 65 bytes", [&](H2Request& r) { set(r, "apns-collapse-id", long_collapse); },
       400, apns_reason::kBadCollapseId},
      {"priority 7", [](H2Request& r) { set(r, "apns-priority", "7"); }, 400,
       apns_reason::kBadPriority},
      {"expiration not a number", [](H2Request& r) { set(r, "apns-expiration", "soon"); }, 400,
       apns_reason::kBadExpirationDate},
      {"unknown push type", [](H2Request& r) { set(r, "apns-push-type", "bogus"); }, 400,
       apns_reason::kInvalidPushType},
      {"no token", [](H2Request& r) { r.path = "/3/device/"; }, 400,
       apns_reason::kMissingDeviceToken},
      {"short token", [](H2Request& r) { r.path = "/3/device/abcd"; }, 400,
       apns_reason::kBadDeviceToken},
      {"non-hex token", [](H2Request& r) { r.path = "/3/device/" + std::string(64, 'z'); }, 400,
       apns_reason::kBadDeviceToken},
      {"dead prefix", [](H2Request& r) { r.path = "/3/device/dead" + std::string(60, '1'); }, 410,
       apns_reason::kUnregistered},
      {"dead prefix, uppercase",
       [](H2Request& r) { r.path = "/3/device/DEAD" + std::string(60, '1'); }, 410,
       apns_reason::kUnregistered},
      {"bad prefix", [](H2Request& r) { r.path = "/3/device/0bad" + std::string(60, '1'); }, 400,
       apns_reason::kBadDeviceToken},
      {"bad path", [](H2Request& r) { r.path = "/3/devices/" + kToken; }, 404,
       apns_reason::kBadPath},
      {"no authorization", [](H2Request& r) { remove(r, "authorization"); }, 403,
       apns_reason::kMissingProviderToken},
      {"basic authorization", [](H2Request& r) { set(r, "authorization", "basic abc"); }, 403,
       apns_reason::kMissingProviderToken},
      {"unparsable jwt", [](H2Request& r) { set(r, "authorization", "bearer not.a.jwt!"); }, 403,
       apns_reason::kInvalidProviderToken},
      {"two-part jwt", [](H2Request& r) { set(r, "authorization", "bearer abc.def"); }, 403,
       apns_reason::kInvalidProviderToken},
      {"alg HS256",
       [](H2Request& r) {
         set(r, "authorization",
             "bearer " + jwt(private_key_.get(), "KEY1", "TEAM1", kNowS, "HS256"));
       },
       403, apns_reason::kInvalidProviderToken},
      {"unknown kid",
       [](H2Request& r) {
         set(r, "authorization", "bearer " + jwt(private_key_.get(), "NOPE", "TEAM1", kNowS));
       },
       403, apns_reason::kInvalidProviderToken},
      {"signed by another key",
       [](H2Request& r) {
         set(r, "authorization", "bearer " + jwt(other_key_.get(), "KEY1", "TEAM1", kNowS));
       },
       403, apns_reason::kInvalidProviderToken},
      {"iss is not the key's team",
       [](H2Request& r) {
         set(r, "authorization", "bearer " + jwt(private_key_.get(), "KEY1", "TEAM2", kNowS));
       },
       403, apns_reason::kInvalidProviderToken},
      {"iat older than one hour",
       [](H2Request& r) {
         set(r, "authorization",
             "bearer " + jwt(private_key_.get(), "KEY1", "TEAM1", kNowS - 3601));
       },
       403, apns_reason::kExpiredProviderToken},
      {"empty body", [](H2Request& r) { r.body.clear(); }, 400, apns_reason::kPayloadEmpty},
      {"4097-byte body", [](H2Request& r) { r.body.assign(4097, 'x'); }, 413,
       apns_reason::kPayloadTooLarge},
      {"voip 5121-byte body",
       [](H2Request& r) {
         set(r, "apns-push-type", "voip");
         set(r, "apns-topic", "com.example.app.voip");
         r.body.assign(5121, 'x');
       },
       413, apns_reason::kPayloadTooLarge},
      {"truncated body",
       [](H2Request& r) {
         r.body.assign(10, 'x');
         r.body_truncated = true;
       },
       413, apns_reason::kPayloadTooLarge},
      // Order: the earlier check wins when several fail.
      {"bad apns-id before GET",
       [](H2Request& r) {
         r.method = "GET";
         set(r, "apns-id", "x");
       },
       400, apns_reason::kBadMessageId},
      {"dead token before auth",
       [](H2Request& r) {
         r.path = "/3/device/dead" + std::string(60, '1');
         remove(r, "authorization");
       },
       410, apns_reason::kUnregistered},
      {"auth before payload",
       [](H2Request& r) {
         remove(r, "authorization");
         r.body.clear();
       },
       403, apns_reason::kMissingProviderToken},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ApnsConnectionState fresh;
    H2Request r = good();
    c.mutate(r);
    ApnsVerdict v = validateApnsRequest(r, rules_, fresh, kNowMs);
    EXPECT_EQ(v.status, c.status);
    EXPECT_EQ(v.reason, c.reason);
    EXPECT_FALSE(v.drop_connection);
  }
}

TEST_F(ApnsHandlerTest, AcceptsVariantsThatAreValid) {
  const std::vector<std::pair<const char*, std::function<void(H2Request&)>>> cases = {
      {"uppercase token", [](H2Request& r) { r.path = "/3/device/" + std::string(64, 'A'); }},
      {"Bearer in another case",
       [](H2Request& r) { set(r, "authorization", "Bearer " + goodJwt()); }},
      {"voip topic suffix of an allowed bundle id",
       [](H2Request& r) {
         set(r, "apns-push-type", "voip");
         set(r, "apns-topic", "com.example.app.voip");
         r.body.assign(5120, 'x');
       }},
      {"4096-byte body", [](H2Request& r) { r.body.assign(4096, 'x'); }},
      {"priority 5 and 1", [](H2Request& r) { set(r, "apns-priority", "5"); }},
      {"expiration 0", [](H2Request& r) { set(r, "apns-expiration", "0"); }},
      {"collapse id 64 bytes",
       [](H2Request& r) { set(r, "apns-collapse-id", std::string(64, 'c')); }},
      {"no push type", [](H2Request& r) { remove(r, "apns-push-type"); }},
  };
  for (const auto& [name, mutate] : cases) {
    SCOPED_TRACE(name);
    ApnsConnectionState fresh;
    H2Request r = good();
    mutate(r);
    ApnsVerdict v = validateApnsRequest(r, rules_, fresh, kNowMs);
    EXPECT_EQ(v.status, 200) << v.reason;
  }
}

TEST_F(ApnsHandlerTest, AnyTopicIsAllowedWhenNoneConfigured) {
  rules_.topics.clear();
  H2Request r = good();
  set(r, "apns-topic", "org.whatever");
  EXPECT_EQ(check(r).status, 200);
}

TEST_F(ApnsHandlerTest, DropPrefixAsksToCloseTheConnection) {
  H2Request r = good();
  r.path = "/3/device/c105e" + std::string(59, '0');
  ApnsVerdict v = check(r);
  EXPECT_TRUE(v.drop_connection);
}

TEST_F(ApnsHandlerTest, ExplicitDeadAndBadTokens) {
  const std::string dead(64, 'd');  // also matches the "dead" prefix, so disable prefixes
  rules_.dead_prefix.clear();
  rules_.bad_prefix.clear();
  rules_.dead_tokens.insert(std::string(64, '1'));
  rules_.bad_tokens.insert(std::string(64, '2'));
  H2Request r = good();
  r.path = "/3/device/" + std::string(64, '1');
  ApnsVerdict v = check(r);
  EXPECT_EQ(v.status, 410);
  EXPECT_EQ(v.timestamp_ms, kNowMs);
  r.path = "/3/device/" + std::string(64, '2');
  EXPECT_EQ(check(r).reason, apns_reason::kBadDeviceToken);
  r.path = "/3/device/" + dead;
  EXPECT_EQ(check(r).status, 200);  // prefixes disabled
}

TEST_F(ApnsHandlerTest, ConnectionIsBoundToTheFirstTeam) {
  ASSERT_EQ(check(good()).status, 200);
  H2Request r = good();
  set(r, "authorization", "bearer " + jwt(other_key_.get(), "KEY2", "TEAM2", kNowS));
  ApnsVerdict v = check(r);
  EXPECT_EQ(v.status, 403);
  EXPECT_EQ(v.reason, apns_reason::kInvalidProviderToken);
  // The same token is fine on a fresh connection.
  ApnsConnectionState other;
  EXPECT_EQ(validateApnsRequest(r, rules_, other, kNowMs).status, 200);
}

TEST_F(ApnsHandlerTest, VerifiesEachDistinctTokenOnlyOnce) {
  const H2Request r = good();  // ES256 signatures are randomized: keep one token
  ASSERT_EQ(check(r).status, 200);
  EXPECT_FALSE(conn_.verified_token.empty());
  // With the key gone, only the per-connection cache can accept the token.
  rules_.keys.clear();
  EXPECT_EQ(check(r).status, 200);
  ApnsConnectionState fresh;
  EXPECT_EQ(validateApnsRequest(r, rules_, fresh, kNowMs).reason,
            apns_reason::kInvalidProviderToken);
}

TEST_F(ApnsHandlerTest, CachedTokenStillExpires) {
  const H2Request r = good();
  ASSERT_EQ(check(r).status, 200);
  ApnsVerdict later = validateApnsRequest(r, rules_, conn_, kNowMs + 3600 * 1000);
  EXPECT_EQ(later.reason, apns_reason::kExpiredProviderToken);
}

TEST(ApnsResponseTest, SuccessIsHeadersOnly) {
  ApnsVerdict v;
  H2Response r;
  buildApnsResponse(v, "ABC", r);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"apns-id", "ABC"}));
}

TEST(ApnsResponseTest, ErrorsCarryJsonReasonAndTimestampFor410) {
  ApnsVerdict v;
  v.status = 410;
  v.reason = apns_reason::kUnregistered;
  v.timestamp_ms = 1234;
  H2Response r;
  buildApnsResponse(v, "ABC", r);
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(r.body, R"({"reason":"Unregistered","timestamp":1234})");
  EXPECT_NE(std::find(r.headers.begin(), r.headers.end(),
                      std::pair<std::string, std::string>{"content-type", "application/json"}),
            r.headers.end());

  ApnsVerdict bad;
  bad.status = 400;
  bad.reason = apns_reason::kBadTopic;
  H2Response r2;
  buildApnsResponse(bad, "X", r2);
  EXPECT_EQ(r2.body, R"({"reason":"BadTopic"})");
}

TEST(ApnsUuidTest, RecognisesCanonicalUuids) {
  EXPECT_TRUE(isUuid("123e4567-e89b-12d3-a456-4266554400a0"));
  EXPECT_TRUE(isUuid("123E4567-E89B-12D3-A456-4266554400A0"));
  EXPECT_FALSE(isUuid("123e4567e89b12d3a4564266554400a0"));
  EXPECT_FALSE(isUuid("123e4567-e89b-12d3-a456-4266554400a"));
  EXPECT_FALSE(isUuid("g23e4567-e89b-12d3-a456-4266554400a0"));
}

}  // namespace
}  // namespace pushhub::mock
