#include "expr/template.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "base/utf8.h"

// Decisions where azure-templates.md is silent (docs/ repeats them for users):
//
// Expressions
// - Whitespace (space, tab, CR, LF) may stand after `(` and `{`, before `)` and `}`, and around
//   `,` and `+`; nowhere else: not between the sigil and `(` (`$ (p)` is refused), not inside a
//   name or a length, not before the first character or after the last.
// - `{t}` with a single term is accepted; `{}` is refused. `#(p)` is refused anywhere inside
//   braces, even alone (`{#(p)}`): braces are the concatenation syntax.
// - A length n may have leading zeros (`$(p, 007)`); its `+` must touch the digits.
// - `%(p)` writes upper-case hex digits (`%C3%A9`).
// - Whether a value is an expression is decided on its decoded text (JSON escapes and XML
//   references resolved, XML line ends normalized, attribute whitespace normalized to spaces as
//   an XML parser would), and a literal's text is that decoded text: `"&#36;(p)"` is `$(p)`.
// - Refusal positions are exact: each decoded byte remembers the body byte (or the start of
//   the escape or reference) it came from.
//
// JSON
// - Keys are never expressions; a key that is a complete expression (`"$(p)": 1`) is refused
//   as a misplaced expression, any other key (`"$schema"`, `"#1"`) is kept as written.
// - Duplicate keys are not refused. A \u escape of a lone surrogate is refused (it has no UTF-8
//   form). Strings must be valid UTF-8. A byte order mark is not accepted.
// - Nesting counts objects and arrays; the top-level object is level 1.
//
// XML
// - Elements nest at most kMaxXmlNesting (64) levels, the root being level 1.
// - An element's text can be an expression only when it is the element's whole content: one run
//   of character data or one CDATA section, with no child element, comment, processing
//   instruction or second run beside it. Anything else is plain text.
// - Namespace declarations (`xmlns`, `xmlns:p`) are never expressions: the prefix check needs
//   their value fixed. `xmlns:p=""` is refused; `xml` is predeclared, `xmlns` is reserved.
// - Duplicate attributes are refused by their written (qualified) name.
// - The XML declaration must stand at byte 0 (even in a kRaw body: no leading whitespace then)
//   and is checked in full; the only encoding it may name is UTF-8 (any letter case). No entity
//   but the five predefined ones and character references; no DOCTYPE anywhere. A processing
//   instruction's target cannot contain ':' (Namespaces in XML).
// - Rendered XML: characters XML cannot carry at all (C0 controls other than tab, LF, CR, and
//   U+FFFE, U+FFFF) are written as U+FFFD, so the output stays well-formed.

