#include "tests/support/redis_cluster.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pushhub::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// CLUSTER NODES: id -> (port, flags, slots text).
struct NodeLine {
  std::string id;
  uint16_t port = 0;
  std::string flags;
  std::string master_id;
  std::vector<std::string> slots;
};

std::vector<NodeLine> clusterNodes(uint16_t port) {
  std::vector<NodeLine> out;
  for (const auto& line : lines(redisCli(port, {"CLUSTER", "NODES"}))) {
    std::stringstream ss(line);
    NodeLine n;
    std::string address, ping, pong, epoch, link;
    ss >> n.id >> address >> n.flags >> n.master_id >> ping >> pong >> epoch >> link;
    auto colon = address.rfind(':');
    auto at = address.find('@');
    if (colon != std::string::npos) {
      n.port = static_cast<uint16_t>(std::stoi(address.substr(colon + 1, at - colon - 1)));
    }
    for (std::string s; ss >> s;) n.slots.push_back(s);
    out.push_back(n);
  }
  return out;
}

}  // namespace

RedisCluster::RedisCluster(int masters, int replicas, int node_timeout_ms) {
  int total = masters * (1 + replicas);
  for (int i = 0; i < total; ++i) {
    nodes_.push_back(std::make_unique<RedisNode>(std::vector<std::string>{
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
        std::to_string(node_timeout_ms),
        // A replica's first sync starts at once, not after the default 5 s wait for others.
        "--repl-diskless-sync-delay", "0"}));
  }
  std::string cmd = "redis-cli --cluster create";
  for (const auto& n : nodes_) cmd += " 127.0.0.1:" + std::to_string(n->port());
  cmd += " --cluster-replicas " + std::to_string(replicas) + " --cluster-yes >" +
         (nodes_.front()->dir() / "create.log").string() + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    throw std::runtime_error("redis-cli --cluster create failed: " +
                             slurp(nodes_.front()->dir() / "create.log"));
  }
  waitConsistent();
  // --cluster create returns before every replica has taken its role.
  auto deadline = Clock::now() + 30s;
  for (;;) {
    int synced = 0;
    for (auto& n : nodes_) {
      std::string replication = redisCli(n->port(), {"INFO", "replication"});
      synced += replication.find("role:slave") != std::string::npos &&
                replication.find("master_link_status:up") != std::string::npos;
    }
    if (synced == masters * replicas) break;
    if (Clock::now() > deadline) throw std::runtime_error("replicas did not sync");
    std::this_thread::sleep_for(100ms);
  }
  waitConsistent();
}

RedisCluster::~RedisCluster() = default;

std::vector<uint16_t> RedisCluster::ports() const {
  std::vector<uint16_t> out;
  for (const auto& n : nodes_) out.push_back(n->port());
  return out;
}

RedisNode* RedisCluster::node(uint16_t port) {
  for (auto& n : nodes_) {
    if (n->port() == port) return n.get();
  }
  return nullptr;
}

