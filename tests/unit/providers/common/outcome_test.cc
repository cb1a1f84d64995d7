#include "providers/common/outcome.h"

#include <gtest/gtest.h>

#include "providers/common/http_message.h"

namespace pushhub::providers {
namespace {

TEST(Outcome, KindNames) {
  EXPECT_EQ(toString(OutcomeKind::kDelivered), "Delivered");
  EXPECT_EQ(toString(OutcomeKind::kDropToken), "DropToken");
  EXPECT_EQ(toString(OutcomeKind::kRefreshAuth), "RefreshAuth");
  EXPECT_EQ(toString(OutcomeKind::kConfigError), "ConfigError");
}

TEST(Outcome, ParseRetryAfter) {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parseRetryAfter("120", now), std::chrono::seconds(120));
  EXPECT_EQ(parseRetryAfter(" 0 ", now), std::chrono::seconds(0));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:50:37 GMT", now), std::chrono::seconds(60));
  EXPECT_EQ(parseRetryAfter("Sun, 06 Nov 1994 08:40:37 GMT", now), std::chrono::seconds(0));
  EXPECT_FALSE(parseRetryAfter("", now));
  EXPECT_FALSE(parseRetryAfter("12s", now));
  EXPECT_FALSE(parseRetryAfter("tomorrow", now));
}

TEST(Response, HeaderLookup) {
  Response r;
  r.headers = {{"apns-id", "A", false}, {"retry-after", "5", false}, {"apns-id", "B", false}};
  EXPECT_EQ(r.header("apns-id"), "A");
  EXPECT_EQ(r.header("retry-after"), "5");
  EXPECT_EQ(r.header("missing"), "");
}

}  // namespace
}  // namespace pushhub::providers
