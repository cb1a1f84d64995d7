#include "gateway/rest_codec.h"

#include <gtest/gtest.h>

namespace pushhub::gateway::rest {
namespace {

TEST(RestCodecTest, TargetsSplitDecodeAndTellFlags) {
  auto t = parseTarget("/my%20hub/Messages/$batch/?api-version=2020-06&direct=true&test&x=a+b");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->segments, (std::vector<std::string>{"my hub", "Messages", "$batch"}));
  EXPECT_EQ(t->collection, "messages");
  EXPECT_TRUE(t->flag("direct"));
  EXPECT_TRUE(t->flag("test"));  // named without a value, as .NET sends it
  EXPECT_FALSE(t->flag("other"));
  EXPECT_EQ(t->query.at("x"), "a b");
  EXPECT_FALSE(parseTarget("/h/messages?test=false")->flag("test"));
}

// The batch as the JS SDK sent it (anh-wire.md 8.3): spaces around '=', a quoted boundary, part
// headers spelled Content-type, no line break after the closing delimiter.
TEST(RestCodecTest, ParsesTheSdksDirectBatch) {
  const std::string boundary = "nh-boundary-4c23d61d-969b-4ae7-8626-f10c98102d48";
  std::string body = "--" + boundary +
                     "\r\nContent-type: application/json;charset=utf-8\r\n"
                     "Content-Disposition: inline; name=notification\r\n\r\n"
                     "{\"aps\":{\"alert\":\"Hello\"}}\r\n--" +
                     boundary +
                     "\r\nContent-type: application/json\r\n"
                     "Content-Disposition: inline; name=devices\r\n\r\n"
                     "[\"tok1\",\"tok2\"]\r\n--" +
                     boundary + "--";
  auto batch = parseBatch("multipart/mixed; boundary = \"" + boundary + "\"", body);
  ASSERT_TRUE(batch) << batch.error().message;
  EXPECT_EQ(batch->notification, "{\"aps\":{\"alert\":\"Hello\"}}");
  EXPECT_EQ(batch->devices, (std::vector<std::string>{"tok1", "tok2"}));

  // The docs' single-quoted devices, LF line breaks, an unquoted boundary.
  auto lenient = parseBatch("multipart/mixed; boundary=b1",
                            "--b1\nContent-Disposition: inline; name=devices\n\n['x']\n"
                            "--b1\nContent-Disposition: inline; name=notification\n\n{}\n--b1--\n");
  ASSERT_TRUE(lenient) << lenient.error().message;
  EXPECT_EQ(lenient->devices, (std::vector<std::string>{"x"}));
  EXPECT_EQ(lenient->notification, "{}");
}

TEST(RestCodecTest, RefusesMalformedBatchesNamingWhatIsWrong) {
  struct Case {
    std::string content_type, body, error;
  };
  const Case cases[] = {
      {"application/json", "{}", "Content-Type: a batch is multipart/mixed"},
      {"multipart/mixed", "--x--", "Content-Type: the boundary parameter"},
      {"multipart/mixed; boundary=\"x", "--x--", "Content-Type: the boundary parameter"},
      {"multipart/mixed; boundary=x", "--x\r\nname=devices\r\n\r\n[]",
       "body: a part is not closed"},
      {"multipart/mixed; boundary=x", "--x\r\nname=devices [1]\r\n--x--", "body: a part has no"},
      {"multipart/mixed; boundary=x", "--x\r\nname=devices\r\n\r\n[1]\r\n--x--",
       "devices[0]: must be a string"},
      {"multipart/mixed; boundary=x", "--x\r\nname=devices\r\n\r\n{\r\n--x--",
       "body: the devices part must be"},
      {"multipart/mixed; boundary=x", "--x\r\nname=devices\r\n\r\n[\"a\"]\r\n--x--",
       "body: a batch needs a part named notification"},
      {"multipart/mixed; boundary=x",
       "--x\r\nname=devices\r\n\r\n[]\r\n--x\r\nname=notification\r\n\r\n{}\r\n--x--",
       "devices: give 1 to 1000"},
      {"multipart/mixed; boundary=x", "", "body: a batch needs"},
  };
  for (const auto& c : cases) {
    auto batch = parseBatch(c.content_type, c.body);
    ASSERT_FALSE(batch) << c.body;
    EXPECT_EQ(batch.error().message.rfind(c.error, 0), 0u)
        << c.body << " -> " << batch.error().message;
  }
}

TEST(RestCodecTest, SendsFollowTheirHeaders) {
  SendHeaders h;
  h.format = "apple";
  h.tags = "likes_hockey||likes_football";
  h.client_request_id = "92553389-5735-4b1c-8d95-112357aa9769";
  h.platform_headers = {{"apns-priority", "10"}, {"x-wns-type", "wns/toast"}};
  auto tag = sendFromRequest("hub", h, R"({"aps":{"alert":"Hello"}})", {}, false);
  ASSERT_TRUE(tag) << tag.error().message;
  EXPECT_EQ(tag->tag_expression(), "likes_hockey||likes_football");
  ASSERT_EQ(tag->native_size(), 1);
  EXPECT_EQ(tag->native(0).platform(), v1::PLATFORM_APNS);
  EXPECT_EQ(tag->native(0).headers().size(), 1u);  // the WNS header is not APNs'
  EXPECT_EQ(tag->native(0).headers().at("apns-priority"), "10");
  EXPECT_EQ(tag->idempotency_key(), h.client_request_id);  // an SDK retry is not sent twice

  h.tags = "undefined";  // the JS SDK's broadcast test send
  auto broadcast = sendFromRequest("hub", h, "{}", {}, true);
  ASSERT_TRUE(broadcast);
  EXPECT_TRUE(broadcast->broadcast());
  EXPECT_TRUE(broadcast->test());
  EXPECT_EQ(broadcast->idempotency_key(), "");  // a test send answers with outcomes each time

  h.tags.reset();
  h.format = "template";
  auto tpl = sendFromRequest("hub", h, R"({"message":"Hello","badge":"3"})", {}, false);
  ASSERT_TRUE(tpl);
  EXPECT_EQ(tpl->native_size(), 0);
  EXPECT_EQ(tpl->template_properties().at("badge"), "3");
  EXPECT_TRUE(tpl->broadcast());

  h.format = "fcmv1";
  auto direct = sendFromRequest("hub", h, "{}", {"t1", "t2"}, false);
  ASSERT_TRUE(direct);
  ASSERT_EQ(direct->direct().targets_size(), 2);
  EXPECT_EQ(direct->direct().targets(1).platform(), v1::PLATFORM_FCM);

  h.format = "windows";
  h.schedule_time = "2030-01-01T00:00:00.000Z";
  auto scheduled = sendFromRequest("hub", h, "<toast/>", {}, false);
  ASSERT_TRUE(scheduled);
  EXPECT_EQ(scheduled->scheduled_time().seconds(), 1893456000);
  EXPECT_EQ(scheduled->native(0).headers().at("x-wns-type"), "wns/toast");

  struct Bad {
    std::string format, body;
    std::vector<std::string> handles;
    std::optional<std::string> tags, schedule;
    std::string error;
  };
  const Bad bad[] = {
      {"", "{}", {}, {}, {}, "ServiceBusNotification-Format: header required"},
      {"gcm", "{}", {}, {}, {}, "ServiceBusNotification-Format: 'gcm' (FCM legacy)"},
      {"baidu", "{}", {}, {}, {}, "ServiceBusNotification-Format: 'baidu' is not one of"},
      {"template", "[1]", {}, {}, {}, "body: a template send's body"},
      {"template", R"({"a":1})", {}, {}, {}, "body.a: must be a string"},
      {"template", "{}", {"t"}, {}, {}, "ServiceBusNotification-Format: a direct send needs"},
      {"apple", "{}", {"t"}, "a", {}, "ServiceBusNotification-Tags: a direct send"},
      {"apple", "{}", {}, {}, "tomorrow", "ServiceBusNotification-ScheduleTime"},
  };
  for (const auto& b : bad) {
    SendHeaders bh;
    bh.format = b.format;
    bh.tags = b.tags;
    bh.schedule_time = b.schedule;
    auto r = sendFromRequest("hub", bh, b.body, b.handles, false);
    ASSERT_FALSE(r) << b.error;
    EXPECT_EQ(r.error().message.rfind(b.error, 0), 0u) << r.error().message;
  }
}

TEST(RestCodecTest, XmlAnswersNeverCarryAnEmptyCollection) {
  v1::SendNotificationResponse none;
  EXPECT_NE(testOutcomeXml(none).find("<Success>0</Success><Failure>0</Failure><Results />"),
            std::string::npos);
  v1::SendNotificationResponse some;
  auto* ok = some.add_test_results();
  ok->set_platform(v1::PLATFORM_APNS);
  ok->set_push_handle("aa");
  ok->set_installation_id("i1");
  ok->set_outcome("Success");
  auto* bad = some.add_test_results();
  bad->set_platform(v1::PLATFORM_FCM);
  bad->set_push_handle("ff");
  bad->set_outcome("WrongToken");
  bad->set_reason("UNREGISTERED <x>");
  std::string xml = testOutcomeXml(some);
  EXPECT_NE(xml.find("<Success>1</Success><Failure>1</Failure><Results><RegistrationResult>"
                     "<ApplicationPlatform>apple</ApplicationPlatform><PnsHandle>aa</PnsHandle>"
                     "<RegistrationId>i1</RegistrationId>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<Outcome>WrongToken: UNREGISTERED &lt;x&gt;</Outcome>"), std::string::npos);

  v1::NotificationStatus status;
  status.set_notification_id("n1");
  status.set_state(v1::NotificationStatus::STATE_COMPLETED);
  status.add_target_platforms(v1::PLATFORM_APNS);
  status.add_target_platforms(v1::PLATFORM_FCM);
  status.add_target_platforms(v1::PLATFORM_APNS);
  auto* o = status.add_outcomes();
  o->set_platform(v1::PLATFORM_APNS);
  o->set_outcome("Success");
  o->set_count(3);
  std::string details = notificationDetailsXml(status, "https://h/hub/messages/n1");
  EXPECT_NE(details.find("<State>Completed</State>"), std::string::npos);
  EXPECT_NE(details.find("<TargetPlatforms>apple,fcmv1</TargetPlatforms>"), std::string::npos);
  EXPECT_NE(details.find("<ApnsOutcomeCounts><Outcome><Name>Success</Name><Count>3</Count>"),
            std::string::npos);
  EXPECT_EQ(details.find("FcmV1OutcomeCounts"), std::string::npos);  // no outcome, no element
  EXPECT_EQ(details.find("<StartTime>"), std::string::npos);
}

}  // namespace
}  // namespace pushhub::gateway::rest
