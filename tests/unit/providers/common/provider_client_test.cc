// ProviderClient with a fake Provider: per-host pools, waiting for a provider that is not ready,
// and the auth retry, against in-test TLS HTTP/1.1 servers.

#include "providers/common/provider_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "providers/common/tls.h"
#include "tests/support/run_until.h"
#include "tests/unit/providers/common/tls_http1_server.h"

namespace pushhub::providers {
namespace {

using namespace std::chrono_literals;
using testing::Reply;
using testing::SeenRequest;
using testing::TlsHttp1Server;

using testing::runUntil;

std::shared_ptr<const Notification> note(std::string body) {
  auto n = std::make_shared<Notification>();
  n->body = std::move(body);
  return n;
}

// push_channel "" = default endpoint, else "port" of a 127.0.0.1 endpoint. Shares the body with
// the notification, as the real providers do.
class FakeProvider : public Provider {
 public:
  std::string_view name() const override { return "fake"; }
  Result<Request> encode(const Target& target,
                         const std::shared_ptr<const Notification>& notification) override {
    ++encodes;
    if (notification->body == "bad") {
      return Error::invalidArgument("body: bad");
    }
    Request r;
    r.path = "/send/" + target.installation_id;
    r.shared_body = std::shared_ptr<const std::string>(notification, &notification->body);
    r.headers = {{"authorization", "Bearer gen" + std::to_string(generation), true}};
    r.credential_generation = generation;
    if (!target.push_channel.empty()) {
      r.host = "127.0.0.1";
      r.port = static_cast<uint16_t>(std::stoi(target.push_channel));
    }
    return r;
  }
  Outcome classify(const Response& response) const override {
    Outcome o;
    o.http_status = response.status;
    if (response.status == 200) {
      o.kind = OutcomeKind::kDelivered;
      o.azure_outcome = "Success";
    } else if (response.status == 401) {
      o.kind = OutcomeKind::kRefreshAuth;
    } else {
      o.kind = OutcomeKind::kRetryBackoff;
    }
    return o;
  }
  void onAuthRejected(const Response& rejected) override {
    rejected_generations.push_back(rejected.credential_generation);
    ++generation;
  }
  bool ready() const override { return is_ready; }
  void whenReady(boost::asio::any_io_executor executor,
                 std::function<void(Result<void>)> done) override {
    ++when_ready_calls;
    pending_ready = std::move(done);
    ready_executor = executor;
  }
  // Completes the outstanding whenReady() call (as a token source would, later, on the executor).
  void completeReady(Result<void> result) {
    auto done = std::move(pending_ready);
    pending_ready = nullptr;
    boost::asio::post(ready_executor, [done, result] { done(result); });
  }

  bool is_ready = true;
  uint64_t generation = 7;
  size_t encodes = 0;
  size_t when_ready_calls = 0;
  std::function<void(Result<void>)> pending_ready;
  boost::asio::any_io_executor ready_executor;
  std::vector<uint64_t> rejected_generations;
};

class ProviderClientTest : public ::testing::Test {
 protected:
  ProviderClientTest() : pki_(testing::makeTestPki(dir_.path() / "pki")) {}

  ConnectionPool::Options options(uint16_t port) {
    ConnectionPool::Options o;
    o.protocol = ConnectionPool::Protocol::kNegotiate;
    o.host = "127.0.0.1";
    o.port = port;
    o.tls = makeTlsClientContext(pki_.ca().string(), AlpnOffer::kH2OrHttp1).value();
    o.connections = 2;
    o.request_timeout = 10s;
    return o;
  }

