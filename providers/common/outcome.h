#pragma once
// The one result every provider response is classified into (DESIGN.md, data flow step 4):
// what the dispatcher must do next with this target, plus the Azure Notification Hubs outcome
// name it is counted under. Plain values; safe to copy between threads.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pushhub::providers {

enum class OutcomeKind {
  kDelivered,            // the provider accepted the notification
  kDropToken,            // the handle is dead or belongs elsewhere: remove it from the registry
  kRetryAfter,           // throttled: retry after `retry_after` (0 = use the backoff policy)
  kRetryBackoff,         // transient provider or transport failure: retry with backoff
  kRefreshAuth,          // our credential expired: refresh it, retry once
  kPermanentBadRequest,  // the request itself is wrong: never retry as is
  kConfigError,          // credential/topic configuration is wrong: alert the operator
};

std::string_view toString(OutcomeKind kind);

struct Outcome {
  OutcomeKind kind = OutcomeKind::kRetryBackoff;
  int http_status = 0;  // 0 when no response was received
  std::string reason;   // provider reason ("Unregistered") or the transport/encode error text
  // Azure outcome name, always a string literal: "Success", "WrongToken" (bad/dead token),
  // "ExpiredChannel" (410 expired/unregistered), "Throttled", "InvalidCredentials",
  // "InvalidNotificationSize", "InvalidNotificationFormat", "PnsUnreachable", "PnsUnavailable",
  // "PnsInterfaceError", "BadChannel", "Dropped", "Expired", "UnknownError".
  std::string_view azure_outcome = "UnknownError";
  std::chrono::seconds retry_after{0};
  // The connection that carried this response should be replaced (e.g. APNs wedges a connection
  // after ExpiredProviderToken; 503 Shutdown).
  bool recycle_connection = false;
};

// What an HTTP status means when a provider's own table does not name it, by its class: 5xx is
// the provider's trouble (retry with backoff, "PnsUnavailable"), another 4xx is our request's
// (never retried as is, "UnknownError"), anything else is unexpected (retry, "UnknownError").
struct StatusVerdict {
  OutcomeKind kind;
  std::string_view azure_outcome;  // a string literal
};
StatusVerdict byStatusClass(int status);

// Parses a Retry-After header value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 9110).
// Dates in the past give 0 s. nullopt if the value is neither.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now);

}  // namespace pushhub::providers
