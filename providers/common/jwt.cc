#include "providers/common/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace pushhub::providers {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kEs256PartBytes = 32;
// Google requires 2048-bit keys; shorter RSA keys are forgeable and no provider accepts them.
constexpr int kRs256MinBits = 2048;

// 0..63 for alphabet characters, -1 otherwise.
constexpr std::array<int8_t, 256> makeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr auto kDecodeTable = makeDecodeTable();

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

// The OpenSSL error queue is per thread; drain it so a later, unrelated call does not report
// a stale error. Returns the first reason text (never contains key material).
std::string takeOpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text = code != 0 ? ERR_reason_error_string(code) ? ERR_reason_error_string(code)
                                                               : "unknown OpenSSL error"
                               : "no OpenSSL error reported";
  ERR_clear_error();
  return text;
}

std::unique_ptr<BIO, BioDeleter> memBio(std::string_view data) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

bool isP256(EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC")) {
    return false;
  }
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
    return false;
  }
  std::string_view name(group, len);
  return name == "prime256v1" || name == "P-256" || name == "secp256r1";
}

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.resize((bytes.size() * 4 + 2) / 3);
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{in[i]} << 16;
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8);
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
  }
  out.resize(o);
  return out;
}

Result<std::string> base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 0) {
    // Tolerate standard padding; JWS never sends it but other producers might.
    for (int k = 0; k < 2 && !text.empty() && text.back() == '='; ++k) {
      text.remove_suffix(1);
    }
  }
  if (text.size() % 4 == 1) {
    return Error::invalidArgument("base64url: impossible length " + std::to_string(text.size()));
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int8_t v = kDecodeTable[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      return Error::invalidArgument("base64url: invalid character at offset " + std::to_string(i));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

void EvpPkeyDeleter::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

Result<EvpPkeyPtr> loadPrivateKeyPem(std::string_view pem) {
  auto bio = memBio(pem);
  if (!bio) {
    return Error::internal("private key: cannot allocate BIO");
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return Error::invalidArgument("private key: not a PEM private key (" + takeOpenSslError() +
                                  ")");
  }
  EvpPkeyPtr owned(key);
  if (!EVP_PKEY_is_a(key, "EC") && !EVP_PKEY_is_a(key, "RSA")) {
    return Error::invalidArgument("private key: only EC and RSA keys are supported");
  }
  return owned;
}

Result<EvpPkeyPtr> loadPublicKeyPem(std::string_view pem) {
  auto bio = memBio(pem);
  if (!bio) {
    return Error::internal("public key: cannot allocate BIO");
  }
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return Error::invalidArgument("public key: not a PEM public key (" + takeOpenSslError() + ")");
  }
  return EvpPkeyPtr(key);
}

Result<std::string> signJwtEs256(EVP_PKEY* key, std::string_view header_json,
                                 std::string_view claims_json) {
  if (!isP256(key)) {
    return Error::invalidArgument("ES256: key must be an EC P-256 private key");
  }
  std::string jws = base64UrlEncode(header_json);
  jws.push_back('.');
  jws += base64UrlEncode(claims_json);

  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) {
    return Error::internal("ES256: sign init failed (" + takeOpenSslError() + ")");
  }
  unsigned char der[80];  // a P-256 DER signature is at most 72 bytes
  size_t der_len = sizeof(der);
  if (EVP_DigestSign(ctx.get(), der, &der_len, reinterpret_cast<const unsigned char*>(jws.data()),
                     jws.size()) != 1) {
    return Error::internal("ES256: signing failed (" + takeOpenSslError() + ")");
  }
  const unsigned char* p = der;
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!sig) {
    return Error::internal("ES256: cannot parse DER signature");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  unsigned char raw[2 * kEs256PartBytes];
  if (BN_bn2binpad(r, raw, kEs256PartBytes) != static_cast<int>(kEs256PartBytes) ||
      BN_bn2binpad(s, raw + kEs256PartBytes, kEs256PartBytes) !=
          static_cast<int>(kEs256PartBytes)) {
    return Error::internal("ES256: signature component too large");
  }
  jws.push_back('.');
  jws += base64UrlEncode(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
  return jws;
}

Result<std::string> signJwtRs256(EVP_PKEY* key, std::string_view header_json,
                                 std::string_view claims_json) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "RSA")) {
    return Error::invalidArgument("RS256: key must be an RSA private key");
  }
  if (EVP_PKEY_get_bits(key) < kRs256MinBits) {
    return Error::invalidArgument("RS256: RSA key has " + std::to_string(EVP_PKEY_get_bits(key)) +
                                  " bits, at least " + std::to_string(kRs256MinBits) + " required");
  }
  std::string jws = base64UrlEncode(header_json);
  jws.push_back('.');
  jws += base64UrlEncode(claims_json);

  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    return Error::internal("RS256: sign init failed (" + takeOpenSslError() + ")");
  }
  size_t sig_len = 0;
  const auto* input = reinterpret_cast<const unsigned char*>(jws.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &sig_len, input, jws.size()) != 1) {
    return Error::internal("RS256: signing failed (" + takeOpenSslError() + ")");
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len, input,
                     jws.size()) != 1) {
    return Error::internal("RS256: signing failed (" + takeOpenSslError() + ")");
  }
  sig.resize(sig_len);
  jws.push_back('.');
  jws += base64UrlEncode(sig);
  return jws;
}

