#include "providers/common/outcome.h"

#include <charconv>
#include <ctime>
#include <string>

namespace pushhub::providers {

std::string_view toString(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kDelivered:
      return "Delivered";
    case OutcomeKind::kDropToken:
      return "DropToken";
    case OutcomeKind::kRetryAfter:
      return "RetryAfter";
    case OutcomeKind::kRetryBackoff:
      return "RetryBackoff";
    case OutcomeKind::kRefreshAuth:
      return "RefreshAuth";
    case OutcomeKind::kPermanentBadRequest:
      return "PermanentBadRequest";
    case OutcomeKind::kConfigError:
      return "ConfigError";
  }
  return "Unknown";
}

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.front() >= '0' && value.front() <= '9') {
    long long seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc() || ptr != value.data() + value.size()) {
      return std::nullopt;
    }
    return std::chrono::seconds(seconds);
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::string text(value);
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') {
    return std::nullopt;
  }
  auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (when <= now) {
    return std::chrono::seconds(0);
  }
  return std::chrono::ceil<std::chrono::seconds>(when - now);
}

StatusVerdict byStatusClass(int status) {
  if (status >= 500 && status <= 599) {
    return {OutcomeKind::kRetryBackoff, "PnsUnavailable"};
  }
  if (status >= 400 && status <= 499) {
    return {OutcomeKind::kPermanentBadRequest, "UnknownError"};
  }
  return {OutcomeKind::kRetryBackoff, "UnknownError"};
}

}  // namespace pushhub::providers
