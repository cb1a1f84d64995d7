// Starts the real pns-mock binary with FCM and WNS enabled on loopback ports chosen at run time
// and checks, over real TLS, the OAuth token endpoints (RS256 service-account assertions for
// FCM, client credentials for WNS), sends over HTTP/1.1 (a small Beast client) and HTTP/2
// (nghttp), throttling, ALPN selection, access-token expiry, the control API additions, and the
// HTTP/1.1 server itself (header case, chunked bodies, limits, 100-continue, pipelining,
// keep-alive, Connection: close, GOAWAY) with raw requests.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
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

// A blocking HTTPS/1.1 keep-alive client (no certificate check: loopback test PKI). Each call
// runs asynchronous operations to completion, so that tcp_stream's expiry (20 s) bounds them: a
// server that never answers fails the test instead of hanging it.
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
    beast::get_lowest_layer(stream_).connect(
        asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    run([&](auto handler) { stream_.async_handshake(asio::ssl::stream_base::client, handler); });
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
    run([&](auto handler) { bhttp::async_write(stream_, req, handler); });
    return readResponse();
  }

  // Writes `bytes` as they are, in one write (TLS records of up to 16 KiB).
  void writeRaw(const std::string& bytes) {
    run([&](auto handler) { asio::async_write(stream_, asio::buffer(bytes), handler); });
  }

  // Writes each string as a TLS record of its own, all in one TCP segment where they fit (the
  // socket is corked meanwhile), so that the server reads several records at once.
  void writeRecords(const std::vector<std::string>& records) {
    int fd = beast::get_lowest_layer(stream_).socket().native_handle();
    int on = 1;
    int off = 0;
    ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    for (const std::string& r : records) {
      writeRaw(r);
    }
    ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
  }

  // Reads one response (a 1xx one too).
  Response readResponse() {
    bhttp::response<bhttp::string_body> res;
    run([&](auto handler) { bhttp::async_read(stream_, buffer_, res, handler); });
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

  // True when the server closed the connection (a read fails before `wait` is up).
  bool closedByPeer(std::chrono::seconds wait = std::chrono::seconds(5)) {
    char byte = 0;
    boost::system::error_code ec = tryRun(
        [&](auto handler) { stream_.async_read_some(asio::buffer(&byte, 1), handler); }, wait);
    return ec && ec != beast::error::timeout;
  }

 private:
  // Starts one operation with start(handler) and runs it to completion within `limit`.
  template <class Start>
  boost::system::error_code tryRun(Start start,
                                   std::chrono::seconds limit = std::chrono::seconds(20)) {
    boost::system::error_code result;
    beast::get_lowest_layer(stream_).expires_after(limit);
    start([&result](boost::system::error_code ec, size_t = 0) { result = ec; });
    io_.restart();
    io_.run();
    return result;
  }

  // The same, throwing on failure like the synchronous calls.
  template <class Start>
  void run(Start start) {
    if (boost::system::error_code ec = tryRun(start)) {
      throw boost::system::system_error(ec);
    }
  }

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

  // A raw HTTP/1.1 WNS send, header names in the case given; `extra` holds more header lines.
  static std::string wnsRaw(const std::string& token, const std::string& channel,
                            const std::string& extra = "", const std::string& body = kToast) {
    return "POST /?token=" + channel + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
           token + "\r\nX-WNS-Type: wns/toast\r\nContent-Type: text/xml\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
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

// Faults switched on at run time: each for a count or a while, then the normal answers again.
TEST_F(PnsMockCloudTest, RunTimeFaultsLastForACountOrAWhile) {
  start();
  std::string token = fcmToken();
  TlsClient c(fcm_port_);
  ASSERT_EQ(fcmSend(c, token, "device-0").status, 200);

  control("POST", "/_mock/faults",
          R"({"provider":"fcm","fault":"unavailable","retry_after":3,"count":2})");
  for (int i = 0; i < 2; ++i) {
    Response r = fcmSend(c, token, "device-1");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("retry-after"), "3");
    EXPECT_EQ(json::parse(r.body).at("error").at("status").as_string(), "UNAVAILABLE");
  }
  EXPECT_EQ(fcmSend(c, token, "device-1").status, 200);  // the count is used up

  control("POST", "/_mock/faults", R"({"provider":"fcm","fault":"internal","count":1})");
  Response internal = fcmSend(c, token, "device-2");
  EXPECT_EQ(internal.status, 500);
  EXPECT_EQ(internal.header("retry-after"), "");
  // Only the project it matches (one hub's credentials); an unauthenticated send never counts.
  control("POST", "/_mock/faults",
          R"({"provider":"fcm","fault":"throttle","count":1,"match":"proj-2"})");
  EXPECT_EQ(fcmSend(c, token, "device-3").status, 200);
  control("POST", "/_mock/faults",
          R"({"provider":"fcm","fault":"throttle","count":1,"match":"proj-1"})");
  EXPECT_EQ(fcmSend(c, "nope", "device-3").status, 401);
  Response throttled = fcmSend(c, token, "device-3");
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.header("retry-after"), "1");  // a throttle's default

  control("POST", "/_mock/faults", R"({"provider":"fcm","fault":"slow","delay_ms":300,"count":1})");
  auto before = std::chrono::steady_clock::now();
  EXPECT_EQ(fcmSend(c, token, "device-4").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(300));

  control("POST", "/_mock/faults", R"({"provider":"fcm","fault":"drop","count":1})");
  EXPECT_THROW(fcmSend(c, token, "device-5"), boost::system::system_error);
  TlsClient again(fcm_port_);
  EXPECT_EQ(fcmSend(again, token, "device-5").status, 200);
  auto stats = control("GET", "/_mock/stats?tokens=0").at("fcm");
  EXPECT_EQ(stats.at("faults_applied").to_number<int>(), 1);  // of the last fault set
  EXPECT_EQ(stats.at("dropped_connections").as_int64(), 1);

  // WNS for a while: throttled until the duration is over.
  std::string wtoken = wnsToken();
  TlsClient w(wns_port_);
  control("POST", "/_mock/faults",
          R"({"provider":"wns","fault":"throttle","retry_after":2,"duration_ms":400})");
  Response r406 = wnsSend(w, wtoken, "chan-1");
  EXPECT_EQ(r406.status, 406);
  EXPECT_EQ(r406.header("retry-after"), "2");
  EXPECT_TRUE(control("GET", "/_mock/stats?tokens=0").at("wns").as_object().contains("fault"));
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  EXPECT_EQ(wnsSend(w, wtoken, "chan-1").status, 200);
  EXPECT_FALSE(control("GET", "/_mock/stats?tokens=0").at("wns").as_object().contains("fault"));

  // A provider that is down: its open connections close and a new one is closed at once.
  control("POST", "/_mock/faults", R"({"provider":"wns","fault":"refuse","count":1})");
  EXPECT_TRUE(w.closedByPeer());
  EXPECT_THROW(TlsClient refused(wns_port_), boost::system::system_error);
  TlsClient back(wns_port_);
  EXPECT_EQ(wnsSend(back, wtoken, "chan-2").status, 200);
  // "none" switches a fault off before its end.
  control("POST", "/_mock/faults",
          R"({"provider":"wns","fault":"unavailable","duration_ms":60000})");
  EXPECT_EQ(wnsSend(back, wtoken, "chan-3").status, 503);
  control("POST", "/_mock/faults", R"({"provider":"wns","fault":"none"})");
  EXPECT_EQ(wnsSend(back, wtoken, "chan-3").status, 200);

  // Bad requests name what is wrong and change nothing.
  for (const char* body :
       {R"({"provider":"fcm","fault":"melt","count":1})", R"({"provider":"fcm","fault":"drop"})",
        R"({"provider":"nope","fault":"drop","count":1})",
        R"({"provider":"fcm","fault":"slow","count":1})",
        R"({"provider":"fcm","fault":"throttle","count":0})",
        R"({"provider":"fcm","fault":"refuse","count":1,"match":"proj-1"})"}) {
    EXPECT_EQ(testing::httpRequest("POST", control_port_, "/_mock/faults", body).status, 400)
        << body;
  }
  EXPECT_EQ(fcmSend(again, token, "device-6").status, 200);
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

TEST_F(PnsMockCloudTest, Http1HeaderNamesReachTheHandlerLowercased) {
  start();
  std::string token = wnsToken();
  TlsClient c(wns_port_);
  c.writeRaw("POST /?token=chan-1 HTTP/1.1\r\nHOST: 127.0.0.1\r\nAuthorization: Bearer " + token +
             "\r\nx-WnS-TyPe: wns/toast\r\nCONTENT-TYPE: text/xml\r\nMs-Cv: AbC.1\r\n"
             "X-WNS-RequestForStatus: true\r\nContent-Length: " +
             std::to_string(std::string(kToast).size()) + "\r\n\r\n" + kToast);
  Response r = c.readResponse();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("ms-cv"), "AbC.1");  // found under its lowercase name; value as sent
  EXPECT_EQ(r.header("x-wns-deviceconnectionstatus"), "connected");

  json::array received = control("GET", "/_mock/received?provider=wns").as_array();
  ASSERT_EQ(received.size(), 1u);
  const json::object& h = received[0].at("headers").as_object();
  EXPECT_EQ(h.at("host").as_string(), "127.0.0.1");
  EXPECT_EQ(h.at("x-wns-type").as_string(), "wns/toast");
  EXPECT_EQ(h.at("content-type").as_string(), "text/xml");
  EXPECT_EQ(h.at("ms-cv").as_string(), "AbC.1");
  EXPECT_EQ(h.at("x-wns-requestforstatus").as_string(), "true");
  for (const auto& kv : h) {
    std::string name(kv.key());
    EXPECT_TRUE(std::none_of(name.begin(), name.end(), [](char ch) {
      return ch >= 'A' && ch <= 'Z';
    })) << name;
  }
  EXPECT_EQ(received[0].at("body").as_string(), kToast);

  // The same connection, fewer headers, then more: each request sees exactly its own.
  Response plain = c.request("POST", "/?token=chan-2",
                             {{"authorization", "Bearer " + token},
                              {"x-wns-type", "wns/toast"},
                              {"content-type", "text/xml"}},
                             kToast);
  EXPECT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.header("ms-cv"), "");
  EXPECT_EQ(plain.header("x-wns-deviceconnectionstatus"), "");
  Response tagged = wnsSend(c, token, "chan-3", {{"x-wns-tag", "t1"}, {"ms-cv", "x.2"}});
  EXPECT_EQ(tagged.status, 200) << tagged.body;
  EXPECT_EQ(tagged.header("ms-cv"), "x.2");
  received = control("GET", "/_mock/received?provider=wns").as_array();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[1].at("headers").as_object().count("ms-cv"), 0u);
  EXPECT_EQ(received[1].at("headers").as_object().size(), 5u);  // host, content-length + 3
  EXPECT_EQ(received[2].at("headers").at("x-wns-tag").as_string(), "t1");
}

