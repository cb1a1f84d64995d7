// Tag expressions selected on Redis (the resolve script over the bucket's tag hash, candidate
// buckets from the tag index) against a reference: the same expressions evaluated in process
// over the same installations, with plain set logic.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "expr/tag_expression.h"
#include "registry/registry.h"
#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

const std::vector<std::string> kTags{"sports", "news", "muted", "weather", "en",  "fr",
                                     "beta",   "vip",  "a:b",   "x.y",     "t-1", "rare"};
const std::vector<std::string> kTemplateNames{"alert", "data", "silent"};
const std::vector<std::string> kTemplateTags{"sports", "loud", "vip", "tpl-only"};

std::string token(uint32_t i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064x", i + 1);
  return buf;
}

class SelectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.connect();
    ASSERT_TRUE(runUntil(io_, [&] { return client_.connected(); }));
  }

  Installation randomInstallation(uint32_t n) {
    Installation in;
    in.id = "dev-" + std::to_string(n);
    in.platform = Platform::kApns;
    in.push_channel = token(n);
    for (const auto& t : kTags) {
      // "rare" on about one installation in 200; the others on about one in three.
      if (rng_() % (t == "rare" ? 200 : 3) == 0) in.tags.push_back(t);
    }
    if (rng_() % 4 != 0) in.user_id = "user" + std::to_string(rng_() % 300);
    for (const auto& name : kTemplateNames) {
      if (rng_() % 3 != 0) continue;
      InstallationTemplate t;
      t.body = R"j({"aps":{"alert":"$(message)"}})j";
      for (const auto& tag : kTemplateTags) {
        if (rng_() % 4 == 0) t.tags.push_back(tag);
      }
      in.templates[name] = t;
    }
    return in;
  }

  // Any tag a random expression may name: plain, template names and tags, users, ids.
  std::string randomTag() {
    switch (rng_() % 8) {
      case 0:
        return "$UserId:{user" + std::to_string(rng_() % 300) + "}";
      case 1:
        return "$InstallationId:{dev-" + std::to_string(rng_() % kInstallations) + "}";
      case 2:
        return kTemplateNames[rng_() % kTemplateNames.size()];
      case 3:
        return kTemplateTags[rng_() % kTemplateTags.size()];
      default:
        return kTags[rng_() % kTags.size()];
    }
  }
  // A random valid expression of any shape: only ||, or && and ! within 6 tags.
  std::string randomExpression() {
    if (rng_() % 5 == 0) {
      std::string e = randomTag();
      for (uint32_t i = rng_() % 20; i > 0; --i) e += " || " + randomTag();
      return e;
    }
    int budget = 1 + static_cast<int>(rng_() % 6);
    auto node = [&](auto& self, int& left) -> std::string {
      if (left <= 1 || rng_() % 3 == 0) {
        --left;
        return (rng_() % 4 == 0 ? "!" : "") + randomTag();
      }
      std::string a = self(self, left);
      if (left <= 0) return a;
      std::string b = self(self, left);
      std::string e = "(" + a + (rng_() % 2 ? " && " : " || ") + b + ")";
      return rng_() % 5 == 0 ? "!" + e : e;
    };
    return node(node, budget);
  }

  // Reference: which (installation, template) pairs the expression selects. A native send
  // selects by the installation's own and implicit tags ("" as the template name); a template
  // send selects each template by those plus the template's name and tags.
  std::set<std::pair<std::string, std::string>> reference(const expr::TagExpression& e,
                                                          bool templates) const {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& [id, in] : installations_) {
      std::set<std::string> own(in.tags.begin(), in.tags.end());
      own.insert(expr::installationIdTag(in.id));
      if (!in.user_id.empty()) own.insert(expr::userIdTag(in.user_id));
      if (!templates) {
        if (e.matches([&](size_t i) { return own.count(e.tags()[i]) > 0; })) out.insert({id, ""});
        continue;
      }
      for (const auto& [name, t] : in.templates) {
        std::set<std::string> tags = own;
        tags.insert(name);
        tags.insert(t.tags.begin(), t.tags.end());
        if (e.matches([&](size_t i) { return tags.count(e.tags()[i]) > 0; })) {
          out.insert({id, name});
        }
      }
    }
    return out;
  }

  // What Redis selects: candidate buckets from the index, each resolved by the script.
  std::set<std::pair<std::string, std::string>> selected(const expr::TagExpression& e,
                                                         bool templates,
                                                         std::set<uint32_t>* visited) {
    auto candidates = await<Result<std::optional<std::vector<uint32_t>>>>(
        io_, [&](auto cb) { registry_.candidateBuckets(hub_, e, cb); });
    EXPECT_TRUE(candidates) << candidates.error().message;
    std::vector<uint32_t> buckets;
    if (candidates && *candidates) {
      buckets = **candidates;
    } else {
      for (uint32_t b = 0; b < hub_.buckets; ++b) buckets.push_back(b);
    }
    auto selector = Selector::matching(std::make_shared<const expr::TagExpression>(e), templates);
    std::set<std::pair<std::string, std::string>> out;
    for (uint32_t b : buckets) {
      visited->insert(b);
      auto r = await<Result<std::vector<ResolvedTarget>>>(
          io_, [&](auto cb) { registry_.resolve(hub_, b, selector, cb); });
      EXPECT_TRUE(r) << r.error().message;
      if (!r) continue;
      for (const auto& t : *r) {
        if (!templates) {
          out.insert({t.installation_id, ""});
          continue;
        }
        for (const auto& [name, tpl] : t.templates) out.insert({t.installation_id, name});
      }
    }
    return out;
  }

  void checkRandomExpressions(int count) {
    for (int i = 0; i < count; ++i) {
      std::string text = randomExpression();
      auto e = expr::TagExpression::parse(text);
      ASSERT_TRUE(e) << text << ": " << e.error().message;
      for (bool templates : {false, true}) {
        std::set<uint32_t> visited;
        auto want = reference(*e, templates);
        auto got = selected(*e, templates, &visited);
        ASSERT_EQ(got, want) << text << " = " << e->text()
                             << (templates ? " (template send)" : " (native send)");
        // The index never misses a bucket that holds a selected installation.
        for (const auto& [id, name] : want) {
          ASSERT_TRUE(visited.count(Registry::bucketOf(id, hub_.buckets))) << text << " " << id;
        }
        ++checked_;
      }
    }
  }

  void upsertAll(const std::vector<Installation>& batch) {
    size_t left = batch.size();
    for (const auto& in : batch) {
      registry_.upsert(hub_, in, [&left](Result<void> ok) {
        EXPECT_TRUE(ok) << ok.error().message;
        --left;
      });
      installations_[in.id] = in;
    }
    ASSERT_TRUE(runUntil(
        io_, [&] { return left == 0; }, 60s));
  }

  static constexpr uint32_t kInstallations = 3000;
  std::mt19937 rng_{20261204};
  boost::asio::io_context io_;
  TestRedis redis_;
  RedisClient client_{io_, redis_.options()};
  Registry registry_{client_, Registry::Options{std::chrono::seconds(0)}};
  Hub hub_{"sel", 64};
  std::map<std::string, Installation> installations_;
  int checked_ = 0;
};

