// libFuzzer target for the tag-expression parser: any input either parses or is refused with a
// position inside the input, and what parses keeps its invariants.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "expr/tag_expression.h"

using pushhub::expr::TagExpression;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = TagExpression::parse(text);
  if (!e) {
    // "position N: ..." with N within the input (or at its end).
    const std::string& m = e.error().message;
    check(m.rfind("position ", 0) == 0);
    check(std::strtoull(m.c_str() + 9, nullptr, 10) <= std::max<size_t>(size, 4096));
    return 0;
  }
  check(!e->tags().empty() && e->tags().size() <= pushhub::expr::kMaxTagsOrOnly);
  // The canonical text parses back to the same expression.
  auto again = TagExpression::parse(e->text());
  check(again && *again == *e);
  // Negation normal form agrees with the expression on every assignment (up to 2^10 of them).
  std::vector<TagExpression::Step> nnf = e->nnf();
  TagExpression::Step none{TagExpression::Op::kNot};
  for (const auto& s : nnf) check(s.op != none.op);
  size_t n = std::min<size_t>(e->tags().size(), 10);
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    auto has = [&](size_t i) { return i < n && ((mask >> i) & 1) != 0; };
    std::vector<bool> stack;
    for (const auto& s : nnf) {
      switch (s.op) {
        case TagExpression::Op::kTag:
          stack.push_back(has(s.tag));
          break;
        case TagExpression::Op::kNotTag:
          stack.push_back(!has(s.tag));
          break;
        case TagExpression::Op::kAnd:
        case TagExpression::Op::kOr: {
          bool r = stack.back();
          stack.pop_back();
          stack.back() =
              s.op == TagExpression::Op::kAnd ? (stack.back() && r) : (stack.back() || r);
          break;
        }
        case TagExpression::Op::kNot:
          break;
      }
    }
    check(stack.size() == 1 && stack[0] == e->matches(has));
  }
  // Candidate buckets are a subset of the union of the tags' buckets, or "every bucket".
  auto candidates = e->candidateBuckets([](size_t i) -> std::optional<std::vector<uint32_t>> {
    return std::vector<uint32_t>{static_cast<uint32_t>(i), static_cast<uint32_t>(i + 7)};
  });
  if (candidates) {
    for (uint32_t b : *candidates) check(b < e->tags().size() + 7);
  }
  return 0;
}
