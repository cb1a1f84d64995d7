#pragma once
// Builds the providers of every hub from the config: once per process the parts shared by all
// workers (TLS client contexts, token sources, which are thread-safe), then per worker the
// provider clients that own connections on that worker's io_context.

#include <boost/asio/io_context.hpp>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/result.h"
#include "gateway/config.h"
#include "gateway/dispatcher.h"
#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"

namespace pushhub::gateway {

// What a worker needs to build its client for one platform of one hub.
struct PlatformSetup {
  providers::ConnectionPool::Options pool;
  // Makes the worker's provider; captures the shared credentials. Callable from any thread.
  std::function<std::unique_ptr<providers::Provider>()> make_provider;
};

// By hub name as configured; by platform (registry::Platform) within a hub.
using SharedCredentials =
    std::map<std::string, std::array<std::optional<PlatformSetup>, kPlatforms>>;

// Loads keys and CA files; an error names the hub and the key that failed. Main thread, at start.
Result<SharedCredentials> loadCredentials(const Config& config);

// The provider clients of every hub for one worker; call on the main thread before the worker
// runs, the clients then belong to `ioc`'s thread.
std::unordered_map<std::string, HubClients> makeHubClients(boost::asio::io_context& ioc,
                                                           const SharedCredentials& credentials);

}  // namespace pushhub::gateway
