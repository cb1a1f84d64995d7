#pragma once
// Real redis-server processes for tests: one node started on a free loopback port (retried on
// another port when the one picked turns out taken, as a port picked and released can be), and a
// Redis Cluster of such nodes built with `redis-cli --cluster create`, with the operations tests
// need to disturb it: resharding a slot by hand (so both ASK and MOVED happen), a manual
// failover, killing a master. ../shared/spec/redis-cluster.md section 7 has the recipe.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace pushhub::testing {

class RedisCluster {
 public:
  // `masters` (at least 3) with `replicas` each, cluster-node-timeout `node_timeout_ms`; returns
  // when every node agrees on the slots and reports cluster_state:ok.
  RedisCluster(int masters, int replicas, int node_timeout_ms = 2000);
  ~RedisCluster();

  std::vector<uint16_t> ports() const;  // every node
  std::vector<uint16_t> masterPorts();  // masters now, in slot order
  uint16_t masterOfSlot(uint16_t slot);
  std::string nodeId(uint16_t port);
  RedisNode* node(uint16_t port);

  // FLUSHALL on every master.
  void flushAll();
  // Moves `slot` to the master on `to`, key by key, the way redis-cli --cluster reshard does:
  // IMPORTING on the target, MIGRATING on the source, MIGRATE in batches of `batch` keys with
  // `pause` between batches (so a client sees ASK meanwhile), then NODE on both.
  void migrateSlot(uint16_t slot, uint16_t to, size_t batch = 10,
                   std::chrono::milliseconds pause = std::chrono::milliseconds(0));
  // CLUSTER FAILOVER on a replica of the master on `master_port`; returns the replica's port
  // once it is a master.
  uint16_t failover(uint16_t master_port);
  // Kills the master on `port` (SIGKILL); returns the port of the replica that took over.
  uint16_t killMaster(uint16_t port);
  // Until every live node reports cluster_state:ok and the same slot owners.
  void waitConsistent(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  std::vector<std::unique_ptr<RedisNode>> nodes_;
};

}  // namespace pushhub::testing
