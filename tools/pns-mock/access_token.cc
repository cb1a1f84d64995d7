#include "tools/pns-mock/access_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string_view.hpp>
#include <cstring>
#include <random>

#include "providers/common/jwt.h"

namespace pushhub::mock {
namespace {

// serial(8) | expires_ms(8) | account(4) | nonce(4)
constexpr size_t kPayloadBytes = 24;
constexpr size_t kMacBytes = 16;

void putU64(unsigned char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
}

uint64_t getU64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::optional<std::string> formDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) {
        return std::nullopt;
      }
      int hi = hexValue(in[i + 1]);
      int lo = hexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

AccessTokenMinter::AccessTokenMinter(std::string prefix) : prefix_(std::move(prefix)) {
  if (RAND_bytes(secret_, sizeof secret_) != 1) {
    // Not a security boundary (a test double): fall back to a seeded PRNG.
    std::random_device rd;
    for (auto& b : secret_) {
      b = static_cast<unsigned char>(rd());
    }
  }
}

void AccessTokenMinter::mac(const unsigned char* payload, size_t n, unsigned char out[32]) const {
  unsigned int len = 32;
  HMAC(EVP_sha256(), secret_, sizeof secret_, payload, n, out, &len);
}

std::string AccessTokenMinter::issue(uint32_t account, int64_t expires_ms) {
  unsigned char buf[kPayloadBytes + kMacBytes];
  uint64_t serial = next_serial_.fetch_add(1, std::memory_order_acq_rel);
  putU64(buf, serial);
  putU64(buf + 8, static_cast<uint64_t>(expires_ms));
  uint32_t nonce = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&nonce), sizeof nonce);
  putU64(buf + 16, (static_cast<uint64_t>(account) << 32) | nonce);
  unsigned char digest[32];
  mac(buf, kPayloadBytes, digest);
  std::memcpy(buf + kPayloadBytes, digest, kMacBytes);
  return prefix_ + providers::base64UrlEncode(
                       std::string_view(reinterpret_cast<const char*>(buf), sizeof buf));
}

std::optional<AccessTokenClaims> AccessTokenMinter::check(std::string_view token) const {
  // 40 bytes -> 54 base64url characters.
  constexpr size_t kEncoded = ((kPayloadBytes + kMacBytes) * 4 + 2) / 3;
  if (token.size() != prefix_.size() + kEncoded || !token.starts_with(prefix_)) {
    return std::nullopt;
  }
  auto raw = providers::base64UrlDecode(token.substr(prefix_.size()));
  if (!raw || raw->size() != kPayloadBytes + kMacBytes) {
    return std::nullopt;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  unsigned char digest[32];
  mac(bytes, kPayloadBytes, digest);
  if (CRYPTO_memcmp(digest, bytes + kPayloadBytes, kMacBytes) != 0) {
    return std::nullopt;
  }
  AccessTokenClaims c;
  c.serial = getU64(bytes);
  c.expires_ms = static_cast<int64_t>(getU64(bytes + 8));
  c.account = static_cast<uint32_t>(getU64(bytes + 16) >> 32);
  return c;
}

BearerStatus checkBearer(const std::string* authorization, const AccessTokenMinter& minter,
                         uint64_t revoked_below, int64_t now_ms, BearerCache& cache,
                         uint32_t& account) {
  if (authorization == nullptr || authorization->size() < 7 ||
      !equalsIgnoreCase(std::string_view(*authorization).substr(0, 7), "bearer ")) {
    return BearerStatus::kMissing;
  }
  std::string_view token = std::string_view(*authorization).substr(7);
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && token.back() == ' ') {
    token.remove_suffix(1);
  }
  if (token.empty()) {
    return BearerStatus::kMissing;
  }
  if (token != cache.token) {
    auto claims = minter.check(token);
    if (!claims) {
      return BearerStatus::kInvalid;
    }
    cache.token.assign(token);
    cache.claims = *claims;
  }
  if (cache.claims.serial < revoked_below) {
    return BearerStatus::kRevoked;
  }
  if (cache.claims.expires_ms <= now_ms) {
    return BearerStatus::kExpired;
  }
  account = cache.claims.account;
  return BearerStatus::kOk;
}

std::optional<FormFields> parseForm(std::string_view body) {
  FormFields out;
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    auto name = formDecode(pair.substr(0, eq));
    auto value =
        formDecode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!name || !value) {
      return std::nullopt;
    }
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

const std::string* formField(const FormFields& form, std::string_view name) {
  for (const auto& [n, v] : form) {
    if (n == name) {
      return &v;
    }
  }
  return nullptr;
}

bool mediaTypeIs(const std::string* content_type, std::string_view media_type) {
  if (content_type == nullptr) {
    return false;
  }
  std::string_view v = *content_type;
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
    v.remove_suffix(1);
  }
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  return equalsIgnoreCase(v, media_type);
}

OAuthVerdict oauthError(int status, std::string_view error, std::string description) {
  OAuthVerdict v;
  v.status = status;
  v.error = error;
  v.description = std::move(description);
  return v;
}

std::optional<FormFields> tokenRequestForm(const H2Request& request, OAuthVerdict& refusal) {
  if (request.method != "POST") {
    refusal = oauthError(405, "invalid_request", "Only POST is supported.");
    return std::nullopt;
  }
  if (!mediaTypeIs(request.header("content-type"), "application/x-www-form-urlencoded")) {
    refusal = oauthError(400, "invalid_request",
                         "Content-Type must be application/x-www-form-urlencoded.");
    return std::nullopt;
  }
  auto form = parseForm(request.body);
  if (!form) {
    refusal = oauthError(400, "invalid_request", "Malformed form body.");
  }
  return form;
}

void buildOAuthError(const OAuthVerdict& verdict, H2Response& response) {
  response.status = verdict.status;
  response.headers.emplace_back("content-type", "application/json; charset=utf-8");
  response.headers.emplace_back("cache-control", "no-store");
  response.body.assign("{\"error\":\"");
  response.body.append(verdict.error);
  response.body.append("\",\"error_description\":");
  response.body.append(boost::json::serialize(
      boost::json::string_view(verdict.description.data(), verdict.description.size())));
  response.body.push_back('}');
}

void buildOAuthSuccess(std::string_view access_token, int64_t expires_in,
                       std::string_view token_type, H2Response& response) {
  response.status = 200;
  response.headers.emplace_back("content-type", "application/json; charset=utf-8");
  response.headers.emplace_back("cache-control", "no-store");
  response.body.assign("{\"access_token\":\"");
  response.body.append(access_token);
  response.body.append("\",\"expires_in\":");
  response.body.append(std::to_string(expires_in));
  response.body.append(",\"token_type\":\"");
  response.body.append(token_type);
  response.body.append("\"}");
}

}  // namespace pushhub::mock
