#include "providers/fcm/fcm_provider.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cctype>

#include "base/ascii.h"
#include "providers/common/tls.h"

namespace pushhub::providers::fcm {
namespace {

constexpr std::string_view kFcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
constexpr std::string_view kBadRequestType = "type.googleapis.com/google.rpc.BadRequest";

using Row = StatusVerdict;

// The google.rpc.Status envelope, as far as classification needs it.
struct Status {
  bool envelope = false;     // the body was {"error":{...}}
  std::string code;          // FcmError errorCode, else error.status
  bool about_token = false;  // the error names the registration token
  bool too_big = false;      // the error is about the payload size
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

void inspectText(std::string_view text, Status& s) {
  std::string t = lower(text);
  if (t.find("registration token") != std::string::npos) {
    s.about_token = true;
  }
  if (t.find("too big") != std::string::npos || t.find("too large") != std::string::npos ||
      t.find("size exceeds") != std::string::npos) {
    s.too_big = true;
  }
}

Status parseStatus(std::string_view body) {
  Status s;
  if (body.empty()) {
    return s;
  }
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(body, ec);
  if (ec || !doc.is_object()) {
    return s;
  }
  const auto* error = doc.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) {
    return s;
  }
  s.envelope = true;
  const boost::json::object& e = error->as_object();
  std::string status;
  if (const auto* v = e.if_contains("status"); v != nullptr && v->is_string()) {
    status = std::string(v->as_string());
  }
  if (const auto* v = e.if_contains("message"); v != nullptr && v->is_string()) {
    inspectText(v->as_string(), s);
  }
  std::string fcm_code;
  if (const auto* v = e.if_contains("details"); v != nullptr && v->is_array()) {
    for (const boost::json::value& d : v->as_array()) {
      if (!d.is_object()) {
        continue;
      }
      const boost::json::object& detail = d.as_object();
      const auto* type = detail.if_contains("@type");
      if (type == nullptr || !type->is_string()) {
        continue;
      }
      if (type->as_string() == kFcmErrorType) {
        if (const auto* c = detail.if_contains("errorCode"); c != nullptr && c->is_string()) {
          fcm_code = std::string(c->as_string());
        }
      } else if (type->as_string() == kBadRequestType) {
        const auto* violations = detail.if_contains("fieldViolations");
        if (violations == nullptr || !violations->is_array()) {
          continue;
        }
        for (const boost::json::value& fv : violations->as_array()) {
          if (!fv.is_object()) {
            continue;
          }
          if (const auto* f = fv.as_object().if_contains("field");
              f != nullptr && f->is_string() && f->as_string() == "message.token") {
            s.about_token = true;
          }
          if (const auto* f = fv.as_object().if_contains("description");
              f != nullptr && f->is_string()) {
            inspectText(f->as_string(), s);
          }
        }
      }
    }
  }
  s.code = fcm_code.empty() ? status : fcm_code;
  return s;
}

// Codes with no row of their own (and bodies that are not a google.rpc.Status), by HTTP
// status. A bare 404 never drops a token: without FCM's envelope it is more likely a wrong
// endpoint or proxy than a dead device, and dropping is not undoable.
Row byStatus(int status) {
  switch (status) {
    case 400:
      return {OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat"};
    case 401:
      return {OutcomeKind::kRefreshAuth, "InvalidCredentials"};
    case 403:
      return {OutcomeKind::kConfigError, "InvalidCredentials"};
    case 404:
    case 405:
      return {OutcomeKind::kPermanentBadRequest, "PnsInterfaceError"};
    case 413:
      return {OutcomeKind::kPermanentBadRequest, "InvalidNotificationSize"};
    case 429:
      return {OutcomeKind::kRetryAfter, "Throttled"};
    case 503:
      return {OutcomeKind::kRetryAfter, "PnsUnavailable"};
    default:
      break;
  }
  return byStatusClass(status);
}

// spec/pns-protocols.md §3.5 (codes) and §6 (outcomes).
std::optional<Row> byCode(const Status& s) {
  const std::string& c = s.code;
  // Only FCM's own UNREGISTERED drops a token; a bare NOT_FOUND (e.g. a wrong project id)
  // falls through to byStatus, which keeps it.
  if (c == "UNREGISTERED") {
    return Row{OutcomeKind::kDropToken, "ExpiredChannel"};
  }
  if (c == "INVALID_ARGUMENT") {
    if (s.about_token) {
      return Row{OutcomeKind::kDropToken, "WrongToken"};
    }
    return Row{OutcomeKind::kPermanentBadRequest,
               s.too_big ? "InvalidNotificationSize" : "InvalidNotificationFormat"};
  }
  if (c == "SENDER_ID_MISMATCH") {
    // The token belongs to another Firebase project: dead for this hub's credential.
    return Row{OutcomeKind::kDropToken, "WrongToken"};
  }
  if (c == "QUOTA_EXCEEDED" || c == "RESOURCE_EXHAUSTED") {
    return Row{OutcomeKind::kRetryAfter, "Throttled"};
  }
  if (c == "UNAVAILABLE") {
    return Row{OutcomeKind::kRetryAfter, "PnsUnavailable"};
  }
  if (c == "INTERNAL") {
    return Row{OutcomeKind::kRetryBackoff, "PnsUnavailable"};
  }
  if (c == "UNAUTHENTICATED") {
    return Row{OutcomeKind::kRefreshAuth, "InvalidCredentials"};
  }
  if (c == "THIRD_PARTY_AUTH_ERROR" || c == "APNS_AUTH_ERROR" || c == "PERMISSION_DENIED") {
    return Row{OutcomeKind::kConfigError, "InvalidCredentials"};
  }
  if (c == "UNSPECIFIED_ERROR") {
    return Row{OutcomeKind::kRetryBackoff, "UnknownError"};
  }
  return std::nullopt;
}

// The payload parsed and checked (validatePayload's rules).
Result<boost::json::value> parsePayload(std::string_view body) {
  if (body.empty()) {
    return Error::invalidArgument("payload: must not be empty");
  }
  if (body.size() > FcmProvider::kMaxPayloadBytes) {
    return Error::invalidArgument("payload: " + std::to_string(body.size()) +
                                  " bytes, FCM allows at most " +
                                  std::to_string(FcmProvider::kMaxPayloadBytes));
  }
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(body, ec);
  if (ec) {
    return Error::invalidArgument("payload: not valid JSON (" + ec.message() + ")");
  }
  if (!doc.is_object()) {
    return Error::invalidArgument(R"(payload: must be a JSON object {"message":{...}})");
  }
  for (const auto& member : doc.as_object()) {
    if (member.key() == "message") {
      continue;
    }
    if (member.key() == "validate_only") {
      if (!member.value().is_bool()) {
        return Error::invalidArgument("payload.validate_only: must be true or false");
      }
      continue;
    }
    return Error::invalidArgument("payload." + std::string(member.key()) +
                                  ": unknown field (only message and validate_only)");
  }
  const auto* message = doc.as_object().if_contains("message");
  if (message == nullptr || !message->is_object()) {
    return Error::invalidArgument("payload.message: required, must be a JSON object");
  }
  for (std::string_view target : {"token", "topic", "condition"}) {
    if (message->as_object().contains(target)) {
      return Error::invalidArgument("payload.message." + std::string(target) +
                                    ": must not be set, the hub addresses each device itself");
    }
  }
  if (const auto* android = message->as_object().if_contains("android")) {
    if (!android->is_object()) {
      return Error::invalidArgument("payload.message.android: must be a JSON object");
    }
    if (const auto* ttl = android->as_object().if_contains("ttl");
        ttl != nullptr && !ttl->is_string()) {
      return Error::invalidArgument(
          R"(payload.message.android.ttl: must be a duration string like "3600s")");
    }
  }
  return doc;
}

// The bytes a JSON string must escape: '"', '\\' and the controls.
constexpr std::array<bool, 256> kJsonEscaped = [] {
  std::array<bool, 256> table{};
  for (size_t c = 0; c < 0x20; ++c) {
    table[c] = true;
  }
  table['"'] = true;
  table['\\'] = true;
  return table;
}();

void appendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Runs that need no escape (a whole token, as a rule) go in with one append, found with one
  // table lookup per byte: a push_back per character cost ~4,000 instructions per FCM request.
  size_t plain = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto u = static_cast<unsigned char>(s[i]);
    if (!kJsonEscaped[u]) {
      continue;
    }
    char c = s[i];
    out.append(s.data() + plain, i - plain);
    plain = i + 1;
    if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += '\\';
      out += c;
    }
  }
  out.append(s.data() + plain, s.size() - plain);
}

}  // namespace

