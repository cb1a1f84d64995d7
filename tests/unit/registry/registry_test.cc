#include "registry/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

std::string apnsToken(int i) {
  char buf[57];
  std::snprintf(buf, sizeof buf, "%056x", i + 1);
  return std::string("abcdef01") + buf;  // has letters, so case matters
}

InstallationTemplate alertTemplate() {
  InstallationTemplate t;
  t.body = R"j({"aps":{"alert":"$(message)"}})j";
  t.headers = {{"apns-priority", "10"}};
  t.tags = {"t1"};
  return t;
}

Installation makeInstallation(const std::string& id, std::vector<std::string> tags, int n = 0) {
  Installation in;
  in.id = id;
  in.platform = Platform::kApns;
  in.push_channel = apnsToken(n);
  in.tags = std::move(tags);
  in.user_id = "user-" + id;
  in.templates["alert"] = alertTemplate();
  return in;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.connect();
    ASSERT_TRUE(runUntil(io_, [&] { return client_.connected(); }));
  }

  Result<void> upsert(const Installation& in, const Hub* hub = nullptr) {
    return await<Result<void>>(io_, [&](auto cb) { registry_.upsert(hub ? *hub : hub_, in, cb); });
  }
  Result<std::optional<Installation>> get(const std::string& id) {
    return await<Result<std::optional<Installation>>>(
        io_, [&](auto cb) { registry_.get(hub_, id, cb); });
  }
  Result<bool> remove(const std::string& id) {
    return await<Result<bool>>(io_, [&](auto cb) { registry_.remove(hub_, id, cb); });
  }
  Result<std::vector<ResolvedTarget>> resolve(uint32_t bucket, Selector s) {
    return await<Result<std::vector<ResolvedTarget>>>(
        io_, [&](auto cb) { registry_.resolve(hub_, bucket, s, cb); });
  }
  // Every installation id matching `s`, over all buckets; fails on duplicates.
  std::multiset<std::string> resolveAll(Selector s) {
    std::multiset<std::string> ids;
    for (uint32_t b = 0; b < hub_.buckets; ++b) {
      auto r = resolve(b, s);
      EXPECT_TRUE(r) << r.error().message;
      if (r) {
        for (auto& t : *r) {
          EXPECT_EQ(Registry::bucketOf(t.installation_id, hub_.buckets), b);
          ids.insert(t.installation_id);
        }
      }
    }
    return ids;
  }
  // Keys outside the tag index (whose entries stay until pruned: it may over-list).
  int64_t dbsize() { return static_cast<int64_t>(allKeys().size()); }
  std::vector<std::string> allKeys() {
    std::vector<std::string> keys;
    for (auto& k : everyKey()) {
      if (k.rfind("ph:ix:", 0) != 0) keys.push_back(std::move(k));
    }
    return keys;
  }
  std::vector<std::string> indexKeys() {
    std::vector<std::string> keys;
    for (auto& k : everyKey()) {
      if (k.rfind("ph:ix:", 0) == 0) keys.push_back(std::move(k));
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }
  // The fields of a bucket's tag hash: what its installations are listed under.
  std::set<std::string> tagFields(uint32_t bucket) {
    auto r = cmd(io_, client_, {"HKEYS", Registry::bucketPrefix(hub_, bucket) + "t"});
    EXPECT_TRUE(r);
    std::set<std::string> out;
    if (r) {
      for (auto& e : r->elements) out.insert(e.str);
    }
    return out;
  }
  std::vector<std::string> everyKey() { return redis_.everyKey(); }
  // Whether a tag resolve of `id`'s bucket returns `id` (tag lists hold slots, not ids).
  bool isMember(const std::string& id, const std::string& tag) {
    auto r = resolve(Registry::bucketOf(id, hub_.buckets), Selector::tag(tag));
    EXPECT_TRUE(r);
    return r && std::any_of(r->begin(), r->end(),
                            [&](const ResolvedTarget& t) { return t.installation_id == id; });
  }
  std::set<std::string> keysWithout(const std::string& prefix) {
    std::set<std::string> out;
    for (auto& k : allKeys()) {
      EXPECT_EQ(k.rfind(prefix, 0), 0u) << k;
      out.insert(k.substr(prefix.size()));
    }
    return out;
  }
  // Two ids that land in the same bucket.
  std::pair<std::string, std::string> sameBucketIds() {
    std::map<uint32_t, std::string> seen;
    for (int i = 0;; ++i) {
      std::string id = "dev-" + std::to_string(i);
      uint32_t b = Registry::bucketOf(id, hub_.buckets);
      if (auto it = seen.find(b); it != seen.end()) {
        return {it->second, id};
      }
      seen[b] = id;
    }
  }

  boost::asio::io_context io_;
  TestRedis redis_;
  RedisClient client_{io_, redis_.options()};
  Registry registry_{client_};
  Hub hub_{"myhub", 16};
};

