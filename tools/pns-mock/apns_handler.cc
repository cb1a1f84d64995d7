#include "tools/pns-mock/apns_handler.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>

namespace pushhub::mock {
namespace {

namespace reason = apns_reason;

constexpr std::string_view kDevicePrefix = "/3/device/";

constexpr std::string_view kPushTypes[] = {
    "alert",    "background",   "voip",       "complication", "fileprovider", "mdm",
    "location", "liveactivity", "pushtotalk", "widgets",      "controls",
};

constexpr std::string_view kTopicSuffixes[] = {
    ".voip",
    ".complication",
    ".pushkit.fileprovider",
    ".location-query",
    ".push-type.liveactivity",
    ".voip-ptt",
    ".push-type.widgets",
    ".push-type.controls",
};

// Headers that must not repeat (repeats get DuplicateHeaders, like APNs).
constexpr std::string_view kSingleHeaders[] = {
    "authorization", "apns-id",         "apns-topic",       "apns-push-type",
    "apns-priority", "apns-expiration", "apns-collapse-id",
};

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (prefix.empty() || s.size() < prefix.size()) {
    return false;
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != lower(prefix[i])) {
      return false;
    }
  }
  return true;
}

bool topicAllowed(const ApnsRules& rules, const std::string& topic) {
  if (rules.topics.empty() || rules.topics.count(topic) != 0) {
    return true;
  }
  for (std::string_view suffix : kTopicSuffixes) {
    if (topic.size() > suffix.size() && std::string_view(topic).ends_with(suffix) &&
        rules.topics.count(topic.substr(0, topic.size() - suffix.size())) != 0) {
      return true;
    }
  }
  return false;
}

ApnsVerdict reject(ApnsVerdict v, int status, std::string_view why) {
  v.status = status;
  v.reason = why;
  return v;
}

bool allDigits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Verifies a not-yet-cached JWT; on success fills team and iat. Returns an empty view when the
// token is acceptable, else the reason.
std::string_view verifyNewToken(std::string_view jwt, const ApnsRules& rules, std::string& team,
                                int64_t& iat) {
  auto decoded = providers::decodeJwt(jwt);
  if (!decoded) {
    return reason::kInvalidProviderToken;
  }
  boost::system::error_code ec;
  boost::json::value header = boost::json::parse(decoded->header_json, ec);
  if (ec || !header.is_object()) {
    return reason::kInvalidProviderToken;
  }
  const auto* alg = header.as_object().if_contains("alg");
  const auto* kid = header.as_object().if_contains("kid");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "ES256" || kid == nullptr ||
      !kid->is_string()) {
    return reason::kInvalidProviderToken;
  }
  auto key = rules.keys.find(std::string(kid->as_string()));
  if (key == rules.keys.end()) {
    return reason::kInvalidProviderToken;
  }
  boost::json::value claims = boost::json::parse(decoded->claims_json, ec);
  if (ec || !claims.is_object()) {
    return reason::kInvalidProviderToken;
  }
  const auto* iss = claims.as_object().if_contains("iss");
  const auto* iat_value = claims.as_object().if_contains("iat");
  if (iss == nullptr || !iss->is_string() || iat_value == nullptr ||
      !(iat_value->is_int64() || iat_value->is_uint64())) {
    return reason::kInvalidProviderToken;
  }
  if (iss->as_string() != key->second.team_id) {
    return reason::kInvalidProviderToken;
  }
  if (!providers::verifyEs256(key->second.public_key.get(), decoded->signing_input,
                              decoded->signature)) {
    return reason::kInvalidProviderToken;
  }
  team = key->second.team_id;
  iat =
      iat_value->is_int64() ? iat_value->as_int64() : static_cast<int64_t>(iat_value->as_uint64());
  return {};
}

}  // namespace

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

void lowercaseInto(std::string_view in, std::string& out) {
  out.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    out[i] = lower(in[i]);
  }
}