namespace pushhub::expr {
namespace {

// Offsets into the body and text_ are uint32_t; nothing near this size is a template.
constexpr size_t kMaxBodyBytes = std::numeric_limits<uint32_t>::max() - 1;
constexpr size_t kMaxXmlNesting = 64;

// How an expression's text lands in the output (Piece::escape).
enum Escape : uint8_t {
  kEscapeNone,          // compileValue: as is
  kEscapeJsonString,    // replaces a whole JSON string token: quotes are written around it
  kEscapeJsonNumber,    // `#(p)` as a whole JSON string value: bare when the value is a number
  kEscapeXmlText,       // element text, or a CDATA section that held the expression
  kEscapeXmlAttribute,  // between an attribute's quotes
};

Error refuse(size_t position, std::string_view rule) {
  return Error::invalidArgument("position " + std::to_string(position) + ": " + std::string(rule));
}

// JSON, XML and the expressions share the same four whitespace characters.
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isPropertyNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '_';
}
bool isSigil(char c) { return c == '$' || c == '.' || c == '%' || c == '#' || c == '{'; }
char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// ---- UTF-8 --------------------------------------------------------------------------------------

// The length of the UTF-8 sequence at s[i] and its code point in `cp`; 0 when the bytes there
// are not one (truncated, overlong, a surrogate, above U+10FFFF).
size_t decodeUtf8(std::string_view s, size_t i, char32_t& cp) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t length;
  char32_t smallest;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, cp = b0 & 0x1F, smallest = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, cp = b0 & 0x0F, smallest = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, cp = b0 & 0x07, smallest = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  for (size_t k = 1; k < length; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

bool isValidUtf8(std::string_view s) {
  char32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t length = decodeUtf8(s, i, cp);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

bool isContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The byte length of the first `n` code points of valid UTF-8 `s` (all of it when shorter).
size_t codePointPrefix(std::string_view s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (isContinuationByte(s[i])) continue;
    if (count == n) return i;
    ++count;
  }
  return s.size();
}

// User text quoted for a refusal: at most `shown` bytes, cut between code points, with control
// characters blanked and bytes that are not UTF-8 as '?', so a message is always clean UTF-8.
std::string quoted(std::string_view text, size_t shown = 40) {
  std::string out = "'";
  char32_t cp;
  size_t i = 0;
  while (i < text.size() && out.size() <= shown) {
    size_t length = decodeUtf8(text, i, cp);
    if (length == 0) {
      out += '?';
      ++i;
    } else if (cp < 0x20) {
      out += ' ';
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  if (i < text.size()) out += "...";
  return out + "'";
}

// ---- XML characters and names -------------------------------------------------------------------

bool isXmlChar(char32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
         (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

// XML 1.0 (fifth edition) NameStartChar and NameChar.
bool isXmlNameStart(char32_t c) {
  return c == ':' || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) ||
         (c >= 0x370 && c <= 0x37D) || (c >= 0x37F && c <= 0x1FFF) ||
         (c >= 0x200C && c <= 0x200D) || (c >= 0x2070 && c <= 0x218F) ||
         (c >= 0x2C00 && c <= 0x2FEF) || (c >= 0x3001 && c <= 0xD7FF) ||
         (c >= 0xF900 && c <= 0xFDCF) || (c >= 0xFDF0 && c <= 0xFFFD) ||
         (c >= 0x10000 && c <= 0xEFFFF);
}
bool isXmlNameChar(char32_t c) {
  return isXmlNameStart(c) || c == '-' || c == '.' || (c >= '0' && c <= '9') || c == 0xB7 ||
         (c >= 0x300 && c <= 0x36F) || (c >= 0x203F && c <= 0x2040);
}

// ---- Values that may be expressions -------------------------------------------------------------

// Where each byte of a decoded value came from in the body, so refusals name body positions.
struct SourceMap {
  size_t base = 0;                                 // without offsets: byte i is at base + i
  const std::vector<uint32_t>* offsets = nullptr;  // else offsets[i]; offsets[size] is the end
  size_t at(size_t i) const { return offsets != nullptr ? (*offsets)[i] : base + i; }
};

// What the document scanners report to the compiler. A scanner only finds where values are;
// the compiler decides whether one is an expression and keeps the literal text around it.
class ValueSink {
 public:
  // A place where an expression may stand: body[begin, end) is the value as written (a whole
  // JSON string token, an element's text or CDATA section, an attribute value between its
  // quotes), `text` its decoded text, `map` where each byte of `text` came from.
  virtual Result<void> value(std::string_view text, const SourceMap& map, size_t begin, size_t end,
                             Escape escape) = 0;
  // Whether `text` is a complete expression (for places where one may not stand).
  virtual bool isExpression(std::string_view text) = 0;

 protected:
  ~ValueSink() = default;
};

// ---- JSON ---------------------------------------------------------------------------------------

// A strict RFC 8259 scanner for a template's body: validates it and reports every string value
// to the sink. Recursion is bounded by kMaxJsonNesting.
class JsonScanner {
 public:
  JsonScanner(std::string_view body, ValueSink& sink) : body_(body), sink_(sink) {}

  Result<void> scan() {
    skipSpace();
    if (pos_ == body_.size()) return refuse(pos_, "the body is empty: expected a JSON object");
    if (body_[pos_] != '{') {
      return refuse(pos_, "the top level of a JSON template must be an object");
    }
    if (auto ok = object(1); !ok) return ok;
    skipSpace();
    if (pos_ != body_.size()) return refuse(pos_, "unexpected text after the JSON object");
    return {};
  }

 private:
  void skipSpace() {
    while (pos_ < body_.size() && isSpace(body_[pos_])) ++pos_;
  }
  bool at(char c) const { return pos_ < body_.size() && body_[pos_] == c; }

  // `depth` is the level of the container about to open at pos_.
  Result<void> container(size_t depth) {
    if (depth > kMaxJsonNesting) {
      return refuse(pos_, "JSON nesting deeper than " + std::to_string(kMaxJsonNesting) +
                              " levels of objects and arrays");
    }
    return body_[pos_] == '{' ? object(depth) : array(depth);
  }

  Result<void> object(size_t depth) {
    ++pos_;
    skipSpace();
    if (at('}')) {
      ++pos_;
      return {};
    }
    while (true) {
      if (!at('"')) return refuse(pos_, "expected a string key");
      size_t key = pos_;
      if (auto ok = string(); !ok) return ok;
      if (!decoded_.empty() && isSigil(decoded_[0]) && sink_.isExpression(decoded_)) {
        return refuse(key, "an expression cannot be a JSON key");
      }
      skipSpace();
      if (!at(':')) return refuse(pos_, "expected ':' after the key");
      ++pos_;
      skipSpace();
      if (auto ok = value(depth); !ok) return ok;
      skipSpace();
      if (at('}')) {
        ++pos_;
        return {};
      }
      if (!at(',')) return refuse(pos_, "expected ',' or '}' after a member");
      ++pos_;
      skipSpace();
    }
  }

  Result<void> array(size_t depth) {
    ++pos_;
    skipSpace();
    if (at(']')) {
      ++pos_;
      return {};
    }
    while (true) {
      if (auto ok = value(depth); !ok) return ok;
      skipSpace();
      if (at(']')) {
        ++pos_;
        return {};
      }
      if (!at(',')) return refuse(pos_, "expected ',' or ']' after an element");
      ++pos_;
      skipSpace();
    }
  }

  // A value inside a container of level `depth`.
  Result<void> value(size_t depth) {
    if (pos_ == body_.size()) return refuse(pos_, "the body ends where a JSON value is expected");
    char c = body_[pos_];
    if (c == '{' || c == '[') return container(depth + 1);
    if (c == '"') {
      size_t begin = pos_;
      if (auto ok = string(); !ok) return ok;
      return sink_.value(decoded_, SourceMap{0, &offsets_}, begin, pos_, kEscapeJsonString);
    }
    if (c == '-' || isDigit(c)) return number();
    if (c == 't') return word("true");
    if (c == 'f') return word("false");
    if (c == 'n') return word("null");
    return refuse(pos_, "expected a JSON value");
  }

  Result<void> word(std::string_view w) {
    if (body_.substr(pos_, w.size()) != w) return refuse(pos_, "expected a JSON value");
    pos_ += w.size();
    return {};
  }

  Result<void> digits() {
    if (!(pos_ < body_.size() && isDigit(body_[pos_]))) {
      return refuse(pos_, "expected a digit in a number");
    }
    while (pos_ < body_.size() && isDigit(body_[pos_])) ++pos_;
    return {};
  }

  Result<void> number() {
    if (at('-')) ++pos_;
    if (at('0')) {
      ++pos_;
    } else if (auto ok = digits(); !ok) {
      return ok;
    }
    if (at('.')) {
      ++pos_;
      if (auto ok = digits(); !ok) return ok;
    }
    if (at('e') || at('E')) {
      ++pos_;
      if (at('+') || at('-')) ++pos_;
      if (auto ok = digits(); !ok) return ok;
    }
    return {};
  }

  void emit(std::string_view bytes, size_t source) {
    decoded_.append(bytes);
    offsets_.insert(offsets_.end(), bytes.size(), static_cast<uint32_t>(source));
  }

  // Four hex digits at body_[i], or nullopt.
  std::optional<char32_t> hex4(size_t i) const {
    if (i > body_.size() || body_.size() - i < 4) return std::nullopt;
    char32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = body_[i + k];
      int d = isDigit(c)               ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<char32_t>(d);
    }
    return v;
  }

  // The string at pos_ (its opening quote), decoded into decoded_ with offsets_.
  Result<void> string() {
    size_t start = pos_++;
    decoded_.clear();
    offsets_.clear();
    while (true) {
      if (pos_ >= body_.size()) return refuse(start, "a string is not closed");
      char c = body_[pos_];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) {
        return refuse(pos_, "a control character in a string must be escaped");
      }
      if (c == '\\') {
        if (auto ok = escape(start); !ok) return ok;
        continue;
      }
      char32_t cp;
      size_t length = decodeUtf8(body_, pos_, cp);
      if (length == 0) return refuse(pos_, "a string is not valid UTF-8");
      emit(body_.substr(pos_, length), pos_);
      pos_ += length;
    }
    offsets_.push_back(static_cast<uint32_t>(pos_));
    ++pos_;
    return {};
  }

  Result<void> escape(size_t string_start) {
    size_t start = pos_;
    if (pos_ + 1 >= body_.size()) return refuse(string_start, "a string is not closed");
    char e = body_[pos_ + 1];
    static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
    if (size_t k = kFrom.find(e); k != std::string_view::npos) {
      emit(kTo.substr(k, 1), start);
      pos_ += 2;
      return {};
    }
    if (e != 'u') return refuse(start, "invalid escape in a string");
    std::optional<char32_t> cp = hex4(pos_ + 2);
    if (!cp) return refuse(start, "\\u must be followed by four hex digits");
    pos_ += 6;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
      return refuse(start, "a \\u escape of a low surrogate must follow one of a high surrogate");
    }
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
      std::optional<char32_t> low;
      if (body_.substr(pos_, 2) == "\\u") low = hex4(pos_ + 2);
      if (!low || *low < 0xDC00 || *low > 0xDFFF) {
        return refuse(start, "a \\u escape of a high surrogate must be followed by a low one");
      }
      *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
      pos_ += 6;
    }
    std::string utf8;
    utf8::append(utf8, *cp);
    emit(utf8, start);
    return {};
  }

  std::string_view body_;
  ValueSink& sink_;
  size_t pos_ = 0;
  std::string decoded_;  // the last string read, decoded
  std::vector<uint32_t> offsets_;
};

// ---- XML ----------------------------------------------------------------------------------------

// A well-formedness scanner for a template's body (XML 1.0 and its namespaces, no DTD):
// reports every attribute value and every element's whole text to the sink. Iterative; the
// element stack is bounded by kMaxXmlNesting.
class XmlScanner {
 public:
  XmlScanner(std::string_view body, ValueSink& sink) : body_(body), sink_(sink) {}

