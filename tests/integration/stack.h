#pragma once
// A whole pushhub stack for integration tests: a real redis-server (or a Redis Cluster), the
// pns-mock binary and one or more pushhubd instances, on loopback with TLS everywhere, plus a
// gRPC client per instance that signs its calls like the Azure SDKs do. pushhubd binds port 0
// and the stack reads the ports it got from its log. Torn down in reverse order.

#include <grpcpp/grpcpp.h>

#include <boost/json.hpp>

#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/sas.h"
#include "pushhub/v1/pushhub.grpc.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/redis_cluster.h"
#include "tests/unit/tools/pns_mock_process.h"

namespace pushhub::testing {

inline constexpr char kHub[] = "itest";
inline constexpr char kFullKeyName[] = "DefaultFullSharedAccessSignature";
inline constexpr char kFullKey[] = "full-key-for-integration-tests-0123456789";
inline constexpr char kListenKeyName[] = "DefaultListenSharedAccessSignature";
inline constexpr char kListenKey[] = "listen-key-for-integration-tests-012345";
inline constexpr char kTopic[] = "com.example.itest";
inline constexpr char kFcmProject[] = "itest-project";
inline constexpr char kFcmAccount[] = "sender@itest-project.iam.gserviceaccount.com";
inline constexpr char kWnsSid[] = "ms-app://s-1-15-2-0000000001-itest";
inline constexpr char kWnsSecret[] = "wns-secret-for-integration-tests";
// A second hub with its own APNs key, team and topic and no FCM or WNS credentials.
inline constexpr char kOtherHub[] = "other";
inline constexpr char kOtherTopic[] = "com.example.other";
// The instances' admin key (server.admin_key), for HubAdmin calls signed as "pushhub-admin".
inline constexpr char kAdminKey[] = "admin-key-for-integration-tests-0123456789";

// `length` random lower-case hex digits after `prefix`.
inline std::string randomHex(std::mt19937_64& rng, size_t length, const std::string& prefix = "") {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = prefix;
  while (out.size() < length) out += kHex[rng() & 15];
  return out;
}

// A direct send of `hub` to these handles (WNS ones are channel URIs), with a native payload for
// every platform.
inline v1::SendNotificationRequest directSendTo(const std::string& hub,
                                                const std::vector<std::string>& apns,
                                                const std::vector<std::string>& fcm,
                                                const std::vector<std::string>& wns = {}) {
  v1::SendNotificationRequest send;
  send.set_hub(hub);
  for (auto [platform, handles] :
       {std::pair{v1::PLATFORM_APNS, &apns}, std::pair{v1::PLATFORM_FCM, &fcm},
        std::pair{v1::PLATFORM_WNS, &wns}}) {
    for (const auto& handle : *handles) {
      auto* target = send.mutable_direct()->add_targets();
      target->set_platform(platform);
      target->set_push_handle(handle);
    }
  }
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"direct"}})");
  native = send.add_native();
  native->set_platform(v1::PLATFORM_FCM);
  native->set_body(R"({"message":{"notification":{"title":"direct"}}})");
  native = send.add_native();
  native->set_platform(v1::PLATFORM_WNS);
  native->set_body(
      R"(<toast><visual><binding template="ToastGeneric"><text>direct</text></binding></visual></toast>)");
  (*native->mutable_headers())["X-WNS-Type"] = "wns/toast";
  return send;
}

