#include "expr/tag_expression.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace pushhub::expr {
namespace {

TagExpression parsed(std::string_view text) {
  auto e = TagExpression::parse(text);
  EXPECT_TRUE(e) << text << ": " << (e ? "" : e.error().message);
  return e ? *e : TagExpression();
}

std::string refusal(std::string_view text) {
  auto e = TagExpression::parse(text);
  EXPECT_FALSE(e) << text << " parsed as " << (e ? e->text() : "");
  return e ? "" : e.error().message;
}

bool matches(std::string_view text, const std::set<std::string>& installation_tags) {
  TagExpression e = parsed(text);
  return e.matches([&](size_t i) { return installation_tags.count(e.tags()[i]) > 0; });
}

TEST(TagExpression, PrecedenceIsNotThenAndThenOr) {
  EXPECT_EQ(parsed("a || b && c").text(), "a||b&&c");
  EXPECT_EQ(parsed("a && b || c").text(), "a&&b||c");
  EXPECT_EQ(parsed("!a && b").text(), "!a&&b");
  EXPECT_EQ(parsed("!(a && b)").text(), "!(a&&b)");
  EXPECT_EQ(parsed("a||b||c").text(), "a||b||c");
  EXPECT_EQ(parsed("(sports || news) && !muted").text(), "(sports||news)&&!muted");
  EXPECT_EQ(parsed("!!a").text(), "!!a");
  // Grouping on the right is kept; redundant parentheses are not.
  EXPECT_EQ(parsed("a || (b || c)").text(), "a||(b||c)");
  EXPECT_EQ(parsed("((a)) && (!(b))").text(), "a&&!b");
  EXPECT_EQ(parsed("!(a || b) && !!(c && d)").text(), "!(a||b)&&!!(c&&d)");
}

TEST(TagExpression, WhitespaceIsOptionalAndAnyOfSpaceTabCrLf) {
  EXPECT_EQ(parsed(" \t(a\r\n||b)&&c \n").text(), "(a||b)&&c");
  EXPECT_EQ(parsed("a&&!b").text(), "a&&!b");
}

TEST(TagExpression, TagsAreDistinctInOrderOfFirstUse) {
  TagExpression e = parsed("b || a || b");
  EXPECT_EQ(e.tags(), (std::vector<std::string>{"b", "a"}));
}

TEST(TagExpression, TagCharactersAndLength) {
  EXPECT_EQ(parsed("A-z_0@#.:x").tags()[0], "A-z_0@#.:x");
  EXPECT_TRUE(TagExpression::parse(std::string(120, 't')));
  EXPECT_EQ(refusal(std::string(121, 't')), "position 0: a tag is at most 120 characters");
  EXPECT_EQ(refusal("a && b=c"), "position 6: expected '&&', '||' or the end of the expression");
  EXPECT_EQ(refusal("a || ~b"),
            "position 5: expected a tag, '!' or '(' at the start, found '~' (tags are "
            "[A-Za-z0-9_@#.:-])");
}

TEST(TagExpression, ImplicitTagsAreNormalizedAndCountTowardTheLength) {
  TagExpression e = parsed("$userid:{alice} || $INSTALLATIONID:{i-1=} && $UserId:{alice}");
  EXPECT_EQ(e.tags(), (std::vector<std::string>{"$UserId:{alice}", "$InstallationId:{i-1=}"}));
  EXPECT_EQ(userIdTag("alice"), "$UserId:{alice}");
  EXPECT_EQ(installationIdTag("i"), "$InstallationId:{i}");
  // "$UserId:{" is 9 characters and "}" one: the id may have 110.
  EXPECT_TRUE(TagExpression::parse("$UserId:{" + std::string(110, 'u') + "}"));
  EXPECT_EQ(refusal("$UserId:{" + std::string(111, 'u') + "}"),
            "position 0: a tag is at most 120 characters");
  EXPECT_EQ(refusal("$Tenant:{x}"),
            "position 0: a tag starting with '$' must be $InstallationId:{id} or $UserId:{id}");
  EXPECT_EQ(refusal("$UserId:{}"),
            "position 9: expected an id of [A-Za-z0-9_@#.:=-] after '$UserId:{'");
  EXPECT_EQ(refusal("$UserId:{a b}"), "position 10: expected '}' to close $UserId:{...}");
  EXPECT_EQ(refusal("$UserId:{a"), "position 10: expected '}' to close $UserId:{...}");
}

TEST(TagExpression, RefusesMalformedWithThePosition) {
  EXPECT_EQ(refusal(""), "position 0: the expression is empty");
  EXPECT_EQ(refusal("   "), "position 3: the expression is empty");
  EXPECT_EQ(refusal("a &&"), "position 4: the expression ends where a tag or '(' is expected");
  EXPECT_EQ(refusal("a & b"), "position 2: expected '&&', '||' or the end of the expression");
  EXPECT_EQ(refusal("a | b"), "position 2: expected '&&', '||' or the end of the expression");
  EXPECT_EQ(refusal("a b"), "position 2: expected '&&', '||' or the end of the expression");
  EXPECT_EQ(refusal("(a || b"), "position 0: '(' is not closed");
  EXPECT_EQ(refusal("(a b)"), "position 3: expected ')' or an operator");
  EXPECT_EQ(refusal("a)"), "position 1: ')' has no matching '('");
  EXPECT_EQ(refusal("()"),
            "position 1: expected a tag, '!' or '(' at the start, found ')' (tags are "
            "[A-Za-z0-9_@#.:-])");
  EXPECT_EQ(refusal("a && || b"),
            "position 5: expected a tag, '!' or '(' after '&&', found an operator (tags are "
            "[A-Za-z0-9_@#.:-])");
  EXPECT_EQ(refusal("!"), "position 1: the expression ends where a tag or '(' is expected");
  EXPECT_EQ(refusal("a && b\x01"), "position 6: expected '&&', '||' or the end of the expression");
}

TEST(TagExpression, TwentyTagsWithOnlyOrSixOtherwise) {
  std::string ors = "t0";
  for (int i = 1; i < 20; ++i) ors += " || t" + std::to_string(i);
  EXPECT_TRUE(TagExpression::parse(ors));
  EXPECT_EQ(refusal(ors + " || t20"),
            "position " + std::to_string(ors.size() + 4) +
                ": the expression has 21 tags; at most 20 when it uses only ||");
  // Repeats count: `a || a` is two tags.
  std::string same = "a";
  for (int i = 1; i < 21; ++i) same += "||a";
  EXPECT_EQ(refusal(same),
            "position 60: the expression has 21 tags; at most 20 when it uses only ||");
  EXPECT_TRUE(TagExpression::parse("a && b && c && d && e && f"));
  EXPECT_EQ(refusal("a && b && c && d && e && f || g"),
            "position 30: the expression has 7 tags; at most 6 when it uses && or !");
  EXPECT_EQ(refusal("!a || b || c || d || e || f || g"),
            "position 31: the expression has 7 tags; at most 6 when it uses && or !");
}

TEST(TagExpression, NestingIsBounded) {
  std::string deep(64, '(');
  deep += "a" + std::string(64, ')');
  EXPECT_TRUE(TagExpression::parse(deep));
  EXPECT_EQ(refusal("(" + deep + ")"), "position 64: nesting deeper than 64 levels of '(' and '!'");
  EXPECT_EQ(refusal(std::string(65, '!') + "a"),
            "position 64: nesting deeper than 64 levels of '(' and '!'");
  // The canonical text of a deep expression is no deeper (found by the fuzzer: it once added
  // parentheses around each ||, pushing 62 negations past the limit).
  std::string negated = std::string(62, '!') + "a";
  TagExpression wide = parsed(negated + "||" + negated + "||" + negated + "||b");
  EXPECT_EQ(parsed(wide.text()), wide);
  // Far past the limit: refused quickly, without deep recursion.
  EXPECT_FALSE(TagExpression::parse(std::string(4000, '(')));
  EXPECT_EQ(refusal(std::string(5000, 'a')),
            "position 4096: the expression is longer than 4096 bytes");
}

TEST(TagExpression, Evaluates) {
  EXPECT_TRUE(matches("(sports || news) && !muted", {"news"}));
  EXPECT_FALSE(matches("(sports || news) && !muted", {"news", "muted"}));
  EXPECT_FALSE(matches("(sports || news) && !muted", {"weather"}));
  EXPECT_TRUE(matches("!x", {}));
  EXPECT_FALSE(matches("!x", {"x"}));
  EXPECT_TRUE(matches("!!x", {"x"}));
  EXPECT_FALSE(matches("Sports", {"sports"}));  // case-sensitive
  EXPECT_TRUE(matches("$UserId:{alice}", {"$UserId:{alice}"}));
}

// A tiny reference: evaluate the canonical text by hand-written recursion on the tree's text.
TEST(TagExpression, NnfIsEquivalentAndHasNoNotOperator) {
  std::mt19937 rng(7);
  const std::vector<std::string> names{"a", "b", "c", "d"};
  auto random_expr = [&](auto& self, int depth) -> std::string {
    int pick = std::uniform_int_distribution<int>(0, depth > 3 ? 0 : 3)(rng);
    if (pick == 0) return names[rng() % names.size()];
    if (pick == 1) return "!" + self(self, depth + 1);
    return "(" + self(self, depth + 1) + (pick == 2 ? "&&" : "||") + self(self, depth + 1) + ")";
  };
  int checked = 0;
  for (int i = 0; i < 2000; ++i) {
    auto e = TagExpression::parse(random_expr(random_expr, 0));
    if (!e) continue;  // over the tag limit
    std::vector<TagExpression::Step> nnf = e->nnf();
    for (const auto& s : nnf) ASSERT_NE(s.op, TagExpression::Op::kNot);
    TagExpression via_nnf = *e;
    for (unsigned mask = 0; mask < 16; ++mask) {
      auto has = [&](size_t t) {
        size_t name = static_cast<size_t>(e->tags()[t][0] - 'a');
        return ((mask >> name) & 1) != 0;
      };
      // Evaluate the nnf program with the same stack machine.
      std::vector<bool> stack;
      for (const auto& s : nnf) {
        if (s.op == TagExpression::Op::kTag) stack.push_back(has(s.tag));
        if (s.op == TagExpression::Op::kNotTag) stack.push_back(!has(s.tag));
        if (s.op == TagExpression::Op::kAnd || s.op == TagExpression::Op::kOr) {
          bool r = stack.back();
          stack.pop_back();
          stack.back() =
              s.op == TagExpression::Op::kAnd ? (stack.back() && r) : (stack.back() || r);
        }
      }
      ASSERT_EQ(stack.size(), 1u);
      ASSERT_EQ(stack[0], e->matches(has)) << e->text() << " mask " << mask;
      // And the canonical text parses back to the same program.
      ASSERT_EQ(parsed(e->text()), *e);
      ++checked;
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(TagExpression, CandidateBuckets) {
  std::map<std::string, std::vector<uint32_t>> index{{"a", {1, 2, 3}}, {"b", {3, 4}}, {"c", {9}}};
  auto candidates = [&](std::string_view text) {
    TagExpression e = parsed(text);
    return e.candidateBuckets([&](size_t i) -> std::optional<std::vector<uint32_t>> {
      auto it = index.find(e.tags()[i]);
      return it == index.end() ? std::vector<uint32_t>() : it->second;
    });
  };
  using V = std::vector<uint32_t>;
  EXPECT_EQ(candidates("a"), V({1, 2, 3}));
  EXPECT_EQ(candidates("a || b"), V({1, 2, 3, 4}));
  EXPECT_EQ(candidates("a && b"), V({3}));
  EXPECT_EQ(candidates("a && !b"), V({1, 2, 3}));
  EXPECT_EQ(candidates("!b"), std::nullopt);
  EXPECT_EQ(candidates("!b || c"), std::nullopt);
  EXPECT_EQ(candidates("(a || c) && (b || c)"), V({3, 9}));
  EXPECT_EQ(candidates("missing"), V());
  EXPECT_EQ(candidates("missing && !a"), V());
}

}  // namespace
}  // namespace pushhub::expr
