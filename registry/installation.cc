#include "registry/installation.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>
#include <set>

namespace pushhub::registry {
namespace {

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool isTagChar(char c) {
  return isAlnum(c) || c == '_' || c == '@' || c == '#' || c == '.' || c == ':' || c == '-';
}

bool isIdChar(char c) { return isTagChar(c) || c == '='; }

bool isTemplateNameChar(char c) { return isAlnum(c) || c == '_' || c == '-'; }

bool isFcmChar(char c) { return isAlnum(c) || c == '_' || c == ':' || c == '.' || c == '-'; }

bool isHubChar(char c) { return isAlnum(c) || c == '_' || c == '.' || c == '-'; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// First offending character position, or npos when all are allowed.
template <typename Pred>
size_t firstBad(std::string_view s, Pred allowed) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!allowed(s[i])) {
      return i;
    }
  }
  return std::string_view::npos;
}

Error invalid(std::string message) { return Error::invalidArgument(std::move(message)); }

Result<void> validateCharset(std::string_view value, std::string_view field, size_t min_len,
                             size_t max_len, bool (*allowed)(char), std::string_view charset) {
  if (value.size() < min_len) {
    return invalid(min_len == 1 ? fmt::format("{}: must not be empty", field)
                                : fmt::format("{}: shorter than {} characters", field, min_len));
  }
  if (value.size() > max_len) {
    return invalid(fmt::format("{}: longer than {} characters", field, max_len));
  }
  if (size_t bad = firstBad(value, allowed); bad != std::string_view::npos) {
    return invalid(fmt::format("{}: character {} is not one of {}", field, bad, charset));
  }
  return {};
}

Result<void> validateTags(const std::vector<std::string>& tags, std::string_view field) {
  if (tags.size() > kMaxTags) {
    return invalid(fmt::format("{}: more than {} tags", field, kMaxTags));
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < tags.size(); ++i) {
    std::string name = fmt::format("{}[{}]", field, i);
    if (auto r = validateTag(tags[i], name); !r) {
      return r;
    }
    if (!seen.insert(tags[i]).second) {
      return invalid(fmt::format("{}: duplicate tag \"{}\"", name, tags[i]));
    }
  }
  return {};
}

// The value of header `name` (compared without regard to case), or nullptr.
const std::string* findHeader(const std::map<std::string, std::string>& headers,
                              std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (lower(key) == lower(name)) return &value;
  }
  return nullptr;
}

