// Measures Redis memory per installation (DESIGN.md budget: a few hundred bytes with a handle,
// three tags and a shared template). Prints the figure; the assertion only catches blow-ups.

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "registry/registry.h"
#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

int64_t usedMemory(boost::asio::io_context& io, RedisClient& c) {
  auto r = cmd(io, c, {"INFO", "memory"});
  EXPECT_TRUE(r);
  auto pos = r->str.find("used_memory:");
  return std::atoll(r->str.c_str() + pos + 12);
}

TEST(RegistryMemory, BytesPerInstallationWithThreeTagsAndASharedTemplate) {
  int n = 100000;
  if (const char* env = std::getenv("PUSHHUB_MEMORY_TEST_N")) {
    n = std::atoi(env);
  }
  boost::asio::io_context io;
  pushhub::testing::RedisServer server;
  RedisClient::Options o;
  o.port = server.port();
  RedisClient client(io, o);
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  Registry registry(client);
  Hub hub{"bench", 1024};

  InstallationTemplate shared;
  shared.body = R"j({"aps":{"alert":"$(message)","badge":"#(badge)"}})j";
  shared.headers = {{"apns-priority", "10"}};

  std::mt19937 rng(42);
  auto hex = [&](size_t len) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < len; ++i) {
      s.push_back(d[rng() % 16]);
    }
    return s;
  };
  // Warm up the script cache and the allocator before the baseline.
  {
    Installation warm;
    warm.id = "warm-up";
    warm.push_channel = hex(64);
    ASSERT_TRUE(await<Result<void>>(io, [&](auto cb) { registry.upsert(hub, warm, cb); }));
    ASSERT_TRUE(await<Result<bool>>(io, [&](auto cb) { registry.remove(hub, "warm-up", cb); }));
  }
  int64_t before = usedMemory(io, client);

  int started = 0;
  int done = 0;
  int failed = 0;
  constexpr int kInFlight = 256;
  auto pump = [&](auto& self) -> void {
    while (started < n && started - done < kInFlight) {
      Installation in;
      // A UUID-shaped id (36 chars), like most SDKs generate.
      in.id = hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" + hex(12);
      in.platform = Platform::kApns;
      in.push_channel = hex(64);
      while (in.tags.size() < 3) {
        std::string tag = "tag-" + std::to_string(rng() % 100);
        if (std::find(in.tags.begin(), in.tags.end(), tag) == in.tags.end()) {
          in.tags.push_back(tag);
        }
      }
      in.templates["alert"] = shared;
      ++started;
      registry.upsert(hub, in, [&](Result<void> r) {
        ++done;
        failed += r ? 0 : 1;
        self(self);
      });
    }
  };
  pump(pump);
  ASSERT_TRUE(runUntil(
      io, [&] { return done == n; }, std::chrono::minutes(5)));
  EXPECT_EQ(failed, 0);
  int64_t after = usedMemory(io, client);
  auto keys = cmd(io, client, {"DBSIZE"});
  double per = static_cast<double>(after - before) / n;
  std::printf(
      "[ MEMORY   ] %d installations (36-char id, APNs token, 3 of 100 tags, 1 shared template, "
      "%u buckets): used_memory %lld -> %lld bytes, %.1f bytes/installation, %lld keys\n",
      n, hub.buckets, static_cast<long long>(before), static_cast<long long>(after), per,
      static_cast<long long>(keys->integer));
  EXPECT_GT(per, 0);
  EXPECT_LT(per, 4096);
}

}  // namespace
}  // namespace pushhub::registry
