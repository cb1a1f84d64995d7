#pragma once
// What pns-mock's OAuth-based providers (FCM, WNS) share on top of ProviderService: their
// settings, the connection handler (the token endpoint and the bookkeeping of every send),
// access-token revocation, throttling, and the remaining MockProvider control operations. Each
// provider adds its rules and its checks of a send as a CloudWorker (fcm_service.cc,
// wns_service.cc).
//
// Threads: as ProviderService; factory() and connectionOptions() run on the workers.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tools/pns-mock/access_token.h"
#include "tools/pns-mock/provider_service.h"

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

// How a send was answered, for the stats and the received ring.
struct CloudSendResult {
  int status = 200;
  std::string_view reason;  // what stats count a rejection as; static storage; empty on success
  const Fault* fault = nullptr;  // the fault the send got (slow and drop are the caller's to do)
};

// Everything one worker thread owns for one OAuth provider; the provider's worker adds its rules
// and checks. Touched only on its worker's thread.
struct CloudWorker : ProviderWorker {
  // `token_path` is the path of the token endpoint and `token_type` the token_type it answers
  // (static storage both).
  CloudWorker(CloudSettings s, std::string_view token_path, std::string_view token_type)
      : ProviderWorker(s.keep_received),
        settings(s),
        token_path(token_path),
        token_type(token_type) {}

  // Checks a request to the token endpoint; `now_ms` is the wall clock in ms since the epoch.
  virtual OAuthVerdict checkTokenRequest(const H2Request& request, int64_t now_ms) const = 0;
  // Checks a send (everything else that comes to the port), throttling a well-formed,
  // authenticated one when throttleThisSend() says so, and fills `response`. Sets `token` to the
  // send's device token (empty = none). `bearer` is the connection's auth cache.
  virtual CloudSendResult handleSend(const H2Request& request, BearerCache& bearer, int64_t now_ms,
                                     std::string& token, H2Response& response) = 0;

  // True when this send is the throttled Nth one.
  bool throttleThisSend();

  CloudSettings settings;
  const std::string_view token_path;
  const std::string_view token_type;
  uint64_t revoked_below = 0;  // access tokens with a smaller serial were expired
  // Shared by every worker of the provider: the minter of its access tokens, and the
  // throttling counter (touched only when throttling is on). Set by CloudService::addWorker.
  std::shared_ptr<AccessTokenMinter> minter;
  std::shared_ptr<std::atomic<uint64_t>> sends;
};

class CloudService : public ProviderService {
 public:
  // `minter` issues and checks the provider's access tokens (the one its rules hold). Add the
  // workers' state with addWorker (makeCloudService does both).
  CloudService(WorkerPool& workers, std::string name, std::shared_ptr<AccessTokenMinter> minter);

  // Registers the state of the next worker: call once per worker, in order, before the workers
  // start.
  void addWorker(std::shared_ptr<CloudWorker> w);

  H2Connection::Factory factory();
  std::function<H2ConnectionOptions(size_t)> connectionOptions();

  void configure(std::optional<uint32_t> max_concurrent_streams, std::optional<uint32_t> delay_ms,
                 std::function<void()> done) override;
  bool expireTokens(std::function<void()> done) override;
  Result<std::string> normalizeToken(std::string_view token) const override;

 private:
  ProviderWorker& providerWorker(size_t i) override { return *per_worker_[i]; }

  std::shared_ptr<AccessTokenMinter> minter_;
  std::vector<std::shared_ptr<CloudWorker>> per_worker_;  // handlers share them (shutdown order)
  std::shared_ptr<std::atomic<uint64_t>> sends_ = std::make_shared<std::atomic<uint64_t>>(0);
};

// Makes the service `name` with a `Worker(rules, settings)` (a CloudWorker) per worker thread.
// `rules.minter` is first made with `token_prefix` when null. Main thread, before the workers
// start.
template <typename Worker, typename Rules>
std::unique_ptr<CloudService> makeCloudService(WorkerPool& workers, std::string name,
                                               std::string token_prefix, Rules rules,
                                               CloudSettings settings) {
  if (!rules.minter) {
    rules.minter = std::make_shared<AccessTokenMinter>(std::move(token_prefix));
  }
  auto service = std::make_unique<CloudService>(workers, std::move(name), rules.minter);
  for (size_t i = 0; i < workers.size(); ++i) {
    service->addWorker(std::make_shared<Worker>(rules, settings));
  }
  return service;
}

}  // namespace pushhub::mock