TEST_F(PnsMockCloudTest, Http1ChunkedBodies) {
  start();
  std::string token = fcmToken();
  std::string body = R"({"message":{"token":"device-1","data":{"k":"v"}}})";
  TlsClient c(fcm_port_);
  auto chunked = [&](const std::string& target, const std::string& auth, const std::string& b) {
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + auth +
                      "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t at = 0; at < b.size(); at += 20) {
      std::string piece = b.substr(at, 20);
      char size[16];
      std::snprintf(size, sizeof size, "%zx", piece.size());
      req += std::string(size) + "\r\n" + piece + "\r\n";
    }
    return req + "0\r\n\r\n";
  };
  c.writeRaw(chunked("/v1/projects/proj-1/messages:send", token, body));
  Response ok = c.readResponse();
  ASSERT_EQ(ok.status, 200) << ok.body;
  json::array received = control("GET", "/_mock/received?provider=fcm").as_array();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].at("body").as_string(), body);
  EXPECT_EQ(received[0].at("token").as_string(), "device-1");

  // The same connection goes on; WNS refuses chunked bodies, so the flag reaches the handler.
  EXPECT_EQ(fcmSend(c, token, "device-2").status, 200);
  std::string wtoken = wnsToken();
  TlsClient w(wns_port_);
  std::string wreq = chunked("/?token=chan-1", wtoken, kToast);
  wreq.replace(wreq.find("application/json"), 16, "text/xml");
  wreq.insert(wreq.find("\r\n") + 2, "X-WNS-Type: wns/toast\r\n");
  w.writeRaw(wreq);
  Response refused = w.readResponse();
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(wnsSend(w, wtoken, "chan-1").status, 200);
}

