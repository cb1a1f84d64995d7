#include "gateway/config.h"

#include <toml++/toml.h>

#include "providers/wns/wns_provider.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace pushhub::gateway {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

Error bad(const std::string& key, const std::string& what) {
  return Error::invalidArgument("config: " + key + ": " + what);
}

// Reads optional typed values, remembering the first error so parsing reads straight through.
class Reader {
 public:
  explicit Reader(std::optional<Error>& error) : error_(error) {}

  template <typename Node, typename T>
  void get(const Node& node, const std::string& key, T& out) {
    if (!node) return;
    if (auto v = node.template value<T>()) {
      out = *v;
    } else {
      fail(key, "has the wrong type");
    }
  }

  template <typename Node, typename T>
  void getInt(const Node& node, const std::string& key, T& out, int64_t min, int64_t max) {
    if (!node) return;
    auto v = node.template value<int64_t>();
    if (!v) return fail(key, "must be an integer");
    if (*v < min || *v > max) {
      return fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = static_cast<T>(*v);
  }

  void fail(const std::string& key, const std::string& what) {
    if (!error_) error_ = bad(key, what);
  }

  // A misspelt key would otherwise be silently ignored and its default used.
  void onlyKnown(const toml::table* table, const std::string& prefix,
                 std::initializer_list<std::string_view> known) {
    if (!table) return;
    for (const auto& [key, value] : *table) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
        fail(prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str()),
             "unknown key");
      }
    }
  }

 private:
  std::optional<Error>& error_;
};

std::string readFile(const std::filesystem::path& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool validListen(const std::string& address) {
  auto colon = address.rfind(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < address.size();
}

}  // namespace

bool parseHttpsUrl(const std::string& url, std::string& host, uint16_t& port) {
  constexpr std::string_view kScheme = "https://";
  if (url.rfind(kScheme, 0) != 0) return false;
  std::string rest = url.substr(kScheme.size());
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  host = rest.substr(0, colon);
  port = 443;
  if (colon != std::string::npos) {
    try {
      int p = std::stoi(rest.substr(colon + 1));
      if (p <= 0 || p > 65535) return false;
      port = static_cast<uint16_t>(p);
    } catch (...) {
      return false;
    }
  }
  return !host.empty();
}

bool validHubName(std::string_view name) {
  return !name.empty() && name.size() <= 50 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return std::isalnum(c) || c == '-' || c == '_' || c == '.';
         });
}

std::string lowerName(std::string_view name) { return lower(name); }

