#include "gateway/provider_factory.h"

#include "providers/apns/apns_provider.h"
#include "providers/apns/apns_token_source.h"
#include "providers/common/access_token.h"
#include "providers/fcm/fcm_auth.h"
#include "providers/fcm/fcm_provider.h"
#include "providers/wns/wns_auth.h"
#include "providers/wns/wns_provider.h"
#include "registry/installation.h"

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

Result<PlatformSetup> fcmSetup(const HubSettings& hub, const providers::fcm::FcmConfig& config) {
  auto pool = providers::fcm::FcmProvider::poolOptions(config);
  if (!pool) return credentialError(hub, "fcm.ca_file", pool.error());
  providers::AccessTokenSource::Options options;
  options.ca_file = config.ca_file;
  auto tokens = providers::AccessTokenSource::create(
      "fcm:" + config.account.project_id, providers::fcm::makeFcmTokenRequests(config), options);
  if (!tokens) return credentialError(hub, "fcm", tokens.error());
  return PlatformSetup{*pool, [config, tokens = *tokens] {
                         return std::make_unique<providers::fcm::FcmProvider>(config, tokens);
                       }};
}

Result<PlatformSetup> wnsSetup(const HubSettings& hub, const providers::wns::WnsConfig& config) {
  auto pool = providers::wns::WnsProvider::poolOptions(config);
  if (!pool) return credentialError(hub, "wns.ca_file", pool.error());
  providers::AccessTokenSource::Options options;
  options.ca_file = config.ca_file;
  auto tokens = providers::AccessTokenSource::create(
      "wns:" + hub.name, providers::wns::makeWnsTokenRequests(config), options);
  if (!tokens) return credentialError(hub, "wns", tokens.error());
  return PlatformSetup{*pool, [config, tokens = *tokens] {
                         return std::make_unique<providers::wns::WnsProvider>(config, tokens);
                       }};
}

}  // namespace

Result<PlatformSetups> loadCredentials(const HubSettings& hub) {
  PlatformSetups platforms;
  if (hub.apns) {
    auto setup = apnsSetup(hub, *hub.apns);
    if (!setup) return setup.error();
    platforms[static_cast<size_t>(registry::Platform::kApns)] = std::move(*setup);
  }
  if (hub.fcm) {
    auto setup = fcmSetup(hub, *hub.fcm);
    if (!setup) return setup.error();
    platforms[static_cast<size_t>(registry::Platform::kFcm)] = std::move(*setup);
  }
  if (hub.wns) {
    auto setup = wnsSetup(hub, *hub.wns);
    if (!setup) return setup.error();
    platforms[static_cast<size_t>(registry::Platform::kWns)] = std::move(*setup);
  }
  return platforms;
}

std::shared_ptr<HubClients> makeHubClients(boost::asio::io_context& ioc,
                                           const PlatformSetups& setups) {
  auto clients = std::make_shared<HubClients>();
  for (size_t p = 0; p < kPlatforms; ++p) {
    if (!setups[p]) continue;
    clients->by_platform[p] = std::make_unique<providers::ProviderClient>(
        ioc, setups[p]->make_provider(), setups[p]->pool);
  }
  return clients;
}

}  // namespace pushhub::gateway
