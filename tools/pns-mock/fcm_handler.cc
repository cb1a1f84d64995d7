#include "tools/pns-mock/fcm_handler.h"

#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

namespace pushhub::mock {
namespace {

namespace json = boost::json;
namespace code = fcm_code;

constexpr std::string_view kProjectsPrefix = "/v1/projects/";
constexpr std::string_view kSendSuffix = "/messages:send";
constexpr std::string_view kJwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
constexpr std::string_view kMessagingScope = "https://www.googleapis.com/auth/firebase.messaging";
constexpr std::string_view kCloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";
constexpr std::string_view kEmailDomain = ".iam.gserviceaccount.com";

constexpr std::string_view kUnauthenticatedMessage =
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.";
constexpr std::string_view kBadTokenMessage =
    "The registration token is not a valid FCM registration token";
constexpr std::string_view kShortLivedMessage =
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim.";
constexpr std::string_view kBadSignatureMessage = "Invalid JWT Signature.";

constexpr std::string_view kRequestKeys[] = {"validate_only", "validateOnly", "message"};
constexpr std::string_view kMessageKeys[] = {"name",    "token",        "topic",     "condition",
                                             "data",    "notification", "android",   "apns",
                                             "webpush", "fcm_options",  "fcmOptions"};
constexpr std::string_view kNotificationKeys[] = {"title", "body", "image"};

template <size_t N>
bool oneOf(std::string_view s, const std::string_view (&list)[N]) {
  for (std::string_view item : list) {
    if (s == item) {
      return true;
    }
  }
  return false;
}

FcmVerdict& fail(FcmVerdict& v, int status, std::string_view status_name,
                 std::string_view error_code, std::string message, std::string field = {}) {
  v.status = status;
  v.status_name = status_name;
  v.error_code = error_code;
  v.message = std::move(message);
  v.field = std::move(field);
  return v;
}

// Google's wording for a JSON value of the wrong type.
FcmVerdict& badValue(FcmVerdict& v, const std::string& field, std::string_view type,
                     const json::value& value) {
  return fail(
      v, 400, code::kInvalidArgument, {},
      "Invalid value at '" + field + "' (" + std::string(type) + "), " + json::serialize(value),
      field);
}

FcmVerdict& unknownName(FcmVerdict& v, std::string_view name, std::string_view at) {
  std::string msg = "Invalid JSON payload received. Unknown name \"" + std::string(name) + "\"";
  if (!at.empty()) {
    msg += " at '" + std::string(at) + "'";
  }
  msg += ": Cannot find field.";
  return fail(v, 400, code::kInvalidArgument, {}, msg, std::string(at));
}

bool isTopicChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~' || c == '%';
}

// A topic name, with or without its "/topics/" prefix.
bool validTopic(std::string_view topic) {
  if (topic.starts_with("/topics/")) {
    topic.remove_prefix(8);
  }
  if (topic.empty() || topic.size() > 900) {
    return false;
  }
  for (char c : topic) {
    if (!isTopicChar(c)) {
      return false;
    }
  }
  return true;
}

bool reservedDataKey(std::string_view key) {
  return key == "from" || key == "gcm" || key.starts_with("google");
}

// A proto3 JSON Duration: decimal seconds with up to 9 fractional digits and an "s" suffix.
bool parseDuration(std::string_view s, int64_t& seconds) {
  if (s.size() < 2 || s.back() != 's') {
    return false;
  }
  s.remove_suffix(1);
  std::string_view whole = s.substr(0, s.find('.'));
  if (whole.empty() || whole.size() > 12) {
    return false;
  }
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    std::string_view frac = s.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) {
      return false;
    }
    for (char c : frac) {
      if (c < '0' || c > '9') {
        return false;
      }
    }
  }
  auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  return ec == std::errc() && ptr == whole.data() + whole.size() && seconds >= 0;
}

}  // namespace

