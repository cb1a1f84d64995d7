// rest_probe: the measuring half of bench/rest/rest.sh. It calls a running pushhubd the way an
// Azure SDK does (HTTPS/1.1 keep-alive, a SharedAccessSignature per connection) and, as the
// reference measured in the same run, over gRPC. Prints one JSON object on stdout.
//
//   rest_probe register --api rest|grpc --count N [--concurrency 64] [--prefix P]
//       N installations (APNs, 3 tags of 100 each, one template), created one call each by
//       `concurrency` clients at once (REST: one keep-alive connection each; gRPC: one channel, as
//       a gRPC client multiplexes); reports the rate and the call latency percentiles.
//   rest_probe send --api rest|grpc --count N
//       N direct sends to one APNs handle, one after another, each body unique; reports the
//       accept latency (the call until its answer: 201, or the gRPC reply) percentiles.
//
// From the environment (.run/stack.env): PUSHHUB_REST_URL, PUSHHUB_GRPC_ADDR, PUSHHUB_CA_CERT,
// PUSHHUB_CONNECTION_STRING_FULL, PUSHHUB_HUB.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/sas.h"
#include "pushhub/v1/pushhub.grpc.pb.h"

namespace {

namespace v1 = pushhub::v1;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::cerr << "rest_probe: " << message << "\n";
  std::exit(2);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') die(std::string(name) + " is not set (source .run/stack.env)");
  return v;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Options {
  std::string command, api, prefix = "bench";
  long count = 0, concurrency = 64;
};

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) die("usage: rest_probe register|send --api rest|grpc --count N");
  o.command = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--api")
      o.api = value;
    else if (flag == "--count")
      o.count = std::stol(value);
    else if (flag == "--concurrency")
      o.concurrency = std::stol(value);
    else if (flag == "--prefix")
      o.prefix = value;
    else
      die("unknown flag " + flag);
  }
  if (o.api != "rest" && o.api != "grpc") die("--api rest|grpc");
  if (o.count < 1 || o.concurrency < 1) die("--count and --concurrency must be positive");
  return o;
}

std::string token(long n) {
  std::string digits = std::to_string(n);
  return std::string(64 - digits.size(), 'b') + digits;
}

// One HTTPS keep-alive connection, blocking; as the SDK's pipeline keeps one per agent socket.
class RestConnection {
 public:
  RestConnection(const std::string& host, uint16_t port, asio::ssl::context& tls)
      : host_(host), port_(port), stream_(ioc_, tls) {
    beast::get_lowest_layer(stream_).connect({asio::ip::make_address(host), port});
    stream_.handshake(asio::ssl::stream_base::client);
  }
  int call(http::verb method, const std::string& target, const std::string& authorization,
           const std::vector<std::pair<std::string, std::string>>& headers,
           const std::string& body) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_ + ":" + std::to_string(port_));
    req.set(http::field::authorization, authorization);
    req.set("x-ms-version", "2020-06");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return static_cast<int>(res.result_int());
  }

 private:
  std::string host_;
  uint16_t port_;
  asio::io_context ioc_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

struct Target {
  std::string host;
  uint16_t port = 0;
};

Target restTarget() {
  std::string url = env("PUSHHUB_REST_URL");  // https://127.0.0.1:PORT/
  auto rest = url.substr(url.find("//") + 2);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  return {rest.substr(0, colon), static_cast<uint16_t>(std::stoi(rest.substr(colon + 1)))};
}

struct Report {
  std::vector<double> latencies_ms;
  double seconds = 0;
  long failures = 0;
};

