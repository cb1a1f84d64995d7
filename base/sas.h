#pragma once
// Azure-style Shared Access Signatures: the connection string a client holds, the token it sends
// (`SharedAccessSignature sr=..&sig=..&se=..&skn=..`), and the hub's check of that token.
// Pure functions; any thread.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pushhub::sas {

struct ConnectionString {
  std::string endpoint;  // as written, e.g. sb://127.0.0.1:8443/
  std::string key_name;
  std::string key;
  // The endpoint with sb:// replaced by https://, the base URL the SDKs sign.
  std::string httpsEndpoint() const;
};

// Parses `Endpoint=..;SharedAccessKeyName=..;SharedAccessKey=..` (split at the first '=' of each
// part, so keys ending in '=' work). Errors name the missing part.
Result<ConnectionString> parseConnectionString(std::string_view text);

// The Authorization header value the Azure JS SDK sends for `resource_url`, valid until `expiry`.
std::string makeToken(std::string_view resource_url, std::string_view key_name,
                      std::string_view key, std::chrono::system_clock::time_point expiry);

// What a verified token says.
struct Verified {
  std::string key_name;
};

// Checks a token: its form, the key named by skn (looked up with `key_for`, which returns the
// key's secret or nothing for an unknown name), the HMAC in constant time, and the expiry against
// `now`. Errors are kUnauthenticated and never echo the signature.
Result<Verified> verifyToken(
    std::string_view header,
    const std::function<std::optional<std::string>(std::string_view key_name)>& key_for,
    std::chrono::system_clock::time_point now);

std::string urlEncode(std::string_view text);
std::string urlDecode(std::string_view text);

}  // namespace pushhub::sas
