// Hubs managed at run time, end to end: two pushhubd instances on one Redis. A hub created
// through one instance serves registrations and sends through the other within seconds; reads
// never show secrets; a rotated key's old secret works during its grace period and not after;
// bad input and a hub's key on the admin API are refused and store nothing; a deleted hub stops
// being served everywhere.
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <regex>
#include <thread>

#include "tests/integration/stack.h"

namespace pushhub::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kRuntimeHub[] = "runtime";
constexpr char kRuntimeKeyName[] = "backend";
constexpr char kRuntimeKey[] = "runtime-hub-key-0123456789abcdef";

class HubAdminTest : public ::testing::Test {
 protected:
  static StackOptions options() {
    StackOptions o;
    o.instances = 2;
    return o;
  }

  v1::Hub runtimeHub() {
    v1::Hub hub;
    hub.set_name(kRuntimeHub);
    hub.set_buckets(16);
    auto* key = hub.add_keys();
    key->set_name(kRuntimeKeyName);
    key->set_secret(kRuntimeKey);
    key->add_rights("Manage");
    auto* apns = hub.mutable_apns();
    apns->set_endpoint("https://127.0.0.1:" + std::to_string(stack_.apnsPort()));
    apns->set_ca_file(stack_.pki().ca().string());
    apns->set_key_pem(readText(stack_.pki().apnsKey()));
    apns->set_key_id("ITESTKEY01");
    apns->set_team_id("ITESTTEAM1");
    apns->set_topic(kTopic);
    return hub;
  }

  // Registers one APNs installation in `hub` through `instance` signed with the given key.
  grpc::Status put(int instance, const std::string& hub, const std::string& key_name,
                   const std::string& key, const std::string& id = "dev-1") {
    v1::CreateOrUpdateInstallationRequest request;
    request.set_hub(hub);
    auto* inst = request.mutable_installation();
    inst->set_installation_id(id);
    inst->set_platform(v1::PLATFORM_APNS);
    inst->set_push_channel(std::string(64, 'a'));
    v1::CreateOrUpdateInstallationResponse response;
    return stack_.stub(instance).CreateOrUpdateInstallation(stack_.context(key_name, key).get(),
                                                            request, &response);
  }

  // Retries `call` until it returns `code` or `limit` passes; how long it took, or -1.
  double until(grpc::StatusCode code, const std::function<grpc::Status()>& call,
               std::chrono::seconds limit = std::chrono::seconds(15)) {
    auto start = Clock::now();
    while (Clock::now() - start < limit) {
      if (call().error_code() == code) {
        return std::chrono::duration<double>(Clock::now() - start).count();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

  Stack stack_{options()};
};

TEST_F(HubAdminTest, AHubCreatedOnOneInstanceServesOnTheOtherWithinSeconds) {
  // Unknown everywhere first.
  EXPECT_EQ(put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::Hub created;
  auto rpc = stack_.admin(0).CreateHub(stack_.adminContext().get(), runtimeHub(), &created);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(created.keys(0).secret(), "");  // never echoed
  double seconds = until(grpc::StatusCode::OK,
                         [&] { return put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey); });
  ASSERT_GE(seconds, 0) << stack_.daemonLog(1);
  std::printf("hub created on instance 0 served by instance 1 after %.2f s\n", seconds);
  EXPECT_LT(seconds, 5.0);

  // A send through instance 1 reaches the device with the new hub's credentials.
  httpRequest("POST", stack_.controlPort(), "/_mock/reset");
  v1::SendNotificationRequest send;
  send.set_hub(kRuntimeHub);
  send.set_installation_id("dev-1");
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"runtime"}})");
  v1::SendNotificationResponse accepted;
  rpc = stack_.stub(1).SendNotification(stack_.context(kRuntimeKeyName, kRuntimeKey).get(), send,
                                        &accepted);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  std::string received;
  for (int i = 0; i < 100 && received.find(std::string(64, 'a')) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    received = httpRequest("GET", stack_.controlPort(), "/_mock/received?provider=apns").body;
  }
  EXPECT_NE(received.find("runtime"), std::string::npos) << received;

