#pragma once
// TLS client contexts for provider connections. A context is immutable after creation and may
// be shared by every connection of every worker (OpenSSL SSL_CTX is thread-safe once set up).

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pushhub::providers {

// Which application protocols the ClientHello offers (ALPN, RFC 7301).
enum class AlpnOffer {
  kNone,       // no ALPN extension
  kH2,         // "h2" only (APNs, FCM over HTTP/2)
  kHttp1,      // "http/1.1" only (token endpoints, WNS when HTTP/2 must not be used)
  kH2OrHttp1,  // "h2", "http/1.1": the server picks (WNS: HTTP/2 where offered)
};

// The ALPN wire list (length-prefixed names) for `offer`; empty for kNone.
std::string_view alpnWireList(AlpnOffer offer);

// A TLS 1.2+ client context that verifies the peer certificate against `ca_file` (PEM bundle;
// empty = the system trust store). Host name verification and SNI are set per connection by
// the pool. With `offer_h2_alpn` the ClientHello offers ALPN "h2" only.
Result<std::shared_ptr<boost::asio::ssl::context>> makeTlsClientContext(const std::string& ca_file,
                                                                        bool offer_h2_alpn);

// The same with any ALPN offer. ConnectionPool also sets the list matching its Protocol on each
// connection, so a context made here may be shared by pools of different protocols.
Result<std::shared_ptr<boost::asio::ssl::context>> makeTlsClientContext(const std::string& ca_file,
                                                                        AlpnOffer alpn);

// Gives OpenSSL allocation functions that skip free(nullptr) and otherwise do what its own do.
// OpenSSL 3.0's ERR_clear_error, which asio calls before every SSL_read and SSL_write, frees its
// 32 error-slot strings, nearly always null; jemalloc's free(nullptr) costs ~40 instructions
// where glibc's costs 3, ~1,400 per call. Call first thing in main(): it works only before
// OpenSSL's first allocation (false after that, and OpenSSL's own functions stay).
bool skipNullFreesInOpenSsl();

}  // namespace pushhub::providers
