// Starts the real pns-mock binary with FCM and WNS enabled on loopback ports chosen at run time
// and checks, over real TLS, the OAuth token endpoints (RS256 service-account assertions for
// FCM, client credentials for WNS), sends over HTTP/1.1 (a small Beast client) and HTTP/2
// (nghttp), throttling, ALPN selection, access-token expiry and the control API additions.

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "providers/common/jwt.h"
#include "tests/unit/tools/pns_mock_process.h"

namespace pushhub::mock {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using testing::TempDir;

constexpr const char* kEmail = "pusher@proj-1.iam.gserviceaccount.com";
constexpr const char* kScope = "https://www.googleapis.com/auth/firebase.messaging";
constexpr const char* kSid = "ms-app://S-1-15-2-1234";
constexpr const char* kSecret = "wns-secret";
constexpr const char* kToast =
    "<toast><visual><binding template=\"ToastGeneric\"><text>hi</text></binding></visual></toast>";

int64_t nowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
  const std::string& header(const std::string& name) const {
    static const std::string kNone;
    auto it = headers.find(name);
    return it == headers.end() ? kNone : it->second;
  }
};

// A blocking HTTPS/1.1 keep-alive client (no certificate check: loopback test PKI).
class TlsClient {
 public:
  // `alpn` is a comma-separated offer ("" = send no ALPN).
  TlsClient(uint16_t port, const std::string& alpn = "http/1.1")
      : ctx_(asio::ssl::context::tls_client), stream_(io_, ctx_) {
    ctx_.set_verify_mode(asio::ssl::verify_none);
    if (!alpn.empty()) {
      std::string wire;
      size_t start = 0;
      while (start <= alpn.size()) {
        size_t comma = alpn.find(',', start);
        std::string one = alpn.substr(start, comma - start);
        wire.push_back(static_cast<char>(one.size()));
        wire += one;
        if (comma == std::string::npos) {
          break;
        }
        start = comma + 1;
      }
      SSL_set_alpn_protos(stream_.native_handle(),
                          reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
    }
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(20));
    beast::get_lowest_layer(stream_).connect(
        asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    stream_.handshake(asio::ssl::stream_base::client);
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(stream_.native_handle(), &p, &n);
    negotiated_.assign(reinterpret_cast<const char*>(p), n);
    authority_ = "127.0.0.1:" + std::to_string(port);
  }

  const std::string& negotiated() const { return negotiated_; }
  const std::string& authority() const { return authority_; }

  Response request(const std::string& method, const std::string& target,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::string& body) {
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
    req.set(bhttp::field::host, authority_);
    for (const auto& [n, v] : headers) {
      req.set(n, v);
    }
    req.body() = body;
    req.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(20));
    bhttp::write(stream_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res);
    Response out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      out.headers[name] = std::string(f.value());
    }
    out.body = res.body();
    return out;
  }

 private:
  asio::io_context io_;
  asio::ssl::context ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::string negotiated_;
  std::string authority_;
};

class PnsMockCloudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = testing::makeTestPki(dir_.path());
    key_ = (dir_.path() / "sa.pem").string();
    pub_ = (dir_.path() / "sa-pub.pem").string();
    ASSERT_EQ(
        std::system(("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + key_ +
                     " 2>/dev/null && openssl pkey -in " + key_ + " -pubout -out " + pub_)
                        .c_str()),
        0);
    auto pem = providers::loadPrivateKeyPem(readAll(key_));
    ASSERT_TRUE(pem.has_value());
    private_key_ = std::move(*pem);
  }

  // Starts pns-mock with FCM and WNS on and the given extra flags.
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--cert",        pki_.cert().string(),
                                     "--key",         pki_.key().string(),
                                     "--threads",     "2",
                                     "--fcm-port",    "0",
                                     "--wns-port",    "0",
                                     "--fcm-account", std::string(kEmail) + ":" + pub_,
                                     "--fcm-project", "proj-1",
                                     "--fcm-project", "proj-2",
                                     "--wns-sid",     kSid,
                                     "--wns-secret",  kSecret};
    args.insert(args.end(), extra.begin(), extra.end());
    mock_.reset();
    mock_ = std::make_unique<PnsMockProcess>(dir_.path(), std::move(args));
    ASSERT_TRUE(mock_->started()) << mock_->log();
    apns_port_ = mock_->port("apns");
    fcm_port_ = mock_->port("fcm");
    wns_port_ = mock_->port("wns");
    control_port_ = mock_->port("control");
    ASSERT_NE(fcm_port_, 0);
    ASSERT_NE(wns_port_, 0);
    ASSERT_NE(control_port_, 0);
  }

  std::string assertion(json::object overrides = {}, EVP_PKEY* key = nullptr) {
    int64_t now = nowS();
    json::object claims{{"iss", kEmail},
                        {"scope", kScope},
                        {"aud", "https://127.0.0.1:" + std::to_string(fcm_port_) + "/token"},
                        {"iat", now},
                        {"exp", now + 3600}};
    for (const auto& kv : overrides) {
      claims[kv.key()] = kv.value();
    }
    auto jwt = providers::signJwtRs256(key != nullptr ? key : private_key_.get(),
                                       R"({"alg":"RS256","typ":"JWT"})", json::serialize(claims));
    EXPECT_TRUE(jwt.has_value());
    return jwt ? *jwt : "";
  }

  Response tokenRequest(TlsClient& c, const std::string& jwt) {
    return c.request(
        "POST", "/token", {{"content-type", "application/x-www-form-urlencoded"}},
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + jwt);
  }

  std::string fcmToken() {
    TlsClient c(fcm_port_);
    Response r = tokenRequest(c, assertion());
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(json::parse(r.body).at("access_token").as_string());
  }

  std::string wnsToken() {
    TlsClient c(wns_port_);
    Response r = c.request("POST", "/accesstoken.srf",
                           {{"content-type", "application/x-www-form-urlencoded"}},
                           "grant_type=client_credentials&client_id=ms-app%3a%2f%2fS-1-15-2-1234"
                           "&client_secret=wns-secret&scope=notify.windows.com");
    EXPECT_EQ(r.status, 200) << r.body;
    return std::string(json::parse(r.body).at("access_token").as_string());
  }

  Response fcmSend(TlsClient& c, const std::string& token, const std::string& device,
                   const std::string& project = "proj-1") {
    return c.request("POST", "/v1/projects/" + project + "/messages:send",
                     {{"authorization", "Bearer " + token}, {"content-type", "application/json"}},
                     R"({"message":{"token":")" + device + R"(","data":{"k":"v"}}})");
  }

  Response wnsSend(TlsClient& c, const std::string& token, const std::string& channel,
                   std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> h = {{"authorization", "Bearer " + token},
                                                          {"x-wns-type", "wns/toast"},
                                                          {"content-type", "text/xml"}};
    h.insert(h.end(), extra.begin(), extra.end());
    return c.request("POST", "/?token=" + channel, h, kToast);
  }

  json::value control(const std::string& method, const std::string& target,
                      const std::string& body = "") {
    return controlCall(control_port_, method, target, body);
  }

  TempDir dir_;
  testing::TestPki pki_;
  std::string key_, pub_;
  providers::EvpPkeyPtr private_key_;
  std::unique_ptr<PnsMockProcess> mock_;
  uint16_t apns_port_ = 0, fcm_port_ = 0, wns_port_ = 0, control_port_ = 0;
};

