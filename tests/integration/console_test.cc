// The operators' console against a live pushhubd whose admin listener serves HTTPS: its page,
// sign-in and what it refuses (wrong, rotated or Listen-only keys, forged and signed-out
// cookies, other origins, missing CSRF tokens, too many live pages), the overview's numbers
// against /metrics and GetStats, a notification's failures, cancelling a scheduled send and an
// installation lookup. tests/console/console.mjs drives the same page in a real browser.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "tests/integration/stack.h"
#include "tests/support/https_client.h"

namespace pushhub::testing {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using google::protobuf::util::TimeUtil;

StackOptions consoleStack() {
  StackOptions options;
  options.admin_tls = true;
  options.extra_config = "\n[console]\nmax_live_pages = 2\n";
  return options;
}

// The admin listener as a browser on its page would call it.
class ConsoleClient {
 public:
  explicit ConsoleClient(Stack& stack)
      : client_(stack.adminPort(), stack.caFile()),
        origin_("https://127.0.0.1:" + std::to_string(stack.adminPort())) {}

  HttpsResult get(const std::string& target) {
    return client_.request("GET", target, withCookie({}));
  }
  HttpsResult post(const std::string& target, const std::string& body,
                   HttpsClient::Headers headers = {}) {
    headers.emplace_back("Content-Type", "application/json");
    bool has_origin = false;
    for (const auto& [name, value] : headers) has_origin |= name == "Origin";
    if (!has_origin) headers.emplace_back("Origin", origin_);
    return client_.request("POST", target, withCookie(std::move(headers)), body);
  }
  HttpsResult signIn(const std::string& key_name, const std::string& key) {
    return adopt(
        post("/console/api/signin",
             json::serialize(json::object{{"hub", kHub}, {"key_name", key_name}, {"key", key}})));
  }
  // Keeps the session a successful sign-in answered with, as the page does.
  HttpsResult adopt(HttpsResult r) {
    if (r.status == 200) {
      std::string set = r.header("set-cookie");
      cookie_ = set.substr(0, set.find(';'));
      csrf_ = json::value_to<std::string>(json::parse(r.body).at("csrf"));
    }
    return r;
  }
  HttpsResult postWithCsrf(const std::string& target) {
    return post(target, "{}", {{"X-Pushhub-Csrf", csrf_}});
  }
  json::value getJson(const std::string& target) {
    auto r = get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return r.status == 200 ? json::parse(r.body) : json::value();
  }
  std::string& cookie() { return cookie_; }
  const std::string& origin() const { return origin_; }

 private:
  HttpsClient::Headers withCookie(HttpsClient::Headers headers) const {
    if (!cookie_.empty()) headers.emplace_back("Cookie", cookie_);
    return headers;
  }
  HttpsClient client_;
  std::string origin_;
  std::string cookie_;
  std::string csrf_;
};

// A live page: opens /console/api/live and reads its first event. Holds the connection open.
class LivePage {
 public:
  LivePage(Stack& stack, const std::string& cookie) : tls_(asio::ssl::context::tls_client) {
    tls_.load_verify_file(stack.caFile());
    stream_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(io_, tls_);
    stream_->set_verify_mode(asio::ssl::verify_peer);
    stream_->lowest_layer().connect(
        {asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(stack.adminPort())});
    stream_->handshake(asio::ssl::stream_base::client);
    std::string request =
        "GET /console/api/live HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(stack.adminPort()) +
        "\r\nCookie: " + cookie + "\r\nAccept: text/event-stream\r\n\r\n";
    asio::write(*stream_, asio::buffer(request));
  }
  // The status line and headers.
  std::string head() {
    asio::read_until(*stream_, asio::dynamic_buffer(buffer_), "\r\n\r\n");
    auto end = buffer_.find("\r\n\r\n") + 4;
    std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return head;
  }
  // The next `data:` event's JSON.
  json::value nextEvent() {
    for (;;) {
      asio::read_until(*stream_, asio::dynamic_buffer(buffer_), "\n\n");
      auto end = buffer_.find("\n\n");
      std::string event = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0) return json::parse(event.substr(6));
    }
  }

 private:
  asio::io_context io_;
  asio::ssl::context tls_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream_;
  std::string buffer_;
};

