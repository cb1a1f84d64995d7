// parseServiceAccount and the service-account token requests (RS256 assertion).
#include <gtest/gtest.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "providers/common/jwt.h"
#include "providers/fcm/fcm_auth.h"
#include "providers/fcm/fcm_config.h"
#include "tests/unit/providers/fcm/rsa_test_key.h"

namespace pushhub::providers::fcm {
namespace {

using std::chrono::system_clock;

constexpr std::string_view kFormPrefix =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";

boost::json::object accountJson(const std::string& key_pem) {
  boost::json::object o;
  o["type"] = "service_account";
  o["project_id"] = "my-project-123";
  o["private_key_id"] = "0123456789abcdef0123456789abcdef01234567";
  o["private_key"] = key_pem;  // serialize() writes the newlines as \n escapes, like Google
  o["client_email"] = "pushhub@my-project-123.iam.gserviceaccount.com";
  o["client_id"] = "123456789012345678901";
  o["auth_uri"] = "https://accounts.google.com/o/oauth2/auth";
  o["token_uri"] = "https://oauth2.googleapis.com/token";
  o["universe_domain"] = "googleapis.com";
  return o;
}

std::string json(const boost::json::object& o) { return boost::json::serialize(o); }

// ---- parseServiceAccount ----

TEST(ParseServiceAccount, ReadsAGoogleKeyFile) {
  const auto& key = testing::rsaKey();
  std::string text = json(accountJson(key.private_pem));
  ASSERT_NE(text.find("\\n"), std::string::npos);  // the PEM really is escaped in the file
  auto a = parseServiceAccount(text);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->project_id, "my-project-123");
  EXPECT_EQ(a->client_email, "pushhub@my-project-123.iam.gserviceaccount.com");
  EXPECT_EQ(a->private_key_id, "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(a->private_key_pem, key.private_pem);
  EXPECT_EQ(a->token_uri, "https://oauth2.googleapis.com/token");
}

TEST(ParseServiceAccount, TokenUriDefaultsToGoogle) {
  auto o = accountJson(testing::rsaKey().private_pem);
  o.erase("token_uri");
  o.erase("type");
  auto a = parseServiceAccount(json(o));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->token_uri, "https://oauth2.googleapis.com/token");
}

class MissingField : public ::testing::TestWithParam<const char*> {};

TEST_P(MissingField, IsNamed) {
  auto o = accountJson(testing::rsaKey().private_pem);
  o.erase(GetParam());
  auto a = parseServiceAccount(json(o));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Error::Code::kInvalidArgument);
  EXPECT_NE(a.error().message.find(GetParam()), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find("missing"), std::string::npos) << a.error().message;
}

INSTANTIATE_TEST_SUITE_P(Required, MissingField,
                         ::testing::Values("project_id", "client_email", "private_key",
                                           "private_key_id"));

struct BadField {
  const char* field;
  boost::json::value value;
  const char* expect;  // in the message
};

class BadFieldTest : public ::testing::TestWithParam<BadField> {};

TEST_P(BadFieldTest, IsNamed) {
  const BadField& row = GetParam();
  auto o = accountJson(testing::rsaKey().private_pem);
  o[row.field] = row.value;
  auto a = parseServiceAccount(json(o));
  ASSERT_FALSE(a) << row.field;
  EXPECT_NE(a.error().message.find(row.field), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find(row.expect), std::string::npos) << a.error().message;
}

INSTANTIATE_TEST_SUITE_P(Rows, BadFieldTest,
                         ::testing::Values(BadField{"type", "authorized_user", "service_account"},
                                           BadField{"project_id", 42, "must be a string"},
                                           BadField{"project_id", "", "must not be empty"},
                                           BadField{"project_id", "a/../../evil", "project_id"},
                                           BadField{"project_id", "p?x=1", "project_id"},
                                           BadField{"client_email", nullptr, "must be a string"},
                                           BadField{"token_uri",
                                                    "http://oauth2.googleapis.com/token", "https"},
                                           BadField{"private_key", "not a key", "does not load"}));

TEST(ParseServiceAccount, NotJson) {
  auto a = parseServiceAccount("{\"project_id\": ");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("not valid JSON"), std::string::npos);
  EXPECT_FALSE(parseServiceAccount("[1,2]"));
}

TEST(ParseServiceAccount, BadKeyIsNeverEchoed) {
  // A PEM that is damaged in its middle: the error must not quote any of it.
  std::string pem = testing::rsaKey().private_pem;
  std::string body_line = pem.substr(pem.find('\n') + 1, 40);
  pem.replace(pem.find('\n') + 41, 20, "!!!!!!!!!!!!!!!!!!!!");
  auto a = parseServiceAccount(json(accountJson(pem)));
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("private_key"), std::string::npos);
  EXPECT_EQ(a.error().message.find(body_line), std::string::npos) << a.error().message;
  EXPECT_EQ(a.error().message.find("BEGIN"), std::string::npos) << a.error().message;
}

