#include "registry/installation_patch.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <map>

namespace pushhub::registry {
namespace {

namespace json = boost::json;

// The deepest a value gets: template object -> headers object -> string. One spare level.
constexpr int kMaxValueJsonDepth = 4;
// Echoed user text is cut to this so an error message stays readable and bounded.
constexpr size_t kMaxShownBytes = 80;
constexpr size_t kMaxTimeTextBytes = 64;
constexpr int64_t kNeverUnix = 253402300799;           // 9999-12-31T23:59:59Z
constexpr int64_t kFirstFormattedUnix = -62167219200;  // 0000-01-01T00:00:00Z
constexpr std::string_view kNeverText = "9999-12-31T23:59:59.9999999Z";
constexpr std::string_view kPatchablePaths =
    "/tags, /tags/{tag}, /userId, /pushChannel, /expirationTime, /templates/{name}, "
    "/templates/{name}/body, /templates/{name}/headers, /templates/{name}/headers/{header}, "
    "/templates/{name}/expiry, /templates/{name}/tags, /templates/{name}/tags/{tag}";

Error invalid(std::string message) { return Error::invalidArgument(std::move(message)); }

char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lowerChar(x) == lowerChar(y);
         });
}

// User text as it may appear inside an error message: control characters become '?' (messages
// end up in logs and XML bodies) and long text is cut, never inside a UTF-8 sequence.
std::string show(std::string_view text) {
  size_t cut = std::min(text.size(), kMaxShownBytes);
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
    --cut;  // text[cut] continues a character: cut before that character starts
  }
  std::string out(text.substr(0, cut));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  if (text.size() > kMaxShownBytes) {
    out += "...";
  }
  return out;
}

std::string_view kindName(json::kind kind) {
  switch (kind) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

enum class OpKind { kAdd, kRemove, kReplace };

// What a path points at; `Path` carries the names it contains.
enum class Target {
  kTags,
  kTag,
  kUserId,
  kPushChannel,
  kExpirationTime,
  kTemplate,
  kTemplateBody,
  kTemplateHeaders,
  kTemplateHeader,
  kTemplateExpiry,
  kTemplateTags,
  kTemplateTag,
};

struct Path {
  Target target = Target::kTags;
  std::string name;  // the template name, for /templates/...
  std::string key;   // the tag or header name of the last segment, where there is one
};

// The operation being applied: where it sits in the request (for error names) and its parts.
struct Step {
  size_t index;
  OpKind kind;
  const PatchOperation& op;

  // "operations[2].value.headers"
  std::string field(std::string_view part) const {
    return fmt::format("operations[{}].{}", index, part);
  }
  Error error(std::string_view part, std::string_view what) const {
    return invalid(fmt::format("{}: {}", field(part), what));
  }
  std::string_view opName() const {
    return kind == OpKind::kAdd ? "add" : kind == OpKind::kRemove ? "remove" : "replace";
  }
};

Result<OpKind> parseOp(size_t index, std::string_view op) {
  if (iequals(op, "add")) {
    return OpKind::kAdd;
  }
  if (iequals(op, "remove")) {
    return OpKind::kRemove;
  }
  if (iequals(op, "replace")) {
    return OpKind::kReplace;
  }
  return invalid(fmt::format("operations[{}].op: '{}' is not supported; use add, remove or replace",
                             index, show(op)));
}

// Splits a JSON Pointer into decoded segments (RFC 6901: "~1" is '/', "~0" is '~').
Result<std::vector<std::string>> splitPath(const Step& s) {
  std::string_view path = s.op.path;
  if (path.size() > kMaxPatchPathBytes) {
    return s.error("path", fmt::format("longer than {} bytes", kMaxPatchPathBytes));
  }
  if (path.empty() || path.front() != '/') {
    return s.error("path", fmt::format("'{}' must start with '/'", show(path)));
  }
  std::vector<std::string> segments;
  size_t pos = 1;
  while (true) {
    size_t end = path.find('/', pos);
    std::string_view raw = path.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (raw.empty()) {
      return s.error("path", fmt::format("'{}' has an empty segment", show(path)));
    }
    std::string segment;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '~') {
        segment += raw[i];
      } else if (i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
        segment += raw[++i] == '0' ? '~' : '/';
      } else {
        return s.error("path",
                       fmt::format("'{}' has a '~' that is not ~0 or ~1 (RFC 6901)", show(path)));
      }
    }
    segments.push_back(std::move(segment));
    if (end == std::string_view::npos) {
      return segments;
    }
    pos = end + 1;
  }
}

