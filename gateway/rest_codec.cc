#include "gateway/rest_codec.h"

#include <google/protobuf/util/time_util.h>
#include <boost/json.hpp>

#include <cctype>
#include <string>

#include <fmt/format.h>

#include "base/xml.h"
#include "gateway/notification.h"
#include "pushhub/v1/names.h"
#include "registry/installation.h"
#include "registry/installation_patch.h"

namespace pushhub::gateway::rest {
namespace {

namespace json = boost::json;
using google::protobuf::util::TimeUtil;

// What Azure answers for an installation that never expires.
constexpr std::string_view kNeverExpires = "9999-12-31T23:59:59.9999999Z";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

namespace {

// JSON field readers: a wrong type is an error naming the field; absent is nothing.
Result<std::optional<std::string>> stringField(const json::object& o, std::string_view name) {
  auto* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return Error::invalidArgument(std::string(name) + ": must be a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<void> stringList(const json::value& v, std::string_view field,
                        google::protobuf::RepeatedPtrField<std::string>& out) {
  if (v.is_null()) return {};
  if (!v.is_array()) return Error::invalidArgument(std::string(field) + ": must be an array");
  const auto& a = v.as_array();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string()) {
      return Error::invalidArgument(fmt::format("{}[{}]: must be a string", field, i));
    }
    out.Add(std::string(a[i].as_string()));
  }
  return {};
}

}  // namespace

Result<v1::Installation> installationFromJson(std::string_view body, const std::string& url_id) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec) return Error::invalidArgument("body: not JSON (" + ec.message() + ")");
  if (!doc.is_object()) return Error::invalidArgument("body: must be a JSON object");
  const auto& o = doc.as_object();
  v1::Installation out;
  auto id = stringField(o, "installationId");
  if (!id) return id.error();
  if (!*id) return Error::invalidArgument("installationId: is required");
  if (**id != url_id) {
    return Error::invalidArgument("installationId: '" + **id + "' differs from the URL's '" +
                                  url_id + "'");
  }
  out.set_installation_id(**id);
  auto platform = stringField(o, "platform");
  if (!platform) return platform.error();
  if (!*platform) return Error::invalidArgument("platform: is required");
  auto parsed = registry::parsePlatform(**platform);
  if (!parsed) return parsed.error();
  out.set_platform(toProto(*parsed));
  if (auto* channel = o.if_contains("pushChannel"); channel && channel->is_object()) {
    return Error::invalidArgument("pushChannel: a browser (Web Push) channel is not supported");
  }
  auto channel = stringField(o, "pushChannel");
  if (!channel) return channel.error();
  if (!*channel) return Error::invalidArgument("pushChannel: is required");
  out.set_push_channel(**channel);
  auto user = stringField(o, "userId");
  if (!user) return user.error();
  if (*user) out.set_user_id(**user);
  if (auto* tags = o.if_contains("tags")) {
    if (auto ok = stringList(*tags, "tags", *out.mutable_tags()); !ok) return ok.error();
  }
  if (auto* templates = o.if_contains("templates"); templates && !templates->is_null()) {
    if (!templates->is_object()) return Error::invalidArgument("templates: must be an object");
    for (const auto& [name, value] : templates->as_object()) {
      std::string field = "templates." + std::string(name);
      if (!value.is_object()) return Error::invalidArgument(field + ": must be an object");
      const auto& t = value.as_object();
      v1::InstallationTemplate tpl;
      auto body_text = stringField(t, "body");
      if (!body_text) return Error::invalidArgument(field + "." + body_text.error().message);
      if (!*body_text) return Error::invalidArgument(field + ".body: is required");
      tpl.set_body(**body_text);
      auto expiry = stringField(t, "expiry");
      if (!expiry) return Error::invalidArgument(field + "." + expiry.error().message);
      if (*expiry) tpl.set_expiry(**expiry);
      if (auto* headers = t.if_contains("headers"); headers && !headers->is_null()) {
        if (!headers->is_object()) {
          return Error::invalidArgument(field + ".headers: must be an object");
        }
        for (const auto& [header, text] : headers->as_object()) {
          if (!text.is_string()) {
            return Error::invalidArgument(field + ".headers." + std::string(header) +
                                          ": must be a string");
          }
          (*tpl.mutable_headers())[std::string(header)] = std::string(text.as_string());
        }
      }
      if (auto* tags = t.if_contains("tags")) {
        if (auto ok = stringList(*tags, field + ".tags", *tpl.mutable_tags()); !ok) {
          return ok.error();
        }
      }
      (*out.mutable_templates())[std::string(name)] = std::move(tpl);
    }
  }
  return out;
}