ApnsVerdict validateApnsRequest(const H2Request& request, const ApnsRules& rules,
                                ApnsConnectionState& connection, int64_t now_ms) {
  ApnsVerdict v;
  for (std::string_view name : kSingleHeaders) {
    if (request.headerCount(name) > 1) {
      return reject(v, 400, reason::kDuplicateHeaders);
    }
  }
  if (const std::string* id = request.header("apns-id")) {
    if (!isUuid(*id)) {
      return reject(v, 400, reason::kBadMessageId);
    }
    v.apns_id = *id;
  }
  if (request.method != "POST") {
    return reject(v, 405, reason::kMethodNotAllowed);
  }
  const std::string* topic = request.header("apns-topic");
  if (topic == nullptr || topic->empty()) {
    return reject(v, 400, reason::kMissingTopic);
  }
  if (!topicAllowed(rules, *topic)) {
    return reject(v, 400, reason::kBadTopic);
  }
  if (const std::string* collapse = request.header("apns-collapse-id")) {
    if (collapse->size() > 64) {
      return reject(v, 400, reason::kBadCollapseId);
    }
  }
  if (const std::string* priority = request.header("apns-priority")) {
    if (*priority != "10" && *priority != "5" && *priority != "1") {
      return reject(v, 400, reason::kBadPriority);
    }
  }
  if (const std::string* expiration = request.header("apns-expiration")) {
    if (!allDigits(*expiration)) {
      return reject(v, 400, reason::kBadExpirationDate);
    }
  }
  const std::string* push_type = request.header("apns-push-type");
  if (push_type != nullptr) {
    bool known = false;
    for (std::string_view t : kPushTypes) {
      known = known || *push_type == t;
    }
    if (!known) {
      return reject(v, 400, reason::kInvalidPushType);
    }
  }

  std::string_view path = request.path;
  if (size_t q = path.find('?'); q != std::string_view::npos) {
    path = path.substr(0, q);
  }
  if (!path.starts_with(kDevicePrefix)) {
    return reject(v, 404, reason::kBadPath);
  }
  std::string_view token = path.substr(kDevicePrefix.size());
  v.device_token = token;
  if (token.empty()) {
    return reject(v, 400, reason::kMissingDeviceToken);
  }
  bool hex64 = token.size() == 64;
  for (size_t i = 0; hex64 && i < token.size(); ++i) {
    hex64 = isHex(token[i]);
  }
  if (!hex64) {
    return reject(v, 400, reason::kBadDeviceToken);
  }
  if (startsWithIgnoreCase(token, rules.drop_prefix)) {
    v.drop_connection = true;
    v.status = 0;
    v.reason = reason::kDropped;
    return v;
  }
  if (!rules.dead_tokens.empty() || !rules.bad_tokens.empty()) {
    char lowered[64];
    for (size_t i = 0; i < 64; ++i) {
      lowered[i] = lower(token[i]);
    }
    std::string key(lowered, 64);
    if (rules.dead_tokens.count(key) != 0) {
      v.timestamp_ms = now_ms;
      return reject(v, 410, reason::kUnregistered);
    }
    if (rules.bad_tokens.count(key) != 0) {
      return reject(v, 400, reason::kBadDeviceToken);
    }
  }
  if (startsWithIgnoreCase(token, rules.dead_prefix)) {
    v.timestamp_ms = now_ms;
    return reject(v, 410, reason::kUnregistered);
  }
  if (startsWithIgnoreCase(token, rules.bad_prefix)) {
    return reject(v, 400, reason::kBadDeviceToken);
  }

  const std::string* auth = request.header("authorization");
  if (auth == nullptr || !startsWithIgnoreCase(*auth, "bearer ")) {
    return reject(v, 403, reason::kMissingProviderToken);
  }
  std::string_view jwt = std::string_view(*auth).substr(7);
  while (!jwt.empty() && jwt.front() == ' ') {
    jwt.remove_prefix(1);
  }
  if (jwt.empty()) {
    return reject(v, 403, reason::kMissingProviderToken);
  }
  if (jwt != connection.verified_token) {
    std::string team;
    int64_t iat = 0;
    std::string_view why = verifyNewToken(jwt, rules, team, iat);
    if (!why.empty()) {
      return reject(v, 403, why);
    }
    if (!connection.team_id.empty() && connection.team_id != team) {
      return reject(v, 403, reason::kInvalidProviderToken);
    }
    connection.team_id = team;
    connection.verified_token.assign(jwt);
    connection.verified_iat = iat;
  }
  if (now_ms / 1000 - connection.verified_iat > kApnsTokenMaxAgeSeconds) {
    return reject(v, 403, reason::kExpiredProviderToken);
  }

  if (request.body.empty()) {
    return reject(v, 400, reason::kPayloadEmpty);
  }
  size_t limit =
      (push_type != nullptr && *push_type == "voip") ? kApnsMaxVoipPayload : kApnsMaxPayload;
  if (request.body_truncated || request.body.size() > limit) {
    return reject(v, 413, reason::kPayloadTooLarge);
  }
  return v;
}

void buildApnsResponse(const ApnsVerdict& verdict, std::string_view apns_id, H2Response& response) {
  response.status = verdict.status;
  response.headers.emplace_back("apns-id", apns_id);
  if (verdict.status == 200) {
    return;
  }
  response.headers.emplace_back("content-type", "application/json");
  std::string& body = response.body;
  body.assign("{\"reason\":\"");
  body.append(verdict.reason);
  body.push_back('"');
  if (verdict.status == 410) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, verdict.timestamp_ms);
    (void)ec;
    body.append(",\"timestamp\":");
    body.append(digits, end);
  }
  body.push_back('}');
}

}  // namespace pushhub::mock
