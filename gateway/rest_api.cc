#include "gateway/rest_api.h"

#include <openssl/rand.h>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/xml.h"
#include "gateway/rest_codec.h"
#include "gateway/rest_registration.h"
#include "registry/installation_patch.h"

namespace pushhub::gateway {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kXml = "application/xml; charset=utf-8";
constexpr std::string_view kAtomEntry = "application/atom+xml;type=entry;charset=utf-8";
constexpr std::string_view kAtomFeed = "application/atom+xml;type=feed;charset=utf-8";

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

RestResponse notAllowed(const RestRequest& request, std::string_view allow) {
  RestResponse r = azureError(405, "method " + std::string(request.method_string()) +
                                       " is not allowed here; allowed: " + std::string(allow));
  r.set(http::field::allow, allow);
  return r;
}

rest::SendHeaders sendHeaders(const RestRequest& request) {
  rest::SendHeaders h;
  auto optional = [&request](std::string_view name) -> std::optional<std::string> {
    auto it = request.find(name);
    if (it == request.end()) return std::nullopt;
    return std::string(it->value());
  };
  h.format = optional("ServiceBusNotification-Format").value_or("");
  h.tags = optional("ServiceBusNotification-Tags");
  h.device_handle = optional("ServiceBusNotification-DeviceHandle");
  h.schedule_time = optional("ServiceBusNotification-ScheduleTime");
  h.client_request_id = optional("x-ms-client-request-id").value_or("");
  for (const auto& field : request) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.rfind("apns-", 0) == 0 || name.rfind("x-wns-", 0) == 0) {
      h.platform_headers.emplace_back(std::move(name), std::string(field.value()));
    }
  }
  return h;
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
      xml::escape(detail), tracking,
      registry::formatIsoTime(
          std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
  RestResponse r = answer(status, std::move(body), kXml);
  r.set("TrackingId", tracking);
  return r;
}

void RestApi::handle(const RestRequest& request, std::function<void(RestResponse&&)> respond) {
  auto target = rest::parseTarget(request.target());
  if (!target) return respond(azureError(400, target.error().message));
  const auto& segments = target->segments;
  const std::string& collection = target->collection;
  if (collection == "installations" && segments.size() == 3) {
    return installation(request, segments[0], segments[2], std::move(respond));
  }
  if ((collection == "messages" || collection == "schedulednotifications") &&
      segments.size() <= 3) {
    return messages(request, *target, std::move(respond));
  }
  if (((collection == "registrations" || collection == "registrationids") &&
       segments.size() <= 3) ||
      (collection == "tags" && segments.size() == 4 && segments[3] == "registrations")) {
    return registrations(request, *target, std::move(respond));
  }
  respond(azureError(404, "no resource at '" + std::string(request.target()) + "'"));
}

// The operations answer through this: success renders `ok`, failure Azure's error.
std::function<void(Result<void>)> RestApi::reply(std::function<void(RestResponse&&)> respond,
                                                 std::function<RestResponse()> ok) {
  return [respond = std::move(respond), ok = std::move(ok)](Result<void> result) {
    if (!result) {
      return respond(azureError(httpStatusOf(result.error()), result.error().message));
    }
    respond(ok());
  };
}

