#include "tools/pns-mock/wns_handler.h"

namespace pushhub::mock {
namespace {

// Headers that must not repeat.
constexpr std::string_view kSingleHeaders[] = {
    "authorization", "content-type", "x-wns-type", "x-wns-cache-policy",  "x-wns-requestforstatus",
    "x-wns-tag",     "x-wns-group",  "x-wns-ttl",  "x-wns-suppresspopup", "x-wns-priority",
};

WnsVerdict& fail(WnsVerdict& v, int status, std::string_view description) {
  v.status = status;
  v.description = description;
  return v;
}

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool validTagOrGroup(const std::string& s) {
  if (s.empty() || s.size() > 16) {
    return false;
  }
  for (char c : s) {
    if (!isAlnum(c)) {
      return false;
    }
  }
  return true;
}

bool isBool(const std::string& s) { return s == "true" || s == "false"; }

bool allDigits(const std::string& s) {
  if (s.empty() || s.size() > 10) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view WnsVerdict::reason() const {
  switch (status) {
    case 200:
      return {};
    case 400:
      return "400";
    case 401:
      return "401";
    case 403:
      return "403";
    case 404:
      return "404";
    case 405:
      return "405";
    case 406:
      return "406";
    case 410:
      return "410";
    case 413:
      return "413";
    default:
      return "other";
  }
}

std::string_view wnsChannelToken(std::string_view path) {
  std::string_view query;
  if (path.starts_with("/?")) {
    query = path.substr(2);
  } else if (path.starts_with("/w/?")) {
    query = path.substr(4);
  } else {
    return {};
  }
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    if (param.starts_with("token=")) {
      return param.substr(6);
    }
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
  }
  return {};
}

WnsVerdict checkWnsSend(const H2Request& request, const WnsRules& rules, BearerCache& bearer,
                        uint64_t revoked_below, int64_t now_ms) {
  WnsVerdict v;
  v.channel_token = wnsChannelToken(request.path);
  if (request.method != "POST") {
    return fail(v, 405, "Only POST is allowed on a channel URI.");
  }
  if (v.channel_token.empty()) {
    return fail(v, 404, "The channel URI is not valid or not recognized by WNS.");
  }
  uint32_t app = 0;
  BearerStatus auth = rules.minter ? checkBearer(request.header("authorization"), *rules.minter,
                                                 revoked_below, now_ms, bearer, app)
                                   : BearerStatus::kInvalid;
  if (auth != BearerStatus::kOk || app >= rules.apps.size()) {
    return fail(v, 401,
                auth == BearerStatus::kExpired || auth == BearerStatus::kRevoked
                    ? std::string_view("Token expired.")
                    : std::string_view("The access token is missing or not valid."));
  }
  for (std::string_view name : kSingleHeaders) {
    if (request.headerCount(name) > 1) {
      return fail(v, 400, "A header was repeated.");
    }
  }
  const std::string* type = request.header("x-wns-type");
  if (type == nullptr) {
    return fail(v, 400, "The X-WNS-Type header is missing.");
  }
  bool raw = *type == "wns/raw";
  if (!raw && *type != "wns/toast" && *type != "wns/tile" && *type != "wns/badge") {
    return fail(v, 400, "The X-WNS-Type header is not valid.");
  }
  const std::string* content_type = request.header("content-type");
  if (!mediaTypeIs(content_type, raw ? "application/octet-stream" : "text/xml")) {
    return fail(v, 400,
                raw ? "wns/raw requires Content-Type application/octet-stream."
                    : "wns/toast, wns/tile and wns/badge require Content-Type text/xml.");
  }
  if (request.chunked) {
    return fail(v, 400, "Chunked transfer encoding is not supported.");
  }
  if (const std::string* h = request.header("x-wns-cache-policy");
      h != nullptr && *h != "cache" && *h != "no-cache") {
    return fail(v, 400, "The X-WNS-Cache-Policy header is not valid.");
  }
  if (const std::string* h = request.header("x-wns-requestforstatus")) {
    if (!isBool(*h)) {
      return fail(v, 400, "The X-WNS-RequestForStatus header is not valid.");
    }
    v.request_for_status = *h == "true";
  }
  if (const std::string* h = request.header("x-wns-tag"); h != nullptr && !validTagOrGroup(*h)) {
    return fail(v, 400, "The X-WNS-Tag header is not valid.");
  }
  if (const std::string* h = request.header("x-wns-group"); h != nullptr && !validTagOrGroup(*h)) {
    return fail(v, 400, "The X-WNS-Group header is not valid.");
  }
  if (const std::string* h = request.header("x-wns-ttl"); h != nullptr && !allDigits(*h)) {
    return fail(v, 400, "The X-WNS-TTL header is not valid.");
  }
  if (const std::string* h = request.header("x-wns-suppresspopup"); h != nullptr && !isBool(*h)) {
    return fail(v, 400, "The X-WNS-SuppressPopup header is not valid.");
  }
  if (const std::string* h = request.header("x-wns-priority");
      h != nullptr && *h != "1" && *h != "2" && *h != "3" && *h != "4") {
    return fail(v, 400, "The X-WNS-PRIORITY header is not valid.");
  }
  if (request.header("x-wns-match") != nullptr) {
    return fail(v, 400, "X-WNS-Match is only valid on DELETE.");
  }
  if (request.body_truncated || request.body.size() > kWnsMaxPayload) {
    return fail(v, 413, "The notification payload exceeds the 5000 byte limit.");
  }
  return v;
}

void applyWnsChannelRules(WnsVerdict& v, const WnsRules& rules) {
  if (v.status != 200) {
    return;
  }
  std::string_view t = v.channel_token;
  bool listed = !rules.dead_tokens.empty() || !rules.bad_tokens.empty();
  std::string key = listed ? std::string(t) : std::string();
  if ((listed && rules.dead_tokens.count(key) != 0) ||
      (!rules.expired_prefix.empty() && t.starts_with(rules.expired_prefix))) {
    fail(v, 410, "The channel expired.");
    return;
  }
  if ((listed && rules.bad_tokens.count(key) != 0) ||
      (!rules.unknown_prefix.empty() && t.starts_with(rules.unknown_prefix))) {
    fail(v, 404, "The channel URI is not valid or not recognized by WNS.");
  }
}

void throttleWns(WnsVerdict& v) { fail(v, 406, "The cloud service exceeded its throttle limit."); }

void buildWnsResponse(const WnsVerdict& verdict, const H2Request& request,
                      std::string_view message_id, uint32_t retry_after_s, H2Response& response) {
  response.status = verdict.status;
  response.headers.emplace_back("x-wns-msg-id", message_id);
  if (const std::string* cv = request.header("ms-cv")) {
    response.headers.emplace_back("ms-cv", *cv);
  }
  if (verdict.status == 200) {
    response.headers.emplace_back("x-wns-status", "received");
    if (verdict.request_for_status) {
      response.headers.emplace_back("x-wns-deviceconnectionstatus", "connected");
    }
    return;
  }
  response.headers.emplace_back("x-wns-error-description", verdict.description);
  if (verdict.status == 401) {
    response.headers.emplace_back("www-authenticate", R"(Bearer error="invalid_token")");
  }
  if (verdict.status == 406) {
    response.headers.emplace_back("retry-after", std::to_string(retry_after_s));
  }
}

OAuthVerdict checkWnsTokenRequest(const H2Request& request, const WnsRules& rules) {
  OAuthVerdict refusal;
  auto form = tokenRequestForm(request, refusal);
  if (!form) {
    return refusal;
  }
  const std::string* grant_type = formField(*form, "grant_type");
  if (grant_type == nullptr || *grant_type != "client_credentials") {
    return oauthError(400, "unsupported_grant_type",
                      "The provided value for the input parameter 'grant_type' is not valid.");
  }
  const std::string* client_id = formField(*form, "client_id");
  const std::string* client_secret = formField(*form, "client_secret");
  if (client_id == nullptr || client_secret == nullptr) {
    return oauthError(400, "invalid_request",
                      "The request must include client_id and client_secret.");
  }
  size_t app = rules.apps.size();
  for (size_t i = 0; i < rules.apps.size(); ++i) {
    if (rules.apps[i].sid == *client_id && rules.apps[i].secret == *client_secret) {
      app = i;
      break;
    }
  }
  if (app == rules.apps.size()) {
    return oauthError(400, "invalid_client", "Invalid client id or client secret.");
  }
  const std::string* scope = formField(*form, "scope");
  if (scope == nullptr || (*scope != "notify.windows.com" && *scope != "s.notify.live.net")) {
    return oauthError(400, "invalid_scope",
                      "The provided value for the input parameter 'scope' is not valid.");
  }
  OAuthVerdict ok;
  ok.account = static_cast<uint32_t>(app);
  return ok;
}

}  // namespace pushhub::mock
