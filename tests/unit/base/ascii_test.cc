#include "base/ascii.h"

#include <gtest/gtest.h>

#include <string>

namespace pushhub::ascii {
namespace {

bool isHex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool isPrintable(unsigned char c) { return c >= 0x20 && c <= 0x7e; }
bool isJsonPlain(unsigned char c) { return isPrintable(c) && c != '"' && c != '\\'; }
bool isVisible(unsigned char c) { return c >= 0x21 && c <= 0x7e; }
bool isFieldText(unsigned char c) { return isPrintable(c) || c == '\t'; }

// Every byte value at every position of strings of every length up to 17 (so in a full word,
// in the padded tail and in both), surrounded by bytes each class accepts.
TEST(Ascii, EveryByteAtEveryPositionAgreesWithTheByteByByteCheck) {
  for (size_t len = 1; len <= 17; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int b = 0; b < 256; ++b) {
        std::string s(len, 'a');
        s[pos] = static_cast<char>(b);
        auto c = static_cast<unsigned char>(b);
        ASSERT_EQ(allHex(s), isHex(c)) << "len " << len << " pos " << pos << " byte " << b;
        ASSERT_EQ(allPrintable(s), isPrintable(c))
            << "len " << len << " pos " << pos << " byte " << b;
        ASSERT_EQ(allVisible(s), isVisible(c)) << "len " << len << " pos " << pos << " byte " << b;
        ASSERT_EQ(allFieldText(s), isFieldText(c))
            << "len " << len << " pos " << pos << " byte " << b;
        ASSERT_EQ(allJsonPlain(s), isJsonPlain(c))
            << "len " << len << " pos " << pos << " byte " << b;
      }
    }
  }
}

TEST(Ascii, EmptyAndTypicalStrings) {
  EXPECT_TRUE(allHex(""));
  EXPECT_TRUE(allPrintable(""));
  EXPECT_TRUE(allJsonPlain(""));
  EXPECT_TRUE(allHex("0123456789abcdefABCDEF"));
  EXPECT_FALSE(allHex("0123456789abcdefg"));
  EXPECT_FALSE(allHex(std::string(64, 'a') + "@"));  // '@' + 0x20 folds onto '`', not a-f
  EXPECT_TRUE(allPrintable("dKx3_fcm-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"));
  EXPECT_FALSE(allPrintable(std::string("tok\0en", 6)));
  EXPECT_FALSE(allJsonPlain("to\"ken"));
  EXPECT_FALSE(allJsonPlain("tok\\en"));
  EXPECT_TRUE(allJsonPlain("~ !#$%&'()*+,-./:;<=>?@[]^_`{|}"));
}

}  // namespace
}  // namespace pushhub::ascii
