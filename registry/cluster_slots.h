#pragma once
// Redis Cluster routing facts, free of I/O: the slot of a key (CRC16/XMODEM of its hash tag, as
// the Redis Cluster specification defines it), the key a command is routed by, the redirections
// and retryable errors a node answers with, and the slot map read from CLUSTER SHARDS or CLUSTER
// SLOTS (../shared/spec/redis-cluster.md sections 1 to 3).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace pushhub::registry {

struct RedisReply;

inline constexpr uint16_t kClusterSlots = 16384;

uint16_t crc16Xmodem(std::string_view bytes);
// The slot of `key`: the CRC of its hash tag (the bytes between the first '{' and the first '}'
// after it, when not empty), else of the whole key, modulo 16384.
uint16_t keySlot(std::string_view key);

// The key a command is routed by, or nullopt for a command without keys (PING, SCRIPT, INFO,
// CLUSTER ...), which any node may serve. EVAL/EVALSHA: the first of KEYS; XREADGROUP/XREAD:
// the first stream; XGROUP/XINFO: the stream; everything else: its first argument.
std::optional<std::string_view> routingKey(const std::vector<std::string>& argv);

// What a node's error reply asks the client to do.
struct Redirect {
  enum class Kind { kNone, kMoved, kAsk, kRetryLater };
  Kind kind = Kind::kNone;
  uint16_t slot = 0;
  std::string host;  // kMoved/kAsk: may be empty (unknown endpoint): reuse the current host
  uint16_t port = 0;
};
// MOVED <slot> <host>:<port>, ASK <slot> <host>:<port>, or an error worth retrying after a short
// wait on the same route (TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, NOREPLICAS); kNone for
// everything else, including CROSSSLOT and errors raised by the command itself.
Redirect parseRedirect(std::string_view error);

struct ClusterNode {
  std::string host;
  uint16_t port = 0;
  std::string endpoint() const { return host + ":" + std::to_string(port); }
  bool operator==(const ClusterNode&) const = default;
};

// Which master serves each slot. Node 0 is whatever the map was built around (the seed for a
// standalone server); `owner[slot]` indexes `nodes`, kNoOwner for a slot no master serves.
struct SlotMap {
  static constexpr uint16_t kNoOwner = 0xffff;
  std::vector<ClusterNode> nodes;
  std::vector<uint16_t> owner = std::vector<uint16_t>(kClusterSlots, kNoOwner);
  bool cluster = false;  // false: one standalone server owns every slot

  static SlotMap standalone(ClusterNode node);
  // The node index for `node`, added when new.
  uint16_t indexOf(const ClusterNode& node);
  size_t uncovered() const;
};

// CLUSTER SHARDS (Redis 7) as RESP2 flat maps: each shard's master with health "online" owns
// its slot ranges; shards without slots or without an online master are skipped (a failed
// master lingers as a slotless shard). An empty host means the node asked (`asked_host`).
Result<SlotMap> parseClusterShards(const RedisReply& reply, std::string_view asked_host);
// CLUSTER SLOTS (Redis 3 to 7): [[start, end, [host, port, id, ...], replicas...], ...].
Result<SlotMap> parseClusterSlots(const RedisReply& reply, std::string_view asked_host);

}  // namespace pushhub::registry