  Result<void> scan() {
    if (auto ok = misc(); !ok) return ok;
    if (pos_ == body_.size()) return refuse(pos_, "an XML template needs a root element");
    if (body_[pos_] != '<') return refuse(pos_, "text cannot stand outside the root element");
    if (startsWith("<!")) return refuse(pos_, "expected the root element");
    if (auto ok = elements(); !ok) return ok;
    if (auto ok = misc(); !ok) return ok;
    if (pos_ != body_.size()) {
      return refuse(pos_,
                    "only comments, processing instructions and whitespace may follow the root "
                    "element");
    }
    return {};
  }

 private:
  struct Open {
    std::string_view name;
    size_t tag = 0;           // position of its '<'
    size_t declarations = 0;  // declared_.size() before its own declarations
    bool has_content = false;
  };
  struct Attribute {
    std::string_view name;
    size_t position = 0;
  };

  bool startsWith(std::string_view s) const { return body_.substr(pos_, s.size()) == s; }
  bool skipSpace() {
    size_t start = pos_;
    while (pos_ < body_.size() && isSpace(body_[pos_])) ++pos_;
    return pos_ != start;
  }

  // The length of the character at body_[i], refused unless it is valid UTF-8 and allowed in XML.
  Result<size_t> xmlChar(size_t i) const {
    char32_t cp;
    size_t length = decodeUtf8(body_, i, cp);
    if (length == 0) return refuse(i, "the body is not valid UTF-8");
    if (!isXmlChar(cp)) return refuse(i, "a character XML does not allow");
    return length;
  }

  Result<void> checkChars(size_t begin, size_t end) const {
    for (size_t i = begin; i < end;) {
      Result<size_t> length = xmlChar(i);
      if (!length) return length.error();
      i += *length;
    }
    return {};
  }

  std::string_view readName() {
    size_t start = pos_;
    char32_t cp;
    while (pos_ < body_.size()) {
      size_t length = decodeUtf8(body_, pos_, cp);
      if (length == 0 || !(pos_ == start ? isXmlNameStart(cp) : isXmlNameChar(cp))) break;
      pos_ += length;
    }
    return body_.substr(start, pos_ - start);
  }

  void emit(std::string_view bytes, size_t source) {
    decoded_.append(bytes);
    offsets_.insert(offsets_.end(), bytes.size(), static_cast<uint32_t>(source));
  }
  void startDecoding() {
    decoded_.clear();
    offsets_.clear();
  }
  SourceMap finishDecoding(size_t end) {
    offsets_.push_back(static_cast<uint32_t>(end));
    return SourceMap{0, &offsets_};
  }

  // Whitespace, comments and processing instructions around the root element.
  Result<void> misc() {
    while (true) {
      skipSpace();
      if (startsWith("<!--")) {
        if (auto ok = comment(); !ok) return ok;
      } else if (startsWith("<?")) {
        if (auto ok = processingInstruction(); !ok) return ok;
      } else if (startsWith("<!DOCTYPE")) {
        return refuse(pos_, "a DOCTYPE is not allowed in a template");
      } else {
        return {};
      }
    }
  }

  Result<void> comment() {
    size_t start = pos_;
    size_t end = body_.find("--", pos_ + 4);
    if (end == std::string_view::npos) return refuse(start, "a comment is not closed with '-->'");
    if (end + 2 >= body_.size() || body_[end + 2] != '>') {
      return refuse(end, "'--' is not allowed inside a comment");
    }
    if (auto ok = checkChars(pos_ + 4, end); !ok) return ok;
    pos_ = end + 3;
    return {};
  }

  // `<?target ...?>`; the target `xml` is the XML declaration, allowed only at byte 0.
  Result<void> processingInstruction() {
    size_t start = pos_;
    pos_ += 2;
    std::string_view target = readName();
    if (target.empty()) return refuse(pos_, "expected a target name after '<?'");
    if (target.find(':') != std::string_view::npos) {
      return refuse(start + 2, "a processing instruction's target cannot contain ':'");
    }
    bool declaration = target.size() == 3 && lowerAscii(target[0]) == 'x' &&
                       lowerAscii(target[1]) == 'm' && lowerAscii(target[2]) == 'l';
    if (declaration && (start != 0 || target != "xml")) {
      return refuse(start, "the XML declaration '<?xml' may only stand at the very start");
    }
    size_t end = body_.find("?>", pos_);
    if (end == std::string_view::npos) {
      return refuse(start, "a processing instruction is not closed with '?>'");
    }
    if (pos_ != end && !isSpace(body_[pos_])) {
      return refuse(pos_, "expected whitespace or '?>' after the target");
    }
    if (declaration) {
      if (auto ok = xmlDeclaration(end); !ok) return ok;
    } else if (auto ok = checkChars(pos_, end); !ok) {
      return ok;
    }
    pos_ = end + 2;
    return {};
  }

