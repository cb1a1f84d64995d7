#include "registry/installation_patch.h"

#include <gtest/gtest.h>

#include <limits>

namespace pushhub::registry {
namespace {

const std::string kToken = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
const std::string kOtherToken(64, 'b');
constexpr int64_t k2024 = 1704067200;  // 2024-01-01T00:00:00Z

PatchOperation add(std::string path, std::string value) {
  return {"add", std::move(path), std::move(value)};
}
PatchOperation addNoValue(std::string path) { return {"add", std::move(path), std::nullopt}; }
PatchOperation replace(std::string path, std::string value) {
  return {"replace", std::move(path), std::move(value)};
}
PatchOperation remove(std::string path) { return {"remove", std::move(path), std::nullopt}; }
PatchOperation removeWith(std::string path, std::string value) {
  return {"remove", std::move(path), std::move(value)};
}

Installation base() {
  Installation in;
  in.id = "inst-1";
  in.platform = Platform::kApns;
  in.push_channel = kToken;
  in.tags = {"likes_hockey", "location_seattle"};
  in.user_id = "user1";
  in.templates["t1"] = {
      R"j({"aps":{"alert":"$(message)"}})j", {{"apns-priority", "10"}}, {"t1"}, ""};
  in.last_update_ms = 1704067200000;
  return in;
}

// Applies `ops` to base() and expects success.
Installation patched(const std::vector<PatchOperation>& ops, const Installation& in = base()) {
  auto r = applyPatch(in, ops);
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : Installation{};
}

// Applies `ops` to base() and expects exactly `message`.
void expectError(const std::vector<PatchOperation>& ops, const std::string& message,
                 const Installation& in = base()) {
  auto r = applyPatch(in, ops);
  ASSERT_FALSE(r) << "expected: " << message;
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message, message);
}

// Applies `ops` to base() and expects an error starting with `prefix`.
void expectErrorPrefix(const std::vector<PatchOperation>& ops, const std::string& prefix,
                       const Installation& in = base()) {
  auto r = applyPatch(in, ops);
  ASSERT_FALSE(r) << "expected: " << prefix << "...";
  EXPECT_EQ(r.error().code, Error::Code::kInvalidArgument);
  EXPECT_EQ(r.error().message.substr(0, prefix.size()), prefix) << r.error().message;
}

using Tags = std::vector<std::string>;

// ---- general ----

TEST(ApplyPatch, EmptyPatchReturnsTheValidatedCopy) {
  Installation out = patched({});
  Installation expected = base();
  expected.last_update_ms = 0;
  EXPECT_EQ(out, expected);
}

TEST(ApplyPatch, ResetsLastUpdateAndKeepsIdentity) {
  Installation out = patched({add("/tags", "x")});
  EXPECT_EQ(out.last_update_ms, 0);  // Registry::upsert stamps it
  EXPECT_EQ(out.id, "inst-1");
  EXPECT_EQ(out.platform, Platform::kApns);
}

TEST(ApplyPatch, TheSdkCapturedPatch) {
  // anh-wire.md 6.4, with a channel that is a valid APNs token.
  Installation out = patched({add("/tags", "likes_football"), remove("/tags/likes_hockey"),
                              replace("/pushChannel", kOtherToken)});
  EXPECT_EQ(out.tags, (Tags{"location_seattle", "likes_football"}));
  EXPECT_EQ(out.push_channel, kOtherToken);
  // As captured ("abcd") the channel is no APNs token; validation says so.
  expectErrorPrefix({add("/tags", "likes_football"), remove("/tags/likes_hockey"),
                     replace("/pushChannel", "abcd")},
                    "pushChannel: APNs device token must be 64-200 hex characters");
}

TEST(ApplyPatch, OpsApplyInOrder) {
  Installation out = patched({add("/tags", "a"), remove("/tags/a"), add("/tags", "b")});
  EXPECT_EQ(out.tags, (Tags{"likes_hockey", "location_seattle", "b"}));
  out = patched({remove("/tags"), add("/tags", "z"), add("/tags", "y")});
  EXPECT_EQ(out.tags, (Tags{"z", "y"}));
}

TEST(ApplyPatch, OpIsCaseInsensitive) {
  Installation out = patched(
      {{"ADD", "/tags", "a"}, {"Remove", "/userId", std::nullopt}, {"rePlace", "/tags/a", "b"}});
  EXPECT_EQ(out.tags, (Tags{"likes_hockey", "location_seattle", "b"}));
  EXPECT_EQ(out.user_id, "");
}

TEST(ApplyPatch, UnsupportedOps) {
  expectError({add("/tags", "a"), {"move", "/tags", "b"}},
              "operations[1].op: 'move' is not supported; use add, remove or replace");
  expectError({{"copy", "/tags", "b"}},
              "operations[0].op: 'copy' is not supported; use add, remove or replace");
  expectError({{"test", "/tags", "b"}},
              "operations[0].op: 'test' is not supported; use add, remove or replace");
  expectError({{"", "/tags", "b"}},
              "operations[0].op: '' is not supported; use add, remove or replace");
  expectError({{"add\n", "/tags", "b"}},
              "operations[0].op: 'add?' is not supported; use add, remove or replace");
}

TEST(ApplyPatch, MissingValueForAddAndReplace) {
  expectError({add("/tags", "a"), addNoValue("/userId")}, "operations[1].value: required for add");
  expectError({{"replace", "/pushChannel", std::nullopt}},
              "operations[0].value: required for replace");
  expectError({addNoValue("/templates/t2")}, "operations[0].value: required for add");
  expectError({addNoValue("/tags")}, "operations[0].value: required for add");
}

TEST(ApplyPatch, OperationLimit) {
  std::vector<PatchOperation> ops(kMaxPatchOperations, add("/tags", "a"));
  EXPECT_TRUE(applyPatch(base(), ops));
  ops.push_back(add("/tags", "a"));
  expectError(ops,
              "operations: more than 100 operations; send the whole installation with PUT "
              "instead");
}

TEST(ApplyPatch, ValueSizeLimit) {
  std::string big(kMaxPatchValueBytes + 1, 'a');
  expectError({add("/tags", "a"), add("/userId", big)},
              "operations[1].value: longer than 65536 bytes");
  // At the limit the value is read (and here refused by validation, not by size).
  expectErrorPrefix({add("/userId", std::string(kMaxPatchValueBytes, 'a'))},
                    "userId: longer than 128 characters");
}

TEST(ApplyPatch, ErrorChangesNothingAndALaterPatchWorks) {
  const Installation in = base();
  auto failed = applyPatch(in, {add("/tags", "new"), remove("/pushChannel")});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message,
            "operations[1].op: remove '/pushChannel' is refused: pushChannel is required; "
            "replace it");
  EXPECT_EQ(in, base());
  Installation out = patched({add("/tags", "new")}, in);
  EXPECT_EQ(out.tags, (Tags{"likes_hockey", "location_seattle", "new"}));
  EXPECT_EQ(out.push_channel, kToken);
}

