#include "gateway/rest_registration.h"

#include <gtest/gtest.h>

#include "base/xml.h"

namespace pushhub::gateway::rest {
namespace {

using registry::Platform;

const std::string kHead =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><entry "
    "xmlns=\"http://www.w3.org/2005/Atom\"><updated>2026-11-21T14:51:00.161Z</updated><content "
    "type=\"application/xml\">";
const std::string kTail = "</content></entry>";
const std::string kNs =
    " xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/connect\" "
    "xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"";
const std::string kToken = "00FC13ADFF785122B4AD28809A3420982341241421348097878E577C991DE8F0";

std::string entry(const std::string& kind, const std::string& inner) {
  return kHead + "<" + kind + "RegistrationDescription" + kNs + ">" + inner + "</" + kind +
         "RegistrationDescription>" + kTail;
}

// The SDK's captures (anh-wire.md 7.2), kind by kind.
TEST(RestRegistrationTest, ReadsTheSdksAppleTemplateEntry) {
  auto r = registrationFromXml(
      entry("AppleTemplate",
            "<Tags>a</Tags><PushVariables>{&quot;locale&quot;:&quot;en&quot;}</PushVariables>"
            "<DeviceToken>" +
                kToken +
                "</DeviceToken><BodyTemplate><![CDATA[{\"aps\":{\"alert\":\"$(message)\","
                "\"badge\":\"#(badge)\"}}]]></BodyTemplate><TemplateName>alertTemplate"
                "</TemplateName><Expiry>2030-01-01T00:00:00Z</Expiry><ApnsHeaders><ApnsHeader>"
                "<Header>apns-priority</Header><Value>10</Value></ApnsHeader><ApnsHeader><Header>"
                "apns-push-type</Header><Value>alert</Value></ApnsHeader></ApnsHeaders>"),
      "777-1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, "$reg:777-1");
  EXPECT_EQ(registrationId(*r), "777-1");
  EXPECT_EQ(r->platform, Platform::kApns);
  EXPECT_EQ(r->push_channel, kToken);
  EXPECT_EQ(r->tags, std::vector<std::string>{"a"});
  ASSERT_TRUE(r->registration);
  EXPECT_EQ(r->registration->push_variables, "{\"locale\":\"en\"}");
  ASSERT_EQ(r->templates.count("alertTemplate"), 1u);
  const auto& t = r->templates.at("alertTemplate");
  EXPECT_EQ(t.body, "{\"aps\":{\"alert\":\"$(message)\",\"badge\":\"#(badge)\"}}");
  EXPECT_EQ(t.expiry, "2030-01-01T00:00:00Z");
  EXPECT_EQ(t.headers.at("apns-priority"), "10");
  EXPECT_EQ(t.headers.at("apns-push-type"), "alert");
}

TEST(RestRegistrationTest, ReadsEveryServedKind) {
  struct Case {
    std::string kind, inner;
    Platform platform;
    bool gcm, is_template;
    std::string channel;
  };
  const std::vector<Case> cases{
      {"Apple", "<Tags>a,b</Tags><DeviceToken>" + std::string(64, 'a') + "</DeviceToken>",
       Platform::kApns, false, false, std::string(64, 'A')},  // upper-cased, as Azure stores
      {"FcmV1", "<Tags>t</Tags><FcmV1RegistrationId>fcmv1token</FcmV1RegistrationId>",
       Platform::kFcm, false, false, "fcmv1token"},
      {"FcmV1Template",
       "<FcmV1RegistrationId>FCM</FcmV1RegistrationId><BodyTemplate><![CDATA[{\"message\":{"
       "\"notification\":{\"body\":\"$(m)\"}}}]]></BodyTemplate>",
       Platform::kFcm, false, true, "FCM"},
      {"Gcm", "<Tags>x</Tags><GcmRegistrationId>gcmtok</GcmRegistrationId>", Platform::kFcm, true,
       false, "gcmtok"},
      {"GcmTemplate",
       "<GcmRegistrationId>g</GcmRegistrationId><BodyTemplate>{\"data\":{\"m\":\"$(m)\"}}"
       "</BodyTemplate>",
       Platform::kFcm, true, true, "g"},
      {"Windows",
       "<Tags>w1,w2</Tags><ChannelUri>https://db5.notify.windows.com/?token=AwYAAAB&amp;x=1"
       "</ChannelUri>",
       Platform::kWns, false, false, "https://db5.notify.windows.com/?token=AwYAAAB&x=1"},
      {"WindowsTemplate",
       "<Tags>w</Tags><ChannelUri>https://db5.notify.windows.com/?token=AwYAAAB</ChannelUri>"
       "<BodyTemplate><![CDATA[<toast><visual><binding template=\"ToastText01\"><text id=\"1\">"
       "$(message)</text></binding></visual></toast>]]></BodyTemplate><WnsHeaders><WnsHeader>"
       "<Header>X-WNS-Type</Header><Value>wns/toast</Value></WnsHeader></WnsHeaders>",
       Platform::kWns, false, true, "https://db5.notify.windows.com/?token=AwYAAAB"},
  };
  for (const auto& c : cases) {
    auto r = registrationFromXml(entry(c.kind, c.inner), "1-1");
    ASSERT_TRUE(r) << c.kind << ": " << r.error().message;
    EXPECT_EQ(r->platform, c.platform) << c.kind;
    EXPECT_EQ(r->registration->gcm, c.gcm) << c.kind;
    EXPECT_EQ(r->templates.size(), c.is_template ? 1u : 0u) << c.kind;
    EXPECT_EQ(r->push_channel, c.channel) << c.kind;
    if (c.is_template) {
      EXPECT_EQ(r->templates.begin()->first, registry::kUnnamedTemplate);
    }

    // What we answer parses back to the same registration, as the SDK's parser would read it.
    r->last_update_ms = 1700000000123;
    std::string xml = registrationEntryXml(*r, "https://localhost:1/h/registrations");
    auto doc = xml::parse(xml);
    ASSERT_TRUE(doc) << doc.error().message;
    const xml::Element& d = doc->child("content")->children.front();
    EXPECT_EQ(d.name, c.kind + "RegistrationDescription");
    EXPECT_EQ(d.child("ETag")->text, "1700000000123");
    EXPECT_EQ(d.child("RegistrationId")->text, "1-1");
    EXPECT_EQ(d.child("ExpirationTime")->text, "9999-12-31T23:59:59.9999999Z");
    EXPECT_EQ(d.child("TemplateName"), nullptr);  // the unnamed template stays unnamed
    auto back = registrationFromXml(xml, "1-1");
    ASSERT_TRUE(back) << back.error().message;
    back->last_update_ms = r->last_update_ms;
    EXPECT_EQ(*back, *r) << c.kind;
  }
}

TEST(RestRegistrationTest, TagsAreTrimmedAndAnEmptyListIsOmitted) {
  auto r = registrationFromXml(
      "<FcmV1RegistrationDescription><Tags>myTag, myOtherTag,,</Tags>"
      "<FcmV1RegistrationId>t</FcmV1RegistrationId></FcmV1RegistrationDescription>",
      "x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tags, (std::vector<std::string>{"myTag", "myOtherTag"}));
  std::string xml = registrationEntryXml(*r, "https://h/hub/registrations");
  EXPECT_NE(xml.find("<Tags>myTag,myOtherTag</Tags>"), std::string::npos);
  r->tags.clear();
  EXPECT_EQ(registrationEntryXml(*r, "https://h/hub/registrations").find("<Tags"),
            std::string::npos);
}

TEST(RestRegistrationTest, ABodyTemplateHoldingTheCdataEndIsSplitAndReadBack) {
  auto r = registrationFromXml(
      entry("FcmV1Template",
            "<FcmV1RegistrationId>t</FcmV1RegistrationId><BodyTemplate>{\"m\":\"]]&gt;$(x)\"}"
            "</BodyTemplate><TemplateName>n</TemplateName>"),
      "y");
  ASSERT_TRUE(r) << r.error().message;
  auto back = registrationFromXml(registrationEntryXml(*r, "https://h/hub/registrations"), "y");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->templates.at("n").body, "{\"m\":\"]]>$(x)\"}");
}

TEST(RestRegistrationTest, RefusesBadEntriesNamingTheElement) {
  struct Case {
    std::string body, expected;
  };
  const std::vector<Case> cases{
      {"", "body is empty"},
      {"<entry><content>", "XML:"},
      {"<feed/>", "not an Atom <entry>"},
      {kHead + kTail, "{Kind}RegistrationDescription is required"},
      {entry("Adm", "<AdmRegistrationId>a</AdmRegistrationId>"), "not this kind"},
      {entry("Browser", "<Endpoint>https://x</Endpoint>"), "not this kind"},
      {entry("Nokia", ""), "unknown registration kind"},
      {kHead + "<Thing/>" + kTail, "not a {Kind}RegistrationDescription"},
      {entry("Apple", "<Tags>a</Tags>"), "DeviceToken: is required"},
      {entry("Apple", "<DeviceToken>xyz</DeviceToken>"), "pushChannel"},
      {entry("FcmV1Template", "<FcmV1RegistrationId>t</FcmV1RegistrationId>"),
       "BodyTemplate: is required"},
      {entry("FcmV1",
             "<FcmV1RegistrationId>t</FcmV1RegistrationId><BodyTemplate>{}"
             "</BodyTemplate>"),
       "BodyTemplate: is only for template registrations"},
      {entry("FcmV1",
             "<FcmV1RegistrationId>t</FcmV1RegistrationId><PushVariables>[1]"
             "</PushVariables>"),
       "PushVariables: must be a JSON object"},
      {entry("FcmV1", "<FcmV1RegistrationId>t</FcmV1RegistrationId><Tags>a b</Tags>"), "tags[0]"},
      {entry("FcmV1",
             "<FcmV1RegistrationId>t</FcmV1RegistrationId><ExpirationTime>soon"
             "</ExpirationTime>"),
       "ExpirationTime"},
      {entry("WindowsTemplate",
             "<ChannelUri>https://db5.notify.windows.com/?t=1</ChannelUri><BodyTemplate>"
             "<![CDATA[<toast/>]]></BodyTemplate>"),
       "X-WNS-Type"},
      {entry("AppleTemplate", "<DeviceToken>" + kToken +
                                  "</DeviceToken><BodyTemplate>{}</BodyTemplate><ApnsHeaders>"
                                  "<ApnsHeader><Header>a</Header></ApnsHeader></ApnsHeaders>"),
       "needs Header and Value"},
      {entry("FcmV1Template",
             "<FcmV1RegistrationId>t</FcmV1RegistrationId><BodyTemplate>"
             "{\"a\":\"$(unclosed\"}</BodyTemplate>"),
       "body"},
  };
  for (const auto& c : cases) {
    auto r = registrationFromXml(c.body, "id-1");
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos)
        << c.body << " -> " << r.error().message;
  }
  EXPECT_FALSE(registrationFromXml(entry("FcmV1", "<FcmV1RegistrationId>t</FcmV1RegistrationId>"),
                                   "bad id/"));
}

TEST(RestRegistrationTest, FeedListsEntriesInOrder) {
  auto a =
      registrationFromXml(entry("FcmV1", "<FcmV1RegistrationId>a</FcmV1RegistrationId>"), "1-a");
  auto b =
      registrationFromXml(entry("FcmV1", "<FcmV1RegistrationId>b</FcmV1RegistrationId>"), "1-b");
  ASSERT_TRUE(a && b);
  std::string feed = registrationFeedXml({*a, *b}, "https://h/hub/registrations",
                                         "https://h/hub/registrations?$top=2");
  auto doc = xml::parse(feed);
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ(doc->name, "feed");
  std::vector<std::string> ids;
  for (const auto& e : doc->children) {
    if (e.name == "entry") ids.push_back(e.child("title")->text);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"1-a", "1-b"}));
  auto empty = xml::parse(registrationFeedXml({}, "https://h/hub/registrations", "https://h/x"));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->child("entry"), nullptr);
}

