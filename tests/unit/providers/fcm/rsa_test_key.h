#pragma once
// RSA test keys as PEM: PKCS#8 private key and SPKI public key, generated in-process (what a
// Google service-account file holds, without touching real credentials). Generating a 2048-bit
// key takes a moment, so each size is made once per test binary.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <map>
#include <string>
#include <utility>

namespace pushhub::providers::fcm::testing {

struct PemPair {
  std::string private_pem;
  std::string public_pem;
};

inline std::string pemOf(EVP_PKEY* key, bool priv) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (priv) {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PUBKEY(bio, key);
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline const PemPair& rsaKey(unsigned bits = 2048) {
  static std::map<unsigned, PemPair> keys;
  auto it = keys.find(bits);
  if (it == keys.end()) {
    EVP_PKEY* key = EVP_RSA_gen(bits);
    it = keys.emplace(bits, PemPair{pemOf(key, true), pemOf(key, false)}).first;
    EVP_PKEY_free(key);
  }
  return it->second;
}

inline PemPair p256Key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  PemPair out{pemOf(key, true), pemOf(key, false)};
  EVP_PKEY_free(key);
  return out;
}

}  // namespace pushhub::providers::fcm::testing
