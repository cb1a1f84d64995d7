#include "base/sas.h"

#include <gtest/gtest.h>

namespace pushhub::sas {
namespace {

using namespace std::chrono;

// The spec's vector (anh-wire.md section 4), checked against openssl dgst.
constexpr char kVectorHeader[] =
    "SharedAccessSignature sr=https%3A%2F%2Flocalhost%3A47443%2F&sig="
    "sADBo0q6Dwqfkt3ej8XBhTn%2F3BKoZFlUltxPw1p4x7g%3D&se=1795276260&skn="
    "DefaultFullSharedAccessSignature";
const system_clock::time_point kVectorExpiry{seconds(1795276260)};

std::vector<std::string> vectorKey(std::string_view name) {
  if (name == "DefaultFullSharedAccessSignature") return {"testkey123="};
  return {};
}

TEST(SasTest, MakeTokenMatchesTheAzureSdkVector) {
  EXPECT_EQ(makeToken("https://localhost:47443/", "DefaultFullSharedAccessSignature",
                      "testkey123=", kVectorExpiry),
            kVectorHeader);
}

TEST(SasTest, VerifiesTheVectorBeforeExpiry) {
  auto verified = verifyToken(kVectorHeader, vectorKey, kVectorExpiry - hours(1), "/myhub");
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->key_name, "DefaultFullSharedAccessSignature");
}

TEST(SasTest, RejectsExpiredWrongKeyTamperedAndMalformed) {
  EXPECT_FALSE(verifyToken(kVectorHeader, vectorKey, kVectorExpiry + hours(1), "/"));
  auto other_key = [](std::string_view) { return std::vector<std::string>{"otherkey"}; };
  EXPECT_FALSE(verifyToken(kVectorHeader, other_key, kVectorExpiry - hours(1), "/"));
  std::string tampered = kVectorHeader;
  tampered.replace(tampered.find("se=1795276260"), 13, "se=1795276261");
  EXPECT_FALSE(verifyToken(tampered, vectorKey, kVectorExpiry - hours(1), "/"));
  EXPECT_FALSE(verifyToken("Bearer abc", vectorKey, kVectorExpiry - hours(1), "/"));
  EXPECT_FALSE(verifyToken("SharedAccessSignature sr=x&se=1", vectorKey, kVectorExpiry, "/"));
  auto unknown = verifyToken(
      kVectorHeader, [](std::string_view) { return std::vector<std::string>(); },
      kVectorExpiry - hours(1), "/");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Error::Code::kUnauthenticated);
}

TEST(SasTest, SrMustCoverTheResource) {
  struct Case {
    std::string_view sr, path;
    bool covered;
  };
  const Case cases[] = {
      {"https%3A%2F%2Flocalhost%3A47443%2F", "/myhub", true},  // the JS SDK: namespace root
      {"https%3A%2F%2Flocalhost%3A47443", "/myhub", true},     // root without the slash
      {"https%3A%2F%2Flocalhost%3A47443%2F", "/", true},
      {"http%3a%2f%2fns.servicebus.windows.net%2fmyhub", "/myhub", true},  // docs' sample
      {"https%3A%2F%2Fhost%2FMyHub%2F", "/myhub", true},                   // case-insensitive
      {"https%3A%2F%2Fhost%2Fmyhub", "/myhub/installations/i1", true},
      {"https%3A%2F%2Fhost%2Fmyhub%2Finstallations%2Fi1", "/myhub/installations/i1", true},
      {"https%3A%2F%2Fhost%2Fotherhub", "/myhub", false},
      {"https%3A%2F%2Fhost%2Fmyhub", "/myhub2", false},  // a segment, not a string prefix
      {"https%3A%2F%2Fhost%2Fmyhub%2Finstallations%2Fi1", "/myhub", false},
      {"https%3A%2F%2Fhost%2Fmyhub", "/", false},  // a hub's token cannot act on the namespace
      {"%2Fmyhub", "/myhub", true},                // no scheme: the path alone
      {"%2Fmyhub", "/other", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(covers(c.sr, c.path), c.covered) << c.sr << " on " << c.path;
  }
  auto elsewhere = verifyToken(kVectorHeader, vectorKey, kVectorExpiry - hours(1), "/myhub");
  ASSERT_TRUE(elsewhere);  // the vector signs the root
  std::string scoped = makeToken("https://localhost:47443/hub-a",
                                 "DefaultFullSharedAccessSignature", "testkey123=", kVectorExpiry);
  EXPECT_TRUE(verifyToken(scoped, vectorKey, kVectorExpiry - hours(1), "/hub-a"));
  auto refused = verifyToken(scoped, vectorKey, kVectorExpiry - hours(1), "/hub-b");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Error::Code::kUnauthenticated);
  EXPECT_NE(refused.error().message.find("does not cover '/hub-b'"), std::string::npos);
}

TEST(SasTest, ParsesConnectionStringsWithPaddedKeys) {
  auto cs = parseConnectionString(
      " Endpoint=sb://127.0.0.1:8443/;SharedAccessKeyName=DefaultListenSharedAccessSignature;"
      "SharedAccessKey=abc==; ");
  ASSERT_TRUE(cs) << cs.error().message;
  EXPECT_EQ(cs->key, "abc==");
  EXPECT_EQ(cs->httpsEndpoint(), "https://127.0.0.1:8443/");
  auto missing = parseConnectionString("Endpoint=sb://x/;SharedAccessKeyName=a");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("SharedAccessKey"), std::string::npos);
}

}  // namespace
}  // namespace pushhub::sas
