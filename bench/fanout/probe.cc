// fanout_probe: the measuring half of bench/fanout/fanout.sh. It talks to pushhubd over gRPC (SAS
// auth, like pushhubctl) and to pns-mock's control API over plain HTTP, and prints one JSON
// object per command on stdout.
//
//   fanout_probe send (--broadcast | --tag T | --expression E) [--expect N] [--prop NAME=VALUE]...
//                [--apns BODY] [--fcm BODY] [--wns BODY] [--header NAME=VALUE]... --control
//                HOST:PORT
//                [--pid NAME=PID]... [--samples FILE] [--interval-ms 100] [--timeout-s 600]
//                [--metrics HOST:PORT]
//       resets pns-mock's stats, sends one notification and polls /_mock/stats?tokens=0 every
//       interval until pns-mock has answered N requests (accepted + rejected over every provider;
//       without N, an expression send, until the notification completes), then reports the time
//       from the send call to the first and the last accepted request (from pns-mock's
//       microsecond stamps), the rate, and each --pid process's CPU seconds over that time
//       (/proc/PID/stat). --samples writes "ms_since_send answered" lines for the chart. With
//       --metrics (pushhubd's admin listener), also the buckets the send visited.
//   fanout_probe user --count C --devices N --devices-per-user U [--apns-share 100]
//                --metrics HOST:PORT --control HOST:PORT
//       C sends to one user each ($UserId:{user-k}, a user whose U devices are all APNs), one after
//       another; reports the latency percentiles from the call to the receipt of the user's last
//       device, and the buckets visited per send.
//   fanout_probe direct --count C --devices N [--prefix device-] [--apns-share 100]
//                --control HOST:PORT
//       C single-installation APNs sends one after another, each body unique; then matches them
//       to pns-mock's received list (received_at_us) and reports the latency percentiles from the
//       call to the receipt.
//
// Connection flags as pushhubctl: --addr, --hub, --connection-string, --ca (or the same
// environment variables). Single-threaded; all clocks are CLOCK_REALTIME (one machine).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/sas.h"
#include "pushhub/v1/pushhub.grpc.pb.h"

namespace {

namespace v1 = pushhub::v1;
namespace json = boost::json;
namespace http = boost::beast::http;

[[noreturn]] void die(const std::string& message) {
  std::cerr << "fanout_probe: " << message << "\n";
  std::exit(2);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

int64_t wallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Args {
  std::multimap<std::string, std::string> flags;
  std::vector<std::string> positional;
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  bool has(const std::string& name) const { return flags.count(name) > 0; }
  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = flags.equal_range(name); it != end; ++it) {
      out.push_back(it->second);
    }
    return out;
  }
};

Args parse(int argc, char** argv) {
  static const std::set<std::string> kSwitches{"--broadcast"};
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      args.positional.push_back(a);
    } else if (kSwitches.count(a)) {
      args.flags.emplace(a, "1");
    } else if (i + 1 < argc) {
      args.flags.emplace(a, argv[++i]);
    } else {
      die(a + " needs a value");
    }
  }
  return args;
}

std::pair<std::string, std::string> splitPair(const std::string& text, char sep) {
  auto pos = text.find(sep);
  if (pos == std::string::npos) {
    die("expected NAME" + std::string(1, sep) + "VALUE, got " + text);
  }
  return {text.substr(0, pos), text.substr(pos + 1)};
}

// pns-mock's control API: one short HTTP/1.1 exchange per call (loopback, so connecting is cheap).
class Control {
 public:
  explicit Control(const std::string& host_port) {
    auto [host, port] = splitPair(host_port, ':');
    host_ = host;
    port_ = port;
  }

  json::value call(http::verb method, const std::string& target) {
    return json::parse(text(method, target));
  }

  std::string text(http::verb method, const std::string& target) {
    boost::asio::ip::tcp::resolver resolver(ioc_);
    boost::beast::tcp_stream stream(ioc_);
    stream.connect(resolver.resolve(host_, port_));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_);
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(512 * 1024 * 1024);
    http::read(stream, buffer, parser);
    boost::beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    const auto& res = parser.get();
    if (res.result_int() != 200) {
      die(target + ": HTTP " + std::to_string(res.result_int()) + " " + res.body());
    }
    return res.body();
  }

 private:
  boost::asio::io_context ioc_;
  std::string host_;
  std::string port_;
};

