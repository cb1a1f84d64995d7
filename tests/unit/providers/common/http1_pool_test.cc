// ConnectionPool in its HTTP/1.1 and negotiating flavours, against an in-test TLS HTTP/1.1
// server and (for h2 negotiation and ALPN refusal) the real pns-mock binary.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "providers/common/connection_pool.h"
#include "providers/common/tls.h"
#include "tests/support/run_until.h"
#include "tests/unit/providers/common/pns_mock_fixture.h"
#include "tests/unit/providers/common/tls_http1_server.h"

namespace pushhub::providers {
namespace {

using namespace std::chrono_literals;
using testing::Reply;
using testing::SeenRequest;
using testing::TlsHttp1Server;

using testing::runUntil;

class Http1PoolTest : public ::testing::Test {
 protected:
  Http1PoolTest() : pki_(testing::makeTestPki(dir_.path() / "pki")) {}

  ConnectionPool::Options options(uint16_t port, ConnectionPool::Protocol protocol,
                                  size_t connections = 1) {
    ConnectionPool::Options o;
    o.protocol = protocol;
    o.host = "127.0.0.1";
    o.port = port;
    auto tls = makeTlsClientContext(pki_.ca().string(), AlpnOffer::kNone);
    EXPECT_TRUE(tls) << tls.error().message;
    o.tls = *tls;
    o.connections = connections;
    o.request_timeout = 10s;
    return o;
  }

  static Request post(const std::string& path, const std::string& body) {
    Request r;
    r.path = path;
    r.headers = {{"content-type", "text/xml", false},
                 {"x-wns-type", "wns/toast", false},
                 {"authorization", "Bearer secret", true}};
    r.body = body;
    return r;
  }

  // Submits `total` requests keeping `window` outstanding; returns status counts (-1 = error).
  std::map<int, size_t> load(boost::asio::io_context& ioc, ConnectionPool& pool, size_t total,
                             size_t window, std::string* first_error = nullptr) {
    std::map<int, size_t> results;
    size_t submitted = 0;
    size_t completed = 0;
    std::function<void()> refill = [&] {
      while (submitted < total && submitted - completed < window) {
        size_t n = submitted++;
        pool.submit(post("/r/" + std::to_string(n), "body-" + std::to_string(n)),
                    [&, n](Result<Response> r) {
                      ++completed;
                      if (r) {
                        ++results[r->status];
                        EXPECT_EQ(r->body, "echo:body-" + std::to_string(n));
                      } else {
                        ++results[-1];
                        if (first_error != nullptr && first_error->empty()) {
                          *first_error = r.error().message;
                        }
                      }
                      refill();
                    });
      }
    };
    refill();
    EXPECT_TRUE(runUntil(ioc, [&] { return completed == total; }));
    return results;
  }

  static Reply echo(const SeenRequest& r) {
    Reply reply;
    reply.body = "echo:" + r.body;
    reply.headers = {{"X-WNS-Status", "received"}, {"X-WNS-Msg-ID", "1234"}};
    return reply;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
};

TEST_F(Http1PoolTest, KeepAliveCarriesManyRequestsOverFewConnections) {
  TlsHttp1Server server(pki_, echo);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1, 3));
  std::string error;
  auto results = load(ioc, pool, 300, 8, &error);
  EXPECT_EQ(results[200], 300u) << error;
  EXPECT_EQ(results[-1], 0u);
  EXPECT_EQ(server.requests(), 300u);
  EXPECT_LE(server.connections(), 3u);  // `connections` is the maximum
  EXPECT_GE(server.connections(), 1u);
  EXPECT_EQ(pool.stats().http1_connects, server.connections());
  EXPECT_EQ(pool.stats().connect_failures, 0u);
  EXPECT_EQ(pool.inFlight(), 0u);
  // 300 requests over at most 3 connections: connections are reused (how the requests spread
  // over them depends on timing, so only the total is asserted).
  std::map<uint64_t, size_t> per_connection;
  for (const auto& s : server.seen()) {
    ++per_connection[s.connection];
  }
  size_t busiest = 0;
  for (const auto& [id, n] : per_connection) {
    busiest = std::max(busiest, n);
  }
  EXPECT_GE(busiest, 100u);
}

// The response reader parses by hand what it reads off the socket: an interim response, a
// header split mid-line, a chunked body across records, a body far larger than one read, and a
// body that runs to the end of the connection all come out whole, and the connection carries
// the next request.
TEST_F(Http1PoolTest, ResponsesSplitChunkedInterimOrLargeAreReadWhole) {
  const std::string large(200 * 1024, 'x');
  TlsHttp1Server server(pki_, [&](const SeenRequest& r) {
    Reply reply;
    if (r.target == "/chunked") {
      reply.raw = {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-WNS-Sta",
                   "tus: received\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r",
                   "\n world\r\n0\r\n\r\n"};
    } else if (r.target == "/large") {
      reply.body = large;
    } else if (r.target == "/until-close") {
      reply.raw = {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the ", "end"};
      reply.close_after = true;
    } else {
      reply = echo(r);
    }
    return reply;
  });
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));