void checkFcmBodyFull(const H2Request& request, FcmVerdict& v) {
  if (request.body_truncated) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message is too big");
    return;
  }
  unsigned char buffer[16 * 1024];
  json::monotonic_resource mr(buffer, sizeof buffer);
  boost::system::error_code ec;
  json::value root = json::parse(request.body, ec, &mr);
  if (ec || !root.is_object()) {
    fail(v, 400, code::kInvalidArgument, {},
         ec ? "Invalid JSON payload received. " + ec.message()
            : "Invalid JSON payload received. Expected an object.");
    return;
  }
  const json::object& req = root.get_object();
  for (const auto& kv : req) {
    if (!oneOf(kv.key(), kRequestKeys)) {
      unknownName(v, kv.key(), "");
      return;
    }
  }
  for (std::string_view key : {"validate_only", "validateOnly"}) {
    if (const json::value* vo = req.if_contains(key)) {
      if (!vo->is_bool()) {
        badValue(v, "validate_only", "TYPE_BOOL", *vo);
        return;
      }
      v.validate_only = vo->get_bool();
    }
  }
  const json::value* message_value = req.if_contains("message");
  if (message_value == nullptr || !message_value->is_object()) {
    if (message_value != nullptr && !message_value->is_null()) {
      badValue(v, "message", "type.googleapis.com/google.firebase.fcm.v1.Message", *message_value);
      return;
    }
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message must be set.", "message");
    return;
  }
  const json::object& message = message_value->get_object();
  for (const auto& kv : message) {
    if (!oneOf(kv.key(), kMessageKeys)) {
      unknownName(v, kv.key(), "message");
      return;
    }
  }

  // The target oneof: exactly one of token / topic / condition.
  std::string_view target_name;
  const json::value* target = nullptr;
  for (std::string_view name : {"token", "topic", "condition"}) {
    const json::value* t = message.if_contains(name);
    if (t == nullptr) {
      continue;
    }
    if (!t->is_string()) {
      badValue(v, "message." + std::string(name), "TYPE_STRING", *t);
      return;
    }
    if (target != nullptr) {
      fail(v, 400, code::kInvalidArgument, {},
           "Invalid JSON payload received. Oneof field 'target' is already set. Cannot set '" +
               std::string(name) + "'",
           "message");
      return;
    }
    target = t;
    target_name = name;
  }
  if (target == nullptr) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
         "Recipient of the message is not set.", "message");
    return;
  }
  std::string_view target_text = target->get_string();
  if (target_name == "token") {
    if (!isFcmToken(target_text)) {
      fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, std::string(kBadTokenMessage),
           "message.token");
      return;
    }
    v.registration_token.assign(target_text);
  } else if (target_name == "topic") {
    if (!validTopic(target_text)) {
      fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Invalid topic name.",
           "message.topic");
      return;
    }
  } else if (target_text.empty()) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Invalid condition.",
         "message.condition");
    return;
  }

  size_t payload = 0;
  if (const json::value* data = message.if_contains("data")) {
    if (!data->is_object()) {
      badValue(v, "message.data", "type.googleapis.com/google.protobuf.Map", *data);
      return;
    }
    size_t i = 0;
    for (const auto& kv : data->get_object()) {
      if (!kv.value().is_string()) {
        badValue(v, "message.data[" + std::to_string(i) + "].value", "TYPE_STRING", kv.value());
        return;
      }
      std::string_view key = kv.key();
      if (reservedDataKey(key)) {
        fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
             "Invalid data payload key: " + std::string(key), "message.data");
        return;
      }
      payload += key.size() + kv.value().get_string().size();
      ++i;
    }
  }
  if (const json::value* notification = message.if_contains("notification")) {
    if (!notification->is_object()) {
      badValue(v, "message.notification", "type.googleapis.com/google.firebase.fcm.v1.Notification",
               *notification);
      return;
    }
    for (const auto& kv : notification->get_object()) {
      if (!oneOf(kv.key(), kNotificationKeys)) {
        unknownName(v, kv.key(), "message.notification");
        return;
      }
      if (!kv.value().is_string()) {
        badValue(v, "message.notification." + std::string(kv.key()), "TYPE_STRING", kv.value());
        return;
      }
      payload += kv.key().size() + kv.value().get_string().size();
    }
  }
  size_t limit = target_name == "topic" ? kFcmMaxTopicPayload : kFcmMaxPayload;
  if (payload > limit) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, "Message is too big");
    return;
  }
  if (const json::value* android = message.if_contains("android")) {
    if (!android->is_object()) {
      badValue(v, "message.android", "type.googleapis.com/google.firebase.fcm.v1.AndroidConfig",
               *android);
      return;
    }
    const json::object& a = android->get_object();
    if (const json::value* priority = a.if_contains("priority")) {
      if (!priority->is_string() ||
          (priority->get_string() != "NORMAL" && priority->get_string() != "HIGH")) {
        badValue(v, "message.android.priority",
                 "type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority", *priority);
        return;
      }
    }
    if (const json::value* ttl = a.if_contains("ttl")) {
      int64_t seconds = 0;
      if (!ttl->is_string() || !parseDuration(ttl->get_string(), seconds)) {
        badValue(v, "message.android.ttl", "type.googleapis.com/google.protobuf.Duration", *ttl);
        return;
      }
      if (seconds > kFcmMaxAndroidTtl) {
        fail(v, 400, code::kInvalidArgument, code::kInvalidArgument,
             "TTL cannot exceed 4 weeks (2419200s).", "message.android.ttl");
        return;
      }
    }
  }
  for (std::string_view name : {"apns", "webpush", "fcm_options", "fcmOptions"}) {
    if (const json::value* sub = message.if_contains(name); sub != nullptr && !sub->is_object()) {
      badValue(v, "message." + std::string(name), "TYPE_MESSAGE", *sub);
      return;
    }
  }
}

