#pragma once
// JWS/JWT helpers shared by the providers and pns-mock: base64url, PEM key loading, ES256 signing
// and verification with the raw 64-byte R||S signature form JWS requires (RFC 7515/7518), RS256
// signing and verification (Google OAuth assertions), and splitting a compact JWS into its parts.
//
// Every function here is stateless and safe to call from any thread; an EVP_PKEY may be used by
// several threads at once for signing and verification (OpenSSL 3 keys are read-only then).
// Errors never carry key material or token text.

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pushhub::providers {

// Base64url (RFC 4648 §5) without '=' padding, as JWS uses it.
std::string base64UrlEncode(std::string_view bytes);

// Decodes base64url. Accepts unpadded input (and tolerates correct trailing '=' padding);
// rejects characters outside the alphabet and impossible lengths.
Result<std::string> base64UrlDecode(std::string_view text);

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const;
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// Loads a private key from PEM: PKCS#8 ("BEGIN PRIVATE KEY", e.g. an APNs .p8 file or a Google
// service account key), EC or RSA. Traditional "BEGIN EC/RSA PRIVATE KEY" PEM is accepted too.
Result<EvpPkeyPtr> loadPrivateKeyPem(std::string_view pem);

// Loads a public key from SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY").
Result<EvpPkeyPtr> loadPublicKeyPem(std::string_view pem);

// Returns the compact JWS `b64(header).b64(claims).b64(sig)` signed with ES256. The JSON texts
// are encoded byte for byte as given (the caller fixes the serialization). `key` must be an EC
// P-256 private key; the signature is the raw 64-byte R||S form.
Result<std::string> signJwtEs256(EVP_PKEY* key, std::string_view header_json,
                                 std::string_view claims_json);

// Returns the compact JWS `b64(header).b64(claims).b64(sig)` signed with RS256
// (RSASSA-PKCS1-v1_5 with SHA-256; deterministic, e.g. a Google service-account assertion). The
// JSON texts are encoded byte for byte as given. `key` must be an RSA private key of at least
// 2048 bits. Any thread.
Result<std::string> signJwtRs256(EVP_PKEY* key, std::string_view header_json,
                                 std::string_view claims_json);

// A compact JWS split and decoded. `signing_input` is the first two segments as received (the
// bytes the signature covers); `signature` holds the raw decoded signature bytes.
struct DecodedJwt {
  std::string header_json;
  std::string claims_json;
  std::string signing_input;
  std::string signature;
};

// Splits a compact JWS into exactly three base64url segments and decodes them. Does not parse
// the JSON and does not verify anything.
Result<DecodedJwt> decodeJwt(std::string_view compact);

// Verifies an ES256 signature given in raw 64-byte R||S form (converted to DER inside) over
// `signing_input` with an EC P-256 public (or private) key. False on any mismatch or error.
bool verifyEs256(EVP_PKEY* public_key, std::string_view signing_input,
                 std::string_view raw_signature);

// Verifies an RS256 (RSASSA-PKCS1-v1_5, SHA-256) signature over `signing_input` with an RSA
// public (or private) key. `signature` is the raw decoded signature bytes. False on any mismatch
// or error. Any thread.
bool verifyRs256(EVP_PKEY* public_key, std::string_view signing_input, std::string_view signature);

}  // namespace pushhub::providers
