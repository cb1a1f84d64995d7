#pragma once
// What every pns-mock provider service (ApnsService, CloudService) shares: state split per
// worker thread, the listener its connections run on, and the control operations that do not
// depend on the provider's rules (stats, received, reset, goaway, tokens).
//
// Threads: constructed on the main thread before the workers start; attach() on the main thread
// before connections arrive; the MockProvider methods may be called from any thread and fan out
// to every worker (WorkerPool::runOnAll), so nothing here takes a lock.

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tools/pns-mock/control.h"
#include "tools/pns-mock/faults.h"
#include "tools/pns-mock/h2_server.h"
#include "tools/pns-mock/stats.h"

namespace pushhub::mock {

// What one worker thread owns for one provider; a provider's worker adds its rules and settings.
// Touched only on its worker's thread. Shared (shared_ptr) by the service and the connection
// handlers, which may outlive the service at shutdown.
struct ProviderWorker {
  explicit ProviderWorker(size_t keep_received) : stats(keep_received) {}
  virtual ~ProviderWorker() = default;

  // Adds explicit dead / bad tokens (already normalized) to this worker's rules.
  virtual void addTokens(const std::vector<std::string>& dead,
                         const std::vector<std::string>& bad) = 0;

  // The fault a well-formed, authenticated request for `key` (APNs topic, FCM project; empty
  // for WNS) gets now, or nullptr; a refusal is the listener's, never a request's.
  Fault* faultFor(std::string_view key, int64_t now_ms) {
    Fault* f = fault.get();
    return f && f->kind != FaultKind::kRefuse && f->take(key, now_ms) ? f : nullptr;
  }

  ProviderStats stats;
  std::mt19937_64 rng{std::random_device{}()};  // message ids
  uint64_t open_connections = 0;
  std::shared_ptr<Fault> fault;  // shared by every worker (and the listener) of the provider
};

class ProviderService : public MockProvider {
 public:
  // `token_endpoint`: the provider issues access tokens, and its stats report the counters of
  // its token endpoint.
  ProviderService(WorkerPool& workers, std::string name, bool token_endpoint);

  // The listener serving this provider's port (not owned; must outlive the service's use by the
  // control API). Set it before connections arrive.
  void attach(H2Listener* listener) { listener_ = listener; }

  std::string_view name() const override { return name_; }
  void stats(bool with_tokens, std::function<void(boost::json::object)> done) override;
  void received(size_t limit, std::function<void(boost::json::array)> done) override;
  void reset(std::function<void()> done) override;
  void goaway(std::string debug_data, std::function<void()> done) override;
  void addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                 std::function<void()> done) override;
  void setFault(std::shared_ptr<Fault> fault, std::function<void()> done) override;

 protected:
  // The state of worker `i` (one per WorkerPool thread). Called on worker i's thread.
  virtual ProviderWorker& providerWorker(size_t i) = 0;

  WorkerPool& workers_;
  H2Listener* listener_ = nullptr;

 private:
  std::string name_;
  bool token_endpoint_;
  std::shared_ptr<Fault> fault_;  // the last one set; control API thread only (for stats)
};

}  // namespace pushhub::mock
