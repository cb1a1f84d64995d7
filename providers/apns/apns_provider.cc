#include "providers/apns/apns_provider.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cctype>

#include "base/ascii.h"
#include "providers/common/tls.h"

namespace pushhub::providers::apns {
namespace {

constexpr std::array<std::string_view, 11> kPushTypes = {
    "alert",    "background",   "voip",       "complication", "fileprovider", "mdm",
    "location", "liveactivity", "pushtotalk", "widgets",      "controls"};

struct ReasonRow {
  int status;
  std::string_view reason;
  OutcomeKind kind;
  std::string_view azure;
  bool recycle;
};

// spec/pns-protocols.md §2.5 (reasons) and §6 (outcomes).
constexpr ReasonRow kReasons[] = {
    {400, "BadCollapseId", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "BadDeviceToken", OutcomeKind::kDropToken, "WrongToken", false},
    {400, "BadExpirationDate", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat",
     false},
    {400, "BadMessageId", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "BadPriority", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "BadTopic", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {400, "DeviceTokenNotForTopic", OutcomeKind::kDropToken, "WrongToken", false},
    {400, "DuplicateHeaders", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat",
     false},
    {400, "IdleTimeout", OutcomeKind::kRetryBackoff, "PnsUnavailable", true},
    {400, "InvalidPushType", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "MissingDeviceToken", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat",
     false},
    {400, "MissingTopic", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "PayloadEmpty", OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false},
    {400, "TopicDisallowed", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "BadCertificate", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "BadCertificateEnvironment", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "ExpiredProviderToken", OutcomeKind::kRefreshAuth, "InvalidCredentials", true},
    {403, "Forbidden", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "InvalidProviderToken", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "MissingProviderToken", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "UnrelatedKeyIdInToken", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "BadEnvironmentKeyIdInToken", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {403, "BadEnvironmentKeyInToken", OutcomeKind::kConfigError, "InvalidCredentials", false},
    {404, "BadPath", OutcomeKind::kPermanentBadRequest, "PnsInterfaceError", false},
    {405, "MethodNotAllowed", OutcomeKind::kPermanentBadRequest, "PnsInterfaceError", false},
    {410, "ExpiredToken", OutcomeKind::kDropToken, "ExpiredChannel", false},
    {410, "Unregistered", OutcomeKind::kDropToken, "ExpiredChannel", false},
    {413, "PayloadTooLarge", OutcomeKind::kPermanentBadRequest, "InvalidNotificationSize", false},
    {429, "TooManyProviderTokenUpdates", OutcomeKind::kConfigError, "Throttled", false},
    {429, "TooManyRequests", OutcomeKind::kRetryAfter, "Throttled", false},
    {500, "InternalServerError", OutcomeKind::kRetryBackoff, "PnsUnavailable", false},
    {503, "ServiceUnavailable", OutcomeKind::kRetryBackoff, "PnsUnavailable", true},
    {503, "Shutdown", OutcomeKind::kRetryBackoff, "PnsUnavailable", true},
};

// Unknown reasons, by status class (spec §7.2).
ReasonRow byStatus(int status) {
  switch (status) {
    case 400:
      return {status, {}, OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat", false};
    case 403:
      return {status, {}, OutcomeKind::kConfigError, "InvalidCredentials", false};
    case 404:
    case 405:
      return {status, {}, OutcomeKind::kPermanentBadRequest, "PnsInterfaceError", false};
    case 410:
      return {status, {}, OutcomeKind::kDropToken, "ExpiredChannel", false};
    case 413:
      return {status, {}, OutcomeKind::kPermanentBadRequest, "InvalidNotificationSize", false};
    case 429:
      return {status, {}, OutcomeKind::kRetryAfter, "Throttled", false};
    default:
      break;
  }
  StatusVerdict v = byStatusClass(status);
  return {status, {}, v.kind, v.azure_outcome, false};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Not std::isxdigit: that is a locale-table call per character, and every target's device
// token (64+ characters) is checked on the delivery path.
bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool isUuid(std::string_view s) {
  if (s.size() != 36) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !isHex(s[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace

ApnsProvider::ApnsProvider(ApnsConfig config, std::shared_ptr<ApnsTokenSource> tokens)
    : config_(std::move(config)), tokens_(std::move(tokens)) {
  config_.key_pem.clear();  // the token source holds the key; keep no second copy around
}

Result<void> ApnsProvider::validateDeviceToken(std::string_view token) {
  if (token.size() < 64 || token.size() > 200) {
    return Error::invalidArgument("apns device token: must be 64 to 200 hex characters, got " +
                                  std::to_string(token.size()));
  }
  if (token.size() % 2 != 0) {
    return Error::invalidArgument("apns device token: must have an even number of hex digits");
  }
  if (!ascii::allHex(token)) {
    return Error::invalidArgument("apns device token: only hex digits 0-9a-f allowed");
  }
  return {};
}

Result<ConnectionPool::Options> ApnsProvider::poolOptions(const ApnsConfig& config) {
  return ConnectionPool::overTls(config.ca_file, AlpnOffer::kH2, config.host, config.port,
                                 config.connections);
}

Result<ApnsProvider::Headers> ApnsProvider::parseHeaders(const std::vector<Header>& headers,
                                                         size_t body_size) {
  Headers out;
  bool seen[6] = {};
  auto once = [&seen](int slot, std::string_view name) -> Result<void> {
    if (seen[slot]) {
      return Error::invalidArgument(std::string(name) + ": given more than once");
    }
    seen[slot] = true;
    return {};
  };
  for (const Header& h : headers) {
    std::string name = lower(h.name);
    if (name.rfind("apns-", 0) != 0) {
      continue;  // another platform's header (or content-type, which we set)
    }
    Result<void> ok;
    if (name == "apns-push-type") {
      ok = once(0, name);
      out.push_type = lower(h.value);
      if (ok &&
          std::find(kPushTypes.begin(), kPushTypes.end(), out.push_type) == kPushTypes.end()) {
        return Error::invalidArgument("apns-push-type: unknown value '" + h.value + "'");
      }
    } else if (name == "apns-priority") {
      ok = once(1, name);
      out.priority = h.value;
      if (ok && out.priority != "10" && out.priority != "5" && out.priority != "1") {
        return Error::invalidArgument("apns-priority: must be 10, 5 or 1, got '" + h.value + "'");
      }
    } else if (name == "apns-expiration") {
      ok = once(2, name);
      out.expiration = h.value;
      if (ok && (!allDigits(out.expiration) || out.expiration.size() > 11)) {
        return Error::invalidArgument(
            "apns-expiration: must be UNIX epoch seconds (up to 11 digits), got '" + h.value + "'");
      }
    } else if (name == "apns-collapse-id") {
      ok = once(3, name);
      out.collapse_id = h.value;
      if (ok && (out.collapse_id.empty() || out.collapse_id.size() > kMaxCollapseIdBytes)) {
        return Error::invalidArgument("apns-collapse-id: must be 1 to 64 bytes, got " +
                                      std::to_string(out.collapse_id.size()));
      }
    } else if (name == "apns-id") {
      ok = once(4, name);
      out.apns_id = h.value;
      if (ok && !isUuid(out.apns_id)) {
        return Error::invalidArgument(
            "apns-id: must be a UUID like 123e4567-e89b-12d3-a456-4266554400a0");
      }
    } else if (name == "apns-topic") {
      ok = once(5, name);
      out.topic = h.value;
    } else {
      return Error::invalidArgument(name + ": not an APNs header this hub knows");
    }
    if (!ok) {
      return ok.error();
    }
  }
  size_t limit = out.push_type == "voip" ? kMaxVoipPayloadBytes : kMaxPayloadBytes;
  if (body_size == 0) {
    return Error::invalidArgument("payload: must not be empty");
  }
  if (body_size > limit) {
    return Error::invalidArgument("payload: " + std::to_string(body_size) +
                                  " bytes, APNs allows at most " + std::to_string(limit) +
                                  " for apns-push-type " + out.push_type);
  }
  return out;
}

Result<const ApnsProvider::Headers*> ApnsProvider::checkedHeaders(
    const std::shared_ptr<const Notification>& n) {
  if (const Headers* known = checked_.find(n)) {
    return known;
  }
  auto parsed = parseHeaders(n->headers, n->body.size());
  if (!parsed) {
    return parsed.error();
  }
  const std::string& topic = parsed->topic;
  if (!topic.empty() && topic != config_.topic &&
      !(topic.size() > config_.topic.size() + 1 && topic.rfind(config_.topic, 0) == 0 &&
        topic[config_.topic.size()] == '.')) {
    return Error::invalidArgument("apns-topic: must be '" + config_.topic + "' or start with '" +
                                  config_.topic + ".'");
  }
  return checked_.remember(n, std::move(parsed).value());
}

std::shared_ptr<const std::vector<Header>> ApnsProvider::sharedHeaders(
    const Notification& n, const Headers& h, const ApnsToken& token) const {
  auto headers = std::make_shared<std::vector<Header>>();
  headers->reserve(8);
  headers->push_back({"authorization", token.authorization, true});
  headers->push_back({"apns-topic", h.topic.empty() ? config_.topic : h.topic, false});
  headers->push_back({"apns-push-type", h.push_type, false});
  if (!h.priority.empty()) {
    headers->push_back({"apns-priority", h.priority, false});
  }
  if (!h.expiration.empty()) {
    headers->push_back({"apns-expiration", h.expiration, true});
  } else if (n.expiry) {
    auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(n.expiry->time_since_epoch()).count();
    // 0 means "deliver once, do not store"; an already past expiry must not become that.
    headers->push_back({"apns-expiration", std::to_string(std::max<int64_t>(seconds, 1)), true});
  }
  if (!h.collapse_id.empty()) {
    headers->push_back({"apns-collapse-id", h.collapse_id, false});
  }
  if (!h.apns_id.empty()) {
    headers->push_back({"apns-id", lower(h.apns_id), true});
  }
  headers->push_back({"content-type", "application/json", false});
  return headers;
}

Result<Request> ApnsProvider::encode(const Target& target,
                                     const std::shared_ptr<const Notification>& notification) {
  const Notification& n = *notification;
  if (auto valid = validateDeviceToken(target.push_channel); !valid) {
    return valid.error();
  }
  auto checked = checkedHeaders(notification);
  if (!checked) {
    return checked.error();
  }
  const Headers& h = **checked;
  auto token = tokens_.get();
  if (!token) {
    return Error::unavailable("apns provider token: " + token.error().message);
  }
  // Every header but :path is the same for all targets of a send (for one token): built once.
  const SharedHeaders* shared = shared_.find(notification);
  if (shared == nullptr || shared->token != *token) {
    shared = shared_.remember(notification, {*token, sharedHeaders(n, h, **token)});
  }
  Request r;
  r.method = "POST";
  r.path.reserve(10 + target.push_channel.size());
  r.path = "/3/device/";
  r.path += target.push_channel;
  r.sensitive_path = true;
  r.shared_headers = shared->headers;
  // Every target of a send carries the same payload: share it, do not copy it.
  r.shared_body = std::shared_ptr<const std::string>(notification, &n.body);
  return r;
}

Outcome ApnsProvider::classify(const Response& response) const {
  Outcome o;
  o.http_status = response.status;
  if (response.status == 200) {
    o.kind = OutcomeKind::kDelivered;
    o.azure_outcome = "Success";
    return o;
  }
  if (!response.body.empty()) {
    boost::system::error_code ec;
    boost::json::value body = boost::json::parse(response.body, ec);
    if (!ec && body.is_object()) {
      if (const auto* reason = body.as_object().if_contains("reason");
          reason != nullptr && reason->is_string()) {
        o.reason = std::string(reason->as_string());
      }
    }
  }
  ReasonRow row = byStatus(response.status);
  for (const ReasonRow& r : kReasons) {
    if (r.reason == o.reason && r.status == response.status) {
      row = r;
      break;
    }
  }
  o.kind = row.kind;
  o.azure_outcome = row.azure;
  o.recycle_connection = row.recycle;
  if (o.kind == OutcomeKind::kRetryAfter) {
    if (auto after =
            parseRetryAfter(response.header("retry-after"), std::chrono::system_clock::now())) {
      o.retry_after = *after;
    }
  }
  return o;
}

void ApnsProvider::onAuthRejected() { tokens_.source().invalidate(); }

}  // namespace pushhub::providers::apns
