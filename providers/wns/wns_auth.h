#pragma once
// The OAuth 2.0 client-credentials token requests of a WNS app (spec/pns-protocols.md §4.2).
// The AccessTokenSource (providers/common/access_token.h) sends them and caches the token.

#include <string>
#include <string_view>

#include "providers/common/access_token.h"
#include "providers/wns/wns_config.h"

namespace pushhub::providers::wns {

// Returns a factory making `POST <token_url>` requests with the form body
// `grant_type=client_credentials&client_id=<sid>&client_secret=<secret>&scope=<scope>`, every
// value form-url-encoded. If package_sid or secret is empty, each call returns an error naming
// the field. The factory holds a copy of the secret and may be called from any thread.
TokenRequestFactory makeWnsTokenRequests(const WnsConfig& config);

// application/x-www-form-urlencoded encoding of one value: unreserved characters (RFC 3986)
// stay, every other byte becomes %XX.
std::string formUrlEncode(std::string_view value);

}  // namespace pushhub::providers::wns
