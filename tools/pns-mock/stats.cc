#include "tools/pns-mock/stats.h"

#include <algorithm>
#include <chrono>

namespace pushhub::mock {

ReceivedEntry* ReceivedRing::next() {
  if (capacity_ == 0) {
    return nullptr;
  }
  if (entries_.size() < capacity_) {
    return &entries_.emplace_back();
  }
  ReceivedEntry* slot = &entries_[next_];
  next_ = (next_ + 1) % capacity_;
  return slot;
}

void ReceivedRing::appendTo(std::vector<ReceivedEntry>& out) const {
  if (entries_.size() < capacity_) {
    out.insert(out.end(), entries_.begin(), entries_.end());
    return;
  }
  out.insert(out.end(), entries_.begin() + static_cast<ptrdiff_t>(next_), entries_.end());
  out.insert(out.end(), entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(next_));
}

void ReceivedRing::clear() {
  entries_.clear();
  next_ = 0;
}

namespace {

// Steady clock in ns: orders the entries of every worker's ring (the wall clock may step).
uint64_t steadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Adds `n` to the count of `name`; a new name goes last, so counts keep first-seen order.
template <typename Name>
void addCount(std::vector<std::pair<Name, uint64_t>>& counts, std::string_view name, uint64_t n) {
  for (auto& [c, total] : counts) {
    if (c == name) {
      total += n;
      return;
    }
  }
  counts.emplace_back(Name(name), n);
}

// Adds the counters `from` has in common with a snapshot: `from` is one worker's ProviderStats
// (merge) or another snapshot (add).
template <typename Stats>
void addCounters(ProviderStatsSnapshot& to, const Stats& from) {
  to.accepted += from.accepted;
  for (const auto& [reason, n] : from.rejected) {
    addCount(to.rejected, reason, n);
  }
  if (to.with_tokens) {
    to.tokens.insert(from.tokens.begin(), from.tokens.end());
  }
  to.connections += from.connections;
  to.max_concurrent_seen = std::max(to.max_concurrent_seen, from.max_concurrent_seen);
  to.bytes_received += from.bytes_received;
  to.dropped_connections += from.dropped_connections;
  if (from.first_accepted_us != 0 &&
      (to.first_accepted_us == 0 || from.first_accepted_us < to.first_accepted_us)) {
    to.first_accepted_us = from.first_accepted_us;
  }
  to.last_accepted_us = std::max(to.last_accepted_us, from.last_accepted_us);
  to.tokens_issued += from.tokens_issued;
  for (const auto& [error, n] : from.token_rejected) {
    addCount(to.token_rejected, error, n);
  }
}

// {"name":n,...} of `counts`; adds their sum to `total`.
boost::json::object countsToJson(const std::vector<std::pair<std::string, uint64_t>>& counts,
                                 uint64_t& total) {
  boost::json::object o;
  for (const auto& [name, n] : counts) {
    o[name] = n;
    total += n;
  }
  return o;
}

}  // namespace

int64_t wallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ProviderStats::countAccepted(int64_t now_us) {
  ++accepted;
  if (first_accepted_us == 0) {
    first_accepted_us = now_us;
  }
  last_accepted_us = std::max(last_accepted_us, now_us);
}

void ProviderStats::countRejected(std::string_view reason) { addCount(rejected, reason, 1); }

void ProviderStats::countTokenRejection(std::string_view error) {
  addCount(token_rejected, error, 1);
}

void ProviderStats::record(const H2Request& request, std::string_view token, int status,
                           std::string_view reason, int64_t now_us) {
  ReceivedEntry* e = received.next();
  if (e == nullptr) {
    return;
  }
  e->token.assign(token);
  e->headers.resize(request.headers.size());
  for (size_t i = 0; i < request.headers.size(); ++i) {
    e->headers[i].first.assign(request.headers[i].first);
    if (request.headers[i].first == "authorization") {
      e->headers[i].second.assign("<redacted>");
    } else {
      e->headers[i].second.assign(request.headers[i].second);
    }
  }
  e->body.assign(request.body);
  e->status = status;
  e->reason.assign(reason);
  e->received_at_ms = now_us / 1000;
  e->received_at_us = now_us;
  e->order_ns = steadyNs();
}

void ProviderStats::reset() {
  accepted = 0;
  rejected.clear();
  tokens.clear();
  connections = 0;
  max_concurrent_seen = 0;
  bytes_received = 0;
  dropped_connections = 0;
  first_accepted_us = 0;
  last_accepted_us = 0;
  tokens_issued = 0;
  token_rejected.clear();
  received.clear();
}

void ProviderStatsSnapshot::merge(const ProviderStats& s) { addCounters(*this, s); }

void ProviderStatsSnapshot::add(const ProviderStatsSnapshot& s) {
  addCounters(*this, s);
  open_connections += s.open_connections;
}

boost::json::object ProviderStatsSnapshot::toJson() const {
  uint64_t rejected_total = 0;
  boost::json::object o;
  o["accepted"] = accepted;
  o["rejected"] = countsToJson(rejected, rejected_total);
  o["rejected_total"] = rejected_total;
  if (with_tokens) {
    o["distinct_tokens"] = tokens.size();
  }
  o["connections"] = connections;
  o["open_connections"] = open_connections;
  o["max_concurrent_seen"] = max_concurrent_seen;
  o["bytes_received"] = bytes_received;
  o["dropped_connections"] = dropped_connections;
  o["first_accepted_us"] = first_accepted_us;
  o["last_accepted_us"] = last_accepted_us;
  if (token_endpoint) {
    uint64_t token_rejections = 0;
    boost::json::object by_error = countsToJson(token_rejected, token_rejections);
    o["tokens_issued"] = tokens_issued;
    o["token_rejections"] = token_rejections;
    o["token_rejected"] = std::move(by_error);
  }
  return o;
}

boost::json::array receivedToJson(std::vector<ReceivedEntry> entries, size_t limit) {
  std::sort(entries.begin(), entries.end(),
            [](const ReceivedEntry& a, const ReceivedEntry& b) { return a.order_ns < b.order_ns; });
  size_t start = entries.size() > limit ? entries.size() - limit : 0;
  boost::json::array out;
  out.reserve(entries.size() - start);
  for (size_t i = start; i < entries.size(); ++i) {
    const ReceivedEntry& e = entries[i];
    boost::json::object headers;
    for (const auto& [name, value] : e.headers) {
      headers[name] = value;  // a repeated header keeps its last value here
    }
    boost::json::object o;
    o["token"] = e.token;
    o["headers"] = std::move(headers);
    o["body"] = e.body;
    o["status"] = e.status;
    o["reason"] = e.reason;
    o["received_at_ms"] = e.received_at_ms;
    o["received_at_us"] = e.received_at_us;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace pushhub::mock
