#pragma once
// The WNS emulation of pns-mock as pure functions (no I/O, clock or randomness), wired to the
// server core by makeWnsService (wns_service.h).
//
// Two endpoints:
//   POST /accesstoken.srf          OAuth 2.0 client credentials (Package SID + secret, spec §4.2)
//   POST /?token=T, /w/?token=T    a notification to the channel T (spec §4.3-4.4)
// A notification is checked in this order: method (405), channel path (404), bearer token (401),
// X-WNS-Type (400), Content-Type (400), chunked body (400), the optional X-WNS-* headers (400),
// body size (413); the service then applies throttling (406 + Retry-After) and finally the
// channel rules (410 expired, 404 unknown).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "tools/pns-mock/access_token.h"
#include "tools/pns-mock/h2_server.h"

namespace pushhub::mock {

inline constexpr size_t kWnsMaxPayload = 5000;

// One app the token endpoint accepts.
struct WnsApp {
  std::string sid;  // Package SID, "ms-app://S-1-15-2-..."
  std::string secret;
};

// What the mock accepts. Each worker holds its own copy (no locks).
struct WnsRules {
  std::vector<WnsApp> apps;  // index = app number in access tokens
  // Channel-token prefixes ("" disables one); case-sensitive.
  std::string expired_prefix = "expired";
  std::string unknown_prefix = "unknown";
  std::unordered_set<std::string> dead_tokens;  // 410
  std::unordered_set<std::string> bad_tokens;   // 404
  std::shared_ptr<AccessTokenMinter> minter;    // shared by every worker
};

struct WnsVerdict {
  int status = 200;
  std::string_view description;    // X-WNS-Error-Description; static storage; empty on success
  std::string_view channel_token;  // view into request.path (may be empty)
  bool request_for_status = false;
  // What stats count a rejection as: the status as text ("410"); static storage.
  std::string_view reason() const;
};

// The channel token of "/?token=T" or "/w/?token=T" (raw, not decoded), or empty.
std::string_view wnsChannelToken(std::string_view path);

// Checks a notification up to (not including) throttling and the channel rules. Updates
// `bearer`, the connection's auth cache. Any thread.
WnsVerdict checkWnsSend(const H2Request& request, const WnsRules& rules, BearerCache& bearer,
                        uint64_t revoked_below, int64_t now_ms);

// For a notification that passed checkWnsSend: explicit lists and prefixes.
void applyWnsChannelRules(WnsVerdict& verdict, const WnsRules& rules);

// Turns `verdict` into the throttled answer (406).
void throttleWns(WnsVerdict& verdict);
// Turns a notification that would have been received into `fault`'s answer (throttle 406,
// unavailable 503, internal 500; the others leave it alone).
void faultWns(const Fault& fault, WnsVerdict& verdict);

// Fills `response`: 200 with X-WNS-Status: received, X-WNS-Msg-ID and (when asked for)
// X-WNS-DeviceConnectionStatus: connected; errors carry X-WNS-Error-Description (and
// Retry-After on 406, WWW-Authenticate on 401). MS-CV is echoed when the request had one.
// Header names are lowercase (HTTP/2 requires it; HTTP/1.1 does not care).
void buildWnsResponse(const WnsVerdict& verdict, const H2Request& request,
                      std::string_view message_id, uint32_t retry_after_s, H2Response& response);

// Checks a token request: form body grant_type=client_credentials, a known client_id (Package
// SID) with its client_secret, scope notify.windows.com (or s.notify.live.net).
OAuthVerdict checkWnsTokenRequest(const H2Request& request, const WnsRules& rules);

}  // namespace pushhub::mock
