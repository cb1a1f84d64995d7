// pns-mock: a realistic stand-in for the push providers (APNs, FCM, WNS) for tests, the demo and
// benchmarks. See docs/pns-mock.md. The main thread runs the acceptor and the control API;
// --threads worker threads run the connections.

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "base/http_server.h"
#include "base/log.h"
#include "providers/common/jwt.h"
#include "providers/common/tls.h"
#include "tools/pns-mock/apns_service.h"
#include "tools/pns-mock/control.h"
#include "tools/pns-mock/fcm_service.h"
#include "tools/pns-mock/h2_server.h"
#include "tools/pns-mock/wns_service.h"

namespace pushhub::mock {
namespace {

constexpr const char* kUsage = R"(usage: pns-mock [flags]
A realistic APNs, FCM and WNS stand-in: TLS + HTTP/2 (APNs: ALPN h2 required; FCM and WNS also
HTTP/1.1), the providers' auth (APNs ES256 JWT, FCM OAuth with RS256 service-account assertions,
WNS OAuth client credentials), the real error reasons, limits and throttling, and a plain-HTTP
control API. See docs/pns-mock.md.

Listening
  --listen ADDR                 address for every port (default 127.0.0.1)
  --apns-port N                 APNs TLS/HTTP2 port (default 0 = pick one)
  --control-port N              control API port, plain HTTP (default 0 = pick one)
  --ports-file FILE             after binding, write "apns_port=N" and "control_port=N" lines
                                (and fcm_port / wns_port when enabled)
  --cert FILE --key FILE        TLS server certificate chain and key (PEM), required
  --threads N                   worker threads, one io_context each (default 2)

APNs token auth (at least one key is needed to accept anything)
  --apns-key KID:TEAM:FILE      accept JWTs with kid KID, iss TEAM, signed by the key whose
                                public half is in FILE (PEM); repeatable
  --apns-key-id KID --apns-team-id TEAM --apns-public-key FILE
                                the same for one key
  --apns-topic TOPIC            allowed apns-topic (repeatable; a bundle id also allows its
                                push-type suffixes such as .voip). None = any topic

Behaviour
  --max-concurrent-streams N    SETTINGS_MAX_CONCURRENT_STREAMS after authentication (1000)
  --initial-streams N           limit advertised until a valid token succeeds (1; 0 = no gate)
  --drop-to-one-on-reject       after a rejected request advertise 1 stream until the next success
  --delay-ms D                  answer every request after D ms (0)
  --dead-prefix HEX             tokens starting with HEX get 410 Unregistered (default dead)
  --bad-prefix HEX              tokens starting with HEX get 400 BadDeviceToken (default 0bad)
  --drop-prefix HEX             tokens starting with HEX make the server close the TCP connection
                                without answering (default c105e); "" disables a prefix
  --keep-received N             requests kept per worker for /_mock/received (10000)
  --log-level LEVEL             trace, debug, info, warn, error (default info)

FCM (enabled by --fcm-port; 0 = pick one)
  --fcm-port N                  FCM TLS port: POST /token and /v1/projects/P/messages:send
  --fcm-alpn LIST               ALPN offer: h2,http/1.1 (default), h2, http/1.1, http/1.1,h2
  --fcm-account EMAIL:FILE      a service account (client_email, PEM public key); repeatable
  --fcm-client-email E --fcm-public-key FILE   the same as a pair (repeatable pairs)
  --fcm-project P               allowed project (repeatable; none = any)
  --fcm-token-ttl S             expires_in of issued access tokens (3600)
  --fcm-dead-prefix S           tokens starting with S: 404 UNREGISTERED (default dead)
  --fcm-bad-prefix S            tokens starting with S: 400 INVALID_ARGUMENT (default bogus)
  --fcm-throttle-every N        every Nth authenticated, well-formed send: 429 QUOTA_EXCEEDED

WNS (enabled by --wns-port; 0 = pick one)
  --wns-port N                  WNS TLS port: POST /accesstoken.srf and /?token=T, /w/?token=T
  --wns-alpn LIST               ALPN offer: http/1.1 (default), h2,http/1.1, h2, http/1.1,h2
  --wns-sid SID --wns-secret S  an app's Package SID and secret (repeatable pairs)
  --wns-token-ttl S             expires_in of issued access tokens (86400)
  --wns-expired-prefix S        channel tokens starting with S: 410 (default expired)
  --wns-unknown-prefix S        channel tokens starting with S: 404 (default unknown)
  --wns-throttle-every N        every Nth authenticated, well-formed notification: 406