namespace {

void parseApns(const toml::table& table, const std::string& prefix,
               const std::filesystem::path& base_dir, Reader& r,
               providers::apns::ApnsConfig& apns) {
  r.onlyKnown(&table, prefix,
              {"endpoint", "ca_file", "key_file", "key_id", "team_id", "topic", "connections"});
  std::string endpoint = "https://api.push.apple.com:443";
  r.get(table["endpoint"], prefix + ".endpoint", endpoint);
  if (!parseHttpsUrl(endpoint, apns.host, apns.port)) {
    r.fail(prefix + ".endpoint", "must be an https URL such as https://api.push.apple.com:443");
  }
  r.get(table["ca_file"], prefix + ".ca_file", apns.ca_file);
  if (!apns.ca_file.empty()) apns.ca_file = (base_dir / apns.ca_file).string();
  std::string key_file;
  r.get(table["key_file"], prefix + ".key_file", key_file);
  r.get(table["key_id"], prefix + ".key_id", apns.key_id);
  r.get(table["team_id"], prefix + ".team_id", apns.team_id);
  r.get(table["topic"], prefix + ".topic", apns.topic);
  r.getInt(table["connections"], prefix + ".connections", apns.connections, 1, 64);
  if (key_file.empty()) return r.fail(prefix + ".key_file", "is required (the .p8 key)");
  bool ok = false;
  apns.key_pem = readFile(base_dir / key_file, ok);
  if (!ok) r.fail(prefix + ".key_file", "cannot read " + (base_dir / key_file).string());
  if (apns.key_id.empty()) r.fail(prefix + ".key_id", "is required");
  if (apns.team_id.empty()) r.fail(prefix + ".team_id", "is required");
  if (apns.topic.empty()) r.fail(prefix + ".topic", "is required (the app's bundle id)");
}

void parseFcm(const toml::table& table, const std::string& prefix,
              const std::filesystem::path& base_dir, Reader& r, providers::fcm::FcmConfig& fcm) {
  r.onlyKnown(&table, prefix,
              {"service_account_file", "endpoint", "token_uri", "ca_file", "connections"});
  std::string endpoint = "https://fcm.googleapis.com:443";
  r.get(table["endpoint"], prefix + ".endpoint", endpoint);
  if (!parseHttpsUrl(endpoint, fcm.host, fcm.port)) {
    r.fail(prefix + ".endpoint", "must be an https URL such as https://fcm.googleapis.com:443");
  }
  r.get(table["token_uri"], prefix + ".token_uri", fcm.token_uri_override);
  std::string ignored_host;
  uint16_t ignored_port = 0;
  if (!fcm.token_uri_override.empty() &&
      !parseHttpsUrl(fcm.token_uri_override, ignored_host, ignored_port)) {
    r.fail(prefix + ".token_uri", "must be an https URL");
  }
  r.get(table["ca_file"], prefix + ".ca_file", fcm.ca_file);
  if (!fcm.ca_file.empty()) fcm.ca_file = (base_dir / fcm.ca_file).string();
  r.getInt(table["connections"], prefix + ".connections", fcm.connections, 1, 64);
  std::string file;
  r.get(table["service_account_file"], prefix + ".service_account_file", file);
  if (file.empty()) {
    return r.fail(prefix + ".service_account_file", "is required (the service account's JSON key)");
  }
  bool ok = false;
  std::string json = readFile(base_dir / file, ok);
  if (!ok)
    return r.fail(prefix + ".service_account_file", "cannot read " + (base_dir / file).string());
  auto account = providers::fcm::parseServiceAccount(json);
  if (!account) return r.fail(prefix + ".service_account_file", account.error().message);
  fcm.account = std::move(*account);
}

void parseWns(const toml::table& table, const std::string& prefix,
              const std::filesystem::path& base_dir, Reader& r, providers::wns::WnsConfig& wns) {
  r.onlyKnown(
      &table, prefix,
      {"package_sid", "secret", "token_url", "scope", "allowed_hosts", "ca_file", "connections"});
  r.get(table["package_sid"], prefix + ".package_sid", wns.package_sid);
  r.get(table["secret"], prefix + ".secret", wns.secret);
  r.get(table["token_url"], prefix + ".token_url", wns.token_url);
  r.get(table["scope"], prefix + ".scope", wns.scope);
  r.get(table["ca_file"], prefix + ".ca_file", wns.ca_file);
  if (!wns.ca_file.empty()) wns.ca_file = (base_dir / wns.ca_file).string();
  r.getInt(table["connections"], prefix + ".connections", wns.connections, 1, 64);
  if (wns.package_sid.empty()) r.fail(prefix + ".package_sid", "is required");
  if (wns.secret.empty()) r.fail(prefix + ".secret", "is required");
  std::string ignored_host;
  uint16_t ignored_port = 0;
  if (!parseHttpsUrl(wns.token_url, ignored_host, ignored_port)) {
    r.fail(prefix + ".token_url", "must be an https URL");
  }
  if (auto hosts = table["allowed_hosts"].as_array()) {
    wns.allowed_hosts.clear();
    for (const auto& host : *hosts) {
      auto text = host.value<std::string>();
      if (!text) return r.fail(prefix + ".allowed_hosts", "must be a list of strings");
      wns.allowed_hosts.push_back(*text);
    }
  }
  if (auto ok = providers::wns::WnsProvider::validateAllowedHosts(wns.allowed_hosts); !ok) {
    r.fail(prefix + ".allowed_hosts", ok.error().message);
  }
}

void parseHub(const toml::table& table, size_t index, const std::filesystem::path& base_dir,
              Reader& r, Config& config) {
  std::string prefix = "hubs[" + std::to_string(index) + "]";
  r.onlyKnown(&table, prefix, {"name", "buckets", "keys", "apns", "fcm", "wns"});
  HubSettings hub;
  r.get(table["name"], prefix + ".name", hub.name);
  if (!validHubName(hub.name)) {
    return r.fail(prefix + ".name", "must be 1 to 50 characters of [A-Za-z0-9._-]");
  }
  r.getInt(table["buckets"], prefix + ".buckets", hub.buckets, 1, 1 << 16);
  if ((hub.buckets & (hub.buckets - 1)) != 0) r.fail(prefix + ".buckets", "must be a power of two");
  if (auto keys = table["keys"].as_array()) {
    size_t k = 0;
    for (const auto& node : *keys) {
      std::string key_prefix = prefix + ".keys[" + std::to_string(k++) + "]";
      const auto* kt = node.as_table();
      if (!kt) return r.fail(key_prefix, "must be a table");
      r.onlyKnown(kt, key_prefix, {"name", "key", "rights"});
      AccessKey key;
      r.get((*kt)["name"], key_prefix + ".name", key.name);
      r.get((*kt)["key"], key_prefix + ".key", key.secret);
      if (key.name.empty()) r.fail(key_prefix + ".name", "is required");
      if (key.secret.size() < 16) r.fail(key_prefix + ".key", "must be at least 16 characters");
      if (auto rights = (*kt)["rights"].as_array()) {
        for (const auto& right : *rights) {
          auto name = lower(right.value_or(std::string()));
          if (name == "listen")
            key.rights |= kListen;
          else if (name == "send")
            key.rights |= kSend;
          else if (name == "manage")
            key.rights |= kManage;
          else
            r.fail(key_prefix + ".rights", "entries must be Listen, Send or Manage");
        }
      }
      if (key.rights == 0) r.fail(key_prefix + ".rights", "must name at least one right");
      hub.keys.push_back(std::move(key));
    }
  }
  if (hub.keys.empty()) r.fail(prefix + ".keys", "a hub needs at least one access key");
  if (auto apns = table["apns"].as_table()) {
    parseApns(*apns, prefix + ".apns", base_dir, r, hub.apns.emplace());
  }
  if (auto fcm = table["fcm"].as_table()) {
    parseFcm(*fcm, prefix + ".fcm", base_dir, r, hub.fcm.emplace());
  }
  if (auto wns = table["wns"].as_table()) {
    parseWns(*wns, prefix + ".wns", base_dir, r, hub.wns.emplace());
  }
  auto name = lower(hub.name);
  if (config.hubs.count(name)) return r.fail(prefix + ".name", "'" + hub.name + "' appears twice");
  config.hubs.emplace(name, std::move(hub));
}

}  // namespace

