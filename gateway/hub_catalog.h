#pragma once
// The hubs this instance serves now. Hubs live in Redis (registry/hub_store.h) and change at run
// time; HubSync (hub_sync.h) reloads them and swaps in a new immutable map, which every thread
// reads without a lock. A job or a call that looked a hub up keeps its HubRuntime (shared
// ownership) until it is done, so a change never pulls settings or credentials from under it.
//
// Also here: the hub's one external form, v1::Hub, used by the management API and (with its
// secrets) as the document stored in Redis, and its validation.

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "gateway/config.h"
#include "gateway/provider_factory.h"
#include "pushhub/v1/pushhub.pb.h"

namespace pushhub::gateway {

// One hub as served: its settings and the provider setups (TLS contexts, token sources) built
// from them, shared by every worker. Immutable.
struct HubRuntime {
  HubSettings settings;
  PlatformSetups platforms;
  std::string document;  // the stored form it was built from, to see whether it changed
};
using HubPtr = std::shared_ptr<const HubRuntime>;
using HubMap = std::map<std::string, HubPtr>;  // by lower-cased name

// Loads the hub's credentials; an error names the hub and the part that failed.
Result<std::shared_ptr<const HubRuntime>> buildRuntime(HubSettings settings, std::string document);

class HubCatalog {
 public:
  // Any thread.
  std::shared_ptr<const HubMap> snapshot() const { return hubs_.load(); }
  std::shared_ptr<const HubRuntime> find(std::string_view name) const;
  void replace(std::shared_ptr<const HubMap> hubs) { hubs_.store(std::move(hubs)); }

 private:
  std::atomic<std::shared_ptr<const HubMap>> hubs_{std::make_shared<const HubMap>()};
};

// The first 16 hex digits of the secret's SHA-256: enough to tell secrets apart, useless to
// sign with.
std::string fingerprint(std::string_view secret);

// The hub as the API shows it (with_secrets false: every secret empty, fingerprints set) or as
// it is stored (with_secrets true).
v1::Hub hubToProto(const HubSettings& hub, bool with_secrets);

// Checks every field of `hub` (errors name the field and the rule) and builds its settings. A
// key or credential whose secret is empty keeps the one in `stored` (the hub's current
// settings), so a read edited and written back does not wipe secrets.
Result<HubSettings> hubFromProto(const v1::Hub& hub, const HubSettings* stored);

}  // namespace pushhub::gateway
