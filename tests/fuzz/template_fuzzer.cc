// libFuzzer target for expr/template.cc. The first byte picks the format ('j' JSON, 'x' XML,
// 'r' raw, 'v' a single value; any other byte modulo 4), the rest is the body. Build:
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. expr/template.cc \
//       tests/fuzz/template_fuzzer.cc -o template_fuzzer
//   ./template_fuzzer tests/fuzz/corpus/template
//
// Besides crashes, hangs and unbounded allocation, it aborts when one of these breaks:
// - a refusal is kInvalidArgument "position N: ..." with N within the body;
// - rendering is deterministic, and max_bytes is exact (the output's own size succeeds, one less
//   fails);
// - a template without expressions renders to its body, byte for byte;
// - kRaw compiles exactly as the format it detects;
// - a JSON template's body is valid JSON by an independent validator (below), and valid JSON
//   is refused only for an expression, nesting or a lone surrogate;
// - a rendered JSON template is valid JSON (checked by an independent validator below) and
//   compiles again as a template unless a rendered value now starts like an expression;
// - a rendered XML template compiles again, with the same exception.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "expr/template.h"

namespace {

using pushhub::Error;
using pushhub::expr::CompiledTemplate;
using pushhub::expr::Properties;
using pushhub::expr::TemplateFormat;

constexpr size_t kMaxBytes = 64 * 1024;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "invariant violated: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

#define CHECK_THAT(condition, detail)           \
  do {                                          \
    if (!(condition)) fail(#condition, detail); \
  } while (false)

const Properties& properties() {
  static const Properties p = *Properties::make({
      {"a", "hello"},
      {"B", "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93 \xF0\x9F\x98\x80"},  // é ö ✓ 😀
      {"n", "40"},
      {"f", "1.5e3"},
      {"neg", "-1"},
      {"q", "<&\"'>\t\r\n\\/\x01\x1f\x7f"},
      {"m", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"},  // 日本語
      {"e", ""},
      {"x", "$(a)"},
      {"u", "\xEF\xBF\xBE\xEF\xBF\xBF"},  // U+FFFE U+FFFF: UTF-8, not XML
  });
  return p;
}

// A strict RFC 8259 validator, independent of the one in template.cc.
class JsonCheck {
 public:
  explicit JsonCheck(std::string_view s) : s_(s) {}
  bool valid() {
    space();
    if (!value(0)) return false;
    space();
    return i_ == s_.size();
  }

 private:
  bool more() const { return i_ < s_.size(); }
  char peek() const { return more() ? s_[i_] : '\0'; }
  void space() {
    while (more() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++i_;
  }
  bool literal(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool digits() {
    size_t start = i_;
    while (more() && peek() >= '0' && peek() <= '9') ++i_;
    return i_ > start;
  }
  bool number() {
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.') {
      ++i_;
      if (!digits()) return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  static bool hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
  bool string() {
    ++i_;
    while (true) {
      if (!more()) return false;
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        char e = peek();
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k) {
            if (i_ + k >= s_.size() || !hex(s_[i_ + k])) return false;
          }
          i_ += 5;
        } else if (std::string_view("\"\\/bfnrt").find(e) != std::string_view::npos && more()) {
          ++i_;
        } else {
          return false;
        }
        continue;
      }
      // UTF-8: lead byte, then continuation bytes; no overlongs, surrogates or > U+10FFFF.
      size_t n = c < 0x80                   ? 1
                 : (c >= 0xC2 && c <= 0xDF) ? 2
                 : (c >= 0xE0 && c <= 0xEF) ? 3
                 : (c >= 0xF0 && c <= 0xF4) ? 4
                                            : 0;
      if (n == 0 || s_.size() - i_ < n) return false;
      for (size_t k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(s_[i_ + k]) & 0xC0) != 0x80) return false;
      }
      auto c1 = static_cast<unsigned char>(n > 1 ? s_[i_ + 1] : 0);
      if (c == 0xE0 && c1 < 0xA0) return false;
      if (c == 0xED && c1 >= 0xA0) return false;
      if (c == 0xF0 && c1 < 0x90) return false;
      if (c == 0xF4 && c1 >= 0x90) return false;
      i_ += n;
    }
  }
  bool value(int depth) {
    if (depth > 40) return false;
    char c = peek();
    if (c == '"') return string();
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      space();
      if (peek() == close) {
        ++i_;
        return true;
      }
      while (true) {
        if (c == '{') {
          if (peek() != '"' || !string()) return false;
          space();
          if (peek() != ':') return false;
          ++i_;
          space();
        }
        if (!value(depth + 1)) return false;
        space();
        if (peek() == close) {
          ++i_;
          return true;
        }
        if (peek() != ',') return false;
        ++i_;
        space();
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
};

void checkRefusal(const Error& error, std::string_view body) {
  CHECK_THAT(error.code == Error::Code::kInvalidArgument, error.message);
  const std::string& m = error.message;
  CHECK_THAT(m.rfind("position ", 0) == 0, m);
  size_t position = std::strtoull(m.c_str() + 9, nullptr, 10);
  CHECK_THAT(position <= body.size(), m);
  CHECK_THAT(m.find(": ", 9) != std::string::npos, m);
}

// A rendered document compiled again: fine, or refused only because a rendered value now starts
// like an expression (a property value "$5", a literal '...', a clip to "..").
void checkCompilesAgain(std::string_view output, TemplateFormat format) {
  auto again = CompiledTemplate::compile(output, format);
  if (!again) {
    CHECK_THAT(again.error().message.find("expression") != std::string::npos,
               again.error().message + "\n--- output:\n" + std::string(output));
  }
}

TemplateFormat detect(std::string_view body) {
  size_t i = 0;
  while (i < body.size() &&
         (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) {
    ++i;
  }
  return i < body.size() && body[i] == '<' ? TemplateFormat::kXml : TemplateFormat::kJson;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  char selector = static_cast<char>(data[0]);
  int kind = selector == 'j'   ? 0
             : selector == 'x' ? 1
             : selector == 'r' ? 2
             : selector == 'v' ? 3
                               : data[0] % 4;
  bool is_value = kind == 3;
  TemplateFormat format = kind == 0   ? TemplateFormat::kJson
                          : kind == 1 ? TemplateFormat::kXml
                                      : TemplateFormat::kRaw;

  auto compiled =
      is_value ? CompiledTemplate::compileValue(body) : CompiledTemplate::compile(body, format);
  if (format == TemplateFormat::kRaw && !is_value) {
    auto as_detected = CompiledTemplate::compile(body, detect(body));
    CHECK_THAT(compiled.has_value() == as_detected.has_value(), std::string(body));
    if (compiled) CHECK_THAT(*compiled == *as_detected, std::string(body));
    if (!compiled) CHECK_THAT(compiled.error().message == as_detected.error().message, body);
    format = detect(body);
  }
  if (!is_value && format == TemplateFormat::kJson) {
    // Differential: the scanner in template.cc against the one above. A template's body is
    // JSON; valid JSON is refused only for what the validator does not look at.
    bool valid = JsonCheck(body).valid();
    if (compiled) CHECK_THAT(valid, body);
    size_t first = body.find_first_not_of(" \t\r\n");
    if (!compiled && valid && first != std::string_view::npos && body[first] == '{') {
      const std::string& m = compiled.error().message;
      CHECK_THAT(m.find("expression") != std::string::npos ||
                     m.find("nesting") != std::string::npos ||
                     m.find("surrogate") != std::string::npos,
                 m + "\n--- body:\n" + std::string(body));
    }
  }
  if (!compiled) {
    checkRefusal(compiled.error(), body);
    return 0;
  }
  const CompiledTemplate& t = *compiled;

  std::optional<std::string> out = t.render(properties(), kMaxBytes);
  CHECK_THAT(out == t.render(properties(), kMaxBytes), body);
  (void)t.render(Properties(), kMaxBytes);
  if (t.isConstant()) {
    CHECK_THAT(out == (body.size() <= kMaxBytes ? std::optional<std::string>(std::string(body))
                                                : std::nullopt),
               body);
  }
  if (!out) return 0;
  CHECK_THAT(out->size() <= kMaxBytes, body);
  CHECK_THAT(t.render(properties(), out->size()) == out, body);
  if (!out->empty()) CHECK_THAT(!t.render(properties(), out->size() - 1), body);

  if (is_value) return 0;
  if (format == TemplateFormat::kJson) {
    CHECK_THAT(JsonCheck(*out).valid(), *out);
  }
  checkCompilesAgain(*out, format);
  return 0;
}