  auto get = [&](const std::string& path) {
    std::optional<Result<Response>> got;
    pool.submit(post(path, "b"), [&](Result<Response> r) { got = std::move(r); });
    EXPECT_TRUE(runUntil(ioc, [&] { return got.has_value(); }));
    return got.value_or(Result<Response>(Error::unavailable("no answer")));
  };

  auto chunked = get("/chunked");
  ASSERT_TRUE(chunked) << chunked.error().message;
  EXPECT_EQ(chunked->status, 200);
  EXPECT_EQ(chunked->body, "hello world");
  auto status = std::find_if(chunked->headers.begin(), chunked->headers.end(),
                             [](const Header& h) { return h.name == "x-wns-status"; });
  ASSERT_NE(status, chunked->headers.end());
  EXPECT_EQ(status->value, "received");

  auto big = get("/large");
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_EQ(big->body.size(), large.size());
  EXPECT_EQ(big->body, large);

  auto echoed = get("/next");
  ASSERT_TRUE(echoed) << echoed.error().message;
  EXPECT_EQ(echoed->body, "echo:b");
  EXPECT_EQ(server.connections(), 1u);  // all three on one keep-alive connection

  auto until_close = get("/until-close");
  ASSERT_TRUE(until_close) << until_close.error().message;
  EXPECT_EQ(until_close->body, "to the end");
}

TEST_F(Http1PoolTest, SendsContentLengthHostAndHeadersButNeverExpect) {
  TlsHttp1Server server(pki_, echo);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));
  std::optional<Result<Response>> got;
  Request r = post("/?token=AwYAAAB", "<toast/>");
  r.headers.push_back({"expect", "100-continue", false});  // ignored: the pool owns it
  r.headers.push_back({"content-length", "999", false});   // ignored: the pool owns it
  r.shared_headers = std::make_shared<const std::vector<Header>>(
      std::vector<Header>{{"x-wns-cache-policy", "cache", false}});
  pool.submit(std::move(r), [&](Result<Response> res) { got = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return got.has_value(); }));
  ASSERT_TRUE(*got) << got->error().message;
  EXPECT_EQ((*got)->status, 200);
  EXPECT_EQ((*got)->header("x-wns-status"), "received");  // lowercase names, like HTTP/2
  EXPECT_EQ((*got)->header("x-wns-msg-id"), "1234");
  EXPECT_NE((*got)->connection_id, 0u);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/?token=AwYAAAB");
  EXPECT_EQ(seen[0].headers["content-length"], "8");
  // RFC 9110: the port is part of Host unless it is the scheme default.
  EXPECT_EQ(seen[0].headers["host"], "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].headers["x-wns-type"], "wns/toast");
  EXPECT_EQ(seen[0].headers["authorization"], "Bearer secret");
  EXPECT_EQ(seen[0].headers["x-wns-cache-policy"], "cache");  // Request::shared_headers
  EXPECT_EQ(seen[0].headers.count("expect"), 0u);
  EXPECT_EQ(seen[0].headers.count("transfer-encoding"), 0u);

  // An empty body still has Content-Length: 0.
  got.reset();
  pool.submit(post("/empty", ""), [&](Result<Response> res) { got = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return got.has_value(); }));
  ASSERT_TRUE(*got);
  EXPECT_EQ(server.seen().back().headers["content-length"], "0");
  EXPECT_EQ(server.connections(), 1u);  // reused
}

