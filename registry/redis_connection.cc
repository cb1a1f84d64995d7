#include "registry/redis_connection.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cassert>
#include <new>

#include "base/log.h"
#include "registry/hiredis_asio.h"

namespace pushhub::registry {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kMinBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
// The endings of the errors of commands that were never written (wasNotSent).
constexpr std::string_view kNotConnected = " is not connected";
constexpr std::string_view kDisconnecting = " is disconnecting";

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("redis");
  return l;
}

// hiredis builds every reply through these functions, straight into RedisReply: its own
// redisReply tree cost an allocation per element plus the copy into RedisReply, and freeing it
// another pass (a broadcast reads ~6 elements per installation; docs/PERFORMANCE.md). A
// top-level reply is a RootReply. hiredis reads one reply itself, one nobody asked for (Redis'
// "max number of clients reached" before closing), as a redisReply: type and str. `head`
// mirrors those two, so it must stay the first member.
struct RootReply {
  redisReply head{};
  RedisReply value;
};

// The RedisReply a new element of `task` fills: a new RootReply's for a top-level reply (the
// returned object is then that RootReply), else the next element of its parent array. An array
// reserves all its elements when it is created, so element addresses, which hiredis keeps as
// the parents of nested elements, never move.
void* place(const redisReadTask* task, RedisReply::Type type, RedisReply*& out) {
  if (task->parent == nullptr) {
    auto* root = new (std::nothrow) RootReply;
    if (root == nullptr) {
      return nullptr;  // hiredis reports out of memory
    }
    root->head.type = task->type;
    root->value.type = type;
    out = &root->value;
    return root;
  }
  const redisReadTask* parent = task->parent;
  RedisReply* array = parent->parent == nullptr ? &static_cast<RootReply*>(parent->obj)->value
                                                : static_cast<RedisReply*>(parent->obj);
  assert(array->elements.size() == static_cast<size_t>(task->idx) &&
         array->elements.size() < array->elements.capacity());
  out = &array->elements.emplace_back();
  out->type = type;
  return out;
}

void* createString(const redisReadTask* task, char* str, size_t len) {
  RedisReply::Type type = task->type == REDIS_REPLY_ERROR    ? RedisReply::Type::kError
                          : task->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                             : RedisReply::Type::kString;
  RedisReply* r = nullptr;
  void* obj = place(task, type, r);
  if (obj != nullptr) {
    r->str.assign(str, len);
    if (task->parent == nullptr) {
      auto* root = static_cast<RootReply*>(obj);
      root->head.str = root->value.str.data();
      root->head.len = len;
    }
  }
  return obj;
}

void* createArray(const redisReadTask* task, int elements) {
  RedisReply* r = nullptr;
  void* obj = place(task, RedisReply::Type::kArray, r);
  if (obj != nullptr && elements > 0) {
    r->elements.reserve(static_cast<size_t>(elements));
  }
  return obj;
}

void* createInteger(const redisReadTask* task, long long value) {
  RedisReply* r = nullptr;
  void* obj = place(task, RedisReply::Type::kInteger, r);
  if (obj != nullptr) {
    r->integer = value;
  }
  return obj;
}

void* createNil(const redisReadTask* task) {
  RedisReply* r = nullptr;
  return place(task, RedisReply::Type::kNil, r);
}

// hiredis frees top-level replies only; their elements go with them.
void freeReply(void* reply) { delete static_cast<RootReply*>(reply); }

redisReplyObjectFunctions kReplyFunctions = {createString, createArray, createInteger, createNil,
                                             freeReply};

std::string sha1Hex(const std::string& data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

}  // namespace

Script::Script(std::string source) : source_(std::move(source)), sha1_(sha1Hex(source_)) {}

RedisConnection::RedisConnection(asio::io_context& io, Options options)
    : io_(io),
      options_(std::move(options)),
      connect_timer_(io),
      reconnect_timer_(io),
      command_timer_(io),
      backoff_(kMinBackoff) {}

RedisConnection::~RedisConnection() {
  // Destruction may happen on another thread once the owner's io_context no longer runs (a
  // worker's clients are destroyed by main after the worker thread has joined).
  thread_.detach();
  close();
  *alive_ = false;
}

void RedisConnection::checkThread() const {
  assert(thread_.onOwner() && "RedisConnection used from a foreign thread");
}