  static Reply ok(const SeenRequest& r) {
    Reply reply;
    reply.body = "ok:" + r.body;
    return reply;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
};

struct Outcomes {
  std::vector<Outcome> list;
  ProviderClient::Done add() {
    return [this](Outcome o) { list.push_back(std::move(o)); };
  }
};

TEST_F(ProviderClientTest, RequestsNamingAHostGoToThatHostsOwnPool) {
  TlsHttp1Server a(pki_, ok);
  TlsHttp1Server b(pki_, ok);
  TlsHttp1Server c(pki_, ok);
  boost::asio::io_context ioc;
  auto provider = std::make_unique<FakeProvider>();
  ProviderClient client(ioc, std::move(provider), options(a.port()));
  Outcomes outcomes;
  for (int i = 0; i < 10; ++i) {
    client.send({"i" + std::to_string(i), ""}, note("to-a"), outcomes.add());
    client.send({"j" + std::to_string(i), std::to_string(b.port())}, note("to-b"), outcomes.add());
    client.send({"k" + std::to_string(i), std::to_string(c.port())}, note("to-c"), outcomes.add());
  }
  // Naming the default endpoint explicitly uses the default pool.
  client.send({"d", std::to_string(a.port())}, note("to-a"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 31; }));
  for (const auto& o : outcomes.list) {
    EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << o.reason;
  }
  EXPECT_EQ(a.requests(), 11u);
  EXPECT_EQ(b.requests(), 10u);
  EXPECT_EQ(c.requests(), 10u);
  for (const auto& s : b.seen()) {
    EXPECT_EQ(s.body, "to-b");
    EXPECT_EQ(s.headers.at("host"), "127.0.0.1:" + std::to_string(b.port()));
  }
  EXPECT_EQ(client.hostPoolCount(), 2u);
  ASSERT_NE(client.hostPool("127.0.0.1", b.port()), nullptr);
  EXPECT_EQ(client.hostPool("127.0.0.1", a.port()), nullptr);  // that is pool()
  // Host pools share the default pool's options: the same protocol and connection cap.
  EXPECT_EQ(client.hostPool("127.0.0.1", b.port())->options().protocol,
            ConnectionPool::Protocol::kNegotiate);
  EXPECT_LE(b.connections(), 2u);
  EXPECT_EQ(client.inFlight(), 0u);
}

TEST_F(ProviderClientTest, IdleHostPoolsAreShutDown) {
  TlsHttp1Server a(pki_, ok);
  TlsHttp1Server b(pki_, ok);
  boost::asio::io_context ioc;
  ProviderClient client(ioc, std::make_unique<FakeProvider>(), options(a.port()),
                        ProviderClient::HostPoolOptions{256, 100ms});
  Outcomes outcomes;
  client.send({"x", std::to_string(b.port())}, note("hello"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 1; }));
  EXPECT_EQ(outcomes.list[0].kind, OutcomeKind::kDelivered);
  EXPECT_EQ(client.hostPoolCount(), 1u);
  ASSERT_TRUE(runUntil(ioc, [&] { return client.hostPoolCount() == 0; }));
  ASSERT_TRUE(runUntil(ioc, [&] { return b.openConnections() == 0; }));  // really closed
  // And a later send opens a fresh one.
  client.send({"y", std::to_string(b.port())}, note("again"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 2; }));
  EXPECT_EQ(outcomes.list[1].kind, OutcomeKind::kDelivered);
  EXPECT_EQ(b.requests(), 2u);
}

TEST_F(ProviderClientTest, HostPoolLimitClosesTheLeastRecentlyUsedIdlePool) {
  TlsHttp1Server a(pki_, ok);
  TlsHttp1Server b(pki_, ok);
  TlsHttp1Server c(pki_, [](const SeenRequest& r) {
    Reply reply = ok(r);
    reply.delay = r.body == "slow" ? 300ms : 0ms;
    return reply;
  });
  boost::asio::io_context ioc;
  ProviderClient client(ioc, std::make_unique<FakeProvider>(), options(a.port()),
                        ProviderClient::HostPoolOptions{1, 60s});
  Outcomes outcomes;
  client.send({"x", std::to_string(b.port())}, note("1"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 1; }));
  client.send({"y", std::to_string(c.port())}, note("slow"), outcomes.add());
  EXPECT_EQ(client.hostPoolCount(), 1u);
  EXPECT_EQ(client.hostPool("127.0.0.1", b.port()), nullptr);  // evicted for c
  ASSERT_NE(client.hostPool("127.0.0.1", c.port()), nullptr);
  // c is busy, so b cannot get a pool now: the send fails as retryable.
  client.send({"z", std::to_string(b.port())}, note("2"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 3; }));
  EXPECT_EQ(outcomes.list[0].kind, OutcomeKind::kDelivered);
  // The refused send finishes first (no I/O), then the slow one.
  EXPECT_EQ(outcomes.list[1].kind, OutcomeKind::kRetryBackoff);
  EXPECT_EQ(outcomes.list[1].azure_outcome, "PnsUnreachable");
  EXPECT_NE(outcomes.list[1].reason.find("too many"), std::string::npos);
  EXPECT_EQ(outcomes.list[2].kind, OutcomeKind::kDelivered);
  EXPECT_EQ(b.requests(), 1u);
}

