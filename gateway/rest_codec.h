#pragma once
// The Azure Notification Hubs REST wire formats (../shared/spec/anh-wire.md), to and from the v1
// messages HubService takes: installation JSON, JSON Patch, the send headers, and the XML answers
// (NotificationOutcome, NotificationDetails); paths and the direct batch's multipart body are
// rest_parse.h's. Pure functions: no I/O, any thread. Every error is kInvalidArgument naming the
// field (or header) and what is wrong.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "gateway/rest_parse.h"
#include "pushhub/v1/pushhub.pb.h"

namespace pushhub::gateway::rest {

// An installation as a PUT sends it (anh-wire.md 6.2); `url_id` is the id in the path, which the
// body's installationId must equal. pushVariables and secondaryTiles are not kept.
Result<v1::Installation> installationFromJson(std::string_view body, const std::string& url_id);
// An installation as GET answers it.
std::string installationToJson(const v1::Installation& installation);
// A PATCH body, [{"op":..,"path":..,"value":..}, ...], into `out`'s operations; a value that is
// not a string travels as its JSON text.
Result<void> patchFromJson(std::string_view body, v1::PatchInstallationRequest& out);

// What a send says in its headers (anh-wire.md 8).
struct SendHeaders {
  std::string format;                        // ServiceBusNotification-Format
  std::optional<std::string> tags;           // ServiceBusNotification-Tags
  std::optional<std::string> device_handle;  // ServiceBusNotification-DeviceHandle
  std::optional<std::string> schedule_time;  // ServiceBusNotification-ScheduleTime
  std::string client_request_id;             // x-ms-client-request-id
  // Every header named apns-* or x-wns-* (lower-cased names), passed to the provider.
  std::vector<std::pair<std::string, std::string>> platform_headers;
};

// The send a POST /{hub}/messages describes. `direct_handles`: a direct send's handles (the
// DeviceHandle header, or a batch's devices); empty otherwise. A tags header of exactly
// "undefined" (what the JS SDK sends for a broadcast test send) means no tags: a broadcast.
// The client request id, identical across an SDK's retries of one call, becomes the
// idempotency key, so a send retried after a lost answer is not sent twice.
Result<v1::SendNotificationRequest> sendFromRequest(const std::string& hub,
                                                    const SendHeaders& headers,
                                                    std::string_view body,
                                                    const std::vector<std::string>& direct_handles,
                                                    bool test);

// Azure's names of a platform's format (apple, fcmv1, windows) and outcome collection.
std::string_view formatName(v1::Platform platform);

// A test send's answer: <NotificationOutcome> with Success, Failure and Results.
std::string testOutcomeXml(const v1::SendNotificationResponse& response);
// GET /{hub}/messages/{id}: <NotificationDetails>; `location` is the message's URL.
std::string notificationDetailsXml(const v1::NotificationStatus& status,
                                   const std::string& location);

// UTC, "2024-01-01T00:00:00.123Z".
std::string isoTime(const google::protobuf::Timestamp& time);

}  // namespace pushhub::gateway::rest
