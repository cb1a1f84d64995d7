#include "gateway/provider_factory.h"

#include "providers/common/tls.h"

namespace pushhub::gateway {

Result<SharedCredentials> loadCredentials(const Config& config) {
  SharedCredentials out;
  for (const auto& [key, hub] : config.hubs) {
    if (!hub.apns) continue;
    const ApnsSettings& s = *hub.apns;
    HubCredentials creds;
    creds.apns.key_pem = s.key_pem;
    creds.apns.key_id = s.key_id;
    creds.apns.team_id = s.team_id;
    creds.apns.topic = s.topic;
    creds.apns.host = s.host;
    creds.apns.port = s.port;
    creds.apns.ca_file = s.ca_file;
    creds.apns.connections = s.connections;
    auto tls = providers::makeTlsClientContext(s.ca_file, /*offer_h2_alpn=*/true);
    if (!tls) {
      return Error::invalidArgument("hub " + hub.name + ": apns.ca_file: " + tls.error().message);
    }
    creds.apns_tls = *tls;
    auto tokens = providers::apns::ApnsTokenSource::create(creds.apns);
    if (!tokens) {
      return Error::invalidArgument("hub " + hub.name + ": apns.key_file: " + tokens.error().message);
    }
    creds.apns_tokens = *tokens;
    out.emplace(hub.name, std::move(creds));
  }
  return out;
}

std::unordered_map<std::string, HubClients> makeHubClients(boost::asio::io_context& ioc,
                                                           const Config& config,
                                                           const SharedCredentials& credentials) {
  std::unordered_map<std::string, HubClients> out;
  for (const auto& [key, hub] : config.hubs) {
    HubClients& clients = out[hub.name];
    auto creds = credentials.find(hub.name);
    if (creds == credentials.end()) continue;
    const HubCredentials& c = creds->second;
    if (c.apns_tokens) {
      providers::ConnectionPool::Options pool;
      pool.host = c.apns.host;
      pool.port = c.apns.port;
      pool.tls = c.apns_tls;
      pool.connections = c.apns.connections;
      clients.by_platform[static_cast<size_t>(registry::Platform::kApns)] =
          std::make_unique<providers::ProviderClient>(
              ioc, std::make_unique<providers::apns::ApnsProvider>(c.apns, c.apns_tokens), pool);
    }
  }
  return out;
}

}  // namespace pushhub::gateway
