#include "registry/redis_client.h"

#include <gtest/gtest.h>

#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

RedisClient::Options optionsFor(uint16_t port) {
  RedisClient::Options o;
  o.seeds = {{"127.0.0.1", port}};
  o.connect_timeout = 1000ms;
  o.command_timeout = 2000ms;
  return o;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_.connect();
    ASSERT_TRUE(runUntil(io_, [&] { return client_.connected(); }));
  }
  boost::asio::io_context io_;
  pushhub::testing::RedisServer server_;
  RedisClient client_{io_, optionsFor(server_.port())};
};

TEST_F(RedisClientTest, SetGetIsBinarySafe) {
  std::string value("a\0b\r\n\xff", 6);
  auto set = cmd(io_, client_, {"SET", std::string("k\0ey", 4), value});
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->type, RedisReply::Type::kStatus);
  EXPECT_EQ(set->str, "OK");
  auto get = cmd(io_, client_, {"GET", std::string("k\0ey", 4)});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->type, RedisReply::Type::kString);
  EXPECT_EQ(get->str, value);
  auto missing = cmd(io_, client_, {"GET", "nope"});
  ASSERT_TRUE(missing);
  EXPECT_TRUE(missing->isNil());
  auto n = cmd(io_, client_, {"INCRBY", "n", "41"});
  ASSERT_TRUE(n);
  EXPECT_EQ(n->type, RedisReply::Type::kInteger);
  EXPECT_EQ(n->integer, 41);
  auto arr = cmd(io_, client_, {"MGET", "n", "nope"});
  ASSERT_TRUE(arr);
  ASSERT_EQ(arr->elements.size(), 2u);
  EXPECT_EQ(arr->elements[0].str, "41");
  EXPECT_TRUE(arr->elements[1].isNil());
}

TEST_F(RedisClientTest, ErrorReplyIsAnInternalErrorWithRedisText) {
  ASSERT_TRUE(cmd(io_, client_, {"SET", "s", "x"}));
  auto r = cmd(io_, client_, {"INCR", "s"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInternal);
  EXPECT_NE(r.error().message.find("not an integer"), std::string::npos) << r.error().message;
  EXPECT_TRUE(client_.connected());
  EXPECT_TRUE(cmd(io_, client_, {"PING"}));
}

TEST_F(RedisClientTest, LargeRepliesArriveWhole) {
  // Bigger than hiredis' 16 KiB read chunk: exercises the FIONREAD loop of the adapter.
  std::string big(1 << 20, 'x');
  ASSERT_TRUE(cmd(io_, client_, {"SET", "big", big}));
  for (int i = 0; i < 3; ++i) {
    auto r = cmd(io_, client_, {"GET", "big"});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->str.size(), big.size());
  }
}

TEST_F(RedisClientTest, PipelinedCommandsAnswerInOrder) {
  std::vector<int64_t> got;
  for (int i = 0; i < 1000; ++i) {
    client_.command({"INCR", "ctr"},
                    [&](Result<RedisReply> r) { got.push_back(r ? r->integer : -1); });
  }
  ASSERT_TRUE(runUntil(io_, [&] { return got.size() == 1000; }));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(got[i], i + 1);
  }
}

TEST_F(RedisClientTest, EvalScriptFallsBackToEvalAfterScriptFlush) {
  static const Script kScript("return {KEYS[1], ARGV[1], 7}");
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(cmd(io_, client_, {"SCRIPT", "FLUSH"}));
    auto r = await<Result<RedisReply>>(
        io_, [&](auto cb) { client_.evalScript(kScript, {"key"}, {"arg"}, std::move(cb)); });
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->elements.size(), 3u);
    EXPECT_EQ(r->elements[0].str, "key");
    EXPECT_EQ(r->elements[1].str, "arg");
    EXPECT_EQ(r->elements[2].integer, 7);
    // Now cached: EVALSHA works directly.
    auto again = await<Result<RedisReply>>(
        io_, [&](auto cb) { client_.evalScript(kScript, {"key"}, {"arg"}, std::move(cb)); });
    ASSERT_TRUE(again);
  }
  auto exists = cmd(io_, client_, {"SCRIPT", "EXISTS", kScript.sha1()});
  ASSERT_TRUE(exists);
  EXPECT_EQ(exists->elements.at(0).integer, 1);
}

TEST_F(RedisClientTest, TransactionAnswersEachCommandInOneReply) {
  ASSERT_TRUE(cmd(io_, client_, {"SET", "s", "x"}));
  auto r = await<Result<RedisReply>>(io_, [&](auto cb) {
    client_.transaction({{"INCR", "n"}, {"INCR", "s"}, {"GET", "s"}}, std::move(cb));
  });
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->type, RedisReply::Type::kArray);
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[0].integer, 1);
  EXPECT_EQ(r->elements[1].type, RedisReply::Type::kError);  // runs, fails alone
  EXPECT_EQ(r->elements[2].str, "x");

  // A command Redis refuses to queue (wrong arity) aborts the whole transaction.
  auto aborted = await<Result<RedisReply>>(io_, [&](auto cb) {
    client_.transaction({{"INCR", "n"}, {"GET"}}, std::move(cb));
  });
  ASSERT_FALSE(aborted);
  EXPECT_NE(aborted.error().message.find("EXECABORT"), std::string::npos)
      << aborted.error().message;
  EXPECT_EQ(cmd(io_, client_, {"GET", "n"})->str, "1");
  EXPECT_TRUE(cmd(io_, client_, {"PING"}));  // the connection is back out of MULTI
}

