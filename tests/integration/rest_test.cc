// The Azure Notification Hubs REST API over HTTPS, against a live pushhubd: installations as an
// Azure SDK sends them, one store with the gRPC API, the same rules through both, and the limits.
#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/xml.h"
#include "registry/installation_patch.h"
#include "tests/integration/stack.h"
#include "tests/support/https_client.h"

namespace pushhub::testing {
namespace {

namespace json = boost::json;

// RestServer's limits (gateway/rest_server.h).
constexpr size_t kMaxBodyBytes = 1024 * 1024;
constexpr size_t kMaxHeadBytes = 16 * 1024;

constexpr char kToken[] = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";

// The headers the JS SDK sends with every call (anh-wire.md section 5); the request id is new
// for each call (the SDK keeps it only across its retries of one call).
HttpsClient::Headers sdkHeaders(const std::string& authorization) {
  static int calls = 0;
  return {{"Authorization", authorization},
          {"x-ms-version", "2020-06"},
          {"Content-Type", "application/json"},
          {"x-ms-client-request-id", "92553389-5735-4b1c-8d95-" + std::to_string(++calls)}};
}

std::string installationPath(const std::string& id) {
  return std::string("/") + kHub + "/installations/" + id + "?api-version=2020-06";
}

// The Detail of Azure's error body, up to its TrackingId.
std::string detail(const HttpsResult& r) {
  auto at = r.body.find("<Detail>");
  auto end = r.body.find("TrackingId:");
  if (r.body.rfind("<Error><Code>" + std::to_string(r.status) + "</Code>", 0) != 0 ||
      at == std::string::npos || end == std::string::npos) {
    return "not Azure's error body: " + r.body;
  }
  return r.body.substr(at + 8, end - at - 8);
}

grpc::Status grpcGet(Stack& stack, const std::string& id, v1::Installation& out) {
  v1::GetInstallationRequest get;
  get.set_hub(kHub);
  get.set_installation_id(id);
  return stack.stub().GetInstallation(stack.context().get(), get, &out);
}

TEST(RestIntegrationTest, InstallationsAsTheSdkSendsThemShareTheStoreWithGrpc) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  // The body the SDK sent in the spec's capture (6.1), with a Listen key as a device holds.
  std::string body =
      std::string(R"({"installationId":"inst-1","pushChannel":")") + kToken +
      R"(","tags":["likes_hockey","location_seattle"],"userId":"user1","templates":{"t1":)"
      R"({"body":"{\"aps\":{\"alert\":\"$(message)\"}}","headers":{"apns-priority":"10"},)"
      R"("tags":["t1"]}},"pushVariables":{"v1":"x"},"platform":"apns"})";
  auto put = client.request("PUT", installationPath("inst-1"),
                            sdkHeaders(stack.restToken(kListenKeyName, kListenKey)), body);
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.body, "");
  EXPECT_EQ(put.header("location"), "https://127.0.0.1:" + std::to_string(stack.restPort()) +
                                        "/itest/installations/inst-1");
  EXPECT_FALSE(put.header("trackingid").empty());

  // gRPC reads what REST wrote.
  v1::Installation seen;
  ASSERT_TRUE(grpcGet(stack, "inst-1", seen).ok());
  EXPECT_EQ(seen.push_channel(), kToken);
  EXPECT_EQ(seen.user_id(), "user1");
  ASSERT_EQ(seen.tags_size(), 2);
  EXPECT_EQ(seen.templates().at("t1").headers().at("apns-priority"), "10");

