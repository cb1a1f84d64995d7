// AccessTokenSource against an in-test TLS HTTP/1.1 token endpoint, with an injected clock.

#include "providers/common/access_token.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/run_until.h"
#include "tests/unit/providers/common/tls_http1_server.h"

namespace pushhub::providers {
namespace {

using namespace std::chrono_literals;
using testing::Reply;
using testing::SeenRequest;
using testing::TlsHttp1Server;
using TokenResult = Result<std::shared_ptr<const AccessToken>>;

constexpr const char* kSecretBody = "grant_type=client_credentials&client_secret=TOPSECRET";

using testing::runUntil;

// A settable clock shared with the source's thread.
struct FakeClock {
  std::atomic<int64_t> seconds{1700000000};
  std::chrono::system_clock::time_point now() const {
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds.load()));
  }
  void advance(std::chrono::seconds by) { seconds += by.count(); }
};

class AccessTokenTest : public ::testing::Test {
 protected:
  AccessTokenTest() : pki_(testing::makeTestPki(dir_.path() / "pki")) {}

  // Replies with token "tok-<n>" (n = request count) valid `expires_in`.
  static TlsHttp1Server::Handler tokens(std::string expires_in = "3600",
                                        std::chrono::milliseconds delay = 0ms) {
    auto count = std::make_shared<std::atomic<int>>(0);
    return [count, expires_in, delay](const SeenRequest&) {
      Reply r;
      r.body = "{\"access_token\":\"tok-" + std::to_string(++*count) +
               "\",\"expires_in\":" + expires_in + ",\"token_type\":\"Bearer\"}";
      r.headers = {{"Content-Type", "application/json"}};
      r.delay = delay;
      return r;
    };
  }

  std::shared_ptr<AccessTokenSource> source(uint16_t port, AccessTokenSource::Options o = {}) {
    o.ca_file = pki_.ca().string();
    o.clock = [this] { return clock_.now(); };
    auto created = AccessTokenSource::create(
        "test",
        [this, port]() -> Result<TokenRequest> {
          ++factory_calls_;
          TokenRequest r;
          r.url = "https://127.0.0.1:" + std::to_string(port) + "/oauth2/token";
          r.body = kSecretBody;
          return r;
        },
        o);
    EXPECT_TRUE(created) << created.error().message;
    return *created;
  }