// Maps the segments of a path onto a Target, or refuses it naming the patchable paths.
Result<Path> parsePath(const Step& s) {
  auto split = splitPath(s);
  if (!split) {
    return split.error();
  }
  const std::vector<std::string>& seg = *split;
  const size_t n = seg.size();
  auto with = [](Target target, std::string name = {}, std::string key = {}) {
    return Path{target, std::move(name), std::move(key)};
  };
  if (iequals(seg[0], "tags") && n <= 2) {
    return n == 1 ? with(Target::kTags) : with(Target::kTag, {}, seg[1]);
  }
  if (n == 1 && iequals(seg[0], "userId")) {
    return with(Target::kUserId);
  }
  if (n == 1 && iequals(seg[0], "pushChannel")) {
    return with(Target::kPushChannel);
  }
  if (n == 1 && iequals(seg[0], "expirationTime")) {
    return with(Target::kExpirationTime);
  }
  if (iequals(seg[0], "templates") && n >= 2 && n <= 4) {
    const std::string& name = seg[1];
    if (n == 2) {
      return with(Target::kTemplate, name);
    }
    std::string_view part = seg[2];
    if (n == 3) {
      if (iequals(part, "body")) {
        return with(Target::kTemplateBody, name);
      }
      if (iequals(part, "headers")) {
        return with(Target::kTemplateHeaders, name);
      }
      if (iequals(part, "expiry")) {
        return with(Target::kTemplateExpiry, name);
      }
      if (iequals(part, "tags")) {
        return with(Target::kTemplateTags, name);
      }
    } else if (iequals(part, "headers")) {
      return with(Target::kTemplateHeader, name, seg[3]);
    } else if (iequals(part, "tags")) {
      return with(Target::kTemplateTag, name, seg[3]);
    }
  }
  return s.error("path", fmt::format("'{}' cannot be patched; patchable paths are {}",
                                     show(s.op.path), kPatchablePaths));
}

// ---- values ----

// The value of an add or replace, which must have one.
Result<std::string_view> requiredValue(const Step& s) {
  if (!s.op.value) {
    return s.error("value", fmt::format("required for {}", s.opName()));
  }
  return std::string_view(*s.op.value);
}

// A value that must be a JSON string. The REST layer turns arrays and objects into their JSON
// text, so text opening like one is a value of the wrong type.
Result<std::string_view> stringValue(const Step& s) {
  auto value = requiredValue(s);
  if (!value) {
    return value;
  }
  if (!value->empty() && (value->front() == '[' || value->front() == '{')) {
    return s.error("value", fmt::format("expected a string, got {}",
                                        value->front() == '[' ? "an array" : "an object"));
  }
  return value;
}

Result<json::value> parseJson(const Step& s, std::string_view text) {
  json::parse_options options;
  options.max_depth = kMaxValueJsonDepth;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec, json::storage_ptr(), options);
  if (ec) {
    return s.error("value", fmt::format("malformed JSON ({})", ec.message()));
  }
  return value;
}

// ---- tags ----

bool contains(const std::vector<std::string>& tags, std::string_view tag) {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

// Adds `tag` unless present, keeping the list within kMaxTags as it grows.
Result<void> addTag(const Step& s, std::vector<std::string>& tags, std::string_view tag,
                    std::string_view list_name) {
  if (contains(tags, tag)) {
    return {};
  }
  if (tags.size() >= kMaxTags) {
    return s.error("value", fmt::format("{} would have more than {} tags", list_name, kMaxTags));
  }
  tags.emplace_back(tag);
  return {};
}

// Adds the tags of a JSON array of strings; `part` names the array in errors.
Result<void> addTagArray(const Step& s, std::vector<std::string>& tags, const json::array& array,
                         std::string_view part, std::string_view list_name) {
  for (size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) {
      return s.error(fmt::format("{}[{}]", part, i),
                     fmt::format("expected a string, got {}", kindName(array[i].kind())));
    }
    if (auto r = addTag(s, tags, array[i].get_string(), list_name); !r) {
      return r;
    }
  }
  return {};
}

