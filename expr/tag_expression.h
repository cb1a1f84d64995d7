#pragma once
// Azure Notification Hubs' tag expressions (../shared/spec/anh-wire.md 11.2 and
// azure-templates.md, "Tag expressions"): which installations a send selects.
//
//   expression := and ( "||" and )*
//   and        := unary ( "&&" unary )*
//   unary      := "!" unary | "(" expression ")" | tag
//   tag        := [A-Za-z0-9_@#.:-]{1,120}
//               | "$InstallationId:{" id "}" | "$UserId:{" id "}"   (prefix in any letter case,
//                 id = [A-Za-z0-9_@#.:=-]+, the whole tag at most 120 characters)
//
// Whitespace (space, tab, CR, LF) may stand between tokens. Limits count every occurrence of a
// tag (`a || a` is two): at most 20 when the expression has neither `&&` nor `!`, otherwise 6.
// Nesting (each `(` or `!` one level) at most 64. Matching is case-sensitive; the implicit tags'
// prefixes are normalized to `$InstallationId:{` and `$UserId:{`.
//
// Pure: no I/O, no allocation beyond the expression's own size; any thread. Parsing is linear in
// the input and refuses input longer than kMaxExpressionBytes before looking at it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pushhub::expr {

inline constexpr size_t kMaxTagLength = 120;
inline constexpr size_t kMaxTagsOrOnly = 20;
inline constexpr size_t kMaxTagsMixed = 6;
inline constexpr size_t kMaxNesting = 64;
// 20 tags of 120 characters with their operators and a generous amount of whitespace.
inline constexpr size_t kMaxExpressionBytes = 4096;

inline constexpr std::string_view kInstallationIdPrefix = "$InstallationId:{";
inline constexpr std::string_view kUserIdPrefix = "$UserId:{";

// The implicit tags of an installation.
std::string installationIdTag(std::string_view installation_id);
std::string userIdTag(std::string_view user_id);

// 1-120 characters of [A-Za-z0-9_@#.:-] (a tag an installation may carry explicitly).
bool isPlainTag(std::string_view tag);

class TagExpression {
 public:
  // One step of a postfix program over a stack of truth values (or of sets).
  enum class Op : uint8_t {
    kTag,     // push: the installation has tags()[tag]
    kNotTag,  // push: it does not (only in nnf())
    kNot,     // pop one, push its negation (never in nnf())
    kAnd,     // pop two, push both
    kOr,      // pop two, push either
  };
  struct Step {
    Op op;
    uint16_t tag = 0;  // index into tags() for kTag and kNotTag
    bool operator==(const Step&) const = default;
  };

  // Parses `text`. A refusal is kInvalidArgument with the 0-based byte position and the rule:
  // "position 7: expected a tag or '(' after '&&'". Callers prefix the field name.
  static Result<TagExpression> parse(std::string_view text);

  // The distinct tags in order of first appearance, implicit ones normalized.
  const std::vector<std::string>& tags() const { return tags_; }
  // The expression as a postfix program, operators as written.
  const std::vector<Step>& program() const { return program_; }
  // The same expression with negations pushed to the tags (De Morgan, `!!a` = `a`): only kTag,
  // kNotTag, kAnd and kOr. The registry evaluates this form, where a positive and a negative
  // occurrence of a tag may be read from different sets.
  std::vector<Step> nnf() const;
  // The canonical text: no whitespace, only the parentheses the structure needs, implicit
  // prefixes normalized. parse(text()) gives an equal expression.
  std::string text() const;
  // True when the expression contains a negation anywhere.
  bool hasNegation() const;

  // Evaluates over one installation: `has(i)` tells whether it carries tags()[i].
  template <typename Has>
  bool matches(Has&& has) const {
    bool stack[kMaxTagsOrOnly];  // the program never holds more values than tag occurrences
    size_t top = 0;
    for (const Step& s : program_) {
      switch (s.op) {
        case Op::kTag:
          stack[top++] = has(static_cast<size_t>(s.tag));
          break;
        case Op::kNotTag:
          stack[top++] = !has(static_cast<size_t>(s.tag));
          break;
        case Op::kNot:
          stack[top - 1] = !stack[top - 1];
          break;
        case Op::kAnd:
          --top;
          stack[top - 1] = stack[top - 1] && stack[top];
          break;
        case Op::kOr:
          --top;
          stack[top - 1] = stack[top - 1] || stack[top];
          break;
      }
    }
    return top == 1 && stack[0];
  }

  // The buckets a send must visit, from the buckets each tag may be in (`bucketsOf(i)`: sorted,
  // without duplicates; nullopt means "any bucket"). A tag gives its buckets, `||` the union,
  // `&&` the intersection, `!` any bucket. nullopt: every bucket of the hub.
  template <typename BucketsOf>
  std::optional<std::vector<uint32_t>> candidateBuckets(BucketsOf&& bucketsOf) const;

  bool operator==(const TagExpression&) const = default;

 private:
  std::vector<std::string> tags_;
  std::vector<Step> program_;
};

namespace detail {
std::optional<std::vector<uint32_t>> unite(std::optional<std::vector<uint32_t>> a,
                                           std::optional<std::vector<uint32_t>> b);
std::optional<std::vector<uint32_t>> intersect(std::optional<std::vector<uint32_t>> a,
                                               std::optional<std::vector<uint32_t>> b);
}  // namespace detail

template <typename BucketsOf>
std::optional<std::vector<uint32_t>> TagExpression::candidateBuckets(BucketsOf&& bucketsOf) const {
  std::vector<std::optional<std::vector<uint32_t>>> stack;
  stack.reserve(program_.size());
  for (const Step& s : program_) {
    switch (s.op) {
      case Op::kTag:
        stack.push_back(bucketsOf(static_cast<size_t>(s.tag)));
        break;
      case Op::kNotTag:
        stack.emplace_back(std::nullopt);
        break;
      case Op::kNot:
        stack.back() = std::nullopt;
        break;
      case Op::kAnd:
      case Op::kOr: {
        auto b = std::move(stack.back());
        stack.pop_back();
        stack.back() = s.op == Op::kAnd ? detail::intersect(std::move(stack.back()), std::move(b))
                                        : detail::unite(std::move(stack.back()), std::move(b));
        break;
      }
    }
  }
  return stack.empty() ? std::nullopt : std::move(stack.back());
}

}  // namespace pushhub::expr