  // REST reads it back as Azure's JSON.
  auto get = client.request("GET", installationPath("inst-1"),
                            sdkHeaders(stack.restToken(kListenKeyName, kListenKey)));
  ASSERT_EQ(get.status, 200) << get.body;
  auto doc = json::parse(get.body).as_object();
  EXPECT_EQ(doc.at("installationId").as_string(), "inst-1");
  EXPECT_EQ(doc.at("platform").as_string(), "apns");
  EXPECT_EQ(doc.at("pushChannel").as_string(), kToken);
  EXPECT_EQ(doc.at("pushChannelExpired").as_bool(), false);
  EXPECT_EQ(doc.at("expirationTime").as_string(), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(doc.at("tags").as_array().size(), 2u);
  EXPECT_EQ(doc.at("templates").at("t1").at("body").as_string(),
            R"x({"aps":{"alert":"$(message)"}})x");
  EXPECT_NE(doc.at("lastUpdate").as_string().find('T'), std::string::npos);

  // PATCH as the SDK sends it (6.4): 200, and both APIs see the change.
  auto patch = client.request("PATCH", installationPath("inst-1"), sdkHeaders(stack.restToken()),
                              R"([{"op":"add","path":"/tags","value":"likes_football"},)"
                              R"({"op":"remove","path":"/tags/likes_hockey"}])");
  ASSERT_EQ(patch.status, 200) << patch.body;
  ASSERT_TRUE(grpcGet(stack, "inst-1", seen).ok());
  std::set<std::string> tags(seen.tags().begin(), seen.tags().end());
  EXPECT_EQ(tags, (std::set<std::string>{"likes_football", "location_seattle"}));

  // What gRPC writes, REST reads.
  v1::CreateOrUpdateInstallationRequest grpc_put;
  grpc_put.set_hub(kHub);
  grpc_put.mutable_installation()->set_installation_id("inst-2");
  grpc_put.mutable_installation()->set_platform(v1::PLATFORM_FCM);
  grpc_put.mutable_installation()->set_push_channel(std::string(152, 'f'));
  v1::CreateOrUpdateInstallationResponse ignored;
  ASSERT_TRUE(
      stack.stub().CreateOrUpdateInstallation(stack.context().get(), grpc_put, &ignored).ok());
  auto fcm = client.request("GET", installationPath("inst-2"), sdkHeaders(stack.restToken()));
  ASSERT_EQ(fcm.status, 200) << fcm.body;
  EXPECT_EQ(json::parse(fcm.body).at("platform").as_string(), "fcmv1");

  // DELETE: 204, then 204 again (as Azure, for an id that is gone), and GET is 404.
  for (int i = 0; i < 2; ++i) {
    auto gone = client.request("DELETE", installationPath("inst-1"), sdkHeaders(stack.restToken()));
    EXPECT_EQ(gone.status, 204) << gone.body;
  }
  auto missing = client.request("GET", installationPath("inst-1"), sdkHeaders(stack.restToken()));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(detail(missing), "installation 'inst-1' not found");
  EXPECT_FALSE(grpcGet(stack, "inst-1", seen).ok());
  EXPECT_EQ(client.connections(), 1);  // every call above on one kept-alive connection
}

// The same refusals through both APIs: the rule is HubService's, each front end maps the code.
TEST(RestIntegrationTest, TheSameRulesAnswerAlikeThroughRestAndGrpc) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  struct Case {
    std::string name, json;
    std::function<void(v1::Installation&)> proto;
    int http_status;
    grpc::StatusCode grpc_status;
    std::string message;  // how both errors begin
  };
  auto base = [](v1::Installation& i) {
    i.set_installation_id("case-1");
    i.set_platform(v1::PLATFORM_APNS);
    i.set_push_channel(kToken);
  };
  const std::string head = std::string(R"({"installationId":"case-1","platform":"apns",)") +
                           R"("pushChannel":")" + kToken + R"(")";
  std::vector<Case> cases = {
      {"a tag with a space", head + R"(,"tags":["ok","not ok"]})",
       [&](v1::Installation& i) {
         base(i);
         i.add_tags("ok");
         i.add_tags("not ok");
       },
       400, grpc::StatusCode::INVALID_ARGUMENT, "tags[1]"},
      {"a handle that is not hex",
       R"({"installationId":"case-1","platform":"apns","pushChannel":"zz"})",
       [&](v1::Installation& i) {
         base(i);
         i.set_push_channel("zz");
       },
       400, grpc::StatusCode::INVALID_ARGUMENT, "pushChannel"},
      {"a WNS channel on a host the hub does not allow",
       R"({"installationId":"case-1","platform":"wns","pushChannel":"https://evil.example/?t=1"})",
       [&](v1::Installation& i) {
         base(i);
         i.set_platform(v1::PLATFORM_WNS);
         i.set_push_channel("https://evil.example/?t=1");
       },
       400, grpc::StatusCode::INVALID_ARGUMENT, "pushChannel: "},
  };
  for (const auto& c : cases) {
    auto rest =
        client.request("PUT", installationPath("case-1"), sdkHeaders(stack.restToken()), c.json);
    EXPECT_EQ(rest.status, c.http_status) << c.name << ": " << rest.body;
    v1::CreateOrUpdateInstallationRequest request;
    request.set_hub(kHub);
    c.proto(*request.mutable_installation());
    v1::CreateOrUpdateInstallationResponse ignored;
    auto rpc = stack.stub().CreateOrUpdateInstallation(stack.context().get(), request, &ignored);
    EXPECT_EQ(rpc.error_code(), c.grpc_status) << c.name;
    EXPECT_EQ(detail(rest).rfind(c.message, 0), 0u) << c.name << ": " << detail(rest);
    EXPECT_EQ(rpc.error_message().rfind(c.message, 0), 0u) << c.name << ": " << rpc.error_message();
    // Nothing was stored.
    v1::Installation seen;
    EXPECT_EQ(grpcGet(stack, "case-1", seen).error_code(), grpc::StatusCode::NOT_FOUND) << c.name;
  }

  // Authorization: the same key and rights on both; statuses as Azure.
  auto put = [&](const std::string& authorization) {
    return client.request("PUT", installationPath("case-2"), sdkHeaders(authorization),
                          R"({"installationId":"case-2","platform":"apns","pushChannel":")" +
                              std::string(kToken) + R"("})");
  };
  EXPECT_EQ(put("").status, 401);
  EXPECT_EQ(put("SharedAccessSignature sr=x&sig=y&se=1&skn=z").status, 401);
  auto forged = put(stack.restToken(kFullKeyName, "not-the-key"));
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(forged.body.find("not-the-key"), std::string::npos);  // no secret echoed
  auto elsewhere = put(stack.restToken(kFullKeyName, kFullKey, std::string("/") + kOtherHub));
  EXPECT_EQ(elsewhere.status, 401);
  EXPECT_NE(detail(elsewhere).find("does not cover"), std::string::npos) << detail(elsewhere);
  EXPECT_EQ(put(stack.restToken(kListenKeyName, kListenKey)).status, 200);  // Listen may write one
  auto unknown_hub = client.request("GET", "/nohub/installations/x", sdkHeaders(stack.restToken()));
  EXPECT_EQ(unknown_hub.status, 404);
}