TEST_F(Http1PoolTest, HeaderWithALineBreakFailsThatRequestOnly) {
  TlsHttp1Server server(pki_, echo);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));
  std::optional<Result<Response>> bad;
  std::optional<Result<Response>> good;
  Request r = post("/a", "<toast/>");
  r.headers.push_back({"x-wns-tag", "t\r\nx-injected: 1", false});
  pool.submit(std::move(r), [&](Result<Response> res) { bad = std::move(res); });
  pool.submit(post("/b", "<toast/>"), [&](Result<Response> res) { good = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return bad.has_value() && good.has_value(); }));
  ASSERT_FALSE(*bad);
  EXPECT_NE(bad->error().message.find("x-wns-tag"), std::string::npos) << bad->error().message;
  ASSERT_TRUE(*good) << good->error().message;
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);  // the bad one never reached the server
  EXPECT_EQ(seen[0].target, "/b");
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(Http1PoolTest, ConnectionCloseIsHonoured) {
  TlsHttp1Server server(pki_, [](const SeenRequest& r) {
    Reply reply = echo(r);
    reply.connection_close = true;
    return reply;
  });
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1, 2));
  std::string error;
  auto results = load(ioc, pool, 20, 1, &error);
  EXPECT_EQ(results[200], 20u) << error;
  EXPECT_EQ(server.connections(), 20u);  // one connection per response, as the server asked
  EXPECT_EQ(pool.stats().connect_failures, 0u);
  EXPECT_EQ(pool.stats().transport_errors, 0u);
}

TEST_F(Http1PoolTest, ServerClosingAnIdleConnectionIsNoticedAndReplaced) {
  TlsHttp1Server server(pki_, [](const SeenRequest& r) {
    Reply reply = echo(r);
    reply.close_after = true;  // closes without announcing it
    return reply;
  });
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));
  for (int i = 0; i < 3; ++i) {
    std::optional<Result<Response>> got;
    pool.submit(post("/x", "b"), [&](Result<Response> res) { got = std::move(res); });
    ASSERT_TRUE(runUntil(ioc, [&] { return got.has_value(); }));
    ASSERT_TRUE(*got) << got->error().message;
    // The outstanding read sees the close while idle: no request is ever put on a dead socket.
    ASSERT_TRUE(runUntil(ioc, [&] { return pool.readyConnections() == 0; }));
  }
  EXPECT_EQ(server.connections(), 3u);
  EXPECT_EQ(pool.stats().transport_errors, 0u);
}

TEST_F(Http1PoolTest, DroppedRequestFailsAndTheNextOneReconnects) {
  TlsHttp1Server server(pki_, [](const SeenRequest& r) {
    Reply reply = echo(r);
    reply.drop = r.target == "/drop";
    return reply;
  });
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));
  std::optional<Result<Response>> dropped;
  pool.submit(post("/drop", "x"), [&](Result<Response> res) { dropped = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return dropped.has_value(); }));
  ASSERT_FALSE(*dropped);  // written, then lost: the server may have acted on it
  EXPECT_EQ(dropped->error().code, Error::Code::kUnavailable);
  EXPECT_NE(dropped->error().message.find("connection lost"), std::string::npos)
      << dropped->error().message;
  EXPECT_EQ(server.requests(), 1u);  // not resent behind the caller's back

  std::optional<Result<Response>> next;
  pool.submit(post("/ok", "y"), [&](Result<Response> res) { next = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return next.has_value(); }));
  ASSERT_TRUE(*next) << next->error().message;
  EXPECT_EQ((*next)->status, 200);
  EXPECT_EQ(server.connections(), 2u);
}

TEST_F(Http1PoolTest, RequestTimeoutFailsTheRequestAndANewConnectionServesTheNext) {
  TlsHttp1Server server(pki_, [](const SeenRequest& r) {
    Reply reply = echo(r);
    if (r.target == "/slow") {
      reply.delay = 3000ms;
    }
    return reply;
  });
  boost::asio::io_context ioc;
  auto o = options(server.port(), ConnectionPool::Protocol::kHttp1);
  o.request_timeout = 200ms;
  ConnectionPool pool(ioc, o);
  std::optional<Result<Response>> slow;
  pool.submit(post("/slow", "x"), [&](Result<Response> res) { slow = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return slow.has_value(); }));
  ASSERT_FALSE(*slow);
  EXPECT_NE(slow->error().message.find("timed out"), std::string::npos);
  EXPECT_EQ(pool.stats().timeouts, 1u);
  std::optional<Result<Response>> fast;
  pool.submit(post("/fast", "y"), [&](Result<Response> res) { fast = std::move(res); });
  ASSERT_TRUE(runUntil(ioc, [&] { return fast.has_value(); }));
  ASSERT_TRUE(*fast) << fast->error().message;
  EXPECT_EQ((*fast)->body, "echo:y");  // not the slow request's late answer
  EXPECT_EQ(server.connections(), 2u);
}

