#pragma once
// Azure's installation PATCH (anh-wire.md 6.4: JSON Patch, Azure-flavoured) applied to the
// Installation model, and the ISO 8601 times installations carry on the wire. Pure functions:
// no I/O, no shared state, callable from any thread. applyPatch takes the installation by const
// reference and returns a new one; the caller owns both.
//
// Patchable paths (field names such as "tags" or "pushChannel" compare case-insensitively, as
// Azure's .NET model binding does; tag, template and header names are data and compare exactly,
// except header names on lookup, see below):
//   /tags  /tags/{tag}  /userId  /pushChannel  /expirationTime
//   /templates/{name}  /templates/{name}/body  /templates/{name}/headers
//   /templates/{name}/headers/{header}  /templates/{name}/expiry
//   /templates/{name}/tags  /templates/{name}/tags/{tag}
// Anything else (/platform, /installationId, /pushVariables, /secondaryTiles, /user, /appId,
// /advertisingId, /templates, ...) is refused: the model does not hold it, or it is the identity.
//
// Choices where anh-wire.md 6.4 and Azure's docs are silent:
//  - op is compared case-insensitively; move, copy and test are refused.
//  - Paths are JSON Pointers (RFC 6901): "~1" decodes to '/', "~0" to '~'; any other '~' escape,
//    an empty segment ("/tags/") and paths over kMaxPatchPathBytes are refused.
//  - replace never fails because the target is missing: Azure defines replace as remove + add,
//    so a replace on a missing user id, template, header or tag just adds it (unlike RFC 6902).
//  - add on a member that exists replaces it (RFC 6902 object semantics): add /userId,
//    /pushChannel, /expirationTime, /templates/{name}, its body, expiry and headers all set.
//  - Tags are a set: adding a tag that is present is a no-op, and an array value (add or replace)
//    is de-duplicated. replace /tags is remove /tags then add /tags (a string gives a one-tag
//    list). remove /tags/{tag} removes by value; a missing tag is a no-op.
//  - remove /tags (and /templates/{name}/tags) with a non-empty value is refused: it would drop
//    every tag, and a caller sending a value most likely meant remove /tags/{tag}.
//  - add /tags/{tag} adds the tag named in the path; a value, if sent, must be that same tag.
//    replace /tags/{tag} with value V renames the tag in place (V is added if {tag} is missing;
//    {tag} just goes if V is already present).
//  - Other removes ignore a value (the JS typings make value optional on every op).
//  - remove /pushChannel and remove /templates/{name}/body are refused (both are required);
//    replace them instead, or remove the whole template.
//  - add|replace /pushChannel always resets push_channel_expired, even to the same channel: the
//    app re-registering a channel is the signal that it works again.
//  - remove /userId clears it; add /userId "" also clears it.
//  - remove /expirationTime means "never expires" (0). A time in the past is stored as is; the
//    registry then treats the installation as expired. Times are parsed by parseIsoTime.
//  - remove of a missing template, header or template tag is a no-op (DELETE of a missing
//    installation is a success too, anh-wire.md 6.5).
//  - A template value is a JSON object {"body", "headers", "expiry", "tags"} (member names
//    case-insensitive; a member that is null counts as absent, as .NET writes them). body is
//    required and must be a string; headers an object of strings; expiry a string; tags an array
//    of strings. Unknown members are refused, so a typo does not silently drop data. A JSON
//    string whose content is that object's text (Azure's docs) arrives here as the same text.
//  - Sub-paths of a missing template (add /templates/t/tags, ...) create the template; it must
//    have a body by the end of the patch or validation refuses it.
//  - Header names are HTTP field names, so /templates/{name}/headers/{header} finds an existing
//    header case-insensitively; add/replace then stores the spelling of the path. A headers
//    object naming one header twice (in any case) is refused.
//  - userId, pushChannel, expirationTime, expiry, a single tag and header values must be JSON
//    strings: value text starting with '[' or '{' (what the REST layer makes of an array or
//    object) is refused as the wrong type. A template body may be any text (it usually is JSON).
//  - Limits are enforced while applying, not only at the end, so work stays bounded: at most
//    kMaxTags tags per list, kMaxTemplates templates, kMaxTemplateHeaders headers; values over
//    kMaxPatchValueBytes; JSON nested deeper than 4 levels.
//  - The result's last_update_ms is 0, so Registry::upsert stamps the time of this update.
//  - An empty list of operations is allowed (RFC 6902): the result is the validated copy.
//
// Times (parseIsoTime): RFC 3339 "YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)"; 'T' and 'Z'
// in either case; any number of fraction digits, truncated to the second; any offset up to
// +-23:59 is converted to UTC. Refused: no offset (JavaScript would read it as local time), a
// date without a time, a space for 'T', leap second :60 and 24:00 (as .NET's DateTime does),
// times at or before 1970-01-01T00:00:00Z (0 means "never"), and text over 64 characters. Any
// time at or after 9999-12-31T23:59:59Z is "never" (0), which covers .NET's DateTime.MaxValue.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "registry/installation.h"

namespace pushhub::registry {

// One operation of Azure's installation PATCH (anh-wire.md 6.4).
struct PatchOperation {
  std::string op;    // "add", "remove" or "replace" (compared case-insensitively)
  std::string path;  // e.g. "/tags", "/tags/sports", "/templates/t1/body"
  // The value as text: a JSON string's content as is; an array or object as its JSON text (the
  // REST layer serializes them so); absent for remove.
  std::optional<std::string> value;
};

// A full installation is at most 60 tags and 20 templates; more operations than that is a
// client rebuilding the installation, which PUT does in one step. Bounds the work per request.
inline constexpr size_t kMaxPatchOperations = 100;
// The largest value: a template object (body 4 KiB, 20 headers of up to 4 KiB) with room for
// JSON escaping stays well below it.
inline constexpr size_t kMaxPatchValueBytes = 64 * 1024;
// The longest path: "/templates/" + a 64-char name + "/headers/" + a 128-char header, escaped.
inline constexpr size_t kMaxPatchPathBytes = 512;

// Applies `ops` in order to a copy of `installation` and returns the result, validated with
// validateInstallation. Any failure is kInvalidArgument naming the operation
// ("operations[2].path: '/platform' cannot be patched; ..."), or validateInstallation's error as
// is; either way no result is produced, so nothing changes.
Result<Installation> applyPatch(const Installation& installation,
                                const std::vector<PatchOperation>& ops);

// RFC 3339 time -> unix seconds, 0 for "never" (see the rules above). `field` prefixes error
// messages ("expirationTime: ...").
Result<int64_t> parseIsoTime(std::string_view text, std::string_view field);

// Unix seconds -> "2024-01-01T00:00:00Z"; 0 (never) and anything from 9999-12-31T23:59:59Z on
// -> "9999-12-31T23:59:59.9999999Z", as Azure writes expirationTime. Years before 0 are clamped.
std::string formatIsoTime(int64_t unix_seconds);

// Unix milliseconds -> "2024-01-01T00:00:00.000Z", for lastUpdate. Clamped to years 0-9999.
std::string formatIsoTimeMs(int64_t unix_ms);

}  // namespace pushhub::registry
