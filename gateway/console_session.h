#pragma once
// The operators' console's sign-in session: a cookie value naming a hub, one of its keys, an
// expiry and a random nonce, signed (HMAC-SHA256) with that key's secret. Nothing secret is in
// it; a forged or altered value fails the signature, and rotating or removing the key ends
// every session signed with it. The page's CSRF token is derived from the same secret and
// nonce. Pure functions; any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pushhub::gateway::console {

struct Session {
  std::string hub;       // as the hub's settings name it
  std::string key_name;  // the key that signed in
  int64_t expires = 0;   // unix seconds
  std::string nonce;     // 32 lower-case hex digits, unique per sign-in
};

// A fresh nonce (128 random bits, hex).
std::string newNonce();

// The cookie value for `session`, signed with `secret`.
std::string encode(const Session& session, std::string_view secret);

// What a cookie value claims, unverified (to find the key to verify it with); nullopt when it is
// not in the form encode() writes.
std::optional<Session> decode(std::string_view value);

// Whether `value` was signed with `secret` (constant-time compare). Expiry is the caller's.
bool verify(std::string_view value, std::string_view secret);

// The token the page must echo in the X-Pushhub-Csrf header of every state-changing request.
std::string csrfToken(const Session& session, std::string_view secret);

}  // namespace pushhub::gateway::console