std::string installationToJson(const v1::Installation& in) {
  json::object o;
  o["installationId"] = in.installation_id();
  if (!in.user_id().empty()) o["userId"] = in.user_id();
  o["pushChannel"] = in.push_channel();
  o["pushChannelExpired"] = in.push_channel_expired();
  auto platform = fromProto(in.platform(), "platform");
  o["platform"] = platform ? std::string(registry::toString(*platform)) : std::string();
  o["expirationTime"] =
      in.has_expiration_time()
          ? registry::formatIsoTime(TimeUtil::TimestampToSeconds(in.expiration_time()))
          : std::string(kNeverExpires);
  json::array tags;
  for (const auto& tag : in.tags()) tags.emplace_back(tag);
  o["tags"] = std::move(tags);
  if (in.templates_size() > 0) {
    json::object templates;
    for (const auto& [name, tpl] : in.templates()) {
      json::object t;
      t["body"] = tpl.body();
      if (tpl.headers_size() > 0) {
        json::object headers;
        for (const auto& [header, value] : tpl.headers()) headers[header] = value;
        t["headers"] = std::move(headers);
      }
      if (!tpl.expiry().empty()) t["expiry"] = tpl.expiry();
      if (tpl.tags_size() > 0) {
        json::array ttags;
        for (const auto& tag : tpl.tags()) ttags.emplace_back(tag);
        t["tags"] = std::move(ttags);
      }
      templates[name] = std::move(t);
    }
    o["templates"] = std::move(templates);
  }
  o["lastUpdate"] = registry::formatIsoTimeMs(TimeUtil::TimestampToMilliseconds(in.last_update()));
  return json::serialize(o);
}

Result<void> patchFromJson(std::string_view body, v1::PatchInstallationRequest& out) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec) return Error::invalidArgument("body: not JSON (" + ec.message() + ")");
  if (!doc.is_array()) return Error::invalidArgument("body: must be a JSON array of operations");
  const auto& ops = doc.as_array();
  for (size_t i = 0; i < ops.size(); ++i) {
    std::string field = fmt::format("operations[{}]", i);
    if (!ops[i].is_object()) return Error::invalidArgument(field + ": must be an object");
    const auto& o = ops[i].as_object();
    auto* op = out.add_operations();
    auto name = stringField(o, "op");
    if (!name) return Error::invalidArgument(field + "." + name.error().message);
    auto path = stringField(o, "path");
    if (!path) return Error::invalidArgument(field + "." + path.error().message);
    if (!*name || !*path) return Error::invalidArgument(field + ": needs op and path");
    op->set_op(**name);
    op->set_path(**path);
    if (auto* value = o.if_contains("value"); value && !value->is_null()) {
      op->set_value(value->is_string() ? std::string(value->as_string()) : json::serialize(*value));
    }
  }
  return {};
}

std::string isoTime(const google::protobuf::Timestamp& time) {
  return registry::formatIsoTimeMs(TimeUtil::TimestampToMilliseconds(time));
}

std::string_view formatName(v1::Platform platform) {
  switch (platform) {
    case v1::PLATFORM_APNS:
      return "apple";
    case v1::PLATFORM_FCM:
      return "fcmv1";
    case v1::PLATFORM_WNS:
      return "windows";
    default:
      return "unknown";
  }
}

namespace {

// The native platform of a format; nothing for template. Formats pushhub has no provider for
// are refused by name.
Result<std::optional<v1::Platform>> platformOfFormat(std::string_view format) {
  std::string f = lower(format);
  if (f == "apple") return std::optional<v1::Platform>(v1::PLATFORM_APNS);
  if (f == "fcmv1") return std::optional<v1::Platform>(v1::PLATFORM_FCM);
  if (f == "windows") return std::optional<v1::Platform>(v1::PLATFORM_WNS);
  if (f == "template") return std::optional<v1::Platform>();
  if (f.empty()) return Error::invalidArgument("ServiceBusNotification-Format: header required");
  if (f == "gcm") {
    return Error::invalidArgument(
        "ServiceBusNotification-Format: 'gcm' (FCM legacy) is not supported; send fcmv1");
  }
  return Error::invalidArgument("ServiceBusNotification-Format: '" + std::string(format) +
                                "' is not one of apple, fcmv1, windows, template");
}

}  // namespace

