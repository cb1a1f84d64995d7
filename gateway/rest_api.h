#pragma once
// RestApi: the Azure Notification Hubs REST protocol (../shared/spec/anh-wire.md) over HubService.
// It routes a request by method and path, turns its JSON (or XML) into the v1 messages, calls the
// HubService operation, and renders the answer with the status codes, headers and bodies Azure's
// SDKs accept; every failure is Azure's error body (<Error><Code>..</Code><Detail>..</Detail>).
// No I/O of its own: RestServer carries the bytes.
//
// Served: installations (PUT, GET, PATCH, DELETE /{hub}/installations/{id}); sends
// (POST /{hub}/messages with a format, tags, test=true, direct=true with a device handle, and
// /messages/$batch with a multipart body); outcome details (GET /{hub}/messages/{id}); scheduled
// sends (POST /{hub}/schedulednotifications) and their cancel (DELETE .../{id}); registrations
// (POST /{hub}/registrations, PUT, GET, DELETE /{hub}/registrations/{id} with If-Match, listing
// with $top, $filter by channel and continuation tokens, GET /{hub}/tags/{tag}/registrations,
// POST /{hub}/registrationIDs). Wire formats are rest_codec.h's and rest_registration.h's.
//
// Paths: the first segment is the hub, collections compare case-insensitively, a trailing slash
// is optional. Segments are percent-decoded tolerantly; a "." or ".." segment and an encoded
// '/' or '\' are refused (400), so no id can be made to name another resource.
//
// Threads: handle() may be called from any thread; `respond` is called exactly once, on the
// calling thread or on a worker's.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <functional>
#include <string_view>

#include "gateway/hub_service.h"
#include "gateway/rest_codec.h"

namespace pushhub::gateway {

using RestRequest = boost::beast::http::request<boost::beast::http::string_body>;
using RestResponse = boost::beast::http::response<boost::beast::http::string_body>;

class RestApi {
 public:
  // `hubs` must outlive the api.
  explicit RestApi(HubService& hubs) : hubs_(hubs) {}

  void handle(const RestRequest& request, std::function<void(RestResponse&&)> respond);

 private:
  static std::function<void(Result<void>)> reply(std::function<void(RestResponse&&)> respond,
                                                 std::function<RestResponse()> ok);
  void installation(const RestRequest& request, const std::string& hub, const std::string& id,
                    std::function<void(RestResponse&&)> respond);
  void messages(const RestRequest& request, const rest::Target& target,
                std::function<void(RestResponse&&)> respond);
  // /{hub}/registrations[/{id}], /{hub}/tags/{tag}/registrations, /{hub}/registrationIDs.
  void registrations(const RestRequest& request, const rest::Target& target,
                     std::function<void(RestResponse&&)> respond);
  void listRegistrations(const RestRequest& request, const rest::Target& target,
                         HubService::RegistrationQuery query,
                         std::function<void(RestResponse&&)> respond);

  HubService& hubs_;
};

// Azure's error answer: `status`, and the body <Error><Code>status</Code><Detail>detail
// TrackingId:..,TimeStamp:..</Detail></Error> (XML-escaped).
RestResponse azureError(unsigned status, std::string_view detail);
// The HTTP status of an Error code (kInvalidArgument 400, kUnauthenticated 401, ...).
unsigned httpStatusOf(const Error& error);

}  // namespace pushhub::gateway