  // After `<?xml`, up to `end` (its `?>`):
  //   S "version" Eq ('1.' [0-9]+) (S "encoding" Eq EncName)? (S "standalone" Eq (yes|no))? S?
  // with each value in ' or ". The body is UTF-8, so the only encoding it may declare is UTF-8.
  Result<void> xmlDeclaration(size_t end) {
    auto pseudoAttribute = [&](std::string_view name) -> std::optional<std::string_view> {
      if (body_.substr(pos_, name.size()) != name) return std::nullopt;
      pos_ += name.size();
      skipSpace();
      if (pos_ >= end || body_[pos_] != '=') return std::nullopt;
      ++pos_;
      skipSpace();
      if (pos_ >= end || (body_[pos_] != '"' && body_[pos_] != '\'')) return std::nullopt;
      size_t close = body_.find(body_[pos_], pos_ + 1);
      if (close >= end) return std::nullopt;
      std::string_view value = body_.substr(pos_ + 1, close - pos_ - 1);
      pos_ = close + 1;
      return value;
    };
    bool spaced = skipSpace();
    size_t at = pos_;
    std::optional<std::string_view> version;
    if (spaced) version = pseudoAttribute("version");
    if (!version || version->size() < 3 || version->substr(0, 2) != "1." ||
        !std::all_of(version->begin() + 2, version->end(), isDigit)) {
      return refuse(at, "the XML declaration must start with version=\"1.0\"");
    }
    spaced = skipSpace();
    if (spaced && startsWith("encoding")) {
      at = pos_;
      std::optional<std::string_view> encoding = pseudoAttribute("encoding");
      if (!encoding || encoding->size() != 5 || lowerAscii((*encoding)[0]) != 'u' ||
          lowerAscii((*encoding)[1]) != 't' || lowerAscii((*encoding)[2]) != 'f' ||
          encoding->substr(3) != "-8") {
        return refuse(at,
                      "a template is UTF-8: the XML declaration may only say encoding=\"utf-8\"");
      }
      spaced = skipSpace();
    }
    if (spaced && startsWith("standalone")) {
      at = pos_;
      std::optional<std::string_view> standalone = pseudoAttribute("standalone");
      if (!standalone || (*standalone != "yes" && *standalone != "no")) {
        return refuse(at, "standalone in the XML declaration is \"yes\" or \"no\"");
      }
      skipSpace();
    }
    if (pos_ != end) return refuse(pos_, "expected '?>' to end the XML declaration");
    return {};
  }

  // `&name;` or a character reference at pos_, decoded.
  Result<void> reference() {
    size_t start = pos_++;
    if (pos_ < body_.size() && body_[pos_] == '#') {
      ++pos_;
      bool hex = pos_ < body_.size() && body_[pos_] == 'x';
      if (hex) ++pos_;
      size_t first_digit = pos_;
      char32_t cp = 0;
      while (pos_ < body_.size()) {
        char c = body_[pos_];
        int d = isDigit(c)                      ? c - '0'
                : hex && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : hex && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                : -1;
        if (d < 0) break;
        if (cp <= 0x10FFFF) cp = cp * (hex ? 16 : 10) + static_cast<char32_t>(d);
        ++pos_;
      }
      if (pos_ == first_digit || pos_ >= body_.size() || body_[pos_] != ';') {
        return refuse(start, "a character reference is &#digits; or &#xhex-digits;");
      }
      ++pos_;
      if (!isXmlChar(cp)) {
        return refuse(start, "a character reference must name a character XML allows");
      }
      std::string utf8;
      utf8::append(utf8, cp);
      emit(utf8, start);
      return {};
    }
    size_t name = pos_;
    while (pos_ < body_.size() && pos_ - name < 5 && body_[pos_] >= 'a' && body_[pos_] <= 'z') {
      ++pos_;
    }
    std::string_view entity = body_.substr(name, pos_ - name);
    static constexpr std::pair<std::string_view, std::string_view> kEntities[] = {
        {"lt", "<"}, {"gt", ">"}, {"amp", "&"}, {"quot", "\""}, {"apos", "'"}};
    if (pos_ < body_.size() && body_[pos_] == ';') {
      for (const auto& [known, text] : kEntities) {
        if (entity == known) {
          ++pos_;
          emit(text, start);
          return {};
        }
      }
    }
    return refuse(start,
                  "'&' must start &lt; &gt; &amp; &quot; &apos; or a character reference (a "
                  "template has no DTD)");
  }

  // Character data up to the next '<' (or the end), decoded into decoded_.
  Result<void> charData() {
    startDecoding();
    while (pos_ < body_.size() && body_[pos_] != '<') {
      char c = body_[pos_];
      if (c == '&') {
        if (auto ok = reference(); !ok) return ok;
      } else if (c == '\r') {
        emit("\n", pos_);
        pos_ += startsWith("\r\n") ? 2 : 1;
      } else if (c == ']' && startsWith("]]>")) {
        return refuse(pos_, "']]>' is not allowed in text");
      } else {
        Result<size_t> length = xmlChar(pos_);
        if (!length) return length.error();
        emit(body_.substr(pos_, *length), pos_);
        pos_ += *length;
      }
    }
    return {};
  }

  // An attribute value after its opening quote, decoded (and whitespace-normalized as an XML
  // parser would) into decoded_; pos_ ends on the closing quote.
  Result<void> attributeValue(char quote) {
    size_t open = pos_ - 1;
    startDecoding();
    while (true) {
      if (pos_ >= body_.size()) return refuse(open, "an attribute value is not closed");
      char c = body_[pos_];
      if (c == quote) return {};
      if (c == '<') return refuse(pos_, "'<' is not allowed in an attribute value");
      if (c == '&') {
        if (auto ok = reference(); !ok) return ok;
      } else if (c == '\r' || c == '\n' || c == '\t') {
        emit(" ", pos_);
        pos_ += startsWith("\r\n") ? 2 : 1;
      } else {
        Result<size_t> length = xmlChar(pos_);
        if (!length) return length.error();
        emit(body_.substr(pos_, *length), pos_);
        pos_ += *length;
      }
    }
  }

  // The root element and everything inside it.
  Result<void> elements() {
    if (auto ok = startTag(); !ok) return ok;
    while (!open_.empty()) {
      if (pos_ >= body_.size()) {
        return refuse(open_.back().tag,
                      "element '" + std::string(open_.back().name) + "' is not closed");
      }
      Result<void> ok;
      if (body_[pos_] != '<') {
        ok = text();
      } else if (startsWith("</")) {
        ok = endTag();
      } else if (startsWith("<![CDATA[")) {
        ok = cdata();
      } else if (startsWith("<!--")) {
        open_.back().has_content = true;
        ok = comment();
      } else if (startsWith("<?")) {
        open_.back().has_content = true;
        ok = processingInstruction();
      } else if (startsWith("<!DOCTYPE")) {
        ok = refuse(pos_, "a DOCTYPE is not allowed in a template");
      } else if (startsWith("<!")) {
        ok = refuse(pos_, "expected '<!--' or '<![CDATA[' after '<!'");
      } else {
        open_.back().has_content = true;
        ok = startTag();
      }
      if (!ok) return ok;
    }
    return {};
  }