TEST_F(PnsMockCloudTest, Http1BodiesOverTheLimitAre413AndClose) {
  start();
  std::string token = fcmToken();
  const std::string send =
      "POST /v1/projects/proj-1/messages:send HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " +
      token + "\r\nContent-Type: application/json\r\n";
  {
    // A Content-Length above 1 MiB is refused from the header alone.
    TlsClient c(fcm_port_);
    c.writeRaw(send + "Content-Length: 2000000\r\n\r\n");
    Response r = c.readResponse();
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closedByPeer());
  }
  {
    // So is a chunk that would take the body above it.
    TlsClient c(fcm_port_);
    c.writeRaw(send + "Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n200000\r\n");
    Response r = c.readResponse();
    EXPECT_EQ(r.status, 413);
    EXPECT_TRUE(c.closedByPeer());
  }
  {
    // Between 64 KiB and 1 MiB the body arrives truncated: FCM calls that too big.
    TlsClient c(fcm_port_);
    Response r =
        c.request("POST", "/v1/projects/proj-1/messages:send",
                  {{"authorization", "Bearer " + token}, {"content-type", "application/json"}},
                  std::string(100 * 1024, ' '));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("Message is too big"), std::string::npos) << r.body;
    EXPECT_EQ(fcmSend(c, token, "device-1").status, 200);  // and the connection goes on
  }
  // None of the refused ones reached the handler.
  EXPECT_EQ(control("GET", "/_mock/received?provider=fcm").as_array().size(), 2u);
}