// A counter of pushhubd's /metrics, summed over its label sets (0 when absent).
int64_t metricValue(Control& admin, const std::string& name) {
  std::istringstream lines(admin.text(http::verb::get, "/metrics"));
  int64_t total = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name, 0) == 0 && line.size() > name.size() &&
        (line[name.size()] == ' ' || line[name.size()] == '{')) {
      total += std::stoll(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

// Totals over every provider of one /_mock/stats answer.
struct MockTotals {
  int64_t accepted = 0;
  int64_t rejected = 0;
  int64_t first_us = 0;
  int64_t last_us = 0;
  std::map<std::string, int64_t> last_us_by_provider;  // providers that accepted anything
  int64_t answered() const { return accepted + rejected; }
};

MockTotals totals(const json::value& stats) {
  MockTotals t;
  for (const auto& [name, v] : stats.as_object()) {
    const auto& o = v.as_object();
    t.accepted += o.at("accepted").to_number<int64_t>();
    t.rejected += o.at("rejected_total").to_number<int64_t>();
    int64_t first = o.at("first_accepted_us").to_number<int64_t>();
    int64_t last = o.at("last_accepted_us").to_number<int64_t>();
    if (first != 0 && (t.first_us == 0 || first < t.first_us)) {
      t.first_us = first;
    }
    t.last_us = std::max(t.last_us, last);
    if (last != 0) t.last_us_by_provider[name] = last;
  }
  return t;
}

// utime + stime of a process in seconds, or -1 when it cannot be read.
double cpuSeconds(const std::string& pid) {
  if (pid.empty()) {
    return -1;
  }
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) {
    return -1;
  }
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state; 14 utime, 15 stime
    if (i == 14 || i == 15) {
      ticks += std::stod(field);
    }
    if (i == 15) {
      break;
    }
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

class Hub {
 public:
  explicit Hub(const Args& args) {
    std::string addr = args.get("--addr", env("PUSHHUB_GRPC_ADDR"));
    hub_ = args.get("--hub", env("PUSHHUB_HUB"));
    auto cs = pushhub::sas::parseConnectionString(
        args.get("--connection-string", env("PUSHHUB_CONNECTION_STRING_FULL")));
    if (addr.empty() || hub_.empty() || !cs) {
      die("needs --addr, --hub and --connection-string (or PUSHHUB_* variables)");
    }
    cs_ = *cs;
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (std::string ca = args.get("--ca", env("PUSHHUB_CA_CERT")); !ca.empty()) {
      std::ifstream in(ca);
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), {});
      creds = grpc::SslCredentials(ssl);
    }
    stub_ = v1::PushHub::NewStub(grpc::CreateChannel(addr, creds));
    // One token for the whole run: signing is the client's cost, not pushhubd's.
    token_ = pushhub::sas::makeToken(cs_.httpsEndpoint(), cs_.key_name, cs_.key,
                                     std::chrono::system_clock::now() + std::chrono::hours(2));
  }

  const std::string& name() const { return hub_; }

  grpc::Status send(const v1::SendNotificationRequest& request, std::string* id) {
    grpc::ClientContext context;
    prepare(context);
    v1::SendNotificationResponse response;
    grpc::Status status = stub_->SendNotification(&context, request, &response);
    *id = response.notification_id();
    return status;
  }

  v1::NotificationStatus get(const std::string& id) {
    v1::GetNotificationRequest request;
    request.set_hub(hub_);
    request.set_notification_id(id);
    grpc::ClientContext context;
    prepare(context);
    v1::NotificationStatus status;
    (void)stub_->GetNotification(&context, request, &status);
    return status;
  }

 private:
  void prepare(grpc::ClientContext& context) const {
    context.AddMetadata("authorization", token_);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  std::string hub_;
  pushhub::sas::ConnectionString cs_;
  std::string token_;
  std::unique_ptr<v1::PushHub::Stub> stub_;
};

void addNative(v1::SendNotificationRequest& request, const Args& args) {
  for (const auto& [flag, platform] :
       {std::pair{"--apns", v1::PLATFORM_APNS}, std::pair{"--fcm", v1::PLATFORM_FCM},
        std::pair{"--wns", v1::PLATFORM_WNS}}) {
    if (!args.has(flag)) {
      continue;
    }
    auto* native = request.add_native();
    native->set_platform(platform);
    native->set_body(args.get(flag));
    for (const auto& h : args.all("--header")) {
      auto [name, value] = splitPair(h, '=');
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      bool apns = lower.rfind("apns-", 0) == 0;
      bool wns = lower.rfind("x-wns-", 0) == 0;
      if ((apns && platform == v1::PLATFORM_APNS) || (wns && platform == v1::PLATFORM_WNS)) {
        (*native->mutable_headers())[name] = value;
      }
    }
  }
}

int sendCommand(Hub& hub, Control& control, const Args& args) {
  const int64_t expect = std::stoll(args.get("--expect", "0"));
  const auto interval = std::chrono::milliseconds(std::stoi(args.get("--interval-ms", "100")));
  const auto timeout = std::chrono::seconds(std::stoi(args.get("--timeout-s", "600")));
  std::vector<std::pair<std::string, std::string>> pids;
  for (const auto& p : args.all("--pid")) {
    pids.push_back(splitPair(p, '='));
  }
  v1::SendNotificationRequest request;
  request.set_hub(hub.name());
  if (args.has("--broadcast")) {
    request.set_broadcast(true);
  } else if (args.has("--tag")) {
    request.set_tag(args.get("--tag"));
  } else if (args.has("--expression")) {
    request.set_tag_expression(args.get("--expression"));
  } else {
    die("--broadcast, --tag T or --expression E");
  }
  // Without --expect (an expression's audience is not known beforehand) the send is over when
  // the notification completes.
  if (expect <= 0 && !args.has("--expression")) {
    die("--expect N (> 0) is required");
  }
  std::unique_ptr<Control> admin;
  int64_t buckets0 = 0;
  if (args.has("--metrics")) {
    admin = std::make_unique<Control>(args.get("--metrics"));
    buckets0 = metricValue(*admin, "pushhub_buckets_resolved_total");
  }
  addNative(request, args);
  for (const auto& p : args.all("--prop")) {
    auto [name, value] = splitPair(p, '=');
    (*request.mutable_template_properties())[name] = value;
  }

  control.call(http::verb::post, "/_mock/reset");
  std::ofstream samples;
  if (args.has("--samples")) {
    samples.open(args.get("--samples"));
  }
  std::vector<double> cpu0;
  for (const auto& [name, pid] : pids) {
    cpu0.push_back(cpuSeconds(pid));
  }
  const int64_t sent_us = wallUs();
  std::string id;
  grpc::Status status = hub.send(request, &id);
  const int64_t returned_us = wallUs();
  if (!status.ok()) {
    die("SendNotification: " + status.error_message());
  }
  samples << "0 0\n";
  auto started = std::chrono::steady_clock::now();
  auto next = started + interval;
  MockTotals t;
  int64_t last_progress = 0;
  auto last_change = started;
  while (true) {
    std::this_thread::sleep_until(next);
    next += interval;
    t = totals(control.call(http::verb::get, "/_mock/stats?tokens=0"));
    auto now = std::chrono::steady_clock::now();
    samples << (wallUs() - sent_us) / 1000.0 << " " << t.answered() << "\n";
    if (t.answered() != last_progress) {
      last_progress = t.answered();
      last_change = now;
    }
    if ((expect > 0 && t.answered() >= expect) || now - started > timeout ||
        now - last_change > std::chrono::seconds(20)) {
      break;
    }
    if (expect <= 0 && hub.get(id).state() >= v1::NotificationStatus::STATE_COMPLETED) {
      t = totals(control.call(http::verb::get, "/_mock/stats?tokens=0"));
      break;
    }
  }
  json::object cpu;
  for (size_t i = 0; i < pids.size(); ++i) {
    cpu[pids[i].first] = cpu0[i] >= 0 ? cpuSeconds(pids[i].second) - cpu0[i] : -1.0;
  }
  // The job completes (counts written, XACK) just after the last answer; wait for it briefly so
  // the outcome counts can be shown, without counting that wait in the figures above.
  v1::NotificationStatus state;
  for (int i = 0; i < 100; ++i) {
    state = hub.get(id);
    if (state.state() >= v1::NotificationStatus::STATE_COMPLETED) {  // or another final state
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  json::object outcomes;
  for (const auto& o : state.outcomes()) {
    outcomes[v1::Platform_Name(o.platform()) + ":" + o.outcome()] = o.count();
  }
  const double to_last_s = t.last_us > 0 ? (t.last_us - sent_us) / 1e6 : 0;
  // When each platform's last device was delivered: a slow route should not delay the others.
  json::object last_by_platform;
  for (const auto& [name, last] : t.last_us_by_provider) {
    last_by_platform[name] = (last - sent_us) / 1000.0;
  }
  json::object out{
      {"expected", expect},
      {"answered", t.answered()},
      {"accepted", t.accepted},
      {"rejected", t.rejected},
      {"send_call_ms", (returned_us - sent_us) / 1000.0},
      {"to_first_ms", t.first_us > 0 ? (t.first_us - sent_us) / 1000.0 : -1.0},
      {"to_last_ms", to_last_s * 1000.0},
      {"to_last_ms_by_platform", std::move(last_by_platform)},
      {"deliveries_per_s", to_last_s > 0 ? t.accepted / to_last_s : 0.0},
      {"steady_per_s",
       t.last_us > t.first_us ? t.accepted / ((t.last_us - t.first_us) / 1e6) : 0.0},
      {"cpu_s", std::move(cpu)},
      {"state", v1::NotificationStatus::State_Name(state.state())},
      {"outcomes", std::move(outcomes)},
      {"complete", t.answered() >= expect},
  };
  if (admin) {
    out["buckets_visited"] = metricValue(*admin, "pushhub_buckets_resolved_total") - buckets0;
  }
  std::cout << json::serialize(out) << "\n";
  return t.answered() >= expect ? 0 : 1;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  size_t rank = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

// Sends `count` single-audience APNs notifications one after another, the i-th with the body
// {"aps":{"alert":"<label> i"}} and the audience `audience(request, i)` sets; waits until
// pns-mock has answered `count * per_send` requests (60 s at most) and gives, per send, the
// latency from the call to the last of its `per_send` receipts (sends missing one are left out).
// `send_calls_per_s` gets the rate of the calls.
template <typename Audience>
std::vector<double> timedSends(Hub& hub, Control& control, const std::string& label, int count,
                               int per_send, Audience audience, double* send_calls_per_s) {
  control.call(http::verb::post, "/_mock/reset");
  const std::string head = R"({"aps":{"alert":")" + label + " ";
  std::vector<int64_t> sent_us(count);
  for (int i = 0; i < count; ++i) {
    v1::SendNotificationRequest request;
    request.set_hub(hub.name());
    audience(request, i);
    auto* native = request.add_native();
    native->set_platform(v1::PLATFORM_APNS);
    native->set_body(head + std::to_string(i) + R"("}})");
    std::string id;
    sent_us[i] = wallUs();
    grpc::Status status = hub.send(request, &id);
    if (!status.ok()) {
      die("SendNotification (" + label + " " + std::to_string(i) + "): " + status.error_message());
    }
  }
  *send_calls_per_s = count / ((wallUs() - sent_us[0]) / 1e6);
  const int64_t expected = static_cast<int64_t>(count) * per_send;
  for (int i = 0; i < 600; ++i) {
    if (totals(control.call(http::verb::get, "/_mock/stats?tokens=0")).answered() >= expected) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  json::value received = control.call(
      http::verb::get, "/_mock/received?provider=apns&limit=" + std::to_string(expected));
  std::vector<int64_t> last_us(count, 0);
  std::vector<int> seen(count, 0);
  for (const auto& e : received.as_array()) {
    const auto& o = e.as_object();
    std::string_view body = o.at("body").as_string();
    if (body.rfind(head, 0) != 0) {
      continue;
    }
    int i = std::atoi(std::string(body.substr(head.size())).c_str());
    if (i < 0 || i >= count) {
      continue;
    }
    ++seen[i];
    last_us[i] = std::max(last_us[i], o.at("received_at_us").to_number<int64_t>());
  }
  std::vector<double> latency_ms;
  for (int i = 0; i < count; ++i) {
    if (seen[i] == per_send) latency_ms.push_back((last_us[i] - sent_us[i]) / 1000.0);
  }
  std::sort(latency_ms.begin(), latency_ms.end());
  return latency_ms;
}

json::object latencyFigures(const std::vector<double>& latency_ms) {
  double sum = 0;
  for (double l : latency_ms) {
    sum += l;
  }
  return {
      {"p50_ms", percentile(latency_ms, 0.50)},
      {"p90_ms", percentile(latency_ms, 0.90)},
      {"p99_ms", percentile(latency_ms, 0.99)},
      {"max_ms", latency_ms.empty() ? 0.0 : latency_ms.back()},
      {"mean_ms", latency_ms.empty() ? 0.0 : sum / static_cast<double>(latency_ms.size())},
  };
}

int directCommand(Hub& hub, Control& control, const Args& args) {
  const int count = std::stoi(args.get("--count", "10000"));
  const int64_t devices = std::stoll(args.get("--devices", "0"));
  const int share = std::stoi(args.get("--apns-share", "100"));
  const std::string prefix = args.get("--prefix", "device-");
  if (devices <= 0 || share <= 0 || share > 100) {
    die("--devices N and --apns-share 1..100 are required");
  }
  double calls_per_s = 0;
  // pushhubctl install bulk gives index i the platform of slot i % 100 of the mix, APNs first:
  // slots below `share` are APNs devices.
  auto latency_ms = timedSends(
      hub, control, "direct", count, 1,
      [&](v1::SendNotificationRequest& request, int i) {
        int64_t index = ((static_cast<int64_t>(i) / share) * 100 + i % share) % devices;
        request.set_installation_id(prefix + std::to_string(index));
      },
      &calls_per_s);
  json::object out{
      {"sent", count}, {"matched", latency_ms.size()}, {"send_calls_per_s", calls_per_s}};
  for (auto& [k, v] : latencyFigures(latency_ms)) out[k] = v;
  std::cout << json::serialize(out) << "\n";
  return latency_ms.size() == static_cast<size_t>(count) ? 0 : 1;
}

// Sends to one user at a time ($UserId:{user-k}, each user owning --devices-per-user devices,
// all APNs) and measures call -> pns-mock receipt of the user's last device, and the buckets each
// send visited (pushhubd's /metrics at --metrics).
int userCommand(Hub& hub, Control& control, const Args& args) {
  const int count = std::stoi(args.get("--count", "1000"));
  const int64_t devices = std::stoll(args.get("--devices", "0"));
  const int share = std::stoi(args.get("--apns-share", "100"));
  const int per_user = std::stoi(args.get("--devices-per-user", "2"));
  if (devices <= 0 || share <= 0 || share > 100 || per_user <= 0 || !args.has("--metrics")) {
    die("--devices N, --apns-share 1..100, --devices-per-user U and --metrics HOST:PORT are "
        "required");
  }
  Control admin(args.get("--metrics"));
  // Users whose devices are all APNs (pushhubctl install bulk: index i is APNs when i % 100 is
  // below the share), spread over the whole range.
  std::vector<int64_t> users;
  for (int64_t u = 0; u * per_user + per_user <= devices; ++u) {
    bool all_apns = true;
    for (int d = 0; d < per_user; ++d) all_apns = all_apns && (u * per_user + d) % 100 < share;
    if (all_apns) users.push_back(u);
  }
  if (users.empty()) die("no user has only APNs devices");
  const int64_t buckets0 = metricValue(admin, "pushhub_buckets_resolved_total");
  double calls_per_s = 0;
  auto latency_ms = timedSends(
      hub, control, "user", count, per_user,
      [&](v1::SendNotificationRequest& request, int i) {
        int64_t user = users[(static_cast<size_t>(i) * 7919) % users.size()];
        request.set_tag_expression("$UserId:{user-" + std::to_string(user) + "}");
      },
      &calls_per_s);
  // Every job has resolved its buckets once all its devices answered.
  const int64_t buckets = metricValue(admin, "pushhub_buckets_resolved_total") - buckets0;
  json::object out{{"sent", count},
                   {"devices_per_user", per_user},
                   {"complete", latency_ms.size()},
                   {"send_calls_per_s", calls_per_s},
                   {"buckets_per_send", static_cast<double>(buckets) / count}};
  for (auto& [k, v] : latencyFigures(latency_ms)) out[k] = v;
  std::cout << json::serialize(out) << "\n";
  return latency_ms.size() == static_cast<size_t>(count) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  if (args.positional.empty()) {
    die("usage: fanout_probe send|direct|user [flags] (see bench/fanout/probe.cc)");
  }
  Hub hub(args);
  Control control(args.get("--control", env("PNS_MOCK_CONTROL")));
  if (args.positional[0] == "send") {
    return sendCommand(hub, control, args);
  }
  if (args.positional[0] == "direct") {
    return directCommand(hub, control, args);
  }
  if (args.positional[0] == "user") {
    return userCommand(hub, control, args);
  }
  die("unknown command " + args.positional[0]);
}