  // Whether the node just read (begun when the element had no content) is the element's whole
  // content: the next thing is its end tag.
  bool wholeContent(bool first) const { return first && startsWith("</"); }

  Result<void> text() {
    size_t begin = pos_;
    bool first = !std::exchange(open_.back().has_content, true);
    if (auto ok = charData(); !ok) return ok;
    if (!wholeContent(first)) return {};
    return sink_.value(decoded_, finishDecoding(pos_), begin, pos_, kEscapeXmlText);
  }

  Result<void> cdata() {
    size_t begin = pos_;
    bool first = !std::exchange(open_.back().has_content, true);
    pos_ += 9;
    size_t end = body_.find("]]>", pos_);
    if (end == std::string_view::npos) {
      return refuse(begin, "a CDATA section is not closed with ']]>'");
    }
    startDecoding();
    while (pos_ < end) {
      if (body_[pos_] == '\r') {
        emit("\n", pos_);
        pos_ += startsWith("\r\n") ? 2 : 1;
        continue;
      }
      Result<size_t> length = xmlChar(pos_);
      if (!length) return length.error();
      emit(body_.substr(pos_, *length), pos_);
      pos_ += *length;
    }
    SourceMap map = finishDecoding(end);
    pos_ = end + 3;
    if (!wholeContent(first)) return {};
    return sink_.value(decoded_, map, begin, pos_, kEscapeXmlText);
  }

  Result<void> startTag() {
    size_t tag = pos_;
    if (open_.size() >= kMaxXmlNesting) {
      return refuse(tag,
                    "XML elements nest deeper than " + std::to_string(kMaxXmlNesting) + " levels");
    }
    ++pos_;
    size_t name_position = pos_;
    std::string_view name = readName();
    if (name.empty()) return refuse(pos_, "expected an element name after '<'");
    size_t declarations = declared_.size();
    attributes_.clear();
    bool empty_element = false;
    while (true) {
      bool spaced = skipSpace();
      if (pos_ >= body_.size()) {
        return refuse(tag, "the start tag of '" + std::string(name) + "' is not closed");
      }
      if (body_[pos_] == '>') {
        ++pos_;
        break;
      }
      if (startsWith("/>")) {
        pos_ += 2;
        empty_element = true;
        break;
      }
      if (!spaced) return refuse(pos_, "expected whitespace, '>' or '/>' in a start tag");
      if (auto ok = attribute(); !ok) return ok;
    }
    if (auto ok = checkAttributes(); !ok) return ok;
    if (auto ok = checkPrefix(name, name_position, false); !ok) return ok;
    if (empty_element) {
      undeclare(declarations);
    } else {
      open_.push_back(Open{name, tag, declarations, false});
    }
    return {};
  }

  Result<void> attribute() {
    size_t name_position = pos_;
    std::string_view name = readName();
    if (name.empty()) return refuse(pos_, "expected an attribute name, '>' or '/>'");
    skipSpace();
    if (pos_ >= body_.size() || body_[pos_] != '=') {
      return refuse(pos_, "expected '=' after the attribute name");
    }
    ++pos_;
    skipSpace();
    if (pos_ >= body_.size() || (body_[pos_] != '"' && body_[pos_] != '\'')) {
      return refuse(pos_, "an attribute value must be quoted with \" or '");
    }
    char quote = body_[pos_++];
    size_t begin = pos_;
    if (auto ok = attributeValue(quote); !ok) return ok;
    size_t end = pos_++;
    attributes_.push_back(Attribute{name, name_position});
    if (name == "xmlns") return {};
    if (name.substr(0, 6) == "xmlns:") {
      std::string_view prefix = name.substr(6);
      if (prefix == "xmlns") return refuse(name_position, "the prefix xmlns cannot be declared");
      if (decoded_.empty()) {
        return refuse(begin, "a namespace prefix cannot be bound to an empty name");
      }
      ++scope_[prefix];
      declared_.push_back(prefix);
      return {};
    }
    return sink_.value(decoded_, finishDecoding(end), begin, end, kEscapeXmlAttribute);
  }

  Result<void> checkAttributes() {
    std::sort(attributes_.begin(), attributes_.end(), [](const Attribute& a, const Attribute& b) {
      return a.name != b.name ? a.name < b.name : a.position < b.position;
    });
    for (size_t i = 0; i < attributes_.size(); ++i) {
      const Attribute& a = attributes_[i];
      if (i > 0 && attributes_[i - 1].name == a.name) {
        return refuse(a.position, "attribute '" + std::string(a.name) + "' appears twice");
      }
      if (auto ok = checkPrefix(a.name, a.position, true); !ok) return ok;
    }
    return {};
  }

  // Namespaces in XML: a qualified name is prefix:local, and its prefix must be in scope.
  Result<void> checkPrefix(std::string_view name, size_t position, bool attribute) const {
    size_t colon = name.find(':');
    if (colon == std::string_view::npos) return {};
    char32_t cp = 0;
    if (colon == 0 || colon + 1 == name.size() ||
        name.find(':', colon + 1) != std::string_view::npos ||
        decodeUtf8(name, colon + 1, cp) == 0 || !isXmlNameStart(cp)) {
      return refuse(position, "'" + std::string(name) + "' is not a valid prefix:local name");
    }
    std::string_view prefix = name.substr(0, colon);
    if (prefix == "xml") return {};
    if (prefix == "xmlns") {
      if (attribute) return {};
      return refuse(position, "an element cannot have the prefix xmlns");
    }
    auto it = scope_.find(prefix);
    if (it == scope_.end() || it->second == 0) {
      return refuse(position, "the namespace prefix '" + std::string(prefix) + "' is not declared");
    }
    return {};
  }

  void undeclare(size_t keep) {
    while (declared_.size() > keep) {
      --scope_[declared_.back()];
      declared_.pop_back();
    }
  }

  Result<void> endTag() {
    pos_ += 2;
    size_t name_position = pos_;
    std::string_view name = readName();
    if (name.empty()) return refuse(pos_, "expected an element name after '</'");
    skipSpace();
    if (pos_ >= body_.size() || body_[pos_] != '>') {
      return refuse(pos_, "expected '>' after '</name'");
    }
    const Open& open = open_.back();
    if (name != open.name) {
      return refuse(name_position, "end tag '" + std::string(name) + "' does not match '" +
                                       std::string(open.name) + "' opened at position " +
                                       std::to_string(open.tag));
    }
    ++pos_;
    undeclare(open.declarations);
    open_.pop_back();
    return {};
  }