  --throttle-retry-after S      Retry-After of throttled FCM / WNS answers (1)

Helpers (print and exit; for h2load, curl and docs)
  --print-jwt --apns-key-file P8 --apns-key-id KID --apns-team-id TEAM [--iat UNIX_SECONDS]
  --print-fcm-assertion --fcm-key-file PEM --fcm-client-email E --fcm-audience URL [--iat S]
                                an RS256 service-account assertion for POST /token

Control API (plain HTTP on --listen:--control-port)
  GET  /_mock/stats                         per-provider counters
  GET  /_mock/received?provider=apns&limit=N  recent requests (authorization redacted)
  POST /_mock/reset                          clear stats and received requests
  POST /_mock/config   {"max_concurrent_streams":N,"delay_ms":D}
  POST /_mock/goaway   {"reason":"Shutdown"}
  POST /_mock/tokens   {"provider":"apns|fcm|wns","dead":[...],"bad":[...]}
  POST /_mock/expire-tokens {"provider":"fcm|wns"}  issued access tokens stop working
)";

// Flags that take a value, space-delimited for a simple lookup.
const std::string kValueFlags =
    " --listen --apns-port --control-port --ports-file --cert --key --threads --apns-key"
    " --apns-key-id --apns-team-id --apns-public-key --apns-key-file --iat --apns-topic"
    " --max-concurrent-streams --initial-streams --delay-ms --keep-received --dead-prefix"
    " --bad-prefix --drop-prefix --log-level --fcm-port --fcm-alpn --fcm-account"
    " --fcm-client-email --fcm-public-key --fcm-project --fcm-token-ttl --fcm-dead-prefix"
    " --fcm-bad-prefix --fcm-throttle-every --wns-port --wns-alpn --wns-sid --wns-secret"
    " --wns-token-ttl --wns-expired-prefix --wns-unknown-prefix --wns-throttle-every"
    " --throttle-retry-after --fcm-key-file --fcm-audience ";

struct Options {
  std::string listen = "127.0.0.1";
  uint16_t apns_port = 0;
  uint16_t control_port = 0;
  std::string ports_file;
  std::string cert;
  std::string key;
  size_t threads = 2;
  struct KeySpec {
    std::string kid, team, file;
  };
  std::vector<KeySpec> keys;
  std::string key_id, team_id, public_key_file;
  std::vector<std::string> topics;
  ApnsSettings settings;
  std::string dead_prefix = "dead", bad_prefix = "0bad", drop_prefix = "c105e";
  std::string log_level = "info";
  bool print_jwt = false;
  std::string key_file;  // private .p8 for --print-jwt
  int64_t iat = -1;