// What pns-mock received for `provider`: token -> how many requests it answered 200.
std::map<std::string, int> delivered(Stack& stack, const std::string& provider) {
  auto result = httpRequest("GET", stack.controlPort(),
                            "/_mock/received?provider=" + provider + "&limit=100000");
  std::map<std::string, int> out;
  json::value entries = json::parse(result.body);
  for (const auto& e : entries.as_array()) {
    const auto& o = e.as_object();
    if (o.at("status").to_number<int>() == 200) ++out[json::value_to<std::string>(o.at("token"))];
  }
  return out;
}

// The notification id of a send's Location (https://host/{hub}/messages/{id}?api-version=...),
// as the SDK reads it: the path's fourth part.
std::string idOf(const HttpsResult& r) {
  std::string location = r.header("location");
  auto path = location.substr(location.find('/', 8));
  path = path.substr(0, path.find('?'));
  auto last = path.rfind('/');
  return path.substr(last + 1);
}

std::string apnsToken(int i) {
  std::string t = std::to_string(i);
  return std::string(64 - t.size(), 'a') + t;
}

TEST(RestIntegrationTest, SendsAsTheSdkSendsThemReachTheirDevices) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  auto headers = [&](HttpsClient::Headers extra) {
    auto h = sdkHeaders(stack.restToken());
    h.insert(h.end(), extra.begin(), extra.end());
    return h;
  };
  // Ten APNs devices: even ones like hockey, all have a template.
  for (int i = 0; i < 10; ++i) {
    std::string id = "dev-" + std::to_string(i);
    std::string body = R"({"installationId":")" + id + R"(","platform":"apns","pushChannel":")" +
                       apnsToken(i) + R"(","tags":[")" + (i % 2 == 0 ? "likes_hockey" : "other") +
                       R"x("],"templates":{"t":{"body":"{\"aps\":{\"alert\":\"$(message)\"}}"}}})x";
    ASSERT_EQ(client.request("PUT", installationPath(id), headers({}), body).status, 200);
  }

  // A tag send with APNs headers passed on.
  auto tag = client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06",
                            headers({{"ServiceBusNotification-Format", "apple"},
                                     {"ServiceBusNotification-Tags", "likes_hockey||nobody"},
                                     {"apns-push-type", "alert"},
                                     {"x-ms-client-request-id", "req-tag-1"},
                                     {"Content-Type", "application/json;charset=utf-8"}}),
                            R"({"aps":{"alert":"Hello"}})");
  ASSERT_EQ(tag.status, 201) << tag.body;
  std::string tag_id = idOf(tag);
  EXPECT_EQ(stack.waitFinal(tag_id).state(), v1::NotificationStatus::STATE_COMPLETED);
  // The SDK retries a send whose answer it lost with the same request id: the same
  // notification, sent once.
  auto retried = client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06",
                                headers({{"ServiceBusNotification-Format", "apple"},
                                         {"ServiceBusNotification-Tags", "likes_hockey||nobody"},
                                         {"x-ms-client-request-id", "req-tag-1"}}),
                                R"({"aps":{"alert":"Hello"}})");
  ASSERT_EQ(retried.status, 201);
  EXPECT_EQ(idOf(retried), tag_id);
  auto got = delivered(stack, "apns");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[apnsToken(i)], i % 2 == 0 ? 1 : 0) << i;

  // Its outcome details, as NotificationDetails XML.
  auto details = client.request(
      "GET", std::string("/") + kHub + "/messages/" + tag_id + "?api-version=2020-06", headers({}));
  ASSERT_EQ(details.status, 200) << details.body;
  EXPECT_NE(details.body.find("<State>Completed</State>"), std::string::npos) << details.body;
  EXPECT_NE(details.body.find("<ApnsOutcomeCounts><Outcome><Name>Success</Name><Count>5</Count>"),
            std::string::npos)
      << details.body;

  // A template broadcast reaches all ten, rendered.
  auto tpl = client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06",
                            headers({{"ServiceBusNotification-Format", "template"}}),
                            R"({"message":"rendered"})");
  ASSERT_EQ(tpl.status, 201) << tpl.body;
  EXPECT_EQ(stack.waitFinal(idOf(tpl)).state(), v1::NotificationStatus::STATE_COMPLETED);
  got = delivered(stack, "apns");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(got[apnsToken(i)], i % 2 == 0 ? 2 : 1) << i;

  // A direct send to one handle that is registered nowhere, and a batch of two.
  auto direct =
      client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06&direct=true",
                     headers({{"ServiceBusNotification-Format", "apple"},
                              {"ServiceBusNotification-DeviceHandle", apnsToken(100)}}),
                     R"({"aps":{"alert":"direct"}})");
  ASSERT_EQ(direct.status, 201) << direct.body;
  std::string boundary = "nh-boundary-4c23d61d-969b-4ae7-8626-f10c98102d48";
  std::string multipart =
      "--" + boundary +
      "\r\nContent-type: application/json;charset=utf-8\r\nContent-Disposition: inline; "
      "name=notification\r\n\r\n{\"aps\":{\"alert\":\"batch\"}}\r\n--" +
      boundary +
      "\r\nContent-type: application/json\r\nContent-Disposition: inline; "
      "name=devices\r\n\r\n[\"" +
      apnsToken(101) + "\",\"" + apnsToken(102) + "\"]\r\n--" + boundary + "--";
  auto batch = client.request(
      "POST", std::string("/") + kHub + "/messages/$batch?api-version=2020-06&direct=true",
      headers({{"ServiceBusNotification-Format", "apple"},
               {"Content-Type", "multipart/mixed; boundary = \"" + boundary + "\""}}),
      multipart);
  ASSERT_EQ(batch.status, 201) << batch.body;
  EXPECT_EQ(stack.waitFinal(idOf(direct)).state(), v1::NotificationStatus::STATE_COMPLETED);
  EXPECT_EQ(stack.waitFinal(idOf(batch)).state(), v1::NotificationStatus::STATE_COMPLETED);
  got = delivered(stack, "apns");
  for (int i : {100, 101, 102}) EXPECT_EQ(got[apnsToken(i)], 1) << i;

  // A test send answers with each device's outcome (the JS SDK's broadcast test send says
  // "undefined" for its tags: a broadcast here, at most 10 devices).
  auto test =
      client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06&test=true",
                     headers({{"ServiceBusNotification-Format", "apple"},
                              {"ServiceBusNotification-Tags", "undefined"}}),
                     R"({"aps":{"alert":"test"}})");
  ASSERT_EQ(test.status, 201) << test.body;
  EXPECT_NE(test.body.find("<Success>10</Success><Failure>0</Failure><Results>"), std::string::npos)
      << test.body;
  EXPECT_NE(test.body.find("<ApplicationPlatform>apple</ApplicationPlatform>"), std::string::npos);

  // A scheduled send, cancelled: never delivered; its details say so.
  auto at = [](int seconds) {
    return registry::formatIsoTimeMs(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count() +
                                     seconds * 1000);
  };
  auto scheduled = client.request(
      "POST", std::string("/") + kHub + "/schedulednotifications/?api-version=2020-06",
      headers({{"ServiceBusNotification-Format", "apple"},
               {"ServiceBusNotification-Tags", "other"},
               {"ServiceBusNotification-ScheduleTime", at(3600)}}),
      R"({"aps":{"alert":"later"}})");
  ASSERT_EQ(scheduled.status, 201) << scheduled.body;
  EXPECT_NE(scheduled.header("location").find("/schedulednotifications/"), std::string::npos);
  auto cancel = client.request("DELETE",
                               std::string("/") + kHub + "/schedulednotifications/" +
                                   idOf(scheduled) + "?api-version=2020-06",
                               headers({}));
  EXPECT_EQ(cancel.status, 200) << cancel.body;
  auto cancelled = client.request(
      "GET", std::string("/") + kHub + "/messages/" + idOf(scheduled) + "?api-version=2020-06",
      headers({}));
  EXPECT_NE(cancelled.body.find("<State>Cancelled</State>"), std::string::npos) << cancelled.body;
  auto again = client.request("DELETE",
                              std::string("/") + kHub + "/schedulednotifications/" +
                                  idOf(scheduled) + "?api-version=2020-06",
                              headers({}));
  EXPECT_EQ(again.status, 412) << again.body;  // no longer scheduled

  // Refusals: Azure's error body, nothing queued.
  auto listen = client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06",
                               {{"Authorization", stack.restToken(kListenKeyName, kListenKey)},
                                {"ServiceBusNotification-Format", "apple"}},
                               R"({"aps":{}})");
  EXPECT_EQ(listen.status, 403) << listen.body;  // a device's Listen key cannot send
  auto legacy = client.request("POST", std::string("/") + kHub + "/messages/?api-version=2020-06",
                               headers({{"ServiceBusNotification-Format", "gcm"}}), "{}");
  EXPECT_EQ(legacy.status, 400);
  EXPECT_EQ(detail(legacy).rfind("ServiceBusNotification-Format: 'gcm'", 0), 0u) << legacy.body;
  auto past = client.request(
      "POST", std::string("/") + kHub + "/schedulednotifications/?api-version=2020-06",
      headers({{"ServiceBusNotification-Format", "apple"},
               {"ServiceBusNotification-ScheduleTime", at(-3600)}}),
      R"({"aps":{}})");
  EXPECT_EQ(past.status, 400) << past.body;
  auto unknown = client.request(
      "GET", std::string("/") + kHub + "/messages/0123456789abcdef0123456789abcdef", headers({}));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(delivered(stack, "apns").size(), 13u);  // the 10 devices and 3 direct handles
}