  // Reads show fingerprints, never secrets; the list holds the config's hubs and the new one.
  v1::HubRef ref;
  ref.set_name("RUNTIME");  // names compare without regard to case
  v1::Hub read;
  ASSERT_TRUE(stack_.admin(1).GetHub(stack_.adminContext().get(), ref, &read).ok());
  EXPECT_EQ(read.keys(0).secret(), "");
  EXPECT_TRUE(std::regex_match(read.keys(0).fingerprint(), std::regex("[0-9a-f]{16}")));
  EXPECT_EQ(read.apns().key_pem(), "");
  EXPECT_EQ(read.apns().key_fingerprint().size(), 16u);
  EXPECT_EQ(read.buckets(), 16u);
  v1::ListHubsResponse list;
  ASSERT_TRUE(stack_.admin(0).ListHubs(stack_.adminContext().get(), {}, &list).ok());
  std::set<std::string> names;
  for (const auto& h : list.hubs()) {
    names.insert(h.name());
    for (const auto& k : h.keys()) EXPECT_EQ(k.secret(), "") << h.name();
  }
  EXPECT_EQ(names, (std::set<std::string>{kHub, kOtherHub, kRuntimeHub}));
  EXPECT_EQ(stack_.daemonLog(0).find(kRuntimeKey), std::string::npos);  // no secret logged

  // An update that leaves the secrets empty keeps them.
  read.mutable_apns()->set_connections(2);
  v1::Hub updated;
  rpc = stack_.admin(1).UpdateHub(stack_.adminContext().get(), read, &updated);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(updated.apns().connections(), 2u);
  EXPECT_EQ(updated.apns().key_fingerprint(), read.apns().key_fingerprint());
  EXPECT_TRUE(put(0, kRuntimeHub, kRuntimeKeyName, kRuntimeKey).ok());

  // Deleted: every instance stops serving it within seconds.
  v1::DeleteHubResponse deleted;
  ASSERT_TRUE(stack_.admin(0).DeleteHub(stack_.adminContext().get(), ref, &deleted).ok());
  EXPECT_GE(until(grpc::StatusCode::NOT_FOUND,
                  [&] { return put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey); }),
            0);
}

TEST_F(HubAdminTest, ARotatedKeysOldSecretWorksDuringTheGracePeriodOnly) {
  v1::Hub created;
  ASSERT_TRUE(stack_.admin(0).CreateHub(stack_.adminContext().get(), runtimeHub(), &created).ok());
  ASSERT_GE(until(grpc::StatusCode::OK,
                  [&] { return put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey); }),
            0);
  v1::RotateKeyRequest rotate;
  rotate.set_hub(kRuntimeHub);
  rotate.set_key_name(kRuntimeKeyName);
  rotate.set_grace_seconds(4);
  v1::KeySecret fresh;
  auto rpc = stack_.admin(0).RotateKey(stack_.adminContext().get(), rotate, &fresh);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  ASSERT_GE(fresh.secret().size(), 40u);  // made by pushhubd: 32 random bytes, base64
  auto rotated_at = Clock::now();
  // The new secret works on both instances, and the old one still does during the grace.
  ASSERT_GE(until(grpc::StatusCode::OK,
                  [&] { return put(1, kRuntimeHub, kRuntimeKeyName, fresh.secret()); }),
            0);
  // Instance 0 learns of the rotation on its own sync round.
  EXPECT_GE(until(grpc::StatusCode::OK,
                  [&] { return put(0, kRuntimeHub, kRuntimeKeyName, fresh.secret()); }),
            0);
  if (Clock::now() - rotated_at < std::chrono::seconds(3)) {
    EXPECT_TRUE(put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey).ok());
  }
  // After the grace period the old secret is refused everywhere.
  EXPECT_GE(until(grpc::StatusCode::UNAUTHENTICATED,
                  [&] { return put(1, kRuntimeHub, kRuntimeKeyName, kRuntimeKey); }),
            0);
  EXPECT_GE(Clock::now() - rotated_at, std::chrono::seconds(3));
  EXPECT_EQ(put(0, kRuntimeHub, kRuntimeKeyName, kRuntimeKey).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(put(0, kRuntimeHub, kRuntimeKeyName, fresh.secret()).ok());

  // A key added, then removed.
  v1::AddKeyRequest add;
  add.set_hub(kRuntimeHub);
  add.mutable_key()->set_name("listener");
  add.mutable_key()->add_rights("Listen");
  v1::KeySecret listener;
  ASSERT_TRUE(stack_.admin(1).AddKey(stack_.adminContext().get(), add, &listener).ok());
  ASSERT_GE(until(grpc::StatusCode::OK,
                  [&] { return put(0, kRuntimeHub, "listener", listener.secret()); }),
            0);
  v1::RemoveKeyRequest remove;
  remove.set_hub(kRuntimeHub);
  remove.set_key_name("listener");
  v1::Hub after;
  ASSERT_TRUE(stack_.admin(1).RemoveKey(stack_.adminContext().get(), remove, &after).ok());
  EXPECT_EQ(after.keys_size(), 1);
  EXPECT_GE(until(grpc::StatusCode::UNAUTHENTICATED,
                  [&] { return put(0, kRuntimeHub, "listener", listener.secret()); }),
            0);
}

