#pragma once
// A small, strict XML reader for the documents clients send (Azure's registration entries,
// anh-wire.md 7.2): elements, attributes, character data, CDATA, comments and processing
// instructions. It builds a tree of at most `max_elements` elements nested at most `max_depth`
// deep, so a hostile document costs bounded memory and stack. A DOCTYPE is refused outright: no
// entity a document declares is ever expanded (no "billion laughs", no external entities).
// Namespaces are not resolved: an element keeps its prefix apart from its local name, and the
// caller decides what a prefix may be. Pure functions, any thread.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace pushhub::xml {

struct Element {
  std::string prefix;                                           // "" when the name has none
  std::string name;                                             // the local name
  std::vector<std::pair<std::string, std::string>> attributes;  // qualified name, decoded value
  std::string text;  // the element's own character data, entities decoded, CDATA merged in
  std::vector<Element> children;

  // The first child with this local name, or nullptr.
  const Element* child(std::string_view local_name) const;
};

struct Limits {
  size_t max_depth = 32;
  size_t max_elements = 4096;
};

// The document's root element. Errors are kInvalidArgument and say what is wrong and at which
// byte: not well-formed, a DOCTYPE, an unknown entity, a limit exceeded.
Result<Element> parse(std::string_view document, Limits limits = {});

// For element text: '&', '<' and '>' as entities; control characters XML 1.0 forbids become '?'.
std::string escape(std::string_view text);
// For a double-quoted attribute value: escape() and '"' as &quot;.
std::string escapeAttribute(std::string_view text);

}  // namespace pushhub::xml
