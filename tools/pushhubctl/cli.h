#pragma once
// What every pushhubctl command shares: flags, the connection to pushhubd, signing, errors and
// JSON output.

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/sas.h"
#include "pushhub/v1/pushhub.grpc.pb.h"

namespace pushhubctl {

namespace v1 = pushhub::v1;

std::string env(const char* name);
std::string readFile(const std::string& path);
// Prints "pushhubctl: <message>" and exits 2 (a usage error: nothing was sent).
[[noreturn]] void die(const std::string& message);

struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> flags;
  std::string get(const std::string& name, const std::string& fallback = "") const;
  bool has(const std::string& name) const { return flags.count(name) > 0; }
  std::vector<std::string> all(const std::string& name) const;
  // A whole number flag in [min, max], or `fallback` when absent; dies naming the flag otherwise.
  long number(const std::string& name, long fallback, long min, long max) const;
};
Args parse(int argc, char** argv);

std::shared_ptr<grpc::Channel> makeChannel(const Args& args);

// The PushHub service, signed with a hub's key (--hub, --connection-string).
class Client {
 public:
  explicit Client(const Args& args);
  const std::string& hub() const { return hub_; }
  v1::PushHub::Stub& stub() { return *stub_; }
  // Signs the call and gives it 30 seconds.
  void prepare(grpc::ClientContext& context) const;

 private:
  std::string hub_;
  pushhub::sas::ConnectionString cs_;
  std::unique_ptr<v1::PushHub::Stub> stub_;
};

// The HubAdmin service, signed with the instance's admin key (--admin-key).
class AdminClient {
 public:
  explicit AdminClient(const Args& args);
  v1::HubAdmin::Stub& stub() { return *stub_; }
  void prepare(grpc::ClientContext& context) const;

 private:
  std::string addr_;
  std::string key_;
  std::unique_ptr<v1::HubAdmin::Stub> stub_;
};

// Exits 1 with the status when the call failed.
void check(const grpc::Status& status);
std::string toJson(const google::protobuf::Message& message);
v1::NotificationStatus getNotification(Client& client, const std::string& id);

// Operator commands (operators.cc): output for people, or JSON with --json.
int queuesCommand(const Args& args);
int statsCommand(const Args& args);
int hubsCommand(const Args& args);
int notificationCommand(Client& client, const Args& args, const std::string& id);
int notificationListCommand(Client& client, const Args& args);
int scheduleCommand(Client& client, const Args& args);
int cancelCommand(Client& client, const std::string& id);

// A hub's installations and registrations as JSON lines (transfer.cc).
int exportCommand(Client& client, const Args& args);
int importCommand(Client& client, const Args& args);

}  // namespace pushhubctl