TEST_F(PnsMockCloudTest, FcmTokenEndpointChecksTheAssertion) {
  start();
  TlsClient c(fcm_port_);
  EXPECT_EQ(c.negotiated(), "http/1.1");
  Response ok = tokenRequest(c, assertion());
  ASSERT_EQ(ok.status, 200) << ok.body;
  json::object body = json::parse(ok.body).as_object();
  EXPECT_EQ(body.at("token_type").as_string(), "Bearer");
  EXPECT_EQ(body.at("expires_in").as_int64(), 3600);
  EXPECT_FALSE(body.at("access_token").as_string().empty());

  std::shared_ptr<EVP_PKEY> other(EVP_RSA_gen(2048), EVP_PKEY_free);
  struct Case {
    std::string name;
    std::string jwt;
    int status;
    std::string error;
  };
  std::vector<Case> cases = {
      {"wrong signature", assertion({}, other.get()), 400, "invalid_grant"},
      {"wrong aud", assertion({{"aud", "https://oauth2.googleapis.com/token"}}), 400,
       "invalid_grant"},
      {"wrong scope", assertion({{"scope", "https://www.googleapis.com/auth/userinfo.email"}}), 400,
       "invalid_scope"},
      {"expired", assertion({{"iat", nowS() - 7200}, {"exp", nowS() - 3600}}), 400,
       "invalid_grant"},
      {"unknown iss", assertion({{"iss", "someone@else.iam.gserviceaccount.com"}}), 401,
       "invalid_client"},
  };
  for (const Case& k : cases) {
    Response r = tokenRequest(c, k.jwt);  // same keep-alive connection
    EXPECT_EQ(r.status, k.status) << k.name << ": " << r.body;
    EXPECT_EQ(json::parse(r.body).at("error").as_string(), k.error) << k.name;
  }

  // The --print-fcm-assertion helper signs an assertion the endpoint accepts.
  std::string helper = trimNewlines(
      runCommand(testing::binaryPath("pns-mock").string() +
                 " --print-fcm-assertion --fcm-key-file " + key_ + " --fcm-client-email " + kEmail +
                 " --fcm-audience https://127.0.0.1:" + std::to_string(fcm_port_) + "/token"));
  EXPECT_EQ(tokenRequest(c, helper).status, 200) << helper;

  json::object s = control("GET", "/_mock/stats").at("fcm").as_object();
  EXPECT_EQ(s.at("tokens_issued").as_int64(), 2);
  EXPECT_EQ(s.at("token_rejections").as_int64(), 5);
  EXPECT_EQ(s.at("token_rejected").at("invalid_grant").as_int64(), 3);
  EXPECT_EQ(s.at("accepted").as_int64(), 0);
  EXPECT_EQ(s.at("connections").as_int64(), 1);
}