TEST_F(PnsMockCloudTest, Http1ExpectContinue) {
  start();
  std::string token = wnsToken();
  TlsClient c(wns_port_);
  std::string req = wnsRaw(token, "chan-1", "Expect: 100-continue\r\n");
  size_t header_end = req.find("\r\n\r\n") + 4;
  c.writeRaw(req.substr(0, header_end));
  Response cont = c.readResponse();
  EXPECT_EQ(cont.status, 100);
  c.writeRaw(req.substr(header_end));
  Response ok = c.readResponse();
  EXPECT_EQ(ok.status, 200) << ok.body;
  // The body may also come at once, without waiting for the 100.
  c.writeRaw(wnsRaw(token, "chan-2", "Expect: 100-continue\r\n"));
  EXPECT_EQ(c.readResponse().status, 100);
  EXPECT_EQ(c.readResponse().status, 200);
  EXPECT_EQ(wnsSend(c, token, "chan-3").status, 200);
  json::array received = control("GET", "/_mock/received?provider=wns").as_array();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].at("body").as_string(), kToast);
}

TEST_F(PnsMockCloudTest, Http1PipelinedRequestsAreAnsweredInOrder) {
  start();
  std::string token = wnsToken();
  TlsClient c(wns_port_);
  // Two requests in one write (one TLS record): the second waits in the server's buffer.
  c.writeRaw(wnsRaw(token, "chan-1") + wnsRaw(token, "unknown-1"));
  EXPECT_EQ(c.readResponse().status, 200);
  EXPECT_EQ(c.readResponse().status, 404);
  // Two TLS records in one segment: the second waits inside the TLS layer.
  c.writeRecords({wnsRaw(token, "expired-1"), wnsRaw(token, "chan-2")});
  EXPECT_EQ(c.readResponse().status, 410);
  EXPECT_EQ(c.readResponse().status, 200);
  // Many at once (over 30 KiB: several records and reads, records split across requests).
  std::string many;
  std::vector<int> want;
  for (int i = 0; i < 120; ++i) {
    bool dead = i % 3 == 2;
    many += wnsRaw(token, (dead ? "expired-" : "chan-") + std::to_string(i));
    want.push_back(dead ? 410 : 200);
  }
  ASSERT_GT(many.size(), 30u * 1024);
  c.writeRaw(many);
  std::vector<int> got;
  for (int i = 0; i < 120; ++i) {
    got.push_back(c.readResponse().status);
  }
  EXPECT_EQ(got, want);
  json::array received = control("GET", "/_mock/received?provider=wns&limit=120").as_array();
  ASSERT_EQ(received.size(), 120u);
  EXPECT_EQ(received[0].at("token").as_string(), "chan-0");
  EXPECT_EQ(received[119].at("token").as_string(), "expired-119");
}

