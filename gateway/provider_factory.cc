#include "gateway/provider_factory.h"

#include "providers/apns/apns_provider.h"
#include "providers/apns/apns_token_source.h"

namespace pushhub::gateway {
namespace {

Error credentialError(const HubSettings& hub, std::string_view section, const Error& error) {
  return Error::invalidArgument("hub " + hub.name + ": " + std::string(section) + ": " +
                                error.message);
}

Result<PlatformSetup> apnsSetup(const HubSettings& hub, const providers::apns::ApnsConfig& config) {
  auto pool = providers::apns::ApnsProvider::poolOptions(config);
  if (!pool) return credentialError(hub, "apns.ca_file", pool.error());
  auto tokens = providers::apns::ApnsTokenSource::create(config);
  if (!tokens) return credentialError(hub, "apns.key_file", tokens.error());
  return PlatformSetup{*pool, [config, tokens = *tokens] {
                         return std::make_unique<providers::apns::ApnsProvider>(config, tokens);
                       }};
}

}  // namespace

Result<SharedCredentials> loadCredentials(const Config& config) {
  SharedCredentials out;
  for (const auto& [key, hub] : config.hubs) {
    auto& platforms = out[hub.name];
    if (hub.apns) {
      auto setup = apnsSetup(hub, *hub.apns);
      if (!setup) return setup.error();
      platforms[static_cast<size_t>(registry::Platform::kApns)] = std::move(*setup);
    }
  }
  return out;
}

std::unordered_map<std::string, HubClients> makeHubClients(boost::asio::io_context& ioc,
                                                           const SharedCredentials& credentials) {
  std::unordered_map<std::string, HubClients> out;
  for (const auto& [name, platforms] : credentials) {
    HubClients& clients = out[name];
    for (size_t p = 0; p < kPlatforms; ++p) {
      if (!platforms[p]) continue;
      clients.by_platform[p] = std::make_unique<providers::ProviderClient>(
          ioc, platforms[p]->make_provider(), platforms[p]->pool);
    }
  }
  return out;
}

}  // namespace pushhub::gateway