  // FCM
  bool fcm = false;
  uint16_t fcm_port = 0;
  std::string fcm_alpn = "h2,http/1.1";
  std::vector<std::pair<std::string, std::string>> fcm_accounts;  // email, public key file
  std::vector<std::string> fcm_emails, fcm_key_files;             // the pair form
  std::vector<std::string> fcm_projects;
  CloudSettings fcm_settings;
  std::string fcm_dead_prefix = "dead", fcm_bad_prefix = "bogus";
  bool print_fcm_assertion = false;
  std::string fcm_key_file, fcm_audience;
  // WNS
  bool wns = false;
  uint16_t wns_port = 0;
  std::string wns_alpn = "http/1.1";
  std::vector<std::string> wns_sids, wns_secrets;
  CloudSettings wns_settings{.token_ttl_s = 86400, .allow_http1 = true};
  std::string wns_expired_prefix = "expired", wns_unknown_prefix = "unknown";
};

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error::invalidArgument(path + ": cannot open");
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Loads the PEM key (private or public, per `load`) in `file`; errors name the file.
Result<providers::EvpPkeyPtr> readKey(const std::string& file,
                                      Result<providers::EvpPkeyPtr> (*load)(std::string_view)) {
  auto pem = readFile(file);
  if (!pem) {
    return pem.error();
  }
  auto key = load(*pem);
  if (!key) {
    return Error::invalidArgument(file + ": " + key.error().message);
  }
  return key;
}

// Stores `text` in `out` when it is an integer within [min, max]; else returns the error.
template <typename T>
Result<void> parseNumber(const std::string& flag, const std::string& text, T min, T max, T& out) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    return Error::invalidArgument(flag + ": expected an integer from " + std::to_string(min) +
                                  " to " + std::to_string(max) + ", got '" + text + "'");
  }
  out = value;
  return {};
}

// Stores `text` lowercased in `out` when it is hex digits (or empty); else returns the error.
Result<void> hexPrefix(const std::string& flag, const std::string& text, std::string& out) {
  std::string lower;
  for (char c : text) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Error::invalidArgument(flag + ": expected hex digits, got '" + text + "'");
    }
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  out = std::move(lower);
  return {};
}

// Returns the options, or an error; "help" as the error message means --help was given.
Result<Options> parseArgs(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) {
        return Error::invalidArgument(a + ": missing value");
      }
      return args[++i];
    };