// A registration's Atom entry as the SDK builds it (anh-wire.md 7.2).
std::string registrationEntry(const std::string& kind, const std::string& inner) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><entry "
         "xmlns=\"http://www.w3.org/2005/Atom\"><updated>2026-11-21T14:51:00.161Z</updated>"
         "<content type=\"application/xml\"><" +
         kind +
         "RegistrationDescription xmlns=\"http://schemas.microsoft.com/netservices/2010/10/"
         "servicebus/connect\" xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\">" +
         inner + "</" + kind + "RegistrationDescription></content></entry>";
}

// The description element of an answered entry, as the SDK reads it.
xml::Element descriptionOf(const HttpsResult& r) {
  auto doc = xml::parse(r.body);
  EXPECT_TRUE(doc) << r.body;
  if (!doc || !doc->child("content") || doc->child("content")->children.empty()) return {};
  return doc->child("content")->children.front();
}

// The registration ids of a feed, in order.
std::vector<std::string> feedIds(const HttpsResult& r) {
  std::vector<std::string> ids;
  auto doc = xml::parse(r.body);
  EXPECT_TRUE(doc) << r.body;
  if (!doc) return ids;
  EXPECT_EQ(doc->name, "feed");
  for (const auto& e : doc->children) {
    if (e.name == "entry") ids.push_back(e.child("title")->text);
  }
  return ids;
}

