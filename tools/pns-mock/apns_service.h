#pragma once
// The APNs emulation of pns-mock: joins the pure validation (apns_handler.h) to the HTTP/2 core
// (h2_server.h), keeps per-worker rules and settings, and implements the control operations that
// are APNs's own (configure; the others are ProviderService's).
//
// Stream limits like real APNs with token auth: a new connection advertises
// `initial_streams` until a request with a valid provider token succeeds, then SETTINGS with
// `max_concurrent_streams` (when initial_streams is 0 or >= max, the max is advertised at once).
// Optionally (`drop_to_one_on_reject`) a rejection drops the limit to 1 until the next success.

#include <memory>
#include <vector>

#include "tools/pns-mock/apns_handler.h"
#include "tools/pns-mock/provider_service.h"

namespace pushhub::mock {

struct ApnsSettings {
  uint32_t max_concurrent_streams = 1000;
  uint32_t initial_streams = 1;
  uint32_t delay_ms = 0;
  bool drop_to_one_on_reject = false;
  size_t keep_received = 10000;
};

// Threads as ProviderService; its H2 factory and options run on the workers.
class ApnsService : public ProviderService {
 public:
  ApnsService(WorkerPool& workers, ApnsRules rules, ApnsSettings settings);
  ~ApnsService() override;

  // For the H2Listener. The listener must be set (attach) before connections arrive.
  H2Connection::Factory factory();
  std::function<H2ConnectionOptions(size_t)> connectionOptions();

  void configure(std::optional<uint32_t> max_concurrent_streams, std::optional<uint32_t> delay_ms,
                 std::function<void()> done) override;

  // Everything one worker thread owns for APNs. Public for the connection handler.
  struct Worker : ProviderWorker {
    Worker(ApnsRules r, ApnsSettings s)
        : ProviderWorker(s.keep_received), rules(std::move(r)), settings(s) {}
    void addTokens(const std::vector<std::string>& dead,
                   const std::vector<std::string>& bad) override;

    ApnsRules rules;
    ApnsSettings settings;
  };

 private:
  ProviderWorker& providerWorker(size_t i) override { return *per_worker_[i]; }

  std::vector<std::shared_ptr<Worker>> per_worker_;  // handlers share them (shutdown order)
};

}  // namespace pushhub::mock