void putInstallation(Stack& stack, const std::string& id, const std::string& token) {
  v1::CreateOrUpdateInstallationRequest request;
  request.set_hub(kHub);
  auto* installation = request.mutable_installation();
  installation->set_installation_id(id);
  installation->set_platform(v1::PLATFORM_APNS);
  installation->set_push_channel(token);
  installation->add_tags("console");
  (*installation->mutable_templates())["alert"].set_body(R"x({"aps":{"alert":"$(message)"}})x");
  v1::CreateOrUpdateInstallationResponse response;
  auto rpc = stack.stub().CreateOrUpdateInstallation(stack.context().get(), request, &response);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
}

std::string sendToTag(Stack& stack, std::optional<int> in_seconds = std::nullopt) {
  v1::SendNotificationRequest send;
  send.set_hub(kHub);
  send.set_tag("console");
  auto* native = send.add_native();
  native->set_platform(v1::PLATFORM_APNS);
  native->set_body(R"({"aps":{"alert":"hello"}})");
  if (in_seconds) {
    *send.mutable_scheduled_time() = TimeUtil::MillisecondsToTimestamp(
        TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime()) + *in_seconds * 1000LL);
  }
  v1::SendNotificationResponse response;
  auto rpc = stack.stub().SendNotification(stack.context().get(), send, &response);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();
  return response.notification_id();
}

// pushhub_deliveries_total{hub=...,platform=...,outcome=...} in /metrics.
int64_t metric(ConsoleClient& client, const std::string& labels) {
  auto r = client.get("/metrics");
  EXPECT_EQ(r.status, 200);
  std::string needle = "pushhub_deliveries_total{" + labels + "} ";
  auto at = r.body.find(needle);
  return at == std::string::npos ? 0 : std::stoll(r.body.substr(at + needle.size()));
}

std::string text(const json::value& v) {
  return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
}

int64_t number(const json::value& v) {
  if (v.is_string()) return std::stoll(std::string(v.as_string()));
  return v.is_int64() ? v.as_int64() : 0;
}

const json::object* routeIn(const json::value& overview, const std::string& platform) {
  for (const auto& hub : overview.at("stats").at("hubs").as_array()) {
    if (text(hub.at("hub")) != kHub) continue;
    for (const auto& route : hub.at("routes").as_array()) {
      if (text(route.at("platform")) == platform) return &route.as_object();
    }
  }
  return nullptr;
}