std::string RedisConnection::endpoint() const {
  return options_.host + ":" + std::to_string(options_.port);
}

bool RedisConnection::connected() const { return state_ == State::kConnected; }

void RedisConnection::connect() {
  checkThread();
  if (state_ == State::kIdle) {
    startConnect();
  }
}

void RedisConnection::startConnect() {
  state_ = State::kConnecting;
  redisAsyncContext* ac = redisAsyncConnect(options_.host.c_str(), options_.port);
  if (ac == nullptr || ac->err != 0) {
    std::string why = ac != nullptr ? ac->errstr : "out of memory";
    if (ac != nullptr) {
      redisAsyncFree(ac);
    }
    onDisconnect(REDIS_ERR, why);
    return;
  }
  ac->data = this;
  ac->c.reader->fn = &kReplyFunctions;  // before any reply can arrive
  attachAsio(io_, ac);
  ac_ = ac;
  redisAsyncSetDisconnectCallback(ac, &RedisConnection::onDisconnectThunk);
  redisAsyncSetConnectCallback(ac, &RedisConnection::onConnectThunk);  // arms the first write wait
  if (!options_.password.empty()) {
    // Queued first, so it precedes every command of this connection. Its failure is logged,
    // and the commands behind it then fail with Redis' NOAUTH error, which names the problem.
    const char* argv[] = {"AUTH", options_.password.data()};
    size_t lens[] = {4, options_.password.size()};
    redisAsyncCommandArgv(
        ac,
        [](redisAsyncContext*, void* reply, void*) {
          auto* r = static_cast<RootReply*>(reply);
          if (r != nullptr && r->value.type == RedisReply::Type::kError) {
            logger()->error("redis AUTH failed: {}", r->value.str);
          }
        },
        nullptr, 2, argv, lens);
  }
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait(
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired() || state_ != State::kConnecting) {
          return;
        }
        dropConnection("redis connect to " + endpoint() + " timed out");
        onDisconnect(REDIS_ERR, "connect timed out");
      });
}

void RedisConnection::onConnectThunk(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (self == nullptr || self->ac_ != ac) {
    return;
  }
  if (status != REDIS_OK) {
    // hiredis frees the context right after this callback.
    std::string why = ac->errstr != nullptr ? ac->errstr : "connect failed";
    self->ac_ = nullptr;
    self->onDisconnect(REDIS_ERR, why);
    return;
  }
  self->onConnect(status);
}

void RedisConnection::onConnect(int /*status*/) {
  connect_timer_.cancel();
  state_ = State::kConnected;
  backoff_ = kMinBackoff;
  if (outage_logged_ || failed_attempts_ > 0) {
    logger()->info("redis {}: {} ({} failed attempt(s) before)", endpoint(),
                   ever_connected_ ? "reconnected" : "connected", failed_attempts_);
  } else {
    logger()->debug("redis {}: connected", endpoint());
  }
  outage_logged_ = false;
  failed_attempts_ = 0;
  ever_connected_ = true;
}

void RedisConnection::onDisconnectThunk(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (self == nullptr || self->ac_ != ac) {
    return;  // freed on purpose by dropConnection()/close()
  }
  self->ac_ = nullptr;
  self->onDisconnect(status, ac->errstr != nullptr && ac->err != 0 ? ac->errstr : "closed");
}

void RedisConnection::onDisconnect(int /*status*/, const std::string& why) {
  connect_timer_.cancel();
  if (state_ == State::kClosed) {
    return;
  }
  bool was_connected = state_ == State::kConnected;
  ++failed_attempts_;
  if (!outage_logged_) {
    outage_logged_ = true;
    logger()->warn("redis {}: {} ({}); reconnecting with backoff", endpoint(),
                   was_connected ? "connection lost" : "cannot connect", why);
  } else {
    logger()->debug("redis {}: attempt {} failed ({})", endpoint(), failed_attempts_, why);
  }
  scheduleReconnect();
}

void RedisConnection::scheduleReconnect() {
  state_ = State::kBackoff;
  reconnect_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  reconnect_timer_.async_wait(
      [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired() || state_ != State::kBackoff) {
          return;
        }
        startConnect();
      });
}