FcmProvider::FcmProvider(FcmConfig config, std::shared_ptr<AccessTokenSource> tokens, Clock clock)
    : config_(std::move(config)),
      tokens_(std::move(tokens)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })) {
  config_.account.private_key_pem.clear();  // the token source holds the credential
  path_ = "/v1/projects/" + config_.account.project_id + "/messages:send";
}

bool FcmProvider::ready() const { return tokens_->current() != nullptr; }

void FcmProvider::whenReady(boost::asio::any_io_executor executor,
                            std::function<void(Result<void>)> done) {
  tokens_->get(std::move(executor),
               [done = std::move(done)](Result<std::shared_ptr<const AccessToken>> token) {
                 if (!token) {
                   done(token.error());
                 } else {
                   done(Result<void>());
                 }
               });
}

Result<void> FcmProvider::validatePayload(std::string_view body) {
  auto parsed = parsePayload(body);
  if (!parsed) {
    return parsed.error();
  }
  return {};
}

Result<void> FcmProvider::validateRegistrationToken(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return Error::invalidArgument("fcm registration token: must be 1 to 4096 bytes, got " +
                                  std::to_string(token.size()));
  }
  if (!ascii::allPrintable(token)) {
    return Error::invalidArgument("fcm registration token: only printable ASCII allowed");
  }
  return {};
}

