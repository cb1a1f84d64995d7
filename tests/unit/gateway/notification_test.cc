#include "gateway/notification.h"

#include <gtest/gtest.h>

#include <set>

namespace pushhub::gateway {
namespace {

using std::chrono::system_clock;

v1::SendNotificationRequest apnsToTag(const std::string& tag, const std::string& body) {
  v1::SendNotificationRequest r;
  r.set_hub("h");
  r.set_tag(tag);
  auto* n = r.add_native();
  n->set_platform(v1::PLATFORM_APNS);
  n->set_body(body);
  return r;
}

std::string errorOf(const v1::SendNotificationRequest& r) {
  auto ok = validateSendRequest(r, system_clock::now(), std::chrono::hours(168));
  return ok ? "" : ok.error().message;
}

TEST(NotificationTest, ValidRequestPasses) { EXPECT_EQ(errorOf(apnsToTag("news", "{}")), ""); }

TEST(NotificationTest, RefusalsNameTheField) {
  v1::SendNotificationRequest no_audience = apnsToTag("x", "{}");
  no_audience.clear_audience();
  EXPECT_NE(errorOf(no_audience).find("audience"), std::string::npos);
  EXPECT_NE(errorOf(apnsToTag("bad tag", "{}")).find("tag"), std::string::npos);
  EXPECT_NE(errorOf(apnsToTag("t", std::string(4097, 'x'))).find("4096"), std::string::npos);
  auto voip = apnsToTag("t", std::string(5000, 'x'));
  (*voip.mutable_native(0)->mutable_headers())["apns-push-type"] = "voip";
  EXPECT_EQ(errorOf(voip), "");
  auto bad_header = apnsToTag("t", "{}");
  (*bad_header.mutable_native(0)->mutable_headers())["apns-collapse-id"] = std::string(65, 'c');
  EXPECT_NE(errorOf(bad_header).find("apns-collapse-id"), std::string::npos);
  auto unknown_header = apnsToTag("t", "{}");
  (*unknown_header.mutable_native(0)->mutable_headers())["x-custom"] = "1";
  EXPECT_NE(errorOf(unknown_header).find("x-custom"), std::string::npos);
  auto twice = apnsToTag("t", "{}");
  *twice.add_native() = twice.native(0);
  EXPECT_NE(errorOf(twice).find("native[1].platform"), std::string::npos);
  auto both = apnsToTag("t", "{}");
  (*both.mutable_template_properties())["a"] = "b";
  EXPECT_NE(errorOf(both).find("not both"), std::string::npos);
  auto past = apnsToTag("t", "{}");
  past.mutable_expiry()->set_seconds(1000);
  EXPECT_NE(errorOf(past).find("expiry"), std::string::npos);
  auto empty_body = apnsToTag("t", "");
  EXPECT_NE(errorOf(empty_body).find("native[0].body"), std::string::npos);
}

v1::SendNotificationRequest direct(std::vector<std::pair<v1::Platform, std::string>> targets) {
  v1::SendNotificationRequest r;
  r.set_hub("h");
  auto* list = r.mutable_direct();
  for (auto& [platform, handle] : targets) {
    auto* t = list->add_targets();
    t->set_platform(platform);
    t->set_push_handle(handle);
  }
  auto* n = r.add_native();
  n->set_platform(v1::PLATFORM_APNS);
  n->set_body("{}");
  return r;
}

TEST(NotificationTest, DirectSendsNameValidHandlesOnceWithAPayloadForEachPlatform) {
  const std::string token(64, 'a');
  EXPECT_EQ(errorOf(direct({{v1::PLATFORM_APNS, token}})), "");
  EXPECT_EQ(errorOf(direct({})), "direct.targets: 1 to 1000 handles");
  std::vector<std::pair<v1::Platform, std::string>> many;
  for (int i = 0; i < 1001; ++i) {
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064x", i);
    many.push_back({v1::PLATFORM_APNS, buf});
  }
  EXPECT_EQ(errorOf(direct(many)), "direct.targets: 1 to 1000 handles");
  many.pop_back();
  EXPECT_EQ(errorOf(direct(many)), "");
  EXPECT_EQ(errorOf(direct({{v1::PLATFORM_APNS, token}, {v1::PLATFORM_APNS, token}})),
            "direct.targets[1]: listed twice");
  EXPECT_NE(errorOf(direct({{v1::PLATFORM_APNS, "xyz"}})).find("direct.targets[0].push_handle"),
            std::string::npos);
  EXPECT_EQ(errorOf(direct({{v1::PLATFORM_APNS, token}, {v1::PLATFORM_FCM, "f1"}})),
            "direct.targets[1]: no native payload with platform FCM");
  EXPECT_NE(errorOf(direct({{v1::PLATFORM_UNSPECIFIED, token}})).find("direct.targets[0].platform"),
            std::string::npos);
  auto templated = direct({{v1::PLATFORM_APNS, token}});
  templated.clear_native();
  (*templated.mutable_template_properties())["m"] = "x";
  EXPECT_NE(errorOf(templated).find("template_properties"), std::string::npos);

  // 250 handles are three units of 100; the prepared notification keeps them in order.
  many.resize(250);
  auto jobs = planJobs(direct(many), 1024, 64, std::nullopt);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0], (JobBuckets{{0, 3}}));
  auto prepared = prepareNotification("id", direct(many).SerializeAsString());
  ASSERT_TRUE(prepared);
  ASSERT_EQ((*prepared)->direct.size(), 250u);
  EXPECT_EQ((*prepared)->direct[249].handle, many[249].second);
  EXPECT_EQ((*prepared)->direct[0].platform, registry::Platform::kApns);
}