namespace {

// The fast path of the body check: a boost::json SAX handler that checks a send's body in one
// pass over the text, with no DOM, as checkFcmBodyFull would, and gives up (returns false,
// which stops the parser) on anything that is not plainly valid: an error, a duplicate key
// where it would matter, an escaped key, a target with escapes. Giving up only means "ask the
// full check", which then finds the exact error; so the fast path has to be right only about
// what it accepts. Building and searching the DOM was most of an FCM send's cost in the mock.
class FcmBodyScan {
 public:
  static constexpr size_t max_array_size = static_cast<size_t>(-1);
  static constexpr size_t max_object_size = static_cast<size_t>(-1);
  static constexpr size_t max_string_size = static_cast<size_t>(-1);
  static constexpr size_t max_key_size = static_cast<size_t>(-1);

  explicit FcmBodyScan(FcmVerdict& v) : v_(v) {}

  // True when the whole document was seen and passed: exactly one target, the size limit.
  bool accepted() const {
    if ((seen_ & kMessageBit) == 0) {
      return false;
    }
    uint32_t targets = seen_ & (kTokenBit | kTopicBit | kConditionBit);
    if (targets != kTokenBit && targets != kTopicBit && targets != kConditionBit) {
      return false;
    }
    return payload_ <= (targets == kTopicBit ? kFcmMaxTopicPayload : kFcmMaxPayload);
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    if (opaque_ > 0) {
      ++opaque_;
      return true;
    }
    switch (slot_) {
      case Slot::kDocument:
        return enter(Where::kRequest);
      case Slot::kMessage:
        return enter(Where::kMessage);
      case Slot::kData:
        return enter(Where::kData);
      case Slot::kNotification:
        return enter(Where::kNotification);
      case Slot::kAndroid:
        return enter(Where::kAndroid);
      case Slot::kObject:  // apns, webpush, fcm_options: any content
      case Slot::kAny:
        opaque_ = 1;
        return true;
      default:
        return giveUp(ec);
    }
  }