TEST(ApplyPatch, ValidationErrorIsReturnedAsIs) {
  expectError({add("/tags", "bad tag")}, "tags[2]: character 3 is not one of [A-Za-z0-9_@#.:-]");
  expectError({add("/userId", "a b")}, "userId: character 1 is not one of [A-Za-z0-9_@#.:=-]");
  expectError({add("/templates/t1/tags", "")}, "templates[t1].tags[1]: must not be empty");
  // The input itself is validated too, even with no operations.
  Installation broken = base();
  broken.tags.push_back("likes_hockey");
  expectError({}, "tags[2]: duplicate tag \"likes_hockey\"", broken);
}

// ---- paths ----

TEST(Paths, RefusedPathsNameThePathAndTheAllowedOnes) {
  const std::string allowed =
      "patchable paths are /tags, /tags/{tag}, /userId, /pushChannel, /expirationTime, "
      "/templates/{name}, /templates/{name}/body, /templates/{name}/headers, "
      "/templates/{name}/headers/{header}, /templates/{name}/expiry, /templates/{name}/tags, "
      "/templates/{name}/tags/{tag}";
  expectError({add("/tags", "a"), replace("/platform", "fcm")},
              "operations[1].path: '/platform' cannot be patched; " + allowed);
  for (const char* path :
       {"/installationId", "/pushVariables", "/pushVariables/v1", "/secondaryTiles",
        "/secondaryTiles/tile/tags", "/user", "/appId", "/advertisingId", "/templates", "/tags/a/b",
        "/userId/x", "/pushChannelExpired", "/lastUpdate", "/templates/t1/bogus",
        "/templates/t1/headers/a/b", "/templates/t1/tags/a/b", "/templates/t1/body/x",
        "/templates/t1/expiry/x"}) {
    expectError({add(path, "x")},
                std::string("operations[0].path: '") + path + "' cannot be patched; " + allowed);
  }
  expectError({remove("/installationId")},
              "operations[0].path: '/installationId' cannot be patched; " + allowed);
}

TEST(Paths, Malformed) {
  expectError({add("tags", "a")}, "operations[0].path: 'tags' must start with '/'");
  expectError({add("", "a")}, "operations[0].path: '' must start with '/'");
  expectError({add("/", "a")}, "operations[0].path: '/' has an empty segment");
  expectError({add("/tags/", "a")}, "operations[0].path: '/tags/' has an empty segment");
  expectError({add("//tags", "a")}, "operations[0].path: '//tags' has an empty segment");
  expectError({add("/tags/a~2b", "a")},
              "operations[0].path: '/tags/a~2b' has a '~' that is not ~0 or ~1 (RFC 6901)");
  expectError({add("/tags/a~", "a")},
              "operations[0].path: '/tags/a~' has a '~' that is not ~0 or ~1 (RFC 6901)");
  std::string long_path = "/tags/" + std::string(kMaxPatchPathBytes, 'a');
  expectError({remove(long_path)}, "operations[0].path: longer than 512 bytes");
}

TEST(Paths, LongTextIsCutInMessages) {
  std::string path = "/" + std::string(200, 'p');
  expectErrorPrefix({add(path, "x")},
                    "operations[0].path: '/" + std::string(79, 'p') + "...' cannot be patched");
  // Not inside a UTF-8 sequence: "\xc3\xa9" would straddle the 80-byte cut.
  path = "/" + std::string(78, 'p') + "\xc3\xa9" + std::string(100, 'p');
  expectErrorPrefix({add(path, "x")},
                    "operations[0].path: '/" + std::string(78, 'p') + "...' cannot be patched");
}

TEST(Paths, FieldNamesAreCaseInsensitiveNamesAreNot) {
  Installation out =
      patched({add("/Tags", "a"), replace("/PUSHCHANNEL", kOtherToken), add("/userid", "u2"),
               add("/Templates/t1/Body", "{}"), add("/TEMPLATES/t1/HEADERS/x-h", "v")});
  EXPECT_EQ(out.tags.back(), "a");
  EXPECT_EQ(out.push_channel, kOtherToken);
  EXPECT_EQ(out.user_id, "u2");
  EXPECT_EQ(out.templates.at("t1").body, "{}");
  EXPECT_EQ(out.templates.at("t1").headers.at("x-h"), "v");
  // Template names and tags are data: T1 is another template, Likes_Hockey another tag.
  out = patched({add("/templates/T1/body", "{}"), remove("/tags/Likes_Hockey")});
  EXPECT_EQ(out.templates.size(), 2u);
  EXPECT_EQ(out.templates.at("T1").body, "{}");
  EXPECT_EQ(out.tags, (Tags{"likes_hockey", "location_seattle"}));
}

