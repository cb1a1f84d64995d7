#include "providers/fcm/fcm_auth.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <memory>

#include "providers/common/jwt.h"

namespace pushhub::providers::fcm {
namespace {

// Everything a factory call needs; shared by the copies of the factory.
struct Signer {
  std::shared_ptr<EVP_PKEY> key;  // null when the key did not load
  Error load_error;
  std::string token_uri;
  std::string header_json;  // fixed per account
  std::string client_email;
  Clock clock;
};

std::string headerJson(const ServiceAccount& account) {
  boost::json::object h;
  h["alg"] = "RS256";
  h["typ"] = "JWT";
  h["kid"] = account.private_key_id;
  return boost::json::serialize(h);
}

}  // namespace

TokenRequestFactory makeFcmTokenRequests(const ServiceAccount& account, Clock clock) {
  auto s = std::make_shared<Signer>();
  s->token_uri = account.token_uri;
  s->header_json = headerJson(account);
  s->client_email = account.client_email;
  s->clock = clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); });
  auto key = loadPrivateKeyPem(account.private_key_pem);
  if (key) {
    s->key = std::shared_ptr<EVP_PKEY>(std::move(*key).release(), EvpPkeyDeleter{});
  } else {
    s->load_error =
        Error::invalidArgument("fcm service account private_key: " + key.error().message);
  }

  return [s]() -> Result<TokenRequest> {
    if (!s->key) {
      return s->load_error;
    }
    auto iat = std::chrono::duration_cast<std::chrono::seconds>(s->clock().time_since_epoch());
    boost::json::object claims;
    claims["iss"] = s->client_email;
    claims["scope"] = kFcmScope;
    claims["aud"] = s->token_uri;
    claims["iat"] = iat.count();
    claims["exp"] = (iat + kAssertionLifetime).count();
    auto jwt = signJwtRs256(s->key.get(), s->header_json, boost::json::serialize(claims));
    if (!jwt) {
      return Error::internal("fcm token assertion: " + jwt.error().message);
    }
    TokenRequest r;
    r.url = s->token_uri;
    r.content_type = "application/x-www-form-urlencoded";
    // The assertion is base64url segments joined by '.', all form-safe as they are.
    r.body.reserve(80 + jwt->size());
    r.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    r.body += *jwt;
    return r;
  };
}

TokenRequestFactory makeFcmTokenRequests(const FcmConfig& config, Clock clock) {
  if (config.token_uri_override.empty()) {
    return makeFcmTokenRequests(config.account, std::move(clock));
  }
  ServiceAccount account = config.account;
  account.token_uri = config.token_uri_override;
  return makeFcmTokenRequests(account, std::move(clock));
}

}  // namespace pushhub::providers::fcm