void RestApi::installation(const RestRequest& request, const std::string& hub,
                           const std::string& id, std::function<void(RestResponse&&)> respond) {
  std::string_view authorization = request[http::field::authorization];
  std::string location = absoluteUrl(request, "/" + hub + "/installations/" + id);
  switch (request.method()) {
    case http::verb::put: {
      auto installation = rest::installationFromJson(request.body(), id);
      if (!installation) return respond(azureError(400, installation.error().message));
      v1::CreateOrUpdateInstallationRequest put;
      put.set_hub(hub);
      *put.mutable_installation() = std::move(*installation);
      return hubs_.createOrUpdateInstallation(authorization, put,
                                              reply(std::move(respond), [location] {
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
      return hubs_.getInstallation(
          authorization, get, found.get(), reply(std::move(respond), [found] {
            return answer(200, rest::installationToJson(*found), "application/json; charset=utf-8");
          }));
    }
    case http::verb::patch: {
      v1::PatchInstallationRequest patch;
      patch.set_hub(hub);
      patch.set_installation_id(id);
      if (auto ok = rest::patchFromJson(request.body(), patch); !ok) {
        return respond(azureError(400, ok.error().message));
      }
      auto patched = std::make_shared<v1::Installation>();
      return hubs_.patchInstallation(authorization, patch, patched.get(),
                                     reply(std::move(respond), [location, patched] {
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
                                      reply(std::move(respond), [existed] { return answer(204); }));
    }
    default:
      return respond(notAllowed(request, "GET, PUT, PATCH, DELETE"));
  }
}

// POST /{hub}/messages[/$batch] (sends, test sends, direct sends), GET /{hub}/messages/{id}
// (outcome details), POST /{hub}/schedulednotifications, DELETE
// /{hub}/schedulednotifications/{id}.
void RestApi::messages(const RestRequest& request, const rest::Target& target,
                       std::function<void(RestResponse&&)> respond) {
  std::string_view authorization = request[http::field::authorization];
  const std::string& hub = target.segments[0];
  bool scheduled = target.collection == "schedulednotifications";
  std::string item = target.segments.size() == 3 ? target.segments[2] : std::string();
  bool batch = !scheduled && item == "$batch";

  if (!item.empty() && !batch) {
    if (scheduled && request.method() == http::verb::delete_) {
      v1::CancelNotificationRequest cancel;
      cancel.set_hub(hub);
      cancel.set_notification_id(item);
      return hubs_.cancelNotification(authorization, cancel,
                                      reply(std::move(respond), [] { return answer(200); }));
    }
    if (!scheduled && request.method() == http::verb::get) {
      v1::GetNotificationRequest get;
      get.set_hub(hub);
      get.set_notification_id(item);
      auto status = std::make_shared<v1::NotificationStatus>();
      std::string location =
          absoluteUrl(request, "/" + hub + "/messages/" + item + "?api-version=2020-06");
      return hubs_.getNotification(
          authorization, get, status.get(), reply(std::move(respond), [status, location] {
            return answer(200, rest::notificationDetailsXml(*status, location), kXml);
          }));
    }
    return respond(notAllowed(request, scheduled ? "DELETE" : "GET"));
  }
  if (request.method() != http::verb::post) return respond(notAllowed(request, "POST"));

  rest::SendHeaders headers = sendHeaders(request);
  bool direct = target.flag("direct");
  bool test = !scheduled && target.flag("test");
  std::string_view body = request.body();
  std::vector<std::string> handles;
  rest::Batch parsed;
  if (batch) {
    if (!direct) return respond(azureError(400, "direct: a batch is a direct send (direct=true)"));
    auto b = rest::parseBatch(request[http::field::content_type], request.body());
    if (!b) return respond(azureError(400, b.error().message));
    parsed = std::move(*b);
    body = parsed.notification;
    handles = std::move(parsed.devices);
  } else if (direct) {
    if (!headers.device_handle || headers.device_handle->empty()) {
      return respond(azureError(400, "ServiceBusNotification-DeviceHandle: required with direct"));
    }
    handles.push_back(*headers.device_handle);
  }
  if (scheduled && !headers.schedule_time) {
    return respond(azureError(400, "ServiceBusNotification-ScheduleTime: header required"));
  }
  if (!scheduled) headers.schedule_time.reset();
  auto send = rest::sendFromRequest(hub, headers, body, handles, test);
  if (!send) return respond(azureError(400, send.error().message));
  auto response = std::make_shared<v1::SendNotificationResponse>();
  std::string base = "/" + hub + (scheduled ? "/schedulednotifications/" : "/messages/");
  hubs_.sendNotification(
      authorization, *send, response.get(),
      reply(std::move(respond), [response, test, location = absoluteUrl(request, base)] {
        RestResponse r =
            test ? answer(201, rest::testOutcomeXml(*response), kXml) : answer(201, {}, kXml);
        r.set(http::field::location,
              location + response->notification_id() + "?api-version=2020-06");
        return r;
      }));
}

void RestApi::registrations(const RestRequest& request, const rest::Target& target,
                            std::function<void(RestResponse&&)> respond) {
  std::string_view authorization = request[http::field::authorization];
  const std::string& hub = target.segments[0];
  std::string collection_url = absoluteUrl(request, "/" + hub + "/registrations");
  if (target.collection == "tags") {
    if (request.method() != http::verb::get) return respond(notAllowed(request, "GET"));
    HubService::RegistrationQuery query;
    query.kind = HubService::RegistrationQuery::Kind::kTag;
    query.tag = target.segments[2];
    return listRegistrations(request, target, std::move(query), std::move(respond));
  }
  if (target.collection == "registrationids") {
    if (target.segments.size() != 2) {
      return respond(azureError(404, "no resource at '" + std::string(request.target()) + "'"));
    }
    if (request.method() != http::verb::post) return respond(notAllowed(request, "POST"));
    auto id = std::make_shared<std::string>();
    return hubs_.createRegistrationId(
        authorization, hub, id.get(),
        reply(std::move(respond),
              [id, location = absoluteUrl(request, "/" + hub + "/registrationIDs/")] {
                RestResponse r = answer(201);
                r.set(http::field::location, location + *id + "?api-version=2020-06");
                return r;
              }));
  }
  // Answers with the registration as stored: its entry, and its ETag also as a header.
  auto stored = std::make_shared<registry::Installation>();
  auto entry = [stored, collection_url](unsigned status) {
    return [stored, collection_url, status] {
      RestResponse r =
          answer(status, rest::registrationEntryXml(*stored, collection_url), kAtomEntry);
      r.set(http::field::etag, "W/\"" + registry::registrationEtag(*stored) + "\"");
      r.set(http::field::location, collection_url + "/" +
                                       std::string(rest::registrationId(*stored)) +
                                       "?api-version=2020-06");
      return r;
    };
  };
  auto if_match = [&request]() -> std::optional<std::string> {
    auto it = request.find(http::field::if_match);
    if (it == request.end()) return std::nullopt;
    return std::string(it->value());
  };
  if (target.segments.size() == 2) {
    if (request.method() == http::verb::get) {
      HubService::RegistrationQuery query;
      if (auto filter = target.query.find("$filter"); filter != target.query.end()) {
        auto channel = rest::parseRegistrationFilter(filter->second);
        if (!channel) return respond(azureError(400, channel.error().message));
        query.kind = HubService::RegistrationQuery::Kind::kChannel;
        query.platform = channel->platform;
        query.channel = std::move(channel->channel);
      }
      return listRegistrations(request, target, std::move(query), std::move(respond));
    }
    if (request.method() != http::verb::post) return respond(notAllowed(request, "GET, POST"));
    auto registration = rest::registrationFromXml(request.body(), newRegistrationId());
    if (!registration) return respond(azureError(400, registration.error().message));
    return hubs_.putRegistration(authorization, hub, std::move(*registration), std::nullopt,
                                 stored.get(), reply(std::move(respond), entry(201)));
  }
  const std::string& id = target.segments[2];
  switch (request.method()) {
    case http::verb::put: {
      auto registration = rest::registrationFromXml(request.body(), id);
      if (!registration) return respond(azureError(400, registration.error().message));
      return hubs_.putRegistration(authorization, hub, std::move(*registration), if_match(),
                                   stored.get(), reply(std::move(respond), entry(200)));
    }
    case http::verb::get:
      return hubs_.getRegistration(authorization, hub, id, stored.get(),
                                   reply(std::move(respond), entry(200)));
    case http::verb::delete_:
      return hubs_.deleteRegistration(authorization, hub, id, if_match(),
                                      reply(std::move(respond), [] { return answer(200); }));
    default:
      return respond(notAllowed(request, "GET, PUT, DELETE"));
  }
}

void RestApi::listRegistrations(const RestRequest& request, const rest::Target& target,
                                HubService::RegistrationQuery query,
                                std::function<void(RestResponse&&)> respond) {
  if (auto top = target.query.find("$top"); top != target.query.end()) {
    size_t n = 0;
    const std::string& text = top->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n == 0) {
      return respond(azureError(400, "$top: a positive integer is required, got '" + text + "'"));
    }
    // Larger pages are cut to the largest one, as Azure does: the client follows the token.
    query.top = std::min(n, HubService::kMaxRegistrationsListed);
  }
  if (auto token = target.query.find("continuationtoken"); token != target.query.end()) {
    query.continuation = token->second;
  }
  const std::string& hub = target.segments[0];
  auto page = std::make_shared<HubService::RegistrationPage>();
  hubs_.listRegistrations(
      request[http::field::authorization], hub, std::move(query), page.get(),
      reply(std::move(respond),
            [page, collection_url = absoluteUrl(request, "/" + hub + "/registrations"),
             self_url = absoluteUrl(request, std::string(request.target()))] {
              RestResponse r = answer(
                  200, rest::registrationFeedXml(page->registrations, collection_url, self_url),
                  kAtomFeed);
              if (!page->continuation.empty()) r.set("X-MS-ContinuationToken", page->continuation);
              return r;
            }));
}

}  // namespace pushhub::gateway