#define PNS_VALUE(var)  \
  auto var = value();   \
  if (!var) {           \
    return var.error(); \
  }
    if (a == "--help" || a == "-h") {
      return Error::invalidArgument("help");
    } else if (a == "--print-jwt") {
      o.print_jwt = true;
    } else if (a == "--print-fcm-assertion") {
      o.print_fcm_assertion = true;
    } else if (a == "--drop-to-one-on-reject") {
      o.settings.drop_to_one_on_reject = true;
    } else if (a.rfind("--", 0) != 0 || kValueFlags.find(" " + a + " ") == std::string::npos) {
      return Error::invalidArgument("unknown flag " + a + " (see --help)");
    } else {
      PNS_VALUE(v);
      const std::string& s = *v;
      Result<void> ok;  // set by the flags whose value can be invalid
      if (a == "--listen") {
        o.listen = s;
      } else if (a == "--apns-port" || a == "--control-port") {
        ok = parseNumber<uint16_t>(a, s, 0, 65535,
                                   a == "--apns-port" ? o.apns_port : o.control_port);
      } else if (a == "--ports-file") {
        o.ports_file = s;
      } else if (a == "--cert") {
        o.cert = s;
      } else if (a == "--key") {
        o.key = s;
      } else if (a == "--threads") {
        ok = parseNumber<size_t>(a, s, 1, 256, o.threads);
      } else if (a == "--apns-key") {
        size_t c1 = s.find(':');
        size_t c2 = c1 == std::string::npos ? c1 : s.find(':', c1 + 1);
        if (c2 == std::string::npos || c1 == 0 || c2 == c1 + 1 || c2 + 1 == s.size()) {
          return Error::invalidArgument("--apns-key: expected KID:TEAM:FILE, got '" + s + "'");
        }
        o.keys.push_back({s.substr(0, c1), s.substr(c1 + 1, c2 - c1 - 1), s.substr(c2 + 1)});
      } else if (a == "--apns-key-id") {
        o.key_id = s;
      } else if (a == "--apns-team-id") {
        o.team_id = s;
      } else if (a == "--apns-public-key") {
        o.public_key_file = s;
      } else if (a == "--apns-key-file") {
        o.key_file = s;
      } else if (a == "--iat") {
        ok = parseNumber<int64_t>(a, s, 0, INT64_MAX, o.iat);
      } else if (a == "--apns-topic") {
        o.topics.push_back(s);
      } else if (a == "--max-concurrent-streams") {
        ok = parseNumber<uint32_t>(a, s, 1, 0x7fffffff, o.settings.max_concurrent_streams);
      } else if (a == "--initial-streams") {
        ok = parseNumber<uint32_t>(a, s, 0, 0x7fffffff, o.settings.initial_streams);
      } else if (a == "--delay-ms") {
        ok = parseNumber<uint32_t>(a, s, 0, 600000, o.settings.delay_ms);
      } else if (a == "--keep-received") {
        ok = parseNumber<size_t>(a, s, 0, 10000000, o.settings.keep_received);
      } else if (a == "--dead-prefix" || a == "--bad-prefix" || a == "--drop-prefix") {
        ok = hexPrefix(a, s,
                       a == "--dead-prefix"  ? o.dead_prefix
                       : a == "--bad-prefix" ? o.bad_prefix
                                             : o.drop_prefix);
      } else if (a == "--log-level") {
        o.log_level = s;
      } else if (a == "--fcm-port" || a == "--wns-port") {
        ok = parseNumber<uint16_t>(a, s, 0, 65535, a == "--fcm-port" ? o.fcm_port : o.wns_port);
        (a == "--fcm-port" ? o.fcm : o.wns) = true;
      } else if (a == "--fcm-alpn" || a == "--wns-alpn") {
        if (!validAlpnOffer(s)) {
          return Error::invalidArgument(a + ": expected h2,http/1.1, http/1.1, h2 or http/1.1,h2");
        }
        (a == "--fcm-alpn" ? o.fcm_alpn : o.wns_alpn) = s;
      } else if (a == "--fcm-account") {
        size_t c = s.find(':');
        if (c == std::string::npos || c == 0 || c + 1 == s.size()) {
          return Error::invalidArgument("--fcm-account: expected EMAIL:FILE, got '" + s + "'");
        }
        o.fcm_accounts.emplace_back(s.substr(0, c), s.substr(c + 1));
      } else if (a == "--fcm-client-email") {
        o.fcm_emails.push_back(s);
      } else if (a == "--fcm-public-key") {
        o.fcm_key_files.push_back(s);
      } else if (a == "--fcm-project") {
        o.fcm_projects.push_back(s);
      } else if (a == "--fcm-token-ttl" || a == "--wns-token-ttl") {
        ok = parseNumber<int64_t>(
            a, s, 1, 365LL * 86400,
            (a == "--fcm-token-ttl" ? o.fcm_settings : o.wns_settings).token_ttl_s);
      } else if (a == "--fcm-throttle-every" || a == "--wns-throttle-every") {
        ok = parseNumber<uint32_t>(
            a, s, 0, 0x7fffffff,
            (a == "--fcm-throttle-every" ? o.fcm_settings : o.wns_settings).throttle_every);
      } else if (a == "--throttle-retry-after") {
        ok = parseNumber<uint32_t>(a, s, 0, 86400, o.fcm_settings.retry_after_s);
        o.wns_settings.retry_after_s = o.fcm_settings.retry_after_s;
      } else if (a == "--fcm-dead-prefix") {
        o.fcm_dead_prefix = s;
      } else if (a == "--fcm-bad-prefix") {
        o.fcm_bad_prefix = s;
      } else if (a == "--fcm-key-file") {
        o.fcm_key_file = s;
      } else if (a == "--fcm-audience") {
        o.fcm_audience = s;
      } else if (a == "--wns-sid") {
        o.wns_sids.push_back(s);
      } else if (a == "--wns-secret") {
        o.wns_secrets.push_back(s);
      } else if (a == "--wns-expired-prefix") {
        o.wns_expired_prefix = s;
      } else if (a == "--wns-unknown-prefix") {
        o.wns_unknown_prefix = s;
      } else {
        return Error::invalidArgument("unknown flag " + a + " (see --help)");
      }
      if (!ok) {
        return ok.error();
      }
    }