const AccessKey* HubSettings::findKey(std::string_view key_name) const {
  for (const auto& key : keys) {
    if (key.name == key_name) return &key;
  }
  return nullptr;
}

const HubSettings* Config::findHub(std::string_view name) const {
  auto it = hubs.find(lower(name));
  return it == hubs.end() ? nullptr : &it->second;
}

Result<Config> parseConfig(std::string_view toml_text, const std::filesystem::path& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << "config: line " << e.source().begin.line << ": " << e.description();
    return Error::invalidArgument(where.str());
  }
  Config config;
  std::optional<Error> error;
  Reader r(error);
  r.onlyKnown(&root, "", {"server", "redis", "dispatch", "registry", "console", "hubs"});
  r.onlyKnown(root["console"].as_table(), "console",
              {"enabled", "session_minutes", "max_live_pages"});
  r.onlyKnown(root["registry"].as_table(), "registry",
              {"sweep_interval_ms", "dead_channel_retention_hours"});
  r.onlyKnown(
      root["server"].as_table(), "server",
      {"grpc_listen", "admin_listen", "admin_tls_cert", "admin_tls_key", "tls_cert", "tls_key",
       "workers", "admin_key", "rest_listen", "rest_plain_http", "rest_max_connections"});
  r.onlyKnown(root["redis"].as_table(), "redis", {"host", "port", "nodes", "password"});
  r.onlyKnown(root["dispatch"].as_table(), "dispatch",
              {"buckets_per_job", "max_jobs_per_worker", "max_in_flight_per_job",
               "resolves_in_flight_per_job", "split_lagging_platform_ms", "max_attempts",
               "queue_partitions", "job_idle_timeout_ms", "max_retry_delay_ms",
               "default_deadline_s", "failures_per_notification", "outcome_retention_hours",
               "shutdown_grace_ms", "idempotency_window_hours", "max_schedule_ahead_hours"});
  auto server = root["server"];
  r.get(server["grpc_listen"], "server.grpc_listen", config.grpc_listen);
  r.get(server["admin_listen"], "server.admin_listen", config.admin_listen);
  r.get(server["admin_tls_cert"], "server.admin_tls_cert", config.admin_tls_cert_file);
  r.get(server["admin_tls_key"], "server.admin_tls_key", config.admin_tls_key_file);
  if (config.admin_tls_cert_file.empty() != config.admin_tls_key_file.empty()) {
    r.fail("server.admin_tls_cert", "admin_tls_cert and admin_tls_key go together");
  } else if (!config.admin_tls_cert_file.empty()) {
    config.admin_tls_cert_file = (base_dir / config.admin_tls_cert_file).string();
    config.admin_tls_key_file = (base_dir / config.admin_tls_key_file).string();
  }
  r.get(server["tls_cert"], "server.tls_cert", config.tls_cert_file);
  r.get(server["tls_key"], "server.tls_key", config.tls_key_file);
  r.getInt(server["workers"], "server.workers", config.workers, 0, 256);
  r.get(server["admin_key"], "server.admin_key", config.admin_key);
  if (!config.admin_key.empty() && config.admin_key.size() < 32) {
    r.fail("server.admin_key", "must be at least 32 characters (e.g. openssl rand -base64 32)");
  }
  if (!validListen(config.grpc_listen)) r.fail("server.grpc_listen", "must be host:port");
  if (!validListen(config.admin_listen)) r.fail("server.admin_listen", "must be host:port");
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    r.fail("server.tls_cert", "tls_cert and tls_key go together");
  }
  r.get(server["rest_listen"], "server.rest_listen", config.rest_listen);
  r.get(server["rest_plain_http"], "server.rest_plain_http", config.rest_plain_http);
  r.getInt(server["rest_max_connections"], "server.rest_max_connections",
           config.rest_max_connections, 1, 1'000'000);
  if (!config.rest_listen.empty()) {
    if (!validListen(config.rest_listen)) r.fail("server.rest_listen", "must be host:port");
    std::string host = config.rest_listen.substr(0, config.rest_listen.rfind(':'));
    bool loopback = host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
    if (config.rest_plain_http && !loopback) {
      r.fail("server.rest_plain_http",
             "plain HTTP is served only on loopback (127.0.0.1, [::1], localhost); got '" + host +
                 "'");
    }
    if (!config.rest_plain_http && config.tls_cert_file.empty()) {
      r.fail("server.rest_listen",
             "needs server.tls_cert and server.tls_key (or rest_plain_http "
             "on loopback)");
    }
  }
  if (!config.tls_cert_file.empty()) {
    config.tls_cert_file = (base_dir / config.tls_cert_file).string();
    config.tls_key_file = (base_dir / config.tls_key_file).string();
  }

  auto redis = root["redis"];
  r.get(redis["host"], "redis.host", config.redis_host);
  r.getInt(redis["port"], "redis.port", config.redis_port, 1, 65535);
  r.get(redis["password"], "redis.password", config.redis_password);
  config.redis_nodes = {{config.redis_host, config.redis_port}};
  if (redis["nodes"]) {
    auto nodes = redis["nodes"].as_array();
    if (!nodes || nodes->empty())
      r.fail("redis.nodes", "must be a non-empty list of \"host:port\"");
    if (nodes && !nodes->empty()) {
      if (redis["host"] || redis["port"])
        r.fail("redis.nodes", "replaces host and port; set one or the other");
      config.redis_nodes.clear();
      for (size_t i = 0; i < nodes->size(); ++i) {
        auto text = (*nodes)[i].value<std::string>();
        auto colon = text ? text->rfind(':') : std::string::npos;
        uint16_t port = 0;
        if (colon != std::string::npos && colon > 0) {
          auto digits = std::string_view(*text).substr(colon + 1);
          auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
          if (ec != std::errc() || end != digits.data() + digits.size()) port = 0;
        }
        if (port == 0) {
          r.fail("redis.nodes[" + std::to_string(i) + "]", "must be \"host:port\"");
          break;
        }
        config.redis_nodes.push_back({text->substr(0, colon), port});
      }
    }
  }

  auto dispatch = root["dispatch"];
  r.getInt(dispatch["buckets_per_job"], "dispatch.buckets_per_job", config.buckets_per_job, 1,
           1 << 16);
  r.getInt(dispatch["max_jobs_per_worker"], "dispatch.max_jobs_per_worker",
           config.max_jobs_per_worker, 1, 1024);
  r.getInt(dispatch["max_in_flight_per_job"], "dispatch.max_in_flight_per_job",
           config.max_in_flight_per_job, 1, 1 << 20);
  r.getInt(dispatch["resolves_in_flight_per_job"], "dispatch.resolves_in_flight_per_job",
           config.resolves_in_flight_per_job, 1, 256);
  r.getInt(dispatch["split_lagging_platform_ms"], "dispatch.split_lagging_platform_ms",
           config.split_lagging_platform_ms, 0, 3600 * 1000);
  r.getInt(dispatch["max_attempts"], "dispatch.max_attempts", config.max_attempts, 1, 20);
  r.getInt(dispatch["queue_partitions"], "dispatch.queue_partitions", config.queue_partitions, 1,
           256);
  r.getInt(dispatch["job_idle_timeout_ms"], "dispatch.job_idle_timeout_ms",
           config.job_idle_timeout_ms, 300, 3600 * 1000);
  r.getInt(dispatch["max_retry_delay_ms"], "dispatch.max_retry_delay_ms", config.max_retry_delay_ms,
           1000, 3600 * 1000);
  r.getInt(dispatch["default_deadline_s"], "dispatch.default_deadline_s", config.default_deadline_s,
           1, 7 * 24 * 3600);
  r.getInt(dispatch["failures_per_notification"], "dispatch.failures_per_notification",
           config.failures_per_notification, 0, 100000);
  r.getInt(dispatch["outcome_retention_hours"], "dispatch.outcome_retention_hours",
           config.outcome_retention_hours, 1, 90 * 24);
  r.getInt(dispatch["idempotency_window_hours"], "dispatch.idempotency_window_hours",
           config.idempotency_window_hours, 1, 30 * 24);
  r.getInt(dispatch["max_schedule_ahead_hours"], "dispatch.max_schedule_ahead_hours",
           config.max_schedule_ahead_hours, 1, 90 * 24);
  r.getInt(dispatch["shutdown_grace_ms"], "dispatch.shutdown_grace_ms", config.shutdown_grace_ms, 0,
           600 * 1000);
  if (config.default_deadline_s > config.outcome_retention_hours * 3600u) {
    r.fail("dispatch.default_deadline_s", "must not exceed dispatch.outcome_retention_hours");
  }

  auto upkeep = root["registry"];
  r.getInt(upkeep["sweep_interval_ms"], "registry.sweep_interval_ms", config.sweep_interval_ms, 0,
           3600 * 1000);
  r.getInt(upkeep["dead_channel_retention_hours"], "registry.dead_channel_retention_hours",
           config.dead_channel_retention_hours, 0, 24 * 3650);

  if (auto hubs = root["hubs"].as_array()) {
    size_t index = 0;
    for (const auto& node : *hubs) {
      if (const auto* table = node.as_table()) {
        parseHub(*table, index, base_dir, r, config);
      } else {
        r.fail("hubs[" + std::to_string(index) + "]", "must be a table");
      }
      ++index;
    }
  }
  auto console = root["console"];
  r.get(console["enabled"], "console.enabled", config.console);
  r.getInt(console["session_minutes"], "console.session_minutes", config.console_session_minutes, 1,
           24 * 60);
  r.getInt(console["max_live_pages"], "console.max_live_pages", config.console_max_live_pages, 1,
           1000);

  // Hubs may live in Redis alone (created with the admin key); without either there is nothing
  // this instance could ever serve.
  if (config.hubs.empty() && config.admin_key.empty()) {
    r.fail("hubs", "no [[hubs]] entry and no server.admin_key: set one or the other");
  }
  if (error) return *error;
  return config;
}

Result<Config> loadConfig(const std::filesystem::path& path) {
  bool ok = false;
  std::string text = readFile(path, ok);
  if (!ok) return Error::invalidArgument("config: cannot read " + path.string());
  auto config = parseConfig(text, path.parent_path());
  if (!config) return Error::invalidArgument(path.string() + ": " + config.error().message);
  return config;
}

}  // namespace pushhub::gateway
