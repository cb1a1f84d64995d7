#pragma once
// Azure's template language (../shared/spec/anh-wire.md 11.3 and azure-templates.md): a template
// body in its platform's format whose string values (JSON), attribute values and element texts
// (XML) may be expressions over a send's properties:
//
//   $(p)  $(p, n)  .(p, n)  %(p)  #(p)  'literal'  "literal"  {e1 + e2 + ...}
//
// A value is an expression only when its first character is one of `$ . % # {`, and then the
// expression is the whole value. Property names are [A-Za-z0-9_]{1,120}, matched without regard
// to case; a missing property renders empty. Clipping counts Unicode code points. Rendered
// values are escaped for where they land (JSON string, XML text or attribute); `#(p)` that is
// a whole JSON string value renders as a bare JSON number when the value is one.
//
// A template is compiled once (when it is registered: an invalid one is refused there, with the
// position and the rule) into literal runs and compiled expressions, and rendered per send
// without parsing again. Pure: no I/O; any thread; a CompiledTemplate is immutable and may be
// shared between threads.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace pushhub::expr {

enum class TemplateFormat : uint8_t {
  kJson,  // APNs, FCM: a JSON object (nesting at most kMaxJsonNesting)
  kXml,   // WNS toast, tile, badge: a well-formed XML document, no DOCTYPE
  kRaw,   // WNS raw: an XML document or a JSON object, whichever the body is
};

inline constexpr size_t kMaxPropertyNameLength = 120;
inline constexpr size_t kMaxJsonNesting = 32;
inline constexpr uint32_t kMaxClipLength = 2147483647;

// The properties of one send. Looked up without regard to case.
class Properties {
 public:
  Properties() = default;
  // Refuses (kInvalidArgument, naming the property) two names equal but for letter case and a
  // value that is not valid UTF-8. Other names are kept (a template can only name
  // [A-Za-z0-9_]{1,120}, so they are never read).
  static Result<Properties> make(std::vector<std::pair<std::string, std::string>> properties);

  // The value of `name` (any case), or nullptr.
  const std::string* find(std::string_view name) const;
  size_t size() const { return by_name_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> by_name_;  // lower-case name, sorted
};

class CompiledTemplate {
 public:
  // Parses `body` as a template of `format`. A refusal is kInvalidArgument naming the 0-based
  // byte position in `body` and the rule: "position 14: '$5 off' starts like an expression but
  // is not one". Callers prefix the field name.
  static Result<CompiledTemplate> compile(std::string_view body, TemplateFormat format);
  // One value outside a document (a header value, an APNs expiry): an expression when it starts
  // with one of `$ . % # {`, else plain text; rendered without escaping.
  static Result<CompiledTemplate> compileValue(std::string_view text);

  // The rendered body, or nullopt when it would be longer than `max_bytes` (rendering stops
  // there, so a template cannot allocate without bound).
  std::optional<std::string> render(const Properties& properties, size_t max_bytes) const;

  // True when the template has no expression (it renders to its body).
  bool isConstant() const;

  bool operator==(const CompiledTemplate&) const = default;

 private:
  // Implementation-defined compiled form: literal runs and expressions, in order.
  struct Piece {
    enum class Kind : uint8_t { kLiteral, kExpression };
    Kind kind = Kind::kLiteral;
    uint8_t escape = 0;  // how the value lands: JSON string, bare-or-quoted JSON, XML text, ...
    uint32_t first = 0;  // kLiteral: [first, first + length) of text_; kExpression: first term
    uint32_t length = 0;
    bool operator==(const Piece&) const = default;
  };
  struct Term {
    enum class Kind : uint8_t { kProperty, kClip, kEllipsis, kPercent, kNumber, kLiteral };
    Kind kind = Kind::kLiteral;
    uint32_t clip = 0;    // n of $(p, n) and .(p, n)
    uint32_t first = 0;   // [first, first + length) of text_: the lower-case property name, or
    uint32_t length = 0;  // the literal's text with its doubled quotes undone
    bool operator==(const Term&) const = default;
  };
  std::string text_;
  std::vector<Piece> pieces_;
  std::vector<Term> terms_;

  class Builder;   // template.cc: fills text_, pieces_ and terms_ from a body
  class Renderer;  // template.cc: evaluates pieces_ into a bounded output
};

}  // namespace pushhub::expr
