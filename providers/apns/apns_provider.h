#pragma once
// ApnsProvider: the APNs implementation of Provider (token auth, HTTP/2 provider API,
// spec/pns-protocols.md §2 and §6). Builds `POST /3/device/<token>` requests and classifies
// APNs responses; no I/O.
//
// Threading: one instance per worker, used only on that worker's thread. The ApnsTokenSource
// behind it is shared by all workers.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "providers/apns/apns_config.h"
#include "providers/apns/apns_token_source.h"
#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"

namespace pushhub::providers::apns {

class ApnsProvider : public Provider {
 public:
  static constexpr size_t kMaxPayloadBytes = 4096;
  static constexpr size_t kMaxVoipPayloadBytes = 5120;
  static constexpr size_t kMaxCollapseIdBytes = 64;

  ApnsProvider(ApnsConfig config, std::shared_ptr<ApnsTokenSource> tokens);

  std::string_view name() const override { return "apns"; }

  // Headers: authorization (sensitive), apns-topic (config; a sender-supplied apns-topic is
  // accepted only if it is the configured topic or the topic plus a ".suffix"), apns-push-type
  // (default "alert"), apns-priority / apns-expiration / apns-collapse-id / apns-id passed
  // through after validation, apns-expiration derived from Notification::expiry when absent,
  // content-type application/json. Header names from the sender match case-insensitively;
  // unknown apns-* headers, duplicates and malformed values are errors; headers of other
  // platforms are ignored. `:path` is sent literal-never-indexed.
  // The body is shared with `notification`, not copied.
  Result<Request> encode(const Target& target,
                         const std::shared_ptr<const Notification>& notification) override;

  // The reason table of spec §2.5 mapped per §6 (see apns_provider.cc); unknown reasons are
  // classified by status class.
  Outcome classify(const Response& response) const override;

  // After 403 ExpiredProviderToken: ask the token source for a new token.
  void onAuthRejected() override;

  // A sender's apns-* headers, checked: known names only (case-insensitive, each once), values
  // of the right form, and the body within the push type's limit. Other platforms' headers are
  // ignored. Shared by encode() and the API layer, so a send is refused up front for exactly
  // what would fail every device later. apns-topic is checked against the config in encode().
  struct Headers {
    std::string push_type = "alert";
    std::string priority, expiration, collapse_id, apns_id, topic;
  };
  static Result<Headers> parseHeaders(const std::vector<Header>& headers, size_t body_size);

  // Even-length hex, 64 to 200 characters. For the API layer's bad-input checks.
  static Result<void> validateDeviceToken(std::string_view token);

  // Pool options for this config's endpoint (TLS context with ALPN h2 and the config's CA).
  static Result<ConnectionPool::Options> poolOptions(const ApnsConfig& config);

  const ApnsConfig& config() const { return config_; }

 private:
  // parseHeaders() plus the topic check for `notification`, remembered for the last
  // notification: the result depends on it alone, and a send encodes it for every target.
  Result<const Headers*> checkedHeaders(const std::shared_ptr<const Notification>& notification);
  // Every header of a request to `n` but :path (Request::shared_headers).
  std::shared_ptr<const std::vector<Header>> sharedHeaders(const Notification& n, const Headers& h,
                                                           const ApnsToken& token) const;

  ApnsConfig config_;
  ApnsTokenCache tokens_;
  PerNotification<Headers>
      checked_;  // the headers of the last notification checkedHeaders() passed
  struct SharedHeaders {
    std::shared_ptr<const ApnsToken> token;  // the one `headers` carry
    std::shared_ptr<const std::vector<Header>> headers;
  };
  PerNotification<SharedHeaders> shared_;  // sharedHeaders() of the last notification encoded
};

}  // namespace pushhub::providers::apns
