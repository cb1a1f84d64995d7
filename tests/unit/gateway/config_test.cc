#include "gateway/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/process.h"

namespace pushhub::gateway {
namespace {

constexpr char kMinimal[] = R"(
[[hubs]]
name = "Demo"
  [[hubs.keys]]
  name = "full"
  key = "0123456789abcdef0123"
  rights = ["Listen", "Send"]
)";

std::string errorOf(std::string_view text) {
  auto config = parseConfig(text, ".");
  return config ? "" : config.error().message;
}

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  auto config = parseConfig(kMinimal, ".");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(config->redis_port, 6379);
  const HubSettings* hub = config->findHub("DEMO");
  ASSERT_NE(hub, nullptr);
  EXPECT_EQ(hub->buckets, 1024u);
  ASSERT_NE(hub->findKey("full"), nullptr);
  EXPECT_TRUE(hub->findKey("full")->allows(kSend));
  EXPECT_FALSE(hub->findKey("full")->allows(kManage));
  EXPECT_FALSE(hub->apns.has_value());
  EXPECT_EQ(config->sweep_interval_ms, 100u);
  EXPECT_EQ(config->dead_channel_retention_hours, 168u);
}

TEST(ConfigTest, RegistryUpkeep) {
  auto config = parseConfig(
      std::string("[registry]\nsweep_interval_ms = 0\ndead_channel_retention_hours = 24\n") +
          kMinimal,
      ".");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->sweep_interval_ms, 0u);
  EXPECT_EQ(config->dead_channel_retention_hours, 24u);
  EXPECT_NE(errorOf(std::string("[registry]\nsweep_interval_ms = -1\n") + kMinimal)
                .find("registry.sweep_interval_ms"),
            std::string::npos);
  EXPECT_NE(errorOf(std::string("[registry]\nsweep = 1\n") + kMinimal)
                .find("registry.sweep: unknown key"),
            std::string::npos);
}

TEST(ConfigTest, RedisClusterSeedsQueueAndAdminKey) {
  auto standalone = parseConfig(kMinimal, ".");
  ASSERT_TRUE(standalone);
  EXPECT_EQ(standalone->redis_nodes, (std::vector<registry::ClusterNode>{{"127.0.0.1", 6379}}));
  EXPECT_EQ(standalone->queue_partitions, 8u);
  EXPECT_EQ(standalone->job_idle_timeout_ms, 30000u);
  EXPECT_TRUE(standalone->admin_key.empty());

  auto cluster = parseConfig(std::string(kMinimal) + R"(
[server]
admin_key = "0123456789abcdef0123456789abcdef"
[redis]
nodes = ["10.0.0.1:7000", "10.0.0.2:7001"]
[dispatch]
queue_partitions = 16
job_idle_timeout_ms = 5000
)",
                             ".");
  ASSERT_TRUE(cluster) << cluster.error().message;
  EXPECT_EQ(cluster->redis_nodes,
            (std::vector<registry::ClusterNode>{{"10.0.0.1", 7000}, {"10.0.0.2", 7001}}));
  EXPECT_EQ(cluster->queue_partitions, 16u);
  EXPECT_EQ(cluster->job_idle_timeout_ms, 5000u);
  EXPECT_EQ(cluster->admin_key, "0123456789abcdef0123456789abcdef");

  auto error = [](const std::string& extra) { return errorOf(std::string(kMinimal) + extra); };
  EXPECT_NE(error("[redis]\nnodes = []\n").find("redis.nodes"), std::string::npos);
  EXPECT_NE(error("[redis]\nnodes = [\"10.0.0.1\"]\n").find("redis.nodes[0]"), std::string::npos);
  EXPECT_NE(error("[redis]\nnodes = [\"h:1\", \"h:99999\"]\n").find("redis.nodes[1]"),
            std::string::npos);
  EXPECT_NE(error("[redis]\nport = 7000\nnodes = [\"h:1\"]\n").find("redis.nodes"),
            std::string::npos);
  EXPECT_NE(error("[dispatch]\nqueue_partitions = 0\n").find("dispatch.queue_partitions"),
            std::string::npos);
  EXPECT_NE(error("[server]\nadmin_key = \"short\"\n").find("server.admin_key"), std::string::npos);
}

// An instance may serve only hubs kept in Redis (made with the admin key): the packaged default
// config has no [[hubs]].
TEST(ConfigTest, HubsMayAllLiveInRedis) {
  auto config = parseConfig("[server]\nadmin_key = \"0123456789abcdef0123456789abcdef\"\n", ".");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->hubs.empty());
}

// deploy/pushhubd.toml, /etc/pushhub/pushhubd.toml in the package: refused until the operator
// sets an admin key (or a hub), then everything on loopback.
TEST(ConfigTest, PackagedDefault) {
  auto path = std::filesystem::path(PUSHHUB_SOURCE_DIR) / "deploy/pushhubd.toml";
  auto shipped = loadConfig(path);
  ASSERT_FALSE(shipped);
  EXPECT_NE(shipped.error().message.find("no [[hubs]] entry and no server.admin_key"),
            std::string::npos);

  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto at = text.find("# admin_key = \"\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 16, "admin_key = \"0123456789abcdef0123456789abcdef\"");
  auto edited = parseConfig(text, path.parent_path());
  ASSERT_TRUE(edited) << edited.error().message;
  EXPECT_EQ(edited->grpc_listen, "127.0.0.1:50051");
  EXPECT_EQ(edited->admin_listen, "127.0.0.1:9090");
  EXPECT_TRUE(edited->rest_listen.empty());
  EXPECT_EQ(edited->redis_nodes, (std::vector<registry::ClusterNode>{{"127.0.0.1", 6379}}));
}

