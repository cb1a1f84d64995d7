#include "tools/pns-mock/fcm_service.h"

#include <algorithm>

namespace pushhub::mock {
namespace {

using WorkerPtr = std::shared_ptr<FcmService::Worker>;

// An FCM-looking message id ("0:<ms>%<16 hex>"; the real ones are opaque).
std::string messageId(std::mt19937_64& rng, int64_t now_ms) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "0:" + std::to_string(now_ms) + "%";
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i) {
    id.push_back(kHex[(r >> (i * 4)) & 0xF]);
  }
  return id;
}

class FcmConnectionHandler : public H2Handler {
 public:
  explicit FcmConnectionHandler(WorkerPtr worker) : w_(std::move(worker)) {
    ++w_->stats.connections;
    ++w_->open_connections;
  }
  ~FcmConnectionHandler() override { --w_->open_connections; }

  void onRequest(const H2Request& req, H2Response& resp, H2Connection& conn) override {
    int64_t now_us = wallUs();
    int64_t now = now_us / 1000;
    ProviderStats& st = w_->stats;
    st.max_concurrent_seen = std::max(st.max_concurrent_seen, conn.openStreams());
    std::string_view path = std::string_view(req.path).substr(0, req.path.find('?'));
    if (path == "/token") {
      tokenRequest(req, resp, now);
      return;
    }
    FcmVerdict v = checkFcmSend(req, w_->rules, state_, w_->revoked_below, now);
    if (v.status == 200 && w_->throttleThisSend()) {
      throttleFcm(v);
    } else {
      applyFcmTokenRules(v, w_->rules);
    }
    if (!v.registration_token.empty() && st.tokens.find(v.registration_token) == st.tokens.end()) {
      st.tokens.insert(v.registration_token);
    }
    w_->record(req, v.registration_token, v.status, v.reason(), now_us);
    std::string id = v.validate_only ? std::string("fake_message_id") : messageId(w_->rng, now);
    buildFcmResponse(v, id, w_->settings.retry_after_s, resp);
    resp.delay_ms = w_->settings.delay_ms;
    if (v.status == 200) {
      st.countAccepted(now_us);
    } else {
      st.countRejected(v.reason());
    }
  }

 private:
  void tokenRequest(const H2Request& req, H2Response& resp, int64_t now) {
    OAuthVerdict v = checkFcmTokenRequest(req, w_->rules, now / 1000);
    if (v.status != 200) {
      w_->countTokenRejection(v.error);
      buildOAuthError(v, resp);
      return;
    }
    int64_t ttl = w_->settings.token_ttl_s;
    std::string token = w_->rules.minter->issue(v.account, now + ttl * 1000);
    ++w_->tokens_issued;
    buildOAuthSuccess(token, ttl, "Bearer", resp);
  }

  WorkerPtr w_;
  FcmConnectionState state_;
};

}  // namespace

FcmService::FcmService(WorkerPool& workers, FcmRules rules, CloudSettings settings)
    : CloudService(workers, "fcm") {
  if (!rules.minter) {
    rules.minter = std::make_shared<AccessTokenMinter>("ya29.m");
  }
  minter_ = rules.minter;
  for (size_t i = 0; i < workers.size(); ++i) {
    auto w = std::make_shared<Worker>(rules, settings);
    addWorker(w);
    per_worker_.push_back(std::move(w));
  }
}

std::unique_ptr<H2Handler> FcmService::makeHandler(size_t worker) {
  return std::make_unique<FcmConnectionHandler>(per_worker_[worker]);
}

void FcmService::addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                           std::function<void()> done) {
  auto d = std::make_shared<std::vector<std::string>>(std::move(dead));
  auto b = std::make_shared<std::vector<std::string>>(std::move(bad));
  workers_.runOnAll(
      [this, d, b](size_t i) {
        FcmRules& r = per_worker_[i]->rules;
        r.dead_tokens.insert(d->begin(), d->end());
        r.bad_tokens.insert(b->begin(), b->end());
      },
      std::move(done));
}

}  // namespace pushhub::mock
