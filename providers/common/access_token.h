#pragma once
// AccessTokenSource: an OAuth 2.0 access token (FCM service account, WNS package) fetched from a
// token endpoint and shared by every worker thread using that credential.
//
// - One fetch at a time for all callers: get() callers that find no valid token wait for the
//   fetch in progress (or start one) and all get its result.
// - A token counts as needing a refresh from `refresh_margin` before its expiry. current()
//   still returns it then (and starts a background refresh); after expiry it returns null.
// - invalidate(generation) after a 401: the token of that generation is no longer handed out,
//   so the next get() fetches; a newer generation is left alone (many in-flight 401s of one
//   token cause one refresh).
// - Errors: kUnauthenticated / kPermissionDenied when the endpoint refuses the credentials
//   (OAuth error, any 4xx; 403 / access_denied / unauthorized_client give kPermissionDenied),
//   kUnavailable when it cannot be reached, times out, answers 429/5xx or something that is not
//   a token. After a failed fetch the next one waits min_retry, doubling up to max_retry; until
//   then get() fails at once with the last error. No fetch runs without a caller asking.
// - The token endpoint is called over HTTPS with HTTP/1.1 (a ConnectionPool of kind kHttp1 with
//   one keep-alive connection) on the source's own thread. Error texts name the endpoint and the
//   OAuth error, never the request body (assertion, client secret) or a token.
//
// Threading: every public member function may be called from any thread except the source's
// own (stop() joins it). current() takes no mutex (an atomic shared_ptr).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "providers/common/http_message.h"

namespace spdlog {
class logger;
}

namespace pushhub::providers {

class ConnectionPool;

struct AccessToken {
  std::string authorization;  // "Bearer <token>", a secret: never log
  std::chrono::system_clock::time_point expires_at;
  uint64_t generation = 0;  // 1 for the first token, +1 per fetch
};

struct TokenRequest {
  std::string url;  // https://host[:port]/path
  std::string content_type = "application/x-www-form-urlencoded";
  std::string body;  // holds the assertion or client secret: never logged
};

// Builds one token request (e.g. signs a fresh RS256 assertion); called on the source's own
// thread once per fetch. An error stops that fetch: kUnavailable is passed on as is, any other
// code becomes kUnauthenticated (the credential cannot be used).
using TokenRequestFactory = std::function<Result<TokenRequest>()>;

class AccessTokenSource {
 public:
  struct Options {
    std::string ca_file;  // PEM bundle to verify the endpoint; empty = system trust store
    std::chrono::seconds refresh_margin{300};
    std::chrono::seconds min_retry{1};
    std::chrono::seconds max_retry{60};
    std::chrono::milliseconds timeout{10000};                      // connect, and the whole request
    std::function<std::chrono::system_clock::time_point()> clock;  // default system_clock::now
  };

  // Starts the source's thread. Fails on a bad ca_file or inconsistent options. `name` appears
  // in logs and errors (e.g. "fcm:my-project").
  static Result<std::shared_ptr<AccessTokenSource>> create(std::string name,
                                                           TokenRequestFactory factory,
                                                           Options options);
  ~AccessTokenSource();  // stop()
  AccessTokenSource(const AccessTokenSource&) = delete;
  AccessTokenSource& operator=(const AccessTokenSource&) = delete;

  // The current token, or null when none is valid (none yet, expired, or invalidated). A token
  // within refresh_margin of its expiry is returned and a background refresh starts. Any thread;
  // no mutex.
  std::shared_ptr<const AccessToken> current() const;

  // Calls `done` on `executor` with a valid token, starting a fetch if none is valid; see the
  // errors above. Any thread. After stop(), `done` gets kUnavailable at once.
  void get(boost::asio::any_io_executor executor,
           std::function<void(Result<std::shared_ptr<const AccessToken>>)> done);

  // After a 401 with a token of `generation`: that token (and older ones) is not handed out any
  // more; the next get() fetches. No effect when a newer generation already exists. Any thread.
  void invalidate(uint64_t generation);

  // Fails waiting callers (kUnavailable), closes the connection and joins the thread. Idempotent.
  // Not from the source's own thread (e.g. not from a TokenRequestFactory).
  void stop();

  const std::string& name() const { return name_; }
  // Fetches started so far (factory calls), for tests and metrics. Any thread.
  uint64_t fetches() const { return fetches_.load(std::memory_order_relaxed); }

 private:
  using Done = std::function<void(Result<std::shared_ptr<const AccessToken>>)>;
  struct Waiter {
    boost::asio::any_io_executor executor;
    Done done;
  };

  AccessTokenSource(std::string name, TokenRequestFactory factory, Options options,
                    std::shared_ptr<boost::asio::ssl::context> tls);

  bool usable(const std::shared_ptr<const AccessToken>& token,
              std::chrono::system_clock::time_point now) const;
  void requestRefresh() const;
  // The rest runs on the source's thread.
  void onGet(Waiter waiter);
  void startFetch();
  void onFetched(const std::string& endpoint, Result<Response> response);
  void succeed(std::shared_ptr<const AccessToken> token, const std::string& endpoint);
  void fail(Error error);
  static void reply(const Waiter& waiter, Result<std::shared_ptr<const AccessToken>> result);

  const std::string name_;
  TokenRequestFactory factory_;
  const Options options_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<spdlog::logger> log_;

  std::atomic<std::shared_ptr<const AccessToken>> token_;
  std::atomic<uint64_t> invalidated_{0};  // tokens of this generation and older are not handed out
  mutable std::atomic<bool> refresh_posted_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> fetches_{0};

  // Source thread only.
  std::vector<Waiter> waiters_;
  bool fetching_ = false;
  uint64_t generation_ = 0;
  std::chrono::seconds backoff_{0};
  std::chrono::system_clock::time_point retry_at_{};
  Error last_error_;
  std::unique_ptr<ConnectionPool> pool_;
  std::string pool_endpoint_;  // host:port of pool_

  mutable boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace pushhub::providers