TEST(RestIntegrationTest, RegistrationsShareTheStoreAndAreTargetedByTagsLikeInstallations) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  std::string listen = stack.restToken(kListenKeyName, kListenKey);
  auto headers = [](const std::string& token, HttpsClient::Headers extra = {}) {
    HttpsClient::Headers h{{"Authorization", token},
                           {"x-ms-version", "2020-06"},
                           {"Content-Type", "application/atom+xml;type=entry;charset=utf-8"}};
    h.insert(h.end(), extra.begin(), extra.end());
    return h;
  };
  std::string base = std::string("/") + kHub;
  std::string origin = "https://127.0.0.1:" + std::to_string(stack.restPort());

  // createRegistration: a device creates an Apple registration with its Listen key.
  auto created =
      client.request("POST", base + "/registrations?api-version=2020-06", headers(listen),
                     registrationEntry("Apple", "<Tags>shared,apple_only</Tags><DeviceToken>" +
                                                    apnsToken(1) + "</DeviceToken>"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.header("content-type"), "application/atom+xml;type=entry;charset=utf-8");
  xml::Element apple = descriptionOf(created);
  EXPECT_EQ(apple.name, "AppleRegistrationDescription");
  std::string apple_id = apple.child("RegistrationId")->text;
  EXPECT_EQ(apple_id.size(), 41u) << apple_id;  // {19 digits}-{19 digits}-1
  EXPECT_EQ(created.header("etag"), "W/\"" + apple.child("ETag")->text + "\"");
  EXPECT_EQ(apple.child("Tags")->text, "shared,apple_only");
  std::string upper_token = apnsToken(1);
  for (auto& c : upper_token) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(apple.child("DeviceToken")->text, upper_token);

  // createRegistrationId, then createOrUpdateRegistration under it: an FCM v1 template.
  auto reserved = client.request("POST", base + "/registrationIDs?api-version=2020-06",
                                 headers(listen, {{"Content-Length", "0"}}));
  ASSERT_EQ(reserved.status, 201) << reserved.body;
  std::string location = reserved.header("location");
  ASSERT_EQ(location.rfind(origin + base + "/registrationIDs/", 0), 0u) << location;
  std::string fcm_id = location.substr((origin + base + "/registrationIDs/").size());
  fcm_id = fcm_id.substr(0, fcm_id.find('?'));
  std::string fcm_path = base + "/registrations/" + fcm_id + "?api-version=2020-06";
  auto fcm_entry = [](const std::string& tags) {
    return registrationEntry(
        "FcmV1Template",
        "<Tags>" + tags +
            "</Tags><FcmV1RegistrationId>fcm-reg-1</FcmV1RegistrationId><BodyTemplate><![CDATA["
            "{\"message\":{\"notification\":{\"body\":\"$(m)\"}}}]]></BodyTemplate>"
            "<TemplateName>main</TemplateName>");
  };
  auto put = client.request("PUT", fcm_path, headers(listen), fcm_entry("shared"));
  ASSERT_EQ(put.status, 200) << put.body;
  std::string etag = descriptionOf(put).child("ETag")->text;
  auto got = client.request("GET", fcm_path, headers(listen));
  ASSERT_EQ(got.status, 200) << got.body;
  xml::Element fcm = descriptionOf(got);
  EXPECT_EQ(fcm.name, "FcmV1TemplateRegistrationDescription");
  EXPECT_EQ(fcm.child("BodyTemplate")->text,
            "{\"message\":{\"notification\":{\"body\":\"$(m)\"}}}");
  EXPECT_EQ(fcm.child("TemplateName")->text, "main");
  EXPECT_EQ(fcm.child("ETag")->text, etag);

  // updateRegistration with If-Match: a stale ETag is 412 and changes nothing.
  auto stale = client.request("PUT", fcm_path, headers(listen, {{"If-Match", "\"1\""}}),
                              fcm_entry("shared,stale"));
  EXPECT_EQ(stale.status, 412) << stale.body;
  auto updated =
      client.request("PUT", fcm_path, headers(listen, {{"If-Match", "\"" + etag + "\""}}),
                     fcm_entry("shared,fcm_only"));
  ASSERT_EQ(updated.status, 200) << updated.body;
  std::string new_etag = descriptionOf(updated).child("ETag")->text;
  EXPECT_NE(new_etag, etag);
  EXPECT_EQ(descriptionOf(client.request("GET", fcm_path, headers(listen))).child("Tags")->text,
            "shared,fcm_only");
  EXPECT_EQ(client
                .request("PUT", fcm_path, headers(listen, {{"If-Match", "\"" + etag + "\""}}),
                         fcm_entry("x"))
                .status,
            412);
  EXPECT_EQ(client
                .request("PUT", base + "/registrations/never-made?api-version=2020-06",
                         headers(listen, {{"If-Match", "*"}}), fcm_entry("x"))
                .status,
            404);

  // An installation with the same tag: one store, one send reaches both models.
  std::string installation = R"({"installationId":"inst-shared","platform":"apns",)"
                             R"("pushChannel":")" +
                             apnsToken(2) + R"(","tags":["shared"]})";
  ASSERT_EQ(client.request("PUT", installationPath("inst-shared"), sdkHeaders(listen), installation)
                .status,
            200);
  auto send = [&](const std::string& format, const std::string& tags, const std::string& body,
                  v1::NotificationStatus::State expected =
                      v1::NotificationStatus::STATE_COMPLETED) {
    auto r = client.request("POST", base + "/messages/?api-version=2020-06",
                            headers(stack.restToken(), {{"ServiceBusNotification-Format", format},
                                                        {"ServiceBusNotification-Tags", tags},
                                                        {"Content-Type", "application/json"}}),
                            body);
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(stack.waitFinal(idOf(r)).state(), expected) << format << " to " << tags;
  };
  send("apple", "shared", R"({"aps":{"alert":"native"}})");
  send("template", "shared && fcm_only", R"({"m":"rendered"})");
  // A native send does not reach a template registration (Azure's rule; an installation with
  // templates would get it).
  send("fcmv1", "shared", R"({"message":{"notification":{"body":"native"}}})",
       v1::NotificationStatus::STATE_NO_TARGET_FOUND);
  auto apns = delivered(stack, "apns");  // pns-mock keys APNs tokens lower-case
  EXPECT_EQ(apns[apnsToken(1)], 1);
  EXPECT_EQ(apns[apnsToken(2)], 1);
  EXPECT_EQ(delivered(stack, "fcm")["fcm-reg-1"], 1);

  // Read by channel (Listen, as a device does at start), the SDK's filter for APNs.
  auto by_channel =
      client.request("GET",
                     base + "/registrations?api-version=2020-06&%24filter=DeviceToken+eq+%27" +
                         upper_token + "%27",
                     headers(listen));
  ASSERT_EQ(by_channel.status, 200) << by_channel.body;
  EXPECT_EQ(by_channel.header("content-type"), "application/atom+xml;type=feed;charset=utf-8");
  EXPECT_EQ(feedIds(by_channel), std::vector<std::string>{apple_id});
  EXPECT_EQ(feedIds(client.request(
                "GET", base + "/registrations?%24filter=FcmV1RegistrationId+eq+%27nobody%27",
                headers(listen))),
            std::vector<std::string>{});

  // Listing all takes Manage; pages of one follow the continuation token to the end.
  EXPECT_EQ(client.request("GET", base + "/registrations", headers(listen)).status, 403);
  std::vector<std::string> all;
  std::string token;
  for (int page = 0; page < 5; ++page) {
    auto r = client.request("GET",
                            base + "/registrations?api-version=2020-06&%24top=1" +
                                (token.empty() ? "" : "&continuationtoken=" + token),
                            headers(stack.restToken()));
    ASSERT_EQ(r.status, 200) << r.body;
    auto ids = feedIds(r);
    all.insert(all.end(), ids.begin(), ids.end());
    token = r.header("x-ms-continuationtoken");
    if (token.empty()) break;
    EXPECT_EQ(ids.size(), 1u);
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> both{apple_id, fcm_id};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(all, both);  // each once; the installation is not a registration
  auto by_tag = client.request("GET", base + "/tags/shared/registrations?%24top=10",
                               headers(stack.restToken()));
  ASSERT_EQ(by_tag.status, 200) << by_tag.body;
  auto tagged = feedIds(by_tag);
  std::sort(tagged.begin(), tagged.end());
  EXPECT_EQ(tagged, both);
  EXPECT_EQ(client
                .request("GET", base + "/registrations?continuationtoken=bogus",
                         headers(stack.restToken()))
                .status,
            400);

  // The two models never read each other's records.
  EXPECT_EQ(client.request("GET", base + "/registrations/inst-shared", headers(listen)).status,
            404);
  EXPECT_EQ(client.request("GET", installationPath(apple_id), sdkHeaders(listen)).status, 404);

  // deleteRegistration: a wrong ETag is 412, "*" deletes, a second delete is 404.
  std::string apple_path = base + "/registrations/" + apple_id + "?api-version=2020-06";
  EXPECT_EQ(client.request("DELETE", apple_path, headers(listen, {{"If-Match", "\"1\""}})).status,
            412);
  EXPECT_EQ(client.request("DELETE", apple_path, headers(listen, {{"If-Match", "*"}})).status, 200);
  EXPECT_EQ(client.request("GET", apple_path, headers(listen)).status, 404);
  EXPECT_EQ(client.request("DELETE", apple_path, headers(listen)).status, 404);
  send("apple", "shared", R"({"aps":{"alert":"after delete"}})");
  apns = delivered(stack, "apns");
  EXPECT_EQ(apns[apnsToken(1)], 1);  // not again
  EXPECT_EQ(apns[apnsToken(2)], 2);
}

