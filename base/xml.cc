#include "base/xml.h"

#include <fmt/format.h>

#include <cstdint>

#include "base/utf8.h"

namespace pushhub::xml {
namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool isNameStart(char c) {
  auto u = static_cast<unsigned char>(c);
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || u >= 0x80;
}

bool isNameChar(char c) { return isNameStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

// The code points XML 1.0 allows in a document.
bool isXmlChar(uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

class Parser {
 public:
  Parser(std::string_view doc, Limits limits) : doc_(doc), limits_(limits) {}

  Result<Element> document() {
    if (doc_.starts_with("\xEF\xBB\xBF")) pos_ = 3;  // a UTF-8 byte order mark
    if (auto ok = misc(); !ok) return ok.error();
    if (atEnd() || peek() != '<') return fail("expected the root element");
    Element root;
    if (auto ok = element(root, 1); !ok) return ok.error();
    if (auto ok = misc(); !ok) return ok.error();
    if (!atEnd()) return fail("content after the root element");
    return root;
  }

 private:
  bool atEnd() const { return pos_ >= doc_.size(); }
  char peek() const { return doc_[pos_]; }
  bool startsWith(std::string_view s) const { return doc_.substr(pos_).starts_with(s); }
  Error fail(std::string_view what) const {
    return Error::invalidArgument(fmt::format("XML: {} at byte {}", what, pos_));
  }
  void skipSpace() {
    while (!atEnd() && isSpace(peek())) ++pos_;
  }

  // Whitespace, comments and processing instructions (the XML declaration among them) before
  // and after the root element.
  Result<void> misc() {
    for (;;) {
      skipSpace();
      auto skipped = skipCommentOrInstruction();
      if (!skipped) return skipped.error();
      if (*skipped) continue;
      if (startsWith("<!")) return fail("a DOCTYPE or declaration is not accepted");
      return {};
    }
  }

  // A comment or processing instruction at pos_ is skipped (true); false when there is none.
  Result<bool> skipCommentOrInstruction() {
    bool instruction = startsWith("<?");
    if (!instruction && !startsWith("<!--")) return false;
    auto ok = instruction ? skipPast("?>", "an unterminated processing instruction")
                          : skipPast("-->", "an unterminated comment");
    if (!ok) return ok.error();
    return true;
  }

  Result<void> skipPast(std::string_view end, std::string_view what) {
    size_t at = doc_.find(end, pos_ + 2);
    if (at == std::string_view::npos) return fail(what);
    pos_ = at + end.size();
    return {};
  }

  Result<std::string_view> name() {
    size_t start = pos_;
    if (atEnd() || !isNameStart(peek())) return fail("expected a name");
    while (!atEnd() && isNameChar(peek())) ++pos_;
    return doc_.substr(start, pos_ - start);
  }

  // Decodes `raw` (text or an attribute value) into `out`: entities and character references.
  Result<void> decode(std::string_view raw, size_t at, std::string& out) {
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c != '&') {
        out += c;
        continue;
      }
      size_t semi = raw.find(';', i);
      if (semi == std::string_view::npos || semi - i > 12) {
        pos_ = at + i;
        return fail("an unterminated entity");
      }
      std::string_view entity = raw.substr(i + 1, semi - i - 1);
      if (entity == "lt") {
        out += '<';
      } else if (entity == "gt") {
        out += '>';
      } else if (entity == "amp") {
        out += '&';
      } else if (entity == "quot") {
        out += '"';
      } else if (entity == "apos") {
        out += '\'';
      } else if (entity.size() > 1 && entity[0] == '#') {
        bool hex = entity[1] == 'x';
        std::string_view digits = entity.substr(hex ? 2 : 1);
        uint32_t cp = 0;
        bool ok = !digits.empty();
        for (char d : digits) {
          int v = d >= '0' && d <= '9'          ? d - '0'
                  : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
                  : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
                                                : -1;
          if (v < 0 || cp > 0x10FFFF) {
            ok = false;
            break;
          }
          cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
        }
        if (!ok || !isXmlChar(cp)) {
          pos_ = at + i;
          return fail("a character reference to no XML character");
        }
        utf8::append(out, cp);
      } else {
        pos_ = at + i;
        return fail(fmt::format("the unknown entity &{};", entity));
      }
      i = semi;
    }
    return {};
  }

  Result<void> element(Element& out, size_t depth) {
    if (depth > limits_.max_depth) {
      return fail(fmt::format("elements nested deeper than {}", limits_.max_depth));
    }
    if (++elements_ > limits_.max_elements) {
      return fail(fmt::format("more than {} elements", limits_.max_elements));
    }
    ++pos_;  // '<'
    auto qname = name();
    if (!qname) return qname.error();
    if (size_t colon = qname->find(':'); colon != std::string_view::npos) {
      out.prefix = std::string(qname->substr(0, colon));
      out.name = std::string(qname->substr(colon + 1));
    } else {
      out.name = std::string(*qname);
    }
    for (;;) {
      size_t before = pos_;
      skipSpace();
      if (atEnd()) return fail("an unterminated start tag");
      if (startsWith("/>")) {
        pos_ += 2;
        return {};
      }
      if (peek() == '>') {
        ++pos_;
        break;
      }
      if (pos_ == before) return fail("expected whitespace before an attribute");
      auto attribute = name();
      if (!attribute) return attribute.error();
      skipSpace();
      if (atEnd() || peek() != '=') return fail("expected '=' after an attribute name");
      ++pos_;
      skipSpace();
      if (atEnd() || (peek() != '"' && peek() != '\'')) return fail("expected a quoted value");
      char quote = peek();
      size_t end = doc_.find(quote, pos_ + 1);
      if (end == std::string_view::npos) return fail("an unterminated attribute value");
      std::string_view raw = doc_.substr(pos_ + 1, end - pos_ - 1);
      if (raw.find('<') != std::string_view::npos) return fail("'<' in an attribute value");
      for (const auto& [seen, value] : out.attributes) {
        if (seen == *attribute) return fail("an attribute given twice");
      }
      std::string value;
      if (auto ok = decode(raw, pos_ + 1, value); !ok) return ok;
      out.attributes.emplace_back(std::string(*attribute), std::move(value));
      pos_ = end + 1;
    }
    return content(out, depth, *qname);
  }

  Result<void> content(Element& out, size_t depth, std::string_view qname) {
    for (;;) {
      if (atEnd()) return fail(fmt::format("<{}> is not closed", qname));
      size_t lt = doc_.find('<', pos_);
      if (lt == std::string_view::npos) lt = doc_.size();
      if (lt > pos_) {
        std::string_view raw = doc_.substr(pos_, lt - pos_);
        if (raw.find("]]>") != std::string_view::npos) return fail("']]>' in character data");
        if (auto ok = decode(raw, pos_, out.text); !ok) return ok;
        pos_ = lt;
        continue;
      }
      if (startsWith("</")) {
        pos_ += 2;
        auto closing = name();
        if (!closing) return closing.error();
        if (*closing != qname) {
          return fail(fmt::format("</{}> closes <{}>", *closing, qname));
        }
        skipSpace();
        if (atEnd() || peek() != '>') return fail("an unterminated end tag");
        ++pos_;
        return {};
      }
      auto skipped = skipCommentOrInstruction();
      if (!skipped) return skipped.error();
      if (*skipped) continue;
      if (startsWith("<![CDATA[")) {
        size_t end = doc_.find("]]>", pos_ + 9);
        if (end == std::string_view::npos) return fail("an unterminated CDATA section");
        out.text.append(doc_.substr(pos_ + 9, end - pos_ - 9));
        pos_ = end + 3;
      } else if (startsWith("<!")) {
        return fail("a declaration inside an element");
      } else {
        out.children.emplace_back();
        if (auto ok = element(out.children.back(), depth + 1); !ok) return ok;
      }
    }
  }

  std::string_view doc_;
  Limits limits_;
  size_t pos_ = 0;
  size_t elements_ = 0;
};

}  // namespace

const Element* Element::child(std::string_view local_name) const {
  for (const auto& c : children) {
    if (c.name == local_name) return &c;
  }
  return nullptr;
}

Result<Element> parse(std::string_view document, Limits limits) {
  return Parser(document, limits).document();
}

namespace {

std::string escaped(std::string_view text, bool attribute) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '"' && attribute) {
      out += "&quot;";
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default: {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : c;
      }
    }
  }
  return out;
}

}  // namespace

std::string escape(std::string_view text) { return escaped(text, false); }

std::string escapeAttribute(std::string_view text) { return escaped(text, true); }

}  // namespace pushhub::xml