TEST(ConfigTest, DeliveryGuarantees) {
  auto defaults = parseConfig(kMinimal, ".");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->default_deadline_s, 1800u);  // Azure's 30 minutes
  EXPECT_EQ(defaults->max_retry_delay_ms, 300000u);
  EXPECT_EQ(defaults->failures_per_notification, 1000u);
  EXPECT_EQ(defaults->outcome_retention_hours, 168u);
  EXPECT_EQ(defaults->idempotency_window_hours, 24u);
  EXPECT_EQ(defaults->shutdown_grace_ms, 10000u);

  auto set = parseConfig(std::string(kMinimal) + R"(
[dispatch]
default_deadline_s = 60
max_retry_delay_ms = 5000
failures_per_notification = 0
outcome_retention_hours = 2
idempotency_window_hours = 1
shutdown_grace_ms = 0
)",
                         ".");
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->default_deadline_s, 60u);
  EXPECT_EQ(set->max_retry_delay_ms, 5000u);
  EXPECT_EQ(set->failures_per_notification, 0u);
  EXPECT_EQ(set->outcome_retention_hours, 2u);
  EXPECT_EQ(set->idempotency_window_hours, 1u);
  EXPECT_EQ(set->shutdown_grace_ms, 0u);

  auto error = [](const std::string& extra) { return errorOf(std::string(kMinimal) + extra); };
  EXPECT_NE(error("[dispatch]\ndefault_deadline_s = 0\n").find("dispatch.default_deadline_s"),
            std::string::npos);
  EXPECT_NE(error("[dispatch]\noutcome_retention_hours = 1\ndefault_deadline_s = 7200\n")
                .find("dispatch.default_deadline_s: must not exceed"),
            std::string::npos);
  EXPECT_NE(error("[dispatch]\nmax_retry_delay_ms = 10\n").find("dispatch.max_retry_delay_ms"),
            std::string::npos);
}

TEST(ConfigTest, ErrorsNameTheKey) {
  EXPECT_NE(errorOf("[server]\nworkers = \"x\"\n").find("server.workers"), std::string::npos);
  std::string with_buckets = kMinimal;
  with_buckets.insert(with_buckets.find("  [[hubs.keys]]"), "buckets = 1000\n");
  EXPECT_NE(errorOf(with_buckets).find("hubs[0].buckets: must be a power of two"),
            std::string::npos);
  // A key in the wrong table (here: under the access key) is named, not ignored.
  EXPECT_NE(errorOf(std::string(kMinimal) + "buckets = 1024\n").find("hubs[0].keys[0].buckets"),
            std::string::npos);
  EXPECT_NE(errorOf("[redis]\nprot = 1\n").find("redis.prot: unknown key"), std::string::npos);
  EXPECT_NE(errorOf("[[hubs]]\nname = \"a\"\n").find("hubs[0].keys"), std::string::npos);
  EXPECT_NE(errorOf("").find("hubs: no [[hubs]] entry and no server.admin_key"), std::string::npos);
  EXPECT_NE(errorOf("[server\n").find("line 1"), std::string::npos);
  EXPECT_NE(errorOf(std::string(kMinimal) + "[surprise]\n").find("surprise"), std::string::npos);
  EXPECT_NE(errorOf(std::string(kMinimal) + "  [hubs.apns]\n  key_id = \"K\"\n")
                .find("hubs[0].apns.key_file"),
            std::string::npos);
  EXPECT_NE(errorOf(std::string(kMinimal) + "[[hubs]]\nname = \"demo\"\n[[hubs.keys]]\n"
                                            "name = \"k\"\nkey = \"0123456789abcdef0\"\n"
                                            "rights = [\"Send\"]\n")
                .find("appears twice"),
            std::string::npos);
}

TEST(ConfigTest, ApnsSectionReadsTheKeyFileRelativeToTheConfig) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "key.p8") << "-----BEGIN PRIVATE KEY-----\n";
  std::string text = std::string(kMinimal) +
                     "  [hubs.apns]\n  endpoint = \"https://127.0.0.1:4443\"\n"
                     "  key_file = \"key.p8\"\n  key_id = \"ABC123DEFG\"\n"
                     "  team_id = \"DEF123GHIJ\"\n  topic = \"com.example\"\n";
  auto config = parseConfig(text, dir.path());
  ASSERT_TRUE(config) << config.error().message;
  const auto& apns = *config->findHub("demo")->apns;
  EXPECT_EQ(apns.host, "127.0.0.1");
  EXPECT_EQ(apns.port, 4443);
  EXPECT_EQ(apns.key_pem, "-----BEGIN PRIVATE KEY-----\n");
  auto bad_endpoint = text;
  bad_endpoint.replace(bad_endpoint.find("https://"), 8, "http://");
  EXPECT_NE(parseConfig(bad_endpoint, dir.path()).error().message.find("apns.endpoint"),
            std::string::npos);
}

}  // namespace
}  // namespace pushhub::gateway
