#include "base/url_encoding.h"

#include <gtest/gtest.h>

namespace pushhub::url {
namespace {

TEST(UrlEncodingTest, EncodesAsEncodeUriComponentAndRoundTrips) {
  EXPECT_EQ(encodeComponent("https://x:1/"), "https%3A%2F%2Fx%3A1%2F");
  EXPECT_EQ(encodeComponent("a-_.!~*'()z"), "a-_.!~*'()z");
  EXPECT_EQ(encodeComponent("a b+\xff"), "a%20b%2B%FF");
  std::string raw = "a b/c+d=e&f%";
  EXPECT_EQ(decode(encodeComponent(raw)), raw);
}

TEST(UrlEncodingTest, DecodesAnyInputAndPlusOnlyInForms) {
  EXPECT_EQ(decode("a%2fb%2F"), "a/b/");
  EXPECT_EQ(decode("a+b"), "a b");
  EXPECT_EQ(decode("a+b", false), "a+b");
  // Escapes that are not two hex digits stay as they are.
  EXPECT_EQ(decode("%"), "%");
  EXPECT_EQ(decode("%4"), "%4");
  EXPECT_EQ(decode("%zz%4g"), "%zz%4g");
  EXPECT_EQ(decode("100%"), "100%");
  EXPECT_EQ(decode("%41%"), "A%");
}

}  // namespace
}  // namespace pushhub::url