TEST(RegistryBuckets, BucketOfIsStableAndInRange) {
  // FNV-1a 32 of "inst-1" is fixed forever: changing it would orphan every stored installation.
  EXPECT_EQ(Registry::bucketOf("", 1u << 16), 2166136261u & 0xffff);
  EXPECT_EQ(Registry::bucketOf("a", 1u << 31), 0xe40c292cu & 0x7fffffff);
  std::set<uint32_t> used;
  for (int i = 0; i < 1000; ++i) {
    uint32_t b = Registry::bucketOf("id" + std::to_string(i), 64);
    ASSERT_LT(b, 64u);
    used.insert(b);
  }
  EXPECT_EQ(used.size(), 64u);
}

TEST_F(RegistryTest, UpsertGetRoundTripWithTemplates) {
  Installation in = makeInstallation("inst-1", {"likes_hockey", "location_seattle"});
  InstallationTemplate expiring;
  expiring.body = R"j({"aps":{"alert":"{'Hi ' + $(msg)}","badge":"#(n)"}})j";
  expiring.headers = {{"apns-push-type", "alert"}, {"apns-priority", "5"}};
  expiring.expiry = "$(expiry)";
  in.templates["expiring"] = expiring;
  in.expiration_unix = 4102444800;
  in.last_update_ms = 1700000000000;
  ASSERT_TRUE(upsert(in));
  auto got = get("inst-1");
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, in);

  auto missing = get("inst-2");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_F(RegistryTest, UpsertStampsLastUpdate) {
  Installation in = makeInstallation("stamped", {});
  ASSERT_TRUE(upsert(in));
  auto got = get("stamped");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_GT((*got)->last_update_ms, 1600000000000);
}

TEST_F(RegistryTest, ReupsertWithChangedTagsMovesSetMemberships) {
  ASSERT_TRUE(upsert(makeInstallation("inst-1", {"a", "b", "c"})));
  EXPECT_TRUE(isMember("inst-1", "a"));
  EXPECT_TRUE(isMember("inst-1", "b"));
  ASSERT_TRUE(upsert(makeInstallation("inst-1", {"b", "d"})));
  EXPECT_FALSE(isMember("inst-1", "a"));
  EXPECT_TRUE(isMember("inst-1", "b"));
  EXPECT_FALSE(isMember("inst-1", "c"));
  EXPECT_TRUE(isMember("inst-1", "d"));
  EXPECT_EQ(resolveAll(Selector::tag("a")).size(), 0u);
  EXPECT_EQ(resolveAll(Selector::tag("d")), std::multiset<std::string>{"inst-1"});
  // Emptied tag lists disappear: the bucket keeps its index, the record in two parts, the tag
  // lists, the template and its reference count.
  EXPECT_EQ(keysWithout(Registry::bucketPrefix(hub_, Registry::bucketOf("inst-1", hub_.buckets))),
            (std::set<std::string>{"x", "r", "r1", "t", "tpl", "tplrc"}));
  // Its own tags, its user, and marked with '+' its template's name and tags: nothing stale.
  EXPECT_EQ(tagFields(Registry::bucketOf("inst-1", hub_.buckets)),
            (std::set<std::string>{"b", "d", "$UserId:{user-inst-1}", "+alert", "+t1"}));
  auto got = get("inst-1");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->tags, (std::vector<std::string>{"b", "d"}));
}

