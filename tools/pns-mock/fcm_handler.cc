#include "tools/pns-mock/fcm_handler.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

namespace pushhub::mock {
namespace {

namespace json = boost::json;
namespace code = fcm_code;

constexpr std::string_view kProjectsPrefix = "/v1/projects/";
constexpr std::string_view kSendSuffix = "/messages:send";
constexpr std::string_view kJwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
constexpr std::string_view kMessagingScope = "https://www.googleapis.com/auth/firebase.messaging";
constexpr std::string_view kCloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";
constexpr std::string_view kEmailDomain = ".iam.gserviceaccount.com";

constexpr std::string_view kUnauthenticatedMessage =
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.";
constexpr std::string_view kBadTokenMessage =
    "The registration token is not a valid FCM registration token";
constexpr std::string_view kShortLivedMessage =
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim.";
constexpr std::string_view kBadSignatureMessage = "Invalid JWT Signature.";

constexpr std::string_view kRequestKeys[] = {"validate_only", "validateOnly", "message"};
constexpr std::string_view kMessageKeys[] = {"name",    "token",        "topic",     "condition",
                                             "data",    "notification", "android",   "apns",
                                             "webpush", "fcm_options",  "fcmOptions"};
constexpr std::string_view kNotificationKeys[] = {"title", "body", "image"};

template <size_t N>
bool oneOf(std::string_view s, const std::string_view (&list)[N]) {
  for (std::string_view item : list) {
    if (s == item) {
      return true;
    }
  }
  return false;
}

FcmVerdict& fail(FcmVerdict& v, int status, std::string_view status_name,
                 std::string_view error_code, std::string message, std::string field = {}) {
  v.status = status;
  v.status_name = status_name;
  v.error_code = error_code;
  v.message = std::move(message);
  v.field = std::move(field);
  return v;
}

// Google's wording for a JSON value of the wrong type.
FcmVerdict& badValue(FcmVerdict& v, const std::string& field, std::string_view type,
                     const json::value& value) {
  return fail(
      v, 400, code::kInvalidArgument, {},
      "Invalid value at '" + field + "' (" + std::string(type) + "), " + json::serialize(value),
      field);
}

FcmVerdict& unknownName(FcmVerdict& v, std::string_view name, std::string_view at) {
  std::string msg = "Invalid JSON payload received. Unknown name \"" + std::string(name) + "\"";
  if (!at.empty()) {
    msg += " at '" + std::string(at) + "'";
  }
  msg += ": Cannot find field.";
  return fail(v, 400, code::kInvalidArgument, {}, msg, std::string(at));
}

bool isTopicChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~' || c == '%';
}

// A proto3 JSON Duration: decimal seconds with up to 9 fractional digits and an "s" suffix.
bool parseDuration(std::string_view s, int64_t& seconds) {
  if (s.size() < 2 || s.back() != 's') {
    return false;
  }
  s.remove_suffix(1);
  std::string_view whole = s.substr(0, s.find('.'));
  if (whole.empty() || whole.size() > 12) {
    return false;
  }
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    std::string_view frac = s.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) {
      return false;
    }
    for (char c : frac) {
      if (c < '0' || c > '9') {
        return false;
      }
    }
  }
  auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  return ec == std::errc() && ptr == whole.data() + whole.size() && seconds >= 0;
}