// A plain request is parsed without Beast only when it is all in the buffer; one that arrives
// in pieces (the head cut anywhere, or the body late) is parsed by Beast, from its first byte.
TEST_F(PnsMockCloudTest, Http1RequestsInPieces) {
  start();
  std::string token = wnsToken();
  TlsClient c(wns_port_);
  std::string req = wnsRaw(token, "chan-split");
  size_t head = req.find("\r\n\r\n") + 4;
  std::vector<size_t> cuts = {
      1, 5, req.find("\r\n") + 1, req.find("Authorization") + 3, head - 2, head, head + 3};
  for (size_t cut : cuts) {
    c.writeRaw(req.substr(0, cut));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // two reads on the server
    c.writeRaw(req.substr(cut));
    Response r = c.readResponse();
    ASSERT_EQ(r.status, 200) << "cut at " << cut << ": " << r.body;
  }
  // A plain one after them, and one asking to close.
  EXPECT_EQ(wnsSend(c, token, "chan-whole").status, 200);
  c.writeRaw(wnsRaw(token, "chan-close", "Connection: close\r\n"));
  Response last = c.readResponse();
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.header("connection"), "close");
  EXPECT_TRUE(c.closedByPeer());
  json::array received = control("GET", "/_mock/received?provider=wns").as_array();
  ASSERT_EQ(received.size(), cuts.size() + 2);
  for (const json::value& e : received) {
    EXPECT_EQ(e.at("body").as_string(), kToast);
    EXPECT_EQ(e.at("headers").at("x-wns-type").as_string(), "wns/toast");
    EXPECT_EQ(e.at("headers").at("authorization").as_string(), "<redacted>");
  }
  EXPECT_EQ(received[0].at("token").as_string(), "chan-split");
  EXPECT_EQ(received[cuts.size() + 1].at("token").as_string(), "chan-close");
}

TEST_F(PnsMockCloudTest, Http1KeepAliveAndConnectionClose) {
  start();
  std::string token = wnsToken();
  TlsClient c(wns_port_);
  for (int i = 0; i < 300; ++i) {
    Response r = wnsSend(c, token, "chan-" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << i << ": " << r.body;
    ASSERT_EQ(r.header("connection"), "") << i;
  }
  Response last = wnsSend(c, token, "chan-last", {{"connection", "close"}});
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.header("connection"), "close");
  EXPECT_TRUE(c.closedByPeer());
  json::object s = control("GET", "/_mock/stats").at("wns").as_object();
  EXPECT_EQ(s.at("accepted").as_int64(), 301);
  EXPECT_EQ(s.at("connections").as_int64(), 2);  // the token request's and this one
  EXPECT_EQ(s.at("max_concurrent_seen").as_int64(), 1);
  EXPECT_GT(s.at("bytes_received").as_int64(), 301 * static_cast<int64_t>(std::strlen(kToast)));
}

TEST_F(PnsMockCloudTest, Http1GoawayAnswersTheRequestsInFlightThenCloses) {
  start();
  std::string token = wnsToken();
  TlsClient idle(wns_port_);
  ASSERT_EQ(wnsSend(idle, token, "chan-0").status, 200);
  control("POST", "/_mock/config", R"({"delay_ms":1000})");
  // In flight during the GOAWAY: a send, and a request without a body (a GET: 405).
  TlsClient post(wns_port_);
  TlsClient get(wns_port_);
  auto posted = std::async(std::launch::async, [&] { return wnsSend(post, token, "chan-1"); });
  auto got = std::async(std::launch::async, [&] {
    return get.request("GET", "/?token=chan-2", {{"authorization", "Bearer " + token}}, "");
  });
  for (int i = 0; i < 200 && control("GET", "/_mock/received?provider=wns").as_array().size() < 3;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  control("POST", "/_mock/goaway", R"({"reason":"Shutdown"})");
  EXPECT_TRUE(idle.closedByPeer());  // idle: closed at once
  Response p = posted.get();         // in flight: answered first, marked the last
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.header("connection"), "close");
  EXPECT_TRUE(post.closedByPeer());
  Response g = got.get();
  EXPECT_EQ(g.status, 405);
  EXPECT_EQ(g.header("connection"), "close");
  EXPECT_TRUE(get.closedByPeer());
}

}  // namespace
}  // namespace pushhub::mock
