#include "providers/common/tls.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <cstdlib>

namespace pushhub::providers {

std::string_view alpnWireList(AlpnOffer offer) {
  using namespace std::string_view_literals;
  switch (offer) {
    case AlpnOffer::kNone:
      return {};
    case AlpnOffer::kH2:
      return "\x02h2"sv;
    case AlpnOffer::kHttp1:
      return "\x08http/1.1"sv;
    case AlpnOffer::kH2OrHttp1:
      return "\x02h2\x08http/1.1"sv;
  }
  return {};
}

Result<std::shared_ptr<boost::asio::ssl::context>> makeTlsClientContext(const std::string& ca_file,
                                                                        bool offer_h2_alpn) {
  return makeTlsClientContext(ca_file, offer_h2_alpn ? AlpnOffer::kH2 : AlpnOffer::kNone);
}

Result<std::shared_ptr<boost::asio::ssl::context>> makeTlsClientContext(const std::string& ca_file,
                                                                        AlpnOffer alpn) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (ec) {
    return Error::internal("tls: cannot set options: " + ec.message());
  }
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) {
      return Error::internal("tls: cannot load the system trust store: " + ec.message());
    }
  } else {
    ctx->load_verify_file(ca_file, ec);
    if (ec) {
      return Error::invalidArgument("tls: ca_file '" + ca_file +
                                    "' is not a readable PEM bundle: " + ec.message());
    }
  }
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (ec) {
    return Error::internal("tls: cannot set verify mode: " + ec.message());
  }
  // Session resumption saves a round trip and CPU on reconnects.
  SSL_CTX_set_session_cache_mode(ctx->native_handle(), SSL_SESS_CACHE_CLIENT);
  std::string_view wire = alpnWireList(alpn);
  if (!wire.empty() && SSL_CTX_set_alpn_protos(ctx->native_handle(),
                                               reinterpret_cast<const unsigned char*>(wire.data()),
                                               static_cast<unsigned int>(wire.size())) != 0) {
    return Error::internal("tls: cannot set ALPN");
  }
  return ctx;
}

bool skipNullFreesInOpenSsl() {
  auto allocate = [](size_t n, const char*, int) -> void* {
    return n == 0 ? nullptr : std::malloc(n);  // CRYPTO_malloc(0) is null too
  };
  auto resize = [](void* p, size_t n, const char*, int) -> void* {
    if (n == 0) {
      std::free(p);
      return nullptr;
    }
    return std::realloc(p, n);
  };
  auto release = [](void* p, const char*, int) {
    if (p != nullptr) {
      std::free(p);
    }
  };
  return CRYPTO_set_mem_functions(allocate, resize, release) == 1;
}

}  // namespace pushhub::providers
