// pushhubctl: pushhub from the command line, over the gRPC API.
//
// Connection settings come from flags or the environment (as written by `./run up` in
// .run/stack.env): --addr / PUSHHUB_GRPC_ADDR, --hub / PUSHHUB_HUB, --connection-string /
// PUSHHUB_CONNECTION_STRING_FULL (the SAS key), --ca / PUSHHUB_CA_CERT (TLS; omit for plaintext).
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/sas.h"
#include "tools/pushhubctl/cli.h"

namespace pushhubctl {
namespace {

constexpr const char* kUsage = R"(usage: pushhubctl [connection flags] COMMAND [flags]

commands:
  install put --id ID --platform apns|fcm|wns --channel HANDLE [--tag T]... [--user U]
              [--template NAME=BODY]... [--template-header NAME:HEADER=VALUE]...
  install get --id ID
  install delete --id ID
  install bulk --count N [--prefix P] [--mix apns:50,fcm:35,wns:15] [--wns-base URL]
              [--tag-pool K] [--tags-per N] [--template PLATFORM:NAME=BODY]...
              [--template-header PLATFORM:NAME:HEADER=VALUE]... [--threads N] [--batch 500]
              [--dead D] [--devices-per-user U]
      registers N devices with random handles in batches (needs a Manage key), platforms
      spread by --mix, each with --tags-per tags drawn from tag-0..tag-(K-1); D of them get
      handles pns-mock calls dead (spread evenly); WNS channels are --wns-base + a token; with
      U, device i belongs to user user-(i / U); prints the rate and per-tag counts as JSON
  send (--tag T | --expression E | --installation ID | --broadcast | --handle PLATFORM:HANDLE...)
       ([--apns BODY] [--fcm BODY] [--wns BODY] [--header NAME=VALUE]... | --prop NAME=VALUE...)
       [--expiry-seconds S] [--in SECONDS] [--wait]
      prints the notification id; --wait polls until every target has an outcome; --handle
      (apns|fcm|wns:HANDLE, up to 1000) sends to handles directly; --in schedules it
  notification get ID         the notification as JSON
  notification cancel ID      calls off a scheduled send
  export [--page-size 1000] > HUB.jsonl
      writes every installation and registration of the hub (a Manage key) to stdout, one
      pushhub.v1.Installation in JSON per line, a page at a time
  import [--file HUB.jsonl] [--batch 500]
      stores the lines of an export (stdin by default) in batches; each refused line is reported
      on stderr with its reason and the rest go on; exits 1 if any was refused. Re-running is
      safe: every line is a create-or-replace
  token [--connection-string CS] [--ttl-seconds 3600]
      prints the Authorization header value an Azure SDK sends with the connection string
      (a SharedAccessSignature for its Endpoint), for curl against the REST API

operators (output for people; --json prints the answer as JSON):
  notification ID             state, times, outcomes and per-handle failures of a send
  notification list [--max 20]  the hub's latest sends, newest first (a Manage key)
  schedule list [--max 100]   the hub's scheduled sends, earliest first (a Manage key)
  schedule cancel ID          calls off a scheduled send
  queues                      jobs queued and running per hub, oldest job's age, scheduled
  stats [--hub NAME] [--watch SECONDS [--count N]]
      this instance's deliveries, retries, in flight and connections per route, provider
      latency, and the queue; --watch refreshes every SECONDS (N times; default until ^C)
      and shows rates per second
  hubs                        every hub: platforms with credentials, keys, queued jobs
  (queues, stats and hubs are signed with the admin key)

hub management (signed with the instance's admin key, not a hub's; prints JSON, no secrets):
  hub create --file HUB.json [--apns-key-file P8] [--fcm-service-account-file JSON]
  hub update --file HUB.json [--apns-key-file P8] [--fcm-service-account-file JSON]
      HUB.json is a pushhub.v1.Hub in JSON (docs/API.md); the file flags fill in
      apns.key_pem and fcm.service_account_json. On update, empty secrets keep the stored ones
  hub get NAME | hub list | hub delete NAME
  key add --hub NAME --name KEY --rights Listen[,Send,Manage] [--secret S]
  key rotate --hub NAME --name KEY [--secret S] [--grace-seconds 3600]
  key remove --hub NAME --name KEY
      add and rotate print the secret when pushhubd made it (the only time it is shown)

connection flags (default from the environment):
  --addr HOST:PORT          PUSHHUB_GRPC_ADDR
  --hub NAME                PUSHHUB_HUB
  --connection-string CS    PUSHHUB_CONNECTION_STRING_FULL
  --ca FILE                 PUSHHUB_CA_CERT (TLS to pushhubd; unset = plaintext)
  --admin-key KEY           PUSHHUB_ADMIN_KEY (hub and key commands)
)";

v1::Platform platformOf(const std::string& name) {
  if (name == "apns") return v1::PLATFORM_APNS;
  if (name == "fcm" || name == "fcmv1") return v1::PLATFORM_FCM;
  if (name == "wns") return v1::PLATFORM_WNS;
  die("--platform must be apns, fcm or wns");
}

std::pair<std::string, std::string> splitPair(const std::string& text, char sep,
                                              const std::string& flag) {
  auto pos = text.find(sep);
  if (pos == std::string::npos) die(flag + " expects NAME" + sep + "VALUE");
  return {text.substr(0, pos), text.substr(pos + 1)};
}

std::string randomHex(std::mt19937_64& rng, size_t length) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(length, '0');
  for (auto& c : out) c = kHex[rng() & 15];
  return out;
}

