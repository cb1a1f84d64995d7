#include "gateway/template_renderer.h"

#include <cctype>
#include <cstdio>

namespace pushhub::gateway {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void appendEscaped(std::string& out, std::string_view value, BodyFormat format) {
  for (char c : value) {
    if (format == BodyFormat::kJson) {
      switch (c) {
        case '"': out += "\\\""; continue;
        case '\\': out += "\\\\"; continue;
        case '\n': out += "\\n"; continue;
        case '\r': out += "\\r"; continue;
        case '\t': out += "\\t"; continue;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            continue;
          }
      }
    } else if (format == BodyFormat::kXml) {
      switch (c) {
        case '<': out += "&lt;"; continue;
        case '>': out += "&gt;"; continue;
        case '&': out += "&amp;"; continue;
        case '"': out += "&quot;"; continue;
        case '\'': out += "&apos;"; continue;
        default: break;
      }
    }
    out += c;
  }
}

}  // namespace

TemplateProperties normalizeProperties(const std::map<std::string, std::string>& properties) {
  TemplateProperties out;
  for (const auto& [name, value] : properties) out[lower(name)] = value;
  return out;
}

std::string renderTemplate(std::string_view body, const TemplateProperties& properties,
                           BodyFormat format) {
  std::string out;
  out.reserve(body.size() + 64);
  size_t i = 0;
  while (i < body.size()) {
    size_t start = body.find("$(", i);
    if (start == std::string_view::npos) break;
    size_t end = body.find(')', start + 2);
    if (end == std::string_view::npos) break;
    out.append(body.substr(i, start - i));
    std::string name = lower(body.substr(start + 2, end - start - 2));
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    if (auto it = properties.find(name); it != properties.end()) {
      appendEscaped(out, it->second, format);
    }
    i = end + 1;
  }
  out.append(body.substr(i));
  return out;
}

}  // namespace pushhub::gateway