// The filters listRegistrationsByChannel sends (anh-wire.md 7.7), after the query's decoding.
TEST(RestRegistrationTest, ChannelFiltersAsTheSdkSendsThem) {
  auto apple = parseRegistrationFilter("DeviceToken eq '00fc13adff'");
  ASSERT_TRUE(apple) << apple.error().message;
  EXPECT_EQ(apple->platform, Platform::kApns);
  EXPECT_EQ(apple->channel, "00FC13ADFF");
  EXPECT_EQ(parseRegistrationFilter("FcmV1RegistrationId eq 'fcmv1token'")->channel, "fcmv1token");
  EXPECT_EQ(parseRegistrationFilter("GcmRegistrationId eq 'g'")->platform, Platform::kFcm);
  auto wns = parseRegistrationFilter(
      "ChannelUri eq 'https%3A%2F%2Fdb5.notify.windows.com%2F%3Ftoken%3DAwY%2BA%2FB%3D'");
  ASSERT_TRUE(wns) << wns.error().message;
  EXPECT_EQ(wns->platform, Platform::kWns);
  EXPECT_EQ(wns->channel, "https://db5.notify.windows.com/?token=AwY+A/B=");
  EXPECT_EQ(parseRegistrationFilter("FcmV1RegistrationId eq 'it''s'")->channel, "it's");

  for (const char* bad :
       {"", "DeviceToken", "DeviceToken eq", "DeviceToken eq 'x", "DeviceToken ne 'x'",
        "DeviceToken eq x", "Tags eq 'a'", "DeviceToken eq ''",
        "Endpoint eq 'https%3A%2F%2Fx' and P256DH eq 'p' and Auth eq 'a'",
        "DeviceToken eq 'a' or DeviceToken eq 'b'"}) {
    auto r = parseRegistrationFilter(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("$filter"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace pushhub::gateway::rest
