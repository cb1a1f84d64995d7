#include "gateway/rest_registration.h"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "base/url_encoding.h"
#include "base/xml.h"
#include "registry/installation_patch.h"

namespace pushhub::gateway::rest {
namespace {

using registry::Platform;

constexpr std::string_view kSuffix = "RegistrationDescription";
constexpr std::string_view kNamespaces =
    "xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\" "
    "xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/connect\"";

// One served kind of anh-wire.md 7.1: its element name (without kSuffix), where the channel is,
// and for templates the element that lists the provider headers.
struct Kind {
  std::string_view name;
  Platform platform;
  bool gcm;
  bool is_template;
  std::string_view channel_element;
  std::string_view headers_element;  // "ApnsHeaders" -> items "ApnsHeader"; "" when none
};

constexpr std::array<Kind, 8> kKinds{{
    {"Apple", Platform::kApns, false, false, "DeviceToken", ""},
    {"AppleTemplate", Platform::kApns, false, true, "DeviceToken", "ApnsHeaders"},
    {"Gcm", Platform::kFcm, true, false, "GcmRegistrationId", ""},
    {"GcmTemplate", Platform::kFcm, true, true, "GcmRegistrationId", ""},
    {"FcmV1", Platform::kFcm, false, false, "FcmV1RegistrationId", ""},
    {"FcmV1Template", Platform::kFcm, false, true, "FcmV1RegistrationId", ""},
    {"Windows", Platform::kWns, false, false, "ChannelUri", ""},
    {"WindowsTemplate", Platform::kWns, false, true, "ChannelUri", "WnsHeaders"},
}};

// Azure's kinds pushhub has no provider for: refused by name rather than as unknown.
constexpr std::array<std::string_view, 10> kUnservedKinds{
    "Adm",  "AdmTemplate",  "Baidu",  "BaiduTemplate", "Browser", "BrowserTemplate",
    "Mpns", "MpnsTemplate", "Xiaomi", "XiaomiTemplate"};

const Kind& kindOf(const registry::Installation& r) {
  bool gcm = r.registration && r.registration->gcm;
  for (const auto& k : kKinds) {
    if (k.platform == r.platform && k.gcm == gcm && k.is_template == !r.templates.empty()) return k;
  }
  return kKinds[0];  // unreachable: every platform, flavour and template-ness is in the table
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The description element of an Atom entry (entry/content/*), or the document itself when it is
// a bare description.
Result<const xml::Element*> descriptionOf(const xml::Element& root) {
  if (root.name.ends_with(kSuffix)) return &root;
  if (root.name != "entry") {
    return Error::invalidArgument("entry: the document is a <" + root.name +
                                  ">, not an Atom <entry>");
  }
  const xml::Element* content = root.child("content");
  if (!content || content->children.empty()) {
    return Error::invalidArgument("entry.content: a {Kind}RegistrationDescription is required");
  }
  return &content->children.front();
}

// A provider header list: <ApnsHeaders><ApnsHeader><Header>..</Header><Value>..</Value>...
Result<std::map<std::string, std::string>> headersOf(const xml::Element& list) {
  std::map<std::string, std::string> headers;
  for (const auto& item : list.children) {
    const xml::Element* name = item.child("Header");
    const xml::Element* value = item.child("Value");
    if (!name || !value) {
      return Error::invalidArgument(list.name + "." + item.name + ": needs Header and Value");
    }
    if (!headers.emplace(std::string(trim(name->text)), value->text).second) {
      return Error::invalidArgument(list.name + ": header '" + std::string(trim(name->text)) +
                                    "' given twice");
    }
  }
  return headers;
}

// Text inside CDATA, split where it holds "]]>" (which would end the section).
std::string cdata(std::string_view text) {
  std::string out = "<![CDATA[";
  for (size_t at = 0;;) {
    size_t end = text.find("]]>", at);
    if (end == std::string_view::npos) {
      out.append(text.substr(at));
      break;
    }
    out.append(text.substr(at, end + 2 - at));
    out += "]]><![CDATA[";
    at = end + 2;
  }
  return out + "]]>";
}

std::string element(std::string_view name, std::string_view text) {
  return fmt::format("<{0}>{1}</{0}>", name, xml::escape(text));
}

std::string entryBody(const registry::Installation& r, std::string_view collection_url) {
  const Kind& kind = kindOf(r);
  std::string id(registrationId(r));
  std::string self = fmt::format("{}/{}?api-version=2020-06", collection_url, id);
  std::string updated = registry::formatIsoTimeMs(r.last_update_ms);
  std::string d = fmt::format("<{}{} {}>", kind.name, kSuffix, kNamespaces);
  d += element("ETag", registry::registrationEtag(r));
  d += element("ExpirationTime", registry::formatIsoTime(r.expiration_unix));
  d += element("RegistrationId", id);
  // Omitted when empty: the SDK would read <Tags/> as one empty tag.
  if (!r.tags.empty()) d += element("Tags", fmt::format("{}", fmt::join(r.tags, ",")));
  if (r.registration && !r.registration->push_variables.empty()) {
    d += element("PushVariables", r.registration->push_variables);
  }
  d += element(kind.channel_element, r.push_channel);
  if (!r.templates.empty()) {
    const auto& [name, t] = *r.templates.begin();
    d += "<BodyTemplate>" + cdata(t.body) + "</BodyTemplate>";
    if (name != registry::kUnnamedTemplate) d += element("TemplateName", name);
    if (!t.expiry.empty()) d += element("Expiry", t.expiry);
    if (!kind.headers_element.empty() && !t.headers.empty()) {
      std::string_view item = kind.headers_element.substr(0, kind.headers_element.size() - 1);
      d += "<" + std::string(kind.headers_element) + ">";
      for (const auto& [header, value] : t.headers) {
        d += fmt::format("<{0}>{1}{2}</{0}>", item, element("Header", header),
                         element("Value", value));
      }
      d += "</" + std::string(kind.headers_element) + ">";
    }
  }
  d += fmt::format("</{}{}>", kind.name, kSuffix);
  return fmt::format(
      "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>{0}</id><title type=\"text\">{1}</title>"
      "<published>{2}</published><updated>{2}</updated><link rel=\"self\" href=\"{0}\"/>"
      "<content type=\"application/xml\">{3}</content></entry>",
      xml::escapeAttribute(self), xml::escape(id), updated, d);
}

// One `Field eq 'value'` of a $filter: the value unquoted ('' is a quote, as in OData).
struct Comparison {
  std::string field;
  std::string value;
};

Result<std::vector<Comparison>> comparisons(std::string_view filter) {
  std::vector<Comparison> out;
  std::string_view rest = trim(filter);
  while (!rest.empty()) {
    size_t space = rest.find(' ');
    if (space == std::string_view::npos) break;
    Comparison c{std::string(rest.substr(0, space)), {}};
    rest = trim(rest.substr(space));
    if (!rest.starts_with("eq ")) break;
    rest = trim(rest.substr(3));
    if (!rest.starts_with('\'')) break;
    rest.remove_prefix(1);
    size_t i = 0;
    for (;; ++i) {
      if (i >= rest.size()) return Error::invalidArgument("$filter: an unterminated value");
      if (rest[i] != '\'') {
        c.value += rest[i];
      } else if (i + 1 < rest.size() && rest[i + 1] == '\'') {
        c.value += rest[++i];  // '' is one quote
      } else {
        break;
      }
    }
    out.push_back(std::move(c));
    rest = trim(rest.substr(i + 1));
    if (rest.empty()) return out;
    if (!rest.starts_with("and ")) break;
    rest = trim(rest.substr(4));
  }
  return Error::invalidArgument(
      "$filter: not a query Notification Hubs supports (give one of DeviceToken, "
      "FcmV1RegistrationId, GcmRegistrationId or ChannelUri eq '<value>')");
}

}  // namespace

std::string_view registrationId(const registry::Installation& registration) {
  std::string_view id = registration.id;
  if (id.starts_with(registry::kRegistrationIdPrefix)) {
    id.remove_prefix(registry::kRegistrationIdPrefix.size());
  }
  return id;
}

Result<registry::Installation> registrationFromXml(std::string_view body,
                                                   std::string_view registration_id) {
  if (trim(body).empty()) {
    return Error::invalidArgument("entry: the body is empty; an Atom entry is required");
  }
  auto root = xml::parse(body, xml::Limits{16, 512});
  if (!root) return root.error();
  auto description = descriptionOf(*root);
  if (!description) return description.error();
  const xml::Element& d = **description;
  std::string_view name = d.name;
  if (!name.ends_with(kSuffix)) {
    return Error::invalidArgument("entry.content: <" + d.name +
                                  "> is not a {Kind}RegistrationDescription");
  }
  name.remove_suffix(kSuffix.size());
  const Kind* kind = nullptr;
  for (const auto& k : kKinds) {
    if (k.name == name) kind = &k;
  }
  if (!kind) {
    bool known =
        std::find(kUnservedKinds.begin(), kUnservedKinds.end(), name) != kUnservedKinds.end();
    return Error::invalidArgument(
        known ? fmt::format("{}{}: pushhub serves APNs, FCM and WNS, not this kind", name, kSuffix)
              : fmt::format("{}{}: unknown registration kind", name, kSuffix));
  }
  std::string field = d.name + ".";

  registry::Installation r;
  r.id = std::string(registry::kRegistrationIdPrefix) + std::string(registration_id);
  r.platform = kind->platform;
  r.registration = registry::RegistrationInfo{kind->gcm, {}};
  const xml::Element* channel = d.child(kind->channel_element);
  if (!channel || trim(channel->text).empty()) {
    return Error::invalidArgument(field + std::string(kind->channel_element) + ": is required");
  }
  r.push_channel = kind->platform == Platform::kApns ? upper(trim(channel->text))
                                                     : std::string(trim(channel->text));
  if (const xml::Element* tags = d.child("Tags")) {
    std::string_view rest = tags->text;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view tag = trim(rest.substr(0, comma));
      if (!tag.empty()) r.tags.emplace_back(tag);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (const xml::Element* vars = d.child("PushVariables"); vars && !trim(vars->text).empty()) {
    boost::system::error_code ec;
    auto parsed = boost::json::parse(vars->text, ec);
    if (ec || !parsed.is_object()) {
      return Error::invalidArgument(field + "PushVariables: must be a JSON object");
    }
    r.registration->push_variables = std::string(trim(vars->text));
  }
  if (const xml::Element* expiration = d.child("ExpirationTime")) {
    auto at = registry::parseIsoTime(trim(expiration->text), field + "ExpirationTime");
    if (!at) return at.error();
    r.expiration_unix = *at;
  }
  const xml::Element* body_template = d.child("BodyTemplate");
  if (kind->is_template != (body_template != nullptr)) {
    return Error::invalidArgument(field + "BodyTemplate: " +
                                  (kind->is_template ? "is required for a template registration"
                                                     : "is only for template registrations"));
  }
  if (body_template) {
    registry::InstallationTemplate t;
    t.body = body_template->text;
    if (const xml::Element* expiry = d.child("Expiry")) t.expiry = std::string(trim(expiry->text));
    if (!kind->headers_element.empty()) {
      if (const xml::Element* list = d.child(kind->headers_element)) {
        auto headers = headersOf(*list);
        if (!headers) return Error::invalidArgument(field + headers.error().message);
        t.headers = std::move(*headers);
      }
    }
    std::string template_name(registry::kUnnamedTemplate);
    if (const xml::Element* n = d.child("TemplateName"); n && !trim(n->text).empty()) {
      template_name = std::string(trim(n->text));
    }
    r.templates.emplace(std::move(template_name), std::move(t));
  }
  if (auto ok = registry::validateInstallation(r); !ok) {
    return Error::invalidArgument(field + ok.error().message);
  }
  return r;
}

std::string registrationEntryXml(const registry::Installation& registration,
                                 std::string_view collection_url) {
  return "<?xml version=\"1.0\" encoding=\"utf-8\"?>" + entryBody(registration, collection_url);
}

std::string registrationFeedXml(const std::vector<registry::Installation>& registrations,
                                std::string_view collection_url, std::string_view self_url) {
  std::string updated = registry::formatIsoTimeMs(0);
  int64_t latest = 0;
  for (const auto& r : registrations) latest = std::max(latest, r.last_update_ms);
  std::string out = fmt::format(
      "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">"
      "<title type=\"text\">Registrations</title><id>{0}</id><updated>{1}</updated>"
      "<link rel=\"self\" href=\"{0}\"/>",
      xml::escapeAttribute(self_url), registry::formatIsoTimeMs(latest));
  for (const auto& r : registrations) out += entryBody(r, collection_url);
  return out + "</feed>";
}

Result<ChannelFilter> parseRegistrationFilter(std::string_view filter) {
  auto parsed = comparisons(filter);
  if (!parsed) return parsed.error();
  if (parsed->size() == 1) {
    const Comparison& c = parsed->front();
    if (c.value.empty()) return Error::invalidArgument("$filter: " + c.field + " is empty");
    if (c.field == "DeviceToken") return ChannelFilter{Platform::kApns, upper(c.value)};
    if (c.field == "FcmV1RegistrationId" || c.field == "GcmRegistrationId") {
      return ChannelFilter{Platform::kFcm, c.value};
    }
    // The SDK percent-encodes the channel URI inside the literal: decoded once more here.
    if (c.field == "ChannelUri") return ChannelFilter{Platform::kWns, url::decode(c.value, false)};
  }
  return Error::invalidArgument(
      "$filter: '" + std::string(filter) +
      "' is not a lookup pushhub serves (DeviceToken, FcmV1RegistrationId, GcmRegistrationId or "
      "ChannelUri eq '<value>'; Browser, ADM and Baidu channels have no provider here)");
}

}  // namespace pushhub::gateway::rest
