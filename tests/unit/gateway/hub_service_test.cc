#include "gateway/hub_service.h"

#include <gtest/gtest.h>

#include "base/sas.h"

namespace pushhub::gateway {
namespace {

using namespace std::chrono;

// A hub's key "full" whose secret was rotated from "old-secret" to "new-secret".
std::vector<std::string> rotated(std::string_view name) {
  if (name != "full") return {};
  return {"new-secret", "old-secret"};
}

std::string token(std::string_view resource, std::string_view key) {
  return sas::makeToken(resource, "full", key, system_clock::now() + hours(1));
}

TEST(VerifySignatureTest, TakesTheCurrentOrPreviousSecretForACoveredResource) {
  auto current = verifySignature(token("https://h:1/", "new-secret"), "/hub", rotated);
  ASSERT_TRUE(current) << current.error().message;
  EXPECT_EQ(*current, "full");
  EXPECT_TRUE(verifySignature(token("https://h:1/", "old-secret"), "/hub", rotated));
  EXPECT_TRUE(verifySignature(token("https://h:1/hub", "new-secret"), "/hub", rotated));
}

TEST(VerifySignatureTest, RefusesAMissingForgedOrMisdirectedToken) {
  auto missing = verifySignature("", "/hub", rotated);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Error::Code::kUnauthenticated);
  EXPECT_NE(missing.error().message.find("missing"), std::string::npos);

  auto forged = verifySignature(token("https://h:1/", "guessed"), "/hub", rotated);
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, Error::Code::kUnauthenticated);
  EXPECT_EQ(forged.error().message.find("guessed"), std::string::npos);  // no secret echoed

  // Signed correctly, but for another hub (with the current or the previous secret).
  for (const char* key : {"new-secret", "old-secret"}) {
    auto elsewhere = verifySignature(token("https://h:1/other", key), "/hub", rotated);
    ASSERT_FALSE(elsewhere) << key;
    EXPECT_EQ(elsewhere.error().code, Error::Code::kUnauthenticated);
    EXPECT_NE(elsewhere.error().message.find("does not cover '/hub'"), std::string::npos)
        << elsewhere.error().message;
  }
}

}  // namespace
}  // namespace pushhub::gateway