// A tag value: one tag as a string, or a JSON array of tags.
Result<void> addTagValue(const Step& s, std::vector<std::string>& tags, std::string_view value,
                         std::string_view list_name) {
  if (value.empty() || value.front() != '[') {
    if (!value.empty() && value.front() == '{') {
      return s.error("value", "expected a tag or an array of tags, got an object");
    }
    return addTag(s, tags, value, list_name);
  }
  auto parsed = parseJson(s, value);
  if (!parsed) {
    return parsed.error();
  }
  if (!parsed->is_array()) {  // "[" followed by a valid document cannot be anything else
    return s.error("value", "expected an array of tags");
  }
  return addTagArray(s, tags, parsed->get_array(), "value", list_name);
}

// /tags and /templates/{name}/tags.
Result<void> patchTagList(const Step& s, std::vector<std::string>& tags,
                          std::string_view list_name) {
  if (s.kind == OpKind::kRemove) {
    if (s.op.value && !s.op.value->empty()) {
      return s.error("value", fmt::format("remove '{0}' removes every tag and takes no value; to "
                                          "remove one tag, remove '{0}/{{tag}}'",
                                          show(s.op.path)));
    }
    tags.clear();
    return {};
  }
  auto value = requiredValue(s);
  if (!value) {
    return value.error();
  }
  if (s.kind == OpKind::kReplace) {
    tags.clear();
  }
  return addTagValue(s, tags, *value, list_name);
}

// /tags/{tag} and /templates/{name}/tags/{tag}: the tag is addressed by value, not by index.
Result<void> patchOneTag(const Step& s, std::vector<std::string>& tags, const std::string& tag,
                         std::string_view list_name) {
  switch (s.kind) {
    case OpKind::kRemove:
      std::erase(tags, tag);
      return {};
    case OpKind::kAdd:
      if (s.op.value && *s.op.value != tag) {
        return s.error("value", fmt::format("add '{}' adds the tag named in the path; send no "
                                            "value, or add other tags with add on the list",
                                            show(s.op.path)));
      }
      return addTag(s, tags, tag, list_name);
    case OpKind::kReplace: {
      auto value = stringValue(s);
      if (!value) {
        return value.error();
      }
      auto old = std::find(tags.begin(), tags.end(), tag);
      if (old == tags.end()) {
        return addTag(s, tags, *value, list_name);
      }
      if (contains(tags, *value)) {
        if (*value != tag) {
          tags.erase(old);
        }
        return {};
      }
      *old = *value;  // rename in place, keeping the order
      return {};
    }
  }
  return {};
}

// ---- templates ----

using Headers = std::map<std::string, std::string>;

Headers::iterator findHeader(Headers& headers, std::string_view name) {
  return std::find_if(headers.begin(), headers.end(),
                      [&](const auto& entry) { return iequals(entry.first, name); });
}

// Fills `out` from a JSON object of header name -> string; `part` names the object in errors.
Result<void> readHeaders(const Step& s, const json::object& object, std::string_view part,
                         Headers& out) {
  if (object.size() > kMaxTemplateHeaders) {
    return s.error(part, fmt::format("more than {} headers", kMaxTemplateHeaders));
  }
  for (const auto& member : object) {
    std::string_view name(member.key().data(), member.key().size());
    if (!member.value().is_string()) {
      return s.error(fmt::format("{}.{}", part, show(name)),
                     fmt::format("expected a string, got {}", kindName(member.value().kind())));
    }
    if (findHeader(out, name) != out.end()) {
      return s.error(part, fmt::format("header '{}' is given twice (header names are "
                                       "case-insensitive)",
                                       show(name)));
    }
    out.emplace(name, member.value().get_string());
  }
  return {};
}

// Sets one header, replacing any spelling of the same name.
Result<void> setHeader(const Step& s, Headers& headers, const std::string& name,
                       std::string_view value) {
  if (auto old = findHeader(headers, name); old != headers.end()) {
    headers.erase(old);
  } else if (headers.size() >= kMaxTemplateHeaders) {
    return s.error(
        "value", fmt::format("the template would have more than {} headers", kMaxTemplateHeaders));
  }
  headers.emplace(name, value);
  return {};
}

