#pragma once
// A freshly generated P-256 key as PKCS#8 PEM (private) and SPKI PEM (public), for tests.

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>
#include <utility>

namespace pushhub::providers::apns::testing {

inline std::pair<std::string, std::string> generateP256Pem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  auto pem = [key](bool priv) {
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
  };
  auto result = std::make_pair(pem(true), pem(false));
  EVP_PKEY_free(key);
  return result;
}

}  // namespace pushhub::providers::apns::testing
