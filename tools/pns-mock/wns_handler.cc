#include "tools/pns-mock/wns_handler.h"

#include <array>

namespace pushhub::mock {
namespace {

// The request headers the checks of a notification read (see WnsHeaders).
enum WnsHeader : uint8_t {
  // Those that must not repeat.
  kAuthorization,
  kContentType,
  kType,
  kCachePolicy,
  kRequestForStatus,
  kTag,
  kGroup,
  kTtl,
  kSuppressPopup,
  kPriority,
  kLastSingle = kPriority,
  // May repeat (refused anyway).
  kMatch,
  kHeaderCount,
  kOther = kHeaderCount,
};

WnsHeader classify(std::string_view name) {
  constexpr std::string_view kWnsPrefix = "x-wns-";
  if (!name.starts_with(kWnsPrefix)) {
    if (name == "authorization") {
      return kAuthorization;
    }
    return name == "content-type" ? kContentType : kOther;
  }
  std::string_view rest = name.substr(kWnsPrefix.size());
  switch (rest.size()) {
    case 3:
      return rest == "tag" ? kTag : rest == "ttl" ? kTtl : kOther;
    case 4:
      return rest == "type" ? kType : kOther;
    case 5:
      return rest == "group" ? kGroup : rest == "match" ? kMatch : kOther;
    case 8:
      return rest == "priority" ? kPriority : kOther;
    case 12:
      return rest == "cache-policy" ? kCachePolicy : kOther;
    case 13:
      return rest == "suppresspopup" ? kSuppressPopup : kOther;
    case 16:
      return rest == "requestforstatus" ? kRequestForStatus : kOther;
    default:
      return kOther;
  }
}

// The first value and the number of occurrences of each header checkWnsSend reads, from one
// pass over the request's headers (rather than a scan per header and per duplicate check).
struct WnsHeaders {
  std::array<const std::string*, kHeaderCount> first{};
  std::array<uint8_t, kHeaderCount> count{};

  explicit WnsHeaders(const HeaderList& headers) {
    for (const auto& [name, value] : headers) {
      WnsHeader h = classify(name);
      if (h != kOther) {
        if (count[h] == 0) {
          first[h] = &value;
        }
        count[h] = count[h] < 2 ? count[h] + 1 : 2;  // only "more than one" matters
      }
    }
  }

  const std::string* operator[](WnsHeader h) const { return first[h]; }

  bool anySingleRepeated() const {
    for (size_t h = 0; h <= kLastSingle; ++h) {
      if (count[h] > 1) {
        return true;
      }
    }
    return false;
  }
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
  WnsHeaders headers(request.headers);
  uint32_t app = 0;
  BearerStatus auth = rules.minter ? checkBearer(headers[kAuthorization], *rules.minter,
                                                 revoked_below, now_ms, bearer, app)
                                   : BearerStatus::kInvalid;
  if (auth != BearerStatus::kOk || app >= rules.apps.size()) {
    return fail(v, 401,
                auth == BearerStatus::kExpired || auth == BearerStatus::kRevoked
                    ? std::string_view("Token expired.")
                    : std::string_view("The access token is missing or not valid."));
  }
  if (headers.anySingleRepeated()) {
    return fail(v, 400, "A header was repeated.");
  }
  const std::string* type = headers[kType];
  if (type == nullptr) {
    return fail(v, 400, "The X-WNS-Type header is missing.");
  }
  bool raw = *type == "wns/raw";
  if (!raw && *type != "wns/toast" && *type != "wns/tile" && *type != "wns/badge") {
    return fail(v, 400, "The X-WNS-Type header is not valid.");
  }
  if (!mediaTypeIs(headers[kContentType], raw ? "application/octet-stream" : "text/xml")) {
    return fail(v, 400,
                raw ? "wns/raw requires Content-Type application/octet-stream."
                    : "wns/toast, wns/tile and wns/badge require Content-Type text/xml.");
  }
  if (request.chunked) {
    return fail(v, 400, "Chunked transfer encoding is not supported.");
  }
  if (const std::string* h = headers[kCachePolicy];
      h != nullptr && *h != "cache" && *h != "no-cache") {
    return fail(v, 400, "The X-WNS-Cache-Policy header is not valid.");
  }
  if (const std::string* h = headers[kRequestForStatus]) {
    if (!isBool(*h)) {
      return fail(v, 400, "The X-WNS-RequestForStatus header is not valid.");
    }
    v.request_for_status = *h == "true";
  }
  if (const std::string* h = headers[kTag]; h != nullptr && !validTagOrGroup(*h)) {
    return fail(v, 400, "The X-WNS-Tag header is not valid.");
  }
  if (const std::string* h = headers[kGroup]; h != nullptr && !validTagOrGroup(*h)) {
    return fail(v, 400, "The X-WNS-Group header is not valid.");
  }
  if (const std::string* h = headers[kTtl]; h != nullptr && !allDigits(*h)) {
    return fail(v, 400, "The X-WNS-TTL header is not valid.");
  }
  if (const std::string* h = headers[kSuppressPopup]; h != nullptr && !isBool(*h)) {
    return fail(v, 400, "The X-WNS-SuppressPopup header is not valid.");
  }
  if (const std::string* h = headers[kPriority];
      h != nullptr && *h != "1" && *h != "2" && *h != "3" && *h != "4") {
    return fail(v, 400, "The X-WNS-PRIORITY header is not valid.");
  }
  if (headers[kMatch] != nullptr) {
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

void faultWns(const Fault& fault, WnsVerdict& v) {
  if (fault.kind == FaultKind::kThrottle) {
    throttleWns(v);
  } else if (fault.kind == FaultKind::kUnavailable) {
    fail(v, 503, "The service is unavailable.");
  } else if (fault.kind == FaultKind::kInternalError) {
    fail(v, 500, "An internal error occurred.");
  }
}

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
  if (retry_after_s > 0 && (verdict.status == 406 || verdict.status == 503)) {
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
