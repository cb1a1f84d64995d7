#include "gateway/rest_api.h"

#include <google/protobuf/util/time_util.h>
#include <openssl/rand.h>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/json.hpp>

#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gateway/notification.h"
#include "registry/installation_patch.h"

namespace pushhub::gateway {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using google::protobuf::util::TimeUtil;

// What Azure answers for an installation that never expires.
constexpr std::string_view kNeverExpires = "9999-12-31T23:59:59.9999999Z";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// For element text: '<', '>' and '&' (quotes need no escape outside attributes).
std::string xmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        // Control characters other than tab and newlines are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string trackingId() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // a version 4 UUID
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  std::string hex;
  for (size_t i = 0; i < sizeof bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) hex += '-';
    hex += fmt::format("{:02x}", bytes[i]);
  }
  return hex;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding that never fails: a '%' not followed by two hex digits stays as it is. With
// `form`, '+' is a space (query strings); path segments keep their '+'.
std::string percentDecode(std::string_view in, bool form) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hexValue(in[i + 1]) >= 0 && hexValue(in[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2]));
      i += 2;
    } else if (form && in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

struct Target {
  std::vector<std::string> segments;  // decoded; empty ones (a trailing slash) dropped
  std::string collection;             // segments[1] lower-cased, when there is one
};

Result<Target> parseTarget(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path.front() != '/') {
    return Error::invalidArgument("path: must start with '/'");
  }
  Target out;
  path.remove_prefix(1);
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view raw = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (raw.empty()) {
      if (path.empty()) break;  // a trailing slash
      return Error::invalidArgument("path: empty segment");
    }
    std::string lowered = lower(raw);
    if (lowered.find("%2f") != std::string::npos || lowered.find("%5c") != std::string::npos) {
      return Error::invalidArgument("path: an encoded '/' or '\\' is not allowed in a segment");
    }
    std::string segment = percentDecode(raw, false);
    if (segment == "." || segment == "..") {
      return Error::invalidArgument("path: '.' and '..' segments are not allowed");
    }
    out.segments.push_back(std::move(segment));
  }
  if (out.segments.size() > 1) out.collection = lower(out.segments[1]);
  return out;
}

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

// The installation a PUT body describes (anh-wire.md 6.2). Read-only fields are ignored;
// pushVariables and secondaryTiles are not kept (see docs/AZURE-MIGRATION.md).
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

// A PATCH body: [{"op":..,"path":..,"value":..}, ...]; a value that is not a string travels as
// its JSON text, as the gRPC API takes it.
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

RestResponse answer(unsigned status, std::string body = {}, std::string_view content_type = {}) {
  RestResponse r{static_cast<http::status>(status), 11};
  r.set("TrackingId", trackingId());
  if (!content_type.empty()) r.set(http::field::content_type, content_type);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

// The absolute URL of `path` on the server the client reached (Azure's SDKs read ids from it;
// it must be https:// even over plain HTTP, anh-wire.md section 3).
std::string absoluteUrl(const RestRequest& request, const std::string& path) {
  std::string host(request[http::field::host]);
  if (host.empty()) host = "localhost";
  return "https://" + host + path;
}

}  // namespace

unsigned httpStatusOf(const Error& error) {
  switch (error.code) {
    case Error::Code::kInvalidArgument:
      return 400;
    case Error::Code::kUnauthenticated:
      return 401;
    case Error::Code::kPermissionDenied:
      return 403;
    case Error::Code::kNotFound:
      return 404;
    case Error::Code::kAlreadyExists:
    case Error::Code::kAborted:
      return 409;
    case Error::Code::kFailedPrecondition:
      return 412;
    case Error::Code::kUnavailable:
      return 503;
    case Error::Code::kInternal:
      break;
  }
  return 500;
}

RestResponse azureError(unsigned status, std::string_view detail) {
  auto now = std::chrono::system_clock::now();
  std::string tracking = trackingId();
  std::string body = fmt::format(
      "<Error><Code>{}</Code><Detail>{}TrackingId:{},TimeStamp:{}</Detail></Error>", status,
      xmlEscape(detail), tracking,
      registry::formatIsoTime(
          std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
  RestResponse r = answer(status, std::move(body), "application/xml; charset=utf-8");
  r.set("TrackingId", tracking);
  return r;
}

void RestApi::handle(const RestRequest& request, std::function<void(RestResponse&&)> respond) {
  auto fail = [&respond](const Error& error) {
    respond(azureError(httpStatusOf(error), error.message));
  };
  auto target = parseTarget(request.target());
  if (!target) return fail(target.error());
  const auto& segments = target->segments;
  std::string_view authorization = request[http::field::authorization];
  if (target->collection != "installations" || segments.size() != 3) {
    return fail(Error::notFound("no resource at '" + std::string(request.target()) + "'"));
  }
  const std::string& hub = segments[0];
  const std::string& id = segments[2];
  std::string location = absoluteUrl(request, "/" + hub + "/installations/" + id);
  // The operations answer through this: success renders `ok`, failure Azure's error.
  auto reply = [respond](std::function<RestResponse()> ok) {
    return [respond, ok = std::move(ok)](Result<void> result) {
      if (!result) return respond(azureError(httpStatusOf(result.error()), result.error().message));
      respond(ok());
    };
  };
  switch (request.method()) {
    case http::verb::put: {
      auto installation = installationFromJson(request.body(), id);
      if (!installation) return fail(installation.error());
      v1::CreateOrUpdateInstallationRequest put;
      put.set_hub(hub);
      *put.mutable_installation() = std::move(*installation);
      return hubs_.createOrUpdateInstallation(authorization, put, reply([location] {
                                                RestResponse r = answer(200);
                                                r.set(http::field::location, location);
                                                r.set(http::field::content_location, location);
                                                return r;
                                              }));
    }
    case http::verb::get: {
      v1::GetInstallationRequest get;
      get.set_hub(hub);
      get.set_installation_id(id);
      auto found = std::make_shared<v1::Installation>();
      return hubs_.getInstallation(authorization, get, found.get(), reply([found] {
                                     return answer(200, installationToJson(*found),
                                                   "application/json; charset=utf-8");
                                   }));
    }
    case http::verb::patch: {
      v1::PatchInstallationRequest patch;
      patch.set_hub(hub);
      patch.set_installation_id(id);
      if (auto ok = patchFromJson(request.body(), patch); !ok) return fail(ok.error());
      auto patched = std::make_shared<v1::Installation>();
      return hubs_.patchInstallation(authorization, patch, patched.get(), reply([location] {
                                       RestResponse r = answer(200);
                                       r.set(http::field::location, location);
                                       return r;
                                     }));
    }
    case http::verb::delete_: {
      v1::DeleteInstallationRequest remove;
      remove.set_hub(hub);
      remove.set_installation_id(id);
      auto existed = std::make_shared<v1::DeleteInstallationResponse>();
      // 204 whether it existed or not, as Azure.
      return hubs_.deleteInstallation(authorization, remove, existed.get(),
                                      reply([existed] { return answer(204); }));
    }
    default: {
      RestResponse r = azureError(405, "method " + std::string(request.method_string()) +
                                           " is not allowed on an installation");
      r.set(http::field::allow, "GET, PUT, PATCH, DELETE");
      return respond(std::move(r));
    }
  }
}

}  // namespace pushhub::gateway
