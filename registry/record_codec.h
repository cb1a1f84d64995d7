#pragma once
// The compact binary records the registry keeps in Redis (see registry/README.md). Internal to
// pushhub_registry; exposed for its tests. Pure functions, any thread.
//
// Record (hash field values of ph:{H:b}:r, r1, r2, ... keyed by the installation's slot, cut into
// 64-byte parts; see registry/README.md):
//   u8 platform (bits 0-1) | push_channel_expired (bit 2) | channel packing (bits 3-4:
//      8 = lowercase hex packed to bytes, 16 = uppercase hex packed, 0 = stored as is) |
//      format (bits 5-7, 0 = this one; there is no separate version byte)
//   varint n, n x (varint len, tag bytes): the installation's tags, then its templates' tags
//      (each once, sorted) marked with a leading '+' (kTemplateTagMark)
//   varint n, n x (varint len, template name, 8-byte template ref)
//   varint len, channel bytes
//   varint len, installation id bytes
//   varint len, user id bytes
//   varint expiration_unix, varint last_update_ms
//   only for a registration (installation.h): u8 flags (bit 0 set, bit 1 = registered as Gcm),
//      varint len, push variables bytes
// A registration's tag list also holds its channel tag (channelTag), which a decode leaves out.
// Tags, template refs and the channel come first so the Lua scripts can read them cheaply.
// Template (hash field value of ph:{H:b}:tpl, keyed by its ref = first 8 bytes of SHA-1 of this
// encoding): varint len body, varint n headers (len name, len value), varint n tags, len expiry.

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "registry/installation.h"

namespace pushhub::registry::codec {

inline constexpr uint8_t kRecordFormat = 0;  // bits 5-7 of the first byte
inline constexpr size_t kTemplateRefBytes = 8;
// Marks a template's tag in a record's tag list (and in a bucket's tag hash): '+' is no tag
// character, so "+x" never collides with an installation's own tag x.
inline constexpr std::string_view kTemplateTagMark = "+";

struct TemplateRef {
  std::string name;
  std::string ref;  // kTemplateRefBytes raw bytes
};

struct DecodedRecord {
  Installation installation;  // templates are not filled (only their refs, below)
  std::vector<TemplateRef> templates;
};

// What a send needs of a record, as views into the encoded record (valid while it is): nothing
// is copied, and tags are only walked when asked (forEachTag). Filled by viewRecord, which checks
// the whole record as decodeRecord does; reuse one RecordView for many records.
struct RecordView {
  struct Template {
    std::string_view name;
    std::string_view ref;  // kTemplateRefBytes raw bytes
  };
  Platform platform = Platform::kApns;
  bool push_channel_expired = false;
  std::string_view id;
  std::string_view user_id;
  int64_t expiration_unix = 0;
  bool registration = false;
  std::array<Template, kMaxTemplates> templates;
  size_t template_count = 0;
  // The channel as the installation gave it (an APNs-style hex token is stored packed).
  std::string pushChannel() const;
  // Every tag of the record, template tags with their '+' mark.
  void forEachTag(const std::function<void(std::string_view)>& fn) const;

  uint8_t flags = 0;  // the record's first byte
  std::string_view channel_bytes;
  size_t tag_count = 0;
  std::string_view tag_bytes;  // the encoded tag list
};

std::string encodeTemplate(const InstallationTemplate& t);
Result<InstallationTemplate> decodeTemplate(std::string_view data);
std::string templateRef(std::string_view encoded_template);

// Channel packing flags and bytes, as stored in the record (APNs tokens shrink to half).
std::pair<uint8_t, std::string> packChannel(std::string_view channel);

std::string encodeRecord(const Installation& installation, const std::vector<TemplateRef>& refs);
Result<DecodedRecord> decodeRecord(std::string_view data);
Result<void> viewRecord(std::string_view data, RecordView& out);

}  // namespace pushhub::registry::codec