TEST_F(SelectionTest, RedisSelectsWhatTheReferenceSelects) {
  std::vector<Installation> batch;
  for (uint32_t n = 0; n < kInstallations; ++n) batch.push_back(randomInstallation(n));
  upsertAll(batch);
  checkRandomExpressions(150);

  // Replace a third (new tags, templates and users: nothing stale may stay selectable) and
  // delete a tenth, then check again.
  batch.clear();
  for (uint32_t n = 0; n < kInstallations; n += 3) batch.push_back(randomInstallation(n));
  upsertAll(batch);
  for (uint32_t n = 1; n < kInstallations; n += 10) {
    std::string id = "dev-" + std::to_string(n);
    ASSERT_TRUE(await<Result<bool>>(io_, [&](auto cb) { registry_.remove(hub_, id, cb); }));
    installations_.erase(id);
  }
  checkRandomExpressions(150);
  EXPECT_EQ(checked_, 600);
}

TEST_F(SelectionTest, SendsToAUserOrARareTagVisitFewBuckets) {
  std::vector<Installation> batch;
  for (uint32_t n = 0; n < kInstallations; ++n) batch.push_back(randomInstallation(n));
  upsertAll(batch);
  // Each send, and the expression whose matches' buckets it must visit: nothing was removed, so
  // the index is exact; `&& !x` narrows the matches but not the buckets.
  const std::vector<std::pair<std::string, std::string>> sends{
      {"$UserId:{user7}", "$UserId:{user7}"},
      {"rare", "rare"},
      {"rare && !muted", "rare"},
      {"$InstallationId:{dev-9}", "$InstallationId:{dev-9}"},
      {"$UserId:{user7} || $UserId:{user8}", "$UserId:{user7} || $UserId:{user8}"},
      {"$UserId:{user7} && (sports || !news)", "$UserId:{user7}"}};
  for (const auto& [text, driver] : sends) {
    auto e = expr::TagExpression::parse(text);
    auto d = expr::TagExpression::parse(driver);
    ASSERT_TRUE(e && d);
    std::set<uint32_t> expected;
    auto driven = reference(*d, false);
    for (const auto& [id, name] : driven) expected.insert(Registry::bucketOf(id, hub_.buckets));
    std::set<uint32_t> visited;
    EXPECT_EQ(selected(*e, false, &visited), reference(*e, false)) << text;
    EXPECT_EQ(visited, expected) << text;
    EXPECT_LE(visited.size(), driven.size()) << text;
    EXPECT_LT(visited.size(), hub_.buckets / 2) << text;
  }
  // A tag in more than max(16, buckets / 8) buckets is indexed as "any bucket", in one field.
  auto common = cmd(io_, client_, {"HKEYS", Registry::indexKey(hub_, "sports")});
  ASSERT_TRUE(common);
  ASSERT_EQ(common->elements.size(), 1u);
  EXPECT_EQ(common->elements[0].str, "*");
  std::set<uint32_t> visited;
  auto e = *expr::TagExpression::parse("sports && !muted");
  EXPECT_EQ(selected(e, false, &visited), reference(e, false));
  EXPECT_EQ(visited.size(), hub_.buckets);
}