TEST(Paths, PointerEscapesAreDecoded) {
  Installation out = patched({add("/templates/t1/headers/a~1b~0c", "v")});
  EXPECT_EQ(out.templates.at("t1").headers.at("a/b~c"), "v");
}

// ---- /tags ----

TEST(Tags, AddOneAppends) {
  EXPECT_EQ(patched({add("/tags", "likes_football")}).tags,
            (Tags{"likes_hockey", "location_seattle", "likes_football"}));
}

TEST(Tags, AddPresentTagIsNoOp) {
  EXPECT_EQ(patched({add("/tags", "likes_hockey")}).tags,
            (Tags{"likes_hockey", "location_seattle"}));
}

TEST(Tags, AddCreatesTheList) {
  Installation in = base();
  in.tags.clear();
  EXPECT_EQ(patched({add("/tags", "a")}, in).tags, (Tags{"a"}));
}

TEST(Tags, AddArrayAppendsAllWithoutDuplicates) {
  EXPECT_EQ(patched({add("/tags", R"(["a","likes_hockey","b","a"])")}).tags,
            (Tags{"likes_hockey", "location_seattle", "a", "b"}));
  EXPECT_EQ(patched({add("/tags", "[]")}).tags, (Tags{"likes_hockey", "location_seattle"}));
  // Only text opening with '[' is an array; anything else is one tag.
  expectError({add("/tags", " [\"a\"]")}, "tags[2]: character 0 is not one of [A-Za-z0-9_@#.:-]");
}

TEST(Tags, ReplaceSetsTheList) {
  EXPECT_EQ(patched({replace("/tags", R"(["x","y","x"])")}).tags, (Tags{"x", "y"}));
  EXPECT_EQ(patched({replace("/tags", "solo")}).tags, (Tags{"solo"}));
  EXPECT_EQ(patched({replace("/tags", "[]")}).tags, Tags{});
}

TEST(Tags, RemoveAll) {
  EXPECT_EQ(patched({remove("/tags")}).tags, Tags{});
  EXPECT_EQ(patched({removeWith("/tags", "")}).tags, Tags{});
  Installation in = base();
  in.tags.clear();
  EXPECT_EQ(patched({remove("/tags")}, in).tags, Tags{});
}

TEST(Tags, RemoveAllWithAValueIsRefused) {
  expectError({removeWith("/tags", "likes_hockey")},
              "operations[0].value: remove '/tags' removes every tag and takes no value; to "
              "remove one tag, remove '/tags/{tag}'");
}

TEST(Tags, RemoveOneByValue) {
  EXPECT_EQ(patched({remove("/tags/location_seattle")}).tags, (Tags{"likes_hockey"}));
  EXPECT_EQ(patched({remove("/tags/missing")}).tags, (Tags{"likes_hockey", "location_seattle"}));
  EXPECT_EQ(patched({remove("/tags/likes_hockey"), remove("/tags/location_seattle")}).tags, Tags{});
  // A value on remove is ignored (not used to pick the tag).
  EXPECT_EQ(patched({removeWith("/tags/likes_hockey", "location_seattle")}).tags,
            (Tags{"location_seattle"}));
}

TEST(Tags, AddByPath) {
  EXPECT_EQ(patched({addNoValue("/tags/new")}).tags,
            (Tags{"likes_hockey", "location_seattle", "new"}));
  EXPECT_EQ(patched({add("/tags/new", "new")}).tags.back(), "new");
  EXPECT_EQ(patched({addNoValue("/tags/likes_hockey")}).tags.size(), 2u);
  expectError({add("/tags/new", "other")},
              "operations[0].value: add '/tags/new' adds the tag named in the path; send no "
              "value, or add other tags with add on the list");
}

TEST(Tags, ReplaceByPathRenamesInPlace) {
  EXPECT_EQ(patched({replace("/tags/likes_hockey", "likes_curling")}).tags,
            (Tags{"likes_curling", "location_seattle"}));
  // Missing: replace = remove + add, so the value is added.
  EXPECT_EQ(patched({replace("/tags/missing", "z")}).tags,
            (Tags{"likes_hockey", "location_seattle", "z"}));
  // Onto a tag that is present: the old one just goes.
  EXPECT_EQ(patched({replace("/tags/likes_hockey", "location_seattle")}).tags,
            (Tags{"location_seattle"}));
  EXPECT_EQ(patched({replace("/tags/likes_hockey", "likes_hockey")}).tags,
            (Tags{"likes_hockey", "location_seattle"}));
  expectError({replace("/tags/likes_hockey", R"(["a"])")},
              "operations[0].value: expected a string, got an array");
}

TEST(Tags, WrongValueTypes) {
  expectError({add("/tags", R"(["a",1])")},
              "operations[0].value[1]: expected a string, got a number");
  expectError({add("/tags", R"(["a",null])")},
              "operations[0].value[1]: expected a string, got null");
  expectError({add("/tags", R"(["a",["b"]])")},
              "operations[0].value[1]: expected a string, got an array");
  expectError({add("/tags", R"({"a":1})")},
              "operations[0].value: expected a tag or an array of tags, got an object");
  expectErrorPrefix({add("/tags", R"(["a",)")}, "operations[0].value: malformed JSON (");
  expectErrorPrefix({add("/tags", R"(["a"] x)")}, "operations[0].value: malformed JSON (");
  expectErrorPrefix({add("/tags", R"([[[[["a"]]]]])")}, "operations[0].value: malformed JSON (");
}