TEST_F(RegistryTest, RemoveCleansEveryKey) {
  Installation a = makeInstallation("inst-a", {"x", "y", "z"}, 1);
  InstallationTemplate extra;
  extra.body = "{\"data\":{\"m\":\"$(m)\"}}";
  a.templates["data"] = extra;
  ASSERT_TRUE(upsert(a));
  ASSERT_TRUE(upsert(makeInstallation("inst-b", {"x"}, 2)));
  EXPECT_GT(allKeys().size(), 0u);

  auto removed = remove("inst-a");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(isMember("inst-a", "x"));
  EXPECT_FALSE(isMember("inst-a", "y"));
  EXPECT_FALSE(isMember("inst-a", "z"));
  EXPECT_TRUE(isMember("inst-b", "x"));

  auto again = remove("inst-a");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  ASSERT_TRUE(remove("inst-b"));
  EXPECT_EQ(allKeys(), std::vector<std::string>{});
  // The index keeps its entries until a send finds them stale (it may over-list).
  EXPECT_EQ(indexKeys(),
            (std::vector<std::string>{"ph:ix:{myhub:$UserId:{user-inst-a}}",
                                      "ph:ix:{myhub:$UserId:{user-inst-b}}", "ph:ix:{myhub:alert}",
                                      "ph:ix:{myhub:data}", "ph:ix:{myhub:t1}", "ph:ix:{myhub:x}",
                                      "ph:ix:{myhub:y}", "ph:ix:{myhub:z}"}));
}

TEST_F(RegistryTest, ResolveByTagAllAndInstallationOverAllBuckets) {
  std::map<std::string, std::multiset<std::string>> by_tag;
  std::multiset<std::string> everyone;
  for (int i = 0; i < 200; ++i) {
    std::string id = "dev-" + std::to_string(i);
    std::vector<std::string> tags{"all-devices"};
    if (i % 2 == 0) {
      tags.push_back("even");
    }
    if (i % 7 == 0) {
      tags.push_back("seven");
    }
    for (auto& t : tags) {
      by_tag[t].insert(id);
    }
    everyone.insert(id);
    Installation in = makeInstallation(id, tags, i);
    if (i % 3 == 0) {
      in.platform = Platform::kFcm;
      in.push_channel = "fcm:token-" + std::to_string(i);
    }
    ASSERT_TRUE(upsert(in));
  }
  EXPECT_EQ(resolveAll(Selector::all()), everyone);
  for (const auto& [tag, ids] : by_tag) {
    EXPECT_EQ(resolveAll(Selector::tag(tag)), ids) << tag;
  }
  EXPECT_TRUE(resolveAll(Selector::tag("nobody")).empty());
  EXPECT_EQ(resolveAll(Selector::installation("dev-42")), std::multiset<std::string>{"dev-42"});
  EXPECT_TRUE(resolveAll(Selector::installation("dev-999")).empty());

  // Target contents.
  uint32_t b = Registry::bucketOf("dev-3", hub_.buckets);
  auto one = resolve(b, Selector::installation("dev-3"));
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].platform, Platform::kFcm);
  EXPECT_EQ((*one)[0].push_channel, "fcm:token-3");
  ASSERT_EQ((*one)[0].templates.size(), 1u);
  EXPECT_EQ((*one)[0].templates[0].first, "alert");
  EXPECT_EQ(*(*one)[0].templates[0].second, alertTemplate());
}

TEST_F(RegistryTest, CrowdedBucketPromotesTagListsAndReusesSlots) {
  Hub one{"crowded", 1};
  std::string prefix = Registry::bucketPrefix(one, 0);
  auto put = [&](int i) {
    std::vector<std::string> tags{"all", i % 2 == 0 ? "even" : "odd"};
    return upsert(makeInstallation("dev-" + std::to_string(i), tags, i), &one);
  };
  auto ids = [&](const std::string& tag) {
    std::multiset<std::string> out;
    auto r = await<Result<std::vector<ResolvedTarget>>>(
        io_, [&](auto cb) { registry_.resolve(one, 0, Selector::tag(tag), cb); });
    EXPECT_TRUE(r);
    for (auto& t : *r) {
      out.insert(t.installation_id);
    }
    return out;
  };
  auto drop = [&](int i) {
    return await<Result<bool>>(
        io_, [&](auto cb) { registry_.remove(one, "dev-" + std::to_string(i), cb); });
  };
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(put(i));
  }
  // 50 and 25 members: past the packed limit (20 slots), so both moved to sets of slots.
  EXPECT_EQ(ids("all").size(), 50u);
  EXPECT_EQ(ids("even").size(), 25u);
  EXPECT_EQ(cmd(io_, client_, {"SCARD", prefix + "t:all"})->integer, 50);
  EXPECT_EQ(cmd(io_, client_, {"HGET", prefix + "t", "all"})->str, "");
  for (int i = 10; i < 48; ++i) {
    ASSERT_TRUE(drop(i));
  }
  std::multiset<std::string> left{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4",  "dev-5",
                                  "dev-6", "dev-7", "dev-8", "dev-9", "dev-48", "dev-49"};
  EXPECT_EQ(ids("all"), left);
  EXPECT_EQ(ids("odd").size(), 6u);
  // Freed slots 10..47 are reused lowest first: new installations stay below slot 50.
  for (int i = 100; i < 130; ++i) {
    ASSERT_TRUE(put(i));
  }
  auto slots = cmd(io_, client_, {"HVALS", prefix + "x"});
  ASSERT_TRUE(slots);
  ASSERT_EQ(slots->elements.size(), 42u);
  std::set<int> distinct;
  for (auto& v : slots->elements) {
    int slot = std::stoi(v.str);
    EXPECT_LT(slot, 50);
    distinct.insert(slot);
  }
  EXPECT_EQ(distinct.size(), 42u);
  EXPECT_EQ(ids("all").size(), 42u);
  // Removing the highest slots shrinks the allocation instead of growing the free list.
  for (int i = 0; i < 130; ++i) {
    ASSERT_TRUE(drop(i));
  }
  EXPECT_EQ(allKeys(), std::vector<std::string>{});
}

