#include "base/sas.h"

#include "base/url_encoding.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace pushhub::sas {
namespace {

Error unauthenticated(std::string message) {
  return Error{Error::Code::kUnauthenticated, std::move(message)};
}

std::string base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string hmacSha256Base64(std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return base64(digest, length);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string ConnectionString::httpsEndpoint() const {
  std::string url = endpoint;
  if (url.rfind("sb://", 0) == 0) url.replace(0, 5, "https://");
  return url;
}

Result<ConnectionString> parseConnectionString(std::string_view text) {
  ConnectionString cs;
  text = trim(text);
  while (!text.empty()) {
    size_t end = text.find(';');
    std::string_view part = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    if (name == "Endpoint") cs.endpoint = value;
    if (name == "SharedAccessKeyName") cs.key_name = value;
    if (name == "SharedAccessKey") cs.key = value;
  }
  if (cs.endpoint.empty()) return Error::invalidArgument("connection string: Endpoint is missing");
  if (cs.key_name.empty()) {
    return Error::invalidArgument("connection string: SharedAccessKeyName is missing");
  }
  if (cs.key.empty())
    return Error::invalidArgument("connection string: SharedAccessKey is missing");
  return cs;
}

std::string makeToken(std::string_view resource_url, std::string_view key_name,
                      std::string_view key, std::chrono::system_clock::time_point expiry) {
  std::string lowered(resource_url);
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string audience = url::encodeComponent(lowered);
  std::string se = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(expiry.time_since_epoch()).count());
  std::string sig = hmacSha256Base64(key, audience + "\n" + se);
  return "SharedAccessSignature sr=" + audience + "&sig=" + url::encodeComponent(sig) +
         "&se=" + se + "&skn=" + url::encodeComponent(key_name);
}

bool covers(std::string_view sr, std::string_view resource_path) {
  std::string url = url::decode(sr);
  std::string_view path = url;
  if (auto scheme = path.find("://"); scheme != std::string_view::npos) {
    path.remove_prefix(scheme + 3);
    path.remove_prefix(std::min(path.find('/'), path.size()));  // host and port
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return true;
  if (path.size() > resource_path.size()) return false;
  for (size_t i = 0; i < path.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(path[i])) !=
        std::tolower(static_cast<unsigned char>(resource_path[i]))) {
      return false;
    }
  }
  return path.size() == resource_path.size() || resource_path[path.size()] == '/';
}

Result<Verified> verifyToken(
    std::string_view header,
    const std::function<std::vector<std::string>(std::string_view key_name)>& secrets_of,
    std::chrono::system_clock::time_point now, std::string_view resource_path) {
  constexpr std::string_view kScheme = "SharedAccessSignature ";
  if (header.substr(0, kScheme.size()) != kScheme) {
    return unauthenticated(
        "authorization: expected 'SharedAccessSignature sr=..&sig=..&se=..&skn=..'");
  }
  std::string_view rest = header.substr(kScheme.size());
  std::string_view sr, sig, se, skn;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    if (name == "sr") sr = value;
    if (name == "sig") sig = value;
    if (name == "se") se = value;
    if (name == "skn") skn = value;
  }
  if (sr.empty() || sig.empty() || se.empty() || skn.empty()) {
    return unauthenticated("authorization: the signature needs sr, sig, se and skn");
  }
  int64_t expiry = 0;
  for (char c : se) {
    if (c < '0' || c > '9' || expiry > (int64_t{1} << 50)) {
      return unauthenticated("authorization: se is not a unix time");
    }
    expiry = expiry * 10 + (c - '0');
  }
  std::string key_name = url::decode(skn);
  auto secrets = secrets_of(key_name);
  if (secrets.empty()) return unauthenticated("authorization: unknown key name '" + key_name + "'");
  std::string signed_text = std::string(sr) + "\n" + std::string(se);
  std::string given = url::decode(sig);
  bool matched = false;
  for (const auto& secret : secrets) {
    std::string expected = hmacSha256Base64(secret, signed_text);
    matched |= given.size() == expected.size() &&
               CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
  }
  if (!matched) {
    return unauthenticated("authorization: signature does not match key '" + key_name + "'");
  }
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  constexpr int64_t kSkewSeconds = 300;
  if (expiry + kSkewSeconds < now_s) return unauthenticated("authorization: the signature expired");
  if (!covers(sr, resource_path)) {
    return unauthenticated("authorization: the signature's sr '" + url::decode(sr) +
                           "' does not cover '" + std::string(resource_path) + "'");
  }
  return Verified{key_name};
}

}  // namespace pushhub::sas