// A whole template: {"body": ..., "headers": {...}, "expiry": ..., "tags": [...]}.
Result<InstallationTemplate> parseTemplate(const Step& s, std::string_view value,
                                           std::string_view name) {
  if (value.empty() || value.front() != '{') {
    return s.error("value",
                   "expected a template object like {\"body\": \"...\", \"headers\": {...}, "
                   "\"expiry\": \"...\", \"tags\": [...]}");
  }
  auto parsed = parseJson(s, value);
  if (!parsed) {
    return parsed.error();
  }
  if (!parsed->is_object()) {
    return s.error("value", "expected a template object");
  }
  InstallationTemplate out;
  bool has_body = false;
  std::string tags_name = fmt::format("templates[{}].tags", name);
  for (const auto& member : parsed->get_object()) {
    std::string_view key(member.key().data(), member.key().size());
    const json::value& v = member.value();
    if (v.is_null()) {
      continue;  // .NET writes unset members as null
    }
    auto wrongType = [&](std::string_view part, std::string_view expected) {
      return s.error(part, fmt::format("expected {}, got {}", expected, kindName(v.kind())));
    };
    if (iequals(key, "body")) {
      if (!v.is_string()) {
        return wrongType("value.body", "a string");
      }
      out.body = v.get_string();
      has_body = true;
    } else if (iequals(key, "headers")) {
      if (!v.is_object()) {
        return wrongType("value.headers", "an object");
      }
      if (auto r = readHeaders(s, v.get_object(), "value.headers", out.headers); !r) {
        return r.error();
      }
    } else if (iequals(key, "expiry")) {
      if (!v.is_string()) {
        return wrongType("value.expiry", "a string");
      }
      out.expiry = v.get_string();
    } else if (iequals(key, "tags")) {
      if (!v.is_array()) {
        return wrongType("value.tags", "an array");
      }
      if (auto r = addTagArray(s, out.tags, v.get_array(), "value.tags", tags_name); !r) {
        return r.error();
      }
    } else {
      return s.error(fmt::format("value.{}", show(key)),
                     "unknown template member; expected body, headers, expiry or tags");
    }
  }
  if (!has_body) {
    return s.error("value.body", "required");
  }
  return out;
}

using Templates = std::map<std::string, InstallationTemplate>;

// The template a sub-path refers to, created when add/replace needs it (replace = remove + add);
// nullptr for a remove under a missing template, which is then a no-op.
Result<InstallationTemplate*> templateFor(const Step& s, Templates& templates,
                                          const std::string& name) {
  if (auto it = templates.find(name); it != templates.end()) {
    return &it->second;
  }
  if (s.kind == OpKind::kRemove) {
    return static_cast<InstallationTemplate*>(nullptr);
  }
  if (templates.size() >= kMaxTemplates) {
    return s.error(
        "path", fmt::format("the installation would have more than {} templates", kMaxTemplates));
  }
  return &templates[name];
}

Result<void> patchTemplate(const Step& s, Templates& templates, const std::string& name) {
  if (s.kind == OpKind::kRemove) {
    templates.erase(name);
    return {};
  }
  auto value = requiredValue(s);
  if (!value) {
    return value.error();
  }
  auto parsed = parseTemplate(s, *value, name);
  if (!parsed) {
    return parsed.error();
  }
  auto slot = templateFor(s, templates, name);
  if (!slot) {
    return slot.error();
  }
  **slot = std::move(*parsed);
  return {};
}

Result<void> patchTemplatePart(const Step& s, Templates& templates, const Path& path) {
  if (path.target == Target::kTemplateBody && s.kind == OpKind::kRemove) {
    return s.error("op", fmt::format("remove '{}' is refused: a template needs a body; replace "
                                     "it, or remove '/templates/{}'",
                                     show(s.op.path), show(path.name)));
  }
  auto found = templateFor(s, templates, path.name);
  if (!found) {
    return found.error();
  }
  InstallationTemplate* t = *found;
  if (t == nullptr) {
    return {};
  }
  const bool remove = s.kind == OpKind::kRemove;
  switch (path.target) {
    case Target::kTemplateBody: {
      auto value = requiredValue(s);  // any text: a body is usually JSON itself
      if (!value) {
        return value.error();
      }
      t->body = *value;
      return {};
    }
    case Target::kTemplateHeaders: {
      t->headers.clear();
      if (remove) {
        return {};
      }
      auto value = requiredValue(s);
      if (!value) {
        return value.error();
      }
      if (value->empty() || value->front() != '{') {
        return s.error("value", "expected an object of header names to values");
      }
      auto parsed = parseJson(s, *value);
      if (!parsed) {
        return parsed.error();
      }
      if (!parsed->is_object()) {
        return s.error("value", "expected an object of header names to values");
      }
      return readHeaders(s, parsed->get_object(), "value", t->headers);
    }
    case Target::kTemplateHeader: {
      if (remove) {
        if (auto old = findHeader(t->headers, path.key); old != t->headers.end()) {
          t->headers.erase(old);
        }
        return {};
      }
      auto value = stringValue(s);
      if (!value) {
        return value.error();
      }
      return setHeader(s, t->headers, path.key, *value);
    }
    case Target::kTemplateExpiry: {
      if (remove) {
        t->expiry.clear();
        return {};
      }
      auto value = stringValue(s);
      if (!value) {
        return value.error();
      }
      t->expiry = *value;
      return {};
    }
    case Target::kTemplateTags:
      return patchTagList(s, t->tags, fmt::format("templates[{}].tags", path.name));
    case Target::kTemplateTag:
      return patchOneTag(s, t->tags, path.key, fmt::format("templates[{}].tags", path.name));
    default:
      return invalid("internal: not a template part");
  }
}