// A metric of pushhubd's /metrics at `admin_port`, summed over its label sets (0 when absent).
inline int64_t metricSum(uint16_t admin_port, const std::string& name) {
  auto metrics = httpRequest("GET", admin_port, "/metrics");
  if (metrics.status != 200) throw std::runtime_error("GET /metrics: " + metrics.body);
  int64_t total = 0;
  std::istringstream lines(metrics.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) == 0 && line.size() > name.size() &&
        (line[name.size()] == ' ' || line[name.size()] == '{')) {
      total += std::stoll(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

inline std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct StackOptions {
  std::vector<std::string> mock_flags;  // appended to pns-mock's command line
  bool cluster = false;                 // a Redis Cluster of 3 masters with a replica each
  int instances = 1;                    // pushhubd processes sharing the Redis
  std::string extra_config;  // appended to every instance's [dispatch] (buckets_per_job: 16)
  bool redis_aof = false;    // the standalone Redis persists every write (appendfsync always)
  bool admin_tls = false;    // the admin listener (metrics, console) serves HTTPS
};

inline StackOptions withMockFlags(std::vector<std::string> flags) {
  StackOptions options;
  options.mock_flags = std::move(flags);
  return options;
}

class Stack {
 public:
  explicit Stack(std::vector<std::string> extra_mock_flags = {})
      : Stack(withMockFlags(std::move(extra_mock_flags))) {}
  explicit Stack(StackOptions options)
      : options_(std::move(options)), pki_(makeTestPki(dir_.path())) {
    if (options_.cluster) {
      cluster_ = std::make_unique<RedisCluster>(3, 1);
    } else {
      redis_ = std::make_unique<RedisServer>(
          options_.redis_aof
              ? std::vector<std::string>{"--appendonly", "yes", "--appendfsync", "always"}
              : std::vector<std::string>{});
    }
    const auto& extra_mock_flags = options_.mock_flags;
    std::string key2 = (dir_.path() / "apns2.p8").string();
    if (std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '" +
                     key2 + "' && openssl pkey -in '" + key2 + "' -pubout -out '" +
                     (dir_.path() / "apns2-pub.pem").string() + "'")
                        .c_str()) != 0) {
      throw std::runtime_error("cannot make the second APNs key");
    }
    // pns-mock binds port 0 for each listener and reports what it got.
    std::vector<std::string> mock{
        "--listen",
        "127.0.0.1",
        "--apns-port",
        "0",
        "--control-port",
        "0",
        "--cert",
        pki_.cert().string(),
        "--key",
        pki_.key().string(),
        "--apns-key-id",
        "ITESTKEY01",
        "--apns-team-id",
        "ITESTTEAM1",
        "--apns-public-key",
        pki_.apnsPublicKey().string(),
        "--apns-topic",
        kTopic,
        "--fcm-port",
        "0",
        "--fcm-account",
        std::string(kFcmAccount) + ":" + pki_.fcmPublicKey().string(),
        "--fcm-project",
        kFcmProject,
        "--wns-port",
        "0",
        "--wns-sid",
        kWnsSid,
        "--wns-secret",
        kWnsSecret,
        "--apns-key",
        "ITESTKEY02:ITESTTEAM2:" + (dir_.path() / "apns2-pub.pem").string(),
        "--apns-topic",
        kOtherTopic};
    mock.insert(mock.end(), extra_mock_flags.begin(), extra_mock_flags.end());
    mock_ = std::make_unique<mock::PnsMockProcess>(dir_.path(), std::move(mock));
    if (!mock_->started()) throw std::runtime_error("pns-mock did not start: " + mock_->log());
    mock_port_ = mock_->port("apns");
    fcm_port_ = mock_->port("fcm");
    wns_port_ = mock_->port("wns");
    control_port_ = mock_->port("control");

    writeServiceAccount();
    std::ofstream(dir_.path() / "pushhubd.toml") << config();
    for (int i = 0; i < options_.instances; ++i) startInstance(i);
  }

  ~Stack() {
    instances_.clear();
    mock_.reset();
  }

  // Starts instance `i` (again, after stopInstance), and waits until it serves.
  void startInstance(int i) {
    if (static_cast<int>(instances_.size()) <= i) instances_.resize(i + 1);
    Instance& in = instances_[i];
    auto log = dir_.path() / ("pushhubd-" + std::to_string(i) + ".log");
    std::filesystem::remove(log);
    in.process = std::make_unique<Subprocess>(
        std::vector<std::string>{binaryPath("pushhubd").string(), "--config",
                                 (dir_.path() / "pushhubd.toml").string()},
        log);
    // "pushhubd listening: grpc 127.0.0.1:<port> (TLS), admin http://127.0.0.1:<port>, ..."
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      std::string text = readText(log);
      auto at = text.find("pushhubd listening: grpc 127.0.0.1:");
      auto admin =
          text.find(options_.admin_tls ? "admin https://127.0.0.1:" : "admin http://127.0.0.1:",
                    at == std::string::npos ? 0 : at);
      auto rest = text.find("rest https://127.0.0.1:", at == std::string::npos ? 0 : at);
      if (at != std::string::npos && admin != std::string::npos && rest != std::string::npos) {
        in.grpc_port = static_cast<uint16_t>(std::stoi(text.substr(at + 35)));
        in.admin_port =
            static_cast<uint16_t>(std::stoi(text.substr(admin + (options_.admin_tls ? 24 : 23))));
        in.rest_port = static_cast<uint16_t>(std::stoi(text.substr(rest + 23)));
        break;
      }
      if (!in.process->running() || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("pushhubd did not start: " + text);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = readText(pki_.ca());
    auto channel =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(in.grpc_port), grpc::SslCredentials(ssl));
    in.stub = v1::PushHub::NewStub(channel);
    in.admin = v1::HubAdmin::NewStub(channel);
  }
  void stopInstance(int i) { instances_.at(i).process.reset(); }
  // SIGKILL, as a crash or a power loss.
  void killInstance(int i) {
    ::kill(instances_.at(i).process->pid(), SIGKILL);
    instances_.at(i).process->stop(std::chrono::seconds(5));
  }
  // SIGTERM; the exit status (-1 if it had to be killed after `timeout`).
  int terminateInstance(int i, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return instances_.at(i).process->stop(timeout);
  }

  std::string redisConfig() const {
    if (!cluster_) return "[redis]\nport = " + std::to_string(redis_->port()) + "\n";
    std::string nodes;
    for (uint16_t port : cluster_->ports()) {
      nodes += (nodes.empty() ? "\"127.0.0.1:" : ", \"127.0.0.1:") + std::to_string(port) + "\"";
    }
    return "[redis]\nnodes = [" + nodes + "]\n";
  }

  std::string config() const {
    return std::string("[server]\n") +
           "grpc_listen = \"127.0.0.1:0\"\n"
           "admin_listen = \"127.0.0.1:0\"\n"
           "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\nworkers = 2\n" +
           (options_.admin_tls ? "admin_tls_cert = \"server.pem\"\nadmin_tls_key = \"server.key\"\n"
                               : "") +
           "rest_listen = \"127.0.0.1:0\"\n"
           "admin_key = \"" +
           kAdminKey + "\"\n" + redisConfig() + "[dispatch]\n" +
           (options_.extra_config.find("buckets_per_job") == std::string::npos
                ? "buckets_per_job = 16\n"
                : "") +
           options_.extra_config +
           "\n"
           "[[hubs]]\nname = \"" +
           kHub +
           "\"\nbuckets = 64\n"
           "  [[hubs.keys]]\n  name = \"" +
           kFullKeyName + "\"\n  key = \"" + kFullKey +
           "\"\n  rights = [\"Listen\", \"Send\", \"Manage\"]\n"
           "  [[hubs.keys]]\n  name = \"" +
           kListenKeyName + "\"\n  key = \"" + kListenKey +
           "\"\n  rights = [\"Listen\"]\n"
           "  [hubs.apns]\n  endpoint = \"https://127.0.0.1:" +
           std::to_string(mock_port_) +
           "\"\n"
           "  ca_file = \"ca.pem\"\n  key_file = \"apns.p8\"\n  key_id = \"ITESTKEY01\"\n"
           "  team_id = \"ITESTTEAM1\"\n  topic = \"" +
           kTopic +
           "\"\n"
           "  [hubs.fcm]\n  service_account_file = \"service-account.json\"\n"
           "  endpoint = \"https://127.0.0.1:" +
           std::to_string(fcm_port_) +
           "\"\n"
           "  ca_file = \"ca.pem\"\n"
           "  [hubs.wns]\n  package_sid = \"" +
           kWnsSid + "\"\n  secret = \"" + kWnsSecret +
           "\"\n"
           "  token_url = \"https://127.0.0.1:" +
           std::to_string(wns_port_) +
           "/accesstoken.srf\"\n"
           "  allowed_hosts = [\"127.0.0.1:" +
           std::to_string(wns_port_) +
           "\"]\n"
           "  ca_file = \"ca.pem\"\n"
           "[[hubs]]\nname = \"" +
           kOtherHub +
           "\"\nbuckets = 16\n"
           "  [[hubs.keys]]\n  name = \"" +
           kFullKeyName + "\"\n  key = \"" + kFullKey +
           "\"\n  rights = [\"Manage\"]\n"
           "  [hubs.apns]\n  endpoint = \"https://127.0.0.1:" +
           std::to_string(mock_port_) +
           "\"\n"
           "  ca_file = \"ca.pem\"\n  key_file = \"apns2.p8\"\n  key_id = \"ITESTKEY02\"\n"
           "  team_id = \"ITESTTEAM2\"\n  topic = \"" +
           kOtherTopic + "\"\n";
  }

  // A WNS channel URI on pns-mock for `token`.
  std::string wnsChannel(const std::string& token) const {
    return "https://127.0.0.1:" + std::to_string(wns_port_) + "/?token=" + token;
  }

  // A context signed with the named key, as an SDK would sign it: for the namespace root, or for
  // `resource_path` (such as "/<hub>").
  std::unique_ptr<grpc::ClientContext> context(const std::string& key_name = kFullKeyName,
                                               const std::string& key = kFullKey,
                                               const std::string& resource_path = "/") const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata(
        "authorization",
        sas::makeToken("https://127.0.0.1:" + std::to_string(grpcPort()) + resource_path, key_name,
                       key, std::chrono::system_clock::now() + std::chrono::hours(1)));
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }

  v1::PushHub::Stub& stub(int instance = 0) { return *instances_.at(instance).stub; }
  // GetNotification through `instance`: the notification's status (empty when the call failed,
  // which is reported as a test failure).
  v1::NotificationStatus notification(const std::string& id, int instance = 0,
                                      const std::string& hub = kHub) {
    v1::NotificationStatus status;
    auto rpc = getNotification(id, instance, hub, status);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    return status;
  }
  // Polls every 100 ms, for at most `seconds`, until the notification has a final state
  // (completed, no target found, abandoned or cancelled); the last status seen. UNAVAILABLE
  // answers (Redis reconnecting) are polled through.
  v1::NotificationStatus waitFinal(const std::string& id, int instance = 0, int seconds = 60,
                                   const std::string& hub = kHub) {
    using S = v1::NotificationStatus;
    v1::NotificationStatus status;
    for (int i = 0; i < seconds * 10; ++i) {
      status.Clear();
      auto rpc = getNotification(id, instance, hub, status);
      if (!rpc.ok() && rpc.error_code() != grpc::StatusCode::UNAVAILABLE) {
        ADD_FAILURE() << rpc.error_message();
        break;
      }
      if (status.state() == S::STATE_COMPLETED || status.state() == S::STATE_NO_TARGET_FOUND ||
          status.state() == S::STATE_ABANDONED || status.state() == S::STATE_CANCELLED) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return status;
  }
  v1::HubAdmin::Stub& admin(int instance = 0) { return *instances_.at(instance).admin; }
  std::unique_ptr<grpc::ClientContext> adminContext() const {
    return context("pushhub-admin", kAdminKey);
  }
  const TestPki& pki() const { return pki_; }
  uint16_t apnsPort() const { return mock_port_; }
  uint16_t grpcPort(int instance = 0) const { return instances_.at(instance).grpc_port; }
  uint16_t controlPort() const { return control_port_; }
  uint16_t adminPort(int instance = 0) const { return instances_.at(instance).admin_port; }
  // The Azure REST API (HTTPS, the stack's CA: caFile()).
  uint16_t restPort(int instance = 0) const { return instances_.at(instance).rest_port; }
  std::string caFile() const { return pki_.ca().string(); }
  // The Authorization header an Azure SDK sends to the REST API: signed for the namespace root
  // (or `resource_path`) with the named key.
  std::string restToken(const std::string& key_name = kFullKeyName,
                        const std::string& key = kFullKey, const std::string& resource_path = "/",
                        int instance = 0) const {
    return sas::makeToken("https://127.0.0.1:" + std::to_string(restPort(instance)) + resource_path,
                          key_name, key, std::chrono::system_clock::now() + std::chrono::hours(1));
  }
  RedisCluster* cluster() { return cluster_.get(); }
  // SIGKILL to the standalone Redis, as a crash.
  void killRedis() { redis_->kill(); }
  // SIGKILL to the standalone Redis, then it starts again on its port and data.
  void crashAndRestartRedis() { redis_->crashAndRestart(); }
  uint16_t redisPort() const { return cluster_ ? cluster_->ports().front() : redis_->port(); }
  // The service-account key file as Google hands it out, its token_uri pointing at pns-mock.
  void writeServiceAccount() const {
    boost::json::object account{
        {"type", "service_account"},
        {"project_id", kFcmProject},
        {"private_key_id", "itest-key-1"},
        {"private_key", readText(pki_.fcmKey())},
        {"client_email", kFcmAccount},
        {"token_uri", "https://127.0.0.1:" + std::to_string(fcm_port_) + "/token"}};
    std::ofstream(dir_.path() / "service-account.json") << boost::json::serialize(account);
  }

  grpc::Status getNotification(const std::string& id, int instance, const std::string& hub,
                               v1::NotificationStatus& status) {
    v1::GetNotificationRequest request;
    request.set_hub(hub);
    request.set_notification_id(id);
    return stub(instance).GetNotification(context().get(), request, &status);
  }

  std::string daemonLog(int instance = 0) const {
    return readText(dir_.path() / ("pushhubd-" + std::to_string(instance) + ".log"));
  }
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  struct Instance {
    std::unique_ptr<Subprocess> process;
    uint16_t grpc_port = 0, admin_port = 0, rest_port = 0;
    std::unique_ptr<v1::PushHub::Stub> stub;
    std::unique_ptr<v1::HubAdmin::Stub> admin;
  };

  StackOptions options_;
  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<RedisCluster> cluster_;
  uint16_t mock_port_ = 0, fcm_port_ = 0, wns_port_ = 0, control_port_ = 0;
  std::unique_ptr<mock::PnsMockProcess> mock_;
  std::vector<Instance> instances_;
};

// Runs `command` in a shell; its exit status (-1 when it did not exit) and output (stdout and
// stderr together, except what the command redirects itself).
inline std::pair<int, std::string> runShell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(("( " + command + " ) 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// pushhubctl against `stack` with the environment `./run up` writes (the full key of kHub):
// its exit status and output.
inline std::pair<int, std::string> runPushhubctl(Stack& stack, const std::string& args) {
  std::string port = std::to_string(stack.grpcPort());
  return runShell("PUSHHUB_GRPC_ADDR=127.0.0.1:" + port + " PUSHHUB_HUB=" + kHub +
                  " PUSHHUB_CONNECTION_STRING_FULL='Endpoint=sb://127.0.0.1:" + port +
                  "/;SharedAccessKeyName=" + kFullKeyName + ";SharedAccessKey=" + kFullKey +
                  "' PUSHHUB_CA_CERT='" + stack.pki().ca().string() + "' PUSHHUB_ADMIN_KEY='" +
                  kAdminKey + "' " + binaryPath("pushhubctl").string() + " " + args);
}

}  // namespace pushhub::testing
