#pragma once
// FcmProvider: the FCM HTTP v1 implementation of Provider (spec/pns-protocols.md §3 and §6).
// Builds `POST /v1/projects/<project>/messages:send` requests with the target's registration
// token spliced into the sender's payload, and classifies google.rpc.Status answers; no I/O.
//
// Payload: Azure's "fcmv1" native format, `{"message":{...}}` without a token; the provider
// adds `"token":<target>` to message. Parsing the payload once per device would cost more than
// the rest of the send at 50k/s, so each instance caches, for the last few distinct payloads,
// the payload split into the JSON before and after the token value; a device's body is then
// prefix + JSON-escaped token + suffix.
//
// Threading: one instance per worker, used only on that worker's thread (the transform cache
// is unsynchronized). The AccessTokenSource behind it is shared by all workers.

#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "providers/common/access_token.h"
#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"
#include "providers/fcm/fcm_config.h"

namespace pushhub::providers::fcm {

class FcmProvider : public Provider {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  static constexpr size_t kMaxPayloadBytes = 4096;
  static constexpr size_t kMaxTokenBytes = 4096;
  // FCM rejects an android.ttl above 4 weeks.
  static constexpr std::chrono::seconds kMaxTtl{28 * 24 * 3600};
  // Distinct payloads whose split is kept per instance (a worker runs a few jobs at once).
  static constexpr size_t kTransformCacheSize = 8;
  // Retry-After default for 429 / QUOTA_EXCEEDED (Google: wait at least a minute).
  static constexpr std::chrono::seconds kDefaultQuotaRetry{60};

  // `clock` (default system_clock::now) turns Notification::expiry into android.ttl and dates
  // in Retry-After into delays; tests inject a fake one. The config's private key is dropped:
  // the token source holds the credential.
  FcmProvider(FcmConfig config, std::shared_ptr<AccessTokenSource> tokens, Clock clock = {});

  std::string_view name() const override { return "fcm"; }

  // True while the token source holds a valid access token. Worker thread.
  bool ready() const override;
  // Fetches an access token (shared with every worker) and calls `done` on `executor`.
  void whenReady(boost::asio::any_io_executor executor,
                 std::function<void(Result<void>)> done) override;

  // Body: the payload with "token" added to message (see validatePayload) and, when the
  // payload has no message.android.ttl and the notification has an expiry, android.ttl set to
  // the whole seconds left ("<n>s", 0 to 4 weeks). Headers: authorization (sensitive, from the
  // token source), content-type application/json. Notification headers are ignored (fcmv1
  // carries everything in the body). Errors: bad payload, bad token (empty, longer than 4096
  // bytes, not printable ASCII), and kUnavailable when no access token is available.
  Result<Request> encode(const Target& target,
                         const std::shared_ptr<const Notification>& notification) override;

  // google.rpc.Status: the FcmError detail's errorCode, else error.status, else the HTTP status
  // (see the table in fcm_provider.cc). Outcome::reason is that code (e.g. "UNREGISTERED").
  Outcome classify(const Response& response) const override;

  // After 401 UNAUTHENTICATED: invalidates the access token generation the rejected request carried
  // (Response::credential_generation, which encode() put in Request::credential_generation), so
  // the many 401s of one dead token cause one refresh and a late 401 of an old token does not
  // discard its successor.
  void onAuthRejected(const Response& rejected) override;
  // Without the response: invalidates the generation the most recent encode() used.
  void onAuthRejected() override;

  // A sender's fcmv1 payload, checked: 1 to 4096 bytes of JSON, an object whose only members
  // are "message" (an object, required) and "validate_only" (a boolean); message holds no
  // "token", "topic" or "condition" (the hub addresses devices itself); message.android, if
  // present, is an object and its "ttl" a string. Shared by encode() and the API layer.
  static Result<void> validatePayload(std::string_view body);

  // Non-empty, at most 4096 bytes, printable ASCII. For the API layer's bad-input checks.
  static Result<void> validateRegistrationToken(std::string_view token);

  // Pool options for this config's endpoint (TLS context with ALPN h2 and the config's CA).
  static Result<ConnectionPool::Options> poolOptions(const FcmConfig& config);

  const FcmConfig& config() const { return config_; }
  // How many payload transforms were computed (cache misses); for tests.
  uint64_t transformsComputed() const { return transforms_computed_; }

 private:
  struct Transform {
    bool valid = false;
    std::string body;              // the payload as given (the cache key)
    int64_t ttl_seconds = -1;      // the expiry-derived ttl it was built with; -1 = none
    bool ttl_independent = false;  // payload sets its own ttl (or is invalid): ttl ignored
    std::string prefix, suffix;
    std::optional<Error> error;
    uint64_t last_used = 0;
  };

  const Transform& transformFor(std::string_view body, int64_t ttl_seconds);

  FcmConfig config_;
  std::shared_ptr<AccessTokenSource> tokens_;
  Clock clock_;
  std::string path_;
  std::array<Transform, kTransformCacheSize> cache_;
  uint64_t use_counter_ = 0;
  uint64_t transforms_computed_ = 0;
  uint64_t last_generation_ = 0;  // of the token the latest encode() used
  // Request::shared_headers for requests carrying shared_headers_token_.
  std::shared_ptr<const AccessToken> shared_headers_token_;
  std::shared_ptr<const std::vector<Header>> shared_headers_;
};

}  // namespace pushhub::providers::fcm