// What an HTTP field value may not hold (RFC 9110: control characters but tab). Header values
// and the APNs expiry end up in a provider request's headers.
bool isFieldControl(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

Result<void> validateTemplate(Platform platform, const std::string& name,
                              const InstallationTemplate& t) {
  std::string field = fmt::format("templates[{}]", name);
  if (auto r = validateCharset(name, "templates: name", 1, kMaxTemplateNameLength,
                               isTemplateNameChar, "[A-Za-z0-9_-]");
      !r) {
    return r;
  }
  if (t.body.empty()) {
    return invalid(fmt::format("{}.body: must not be empty", field));
  }
  if (t.body.size() > kMaxTemplateBodyBytes) {
    return invalid(fmt::format("{}.body: longer than {} bytes", field, kMaxTemplateBodyBytes));
  }
  if (t.headers.size() > kMaxTemplateHeaders) {
    return invalid(fmt::format("{}.headers: more than {} headers", field, kMaxTemplateHeaders));
  }
  for (const auto& [header, value] : t.headers) {
    if (header.empty()) {
      return invalid(fmt::format("{}.headers: header name must not be empty", field));
    }
    if (header.size() > kMaxHeaderNameLength) {
      return invalid(fmt::format("{}.headers: header name longer than {} characters", field,
                                 kMaxHeaderNameLength));
    }
    auto control = [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ':';
    };
    if (std::any_of(header.begin(), header.end(), control)) {
      return invalid(
          fmt::format("{}.headers[{}]: name has a control character or ':'", field, header));
    }
    if (value.size() > kMaxHeaderValueBytes) {
      return invalid(fmt::format("{}.headers[{}]: value longer than {} bytes", field, header,
                                 kMaxHeaderValueBytes));
    }
    if (std::any_of(value.begin(), value.end(), isFieldControl)) {
      return invalid(fmt::format("{}.headers[{}]: value has a control character (line breaks "
                                 "included; only tab is allowed)",
                                 field, header));
    }
  }
  if (auto r = validateTags(t.tags, field + ".tags"); !r) {
    return r;
  }
  if (t.expiry.size() > kMaxTemplateExpiryBytes) {
    return invalid(fmt::format("{}.expiry: longer than {} bytes", field, kMaxTemplateExpiryBytes));
  }
  if (std::any_of(t.expiry.begin(), t.expiry.end(), isFieldControl)) {
    return invalid(fmt::format("{}.expiry: has a control character", field));
  }
  // Azure's validator compiles every template when it is registered: a template that cannot
  // render is refused here, with the position, rather than failing every send later.
  if (platform == Platform::kWns && findHeader(t.headers, "X-WNS-Type") == nullptr) {
    return invalid(fmt::format(
        "{}.headers: a WNS template needs X-WNS-Type (wns/toast, wns/tile, wns/badge or wns/raw)",
        field));
  }
  if (auto c = expr::CompiledTemplate::compile(t.body, templateFormat(platform, t.headers)); !c) {
    return invalid(fmt::format("{}.body: {}", field, c.error().message));
  }
  for (const auto& [header, value] : t.headers) {
    if (auto c = expr::CompiledTemplate::compileValue(value); !c) {
      return invalid(fmt::format("{}.headers[{}]: {}", field, header, c.error().message));
    }
  }
  if (!t.expiry.empty()) {
    if (auto c = expr::CompiledTemplate::compileValue(t.expiry); !c) {
      return invalid(fmt::format("{}.expiry: {}", field, c.error().message));
    }
  }
  return {};
}

}  // namespace

expr::TemplateFormat templateFormat(Platform platform,
                                    const std::map<std::string, std::string>& headers) {
  if (platform != Platform::kWns) return expr::TemplateFormat::kJson;
  const std::string* type = findHeader(headers, "X-WNS-Type");
  return type != nullptr && lower(*type) == "wns/raw" ? expr::TemplateFormat::kRaw
                                                      : expr::TemplateFormat::kXml;
}

Result<Platform> parsePlatform(std::string_view name) {
  std::string n = lower(name);
  if (n == "apns") {
    return Platform::kApns;
  }
  if (n == "fcm" || n == "fcmv1" || n == "gcm") {
    return Platform::kFcm;
  }
  if (n == "wns") {
    return Platform::kWns;
  }
  return invalid(fmt::format("platform: \"{}\" is not one of apns, fcmv1 (fcm, gcm), wns", name));
}

std::string_view toString(Platform platform) {
  switch (platform) {
    case Platform::kApns:
      return "apns";
    case Platform::kFcm:
      return "fcmv1";
    case Platform::kWns:
      return "wns";
  }
  return "unknown";
}

Result<void> validateTag(std::string_view tag, std::string_view field) {
  return validateCharset(tag, field, 1, kMaxTagLength, isTagChar, "[A-Za-z0-9_@#.:-]");
}

Result<void> validateInstallationId(std::string_view id, std::string_view field) {
  return validateCharset(id, field, 1, kMaxIdLength, isIdChar, "[A-Za-z0-9_@#.:=-]");
}

Result<void> validateRecordId(std::string_view id) {
  if (id.starts_with(kRegistrationIdPrefix)) {
    return validateInstallationId(id.substr(kRegistrationIdPrefix.size()), "registrationId");
  }
  return validateInstallationId(id);
}

std::string registrationEtag(const Installation& registration) {
  return std::to_string(registration.last_update_ms);
}

bool etagMatches(std::string_view if_match, std::string_view etag) {
  while (!if_match.empty() && if_match.front() == ' ') if_match.remove_prefix(1);
  while (!if_match.empty() && if_match.back() == ' ') if_match.remove_suffix(1);
  if (if_match == "*") return true;
  if (if_match.starts_with("W/")) if_match.remove_prefix(2);
  if (if_match.size() >= 2 && if_match.front() == '"' && if_match.back() == '"') {
    if_match = if_match.substr(1, if_match.size() - 2);
  }
  return if_match == etag;
}

