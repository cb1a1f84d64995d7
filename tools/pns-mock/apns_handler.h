#pragma once
// The APNs request validation of pns-mock as a pure function: request + rules + this
// connection's auth state + the time in, verdict out. No I/O, no clock, no randomness, so it is
// table-testable; ApnsService (apns_service.h) wires it to the HTTP/2 core.
//
// Validation order follows Pushy's ValidatingPushNotificationHandler (spec §2.6):
//   DuplicateHeaders, BadMessageId, MethodNotAllowed, MissingTopic / BadTopic, BadCollapseId,
//   BadPriority, BadExpirationDate, InvalidPushType, MissingDeviceToken, BadDeviceToken,
//   [drop prefix -> close the connection], dead tokens -> 410 Unregistered, bad tokens ->
//   BadDeviceToken, BadPath, MissingProviderToken, InvalidProviderToken, ExpiredProviderToken,
//   PayloadEmpty, PayloadTooLarge.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "providers/common/jwt.h"
#include "tools/pns-mock/h2_server.h"

namespace pushhub::mock {

// Reason strings exactly as APNs sends them. They have static storage: stats keep views.
namespace apns_reason {
inline constexpr std::string_view kBadCollapseId = "BadCollapseId";
inline constexpr std::string_view kBadDeviceToken = "BadDeviceToken";
inline constexpr std::string_view kBadExpirationDate = "BadExpirationDate";
inline constexpr std::string_view kBadMessageId = "BadMessageId";
inline constexpr std::string_view kBadPriority = "BadPriority";
inline constexpr std::string_view kBadTopic = "BadTopic";
inline constexpr std::string_view kDuplicateHeaders = "DuplicateHeaders";
inline constexpr std::string_view kInvalidPushType = "InvalidPushType";
inline constexpr std::string_view kMissingDeviceToken = "MissingDeviceToken";
inline constexpr std::string_view kMissingTopic = "MissingTopic";
inline constexpr std::string_view kPayloadEmpty = "PayloadEmpty";
inline constexpr std::string_view kExpiredProviderToken = "ExpiredProviderToken";
inline constexpr std::string_view kInvalidProviderToken = "InvalidProviderToken";
inline constexpr std::string_view kMissingProviderToken = "MissingProviderToken";
inline constexpr std::string_view kBadPath = "BadPath";
inline constexpr std::string_view kMethodNotAllowed = "MethodNotAllowed";
inline constexpr std::string_view kUnregistered = "Unregistered";
inline constexpr std::string_view kPayloadTooLarge = "PayloadTooLarge";
inline constexpr std::string_view kTooManyRequests = "TooManyRequests";
inline constexpr std::string_view kServiceUnavailable = "ServiceUnavailable";
inline constexpr std::string_view kInternalServerError = "InternalServerError";
// Not a reason APNs sends: how stats count connections closed by the drop prefix.
inline constexpr std::string_view kDropped = "DroppedConnection";
}  // namespace apns_reason

inline constexpr size_t kApnsMaxPayload = 4096;
inline constexpr size_t kApnsMaxVoipPayload = 5120;
inline constexpr int64_t kApnsTokenMaxAgeSeconds = 3600;

// One token-auth signing key the mock accepts (the public half of a .p8).
struct ApnsKey {
  std::string team_id;
  std::shared_ptr<EVP_PKEY> public_key;  // read-only after load; shared by workers
};

// What the mock accepts. Each worker holds its own copy (no locks); /_mock/tokens updates every
// copy on its own thread.
struct ApnsRules {
  std::unordered_map<std::string, ApnsKey> keys;  // key id -> key
  // Allowed topics; empty = any. A listed bundle id also allows its push-type suffixes
  // (".voip", ".complication", ".pushkit.fileprovider", ".push-type.liveactivity", ...).
  std::unordered_set<std::string> topics;
  // Lowercase hex prefixes ("" disables one).
  std::string dead_prefix = "dead";
  std::string bad_prefix = "0bad";
  std::string drop_prefix = "c105e";
  // Explicit lowercase tokens.
  std::unordered_set<std::string> dead_tokens;
  std::unordered_set<std::string> bad_tokens;
};

// Token-auth state of one connection (owned by the connection's handler).
struct ApnsConnectionState {
  std::string team_id;         // bound by the first valid token on this connection
  std::string verified_token;  // the last JWT whose signature verified (checked once)
  int64_t verified_iat = 0;
};

struct ApnsVerdict {
  int status = 200;
  std::string_view reason;  // one of apns_reason::k*, empty on success
  bool drop_connection = false;
  int64_t timestamp_ms = 0;       // set for 410
  std::string_view device_token;  // view into request.path (may be empty)
  std::string_view apns_id;       // the request's apns-id; empty = the caller generates one
};

// Validates one request. Updates `connection` (team binding, verified-token cache). `now_ms` is
// the wall clock in ms since the epoch. Any thread; touches nothing shared but `rules` (read).
ApnsVerdict validateApnsRequest(const H2Request& request, const ApnsRules& rules,
                                ApnsConnectionState& connection, int64_t now_ms);

// Fills `response` for `verdict`: success is HEADERS only (:status 200, apns-id); errors add
// content-type application/json and the body {"reason":...} (+ "timestamp" for 410).
void buildApnsResponse(const ApnsVerdict& verdict, std::string_view apns_id, H2Response& response);

// True for a canonical 8-4-4-4-12 hex UUID (either case).
bool isUuid(std::string_view s);

// Lowercases a hex token into `out` (reusing its capacity).
void lowercaseInto(std::string_view in, std::string& out);

}  // namespace pushhub::mock
