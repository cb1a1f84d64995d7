#include "tools/pushhubctl/cli.h"

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace pushhubctl {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

[[noreturn]] void die(const std::string& message) {
  std::cerr << "pushhubctl: " << message << "\n";
  std::exit(2);
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (auto [it, end] = flags.equal_range(name); it != end; ++it) out.push_back(it->second);
  return out;
}

long Args::number(const std::string& name, long fallback, long min, long max) const {
  if (!has(name)) return fallback;
  std::string text = get(name);
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < min || value > max) {
    die(name + " must be a whole number from " + std::to_string(min) + " to " +
        std::to_string(max) + "; got '" + text + "'");
  }
  return value;
}

Args parse(int argc, char** argv) {
  static const std::set<std::string> kSwitches{"--broadcast", "--wait", "--help", "--json"};
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      if (kSwitches.count(a)) {
        args.flags.emplace(a, "1");
      } else if (i + 1 < argc) {
        args.flags.emplace(a, argv[++i]);
      } else {
        die(a + " needs a value");
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::shared_ptr<grpc::Channel> makeChannel(const Args& args) {
  std::string addr = args.get("--addr", env("PUSHHUB_GRPC_ADDR"));
  std::string ca = args.get("--ca", env("PUSHHUB_CA_CERT"));
  if (addr.empty()) die("no address: pass --addr or set PUSHHUB_GRPC_ADDR");
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = readFile(ca);
    if (ssl.pem_root_certs.empty()) die("cannot read CA file " + ca);
    creds = grpc::SslCredentials(ssl);
  }
  return grpc::CreateChannel(addr, creds);
}

Client::Client(const Args& args) {
  hub_ = args.get("--hub", env("PUSHHUB_HUB"));
  std::string cs_text = args.get("--connection-string", env("PUSHHUB_CONNECTION_STRING_FULL"));
  if (hub_.empty()) die("no hub: pass --hub or set PUSHHUB_HUB");
  auto cs = pushhub::sas::parseConnectionString(cs_text);
  if (!cs)
    die(cs.error().message + " (pass --connection-string or set PUSHHUB_CONNECTION_STRING_FULL)");
  cs_ = *cs;
  stub_ = v1::PushHub::NewStub(makeChannel(args));
}

void Client::prepare(grpc::ClientContext& context) const {
  context.AddMetadata(
      "authorization",
      pushhub::sas::makeToken(cs_.httpsEndpoint(), cs_.key_name, cs_.key,
                              std::chrono::system_clock::now() + std::chrono::hours(1)));
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

AdminClient::AdminClient(const Args& args)
    : addr_(args.get("--addr", env("PUSHHUB_GRPC_ADDR"))),
      key_(args.get("--admin-key", env("PUSHHUB_ADMIN_KEY"))) {
  if (key_.empty()) die("no admin key: pass --admin-key or set PUSHHUB_ADMIN_KEY");
  stub_ = v1::HubAdmin::NewStub(makeChannel(args));
}

void AdminClient::prepare(grpc::ClientContext& context) const {
  context.AddMetadata(
      "authorization",
      pushhub::sas::makeToken("https://" + addr_ + "/", "pushhub-admin", key_,
                              std::chrono::system_clock::now() + std::chrono::hours(1)));
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

void check(const grpc::Status& status) {
  if (!status.ok()) {
    std::cerr << "pushhubctl: " << static_cast<int>(status.error_code()) << " "
              << status.error_message() << "\n";
    std::exit(1);
  }
}

std::string toJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

v1::NotificationStatus getNotification(Client& client, const std::string& id) {
  v1::GetNotificationRequest request;
  request.set_hub(client.hub());
  request.set_notification_id(id);
  grpc::ClientContext context;
  client.prepare(context);
  v1::NotificationStatus status;
  check(client.stub().GetNotification(&context, request, &status));
  return status;
}

}  // namespace pushhubctl
