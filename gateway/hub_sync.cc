#include "gateway/hub_sync.h"

#include "base/log.h"

namespace pushhub::gateway {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("hubs");
  return l;
}

}  // namespace

HubSync::HubSync(boost::asio::io_context& ioc, registry::HubStore& store, HubCatalog& catalog,
                 std::vector<HubSettings> config_hubs, std::chrono::milliseconds interval)
    : ioc_(ioc),
      store_(store),
      catalog_(catalog),
      config_hubs_(std::move(config_hubs)),
      interval_(interval),
      timer_(ioc) {}

void HubSync::start() { writeConfigHubs(0); }

void HubSync::stop() {
  stopped_ = true;
  timer_.cancel();
}

void HubSync::arm(std::chrono::milliseconds delay) {
  if (stopped_) return;
  timer_.expires_after(delay);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) poll();
  });
}

void HubSync::writeConfigHubs(size_t next) {
  if (stopped_) return;
  if (next == config_hubs_.size()) return poll();
  const HubSettings& hub = config_hubs_[next];
  std::string document = hubToProto(hub, true).SerializeAsString();
  store_.put(hub.name, document, registry::HubStore::Mode::kUpsert, [this, next](Result<void> ok) {
    if (!ok) {
      logger()->warn("cannot store the config's hubs yet ({}); retrying", ok.error().message);
      timer_.expires_after(interval_);
      timer_.async_wait([this, next](boost::system::error_code ec) {
        if (!ec) writeConfigHubs(next);
      });
      return;
    }
    writeConfigHubs(next + 1);
  });
}

void HubSync::poke() {
  if (!stopped_ && !polling_ && revision_ >= 0) poll();
}

void HubSync::poll() {
  if (stopped_ || polling_) return;
  polling_ = true;
  store_.revision([this](Result<int64_t> revision) {
    if (!revision || *revision == revision_) {
      polling_ = false;
      return arm(interval_);
    }
    store_.load([this](Result<registry::HubStore::Snapshot> snapshot) {
      polling_ = false;
      if (snapshot) reload(std::move(*snapshot));
      arm(interval_);
    });
  });
}

void HubSync::reload(registry::HubStore::Snapshot snapshot) {
  auto current = catalog_.snapshot();
  auto next = std::make_shared<HubMap>();
  size_t changed = 0;
  for (auto& [name, document] : snapshot.documents) {
    auto old = current->find(name);
    if (old != current->end() && old->second->document == document) {
      next->emplace(name, old->second);
      continue;
    }
    v1::Hub proto;
    Result<HubSettings> settings = Error::invalidArgument("not a hub document");
    if (proto.ParseFromString(document)) settings = hubFromProto(proto, nullptr);
    Result<std::shared_ptr<const HubRuntime>> runtime =
        settings ? buildRuntime(std::move(*settings), document)
                 : Result<std::shared_ptr<const HubRuntime>>(settings.error());
    if (!runtime) {
      logger()->error(
          "hub '{}' in Redis is not usable: {}; {}", name, runtime.error().message,
          old != current->end() ? "its previous settings stay in service" : "it is not served");
      if (old != current->end()) next->emplace(name, old->second);
      continue;
    }
    next->emplace(name, std::move(*runtime));
    ++changed;
  }
  size_t removed = 0;
  for (const auto& [name, runtime] : *current) removed += next->count(name) == 0;
  revision_ = snapshot.revision;
  catalog_.replace(std::move(next));
  if (changed > 0 || removed > 0) {
    logger()->info("hubs: revision {}: {} hub(s) served, {} new or changed, {} removed",
                   snapshot.revision, catalog_.snapshot()->size(), changed, removed);
  }
}

}  // namespace pushhub::gateway