TEST_F(RegistryTest, LongRecordsSpanSeveralPartsAndShrinkBack) {
  Installation in = makeInstallation("droid", {"t"}, 1);
  in.platform = Platform::kFcm;
  in.push_channel = "fcm:" + std::string(300, 'A');
  in.user_id = std::string(100, 'u');
  in.last_update_ms = 1700000000123;
  ASSERT_TRUE(upsert(in));
  std::string prefix = Registry::bucketPrefix(hub_, Registry::bucketOf("droid", hub_.buckets));
  EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "r5"})->integer, 1);
  auto got = get("droid");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ(**got, in);
  auto one = resolve(Registry::bucketOf("droid", hub_.buckets), Selector::tag("t"));
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].push_channel, in.push_channel);

  in.push_channel = "fcm:short";
  in.user_id = "";
  ASSERT_TRUE(upsert(in));
  EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "r2", prefix + "r5"})->integer, 0);
  got = get("droid");
  ASSERT_TRUE(got && got->has_value());
  ++in.last_update_ms;  // a write never keeps the last update it replaces
  EXPECT_EQ(**got, in);
}

// A broadcast reads whole buckets with HGETALL and joins the 64-byte record parts itself; a
// bucket with a record of more than four parts goes through the script. Both must give every
// installation exactly as stored. The channel lengths sweep records across every part boundary
// (one of them is exactly four full parts).
TEST_F(RegistryTest, BroadcastJoinsRecordsOfEveryLength) {
  for (bool with_long_record : {false, true}) {
    Hub one{with_long_record ? "longest" : "short", 1};
    std::map<std::string, Installation> stored;
    for (int i = 0; i < 120; ++i) {
      Installation in = makeInstallation("dev-" + std::to_string(i), {"a", "b"}, i);
      in.platform = Platform::kFcm;
      in.push_channel = std::string(1 + i * 3 / 2, 'A' + i % 26);  // records of 1 to 4 parts
      if (i % 5 == 0) {
        in.templates.clear();
      }
      stored[in.id] = in;
    }
    if (with_long_record) {
      stored["dev-long"] = makeInstallation("dev-long", {"a"}, 1);
      stored["dev-long"].platform = Platform::kFcm;
      stored["dev-long"].push_channel = std::string(300, 'L');  // past four parts
    }
    for (auto& [id, in] : stored) {
      auto put = upsert(in, &one);
      ASSERT_TRUE(put) << put.error().message;
    }
    std::string prefix = Registry::bucketPrefix(one, 0);
    EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "r3"})->integer, 1);
    EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "r4"})->integer, with_long_record ? 1 : 0);
    // Statistics of the master holding the bucket (INFO and CONFIG name no key to route by).
    uint16_t master = client_.masterOf(prefix).port;
    pushhub::testing::redisCli(master, {"CONFIG", "RESETSTAT"});
    auto all = await<Result<std::vector<ResolvedTarget>>>(
        io_, [&](auto cb) { registry_.resolve(one, 0, Selector::all(), cb); });
    ASSERT_TRUE(all) << all.error().message;
    std::string stats = pushhub::testing::redisCli(master, {"INFO", "commandstats"});
    // r .. r3 and tpl in the transaction, and r again inside the script for the long record.
    std::string hgetalls = with_long_record ? "calls=6," : "calls=5,";
    EXPECT_NE(stats.find("cmdstat_hgetall:" + hgetalls), std::string::npos) << stats;
    bool scripted = stats.find("cmdstat_evalsha") != std::string::npos;
    EXPECT_EQ(scripted, with_long_record) << stats;
    ASSERT_EQ(all->size(), stored.size());
    for (const auto& t : *all) {
      ASSERT_TRUE(stored.count(t.installation_id)) << t.installation_id;
      const Installation& in = stored[t.installation_id];
      EXPECT_EQ(t.platform, in.platform);
      EXPECT_EQ(t.push_channel, in.push_channel);
      ASSERT_EQ(t.templates.size(), in.templates.size()) << t.installation_id;
      if (!t.templates.empty()) {
        EXPECT_EQ(*t.templates[0].second, alertTemplate());
      }
    }
  }
}