// ---- top-level scalars ----

Result<void> patchUserId(const Step& s, Installation& out) {
  if (s.kind == OpKind::kRemove) {
    out.user_id.clear();
    return {};
  }
  auto value = stringValue(s);
  if (!value) {
    return value.error();
  }
  out.user_id = *value;
  return {};
}

Result<void> patchPushChannel(const Step& s, Installation& out) {
  if (s.kind == OpKind::kRemove) {
    return s.error("op", fmt::format("remove '{}' is refused: pushChannel is required; replace it",
                                     show(s.op.path)));
  }
  auto value = stringValue(s);
  if (!value) {
    return value.error();
  }
  out.push_channel = *value;
  out.push_channel_expired = false;
  return {};
}

Result<void> patchExpirationTime(const Step& s, Installation& out) {
  if (s.kind == OpKind::kRemove) {
    out.expiration_unix = 0;
    return {};
  }
  auto value = stringValue(s);
  if (!value) {
    return value.error();
  }
  auto when = parseIsoTime(*value, s.field("value"));
  if (!when) {
    return when.error();
  }
  out.expiration_unix = *when;
  return {};
}

Result<void> applyOne(const Step& s, const Path& path, Installation& out) {
  switch (path.target) {
    case Target::kTags:
      return patchTagList(s, out.tags, "tags");
    case Target::kTag:
      return patchOneTag(s, out.tags, path.key, "tags");
    case Target::kUserId:
      return patchUserId(s, out);
    case Target::kPushChannel:
      return patchPushChannel(s, out);
    case Target::kExpirationTime:
      return patchExpirationTime(s, out);
    case Target::kTemplate:
      return patchTemplate(s, out.templates, path.name);
    default:
      return patchTemplatePart(s, out.templates, path);
  }
}

// ---- times ----

// The unsigned decimal of text[pos, pos + n), or -1 when any of it is not a digit.
int digitsAt(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) {
    return -1;
  }
  int out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    out = out * 10 + (text[i] - '0');
  }
  return out;
}

bool charAt(std::string_view text, size_t pos, char c) {
  return pos < text.size() && lowerChar(text[pos]) == lowerChar(c);
}

struct CivilTime {
  std::chrono::year_month_day date;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

// Splits unix seconds into a date and a time of day (seconds before 1970 too).
CivilTime civil(int64_t unix_seconds) {
  using namespace std::chrono;
  sys_seconds t{seconds{unix_seconds}};
  sys_days day = floor<days>(t);
  hh_mm_ss<seconds> tod{t - day};
  return {year_month_day{day}, static_cast<int>(tod.hours().count()),
          static_cast<int>(tod.minutes().count()), static_cast<int>(tod.seconds().count())};
}

}  // namespace

Result<Installation> applyPatch(const Installation& installation,
                                const std::vector<PatchOperation>& ops) {
  if (ops.size() > kMaxPatchOperations) {
    return invalid(fmt::format(
        "operations: more than {} operations; send the whole installation with PUT instead",
        kMaxPatchOperations));
  }
  Installation out = installation;
  for (size_t i = 0; i < ops.size(); ++i) {
    const PatchOperation& op = ops[i];
    auto kind = parseOp(i, op.op);
    if (!kind) {
      return kind.error();
    }
    Step step{i, *kind, op};
    if (op.value && op.value->size() > kMaxPatchValueBytes) {
      return step.error("value", fmt::format("longer than {} bytes", kMaxPatchValueBytes));
    }
    auto path = parsePath(step);
    if (!path) {
      return path.error();
    }
    if (auto r = applyOne(step, *path, out); !r) {
      return r.error();
    }
  }
  out.last_update_ms = 0;  // Registry::upsert stamps the time of this update
  if (auto r = validateInstallation(out); !r) {
    return r.error();
  }
  return out;
}

