#pragma once
// Helpers for registry tests: drive an io_context until a callback fired (bounded in time), and
// run async calls as if they were synchronous.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "registry/redis_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"

namespace pushhub::registry::testing {

using namespace std::chrono_literals;

// Runs `io` until `done()` or `limit` passes; returns done().
template <typename Pred>
bool runUntil(boost::asio::io_context& io, Pred done, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    if (io.run_one_for(10ms) == 0) {
      std::this_thread::sleep_for(1ms);
    }
  }
  return done();
}

// Runs `io` for about `d` regardless of events.
inline void runFor(boost::asio::io_context& io, std::chrono::milliseconds d) {
  auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    io.restart();
    if (io.run_one_for(5ms) == 0) {
      std::this_thread::sleep_for(1ms);
    }
  }
}

// Starts an async call taking a callback of one argument of type R and waits for it.
template <typename R, typename Start>
R await(boost::asio::io_context& io, Start start, std::chrono::milliseconds limit = 20s) {
  std::optional<R> out;
  start([&out](R r) { out.emplace(std::move(r)); });
  if (!runUntil(
          io, [&] { return out.has_value(); }, limit)) {
    throw std::runtime_error("callback did not fire in time");
  }
  return std::move(*out);
}

inline Result<RedisReply> cmd(boost::asio::io_context& io, RedisClient& c,
                              std::vector<std::string> argv) {
  return await<Result<RedisReply>>(io, [&](auto cb) { c.command(std::move(argv), std::move(cb)); });
}

// The Redis a test runs against: a fresh standalone redis-server, or, when the environment has
// PUSHHUB_TEST_REDIS=cluster, a Redis Cluster of three masters shared by the whole test binary
// and flushed for each test. Run on a cluster, every script and transaction of the code under
// test meets the cluster's rules (one slot per command, CROSSSLOT otherwise; keys on other
// masters refused inside scripts), so ctest runs the registry and queue tests both ways.
class TestRedis {
 public:
  TestRedis() {
    const char* mode = std::getenv("PUSHHUB_TEST_REDIS");
    if (mode != nullptr && std::string(mode) == "cluster") {
      static pushhub::testing::RedisCluster shared(3, 0);  // stopped when the binary exits
      cluster_ = &shared;
      cluster_->flushAll();
    } else {
      server_ = std::make_unique<pushhub::testing::RedisServer>();
    }
  }
  bool cluster() const { return cluster_ != nullptr; }
  pushhub::testing::RedisCluster* clusterProcesses() { return cluster_; }
  RedisClient::Options options() const {
    RedisClient::Options o;
    o.seeds = {{"127.0.0.1", cluster_ ? cluster_->ports().front() : server_->port()}};
    return o;
  }
  // Every key on every master (KEYS is fine for test-sized data).
  std::vector<std::string> everyKey() const {
    std::vector<uint16_t> ports =
        cluster_ ? cluster_->masterPorts() : std::vector<uint16_t>{server_->port()};
    std::vector<std::string> keys;
    for (uint16_t port : ports) {
      std::string out = pushhub::testing::redisCli(port, {"--no-raw", "KEYS", "*"});
      std::stringstream ss(out);
      for (std::string line; std::getline(ss, line);) {
        // --no-raw prints 1) "key"; an empty database prints (empty array).
        auto open = line.find('"');
        auto close = line.rfind('"');
        if (open != std::string::npos && close > open)
          keys.push_back(line.substr(open + 1, close - open - 1));
      }
    }
    return keys;
  }

 private:
  std::unique_ptr<pushhub::testing::RedisServer> server_;
  pushhub::testing::RedisCluster* cluster_ = nullptr;  // shared by the binary's tests
};

// A redis-server this test can stop and start again on the same port (tests/support's
// RedisServer lives for the whole fixture).
class RestartableRedis {
 public:
  RestartableRedis() : port_(pushhub::testing::freePort()) { start(); }
  void start() {
    process_.reset();
    process_ = std::make_unique<pushhub::testing::Subprocess>(
        std::vector<std::string>{"redis-server", "--port", std::to_string(port_), "--bind",
                                 "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                                 dir_.path().string()},
        dir_.path() / "redis.log");
    if (!pushhub::testing::waitForPort(port_)) {
      throw std::runtime_error("redis-server did not start");
    }
  }
  void stop() {
    if (process_) {
      process_->stop();
      process_.reset();
    }
  }
  uint16_t port() const { return port_; }

 private:
  pushhub::testing::TempDir dir_;
  uint16_t port_;
  std::unique_ptr<pushhub::testing::Subprocess> process_;
};

}  // namespace pushhub::registry::testing