TEST_F(RedisClientTest, NestedRepliesKeepEveryTypeAndOrder) {
  // Replies are built by pushhub's own hiredis reply functions: nesting, nil, empty and
  // integer elements, statuses and errors inside arrays, and strings past the SSO size.
  static const Script kScript(
      "return {1, {'a', {}, {false, 'x', {redis.status_reply('S'), redis.error_reply('MYERR "
      "boom')}}},"
      " string.rep('y', 100), -7}");
  auto r = await<Result<RedisReply>>(
      io_, [&](auto cb) { client_.evalScript(kScript, {}, {}, std::move(cb)); });
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->type, RedisReply::Type::kArray);
  ASSERT_EQ(r->elements.size(), 4u);
  EXPECT_EQ(r->elements[0].integer, 1);
  const RedisReply& second = r->elements[1];
  ASSERT_EQ(second.elements.size(), 3u);
  EXPECT_EQ(second.elements[0].str, "a");
  EXPECT_EQ(second.elements[1].type, RedisReply::Type::kArray);
  EXPECT_TRUE(second.elements[1].elements.empty());
  const RedisReply& third = second.elements[2];
  ASSERT_EQ(third.elements.size(), 3u);
  EXPECT_TRUE(third.elements[0].isNil());
  EXPECT_EQ(third.elements[1].str, "x");
  ASSERT_EQ(third.elements[2].elements.size(), 2u);
  EXPECT_EQ(third.elements[2].elements[0].type, RedisReply::Type::kStatus);
  EXPECT_EQ(third.elements[2].elements[0].str, "S");
  EXPECT_EQ(third.elements[2].elements[1].type, RedisReply::Type::kError);
  EXPECT_EQ(third.elements[2].elements[1].str, "MYERR boom");
  EXPECT_EQ(r->elements[2].str, std::string(100, 'y'));
  EXPECT_EQ(r->elements[3].integer, -7);
  // A large array of strings, as a broadcast reads them.
  std::vector<std::string> hset{"HSET", "h"};
  for (int i = 0; i < 2000; ++i) {
    hset.push_back(std::to_string(i));
    hset.push_back(std::string(64, static_cast<char>('a' + i % 26)));
  }
  ASSERT_TRUE(cmd(io_, client_, hset));
  auto all = cmd(io_, client_, {"HGETALL", "h"});
  ASSERT_TRUE(all);
  ASSERT_EQ(all->elements.size(), 4000u);
  for (size_t i = 0; i < all->elements.size(); i += 2) {
    int field = std::stoi(all->elements[i].str);
    ASSERT_EQ(all->elements[i + 1].str, std::string(64, static_cast<char>('a' + field % 26)));
  }
}

TEST_F(RedisClientTest, UnaskedErrorReplyFailsTheConnectionNotTheProcess) {
  // Redis answers a connection over maxclients with an error nobody asked for and closes it.
  // hiredis reads that reply itself, as its own reply type (RootReply::head).
  ASSERT_TRUE(cmd(io_, client_, {"CONFIG", "SET", "maxclients", "1"}));
  RedisClient second(io_, optionsFor(server_.port()));
  second.connect();
  runFor(io_, 300ms);
  // Refused, whether the PING went out before the error arrived (it gets the error) or after.
  EXPECT_FALSE(cmd(io_, second, {"PING"}));
  ASSERT_TRUE(cmd(io_, client_, {"CONFIG", "SET", "maxclients", "100"}));
  ASSERT_TRUE(runUntil(io_, [&] { return second.connected(); }));
  EXPECT_TRUE(cmd(io_, second, {"PING"}));
}

TEST_F(RedisClientTest, ReconnectsAfterClientKill) {
  auto id = cmd(io_, client_, {"CLIENT", "ID"});
  ASSERT_TRUE(id);
  // Kill our own connection from a second client.
  RedisClient other(io_, optionsFor(server_.port()));
  other.connect();
  ASSERT_TRUE(runUntil(io_, [&] { return other.connected(); }));
  ASSERT_TRUE(cmd(io_, other, {"CLIENT", "KILL", "ID", std::to_string(id->integer)}));
  ASSERT_TRUE(runUntil(io_, [&] { return !client_.connected(); }));
  ASSERT_TRUE(runUntil(io_, [&] { return client_.connected(); }));
  auto ping = cmd(io_, client_, {"PING"});
  ASSERT_TRUE(ping) << ping.error().message;
  auto new_id = cmd(io_, client_, {"CLIENT", "ID"});
  ASSERT_TRUE(new_id);
  EXPECT_NE(new_id->integer, id->integer);
}