// A random handle for `platform`. Load-test handles never start like pns-mock's rules for bad,
// dropped, dead or expired handles (docs/pns-mock.md) by chance: APNs tokens never start with
// 0, c or d, FCM tokens start with "f", WNS channel tokens with "w". `dead` asks for one
// pns-mock calls dead (APNs 410 Unregistered, FCM 404 UNREGISTERED, WNS 410). WNS handles are
// channel URIs under `wns_base` (e.g. https://127.0.0.1:PORT/?token=).
std::string randomHandle(std::mt19937_64& rng, v1::Platform platform, bool dead,
                         const std::string& wns_base) {
  static constexpr char kFirst[] = "123456789abef";
  if (platform == v1::PLATFORM_FCM) return (dead ? "dead" : "f") + randomHex(rng, 152);
  if (platform == v1::PLATFORM_WNS) {
    return wns_base + (dead ? "expired" : "w") + randomHex(rng, 40);
  }
  std::string token = randomHex(rng, 64);
  if (dead) return token.replace(0, 4, "dead");
  token[0] = kFirst[rng() % (sizeof kFirst - 1)];
  return token;
}

struct PlatformShare {
  v1::Platform platform;
  int percent;
};

// "apns:50,fcm:35,wns:15" -> shares adding up to 100.
std::vector<PlatformShare> parseMix(const std::string& text) {
  std::vector<PlatformShare> mix;
  int total = 0;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    auto [name, percent] = splitPair(part, ':', "--mix");
    mix.push_back({platformOf(name), std::stoi(percent)});
    total += mix.back().percent;
  }
  if (total != 100) die("--mix: shares must add up to 100");
  return mix;
}

v1::Platform platformFor(const std::vector<PlatformShare>& mix, int index) {
  int slot = index % 100;  // deterministic spread, so counts per platform are exact
  for (const auto& share : mix) {
    if (slot < share.percent) return share.platform;
    slot -= share.percent;
  }
  return mix.back().platform;
}

