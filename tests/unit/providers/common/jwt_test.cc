#include "providers/common/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <string>
#include <vector>

namespace pushhub::providers {
namespace {

// RFC 7515 Appendix A.3 key (JWK members, base64url).
constexpr const char* kA3X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr const char* kA3Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr const char* kA3D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
constexpr const char* kA3Signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
constexpr const char* kA2Payload =
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
constexpr const char* kA2PayloadB64 =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";

// Builds a P-256 EVP_PKEY from JWK coordinates (and optionally the private scalar `d`).
EvpPkeyPtr p256FromJwk(const char* x_b64, const char* y_b64, const char* d_b64 = nullptr) {
  std::string point = "\x04" + base64UrlDecode(x_b64).value() + base64UrlDecode(y_b64).value();
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  BIGNUM* d = nullptr;
  if (d_b64 != nullptr) {
    std::string d_raw = base64UrlDecode(d_b64).value();
    d = BN_bin2bn(reinterpret_cast<const unsigned char*>(d_raw.data()),
                  static_cast<int>(d_raw.size()), nullptr);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d);
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
  EXPECT_EQ(
      EVP_PKEY_fromdata(ctx, &key, d != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params),
      1);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(d);
  return EvpPkeyPtr(key);
}

EvpPkeyPtr generateP256() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  return EvpPkeyPtr(key);
}

std::string pemOf(EVP_PKEY* key, bool private_key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (private_key) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PUBKEY(bio, key);
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

TEST(Base64Url, Rfc4648VectorsWithoutPadding) {
  EXPECT_EQ(base64UrlEncode(""), "");
  EXPECT_EQ(base64UrlEncode("f"), "Zg");
  EXPECT_EQ(base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64UrlEncode("{\"alg\":\"ES256\"}"), "eyJhbGciOiJFUzI1NiJ9");
  EXPECT_EQ(base64UrlEncode(kA2Payload), kA2PayloadB64);
}

TEST(Base64Url, DecodesUnpaddedAndPaddedAndRejectsGarbage) {
  EXPECT_EQ(base64UrlDecode("Zm9vYmE").value(), "fooba");
  EXPECT_EQ(base64UrlDecode("Zm9vYmE=").value(), "fooba");
  EXPECT_EQ(base64UrlDecode("Zg").value(), "f");
  EXPECT_EQ(base64UrlDecode("Zg==").value(), "f");
  EXPECT_EQ(base64UrlDecode("").value(), "");
  EXPECT_EQ(base64UrlDecode("-_8").value(), "\xfb\xff");
  EXPECT_EQ(base64UrlDecode(kA2PayloadB64).value(), kA2Payload);
  EXPECT_FALSE(base64UrlDecode("Zm9v+"));   // '+' is standard base64, not base64url
  EXPECT_FALSE(base64UrlDecode("Zm9vY"));   // length % 4 == 1
  EXPECT_FALSE(base64UrlDecode("Zm 9v"));   // whitespace
  EXPECT_FALSE(base64UrlDecode("Zm9=Yg"));  // padding in the middle
}

TEST(Base64Url, RoundTripsEveryByteValue) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= all.size(); len += 37) {
    std::string part = all.substr(0, len);
    EXPECT_EQ(base64UrlDecode(base64UrlEncode(part)).value(), part);
  }
}

TEST(Es256, SignVerifyRoundTripThroughPem) {
  EvpPkeyPtr generated = generateP256();
  ASSERT_TRUE(generated);
  auto priv = loadPrivateKeyPem(pemOf(generated.get(), true));
  ASSERT_TRUE(priv) << priv.error().message;
  auto pub = loadPublicKeyPem(pemOf(generated.get(), false));
  ASSERT_TRUE(pub) << pub.error().message;

  auto jwt = signJwtEs256(priv->get(), R"({"alg":"ES256","kid":"ABC123DEFG"})",
                          R"({"iss":"DEF123GHIJ","iat":1437179036})");
  ASSERT_TRUE(jwt) << jwt.error().message;
  auto decoded = decodeJwt(*jwt);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->header_json, R"({"alg":"ES256","kid":"ABC123DEFG"})");
  EXPECT_EQ(decoded->claims_json, R"({"iss":"DEF123GHIJ","iat":1437179036})");
  EXPECT_EQ(decoded->signature.size(), 64u);
  EXPECT_TRUE(verifyEs256(pub->get(), decoded->signing_input, decoded->signature));
}

