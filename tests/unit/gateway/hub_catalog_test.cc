#include "gateway/hub_catalog.h"

#include <gtest/gtest.h>

namespace pushhub::gateway {
namespace {

v1::Hub sample() {
  v1::Hub hub;
  hub.set_name("Shop");
  hub.set_buckets(64);
  auto* key = hub.add_keys();
  key->set_name("full");
  key->set_secret("0123456789abcdef-secret");
  key->add_rights("Listen");
  key->add_rights("send");
  auto* wns = hub.mutable_wns();
  wns->set_package_sid("ms-app://s-1-15-2-1");
  wns->set_secret("wns-secret-value");
  return hub;
}

TEST(HubProto, StoredFormRoundTripsAndTheApiFormHasNoSecrets) {
  auto settings = hubFromProto(sample(), nullptr);
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->buckets, 64u);
  EXPECT_TRUE(settings->findKey("full")->allows(kSend));
  EXPECT_FALSE(settings->findKey("full")->allows(kManage));
  EXPECT_EQ(settings->wns->allowed_hosts, std::vector<std::string>{"*.notify.windows.com"});

  v1::Hub stored = hubToProto(*settings, true);
  auto again = hubFromProto(stored, nullptr);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(hubToProto(*again, true).SerializeAsString(), stored.SerializeAsString());

  v1::Hub shown = hubToProto(*settings, false);
  EXPECT_EQ(shown.keys(0).secret(), "");
  EXPECT_EQ(shown.keys(0).fingerprint(), fingerprint("0123456789abcdef-secret"));
  EXPECT_EQ(shown.keys(0).fingerprint().size(), 16u);
  EXPECT_EQ(shown.wns().secret(), "");
  EXPECT_NE(shown.DebugString().find("wns"), std::string::npos);
  EXPECT_EQ(shown.DebugString().find("wns-secret-value"), std::string::npos);
  EXPECT_EQ(shown.DebugString().find("0123456789abcdef-secret"), std::string::npos);
}

TEST(HubProto, EmptySecretsKeepTheStoredOnesAndBucketsAreFixed) {
  auto current = hubFromProto(sample(), nullptr);
  ASSERT_TRUE(current);
  v1::Hub edited = hubToProto(*current, false);  // as a client reads it
  edited.mutable_keys(0)->add_rights("Manage");
  auto next = hubFromProto(edited, &*current);
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->findKey("full")->secret, "0123456789abcdef-secret");
  EXPECT_EQ(next->wns->secret, "wns-secret-value");
  EXPECT_TRUE(next->findKey("full")->allows(kManage));

  edited.set_buckets(128);
  auto resized = hubFromProto(edited, &*current);
  ASSERT_FALSE(resized);
  EXPECT_NE(resized.error().message.find("buckets"), std::string::npos);
  // Without a stored hub an empty secret is an error.
  v1::Hub fresh = sample();
  fresh.mutable_keys(0)->clear_secret();
  auto refused = hubFromProto(fresh, nullptr);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("keys[0].secret"), std::string::npos);
}

TEST(HubCatalog, FindsByNameWithoutRegardToCase) {
  HubCatalog catalog;
  EXPECT_EQ(catalog.find("shop"), nullptr);
  auto settings = hubFromProto(sample(), nullptr);
  ASSERT_TRUE(settings);
  auto runtime = buildRuntime(*settings, "doc");
  ASSERT_TRUE(runtime) << runtime.error().message;
  auto map = std::make_shared<HubMap>();
  map->emplace("shop", *runtime);
  catalog.replace(map);
  ASSERT_NE(catalog.find("SHOP"), nullptr);
  EXPECT_EQ(catalog.find("Shop")->settings.name, "Shop");
  EXPECT_TRUE(catalog.find("Shop")->platforms[2].has_value());   // WNS
  EXPECT_FALSE(catalog.find("Shop")->platforms[0].has_value());  // no APNs credentials
}

}  // namespace
}  // namespace pushhub::gateway
