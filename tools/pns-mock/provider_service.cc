#include "tools/pns-mock/provider_service.h"

#include <iterator>

namespace pushhub::mock {

ProviderService::ProviderService(WorkerPool& workers, std::string name, bool token_endpoint)
    : workers_(workers), name_(std::move(name)), token_endpoint_(token_endpoint) {}

void ProviderService::stats(bool with_tokens, std::function<void(boost::json::object)> done) {
  auto slots = std::make_shared<std::vector<ProviderStatsSnapshot>>(workers_.size());
  workers_.runOnAll(
      [this, slots, with_tokens](size_t i) {
        ProviderWorker& w = providerWorker(i);
        ProviderStatsSnapshot& s = (*slots)[i];
        s.with_tokens = with_tokens;
        s.merge(w.stats);
        s.open_connections = w.open_connections;
      },
      [slots, with_tokens, token_endpoint = token_endpoint_, fault = fault_,
       done = std::move(done)] {
        ProviderStatsSnapshot total;
        total.with_tokens = with_tokens;
        total.token_endpoint = token_endpoint;
        for (const auto& s : *slots) {
          total.add(s);
        }
        auto json = total.toJson();
        if (fault && !fault->expired(wallUs() / 1000)) json["fault"] = fault->toJson();
        if (fault) json["faults_applied"] = fault->applied.load(std::memory_order_relaxed);
        done(std::move(json));
      });
}

void ProviderService::received(size_t limit, std::function<void(boost::json::array)> done) {
  auto slots = std::make_shared<std::vector<std::vector<ReceivedEntry>>>(workers_.size());
  workers_.runOnAll(
      [this, slots](size_t i) { providerWorker(i).stats.received.appendTo((*slots)[i]); },
      [slots, limit, done = std::move(done)] {
        std::vector<ReceivedEntry> all;
        for (auto& s : *slots) {
          std::move(s.begin(), s.end(), std::back_inserter(all));
        }
        done(receivedToJson(std::move(all), limit));
      });
}

void ProviderService::reset(std::function<void()> done) {
  workers_.runOnAll([this](size_t i) { providerWorker(i).stats.reset(); }, std::move(done));
}

void ProviderService::goaway(std::string debug_data, std::function<void()> done) {
  auto data = std::make_shared<std::string>(std::move(debug_data));
  workers_.runOnAll(
      [this, data](size_t i) {
        if (listener_ != nullptr) {
          listener_->forEachConnection(i, [&](H2Connection& c) { c.goaway(*data); });
        }
      },
      std::move(done));
}

void ProviderService::addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                                std::function<void()> done) {
  auto d = std::make_shared<std::vector<std::string>>(std::move(dead));
  auto b = std::make_shared<std::vector<std::string>>(std::move(bad));
  workers_.runOnAll([this, d, b](size_t i) { providerWorker(i).addTokens(*d, *b); },
                    std::move(done));
}

void ProviderService::setFault(std::shared_ptr<Fault> fault, std::function<void()> done) {
  fault_ = fault;
  bool refuse = fault->kind == FaultKind::kRefuse && !fault->expired(wallUs() / 1000);
  if (listener_ != nullptr) listener_->refuse(refuse ? fault : nullptr);
  workers_.runOnAll(
      [this, fault, refuse](size_t i) {
        providerWorker(i).fault = fault;
        // A provider that went down takes its open connections with it.
        if (refuse && listener_ != nullptr) {
          listener_->forEachConnection(i, [](H2Connection& c) { c.drop(); });
        }
      },
      std::move(done));
}

}  // namespace pushhub::mock
