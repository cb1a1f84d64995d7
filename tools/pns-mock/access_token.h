#pragma once
// OAuth plumbing shared by pns-mock's FCM and WNS emulations: the access tokens the mock's token
// endpoints issue, the check of an `Authorization: Bearer` header against them, and the parts of
// the token endpoints that are the same for both (the form body, the answers).
//
// Access tokens are self-validating (prefix + base64url(serial, expiry, account, nonce) + a
// truncated HMAC-SHA256 under a per-process random secret), so a token issued on one worker
// thread is valid on every other one without shared state or locks. /_mock/expire-tokens
// revokes every token issued so far by raising a per-worker serial threshold.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/pns-mock/h2_server.h"

namespace pushhub::mock {

// What an access token carries.
struct AccessTokenClaims {
  uint64_t serial = 0;     // issue order; tokens with serial < a revocation threshold are dead
  int64_t expires_ms = 0;  // wall clock, ms since the epoch
  uint32_t account = 0;    // index of the service account / app it was issued to
};

// Issues and checks one provider's access tokens. Constructed on the main thread; issue() and
// check() may then be called from any thread at once (the secret is read-only, the serial
// counter atomic).
class AccessTokenMinter {
 public:
  // `prefix` starts every token ("ya29." for FCM, like Google's); the secret is random.
  explicit AccessTokenMinter(std::string prefix);

  std::string issue(uint32_t account, int64_t expires_ms);
  // The claims of a token this minter issued (signature checked), else nullopt. Expiry and
  // revocation are the caller's business.
  std::optional<AccessTokenClaims> check(std::string_view token) const;
  // The serial the next token will get: tokens below it exist now.
  uint64_t nextSerial() const { return next_serial_.load(std::memory_order_acquire); }

 private:
  void mac(const unsigned char* payload, size_t n, unsigned char out[32]) const;

  std::string prefix_;
  unsigned char secret_[32];
  std::atomic<uint64_t> next_serial_{1};
};

// Per-connection cache of the last bearer token that checked out, so the HMAC runs once per
// token per connection (like APNs caches its JWT): the auth state of an FCM or WNS connection.
// Owned by one connection handler.
struct BearerCache {
  std::string token;
  AccessTokenClaims claims;
};

enum class BearerStatus {
  kOk,
  kMissing,  // no Authorization header, or not "Bearer <token>"
  kInvalid,  // not a token this mock issued (or for another provider)
  kExpired,  // past its expiry
  kRevoked,  // issued before the last /_mock/expire-tokens
};

// Checks an Authorization header value (nullptr = absent). On kOk `account` is set. The scheme
// is matched case-insensitively. Any thread; touches only `cache`.
BearerStatus checkBearer(const std::string* authorization, const AccessTokenMinter& minter,
                         uint64_t revoked_below, int64_t now_ms, BearerCache& cache,
                         uint32_t& account);

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Parses an application/x-www-form-urlencoded body into (name, value) pairs, percent- and
// '+'-decoded. Returns nullopt on a malformed %-escape.
std::optional<FormFields> parseForm(std::string_view body);

// The value of the first field `name` in `form`, or nullptr.
const std::string* formField(const FormFields& form, std::string_view name);

// True when a Content-Type value names `media_type` (case-insensitive, parameters ignored).
bool mediaTypeIs(const std::string* content_type, std::string_view media_type);

// The answer of an OAuth token endpoint (FCM's /token, WNS's /accesstoken.srf).
struct OAuthVerdict {
  int status = 200;
  std::string_view error;   // "invalid_grant", ...; static storage; empty on success
  std::string description;  // error_description
  uint32_t account = 0;     // on success: the account (FCM) or app (WNS) index
};

// A refusal: `error` must have static storage.
OAuthVerdict oauthError(int status, std::string_view error, std::string description);

// The checks every token endpoint starts with: POST (else 405), a form Content-Type and a
// well-formed form body (else 400), all invalid_request. Returns the form, or nullopt with
// `refusal` set. Any thread.
std::optional<FormFields> tokenRequestForm(const H2Request& request, OAuthVerdict& refusal);

// {"error":...,"error_description":...} with the verdict's status.
void buildOAuthError(const OAuthVerdict& verdict, H2Response& response);
// {"access_token":...,"expires_in":N,"token_type":...}.
void buildOAuthSuccess(std::string_view access_token, int64_t expires_in,
                       std::string_view token_type, H2Response& response);

}  // namespace pushhub::mock