TEST_F(RegistryTest, ReupsertWithTheSameTagsKeepsOneMembership) {
  Installation in = makeInstallation("same", {"a", "b"}, 1);
  ASSERT_TRUE(upsert(in));
  ASSERT_TRUE(upsert(in));
  in.tags = {"b", "a", "c"};
  ASSERT_TRUE(upsert(in));
  std::string prefix = Registry::bucketPrefix(hub_, Registry::bucketOf("same", hub_.buckets));
  for (const char* tag : {"a", "b", "c"}) {
    EXPECT_EQ(resolveAll(Selector::tag(tag)), std::multiset<std::string>{"same"}) << tag;
    EXPECT_EQ(cmd(io_, client_, {"HSTRLEN", prefix + "t", tag})->integer, 3) << tag;
  }
}

TEST_F(RegistryTest, ResolveSkipsExpiredInstallations) {
  Installation gone = makeInstallation("gone", {"t"}, 1);
  gone.expiration_unix = 1000;  // 1970
  Installation dead = makeInstallation("dead", {"t"}, 2);
  dead.push_channel_expired = true;
  ASSERT_TRUE(upsert(gone));
  ASSERT_TRUE(upsert(dead));
  ASSERT_TRUE(upsert(makeInstallation("alive", {"t"}, 3)));
  EXPECT_EQ(resolveAll(Selector::tag("t")), std::multiset<std::string>{"alive"});
}

TEST_F(RegistryTest, IdenticalTemplatesAreStoredOncePerBucket) {
  auto [id1, id2] = sameBucketIds();
  uint32_t bucket = Registry::bucketOf(id1, hub_.buckets);
  std::string prefix = Registry::bucketPrefix(hub_, bucket);
  Installation a = makeInstallation(id1, {"shared"}, 1);
  Installation b = makeInstallation(id2, {"shared"}, 2);
  b.templates["renamed"] = alertTemplate();  // same content under a second name
  ASSERT_TRUE(upsert(a));
  ASSERT_TRUE(upsert(b));
  EXPECT_EQ(cmd(io_, client_, {"HLEN", prefix + "tpl"})->integer, 1);
  auto rc = cmd(io_, client_, {"HVALS", prefix + "tplrc"});
  ASSERT_TRUE(rc);
  ASSERT_EQ(rc->elements.size(), 1u);
  EXPECT_EQ(rc->elements[0].str, "3");

  auto targets = resolve(bucket, Selector::tag("shared"));
  ASSERT_TRUE(targets);
  ASSERT_EQ(targets->size(), 2u);
  std::set<const InstallationTemplate*> distinct;
  for (auto& t : *targets) {
    for (auto& [name, tpl] : t.templates) {
      distinct.insert(tpl.get());
    }
  }
  EXPECT_EQ(distinct.size(), 1u);  // one object shared by all three references

  // Changing one installation's template adds a second; removing the last user deletes it.
  a.templates["alert"].body = "{\"aps\":{\"badge\":\"#(b)\"}}";
  ASSERT_TRUE(upsert(a));
  EXPECT_EQ(cmd(io_, client_, {"HLEN", prefix + "tpl"})->integer, 2);
  ASSERT_TRUE(remove(id1));
  EXPECT_EQ(cmd(io_, client_, {"HLEN", prefix + "tpl"})->integer, 1);
  ASSERT_TRUE(remove(id2));
  EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "tpl", prefix + "tplrc"})->integer, 0);
}

