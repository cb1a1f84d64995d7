#include "tools/pns-mock/apns_service.h"

#include <algorithm>

namespace pushhub::mock {
namespace {

using WorkerPtr = std::shared_ptr<ApnsService::Worker>;

bool gated(const ApnsSettings& s) {
  return s.initial_streams != 0 && s.initial_streams < s.max_concurrent_streams;
}

// A random (version 4) UUID in uppercase, as APNs returns them.
void randomUuid(std::mt19937_64& rng, char out[36]) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  uint64_t a = rng();
  uint64_t b = rng();
  a = (a & ~0xF000ULL) | 0x4000ULL;                  // version 4
  b = (b & ~(0xC000ULL << 48)) | (0x8000ULL << 48);  // variant 10
  size_t pos = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      out[pos++] = '-';
    }
    uint64_t word = i < 16 ? a : b;
    int shift = (15 - (i % 16)) * 4;
    out[pos++] = kHex[(word >> shift) & 0xF];
  }
}

// What a fault makes of a request that would have succeeded.
void applyFault(const Fault& fault, ApnsVerdict& v) {
  switch (fault.kind) {
    case FaultKind::kThrottle:
      v.status = 429;
      v.reason = apns_reason::kTooManyRequests;
      break;
    case FaultKind::kUnavailable:
      v.status = 503;
      v.reason = apns_reason::kServiceUnavailable;
      break;
    case FaultKind::kInternalError:
      v.status = 500;
      v.reason = apns_reason::kInternalServerError;
      break;
    case FaultKind::kDrop:
      v.drop_connection = true;
      break;
    case FaultKind::kSlow:
    case FaultKind::kRefuse:
      break;
  }
}

class ApnsConnectionHandler : public H2Handler {
 public:
  explicit ApnsConnectionHandler(WorkerPtr worker) : w_(std::move(worker)) {
    ++w_->stats.connections;
    ++w_->open_connections;
  }
  ~ApnsConnectionHandler() override { --w_->open_connections; }

  bool raised() const { return raised_; }

  void onRequest(const H2Request& req, H2Response& resp, H2Connection& conn) override {
    int64_t now_us = wallUs();
    int64_t now = now_us / 1000;
    ApnsVerdict v = validateApnsRequest(req, w_->rules, state_, now);
    const Fault* fault = nullptr;
    if (v.status == 200) {
      const std::string* topic = req.header("apns-topic");
      fault = w_->faultFor(topic ? std::string_view(*topic) : std::string_view(), now);
      if (fault) applyFault(*fault, v);
    }
    ProviderStats& st = w_->stats;
    st.max_concurrent_seen = std::max(st.max_concurrent_seen, conn.openStreams());
    if (!v.device_token.empty()) {
      lowercaseInto(v.device_token, token_);
      if (st.tokens.find(token_) == st.tokens.end()) {
        st.tokens.insert(token_);
      }
    } else {
      token_.clear();
    }
    st.record(req, token_, v.drop_connection ? 0 : v.status, v.reason, now_us);

    if (v.drop_connection) {
      ++st.dropped_connections;
      resp.drop_connection = true;
      return;
    }
    char generated[36];
    std::string_view apns_id = v.apns_id;
    if (apns_id.empty()) {
      randomUuid(w_->rng, generated);
      apns_id = std::string_view(generated, sizeof generated);
    }
    buildApnsResponse(v, apns_id, resp);
    resp.delay_ms = w_->settings.delay_ms;
    if (fault && fault->kind == FaultKind::kSlow) resp.delay_ms = fault->delay_ms;
    if (fault && fault->retry_after_s > 0 && (v.status == 429 || v.status == 503)) {
      resp.headers.emplace_back("retry-after", std::to_string(fault->retry_after_s));
    }

    const ApnsSettings& s = w_->settings;
    if (v.status == 200) {
      st.countAccepted(now_us);
      if (!raised_ || throttled_) {
        raised_ = true;
        throttled_ = false;
        conn.setMaxConcurrentStreams(s.max_concurrent_streams);
      }
    } else {
      st.countRejected(v.reason);
      if (s.drop_to_one_on_reject && !throttled_) {
        throttled_ = true;
        conn.setMaxConcurrentStreams(1);
      }
    }
  }

 private:
  WorkerPtr w_;
  ApnsConnectionState state_;
  std::string token_;  // scratch: the lowercased device token of the current request
  bool raised_ = false;
  bool throttled_ = false;
};

}  // namespace

ApnsService::ApnsService(WorkerPool& workers, ApnsRules rules, ApnsSettings settings)
    : ProviderService(workers, "apns", /*token_endpoint=*/false) {
  for (size_t i = 0; i < workers.size(); ++i) {
    per_worker_.push_back(std::make_shared<Worker>(rules, settings));
  }
}

ApnsService::~ApnsService() = default;

H2Connection::Factory ApnsService::factory() {
  return [this](size_t worker, H2Connection&) -> std::unique_ptr<H2Handler> {
    return std::make_unique<ApnsConnectionHandler>(per_worker_[worker]);
  };
}

std::function<H2ConnectionOptions(size_t)> ApnsService::connectionOptions() {
  return [this](size_t worker) {
    Worker& w = *per_worker_[worker];
    H2ConnectionOptions o;
    o.initial_max_concurrent_streams =
        gated(w.settings) ? w.settings.initial_streams : w.settings.max_concurrent_streams;
    o.bytes_received_counter = &w.stats.bytes_received;
    return o;
  };
}

void ApnsService::configure(std::optional<uint32_t> max_concurrent_streams,
                            std::optional<uint32_t> delay_ms, std::function<void()> done) {
  workers_.runOnAll(
      [this, max_concurrent_streams, delay_ms](size_t i) {
        Worker& w = *per_worker_[i];
        if (delay_ms) {
          w.settings.delay_ms = *delay_ms;
        }
        if (!max_concurrent_streams) {
          return;
        }
        w.settings.max_concurrent_streams = *max_concurrent_streams;
        if (listener_ == nullptr) {
          return;
        }
        // Connections still waiting for their first valid token keep the initial limit.
        listener_->forEachConnection(i, [&](H2Connection& c) {
          auto* h = static_cast<ApnsConnectionHandler*>(c.handler());
          if (h == nullptr || h->raised() || !gated(w.settings)) {
            c.setMaxConcurrentStreams(*max_concurrent_streams);
          }
        });
      },
      std::move(done));
}

void ApnsService::Worker::addTokens(const std::vector<std::string>& dead,
                                    const std::vector<std::string>& bad) {
  rules.dead_tokens.insert(dead.begin(), dead.end());
  rules.bad_tokens.insert(bad.begin(), bad.end());
}

}  // namespace pushhub::mock