Result<v1::SendNotificationRequest> sendFromRequest(const std::string& hub,
                                                    const SendHeaders& headers,
                                                    std::string_view body,
                                                    const std::vector<std::string>& direct_handles,
                                                    bool test) {
  auto platform = platformOfFormat(headers.format);
  if (!platform) return platform.error();
  v1::SendNotificationRequest out;
  out.set_hub(hub);
  if (*platform) {
    auto* native = out.add_native();
    native->set_platform(**platform);
    native->set_body(std::string(body));
    for (const auto& [name, value] : headers.platform_headers) {
      bool apns = name.rfind("apns-", 0) == 0;
      bool wns = name.rfind("x-wns-", 0) == 0;
      // Another platform's headers are ignored, as Azure ignores unknown ones.
      if ((apns && **platform == v1::PLATFORM_APNS) || (wns && **platform == v1::PLATFORM_WNS)) {
        (*native->mutable_headers())[name] = value;
      }
    }
  } else {
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec);
    if (ec || !doc.is_object()) {
      return Error::invalidArgument(
          "body: a template send's body must be a JSON object of string properties");
    }
    for (const auto& [name, value] : doc.as_object()) {
      if (!value.is_string()) {
        return Error::invalidArgument("body." + std::string(name) + ": must be a string");
      }
      (*out.mutable_template_properties())[std::string(name)] = std::string(value.as_string());
    }
  }
  if (!direct_handles.empty()) {
    if (!*platform) {
      return Error::invalidArgument(
          "ServiceBusNotification-Format: a direct send needs a native format, not template");
    }
    if (headers.tags) {
      return Error::invalidArgument(
          "ServiceBusNotification-Tags: a direct send goes to its handles, not to tags");
    }
    for (const auto& handle : direct_handles) {
      auto* t = out.mutable_direct()->add_targets();
      t->set_platform(**platform);
      t->set_push_handle(handle);
    }
  } else if (!headers.tags || *headers.tags == "undefined") {
    out.set_broadcast(true);
  } else {
    out.set_tag_expression(*headers.tags);
  }
  out.set_test(test);
  if (headers.schedule_time) {
    auto at = registry::parseIsoTime(*headers.schedule_time, "ServiceBusNotification-ScheduleTime");
    if (!at) return at.error();
    *out.mutable_scheduled_time() = TimeUtil::SecondsToTimestamp(*at);
  }
  if (!test && !headers.client_request_id.empty() && headers.client_request_id.size() <= 128) {
    out.set_idempotency_key(headers.client_request_id);
  }
  return out;
}

std::string testOutcomeXml(const v1::SendNotificationResponse& response) {
  int success = 0, failure = 0;
  std::string results;
  for (const auto& r : response.test_results()) {
    bool ok = r.outcome() == "Success";
    (ok ? success : failure) += 1;
    std::string outcome =
        ok ? "The Notification was successfully sent to the Push Notification System"
           : r.outcome() + (r.reason().empty() ? std::string() : ": " + r.reason());
    results += fmt::format(
        "<RegistrationResult><ApplicationPlatform>{}</ApplicationPlatform><PnsHandle>{}"
        "</PnsHandle><RegistrationId>{}</RegistrationId><Outcome>{}</Outcome>"
        "</RegistrationResult>",
        formatName(r.platform()), xml::escape(r.push_handle()), xml::escape(r.installation_id()),
        xml::escape(outcome));
  }
  return fmt::format(
      "<NotificationOutcome xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\" "
      "xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/connect\">"
      "<Success>{}</Success><Failure>{}</Failure>{}</NotificationOutcome>",
      success, failure, results.empty() ? "<Results />" : "<Results>" + results + "</Results>");
}

std::string notificationDetailsXml(const v1::NotificationStatus& s, const std::string& location) {
  std::string out = fmt::format(
      "<NotificationDetails xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/"
      "connect\" xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"><NotificationId>{}"
      "</NotificationId><Location>{}</Location><State>{}</State><EnqueueTime>{}</EnqueueTime>",
      xml::escape(s.notification_id()), xml::escape(location), v1::azureStateName(s.state()),
      isoTime(s.enqueue_time()));
  if (s.has_start_time()) out += "<StartTime>" + isoTime(s.start_time()) + "</StartTime>";
  if (s.has_end_time()) out += "<EndTime>" + isoTime(s.end_time()) + "</EndTime>";
  std::string platforms;
  for (int p : s.target_platforms()) {
    auto name = formatName(static_cast<v1::Platform>(p));
    if (platforms.find(name) != std::string::npos) continue;
    if (!platforms.empty()) platforms += ',';
    platforms += name;
  }
  if (!platforms.empty()) out += "<TargetPlatforms>" + platforms + "</TargetPlatforms>";
  // One collection per platform that has outcomes, in .NET's order; never an empty one (the
  // SDK's parser fails on it).
  const std::pair<v1::Platform, std::string_view> kCollections[] = {
      {v1::PLATFORM_APNS, "ApnsOutcomeCounts"},
      {v1::PLATFORM_WNS, "WnsOutcomeCounts"},
      {v1::PLATFORM_FCM, "FcmV1OutcomeCounts"}};
  for (const auto& [platform, element] : kCollections) {
    std::string outcomes;
    for (const auto& o : s.outcomes()) {
      if (o.platform() != platform) continue;
      outcomes += fmt::format("<Outcome><Name>{}</Name><Count>{}</Count></Outcome>",
                              xml::escape(o.outcome()), o.count());
    }
    if (!outcomes.empty()) out += fmt::format("<{0}>{1}</{0}>", element, outcomes);
  }
  out += "</NotificationDetails>";
  return out;
}

}  // namespace pushhub::gateway::rest
