#pragma once
// The FCM HTTP v1 emulation of pns-mock as pure functions: request + rules + this connection's
// auth cache + the time in, verdict out. No I/O, no clock, no randomness (table-testable);
// makeFcmService (fcm_service.h) wires them to the server core.
//
// Two endpoints:
//   POST /token                                    the OAuth 2.0 token endpoint (RS256 JWT bearer
//                                                  assertion of a service account, spec §3.2)
//   POST /v1/projects/{project}/messages:send      a send (spec §3.3-3.5)
// A send is checked in this order: path/method (404 NOT_FOUND), bearer token (401
// UNAUTHENTICATED), project (403 PERMISSION_DENIED), body (400 INVALID_ARGUMENT); the service then
// applies throttling (429 QUOTA_EXCEEDED) and finally the token rules (404 UNREGISTERED for dead
// tokens, 400 INVALID_ARGUMENT for bad ones).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "providers/common/jwt.h"
#include "tools/pns-mock/access_token.h"
#include "tools/pns-mock/h2_server.h"

namespace pushhub::mock {

// google.rpc status names and FcmError codes as FCM sends them. Static storage: stats keep views.
namespace fcm_code {
inline constexpr std::string_view kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr std::string_view kUnregistered = "UNREGISTERED";
inline constexpr std::string_view kNotFound = "NOT_FOUND";
inline constexpr std::string_view kUnauthenticated = "UNAUTHENTICATED";
inline constexpr std::string_view kPermissionDenied = "PERMISSION_DENIED";
inline constexpr std::string_view kQuotaExceeded = "QUOTA_EXCEEDED";
inline constexpr std::string_view kResourceExhausted = "RESOURCE_EXHAUSTED";
inline constexpr std::string_view kUnavailable = "UNAVAILABLE";
inline constexpr std::string_view kInternal = "INTERNAL";
}  // namespace fcm_code

inline constexpr size_t kFcmMaxPayload = 4096;       // data + notification keys and values
inline constexpr size_t kFcmMaxTopicPayload = 2048;  // the same for topic messages
inline constexpr size_t kFcmMaxTokenLength = 4096;
inline constexpr int64_t kFcmMaxAssertionLifetime = 3600;  // exp - iat, seconds
inline constexpr int64_t kFcmClockSkew = 60;               // seconds of iat in the future allowed
inline constexpr int64_t kFcmMaxAndroidTtl = 2419200;      // 4 weeks, seconds

// One service account the token endpoint accepts.
struct FcmAccount {
  std::string client_email;
  // The project its tokens may send to: "P" for P's own accounts
  // (name@P.iam.gserviceaccount.com); empty = any project (other email forms).
  std::string project;
  std::shared_ptr<EVP_PKEY> public_key;  // read-only after load; shared by workers
};

// What the mock accepts. Each worker holds its own copy (no locks); the control API updates
// every copy on its own thread.
struct FcmRules {
  std::vector<FcmAccount> accounts;          // index = account number in access tokens
  std::unordered_set<std::string> projects;  // allowed projects; empty = any
  // Registration-token prefixes ("" disables one); case-sensitive, like FCM tokens.
  std::string dead_prefix = "dead";
  std::string bad_prefix = "bogus";
  std::unordered_set<std::string> dead_tokens;  // 404 UNREGISTERED
  std::unordered_set<std::string> bad_tokens;   // 400 INVALID_ARGUMENT (token)
  std::shared_ptr<AccessTokenMinter> minter;    // shared by every worker
};

// The project email convention: "x@P.iam.gserviceaccount.com" -> "P", else "".
std::string fcmProjectOfEmail(std::string_view client_email);

struct FcmVerdict {
  int status = 200;
  std::string_view status_name;    // google.rpc status ("INVALID_ARGUMENT"); empty on success
  std::string_view error_code;     // FcmError errorCode; empty = no FcmError detail
  std::string message;             // error.message
  std::string field;               // google.rpc.BadRequest field violation; empty = none
  std::string_view project;        // view into request.path (may be empty)
  std::string registration_token;  // message.token when present
  bool validate_only = false;
  bool www_authenticate = false;  // 401: add the WWW-Authenticate header

  // What stats count a rejection as: the FcmError code, else the status name.
  std::string_view reason() const { return error_code.empty() ? status_name : error_code; }
  // Back to a fresh verdict, keeping the strings' capacity (a worker reuses one per send).
  void reset();
};

// The {project} of "/v1/projects/{project}/messages:send" (query ignored), or empty.
std::string_view fcmSendProject(std::string_view path);

// Checks path, method, bearer token, project and body of a send. `revoked_below` is the
// serial threshold of /_mock/expire-tokens. Updates `bearer`, the connection's auth cache. Any
// thread.
FcmVerdict checkFcmSend(const H2Request& request, const FcmRules& rules, BearerCache& bearer,
                        uint64_t revoked_below, int64_t now_ms);
// The same into `verdict` (reset first), so a worker can reuse one verdict's strings.
void checkFcmSend(const H2Request& request, const FcmRules& rules, BearerCache& bearer,
                  uint64_t revoked_below, int64_t now_ms, FcmVerdict& verdict);

// The body checks of a send, in two parts (checkFcmSend runs both; exposed for tests).
// acceptFcmBodyFast is one pass over the JSON text with no DOM: true when the body passes every
// check (registration_token and validate_only are then set), false when it is not sure, with
// `verdict` left as it was but for those two fields, cleared. checkFcmBodyFull parses a DOM and
// decides every body, with Google's error message for the first problem. The fast path accepts
// only what the full check accepts, and most valid bodies.
bool acceptFcmBodyFast(std::string_view body, FcmVerdict& verdict);
void checkFcmBodyFull(const H2Request& request, FcmVerdict& verdict);

// For a send that passed checkFcmSend: the dead / bad token lists and prefixes.
void applyFcmTokenRules(FcmVerdict& verdict, const FcmRules& rules);

// Turns `verdict` into the throttled answer (429 QUOTA_EXCEEDED).
void throttleFcm(FcmVerdict& verdict);
// Turns a send that would have succeeded into `fault`'s answer (throttle, unavailable, internal;
// the others leave it alone).
void faultFcm(const Fault& fault, FcmVerdict& verdict);

// Fills `response`: success {"name":"projects/P/messages/<message_id>"}, errors the
// google.rpc.Status envelope (+ FcmError / BadRequest details, WWW-Authenticate on 401,
// Retry-After on 429).
void buildFcmResponse(const FcmVerdict& verdict, std::string_view message_id,
                      uint32_t retry_after_s, H2Response& response);

// Checks a token request: form body grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and
// an RS256 assertion from a known account, with aud "https://<Host>/token", a messaging scope,
// and a valid iat/exp window. `now_s` is the wall clock in seconds. Any thread.
OAuthVerdict checkFcmTokenRequest(const H2Request& request, const FcmRules& rules, int64_t now_s);

// True for a syntactically valid FCM registration token: [A-Za-z0-9_:.-]{1,4096}.
bool isFcmToken(std::string_view token);

}  // namespace pushhub::mock