TEST(Es256, ManySignaturesAreAll64BytesAndVerify) {
  // R or S with leading zero bytes must still be left-padded to 32 bytes each.
  EvpPkeyPtr key = generateP256();
  for (int i = 0; i < 200; ++i) {
    std::string claims = "{\"i\":" + std::to_string(i) + "}";
    auto jwt = signJwtEs256(key.get(), R"({"alg":"ES256"})", claims);
    ASSERT_TRUE(jwt);
    auto decoded = decodeJwt(*jwt);
    ASSERT_TRUE(decoded);
    ASSERT_EQ(decoded->signature.size(), 64u);
    ASSERT_TRUE(verifyEs256(key.get(), decoded->signing_input, decoded->signature));
  }
}

TEST(Es256, BitFlipsFailVerification) {
  EvpPkeyPtr key = generateP256();
  auto jwt = signJwtEs256(key.get(), R"({"alg":"ES256"})", R"({"iss":"x"})");
  ASSERT_TRUE(jwt);
  auto decoded = decodeJwt(*jwt).value();
  for (size_t byte : {size_t{0}, size_t{31}, size_t{32}, size_t{63}}) {
    std::string sig = decoded.signature;
    sig[byte] = static_cast<char>(sig[byte] ^ 0x01);
    EXPECT_FALSE(verifyEs256(key.get(), decoded.signing_input, sig)) << "byte " << byte;
  }
  std::string input = decoded.signing_input;
  input[5] = static_cast<char>(input[5] ^ 0x01);
  EXPECT_FALSE(verifyEs256(key.get(), input, decoded.signature));
  EXPECT_FALSE(verifyEs256(key.get(), decoded.signing_input, decoded.signature.substr(0, 63)));
  EvpPkeyPtr other = generateP256();
  EXPECT_FALSE(verifyEs256(other.get(), decoded.signing_input, decoded.signature));
}

TEST(Es256, Rfc7515AppendixA3PublishedSignatureVerifies) {
  EvpPkeyPtr pub = p256FromJwk(kA3X, kA3Y);
  ASSERT_TRUE(pub);
  std::string signing_input = std::string("eyJhbGciOiJFUzI1NiJ9.") + kA2PayloadB64;
  std::string signature = base64UrlDecode(kA3Signature).value();
  ASSERT_EQ(signature.size(), 64u);
  EXPECT_TRUE(verifyEs256(pub.get(), signing_input, signature));

  auto decoded = decodeJwt(signing_input + "." + kA3Signature);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->header_json, "{\"alg\":\"ES256\"}");
  EXPECT_EQ(decoded->claims_json, kA2Payload);
  EXPECT_TRUE(verifyEs256(pub.get(), decoded->signing_input, decoded->signature));

  signature[10] = static_cast<char>(signature[10] ^ 0x80);
  EXPECT_FALSE(verifyEs256(pub.get(), signing_input, signature));
}

TEST(Es256, SignWithRfc7515A3PrivateKeyVerifiesWithItsPublicKey) {
  EvpPkeyPtr priv = p256FromJwk(kA3X, kA3Y, kA3D);
  EvpPkeyPtr pub = p256FromJwk(kA3X, kA3Y);
  ASSERT_TRUE(priv && pub);
  auto jwt = signJwtEs256(priv.get(), "{\"alg\":\"ES256\"}", kA2Payload);
  ASSERT_TRUE(jwt) << jwt.error().message;
  EXPECT_EQ(jwt->rfind(std::string("eyJhbGciOiJFUzI1NiJ9.") + kA2PayloadB64 + ".", 0), 0u);
  auto decoded = decodeJwt(*jwt).value();
  EXPECT_EQ(decoded.signature.size(), 64u);
  EXPECT_TRUE(verifyEs256(pub.get(), decoded.signing_input, decoded.signature));
}

