#include "tools/pns-mock/faults.h"

#include <array>
#include <memory>
#include <utility>

namespace pushhub::mock {
namespace {

constexpr std::array<std::pair<FaultKind, std::string_view>, 6> kKinds{{
    {FaultKind::kThrottle, "throttle"},
    {FaultKind::kUnavailable, "unavailable"},
    {FaultKind::kInternalError, "internal"},
    {FaultKind::kSlow, "slow"},
    {FaultKind::kDrop, "drop"},
    {FaultKind::kRefuse, "refuse"},
}};

Result<int64_t> number(const boost::json::object& body, std::string_view key, int64_t min,
                       int64_t max, int64_t fallback) {
  const auto* v = body.if_contains(key);
  if (!v) return fallback;
  if (!v->is_int64() && !v->is_uint64()) {
    return Error::invalidArgument(std::string(key) + ": expected a whole number");
  }
  int64_t n = v->is_int64() ? v->as_int64() : static_cast<int64_t>(v->as_uint64());
  if (n < min || n > max) {
    return Error::invalidArgument(std::string(key) + ": must be " + std::to_string(min) + ".." +
                                  std::to_string(max));
  }
  return n;
}

}  // namespace

std::string_view toString(FaultKind kind) {
  for (const auto& [k, name] : kKinds) {
    if (k == kind) return name;
  }
  return "?";
}

bool Fault::expired(int64_t now_ms) const {
  return (until_ms != 0 && now_ms >= until_ms) || left.load(std::memory_order_relaxed) == 0;
}

bool Fault::take(std::string_view key, int64_t now_ms) {
  if (!match.empty() && key != match) return false;
  if (until_ms != 0 && now_ms >= until_ms) return false;
  int64_t n = left.load(std::memory_order_relaxed);
  while (n != -1) {
    if (n == 0) return false;
    if (left.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) break;
  }
  applied.fetch_add(1, std::memory_order_relaxed);
  return true;
}

boost::json::object Fault::toJson() const {
  boost::json::object o;
  o["fault"] = toString(kind);
  o["applied"] = applied.load(std::memory_order_relaxed);
  int64_t n = left.load(std::memory_order_relaxed);
  if (n >= 0) o["left"] = n;
  if (until_ms != 0) o["until_ms"] = until_ms;
  if (!match.empty()) o["match"] = match;
  return o;
}

Result<std::shared_ptr<Fault>> parseFault(const boost::json::object& body, int64_t now_ms) {
  const auto* kind = body.if_contains("fault");
  if (!kind || !kind->is_string()) {
    return Error::invalidArgument(
        "fault: expected one of throttle, unavailable, internal, slow, drop, refuse, none");
  }
  auto fault = std::make_shared<Fault>();
  if (kind->as_string() == "none") {
    fault->left = 0;
    return fault;
  }
  bool known = false;
  for (const auto& [k, name] : kKinds) {
    if (kind->as_string() == name) {
      fault->kind = k;
      known = true;
    }
  }
  if (!known) {
    return Error::invalidArgument("fault: unknown '" + std::string(kind->as_string()) +
                                  "'; expected throttle, unavailable, internal, slow, drop, "
                                  "refuse or none");
  }
  auto count = number(body, "count", 1, int64_t{1} << 40, -1);
  auto duration = number(body, "duration_ms", 1, 24 * 3600 * 1000, 0);
  auto retry_after =
      number(body, "retry_after", 0, 86400, fault->kind == FaultKind::kThrottle ? 1 : 0);
  auto delay = number(body, "delay_ms", 1, 600000, fault->kind == FaultKind::kSlow ? -1 : 0);
  for (const auto* r : {&count, &duration, &retry_after, &delay}) {
    if (!*r) return r->error();
  }
  if (*count == -1 && *duration == 0) {
    return Error::invalidArgument("count or duration_ms: say how long the fault lasts");
  }
  if (fault->kind == FaultKind::kSlow && *delay < 0) {
    return Error::invalidArgument("delay_ms: required for a slow fault (1..600000)");
  }
  fault->left = *count;
  fault->until_ms = *duration == 0 ? 0 : now_ms + *duration;
  fault->retry_after_s = static_cast<uint32_t>(*retry_after);
  fault->delay_ms = static_cast<uint32_t>(std::max<int64_t>(0, *delay));
  if (const auto* m = body.if_contains("match")) {
    if (!m->is_string()) return Error::invalidArgument("match: expected a string");
    if (fault->kind == FaultKind::kRefuse) {
      return Error::invalidArgument("match: a refused connection has no topic or project yet");
    }
    fault->match = std::string(m->as_string());
  }
  return fault;
}

}  // namespace pushhub::mock