// pushhubctl export writes both models as JSON lines; import puts them back after a loss, says
// which lines it refused and why, and a second run changes nothing.
TEST(RestIntegrationTest, ExportAndImportCarryInstallationsAndRegistrations) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  std::string full = stack.restToken();
  HttpsClient::Headers atom{{"Authorization", full},
                            {"Content-Type", "application/atom+xml;type=entry;charset=utf-8"}};
  std::string base = std::string("/") + kHub;
  constexpr int kInstallations = 150;  // more than a page of 100
  for (int i = 0; i < kInstallations; ++i) {
    std::string id = "exp-" + std::to_string(i);
    std::string body = R"({"installationId":")" + id + R"(","platform":"apns","pushChannel":")" +
                       apnsToken(i) + R"(","tags":["t)" + std::to_string(i % 3) +
                       R"("],"userId":"u)" + std::to_string(i) +
                       R"x(","templates":{"a":{"body":"{\"aps\":{\"alert\":\"$(m)\"}}"}}})x";
    ASSERT_EQ(client.request("PUT", installationPath(id), sdkHeaders(full), body).status, 200);
  }
  std::vector<std::string> registrations;
  for (const auto& [kind, inner] : std::vector<std::pair<std::string, std::string>>{
           {"Gcm",
            "<Tags>t0</Tags><GcmRegistrationId>legacy-1</GcmRegistrationId>"
            "<PushVariables>{&quot;v&quot;:1}</PushVariables>"},
           {"AppleTemplate", "<DeviceToken>" + apnsToken(500) +
                                 "</DeviceToken><BodyTemplate><![CDATA[{\"aps\":{\"alert\":"
                                 "\"$(m)\"}}]]></BodyTemplate>"}}) {
    auto r = client.request("POST", base + "/registrations", atom, registrationEntry(kind, inner));
    ASSERT_EQ(r.status, 201) << r.body;
    registrations.push_back(descriptionOf(r).child("RegistrationId")->text);
  }
  auto read = [&](const std::string& path) {
    return client.request("GET", path, sdkHeaders(full));
  };
  auto snapshot = [&] {
    std::vector<std::pair<int, std::string>> all;
    for (int i = 0; i < kInstallations; ++i) {
      auto r = read(installationPath("exp-" + std::to_string(i)));
      json::value v = r.status == 200 ? json::parse(r.body) : json::value();
      if (v.is_object()) v.as_object().erase("lastUpdate");  // every write moves it
      all.emplace_back(r.status, json::serialize(v));
    }
    for (const auto& id : registrations) {
      auto r = read(base + "/registrations/" + id);
      // Everything but the ETag, which every write moves.
      xml::Element d = descriptionOf(r);
      std::string kept = d.name;
      for (const auto& c : d.children) {
        if (c.name != "ETag") kept += "|" + c.name + "=" + c.text;
      }
      all.emplace_back(r.status, kept);
    }
    return all;
  };
  auto before = snapshot();

  TempDir dir;
  std::string file = (dir.path() / "hub.jsonl").string();
  auto [exported, out] = runPushhubctl(stack, "export --page-size 64 > '" + file + "'");
  ASSERT_EQ(exported, 0) << out;
  EXPECT_NE(out.find("exported 152 installations and registrations"), std::string::npos) << out;
  std::string lines = readText(file);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), kInstallations + 2);
  EXPECT_NE(lines.find(R"("registration":{"gcm":true,"push_variables":"{\"v\":1}"})"),
            std::string::npos);
  // Pages of one (a bucket's records read a few at a time) give the same lines in the same order.
  std::string single = (dir.path() / "single.jsonl").string();
  ASSERT_EQ(runPushhubctl(stack, "export --page-size 1 > '" + single + "'").first, 0);
  EXPECT_EQ(readText(single), lines);

  // Lose everything, then import the file with two bad lines added.
  for (int i = 0; i < kInstallations; ++i) {
    client.request("DELETE", installationPath("exp-" + std::to_string(i)), sdkHeaders(full));
  }
  for (const auto& id : registrations) {
    ASSERT_EQ(client.request("DELETE", base + "/registrations/" + id, atom).status, 200);
  }
  EXPECT_EQ(read(installationPath("exp-7")).status, 404);
  {
    std::ofstream append(file, std::ios::app);
    append << "not json\n"
           << R"({"installation_id":"bad-1","platform":"PLATFORM_APNS","push_channel":"xyz"})"
           << "\n";
  }
  auto [imported, report] = runPushhubctl(stack, "import --batch 40 --file '" + file + "'");
  EXPECT_EQ(imported, 1) << report;  // lines were refused
  EXPECT_NE(report.find("line 153: refused: not a pushhub.v1.Installation in JSON"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("line 154: refused: pushChannel: APNs device token"), std::string::npos)
      << report;
  EXPECT_NE(report.find("imported 152, refused 2"), std::string::npos) << report;
  EXPECT_EQ(snapshot(), before);

  // Again: the same lines, the same result.
  auto [again, second] = runPushhubctl(stack, "import --file '" + file + "'");
  EXPECT_EQ(again, 1) << second;
  EXPECT_NE(second.find("imported 152, refused 2"), std::string::npos) << second;
  EXPECT_EQ(snapshot(), before);
}