  // get() on a local io_context, run until answered.
  TokenResult getNow(AccessTokenSource& s) {
    boost::asio::io_context ioc;
    std::optional<TokenResult> out;
    s.get(ioc.get_executor(), [&](TokenResult r) { out = std::move(r); });
    EXPECT_TRUE(runUntil(ioc, [&] { return out.has_value(); }));
    return out ? std::move(*out) : TokenResult(Error::internal("no answer"));
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  FakeClock clock_;
  std::atomic<int> factory_calls_{0};
};

TEST_F(AccessTokenTest, FetchesOnceAndCaches) {
  TlsHttp1Server server(pki_, tokens());
  auto s = source(server.port());
  EXPECT_EQ(s->current(), nullptr);
  auto first = getNow(*s);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ((*first)->authorization, "Bearer tok-1");
  EXPECT_EQ((*first)->generation, 1u);
  EXPECT_EQ((*first)->expires_at, clock_.now() + 3600s);
  auto second = getNow(*s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->get(), first->get());
  ASSERT_NE(s->current(), nullptr);
  EXPECT_EQ(s->current()->generation, 1u);
  EXPECT_EQ(server.requests(), 1u);
  EXPECT_EQ(s->fetches(), 1u);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/oauth2/token");
  EXPECT_EQ(seen[0].headers["content-type"], "application/x-www-form-urlencoded");
  EXPECT_EQ(seen[0].body, kSecretBody);
}

TEST_F(AccessTokenTest, ExpiresInAsAStringIsAccepted) {
  TlsHttp1Server server(pki_, tokens("\"86399\""));
  auto s = source(server.port());
  auto t = getNow(*s);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ((*t)->expires_at, clock_.now() + 86399s);
}

TEST_F(AccessTokenTest, RefreshesWithinTheMarginAndDropsExpiredTokens) {
  TlsHttp1Server server(pki_, tokens());
  AccessTokenSource::Options o;
  o.refresh_margin = 300s;
  auto s = source(server.port(), o);
  ASSERT_TRUE(getNow(*s));
  clock_.advance(3000s);  // 600 s left: fine
  ASSERT_NE(s->current(), nullptr);
  EXPECT_EQ(server.requests(), 1u);
  clock_.advance(400s);  // 200 s left: inside the margin
  auto still = s->current();
  ASSERT_NE(still, nullptr);  // still valid, handed out while the refresh runs
  EXPECT_EQ(still->generation, 1u);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((s->current() == nullptr || s->current()->generation != 2) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_NE(s->current(), nullptr);
  EXPECT_EQ(s->current()->generation, 2u);
  EXPECT_EQ(s->current()->authorization, "Bearer tok-2");
  EXPECT_EQ(server.requests(), 2u);
  // Past the expiry of generation 2 nothing is handed out.
  clock_.advance(3600s);
  EXPECT_EQ(s->current(), nullptr);
  auto next = getNow(*s);
  ASSERT_TRUE(next);
  EXPECT_EQ((*next)->generation, 3u);
}

TEST_F(AccessTokenTest, ManyConcurrentWaitersShareOneFetch) {
  TlsHttp1Server server(pki_, tokens("3600", 200ms));
  auto s = source(server.port());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  std::mutex mu;
  std::vector<uint64_t> generations;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      boost::asio::io_context ioc;
      int mine = 0;
      for (int i = 0; i < kPerThread; ++i) {
        s->get(ioc.get_executor(), [&](TokenResult r) {
          ++mine;
          ++answered;
          if (r) {
            ++ok;
            std::lock_guard<std::mutex> lock(mu);
            generations.push_back((*r)->generation);
          }
        });
      }
      runUntil(ioc, [&] { return mine == kPerThread; });
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(answered.load(), kThreads * kPerThread);
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(server.requests(), 1u);
  EXPECT_EQ(factory_calls_.load(), 1);
  for (uint64_t g : generations) {
    EXPECT_EQ(g, 1u);
  }
}

TEST_F(AccessTokenTest, InvalidateRefetchesOnlyForTheCurrentGeneration) {
  TlsHttp1Server server(pki_, tokens());
  auto s = source(server.port());
  auto first = getNow(*s);
  ASSERT_TRUE(first);
  ASSERT_EQ((*first)->generation, 1u);
  // Many 401s of generation 1: one refresh.
  for (int i = 0; i < 10; ++i) {
    s->invalidate(1);
  }
  EXPECT_EQ(s->current(), nullptr);
  auto second = getNow(*s);
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)->generation, 2u);
  EXPECT_EQ(server.requests(), 2u);
  // Late 401s of generation 1 do not touch generation 2.
  s->invalidate(1);
  ASSERT_NE(s->current(), nullptr);
  EXPECT_EQ(s->current()->generation, 2u);
  auto third = getNow(*s);
  ASSERT_TRUE(third);
  EXPECT_EQ((*third)->generation, 2u);
  EXPECT_EQ(server.requests(), 2u);
}

TEST_F(AccessTokenTest, OAuthRefusalIsUnauthenticatedAndNamesTheErrorNotTheSecret) {
  TlsHttp1Server server(pki_, [](const SeenRequest&) {
    Reply r;
    r.status = 400;
    r.body = R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})";
    return r;
  });
  auto s = source(server.port());
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnauthenticated);
  EXPECT_NE(t.error().message.find("invalid_grant"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("Invalid JWT Signature."), std::string::npos);
  EXPECT_NE(t.error().message.find("https://127.0.0.1:" + std::to_string(server.port()) +
                                   "/oauth2/token"),
            std::string::npos);
  EXPECT_EQ(t.error().message.find("TOPSECRET"), std::string::npos);
  EXPECT_EQ(s->current(), nullptr);
}