// Validates the body of a send; fills v.registration_token / v.validate_only.
void checkBody(const H2Request& request, FcmVerdict& v) {
  if (request.body_truncated) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message is too big");
    return;
  }
  unsigned char buffer[16 * 1024];
  json::monotonic_resource mr(buffer, sizeof buffer);
  boost::system::error_code ec;
  json::value root = json::parse(request.body, ec, &mr);
  if (ec || !root.is_object()) {
    fail(v, 400, code::kInvalidArgument, {},
         ec ? "Invalid JSON payload received. " + ec.message()
            : "Invalid JSON payload received. Expected an object.");
    return;
  }
  const json::object& req = root.get_object();
  for (const auto& kv : req) {
    if (!oneOf(kv.key(), kRequestKeys)) {
      unknownName(v, kv.key(), "");
      return;
    }
  }
  for (std::string_view key : {"validate_only", "validateOnly"}) {
    if (const json::value* vo = req.if_contains(key)) {
      if (!vo->is_bool()) {
        badValue(v, "validate_only", "TYPE_BOOL", *vo);
        return;
      }
      v.validate_only = vo->get_bool();
    }
  }
  const json::value* message_value = req.if_contains("message");
  if (message_value == nullptr || !message_value->is_object()) {
    if (message_value != nullptr && !message_value->is_null()) {
      badValue(v, "message", "type.googleapis.com/google.firebase.fcm.v1.Message", *message_value);
      return;
    }
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message must be set.", "message");
    return;
  }
  const json::object& message = message_value->get_object();
  for (const auto& kv : message) {
    if (!oneOf(kv.key(), kMessageKeys)) {
      unknownName(v, kv.key(), "message");
      return;
    }
  }

  // The target oneof: exactly one of token / topic / condition.
  std::string_view target_name;
  const json::value* target = nullptr;
  for (std::string_view name : {"token", "topic", "condition"}) {
    const json::value* t = message.if_contains(name);
    if (t == nullptr) {
      continue;
    }
    if (!t->is_string()) {
      badValue(v, "message." + std::string(name), "TYPE_STRING", *t);
      return;
    }
    if (target != nullptr) {
      fail(v, 400, code::kInvalidArgument, {},
           "Invalid JSON payload received. Oneof field 'target' is already set. Cannot set '" +
               std::string(name) + "'",
           "message");
      return;
    }
    target = t;
    target_name = name;
  }
  if (target == nullptr) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
         "Recipient of the message is not set.", "message");
    return;
  }
  std::string_view target_text = target->get_string();
  if (target_name == "token") {
    if (!isFcmToken(target_text)) {
      fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, std::string(kBadTokenMessage),
           "message.token");
      return;
    }
    v.registration_token.assign(target_text);
  } else if (target_name == "topic") {
    std::string_view topic = target_text;
    if (topic.starts_with("/topics/")) {
      topic.remove_prefix(8);
    }
    bool ok = !topic.empty() && topic.size() <= 900;
    for (char c : topic) {
      ok = ok && isTopicChar(c);
    }
    if (!ok) {
      fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Invalid topic name.",
           "message.topic");
      return;
    }
  } else if (target_text.empty()) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Invalid condition.",
         "message.condition");
    return;
  }

  size_t payload = 0;
  if (const json::value* data = message.if_contains("data")) {
    if (!data->is_object()) {
      badValue(v, "message.data", "type.googleapis.com/google.protobuf.Map", *data);
      return;
    }
    size_t i = 0;
    for (const auto& kv : data->get_object()) {
      if (!kv.value().is_string()) {
        badValue(v, "message.data[" + std::to_string(i) + "].value", "TYPE_STRING", kv.value());
        return;
      }
      std::string_view key = kv.key();
      if (key == "from" || key == "gcm" || key.starts_with("google")) {
        fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
             "Invalid data payload key: " + std::string(key), "message.data");
        return;
      }
      payload += key.size() + kv.value().get_string().size();
      ++i;
    }
  }
  if (const json::value* notification = message.if_contains("notification")) {
    if (!notification->is_object()) {
      badValue(v, "message.notification", "type.googleapis.com/google.firebase.fcm.v1.Notification",
               *notification);
      return;
    }
    for (const auto& kv : notification->get_object()) {
      if (!oneOf(kv.key(), kNotificationKeys)) {
        unknownName(v, kv.key(), "message.notification");
        return;
      }
      if (!kv.value().is_string()) {
        badValue(v, "message.notification." + std::string(kv.key()), "TYPE_STRING", kv.value());
        return;
      }
      payload += kv.key().size() + kv.value().get_string().size();
    }
  }
  size_t limit = target_name == "topic" ? kFcmMaxTopicPayload : kFcmMaxPayload;
  if (payload > limit) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message is too big");
    return;
  }
  if (const json::value* android = message.if_contains("android")) {
    if (!android->is_object()) {
      badValue(v, "message.android", "type.googleapis.com/google.firebase.fcm.v1.AndroidConfig",
               *android);
      return;
    }
    const json::object& a = android->get_object();
    if (const json::value* priority = a.if_contains("priority")) {
      if (!priority->is_string() ||
          (priority->get_string() != "NORMAL" && priority->get_string() != "HIGH")) {
        badValue(v, "message.android.priority",
                 "type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority", *priority);
        return;
      }
    }
    if (const json::value* ttl = a.if_contains("ttl")) {
      int64_t seconds = 0;
      if (!ttl->is_string() || !parseDuration(ttl->get_string(), seconds)) {
        badValue(v, "message.android.ttl", "type.googleapis.com/google.protobuf.Duration", *ttl);
        return;
      }
      if (seconds > kFcmMaxAndroidTtl) {
        fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
             "TTL cannot exceed 4 weeks (2419200s).", "message.android.ttl");
        return;
      }
    }
  }
  for (std::string_view name : {"apns", "webpush", "fcm_options", "fcmOptions"}) {
    if (const json::value* sub = message.if_contains(name); sub != nullptr && !sub->is_object()) {
      badValue(v, "message." + std::string(name), "TYPE_MESSAGE", *sub);
      return;
    }
  }
}

