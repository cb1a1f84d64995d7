#pragma once
// Builds the providers of every hub from the config: once per process the parts shared by all
// workers (TLS client contexts, APNs token sources, which are thread-safe), then per worker the
// provider clients that own connections on that worker's io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "base/result.h"
#include "gateway/config.h"
#include "gateway/dispatcher.h"
#include "providers/apns/apns_provider.h"

namespace pushhub::gateway {

struct HubCredentials {
  std::shared_ptr<boost::asio::ssl::context> apns_tls;
  std::shared_ptr<providers::apns::ApnsTokenSource> apns_tokens;
  providers::apns::ApnsConfig apns;
};

// By hub name as configured.
using SharedCredentials = std::map<std::string, HubCredentials>;

// Loads keys and CA files; an error names the hub and the key that failed. Main thread, at start.
Result<SharedCredentials> loadCredentials(const Config& config);

// The provider clients of every hub for one worker; call on the main thread before the worker
// runs, the clients then belong to `ioc`'s thread.
std::unordered_map<std::string, HubClients> makeHubClients(boost::asio::io_context& ioc,
                                                           const Config& config,
                                                           const SharedCredentials& credentials);

}  // namespace pushhub::gateway