TEST(NotificationTest, ScheduledTimesAreWithinTheWindowAndNotForTestSends) {
  auto at = [](std::chrono::seconds from_now) {
    auto r = apnsToTag("news", "{}");
    auto when = system_clock::now() + from_now;
    r.mutable_scheduled_time()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count());
    return r;
  };
  EXPECT_EQ(errorOf(at(std::chrono::hours(1))), "");
  EXPECT_EQ(errorOf(at(std::chrono::hours(167))), "");
  EXPECT_EQ(errorOf(at(std::chrono::hours(169))), "scheduled_time: at most 168 hours ahead");
  EXPECT_EQ(errorOf(at(-std::chrono::hours(1))), "scheduled_time: is in the past");
  auto test = at(std::chrono::hours(1));
  test.set_test(true);
  EXPECT_EQ(errorOf(test), "scheduled_time: a test send is sent now");
  auto expires_first = at(std::chrono::hours(2));
  expires_first.mutable_expiry()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(
          (system_clock::now() + std::chrono::hours(1)).time_since_epoch())
          .count());
  EXPECT_EQ(errorOf(expires_first), "expiry: is before scheduled_time");
}

TEST(NotificationTest, JobsCoverEveryBucketOnceAndOneInstallationIsOneJob) {
  auto request = apnsToTag("t", "{}");
  auto jobs = planJobs(request, 1024, 100, std::nullopt);
  ASSERT_EQ(jobs.size(), 11u);
  uint32_t next = 0;
  for (const auto& job : jobs) {
    ASSERT_EQ(job.size(), 1u);
    EXPECT_EQ(job[0].first, next);
    auto decoded = decodeJob(encodeJob(job));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->buckets, job);
    EXPECT_FALSE(decoded->only);
    next = job[0].last;
  }
  EXPECT_EQ(next, 1024u);
  request.set_installation_id("phone-1");
  jobs = planJobs(request, 1024, 100, std::nullopt);
  ASSERT_EQ(jobs.size(), 1u);
  uint32_t bucket = registry::Registry::bucketOf("phone-1", 1024);
  EXPECT_EQ(jobs[0], (JobBuckets{{bucket, bucket + 1}}));
  auto child = decodeJob(encodeJob({{32, 64}}, registry::Platform::kWns));
  ASSERT_TRUE(child);
  EXPECT_EQ(child->buckets, (JobBuckets{{32, 64}}));
  EXPECT_EQ(child->only, registry::Platform::kWns);
  EXPECT_EQ(encodeJob({{32, 64}}, registry::Platform::kWns), "32-64/wns");
  for (const char* bad :
       {"7-3", "x", "", "1-2,", "1-2,x", "1-2-3", "-1-2", "1 -2", "1-2/", "1-2/sms", "/wns"}) {
    EXPECT_FALSE(decodeJob(bad)) << bad;
  }
}

