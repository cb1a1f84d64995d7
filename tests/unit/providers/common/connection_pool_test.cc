// ConnectionPool against the real pns-mock binary (TLS + HTTP/2 on loopback).

#include "providers/common/connection_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <thread>

#include "providers/common/tls.h"
#include "tests/support/run_until.h"
#include "tests/unit/providers/common/pns_mock_fixture.h"

namespace pushhub::providers {
namespace {

using namespace std::chrono_literals;
using testing::PnsMock;

constexpr const char* kGoodToken =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr const char* kDropToken =
    "c105e00000000000000000000000000000000000000000000000000000000000";

// Runs `ioc` on this thread until `done()` or `limit` passes; returns done().
using testing::runUntil;

ConnectionPool::Options poolOptions(uint16_t port, const testing::TestPki& pki,
                                    size_t connections = 1) {
  ConnectionPool::Options o;
  o.host = "127.0.0.1";
  o.port = port;
  auto tls = makeTlsClientContext(pki.ca().string(), true);
  EXPECT_TRUE(tls) << tls.error().message;
  o.tls = *tls;
  o.connections = connections;
  o.request_timeout = 20s;
  return o;
}

Request apnsRequest(const std::string& bearer, const std::string& token = kGoodToken) {
  Request r;
  r.path = "/3/device/" + token;
  r.sensitive_path = true;
  r.headers = {{"authorization", bearer, true},
               {"apns-topic", PnsMock::kTopic, false},
               {"apns-push-type", "alert", false},
               {"content-type", "application/json", false}};
  r.body = R"({"aps":{"alert":"hello"}})";
  return r;
}

// Keeps `window` requests outstanding until `total` were submitted; counts results.
struct Load {
  Load(ConnectionPool& p, Request r, size_t t, size_t w)
      : pool(p), proto(std::move(r)), total(t), window(w) {}

  ConnectionPool& pool;
  Request proto;
  size_t total;
  size_t window;
  std::function<void(Load&)> on_complete;  // after each completion, before refilling
  size_t submitted = 0;
  size_t completed = 0;
  size_t errors = 0;
  std::map<int, size_t> statuses;
  std::string first_error;

  void start() { refill(); }
  bool done() const { return completed == total; }

  void refill() {
    while (submitted < total && submitted - completed < window) {
      ++submitted;
      pool.submit(proto, [this](Result<Response> r) {
        ++completed;
        if (r) {
          ++statuses[r->status];
        } else {
          if (errors++ == 0) {
            first_error = r.error().message;
          }
        }
        if (on_complete) {
          on_complete(*this);
        }
        refill();
      });
    }
  }
};

// Runs `load` to the end, asking pns-mock for a GOAWAY once `after` requests completed. The ask
// comes from another thread, so this client keeps opening streams while the GOAWAY is on its
// way: those above last_stream_id must be resubmitted, not failed. False if it did not finish.
bool runWithGoawayAfter(size_t after, PnsMock& mock, boost::asio::io_context& ioc, Load& load) {
  std::thread control;
  load.on_complete = [&](Load& l) {
    if (l.completed == after) {
      control = std::thread([&mock] { mock.post("/_mock/goaway", R"({"reason":"Shutdown"})"); });
    }
  };
  load.start();
  bool finished = runUntil(ioc, [&] { return load.done(); });
  if (control.joinable()) {
    control.join();
  }
  return finished;
}

TEST(ConnectionPool, ManyConcurrentRequestsAreAllAnswered) {
  PnsMock mock;
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  constexpr size_t kTotal = 20000;
  Load load(pool, apnsRequest(mock.bearer()), kTotal, 3000);
  auto start = std::chrono::steady_clock::now();
  load.start();
  EXPECT_GT(pool.pending(), 0u);  // more than the server's stream limit was asked for
  ASSERT_TRUE(runUntil(ioc, [&] { return load.done(); }));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ measure  ] %zu requests over 1 connection in %.2f s = %.0f req/s\n", kTotal,
              seconds, kTotal / seconds);
  EXPECT_EQ(load.errors, 0u) << load.first_error;
  EXPECT_EQ(load.statuses[200], kTotal);
  EXPECT_EQ(pool.inFlight(), 0u);
  EXPECT_EQ(pool.pending(), 0u);
  EXPECT_EQ(pool.readyConnections(), 1u);
  EXPECT_EQ(pool.stats().connects, 1u);
  auto stats = mock.stats();
  EXPECT_EQ(stats.at("accepted").to_number<uint64_t>(), kTotal);
  EXPECT_EQ(stats.at("connections").to_number<uint64_t>(), 1u);
  EXPECT_LE(stats.at("max_concurrent_seen").to_number<uint64_t>(), 1000u);
  EXPECT_GT(stats.at("max_concurrent_seen").to_number<uint64_t>(), 1u);
}