TEST_F(RegistryTest, ExpireChannelMarksOnlyTheCurrentChannelAndKeepsTheInstallation) {
  Installation in = makeInstallation("phone", {"t"}, 1);
  std::string old_channel = in.push_channel;
  ASSERT_TRUE(upsert(in));
  in.push_channel = apnsToken(2);  // the device re-registered
  ASSERT_TRUE(upsert(in));
  auto expire = [&](const std::string& id, const std::string& channel) {
    auto r =
        await<Result<bool>>(io_, [&](auto cb) { registry_.expireChannel(hub_, id, channel, cb); });
    EXPECT_TRUE(r) << r.error().message;
    return r && *r;
  };
  EXPECT_FALSE(expire("phone", old_channel));
  EXPECT_FALSE((*get("phone"))->push_channel_expired);
  // Upper-case spelling of the current token is a different stored channel: kept.
  std::string upper = in.push_channel;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  EXPECT_FALSE(expire("phone", upper));
  EXPECT_TRUE(isMember("phone", "t"));

  int64_t before = (*get("phone"))->last_update_ms;
  EXPECT_TRUE(expire("phone", in.push_channel));
  EXPECT_FALSE(expire("phone", in.push_channel));  // once
  auto got = get("phone");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_TRUE((*got)->push_channel_expired);
  EXPECT_GE((*got)->last_update_ms, before);
  EXPECT_EQ((*got)->tags, in.tags);
  EXPECT_EQ((*got)->templates, in.templates);
  EXPECT_FALSE(isMember("phone", "t"));  // no longer targeted
  // Its memberships stay, so registering again (a new handle) makes it a target again.
  EXPECT_EQ(tagFields(Registry::bucketOf("phone", hub_.buckets)).count("t"), 1u);
  in.push_channel = apnsToken(3);
  ASSERT_TRUE(upsert(in));
  EXPECT_FALSE((*get("phone"))->push_channel_expired);
  EXPECT_TRUE(isMember("phone", "t"));

  // Non-hex channels (FCM) work the same way.
  Installation fcm = makeInstallation("droid", {}, 3);
  fcm.platform = Platform::kFcm;
  fcm.push_channel = "fcm:abc";
  ASSERT_TRUE(upsert(fcm));
  EXPECT_FALSE(expire("droid", "fcm:abd"));
  EXPECT_TRUE(expire("droid", "fcm:abc"));
  EXPECT_FALSE(expire("nobody", "fcm:abc"));
}

// A registration is an installation record with a trailer and a hidden channel tag: stored and
// read back whole, found by its channel through the tag index, listed by its id prefix, and
// marked dead without losing what makes it a registration.
TEST_F(RegistryTest, RegistrationsKeepTheirKindAndAreFoundByChannel) {
  Installation reg;
  reg.id = std::string(kRegistrationIdPrefix) + "111-1";
  reg.platform = Platform::kFcm;
  reg.push_channel = "fcm:shared-channel";
  reg.tags = {"t"};
  reg.registration = RegistrationInfo{true, R"({"v":1})"};
  InstallationTemplate body;
  body.body = R"x({"message":{"notification":{"body":"$(m)"}}})x";
  reg.templates.emplace(std::string(kUnnamedTemplate), body);
  ASSERT_TRUE(upsert(reg));
  Installation other = reg;  // another registration of the same channel, and an installation
  other.id = std::string(kRegistrationIdPrefix) + "222-1";
  other.templates.clear();
  other.registration->gcm = false;
  ASSERT_TRUE(upsert(other));
  Installation plain = makeInstallation("plain", {"t"}, 1);
  ASSERT_TRUE(upsert(plain));

  auto got = get(reg.id);
  ASSERT_TRUE(got && got->has_value()) << (got ? "absent" : got.error().message);
  reg.last_update_ms = (*got)->last_update_ms;
  EXPECT_EQ(**got, reg);  // the channel tag stays hidden

  // By channel: the index names the buckets, the bucket's tag list the records.
  std::string tag = channelTag(Platform::kFcm, "fcm:shared-channel");
  EXPECT_EQ(tag.size(), kChannelTagPrefix.size() + 16);
  EXPECT_NE(tag, channelTag(Platform::kWns, "fcm:shared-channel"));
  auto buckets = await<Result<std::optional<std::vector<uint32_t>>>>(
      io_, [&](auto cb) { registry_.bucketsOfTag(hub_, tag, cb); });
  ASSERT_TRUE(buckets && buckets->has_value());
  std::set<std::string> found;
  for (uint32_t b : **buckets) {
    auto targets = resolve(b, Selector::tag(tag));
    ASSERT_TRUE(targets) << targets.error().message;
    for (const auto& t : *targets) {
      found.insert(t.installation_id);
      EXPECT_EQ(t.template_registration, t.installation_id == reg.id);
    }
  }
  EXPECT_EQ(found, (std::set<std::string>{reg.id, other.id}));
  // Only the channel's buckets: the registrations' (one or two), not the installation's.
  std::set<uint32_t> expected{Registry::bucketOf(reg.id, hub_.buckets),
                              Registry::bucketOf(other.id, hub_.buckets)};
  EXPECT_EQ(std::set<uint32_t>((*buckets)->begin(), (*buckets)->end()), expected);

  // Listed by prefix, bucket by bucket.
  std::set<std::string> listed;
  for (uint32_t b = 0; b < hub_.buckets; ++b) {
    auto ids = await<Result<std::vector<std::string>>>(
        io_, [&](auto cb) { registry_.idsWithPrefix(hub_, b, kRegistrationIdPrefix, cb); });
    ASSERT_TRUE(ids) << ids.error().message;
    listed.insert(ids->begin(), ids->end());
  }
  EXPECT_EQ(listed, (std::set<std::string>{reg.id, other.id}));

  // Marked dead, it is still a registration.
  auto marked = await<Result<bool>>(
      io_, [&](auto cb) { registry_.expireChannel(hub_, reg.id, reg.push_channel, cb); });
  ASSERT_TRUE(marked && *marked);
  got = get(reg.id);
  ASSERT_TRUE(got && got->has_value());
  EXPECT_TRUE((*got)->push_channel_expired);
  EXPECT_EQ((*got)->registration, reg.registration);

  // An installation id cannot name a registration's record, and the other way round.
  plain.id = "$reg:x";
  EXPECT_FALSE(upsert(plain));
  other.id = "222-1";
  EXPECT_FALSE(upsert(other));
}