TEST(Tags, LimitIsEnforcedWhileApplying) {
  std::string many = "[";
  for (int i = 0; i < 1000; ++i) {
    many += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  }
  many += "]";
  expectError({add("/tags", many)}, "operations[0].value: tags would have more than 60 tags");
  // Exactly 60 is fine.
  std::string sixty = "[";
  for (int i = 0; i < 60; ++i) {
    sixty += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  }
  sixty += "]";
  EXPECT_EQ(patched({replace("/tags", sixty)}).tags.size(), 60u);
  expectError({replace("/tags", sixty), add("/tags", "one_more")},
              "operations[1].value: tags would have more than 60 tags");
}

// ---- /userId ----

TEST(UserId, AddReplaceRemove) {
  EXPECT_EQ(patched({add("/userId", "u2")}).user_id, "u2");
  EXPECT_EQ(patched({replace("/userId", "u3")}).user_id, "u3");
  EXPECT_EQ(patched({remove("/userId")}).user_id, "");
  EXPECT_EQ(patched({add("/userId", "")}).user_id, "");
  Installation in = base();
  in.user_id.clear();
  EXPECT_EQ(patched({replace("/userId", "u4")}, in).user_id, "u4");  // replace on missing
  EXPECT_EQ(patched({remove("/userId")}, in).user_id, "");
}

TEST(UserId, WrongType) {
  expectError({add("/userId", R"(["u"])")}, "operations[0].value: expected a string, got an array");
  expectError({add("/userId", R"({"u":1})")},
              "operations[0].value: expected a string, got an object");
}

// ---- /pushChannel ----

TEST(PushChannel, AddAndReplaceSetItAndResetExpired) {
  Installation in = base();
  in.push_channel_expired = true;
  Installation out = patched({replace("/pushChannel", kOtherToken)}, in);
  EXPECT_EQ(out.push_channel, kOtherToken);
  EXPECT_FALSE(out.push_channel_expired);
  out = patched({add("/pushChannel", kToken)}, in);  // the same channel, re-registered
  EXPECT_EQ(out.push_channel, kToken);
  EXPECT_FALSE(out.push_channel_expired);
  // Other patches leave the flag alone.
  EXPECT_TRUE(patched({add("/tags", "a")}, in).push_channel_expired);
}

TEST(PushChannel, RemoveIsRefused) {
  expectError({remove("/pushChannel")},
              "operations[0].op: remove '/pushChannel' is refused: pushChannel is required; "
              "replace it");
}