Result<ConnectionPool::Options> FcmProvider::poolOptions(const FcmConfig& config) {
  return ConnectionPool::overTls(config.ca_file, AlpnOffer::kH2, config.host, config.port,
                                 config.connections);
}

const FcmProvider::Transform& FcmProvider::transformFor(std::string_view body,
                                                        int64_t ttl_seconds) {
  Transform* victim = &cache_[0];
  for (Transform& t : cache_) {
    if (t.valid && t.body.size() == body.size() &&
        (t.ttl_independent || t.ttl_seconds == ttl_seconds) && t.body == body) {
      t.last_used = ++use_counter_;
      return t;
    }
    if (!t.valid || (victim->valid && t.last_used < victim->last_used)) {
      victim = &t;
    }
  }

  ++transforms_computed_;
  Transform& t = *victim;
  t = Transform{};
  t.valid = true;
  t.body = std::string(body);
  t.ttl_seconds = ttl_seconds;
  t.last_used = ++use_counter_;
  auto parsed = parsePayload(body);
  if (!parsed) {
    t.error = parsed.error();
    t.ttl_independent = true;
    return t;
  }
  boost::json::object& doc = parsed->as_object();
  boost::json::object& message = doc["message"].as_object();
  auto* android = message.if_contains("android");
  t.ttl_independent = android != nullptr && android->as_object().contains("ttl");
  if (!t.ttl_independent && ttl_seconds >= 0) {
    if (android == nullptr) {
      android = &message["android"];
      *android = boost::json::object();
    }
    android->as_object()["ttl"] = std::to_string(ttl_seconds) + "s";
  }
  // {"message":{"token":"<here>", ...message members...}, "validate_only":..}: built around
  // the serialized message, so no search for a sentinel that the payload could contain.
  std::string m = boost::json::serialize(message);  // "{...}"
  t.prefix = R"({"message":{"token":")";
  t.suffix = "\"";
  if (m.size() > 2) {
    t.suffix += ',';
    t.suffix.append(m, 1, std::string::npos);
  } else {
    t.suffix += '}';
  }
  if (const auto* v = doc.if_contains("validate_only")) {
    t.suffix += v->as_bool() ? R"(,"validate_only":true)" : R"(,"validate_only":false)";
  }
  t.suffix += '}';
  return t;
}

Result<Request> FcmProvider::encode(const Target& target,
                                    const std::shared_ptr<const Notification>& notification) {
  const Notification& n = *notification;
  if (auto valid = validateRegistrationToken(target.push_channel); !valid) {
    return valid.error();
  }
  int64_t ttl_seconds = -1;
  if (n.expiry) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(*n.expiry - clock_());
    ttl_seconds = std::clamp<int64_t>(left.count(), 0, kMaxTtl.count());
  }
  const Transform& t = transformFor(n.body, ttl_seconds);
  if (t.error) {
    return *t.error;
  }
  std::shared_ptr<const AccessToken> token = tokens_->current();
  if (!token) {
    return Error::unavailable("fcm access token: none available");
  }
  last_generation_ = token->generation;

  Request r;
  r.method = "POST";
  r.credential_generation = token->generation;
  r.path = path_;
  if (shared_headers_token_ != token) {  // the same for every request until the token changes
    shared_headers_token_ = token;
    shared_headers_ = std::make_shared<const std::vector<Header>>(
        std::vector<Header>{{"authorization", token->authorization, true},
                            {"content-type", "application/json", false}});
  }
  r.shared_headers = shared_headers_;
  r.body.reserve(t.prefix.size() + t.suffix.size() + target.push_channel.size() + 8);
  r.body = t.prefix;
  if (ascii::allJsonPlain(target.push_channel)) {  // real tokens: [A-Za-z0-9_:-]
    r.body += target.push_channel;
  } else {
    appendEscaped(r.body, target.push_channel);
  }
  r.body += t.suffix;
  return r;
}

Outcome FcmProvider::classify(const Response& response) const {
  Outcome o;
  o.http_status = response.status;
  if (response.status >= 200 && response.status <= 299) {
    o.kind = OutcomeKind::kDelivered;
    o.azure_outcome = "Success";
    return o;
  }
  Status s = parseStatus(response.body);
  o.reason = s.code;
  Row row = byStatus(response.status);
  if (s.envelope) {
    if (auto by_code = byCode(s)) {
      row = *by_code;
    }
  }
  o.kind = row.kind;
  o.azure_outcome = row.azure_outcome;
  auto after = parseRetryAfter(response.header("retry-after"), clock_());
  if (o.kind == OutcomeKind::kRetryAfter || o.kind == OutcomeKind::kRetryBackoff) {
    if (after) {
      o.retry_after = *after;
    } else if (o.azure_outcome == "Throttled") {
      o.retry_after = kDefaultQuotaRetry;
    }
  }
  return o;
}

void FcmProvider::onAuthRejected(const Response& rejected) {
  tokens_->invalidate(rejected.credential_generation != 0 ? rejected.credential_generation
                                                          : last_generation_);
}

void FcmProvider::onAuthRejected() { tokens_->invalidate(last_generation_); }

}  // namespace pushhub::providers::fcm