TEST_F(AccessTokenTest, ForbiddenIsPermissionDenied) {
  TlsHttp1Server server(pki_, [](const SeenRequest&) {
    Reply r;
    r.status = 403;
    r.body = R"({"error":"access_denied"})";
    return r;
  });
  auto s = source(server.port());
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kPermissionDenied);
}

TEST_F(AccessTokenTest, ServerErrorsAreUnavailableAndBackOff) {
  TlsHttp1Server server(pki_, [](const SeenRequest&) {
    Reply r;
    r.status = 503;
    r.body = "busy";
    return r;
  });
  AccessTokenSource::Options o;
  o.min_retry = 10s;
  o.max_retry = 25s;
  auto s = source(server.port(), o);
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnavailable);
  EXPECT_NE(t.error().message.find("503"), std::string::npos);
  // While backing off callers fail at once, without a request.
  auto again = getNow(*s);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Error::Code::kUnavailable);
  EXPECT_NE(again.error().message.find("next attempt"), std::string::npos);
  EXPECT_EQ(server.requests(), 1u);
  // After min_retry the next caller tries again; the backoff doubles, capped at max_retry.
  clock_.advance(10s);
  ASSERT_FALSE(getNow(*s));
  EXPECT_EQ(server.requests(), 2u);
  clock_.advance(19s);  // < 20 s
  ASSERT_FALSE(getNow(*s));
  EXPECT_EQ(server.requests(), 2u);
  clock_.advance(1s);
  ASSERT_FALSE(getNow(*s));
  EXPECT_EQ(server.requests(), 3u);
  clock_.advance(25s);  // capped at 25, not 40
  ASSERT_FALSE(getNow(*s));
  EXPECT_EQ(server.requests(), 4u);
  // Recovery resets the backoff.
  server.setHandler(tokens());
  clock_.advance(25s);
  auto ok = getNow(*s);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ((*ok)->authorization, "Bearer tok-1");
}

TEST_F(AccessTokenTest, UnreachableEndpointIsUnavailableWithBackoff) {
  uint16_t closed_port = testing::freePort();  // nothing listens there
  AccessTokenSource::Options o;
  o.min_retry = 5s;
  auto s = source(closed_port, o);
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnavailable);
  EXPECT_NE(t.error().message.find("unreachable"), std::string::npos) << t.error().message;
  EXPECT_EQ(factory_calls_.load(), 1);
  auto fast = getNow(*s);
  ASSERT_FALSE(fast);
  EXPECT_EQ(fast.error().code, Error::Code::kUnavailable);
  EXPECT_EQ(factory_calls_.load(), 1);  // no new attempt while backing off
  clock_.advance(5s);
  ASSERT_FALSE(getNow(*s));
  EXPECT_EQ(factory_calls_.load(), 2);
}

TEST_F(AccessTokenTest, MalformedSuccessIsUnavailable) {
  TlsHttp1Server server(pki_, [](const SeenRequest&) {
    Reply r;
    r.body = R"({"token_type":"Bearer"})";
    return r;
  });
  auto s = source(server.port());
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnavailable);
}

TEST_F(AccessTokenTest, FactoryErrorsAreCredentialErrors) {
  boost::asio::io_context ioc;
  AccessTokenSource::Options o;
  o.clock = [this] { return clock_.now(); };
  auto s = AccessTokenSource::create(
      "broken", []() -> Result<TokenRequest> { return Error::invalidArgument("key: bad PEM"); }, o);
  ASSERT_TRUE(s);
  auto t = getNow(**s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnauthenticated);
  EXPECT_NE(t.error().message.find("bad PEM"), std::string::npos);
}

TEST_F(AccessTokenTest, StopFailsLaterCallsAtOnce) {
  TlsHttp1Server server(pki_, tokens());
  auto s = source(server.port());
  ASSERT_TRUE(getNow(*s));
  s->stop();
  s->stop();  // idempotent
  auto t = getNow(*s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Error::Code::kUnavailable);
}

}  // namespace
}  // namespace pushhub::providers
