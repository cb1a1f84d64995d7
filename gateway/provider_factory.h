#pragma once
// Builds the providers of a hub: once per process (and per change of the hub) the parts shared by
// all workers (TLS client contexts, token sources, which are thread-safe), then per worker the
// provider clients that own connections on that worker's io_context.

#include <boost/asio/io_context.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"
#include "providers/common/provider_client.h"

namespace pushhub::gateway {

// The provider clients of one hub on one worker, by platform (null: no credentials configured).
struct HubClients {
  std::array<std::unique_ptr<providers::ProviderClient>, kPlatforms> by_platform;
};

// What a worker needs to build its client for one platform of one hub.
struct PlatformSetup {
  providers::ConnectionPool::Options pool;
  // Makes the worker's provider; captures the shared credentials. Callable from any thread.
  std::function<std::unique_ptr<providers::Provider>()> make_provider;
};

// By platform (registry::Platform); unset where the hub has no credentials.
using PlatformSetups = std::array<std::optional<PlatformSetup>, kPlatforms>;

// Loads the hub's keys and CA files; an error names the hub and the part that failed. Any
// thread (token sources are shared by every worker).
Result<PlatformSetups> loadCredentials(const HubSettings& hub);

// The provider clients of one hub for one worker; they belong to `ioc`'s thread.
std::shared_ptr<HubClients> makeHubClients(boost::asio::io_context& ioc,
                                           const PlatformSetups& setups);

}  // namespace pushhub::gateway