TEST(RestIntegrationTest, LimitsAndHostileRequestsLeaveTheServerServing) {
  Stack stack;
  HttpsClient client(stack.restPort(), stack.caFile());
  auto token = stack.restToken();
  // A body over the limit: 413, the connection closed, nothing stored.
  std::string huge(kMaxBodyBytes + 1, 'x');
  auto big = client.request("PUT", installationPath("big"), sdkHeaders(token), huge);
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_FALSE(big.keep_alive);
  // A head over the limit: 431.
  auto headers = sdkHeaders(token);
  headers.emplace_back("x-padding", std::string(kMaxHeadBytes, 'p'));
  auto fat = client.request("GET", installationPath("big"), headers);
  EXPECT_EQ(fat.status, 431) << fat.body;
  // Paths that could reach another resource.
  for (const char* target : {"/itest/installations/..%2Fother", "/itest/installations/%2e%2e",
                             "/itest/../other/installations/x"}) {
    auto r = client.request("GET", target, sdkHeaders(token));
    EXPECT_EQ(r.status, 400) << target << ": " << r.body;
  }
  // An encoded CR LF in an id is refused by the id's rules, and nothing of it comes back as a
  // header.
  auto injected = client.request("GET", std::string("/itest/installations/x%0d%0aX-Evil:%201"),
                                 sdkHeaders(token));
  EXPECT_EQ(injected.status, 400) << injected.body;
  EXPECT_TRUE(injected.header("x-evil").empty());
  // Still serving, on a new connection.
  auto after = client.request("GET", installationPath("big"), sdkHeaders(token));
  EXPECT_EQ(after.status, 404);
  EXPECT_EQ(detail(after), "installation 'big' not found");
  v1::Installation seen;
  EXPECT_EQ(grpcGet(stack, "big", seen).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace pushhub::testing