Result<int64_t> parseIsoTime(std::string_view text, std::string_view field) {
  using namespace std::chrono;
  auto bad = [&](std::string_view why) {
    return invalid(fmt::format("{}: '{}' {}", field, show(text), why));
  };
  constexpr std::string_view kShape =
      "is not an RFC 3339 time like 2024-01-31T23:59:59Z (YYYY-MM-DDThh:mm:ss[.fff] and 'Z' "
      "or +hh:mm)";
  if (text.size() > kMaxTimeTextBytes) {
    return invalid(fmt::format("{}: longer than {} characters", field, kMaxTimeTextBytes));
  }
  const int y = digitsAt(text, 0, 4);
  const int mo = digitsAt(text, 5, 2);
  const int d = digitsAt(text, 8, 2);
  if (y < 0 || mo < 0 || d < 0 || !charAt(text, 4, '-') || !charAt(text, 7, '-')) {
    return bad(kShape);
  }
  if (text.size() == 10) {
    return bad("has no time of day; add one, e.g. T00:00:00Z");
  }
  const int h = digitsAt(text, 11, 2);
  const int mi = digitsAt(text, 14, 2);
  const int sec = digitsAt(text, 17, 2);
  if (!charAt(text, 10, 'T') || h < 0 || mi < 0 || sec < 0 || !charAt(text, 13, ':') ||
      !charAt(text, 16, ':')) {
    return bad(kShape);
  }
  year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!date.ok()) {
    return bad("is not a calendar date");
  }
  if (h > 23 || mi > 59 || sec > 59) {
    return bad("is not a time of day (hours 00-23, minutes and seconds 00-59)");
  }
  size_t pos = 19;
  if (charAt(text, pos, '.')) {  // fraction: any number of digits, truncated to the second
    size_t first = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      ++pos;
    }
    if (pos == first) {
      return bad(kShape);
    }
  }
  int64_t offset_seconds = 0;
  if (pos == text.size()) {
    return bad("has no UTC offset; end it with 'Z' or +hh:mm");
  }
  if (charAt(text, pos, 'Z')) {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const int oh = digitsAt(text, pos + 1, 2);
    const int om = digitsAt(text, pos + 4, 2);
    if (oh < 0 || om < 0 || !charAt(text, pos + 3, ':')) {
      return bad(kShape);
    }
    if (oh > 23 || om > 59) {
      return bad("has an offset beyond +-23:59");
    }
    offset_seconds = (text[pos] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    pos += 6;
  }
  if (pos != text.size()) {
    return bad(kShape);
  }
  const int64_t unix_seconds =
      static_cast<int64_t>(sys_days{date}.time_since_epoch().count()) * 86400 + h * 3600 + mi * 60 +
      sec - offset_seconds;
  if (unix_seconds >= kNeverUnix) {
    return int64_t{0};  // 9999-12-31T23:59:59.9999999Z and later: never expires
  }
  if (unix_seconds <= 0) {
    return bad("is not after 1970-01-01T00:00:00Z");
  }
  return unix_seconds;
}

std::string formatIsoTime(int64_t unix_seconds) {
  if (unix_seconds == 0 || unix_seconds >= kNeverUnix) {
    return std::string(kNeverText);
  }
  CivilTime t = civil(std::max(unix_seconds, kFirstFormattedUnix));
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(t.date.year()),
                     static_cast<unsigned>(t.date.month()), static_cast<unsigned>(t.date.day()),
                     t.hour, t.minute, t.second);
}

std::string formatIsoTimeMs(int64_t unix_ms) {
  constexpr int64_t kFirst = kFirstFormattedUnix * 1000;
  constexpr int64_t kLast = kNeverUnix * 1000 + 999;
  unix_ms = std::clamp(unix_ms, kFirst, kLast);
  int64_t seconds = unix_ms / 1000;
  int64_t ms = unix_ms % 1000;
  if (ms < 0) {  // floor, not truncation, for times before 1970
    ms += 1000;
    --seconds;
  }
  CivilTime t = civil(seconds);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(t.date.year()),
                     static_cast<unsigned>(t.date.month()), static_cast<unsigned>(t.date.day()),
                     t.hour, t.minute, t.second, ms);
}

}  // namespace pushhub::registry
