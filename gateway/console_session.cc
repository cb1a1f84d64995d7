#include "gateway/console_session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <vector>

namespace pushhub::gateway::console {
namespace {

constexpr std::string_view kVersion = "v1";

std::string hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

std::string hmacHex(std::string_view secret, std::string_view purpose, std::string_view text) {
  std::string message;
  message.reserve(purpose.size() + 1 + text.size());
  message.append(purpose).append("\n").append(text);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return hex(digest, length);
}

// Names go in hex: a cookie value may hold neither ';' nor ',' nor spaces, and '.' splits it.
std::string hexOf(std::string_view text) {
  return hex(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

std::optional<std::string> unhex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + i + 2, value, 16);
    if (ec != std::errc() || end != text.data() + i + 2) return std::nullopt;
    out += static_cast<char>(value);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::string body(const Session& session) {
  return std::string(kVersion) + "." + hexOf(session.hub) + "." + hexOf(session.key_name) + "." +
         std::to_string(session.expires) + "." + session.nonce;
}

}  // namespace

std::string newNonce() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no randomness: nothing is safe
  return hex(bytes, sizeof bytes);
}

std::string encode(const Session& session, std::string_view secret) {
  std::string text = body(session);
  return text + "." + hmacHex(secret, "pushhub-console-session", text);
}

std::optional<Session> decode(std::string_view value) {
  if (value.size() > 1024) return std::nullopt;
  auto parts = split(value, '.');
  if (parts.size() != 6 || parts[0] != kVersion || parts[4].size() != 32 || parts[5].size() != 64) {
    return std::nullopt;
  }
  auto hub = unhex(parts[1]);
  auto key_name = unhex(parts[2]);
  if (!hub || !key_name || hub->empty() || key_name->empty()) return std::nullopt;
  Session session{std::move(*hub), std::move(*key_name), 0, std::string(parts[4])};
  auto [end, ec] =
      std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), session.expires);
  if (ec != std::errc() || end != parts[3].data() + parts[3].size()) return std::nullopt;
  if (!unhex(session.nonce)) return std::nullopt;
  return session;
}

bool verify(std::string_view value, std::string_view secret) {
  auto dot = value.rfind('.');
  if (dot == std::string_view::npos) return false;
  std::string expected = hmacHex(secret, "pushhub-console-session", value.substr(0, dot));
  std::string_view given = value.substr(dot + 1);
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::string csrfToken(const Session& session, std::string_view secret) {
  return hmacHex(secret, "pushhub-console-csrf", session.nonce).substr(0, 32);
}

}  // namespace pushhub::gateway::console
