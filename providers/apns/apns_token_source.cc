#include "providers/apns/apns_token_source.h"

#include <cctype>

#include "base/log.h"

namespace pushhub::providers::apns {
namespace {

Result<void> checkId(const char* field, const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return Error::invalidArgument(std::string(field) + ": must be 1 to 64 characters, got " +
                                  std::to_string(id.size()));
  }
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      return Error::invalidArgument(std::string(field) + ": only letters and digits allowed");
    }
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<ApnsTokenSource>> ApnsTokenSource::create(const ApnsConfig& config,
                                                                 Clock clock) {
  if (auto r = checkId("apns key_id", config.key_id); !r) {
    return r.error();
  }
  if (auto r = checkId("apns team_id", config.team_id); !r) {
    return r.error();
  }
  auto key = loadPrivateKeyPem(config.key_pem);
  if (!key) {
    return Error::invalidArgument("apns key_pem: " + key.error().message);
  }
  if (!EVP_PKEY_is_a(key->get(), "EC")) {
    return Error::invalidArgument("apns key_pem: must be an EC P-256 key (.p8), not RSA");
  }
  if (!clock) {
    clock = [] { return std::chrono::system_clock::now(); };
  }
  auto source = std::shared_ptr<ApnsTokenSource>(
      new ApnsTokenSource(std::move(key).value(), config.key_id, config.team_id, std::move(clock)));
  // Sign once now so a key that cannot sign ES256 (e.g. P-384) fails at start-up.
  if (auto token = source->current(); !token) {
    return Error::invalidArgument("apns key_pem: " + token.error().message);
  }
  return source;
}

ApnsTokenSource::ApnsTokenSource(EvpPkeyPtr key, std::string key_id, std::string team_id,
                                 Clock clock)
    : key_(std::move(key)),
      key_id_(std::move(key_id)),
      team_id_(std::move(team_id)),
      clock_(std::move(clock)) {}

Result<std::shared_ptr<const ApnsToken>> ApnsTokenSource::current() {
  auto now = clock_();
  std::lock_guard lock(mu_);
  if (token_) {
    auto age = now - token_->issued_at;
    bool due = age >= kRefreshAge || (invalidated_ && age >= kMinAge);
    if (!due) {
      if (invalidated_) {
        log::get("apns")->warn(
            "APNs rejected a provider token only {} s old; keeping it (Apple allows one new "
            "token per 20 minutes). Check the clock.",
            std::chrono::duration_cast<std::chrono::seconds>(age).count());
        invalidated_ = false;
        invalidated_flag_.store(false, std::memory_order_release);
      }
      return token_;
    }
  }
  return sign(now);
}

Result<std::shared_ptr<const ApnsToken>> ApnsTokenSource::sign(
    std::chrono::system_clock::time_point now) {
  auto iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::string header = "{\"alg\":\"ES256\",\"kid\":\"" + key_id_ + "\"}";
  std::string claims = "{\"iss\":\"" + team_id_ + "\",\"iat\":" + std::to_string(iat) + "}";
  auto jwt = signJwtEs256(key_.get(), header, claims);
  if (!jwt) {
    return jwt.error();
  }
  auto token = std::make_shared<ApnsToken>();
  token->authorization = "bearer " + *jwt;
  token->issued_at = std::chrono::system_clock::time_point(std::chrono::seconds(iat));
  token->refresh_at = token->issued_at + kRefreshAge;
  token->generation = generation_.load(std::memory_order_relaxed) + 1;
  token_ = token;
  invalidated_ = false;
  invalidated_flag_.store(false, std::memory_order_release);
  generation_.store(token->generation, std::memory_order_release);
  log::get("apns")->info("signed a new APNs provider token (kid {}, team {}, generation {})",
                         key_id_, team_id_, token->generation);
  return std::shared_ptr<const ApnsToken>(std::move(token));
}

void ApnsTokenSource::invalidate() {
  std::lock_guard lock(mu_);
  invalidated_ = true;
  invalidated_flag_.store(true, std::memory_order_release);
}

Result<std::shared_ptr<const ApnsToken>> ApnsTokenCache::get() {
  if (cached_ && cached_->generation == source_->generation() && !source_->invalidationPending() &&
      source_->now() < cached_->refresh_at) {
    return cached_;
  }
  auto token = source_->current();
  if (token) {
    cached_ = *token;
  }
  return token;
}

}  // namespace pushhub::providers::apns