TEST_F(Http1PoolTest, ConnectionsAreOpenedOnlyForWaitingRequestsAndCapped) {
  TlsHttp1Server server(pki_, [](const SeenRequest& r) {
    Reply reply = echo(r);
    reply.delay = 20ms;
    return reply;
  });
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1, 4));
  // One request at a time: one connection is enough and no more are opened.
  auto results = load(ioc, pool, 5, 1);
  EXPECT_EQ(results[200], 5u);
  EXPECT_EQ(server.connections(), 1u);
  // Fifty at once: at most four connections, never more open at a time.
  results = load(ioc, pool, 50, 50);
  EXPECT_EQ(results[200], 50u);
  EXPECT_LE(server.connections(), 4u);
  EXPECT_LE(server.maxOpenConnections(), 4u);
  EXPECT_GT(server.connections(), 1u);
}

TEST_F(Http1PoolTest, NegotiateFallsBackToHttp1WhenTheServerPicksIt) {
  TlsHttp1Server server(pki_, echo);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kNegotiate, 2));
  auto results = load(ioc, pool, 40, 4);
  EXPECT_EQ(results[200], 40u);
  EXPECT_GE(pool.stats().http1_connects, 1u);
  EXPECT_EQ(pool.stats().http1_connects, pool.stats().connects);
  EXPECT_EQ(pool.stats().connect_failures, 0u);
}

TEST_F(Http1PoolTest, NegotiateUsesHttp1WhenTheServerIgnoresAlpn) {
  TlsHttp1Server server(pki_, echo, TlsHttp1Server::Alpn::kNone);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kNegotiate));
  auto results = load(ioc, pool, 10, 1);
  EXPECT_EQ(results[200], 10u);
  EXPECT_EQ(pool.stats().http1_connects, 1u);
  EXPECT_EQ(server.connections(), 1u);
}

TEST_F(Http1PoolTest, Http1WorksWithAServerThatIgnoresAlpn) {
  TlsHttp1Server server(pki_, echo, TlsHttp1Server::Alpn::kNone);
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, options(server.port(), ConnectionPool::Protocol::kHttp1));
  auto results = load(ioc, pool, 5, 1);
  EXPECT_EQ(results[200], 5u);
}

// --- against the real pns-mock (HTTP/2 only, ALPN "h2") ---

Request apnsRequest(const testing::PnsMock& mock) {
  Request r;
  r.path = "/3/device/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  r.headers = {{"authorization", mock.bearer(), true},
               {"apns-topic", testing::PnsMock::kTopic, false},
               {"apns-push-type", "alert", false}};
  r.body = R"({"aps":{"alert":"hi"}})";
  return r;
}

TEST(NegotiatingPool, UsesHttp2WhenTheServerPicksH2) {
  testing::PnsMock mock;
  boost::asio::io_context ioc;
  ConnectionPool::Options o;
  o.protocol = ConnectionPool::Protocol::kNegotiate;
  o.host = "127.0.0.1";
  o.port = mock.apnsPort();
  o.tls = makeTlsClientContext(mock.pki().ca().string(), AlpnOffer::kH2OrHttp1).value();
  ConnectionPool pool(ioc, o);
  size_t ok = 0;
  size_t done = 0;
  for (int i = 0; i < 200; ++i) {
    pool.submit(apnsRequest(mock), [&](Result<Response> r) {
      ++done;
      ok += r && r->status == 200 ? 1 : 0;
    });
  }
  ASSERT_TRUE(runUntil(ioc, [&] { return done == 200; }));
  EXPECT_EQ(ok, 200u);
  EXPECT_EQ(pool.stats().connects, 1u);
  EXPECT_EQ(pool.stats().http1_connects, 0u);
  EXPECT_GT(mock.stat("max_concurrent_seen"), 1u);  // multiplexed: HTTP/2
}

TEST(NegotiatingPool, Http1OnlyPoolNeverSpeaksH2ToAnH2OnlyServer) {
  testing::PnsMock mock;
  boost::asio::io_context ioc;
  ConnectionPool::Options o;
  o.protocol = ConnectionPool::Protocol::kHttp1;
  o.host = "127.0.0.1";
  o.port = mock.apnsPort();
  // Even a context offering h2 is overridden by the pool's per-connection ALPN list.
  o.tls = makeTlsClientContext(mock.pki().ca().string(), AlpnOffer::kH2).value();
  ConnectionPool pool(ioc, o);
  std::optional<Result<Response>> got;
  pool.submit(apnsRequest(mock), [&](Result<Response> r) { got = std::move(r); });
  ASSERT_TRUE(runUntil(ioc, [&] { return got.has_value(); }));
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error().code, Error::Code::kUnavailable);
  EXPECT_EQ(pool.stats().connects, 0u);
  EXPECT_EQ(mock.stat("accepted"), 0u);
}

}  // namespace
}  // namespace pushhub::providers