int installPut(Client& client, const Args& args) {
  v1::CreateOrUpdateInstallationRequest request;
  request.set_hub(client.hub());
  auto* inst = request.mutable_installation();
  inst->set_installation_id(args.get("--id"));
  inst->set_platform(platformOf(args.get("--platform", "apns")));
  inst->set_push_channel(args.get("--channel"));
  inst->set_user_id(args.get("--user"));
  for (const auto& tag : args.all("--tag")) inst->add_tags(tag);
  for (const auto& t : args.all("--template")) {
    auto [name, body] = splitPair(t, '=', "--template");
    (*inst->mutable_templates())[name].set_body(body);
  }
  for (const auto& h : args.all("--template-header")) {
    auto [name, header] = splitPair(h, ':', "--template-header");
    auto [key, value] = splitPair(header, '=', "--template-header");
    (*(*inst->mutable_templates())[name].mutable_headers())[key] = value;
  }
  grpc::ClientContext context;
  client.prepare(context);
  v1::CreateOrUpdateInstallationResponse response;
  check(client.stub().CreateOrUpdateInstallation(&context, request, &response));
  std::cout << "{\"installation_id\":\"" << inst->installation_id() << "\",\"stored\":true}\n";
  return 0;
}

// Registers `count` devices with random handles through BatchCreateOrUpdateInstallations, in
// batches of --batch from --threads threads. Each gets --tags-per tags drawn from tag-0..tag-(K-1).
int installBulk(Client& client, const Args& args) {
  const int count = std::stoi(args.get("--count", "1000"));
  const int pool = std::stoi(args.get("--tag-pool", "10"));
  const int per = std::min(pool, std::stoi(args.get("--tags-per", "3")));
  const int threads = std::stoi(args.get("--threads", "4"));
  const int batch = std::clamp(std::stoi(args.get("--batch", "500")), 1, 1000);
  const std::string prefix = args.get("--prefix", "device-");
  const auto mix = parseMix(args.get("--mix", "apns:100"));
  const std::string wns_base = args.get("--wns-base", "https://127.0.0.1/?token=");
  // Templates by platform: --template PLATFORM:NAME=BODY, --template-header PLATFORM:NAME:H=V.
  std::map<v1::Platform, std::map<std::string, v1::InstallationTemplate>> templates;
  for (const auto& t : args.all("--template")) {
    auto [platform, rest] = splitPair(t, ':', "--template");
    auto [name, body] = splitPair(rest, '=', "--template");
    templates[platformOf(platform)][name].set_body(body);
  }
  for (const auto& h : args.all("--template-header")) {
    auto [platform, rest] = splitPair(h, ':', "--template-header");
    auto [name, header] = splitPair(rest, ':', "--template-header");
    auto [key, value] = splitPair(header, '=', "--template-header");
    (*templates[platformOf(platform)][name].mutable_headers())[key] = value;
  }
  const int dead = std::stoi(args.get("--dead", "0"));
  const int per_user = std::stoi(args.get("--devices-per-user", "0"));
  std::vector<std::map<std::string, int>> per_thread(threads);
  std::atomic<int> next{0}, failed{0};
  auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(std::random_device{}() + t);
      std::vector<int> tags(pool);
      for (int k = 0; k < pool; ++k) tags[k] = k;
      for (int first = next.fetch_add(batch); first < count; first = next.fetch_add(batch)) {
        v1::BatchCreateOrUpdateInstallationsRequest request;
        request.set_hub(client.hub());
        std::map<std::string, int> counted;
        for (int i = first; i < std::min(count, first + batch); ++i) {
          auto* inst = request.add_installations();
          inst->set_installation_id(prefix + std::to_string(i));
          const v1::Platform platform = platformFor(mix, i);
          inst->set_platform(platform);
          // Dead devices are spread evenly, so every platform of the mix gets some.
          const bool is_dead = dead > 0 && i % std::max(1, count / dead) == 0 &&
                               i / std::max(1, count / dead) < dead;
          inst->set_push_channel(randomHandle(rng, platform, is_dead, wns_base));
          if (per_user > 0) inst->set_user_id("user-" + std::to_string(i / per_user));
          std::shuffle(tags.begin(), tags.end(), rng);
          for (int k = 0; k < per; ++k) {
            std::string tag = "tag-" + std::to_string(tags[k]);
            inst->add_tags(tag);
            ++counted[tag];
          }
          for (const auto& [name, tpl] : templates[platform]) {
            (*inst->mutable_templates())[name] = tpl;
          }
        }
        grpc::ClientContext context;
        client.prepare(context);
        v1::BatchCreateOrUpdateInstallationsResponse response;
        auto status = client.stub().BatchCreateOrUpdateInstallations(&context, request, &response);
        if (!status.ok()) {
          if (failed.fetch_add(request.installations_size()) == 0) {
            std::cerr << "pushhubctl: " << status.error_message() << "\n";
          }
          continue;
        }
        for (const auto& [tag, n] : counted) per_thread[t][tag] += n;
      }
    });
  }
  for (auto& w : workers) w.join();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::map<std::string, int> totals;
  for (const auto& m : per_thread) {
    for (const auto& [tag, n] : m) totals[tag] += n;
  }
  std::cout << "{\"registered\":" << count - failed << ",\"failed\":" << failed
            << ",\"seconds\":" << seconds << ",\"per_second\":" << (count - failed) / seconds
            << ",\"tags\":{";
  bool first = true;
  for (const auto& [tag, n] : totals) {
    std::cout << (first ? "" : ",") << "\"" << tag << "\":" << n;
    first = false;
  }
  std::cout << "}}\n";
  return failed ? 1 : 0;
}

