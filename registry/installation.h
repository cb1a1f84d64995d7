#pragma once
// The installation model (anh-wire.md 6.2) and its validation (anh-wire.md 11.1 plus our own
// limits). Pure data and pure functions: no I/O, callable from any thread.
//
// Limits enforced by validateInstallation (each error names the field and the limit):
//   id               1-128 chars of [A-Za-z0-9_@#.:=-]
//   user_id          0-128 chars of the same set (empty = no user)
//   tags             at most 60, each valid per validateTag, no duplicates
//   push_channel     APNs: even-length hex, 64-200 chars; FCM: 1-4096 chars of [A-Za-z0-9_:.-];
//                    WNS: an https URL with a host, at most 2048 chars (host allow-list: later)
//   templates        at most 20; name 1-64 chars of [A-Za-z0-9_-]; body 1-4096 bytes that
//                    compiles as a template of its format (templateFormat; expr/template.h);
//                    at most 20 headers (name 1-128 chars, no control chars; value <= 4096 bytes,
//                    plain or one expression); WNS templates need X-WNS-Type;
//                    template tags as for installation tags; expiry <= 256 bytes, plain or one
//                    expression
//   expiration_unix, last_update_ms   not negative
//   registration     see validateInstallation
// The implicit tags `$InstallationId:{id}` and `$UserId:{user}` are never stored as tags; the
// registry selects one installation directly instead.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "expr/template.h"

namespace pushhub::registry {

enum class Platform : uint8_t { kApns = 0, kFcm = 1, kWns = 2 };
inline constexpr size_t kPlatformCount = 3;

// Case-insensitive: "apns" | "fcm", "fcmv1", "gcm" | "wns". Anything else is kInvalidArgument.
Result<Platform> parsePlatform(std::string_view name);
// The canonical wire name: "apns", "fcmv1", "wns".
std::string_view toString(Platform platform);

struct InstallationTemplate {
  std::string body;
  std::map<std::string, std::string> headers;
  std::vector<std::string> tags;
  std::string expiry;

  bool operator==(const InstallationTemplate&) const = default;
};

// What makes a record an Azure registration (anh-wire.md 7) rather than an installation. Both
// models live in one store and are targeted by tags alike; a registration's id carries
// kRegistrationIdPrefix, which no installation id can (installation ids have no '$'), so neither
// API ever reads or overwrites the other's records.
struct RegistrationInfo {
  bool gcm = false;            // registered as Gcm / GcmTemplate (FCM's legacy name): answered so
  std::string push_variables;  // a JSON object, as the client gave it (stored, returned as is)

  bool operator==(const RegistrationInfo&) const = default;
};

struct Installation {
  std::string id;
  Platform platform = Platform::kApns;
  std::string push_channel;
  std::vector<std::string> tags;
  std::string user_id;
  std::map<std::string, InstallationTemplate> templates;
  int64_t expiration_unix = 0;  // 0 = never expires
  int64_t last_update_ms = 0;   // stamped by Registry::upsert when 0
  bool push_channel_expired = false;
  // Set for a registration: at most one template (a template registration), named by its
  // TemplateName or kUnnamedTemplate, and a hidden channel tag (channelTag) for finding it by
  // channel.
  std::optional<RegistrationInfo> registration;

  bool operator==(const Installation&) const = default;
};

inline constexpr size_t kMaxTagLength = 120;
inline constexpr size_t kMaxTags = 60;
inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxTemplates = 20;
inline constexpr size_t kMaxTemplateNameLength = 64;
inline constexpr size_t kMaxTemplateBodyBytes = 4096;
inline constexpr size_t kMaxTemplateHeaders = 20;
inline constexpr size_t kMaxHeaderNameLength = 128;
inline constexpr size_t kMaxHeaderValueBytes = 4096;
inline constexpr size_t kMaxTemplateExpiryBytes = 256;
inline constexpr size_t kMinApnsTokenLength = 64;
inline constexpr size_t kMaxApnsTokenLength = 200;
inline constexpr size_t kMaxFcmTokenLength = 4096;
inline constexpr size_t kMaxWnsUrlLength = 2048;
inline constexpr size_t kMaxHubNameLength = 50;
inline constexpr size_t kMaxPushVariablesBytes = 4096;

// The store id of registration `id` is kRegistrationIdPrefix + id.
inline constexpr std::string_view kRegistrationIdPrefix = "$reg:";
// The name of a template registration's template when it has no TemplateName: no tag expression
// can name it ('$'), so it is selected only by the registration's tags.
inline constexpr std::string_view kUnnamedTemplate = "$template";
// "$ch:" + 16 hex digits of a hash of the platform and channel: the tag a registration is listed
// under in its bucket and in the tag index, so a lookup by channel visits only the buckets that
// hold it (a hash may collide: the reader compares the channels). No expression can name it.
inline constexpr std::string_view kChannelTagPrefix = "$ch:";
std::string channelTag(Platform platform, std::string_view channel);

// How a template of `platform` with these headers is parsed and rendered: JSON for APNs and FCM,
// XML for WNS, and for WNS raw (X-WNS-Type: wns/raw) an XML document or a JSON object.
expr::TemplateFormat templateFormat(Platform platform,
                                    const std::map<std::string, std::string>& headers);

// Checks every rule above; the first violation is returned as kInvalidArgument. A registration
// also: its id is kRegistrationIdPrefix + a valid installation id, at most one template (which
// may be named kUnnamedTemplate), push variables at most kMaxPushVariablesBytes.
Result<void> validateInstallation(const Installation& installation);

// 1-120 chars of [A-Za-z0-9_@#.:-]. `field` prefixes the message ("tags[2]").
Result<void> validateTag(std::string_view tag, std::string_view field = "tag");

// 1-128 chars of [A-Za-z0-9_@#.:=-].
Result<void> validateInstallationId(std::string_view id, std::string_view field = "installationId");

// An id the store keeps: an installation id, or kRegistrationIdPrefix + one (a registration).
Result<void> validateRecordId(std::string_view id);

// A registration's ETag: its last update in unix ms, which the store moves forward on every
// write (registry.h), so it changes whenever the registration does.
std::string registrationEtag(const Installation& registration);
// Whether an HTTP If-Match value admits `etag`: "*", or the etag bare, quoted or weak (W/"..").
bool etagMatches(std::string_view if_match, std::string_view etag);

// The channel rules of `platform`, see the table above.
Result<void> validatePushChannel(Platform platform, std::string_view channel);

// Hub names become part of Redis keys and of the Cluster hash tag, so braces are out:
// 1-50 chars of [A-Za-z0-9._-].
Result<void> validateHubName(std::string_view hub);

}  // namespace pushhub::registry
