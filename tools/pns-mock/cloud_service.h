#pragma once
// What pns-mock's OAuth-based providers (FCM, WNS) share: per-worker stats and settings, the
// token endpoint counters, access-token revocation, throttling, and the MockProvider control
// operations. FcmService and WnsService add their rules, handlers and token lists.
//
// Threads: constructed on the main thread before the workers start; factory() and
// connectionOptions() run on the workers; the MockProvider methods may be called from any
// thread and fan out to every worker (WorkerPool::runOnAll), so nothing here takes a lock.

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tools/pns-mock/control.h"
#include "tools/pns-mock/h2_server.h"
#include "tools/pns-mock/stats.h"

namespace pushhub::mock {

struct CloudSettings {
  uint32_t max_concurrent_streams = 1000;  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (no gate)
  uint32_t delay_ms = 0;
  size_t keep_received = 10000;
  uint32_t throttle_every = 0;  // every Nth well-formed, authenticated send is throttled; 0 = off
  uint32_t retry_after_s = 1;   // Retry-After of throttled answers
  int64_t token_ttl_s = 3600;   // expires_in of issued access tokens
  bool allow_http1 = true;      // serve HTTP/1.1 (when ALPN picks it or none is sent)
};

// Everything one worker thread owns for one provider, but the provider's rules.
struct CloudWorker {
  explicit CloudWorker(CloudSettings s) : settings(s), stats(s.keep_received) {}
  virtual ~CloudWorker() = default;

  CloudSettings settings;
  ProviderStats stats;
  std::mt19937_64 rng{std::random_device{}()};
  uint64_t open_connections = 0;
  uint64_t revoked_below = 0;  // access tokens with a smaller serial were expired
  uint64_t tokens_issued = 0;
  // OAuth error -> count (static-storage strings).
  std::vector<std::pair<std::string_view, uint64_t>> token_rejected;
  // Shared by every worker of the provider: the throttling counter (touched only when
  // throttling is on).
  std::shared_ptr<std::atomic<uint64_t>> sends;

  // True when this send is the throttled Nth one. Worker thread.
  bool throttleThisSend();
  void countTokenRejection(std::string_view error);
  // Adds one entry to the received ring (authorization redacted).
  void record(const H2Request& request, std::string_view token, int status, std::string_view reason,
              int64_t now_us);
};

class CloudService : public MockProvider {
 public:
  CloudService(WorkerPool& workers, std::string name);

  H2Connection::Factory factory();
  std::function<H2ConnectionOptions(size_t)> connectionOptions();
  void attach(H2Listener* listener) { listener_ = listener; }

  std::string_view name() const override { return name_; }
  void stats(bool with_tokens, std::function<void(boost::json::object)> done) override;
  void received(size_t limit, std::function<void(boost::json::array)> done) override;
  void reset(std::function<void()> done) override;
  void configure(std::optional<uint32_t> max_concurrent_streams, std::optional<uint32_t> delay_ms,
                 std::function<void()> done) override;
  void goaway(std::string debug_data, std::function<void()> done) override;
  bool expireTokens(std::function<void()> done) override;
  Result<std::string> normalizeToken(std::string_view token) const override;

 protected:
  // Makes the handler of a new connection on `worker`'s thread.
  virtual std::unique_ptr<H2Handler> makeHandler(size_t worker) = 0;
  // The serial the provider's minter will give next (tokens below it exist).
  virtual uint64_t nextTokenSerial() const = 0;
  // Registers a derived class's per-worker state (call once per worker, in order).
  void addWorker(std::shared_ptr<CloudWorker> w);

  WorkerPool& workers_;

 private:
  std::string name_;
  H2Listener* listener_ = nullptr;
  std::vector<std::shared_ptr<CloudWorker>> common_;
  std::shared_ptr<std::atomic<uint64_t>> sends_ = std::make_shared<std::atomic<uint64_t>>(0);
};

// Wall clock in ms since the epoch; steady clock in ns (to order received entries).
int64_t wallMs();
uint64_t steadyNs();

}  // namespace pushhub::mock
