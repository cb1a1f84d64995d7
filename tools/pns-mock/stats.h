#pragma once
// pns-mock's counters and its ring of recently received requests. One ProviderStats per
// (provider, worker thread), touched only on that worker's thread with no locks; the control
// endpoint gathers copies from every worker (see WorkerPool::runOnAll) and merges them here.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tools/pns-mock/h2_server.h"

namespace pushhub::mock {

// One request as the mock saw it, for GET /_mock/received.
struct ReceivedEntry {
  std::string token;
  HeaderList headers;  // lowercase names; secrets (authorization) already redacted
  std::string body;
  int status = 0;
  std::string reason;  // empty on success
  int64_t received_at_ms = 0;
  int64_t received_at_us = 0;  // the same instant in microseconds (CLOCK_REALTIME), for latency
  uint64_t order_ns = 0;       // steady-clock stamp, to merge the workers' rings in arrival order
};

// A fixed-capacity ring of the most recent requests. Slots are overwritten in place so their
// strings keep their capacity: recording a request allocates nothing once the ring is warm.
class ReceivedRing {
 public:
  explicit ReceivedRing(size_t capacity) : capacity_(capacity) {}
  // The slot to fill for the next request, or nullptr when capacity is 0.
  ReceivedEntry* next();
  // Appends the stored entries, oldest first.
  void appendTo(std::vector<ReceivedEntry>& out) const;
  void clear();

 private:
  size_t capacity_;
  std::vector<ReceivedEntry> entries_;
  size_t next_ = 0;  // slot to overwrite once entries_ is full
};

// Counters of one provider on one worker.
struct ProviderStats {
  explicit ProviderStats(size_t keep_received) : received(keep_received) {}

  uint64_t accepted = 0;
  // Reason -> count. Reasons are string literals with static storage (see apns_handler.h).
  std::vector<std::pair<std::string_view, uint64_t>> rejected;
  std::unordered_set<std::string> tokens;
  uint64_t connections = 0;
  uint32_t max_concurrent_seen = 0;
  uint64_t bytes_received = 0;
  uint64_t dropped_connections = 0;  // closed on purpose (drop prefix)
  // Wall-clock microseconds of the first and the last accepted request since the last reset
  // (0 = none yet): benchmarks time a fan-out from its send call to its last delivery with them.
  int64_t first_accepted_us = 0;
  int64_t last_accepted_us = 0;
  // The OAuth token endpoint (FCM, WNS): access tokens issued, and refusals by OAuth error
  // (static-storage strings, like `rejected`).
  uint64_t tokens_issued = 0;
  std::vector<std::pair<std::string_view, uint64_t>> token_rejected;
  ReceivedRing received;

  // Counts one accepted request received at `now_us` (wallUs()).
  void countAccepted(int64_t now_us);
  void countRejected(std::string_view reason);
  void countTokenRejection(std::string_view error);
  // Adds `request` to the received ring (authorization redacted). `status` 0 = not answered.
  void record(const H2Request& request, std::string_view token, int status, std::string_view reason,
              int64_t now_us);
  void reset();
};

// The merge of every worker's ProviderStats (received ring excluded).
struct ProviderStatsSnapshot {
  uint64_t accepted = 0;
  std::vector<std::pair<std::string, uint64_t>> rejected;
  std::unordered_set<std::string> tokens;
  uint64_t connections = 0;
  uint64_t open_connections = 0;
  uint32_t max_concurrent_seen = 0;
  uint64_t bytes_received = 0;
  uint64_t dropped_connections = 0;
  int64_t first_accepted_us = 0;  // earliest of the workers' (0 = none)
  int64_t last_accepted_us = 0;   // latest of the workers'
  uint64_t tokens_issued = 0;
  std::vector<std::pair<std::string, uint64_t>> token_rejected;
  // False: `tokens` is left empty and distinct_tokens is not reported. Copying every token seen
  // costs O(distinct tokens) on each worker thread, too much for a poller during a fan-out.
  bool with_tokens = true;
  // True: the provider has a token endpoint, and toJson reports its counters.
  bool token_endpoint = false;

  void merge(const ProviderStats& s);
  // Adds another snapshot (the per-worker snapshots into the total).
  void add(const ProviderStatsSnapshot& s);
  // {"accepted":N,"rejected":{"Unregistered":n,...},"distinct_tokens":N,"connections":N,...},
  // then, with token_endpoint, "tokens_issued", "token_rejections" and "token_rejected".
  boost::json::object toJson() const;
};

// Wall clock (CLOCK_REALTIME) in microseconds since the epoch.
int64_t wallUs();

// Most recent `limit` entries of all workers' rings, oldest first, as a JSON array.
boost::json::array receivedToJson(std::vector<ReceivedEntry> entries, size_t limit);

}  // namespace pushhub::mock