TEST_F(RegistryTest, SweepDeletesExpiredInstallationsAndDeadHandlesPastTheRetention) {
  auto [a, b] = sameBucketIds();
  uint32_t bucket = Registry::bucketOf(a, hub_.buckets);
  Installation gone = makeInstallation(a, {"t"}, 1);
  gone.expiration_unix = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count() -
                         1;
  Installation dead = makeInstallation(b, {"t"}, 2);
  Installation live = makeInstallation("live", {"t"}, 3);
  live.expiration_unix = gone.expiration_unix + 3600;
  ASSERT_TRUE(upsert(gone));
  ASSERT_TRUE(upsert(dead));
  ASSERT_TRUE(upsert(live));
  EXPECT_FALSE(isMember(a, "t"));  // expired: never targeted, even before the sweep
  ASSERT_TRUE(*await<Result<bool>>(
      io_, [&](auto cb) { registry_.expireChannel(hub_, b, dead.push_channel, cb); }));
  auto sweep = [&](uint32_t bucket, std::chrono::seconds retention) {
    auto r =
        await<Result<size_t>>(io_, [&](auto cb) { registry_.sweep(hub_, bucket, retention, cb); });
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : 0;
  };
  // The dead handle is kept within its retention; the expired installation goes.
  EXPECT_EQ(sweep(bucket, std::chrono::hours(1)), 1u);
  EXPECT_FALSE(get(a)->has_value());
  EXPECT_TRUE(get(b)->has_value());
  EXPECT_EQ(sweep(bucket, std::chrono::hours(1)), 0u);
  std::string prefix = Registry::bucketPrefix(hub_, bucket);
  EXPECT_EQ(cmd(io_, client_, {"ZCARD", prefix + "d"})->integer, 1);  // what the sweep reads
  EXPECT_EQ(sweep(bucket, std::chrono::seconds(0)), 1u);
  EXPECT_FALSE(get(b)->has_value());
  EXPECT_EQ(cmd(io_, client_, {"EXISTS", prefix + "e", prefix + "d"})->integer, 0);
  // Nothing of theirs is left in the bucket; the live one is untouched.
  if (Registry::bucketOf("live", hub_.buckets) != bucket) {
    EXPECT_TRUE(tagFields(bucket).empty());
  }
  EXPECT_EQ(sweep(Registry::bucketOf("live", hub_.buckets), std::chrono::seconds(0)), 0u);
  EXPECT_TRUE(isMember("live", "t"));
}