#undef PNS_VALUE
  }
  if (!o.key_id.empty() || !o.team_id.empty() || !o.public_key_file.empty()) {
    if (!o.print_jwt && (o.key_id.empty() || o.team_id.empty() || o.public_key_file.empty())) {
      return Error::invalidArgument(
          "--apns-key-id, --apns-team-id and --apns-public-key go together");
    }
    if (!o.public_key_file.empty()) {
      o.keys.push_back({o.key_id, o.team_id, o.public_key_file});
    }
  }
  if (o.fcm_emails.size() != o.fcm_key_files.size() && !o.print_fcm_assertion) {
    return Error::invalidArgument("--fcm-client-email and --fcm-public-key go in pairs");
  }
  for (size_t i = 0; i < o.fcm_key_files.size(); ++i) {
    o.fcm_accounts.emplace_back(o.fcm_emails[i], o.fcm_key_files[i]);
  }
  if (o.wns_sids.size() != o.wns_secrets.size()) {
    return Error::invalidArgument("--wns-sid and --wns-secret go in pairs");
  }
  o.fcm_settings.allow_http1 = o.fcm_alpn.find("http/1.1") != std::string::npos;
  o.wns_settings.allow_http1 = o.wns_alpn.find("http/1.1") != std::string::npos;
  for (CloudSettings* cs : {&o.fcm_settings, &o.wns_settings}) {
    cs->max_concurrent_streams = o.settings.max_concurrent_streams;
    cs->delay_ms = o.settings.delay_ms;
    cs->keep_received = o.settings.keep_received;
  }
  if (o.print_fcm_assertion) {
    if (o.fcm_key_file.empty() || o.fcm_emails.size() != 1 || o.fcm_audience.empty()) {
      return Error::invalidArgument(
          "--print-fcm-assertion needs --fcm-key-file, one --fcm-client-email and "
          "--fcm-audience");
    }
    return o;
  }
  if (o.print_jwt) {
    if (o.key_file.empty() || o.key_id.empty() || o.team_id.empty()) {
      return Error::invalidArgument(
          "--print-jwt needs --apns-key-file, --apns-key-id and --apns-team-id");
    }
    return o;
  }
  if (o.cert.empty() || o.key.empty()) {
    return Error::invalidArgument("--cert and --key are required");
  }
  return o;
}

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int printJwt(const Options& o) {
  auto key = readKey(o.key_file, providers::loadPrivateKeyPem);
  if (!key) {
    std::cerr << "pns-mock: --apns-key-file " << key.error().message << "\n";
    return 2;
  }
  int64_t iat = o.iat >= 0 ? o.iat : nowSeconds();
  std::string header = R"({"alg":"ES256","kid":")" + o.key_id + "\"}";
  std::string claims = R"({"iss":")" + o.team_id + "\",\"iat\":" + std::to_string(iat) + "}";
  auto jwt = providers::signJwtEs256(key->get(), header, claims);
  if (!jwt) {
    std::cerr << "pns-mock: signing failed: " << jwt.error().message << "\n";
    return 2;
  }
  std::cout << *jwt << "\n";
  return 0;
}