int send(Client& client, const Args& args) {
  v1::SendNotificationRequest request;
  request.set_hub(client.hub());
  if (args.has("--tag"))
    request.set_tag(args.get("--tag"));
  else if (args.has("--expression"))
    request.set_tag_expression(args.get("--expression"));
  else if (args.has("--installation"))
    request.set_installation_id(args.get("--installation"));
  else if (args.has("--broadcast"))
    request.set_broadcast(true);
  for (const auto& h : args.all("--handle")) {
    auto [platform, handle] = splitPair(h, ':', "--handle");
    auto* target = request.mutable_direct()->add_targets();
    target->set_platform(platform == "apns"  ? v1::PLATFORM_APNS
                         : platform == "fcm" ? v1::PLATFORM_FCM
                         : platform == "wns" ? v1::PLATFORM_WNS
                                             : v1::PLATFORM_UNSPECIFIED);
    target->set_push_handle(handle);
  }
  if (args.has("--in")) {
    auto when =
        std::chrono::system_clock::now() + std::chrono::seconds(std::stoi(args.get("--in")));
    request.mutable_scheduled_time()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count());
  }
  // One native payload per platform given; --header NAME=VALUE goes to the payload whose
  // platform the name belongs to (apns-* to APNs, X-WNS-* to WNS).
  for (const auto& [flag, platform] :
       {std::pair{"--apns", v1::PLATFORM_APNS}, std::pair{"--fcm", v1::PLATFORM_FCM},
        std::pair{"--wns", v1::PLATFORM_WNS}}) {
    if (!args.has(flag)) continue;
    auto* native = request.add_native();
    native->set_platform(platform);
    native->set_body(args.get(flag));
    for (const auto& h : args.all("--header")) {
      auto [name, value] = splitPair(h, '=', "--header");
      std::string lowered = name;
      for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      bool apns = lowered.rfind("apns-", 0) == 0, wns = lowered.rfind("x-wns-", 0) == 0;
      if ((apns && platform == v1::PLATFORM_APNS) || (wns && platform == v1::PLATFORM_WNS)) {
        (*native->mutable_headers())[name] = value;
      }
    }
  }
  for (const auto& p : args.all("--prop")) {
    auto [name, value] = splitPair(p, '=', "--prop");
    (*request.mutable_template_properties())[name] = value;
  }
  if (args.has("--expiry-seconds")) {
    auto when = std::chrono::system_clock::now() +
                std::chrono::seconds(std::stoi(args.get("--expiry-seconds")));
    request.mutable_expiry()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count());
  }
  grpc::ClientContext context;
  client.prepare(context);
  v1::SendNotificationResponse response;
  check(client.stub().SendNotification(&context, request, &response));
  if (!args.has("--wait")) {
    std::cout << toJson(response) << "\n";
    return 0;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  v1::NotificationStatus status;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = getNotification(client, response.notification_id());
  } while ((status.state() == v1::NotificationStatus::STATE_SCHEDULED ||
            status.state() == v1::NotificationStatus::STATE_ENQUEUED ||
            status.state() == v1::NotificationStatus::STATE_PROCESSING) &&
           std::chrono::steady_clock::now() < deadline);
  std::cout << toJson(status) << "\n";
  return status.state() == v1::NotificationStatus::STATE_COMPLETED ||
                 status.state() == v1::NotificationStatus::STATE_NO_TARGET_FOUND
             ? 0
             : 1;
}

