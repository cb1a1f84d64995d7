#include "providers/wns/wns_auth.h"

#include <optional>

namespace pushhub::providers::wns {

std::string formUrlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (char c : value) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

TokenRequestFactory makeWnsTokenRequests(const WnsConfig& config) {
  std::optional<Error> error;
  if (config.package_sid.empty()) {
    error = Error::invalidArgument("wns package_sid: missing");
  } else if (config.secret.empty()) {
    error = Error::invalidArgument("wns secret: missing");
  } else if (config.token_url.empty()) {
    error = Error::invalidArgument("wns token_url: missing");
  }
  if (error) {
    return [error = *error]() -> Result<TokenRequest> { return error; };
  }
  TokenRequest request;
  request.url = config.token_url;
  request.content_type = "application/x-www-form-urlencoded";
  request.body = "grant_type=client_credentials&client_id=" + formUrlEncode(config.package_sid) +
                 "&client_secret=" + formUrlEncode(config.secret) +
                 "&scope=" + formUrlEncode(config.scope);
  return [request = std::move(request)]() -> Result<TokenRequest> { return request; };
}

}  // namespace pushhub::providers::wns
