#include "gateway/hub_catalog.h"

#include <google/protobuf/util/time_util.h>
#include <openssl/sha.h>

#include <boost/json.hpp>

#include <algorithm>

#include "providers/fcm/fcm_config.h"
#include "providers/wns/wns_provider.h"

namespace pushhub::gateway {
namespace {

using google::protobuf::util::TimeUtil;

std::string httpsUrl(const std::string& host, uint16_t port) {
  return "https://" + host + ":" + std::to_string(port);
}

// The service-account key file FCM needs, rebuilt from its parsed fields.
std::string serviceAccountJson(const providers::fcm::ServiceAccount& account) {
  boost::json::object o{{"type", "service_account"},
                        {"project_id", account.project_id},
                        {"client_email", account.client_email},
                        {"private_key", account.private_key_pem},
                        {"private_key_id", account.private_key_id},
                        {"token_uri", account.token_uri}};
  return boost::json::serialize(o);
}

Error bad(const std::string& field, const std::string& rule) {
  return Error::invalidArgument(field + ": " + rule);
}

Result<size_t> connections(uint32_t given, size_t fallback, const std::string& field) {
  if (given == 0) return fallback;
  if (given > 64) return bad(field, "must be 1 to 64");
  return static_cast<size_t>(given);
}

Result<void> endpoint(const std::string& given, const std::string& fallback,
                      const std::string& field, std::string& host, uint16_t& port) {
  if (!parseHttpsUrl(given.empty() ? fallback : given, host, port)) {
    return bad(field, "must be an https URL such as " + fallback);
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<const HubRuntime>> buildRuntime(HubSettings settings, std::string document) {
  auto platforms = loadCredentials(settings);
  if (!platforms) return platforms.error();
  return std::make_shared<const HubRuntime>(
      HubRuntime{std::move(settings), std::move(*platforms), std::move(document)});
}

std::shared_ptr<const HubRuntime> HubCatalog::find(std::string_view name) const {
  auto hubs = hubs_.load();
  auto it = hubs->find(lowerName(name));
  return it == hubs->end() ? nullptr : it->second;
}

std::string fingerprint(std::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

v1::Hub hubToProto(const HubSettings& hub, bool with_secrets) {
  v1::Hub out;
  out.set_name(hub.name);
  out.set_buckets(hub.buckets);
  for (const auto& key : hub.keys) {
    auto* k = out.add_keys();
    k->set_name(key.name);
    if (key.rights & kListen) k->add_rights("Listen");
    if (key.rights & kSend) k->add_rights("Send");
    if (key.rights & kManage) k->add_rights("Manage");
    k->set_fingerprint(fingerprint(key.secret));
    if (with_secrets) k->set_secret(key.secret);
    if (!key.previous_secret.empty()) {
      *k->mutable_previous_valid_until() = TimeUtil::SecondsToTimestamp(key.previous_valid_until);
      k->set_previous_fingerprint(fingerprint(key.previous_secret));
      if (with_secrets) k->set_previous_secret(key.previous_secret);
    }
  }
  if (hub.apns) {
    auto* a = out.mutable_apns();
    a->set_endpoint(httpsUrl(hub.apns->host, hub.apns->port));
    a->set_ca_file(hub.apns->ca_file);
    a->set_key_id(hub.apns->key_id);
    a->set_team_id(hub.apns->team_id);
    a->set_topic(hub.apns->topic);
    a->set_connections(static_cast<uint32_t>(hub.apns->connections));
    a->set_key_fingerprint(fingerprint(hub.apns->key_pem));
    if (with_secrets) a->set_key_pem(hub.apns->key_pem);
  }
  if (hub.fcm) {
    auto* f = out.mutable_fcm();
    f->set_endpoint(httpsUrl(hub.fcm->host, hub.fcm->port));
    f->set_token_uri(hub.fcm->token_uri_override);
    f->set_ca_file(hub.fcm->ca_file);
    f->set_connections(static_cast<uint32_t>(hub.fcm->connections));
    f->set_project_id(hub.fcm->account.project_id);
    f->set_key_fingerprint(fingerprint(hub.fcm->account.private_key_pem));
    if (with_secrets) f->set_service_account_json(serviceAccountJson(hub.fcm->account));
  }
  if (hub.wns) {
    auto* w = out.mutable_wns();
    w->set_package_sid(hub.wns->package_sid);
    w->set_token_url(hub.wns->token_url);
    w->set_scope(hub.wns->scope);
    for (const auto& host : hub.wns->allowed_hosts) w->add_allowed_hosts(host);
    w->set_ca_file(hub.wns->ca_file);
    w->set_connections(static_cast<uint32_t>(hub.wns->connections));
    w->set_secret_fingerprint(fingerprint(hub.wns->secret));
    if (with_secrets) w->set_secret(hub.wns->secret);
  }
  return out;
}

Result<HubSettings> hubFromProto(const v1::Hub& in, const HubSettings* stored) {
  HubSettings hub;
  hub.name = in.name();
  if (!validHubName(hub.name)) return bad("name", "must be 1 to 50 characters of [A-Za-z0-9._-]");
  hub.buckets = in.buckets() == 0 ? (stored ? stored->buckets : 1024) : in.buckets();
  if (hub.buckets > (1u << 16) || (hub.buckets & (hub.buckets - 1)) != 0) {
    return bad("buckets", "must be a power of two up to 65536");
  }
  if (stored && stored->buckets != hub.buckets) {
    return bad("buckets", "cannot change (" + std::to_string(stored->buckets) +
                              "): the registry's layout depends on it");
  }
  if (in.keys().empty()) return bad("keys", "a hub needs at least one access key");
  if (in.keys_size() > 64) return bad("keys", "at most 64");
  for (int i = 0; i < in.keys_size(); ++i) {
    const auto& k = in.keys(i);
    std::string field = "keys[" + std::to_string(i) + "]";
    AccessKey key;
    key.name = k.name();
    if (key.name.empty() || key.name.size() > 256 ||
        !std::all_of(key.name.begin(), key.name.end(), [](unsigned char c) {
          return std::isalnum(c) || c == '-' || c == '_' || c == '.';
        })) {
      return bad(field + ".name", "must be 1 to 256 characters of [A-Za-z0-9._-]");
    }
    for (const auto& other : hub.keys) {
      if (other.name == key.name) return bad(field + ".name", "'" + key.name + "' appears twice");
    }
    const AccessKey* old = stored ? stored->findKey(key.name) : nullptr;
    key.secret = k.secret();
    if (key.secret.empty() && old) key.secret = old->secret;
    if (key.secret.size() < 16 || key.secret.size() > 256) {
      return bad(field + ".secret", "must be 16 to 256 characters");
    }
    if (!k.previous_secret().empty()) {
      key.previous_secret = k.previous_secret();
      key.previous_valid_until = TimeUtil::TimestampToSeconds(k.previous_valid_until());
    } else if (old && old->secret == key.secret) {
      key.previous_secret = old->previous_secret;  // an edit keeps a rotation's grace
      key.previous_valid_until = old->previous_valid_until;
    }
    for (const auto& right : k.rights()) {
      std::string r = lowerName(right);
      if (r == "listen") {
        key.rights |= kListen;
      } else if (r == "send") {
        key.rights |= kSend;
      } else if (r == "manage") {
        key.rights |= kManage;
      } else {
        return bad(field + ".rights",
                   "entries must be Listen, Send or Manage, got '" + right + "'");
      }
    }
    if (key.rights == 0) return bad(field + ".rights", "must name at least one right");
    hub.keys.push_back(std::move(key));
  }
  if (in.has_apns()) {
    const auto& a = in.apns();
    auto& apns = hub.apns.emplace();
    if (auto ok = endpoint(a.endpoint(), "https://api.push.apple.com:443", "apns.endpoint",
                           apns.host, apns.port);
        !ok) {
      return ok.error();
    }
    apns.ca_file = a.ca_file();
    apns.key_pem =
        a.key_pem().empty() && stored && stored->apns ? stored->apns->key_pem : a.key_pem();
    apns.key_id = a.key_id();
    apns.team_id = a.team_id();
    apns.topic = a.topic();
    auto n = connections(a.connections(), 1, "apns.connections");
    if (!n) return n.error();
    apns.connections = *n;
    if (apns.key_pem.empty()) return bad("apns.key_pem", "is required (the .p8 key's text)");
    if (apns.key_id.empty()) return bad("apns.key_id", "is required");
    if (apns.team_id.empty()) return bad("apns.team_id", "is required");
    if (apns.topic.empty()) return bad("apns.topic", "is required (the app's bundle id)");
  }
  if (in.has_fcm()) {
    const auto& f = in.fcm();
    auto& fcm = hub.fcm.emplace();
    if (auto ok = endpoint(f.endpoint(), "https://fcm.googleapis.com:443", "fcm.endpoint", fcm.host,
                           fcm.port);
        !ok) {
      return ok.error();
    }
    fcm.token_uri_override = f.token_uri();
    std::string host;
    uint16_t port = 0;
    if (!fcm.token_uri_override.empty() && !parseHttpsUrl(fcm.token_uri_override, host, port)) {
      return bad("fcm.token_uri", "must be an https URL");
    }
    fcm.ca_file = f.ca_file();
    auto n = connections(f.connections(), 1, "fcm.connections");
    if (!n) return n.error();
    fcm.connections = *n;
    if (f.service_account_json().empty() && stored && stored->fcm) {
      fcm.account = stored->fcm->account;
    } else {
      auto account = providers::fcm::parseServiceAccount(f.service_account_json());
      if (!account) return bad("fcm.service_account_json", account.error().message);
      fcm.account = std::move(*account);
    }
  }
  if (in.has_wns()) {
    const auto& w = in.wns();
    auto& wns = hub.wns.emplace();
    wns.package_sid = w.package_sid();
    wns.secret = w.secret().empty() && stored && stored->wns ? stored->wns->secret : w.secret();
    if (!w.token_url().empty()) wns.token_url = w.token_url();
    if (!w.scope().empty()) wns.scope = w.scope();
    if (!w.allowed_hosts().empty())
      wns.allowed_hosts.assign(w.allowed_hosts().begin(), w.allowed_hosts().end());
    wns.ca_file = w.ca_file();
    auto n = connections(w.connections(), 16, "wns.connections");
    if (!n) return n.error();
    wns.connections = *n;
    if (wns.package_sid.empty()) return bad("wns.package_sid", "is required");
    if (wns.secret.empty()) return bad("wns.secret", "is required");
    std::string host;
    uint16_t port = 0;
    if (!parseHttpsUrl(wns.token_url, host, port))
      return bad("wns.token_url", "must be an https URL");
    if (auto ok = providers::wns::WnsProvider::validateAllowedHosts(wns.allowed_hosts); !ok) {
      return bad("wns.allowed_hosts", ok.error().message);
    }
  }
  return hub;
}

}  // namespace pushhub::gateway
