#pragma once
// The APNs emulation of pns-mock: joins the pure validation (apns_handler.h) to the HTTP/2 core
// (h2_server.h), keeps per-worker stats and rules, and implements the control operations.
//
// Stream limits like real APNs with token auth: a new connection advertises
// `initial_streams` until a request with a valid provider token succeeds, then SETTINGS with
// `max_concurrent_streams` (when initial_streams is 0 or >= max, the max is advertised at once).
// Optionally (`drop_to_one_on_reject`) a rejection drops the limit to 1 until the next success.

#include <atomic>
#include <memory>
#include <random>
#include <vector>

#include "tools/pns-mock/apns_handler.h"
#include "tools/pns-mock/control.h"
#include "tools/pns-mock/h2_server.h"
#include "tools/pns-mock/stats.h"

namespace pushhub::mock {

struct ApnsSettings {
  uint32_t max_concurrent_streams = 1000;
  uint32_t initial_streams = 1;
  uint32_t delay_ms = 0;
  bool drop_to_one_on_reject = false;
  size_t keep_received = 10000;
};

// Constructed on the main thread before the workers start; its H2 factory and options run on
// the workers; the MockProvider methods may be called from any thread.
class ApnsService : public MockProvider {
 public:
  ApnsService(WorkerPool& workers, ApnsRules rules, ApnsSettings settings);
  ~ApnsService() override;

  // For the H2Listener. The listener must be set (attach) before connections arrive.
  H2Connection::Factory factory();
  std::function<H2ConnectionOptions(size_t)> connectionOptions();
  void attach(H2Listener* listener) { listener_ = listener; }

  std::string_view name() const override { return "apns"; }
  void stats(bool with_tokens, std::function<void(boost::json::object)> done) override;
  void received(size_t limit, std::function<void(boost::json::array)> done) override;
  void reset(std::function<void()> done) override;
  void configure(std::optional<uint32_t> max_concurrent_streams, std::optional<uint32_t> delay_ms,
                 std::function<void()> done) override;
  void goaway(std::string debug_data, std::function<void()> done) override;
  void addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                 std::function<void()> done) override;

  // Everything one worker thread owns for APNs. Public for the connection handler.
  struct Worker {
    Worker(ApnsRules r, ApnsSettings s)
        : rules(std::move(r)), settings(s), stats(s.keep_received) {}
    ApnsRules rules;
    ApnsSettings settings;
    ProviderStats stats;
    std::mt19937_64 rng{std::random_device{}()};
    uint64_t open_connections = 0;
  };

 private:
  WorkerPool& workers_;
  H2Listener* listener_ = nullptr;
  std::vector<std::shared_ptr<Worker>> per_worker_;  // handlers share them (shutdown order)
};

}  // namespace pushhub::mock
