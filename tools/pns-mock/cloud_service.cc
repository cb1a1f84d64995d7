#include "tools/pns-mock/cloud_service.h"

#include <algorithm>

namespace pushhub::mock {
namespace {

// One connection to an OAuth provider: token requests are answered here, sends by the
// provider's worker; both are counted here. Lives on its worker's thread.
class CloudConnectionHandler : public H2Handler {
 public:
  explicit CloudConnectionHandler(std::shared_ptr<CloudWorker> worker) : w_(std::move(worker)) {
    ++w_->stats.connections;
    ++w_->open_connections;
  }
  ~CloudConnectionHandler() override { --w_->open_connections; }

  void onRequest(const H2Request& req, H2Response& resp, H2Connection& conn) override {
    int64_t now_us = wallUs();
    int64_t now = now_us / 1000;
    ProviderStats& st = w_->stats;
    st.max_concurrent_seen = std::max(st.max_concurrent_seen, conn.openStreams());
    std::string_view path = std::string_view(req.path).substr(0, req.path.find('?'));
    if (path == w_->token_path) {
      tokenRequest(req, resp, now);
      return;
    }
    CloudSendResult r = w_->handleSend(req, bearer_, now, token_, resp);
    if (!token_.empty()) {
      // One lookup: insert() hashes once and allocates only for a token not seen yet.
      st.tokens.insert(token_);
    }
    if (r.fault && r.fault->kind == FaultKind::kDrop) {
      ++st.dropped_connections;
      st.record(req, token_, 0, r.reason, now_us);
      resp.drop_connection = true;
      return;
    }
    st.record(req, token_, r.status, r.reason, now_us);
    resp.delay_ms =
        r.fault && r.fault->kind == FaultKind::kSlow ? r.fault->delay_ms : w_->settings.delay_ms;
    if (r.status == 200) {
      st.countAccepted(now_us);
    } else {
      st.countRejected(r.reason);
    }
  }

 private:
  void tokenRequest(const H2Request& req, H2Response& resp, int64_t now) {
    OAuthVerdict v = w_->checkTokenRequest(req, now);
    if (v.status != 200) {
      w_->stats.countTokenRejection(v.error);
      buildOAuthError(v, resp);
      return;
    }
    int64_t ttl = w_->settings.token_ttl_s;
    std::string token = w_->minter->issue(v.account, now + ttl * 1000);
    ++w_->stats.tokens_issued;
    buildOAuthSuccess(token, ttl, w_->token_type, resp);
  }

  std::shared_ptr<CloudWorker> w_;
  BearerCache bearer_;
  std::string token_;  // scratch: the device token of the current send
};

}  // namespace

bool CloudWorker::throttleThisSend() {
  if (settings.throttle_every == 0 || !sends) {
    return false;
  }
  uint64_t n = sends->fetch_add(1, std::memory_order_relaxed) + 1;
  return n % settings.throttle_every == 0;
}

CloudService::CloudService(WorkerPool& workers, std::string name,
                           std::shared_ptr<AccessTokenMinter> minter)
    : ProviderService(workers, std::move(name), /*token_endpoint=*/true),
      minter_(std::move(minter)) {}

void CloudService::addWorker(std::shared_ptr<CloudWorker> w) {
  w->minter = minter_;
  w->sends = sends_;
  per_worker_.push_back(std::move(w));
}

H2Connection::Factory CloudService::factory() {
  return [this](size_t worker, H2Connection&) -> std::unique_ptr<H2Handler> {
    return std::make_unique<CloudConnectionHandler>(per_worker_[worker]);
  };
}

std::function<H2ConnectionOptions(size_t)> CloudService::connectionOptions() {
  return [this](size_t worker) {
    CloudWorker& w = *per_worker_[worker];
    H2ConnectionOptions o;
    o.initial_max_concurrent_streams = w.settings.max_concurrent_streams;
    o.bytes_received_counter = &w.stats.bytes_received;
    o.allow_http1 = w.settings.allow_http1;
    return o;
  };
}

void CloudService::configure(std::optional<uint32_t> max_concurrent_streams,
                             std::optional<uint32_t> delay_ms, std::function<void()> done) {
  workers_.runOnAll(
      [this, max_concurrent_streams, delay_ms](size_t i) {
        CloudWorker& w = *per_worker_[i];
        if (delay_ms) {
          w.settings.delay_ms = *delay_ms;
        }
        if (max_concurrent_streams) {
          w.settings.max_concurrent_streams = *max_concurrent_streams;
          if (listener_ != nullptr) {
            listener_->forEachConnection(
                i, [&](H2Connection& c) { c.setMaxConcurrentStreams(*max_concurrent_streams); });
          }
        }
      },
      std::move(done));
}

bool CloudService::expireTokens(std::function<void()> done) {
  uint64_t threshold = minter_->nextSerial();
  workers_.runOnAll(
      [this, threshold](size_t i) {
        CloudWorker& w = *per_worker_[i];
        w.revoked_below = std::max(w.revoked_below, threshold);
      },
      std::move(done));
  return true;
}

Result<std::string> CloudService::normalizeToken(std::string_view token) const {
  if (token.empty() || token.size() > 4096) {
    return Error::invalidArgument("expected a non-empty string of at most 4096 characters");
  }
  return std::string(token);
}

}  // namespace pushhub::mock