TEST_F(RegistryTest, EveryWriteMovesTheLastUpdateEvenWithinAMillisecond) {
  Installation in = makeInstallation("phone", {"a"}, 1);
  in.last_update_ms = 0;
  int64_t previous = 0;
  for (int i = 0; i < 20; ++i) {  // far more writes than milliseconds go by
    ASSERT_TRUE(upsert(in));
    auto got = get("phone");
    ASSERT_TRUE(got && got->has_value());
    EXPECT_GT((*got)->last_update_ms, previous) << "write " << i;
    previous = (*got)->last_update_ms;
  }
}

TEST_F(RegistryTest, UpdateAppliesAChangeAndLosesNoConcurrentWrite) {
  Installation in = makeInstallation("tablet", {"a"}, 1);
  ASSERT_TRUE(upsert(in));
  auto update = [&](Registry::Change change) {
    return await<Result<Installation>>(
        io_, [&](auto cb) { registry_.update(hub_, "tablet", change, cb); });
  };
  // A writer that slips in between this update's read and its write (another instance, with its
  // own connections, done before this update writes): the write is refused and the update starts
  // over from what the writer stored.
  int calls = 0;
  auto r = update([&](const Installation& current) -> Result<Installation> {
    if (++calls == 1) {
      Installation other = current;
      other.tags.push_back("theirs");
      other.last_update_ms = 0;
      std::thread([&] {
        boost::asio::io_context io;
        RedisClient client{io, redis_.options()};
        Registry registry{client};
        client.connect();
        ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
        auto ok = await<Result<void>>(io, [&](auto cb) { registry.upsert(hub_, other, cb); });
        EXPECT_TRUE(ok) << ok.error().message;
      }).join();
    }
    Installation mine = current;
    mine.tags.push_back("mine");
    return mine;
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r->tags, (std::vector<std::string>{"a", "theirs", "mine"}));
  EXPECT_EQ((*get("tablet"))->tags, r->tags);
  EXPECT_TRUE(isMember("tablet", "mine"));
  EXPECT_TRUE(isMember("tablet", "theirs"));

  // A refused change writes nothing; a missing installation is NOT_FOUND.
  auto before = *get("tablet");
  r = update([](const Installation&) -> Result<Installation> {
    return Error::invalidArgument("operations[0].path: no");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "operations[0].path: no");
  EXPECT_EQ(*get("tablet"), before);
  auto missing = await<Result<Installation>>(io_, [&](auto cb) {
    registry_.update(
        hub_, "nobody", [](const Installation& i) -> Result<Installation> { return i; }, cb);
  });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Error::Code::kNotFound);
  // An invalid result is refused by the registry's own validation.
  r = update([](const Installation& current) -> Result<Installation> {
    Installation bad = current;
    bad.tags.push_back("no spaces");
    return bad;
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(*get("tablet"), before);
}

TEST_F(RegistryTest, InvalidInputWritesNothing) {
  ASSERT_TRUE(upsert(makeInstallation("existing", {"t"}, 1)));
  int64_t before = dbsize();
  auto used_before =
      cmd(io_, client_,
          {"HGETALL",
           Registry::bucketPrefix(hub_, Registry::bucketOf("existing", hub_.buckets)) + "r"});

  Installation bad = makeInstallation("existing", {"ok", std::string(121, 'x')}, 2);
  auto r = upsert(bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message, "tags[1]: longer than 120 characters");

  bad = makeInstallation("new-one", {}, 3);
  bad.push_channel = "zz";
  EXPECT_FALSE(upsert(bad));
  bad = makeInstallation("new/one", {}, 3);
  EXPECT_FALSE(upsert(bad));
  Hub bad_hub{"h{1}", 16};
  r = upsert(makeInstallation("new-two", {}, 4), &bad_hub);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("hub"), std::string::npos);
  Hub bad_buckets{"h", 100};
  r = upsert(makeInstallation("new-two", {}, 4), &bad_buckets);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("hub.buckets"), std::string::npos);

  EXPECT_EQ(dbsize(), before);
  auto used_after =
      cmd(io_, client_,
          {"HGETALL",
           Registry::bucketPrefix(hub_, Registry::bucketOf("existing", hub_.buckets)) + "r"});
  EXPECT_EQ(used_after->elements.size(), used_before->elements.size());
  EXPECT_EQ(used_after->elements.at(1).str, used_before->elements.at(1).str);

  auto res = resolve(hub_.buckets, Selector::all());
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, Error::Code::kInvalidArgument);
}

TEST_F(RegistryTest, RedisDownIsUnavailable) {
  client_.close();
  auto r = upsert(makeInstallation("x", {}, 1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kUnavailable);
}

}  // namespace
}  // namespace pushhub::registry