TEST_F(PnsMockCloudTest, FcmSendsOverHttp1AndH2) {
  start();
  std::string token = fcmToken();
  TlsClient c(fcm_port_);
  Response ok = fcmSend(c, token, "device-1");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(std::string(json::parse(ok.body).at("name").as_string())
                .rfind("projects/proj-1/messages/", 0),
            0u)
      << ok.body;

  Response unauth = fcmSend(c, "ya29.mnot-a-token", "device-1");
  EXPECT_EQ(unauth.status, 401);
  EXPECT_NE(unauth.header("www-authenticate").find("invalid_token"), std::string::npos);
  EXPECT_EQ(json::parse(unauth.body).at("error").at("status").as_string(), "UNAUTHENTICATED");

  Response dead = fcmSend(c, token, "dead-device");
  EXPECT_EQ(dead.status, 404);
  EXPECT_EQ(json::parse(dead.body).at("error").at("details").at(0).at("errorCode").as_string(),
            "UNREGISTERED");
  Response bogus = fcmSend(c, token, "bogus-device");
  EXPECT_EQ(bogus.status, 400);
  EXPECT_EQ(json::parse(bogus.body).at("error").at("message").as_string(),
            "The registration token is not a valid FCM registration token");
  EXPECT_EQ(fcmSend(c, token, "bad token!").status, 400);
  EXPECT_EQ(fcmSend(c, token, "device-1", "proj-9").status, 403);

  // Explicit lists, with "provider":"fcm".
  control("POST", "/_mock/tokens", R"({"provider":"fcm","dead":["gone-1"],"bad":["odd-1"]})");
  EXPECT_EQ(fcmSend(c, token, "gone-1").status, 404);
  EXPECT_EQ(fcmSend(c, token, "odd-1").status, 400);

  if (haveTool("nghttp")) {
    fs::path body = dir_.path() / "fcm.json";
    std::ofstream(body) << R"({"message":{"token":"device-2","notification":{"title":"t"}}})";
    std::string url =
        "https://127.0.0.1:" + std::to_string(fcm_port_) + "/v1/projects/proj-1/messages:send";
    std::string out = runCommand("timeout 20 nghttp -v --no-verify-peer -d " + body.string() +
                                 " -H 'authorization: Bearer " + token +
                                 "' -H 'content-type: application/json' " + url);
    EXPECT_NE(out.find(":status: 200"), std::string::npos) << out;
    EXPECT_NE(out.find("projects/proj-1/messages/"), std::string::npos) << out;
    std::string bad = runCommand("timeout 20 nghttp -v --no-verify-peer -d " + body.string() +
                                 " -H 'authorization: Bearer nope' " + url);
    EXPECT_NE(bad.find(":status: 401"), std::string::npos) << bad;
  }

  json::object s = control("GET", "/_mock/stats").at("fcm").as_object();
  int h2 = haveTool("nghttp") ? 1 : 0;
  EXPECT_EQ(s.at("accepted").as_int64(), 1 + h2);
  EXPECT_EQ(s.at("rejected").at("UNAUTHENTICATED").as_int64(), 1 + h2);
  EXPECT_EQ(s.at("rejected").at("UNREGISTERED").as_int64(), 2);
  EXPECT_EQ(s.at("rejected").at("INVALID_ARGUMENT").as_int64(), 3);
  EXPECT_EQ(s.at("rejected").at("PERMISSION_DENIED").as_int64(), 1);
  EXPECT_EQ(s.at("tokens_issued").as_int64(), 1);

  json::array received = control("GET", "/_mock/received?provider=fcm").as_array();
  ASSERT_GE(received.size(), 2u);
  EXPECT_EQ(received[0].at("token").as_string(), "device-1");
  EXPECT_EQ(received[0].at("status").as_int64(), 200);
  EXPECT_EQ(received[0].at("headers").at("authorization").as_string(), "<redacted>");
  EXPECT_EQ(received[1].at("reason").as_string(), "UNAUTHENTICATED");
  // The accepted window is stamped in microseconds, like each received entry.
  int64_t first_us = s.at("first_accepted_us").as_int64();
  EXPECT_EQ(first_us, received[0].at("received_at_us").as_int64());
  EXPECT_GE(s.at("last_accepted_us").as_int64(), first_us);
  // APNs is untouched.
  EXPECT_EQ(control("GET", "/_mock/stats").at("apns").at("accepted").as_int64(), 0);

  control("POST", "/_mock/reset");
  s = control("GET", "/_mock/stats").at("fcm").as_object();
  EXPECT_EQ(s.at("accepted").as_int64(), 0);
  EXPECT_EQ(s.at("tokens_issued").as_int64(), 0);
  EXPECT_EQ(s.at("first_accepted_us").as_int64(), 0);
  EXPECT_TRUE(control("GET", "/_mock/received?provider=fcm").as_array().empty());
}