  bool on_object_end(size_t, json::error_code&) {
    if (opaque_ > 0) {
      --opaque_;
    } else {
      // kData, kNotification and kAndroid sit in the message, the message in the request.
      where_ = where_ == Where::kMessage ? Where::kRequest : Where::kMessage;
    }
    slot_ = Slot::kNone;
    return true;
  }

  bool on_array_begin(json::error_code& ec) {
    if (opaque_ > 0) {
      ++opaque_;
      return true;
    }
    if (slot_ != Slot::kAny) {
      return giveUp(ec);
    }
    opaque_ = 1;
    return true;
  }

  bool on_array_end(size_t, json::error_code&) {
    --opaque_;
    if (opaque_ == 0) {
      slot_ = Slot::kNone;
    }
    return true;
  }

  // A key in pieces has escapes: leave it to the full check unless nobody looks at it.
  bool on_key_part(json::string_view, size_t, json::error_code& ec) {
    return opaque_ > 0 || giveUp(ec);
  }

  bool on_key(json::string_view key, size_t n, json::error_code& ec) {
    if (opaque_ > 0) {
      return true;
    }
    std::string_view k(key.data(), key.size());
    switch (where_) {
      case Where::kRequest:
        if (k == "message") {
          return expect(Slot::kMessage, kMessageBit, ec);
        }
        if (k == "validate_only" || k == "validateOnly") {
          return expect(Slot::kValidateOnly, kValidateOnlyBit, ec);
        }
        return giveUp(ec);
      case Where::kMessage:
        return messageKey(k, ec);
      case Where::kData:
        if (reservedDataKey(k)) {
          return giveUp(ec);
        }
        // Duplicate data keys are counted twice here (the DOM keeps one): at worst the size
        // check gives up and the full check decides.
        payload_ += n;
        slot_ = Slot::kPayloadString;
        return true;
      case Where::kNotification:
        payload_ += n;
        if (k == "title") {
          return expect(Slot::kPayloadString, kTitleBit, ec);
        }
        if (k == "body") {
          return expect(Slot::kPayloadString, kBodyBit, ec);
        }
        if (k == "image") {
          return expect(Slot::kPayloadString, kImageBit, ec);
        }
        return giveUp(ec);
      case Where::kAndroid:
        if (k == "priority") {
          return expect(Slot::kPriority, kPriorityBit, ec);
        }
        if (k == "ttl") {
          return expect(Slot::kTtl, kTtlBit, ec);
        }
        slot_ = Slot::kAny;  // the rest of android is not checked
        return true;
    }
    return giveUp(ec);
  }

  // A string in pieces has escapes: fine where only its length counts.
  bool on_string_part(json::string_view, size_t, json::error_code& ec) {
    return opaque_ > 0 || slot_ == Slot::kAny || slot_ == Slot::kPayloadString || giveUp(ec);
  }

  bool on_string(json::string_view value, size_t n, json::error_code& ec) {
    if (opaque_ > 0) {
      return true;
    }
    std::string_view s(value.data(), value.size());
    bool whole = n == s.size();  // no earlier pieces
    bool ok = false;
    switch (slot_) {
      case Slot::kAny:
        ok = true;
        break;
      case Slot::kPayloadString:
        payload_ += n;
        ok = true;
        break;
      case Slot::kToken:
        ok = whole && isFcmToken(s);
        if (ok) {
          v_.registration_token.assign(s);
        }
        break;
      case Slot::kTopic:
        ok = whole && validTopic(s);
        break;
      case Slot::kCondition:
        ok = n > 0;
        break;
      case Slot::kPriority:
        ok = whole && (s == "NORMAL" || s == "HIGH");
        break;
      case Slot::kTtl: {
        int64_t seconds = 0;
        ok = whole && parseDuration(s, seconds) && seconds <= kFcmMaxAndroidTtl;
        break;
      }
      default:
        break;
    }
    slot_ = Slot::kNone;
    return ok || giveUp(ec);
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code& ec) { return anyScalar(ec); }
  bool on_uint64(uint64_t, json::string_view, json::error_code& ec) { return anyScalar(ec); }
  bool on_double(double, json::string_view, json::error_code& ec) { return anyScalar(ec); }
  bool on_null(json::error_code& ec) { return anyScalar(ec); }

