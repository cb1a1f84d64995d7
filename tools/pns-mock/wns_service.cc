#include "tools/pns-mock/wns_service.h"

#include <algorithm>

namespace pushhub::mock {
namespace {

using WorkerPtr = std::shared_ptr<WnsService::Worker>;

// A WNS-looking message id: 16 hex digits (X-WNS-Msg-ID is at most 16 characters).
void messageId(std::mt19937_64& rng, char out[16]) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i) {
    out[i] = kHex[(r >> (i * 4)) & 0xF];
  }
}

class WnsConnectionHandler : public H2Handler {
 public:
  explicit WnsConnectionHandler(WorkerPtr worker) : w_(std::move(worker)) {
    ++w_->stats.connections;
    ++w_->open_connections;
  }
  ~WnsConnectionHandler() override { --w_->open_connections; }

  void onRequest(const H2Request& req, H2Response& resp, H2Connection& conn) override {
    int64_t now_us = wallUs();
    int64_t now = now_us / 1000;
    ProviderStats& st = w_->stats;
    st.max_concurrent_seen = std::max(st.max_concurrent_seen, conn.openStreams());
    std::string_view path = std::string_view(req.path).substr(0, req.path.find('?'));
    if (path == "/accesstoken.srf") {
      tokenRequest(req, resp, now);
      return;
    }
    WnsVerdict v = checkWnsSend(req, w_->rules, state_, w_->revoked_below, now);
    if (v.status == 200 && w_->throttleThisSend()) {
      throttleWns(v);
    } else {
      applyWnsChannelRules(v, w_->rules);
    }
    if (!v.channel_token.empty()) {
      token_.assign(v.channel_token);
      if (st.tokens.find(token_) == st.tokens.end()) {
        st.tokens.insert(token_);
      }
    }
    w_->record(req, v.channel_token, v.status, v.reason(), now_us);
    char id[16];
    messageId(w_->rng, id);
    buildWnsResponse(v, req, std::string_view(id, sizeof id), w_->settings.retry_after_s, resp);
    resp.delay_ms = w_->settings.delay_ms;
    if (v.status == 200) {
      st.countAccepted(now_us);
    } else {
      st.countRejected(v.reason());
    }
  }

 private:
  void tokenRequest(const H2Request& req, H2Response& resp, int64_t now) {
    OAuthVerdict v = checkWnsTokenRequest(req, w_->rules);
    if (v.status != 200) {
      w_->countTokenRejection(v.error);
      buildOAuthError(v, resp);
      return;
    }
    int64_t ttl = w_->settings.token_ttl_s;
    std::string token = w_->rules.minter->issue(v.account, now + ttl * 1000);
    ++w_->tokens_issued;
    buildOAuthSuccess(token, ttl, "bearer", resp);
  }

  WorkerPtr w_;
  WnsConnectionState state_;
  std::string token_;  // scratch: the channel token of the current request
};

}  // namespace

WnsService::WnsService(WorkerPool& workers, WnsRules rules, CloudSettings settings)
    : CloudService(workers, "wns") {
  if (!rules.minter) {
    rules.minter = std::make_shared<AccessTokenMinter>("EwA");
  }
  minter_ = rules.minter;
  for (size_t i = 0; i < workers.size(); ++i) {
    auto w = std::make_shared<Worker>(rules, settings);
    addWorker(w);
    per_worker_.push_back(std::move(w));
  }
}

std::unique_ptr<H2Handler> WnsService::makeHandler(size_t worker) {
  return std::make_unique<WnsConnectionHandler>(per_worker_[worker]);
}

void WnsService::addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                           std::function<void()> done) {
  auto d = std::make_shared<std::vector<std::string>>(std::move(dead));
  auto b = std::make_shared<std::vector<std::string>>(std::move(bad));
  workers_.runOnAll(
      [this, d, b](size_t i) {
        WnsRules& r = per_worker_[i]->rules;
        r.dead_tokens.insert(d->begin(), d->end());
        r.bad_tokens.insert(b->begin(), b->end());
      },
      std::move(done));
}

}  // namespace pushhub::mock
