#pragma once
// Starts the real pns-mock binary (tools/pns-mock) on free loopback ports with the test PKI,
// and talks to its plain-HTTP control API. For tests of the pool and the providers.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "providers/common/jwt.h"
#include "tests/support/process.h"

namespace pushhub::testing {

class PnsMock {
 public:
  static constexpr const char* kKeyId = "KEYID12345";
  static constexpr const char* kTeamId = "TEAMID1234";
  static constexpr const char* kTopic = "com.example.app";

  explicit PnsMock(std::vector<std::string> extra_flags = {})
      : pki_(makeTestPki(dir_.path() / "pki")),
        apns_port_(freePort()),
        control_port_(freePort()),
        process_(argv(extra_flags), dir_.path() / "pns-mock.log") {
    if (!waitForPort(apns_port_) || !waitForPort(control_port_)) {
      throw std::runtime_error("pns-mock did not start; see " +
                               (dir_.path() / "pns-mock.log").string());
    }
    // waitForPort's probe counts as an APNs connection: wait for it to be seen, then reset, so
    // tests can compare connection counts exactly.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (stat("connections") == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    post("/_mock/reset");
  }

  uint16_t apnsPort() const { return apns_port_; }
  const TestPki& pki() const { return pki_; }

  // "bearer <jwt>" for the mock's key, iat = now.
  std::string bearer() const {
    std::ifstream in(pki_.apnsKey());
    std::stringstream pem;
    pem << in.rdbuf();
    auto key = providers::loadPrivateKeyPem(pem.str());
    auto iat = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto jwt = providers::signJwtEs256(
        key->get(), std::string("{\"alg\":\"ES256\",\"kid\":\"") + kKeyId + "\"}",
        std::string("{\"iss\":\"") + kTeamId + "\",\"iat\":" + std::to_string(iat) + "}");
    return "bearer " + *jwt;
  }

  std::string keyPem() const {
    std::ifstream in(pki_.apnsKey());
    std::stringstream pem;
    pem << in.rdbuf();
    return pem.str();
  }

  // GET /_mock/stats -> the "apns" object.
  boost::json::object stats() {
    return boost::json::parse(call(boost::beast::http::verb::get, "/_mock/stats", ""))
        .as_object()
        .at("apns")
        .as_object();
  }
  uint64_t stat(const char* name) { return stats().at(name).to_number<uint64_t>(); }

  std::string get(const std::string& target) {
    return call(boost::beast::http::verb::get, target, "");
  }

  std::string post(const std::string& target, const std::string& body = "") {
    return call(boost::beast::http::verb::post, target, body);
  }

 private:
  std::vector<std::string> argv(const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {
        binaryPath("pns-mock").string(),
        "--apns-port",
        std::to_string(apns_port_),
        "--control-port",
        std::to_string(control_port_),
        "--cert",
        pki_.cert().string(),
        "--key",
        pki_.key().string(),
        "--threads",
        "1",
        "--apns-key",
        std::string(kKeyId) + ":" + kTeamId + ":" + pki_.apnsPublicKey().string(),
        "--log-level",
        "warn"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  std::string call(boost::beast::http::verb verb, const std::string& target,
                   const std::string& body) {
    namespace http = boost::beast::http;
    boost::asio::io_context ioc;
    boost::beast::tcp_stream stream(ioc);
    stream.connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), control_port_));
    stream.expires_after(std::chrono::seconds(20));
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    if (res.result_int() / 100 != 2) {
      throw std::runtime_error("pns-mock control " + target + ": " +
                               std::to_string(res.result_int()) + " " + res.body());
    }
    return res.body();
  }

  TempDir dir_;
  TestPki pki_;
  uint16_t apns_port_;
  uint16_t control_port_;
  Subprocess process_;
};

}  // namespace pushhub::testing
