#include "providers/common/pool_connection.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>

#include "providers/common/tls.h"

namespace pushhub::providers::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string hostHeader(const std::string& host, uint16_t port) {
  bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  std::string out = ipv6 ? "[" + host + "]" : host;
  if (port != 0 && port != 443) out += ":" + std::to_string(port);
  return out;
}

std::string hostForSni(const std::string& authority) {
  // Strip ":port" (but not the colons of a bracketed IPv6 literal).
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    return close == std::string::npos ? authority : authority.substr(1, close - 1);
  }
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(':') == colon) {
    return authority.substr(0, colon);
  }
  return authority;
}

bool isIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

AlpnOffer alpnFor(ConnectionPool::Protocol protocol) {
  switch (protocol) {
    case ConnectionPool::Protocol::kH2:
      return AlpnOffer::kH2;
    case ConnectionPool::Protocol::kHttp1:
      return AlpnOffer::kHttp1;
    case ConnectionPool::Protocol::kNegotiate:
      return AlpnOffer::kH2OrHttp1;
  }
  return AlpnOffer::kH2;
}

}  // namespace

PoolConnection::PoolConnection(ConnectionPool* pool, uint64_t id,
                               std::unique_ptr<TlsStream> established)
    : pool_(pool),
      id_(id),
      ioc_(pool->ioc_),
      host_(pool->options_.host),
      port_(pool->options_.port),
      authority_(pool->options_.authority.empty() ? pool->options_.host : pool->options_.authority),
      host_header_(hostHeader(authority_, pool->options_.port)),
      protocol_(pool->options_.protocol),
      connect_timeout_(pool->options_.connect_timeout),
      tls_(pool->options_.tls),
      log_(pool->log_),
      established_(established != nullptr),
      resolver_(ioc_),
      stream_(established ? std::move(established) : std::make_unique<TlsStream>(ioc_, *tls_)),
      timer_(ioc_) {}

void PoolConnection::start() {
  auto self = shared_from_this();
  if (established_) {
    asio::post(ioc_, [self] {
      if (self->state_ != State::kClosed) {
        self->onEstablished("http/1.1");
      }
    });
    return;
  }
  timer_.expires_after(connect_timeout_);
  timer_.async_wait([self](boost::system::error_code ec) {
    if (!ec && self->state_ == State::kConnecting) {
      self->close("connect timeout after " + std::to_string(self->connect_timeout_.count()) +
                  " ms");
    }
  });
  resolver_.async_resolve(
      host_, std::to_string(port_),
      [self](boost::system::error_code ec, tcp::resolver::results_type results) {
        if (self->state_ == State::kClosed) {
          return;
        }
        if (ec) {
          self->close("resolve " + self->host_ + ": " + ec.message());
          return;
        }
        asio::async_connect(
            self->stream_->lowest_layer(), results,
            [self](boost::system::error_code ec, const tcp::endpoint&) { self->onConnected(ec); });
      });
}

void PoolConnection::onConnected(boost::system::error_code ec) {
  if (state_ == State::kClosed) {
    return;
  }
  if (ec) {
    close("connect to " + endpoint() + ": " + ec.message());
    return;
  }
  stream_->lowest_layer().set_option(tcp::no_delay(true), ec);
  // Asio turns SSL_MODE_RELEASE_BUFFERS on: OpenSSL then frees its 17 KB record buffers whenever
  // they drain and allocates them again on the next read or write, i.e. per request on an
  // HTTP/1.1 connection (over 100 frees per WNS delivery, ~7% of its instructions). A busy
  // provider connection keeps them.
  SSL_clear_mode(stream_->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  std::string sni = hostForSni(authority_);
  if (!isIpLiteral(sni)) {
    SSL_set_tlsext_host_name(stream_->native_handle(), sni.c_str());
  }
  std::string_view alpn = alpnWireList(alpnFor(protocol_));
  SSL_set_alpn_protos(stream_->native_handle(), reinterpret_cast<const unsigned char*>(alpn.data()),
                      static_cast<unsigned int>(alpn.size()));
  stream_->set_verify_callback(asio::ssl::host_name_verification(sni));
  auto self = shared_from_this();
  stream_->async_handshake(asio::ssl::stream_base::client,
                           [self](boost::system::error_code ec) { self->onHandshake(ec); });
}

void PoolConnection::onHandshake(boost::system::error_code ec) {
  if (state_ == State::kClosed) {
    return;
  }
  if (ec) {
    close("TLS handshake with " + endpoint() + ": " + ec.message());
    return;
  }
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(stream_->native_handle(), &alpn, &alpn_len);
  onEstablished(std::string_view(reinterpret_cast<const char*>(alpn), alpn_len));
}

ConnectionPool* PoolConnection::closeTransport(const std::string& why) {
  bool was_ready = ready_once_;
  bool was_live = state_ == State::kConnecting || state_ == State::kReady;
  state_ = State::kClosed;
  boost::system::error_code ignored;
  timer_.cancel();
  resolver_.cancel();
  stream_->lowest_layer().close(ignored);
  ConnectionPool* pool = pool_;
  pool_ = nullptr;
  if (pool != nullptr) {
    pool->onClosed(this, was_ready, was_live, graceful_, why);
  }
  return pool;
}

}  // namespace pushhub::providers::detail
