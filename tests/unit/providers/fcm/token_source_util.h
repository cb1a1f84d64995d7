#pragma once
// Real AccessTokenSources for the provider tests (shared by the FCM and WNS tests). Tokens come
// from pns-mock's WNS token endpoint (client credentials: the simplest OAuth endpoint it has);
// the providers only care that the source holds a token of some generation. One pns-mock runs
// per test binary.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>

#include "providers/common/access_token.h"
#include "providers/wns/wns_auth.h"
#include "tests/support/process.h"
#include "tests/unit/providers/common/pns_mock_fixture.h"

namespace pushhub::providers::fcm::testing {

class TokenEndpoint {
 public:
  static constexpr const char* kSid = "ms-app://S-1-15-2-1111";
  static constexpr const char* kSecret = "test-secret";

  static TokenEndpoint& get() {
    static TokenEndpoint endpoint;
    return endpoint;
  }

  // A source with no token yet (nothing fetched).
  std::shared_ptr<AccessTokenSource> emptySource() {
    wns::WnsConfig c;
    c.package_sid = kSid;
    c.secret = kSecret;
    c.token_url = "https://127.0.0.1:" + std::to_string(port_) + "/accesstoken.srf";
    AccessTokenSource::Options o;
    o.ca_file = mock_.pki().ca().string();
    auto source = AccessTokenSource::create("test", wns::makeWnsTokenRequests(c), o);
    if (!source) {
      throw std::runtime_error("token source: " + source.error().message);
    }
    return *source;
  }

 private:
  TokenEndpoint()
      : port_(pushhub::testing::freePort()),
        mock_({"--wns-port", std::to_string(port_), "--wns-sid", kSid, "--wns-secret", kSecret}) {
    if (!pushhub::testing::waitForPort(port_)) {
      throw std::runtime_error("pns-mock: no WNS port");
    }
  }

  uint16_t port_;
  pushhub::testing::PnsMock mock_;
};

// Fetches a token into `source` (waits for it, bounded by the source's own timeout).
inline std::shared_ptr<const AccessToken> fetch(AccessTokenSource& source) {
  boost::asio::io_context ioc;
  // The answer is posted from the source's thread: keep run_for() from returning before it.
  auto work = boost::asio::make_work_guard(ioc);
  std::shared_ptr<const AccessToken> out;
  std::optional<Error> error;
  source.get(ioc.get_executor(), [&](Result<std::shared_ptr<const AccessToken>> r) {
    if (r) {
      out = *r;
    } else {
      error = r.error();
    }
    work.reset();
  });
  ioc.run_for(std::chrono::seconds(30));
  if (!out) {
    throw std::runtime_error("token fetch: " + (error ? error->message : "timed out"));
  }
  return out;
}

// A source holding a fetched token.
inline std::shared_ptr<AccessTokenSource> makeTokenSource() {
  auto source = TokenEndpoint::get().emptySource();
  fetch(*source);
  return source;
}

inline std::shared_ptr<AccessTokenSource> makeEmptyTokenSource() {
  return TokenEndpoint::get().emptySource();
}

}  // namespace pushhub::providers::fcm::testing