bool verifyRs256(EVP_PKEY* public_key, std::string_view signing_input, std::string_view signature) {
  if (public_key == nullptr || !EVP_PKEY_is_a(public_key, "RSA") || signature.empty()) {
    return false;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha256(), nullptr, public_key) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(),
                             reinterpret_cast<const unsigned char*>(signing_input.data()),
                             signing_input.size()) == 1;
  ERR_clear_error();
  return ok;
}

Result<DecodedJwt> decodeJwt(std::string_view compact) {
  size_t first = compact.find('.');
  if (first == std::string_view::npos) {
    return Error::invalidArgument("jwt: expected three '.'-separated segments, found one");
  }
  size_t second = compact.find('.', first + 1);
  if (second == std::string_view::npos) {
    return Error::invalidArgument("jwt: expected three '.'-separated segments, found two");
  }
  if (compact.find('.', second + 1) != std::string_view::npos) {
    return Error::invalidArgument("jwt: expected three '.'-separated segments, found more");
  }
  DecodedJwt out;
  auto header = base64UrlDecode(compact.substr(0, first));
  if (!header) {
    return Error::invalidArgument("jwt header: " + header.error().message);
  }
  auto claims = base64UrlDecode(compact.substr(first + 1, second - first - 1));
  if (!claims) {
    return Error::invalidArgument("jwt claims: " + claims.error().message);
  }
  auto signature = base64UrlDecode(compact.substr(second + 1));
  if (!signature) {
    return Error::invalidArgument("jwt signature: " + signature.error().message);
  }
  out.header_json = std::move(header).value();
  out.claims_json = std::move(claims).value();
  out.signature = std::move(signature).value();
  out.signing_input = std::string(compact.substr(0, second));
  return out;
}

bool verifyEs256(EVP_PKEY* public_key, std::string_view signing_input,
                 std::string_view raw_signature) {
  if (raw_signature.size() != 2 * kEs256PartBytes || !isP256(public_key)) {
    return false;
  }
  const auto* raw = reinterpret_cast<const unsigned char*>(raw_signature.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw, kEs256PartBytes, nullptr);
  BIGNUM* s = BN_bin2bn(raw + kEs256PartBytes, kEs256PartBytes, nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ERR_clear_error();
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) {
    ERR_clear_error();
    return false;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, public_key) == 1 &&
            EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(signing_input.data()),
                             signing_input.size()) == 1;
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

}  // namespace pushhub::providers
