#pragma once
// ApnsTokenSource: the APNs provider token (ES256 JWT) of one (team, key), shared by every
// worker thread and every connection using that key.
//
// Policy (Apple: refresh at most every 20 minutes, at least every 60):
// - a token is reused until it is 50 minutes old, then the next caller signs a new one;
// - invalidate() (after 403 ExpiredProviderToken) makes the next caller sign a new token if the
//   current one is at least 20 minutes old; younger tokens are kept, because replacing them
//   would earn 429 TooManyProviderTokenUpdates (a young token being "expired" means clock skew,
//   which a new token does not fix).
//
// Threading: every member function may be called from any thread. The hot path is lock-free:
// ApnsTokenCache (one per worker) keeps a shared_ptr to the current token and only compares
// an atomic generation counter and a time stamp; the mutex is taken only to replace a token.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "providers/apns/apns_config.h"
#include "providers/common/jwt.h"

namespace pushhub::providers::apns {

struct ApnsToken {
  std::string authorization;  // "bearer <jwt>", ready for the header; a secret: never log it
  std::chrono::system_clock::time_point issued_at;
  std::chrono::system_clock::time_point refresh_at;  // issued_at + 50 min
  uint64_t generation = 0;
};

class ApnsTokenSource {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  static constexpr std::chrono::minutes kRefreshAge{50};
  static constexpr std::chrono::minutes kMinAge{20};

  // Loads the key and checks the ids (1..64 alphanumeric characters). `clock` defaults to
  // std::chrono::system_clock::now (tests inject a fake one).
  static Result<std::shared_ptr<ApnsTokenSource>> create(const ApnsConfig& config,
                                                         Clock clock = {});

  // The current token, signing a new one first when it is due. Any thread.
  Result<std::shared_ptr<const ApnsToken>> current();
  // Asks for a new token on next use (see the policy above). Any thread.
  void invalidate();
  // Bumped every time a new token is signed. Any thread.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // True between invalidate() and the next current(); caches then stop trusting their copy.
  bool invalidationPending() const { return invalidated_flag_.load(std::memory_order_acquire); }
  std::chrono::system_clock::time_point now() const { return clock_(); }

 private:
  ApnsTokenSource(EvpPkeyPtr key, std::string key_id, std::string team_id, Clock clock);
  Result<std::shared_ptr<const ApnsToken>> sign(std::chrono::system_clock::time_point now);

  EvpPkeyPtr key_;
  const std::string key_id_;
  const std::string team_id_;
  Clock clock_;
  std::mutex mu_;
  std::shared_ptr<const ApnsToken> token_;  // guarded by mu_
  bool invalidated_ = false;                // guarded by mu_
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> invalidated_flag_{false};  // lets caches notice invalidate() lock-free
};

// A worker's view of an ApnsTokenSource: returns the cached token without locking while it is
// current. Used from one thread only (the worker owning the provider).
class ApnsTokenCache {
 public:
  explicit ApnsTokenCache(std::shared_ptr<ApnsTokenSource> source) : source_(std::move(source)) {}
  Result<std::shared_ptr<const ApnsToken>> get();
  ApnsTokenSource& source() { return *source_; }

 private:
  std::shared_ptr<ApnsTokenSource> source_;
  std::shared_ptr<const ApnsToken> cached_;
};

}  // namespace pushhub::providers::apns
