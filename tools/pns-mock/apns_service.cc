#include "tools/pns-mock/apns_service.h"

#include <chrono>

namespace pushhub::mock {
namespace {

using WorkerPtr = std::shared_ptr<ApnsService::Worker>;

uint64_t steadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

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
    record(req, v, now_us);

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
  void record(const H2Request& req, const ApnsVerdict& v, int64_t now_us) {
    ReceivedEntry* e = w_->stats.received.next();
    if (e == nullptr) {
      return;
    }
    e->token.assign(token_);
    e->headers.resize(req.headers.size());
    for (size_t i = 0; i < req.headers.size(); ++i) {
      e->headers[i].first.assign(req.headers[i].first);
      if (req.headers[i].first == "authorization") {
        e->headers[i].second.assign("<redacted>");
      } else {
        e->headers[i].second.assign(req.headers[i].second);
      }
    }
    e->body.assign(req.body);
    e->status = v.drop_connection ? 0 : v.status;
    e->reason.assign(v.reason);
    e->received_at_ms = now_us / 1000;
    e->received_at_us = now_us;
    e->order_ns = steadyNs();
  }

  WorkerPtr w_;
  ApnsConnectionState state_;
  std::string token_;  // scratch: the lowercased device token of the current request
  bool raised_ = false;
  bool throttled_ = false;
};

}  // namespace

ApnsService::ApnsService(WorkerPool& workers, ApnsRules rules, ApnsSettings settings)
    : workers_(workers) {
  for (size_t i = 0; i < workers.size(); ++i) {
    per_worker_.push_back(std::make_shared<Worker>(rules, settings));
  }
}

ApnsService::~ApnsService() = default;

H2Connection::Factory ApnsService::factory() {
  return [this](size_t worker, H2Connection& conn) -> std::unique_ptr<H2Handler> {
    auto handler = std::make_unique<ApnsConnectionHandler>(per_worker_[worker]);
    return handler;
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

void ApnsService::stats(bool with_tokens, std::function<void(boost::json::object)> done) {
  auto slots = std::make_shared<std::vector<ProviderStatsSnapshot>>(per_worker_.size());
  workers_.runOnAll(
      [this, slots, with_tokens](size_t i) {
        (*slots)[i].with_tokens = with_tokens;
        (*slots)[i].merge(per_worker_[i]->stats);
        (*slots)[i].open_connections = per_worker_[i]->open_connections;
      },
      [slots, with_tokens, done = std::move(done)] {
        ProviderStatsSnapshot total;
        total.with_tokens = with_tokens;
        for (const auto& s : *slots) {
          total.add(s);
        }
        done(total.toJson());
      });
}

void ApnsService::received(size_t limit, std::function<void(boost::json::array)> done) {
  auto slots = std::make_shared<std::vector<std::vector<ReceivedEntry>>>(per_worker_.size());
  workers_.runOnAll(
      [this, slots](size_t i) { per_worker_[i]->stats.received.appendTo((*slots)[i]); },
      [slots, limit, done = std::move(done)] {
        std::vector<ReceivedEntry> all;
        for (auto& s : *slots) {
          std::move(s.begin(), s.end(), std::back_inserter(all));
        }
        done(receivedToJson(std::move(all), limit));
      });
}

void ApnsService::reset(std::function<void()> done) {
  workers_.runOnAll([this](size_t i) { per_worker_[i]->stats.reset(); }, std::move(done));
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

void ApnsService::goaway(std::string debug_data, std::function<void()> done) {
  auto data = std::make_shared<std::string>(std::move(debug_data));
  workers_.runOnAll(
      [this, data](size_t i) {
        if (listener_ != nullptr) {
          listener_->forEachConnection(i, [&](H2Connection& c) { c.goaway(*data); });
        }
      },
      std::move(done));
}

void ApnsService::addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                            std::function<void()> done) {
  auto d = std::make_shared<std::vector<std::string>>(std::move(dead));
  auto b = std::make_shared<std::vector<std::string>>(std::move(bad));
  workers_.runOnAll(
      [this, d, b](size_t i) {
        ApnsRules& r = per_worker_[i]->rules;
        r.dead_tokens.insert(d->begin(), d->end());
        r.bad_tokens.insert(b->begin(), b->end());
      },
      std::move(done));
}

}  // namespace pushhub::mock
