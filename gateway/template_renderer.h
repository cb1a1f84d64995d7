#pragma once
// Renders an installation template with a notification's properties. This version knows the
// `$(name)` expression of Azure's template language: it is replaced by the property's value
// (names compare case-insensitively; a missing property renders empty). Values are escaped for
// the body's format, so a property cannot break out of a JSON string or an XML text node.
// Pure; any thread.

#include <map>
#include <string>
#include <string_view>

namespace pushhub::gateway {

enum class BodyFormat { kJson, kXml, kRaw };

// Properties with lower-cased names, as renderTemplate expects them.
using TemplateProperties = std::map<std::string, std::string, std::less<>>;

TemplateProperties normalizeProperties(const std::map<std::string, std::string>& properties);

std::string renderTemplate(std::string_view body, const TemplateProperties& properties,
                           BodyFormat format);

}  // namespace pushhub::gateway