  bool on_bool(bool b, json::error_code& ec) {
    if (opaque_ == 0 && slot_ == Slot::kValidateOnly) {
      v_.validate_only = b;
      slot_ = Slot::kNone;
      return true;
    }
    return anyScalar(ec);
  }

  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  // The object being read (outside opaque subtrees).
  enum class Where : uint8_t { kRequest, kMessage, kData, kNotification, kAndroid };
  // What the next value is for.
  enum class Slot : uint8_t {
    kNone,
    kDocument,
    kValidateOnly,
    kMessage,
    kToken,
    kTopic,
    kCondition,
    kData,
    kNotification,
    kAndroid,
    kObject,         // an object with any content
    kAny,            // any value (message.name, android's unchecked fields)
    kPayloadString,  // a data or notification value: a string whose size counts
    kPriority,
    kTtl,
  };
  // Keys seen, to give up on duplicates (the DOM keeps one of them).
  static constexpr uint32_t kMessageBit = 1u << 0;
  static constexpr uint32_t kValidateOnlyBit = 1u << 1;  // either spelling
  static constexpr uint32_t kTokenBit = 1u << 2;
  static constexpr uint32_t kTopicBit = 1u << 3;
  static constexpr uint32_t kConditionBit = 1u << 4;
  static constexpr uint32_t kDataBit = 1u << 5;
  static constexpr uint32_t kNotificationBit = 1u << 6;
  static constexpr uint32_t kAndroidBit = 1u << 7;
  static constexpr uint32_t kTitleBit = 1u << 8;
  static constexpr uint32_t kBodyBit = 1u << 9;
  static constexpr uint32_t kImageBit = 1u << 10;
  static constexpr uint32_t kPriorityBit = 1u << 11;
  static constexpr uint32_t kTtlBit = 1u << 12;
  static constexpr uint32_t kNameBit = 1u << 13;
  static constexpr uint32_t kApnsBit = 1u << 14;
  static constexpr uint32_t kWebpushBit = 1u << 15;
  static constexpr uint32_t kFcmOptionsBit = 1u << 16;  // either spelling

  bool giveUp(json::error_code& ec) {
    ec = json::error::exception;  // any error: the caller only sees "not accepted"
    return false;
  }

  bool enter(Where where) {
    where_ = where;
    slot_ = Slot::kNone;
    return true;
  }

  bool expect(Slot slot, uint32_t bit, json::error_code& ec) {
    if ((seen_ & bit) != 0) {
      return giveUp(ec);
    }
    seen_ |= bit;
    slot_ = slot;
    return true;
  }

  bool messageKey(std::string_view k, json::error_code& ec) {
    struct Key {
      std::string_view name;
      Slot slot;
      uint32_t bit;
    };
    static constexpr Key kKeys[] = {
        {"token", Slot::kToken, kTokenBit},
        {"notification", Slot::kNotification, kNotificationBit},
        {"data", Slot::kData, kDataBit},
        {"android", Slot::kAndroid, kAndroidBit},
        {"topic", Slot::kTopic, kTopicBit},
        {"condition", Slot::kCondition, kConditionBit},
        {"name", Slot::kAny, kNameBit},
        {"apns", Slot::kObject, kApnsBit},
        {"webpush", Slot::kObject, kWebpushBit},
        {"fcm_options", Slot::kObject, kFcmOptionsBit},
        {"fcmOptions", Slot::kObject, kFcmOptionsBit},
    };
    for (const Key& key : kKeys) {
      if (k == key.name) {
        return expect(key.slot, key.bit, ec);
      }
    }
    return giveUp(ec);
  }