Result<void> validateHubName(std::string_view hub) {
  return validateCharset(hub, "hub", 1, kMaxHubNameLength, isHubChar, "[A-Za-z0-9._-]");
}

Result<void> validatePushChannel(Platform platform, std::string_view channel) {
  switch (platform) {
    case Platform::kApns: {
      if (channel.size() < kMinApnsTokenLength || channel.size() > kMaxApnsTokenLength) {
        return invalid(fmt::format("pushChannel: APNs device token must be {}-{} hex characters",
                                   kMinApnsTokenLength, kMaxApnsTokenLength));
      }
      if (channel.size() % 2 != 0) {
        return invalid("pushChannel: APNs device token must have an even number of hex digits");
      }
      auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
      if (size_t bad = firstBad(channel, hex); bad != std::string_view::npos) {
        return invalid(fmt::format("pushChannel: character {} is not a hex digit", bad));
      }
      return {};
    }
    case Platform::kFcm:
      return validateCharset(channel, "pushChannel", 1, kMaxFcmTokenLength, isFcmChar,
                             "[A-Za-z0-9_:.-]");
    case Platform::kWns: {
      if (channel.empty()) {
        return invalid("pushChannel: must not be empty");
      }
      if (channel.size() > kMaxWnsUrlLength) {
        return invalid(fmt::format("pushChannel: WNS channel URI longer than {} characters",
                                   kMaxWnsUrlLength));
      }
      auto url = boost::urls::parse_absolute_uri(channel);
      if (!url) {
        return invalid("pushChannel: WNS channel URI is not an absolute URI");
      }
      if (lower(url->scheme()) != "https") {
        return invalid("pushChannel: WNS channel URI must use https");
      }
      if (url->encoded_host().empty()) {
        return invalid("pushChannel: WNS channel URI has no host");
      }
      return {};
    }
  }
  return invalid("platform: unknown");
}

std::string channelTag(Platform platform, std::string_view channel) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  auto mix = [&h](char c) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  };
  mix(static_cast<char>(platform));
  for (char c : channel) mix(c);
  return fmt::format("{}{:016x}", kChannelTagPrefix, h);
}

Result<void> validateInstallation(const Installation& in) {
  if (in.registration) {
    if (!in.id.starts_with(kRegistrationIdPrefix)) {
      return invalid(
          fmt::format("RegistrationId: must be stored as {}<id>", kRegistrationIdPrefix));
    }
    if (auto r =
            validateInstallationId(in.id.substr(kRegistrationIdPrefix.size()), "RegistrationId");
        !r) {
      return r;
    }
    if (in.templates.size() > 1) return invalid("BodyTemplate: a registration has one template");
    if (in.registration->push_variables.size() > kMaxPushVariablesBytes) {
      return invalid(fmt::format("PushVariables: longer than {} bytes", kMaxPushVariablesBytes));
    }
  } else if (auto r = validateInstallationId(in.id); !r) {
    return r;
  }
  if (!in.user_id.empty()) {
    if (auto r =
            validateCharset(in.user_id, "userId", 1, kMaxIdLength, isIdChar, "[A-Za-z0-9_@#.:=-]");
        !r) {
      return r;
    }
  }
  if (auto r = validatePushChannel(in.platform, in.push_channel); !r) {
    return r;
  }
  if (auto r = validateTags(in.tags, "tags"); !r) {
    return r;
  }
  if (in.templates.size() > kMaxTemplates) {
    return invalid(fmt::format("templates: more than {} templates", kMaxTemplates));
  }
  for (const auto& [name, t] : in.templates) {
    // A registration's unnamed template is stored under kUnnamedTemplate; check it as any other.
    bool unnamed = in.registration && name == kUnnamedTemplate;
    if (auto r = validateTemplate(in.platform, unnamed ? "template" : name, t); !r) {
      return r;
    }
  }
  if (in.expiration_unix < 0) {
    return invalid("expirationTime: must not be before 1970");
  }
  if (in.last_update_ms < 0) {
    return invalid("lastUpdate: must not be before 1970");
  }
  return {};
}

}  // namespace pushhub::registry