bool readInt(const json::object& o, std::string_view key, int64_t& out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return false;
  }
  if (v->is_int64()) {
    out = v->get_int64();
    return true;
  }
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(v->get_uint64());
    return true;
  }
  return false;
}

void appendJsonString(std::string& out, std::string_view s) {
  out.append(json::serialize(json::string_view(s.data(), s.size())));
}

}  // namespace

std::string fcmProjectOfEmail(std::string_view client_email) {
  size_t at = client_email.find('@');
  if (at == std::string_view::npos || !client_email.ends_with(kEmailDomain)) {
    return {};
  }
  std::string_view domain = client_email.substr(at + 1);
  return std::string(domain.substr(0, domain.size() - kEmailDomain.size()));
}

bool isFcmToken(std::string_view token) {
  if (token.empty() || token.size() > kFcmMaxTokenLength) {
    return false;
  }
  for (char c : token) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string_view fcmSendProject(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (!path.starts_with(kProjectsPrefix) || !path.ends_with(kSendSuffix)) {
    return {};
  }
  std::string_view project = path.substr(kProjectsPrefix.size(),
                                         path.size() - kProjectsPrefix.size() - kSendSuffix.size());
  if (project.empty() || project.find('/') != std::string_view::npos) {
    return {};
  }
  return project;
}

FcmVerdict checkFcmSend(const H2Request& request, const FcmRules& rules, BearerCache& bearer,
                        uint64_t revoked_below, int64_t now_ms) {
  FcmVerdict v;
  v.project = fcmSendProject(request.path);
  if (v.project.empty() || request.method != "POST") {
    return fail(v, 404, code::kNotFound, {}, "Method not found.");
  }
  uint32_t account = 0;
  BearerStatus auth = rules.minter ? checkBearer(request.header("authorization"), *rules.minter,
                                                 revoked_below, now_ms, bearer, account)
                                   : BearerStatus::kInvalid;
  if (auth != BearerStatus::kOk || account >= rules.accounts.size()) {
    v.www_authenticate = true;
    return fail(v, 401, code::kUnauthenticated, {}, std::string(kUnauthenticatedMessage));
  }
  const FcmAccount& a = rules.accounts[account];
  std::string project(v.project);
  if ((!rules.projects.empty() && rules.projects.count(project) == 0) ||
      (!a.project.empty() && a.project != project)) {
    return fail(v, 403, code::kPermissionDenied, {},
                "Permission 'cloudmessaging.messages.create' denied on resource "
                "'//cloudresourcemanager.googleapis.com/projects/" +
                    project + "' (or it may not exist).");
  }
  checkBody(request, v);
  return v;
}

void applyFcmTokenRules(FcmVerdict& v, const FcmRules& rules) {
  if (v.status != 200 || v.registration_token.empty()) {
    return;
  }
  const std::string& t = v.registration_token;
  bool dead = rules.dead_tokens.count(t) != 0 ||
              (!rules.dead_prefix.empty() && t.starts_with(rules.dead_prefix));
  if (dead) {
    fail(v, 404, code::kNotFound, code::kUnregistered, "Requested entity was not found.");
    return;
  }
  bool bad = rules.bad_tokens.count(t) != 0 ||
             (!rules.bad_prefix.empty() && t.starts_with(rules.bad_prefix));
  if (bad) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, std::string(kBadTokenMessage),
         "message.token");
  }
}

void throttleFcm(FcmVerdict& v) {
  fail(v, 429, code::kResourceExhausted, code::kQuotaExceeded,
       "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of "
       "service 'fcm.googleapis.com'.");
}