int printFcmAssertion(const Options& o) {
  auto key = readKey(o.fcm_key_file, providers::loadPrivateKeyPem);
  if (!key) {
    std::cerr << "pns-mock: --fcm-key-file " << key.error().message << "\n";
    return 2;
  }
  int64_t iat = o.iat >= 0 ? o.iat : nowSeconds();
  boost::json::object claims{{"iss", o.fcm_emails.front()},
                             {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
                             {"aud", o.fcm_audience},
                             {"iat", iat},
                             {"exp", iat + 3600}};
  auto jwt = providers::signJwtRs256(key->get(), R"({"alg":"RS256","typ":"JWT"})",
                                     boost::json::serialize(claims));
  if (!jwt) {
    std::cerr << "pns-mock: signing failed: " << jwt.error().message << "\n";
    return 2;
  }
  std::cout << *jwt << "\n";
  return 0;
}

Result<FcmRules> makeFcmRules(const Options& o) {
  FcmRules rules;
  for (const auto& [email, file] : o.fcm_accounts) {
    auto key = readKey(file, providers::loadPublicKeyPem);
    if (!key) {
      return Error::invalidArgument("--fcm-account " + email + ": " + key.error().message);
    }
    rules.accounts.push_back(FcmAccount{email, fcmProjectOfEmail(email),
                                        std::shared_ptr<EVP_PKEY>(key->release(), EVP_PKEY_free)});
  }
  rules.projects.insert(o.fcm_projects.begin(), o.fcm_projects.end());
  rules.dead_prefix = o.fcm_dead_prefix;
  rules.bad_prefix = o.fcm_bad_prefix;
  return rules;
}

WnsRules makeWnsRules(const Options& o) {
  WnsRules rules;
  for (size_t i = 0; i < o.wns_sids.size(); ++i) {
    rules.apps.push_back(WnsApp{o.wns_sids[i], o.wns_secrets[i]});
  }
  rules.expired_prefix = o.wns_expired_prefix;
  rules.unknown_prefix = o.wns_unknown_prefix;
  return rules;
}

Result<ApnsRules> makeRules(const Options& o) {
  ApnsRules rules;
  for (const auto& k : o.keys) {
    auto key = readKey(k.file, providers::loadPublicKeyPem);
    if (!key) {
      return Error::invalidArgument("--apns-key " + k.kid + ": " + key.error().message);
    }
    rules.keys[k.kid] = ApnsKey{k.team, std::shared_ptr<EVP_PKEY>(key->release(), EVP_PKEY_free)};
  }
  rules.topics.insert(o.topics.begin(), o.topics.end());
  rules.dead_prefix = o.dead_prefix;
  rules.bad_prefix = o.bad_prefix;
  rules.drop_prefix = o.drop_prefix;
  return rules;
}

int run(const Options& o) {
  auto logger = log::get("pns-mock");
  auto rules = makeRules(o);
  if (!rules) {
    std::cerr << "pns-mock: " << rules.error().message << "\n";
    return 2;
  }
  if (rules->keys.empty()) {
    logger->warn("no --apns-key given: every APNs request will fail authentication");
  }
  auto tls = makeServerTlsContext(o.cert, o.key);
  if (!tls) {
    std::cerr << "pns-mock: " << tls.error().message << "\n";
    return 2;
  }
  auto fcm_rules = makeFcmRules(o);
  if (!fcm_rules) {
    std::cerr << "pns-mock: " << fcm_rules.error().message << "\n";
    return 2;
  }
  auto fcm_tls = makeServerTlsContext(o.cert, o.key, o.fcm_alpn);
  auto wns_tls = makeServerTlsContext(o.cert, o.key, o.wns_alpn);
  if (!fcm_tls || !wns_tls) {
    std::cerr << "pns-mock: " << (fcm_tls ? wns_tls.error() : fcm_tls.error()).message << "\n";
    return 2;
  }
  if (o.fcm && fcm_rules->accounts.empty()) {
    logger->warn("no --fcm-account given: the FCM token endpoint will refuse every assertion");
  }
  if (o.wns && o.wns_sids.empty()) {
    logger->warn("no --wns-sid given: the WNS token endpoint will refuse every request");
  }

  // Declaration order is shutdown order in reverse: the pool (and the connections its
  // io_contexts still hold) goes last.
  WorkerPool workers(o.threads);
  ApnsService apns(workers, std::move(*rules), o.settings);
  std::unique_ptr<CloudService> fcm =
      makeFcmService(workers, std::move(*fcm_rules), o.fcm_settings);
  std::unique_ptr<CloudService> wns = makeWnsService(workers, makeWnsRules(o), o.wns_settings);
  std::vector<MockProvider*> providers{&apns};
  if (o.fcm) {
    providers.push_back(fcm.get());
  }
  if (o.wns) {
    providers.push_back(wns.get());
  }
  boost::asio::io_context main_io(1);
  std::unique_ptr<H2Listener> apns_listener;
  std::unique_ptr<H2Listener> fcm_listener;
  std::unique_ptr<H2Listener> wns_listener;
  std::unique_ptr<http::HttpServer> control;
  try {
    apns_listener = std::make_unique<H2Listener>(main_io, workers, *tls, o.listen, o.apns_port,
                                                 apns.factory(), apns.connectionOptions());
    apns.attach(apns_listener.get());
    if (o.fcm) {
      fcm_listener = std::make_unique<H2Listener>(main_io, workers, *fcm_tls, o.listen, o.fcm_port,
                                                  fcm->factory(), fcm->connectionOptions());
      fcm->attach(fcm_listener.get());
    }
    if (o.wns) {
      wns_listener = std::make_unique<H2Listener>(main_io, workers, *wns_tls, o.listen, o.wns_port,
                                                  wns->factory(), wns->connectionOptions());
      wns->attach(wns_listener.get());
    }
    control = std::make_unique<http::HttpServer>(main_io, o.listen, o.control_port,
                                                 makeControlHandler(providers));
  } catch (const std::exception& e) {
    std::cerr << "pns-mock: cannot listen on " << o.listen << ": " << e.what() << "\n";
    return 2;
  }

  std::string ports = "apns_port=" + std::to_string(apns_listener->port()) + "\n";
  if (fcm_listener) {
    ports += "fcm_port=" + std::to_string(fcm_listener->port()) + "\n";
  }
  if (wns_listener) {
    ports += "wns_port=" + std::to_string(wns_listener->port()) + "\n";
  }
  ports += "control_port=" + std::to_string(control->port()) + "\n";
  std::fputs(ports.c_str(), stdout);
  std::fflush(stdout);
  if (!o.ports_file.empty()) {
    std::string tmp = o.ports_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << ports;
    }
    std::rename(tmp.c_str(), o.ports_file.c_str());  // atomic: readers never see half a file
  }
  logger->info("APNs on {}:{} (TLS, h2), control on {}:{}, {} worker thread(s)", o.listen,
               apns_listener->port(), o.listen, control->port(), workers.size());
  if (fcm_listener) {
    logger->info("FCM on {}:{} (TLS, ALPN {})", o.listen, fcm_listener->port(), o.fcm_alpn);
  }
  if (wns_listener) {
    logger->info("WNS on {}:{} (TLS, ALPN {})", o.listen, wns_listener->port(), o.wns_alpn);
  }

  boost::asio::signal_set signals(main_io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    logger->info("shutting down");
    apns_listener->stop();
    if (fcm_listener) {
      fcm_listener->stop();
    }
    if (wns_listener) {
      wns_listener->stop();
    }
    control->stop();
    main_io.stop();
  });
  workers.start();
  main_io.run();
  workers.stop();
  return 0;
}

}  // namespace
}  // namespace pushhub::mock

int main(int argc, char** argv) {
  pushhub::providers::skipNullFreesInOpenSsl();  // before OpenSSL allocates (tls.h)
  auto options = pushhub::mock::parseArgs(argc, argv);
  if (!options) {
    if (options.error().message == "help") {
      std::cout << pushhub::mock::kUsage;
      return 0;
    }
    std::cerr << "pns-mock: " << options.error().message << "\n";
    return 2;
  }
  pushhub::log::setLevel(options->log_level);
  if (options->print_jwt) {
    return pushhub::mock::printJwt(*options);
  }
  if (options->print_fcm_assertion) {
    return pushhub::mock::printFcmAssertion(*options);
  }
  return pushhub::mock::run(*options);
}
