#include "expr/tag_expression.h"

#include <algorithm>
#include <iterator>

namespace pushhub::expr {
namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool isTagChar(char c) {
  return isAlnum(c) || c == '_' || c == '@' || c == '#' || c == '.' || c == ':' || c == '-';
}
bool isIdChar(char c) { return isTagChar(c) || c == '='; }
bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool startsWithIgnoringCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

Error refuse(size_t position, std::string_view rule) {
  return Error::invalidArgument("position " + std::to_string(position) + ": " + std::string(rule));
}

// Recursive descent over the grammar in the header. Recursion depth is bounded by kMaxNesting
// (every level of recursion consumes a `(` or a `!`), so no input can exhaust the stack.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<void> parse(std::vector<std::string>& tags, std::vector<TagExpression::Step>& program) {
    tags_ = &tags;
    program_ = &program;
    skipSpace();
    if (pos_ == text_.size()) return refuse(pos_, "the expression is empty");
    if (auto ok = expression(0); !ok) return ok;
    if (pos_ != text_.size()) {
      return refuse(pos_, text_[pos_] == ')' ? "')' has no matching '('"
                                             : "expected '&&', '||' or the end of the expression");
    }
    size_t limit = uses_and_or_not_ ? kMaxTagsMixed : kMaxTagsOrOnly;
    if (tag_positions_.size() > limit) {
      return refuse(tag_positions_[limit],
                    "the expression has " + std::to_string(tag_positions_.size()) +
                        " tags; at most " + std::to_string(limit) +
                        (uses_and_or_not_ ? " when it uses && or !" : " when it uses only ||"));
    }
    return {};
  }

 private:
  using Op = TagExpression::Op;

  void skipSpace() {
    while (pos_ < text_.size() && isSpace(text_[pos_])) ++pos_;
  }
  bool take(std::string_view token) {
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    skipSpace();
    return true;
  }

  Result<void> expression(size_t depth) {
    if (auto ok = conjunction(depth); !ok) return ok;
    while (take("||")) {
      if (auto ok = conjunction(depth); !ok) return ok;
      program_->push_back({Op::kOr});
    }
    return {};
  }

  Result<void> conjunction(size_t depth) {
    if (auto ok = unary(depth, "at the start"); !ok) return ok;
    while (take("&&")) {
      uses_and_or_not_ = true;
      if (auto ok = unary(depth, "after '&&'"); !ok) return ok;
      program_->push_back({Op::kAnd});
    }
    return {};
  }

  Result<void> unary(size_t depth, std::string_view where) {
    if (pos_ >= text_.size()) {
      return refuse(pos_, "the expression ends where a tag or '(' is expected");
    }
    char c = text_[pos_];
    if (c == '!' || c == '(') {
      if (depth >= kMaxNesting) {
        return refuse(
            pos_, "nesting deeper than " + std::to_string(kMaxNesting) + " levels of '(' and '!'");
      }
      size_t open = pos_;
      ++pos_;
      skipSpace();
      if (c == '!') {
        uses_and_or_not_ = true;
        if (auto ok = unary(depth + 1, "after '!'"); !ok) return ok;
        program_->push_back({Op::kNot});
        return {};
      }
      if (auto ok = expression(depth + 1); !ok) return ok;
      if (!take(")")) {
        return refuse(pos_ < text_.size() ? pos_ : open,
                      pos_ < text_.size() ? "expected ')' or an operator" : "'(' is not closed");
      }
      return {};
    }
    return tag(where);
  }

  Result<void> tag(std::string_view where) {
    size_t start = pos_;
    std::string value;
    if (text_[pos_] == '$') {
      std::string_view rest = text_.substr(pos_);
      std::string_view prefix = startsWithIgnoringCase(rest, kInstallationIdPrefix)
                                    ? kInstallationIdPrefix
                                : startsWithIgnoringCase(rest, kUserIdPrefix) ? kUserIdPrefix
                                                                              : std::string_view();
      if (prefix.empty()) {
        return refuse(pos_, "a tag starting with '$' must be $InstallationId:{id} or $UserId:{id}");
      }
      pos_ += prefix.size();
      size_t id_start = pos_;
      while (pos_ < text_.size() && isIdChar(text_[pos_])) ++pos_;
      if (pos_ == id_start) {
        return refuse(pos_,
                      "expected an id of [A-Za-z0-9_@#.:=-] after '" + std::string(prefix) + "'");
      }
      if (pos_ >= text_.size() || text_[pos_] != '}') {
        return refuse(pos_, "expected '}' to close " + std::string(prefix) + "...}");
      }
      ++pos_;
      value = std::string(prefix) + std::string(text_.substr(id_start, pos_ - id_start));
    } else {
      while (pos_ < text_.size() && isTagChar(text_[pos_])) ++pos_;
      if (pos_ == start) {
        std::string found = text_[start] == ')' ? "')'"
                            : text_[start] == '&' || text_[start] == '|'
                                ? "an operator"
                                : "'" + std::string(1, text_[start]) + "'";
        return refuse(start, "expected a tag, '!' or '(' " + std::string(where) + ", found " +
                                 found + " (tags are [A-Za-z0-9_@#.:-])");
      }
      value = std::string(text_.substr(start, pos_ - start));
    }
    if (value.size() > kMaxTagLength) {
      return refuse(start, "a tag is at most " + std::to_string(kMaxTagLength) + " characters");
    }
    tag_positions_.push_back(start);
    auto it = std::find(tags_->begin(), tags_->end(), value);
    if (it == tags_->end()) it = tags_->insert(tags_->end(), std::move(value));
    program_->push_back({Op::kTag, static_cast<uint16_t>(it - tags_->begin())});
    skipSpace();
    return {};
  }

  std::string_view text_;
  size_t pos_ = 0;
  bool uses_and_or_not_ = false;
  std::vector<size_t> tag_positions_;
  std::vector<std::string>* tags_ = nullptr;
  std::vector<TagExpression::Step>* program_ = nullptr;
};

