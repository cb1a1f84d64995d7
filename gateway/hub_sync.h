#pragma once
// Keeps this instance's HubCatalog equal to the hubs stored in Redis: at start it writes the
// config file's hubs there (so today's configs keep working; they overwrite API changes to the
// same names at every start), then it reads the store's revision every `interval` and, when it
// moved, reloads every hub document, rebuilding only the hubs whose document changed. A document
// that does not parse or whose credentials do not load is logged (never its secrets) and the
// hub's previous settings stay in service; while Redis cannot be reached the catalog stays as it
// is, so an instance keeps serving the hubs it has.
//
// Thread: one worker's; `store` must use that worker's Redis client.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "gateway/hub_catalog.h"
#include "registry/hub_store.h"

namespace pushhub::gateway {

class HubSync {
 public:
  HubSync(boost::asio::io_context& ioc, registry::HubStore& store, HubCatalog& catalog,
          std::vector<HubSettings> config_hubs,
          std::chrono::milliseconds interval = std::chrono::milliseconds(1000));

  void start();
  void stop();
  // Reloads at once when the revision moved (after a write through this instance).
  void poke();

 private:
  void writeConfigHubs(size_t next);
  void poll();
  void reload(registry::HubStore::Snapshot snapshot);
  void arm(std::chrono::milliseconds delay);

  boost::asio::io_context& ioc_;
  registry::HubStore& store_;
  HubCatalog& catalog_;
  std::vector<HubSettings> config_hubs_;
  std::chrono::milliseconds interval_;
  boost::asio::steady_timer timer_;
  int64_t revision_ = -1;
  bool polling_ = false;
  bool stopped_ = false;
};

}  // namespace pushhub::gateway