// hub ... and key ...: the HubAdmin service, signed with the admin key.
int manage(const Args& args) {
  AdminClient admin(args);
  auto* stub = &admin.stub();
  grpc::ClientContext context;
  admin.prepare(context);
  const auto& p = args.positional;
  auto hubFromFile = [&] {
    v1::Hub hub;
    std::string file = args.get("--file");
    if (file.empty()) die("--file HUB.json is required");
    std::string text = readFile(file);
    if (text.empty()) die("cannot read " + file);
    if (auto ok = google::protobuf::util::JsonStringToMessage(text, &hub); !ok.ok()) {
      die(file + ": not a pushhub.v1.Hub: " + std::string(ok.message()));
    }
    if (args.has("--apns-key-file")) {
      hub.mutable_apns()->set_key_pem(readFile(args.get("--apns-key-file")));
    }
    if (args.has("--fcm-service-account-file")) {
      hub.mutable_fcm()->set_service_account_json(readFile(args.get("--fcm-service-account-file")));
    }
    return hub;
  };
  auto ref = [&](size_t i) {
    if (p.size() <= i) die("name the hub");
    v1::HubRef r;
    r.set_name(p[i]);
    return r;
  };
  auto need = [&](const char* flag) {
    std::string v = args.get(flag);
    if (v.empty()) die(std::string(flag) + " is required");
    return v;
  };
  if (p[0] == "hub" && p.size() >= 2) {
    v1::Hub hub;
    if (p[1] == "create" || p[1] == "update") {
      v1::Hub wanted = hubFromFile();
      check(p[1] == "create" ? stub->CreateHub(&context, wanted, &hub)
                             : stub->UpdateHub(&context, wanted, &hub));
    } else if (p[1] == "get") {
      check(stub->GetHub(&context, ref(2), &hub));
    } else if (p[1] == "delete") {
      v1::DeleteHubResponse response;
      check(stub->DeleteHub(&context, ref(2), &response));
      std::cout << "{}\n";
      return 0;
    } else if (p[1] == "list") {
      v1::ListHubsResponse response;
      check(stub->ListHubs(&context, {}, &response));
      std::cout << toJson(response) << "\n";
      return 0;
    } else {
      die("unknown hub command " + p[1]);
    }
    std::cout << toJson(hub) << "\n";
    return 0;
  }
  if (p[0] == "key" && p.size() >= 2) {
    v1::KeySecret secret;
    if (p[1] == "add") {
      v1::AddKeyRequest request;
      request.set_hub(need("--hub"));
      request.mutable_key()->set_name(need("--name"));
      request.mutable_key()->set_secret(args.get("--secret"));
      std::stringstream rights(need("--rights"));
      for (std::string right; std::getline(rights, right, ',');) {
        request.mutable_key()->add_rights(right);
      }
      check(stub->AddKey(&context, request, &secret));
    } else if (p[1] == "rotate") {
      v1::RotateKeyRequest request;
      request.set_hub(need("--hub"));
      request.set_key_name(need("--name"));
      request.set_new_secret(args.get("--secret"));
      request.set_grace_seconds(
          static_cast<uint32_t>(std::stoul(args.get("--grace-seconds", "0"))));
      check(stub->RotateKey(&context, request, &secret));
    } else if (p[1] == "remove") {
      v1::RemoveKeyRequest request;
      request.set_hub(need("--hub"));
      request.set_key_name(need("--name"));
      v1::Hub hub;
      check(stub->RemoveKey(&context, request, &hub));
      std::cout << toJson(hub) << "\n";
      return 0;
    } else {
      die("unknown key command " + p[1]);
    }
    std::cout << toJson(secret) << "\n";
    return 0;
  }
  std::cerr << kUsage;
  return 2;
}

