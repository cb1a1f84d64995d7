#pragma once
// WnsProvider: the Windows Notification Service implementation of Provider
// (spec/pns-protocols.md §4 and §6). Each device's channel URI names the WNS host to POST to,
// so every request carries its own host, port and path; no I/O.
//
// A channel URI comes from a device, i.e. from anyone who can register: it is checked against
// the hub's allowed host patterns before pushhub ever connects (parseChannelUri), at
// registration by the API layer and again in encode().
//
// Threading: one instance per worker, used only on that worker's thread. The static functions
// may be called from any thread. The AccessTokenSource behind it is shared by all workers.

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "providers/common/access_token.h"
#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"
#include "providers/wns/wns_config.h"

namespace pushhub::providers::wns {

class WnsProvider : public Provider {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  static constexpr size_t kMaxPayloadBytes = 5000;
  static constexpr size_t kMaxChannelUriBytes = 2048;
  static constexpr size_t kMaxTagBytes = 16;

  // `clock` (default system_clock::now) turns Notification::expiry into X-WNS-TTL and dates in
  // Retry-After into delays; tests inject a fake one. The secret is dropped from the kept
  // config: the token source holds the credential.
  WnsProvider(WnsConfig config, std::shared_ptr<AccessTokenSource> tokens, Clock clock = {});

  std::string_view name() const override { return "wns"; }

  // True while the token source holds a valid access token. Worker thread.
  bool ready() const override;
  // Fetches an access token (shared with every worker) and calls `done` on `executor`.
  void whenReady(boost::asio::any_io_executor executor,
                 std::function<void(Result<void>)> done) override;

  // POST to the channel: Request::host/port/path from parseChannelUri (path sent
  // literal-never-indexed: its query is the device's token). Headers: authorization
  // (sensitive), content-type (text/xml, or application/octet-stream for wns/raw), x-wns-type
  // and the optional x-wns-* headers from parseHeaders; x-wns-ttl derived from
  // Notification::expiry (whole seconds left, at least 1) when the sender gave none. Errors:
  // a channel URI or header that parseChannelUri/parseHeaders refuses, and kUnavailable when
  // no access token is available. The body is shared with `notification`, not copied.
  Result<Request> encode(const Target& target,
                         const std::shared_ptr<const Notification>& notification) override;

  // By HTTP status and X-WNS-Status (see the table in wns_provider.cc). Outcome::reason is the
  // X-WNS-Status value, else X-WNS-Error-Description (cut to 200 bytes).
  Outcome classify(const Response& response) const override;

  // After 401: invalidates the access token generation the rejected request carried
  // (Response::credential_generation, which encode() put in Request::credential_generation), so
  // the many 401s of one dead token cause one refresh and a late 401 of an old token does not
  // discard its successor.
  void onAuthRejected(const Response& rejected) override;
  // Without the response: invalidates the generation the most recent encode() used.
  void onAuthRejected() override;

  // A channel URI split into where to connect and what to ask for.
  struct Channel {
    std::string host;  // lower case; an IPv6 literal without brackets
    uint16_t port = 443;
    std::string target;  // path?query exactly as given ("/" when the path is empty)
  };

  // A hub's allowed_hosts, parsed once. A malformed pattern (validateAllowedHosts refuses it at
  // start-up) never matches.
  class AllowedHosts {
   public:
    explicit AllowedHosts(const std::vector<std::string>& patterns);
    // `host` in lower case; `is_name` false for an IP literal, which only an exact pattern
    // matches.
    bool allows(std::string_view host, bool is_name, uint16_t port) const;

    struct Pattern {
      std::string host;  // lower case, IPv6 without brackets; for a wildcard the suffix ".x.y"
      bool wildcard = false;
      std::optional<uint16_t> port;
    };

   private:
    std::vector<Pattern> patterns_;
  };

  // Accepts only an absolute https URI of at most 2048 bytes, without user info or fragment,
  // whose host (lower-cased) and port match one of `allowed`:
  // - "*.example.com" matches every subdomain of example.com at any depth, not example.com
  //   itself and not "evilexample.com"; a pattern without '*' matches exactly;
  // - a pattern may end in ":port" (IPv6 as "[::1]:8443"); otherwise the port must be 443;
  // - IP literals match only a pattern naming them exactly, never a wildcard.
  // Host names are letters, digits, '-' and '.', without empty labels. Errors say what is wrong
  // and never contain the URI's path or query (the device's token).
  static Result<Channel> parseChannelUri(std::string_view uri, const AllowedHosts& allowed);
  // The same, parsing the patterns first (registration; a send uses the provider's parsed ones).
  static Result<Channel> parseChannelUri(std::string_view uri,
                                         const std::vector<std::string>& allowed_hosts);

  // Checks host patterns for the config loader: "*.domain", "host", "1.2.3.4", "[v6]", each
  // optionally with ":port".
  static Result<void> validateAllowedHosts(const std::vector<std::string>& allowed_hosts);

  // A sender's x-wns-* headers, checked: known names only (case-insensitive, each once),
  // values of the right form, the body 1 to 5000 bytes. x-wns-type is required. Other
  // platforms' headers (and content-type, which the provider sets) are ignored. Shared by
  // encode() and the API layer. Values are normalized to lower case where WNS defines them so.
  struct Headers {
    std::string type;                // wns/toast | wns/tile | wns/badge | wns/raw
    std::string content_type;        // text/xml, or application/octet-stream for wns/raw
    std::string cache_policy;        // cache | no-cache
    std::string request_for_status;  // true | false
    std::string tag, group;          // 1 to 16 ASCII letters and digits
    std::string ttl;                 // decimal seconds, 0 to 2147483647
    std::string suppress_popup;      // true | false
    std::string priority;            // 1 to 4
  };
  static Result<Headers> parseHeaders(const std::vector<Header>& headers, size_t body_size);

  // Pool options for WNS: no default host (each request names its own; ProviderClient opens a
  // pool per channel host with these options), `connections` per host, HTTP/1.1 or HTTP/2 as
  // the server picks (ALPN), TLS with the config's CA.
  static Result<ConnectionPool::Options> poolOptions(const WnsConfig& config);

  const WnsConfig& config() const { return config_; }

 private:
  // parseHeaders() for `notification`, remembered for the last notification: the result depends
  // on it alone, and a send encodes it for every target.
  Result<const Headers*> checkedHeaders(const std::shared_ptr<const Notification>& notification);

  WnsConfig config_;
  AllowedHosts allowed_hosts_;  // config_.allowed_hosts, parsed
  std::shared_ptr<AccessTokenSource> tokens_;
  Clock clock_;
  uint64_t last_generation_ = 0;  // of the token the latest encode() used
  PerNotification<Headers>
      checked_;  // the headers of the last notification checkedHeaders() passed
};

}  // namespace pushhub::providers::wns