void print(const Options& o, Report& r) {
  auto& l = r.latencies_ms;
  std::sort(l.begin(), l.end());
  auto at = [&](double q) {
    return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<size_t>(q * l.size()))];
  };
  std::cout << fmt::format(
                   R"({{"command":"{}","api":"{}","count":{},"concurrency":{},"seconds":{:.3f},)"
                   R"("per_second":{:.0f},"p50_ms":{:.3f},"p99_ms":{:.3f},"max_ms":{:.3f},)"
                   R"("failures":{}}})",
                   o.command, o.api, o.count, o.command == "send" ? 1 : o.concurrency, r.seconds,
                   r.seconds > 0 ? static_cast<double>(o.count) / r.seconds : 0.0, at(0.50),
                   at(0.99), l.empty() ? 0.0 : l.back(), r.failures)
            << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto cs = pushhub::sas::parseConnectionString(env("PUSHHUB_CONNECTION_STRING_FULL"));
  if (!cs) die(cs.error().message);
  const std::string hub = env("PUSHHUB_HUB");
  const std::string ca = env("PUSHHUB_CA_CERT");
  auto authorization = [&] {
    return pushhub::sas::makeToken(cs->httpsEndpoint(), cs->key_name, cs->key,
                                   std::chrono::system_clock::now() + std::chrono::hours(1));
  };
  bool register_mode = o.command == "register";
  if (!register_mode && o.command != "send") die("unknown command " + o.command);
  long clients = register_mode ? std::min(o.concurrency, o.count) : 1;

  std::shared_ptr<v1::PushHub::Stub> stub;
  if (o.api == "grpc") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = readFile(ca);
    stub = v1::PushHub::NewStub(
        grpc::CreateChannel(env("PUSHHUB_GRPC_ADDR"), grpc::SslCredentials(ssl)));
  }
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.load_verify_file(ca);
  tls.set_verify_mode(asio::ssl::verify_peer);
  Target rest = restTarget();

  std::vector<Report> reports(clients);
  std::atomic<long> next{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (long c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      Report& report = reports[c];
      std::unique_ptr<RestConnection> connection;
      if (o.api == "rest") connection = std::make_unique<RestConnection>(rest.host, rest.port, tls);
      std::string auth = authorization();
      for (long n = next++; n < o.count; n = next++) {
        std::string id = fmt::format("{}-{}", o.prefix, n);
        auto t0 = Clock::now();
        bool ok = false;
        if (register_mode && o.api == "rest") {
          std::string body = fmt::format(
              R"({{"installationId":"{}","platform":"apns","pushChannel":"{}","tags":["a-{}","b-{}","c-{}"],)"
              R"("templates":{{"alert":{{"body":"{{\"aps\":{{\"alert\":\"$(message)\"}}}}"}}}}}})",
              id, token(n), n % 100, (n / 100) % 100, (n / 7) % 100);
          ok = connection->call(http::verb::put,
                                "/" + hub + "/installations/" + id + "?api-version=2020-06", auth,
                                {{"Content-Type", "application/json"}}, body) == 200;
        } else if (register_mode) {
          v1::CreateOrUpdateInstallationRequest request;
          request.set_hub(hub);
          auto* i = request.mutable_installation();
          i->set_installation_id(id);
          i->set_platform(v1::PLATFORM_APNS);
          i->set_push_channel(token(n));
          i->add_tags(fmt::format("a-{}", n % 100));
          i->add_tags(fmt::format("b-{}", (n / 100) % 100));
          i->add_tags(fmt::format("c-{}", (n / 7) % 100));
          (*i->mutable_templates())["alert"].set_body(R"x({"aps":{"alert":"$(message)"}})x");
          grpc::ClientContext context;
          context.AddMetadata("authorization", auth);
          v1::CreateOrUpdateInstallationResponse response;
          ok = stub->CreateOrUpdateInstallation(&context, request, &response).ok();
        } else if (o.api == "rest") {
          ok = connection->call(http::verb::post,
                                "/" + hub + "/messages/?api-version=2020-06&direct=true", auth,
                                {{"ServiceBusNotification-Format", "apple"},
                                 {"ServiceBusNotification-DeviceHandle", token(0)},
                                 {"Content-Type", "application/json;charset=utf-8"}},
                                fmt::format(R"({{"aps":{{"alert":"{}"}}}})", id)) == 201;
        } else {
          v1::SendNotificationRequest request;
          request.set_hub(hub);
          auto* target = request.mutable_direct()->add_targets();
          target->set_platform(v1::PLATFORM_APNS);
          target->set_push_handle(token(0));
          auto* native = request.add_native();
          native->set_platform(v1::PLATFORM_APNS);
          native->set_body(fmt::format(R"({{"aps":{{"alert":"{}"}}}})", id));
          grpc::ClientContext context;
          context.AddMetadata("authorization", auth);
          v1::SendNotificationResponse response;
          ok = stub->SendNotification(&context, request, &response).ok();
        }
        report.latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!ok) ++report.failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  Report all;
  all.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& r : reports) {
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    all.failures += r.failures;
  }
  print(o, all);
  return all.failures == 0 ? 0 : 1;
}
