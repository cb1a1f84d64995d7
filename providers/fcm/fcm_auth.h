#pragma once
// The OAuth 2.0 token requests of a Google service account (spec/pns-protocols.md §3.2): each
// request carries a fresh RS256-signed JWT assertion for the firebase.messaging scope. The
// AccessTokenSource (providers/common/access_token.h) sends them and caches the access token.

#include <chrono>
#include <functional>

#include "providers/common/access_token.h"
#include "providers/fcm/fcm_config.h"

namespace pushhub::providers::fcm {

inline constexpr std::string_view kFcmScope = "https://www.googleapis.com/auth/firebase.messaging";
// A Google assertion may live at most one hour.
inline constexpr std::chrono::seconds kAssertionLifetime{3600};

using Clock = std::function<std::chrono::system_clock::time_point()>;

// Returns a factory making `POST <token_uri>` requests with the form body
// `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<jwt>`, the JWT
// being header {"alg":"RS256","typ":"JWT","kid":<private_key_id>} and claims
// {"iss":<client_email>,"scope":kFcmScope,"aud":<token_uri>,"iat":now,"exp":now+3600}.
// The key is loaded once here; if it does not load, every call of the factory returns that
// error. `clock` defaults to std::chrono::system_clock::now. The factory holds the key (not
// the PEM) and may be called from any thread, also concurrently.
TokenRequestFactory makeFcmTokenRequests(const ServiceAccount& account, Clock clock = {});

// The same for a config: the endpoint and "aud" are config.token_uri_override when set.
TokenRequestFactory makeFcmTokenRequests(const FcmConfig& config, Clock clock = {});

}  // namespace pushhub::providers::fcm
