#pragma once
// TLS client contexts for provider connections. A context is immutable after creation and may
// be shared by every connection of every worker (OpenSSL SSL_CTX is thread-safe once set up).

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

#include "base/result.h"

namespace pushhub::providers {

// A TLS 1.2+ client context that verifies the peer certificate against `ca_file` (PEM bundle;
// empty = the system trust store). Host name verification and SNI are set per connection by
// the pool. With `offer_h2_alpn` the ClientHello offers ALPN "h2" only.
Result<std::shared_ptr<boost::asio::ssl::context>> makeTlsClientContext(const std::string& ca_file,
                                                                        bool offer_h2_alpn);

}  // namespace pushhub::providers
