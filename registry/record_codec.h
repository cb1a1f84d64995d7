#pragma once
// The compact binary records the registry keeps in Redis (see registry/README.md). Internal to
// pushhub_registry; exposed for its tests. Pure functions, any thread.
//
// Record (hash field values of ph:{H:b}:r, r1, r2, ... keyed by the installation's slot, cut into
// 64-byte parts; see registry/README.md):
//   u8 platform (bits 0-1) | push_channel_expired (bit 2) | channel packing (bits 3-4:
//      8 = lowercase hex packed to bytes, 16 = uppercase hex packed, 0 = stored as is) |
//      format (bits 5-7, 0 = this one; there is no separate version byte)
//   varint n, n x (varint len, tag bytes)
//   varint n, n x (varint len, template name, 8-byte template ref)
//   varint len, channel bytes
//   varint len, installation id bytes
//   varint len, user id bytes
//   varint expiration_unix, varint last_update_ms
// Tags, template refs and the channel come first so the Lua scripts can read them cheaply.
// Template (hash field value of ph:{H:b}:tpl, keyed by its ref = first 8 bytes of SHA-1 of this
// encoding): varint len body, varint n headers (len name, len value), varint n tags, len expiry.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "registry/installation.h"

namespace pushhub::registry::codec {

inline constexpr uint8_t kRecordFormat = 0;  // bits 5-7 of the first byte
inline constexpr size_t kTemplateRefBytes = 8;

struct TemplateRef {
  std::string name;
  std::string ref;  // kTemplateRefBytes raw bytes
};

struct DecodedRecord {
  Installation installation;  // templates are not filled (only their refs, below)
  std::vector<TemplateRef> templates;
};

// What a send needs of a record, as views into the encoded record (valid while it is): no tags,
// no user id, nothing copied. Filled by viewRecord, which checks the whole record as
// decodeRecord does; reuse one RecordView for many records.
struct RecordView {
  struct Template {
    std::string_view name;
    std::string_view ref;  // kTemplateRefBytes raw bytes
  };
  Platform platform = Platform::kApns;
  bool push_channel_expired = false;
  std::string_view id;
  int64_t expiration_unix = 0;
  std::array<Template, kMaxTemplates> templates;
  size_t template_count = 0;
  // The channel as the installation gave it (an APNs-style hex token is stored packed).
  std::string pushChannel() const;

  uint8_t flags = 0;  // the record's first byte
  std::string_view channel_bytes;
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