  std::string_view body_;
  ValueSink& sink_;
  size_t pos_ = 0;
  std::vector<Open> open_;
  std::vector<Attribute> attributes_;                     // of the start tag being read
  std::unordered_map<std::string_view, uint32_t> scope_;  // prefix -> declarations in scope
  std::vector<std::string_view> declared_;                // in order, to undo at end tags
  std::string decoded_;                                   // the last value read, decoded
  std::vector<uint32_t> offsets_;
};

// ---- Rendering helpers --------------------------------------------------------------------------

// The rendered output, never longer than max_bytes: a write that would pass it fails, and the
// buffer grows by hand so its capacity stays within max_bytes too (std::string's own doubling
// could allocate twice the limit).
class Writer {
 public:
  Writer(size_t max_bytes, size_t expected) : max_(max_bytes) {
    out_.reserve(std::min(max_bytes, expected));
  }

  bool put(std::string_view s) {
    if (s.size() > max_ - out_.size()) return false;
    if (s.size() > out_.capacity() - out_.size()) {
      size_t needed = out_.size() + s.size();
      std::string bigger;
      bigger.reserve(std::max(needed, std::min(max_, out_.capacity() * 2)));
      bigger.append(out_);
      out_.swap(bigger);
    }
    out_.append(s);
    return true;
  }

  std::string take() && { return std::move(out_); }

 private:
  size_t max_;
  std::string out_;
};

// The replacement for one byte in a JSON string, or empty when it goes as is.
std::string_view jsonEscapeOf(unsigned char c, char (&buffer)[6]) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    default:
      break;
  }
  if (c >= 0x20) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  buffer[0] = '\\', buffer[1] = 'u', buffer[2] = '0', buffer[3] = '0';
  buffer[4] = kHex[c >> 4], buffer[5] = kHex[c & 0xF];
  return std::string_view(buffer, 6);
}

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// The replacement for the character at s[i] in XML and how many bytes it replaces, or an empty
// replacement when it goes as is.
std::string_view xmlEscapeOf(std::string_view s, size_t i, bool attribute, size_t& length) {
  length = 1;
  auto c = static_cast<unsigned char>(s[i]);
  switch (c) {
    case '&':
      return "&amp;";
    case '<':
      return "&lt;";
    case '>':
      return "&gt;";
    case '"':
      return "&quot;";
    case '\'':
      return "&apos;";
    case '\t':
      return attribute ? "&#9;" : std::string_view();
    case '\n':
      return attribute ? "&#10;" : std::string_view();
    case '\r':
      return attribute ? "&#13;" : std::string_view();
    default:
      break;
  }
  if (c < 0x20) return kReplacementCharacter;
  // U+FFFE and U+FFFF are valid UTF-8 but not XML characters.
  if (c == 0xEF && s.size() - i >= 3 && static_cast<unsigned char>(s[i + 1]) == 0xBF &&
      (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xBE) {
    length = 3;
    return kReplacementCharacter;
  }
  return {};
}

// Writes `s` escaped for where it lands, in runs between the bytes that need escaping.
bool putEscaped(Writer& out, uint8_t escape, std::string_view s) {
  if (escape == kEscapeNone) return out.put(s);
  bool json = escape == kEscapeJsonString || escape == kEscapeJsonNumber;
  bool attribute = escape == kEscapeXmlAttribute;
  size_t run = 0;
  char buffer[6];
  for (size_t i = 0; i < s.size();) {
    size_t length = 1;
    std::string_view replacement = json ? jsonEscapeOf(static_cast<unsigned char>(s[i]), buffer)
                                        : xmlEscapeOf(s, i, attribute, length);
    if (replacement.empty()) {
      ++i;
      continue;
    }
    if (!out.put(s.substr(run, i - run)) || !out.put(replacement)) return false;
    i += length;
    run = i;
  }
  return out.put(s.substr(run));
}

// `%(p)`: UTF-8 bytes outside RFC 3986's unreserved set as %XX. The result needs no further
// escaping in any format (it is all unreserved characters and '%').
bool putPercentEncoded(Writer& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (isPropertyNameChar(c) || c == '-' || c == '.' || c == '~') continue;
    auto b = static_cast<unsigned char>(c);
    char encoded[3] = {'%', kHex[b >> 4], kHex[b & 0xF]};
    if (!out.put(s.substr(run, i - run)) || !out.put(std::string_view(encoded, 3))) return false;
    run = i + 1;
  }
  return out.put(s.substr(run));
}

// (0|([1-9][0-9]*))(\.[0-9]+)?((e|E)(\+|-)?[0-9]+)?, the numbers `#(p)` writes bare.
bool isJsonNumberText(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && isDigit(s[i])) ++i;
    return i > start;
  };
  if (s.empty()) return false;
  if (s[0] == '0') {
    i = 1;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

}  // namespace

// ---- Properties ---------------------------------------------------------------------------------

namespace {

// Longer than any name a template can read, so such names are quoted whole in refusals.
constexpr size_t kShownName = kMaxPropertyNameLength + 8;

// Compares a lower-case stored name with `name` lower-cased on the fly, byte by byte as
// unsigned, the order std::string sorts in, so lookups need no lower-case copy.
int compareFolded(std::string_view lower, std::string_view name) {
  size_t n = std::min(lower.size(), name.size());
  for (size_t i = 0; i < n; ++i) {
    auto a = static_cast<unsigned char>(lower[i]);
    auto b = static_cast<unsigned char>(lowerAscii(name[i]));
    if (a != b) return a < b ? -1 : 1;
  }
  return lower.size() < name.size() ? -1 : lower.size() > name.size() ? 1 : 0;
}

}  // namespace

Result<Properties> Properties::make(std::vector<std::pair<std::string, std::string>> properties) {
  for (const auto& [name, value] : properties) {
    if (!isValidUtf8(value)) {
      return Error::invalidArgument("properties: the value of " + quoted(name, kShownName) +
                                    " is not valid UTF-8");
    }
  }
  std::vector<std::string> lower(properties.size());
  for (size_t i = 0; i < properties.size(); ++i) {
    lower[i] = properties[i].first;
    for (char& c : lower[i]) c = lowerAscii(c);
  }
  // Stable, so a refusal names the two properties in the order they were given.
  std::vector<size_t> order(properties.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return lower[a] < lower[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    if (lower[order[k - 1]] != lower[order[k]]) continue;
    const std::string& a = properties[order[k - 1]].first;
    const std::string& b = properties[order[k]].first;
    return Error::invalidArgument(a == b
                                      ? "properties: " + quoted(a, kShownName) + " is given twice"
                                      : "properties: " + quoted(a, kShownName) + " and " +
                                            quoted(b, kShownName) + " differ only by letter case");
  }
  Properties result;
  result.by_name_.reserve(order.size());
  for (size_t i : order) {
    result.by_name_.emplace_back(std::move(lower[i]), std::move(properties[i].second));
  }
  return result;
}

const std::string* Properties::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [](const std::pair<std::string, std::string>& entry,
                                std::string_view n) { return compareFolded(entry.first, n) < 0; });
  if (it == by_name_.end() || compareFolded(it->first, name) != 0) return nullptr;
  return &it->second;
}