TEST(ConsoleIntegrationTest, PageAndSignIn) {
  Stack stack(consoleStack());
  ConsoleClient client(stack);

  auto page = client.get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.header("content-security-policy").find("default-src 'self'"), std::string::npos);
  EXPECT_NE(page.body.find("/console/console.js"), std::string::npos);
  EXPECT_EQ(client.get("/console/console.js").status, 200);
  EXPECT_EQ(client.get("/console/nothing.js").status, 404);

  // Nothing without a session.
  EXPECT_EQ(client.get("/console/api/overview").status, 401);
  EXPECT_EQ(client.get("/console/api/session").status, 401);

  // Refusals: a wrong key, an unknown key or hub, a key without Manage, another origin, not JSON.
  EXPECT_EQ(client.signIn(kFullKeyName, "wrong-key-wrong-key-wrong-key").status, 401);
  EXPECT_EQ(client.signIn("nobody", kFullKey).status, 401);
  auto listen_only = client.signIn(kListenKeyName, kListenKey);
  EXPECT_EQ(listen_only.status, 403);
  EXPECT_NE(listen_only.body.find("Manage"), std::string::npos);
  EXPECT_TRUE(listen_only.header("set-cookie").empty());
  std::string good_body =
      json::serialize(json::object{{"hub", kHub}, {"key_name", kFullKeyName}, {"key", kFullKey}});
  EXPECT_EQ(
      client.post("/console/api/signin", good_body, {{"Origin", "https://evil.example"}}).status,
      403);
  EXPECT_EQ(client.post("/console/api/signin", "{", {}).status, 400);

  // A connection string works as well as a key name and key.
  std::string connection =
      "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=" + std::string(kFullKeyName) +
      ";SharedAccessKey=" + kFullKey;
  auto signed_in = client.adopt(client.post(
      "/console/api/signin",
      json::serialize(json::object{{"hub", "ITEST"}, {"connection_string", connection}})));
  ASSERT_EQ(signed_in.status, 200) << signed_in.body;
  std::string set_cookie = signed_in.header("set-cookie");
  for (const char* attribute : {"HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age="}) {
    EXPECT_NE(set_cookie.find(attribute), std::string::npos) << set_cookie;
  }
  EXPECT_EQ(signed_in.body.find(kFullKey), std::string::npos);  // no secret back to the page
  EXPECT_EQ(set_cookie.find(kFullKey), std::string::npos);
  auto session = client.getJson("/console/api/session");
  EXPECT_EQ(text(session.at("hub")), kHub);  // the hub's own name, whatever case was typed
  EXPECT_EQ(text(session.at("key_name")), kFullKeyName);
  EXPECT_EQ(stack.daemonLog().find(kFullKey), std::string::npos);

  // A forged cookie: the same session with a later expiry, re-signed without the key.
  std::string cookie = client.cookie();
  auto parts_end = cookie.rfind('.');
  std::string forged = cookie.substr(0, parts_end) + "." + std::string(64, '0');
  client.cookie() = forged;
  EXPECT_EQ(client.get("/console/api/session").status, 401);
  client.cookie() = cookie;

  // Signing out ends the session; its cookie, replayed, is refused.
  auto no_csrf = client.post("/console/api/signout", "{}");
  EXPECT_EQ(no_csrf.status, 403);
  auto out = client.postWithCsrf("/console/api/signout");
  EXPECT_EQ(out.status, 200);
  EXPECT_NE(out.header("set-cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(client.get("/console/api/session").status, 401);

  // A rotated key ends the sessions it signed, and its old secret no longer signs in.
  ASSERT_EQ(client.signIn(kFullKeyName, kFullKey).status, 200);
  EXPECT_EQ(client.get("/console/api/session").status, 200);
  v1::RotateKeyRequest rotate;
  rotate.set_hub(kHub);
  rotate.set_key_name(kFullKeyName);
  rotate.set_grace_seconds(3600);
  v1::KeySecret rotated;
  auto rpc = stack.admin().RotateKey(stack.adminContext().get(), rotate, &rotated);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  bool ended = false;
  for (int i = 0; i < 100 && !ended; ++i) {  // every instance serves a change within a second
    ended = client.get("/console/api/session").status == 401;
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(client.signIn(kFullKeyName, kFullKey).status, 401);
  EXPECT_EQ(client.signIn(kFullKeyName, rotated.secret()).status, 200);
}

TEST(ConsoleIntegrationTest, OverviewNotificationScheduledAndInstallation) {
  Stack stack(consoleStack());
  std::mt19937_64 rng(5);
  putInstallation(stack, "console-ok-1", randomHex(rng, 64, "a"));
  putInstallation(stack, "console-ok-2", randomHex(rng, 64, "a"));
  putInstallation(stack, "console-ok-3", randomHex(rng, 64, "a"));
  std::string dead = randomHex(rng, 64, "dead");
  putInstallation(stack, "console-dead", dead);
  putInstallation(stack, "console-bad", randomHex(rng, 64, "0bad"));
  std::string sent = sendToTag(stack);
  ASSERT_EQ(stack.waitFinal(sent).state(), v1::NotificationStatus::STATE_COMPLETED);

  ConsoleClient client(stack);
  ASSERT_EQ(client.signIn(kFullKeyName, kFullKey).status, 200);

  // The overview's counters are /metrics' (this instance's), its latest sends the hub's.
  auto overview = client.getJson("/console/api/overview");
  const json::object* apns = routeIn(overview, "apns");
  ASSERT_NE(apns, nullptr) << overview;
  const auto& deliveries = apns->at("deliveries");
  for (const char* outcome : {"Success", "ExpiredChannel", "WrongToken"}) {
    EXPECT_EQ(
        number(deliveries.at(outcome)),
        metric(client, std::string("hub=\"itest\",platform=\"apns\",outcome=\"") + outcome + "\""))
        << outcome;
  }
  EXPECT_EQ(number(deliveries.at("Success")), 3);
  EXPECT_EQ(number(deliveries.at("ExpiredChannel")), 1);
  EXPECT_EQ(number(deliveries.at("WrongToken")), 1);
  EXPECT_EQ(overview.at("redis").at("workers_with_redis"), 2);
  EXPECT_EQ(overview.at("redis").at("errors"), 0);
  const auto& latest = overview.at("latest").at("notifications").as_array();
  ASSERT_FALSE(latest.empty());
  EXPECT_EQ(text(latest.front().at("notification_id")), sent);
  EXPECT_EQ(text(latest.front().at("state")), "STATE_COMPLETED");
  EXPECT_EQ(text(latest.front().at("audience")), "tag:console");

  // One notification: its audience, counts and each failed handle with the provider's reason.
  auto detail = client.getJson("/console/api/notifications/" + sent);
  EXPECT_EQ(text(detail.at("audience")), "tag:console");
  const auto& failures = detail.at("failures").as_array();
  ASSERT_EQ(failures.size(), 2u) << detail;
  std::set<std::string> reasons;
  for (const auto& f : failures) reasons.insert(std::string(f.at("reason").as_string()));
  EXPECT_TRUE(reasons.count("Unregistered")) << detail;
  EXPECT_TRUE(reasons.count("BadDeviceToken")) << detail;
  EXPECT_EQ(client.get("/console/api/notifications/" + std::string(32, 'a')).status, 404);
  EXPECT_EQ(client.get("/console/api/notifications/not-an-id").status, 400);

  // A scheduled send is listed, and cancelled from the page: gone from the hub's schedule.
  std::string later = sendToTag(stack, 3600);
  overview = client.getJson("/console/api/overview");
  const auto& scheduled = overview.at("scheduled").at("notifications").as_array();
  ASSERT_EQ(scheduled.size(), 1u) << overview;
  EXPECT_EQ(text(scheduled.front().at("notification_id")), later);
  std::string cancel = "/console/api/notifications/" + later + "/cancel";
  EXPECT_EQ(client.post(cancel, "{}").status, 403);  // no CSRF token
  EXPECT_EQ(client.post(cancel, "{}", {{"Origin", "https://evil.example"}}).status, 403);
  EXPECT_EQ(stack.notification(later).state(), v1::NotificationStatus::STATE_SCHEDULED);
  EXPECT_EQ(client.postWithCsrf(cancel).status, 200);
  EXPECT_EQ(stack.notification(later).state(), v1::NotificationStatus::STATE_CANCELLED);
  v1::ListScheduledNotificationsRequest list;
  list.set_hub(kHub);
  v1::ListScheduledNotificationsResponse listed;
  ASSERT_TRUE(stack.stub().ListScheduledNotifications(stack.context().get(), list, &listed).ok());
  EXPECT_EQ(listed.notifications_size(), 0);
  EXPECT_EQ(client.postWithCsrf(cancel).status, 412);  // no longer scheduled

  // An installation: what it is, its handle masked.
  auto installation = client.getJson("/console/api/installations/console-dead");
  EXPECT_EQ(text(installation.at("platform")), "PLATFORM_APNS");
  EXPECT_EQ(installation.at("tags").as_array().front(), "console");
  EXPECT_TRUE(installation.at("templates").as_object().contains("alert"));
  std::string shown(installation.at("push_channel").as_string());
  EXPECT_EQ(shown.find(dead), std::string::npos) << shown;
  EXPECT_EQ(shown.rfind(dead.substr(0, 6), 0), 0u) << shown;
  EXPECT_EQ(client.get("/console/api/installations/nobody-here").status, 404);

  // Live pages: the overview streamed, at most max_live_pages (2) at once.
  LivePage first(stack, client.cookie());
  EXPECT_NE(first.head().find("200 OK"), std::string::npos);
  auto event = first.nextEvent();
  EXPECT_EQ(text(event.at("hub")), kHub);
  EXPECT_EQ(number(routeIn(event, "apns")->at("deliveries").at("Success")), 3);
  auto next = first.nextEvent();  // a second later
  EXPECT_GE(number(next.at("time_ms")) - number(event.at("time_ms")), 900);
  LivePage second(stack, client.cookie());
  EXPECT_NE(second.head().find("200 OK"), std::string::npos);
  LivePage third(stack, client.cookie());
  EXPECT_NE(third.head().find("503"), std::string::npos);
  // Without a session, no stream.
  LivePage anonymous(stack, "pushhub_console=nothing");
  EXPECT_NE(anonymous.head().find("401"), std::string::npos);
}

// tests/console/console.mjs in Debian's chromium against this stack (see its header), then the
// cancelled send checked gone with pushhubctl. Screenshots go to PUSHHUB_SCREENSHOTS when set
// (docs/OPERATIONS.md's come from here).
TEST(ConsoleIntegrationTest, RealBrowser) {
  auto dir = sourcePath("tests/console");
  ASSERT_TRUE(std::filesystem::exists(dir / "node_modules/playwright-core/package.json"))
      << "playwright-core is not installed: npm ci --prefix tests/console (./run test does it)";
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/chromium"))
      << "Debian's chromium is not installed (./run test installs it)";
  Stack stack(consoleStack());
  std::mt19937_64 rng(7);
  putInstallation(stack, "browser-ok-1", randomHex(rng, 64, "a"));
  putInstallation(stack, "browser-ok-2", randomHex(rng, 64, "a"));
  putInstallation(stack, "browser-ok-3", randomHex(rng, 64, "a"));
  putInstallation(stack, "browser-dead", randomHex(rng, 64, "dead"));
  putInstallation(stack, "browser-bad", randomHex(rng, 64, "0bad"));
  std::string failed = sendToTag(stack);
  ASSERT_EQ(stack.waitFinal(failed).state(), v1::NotificationStatus::STATE_COMPLETED);
  std::string scheduled = sendToTag(stack, 3600);

  const char* screenshots = std::getenv("PUSHHUB_SCREENSHOTS");
  std::string command =
      "cd '" + dir.string() +
      "' && env PUSHHUB_CONSOLE_URL='https://127.0.0.1:" + std::to_string(stack.adminPort()) +
      "/' PUSHHUB_REST_URL='https://127.0.0.1:" + std::to_string(stack.restPort()) +
      "/' PUSHHUB_HUB='" + kHub + "' PUSHHUB_KEY_NAME='" + kFullKeyName + "' PUSHHUB_KEY='" +
      kFullKey + "' PUSHHUB_FAILED_SEND='" + failed + "' PUSHHUB_SCHEDULED_SEND='" + scheduled +
      "' PUSHHUB_INSTALLATION='browser-dead'" + " PUSHHUB_SCREENSHOTS='" +
      (screenshots ? screenshots : "") + "' NODE_EXTRA_CA_CERTS='" + stack.caFile() +
      "' timeout 180 node console.mjs";
  auto [status, output] = runShell(command);
  ASSERT_EQ(status, 0) << output;
  auto result = json::parse(output.substr(output.rfind('{'))).as_object();
  EXPECT_EQ(text(result.at("cancelled")), scheduled);
  EXPECT_EQ(number(result.at("success")), 6);  // 3 from each send

  auto [list_status, listed] = runPushhubctl(stack, "schedule list");
  EXPECT_EQ(list_status, 0) << listed;
  EXPECT_EQ(listed.find(scheduled), std::string::npos) << listed;
  EXPECT_EQ(stack.notification(scheduled).state(), v1::NotificationStatus::STATE_CANCELLED);
  std::string browser_send(result.at("browserSend").as_string());
  EXPECT_EQ(stack.waitFinal(browser_send).state(), v1::NotificationStatus::STATE_COMPLETED);
  // pushhubctl lists the same latest sends: newest first, with their counts.
  auto [latest_status, latest] = runPushhubctl(stack, "notification list");
  EXPECT_EQ(latest_status, 0) << latest;
  auto browser_at = latest.find(browser_send);
  auto failed_at = latest.find(failed);
  ASSERT_NE(browser_at, std::string::npos) << latest;
  ASSERT_NE(failed_at, std::string::npos) << latest;
  EXPECT_LT(browser_at, failed_at) << latest;
  EXPECT_NE(latest.find("tag:console"), std::string::npos) << latest;
}

}  // namespace
}  // namespace pushhub::testing