  bool anyScalar(json::error_code& ec) {
    if (opaque_ > 0) {
      return true;
    }
    bool ok = slot_ == Slot::kAny;
    slot_ = Slot::kNone;
    return ok || giveUp(ec);
  }

  FcmVerdict& v_;
  Where where_ = Where::kRequest;
  Slot slot_ = Slot::kDocument;
  uint32_t opaque_ = 0;  // depth inside a subtree whose content is not checked
  uint32_t seen_ = 0;
  size_t payload_ = 0;  // data + notification keys and values
};

}  // namespace

bool acceptFcmBodyFast(std::string_view body, FcmVerdict& v) {
  // The same parse options as json::parse in checkFcmBodyFull (strict JSON, depth 32).
  json::basic_parser<FcmBodyScan> parser(json::parse_options{}, v);
  json::error_code ec;
  size_t n = parser.write_some(false, body.data(), body.size(), ec);
  if (!ec && n == body.size() && parser.done() && parser.handler().accepted()) {
    return true;
  }
  v.registration_token.clear();
  v.validate_only = false;
  return false;
}

namespace {

bool readInt(const json::object& o, std::string_view key, int64_t& out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return false;
  }
  if (v->is_int64()) {
    out = v->get_int64();
    return true;
  }
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(v->get_uint64());
    return true;
  }
  return false;
}

void appendJsonString(std::string& out, std::string_view s) {
  out.append(json::serialize(json::string_view(s.data(), s.size())));
}

}  // namespace

std::string fcmProjectOfEmail(std::string_view client_email) {
  size_t at = client_email.find('@');
  if (at == std::string_view::npos || !client_email.ends_with(kEmailDomain)) {
    return {};
  }
  std::string_view domain = client_email.substr(at + 1);
  return std::string(domain.substr(0, domain.size() - kEmailDomain.size()));
}

namespace {

// The characters of an FCM registration token, [A-Za-z0-9_:.-], as a table: a real token has
// ~160 of them and every send checks them all.
constexpr std::array<bool, 256> kFcmTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':' || c == '.' || c == '-';
  }
  return t;
}();

}  // namespace

bool isFcmToken(std::string_view token) {
  if (token.empty() || token.size() > kFcmMaxTokenLength) {
    return false;
  }
  bool ok = true;
  for (char c : token) {
    ok &= kFcmTokenChars[static_cast<unsigned char>(c)];  // no early exit: a branch-free loop
  }
  return ok;
}

std::string_view fcmSendProject(std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (!path.starts_with(kProjectsPrefix) || !path.ends_with(kSendSuffix)) {
    return {};
  }
  std::string_view project = path.substr(kProjectsPrefix.size(),
                                         path.size() - kProjectsPrefix.size() - kSendSuffix.size());
  if (project.empty() || project.find('/') != std::string_view::npos) {
    return {};
  }
  return project;
}

void checkFcmSend(const H2Request& request, const FcmRules& rules, BearerCache& bearer,
                  uint64_t revoked_below, int64_t now_ms, FcmVerdict& v) {
  v.reset();
  v.project = fcmSendProject(request.path);
  if (v.project.empty() || request.method != "POST") {
    fail(v, 404, code::kNotFound, {}, "Method not found.");
    return;
  }
  uint32_t account = 0;
  BearerStatus auth = rules.minter ? checkBearer(request.header("authorization"), *rules.minter,
                                                 revoked_below, now_ms, bearer, account)
                                   : BearerStatus::kInvalid;
  if (auth != BearerStatus::kOk || account >= rules.accounts.size()) {
    v.www_authenticate = true;
    fail(v, 401, code::kUnauthenticated, {}, std::string(kUnauthenticatedMessage));
    return;
  }
  const FcmAccount& a = rules.accounts[account];
  if ((!rules.projects.empty() && rules.projects.count(std::string(v.project)) == 0) ||
      (!a.project.empty() && a.project != v.project)) {
    fail(v, 403, code::kPermissionDenied, {},
         "Permission 'cloudmessaging.messages.create' denied on resource "
         "'//cloudresourcemanager.googleapis.com/projects/" +
             std::string(v.project) + "' (or it may not exist).");
    return;
  }
  if (request.body_truncated || !acceptFcmBodyFast(request.body, v)) {
    checkFcmBodyFull(request, v);
  }
}