TEST(ConnectionPool, SpreadsOverSeveralConnections) {
  PnsMock mock({"--max-concurrent-streams", "50", "--delay-ms", "1"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki(), 3));
  Load load(pool, apnsRequest(mock.bearer()), 3000, 150);
  load.start();
  ASSERT_TRUE(runUntil(ioc, [&] { return load.done(); }));
  EXPECT_EQ(load.errors, 0u) << load.first_error;
  EXPECT_EQ(load.statuses[200], 3000u);
  EXPECT_EQ(pool.readyConnections(), 3u);
  auto stats = mock.stats();
  EXPECT_EQ(stats.at("connections").to_number<uint64_t>(), 3u);
  EXPECT_LE(stats.at("max_concurrent_seen").to_number<uint64_t>(), 50u);
}

TEST(ConnectionPool, FollowsMaxConcurrentStreamsDownToOneAndBackUp) {
  PnsMock mock({"--delay-ms", "2"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  enum class Phase { kWide, kLowered, kAtOne, kRaised } phase = Phase::kWide;
  size_t completed_at_one = 0;
  size_t max_in_flight_at_one = 0;
  size_t max_in_flight_raised = 0;
  Load load(pool, apnsRequest(mock.bearer()), 1500, 100);
  load.on_complete = [&](Load& l) {
    switch (phase) {
      case Phase::kWide:
        if (l.completed == 500) {
          mock.post("/_mock/config", R"({"max_concurrent_streams":1})");
          phase = Phase::kLowered;
        }
        break;
      case Phase::kLowered:
        // Streams opened before the change drain first; then the server's count starts clean.
        if (pool.inFlight() == 0) {
          mock.post("/_mock/reset");
          phase = Phase::kAtOne;
        }
        break;
      case Phase::kAtOne:
        if (++completed_at_one == 300) {
          mock.post("/_mock/config", R"({"max_concurrent_streams":50})");
          phase = Phase::kRaised;
        }
        break;
      case Phase::kRaised:
        break;
    }
  };
  // Sample the pool after every refill.
  auto sample = [&] {
    if (phase == Phase::kAtOne) {
      max_in_flight_at_one = std::max(max_in_flight_at_one, pool.inFlight());
    } else if (phase == Phase::kRaised) {
      max_in_flight_raised = std::max(max_in_flight_raised, pool.inFlight());
    }
  };
  boost::asio::steady_timer sampler(ioc);
  std::function<void()> tick = [&] {
    sample();
    sampler.expires_after(1ms);
    sampler.async_wait([&](boost::system::error_code ec) {
      if (!ec && !load.done()) {
        tick();
      }
    });
  };
  tick();
  load.start();
  ASSERT_TRUE(runUntil(ioc, [&] { return load.done(); }));
  sampler.cancel();
  EXPECT_EQ(load.errors, 0u) << load.first_error;
  EXPECT_EQ(load.statuses[200], 1500u);
  ASSERT_EQ(phase, Phase::kRaised);
  EXPECT_LE(max_in_flight_at_one, 1u);
  EXPECT_GT(max_in_flight_raised, 1u);
  EXPECT_LE(max_in_flight_raised, 50u);
  auto stats = mock.stats();
  // Everything after the reset: 1 at a time, then up to 50.
  EXPECT_GT(stats.at("max_concurrent_seen").to_number<uint64_t>(), 1u);
  EXPECT_LE(stats.at("max_concurrent_seen").to_number<uint64_t>(), 50u);
}

TEST(ConnectionPool, NeverExceedsOneStreamWhileTheServerSaysOne) {
  PnsMock mock({"--delay-ms", "1", "--max-concurrent-streams", "1"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  size_t max_in_flight = 0;
  Load load(pool, apnsRequest(mock.bearer()), 300, 50);
  load.on_complete = [&](Load&) { max_in_flight = std::max(max_in_flight, pool.inFlight()); };
  load.start();
  ASSERT_TRUE(runUntil(ioc, [&] { return load.done(); }));
  EXPECT_EQ(load.statuses[200], 300u);
  EXPECT_LE(max_in_flight, 1u);
  EXPECT_EQ(mock.stat("max_concurrent_seen"), 1u);
}

TEST(ConnectionPool, GoawayMidFlightLosesNothing) {
  PnsMock mock({"--delay-ms", "5"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  Load load(pool, apnsRequest(mock.bearer()), 4000, 400);
  ASSERT_TRUE(runWithGoawayAfter(1000, mock, ioc, load));
  EXPECT_EQ(load.errors, 0u) << load.first_error;
  EXPECT_EQ(load.statuses[200], 4000u);
  EXPECT_GE(pool.stats().goaways, 1u);
  EXPECT_GE(pool.stats().connects, 2u);
  std::printf("[ measure  ] GOAWAY: %llu streams resubmitted\n",
              static_cast<unsigned long long>(pool.stats().resubmitted));
  // Each request reached the server exactly once: none lost, none duplicated.
  EXPECT_EQ(mock.stat("accepted"), 4000u);
}

TEST(ConnectionPool, SharedBodyAndBorrowedHeadersSurviveGoaway) {
  // nghttp2 borrows every header name and value from the request, and all requests share one
  // body: through a GOAWAY, whose refused streams move to a new connection, every request must
  // still reach the server whole and exactly once.
  PnsMock mock({"--delay-ms", "5"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  Request proto = apnsRequest(mock.bearer());
  proto.shared_body = std::make_shared<const std::string>(proto.body);
  proto.body.clear();
  // nghttp2 lower-cases only the names it copies, so a capitalized one must still be copied:
  // sent as is, the server would refuse the stream.
  proto.headers[2].name = "APNs-Push-Type";
  Load load(pool, proto, 3000, 400);
  ASSERT_TRUE(runWithGoawayAfter(1000, mock, ioc, load));
  EXPECT_EQ(load.errors, 0u) << load.first_error;
  EXPECT_EQ(load.statuses[200], 3000u);
  EXPECT_GE(pool.stats().goaways, 1u);
  EXPECT_EQ(mock.stat("accepted"), 3000u);
  auto received = boost::json::parse(mock.get("/_mock/received?provider=apns&limit=1"));
  ASSERT_EQ(received.as_array().size(), 1u);
  const auto& entry = received.as_array()[0].as_object();
  EXPECT_EQ(entry.at("body").as_string(), *proto.shared_body);
  EXPECT_EQ(entry.at("headers").as_object().at("apns-push-type").as_string(), "alert");
}

TEST(ConnectionPool, ConnectionDroppedMidStreamFailsThenReconnects) {
  PnsMock mock({"--delay-ms", "200"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  std::string bearer = mock.bearer();
  size_t answered = 0;
  size_t failed = 0;
  bool drop_failed = false;
  // Get the connection past the server's one-stream start, then fill it.
  pool.submit(apnsRequest(bearer), [&](Result<Response> r) {
    ASSERT_TRUE(r) << r.error().message;
    for (int i = 0; i < 20; ++i) {
      pool.submit(apnsRequest(bearer), [&](Result<Response> r) { r ? ++answered : ++failed; });
    }
    pool.submit(apnsRequest(bearer, kDropToken), [&](Result<Response> r) {
      drop_failed = !r;
      ++failed;
    });
  });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return answered + failed == 21; }, 30s))
      << answered << " answered, " << failed << " failed";
  EXPECT_TRUE(drop_failed);
  EXPECT_GE(failed, 1u);
  EXPECT_EQ(pool.inFlight(), 0u);

  // Later requests get a new connection.
  size_t later_ok = 0;
  for (int i = 0; i < 10; ++i) {
    pool.submit(apnsRequest(bearer), [&](Result<Response> r) {
      if (r && r->status == 200) {
        ++later_ok;
      }
    });
  }
  ASSERT_TRUE(runUntil(
      ioc, [&] { return later_ok == 10; }, 30s));
  EXPECT_GE(pool.stats().connects, 2u);
}

TEST(ConnectionPool, RequestTimeoutFailsTheRequestAndKeepsTheConnection) {
  PnsMock mock({"--delay-ms", "3000"});
  boost::asio::io_context ioc;
  auto options = poolOptions(mock.apnsPort(), mock.pki());
  options.request_timeout = 300ms;
  ConnectionPool pool(ioc, options);
  std::optional<Result<Response>> result;
  pool.submit(apnsRequest(mock.bearer()), [&](Result<Response> r) { result = std::move(r); });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return result.has_value(); }, 10s));
  ASSERT_FALSE(*result);
  EXPECT_NE(result->error().message.find("timed out"), std::string::npos);
  EXPECT_EQ(pool.stats().timeouts, 1u);
  EXPECT_EQ(pool.readyConnections(), 1u);
}

TEST(ConnectionPool, ConnectFailureFailsFastAndDoesNotHang) {
  testing::TempDir dir;
  auto pki = testing::makeTestPki(dir.path());
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(testing::freePort(), pki));  // nothing listens there
  size_t failed = 0;
  for (int i = 0; i < 5; ++i) {
    pool.submit(Request{}, [&](Result<Response> r) { failed += r ? 0 : 1; });
  }
  ASSERT_TRUE(runUntil(
      ioc, [&] { return failed == 5; }, 10s));
  EXPECT_EQ(pool.pending(), 0u);
  EXPECT_GE(pool.stats().connect_failures, 1u);
}

TEST(ConnectionPool, RejectsServerWithWrongCertificateName) {
  PnsMock mock;
  boost::asio::io_context ioc;
  auto options = poolOptions(mock.apnsPort(), mock.pki());
  options.authority = "api.push.apple.com";  // the test certificate is for 127.0.0.1/localhost
  ConnectionPool pool(ioc, options);
  std::optional<Result<Response>> result;
  pool.submit(apnsRequest(mock.bearer()), [&](Result<Response> r) { result = std::move(r); });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return result.has_value(); }, 10s));
  EXPECT_FALSE(*result);
}

