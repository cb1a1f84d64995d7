#include "providers/fcm/fcm_config.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "providers/common/jwt.h"

namespace pushhub::providers::fcm {
namespace {

constexpr std::string_view kDefaultTokenUri = "https://oauth2.googleapis.com/token";
constexpr size_t kMaxProjectIdBytes = 128;
// Google requires 2048-bit keys (and signJwtRs256 refuses shorter ones); say so at load time.
constexpr int kMinRsaBits = 2048;

Error fieldError(std::string_view field, std::string_view what) {
  return Error::invalidArgument("service account " + std::string(field) + ": " + std::string(what));
}

// A required or optional string member; `out` untouched when absent and optional.
Result<void> stringField(const boost::json::object& o, std::string_view name, bool required,
                         std::string& out) {
  const boost::json::value* v = o.if_contains(name);
  if (v == nullptr) {
    return required ? Result<void>(fieldError(name, "missing")) : Result<void>();
  }
  if (!v->is_string()) {
    return fieldError(name, "must be a string");
  }
  if (v->as_string().empty()) {
    return fieldError(name, "must not be empty");
  }
  out = std::string(v->as_string());
  return {};
}

// The project id is pasted into the request path: letters, digits and the separators Google
// uses (project ids "my-app-123", domain-scoped "example.com:app", project numbers).
bool validProjectId(std::string_view id) {
  if (id.empty() || id.size() > kMaxProjectIdBytes) {
    return false;
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == ':' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<ServiceAccount> parseServiceAccount(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(json, ec);
  if (ec) {
    // The parser's message names the position only, never the text.
    return Error::invalidArgument("service account: not valid JSON (" + ec.message() + ")");
  }
  if (!doc.is_object()) {
    return Error::invalidArgument("service account: must be a JSON object");
  }
  const boost::json::object& o = doc.as_object();

  std::string type;
  if (auto r = stringField(o, "type", false, type); !r) {
    return r.error();
  }
  if (!type.empty() && type != "service_account") {
    return fieldError("type", "must be \"service_account\", got \"" + type + "\"");
  }

  ServiceAccount a;
  for (auto [name, out] : {std::pair<std::string_view, std::string*>{"project_id", &a.project_id},
                           {"client_email", &a.client_email},
                           {"private_key", &a.private_key_pem},
                           {"private_key_id", &a.private_key_id}}) {
    if (auto r = stringField(o, name, true, *out); !r) {
      return r.error();
    }
  }
  if (auto r = stringField(o, "token_uri", false, a.token_uri); !r) {
    return r.error();
  }
  if (a.token_uri.empty()) {
    a.token_uri = std::string(kDefaultTokenUri);
  }
  if (a.token_uri.rfind("https://", 0) != 0) {
    return fieldError("token_uri", "must be an https:// URL");
  }
  if (!validProjectId(a.project_id)) {
    return fieldError("project_id", "must be 1 to 128 letters, digits, '-', '.', ':' or '_'");
  }

  auto key = loadPrivateKeyPem(a.private_key_pem);
  if (!key) {
    return fieldError("private_key", "does not load: " + key.error().message);
  }
  if (!EVP_PKEY_is_a(key->get(), "RSA")) {
    return fieldError("private_key", "must be an RSA key");
  }
  if (int bits = EVP_PKEY_get_bits(key->get()); bits < kMinRsaBits) {
    return fieldError("private_key",
                      "RSA key of " + std::to_string(bits) + " bits, at least 2048 required");
  }
  return a;
}

}  // namespace pushhub::providers::fcm