FcmVerdict checkFcmSend(const H2Request& request, const FcmRules& rules, BearerCache& bearer,
                        uint64_t revoked_below, int64_t now_ms) {
  FcmVerdict v;
  checkFcmSend(request, rules, bearer, revoked_below, now_ms, v);
  return v;
}

void FcmVerdict::reset() {
  status = 200;
  status_name = {};
  error_code = {};
  message.clear();
  field.clear();
  project = {};
  registration_token.clear();
  validate_only = false;
  www_authenticate = false;
}

void applyFcmTokenRules(FcmVerdict& v, const FcmRules& rules) {
  if (v.status != 200 || v.registration_token.empty()) {
    return;
  }
  const std::string& t = v.registration_token;
  bool dead = rules.dead_tokens.count(t) != 0 ||
              (!rules.dead_prefix.empty() && t.starts_with(rules.dead_prefix));
  if (dead) {
    fail(v, 404, code::kNotFound, code::kUnregistered, "Requested entity was not found.");
    return;
  }
  bool bad = rules.bad_tokens.count(t) != 0 ||
             (!rules.bad_prefix.empty() && t.starts_with(rules.bad_prefix));
  if (bad) {
    fail(v, 400, code::kInvalidArgument, code::kInvalidArgument, std::string(kBadTokenMessage),
         "message.token");
  }
}

void throttleFcm(FcmVerdict& v) {
  fail(v, 429, code::kResourceExhausted, code::kQuotaExceeded,
       "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of "
       "service 'fcm.googleapis.com'.");
}

void faultFcm(const Fault& fault, FcmVerdict& v) {
  if (fault.kind == FaultKind::kThrottle) {
    throttleFcm(v);
  } else if (fault.kind == FaultKind::kUnavailable) {
    fail(v, 503, code::kUnavailable, code::kUnavailable, "The service is currently unavailable.");
  } else if (fault.kind == FaultKind::kInternalError) {
    fail(v, 500, code::kInternal, code::kInternal, "Internal error encountered.");
  }
}