TEST(ConnectionPool, IdleConnectionSurvivesPings) {
  PnsMock mock;
  boost::asio::io_context ioc;
  auto options = poolOptions(mock.apnsPort(), mock.pki());
  options.ping_interval = 1s;
  ConnectionPool pool(ioc, options);
  std::string bearer = mock.bearer();
  size_t ok = 0;
  pool.submit(apnsRequest(bearer), [&](Result<Response> r) { ok += r ? 1 : 0; });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return ok == 1; }, 10s));
  auto idle_until = std::chrono::steady_clock::now() + 3500ms;
  runUntil(
      ioc, [&] { return std::chrono::steady_clock::now() >= idle_until; }, 10s);
  EXPECT_EQ(pool.readyConnections(), 1u);
  pool.submit(apnsRequest(bearer), [&](Result<Response> r) { ok += r ? 1 : 0; });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return ok == 2; }, 10s));
  EXPECT_EQ(pool.stats().connects, 1u);
}

TEST(ConnectionPool, ShutdownFailsEverythingOutstanding) {
  PnsMock mock({"--delay-ms", "2000"});
  boost::asio::io_context ioc;
  ConnectionPool pool(ioc, poolOptions(mock.apnsPort(), mock.pki()));
  std::string bearer = mock.bearer();
  size_t failed = 0;
  for (int i = 0; i < 10; ++i) {
    pool.submit(apnsRequest(bearer), [&](Result<Response> r) { failed += r ? 0 : 1; });
  }
  runUntil(
      ioc, [&] { return pool.inFlight() > 0; }, 10s);
  pool.shutdown();
  EXPECT_EQ(failed, 10u);
  pool.submit(apnsRequest(bearer), [&](Result<Response> r) { failed += r ? 0 : 1; });
  ASSERT_TRUE(runUntil(
      ioc, [&] { return failed == 11; }, 5s));
}

}  // namespace
}  // namespace pushhub::providers
