#include "tools/pns-mock/cloud_service.h"

#include <algorithm>
#include <chrono>

namespace pushhub::mock {

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t steadyNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool CloudWorker::throttleThisSend() {
  if (settings.throttle_every == 0 || !sends) {
    return false;
  }
  uint64_t n = sends->fetch_add(1, std::memory_order_relaxed) + 1;
  return n % settings.throttle_every == 0;
}

void CloudWorker::countTokenRejection(std::string_view error) {
  for (auto& [e, n] : token_rejected) {
    if (e == error) {
      ++n;
      return;
    }
  }
  token_rejected.emplace_back(error, 1);
}

void CloudWorker::record(const H2Request& request, std::string_view token, int status,
                         std::string_view reason, int64_t now_us) {
  ReceivedEntry* e = stats.received.next();
  if (e == nullptr) {
    return;
  }
  e->token.assign(token);
  e->headers.resize(request.headers.size());
  for (size_t i = 0; i < request.headers.size(); ++i) {
    e->headers[i].first.assign(request.headers[i].first);
    if (request.headers[i].first == "authorization") {
      e->headers[i].second.assign("<redacted>");
    } else {
      e->headers[i].second.assign(request.headers[i].second);
    }
  }
  e->body.assign(request.body);
  e->status = status;
  e->reason.assign(reason);
  e->received_at_ms = now_us / 1000;
  e->received_at_us = now_us;
  e->order_ns = steadyNs();
}

CloudService::CloudService(WorkerPool& workers, std::string name)
    : workers_(workers), name_(std::move(name)) {}

void CloudService::addWorker(std::shared_ptr<CloudWorker> w) {
  w->sends = sends_;
  common_.push_back(std::move(w));
}

H2Connection::Factory CloudService::factory() {
  return [this](size_t worker, H2Connection&) { return makeHandler(worker); };
}

std::function<H2ConnectionOptions(size_t)> CloudService::connectionOptions() {
  return [this](size_t worker) {
    CloudWorker& w = *common_[worker];
    H2ConnectionOptions o;
    o.initial_max_concurrent_streams = w.settings.max_concurrent_streams;
    o.bytes_received_counter = &w.stats.bytes_received;
    o.allow_http1 = w.settings.allow_http1;
    return o;
  };
}

void CloudService::stats(bool with_tokens, std::function<void(boost::json::object)> done) {
  struct Slot {
    ProviderStatsSnapshot snapshot;
    uint64_t tokens_issued = 0;
    std::vector<std::pair<std::string_view, uint64_t>> token_rejected;
  };
  auto slots = std::make_shared<std::vector<Slot>>(common_.size());
  workers_.runOnAll(
      [this, slots, with_tokens](size_t i) {
        Slot& s = (*slots)[i];
        s.snapshot.with_tokens = with_tokens;
        s.snapshot.merge(common_[i]->stats);
        s.snapshot.open_connections = common_[i]->open_connections;
        s.tokens_issued = common_[i]->tokens_issued;
        s.token_rejected = common_[i]->token_rejected;
      },
      [slots, with_tokens, done = std::move(done)] {
        ProviderStatsSnapshot total;
        total.with_tokens = with_tokens;
        uint64_t issued = 0;
        std::vector<std::pair<std::string_view, uint64_t>> token_rejected;
        for (const Slot& slot : *slots) {
          total.add(slot.snapshot);
          issued += slot.tokens_issued;
          for (const auto& [error, n] : slot.token_rejected) {
            auto it = std::find_if(token_rejected.begin(), token_rejected.end(),
                                   [&](const auto& p) { return p.first == error; });
            if (it == token_rejected.end()) {
              token_rejected.emplace_back(error, n);
            } else {
              it->second += n;
            }
          }
        }
        boost::json::object o = total.toJson();
        uint64_t rejections = 0;
        boost::json::object by_error;
        for (const auto& [error, n] : token_rejected) {
          by_error[error] = n;
          rejections += n;
        }
        o["tokens_issued"] = issued;
        o["token_rejections"] = rejections;
        o["token_rejected"] = std::move(by_error);
        done(std::move(o));
      });
}

void CloudService::received(size_t limit, std::function<void(boost::json::array)> done) {
  auto slots = std::make_shared<std::vector<std::vector<ReceivedEntry>>>(common_.size());
  workers_.runOnAll([this, slots](size_t i) { common_[i]->stats.received.appendTo((*slots)[i]); },
                    [slots, limit, done = std::move(done)] {
                      std::vector<ReceivedEntry> all;
                      for (auto& s : *slots) {
                        std::move(s.begin(), s.end(), std::back_inserter(all));
                      }
                      done(receivedToJson(std::move(all), limit));
                    });
}

void CloudService::reset(std::function<void()> done) {
  workers_.runOnAll(
      [this](size_t i) {
        CloudWorker& w = *common_[i];
        w.stats.reset();
        w.tokens_issued = 0;
        w.token_rejected.clear();
      },
      std::move(done));
}

void CloudService::configure(std::optional<uint32_t> max_concurrent_streams,
                             std::optional<uint32_t> delay_ms, std::function<void()> done) {
  workers_.runOnAll(
      [this, max_concurrent_streams, delay_ms](size_t i) {
        CloudWorker& w = *common_[i];
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

void CloudService::goaway(std::string debug_data, std::function<void()> done) {
  auto data = std::make_shared<std::string>(std::move(debug_data));
  workers_.runOnAll(
      [this, data](size_t i) {
        if (listener_ != nullptr) {
          listener_->forEachConnection(i, [&](H2Connection& c) { c.goaway(*data); });
        }
      },
      std::move(done));
}

bool CloudService::expireTokens(std::function<void()> done) {
  uint64_t threshold = nextTokenSerial();
  workers_.runOnAll(
      [this, threshold](size_t i) {
        CloudWorker& w = *common_[i];
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
