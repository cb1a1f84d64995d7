#pragma once
// RedisConnection: one hiredis async connection to one Redis node, driven by one worker's
// io_context (DESIGN.md, Threads); RedisClient (redis_client.h) routes commands over one per
// node and is what the rest of pushhub uses. It connects by itself, reconnects with backoff after
// any disconnect, times out connects and commands (hiredis 0.14 has no async timeouts), and reports
// Redis errors and disconnects as Result errors, never as crashes.
//
// Threading: a RedisConnection and everything it calls back live on the io_context passed to the
// constructor; only the thread running that io_context may call it (asserted in debug builds).
// Callbacks are always posted to the io_context, never run inside command() or inside hiredis.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/thread_checker.h"

struct redisAsyncContext;

namespace pushhub::registry {

// A parsed Redis reply. Errors nested inside arrays (EXEC results) keep Type::kError; a
// top-level error reply is turned into an Error by RedisConnection instead.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  bool isNil() const { return type == Type::kNil; }
};

// A Lua script and its SHA1 (computed once), for EVALSHA with an EVAL fallback. Immutable;
// share one instance per script (e.g. a function-local static).
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;  // lowercase hex
};

class RedisConnection {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    std::string password;  // sent with AUTH on every (re)connect; never logged
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds command_timeout{5000};
  };
  using Callback = std::function<void(Result<RedisReply>)>;

  RedisConnection(boost::asio::io_context& io, Options options);
  ~RedisConnection();  // closes; pending callbacks get kUnavailable
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting (asynchronously). After any disconnect or failed attempt it retries by
  // itself with exponential backoff from 100 ms to 5 s, until close().
  void connect();
  bool connected() const;

  // Sends `argv` (binary-safe). The callback gets the reply; a Redis error reply arrives as
  // Error{kInternal, <Redis text>}; no connection (or losing it before the reply) as
  // kUnavailable, immediately when not even connecting: commands are never queued while
  // disconnected. `timeout` (0 = Options::command_timeout) bounds the wait for the reply; a
  // timeout fails the command with kUnavailable and, as the connection can no longer be
  // trusted to be in step, drops and re-establishes it (failing the other pending commands).
  void command(std::vector<std::string> argv, Callback cb,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // Whether a command that failed with `error` was never written to Redis (so sending it again
  // cannot run it twice), as opposed to a connection lost while it was waiting for its reply.
  static bool wasNotSent(const Error& error);

  // Disconnects for good; pending callbacks get kUnavailable. Idempotent.
  void close();

  boost::asio::io_context& ioContext() { return io_; }
  const Options& options() const { return options_; }

 private:
  enum class State { kIdle, kConnecting, kConnected, kBackoff, kClosed };
  struct Pending {
    Callback cb;
    std::chrono::steady_clock::time_point deadline;
  };

  static void onConnectThunk(const redisAsyncContext* ac, int status);
  static void onDisconnectThunk(const redisAsyncContext* ac, int status);
  static void onReplyThunk(redisAsyncContext* ac, void* reply, void* privdata);

  void startConnect();
  void onConnect(int status);
  void onDisconnect(int status, const std::string& why);
  void onReply(void* reply, void* privdata);
  void scheduleReconnect();
  // Frees the hiredis context on purpose (timeout, close); pending commands fail with `reason`.
  void dropConnection(const std::string& reason);
  void armCommandTimer();
  void onCommandTimer();
  void post(Callback cb, Result<RedisReply> result);
  void checkThread() const;
  std::string endpoint() const;

  boost::asio::io_context& io_;
  Options options_;
  State state_ = State::kIdle;
  redisAsyncContext* ac_ = nullptr;
  std::deque<std::unique_ptr<Pending>> pending_;  // in send order == reply order
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer command_timer_;
  bool command_timer_armed_ = false;
  std::chrono::milliseconds backoff_;
  bool ever_connected_ = false;
  bool outage_logged_ = false;  // one warning per outage, not one per attempt or command
  int failed_attempts_ = 0;
  std::string fail_reason_;  // set while dropConnection() fails the pending commands
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards posted handlers
  ThreadChecker thread_;
};

}  // namespace pushhub::registry