TEST(PushChannel, ValidatedForThePlatform) {
  expectError({replace("/pushChannel", "")},
              "pushChannel: APNs device token must be 64-200 hex characters");
  expectError({replace("/pushChannel", R"({"endpoint":"https://x"})")},
              "operations[0].value: expected a string, got an object");
  Installation wns = base();
  wns.platform = Platform::kWns;
  wns.templates.clear();
  wns.push_channel = "https://db5.notify.windows.com/?token=a";
  EXPECT_EQ(patched({replace("/pushChannel", "https://db5.notify.windows.com/?token=b")}, wns)
                .push_channel,
            "https://db5.notify.windows.com/?token=b");
  expectError({replace("/pushChannel", "http://x.example/")},
              "pushChannel: WNS channel URI must use https", wns);
}

// ---- /expirationTime ----

TEST(ExpirationTime, AddReplaceRemove) {
  EXPECT_EQ(patched({add("/expirationTime", "2030-01-01T00:00:00Z")}).expiration_unix, 1893456000);
  EXPECT_EQ(patched({replace("/expirationTime", "2030-01-01T01:00:00+01:00")}).expiration_unix,
            1893456000);
  Installation in = base();
  in.expiration_unix = 1893456000;
  EXPECT_EQ(patched({remove("/expirationTime")}, in).expiration_unix, 0);
  EXPECT_EQ(patched({add("/expirationTime", "9999-12-31T23:59:59.9999999Z")}, in).expiration_unix,
            0);
}

TEST(ExpirationTime, PastTimesAreStored) {
  EXPECT_EQ(patched({add("/expirationTime", "2001-09-09T01:46:40Z")}).expiration_unix, 1000000000);
}

TEST(ExpirationTime, BadTimesNameTheValue) {
  expectError({add("/tags", "a"), add("/expirationTime", "2024-13-01T00:00:00Z")},
              "operations[1].value: '2024-13-01T00:00:00Z' is not a calendar date");
  expectError({add("/expirationTime", "2024-01-01T00:00:00")},
              "operations[0].value: '2024-01-01T00:00:00' has no UTC offset; end it with 'Z' or "
              "+hh:mm");
  expectError({add("/expirationTime", "[1]")},
              "operations[0].value: expected a string, got an array");
}

// ---- /templates/{name} ----

TEST(Templates, AddWholeTemplate) {
  Installation out =
      patched({add("/templates/t2",
                   R"j({"body":"{\"aps\":{\"alert\":\"$(m)\"}}","headers":{"apns-priority":"5"},)j"
                   R"j("expiry":"$(exp)","tags":["a","b","a"]})j")});
  ASSERT_EQ(out.templates.count("t2"), 1u);
  const InstallationTemplate& t = out.templates.at("t2");
  EXPECT_EQ(t.body, R"j({"aps":{"alert":"$(m)"}})j");
  EXPECT_EQ(t.headers, (std::map<std::string, std::string>{{"apns-priority", "5"}}));
  EXPECT_EQ(t.expiry, "$(exp)");
  EXPECT_EQ(t.tags, (Tags{"a", "b"}));
  EXPECT_EQ(out.templates.at("t1"), base().templates.at("t1"));
}

TEST(Templates, StringValueHoldingTheObjectText) {
  // Azure's docs send the template as a JSON string; its content reaches us as the same text.
  Installation out = patched({add("/templates/t2", R"({"body": "{}", "tags": ["tag"]})")});
  EXPECT_EQ(out.templates.at("t2").body, "{}");
  EXPECT_EQ(out.templates.at("t2").tags, (Tags{"tag"}));
}

TEST(Templates, AddOrReplaceOverwritesAndCreates) {
  Installation out = patched({add("/templates/t1", R"({"body":"{\"n\":1}"})")});
  EXPECT_EQ(out.templates.at("t1"), (InstallationTemplate{R"({"n":1})", {}, {}, ""}));
  out = patched({replace("/templates/t1", R"({"body":"{\"n\":2}"})")});
  EXPECT_EQ(out.templates.at("t1").body, R"({"n":2})");
  out = patched({replace("/templates/t9", R"({"body":"{}"})")});  // replace on missing
  EXPECT_EQ(out.templates.at("t9").body, "{}");
}

TEST(Templates, Remove) {
  EXPECT_TRUE(patched({remove("/templates/t1")}).templates.empty());
  EXPECT_EQ(patched({remove("/templates/missing")}).templates.size(), 1u);
}

TEST(Templates, MembersAreCaseInsensitiveAndNullIsAbsent) {
  Installation out =
      patched({add("/templates/t2", R"({"Body":"{}","Headers":null,"Expiry":null,"TAGS":null})")});
  EXPECT_EQ(out.templates.at("t2"), (InstallationTemplate{"{}", {}, {}, ""}));
}

TEST(Templates, BadTemplateValues) {
  expectError({add("/templates/t2", R"({"headers":{}})")}, "operations[0].value.body: required");
  expectError({add("/templates/t2", R"({"body":null})")}, "operations[0].value.body: required");
  expectError({add("/templates/t2", R"({"body":{"aps":{}}})")},
              "operations[0].value.body: expected a string, got an object");
  expectError({add("/templates/t2", R"({"body":"b","headers":["h"]})")},
              "operations[0].value.headers: expected an object, got an array");
  expectError({add("/templates/t2", R"({"body":"b","headers":{"X-A":1}})")},
              "operations[0].value.headers.X-A: expected a string, got a number");
  expectError({add("/templates/t2", R"({"body":"b","headers":{"x-a":"1","X-A":"2"}})")},
              "operations[0].value.headers: header 'X-A' is given twice (header names are "
              "case-insensitive)");
  expectError({add("/templates/t2", R"({"body":"b","expiry":5})")},
              "operations[0].value.expiry: expected a string, got a number");
  expectError({add("/templates/t2", R"({"body":"b","tags":"a"})")},
              "operations[0].value.tags: expected an array, got a string");
  expectError({add("/templates/t2", R"({"body":"b","tags":["a",true]})")},
              "operations[0].value.tags[1]: expected a string, got a boolean");
  expectError({add("/templates/t2", R"({"body":"b","bodyy":"c"})")},
              "operations[0].value.bodyy: unknown template member; expected body, headers, "
              "expiry or tags");
  expectError({add("/templates/t2", "just text")},
              "operations[0].value: expected a template object like {\"body\": \"...\", "
              "\"headers\": {...}, \"expiry\": \"...\", \"tags\": [...]}");
  expectError({add("/templates/t2", R"(["body"])")},
              "operations[0].value: expected a template object like {\"body\": \"...\", "
              "\"headers\": {...}, \"expiry\": \"...\", \"tags\": [...]}");
  expectErrorPrefix({add("/templates/t2", R"({"body":"b")")},
                    "operations[0].value: malformed JSON (");
  expectErrorPrefix({add("/templates/t2", R"({"body":"b","headers":{"a":{"b":{"c":{}}}}})")},
                    "operations[0].value: malformed JSON (");
}

TEST(Templates, TemplateNameAndContentAreValidated) {
  expectErrorPrefix({add("/templates/bad.name", R"({"body":"b"})")},
                    "templates: name: character 3 is not one of [A-Za-z0-9_-]");
  expectError({add("/templates/t2", R"({"body":""})")}, "templates[t2].body: must not be empty");
}

TEST(Templates, LimitIsEnforcedWhileApplying) {
  std::vector<PatchOperation> ops;
  for (size_t i = 1; i < kMaxTemplates; ++i) {
    ops.push_back(add("/templates/n" + std::to_string(i), R"({"body":"{}"})"));
  }
  EXPECT_EQ(patched(ops).templates.size(), kMaxTemplates);
  ops.push_back(add("/templates/one_more", R"({"body":"b"})"));
  expectError(ops, "operations[19].path: the installation would have more than 20 templates");
  // Replacing an existing one at the limit is fine.
  ops.back() = replace("/templates/t1", R"({"body":"{\"c\":1}"})");
  EXPECT_EQ(patched(ops).templates.at("t1").body, R"({"c":1})");
}

// ---- /templates/{name}/... ----

TEST(TemplateParts, Body) {
  EXPECT_EQ(patched({add("/templates/t1/body", "{\"aps\":{}}")}).templates.at("t1").body,
            "{\"aps\":{}}");
  EXPECT_EQ(patched({replace("/templates/t1/body", "{}")}).templates.at("t1").body, "{}");
  // The registry compiles the template: a body that is no template of its platform is refused.
  expectError({replace("/templates/t1/body", "plain")},
              "templates[t1].body: position 0: the top level of a JSON template must be an object");
  expectError({remove("/templates/t1/body")},
              "operations[0].op: remove '/templates/t1/body' is refused: a template needs a body; "
              "replace it, or remove '/templates/t1'");
  expectError({remove("/templates/missing/body")},
              "operations[0].op: remove '/templates/missing/body' is refused: a template needs a "
              "body; replace it, or remove '/templates/missing'");
  expectError({addNoValue("/templates/t1/body")}, "operations[0].value: required for add");
}

TEST(TemplateParts, HeadersObjectReplacesTheWholeSet) {
  Installation out = patched({add("/templates/t1/headers", R"({"apns-push-type":"alert"})")});
  EXPECT_EQ(out.templates.at("t1").headers,
            (std::map<std::string, std::string>{{"apns-push-type", "alert"}}));
  out = patched({replace("/templates/t1/headers", "{}")});
  EXPECT_TRUE(out.templates.at("t1").headers.empty());
  out = patched({remove("/templates/t1/headers")});
  EXPECT_TRUE(out.templates.at("t1").headers.empty());
  expectError({add("/templates/t1/headers", "x")},
              "operations[0].value: expected an object of header names to values");
  expectError({add("/templates/t1/headers", R"(["x"])")},
              "operations[0].value: expected an object of header names to values");
  expectError({add("/templates/t1/headers", R"({"a":false})")},
              "operations[0].value.a: expected a string, got a boolean");
  std::string many = "{";
  for (size_t i = 0; i <= kMaxTemplateHeaders; ++i) {
    many += (i ? ",\"h" : "\"h") + std::to_string(i) + "\":\"v\"";
  }
  many += "}";
  expectError({add("/templates/t1/headers", many)}, "operations[0].value: more than 20 headers");
}

TEST(TemplateParts, OneHeader) {
  Installation out = patched({add("/templates/t1/headers/apns-expiration", "0")});
  EXPECT_EQ(
      out.templates.at("t1").headers,
      (std::map<std::string, std::string>{{"apns-expiration", "0"}, {"apns-priority", "10"}}));
  // Header names match case-insensitively; the path's spelling is kept.
  out = patched({replace("/templates/t1/headers/APNS-Priority", "5")});
  EXPECT_EQ(out.templates.at("t1").headers,
            (std::map<std::string, std::string>{{"APNS-Priority", "5"}}));
  out = patched({remove("/templates/t1/headers/Apns-Priority")});
  EXPECT_TRUE(out.templates.at("t1").headers.empty());
  out = patched({remove("/templates/t1/headers/missing")});
  EXPECT_EQ(out.templates.at("t1").headers.size(), 1u);
  expectError({add("/templates/t1/headers/x", R"({"a":"b"})")},
              "operations[0].value: expected a string, got an object");
  expectError({add("/templates/t1/headers/x", "a\r\nb")},
              "templates[t1].headers[x]: value has a control character (line breaks included; "
              "only tab is allowed)");
  expectError({add("/templates/t1/headers/x", "a\x0b")},
              "templates[t1].headers[x]: value has a control character (line breaks included; "
              "only tab is allowed)");
}

TEST(TemplateParts, OneHeaderLimit) {
  std::vector<PatchOperation> ops;
  for (size_t i = 1; i < kMaxTemplateHeaders; ++i) {
    ops.push_back(add("/templates/t1/headers/h" + std::to_string(i), "v"));
  }
  EXPECT_EQ(patched(ops).templates.at("t1").headers.size(), kMaxTemplateHeaders);
  ops.push_back(add("/templates/t1/headers/h1", "again"));  // present: replaced, not added
  EXPECT_EQ(patched(ops).templates.at("t1").headers.at("h1"), "again");
  ops.push_back(add("/templates/t1/headers/one-more", "v"));
  expectError(ops, "operations[20].value: the template would have more than 20 headers");
}

TEST(TemplateParts, Expiry) {
  EXPECT_EQ(patched({add("/templates/t1/expiry", "$(exp)")}).templates.at("t1").expiry, "$(exp)");
  Installation in = base();
  in.templates.at("t1").expiry = "x";
  EXPECT_EQ(patched({replace("/templates/t1/expiry", "y")}, in).templates.at("t1").expiry, "y");
  EXPECT_EQ(patched({remove("/templates/t1/expiry")}, in).templates.at("t1").expiry, "");
  expectError({add("/templates/t1/expiry", "[1]")},
              "operations[0].value: expected a string, got an array");
  expectError({add("/templates/t1/expiry", std::string(257, 'e'))},
              "templates[t1].expiry: longer than 256 bytes");
}

TEST(TemplateParts, TagsBehaveLikeTopLevelTags) {
  auto tags = [](const Installation& in) { return in.templates.at("t1").tags; };
  EXPECT_EQ(tags(patched({add("/templates/t1/tags", "a")})), (Tags{"t1", "a"}));
  EXPECT_EQ(tags(patched({add("/templates/t1/tags", R"(["a","t1","b"])")})),
            (Tags{"t1", "a", "b"}));
  EXPECT_EQ(tags(patched({replace("/templates/t1/tags", R"(["x"])")})), (Tags{"x"}));
  EXPECT_EQ(tags(patched({remove("/templates/t1/tags")})), Tags{});
  EXPECT_EQ(tags(patched({remove("/templates/t1/tags/t1")})), Tags{});
  EXPECT_EQ(tags(patched({remove("/templates/t1/tags/missing")})), (Tags{"t1"}));
  EXPECT_EQ(tags(patched({addNoValue("/templates/t1/tags/n")})), (Tags{"t1", "n"}));
  EXPECT_EQ(tags(patched({replace("/templates/t1/tags/t1", "renamed")})), (Tags{"renamed"}));
  // Top-level tags are untouched.
  EXPECT_EQ(patched({add("/templates/t1/tags", "a")}).tags,
            (Tags{"likes_hockey", "location_seattle"}));
  expectError({removeWith("/templates/t1/tags", "t1")},
              "operations[0].value: remove '/templates/t1/tags' removes every tag and takes no "
              "value; to remove one tag, remove '/templates/t1/tags/{tag}'");
  expectError({add("/templates/t1/tags/n", "m")},
              "operations[0].value: add '/templates/t1/tags/n' adds the tag named in the path; "
              "send no value, or add other tags with add on the list");
  std::string many = "[";
  for (int i = 0; i < 61; ++i) {
    many += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  }
  many += "]";
  expectError({replace("/templates/t1/tags", many)},
              "operations[0].value: templates[t1].tags would have more than 60 tags");
  expectError({add("/templates/t2", R"({"body":"b","tags":)" + many + "}")},
              "operations[0].value: templates[t2].tags would have more than 60 tags");
}

TEST(TemplateParts, SubPathOfAMissingTemplate) {
  // add/replace create the template; it needs a body by the end of the patch.
  Installation out = patched({add("/templates/t2/tags", "x"), add("/templates/t2/body", "{}")});
  EXPECT_EQ(out.templates.at("t2"), (InstallationTemplate{"{}", {}, {"x"}, ""}));
  out = patched({replace("/templates/t3/body", "{}")});
  EXPECT_EQ(out.templates.at("t3").body, "{}");
  expectError({add("/templates/t2/headers/h", "v")}, "templates[t2].body: must not be empty");
  // remove under a missing template is a no-op and creates nothing.
  for (const char* path : {"/templates/t2/headers", "/templates/t2/headers/h",
                           "/templates/t2/expiry", "/templates/t2/tags", "/templates/t2/tags/x"}) {
    EXPECT_EQ(patched({remove(path)}).templates.size(), 1u) << path;
  }
}

// ---- times ----

TEST(ParseIsoTime, Accepted) {
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00Z", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00.5Z", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00.9999999Z", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00.123456789012Z", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00+00:00", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T00:00:00-00:00", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01t00:00:00z", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-01-01T05:30:00+05:30", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2023-12-31T16:00:00.000-08:00", "t"), k2024);
  EXPECT_EQ(*parseIsoTime("2024-02-29T00:00:00Z", "t"), k2024 + 59 * 86400);
  EXPECT_EQ(*parseIsoTime("2000-02-29T12:00:00Z", "t"), 951825600);
  EXPECT_EQ(*parseIsoTime("1970-01-01T00:00:01Z", "t"), 1);
  EXPECT_EQ(*parseIsoTime("2001-09-09T01:46:40Z", "t"), 1000000000);
}

TEST(ParseIsoTime, NeverIsZero) {
  EXPECT_EQ(*parseIsoTime("9999-12-31T23:59:59.9999999Z", "t"), 0);
  EXPECT_EQ(*parseIsoTime("9999-12-31T23:59:59Z", "t"), 0);
  EXPECT_EQ(*parseIsoTime("9999-12-31T22:59:59-01:00", "t"), 0);
  EXPECT_EQ(*parseIsoTime("9999-12-31T23:59:58Z", "t"), 253402300798);
}

TEST(ParseIsoTime, Refused) {
  auto message = [](std::string_view text) {
    auto r = parseIsoTime(text, "expirationTime");
    EXPECT_FALSE(r) << text;
    return r ? std::string() : r.error().message;
  };
  const std::string shape =
      "' is not an RFC 3339 time like 2024-01-31T23:59:59Z (YYYY-MM-DDThh:mm:ss[.fff] and 'Z' "
      "or +hh:mm)";
  EXPECT_EQ(message("2024-13-01T00:00:00Z"),
            "expirationTime: '2024-13-01T00:00:00Z' is not a calendar date");
  EXPECT_EQ(message("2024-00-01T00:00:00Z"),
            "expirationTime: '2024-00-01T00:00:00Z' is not a calendar date");
  EXPECT_EQ(message("2024-01-32T00:00:00Z"),
            "expirationTime: '2024-01-32T00:00:00Z' is not a calendar date");
  EXPECT_EQ(message("2023-02-29T00:00:00Z"),
            "expirationTime: '2023-02-29T00:00:00Z' is not a calendar date");
  EXPECT_EQ(message("2100-02-29T00:00:00Z"),
            "expirationTime: '2100-02-29T00:00:00Z' is not a calendar date");
  const std::string tod = "' is not a time of day (hours 00-23, minutes and seconds 00-59)";
  EXPECT_EQ(message("2024-01-01T24:00:00Z"), "expirationTime: '2024-01-01T24:00:00Z" + tod);
  EXPECT_EQ(message("2024-01-01T23:60:00Z"), "expirationTime: '2024-01-01T23:60:00Z" + tod);
  EXPECT_EQ(message("2016-12-31T23:59:60Z"), "expirationTime: '2016-12-31T23:59:60Z" + tod);
  EXPECT_EQ(message("2024-01-01T00:00:00"),
            "expirationTime: '2024-01-01T00:00:00' has no UTC offset; end it with 'Z' or +hh:mm");
  EXPECT_EQ(message("2024-01-01T00:00:00.123"),
            "expirationTime: '2024-01-01T00:00:00.123' has no UTC offset; end it with 'Z' or "
            "+hh:mm");
  EXPECT_EQ(message("2024-01-01"),
            "expirationTime: '2024-01-01' has no time of day; add one, e.g. T00:00:00Z");
  EXPECT_EQ(message("2024-01-01T00:00:00+24:00"),
            "expirationTime: '2024-01-01T00:00:00+24:00' has an offset beyond +-23:59");
  EXPECT_EQ(message("2024-01-01T00:00:00+05:60"),
            "expirationTime: '2024-01-01T00:00:00+05:60' has an offset beyond +-23:59");
  for (std::string_view text : {"",
                                "2024",
                                "2024-01-01 00:00:00Z",
                                "2024-1-01T00:00:00Z",
                                "2024-01-01T0:00:00Z",
                                "2024-01-01T00:00Z",
                                "2024-01-01T00:00:00.Z",
                                "2024-01-01T00:00:00+0530",
                                "2024-01-01T00:00:00+05",
                                "2024-01-01T00:00:00Zx",
                                "2024-01-01T00:00:00ZZ",
                                " 2024-01-01T00:00:00Z",
                                "2024-01-01T00:00:00Z ",
                                "2024/01/01T00:00:00Z",
                                "+2024-01-01T00:00:00Z",
                                "2024-01-01T00:00:00 UTC",
                                "2024-01-01T00:00:00GMT",
                                "2024-01-01T00:00:00.1.2Z",
                                "20240101T000000Z",
                                "\xef\xbc\x92"
                                "024-01-01T00:00:00Z"}) {
    EXPECT_EQ(message(text), "expirationTime: '" + std::string(text) + shape) << text;
  }
  EXPECT_EQ(message("1970-01-01T00:00:00Z"),
            "expirationTime: '1970-01-01T00:00:00Z' is not after 1970-01-01T00:00:00Z");
  EXPECT_EQ(message("1969-12-31T23:59:59Z"),
            "expirationTime: '1969-12-31T23:59:59Z' is not after 1970-01-01T00:00:00Z");
  EXPECT_EQ(message("1970-01-01T00:30:00+01:00"),
            "expirationTime: '1970-01-01T00:30:00+01:00' is not after 1970-01-01T00:00:00Z");
  EXPECT_EQ(message("0000-01-01T00:00:00Z"),
            "expirationTime: '0000-01-01T00:00:00Z' is not after 1970-01-01T00:00:00Z");
  EXPECT_EQ(message("2024-01-01T00:00:00." + std::string(60, '0') + "Z"),
            "expirationTime: longer than 64 characters");
  EXPECT_EQ(message("2024-01-01T00:00:00\nZ"), "expirationTime: '2024-01-01T00:00:00?Z" + shape);
}

TEST(FormatIsoTime, Values) {
  EXPECT_EQ(formatIsoTime(0), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(formatIsoTime(253402300799), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(formatIsoTime(std::numeric_limits<int64_t>::max()), "9999-12-31T23:59:59.9999999Z");
  EXPECT_EQ(formatIsoTime(253402300798), "9999-12-31T23:59:58Z");
  EXPECT_EQ(formatIsoTime(k2024), "2024-01-01T00:00:00Z");
  EXPECT_EQ(formatIsoTime(1), "1970-01-01T00:00:01Z");
  EXPECT_EQ(formatIsoTime(951825600), "2000-02-29T12:00:00Z");
  EXPECT_EQ(formatIsoTime(1000000000), "2001-09-09T01:46:40Z");
  EXPECT_EQ(formatIsoTime(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(formatIsoTime(std::numeric_limits<int64_t>::min()), "0000-01-01T00:00:00Z");
}

TEST(FormatIsoTime, RoundTrips) {
  for (int64_t t = 1; t < 253402300799; t += 9876543211) {
    EXPECT_EQ(*parseIsoTime(formatIsoTime(t), "t"), t) << formatIsoTime(t);
  }
  for (int64_t t : {int64_t{1}, k2024, k2024 + 59 * 86400 + 3599, int64_t{253402300798}}) {
    EXPECT_EQ(*parseIsoTime(formatIsoTime(t), "t"), t) << formatIsoTime(t);
  }
  EXPECT_EQ(*parseIsoTime(formatIsoTime(0), "t"), 0);
  for (std::string_view text : {"2024-01-01T00:00:00Z", "1999-12-31T23:59:59Z",
                                "2038-01-19T03:14:08Z", "9999-12-31T23:59:59.9999999Z"}) {
    EXPECT_EQ(formatIsoTime(*parseIsoTime(text, "t")), text);
  }
}

TEST(FormatIsoTimeMs, Values) {
  EXPECT_EQ(formatIsoTimeMs(1704067200000), "2024-01-01T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimeMs(1704067200123), "2024-01-01T00:00:00.123Z");
  EXPECT_EQ(formatIsoTimeMs(1704067199999), "2023-12-31T23:59:59.999Z");
  EXPECT_EQ(formatIsoTimeMs(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(formatIsoTimeMs(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(formatIsoTimeMs(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(formatIsoTimeMs(std::numeric_limits<int64_t>::max()), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(formatIsoTimeMs(std::numeric_limits<int64_t>::min()), "0000-01-01T00:00:00.000Z");
}

TEST(FormatIsoTimeMs, ParsesBackToTheSecond) {
  for (int64_t ms = 1000; ms < 253402300798000; ms += 7654321098765) {
    EXPECT_EQ(*parseIsoTime(formatIsoTimeMs(ms), "t"), ms / 1000) << formatIsoTimeMs(ms);
  }
}

}  // namespace
}  // namespace pushhub::registry