void RedisConnection::dropConnection(const std::string& reason) {
  redisAsyncContext* ac = ac_;
  ac_ = nullptr;  // makes the disconnect callback below a no-op
  if (ac != nullptr) {
    fail_reason_ = reason;
    redisAsyncFree(ac);  // runs every pending reply callback with a NULL reply
    fail_reason_.clear();
  }
  if (!pending_.empty()) {  // defensive: hiredis always answers every callback it holds
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& p : pending) {
      post(std::move(p->cb), Error::unavailable(reason));
    }
  }
}

void RedisConnection::close() {
  checkThread();
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  connect_timer_.cancel();
  reconnect_timer_.cancel();
  command_timer_.cancel();
  dropConnection("redis client closed");
}

void RedisConnection::post(Callback cb, Result<RedisReply> result) {
  asio::post(io_,
             [cb = std::move(cb), result = std::move(result)]() mutable { cb(std::move(result)); });
}

void RedisConnection::command(std::vector<std::string> argv, Callback cb,
                              std::chrono::milliseconds timeout) {
  checkThread();
  if (ac_ == nullptr || (state_ != State::kConnected && state_ != State::kConnecting)) {
    post(std::move(cb), Error::unavailable("redis " + endpoint() + std::string(kNotConnected)));
    return;
  }
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  auto pending = std::make_unique<Pending>();
  pending->cb = std::move(cb);
  pending->deadline = Clock::now() + (timeout.count() > 0 ? timeout : options_.command_timeout);
  Pending* raw = pending.get();
  if (redisAsyncCommandArgv(ac_, &RedisConnection::onReplyThunk, raw, static_cast<int>(args.size()),
                            args.data(), lens.data()) != REDIS_OK) {
    post(std::move(pending->cb),
         Error::unavailable("redis " + endpoint() + std::string(kDisconnecting)));
    return;
  }
  pending_.push_back(std::move(pending));
  armCommandTimer();
}

void RedisConnection::onReplyThunk(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* self = static_cast<RedisConnection*>(ac->data);
  if (self != nullptr) {
    self->onReply(reply, privdata);
  }
}

void RedisConnection::onReply(void* reply, void* privdata) {
  // Replies come in send order; hiredis also fails the pending ones in order on disconnect.
  if (pending_.empty() || pending_.front().get() != privdata) {
    logger()->error("redis {}: reply does not match the oldest pending command", endpoint());
    return;
  }
  std::unique_ptr<Pending> p = std::move(pending_.front());
  pending_.pop_front();
  auto* r = static_cast<RootReply*>(reply);
  if (r == nullptr) {
    std::string why =
        !fail_reason_.empty() ? fail_reason_ : "redis " + endpoint() + ": connection lost";
    post(std::move(p->cb), Error::unavailable(why));
  } else if (r->value.type == RedisReply::Type::kError) {
    post(std::move(p->cb), Error::internal(std::move(r->value.str)));
  } else {
    post(std::move(p->cb), std::move(r->value));  // hiredis frees the emptied RootReply
  }
}

void RedisConnection::armCommandTimer() {
  if (command_timer_armed_ || pending_.empty()) {
    return;
  }
  command_timer_armed_ = true;
  command_timer_.expires_at(pending_.front()->deadline);
  command_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code) {
    if (alive.expired()) {
      return;
    }
    command_timer_armed_ = false;
    onCommandTimer();
  });
}

void RedisConnection::onCommandTimer() {
  if (state_ == State::kClosed || pending_.empty()) {
    return;
  }
  if (pending_.front()->deadline > Clock::now()) {
    armCommandTimer();  // the command it was armed for was answered; watch the new oldest
    return;
  }
  // Only the oldest command is watched: the ones behind it cannot be answered before it.
  logger()->warn("redis {}: command timed out; reconnecting ({} command(s) failed)", endpoint(),
                 pending_.size());
  bool was_connected = state_ == State::kConnected;
  dropConnection("redis " + endpoint() + ": command timed out");
  outage_logged_ = true;  // already reported above
  if (was_connected) {
    backoff_ = kMinBackoff;
  }
  connect_timer_.cancel();
  scheduleReconnect();
}

bool RedisConnection::wasNotSent(const Error& error) {
  return error.code == Error::Code::kUnavailable &&
         (error.message.ends_with(kNotConnected) || error.message.ends_with(kDisconnecting));
}

}  // namespace pushhub::registry