TEST(RedisClientRestart, ReconnectsAfterServerRestartAndFailsFastMeanwhile) {
  boost::asio::io_context io;
  RestartableRedis server;
  RedisClient client(io, optionsFor(server.port()));
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  ASSERT_TRUE(cmd(io, client, {"SET", "a", "1"}));

  // A command in flight when the server goes away fails with kUnavailable.
  std::optional<Result<RedisReply>> in_flight;
  client.command({"BLPOP", "never", "0"}, [&](Result<RedisReply> r) { in_flight.emplace(r); });
  runFor(io, 50ms);
  server.stop();
  ASSERT_TRUE(runUntil(io, [&] { return in_flight.has_value(); }));
  ASSERT_FALSE(*in_flight);
  EXPECT_EQ(in_flight->error().code, Error::Code::kUnavailable);
  ASSERT_TRUE(runUntil(io, [&] { return !client.connected(); }));

  // While down: commands fail fast (well within the command timeout), never queue.
  runFor(io, 300ms);
  auto down = cmd(io, client, {"PING"});
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, Error::Code::kUnavailable);

  server.start();
  ASSERT_TRUE(runUntil(
      io, [&] { return client.connected(); }, 15s));
  auto r = cmd(io, client, {"SET", "b", "2"});
  ASSERT_TRUE(r) << r.error().message;
  auto get = cmd(io, client, {"GET", "b"});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->str, "2");
}

TEST(RedisClientNoServer, UnreachableIsUnavailableAndRetries) {
  boost::asio::io_context io;
  RedisClient client(io, optionsFor(pushhub::testing::freePort()));
  client.connect();
  runFor(io, 400ms);  // several backoff rounds
  EXPECT_FALSE(client.connected());
  auto r = cmd(io, client, {"PING"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kUnavailable);
}

TEST(RedisClientTimeout, CommandTimeoutFailsAndReconnects) {
  boost::asio::io_context io;
  pushhub::testing::RedisServer server;
  auto options = optionsFor(server.port());
  options.command_timeout = 200ms;
  RedisClient client(io, options);
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  std::optional<Result<RedisReply>> blocked;
  std::optional<Result<RedisReply>> behind;
  client.command({"BLPOP", "never", "0"}, [&](Result<RedisReply> r) { blocked.emplace(r); });
  client.command({"PING"}, [&](Result<RedisReply> r) { behind.emplace(r); });
  ASSERT_TRUE(runUntil(io, [&] { return blocked.has_value() && behind.has_value(); }));
  ASSERT_FALSE(*blocked);
  EXPECT_EQ(blocked->error().code, Error::Code::kUnavailable);
  EXPECT_NE(blocked->error().message.find("timed out"), std::string::npos);
  EXPECT_FALSE(*behind);
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  EXPECT_TRUE(cmd(io, client, {"PING"}));
  // A per-command timeout longer than the default lets a slow reply through.
  auto slow = await<Result<RedisReply>>(io, [&](auto cb) {
    client.command({"BLPOP", "never", "0.4"}, std::move(cb), 2000ms);
  });
  ASSERT_TRUE(slow) << slow.error().message;
  EXPECT_TRUE(slow->isNil());
}

TEST(RedisClientPassword, AuthenticatesOnEveryConnect) {
  boost::asio::io_context io;
  pushhub::testing::RedisServer server;
  {
    RedisClient admin(io, optionsFor(server.port()));
    admin.connect();
    ASSERT_TRUE(runUntil(io, [&] { return admin.connected(); }));
    ASSERT_TRUE(cmd(io, admin, {"CONFIG", "SET", "requirepass", "s3cret"}));
  }
  auto options = optionsFor(server.port());
  options.password = "s3cret";
  RedisClient client(io, options);
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  auto r = cmd(io, client, {"SET", "x", "1"});
  EXPECT_TRUE(r) << r.error().message;

  RedisClient no_auth(io, optionsFor(server.port()));
  no_auth.connect();
  ASSERT_TRUE(runUntil(io, [&] { return no_auth.connected(); }));
  auto denied = cmd(io, no_auth, {"GET", "x"});
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message.find("NOAUTH"), std::string::npos);
}

TEST(RedisClientClose, PendingCommandsFailAndLaterOnesToo) {
  boost::asio::io_context io;
  pushhub::testing::RedisServer server;
  RedisClient client(io, optionsFor(server.port()));
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  std::optional<Result<RedisReply>> pending;
  client.command({"BLPOP", "never", "0"}, [&](Result<RedisReply> r) { pending.emplace(r); });
  client.close();
  ASSERT_TRUE(runUntil(io, [&] { return pending.has_value(); }));
  EXPECT_FALSE(*pending);
  auto after = cmd(io, client, {"PING"});
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Error::Code::kUnavailable);
}

}  // namespace
}  // namespace pushhub::registry