TEST_F(HubAdminTest, BadInputAndTheWrongKeyAreRefusedAndStoreNothing) {
  v1::Hub out;
  // A hub's own Manage key cannot manage hubs.
  auto rpc = stack_.admin(0).CreateHub(stack_.context().get(), runtimeHub(), &out);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(rpc.error_message().find("admin key"), std::string::npos) << rpc.error_message();
  grpc::ClientContext unsigned_call;
  EXPECT_EQ(stack_.admin(0).CreateHub(&unsigned_call, runtimeHub(), &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto wrong = stack_.context("pushhub-admin", "not-the-admin-key-0123456789");
  EXPECT_EQ(stack_.admin(0).CreateHub(wrong.get(), runtimeHub(), &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  struct Case {
    std::string field;
    std::function<void(v1::Hub&)> spoil;
  };
  for (const Case& c : std::vector<Case>{
           {"name", [](v1::Hub& h) { h.set_name("bad name!"); }},
           {"buckets", [](v1::Hub& h) { h.set_buckets(100); }},
           {"keys[0].secret", [](v1::Hub& h) { h.mutable_keys(0)->set_secret("short"); }},
           {"keys[0].rights", [](v1::Hub& h) { h.mutable_keys(0)->add_rights("Admin"); }},
           {"keys", [](v1::Hub& h) { h.clear_keys(); }},
           {"apns.endpoint", [](v1::Hub& h) { h.mutable_apns()->set_endpoint("http://x"); }},
           {"apns", [](v1::Hub& h) { h.mutable_apns()->set_key_pem("not a key"); }},
           {"fcm.service_account_json",
            [](v1::Hub& h) { h.mutable_fcm()->set_service_account_json("{}"); }},
           {"wns.package_sid", [](v1::Hub& h) { h.mutable_wns()->set_secret("s"); }},
       }) {
    v1::Hub hub = runtimeHub();
    c.spoil(hub);
    rpc = stack_.admin(0).CreateHub(stack_.adminContext().get(), hub, &out);
    EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_NE(rpc.error_message().find(c.field), std::string::npos)
        << c.field << ": " << rpc.error_message();
  }
  EXPECT_EQ(stack_.daemonLog(0).find("not a key"), std::string::npos);
  v1::HubRef ref;
  ref.set_name(kRuntimeHub);
  EXPECT_EQ(stack_.admin(0).GetHub(stack_.adminContext().get(), ref, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Taken names, fixed bucket counts, unknown hubs and keys.
  v1::Hub taken = runtimeHub();
  taken.set_name("ITEST");
  EXPECT_EQ(stack_.admin(0).CreateHub(stack_.adminContext().get(), taken, &out).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(stack_.admin(0).CreateHub(stack_.adminContext().get(), runtimeHub(), &out).ok());
  v1::Hub resized = runtimeHub();
  resized.set_buckets(32);
  rpc = stack_.admin(1).UpdateHub(stack_.adminContext().get(), resized, &out);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(rpc.error_message().find("buckets"), std::string::npos);
  v1::RotateKeyRequest rotate;
  rotate.set_hub(kRuntimeHub);
  rotate.set_key_name("nobody");
  v1::KeySecret secret;
  EXPECT_EQ(stack_.admin(0).RotateKey(stack_.adminContext().get(), rotate, &secret).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::RemoveKeyRequest remove;
  remove.set_hub(kRuntimeHub);
  remove.set_key_name(kRuntimeKeyName);  // the last key
  EXPECT_EQ(stack_.admin(0).RemoveKey(stack_.adminContext().get(), remove, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ref.set_name("nope");
  v1::DeleteHubResponse deleted;
  EXPECT_EQ(stack_.admin(0).DeleteHub(stack_.adminContext().get(), ref, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace pushhub::testing
