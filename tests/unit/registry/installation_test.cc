#include "registry/installation.h"

#include <gtest/gtest.h>

#include "registry/record_codec.h"

namespace pushhub::registry {
namespace {

const std::string kApnsToken(64, 'a');

InstallationTemplate tpl(std::string body) {
  InstallationTemplate t;
  t.body = std::move(body);
  return t;
}

Installation validApns() {
  Installation in;
  in.id = "inst-1";
  in.platform = Platform::kApns;
  in.push_channel = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
  in.tags = {"likes_hockey", "location_seattle"};
  in.user_id = "user1";
  in.templates["t1"] = {
      R"j({"aps":{"alert":"$(message)"}})j", {{"apns-priority", "10"}}, {"t1"}, ""};
  return in;
}

void expectInvalid(const Installation& in, const std::string& needle) {
  auto r = validateInstallation(in);
  ASSERT_FALSE(r) << "expected an error containing " << needle;
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(Platform, ParsesCaseInsensitively) {
  EXPECT_EQ(*parsePlatform("apns"), Platform::kApns);
  EXPECT_EQ(*parsePlatform("APNS"), Platform::kApns);
  EXPECT_EQ(*parsePlatform("fcm"), Platform::kFcm);
  EXPECT_EQ(*parsePlatform("fcmV1"), Platform::kFcm);
  EXPECT_EQ(*parsePlatform("GCM"), Platform::kFcm);
  EXPECT_EQ(*parsePlatform("Wns"), Platform::kWns);
  EXPECT_FALSE(parsePlatform("mpns"));
  EXPECT_FALSE(parsePlatform(""));
  EXPECT_EQ(toString(Platform::kApns), "apns");
  EXPECT_EQ(toString(Platform::kFcm), "fcmv1");
  EXPECT_EQ(toString(Platform::kWns), "wns");
}

TEST(ValidateTag, CharsetAndLength) {
  EXPECT_TRUE(validateTag("a"));
  EXPECT_TRUE(validateTag("A-z_0@9#.:x"));
  EXPECT_TRUE(validateTag(std::string(120, 't')));
  EXPECT_FALSE(validateTag(""));
  EXPECT_FALSE(validateTag(std::string(121, 't')));
  EXPECT_FALSE(validateTag("has space"));
  EXPECT_FALSE(validateTag("a=b"));  // '=' is an id character, not a tag character
  EXPECT_FALSE(validateTag("$UserId:{u}"));
  EXPECT_FALSE(validateTag("caf\xc3\xa9"));
}

TEST(ValidateInstallation, AcceptsAValidOnePerPlatform) {
  EXPECT_TRUE(validateInstallation(validApns()));
  Installation fcm = validApns();
  fcm.platform = Platform::kFcm;
  fcm.push_channel = "dGVzdA:APA91bH-x_y.z";
  EXPECT_TRUE(validateInstallation(fcm));
  Installation wns = validApns();
  wns.platform = Platform::kWns;
  wns.push_channel = "https://db5.notify.windows.com/?token=AwYAAAB%2b";
  wns.templates["t1"] = {
      "<toast><text>$(message)</text></toast>", {{"X-WNS-Type", "wns/toast"}}, {}, ""};
  EXPECT_TRUE(validateInstallation(wns));
}

TEST(ValidateInstallation, TemplatesAreCompiledWhenRegistered) {
  Installation in = validApns();
  in.templates["t1"].body = R"j({"aps":{"alert":"$5 off"}})j";
  expectInvalid(in, "templates[t1].body: position ");
  in.templates["t1"].body = R"j(["not an object"])j";
  expectInvalid(in, "templates[t1].body: position 0");
  in = validApns();
  in.templates["t1"].headers["apns-expiration"] = "$(a";
  expectInvalid(in, "templates[t1].headers[apns-expiration]: position ");
  in = validApns();
  in.templates["t1"].expiry = "$(a, -1)";
  expectInvalid(in, "templates[t1].expiry: position ");
  // WNS: XML, X-WNS-Type required; wns/raw takes XML or a JSON object.
  in = validApns();
  in.platform = Platform::kWns;
  in.push_channel = "https://db5.notify.windows.com/?token=x";
  in.templates["t1"] = {"<toast><text>$(m)</text></toast>", {}, {}, ""};
  expectInvalid(in, "templates[t1].headers: a WNS template needs X-WNS-Type");
  in.templates["t1"].headers["x-wns-type"] = "wns/toast";
  EXPECT_TRUE(validateInstallation(in));
  in.templates["t1"].body = R"j({"m":"$(m)"})j";
  expectInvalid(in, "templates[t1].body: position 0");
  in.templates["t1"].headers["x-wns-type"] = "wns/raw";
  EXPECT_TRUE(validateInstallation(in));
  EXPECT_EQ(templateFormat(Platform::kWns, in.templates["t1"].headers), expr::TemplateFormat::kRaw);
  EXPECT_EQ(templateFormat(Platform::kFcm, {}), expr::TemplateFormat::kJson);
}

TEST(ValidateInstallation, Id) {
  Installation in = validApns();
  in.id = "";
  expectInvalid(in, "installationId: must not be empty");
  in.id = std::string(129, 'i');
  expectInvalid(in, "installationId: longer than 128");
  in.id = std::string(128, 'i');
  EXPECT_TRUE(validateInstallation(in));
  in.id = "a=b@c#d.e:f-g_h";
  EXPECT_TRUE(validateInstallation(in));
  in.id = "a/b";
  expectInvalid(in, "installationId: character 1");
  in.id = "{x}";
  expectInvalid(in, "installationId");
}

TEST(ValidateInstallation, UserId) {
  Installation in = validApns();
  in.user_id = "";
  EXPECT_TRUE(validateInstallation(in));
  in.user_id = "me=you@x";
  EXPECT_TRUE(validateInstallation(in));
  in.user_id = std::string(129, 'u');
  expectInvalid(in, "userId: longer than 128");
  in.user_id = "a b";
  expectInvalid(in, "userId");
}

TEST(ValidateInstallation, Tags) {
  Installation in = validApns();
  in.tags.assign(60, "");
  for (size_t i = 0; i < in.tags.size(); ++i) {
    in.tags[i] = "t" + std::to_string(i);
  }
  EXPECT_TRUE(validateInstallation(in));
  in.tags.push_back("t60");
  expectInvalid(in, "tags: more than 60");
  in.tags = {"a", "b", std::string(121, 'x')};
  expectInvalid(in, "tags[2]: longer than 120 characters");
  in.tags = {"a", "a"};
  expectInvalid(in, "tags[1]: duplicate");
  in.tags = {"ok", "not ok"};
  expectInvalid(in, "tags[1]");
}

TEST(ValidateInstallation, ApnsChannel) {
  Installation in = validApns();
  in.push_channel = std::string(64, 'A');
  EXPECT_TRUE(validateInstallation(in));
  in.push_channel = std::string(200, 'f');
  EXPECT_TRUE(validateInstallation(in));
  in.push_channel = std::string(62, 'a');
  expectInvalid(in, "pushChannel");
  in.push_channel = std::string(202, 'a');
  expectInvalid(in, "pushChannel");
  in.push_channel = std::string(65, 'a');
  expectInvalid(in, "even number");
  in.push_channel = std::string(63, 'a') + "g";
  expectInvalid(in, "hex");
}

TEST(ValidateInstallation, FcmChannel) {
  Installation in = validApns();
  in.platform = Platform::kFcm;
  in.push_channel = std::string(4096, 'x');
  EXPECT_TRUE(validateInstallation(in));
  in.push_channel = std::string(4097, 'x');
  expectInvalid(in, "pushChannel: longer than 4096");
  in.push_channel = "";
  expectInvalid(in, "pushChannel: must not be empty");
  in.push_channel = "abc/def";
  expectInvalid(in, "pushChannel: character 3");
}

TEST(ValidateInstallation, WnsChannel) {
  Installation in = validApns();
  in.templates.clear();
  in.platform = Platform::kWns;
  in.push_channel = "HTTPS://host.example/path?x=1";
  EXPECT_TRUE(validateInstallation(in));
  in.push_channel = "http://host.example/path";
  expectInvalid(in, "must use https");
  in.push_channel = "not a url";
  expectInvalid(in, "pushChannel");
  in.push_channel = "https:///nohost";
  expectInvalid(in, "no host");
  in.push_channel = "https://h.example/" + std::string(2048, 'p');
  expectInvalid(in, "longer than 2048");
}

TEST(ValidateInstallation, Templates) {
  Installation in = validApns();
  for (int i = 0; i < 20; ++i) {
    in.templates["t" + std::to_string(i)] = tpl(R"({"a":"b"})");
  }
  EXPECT_TRUE(validateInstallation(in));
  in.templates["t20"] = tpl(R"({"a":"b"})");
  expectInvalid(in, "templates: more than 20");

  in = validApns();
  in.templates[std::string(65, 'n')] = tpl(R"({"a":"b"})");
  expectInvalid(in, "templates: name: longer than 64");
  in = validApns();
  in.templates["bad.name"] = tpl(R"({"a":"b"})");
  expectInvalid(in, "templates: name");
  in = validApns();
  in.templates["t1"].body = "";
  expectInvalid(in, "templates[t1].body: must not be empty");
  in.templates["t1"].body = std::string(4097, 'b');
  expectInvalid(in, "templates[t1].body: longer than 4096 bytes");
  in.templates["t1"].body = R"({"a":")" + std::string(4088, 'b') + R"("})";
  ASSERT_EQ(in.templates["t1"].body.size(), 4096u);
  EXPECT_TRUE(validateInstallation(in));
  for (int i = 0; i < 21; ++i) {
    in.templates["t1"].headers["h" + std::to_string(i)] = "v";
  }
  expectInvalid(in, "templates[t1].headers: more than 20");
  in.templates["t1"].headers = {{"X-Bad", "a\r\nb"}};
  expectInvalid(in, "templates[t1].headers[X-Bad]");
  in.templates["t1"].headers = {{"X-WNS-Type", "wns/toast"}};
  in.templates["t1"].tags = {"ok", "no way"};
  expectInvalid(in, "templates[t1].tags[1]");
}

TEST(ValidateInstallation, Times) {
  Installation in = validApns();
  in.expiration_unix = -1;
  expectInvalid(in, "expirationTime");
  in.expiration_unix = 0;
  in.last_update_ms = -5;
  expectInvalid(in, "lastUpdate");
}

TEST(ValidateHubName, Charset) {
  EXPECT_TRUE(validateHubName("my-hub_1.prod"));
  EXPECT_FALSE(validateHubName(""));
  EXPECT_FALSE(validateHubName("a{b}"));
  EXPECT_FALSE(validateHubName(std::string(51, 'h')));
}

TEST(RecordCodec, RoundTripsEveryField) {
  Installation in = validApns();
  in.expiration_unix = 4102444800;
  in.last_update_ms = 1700000000123;
  in.push_channel_expired = true;
  std::vector<codec::TemplateRef> refs{{"t1", std::string(8, '\x01')}, {"t2", "abcdefgh"}};
  std::string rec = codec::encodeRecord(in, refs);
  auto d = codec::decodeRecord(rec);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->installation.platform, in.platform);
  EXPECT_EQ(d->installation.push_channel, in.push_channel);
  EXPECT_EQ(d->installation.tags, in.tags);
  EXPECT_EQ(d->installation.user_id, in.user_id);
  EXPECT_EQ(d->installation.expiration_unix, in.expiration_unix);
  EXPECT_EQ(d->installation.last_update_ms, in.last_update_ms);
  EXPECT_TRUE(d->installation.push_channel_expired);
  ASSERT_EQ(d->templates.size(), 2u);
  EXPECT_EQ(d->templates[1].name, "t2");
  EXPECT_EQ(d->templates[1].ref, "abcdefgh");
  EXPECT_FALSE(codec::decodeRecord(rec.substr(0, rec.size() - 1)));
  EXPECT_FALSE(codec::decodeRecord(rec + "x"));
}

TEST(RecordCodec, ARegistrationKeepsItsTrailerAndHidesItsChannelTag) {
  Installation in = validApns();
  in.id = std::string(kRegistrationIdPrefix) + "1-1";
  in.registration = RegistrationInfo{true, R"({"a":"b"})"};
  in.templates.clear();  // a decode gives template refs, not templates
  ASSERT_TRUE(validateInstallation(in)) << validateInstallation(in).error().message;
  std::string rec = codec::encodeRecord(in, {});
  auto d = codec::decodeRecord(rec);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->installation, in);
  codec::RecordView view;
  ASSERT_TRUE(codec::viewRecord(rec, view));
  EXPECT_TRUE(view.registration);
  std::vector<std::string> tags;
  view.forEachTag([&](std::string_view t) { tags.emplace_back(t); });
  EXPECT_EQ(std::count(tags.begin(), tags.end(), channelTag(in.platform, in.push_channel)), 1);
  // A trailer byte without the registration bit, or with unknown bits, is corrupt.
  std::string installation = codec::encodeRecord(validApns(), {});
  for (char bad : {'\x00', '\x04', '\x81'}) {
    EXPECT_FALSE(codec::decodeRecord(installation + bad + '\x00'));
    EXPECT_FALSE(codec::viewRecord(installation + bad + '\x00', view));
  }
  // Registration ids are prefixed; installation ids never are.
  in.id = "1-1";
  EXPECT_FALSE(validateInstallation(in));
  Installation plain = validApns();
  plain.id = std::string(kRegistrationIdPrefix) + "1-1";
  EXPECT_FALSE(validateInstallation(plain));
  EXPECT_TRUE(validateRecordId(plain.id));
  EXPECT_FALSE(validateRecordId("$reg:"));
}

TEST(RecordCodec, ViewAgreesWithDecodeAndRejectsWhatItRejects) {
  Installation in = validApns();
  in.expiration_unix = 4102444800;
  in.push_channel_expired = true;
  std::vector<codec::TemplateRef> refs{{"t1", std::string(8, '\x01')}, {"t2", "abcdefgh"}};
  std::string rec = codec::encodeRecord(in, refs);
  codec::RecordView view;
  ASSERT_TRUE(codec::viewRecord(rec, view));
  EXPECT_EQ(view.platform, in.platform);
  EXPECT_EQ(view.id, in.id);
  EXPECT_EQ(view.pushChannel(), in.push_channel);
  EXPECT_EQ(view.expiration_unix, in.expiration_unix);
  EXPECT_TRUE(view.push_channel_expired);
  ASSERT_EQ(view.template_count, 2u);
  EXPECT_EQ(view.templates[0].name, "t1");
  EXPECT_EQ(view.templates[1].ref, "abcdefgh");
  // Every cut and every single-byte change is accepted by both or by neither.
  for (size_t cut = 0; cut < rec.size(); ++cut) {
    EXPECT_FALSE(codec::viewRecord(rec.substr(0, cut), view)) << cut;
  }
  EXPECT_FALSE(codec::viewRecord(rec + "x", view));
  for (size_t i = 0; i < rec.size(); ++i) {
    for (int b : {0x00, 0x7f, 0x80, 0xff}) {
      std::string bad = rec;
      bad[i] = static_cast<char>(b);
      auto decoded = codec::decodeRecord(bad);
      ASSERT_EQ(static_cast<bool>(codec::viewRecord(bad, view)), static_cast<bool>(decoded))
          << "byte " << i << " = " << b;
      if (decoded) {
        EXPECT_EQ(view.id, decoded->installation.id);
        EXPECT_EQ(view.pushChannel(), decoded->installation.push_channel);
        EXPECT_EQ(view.template_count, decoded->templates.size());
      }
    }
  }
}

TEST(RecordCodec, PacksHexChannelsAndKeepsTheirCase) {
  for (std::string channel : {std::string(64, 'a') + "09", std::string(64, 'F') + "19",
                              std::string("aB") + std::string(62, '0'), std::string("fcm:tok")}) {
    Installation in = validApns();
    in.push_channel = channel;
    auto d = codec::decodeRecord(codec::encodeRecord(in, {}));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->installation.push_channel, channel);
  }
  EXPECT_EQ(codec::packChannel(std::string(64, 'a')).second.size(), 32u);
  EXPECT_EQ(codec::packChannel("aB" + std::string(62, '0')).second.size(), 64u);  // mixed case
}

TEST(RecordCodec, TemplateRoundTripAndRef) {
  InstallationTemplate t{"<toast/>", {{"X-WNS-Type", "wns/toast"}}, {"a", "b"}, "$(exp)"};
  std::string enc = codec::encodeTemplate(t);
  auto back = codec::decodeTemplate(enc);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, t);
  EXPECT_EQ(codec::templateRef(enc).size(), codec::kTemplateRefBytes);
  EXPECT_EQ(codec::templateRef(enc), codec::templateRef(codec::encodeTemplate(t)));
  t.body = "<toast />";
  EXPECT_NE(codec::templateRef(enc), codec::templateRef(codec::encodeTemplate(t)));
}

}  // namespace
}  // namespace pushhub::registry
