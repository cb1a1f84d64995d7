#pragma once
// RedisClient: commands and scripts routed by key slot to one standalone Redis or to the masters
// of a Redis Cluster, behind the same calls (DESIGN.md, Interfaces). A standalone server is a
// cluster of one node that owns every slot and never redirects, so there is one code path.
//
// It starts from seed nodes and learns what they are with CLUSTER SHARDS (CLUSTER SLOTS before
// Redis 7): a server without cluster support stays a one-node map. On a cluster each command goes
// to the master of its key's slot (registry/cluster_slots.h) over one RedisConnection per master;
// MOVED updates the slot and schedules a topology refresh (at most one a second, coalesced), ASK
// resends once to the named node after ASKING without touching the map, and TRYAGAIN,
// CLUSTERDOWN, LOADING and a master that cannot be reached (a failover in progress) are retried
// with backoff for Options::retry_window. A command whose connection was lost after it was
// written is not resent (it may have run): the caller gets kUnavailable, as on a standalone
// server. Redis Cluster replicates asynchronously: a write acknowledged just before its master
// dies can be lost when a replica takes over (docs/SCALING.md).
//
// Threading: the client, its connections and every callback live on the io_context given to the
// constructor; only the thread running it may call (asserted in debug builds). Callbacks are
// always posted, never run inside a call. Any thread may destroy it once that io_context has
// stopped running.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_checker.h"
#include "registry/cluster_slots.h"
#include "registry/redis_connection.h"

namespace pushhub::registry {

class RedisClient {
 public:
  // What the routing did, for metrics: written by the owning thread, read by any.
  struct Stats {
    std::atomic<uint64_t> moved{0};
    std::atomic<uint64_t> ask{0};
    std::atomic<uint64_t> retried{0};  // TRYAGAIN, CLUSTERDOWN, LOADING, unreachable master
    std::atomic<uint64_t> refreshes{0};
  };
  struct Options {
    std::vector<ClusterNode> seeds{{"127.0.0.1", 6379}};  // at least one
    std::string password;                                 // AUTH on every connection; never logged
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds command_timeout{5000};
    // On a cluster: how long a command is retried while its slot's master is unreachable or the
    // cluster is down. A failover takes about 2 x cluster-node-timeout.
    std::chrono::milliseconds retry_window{10000};
    int max_redirects = 5;  // MOVED and ASK per command, so a redirect loop ends in an error
    std::chrono::milliseconds refresh_interval{10000};  // background topology refresh (cluster)
    // true: a connection to every master as soon as the topology is known; false: to a master
    // when a command first goes there (a queue reader needs only its partition's master).
    bool connect_to_all = true;
    // Counters to add to, shared by the clients of one worker and outliving them; null: the
    // client's own.
    Stats* stats = nullptr;
  };
  using Callback = RedisConnection::Callback;

  RedisClient(boost::asio::io_context& io, Options options);
  ~RedisClient();  // closes; pending callbacks get kUnavailable
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Connects to the seeds and learns the topology, asynchronously; reconnects by itself.
  void connect();
  // Every master of the map has a live connection (standalone: the server).
  bool connected() const;
  bool cluster() const { return map_.cluster; }
  size_t masters() const;

  // Sends `argv` (binary-safe) to the master of its key's slot (a keyless command to any node).
  // Redis error replies arrive as Error{kInternal, <Redis text>} once redirections and retries
  // are spent; no connection as kUnavailable, at once on a standalone server. `timeout` (0 =
  // Options::command_timeout) bounds each attempt's wait for the reply.
  void command(std::vector<std::string> argv, Callback cb,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // EVALSHA sha numkeys keys... args..., resent as EVAL when the node answers NOSCRIPT (every
  // node has its own script cache). All keys must share one slot.
  void evalScript(const Script& script, std::vector<std::string> keys,
                  std::vector<std::string> args, Callback cb);

  // MULTI, each of `commands`, EXEC, back to back on the connection to the master of the first
  // command's key, so Redis runs them as one atomic step; every key must share that slot. The
  // callback gets EXEC's reply: one element per command (a command's own error stays a kError
  // element). A redirection or TRYAGAIN replays the whole block; a command Redis refused to
  // queue fails the whole EXEC.
  void transaction(std::vector<std::vector<std::string>> commands, Callback cb);

  // Disconnects for good; pending callbacks get kUnavailable. Idempotent.
  void close();

  boost::asio::io_context& ioContext() { return io_; }
  const Options& options() const { return options_; }
  const Stats& stats() const { return *stats_; }
  // The master serving `key` now (for tests and diagnostics).
  ClusterNode masterOf(std::string_view key) const;

 private:
  struct Request;
  using RequestPtr = std::shared_ptr<Request>;

  RedisConnection& link(const ClusterNode& node);
  void send(const RequestPtr& request);
  void onResult(const RequestPtr& request, const ClusterNode& node, Result<RedisReply> result);
  bool retryLater(const RequestPtr& request);
  void refreshTopology(bool now = false);
  void askForTopology(size_t attempt);
  void adopt(SlotMap map);
  void armRefreshTimer();
  void checkThread() const;

  boost::asio::io_context& io_;
  Options options_;
  SlotMap map_;
  std::map<std::string, std::unique_ptr<RedisConnection>> links_;  // by endpoint
  Stats own_stats_;
  Stats* stats_;
  bool closed_ = false;
  bool refreshing_ = false;
  bool refresh_again_ = false;
  std::chrono::steady_clock::time_point last_refresh_{};
  boost::asio::steady_timer refresh_timer_;
  boost::asio::steady_timer periodic_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards posted handlers
  ThreadChecker thread_;
};

}  // namespace pushhub::registry