TEST(NotificationTest, JobProgressTokens) {
  JobProgress even;
  for (auto& lane : even.lanes) lane.done = 12;
  EXPECT_EQ(encodeProgress(even), "12");
  EXPECT_EQ(*decodeProgress("12"), even);
  EXPECT_EQ(*decodeProgress("0"), JobProgress{});

  JobProgress split = even;
  split.lanes[0].done = 40;
  split.lanes[1].done = 40;
  split.lanes[2].split_at = 32;  // wns: units 12..31 still this job's, 32.. a child's
  EXPECT_EQ(encodeProgress(split), "40,40,12@32");
  EXPECT_EQ(*decodeProgress("40,40,12@32"), split);
  JobProgress uneven = even;
  uneven.lanes[1].done = 11;
  EXPECT_EQ(encodeProgress(uneven), "12,11,12");
  EXPECT_EQ(*decodeProgress("12,11,12"), uneven);

  for (const char* bad : {"", "x", "-1", "1,2", "1,2,3,4", "1,2,", "1,2,3@", "1,2,9@3", "1,,3",
                          "1, 2,3", "99999999999"}) {
    EXPECT_FALSE(decodeProgress(bad)) << bad;
  }
}

TEST(NotificationTest, CandidateBucketsBecomeJobsOfRuns) {
  auto request = apnsToTag("t", "{}");
  auto jobs = planJobs(request, 1024, 3, std::vector<uint32_t>{2, 3, 4, 9, 11, 12, 2000});
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0], (JobBuckets{{2, 5}}));
  EXPECT_EQ(jobs[1], (JobBuckets{{9, 10}, {11, 13}}));  // 2000 is past the hub's buckets
  EXPECT_EQ(encodeJob(jobs[1]), "9-10,11-13");
  EXPECT_EQ(decodeJob("9-10,11-13")->buckets, jobs[1]);
  EXPECT_TRUE(planJobs(request, 1024, 3, std::vector<uint32_t>{}).empty());
}

TEST(NotificationTest, TagExpressions) {
  auto request = apnsToTag("t", "{}");
  request.set_tag_expression("(sports || news) && !muted");
  EXPECT_EQ(errorOf(request), "");
  ASSERT_TRUE(expressionOf(request));
  EXPECT_EQ(expressionOf(request)->text(), "(sports||news)&&!muted");
  auto selector = selectorOf(request);
  EXPECT_EQ(selector.kind, registry::Selector::Kind::kExpression);
  EXPECT_FALSE(selector.templates);
  request.set_tag_expression("a && (b");
  EXPECT_EQ(errorOf(request), "tag_expression: position 5: '(' is not closed");
  request.set_tag_expression("a && b && c && d && e && f && g");
  EXPECT_EQ(
      errorOf(request),
      "tag_expression: position 30: the expression has 7 tags; at most 6 when it uses && or !");
  // A single tag is the expression of that tag.
  request.set_tag("news");
  EXPECT_EQ(expressionOf(request)->text(), "news");
  request.set_broadcast(true);
  EXPECT_FALSE(expressionOf(request));
}