TEST_F(SelectionTest, AStaleIndexEntryIsPrunedByTheSendThatFindsIt) {
  Installation in = randomInstallation(1);
  in.tags = {"once"};
  upsertAll({in});
  std::string key = Registry::indexKey(hub_, "once");
  std::string bucket = std::to_string(Registry::bucketOf(in.id, hub_.buckets));
  EXPECT_EQ(cmd(io_, client_, {"HEXISTS", key, bucket})->integer, 1);

  ASSERT_TRUE(await<Result<bool>>(io_, [&](auto cb) { registry_.remove(hub_, in.id, cb); }));
  installations_.clear();
  // Still listed: removal does not touch the index.
  EXPECT_EQ(cmd(io_, client_, {"HEXISTS", key, bucket})->integer, 1);
  auto e = *expr::TagExpression::parse("once");
  std::set<uint32_t> visited;
  EXPECT_TRUE(selected(e, false, &visited).empty());
  EXPECT_EQ(visited.size(), 1u);
  ASSERT_TRUE(runUntil(io_, [&] { return registry_.prunesInFlight() == 0; }));
  EXPECT_EQ(cmd(io_, client_, {"HEXISTS", key, bucket})->integer, 0);
  visited.clear();
  EXPECT_TRUE(selected(e, false, &visited).empty());
  EXPECT_TRUE(visited.empty());

  // Registering again lists the bucket again.
  upsertAll({in});
  EXPECT_EQ(selected(e, false, &visited),
            (std::set<std::pair<std::string, std::string>>{{in.id, ""}}));
}

TEST_F(SelectionTest, AFreshIndexEntryIsNotPruned) {
  Registry patient{client_};  // the default grace: ten minutes
  Installation in = randomInstallation(2);
  in.tags = {"fresh"};
  upsertAll({in});
  ASSERT_TRUE(await<Result<bool>>(io_, [&](auto cb) { registry_.remove(hub_, in.id, cb); }));
  auto selector = Selector::matching(
      std::make_shared<const expr::TagExpression>(*expr::TagExpression::parse("fresh")), false);
  uint32_t b = Registry::bucketOf(in.id, hub_.buckets);
  auto r = await<Result<std::vector<ResolvedTarget>>>(
      io_, [&](auto cb) { patient.resolve(hub_, b, selector, cb); });
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
  ASSERT_TRUE(runUntil(io_, [&] { return patient.prunesInFlight() == 0; }));
  EXPECT_EQ(
      cmd(io_, client_, {"HEXISTS", Registry::indexKey(hub_, "fresh"), std::to_string(b)})->integer,
      1);
}

}  // namespace
}  // namespace pushhub::registry