TEST(Es256, AppleDocumentedExampleProducesDocumentedSegments) {
  EvpPkeyPtr key = generateP256();
  auto jwt = signJwtEs256(key.get(), R"({"alg":"ES256","kid":"ABC123DEFG"})",
                          R"({"iss":"DEF123GHIJ","iat":1437179036})");
  ASSERT_TRUE(jwt);
  const std::string expected =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ."
      "eyJpc3MiOiJERUYxMjNHSElKIiwiaWF0IjoxNDM3MTc5MDM2fQ";
  EXPECT_EQ(jwt->substr(0, expected.size() + 1), expected + ".");
  EXPECT_EQ(decodeJwt(*jwt)->signing_input, expected);
}

TEST(Es256, RejectsNonP256Keys) {
  EVP_PKEY* rsa = EVP_RSA_gen(2048);
  ASSERT_NE(rsa, nullptr);
  EvpPkeyPtr rsa_key(rsa);
  EXPECT_FALSE(signJwtEs256(rsa_key.get(), "{}", "{}"));
  EXPECT_FALSE(verifyEs256(rsa_key.get(), "a.b", std::string(64, 'x')));
  EvpPkeyPtr p384(EVP_EC_gen("P-384"));
  EXPECT_FALSE(signJwtEs256(p384.get(), "{}", "{}"));
  EXPECT_FALSE(signJwtEs256(nullptr, "{}", "{}"));
}

TEST(Pem, LoadsRsaPkcs8AndRejectsGarbage) {
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  auto loaded = loadPrivateKeyPem(pemOf(rsa.get(), true));
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(EVP_PKEY_is_a(loaded->get(), "RSA"));
  EXPECT_FALSE(loadPrivateKeyPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  EXPECT_FALSE(loadPrivateKeyPem(""));
  EXPECT_FALSE(loadPublicKeyPem("not a key"));
  // A private key PEM is not a public key PEM.
  EXPECT_FALSE(loadPublicKeyPem(pemOf(rsa.get(), true)));
}

TEST(DecodeJwt, RejectsWrongSegmentCountsAndBadBase64) {
  EXPECT_FALSE(decodeJwt("abc"));
  EXPECT_FALSE(decodeJwt("a.b"));
  EXPECT_FALSE(decodeJwt("Zg.Zg.Zg.Zg"));
  EXPECT_FALSE(decodeJwt("Zg.Z+g.Zg"));
  auto ok = decodeJwt("Zg.Zm8.");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->header_json, "f");
  EXPECT_EQ(ok->claims_json, "fo");
  EXPECT_EQ(ok->signing_input, "Zg.Zm8");
  EXPECT_TRUE(ok->signature.empty());
}

// RFC 7515 Appendix A.2 RSA key (JWK members, base64url).
struct RsaJwk {
  const char* n;
  const char* e;
  const char* d;
  const char* p;
  const char* q;
  const char* dp;
  const char* dq;
  const char* qi;
};
constexpr RsaJwk kA2Key = {
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4"
    "QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdb"
    "BYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-D"
    "WNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    "AQAB",
    "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoA"
    "Je46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpR"
    "LI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZF"
    "D9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
    "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJd"
    "TJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
    "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_"
    "YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
    "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6H"
    "sJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
    "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF"
    "-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
    "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIB"
    "i87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
};
constexpr const char* kA2Signature =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5j"
    "ujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L"
    "07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEU"
    "ipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
constexpr const char* kA2Header = "{\"alg\":\"RS256\"}";

// Builds an RSA EVP_PKEY from JWK members; public only when `with_private` is false.
EvpPkeyPtr rsaFromJwk(const RsaJwk& jwk, bool with_private) {
  std::vector<BIGNUM*> bns;
  auto bn = [&bns](const char* b64) {
    std::string raw = base64UrlDecode(b64).value();
    BIGNUM* v = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()), nullptr);
    bns.push_back(v);
    return v;
  };
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn(jwk.n));
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn(jwk.e));
  if (with_private) {
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, bn(jwk.d));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, bn(jwk.p));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, bn(jwk.q));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, bn(jwk.dp));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, bn(jwk.dq));
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, bn(jwk.qi));
  }
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
  EXPECT_EQ(
      EVP_PKEY_fromdata(ctx, &key, with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params),
      1);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  for (BIGNUM* v : bns) {
    BN_free(v);
  }
  return EvpPkeyPtr(key);
}

