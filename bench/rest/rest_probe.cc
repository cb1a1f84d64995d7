// rest_probe: the measuring half of bench/rest/rest.sh. It calls a running pushhubd the way an
// Azure SDK does (HTTPS/1.1 keep-alive, a SharedAccessSignature per connection) and, as the
// reference measured in the same run, over gRPC. Prints one JSON object on stdout.
//
//   rest_probe register --api rest|grpc --count N [--concurrency 64] [--prefix P]
//       N installations (APNs, 3 tags of 100 each, one template), created one call each by
//       `concurrency` clients at once (REST: one keep-alive connection each, all on one event
//       loop as Node runs the SDK; gRPC: one channel, as a gRPC client multiplexes, called from
//       `concurrency` threads); reports the rate and the call latency percentiles.
//   rest_probe send --api rest|grpc --count N
//       N direct sends to one APNs handle, one after another, each body unique; reports the
//       accept latency (the call until its answer: 201, or the gRPC reply) percentiles.
//
// From the environment (.run/stack.env): PUSHHUB_REST_URL, PUSHHUB_GRPC_ADDR, PUSHHUB_CA_CERT,
// PUSHHUB_CONNECTION_STRING_FULL, PUSHHUB_HUB.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
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

using Headers = std::vector<std::pair<std::string, std::string>>;

http::request<http::string_body> makeRequest(http::verb method, const std::string& host_port,
                                             const std::string& target,
                                             const std::string& authorization,
                                             const Headers& headers, std::string body) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, host_port);
  req.set(http::field::authorization, authorization);
  req.set("x-ms-version", "2020-06");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

// One HTTPS keep-alive connection on `ioc`'s thread, as the SDK's agent keeps one per socket.
class RestConnection {
 public:
  RestConnection(asio::io_context& ioc, asio::ssl::context& tls) : stream_(ioc, tls) {}

  asio::awaitable<void> connect(const std::string& host, uint16_t port) {
    co_await beast::get_lowest_layer(stream_).async_connect(
        asio::ip::tcp::endpoint(asio::ip::make_address(host), port), asio::use_awaitable);
    co_await stream_.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
  }
  // The answer's status.
  asio::awaitable<int> call(const http::request<http::string_body>& req) {
    co_await http::async_write(stream_, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream_, buffer_, res, asio::use_awaitable);
    co_return static_cast<int>(res.result_int());
  }

 private:
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

// One SDK-like client: connects, then makes calls until `take` gives -1. A function, not a
// lambda: a coroutine lambda's captures die with the lambda object, before the coroutine ends.
asio::awaitable<void> runClient(RestConnection& connection, Target rest, int expected,
                                std::function<long()> take,
                                std::function<http::request<http::string_body>(long)> request,
                                Report& report) {
  co_await connection.connect(rest.host, rest.port);
  for (long n = take(); n >= 0; n = take()) {
    auto req = request(n);
    auto t0 = Clock::now();
    int status = co_await connection.call(req);
    report.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (status != expected) ++report.failures;
  }
}

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
  long next = 0;  // the next call's number; REST clients share one thread, gRPC ones take turns
  std::mutex next_mutex;
  auto take = [&] {
    std::lock_guard lock(next_mutex);
    return next < o.count ? next++ : -1;
  };
  std::string host_port = rest.host + ":" + std::to_string(rest.port);
  const std::string auth = authorization();  // signed once, as the SDK caches its token
  auto restCall = [&](long n) {
    std::string id = fmt::format("{}-{}", o.prefix, n);
    if (register_mode) {
      return makeRequest(
          http::verb::put, host_port, "/" + hub + "/installations/" + id + "?api-version=2020-06",
          auth, {{"Content-Type", "application/json"}},
          fmt::format(
              R"({{"installationId":"{}","platform":"apns","pushChannel":"{}","tags":["a-{}","b-{}","c-{}"],)"
              R"("templates":{{"alert":{{"body":"{{\"aps\":{{\"alert\":\"$(message)\"}}}}"}}}}}})",
              id, token(n), n % 100, (n / 100) % 100, (n / 7) % 100));
    }
    return makeRequest(http::verb::post, host_port,
                       "/" + hub + "/messages/?api-version=2020-06&direct=true", auth,
                       {{"ServiceBusNotification-Format", "apple"},
                        {"ServiceBusNotification-DeviceHandle", token(0)},
                        {"Content-Type", "application/json;charset=utf-8"}},
                       fmt::format(R"({{"aps":{{"alert":"{}"}}}})", id));
  };
  auto start = Clock::now();
  if (o.api == "rest") {
    // One event loop holding every connection, as Node runs the SDK: OS threads per connection
    // would measure the kernel's scheduler more than the server.
    asio::io_context ioc;
    std::vector<std::unique_ptr<RestConnection>> connections;
    for (long c = 0; c < clients; ++c) {
      connections.push_back(std::make_unique<RestConnection>(ioc, tls));
      asio::co_spawn(
          ioc,
          runClient(*connections[c], rest, register_mode ? 200 : 201, take, restCall, reports[c]),
          [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
          });
    }
    ioc.run();
  } else {
    std::vector<std::thread> threads;
    for (long c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        Report& report = reports[c];
        for (long n = take(); n >= 0; n = take()) {
          std::string id = fmt::format("{}-{}", o.prefix, n);
          auto t0 = Clock::now();
          grpc::ClientContext context;
          context.AddMetadata("authorization", auth);
          grpc::Status status;
          if (register_mode) {
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
            v1::CreateOrUpdateInstallationResponse response;
            status = stub->CreateOrUpdateInstallation(&context, request, &response);
          } else {
            v1::SendNotificationRequest request;
            request.set_hub(hub);
            auto* target = request.mutable_direct()->add_targets();
            target->set_platform(v1::PLATFORM_APNS);
            target->set_push_handle(token(0));
            auto* native = request.add_native();
            native->set_platform(v1::PLATFORM_APNS);
            native->set_body(fmt::format(R"({{"aps":{{"alert":"{}"}}}})", id));
            v1::SendNotificationResponse response;
            status = stub->SendNotification(&context, request, &response);
          }
          report.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          if (!status.ok()) ++report.failures;
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  Report all;
  all.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& r : reports) {
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    all.failures += r.failures;
  }
  print(o, all);
  return all.failures == 0 ? 0 : 1;
}