// The program as a tree, for rewriting it (nnf) and printing it (text).
struct Tree {
  struct Node {
    TagExpression::Op op;
    uint16_t tag = 0;
    int left = -1, right = -1;
  };
  std::vector<Node> nodes;
  int root = -1;

  explicit Tree(const std::vector<TagExpression::Step>& program) {
    std::vector<int> stack;
    for (const auto& s : program) {
      Node n{s.op, s.tag};
      if (s.op == TagExpression::Op::kNot) {
        n.left = stack.back();
        stack.pop_back();
      } else if (s.op == TagExpression::Op::kAnd || s.op == TagExpression::Op::kOr) {
        n.right = stack.back();
        stack.pop_back();
        n.left = stack.back();
        stack.pop_back();
      }
      nodes.push_back(n);
      stack.push_back(static_cast<int>(nodes.size()) - 1);
    }
    root = stack.empty() ? -1 : stack.back();
  }
};

void emitNnf(const Tree& tree, int node, bool negated, std::vector<TagExpression::Step>& out) {
  using Op = TagExpression::Op;
  const auto& n = tree.nodes[static_cast<size_t>(node)];
  switch (n.op) {
    case Op::kTag:
    case Op::kNotTag: {
      bool positive = (n.op == Op::kTag) != negated;
      out.push_back({positive ? Op::kTag : Op::kNotTag, n.tag});
      return;
    }
    case Op::kNot:
      return emitNnf(tree, n.left, !negated, out);
    case Op::kAnd:
    case Op::kOr:
      emitNnf(tree, n.left, negated, out);
      emitNnf(tree, n.right, negated, out);
      // De Morgan: !(a && b) = !a || !b, !(a || b) = !a && !b.
      out.push_back({(n.op == Op::kAnd) != negated ? Op::kAnd : Op::kOr});
      return;
  }
}

}  // namespace

std::string installationIdTag(std::string_view installation_id) {
  std::string tag(kInstallationIdPrefix);
  tag.append(installation_id);
  tag += '}';
  return tag;
}

std::string userIdTag(std::string_view user_id) {
  std::string tag(kUserIdPrefix);
  tag.append(user_id);
  tag += '}';
  return tag;
}

bool isPlainTag(std::string_view tag) {
  return !tag.empty() && tag.size() <= kMaxTagLength &&
         std::all_of(tag.begin(), tag.end(), isTagChar);
}

Result<TagExpression> TagExpression::parse(std::string_view text) {
  if (text.size() > kMaxExpressionBytes) {
    return refuse(kMaxExpressionBytes, "the expression is longer than " +
                                           std::to_string(kMaxExpressionBytes) + " bytes");
  }
  TagExpression e;
  if (auto ok = Parser(text).parse(e.tags_, e.program_); !ok) return ok.error();
  return e;
}

std::vector<TagExpression::Step> TagExpression::nnf() const {
  Tree tree(program_);
  std::vector<Step> out;
  out.reserve(program_.size());
  if (tree.root >= 0) emitNnf(tree, tree.root, false, out);
  return out;
}

std::string TagExpression::text() const {
  // Each entry: the text and the precedence of its top operator (|| 1, && 2, ! or a tag 3).
  // A child gets parentheses only when its operator binds more loosely than its parent's, or as
  // tightly on the right (the operators group to the left): no more than any text of the same
  // expression needs, so the canonical text never nests deeper than the input did.
  std::vector<std::pair<std::string, int>> stack;
  for (const auto& s : program_) {
    switch (s.op) {
      case Op::kTag: stack.emplace_back(tags_[s.tag], 3); break;
      case Op::kNotTag: stack.emplace_back("!" + tags_[s.tag], 3); break;
      case Op::kNot: {
        auto& top = stack.back();
        top.first = top.second < 3 ? "!(" + top.first + ")" : "!" + top.first;
        top.second = 3;
        break;
      }
      case Op::kAnd:
      case Op::kOr: {
        int level = s.op == Op::kAnd ? 2 : 1;
        auto right = std::move(stack.back());
        stack.pop_back();
        auto& left = stack.back();
        std::string text = left.second < level ? "(" + left.first + ")" : std::move(left.first);
        text += s.op == Op::kAnd ? "&&" : "||";
        text += right.second <= level ? "(" + right.first + ")" : right.first;
        left = {std::move(text), level};
        break;
      }
    }
  }
  return stack.empty() ? std::string() : std::move(stack.back().first);
}

bool TagExpression::hasNegation() const {
  return std::any_of(program_.begin(), program_.end(),
                     [](const Step& s) { return s.op == Op::kNot || s.op == Op::kNotTag; });
}

namespace detail {

std::optional<std::vector<uint32_t>> unite(std::optional<std::vector<uint32_t>> a,
                                           std::optional<std::vector<uint32_t>> b) {
  if (!a || !b) return std::nullopt;
  std::vector<uint32_t> out;
  out.reserve(a->size() + b->size());
  std::set_union(a->begin(), a->end(), b->begin(), b->end(), std::back_inserter(out));
  return out;
}

std::optional<std::vector<uint32_t>> intersect(std::optional<std::vector<uint32_t>> a,
                                               std::optional<std::vector<uint32_t>> b) {
  if (!a) return b;
  if (!b) return a;
  std::vector<uint32_t> out;
  std::set_intersection(a->begin(), a->end(), b->begin(), b->end(), std::back_inserter(out));
  return out;
}

}  // namespace detail
}  // namespace pushhub::expr