TEST_F(ProviderClientTest, SendsWaitingForTheProviderShareOneWhenReadyCall) {
  TlsHttp1Server a(pki_, ok);
  boost::asio::io_context ioc;
  auto owned = std::make_unique<FakeProvider>();
  FakeProvider* provider = owned.get();
  provider->is_ready = false;
  ProviderClient client(ioc, std::move(owned), options(a.port()));
  Outcomes outcomes;
  for (int i = 0; i < 20; ++i) {
    client.send({"i" + std::to_string(i), ""}, note("b"), outcomes.add());
  }
  EXPECT_EQ(provider->when_ready_calls, 1u);
  EXPECT_EQ(client.waitingForProvider(), 20u);
  EXPECT_EQ(provider->encodes, 0u);
  EXPECT_EQ(client.inFlight(), 20u);
  provider->is_ready = true;
  provider->completeReady({});
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 20; }));
  for (const auto& o : outcomes.list) {
    EXPECT_EQ(o.kind, OutcomeKind::kDelivered) << o.reason;
  }
  EXPECT_EQ(provider->when_ready_calls, 1u);
  EXPECT_EQ(provider->encodes, 20u);
  EXPECT_EQ(a.requests(), 20u);
  EXPECT_EQ(client.inFlight(), 0u);
}

TEST_F(ProviderClientTest, WhenReadyErrorsBecomeConfigErrorOrRetry) {
  TlsHttp1Server a(pki_, ok);
  boost::asio::io_context ioc;
  auto owned = std::make_unique<FakeProvider>();
  FakeProvider* provider = owned.get();
  provider->is_ready = false;
  ProviderClient client(ioc, std::move(owned), options(a.port()));
  Outcomes outcomes;
  for (int i = 0; i < 3; ++i) {
    client.send({"i", ""}, note("b"), outcomes.add());
  }
  provider->completeReady(Error{Error::Code::kUnauthenticated,
                                "token endpoint https://x/token: HTTP 400 invalid_grant"});
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 3; }));
  for (const auto& o : outcomes.list) {
    EXPECT_EQ(o.kind, OutcomeKind::kConfigError);
    EXPECT_EQ(o.azure_outcome, "InvalidCredentials");
    EXPECT_NE(o.reason.find("invalid_grant"), std::string::npos);
  }
  client.send({"j", ""}, note("b"), outcomes.add());
  client.send({"k", ""}, note("b"), outcomes.add());
  EXPECT_EQ(provider->when_ready_calls, 2u);
  provider->completeReady(Error::unavailable("token endpoint unreachable"));
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 5; }));
  for (size_t i = 3; i < 5; ++i) {
    EXPECT_EQ(outcomes.list[i].kind, OutcomeKind::kRetryBackoff);
    EXPECT_EQ(outcomes.list[i].azure_outcome, "PnsUnreachable");
  }
  EXPECT_EQ(provider->encodes, 0u);
  EXPECT_EQ(a.requests(), 0u);
  EXPECT_EQ(client.inFlight(), 0u);
}

TEST_F(ProviderClientTest, AuthRejectionPassesTheGenerationAndRetriesOnce) {
  TlsHttp1Server a(pki_, [](const SeenRequest& r) {
    Reply reply = ok(r);
    if (r.headers.at("authorization") == "Bearer gen7" || r.body == "always-401") {
      reply.status = 401;
    }
    return reply;
  });
  boost::asio::io_context ioc;
  auto owned = std::make_unique<FakeProvider>();
  FakeProvider* provider = owned.get();
  ProviderClient client(ioc, std::move(owned), options(a.port()));
  Outcomes outcomes;
  client.send({"i", ""}, note("b"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 1; }));
  EXPECT_EQ(outcomes.list[0].kind, OutcomeKind::kDelivered);
  ASSERT_EQ(provider->rejected_generations.size(), 1u);
  EXPECT_EQ(provider->rejected_generations[0], 7u);
  EXPECT_EQ(a.requests(), 2u);
  // Rejected twice: reported after one retry.
  client.send({"j", ""}, note("always-401"), outcomes.add());
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 2; }));
  EXPECT_EQ(outcomes.list[1].kind, OutcomeKind::kRefreshAuth);
  EXPECT_EQ(a.requests(), 4u);
  ASSERT_EQ(provider->rejected_generations.size(), 3u);
  EXPECT_EQ(provider->rejected_generations[1], 8u);
  EXPECT_EQ(provider->rejected_generations[2], 9u);
}

TEST_F(ProviderClientTest, EncodeErrorIsAPermanentBadRequestWithoutIo) {
  TlsHttp1Server a(pki_, ok);
  boost::asio::io_context ioc;
  ProviderClient client(ioc, std::make_unique<FakeProvider>(), options(a.port()));
  Outcomes outcomes;
  client.send({"i", ""}, note("bad"), outcomes.add());
  EXPECT_TRUE(outcomes.list.empty());  // never from inside send()
  ASSERT_TRUE(runUntil(ioc, [&] { return outcomes.list.size() == 1; }));
  EXPECT_EQ(outcomes.list[0].kind, OutcomeKind::kPermanentBadRequest);
  EXPECT_EQ(a.requests(), 0u);
}

}  // namespace
}  // namespace pushhub::providers
