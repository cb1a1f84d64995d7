#include "registry/redis_client.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cassert>

#include "base/log.h"

namespace pushhub::registry {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kMinRefreshGap = 1000ms;  // MOVED storms refresh once a second at most
constexpr auto kFirstRetryDelay = 50ms;
constexpr auto kMaxRetryDelay = 500ms;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("redis");
  return l;
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

struct RedisClient::Request {
  std::vector<std::vector<std::string>> commands;  // one: a command; several: a transaction
  bool transaction = false;
  std::optional<uint16_t> slot;
  std::chrono::milliseconds timeout{0};
  Callback cb;
  int redirects = 0;
  int retries = 0;
  std::optional<Clock::time_point> retry_until;  // set by the first retryable failure
  std::optional<ClusterNode> ask;                // one-shot ASK target
  std::optional<std::string> queued_error;       // a transaction's first refused command
};

RedisClient::RedisClient(asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      stats_(options_.stats != nullptr ? options_.stats : &own_stats_),
      refresh_timer_(io),
      periodic_timer_(io) {
  assert(!options_.seeds.empty());
  map_ = SlotMap::standalone(options_.seeds.front());
}

RedisClient::~RedisClient() {
  // Destruction may happen on another thread once the owner's io_context no longer runs (a
  // worker's clients are destroyed by main after the worker thread has joined).
  thread_.detach();
  links_.clear();  // each connection's destructor closes it, from this thread too
  close();
  *alive_ = false;
}

void RedisClient::checkThread() const {
  assert(thread_.onOwner() && "RedisClient used from a foreign thread");
}

RedisConnection& RedisClient::link(const ClusterNode& node) {
  auto& slot = links_[node.endpoint()];
  if (!slot) {
    RedisConnection::Options o;
    o.host = node.host;
    o.port = node.port;
    o.password = options_.password;
    o.connect_timeout = options_.connect_timeout;
    o.command_timeout = options_.command_timeout;
    slot = std::make_unique<RedisConnection>(io_, std::move(o));
    if (!closed_) slot->connect();
  }
  return *slot;
}

void RedisClient::connect() {
  checkThread();
  if (closed_) return;
  // The other seeds are asked only when the first cannot answer (askForTopology).
  link(options_.seeds.front());
  refreshTopology(true);
  armRefreshTimer();
}

bool RedisClient::connected() const {
  if (links_.empty()) return false;
  for (size_t i = 0; i < map_.nodes.size(); ++i) {
    if (std::find(map_.owner.begin(), map_.owner.end(), i) == map_.owner.end()) continue;
    auto it = links_.find(map_.nodes[i].endpoint());
    if (it == links_.end() || !it->second->connected()) return false;
  }
  return true;
}

size_t RedisClient::masters() const {
  size_t n = 0;
  for (size_t i = 0; i < map_.nodes.size(); ++i) {
    n += std::find(map_.owner.begin(), map_.owner.end(), i) != map_.owner.end();
  }
  return n;
}

ClusterNode RedisClient::masterOf(std::string_view key) const {
  uint16_t owner = map_.owner[keySlot(key)];
  return owner == SlotMap::kNoOwner ? map_.nodes.front() : map_.nodes[owner];
}

void RedisClient::command(std::vector<std::string> argv, Callback cb,
                          std::chrono::milliseconds timeout) {
  checkThread();
  auto request = std::make_shared<Request>();
  if (auto key = routingKey(argv)) request->slot = keySlot(*key);
  request->commands.push_back(std::move(argv));
  request->timeout = timeout;
  request->cb = std::move(cb);
  send(request);
}

void RedisClient::transaction(std::vector<std::vector<std::string>> commands, Callback cb) {
  checkThread();
  auto request = std::make_shared<Request>();
  for (const auto& c : commands) {
    if (auto key = routingKey(c)) {
      request->slot = keySlot(*key);
      break;
    }
  }
  request->commands = std::move(commands);
  request->transaction = true;
  request->cb = std::move(cb);
  send(request);
}

void RedisClient::evalScript(const Script& script, std::vector<std::string> keys,
                             std::vector<std::string> args, Callback cb) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(std::to_string(keys.size()));
  for (auto& k : keys) argv.push_back(std::move(k));
  for (auto& a : args) argv.push_back(std::move(a));
  // Kept for the EVAL retry: a node's script cache is empty after a restart, a failover or
  // SCRIPT FLUSH, and every node has its own.
  auto retry = std::make_shared<std::vector<std::string>>(argv);
  command(std::move(argv), [this, alive = std::weak_ptr<bool>(alive_), source = &script.source(),
                            retry, cb = std::move(cb)](Result<RedisReply> r) mutable {
    if (r || !startsWith(r.error().message, "NOSCRIPT") || alive.expired()) {
      return cb(std::move(r));
    }
    (*retry)[0] = "EVAL";
    (*retry)[1] = *source;
    command(std::move(*retry), std::move(cb));
  });
}

void RedisClient::send(const RequestPtr& request) {
  if (closed_) {
    asio::post(io_,
               [cb = std::move(request->cb)] { cb(Error::unavailable("redis client closed")); });
    return;
  }
  ClusterNode node;
  if (request->ask) {
    node = *request->ask;
  } else {
    uint16_t owner = request->slot ? map_.owner[*request->slot] : 0;
    node = map_.nodes[owner == SlotMap::kNoOwner ? 0 : owner];
  }
  RedisConnection& conn = link(node);
  auto done = [this, alive = std::weak_ptr<bool>(alive_), request, node](Result<RedisReply> r) {
    if (!alive.expired()) onResult(request, node, std::move(r));
  };
  const bool asking = request->ask.has_value();
  request->ask.reset();
  if (asking) conn.command({"ASKING"}, [](Result<RedisReply>) {});
  if (!request->transaction) {
    conn.command(request->commands.front(), std::move(done), request->timeout);
    return;
  }
  // A refused command (MOVED, ASK, TRYAGAIN while queuing) makes EXEC fail with EXECABORT: keep
  // the first refusal so the whole block is replayed where it belongs.
  request->queued_error.reset();
  auto note = [request](Result<RedisReply> r) {
    if (!r && !request->queued_error) request->queued_error = r.error().message;
  };
  conn.command({"MULTI"}, note);
  for (const auto& c : request->commands) conn.command(c, note);
  conn.command({"EXEC"}, std::move(done));
}

void RedisClient::onResult(const RequestPtr& request, const ClusterNode& node,
                           Result<RedisReply> result) {
  if (result) {
    return request->cb(std::move(result));
  }
  const Error& error = result.error();
  if (error.code == Error::Code::kUnavailable) {
    // Never written: safe to send again once the slot has a reachable master (failover).
    if (map_.cluster && RedisConnection::wasNotSent(error)) {
      refreshTopology();
      if (retryLater(request)) return;
    }
    if (map_.cluster) refreshTopology();
    return request->cb(std::move(result));
  }
  std::string_view message = error.message;
  if (request->transaction && request->queued_error && startsWith(message, "EXECABORT")) {
    message = *request->queued_error;
  }
  Redirect redirect = parseRedirect(message);
  switch (redirect.kind) {
    case Redirect::Kind::kNone:
      break;
    case Redirect::Kind::kMoved:
    case Redirect::Kind::kAsk: {
      ClusterNode target{redirect.host.empty() ? node.host : redirect.host, redirect.port};
      if (++request->redirects > options_.max_redirects) {
        return request->cb(Error::internal("too many cluster redirections (" +
                                           std::to_string(options_.max_redirects) +
                                           "), last: " + std::string(message)));
      }
      if (redirect.kind == Redirect::Kind::kMoved) {
        stats_->moved.fetch_add(1, std::memory_order_relaxed);
        map_.cluster = true;
        map_.owner[redirect.slot] = map_.indexOf(target);
        refreshTopology();
      } else {
        stats_->ask.fetch_add(1, std::memory_order_relaxed);
        request->ask = target;
      }
      return send(request);
    }
    case Redirect::Kind::kRetryLater:
      if (startsWith(message, "CLUSTERDOWN")) refreshTopology();
      if (retryLater(request)) return;
      break;
  }
  request->cb(std::move(result));
}

bool RedisClient::retryLater(const RequestPtr& request) {
  auto now = Clock::now();
  if (!request->retry_until) request->retry_until = now + options_.retry_window;
  if (now >= *request->retry_until || closed_) return false;
  stats_->retried.fetch_add(1, std::memory_order_relaxed);
  auto delay = std::min<std::chrono::milliseconds>(
      kFirstRetryDelay * (1 << std::min(request->retries, 4)), kMaxRetryDelay);
  ++request->retries;
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait(
      [this, alive = std::weak_ptr<bool>(alive_), timer, request](boost::system::error_code) {
        if (!alive.expired()) send(request);
      });
  return true;
}

void RedisClient::refreshTopology(bool now) {
  if (closed_) return;
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  auto due = last_refresh_ + kMinRefreshGap;
  if (!now && Clock::now() < due) {
    // Coalesced: one refresh when the gap has passed.
    refreshing_ = true;
    refresh_timer_.expires_at(due);
    refresh_timer_.async_wait(
        [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
          if (ec || alive.expired()) return;
          refreshing_ = false;
          refreshTopology(true);
        });
    return;
  }
  refreshing_ = true;
  refresh_again_ = false;
  last_refresh_ = Clock::now();
  askForTopology(0);
}

// Asks the known nodes in turn (connected ones first, then the seeds) until one answers.
void RedisClient::askForTopology(size_t attempt) {
  std::vector<ClusterNode> candidates;
  for (const auto& n : map_.nodes) {
    auto it = links_.find(n.endpoint());
    if (it != links_.end() && it->second->connected()) candidates.push_back(n);
  }
  for (const auto& s : options_.seeds) candidates.push_back(s);
  if (attempt >= candidates.size()) {
    refreshing_ = false;
    logger()->debug("redis topology: no node answered; retrying");
    refreshTopology();
    return;
  }
  ClusterNode asked = candidates[attempt];
  auto finish = [this](std::optional<SlotMap> map) {
    refreshing_ = false;
    if (map) adopt(std::move(*map));
    if (refresh_again_) refreshTopology();
  };
  link(asked).command({"CLUSTER", "SHARDS"}, [this, alive = std::weak_ptr<bool>(alive_), asked,
                                              attempt, finish](Result<RedisReply> r) {
    if (alive.expired() || closed_) return;
    if (!r && r.error().message.find("cluster support disabled") != std::string::npos) {
      return finish(SlotMap::standalone(asked));
    }
    if (!r && startsWith(r.error().message, "ERR unknown subcommand")) {
      // Redis before 7.0: CLUSTER SLOTS.
      return link(asked).command({"CLUSTER", "SLOTS"}, [this, alive, asked, attempt,
                                                        finish](Result<RedisReply> slots) {
        if (alive.expired() || closed_) return;
        auto map = slots ? parseClusterSlots(*slots, asked.host) : Result<SlotMap>(slots.error());
        if (!map) return askForTopology(attempt + 1);
        finish(std::move(*map));
      });
    }
    auto map = r ? parseClusterShards(*r, asked.host) : Result<SlotMap>(r.error());
    if (!map) {
      logger()->debug("redis topology from {}: {}", asked.endpoint(), map.error().message);
      return askForTopology(attempt + 1);
    }
    finish(std::move(*map));
  });
}

void RedisClient::adopt(SlotMap map) {
  stats_->refreshes.fetch_add(1, std::memory_order_relaxed);
  if (size_t holes = map.uncovered(); holes > 0) {
    // Keep the old owners of slots nobody claims right now: they answer MOVED or CLUSTERDOWN,
    // both of which are handled, and a complete map comes with the next refresh.
    logger()->warn("redis cluster: {} slot(s) have no master in the topology", holes);
    for (size_t s = 0; s < kClusterSlots; ++s) {
      if (map.owner[s] == SlotMap::kNoOwner && map_.owner[s] != SlotMap::kNoOwner) {
        map.owner[s] = map.indexOf(map_.nodes[map_.owner[s]]);
      }
    }
  }
  bool changed = map.nodes.size() != map_.nodes.size() || map.cluster != map_.cluster;
  for (size_t s = 0; !changed && s < kClusterSlots; ++s) {
    changed = map.owner[s] == SlotMap::kNoOwner || map_.owner[s] == SlotMap::kNoOwner ||
              !(map.nodes[map.owner[s]] == map_.nodes[map_.owner[s]]);
  }
  map_ = std::move(map);
  if (changed && map_.cluster) {
    logger()->info("redis cluster: {} master(s) serve the slots", masters());
  }
  if (options_.connect_to_all) {
    for (const auto& n : map_.nodes) link(n);
  }
  // Connections to nodes that left the map and are down (a crashed master) are dropped.
  for (auto it = links_.begin(); it != links_.end();) {
    bool known = std::any_of(map_.nodes.begin(), map_.nodes.end(),
                             [&](const ClusterNode& n) { return n.endpoint() == it->first; }) ||
                 std::any_of(options_.seeds.begin(), options_.seeds.end(),
                             [&](const ClusterNode& n) { return n.endpoint() == it->first; });
    it = !known && !it->second->connected() ? links_.erase(it) : std::next(it);
  }
  armRefreshTimer();
}

void RedisClient::armRefreshTimer() {
  if (closed_ || !map_.cluster) return;
  periodic_timer_.expires_after(options_.refresh_interval);
  periodic_timer_.async_wait(
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired()) return;
        refreshTopology();
      });
}

void RedisClient::close() {
  checkThread();
  if (closed_) return;
  closed_ = true;
  refresh_timer_.cancel();
  periodic_timer_.cancel();
  for (auto& [endpoint, conn] : links_) conn->close();
}

}  // namespace pushhub::registry
