#include "gateway/rest_parse.h"

#include <boost/json.hpp>

#include <cctype>

#include <fmt/format.h>

#include "base/url_encoding.h"

namespace pushhub::gateway::rest {
namespace {

namespace json = boost::json;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool Target::flag(const std::string& name) const {
  auto it = query.find(name);
  return it != query.end() && lower(it->second) != "false";
}

Result<Target> parseTarget(std::string_view target) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.empty() || path.front() != '/') {
    return Error::invalidArgument("path: must start with '/'");
  }
  Target out;
  path.remove_prefix(1);
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view raw = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (raw.empty()) {
      if (path.empty()) break;  // a trailing slash
      return Error::invalidArgument("path: empty segment");
    }
    std::string lowered = lower(raw);
    if (lowered.find("%2f") != std::string::npos || lowered.find("%5c") != std::string::npos) {
      return Error::invalidArgument("path: an encoded '/' or '\\' is not allowed in a segment");
    }
    std::string segment = url::decode(raw, false);
    if (segment == "." || segment == "..") {
      return Error::invalidArgument("path: '.' and '..' segments are not allowed");
    }
    out.segments.push_back(std::move(segment));
  }
  if (out.segments.size() > 1) out.collection = lower(out.segments[1]);
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    out.query[url::decode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : url::decode(pair.substr(eq + 1));
  }
  return out;
}

namespace {

// The value of parameter `name` in a header value such as `multipart/mixed; boundary = "x"`.
std::optional<std::string> headerParameter(std::string_view value, std::string_view name) {
  std::string lowered = lower(value);
  size_t at = 0;
  while ((at = lowered.find(name, at)) != std::string::npos) {
    size_t i = at + name.size();
    at = i;
    while (i < value.size() && value[i] == ' ') ++i;
    if (i >= value.size() || value[i] != '=') continue;
    ++i;
    while (i < value.size() && value[i] == ' ') ++i;
    if (i < value.size() && value[i] == '"') {
      size_t end = value.find('"', i + 1);
      if (end == std::string_view::npos) return std::nullopt;
      return std::string(value.substr(i + 1, end - i - 1));
    }
    size_t end = value.find_first_of("; ", i);
    return std::string(value.substr(i, end == std::string_view::npos ? end : end - i));
  }
  return std::nullopt;
}

}  // namespace

Result<Batch> parseBatch(std::string_view content_type, std::string_view body) {
  if (lower(content_type).rfind("multipart/", 0) != 0) {
    return Error::invalidArgument("Content-Type: a batch is multipart/mixed, got '" +
                                  std::string(content_type) + "'");
  }
  auto boundary = headerParameter(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 200) {
    return Error::invalidArgument("Content-Type: the boundary parameter is missing or too long");
  }
  const std::string delimiter = "--" + *boundary;
  Batch out;
  bool have_notification = false, have_devices = false;
  size_t at = body.find(delimiter);
  while (at != std::string_view::npos) {
    size_t start = at + delimiter.size();
    if (body.substr(start, 2) == "--") break;  // the closing delimiter
    size_t next = body.find(delimiter, start);
    if (next == std::string_view::npos) {
      return Error::invalidArgument("body: a part is not closed by the boundary");
    }
    std::string_view part = body.substr(start, next - start);
    // Part headers end at the first empty line; the line break before the next delimiter
    // belongs to it.
    size_t blank = part.find("\r\n\r\n");
    size_t skip = 4;
    if (blank == std::string_view::npos) {
      blank = part.find("\n\n");
      skip = 2;
    }
    if (blank == std::string_view::npos) {
      return Error::invalidArgument("body: a part has no blank line after its headers");
    }
    std::string head = lower(part.substr(0, blank));
    std::string_view content = part.substr(blank + skip);
    if (content.size() >= 2 && content.substr(content.size() - 2) == "\r\n") {
      content.remove_suffix(2);
    } else if (!content.empty() && content.back() == '\n') {
      content.remove_suffix(1);
    }
    if (head.find("name=notification") != std::string::npos) {
      out.notification = std::string(content);
      have_notification = true;
    } else if (head.find("name=devices") != std::string::npos) {
      boost::system::error_code ec;
      json::value devices = json::parse(content, ec);
      if (ec) {  // the docs' examples quote with '
        std::string requoted(content);
        for (auto& c : requoted) c = c == '\'' ? '"' : c;
        devices = json::parse(requoted, ec);
      }
      if (ec || !devices.is_array()) {
        return Error::invalidArgument("body: the devices part must be a JSON array of handles");
      }
      for (size_t i = 0; i < devices.as_array().size(); ++i) {
        const auto& d = devices.as_array()[i];
        if (!d.is_string()) {
          return Error::invalidArgument(fmt::format("devices[{}]: must be a string", i));
        }
        out.devices.emplace_back(d.as_string());
      }
      have_devices = true;
    }
    at = next;
  }
  if (!have_notification || !have_devices) {
    return Error::invalidArgument(
        "body: a batch needs a part named notification and a part named devices");
  }
  if (out.devices.empty()) return Error::invalidArgument("devices: give 1 to 1000 handles");
  return out;
}

}  // namespace pushhub::gateway::rest