// ---- Compiling ----------------------------------------------------------------------------------

// Keeps the body's text between values as literal pieces and parses the values that start like
// an expression into terms:
//
//   value := term | "{" ws term (ws "+" ws term)* ws "}"
//   term  := "$(" ws name ws ("," ws n ws)? ")"  |  ".(" ws name ws "," ws n ws ")"
//          | "%(" ws name ws ")"  |  "#(" ws name ws ")"          (not inside braces)
//          | "'" ([^'] | "''")* "'"  |  '"' ([^"] | '""')* '"'   (only inside braces)
//   name  := [A-Za-z0-9_]{1,120}      n := "+"? [0-9]+  (at most 2147483647)
//   ws    := [ \t\r\n]*
class CompiledTemplate::Builder final : public ValueSink {
 public:
  explicit Builder(std::string_view body) : body_(body) {}

  Result<void> value(std::string_view text, const SourceMap& map, size_t begin, size_t end,
                     Escape escape) override {
    if (text.empty() || !isSigil(text[0])) return {};  // plain: stays in the literal run
    copyLiteralUpTo(begin);
    auto first = static_cast<uint32_t>(t_.terms_.size());
    if (auto ok = parse(text, map); !ok) return ok;
    Piece piece{Piece::Kind::kExpression, escape, first,
                static_cast<uint32_t>(t_.terms_.size() - first)};
    if (escape == kEscapeJsonString && t_.terms_[first].kind == Term::Kind::kNumber) {
      piece.escape = kEscapeJsonNumber;
    }
    t_.pieces_.push_back(piece);
    literal_from_ = end;
    return {};
  }

  bool isExpression(std::string_view text) override {
    size_t text_size = t_.text_.size(), terms = t_.terms_.size();
    bool ok = parse(text, SourceMap{}).has_value();
    t_.text_.resize(text_size);
    t_.terms_.resize(terms);
    return ok;
  }

  CompiledTemplate finish() && {
    copyLiteralUpTo(body_.size());
    return std::move(t_);
  }

 private:
  void copyLiteralUpTo(size_t end) {
    if (end > literal_from_) {
      t_.pieces_.push_back(Piece{Piece::Kind::kLiteral, kEscapeNone,
                                 static_cast<uint32_t>(t_.text_.size()),
                                 static_cast<uint32_t>(end - literal_from_)});
      t_.text_.append(body_.substr(literal_from_, end - literal_from_));
    }
    literal_from_ = end;
  }

  // A refusal at byte i of the expression.
  Error fail(size_t i, std::string_view rule) const {
    return refuse(map_.at(i), std::string(rule) + " (in the expression " + quoted(expr_) + ")");
  }

  void skipSpace() {
    while (i_ < expr_.size() && isSpace(expr_[i_])) ++i_;
  }

  Result<void> parse(std::string_view text, const SourceMap& map) {
    expr_ = text;
    map_ = map;
    i_ = 0;
    bool braces = expr_[0] == '{';
    if (braces) {
      ++i_;
      skipSpace();
      while (true) {
        if (auto ok = term(true); !ok) return ok;
        skipSpace();
        if (i_ == expr_.size()) return fail(i_, "'{' is not closed: expected '+' or '}'");
        if (expr_[i_] == '}') break;
        if (expr_[i_] != '+') return fail(i_, "expected '+' or '}' after a term");
        ++i_;
        skipSpace();
      }
      ++i_;
    } else if (auto ok = term(false); !ok) {
      return ok;
    }
    if (i_ == expr_.size()) return {};
    size_t next = i_;
    while (next < expr_.size() && isSpace(expr_[next])) ++next;
    if (!braces && next < expr_.size() && expr_[next] == '+') {
      return fail(i_, "a concatenation must be written in braces: {e1 + e2}");
    }
    return fail(i_, "nothing may follow a complete expression, not even whitespace");
  }

  Result<void> term(bool in_braces) {
    static constexpr std::string_view kTerms =
        "expected a term: $(p), $(p, n), .(p, n), %(p), 'text' or \"text\"";
    if (i_ == expr_.size()) return fail(i_, kTerms);
    char sigil = expr_[i_];
    if (in_braces && (sigil == '\'' || sigil == '"')) return literal();
    if (in_braces && sigil == '{') return fail(i_, "braces do not nest");
    Term t;
    switch (sigil) {
      case '$':
        t.kind = Term::Kind::kProperty;
        break;
      case '.':
        t.kind = Term::Kind::kEllipsis;
        break;
      case '%':
        t.kind = Term::Kind::kPercent;
        break;
      case '#':
        if (in_braces) return fail(i_, "#(p) cannot be part of a concatenation");
        t.kind = Term::Kind::kNumber;
        break;
      default:
        return fail(i_, kTerms);
    }
    std::string open = "expected '(' after '" + std::string(1, sigil) + "'";
    if (i_ + 1 >= expr_.size() || expr_[i_ + 1] != '(') {
      if (in_braces) return fail(i_ + 1, open);
      return refuse(map_.at(i_ + 1),
                    quoted(expr_) + " starts like an expression but is not one (" + open + ")");
    }
    i_ += 2;
    skipSpace();
    size_t name = i_;
    while (i_ < expr_.size() && isPropertyNameChar(expr_[i_])) ++i_;
    if (i_ == name) return fail(i_, "expected a property name of [A-Za-z0-9_]");
    if (i_ - name > kMaxPropertyNameLength) {
      return fail(name, "a property name is at most " + std::to_string(kMaxPropertyNameLength) +
                            " characters");
    }
    t.first = static_cast<uint32_t>(t_.text_.size());
    t.length = static_cast<uint32_t>(i_ - name);
    for (char c : expr_.substr(name, i_ - name)) t_.text_ += lowerAscii(c);
    skipSpace();
    bool has_length = i_ < expr_.size() && expr_[i_] == ',';
    if (has_length) {
      if (t.kind == Term::Kind::kPercent || t.kind == Term::Kind::kNumber) {
        return fail(i_, std::string(1, sigil) + "(p) takes no length");
      }
      ++i_;
      skipSpace();
      Result<uint32_t> n = length();
      if (!n) return n.error();
      t.clip = *n;
      if (t.kind == Term::Kind::kProperty) t.kind = Term::Kind::kClip;
      skipSpace();
    } else if (t.kind == Term::Kind::kEllipsis) {
      return fail(i_, "expected ',': .(p, n) needs a length n");
    }
    if (i_ == expr_.size() || expr_[i_] != ')') {
      return fail(i_, has_length                        ? "expected ')' after the length"
                      : t.kind == Term::Kind::kProperty ? "expected ',' or ')' after the name"
                                                        : "expected ')' after the name");
    }
    ++i_;
    t_.terms_.push_back(t);
    return {};
  }

