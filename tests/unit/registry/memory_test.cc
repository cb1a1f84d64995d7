// Measures Redis memory per installation (performance goal: at most 300 bytes with a handle,
// three tags from a pool of 100 and a shared template, on redis-server 7.0 with its default
// config) and times full resolves over every bucket, the fan-out's hot path. Prints the figures;
// the assertions only catch blow-ups and lost installations, never wall-clock times.
//
//   registry_memory_test                                  100,000 installations, 1024 buckets
//   PUSHHUB_MEMORY_TEST_N=... PUSHHUB_MEMORY_TEST_BUCKETS=...   change the small run
//   PUSHHUB_MEMORY_TEST_LARGE=1 registry_memory_test      also 1,000,000 installations, 4096
//                                                         buckets (a few minutes)
//   PUSHHUB_MEMORY_TEST_LARGE_BUCKETS=...                 change the large run's bucket count

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

#include "registry/registry.h"
#include "tests/unit/registry/test_util.h"

namespace pushhub::registry {
namespace {

using namespace testing;

int envInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

int64_t usedMemory(boost::asio::io_context& io, RedisClient& c) {
  auto r = cmd(io, c, {"INFO", "memory"});
  EXPECT_TRUE(r);
  auto pos = r->str.find("used_memory:");
  return std::atoll(r->str.c_str() + pos + 12);
}

std::string configValue(boost::asio::io_context& io, RedisClient& c, const std::string& name) {
  auto r = cmd(io, c, {"CONFIG", "GET", name});
  if (!r || r->elements.size() < 2) {
    return "?";
  }
  return r->elements[1].str;
}

// Resolves `selector` over every bucket of `hub` with at most `in_flight` resolves outstanding
// (1 = the dispatcher's one-bucket-at-a-time loop). Returns the number of targets and prints the
// time taken.
size_t timeResolve(boost::asio::io_context& io, Registry& registry, const Hub& hub,
                   const Selector& selector, uint32_t in_flight, const char* what) {
  uint32_t next = 0;
  uint32_t done = 0;
  size_t targets = 0;
  int failed = 0;
  auto start = std::chrono::steady_clock::now();
  auto pump = [&](auto& self) -> void {
    while (next < hub.buckets && next - done < in_flight) {
      registry.resolve(hub, next++, selector, [&](Result<std::vector<ResolvedTarget>> r) {
        ++done;
        if (r) {
          targets += r->size();
        } else {
          ++failed;
        }
        self(self);
      });
    }
  };
  pump(pump);
  EXPECT_TRUE(runUntil(
      io, [&] { return done == hub.buckets; }, std::chrono::minutes(10)));
  EXPECT_EQ(failed, 0);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[ RESOLVE  ] %-34s %u buckets, %u in flight: %zu targets in %.0f ms (%.2f us/target)\n",
      what, hub.buckets, in_flight, targets, ms, targets ? ms * 1000 / targets : 0.0);
  return targets;
}

void measure(int n, uint32_t buckets) {
  boost::asio::io_context io;
  pushhub::testing::RedisServer server;  // no config file: redis-server's defaults
  RedisClient::Options o;
  o.seeds = {{"127.0.0.1", server.port()}};
  o.command_timeout = std::chrono::seconds(60);
  RedisClient client(io, o);
  client.connect();
  ASSERT_TRUE(runUntil(io, [&] { return client.connected(); }));
  Registry registry(client);
  Hub hub{"bench", buckets};

  auto version = cmd(io, client, {"INFO", "server"});
  ASSERT_TRUE(version);
  auto vpos = version->str.find("redis_version:");
  std::printf(
      "[ MEMORY   ] redis %s, hash-max-listpack-entries %s, hash-max-listpack-value %s, "
      "set-max-intset-entries %s\n",
      version->str.substr(vpos + 14, version->str.find('\r', vpos) - vpos - 14).c_str(),
      configValue(io, client, "hash-max-listpack-entries").c_str(),
      configValue(io, client, "hash-max-listpack-value").c_str(),
      configValue(io, client, "set-max-intset-entries").c_str());

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
  size_t tagged_0 = 0;  // installations with tag-0
  constexpr int kInFlight = 256;
  auto load_start = std::chrono::steady_clock::now();
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
      tagged_0 += std::find(in.tags.begin(), in.tags.end(), "tag-0") != in.tags.end() ? 1 : 0;
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
      io, [&] { return done == n; }, std::chrono::minutes(30)));
  EXPECT_EQ(failed, 0);
  double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  int64_t after = usedMemory(io, client);
  auto keys = cmd(io, client, {"DBSIZE"});
  double per = static_cast<double>(after - before) / n;
  std::printf(
      "[ MEMORY   ] %d installations (36-char id, APNs token, 3 of 100 tags, 1 shared template, "
      "%u buckets, %.0f per bucket): used_memory %lld -> %lld bytes, %.1f bytes/installation, "
      "%lld keys; loaded in %.1f s\n",
      n, hub.buckets, static_cast<double>(n) / hub.buckets, static_cast<long long>(before),
      static_cast<long long>(after), per, static_cast<long long>(keys->integer), load_s);
  EXPECT_GT(per, 0);
  EXPECT_LT(per, 4096);

  // Every installation comes back exactly once from a broadcast, and every tag-0 holder from a
  // tag send.
  EXPECT_EQ(timeResolve(io, registry, hub, Selector::all(), 1, "kAll, one at a time"),
            static_cast<size_t>(n));
  EXPECT_EQ(timeResolve(io, registry, hub, Selector::all(), 16, "kAll, pipelined"),
            static_cast<size_t>(n));
  EXPECT_EQ(timeResolve(io, registry, hub, Selector::tag("tag-0"), 1, "kTag tag-0, one at a time"),
            tagged_0);
  EXPECT_EQ(timeResolve(io, registry, hub, Selector::tag("tag-0"), 16, "kTag tag-0, pipelined"),
            tagged_0);
}

TEST(RegistryMemory, BytesPerInstallationWithThreeTagsAndASharedTemplate) {
  measure(envInt("PUSHHUB_MEMORY_TEST_N", 100000),
          static_cast<uint32_t>(envInt("PUSHHUB_MEMORY_TEST_BUCKETS", 1024)));
}

TEST(RegistryMemory, BytesPerInstallationAtAMillion) {
  if (envInt("PUSHHUB_MEMORY_TEST_LARGE", 0) != 1) {
    GTEST_SKIP() << "set PUSHHUB_MEMORY_TEST_LARGE=1 to load 1,000,000 installations";
  }
  measure(1000000, static_cast<uint32_t>(envInt("PUSHHUB_MEMORY_TEST_LARGE_BUCKETS", 4096)));
}

}  // namespace
}  // namespace pushhub::registry