TEST_F(PnsMockCloudTest, WnsTokenEndpointAndChannelsOverHttp1AndH2) {
  start({"--wns-alpn", "h2,http/1.1"});
  TlsClient t(wns_port_);
  Response bad =
      t.request("POST", "/accesstoken.srf", {{"content-type", "application/x-www-form-urlencoded"}},
                "grant_type=client_credentials&client_id=ms-app%3a%2f%2fS-1-15-2-1234"
                "&client_secret=wrong&scope=notify.windows.com");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body).at("error").as_string(), "invalid_client");
  std::string token = wnsToken();

  TlsClient c(wns_port_);  // offers http/1.1 only
  Response ok = wnsSend(c, token, "chan-1", {{"x-wns-requestforstatus", "true"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("x-wns-status"), "received");
  EXPECT_EQ(ok.header("x-wns-deviceconnectionstatus"), "connected");
  EXPECT_FALSE(ok.header("x-wns-msg-id").empty());
  EXPECT_EQ(wnsSend(c, token, "chan-1").header("x-wns-deviceconnectionstatus"), "");
  EXPECT_EQ(wnsSend(c, "EwAnope", "chan-1").status, 401);
  EXPECT_EQ(wnsSend(c, token, "expired-1").status, 410);
  EXPECT_EQ(wnsSend(c, token, "unknown-1").status, 404);
  EXPECT_EQ(wnsSend(c, token, "chan-1", {{"x-wns-type", "wns/popup"}}).status, 400);
  EXPECT_EQ(wnsSend(c, token, "chan-1", {{"x-wns-priority", "9"}}).status, 400);
  Response big = c.request("POST", "/?token=chan-1",
                           {{"authorization", "Bearer " + token},
                            {"x-wns-type", "wns/raw"},
                            {"content-type", "application/octet-stream"}},
                           std::string(5001, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(c.request("GET", "/?token=chan-1", {{"authorization", "Bearer " + token}}, "").status,
            405);
  control("POST", "/_mock/tokens", R"({"provider":"wns","dead":["chan-d"],"bad":["chan-b"]})");
  EXPECT_EQ(wnsSend(c, token, "chan-d").status, 410);
  EXPECT_EQ(wnsSend(c, token, "chan-b").status, 404);

  int h2 = 0;
  if (haveTool("nghttp")) {
    h2 = 1;
    fs::path body = dir_.path() / "toast.xml";
    std::ofstream(body) << kToast;
    std::string out = runCommand("timeout 20 nghttp -v --no-verify-peer -d " + body.string() +
                                 " -H 'authorization: Bearer " + token +
                                 "' -H 'x-wns-type: wns/toast' -H 'content-type: text/xml'"
                                 " 'https://127.0.0.1:" +
                                 std::to_string(wns_port_) + "/w/?token=chan-2'");
    EXPECT_NE(out.find(":status: 200"), std::string::npos) << out;
    EXPECT_NE(out.find("x-wns-status: received"), std::string::npos) << out;
  }

  json::object s = control("GET", "/_mock/stats").at("wns").as_object();
  EXPECT_EQ(s.at("accepted").as_int64(), 2 + h2);
  EXPECT_EQ(s.at("rejected").at("401").as_int64(), 1);
  EXPECT_EQ(s.at("rejected").at("410").as_int64(), 2);
  EXPECT_EQ(s.at("rejected").at("404").as_int64(), 2);
  EXPECT_EQ(s.at("rejected").at("400").as_int64(), 2);
  EXPECT_EQ(s.at("rejected").at("413").as_int64(), 1);
  EXPECT_EQ(s.at("rejected").at("405").as_int64(), 1);
  EXPECT_EQ(s.at("tokens_issued").as_int64(), 1);
  EXPECT_EQ(s.at("token_rejected").at("invalid_client").as_int64(), 1);
  json::array received = control("GET", "/_mock/received?provider=wns&limit=100").as_array();
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received[0].at("token").as_string(), "chan-1");
  EXPECT_EQ(received[0].at("headers").at("x-wns-type").as_string(), "wns/toast");
  EXPECT_EQ(received[0].at("headers").at("authorization").as_string(), "<redacted>");
  EXPECT_EQ(received[0].at("body").as_string(), kToast);
}

TEST_F(PnsMockCloudTest, ThrottlingAndAlpn) {
  start({"--fcm-throttle-every", "3", "--wns-throttle-every", "2", "--throttle-retry-after", "5"});
  // Default offers: FCM h2 and http/1.1 (h2 preferred), WNS http/1.1 only, like the real ones.
  EXPECT_EQ(TlsClient(fcm_port_, "h2,http/1.1").negotiated(), "h2");
  EXPECT_EQ(TlsClient(wns_port_, "h2,http/1.1").negotiated(), "http/1.1");
  EXPECT_EQ(TlsClient(wns_port_, "").negotiated(), "");
  EXPECT_THROW(TlsClient(wns_port_, "h2"), boost::system::system_error);

  std::string token = fcmToken();
  TlsClient c(fcm_port_);
  std::vector<int> statuses;
  for (int i = 0; i < 6; ++i) {
    Response r = fcmSend(c, token, "device-" + std::to_string(i));
    statuses.push_back(r.status);
    if (r.status == 429) {
      EXPECT_EQ(r.header("retry-after"), "5");
      EXPECT_EQ(json::parse(r.body).at("error").at("details").at(0).at("errorCode").as_string(),
                "QUOTA_EXCEEDED");
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{200, 200, 429, 200, 200, 429}));
  // Unauthenticated requests do not count towards the quota.
  EXPECT_EQ(fcmSend(c, "nope", "device-x").status, 401);
  EXPECT_EQ(fcmSend(c, token, "device-7").status, 200);

  std::string wtoken = wnsToken();
  TlsClient w(wns_port_, "");  // no ALPN at all: HTTP/1.1
  std::vector<int> wstatuses;
  for (int i = 0; i < 4; ++i) {
    Response r = wnsSend(w, wtoken, "chan-" + std::to_string(i));
    wstatuses.push_back(r.status);
    if (r.status == 406) {
      EXPECT_EQ(r.header("retry-after"), "5");
    }
  }
  EXPECT_EQ(wstatuses, (std::vector<int>{200, 406, 200, 406}));
  EXPECT_EQ(control("GET", "/_mock/stats").at("wns").at("rejected").at("406").as_int64(), 2);
  EXPECT_EQ(control("GET", "/_mock/stats").at("fcm").at("rejected").at("QUOTA_EXCEEDED").as_int64(),
            2);
}

TEST_F(PnsMockCloudTest, ExpireTokensForcesARefresh) {
  start({"--wns-alpn", "h2,http/1.1"});
  std::string fcm = fcmToken();
  std::string wns = wnsToken();
  TlsClient f(fcm_port_);
  TlsClient w(wns_port_);
  ASSERT_EQ(fcmSend(f, fcm, "device-1").status, 200);
  ASSERT_EQ(wnsSend(w, wns, "chan-1").status, 200);

  json::value r = control("POST", "/_mock/expire-tokens", R"({"provider":"fcm"})");
  EXPECT_EQ(r.at("expired").as_array().size(), 1u);
  // Same connections, same (cached) tokens: FCM now 401, WNS unaffected.
  EXPECT_EQ(fcmSend(f, fcm, "device-1").status, 401);
  EXPECT_EQ(wnsSend(w, wns, "chan-1").status, 200);
  EXPECT_EQ(fcmSend(f, fcmToken(), "device-1").status, 200);

  control("POST", "/_mock/expire-tokens", R"({"provider":"wns"})");
  EXPECT_EQ(wnsSend(w, wns, "chan-1").status, 401);
  EXPECT_EQ(wnsSend(w, wnsToken(), "chan-1").status, 200);

  // Without a provider: every provider that issues tokens.
  std::string fcm2 = fcmToken();
  json::value all = control("POST", "/_mock/expire-tokens", "");
  EXPECT_EQ(all.at("expired").as_array().size(), 2u);
  EXPECT_EQ(fcmSend(f, fcm2, "device-1").status, 401);
  EXPECT_EQ(
      testing::httpRequest("POST", control_port_, "/_mock/expire-tokens", R"({"provider":"apns"})")
          .status,
      400);
}

TEST_F(PnsMockCloudTest, ShortTokenTtlExpires) {
  start({"--fcm-token-ttl", "1"});
  TlsClient c(fcm_port_);
  Response r = tokenRequest(c, assertion());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body).at("expires_in").as_int64(), 1);
  std::string token(json::parse(r.body).at("access_token").as_string());
  int status = 200;
  for (int i = 0; i < 40 && status == 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = fcmSend(c, token, "device-1").status;
  }
  EXPECT_EQ(status, 401);
}

}  // namespace
}  // namespace pushhub::mock
