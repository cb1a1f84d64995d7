#pragma once
// The control API of pns-mock (plain HTTP on --listen:--control-port, base/http_server):
//   GET  /_mock/stats[?tokens=0]              {"apns":{...}} one object per provider
//   GET  /_mock/received?provider=apns&limit=N  the most recent requests, oldest first
//   POST /_mock/reset                          clears stats and received lists
//   POST /_mock/config   {"max_concurrent_streams":N,"delay_ms":D}
//   POST /_mock/goaway   {"reason":"Shutdown"} (body optional)
//   POST /_mock/tokens   {"dead":[...],"bad":[...]} (optional "provider", default apns)
//   POST /_mock/expire-tokens {"provider":"fcm"|"wns"} (no provider: every provider with tokens)
//   POST /_mock/faults   {"provider":"fcm","fault":"throttle","count":N|"duration_ms":T,...}
// Every operation fans out to the worker threads and answers once all of them have applied it.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/http_server.h"
#include "base/result.h"
#include "tools/pns-mock/faults.h"

namespace pushhub::mock {

// One emulated provider as the control API sees it. Every method may be called from any thread;
// `done` runs exactly once, on some worker thread, after every worker has applied the change.
class MockProvider {
 public:
  virtual ~MockProvider() = default;
  virtual std::string_view name() const = 0;
  // `with_tokens` = false skips distinct_tokens (the union of every token seen: O(distinct
  // tokens) on each worker thread), for pollers.
  virtual void stats(bool with_tokens, std::function<void(boost::json::object)> done) = 0;
  virtual void received(size_t limit, std::function<void(boost::json::array)> done) = 0;
  virtual void reset(std::function<void()> done) = 0;
  // Keys not set in `config` are left alone; the caller has validated the values.
  virtual void configure(std::optional<uint32_t> max_concurrent_streams,
                         std::optional<uint32_t> delay_ms, std::function<void()> done) = 0;
  virtual void goaway(std::string debug_data, std::function<void()> done) = 0;
  // Adds explicit dead / bad tokens (already passed through normalizeToken).
  virtual void addTokens(std::vector<std::string> dead, std::vector<std::string> bad,
                         std::function<void()> done) = 0;
  // Replaces the provider's fault (faults.h); an expired one turns faults off.
  virtual void setFault(std::shared_ptr<Fault> fault, std::function<void()> done) = 0;
  // Checks a token given to /_mock/tokens and returns its stored form. The default (APNs):
  // even-length hex, lowercased. The error message says what is expected.
  virtual Result<std::string> normalizeToken(std::string_view token) const;
  // Makes every access token issued so far stop working. Returns false (and never calls `done`)
  // when the provider issues no access tokens.
  virtual bool expireTokens(std::function<void()> done) {
    (void)done;
    return false;
  }
};

// Builds the HttpHandler serving the API above over `providers` (which must outlive it).
http::HttpHandler makeControlHandler(std::vector<MockProvider*> providers);

}  // namespace pushhub::mock