void buildFcmResponse(const FcmVerdict& v, std::string_view message_id, uint32_t retry_after_s,
                      H2Response& response) {
  response.status = v.status;
  response.headers.emplace_back("content-type", "application/json; charset=UTF-8");
  std::string& body = response.body;
  if (v.status == 200) {
    body.assign("{\"name\":\"projects/");
    body.append(v.project);
    body.append("/messages/");
    body.append(message_id);
    body.append("\"}");
    return;
  }
  if (v.www_authenticate) {
    response.headers.emplace_back(
        "www-authenticate",
        R"(Bearer realm="https://accounts.google.com/", error="invalid_token")");
  }
  if (retry_after_s > 0 && (v.status == 429 || v.status == 503)) {
    response.headers.emplace_back("retry-after", std::to_string(retry_after_s));
  }
  body.assign("{\"error\":{\"code\":");
  body.append(std::to_string(v.status));
  body.append(",\"message\":");
  appendJsonString(body, v.message);
  body.append(",\"status\":\"");
  body.append(v.status_name);
  body.push_back('"');
  if (!v.error_code.empty() || !v.field.empty()) {
    body.append(",\"details\":[");
    bool first = true;
    if (!v.error_code.empty()) {
      body.append(
          R"({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":")");
      body.append(v.error_code);
      body.append("\"}");
      first = false;
    }
    if (!v.field.empty()) {
      if (!first) {
        body.push_back(',');
      }
      body.append(
          R"({"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":)");
      appendJsonString(body, v.field);
      body.append(",\"description\":");
      appendJsonString(body, v.message);
      body.append("}]}");
    }
    body.push_back(']');
  }
  body.append("}}");
}

OAuthVerdict checkFcmTokenRequest(const H2Request& request, const FcmRules& rules, int64_t now_s) {
  OAuthVerdict refusal;
  auto form = tokenRequestForm(request, refusal);
  if (!form) {
    return refusal;
  }
  const std::string* grant_type = formField(*form, "grant_type");
  if (grant_type == nullptr) {
    return oauthError(400, "invalid_request", "Missing required parameter: grant_type");
  }
  if (*grant_type != kJwtBearer) {
    return oauthError(400, "unsupported_grant_type", "Invalid grant_type: " + *grant_type);
  }
  const std::string* assertion = formField(*form, "assertion");
  if (assertion == nullptr || assertion->empty()) {
    return oauthError(400, "invalid_request", "Missing required parameter: assertion");
  }
  auto jwt = providers::decodeJwt(*assertion);
  if (!jwt) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  boost::system::error_code ec;
  json::value header = json::parse(jwt->header_json, ec);
  if (ec || !header.is_object()) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  const json::value* alg = header.get_object().if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "RS256") {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  json::value claims_value = json::parse(jwt->claims_json, ec);
  if (ec || !claims_value.is_object()) {
    return oauthError(400, "invalid_grant", "Invalid JWT: the claims are not a JSON object.");
  }
  const json::object& claims = claims_value.get_object();
  const json::value* iss = claims.if_contains("iss");
  if (iss == nullptr || !iss->is_string()) {
    return oauthError(400, "invalid_request", "Invalid JWT: missing iss.");
  }
  size_t account = rules.accounts.size();
  for (size_t i = 0; i < rules.accounts.size(); ++i) {
    if (rules.accounts[i].client_email == iss->get_string()) {
      account = i;
      break;
    }
  }
  if (account == rules.accounts.size()) {
    return oauthError(401, "invalid_client", "The OAuth client was not found.");
  }
  if (!providers::verifyRs256(rules.accounts[account].public_key.get(), jwt->signing_input,
                              jwt->signature)) {
    return oauthError(400, "invalid_grant", std::string(kBadSignatureMessage));
  }
  const json::value* aud = claims.if_contains("aud");
  std::string expected_aud = "https://" + request.authority + "/token";
  if (aud == nullptr || !aud->is_string() || request.authority.empty() ||
      aud->get_string() != expected_aud) {
    return oauthError(400, "invalid_grant",
                      "Invalid JWT: Failed audience check. The right audience is " + expected_aud);
  }
  int64_t iat = 0;
  int64_t exp = 0;
  if (!readInt(claims, "iat", iat) || !readInt(claims, "exp", exp) || iat > now_s + kFcmClockSkew ||
      exp <= now_s || exp < iat || exp - iat > kFcmMaxAssertionLifetime) {
    return oauthError(400, "invalid_grant", std::string(kShortLivedMessage));
  }
  const json::value* scope = claims.if_contains("scope");
  bool scope_ok = false;
  if (scope != nullptr && scope->is_string()) {
    std::string_view rest = scope->get_string();
    while (!rest.empty() && !scope_ok) {
      size_t sp = rest.find(' ');
      std::string_view one = rest.substr(0, sp);
      scope_ok = one == kMessagingScope || one == kCloudPlatformScope;
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    }
  }
  if (!scope_ok) {
    return oauthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
  }
  OAuthVerdict ok;
  ok.account = static_cast<uint32_t>(account);
  return ok;
}

}  // namespace pushhub::mock