  Result<uint32_t> length() {
    size_t start = i_;
    if (i_ < expr_.size() && expr_[i_] == '+') ++i_;
    size_t digits = i_;
    uint64_t n = 0;
    for (; i_ < expr_.size() && isDigit(expr_[i_]); ++i_) {
      if (n <= kMaxClipLength) n = n * 10 + static_cast<uint64_t>(expr_[i_] - '0');
    }
    if (i_ == digits) {
      return fail(start, "expected a length: a decimal integer from 0 to " +
                             std::to_string(kMaxClipLength));
    }
    if (n > kMaxClipLength) {
      return fail(start, "a length is at most " + std::to_string(kMaxClipLength));
    }
    return static_cast<uint32_t>(n);
  }

  // 'text' or "text"; the quote is written twice inside.
  Result<void> literal() {
    char quote = expr_[i_];
    size_t start = i_++;
    Term t{Term::Kind::kLiteral, 0, static_cast<uint32_t>(t_.text_.size()), 0};
    while (true) {
      if (i_ == expr_.size()) {
        return fail(start, "a literal is not closed (a quote inside one is written twice)");
      }
      if (expr_[i_] == quote) {
        if (i_ + 1 < expr_.size() && expr_[i_ + 1] == quote) {
          t_.text_ += quote;
          i_ += 2;
          continue;
        }
        ++i_;
        break;
      }
      size_t run = i_;
      while (i_ < expr_.size() && expr_[i_] != quote) ++i_;
      t_.text_.append(expr_.substr(run, i_ - run));
    }
    t.length = static_cast<uint32_t>(t_.text_.size() - t.first);
    t_.terms_.push_back(t);
    return {};
  }

  std::string_view body_;
  size_t literal_from_ = 0;  // body_ before this is in a piece already
  CompiledTemplate t_;
  // The expression being parsed.
  std::string_view expr_;
  SourceMap map_;
  size_t i_ = 0;
};

Result<CompiledTemplate> CompiledTemplate::compile(std::string_view body, TemplateFormat format) {
  if (body.size() > kMaxBodyBytes) return refuse(0, "the template is too large");
  if (format == TemplateFormat::kRaw) {
    size_t first = 0;
    while (first < body.size() && isSpace(body[first])) ++first;
    format =
        first < body.size() && body[first] == '<' ? TemplateFormat::kXml : TemplateFormat::kJson;
  }
  Builder builder(body);
  Result<void> ok = format == TemplateFormat::kJson ? JsonScanner(body, builder).scan()
                                                    : XmlScanner(body, builder).scan();
  if (!ok) return ok.error();
  return std::move(builder).finish();
}

Result<CompiledTemplate> CompiledTemplate::compileValue(std::string_view text) {
  if (text.size() > kMaxBodyBytes) return refuse(0, "the value is too large");
  Builder builder(text);
  if (auto ok = builder.value(text, SourceMap{}, 0, text.size(), kEscapeNone); !ok) {
    return ok.error();
  }
  return std::move(builder).finish();
}

// ---- Rendering ----------------------------------------------------------------------------------

class CompiledTemplate::Renderer {
 public:
  Renderer(const CompiledTemplate& t, const Properties& properties, size_t max_bytes)
      : t_(t), properties_(properties), out_(max_bytes, t.text_.size() + 64) {}

  std::optional<std::string> render() && {
    for (const Piece& piece : t_.pieces_) {
      bool ok = piece.kind == Piece::Kind::kLiteral
                    ? out_.put(std::string_view(t_.text_).substr(piece.first, piece.length))
                    : expression(piece);
      if (!ok) return std::nullopt;
    }
    return std::move(out_).take();
  }

 private:
  std::string_view text(const Term& term) const {
    return std::string_view(t_.text_).substr(term.first, term.length);
  }
  std::string_view property(const Term& term) const {
    const std::string* value = properties_.find(text(term));
    return value != nullptr ? std::string_view(*value) : std::string_view();
  }

  bool expression(const Piece& piece) {
    if (piece.escape == kEscapeJsonNumber) {
      std::string_view value = property(t_.terms_[piece.first]);
      if (isJsonNumberText(value)) return out_.put(value);
    }
    bool json = piece.escape == kEscapeJsonString || piece.escape == kEscapeJsonNumber;
    if (json && !out_.put("\"")) return false;
    for (uint32_t k = piece.first; k < piece.first + piece.length; ++k) {
      if (!term(t_.terms_[k], piece.escape)) return false;
    }
    return !json || out_.put("\"");
  }

  bool term(const Term& t, uint8_t escape) {
    switch (t.kind) {
      case Term::Kind::kLiteral:
        return putEscaped(out_, escape, text(t));
      case Term::Kind::kProperty:
      case Term::Kind::kNumber:
        return putEscaped(out_, escape, property(t));
      case Term::Kind::kClip: {
        std::string_view value = property(t);
        return putEscaped(out_, escape, value.substr(0, codePointPrefix(value, t.clip)));
      }
      case Term::Kind::kEllipsis: {
        std::string_view value = property(t);
        if (codePointPrefix(value, t.clip) == value.size()) {
          return putEscaped(out_, escape, value);
        }
        if (t.clip < 3) return out_.put(std::string_view("...", t.clip));
        return putEscaped(out_, escape, value.substr(0, codePointPrefix(value, t.clip - 3))) &&
               out_.put("...");
      }
      case Term::Kind::kPercent:
        return putPercentEncoded(out_, property(t));
    }
    return false;
  }

  const CompiledTemplate& t_;
  const Properties& properties_;
  Writer out_;
};

std::optional<std::string> CompiledTemplate::render(const Properties& properties,
                                                    size_t max_bytes) const {
  return Renderer(*this, properties, max_bytes).render();
}

bool CompiledTemplate::isConstant() const {
  return std::none_of(pieces_.begin(), pieces_.end(),
                      [](const Piece& p) { return p.kind == Piece::Kind::kExpression; });
}

}  // namespace pushhub::expr