void RedisCluster::waitConsistent(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string last;
  while (Clock::now() < deadline) {
    bool ok = true;
    std::set<std::string> views;
    for (auto& n : nodes_) {
      if (!n->running()) continue;
      try {
        std::string info = redisCli(n->port(), {"CLUSTER", "INFO"});
        if (info.find("cluster_state:ok") == std::string::npos) {
          ok = false;
          last = "state not ok on " + std::to_string(n->port());
          break;
        }
        // A replica that has not synced yet could not take over from its master.
        std::string replication = redisCli(n->port(), {"INFO", "replication"});
        if (replication.find("role:slave") != std::string::npos &&
            replication.find("master_link_status:up") == std::string::npos) {
          ok = false;
          last = "replica " + std::to_string(n->port()) + " has not synced";
          break;
        }
        // Which port serves each slot range, as this node sees it (masters only).
        std::map<std::string, uint16_t> owners;
        for (const auto& line : clusterNodes(n->port())) {
          if (line.flags.find("master") == std::string::npos ||
              line.flags.find("fail") != std::string::npos) {
            continue;
          }
          for (const auto& s : line.slots) {
            if (s.front() != '[') owners[s] = line.port;
          }
        }
        std::string view;
        for (const auto& [range, port] : owners) view += range + "=" + std::to_string(port) + ";";
        // And who replicates whom: a replica's role reaches the other nodes by gossip, after its
        // replication link is up, so a master can still list its new replica as a master.
        std::set<std::string> roles;
        for (const auto& line : clusterNodes(n->port())) {
          if (line.flags.find("fail") == std::string::npos)
            roles.insert(line.id + ">" + line.master_id);
        }
        for (const auto& role : roles) view += role + ";";
        views.insert(view);
      } catch (const std::exception& e) {
        ok = false;
        last = e.what();
        break;
      }
    }
    if (ok && views.size() == 1) return;
    if (ok) last = "nodes disagree on the slots";
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("cluster did not become consistent: " + last);
}

std::vector<uint16_t> RedisCluster::masterPorts() {
  std::map<int, uint16_t> by_first_slot;
  for (auto& n : nodes_) {
    if (!n->running()) continue;
    for (const auto& line : clusterNodes(n->port())) {
      if (line.flags.find("master") == std::string::npos ||
          line.flags.find("fail") != std::string::npos || line.slots.empty()) {
        continue;
      }
      for (const auto& s : line.slots) {
        if (s.front() != '[') by_first_slot[std::stoi(s)] = line.port;
      }
    }
    break;
  }
  std::vector<uint16_t> out;
  for (const auto& [slot, port] : by_first_slot) {
    if (std::find(out.begin(), out.end(), port) == out.end()) out.push_back(port);
  }
  return out;
}

uint16_t RedisCluster::masterOfSlot(uint16_t slot) {
  for (auto& n : nodes_) {
    if (!n->running()) continue;
    for (const auto& line : clusterNodes(n->port())) {
      if (line.flags.find("master") == std::string::npos ||
          line.flags.find("fail") != std::string::npos) {
        continue;
      }
      for (const auto& s : line.slots) {
        if (s.front() == '[') continue;
        auto dash = s.find('-');
        int first = std::stoi(s.substr(0, dash));
        int last = dash == std::string::npos ? first : std::stoi(s.substr(dash + 1));
        if (slot >= first && slot <= last) return line.port;
      }
    }
    break;
  }
  throw std::runtime_error("no master serves slot " + std::to_string(slot));
}

std::string RedisCluster::nodeId(uint16_t port) { return redisCli(port, {"CLUSTER", "MYID"}); }

void RedisCluster::flushAll() {
  for (uint16_t port : masterPorts()) redisCli(port, {"FLUSHALL"});
}

void RedisCluster::migrateSlot(uint16_t slot, uint16_t to, size_t batch,
                               std::chrono::milliseconds pause) {
  uint16_t from = masterOfSlot(slot);
  if (from == to) return;
  std::string from_id = nodeId(from), to_id = nodeId(to), s = std::to_string(slot);
  redisCli(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id});
  redisCli(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id});
  for (;;) {
    auto keys = lines(redisCli(from, {"CLUSTER", "GETKEYSINSLOT", s, std::to_string(batch)}));
    if (keys.empty()) break;
    std::vector<std::string> args{"MIGRATE", "127.0.0.1", std::to_string(to), "", "0",
                                  "10000",   "KEYS"};
    args.insert(args.end(), keys.begin(), keys.end());
    std::string out = redisCli(from, args);
    if (out != "OK") throw std::runtime_error("MIGRATE: " + out);
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
  }
  redisCli(to, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  redisCli(from, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  for (uint16_t m : masterPorts()) {
    if (m != to && m != from) redisCli(m, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  }
}

uint16_t RedisCluster::failover(uint16_t master_port) {
  std::string master_id = nodeId(master_port);
  for (const auto& line : clusterNodes(master_port)) {
    if (line.master_id != master_id || line.flags.find("slave") == std::string::npos) continue;
    redisCli(line.port, {"CLUSTER", "FAILOVER"});
    auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      if (redisCli(line.port, {"ROLE"}).rfind("master", 0) == 0) {
        waitConsistent();
        return line.port;
      }
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("replica did not take over");
  }
  throw std::runtime_error("master " + std::to_string(master_port) + " (" + master_id +
                           ") has no replica:\n" + redisCli(master_port, {"CLUSTER", "NODES"}));
}

uint16_t RedisCluster::killMaster(uint16_t port) {
  std::string id = nodeId(port);
  std::vector<uint16_t> replicas;
  for (const auto& line : clusterNodes(port)) {
    if (line.master_id == id) replicas.push_back(line.port);
  }
  node(port)->kill();
  auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    for (uint16_t r : replicas) {
      if (redisCli(r, {"ROLE"}).rfind("master", 0) == 0) {
        waitConsistent();
        return r;
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("no replica took over from the killed master");
}

}  // namespace pushhub::testing
