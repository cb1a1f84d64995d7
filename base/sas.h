#pragma once
// Azure-style Shared Access Signatures: the connection string a client holds, the token it sends
// (`SharedAccessSignature sr=..&sig=..&se=..&skn=..`), and the hub's check of that token.
// Pure functions; any thread.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// Checks a token: its form, the key named by skn (`secrets_of` gives the secrets it may be signed
// with, such as the current one and one rotated out but still accepted; none for an unknown name),
// the HMAC against each in constant time, the expiry against `now`, and that its sr covers
// `resource_path` (covers()). Errors are kUnauthenticated and never echo the signature.
Result<Verified> verifyToken(
    std::string_view header,
    const std::function<std::vector<std::string>(std::string_view key_name)>& secrets_of,
    std::chrono::system_clock::time_point now, std::string_view resource_path);

// Whether a token whose sr is `sr` (as sent: URL-encoded) may act on `resource_path`, the path of
// what is accessed ("/myhub" for a hub, "/" for the namespace): scheme, host and port are
// ignored, and sr's path must be empty or "/" (the namespace root, what Azure's SDKs sign) or,
// case-insensitively, `resource_path` or a leading run of its segments ("/myhub" covers
// "/myhub/installations/i1", not "/myhub2").
bool covers(std::string_view sr, std::string_view resource_path);

}  // namespace pushhub::sas