TEST(NotificationTest, PreparedNotificationKeepsPayloadsAndRendersTemplates) {
  auto request = apnsToTag("t", R"({"aps":{}})");
  (*request.mutable_native(0)->mutable_headers())["APNS-Priority"] = "5";
  auto prepared = prepareNotification("id1", request.SerializeAsString());
  ASSERT_TRUE(prepared);
  const auto& apns = (*prepared)->native[static_cast<size_t>(registry::Platform::kApns)];
  ASSERT_TRUE(apns);
  EXPECT_EQ(apns->body, R"({"aps":{}})");
  ASSERT_EQ(apns->headers.size(), 1u);
  EXPECT_EQ(apns->headers[0].name, "apns-priority");
  EXPECT_FALSE((*prepared)->native[static_cast<size_t>(registry::Platform::kFcm)]);

  v1::SendNotificationRequest tpl;
  tpl.set_broadcast(true);
  (*tpl.mutable_template_properties())["Name"] = "Ada";
  auto with_props = prepareNotification("id2", tpl.SerializeAsString());
  ASSERT_TRUE(with_props);
  registry::InstallationTemplate t;
  t.body = R"j({"aps":{"alert":"Hi $(name)"}})j";
  t.headers["apns-push-type"] = "alert";
  auto rendered = (*with_props)->render(registry::Platform::kApns, t);
  ASSERT_TRUE(rendered.notification);
  EXPECT_EQ(rendered.notification->body, R"j({"aps":{"alert":"Hi $(name)"}})j");  // plain text
  t.body = R"j({"aps":{"alert":"{'Hi ' + $(name)}","badge":"#(n)"}})j";
  rendered = (*with_props)->render(registry::Platform::kApns, t);
  ASSERT_TRUE(rendered.notification);
  EXPECT_EQ(rendered.notification->body, R"({"aps":{"alert":"Hi Ada","badge":""}})");
  EXPECT_FALSE(prepareNotification("id3", "\xff\xff garbage"));
}

TEST(NotificationTest, RenderedPayloadsOverThePlatformLimitAreThatDevicesOutcome) {
  v1::SendNotificationRequest tpl;
  tpl.set_broadcast(true);
  (*tpl.mutable_template_properties())["big"] = std::string(2100, 'x');
  (*tpl.mutable_template_properties())["when"] = "2030-01-01T00:00:00Z";
  auto prepared = prepareNotification("id", tpl.SerializeAsString());
  ASSERT_TRUE(prepared);
  registry::InstallationTemplate t;
  // Twice the property: 4200 bytes and the JSON around it, over APNs' 4096.
  t.body = R"j({"aps":{"alert":"$(big)","x":"$(big)"}})j";
  auto r = (*prepared)->render(registry::Platform::kApns, t);
  EXPECT_FALSE(r.notification);
  EXPECT_EQ(r.failure, "InvalidNotificationSize");
  // voip pushes may be 5120 bytes; WNS takes 5000.
  t.headers["apns-push-type"] = "voip";
  EXPECT_TRUE((*prepared)->render(registry::Platform::kApns, t).notification);
  t.headers.clear();
  t.body = "<toast><a>$(big)</a><b>$(big)</b></toast>";
  t.headers["X-WNS-Type"] = "wns/toast";
  EXPECT_TRUE((*prepared)->render(registry::Platform::kWns, t).notification);
  t.body = "<toast><a>$(big)</a><b>$(big)</b><c>$(big)</c></toast>";
  EXPECT_EQ((*prepared)->render(registry::Platform::kWns, t).failure, "InvalidNotificationSize");
  // An APNs template's expiry expression becomes the notification's expiry.
  registry::InstallationTemplate apns;
  apns.body = R"j({"aps":{"alert":"x"}})j";
  apns.expiry = "$(when)";
  auto expiring = (*prepared)->render(registry::Platform::kApns, apns);
  ASSERT_TRUE(expiring.notification && expiring.notification->expiry);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(
                expiring.notification->expiry->time_since_epoch())
                .count(),
            1893456000);
}

TEST(NotificationTest, PropertiesDifferingOnlyByCaseAreRefused) {
  v1::SendNotificationRequest request;
  request.set_hub("h");
  request.set_broadcast(true);
  (*request.mutable_template_properties())["Name"] = "a";
  (*request.mutable_template_properties())["name"] = "b";
  EXPECT_NE(errorOf(request).find("template_properties"), std::string::npos) << errorOf(request);
}

TEST(NotificationTest, IdsAreUniqueHex) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(newNotificationId());
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(ids.begin()->find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace pushhub::gateway
