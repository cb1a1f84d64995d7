#include "registry/record_codec.h"

#include <openssl/sha.h>

#include <algorithm>

namespace pushhub::registry::codec {
namespace {

constexpr uint8_t kPlatformMask = 0x03;
constexpr uint8_t kExpiredFlag = 0x04;
constexpr uint8_t kHexLower = 0x08;
constexpr uint8_t kHexUpper = 0x10;
constexpr uint8_t kFormatShift = 5;
// The registration trailer's flags byte (record_codec.h).
constexpr uint8_t kRegistrationFlag = 0x01;
constexpr uint8_t kGcmFlag = 0x02;

bool validTrailer(uint8_t flags) {
  return (flags & kRegistrationFlag) != 0 && (flags & ~(kRegistrationFlag | kGcmFlag)) == 0;
}

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putBytes(std::string& out, std::string_view s) {
  putVarint(out, s.size());
  out.append(s);
}

// Bounds-checked reader; any overrun makes ok() false and every later read return empty.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool atEnd() const { return pos_ == data_.size(); }
  size_t position() const { return pos_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) {
        ok_ = false;
        return 0;
      }
      auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return v;
      }
    }
    ok_ = false;
    return 0;
  }
  uint8_t byte() {
    if (pos_ >= data_.size()) {
      ok_ = false;
      return 0;
    }
    return static_cast<uint8_t>(data_[pos_++]);
  }
  std::string_view raw(size_t n) {
    if (!ok_ || data_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    auto s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view view() { return raw(static_cast<size_t>(varint())); }
  std::string bytes() { return std::string(view()); }
  // A count that cannot exceed the bytes left (each element takes at least one byte).
  size_t count() {
    uint64_t n = varint();
    if (n > data_.size() - pos_) {
      ok_ = false;
      return 0;
    }
    return static_cast<size_t>(n);
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string unpackChannel(uint8_t flags, std::string_view bytes) {
  if ((flags & (kHexLower | kHexUpper)) == 0) {
    return std::string(bytes);
  }
  const char* digits = (flags & kHexUpper) != 0 ? "0123456789ABCDEF" : "0123456789abcdef";
  // Sized once and written by index: push_back's capacity check per digit was ~4% of a
  // broadcast's instructions in pushhubd (docs/PERFORMANCE.md).
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = digits[b >> 4];
    out[2 * i + 1] = digits[b & 0xf];
  }
  return out;
}

// Checks a record's first byte (read by `r`): known format and platform.
Result<void> checkFlags(const Reader& r, uint8_t flags) {
  if (!r.ok() || (flags >> kFormatShift) != kRecordFormat) {
    return Error::internal("registry: unknown installation record format");
  }
  if ((flags & kPlatformMask) > static_cast<uint8_t>(Platform::kWns)) {
    return Error::internal("registry: corrupt installation record (platform)");
  }
  return {};
}

}  // namespace

std::pair<uint8_t, std::string> packChannel(std::string_view channel) {
  if (channel.empty() || channel.size() % 2 != 0) {
    return {0, std::string(channel)};
  }
  bool lower = true;
  bool upper = true;
  for (char c : channel) {
    if (hexValue(c) < 0) {
      return {0, std::string(channel)};
    }
    lower = lower && !(c >= 'A' && c <= 'F');
    upper = upper && !(c >= 'a' && c <= 'f');
  }
  if (!lower && !upper) {
    return {0, std::string(channel)};  // mixed case: keep it byte for byte
  }
  std::string out;
  out.reserve(channel.size() / 2);
  for (size_t i = 0; i < channel.size(); i += 2) {
    out.push_back(static_cast<char>(hexValue(channel[i]) << 4 | hexValue(channel[i + 1])));
  }
  return {lower ? kHexLower : kHexUpper, std::move(out)};
}

std::string encodeTemplate(const InstallationTemplate& t) {
  std::string out;
  putBytes(out, t.body);
  putVarint(out, t.headers.size());
  for (const auto& [name, value] : t.headers) {
    putBytes(out, name);
    putBytes(out, value);
  }
  putVarint(out, t.tags.size());
  for (const auto& tag : t.tags) {
    putBytes(out, tag);
  }
  putBytes(out, t.expiry);
  return out;
}

Result<InstallationTemplate> decodeTemplate(std::string_view data) {
  Reader r(data);
  InstallationTemplate t;
  t.body = r.bytes();
  for (size_t n = r.count(), i = 0; i < n && r.ok(); ++i) {
    std::string name = r.bytes();
    t.headers[name] = r.bytes();
  }
  for (size_t n = r.count(), i = 0; i < n && r.ok(); ++i) {
    t.tags.push_back(r.bytes());
  }
  t.expiry = r.bytes();
  if (!r.ok() || !r.atEnd()) {
    return Error::internal("registry: corrupt template record");
  }
  return t;
}

std::string templateRef(std::string_view encoded_template) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(encoded_template.data()), encoded_template.size(),
       digest);
  return std::string(reinterpret_cast<const char*>(digest), kTemplateRefBytes);
}