void buildFcmResponse(const FcmVerdict& v, std::string_view message_id, uint32_t retry_after_s,
                      H2Response& response) {
  response.status = v.status;
  response.headers.emplace_back("content-type", "application/json; charset=UTF-8");
  std::string& body = response.body;
  if (v.status == 200) {
    body.assign("{\"name\":\"projects/");
    body.append(v.project);
    body.append("/messages/");
    body.append(message_id);
    body.append("\"}");
    return;
  }
  if (v.www_authenticate) {
    response.headers.emplace_back(
        "www-authenticate",
        R"(Bearer realm="https://accounts.google.com/", error="invalid_token")");
  }
  if (v.status == 429) {
    response.headers.emplace_back("retry-after", std::to_string(retry_after_s));
  }
  body.assign("{\"error\":{\"code\":");
  body.append(std::to_string(v.status));
  body.append(",\"message\":");
  appendJsonString(body, v.message);
  body.append(",\"status\":\"");
  body.append(v.status_name);
  body.push_back('"');
  if (!v.error_code.empty() || !v.field.empty()) {
    body.append(",\"details\":[");
    bool first = true;
    if (!v.error_code.empty()) {
      body.append(
          R"({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":")");
      body.append(v.error_code);
      body.append("\"}");
      first = false;
    }
    if (!v.field.empty()) {
      if (!first) {
        body.push_back(',');
      }
      body.append(
          R"({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":)");
      appendJsonString(body, v.field);
      body.append(",\"description\":");
      appendJsonString(body, v.message);
      body.append("}]}");
    }
    body.push_back(']');
  }
  body.append("}}");
}

OAuthVerdict checkFcmTokenRequest(const H2Request& request, const FcmRules& rules, int64_t now_s) {
  OAuthVerdict refusal;
  auto form = tokenRequestForm(request, refusal);
  if (!form) {
    return refusal;
  }
  const std::string* grant_type = formField(*form, "grant_type");
  if (grant_type == nullptr) {
    return oauthError(400, "invalid_request", "Missing required parameter: grant_type");
  }
  if (*grant_type != kJwtBearer) {
    return oauthError(400, "unsupported_grant_type", "Invalid grant_type: " + *grant_type);
  }
  const std::string* assertion = formField(*form, "assertion");
  if (assertion == nullptr || assertion->empty()) {
    return oauthError(400, "invalid_request", "Missing required parameter: assertion");
  }
  auto jwt = providers::decodeJwt(*assertion);
  if (!jwt) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  boost::system::error_code ec;
  json::value header = json::parse(jwt->header_json, ec);
  if (ec || !header.is_object()) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  const json::value* alg = header.get_object().if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "RS256") {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  json::value claims_value = json::parse(jwt->claims_json, ec);
  if (ec || !claims_value.is_object()) {
    return oauthError(400, "invalid_grant", "Invalid JWT: the claims are not a JSON object.");
  }
  const json::object& claims = claims_value.get_object();
  const json::value* iss = claims.if_contains("iss");
  if (iss == nullptr || !iss->is_string()) {
    return oauthError(400, "invalid_request", "Invalid JWT: missing iss.");
  }
  size_t account = rules.accounts.size();
  for (size_t i = 0; i < rules.accounts.size(); ++i) {
    if (rules.accounts[i].client_email == iss->get_string()) {
      account = i;
      break;
    }
  }
  if (account == rules.accounts.size()) {
    return oauthError(401, "invalid_client", "The OAuth client was not found.");
  }
  if (!providers::verifyRs256(rules.accounts[account].public_key.get(), jwt->signing_input,
                              jwt->signature)) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  const json::value* aud = claims.if_contains("aud");
  std::string expected_aud = "https://" + request.authority + "/token";
  if (aud == nullptr || !aud->is_string() || request.authority.empty() ||
      aud->get_string() != expected_aud) {
    return oauthError(400, "invalid_grant",
                      "Invalid JWT: Failed audience check. The right audience is " + expected_aud);
  }
  int64_t iat = 0;
  int64_t exp = 0;
  if (!readInt(claims, "iat", iat) || !readInt(claims, "exp", exp) || iat > now_s + kFcmClockSkew ||
      exp <= now_s || exp < iat || exp - iat > kFcmMaxAssertionLifetime) {
    return oauthError(400, "invalid_grant", std::string(kShortLivedMessage));
  }
  const json::value* scope = claims.if_contains("scope");
  bool scope_ok = false;
  if (scope != nullptr && scope->is_string()) {
    std::string_view rest = scope->get_string();
    while (!rest.empty() && !scope_ok) {
      size_t sp = rest.find(' ');
      std::string_view one = rest.substr(0, sp);
      scope_ok = one == kMessagingScope || one == kCloudPlatformScope;
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    }
  }
  if (!scope_ok) {
    return oauthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
  }
  OAuthVerdict ok;
  ok.account = static_cast<uint32_t>(account);
  return ok;
}

}  // namespace pushhub::mock
