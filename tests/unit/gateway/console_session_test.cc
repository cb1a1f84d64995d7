#include "gateway/console_session.h"

#include <gtest/gtest.h>

namespace pushhub::gateway::console {
namespace {

const Session kSession{"Shop", "DefaultFullSharedAccessSignature", 1900000000,
                       "00112233445566778899aabbccddeeff"};

TEST(ConsoleSessionTest, RoundTripsAndVerifiesWithItsKeyOnly) {
  std::string cookie = encode(kSession, "secret-one");
  // Nothing in it may need quoting in a Set-Cookie header, and the secret is not in it.
  EXPECT_EQ(cookie.find_first_of(" ;,\"\\="), std::string::npos) << cookie;
  EXPECT_EQ(cookie.find("secret-one"), std::string::npos);
  auto decoded = decode(cookie);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->hub, "Shop");
  EXPECT_EQ(decoded->key_name, "DefaultFullSharedAccessSignature");
  EXPECT_EQ(decoded->expires, 1900000000);
  EXPECT_EQ(decoded->nonce, kSession.nonce);
  EXPECT_TRUE(verify(cookie, "secret-one"));
  EXPECT_FALSE(verify(cookie, "secret-two"));  // another key, or this one rotated
}

TEST(ConsoleSessionTest, AnyChangeFailsTheSignature) {
  std::string cookie = encode(kSession, "k");
  for (size_t i = 0; i < cookie.size(); ++i) {
    if (cookie[i] == '.') continue;
    std::string forged = cookie;
    forged[i] = forged[i] == '0' ? '1' : '0';
    EXPECT_FALSE(verify(forged, "k")) << "byte " << i;
  }
  // A later expiry, signed by someone without the key.
  Session longer = kSession;
  longer.expires += 86400;
  std::string resigned = encode(longer, "guess");
  EXPECT_FALSE(verify(resigned, "k"));
  EXPECT_FALSE(verify("", "k"));
  EXPECT_FALSE(verify("no-dot-at-all", "k"));
}

TEST(ConsoleSessionTest, MalformedValuesDoNotDecode) {
  std::string cookie = encode(kSession, "k");
  EXPECT_FALSE(decode(""));
  EXPECT_FALSE(decode("v2" + cookie.substr(2)));
  EXPECT_FALSE(decode(cookie + ".extra"));
  EXPECT_FALSE(decode(cookie.substr(0, cookie.size() - 1)));  // short signature
  EXPECT_FALSE(decode("v1.zz.6b.1.00112233445566778899aabbccddeeff." + std::string(64, '0')));
  EXPECT_FALSE(decode("v1..6b.1.00112233445566778899aabbccddeeff." + std::string(64, '0')));
  EXPECT_FALSE(decode("v1.61.6b.soon.00112233445566778899aabbccddeeff." + std::string(64, '0')));
  EXPECT_FALSE(decode(std::string(5000, 'a')));
}

TEST(ConsoleSessionTest, CsrfTokenIsPerSessionAndKey) {
  Session other = kSession;
  other.nonce = newNonce();
  EXPECT_EQ(other.nonce.size(), 32u);
  EXPECT_NE(other.nonce, newNonce());
  EXPECT_EQ(csrfToken(kSession, "k"), csrfToken(kSession, "k"));
  EXPECT_NE(csrfToken(kSession, "k"), csrfToken(other, "k"));
  EXPECT_NE(csrfToken(kSession, "k"), csrfToken(kSession, "k2"));
  EXPECT_EQ(csrfToken(kSession, "k").size(), 32u);
}

}  // namespace
}  // namespace pushhub::gateway::console