std::string encodeRecord(const Installation& in, const std::vector<TemplateRef>& refs) {
  auto [packing, channel] = packChannel(in.push_channel);
  std::string out;
  out.reserve(16 + channel.size() + in.id.size() + in.user_id.size() + in.tags.size() * 16);
  out.push_back(static_cast<char>(static_cast<uint8_t>(in.platform) |
                                  (in.push_channel_expired ? kExpiredFlag : 0) | packing |
                                  (kRecordFormat << kFormatShift)));
  // Template tags follow the installation's own, marked: the scripts list the installation
  // under them as "+tag" (registry.h), and a decode leaves them out of Installation::tags.
  std::vector<std::string> template_tags;
  for (const auto& [name, t] : in.templates) {
    for (const auto& tag : t.tags) template_tags.push_back(std::string(kTemplateTagMark) + tag);
  }
  std::sort(template_tags.begin(), template_tags.end());
  template_tags.erase(std::unique(template_tags.begin(), template_tags.end()), template_tags.end());
  // A registration is also listed under its channel's hidden tag (installation.h).
  std::string channel_tag =
      in.registration ? channelTag(in.platform, in.push_channel) : std::string();
  putVarint(out, in.tags.size() + template_tags.size() + (in.registration ? 1 : 0));
  for (const auto& tag : in.tags) {
    putBytes(out, tag);
  }
  if (in.registration) putBytes(out, channel_tag);
  for (const auto& tag : template_tags) {
    putBytes(out, tag);
  }
  putVarint(out, refs.size());
  for (const auto& ref : refs) {
    putBytes(out, ref.name);
    out.append(ref.ref);
  }
  putBytes(out, channel);
  putBytes(out, in.id);
  putBytes(out, in.user_id);
  putVarint(out, static_cast<uint64_t>(in.expiration_unix));
  putVarint(out, static_cast<uint64_t>(in.last_update_ms));
  if (in.registration) {
    out.push_back(static_cast<char>(kRegistrationFlag | (in.registration->gcm ? kGcmFlag : 0)));
    putBytes(out, in.registration->push_variables);
  }
  return out;
}

Result<DecodedRecord> decodeRecord(std::string_view data) {
  Reader r(data);
  uint8_t flags = r.byte();
  if (auto ok = checkFlags(r, flags); !ok) {
    return ok.error();
  }
  DecodedRecord out;
  Installation& in = out.installation;
  in.platform = static_cast<Platform>(flags & kPlatformMask);
  in.push_channel_expired = (flags & kExpiredFlag) != 0;
  for (size_t n = r.count(), i = 0; i < n && r.ok(); ++i) {
    std::string_view tag = r.view();
    if (!tag.starts_with(kTemplateTagMark) && !tag.starts_with(kChannelTagPrefix)) {
      in.tags.emplace_back(tag);
    }
  }
  for (size_t n = r.count(), i = 0; i < n && r.ok(); ++i) {
    TemplateRef ref;
    ref.name = r.bytes();
    ref.ref = std::string(r.raw(kTemplateRefBytes));
    out.templates.push_back(std::move(ref));
  }
  in.push_channel = unpackChannel(flags, r.raw(static_cast<size_t>(r.varint())));
  in.id = r.bytes();
  in.user_id = r.bytes();
  in.expiration_unix = static_cast<int64_t>(r.varint());
  in.last_update_ms = static_cast<int64_t>(r.varint());
  if (r.ok() && !r.atEnd()) {
    uint8_t registration = r.byte();
    if (!validTrailer(registration)) {
      return Error::internal("registry: corrupt installation record (registration)");
    }
    in.registration = RegistrationInfo{(registration & kGcmFlag) != 0, r.bytes()};
  }
  if (!r.ok() || !r.atEnd()) {
    return Error::internal("registry: corrupt installation record");
  }
  return out;
}

Result<void> viewRecord(std::string_view data, RecordView& out) {
  Reader r(data);
  out.flags = r.byte();
  if (auto ok = checkFlags(r, out.flags); !ok) {
    return ok;
  }
  out.platform = static_cast<Platform>(out.flags & kPlatformMask);
  out.push_channel_expired = (out.flags & kExpiredFlag) != 0;
  out.tag_count = r.count();
  size_t tags_start = r.position();
  for (size_t i = 0; i < out.tag_count && r.ok(); ++i) {
    r.view();
  }
  out.tag_bytes = data.substr(tags_start, r.position() - tags_start);
  out.template_count = r.count();
  if (out.template_count > out.templates.size()) {
    return Error::internal("registry: corrupt installation record (templates)");
  }
  for (size_t i = 0; i < out.template_count && r.ok(); ++i) {
    out.templates[i].name = r.view();
    out.templates[i].ref = r.raw(kTemplateRefBytes);
  }
  out.channel_bytes = r.view();
  out.id = r.view();
  out.user_id = r.view();
  out.expiration_unix = static_cast<int64_t>(r.varint());
  r.varint();  // last update
  out.registration = r.ok() && !r.atEnd();
  if (out.registration) {
    if (!validTrailer(r.byte())) {
      return Error::internal("registry: corrupt installation record (registration)");
    }
    r.view();  // push variables
  }
  if (!r.ok() || !r.atEnd()) {
    return Error::internal("registry: corrupt installation record");
  }
  return {};
}

std::string RecordView::pushChannel() const { return unpackChannel(flags, channel_bytes); }

void RecordView::forEachTag(const std::function<void(std::string_view)>& fn) const {
  Reader r(tag_bytes);
  for (size_t i = 0; i < tag_count && r.ok(); ++i) fn(r.view());
}

}  // namespace pushhub::registry::codec