TEST(ParseServiceAccount, RefusesNonRsaAndShortKeys) {
  auto ec = parseServiceAccount(json(accountJson(testing::p256Key().private_pem)));
  ASSERT_FALSE(ec);
  EXPECT_NE(ec.error().message.find("RSA"), std::string::npos) << ec.error().message;

  auto short_key = parseServiceAccount(json(accountJson(testing::rsaKey(1024).private_pem)));
  ASSERT_FALSE(short_key);
  EXPECT_NE(short_key.error().message.find("2048"), std::string::npos) << short_key.error().message;
}

// ---- makeFcmTokenRequests ----

struct TokenFixture : ::testing::Test {
  TokenFixture() {
    account = parseServiceAccount(json(accountJson(testing::rsaKey().private_pem))).value();
    public_key = loadPublicKeyPem(testing::rsaKey().public_pem).value();
  }

  // The assertion of a request, decoded.
  DecodedJwt assertionOf(const TokenRequest& r) {
    EXPECT_EQ(r.body.rfind(kFormPrefix, 0), 0u) << r.body;
    auto jwt = decodeJwt(std::string_view(r.body).substr(kFormPrefix.size()));
    EXPECT_TRUE(jwt) << jwt.error().message;
    return *jwt;
  }

  system_clock::time_point now = system_clock::time_point(std::chrono::seconds(1700000000));
  ServiceAccount account;
  EvpPkeyPtr public_key;
};

TEST_F(TokenFixture, SignsTheGoogleAssertion) {
  auto factory = makeFcmTokenRequests(account, [this] { return now; });
  auto request = factory();
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->url, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(request->content_type, "application/x-www-form-urlencoded");

  DecodedJwt jwt = assertionOf(*request);
  EXPECT_EQ(jwt.header_json,
            R"({"alg":"RS256","typ":"JWT","kid":"0123456789abcdef0123456789abcdef01234567"})");
  EXPECT_TRUE(verifyRs256(public_key.get(), jwt.signing_input, jwt.signature));
  EXPECT_EQ(jwt.signature.size(), 256u);  // 2048-bit RSA

  auto claims = boost::json::parse(jwt.claims_json).as_object();
  EXPECT_EQ(claims.at("iss").as_string(), "pushhub@my-project-123.iam.gserviceaccount.com");
  EXPECT_EQ(claims.at("scope").as_string(), "https://www.googleapis.com/auth/firebase.messaging");
  EXPECT_EQ(claims.at("aud").as_string(), "https://oauth2.googleapis.com/token");
  EXPECT_EQ(claims.at("iat").as_int64(), 1700000000);
  EXPECT_EQ(claims.at("exp").as_int64(), 1700000000 + 3600);
}

TEST_F(TokenFixture, TamperedAssertionDoesNotVerify) {
  auto request = makeFcmTokenRequests(account, [this] { return now; })();
  ASSERT_TRUE(request);
  DecodedJwt jwt = assertionOf(*request);
  std::string signature = jwt.signature;
  signature[10] = static_cast<char>(signature[10] ^ 0x01);
  EXPECT_FALSE(verifyRs256(public_key.get(), jwt.signing_input, signature));
  std::string input = jwt.signing_input;
  input[input.size() - 1] = input.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verifyRs256(public_key.get(), input, jwt.signature));
  // Another key does not verify it either.
  auto other = loadPublicKeyPem(testing::rsaKey(3072).public_pem).value();
  EXPECT_FALSE(verifyRs256(other.get(), jwt.signing_input, jwt.signature));
}

TEST_F(TokenFixture, EachCallSignsAtTheCurrentTime) {
  auto factory = makeFcmTokenRequests(account, [this] { return now; });
  auto first = factory();
  now += std::chrono::minutes(55);
  auto second = factory();
  ASSERT_TRUE(first && second);
  auto claims = boost::json::parse(assertionOf(*second).claims_json).as_object();
  EXPECT_EQ(claims.at("iat").as_int64(), 1700000000 + 55 * 60);
  EXPECT_EQ(claims.at("exp").as_int64(), 1700000000 + 55 * 60 + 3600);
  EXPECT_NE(first->body, second->body);
}

TEST_F(TokenFixture, ConfigOverrideRedirectsEndpointAndAudience) {
  FcmConfig config;
  config.account = account;
  config.token_uri_override = "https://127.0.0.1:4443/token";
  auto request = makeFcmTokenRequests(config, [this] { return now; })();
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->url, "https://127.0.0.1:4443/token");
  auto claims = boost::json::parse(assertionOf(*request).claims_json).as_object();
  EXPECT_EQ(claims.at("aud").as_string(), "https://127.0.0.1:4443/token");

  config.token_uri_override.clear();
  auto plain = makeFcmTokenRequests(config, [this] { return now; })();
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->url, "https://oauth2.googleapis.com/token");
}

TEST_F(TokenFixture, UnloadableKeyFailsEveryCallWithoutEchoingIt) {
  account.private_key_pem =
      "-----BEGIN PRIVATE KEY-----\nsecretsecret\n-----END PRIVATE KEY-----\n";
  auto factory = makeFcmTokenRequests(account);
  for (int i = 0; i < 2; ++i) {
    auto request = factory();
    ASSERT_FALSE(request);
    EXPECT_NE(request.error().message.find("private_key"), std::string::npos);
    EXPECT_EQ(request.error().message.find("secretsecret"), std::string::npos);
  }
}

}  // namespace
}  // namespace pushhub::providers::fcm