int run(int argc, char** argv) {
  Args args = parse(argc, argv);
  if (args.has("--help") || args.positional.empty()) {
    std::cout << kUsage;
    return args.positional.empty() && !args.has("--help") ? 2 : 0;
  }
  const std::string& command = args.positional[0];
  if (command == "hub" || command == "key") return manage(args);
  if (command == "queues") return queuesCommand(args);
  if (command == "stats") return statsCommand(args);
  if (command == "hubs") return hubsCommand(args);
  if (command == "token") {
    auto cs = pushhub::sas::parseConnectionString(
        args.get("--connection-string", env("PUSHHUB_CONNECTION_STRING_FULL")));
    if (!cs) die(cs.error().message);
    long ttl = args.number("--ttl-seconds", 3600, 1, 366L * 24 * 3600);
    std::cout << pushhub::sas::makeToken(
                     cs->httpsEndpoint(), cs->key_name, cs->key,
                     std::chrono::system_clock::now() + std::chrono::seconds(ttl))
              << "\n";
    return 0;
  }
  Client client(args);
  const auto& p = args.positional;
  if (p[0] == "install" && p.size() >= 2) {
    if (p[1] == "put") return installPut(client, args);
    if (p[1] == "bulk") return installBulk(client, args);
    if (p[1] == "get" || p[1] == "delete") {
      grpc::ClientContext context;
      client.prepare(context);
      if (p[1] == "get") {
        v1::GetInstallationRequest request;
        request.set_hub(client.hub());
        request.set_installation_id(args.get("--id"));
        v1::Installation installation;
        check(client.stub().GetInstallation(&context, request, &installation));
        std::cout << toJson(installation) << "\n";
      } else {
        v1::DeleteInstallationRequest request;
        request.set_hub(client.hub());
        request.set_installation_id(args.get("--id"));
        v1::DeleteInstallationResponse response;
        check(client.stub().DeleteInstallation(&context, request, &response));
        std::cout << toJson(response) << "\n";
      }
      return 0;
    }
  }
  if (p[0] == "send") return send(client, args);
  if (p[0] == "notification" && p.size() == 3 && p[1] == "get") {
    std::cout << toJson(getNotification(client, p[2])) << "\n";
    return 0;
  }
  if (p[0] == "notification" && p.size() == 3 && p[1] == "cancel") {
    return cancelCommand(client, p[2]);
  }
  if (p[0] == "notification" && p.size() == 2 && p[1] == "list") {
    return notificationListCommand(client, args);
  }
  if (p[0] == "notification" && p.size() == 2) return notificationCommand(client, args, p[1]);
  if (p[0] == "schedule") return scheduleCommand(client, args);
  if (p[0] == "export") return exportCommand(client, args);
  if (p[0] == "import") return importCommand(client, args);
  std::cerr << kUsage;
  return 2;
}

}  // namespace
}  // namespace pushhubctl

int main(int argc, char** argv) { return pushhubctl::run(argc, argv); }
