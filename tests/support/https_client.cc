#include "tests/support/https_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cctype>
#include <optional>

namespace pushhub::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct HttpsClient::Impl {
  Impl(uint16_t port, const std::string& ca_file)
      : port(port), tls(asio::ssl::context::tls_client) {
    tls.load_verify_file(ca_file);
    tls.set_verify_mode(asio::ssl::verify_peer);
  }
  bool connect() {
    stream.emplace(ioc, tls);
    beast::error_code ec;
    beast::get_lowest_layer(*stream).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(*stream).connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return false;
    stream->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    stream->handshake(asio::ssl::stream_base::client, ec);
    return !ec;
  }

  asio::io_context ioc;
  uint16_t port;
  asio::ssl::context tls;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  bool open = false;
};

HttpsClient::HttpsClient(uint16_t port, std::string ca_file)
    : impl_(std::make_unique<Impl>(port, ca_file)) {}

HttpsClient::~HttpsClient() = default;

HttpsResult HttpsClient::request(const std::string& method, const std::string& target,
                                 const Headers& headers, const std::string& body) {
  if (!impl_->open) {
    impl_->buffer.clear();
    if (!impl_->connect()) return {};
    impl_->open = true;
    ++connections_;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(impl_->port));
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = body;
  req.prepare_payload();
  beast::error_code ec;
  beast::get_lowest_layer(*impl_->stream).expires_after(std::chrono::seconds(60));
  http::write(*impl_->stream, req, ec);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  // The server may answer (and close) before it read all of a refused body.
  http::read(*impl_->stream, impl_->buffer, parser, ec);
  if (ec) {
    impl_->open = false;
    return {};
  }
  auto response = parser.release();
  HttpsResult out;
  out.status = static_cast<int>(response.result_int());
  out.body = response.body();
  out.keep_alive = response.keep_alive();
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  if (!out.keep_alive) impl_->open = false;
  return out;
}

}  // namespace pushhub::testing