TEST(Rs256, Rfc7515AppendixA2SignatureIsByteExact) {
  EvpPkeyPtr key = rsaFromJwk(kA2Key, true);
  ASSERT_NE(key, nullptr);
  auto jws = signJwtRs256(key.get(), kA2Header, kA2Payload);
  ASSERT_TRUE(jws) << jws.error().message;
  EXPECT_EQ(*jws, std::string("eyJhbGciOiJSUzI1NiJ9.") + kA2PayloadB64 + "." + kA2Signature);
  // Deterministic: a second signature is identical.
  EXPECT_EQ(signJwtRs256(key.get(), kA2Header, kA2Payload).value(), *jws);
}

TEST(Rs256, PublishedSignatureVerifiesWithThePublicKeyAndBitFlipsFail) {
  EvpPkeyPtr pub = rsaFromJwk(kA2Key, false);
  ASSERT_NE(pub, nullptr);
  std::string input = std::string("eyJhbGciOiJSUzI1NiJ9.") + kA2PayloadB64;
  std::string sig = base64UrlDecode(kA2Signature).value();
  ASSERT_EQ(sig.size(), 256u);
  EXPECT_TRUE(verifyRs256(pub.get(), input, sig));
  for (size_t i : {size_t{0}, size_t{100}, sig.size() - 1}) {
    std::string bad = sig;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(verifyRs256(pub.get(), input, bad)) << "byte " << i;
  }
  std::string bad_input = input;
  bad_input.back() = bad_input.back() == 'Q' ? 'R' : 'Q';
  EXPECT_FALSE(verifyRs256(pub.get(), bad_input, sig));
  EXPECT_FALSE(verifyRs256(pub.get(), input, ""));
  EXPECT_FALSE(verifyRs256(pub.get(), input, sig.substr(1)));
}

TEST(Rs256, RoundTripThroughPemLikeAServiceAccountKey) {
  EvpPkeyPtr original = rsaFromJwk(kA2Key, true);
  ASSERT_NE(original, nullptr);
  auto priv = loadPrivateKeyPem(pemOf(original.get(), true));
  ASSERT_TRUE(priv) << priv.error().message;
  auto pub = loadPublicKeyPem(pemOf(original.get(), false));
  ASSERT_TRUE(pub) << pub.error().message;
  // The PKCS#8 path a service account's private_key takes gives the same bytes as the vector.
  auto jws = signJwtRs256(priv->get(), kA2Header, kA2Payload);
  ASSERT_TRUE(jws) << jws.error().message;
  EXPECT_EQ(*jws, std::string("eyJhbGciOiJSUzI1NiJ9.") + kA2PayloadB64 + "." + kA2Signature);
  // And a fresh token with other claims verifies through decodeJwt + verifyRs256.
  auto other = signJwtRs256(priv->get(), "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                            "{\"iss\":\"sa@example.iam.gserviceaccount.com\",\"iat\":1}");
  ASSERT_TRUE(other);
  auto decoded = decodeJwt(*other);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(verifyRs256(pub->get(), decoded->signing_input, decoded->signature));
  EXPECT_FALSE(verifyRs256(pub->get(), decoded->signing_input + "x", decoded->signature));
}

TEST(Rs256, RejectsNonRsaAndShortKeys) {
  EvpPkeyPtr ec = generateP256();
  auto r = signJwtRs256(ec.get(), kA2Header, kA2Payload);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_FALSE(signJwtRs256(nullptr, kA2Header, kA2Payload));
  EvpPkeyPtr small(EVP_RSA_gen(1024));
  ASSERT_NE(small, nullptr);
  auto s = signJwtRs256(small.get(), kA2Header, kA2Payload);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("2048"), std::string::npos);
  // ES256 keys never verify RS256 and vice versa.
  EXPECT_FALSE(verifyRs256(ec.get(), "a.b", std::string(256, 'x')));
  EvpPkeyPtr rsa = rsaFromJwk(kA2Key, true);
  EXPECT_FALSE(verifyEs256(rsa.get(), "a.b", std::string(64, 'x')));
}

}  // namespace
}  // namespace pushhub::providers
