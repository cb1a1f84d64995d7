#pragma once
// Run-time faults (POST /_mock/faults): for a while, or for a number of requests, a provider
// answers its well-formed, authenticated requests with a fault instead of their normal answer, so
// every retry path of a client can be driven end to end. One fault per provider at a time; a new
// one replaces it.
//
// Threads: a Fault is made by the control API, then shared (shared_ptr) by every worker thread
// and the provider's listener; take() may be called from any of them at once.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "base/result.h"

namespace pushhub::mock {

enum class FaultKind {
  kThrottle,       // APNs 429 TooManyRequests, FCM 429 QUOTA_EXCEEDED, WNS 406 (+ Retry-After)
  kUnavailable,    // APNs 503 ServiceUnavailable, FCM 503 UNAVAILABLE, WNS 503 (+ Retry-After)
  kInternalError,  // APNs 500 InternalServerError, FCM 500 INTERNAL, WNS 500
  kSlow,           // the normal answer, delay_ms late
  kDrop,           // the connection is closed instead of answering
  kRefuse,         // open connections are closed and new ones closed as soon as accepted
};

struct Fault {
  FaultKind kind = FaultKind::kThrottle;
  uint32_t retry_after_s = 0;  // kThrottle, kUnavailable: the Retry-After header; 0 = none
  uint32_t delay_ms = 0;       // kSlow
  // Only requests for this APNs topic or FCM project (a hub's credentials); empty = every one.
  std::string match;
  int64_t until_ms = 0;           // wall clock; 0 = no time limit (then `left` is one)
  std::atomic<int64_t> left{-1};  // requests still to fault; -1 = no count limit
  std::atomic<uint64_t> applied{0};

  // True when a request for `key` (topic or project; empty for a new connection) at `now_ms`
  // gets the fault; uses one of `left`.
  bool take(std::string_view key, int64_t now_ms);
  bool expired(int64_t now_ms) const;
  boost::json::object toJson() const;
};

// Parses the body of POST /_mock/faults (docs/pns-mock.md); "fault":"none" gives a Fault with
// no effect (it is expired). The provider name is the caller's.
Result<std::shared_ptr<Fault>> parseFault(const boost::json::object& body, int64_t now_ms);

std::string_view toString(FaultKind kind);

}  // namespace pushhub::mock
