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

void ProviderStats::countRejected(std::string_view reason) {
  for (auto& [r, n] : rejected) {
    if (r == reason) {
      ++n;
      return;
    }
  }
  rejected.emplace_back(reason, 1);
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
  received.clear();
}

void ProviderStatsSnapshot::merge(const ProviderStats& s) {
  accepted += s.accepted;
  for (const auto& [reason, n] : s.rejected) {
    auto it = std::find_if(rejected.begin(), rejected.end(),
                           [&](const auto& p) { return p.first == reason; });
    if (it == rejected.end()) {
      rejected.emplace_back(std::string(reason), n);
    } else {
      it->second += n;
    }
  }
  if (with_tokens) {
    tokens.insert(s.tokens.begin(), s.tokens.end());
  }
  connections += s.connections;
  max_concurrent_seen = std::max(max_concurrent_seen, s.max_concurrent_seen);
  bytes_received += s.bytes_received;
  dropped_connections += s.dropped_connections;
  mergeTimes(s.first_accepted_us, s.last_accepted_us);
}

void ProviderStatsSnapshot::add(const ProviderStatsSnapshot& s) {
  accepted += s.accepted;
  for (const auto& [reason, n] : s.rejected) {
    auto it = std::find_if(rejected.begin(), rejected.end(),
                           [&](const auto& p) { return p.first == reason; });
    if (it == rejected.end()) {
      rejected.emplace_back(reason, n);
    } else {
      it->second += n;
    }
  }
  if (with_tokens) {
    tokens.insert(s.tokens.begin(), s.tokens.end());
  }
  connections += s.connections;
  open_connections += s.open_connections;
  max_concurrent_seen = std::max(max_concurrent_seen, s.max_concurrent_seen);
  bytes_received += s.bytes_received;
  dropped_connections += s.dropped_connections;
  mergeTimes(s.first_accepted_us, s.last_accepted_us);
}

void ProviderStatsSnapshot::mergeTimes(int64_t first_us, int64_t last_us) {
  if (first_us != 0 && (first_accepted_us == 0 || first_us < first_accepted_us)) {
    first_accepted_us = first_us;
  }
  last_accepted_us = std::max(last_accepted_us, last_us);
}

boost::json::object ProviderStatsSnapshot::toJson() const {
  boost::json::object rejected_json;
  uint64_t rejected_total = 0;
  for (const auto& [reason, n] : rejected) {
    rejected_json[reason] = n;
    rejected_total += n;
  }
  boost::json::object o;
  o["accepted"] = accepted;
  o["rejected"] = std::move(rejected_json);
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
