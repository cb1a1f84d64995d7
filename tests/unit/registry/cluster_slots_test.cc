#include "registry/cluster_slots.h"

#include <gtest/gtest.h>

#include "registry/redis_connection.h"

namespace pushhub::registry {
namespace {

using Type = RedisReply::Type;

RedisReply str(std::string s) {
  RedisReply r;
  r.type = Type::kString;
  r.str = std::move(s);
  return r;
}
RedisReply num(int64_t n) {
  RedisReply r;
  r.type = Type::kInteger;
  r.integer = n;
  return r;
}
RedisReply arr(std::vector<RedisReply> elements) {
  RedisReply r;
  r.type = Type::kArray;
  r.elements = std::move(elements);
  return r;
}

// ../shared/spec/redis-cluster.md section 1.3: every row checked there against CLUSTER KEYSLOT.
TEST(KeySlot, MatchesTheSpecsTestVectors) {
  EXPECT_EQ(crc16Xmodem("123456789"), 0x31C3);  // the CRC's check value
  struct Row {
    std::string key;
    uint16_t slot;
  };
  for (const Row& row : std::vector<Row>{{"123456789", 12739},
                                         {"somekey", 11058},
                                         {"foo{hash_tag}", 2515},
                                         {"bar{hash_tag}", 2515},
                                         {"foo", 12182},
                                         {"bar", 5061},
                                         {"{foo}-1", 12182},
                                         {"{bar}-1", 5061},
                                         {"{boo}-1", 13142},
                                         {"{user1000}.following", 3443},
                                         {"{user1000}.followers", 3443},
                                         {"user1000", 3443},
                                         {"foo{}{bar}", 8363},
                                         {"foo{{bar}}zap", 4015},
                                         {"{bar", 4015},
                                         {"foo{bar}{zap}", 5061},
                                         {"{}foo", 9500},
                                         {"foo{", 7673},
                                         {"foo}", 15679},
                                         {"", 0}}) {
    EXPECT_EQ(keySlot(row.key), row.slot) << row.key;
  }
}

TEST(KeySlot, OneBucketsKeysShareTheirSlot) {
  // Every key of a bucket carries the hash tag {hub:bucket} (registry/README.md).
  uint16_t slot = keySlot("ph:b:{myhub:17}:t");
  EXPECT_EQ(keySlot("ph:b:{myhub:17}:r"), slot);
  EXPECT_EQ(keySlot("ph:b:{myhub:17}:r3"), slot);
  EXPECT_NE(keySlot("ph:b:{myhub:18}:t"), slot);
}

TEST(RoutingKey, FindsTheKeyOfEachCommandShape) {
  using V = std::vector<std::string>;
  EXPECT_EQ(routingKey(V{"GET", "k"}), "k");
  EXPECT_EQ(routingKey(V{"hset", "h", "f", "v"}), "h");
  EXPECT_EQ(routingKey(V{"EVALSHA", "abc", "2", "k1", "k2", "arg"}), "k1");
  EXPECT_EQ(routingKey(V{"EVAL", "return 1", "0"}), std::nullopt);
  EXPECT_EQ(routingKey(V{"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "10", "STREAMS",
                         "s{1}", ">"}),
            "s{1}");
  EXPECT_EQ(routingKey(V{"XGROUP", "CREATE", "s{2}", "g", "0", "MKSTREAM"}), "s{2}");
  EXPECT_EQ(routingKey(V{"XINFO", "GROUPS", "s{3}"}), "s{3}");
  EXPECT_EQ(routingKey(V{"PING"}), std::nullopt);
  EXPECT_EQ(routingKey(V{"SCRIPT", "FLUSH"}), std::nullopt);
  EXPECT_EQ(routingKey(V{"CLUSTER", "SHARDS"}), std::nullopt);
  EXPECT_EQ(routingKey(V{"INFO", "memory"}), std::nullopt);
}

TEST(ParseRedirect, ReadsMovedAskAndRetryableErrors) {
  Redirect moved = parseRedirect("MOVED 12182 127.0.0.1:30005");
  EXPECT_EQ(moved.kind, Redirect::Kind::kMoved);
  EXPECT_EQ(moved.slot, 12182);
  EXPECT_EQ(moved.host, "127.0.0.1");
  EXPECT_EQ(moved.port, 30005);
  Redirect ask = parseRedirect("ASK 3999 ::1:6380");  // IPv6: split on the last ':'
  EXPECT_EQ(ask.kind, Redirect::Kind::kAsk);
  EXPECT_EQ(ask.host, "::1");
  EXPECT_EQ(ask.port, 6380);
  Redirect unknown = parseRedirect("MOVED 3999 :6380");  // unknown endpoint: reuse the host
  EXPECT_EQ(unknown.kind, Redirect::Kind::kMoved);
  EXPECT_EQ(unknown.host, "");
  for (const char* e : {"TRYAGAIN Multiple keys request during rehashing of slot",
                        "CLUSTERDOWN The cluster is down", "CLUSTERDOWN Hash slot not served",
                        "LOADING Redis is loading the dataset in memory",
                        "NOREPLICAS Not enough good replicas to write."}) {
    EXPECT_EQ(parseRedirect(e).kind, Redirect::Kind::kRetryLater) << e;
  }
  for (const char* e :
       {"CROSSSLOT Keys in request don't hash to the same slot",
        "NOSCRIPT No matching script. Please use EVAL.",
        "WRONGTYPE Operation against a key holding the wrong kind of value", "MOVED",
        "MOVED 99999 1.2.3.4:5", "MOVED 1 nohost", "ASK 1 h:0", "ERR MOVED 1 h:1"}) {
    EXPECT_EQ(parseRedirect(e).kind, Redirect::Kind::kNone) << e;
  }
}

RedisReply shardNode(std::string ip, int64_t port, std::string role, std::string health) {
  return arr({str("id"), str(std::string(40, 'a')), str("port"), num(port), str("ip"), str(ip),
              str("endpoint"), str(ip), str("role"), str(std::move(role)),
              str("replication-offset"), num(14), str("health"), str(std::move(health))});
}

TEST(ParseClusterShards, MapsEverySlotToItsOnlineMaster) {
  RedisReply reply = arr({
      arr({str("slots"), arr({num(10923), num(16383)}), str("nodes"),
           arr({shardNode("127.0.0.1", 30003, "master", "online"),
                shardNode("127.0.0.1", 30004, "replica", "online")})}),
      // A failed master lingers as a slotless shard: skipped.
      arr({str("slots"), arr({}), str("nodes"),
           arr({shardNode("127.0.0.1", 30009, "master", "fail")})}),
      arr({str("slots"), arr({num(0), num(5460)}), str("nodes"),
           arr({shardNode("127.0.0.1", 30001, "master", "online")})}),
      // Non-contiguous ranges of one master.
      arr({str("slots"), arr({num(5461), num(6000), num(6001), num(10922)}), str("nodes"),
           arr({shardNode("", 30002, "master", "online")})}),
  });
  auto map = parseClusterShards(reply, "10.0.0.9");
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_TRUE(map->cluster);
  EXPECT_EQ(map->uncovered(), 0u);
  EXPECT_EQ(map->nodes.size(), 3u);
  EXPECT_EQ(map->nodes[map->owner[0]].port, 30001);
  EXPECT_EQ(map->nodes[map->owner[5460]].port, 30001);
  EXPECT_EQ(map->nodes[map->owner[5461]].port, 30002);
  EXPECT_EQ(map->nodes[map->owner[5461]].host, "10.0.0.9");  // empty ip: the node asked
  EXPECT_EQ(map->nodes[map->owner[10922]].port, 30002);
  EXPECT_EQ(map->nodes[map->owner[16383]].port, 30003);
}

TEST(ParseClusterShards, HolesAreReportedAndGarbageRefused) {
  RedisReply partial = arr({arr({str("slots"), arr({num(0), num(99)}), str("nodes"),
                                 arr({shardNode("127.0.0.1", 7000, "master", "online")})})});
  auto map = parseClusterShards(partial, "h");
  ASSERT_TRUE(map);
  EXPECT_EQ(map->uncovered(), kClusterSlots - 100u);
  EXPECT_EQ(map->owner[100], SlotMap::kNoOwner);

  RedisReply bad_range = arr({arr({str("slots"), arr({num(5), num(16384)}), str("nodes"),
                                   arr({shardNode("127.0.0.1", 7000, "master", "online")})})});
  EXPECT_FALSE(parseClusterShards(bad_range, "h"));
  EXPECT_FALSE(parseClusterShards(str("nope"), "h"));
  EXPECT_FALSE(parseClusterShards(arr({}), "h"));  // no master at all
}

TEST(ParseClusterSlots, ReadsRangesWithTheirMasters) {
  RedisReply reply = arr({
      arr({num(0), num(8191), arr({str("127.0.0.1"), num(7001), str("id1"), arr({})}),
           arr({str("127.0.0.1"), num(7004), str("id4"), arr({})})}),
      arr({num(8192), num(16383), arr({str(""), num(7002), str("id2"), arr({})})}),
  });
  auto map = parseClusterSlots(reply, "seed-host");
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_EQ(map->uncovered(), 0u);
  EXPECT_EQ(map->nodes[map->owner[8191]].port, 7001);
  EXPECT_EQ(map->nodes[map->owner[8192]].host, "seed-host");
  EXPECT_FALSE(parseClusterSlots(arr({arr({num(0), num(5)})}), "h"));
}

TEST(SlotMap, StandaloneOwnsEverySlot) {
  SlotMap map = SlotMap::standalone({"127.0.0.1", 6379});
  EXPECT_FALSE(map.cluster);
  EXPECT_EQ(map.uncovered(), 0u);
  EXPECT_EQ(map.owner[16383], 0);
}

}  // namespace
}  // namespace pushhub::registry
