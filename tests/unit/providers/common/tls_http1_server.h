#pragma once
// A small TLS HTTP/1.1 keep-alive server (Boost.Beast) on a free 127.0.0.1 port, running on its
// own thread, for tests of the HTTP/1.1 pool, ProviderClient's per-host pools and
// AccessTokenSource. Uses the test PKI's 127.0.0.1 certificate. The handler decides each reply,
// including closing the connection with or without a response.

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"

namespace pushhub::testing {

struct SeenRequest {
  std::string method;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
  uint64_t connection = 0;                     // 1-based, in accept order
};

struct Reply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool connection_close = false;  // send "Connection: close" and close after the reply
  bool close_after = false;       // close after the reply without saying so
  bool drop = false;              // close without replying
  // Bytes written as they are instead of a response, a TLS record each, 5 ms apart (for
  // responses split anywhere, chunked bodies and interim responses).
  std::vector<std::string> raw;
  std::chrono::milliseconds delay{0};
};

class TlsHttp1Server {
 public:
  using Handler = std::function<Reply(const SeenRequest&)>;
  enum class Alpn { kHttp1, kNone };  // kNone: ignore the client's ALPN offer

  TlsHttp1Server(const TestPki& pki, Handler handler, Alpn alpn = Alpn::kHttp1)
      : handler_(std::move(handler)), tls_(boost::asio::ssl::context::tls_server), acceptor_(ioc_) {
    tls_.use_certificate_chain_file(pki.cert().string());
    tls_.use_private_key_file(pki.key().string(), boost::asio::ssl::context::pem);
    if (alpn == Alpn::kHttp1) {
      SSL_CTX_set_alpn_select_cb(tls_.native_handle(), &TlsHttp1Server::selectAlpn, nullptr);
    }
    using tcp = boost::asio::ip::tcp;
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }

  // Stops the thread; open connections close when the io_context's handlers are destroyed.
  ~TlsHttp1Server() {
    ioc_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  uint64_t connections() const { return connections_.load(); }
  uint64_t openConnections() const { return open_.load(); }
  uint64_t maxOpenConnections() const { return max_open_.load(); }
  uint64_t requests() const { return requests_.load(); }
  std::vector<SeenRequest> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  void setHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }
  // Closes every open connection (as a server going away would), from any thread.
  void closeAll() {
    boost::asio::post(ioc_, [this] {
      for (auto& weak : sessions_) {
        if (auto s = weak.lock()) {
          boost::system::error_code ec;
          s->stream.lowest_layer().close(ec);
        }
      }
    });
  }

 private:
  struct Session {
    Session(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& ctx)
        : stream(std::move(socket), ctx), timer(stream.get_executor()) {}
    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    boost::beast::http::response<boost::beast::http::string_body> response;
    boost::asio::steady_timer timer;
    uint64_t id = 0;
    bool closed = false;
  };

  static int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                        const unsigned char* in, unsigned int inlen, void*) {
    for (unsigned int i = 0; i < inlen;) {
      unsigned int len = in[i];
      if (i + 1 + len <= inlen &&
          std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == "http/1.1") {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void accept() {
    acceptor_.async_accept(
        [this](boost::system::error_code ec, boost::asio::ip::tcp::socket socket) {
          if (ec) {
            return;
          }
          boost::system::error_code ignored;
          socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
          auto s = std::make_shared<Session>(std::move(socket), tls_);
          s->id = ++connections_;
          sessions_.push_back(s);
          uint64_t open = ++open_;
          uint64_t max = max_open_.load();
          while (open > max && !max_open_.compare_exchange_weak(max, open)) {
          }
          s->stream.async_handshake(boost::asio::ssl::stream_base::server,
                                    [this, s](boost::system::error_code ec) {
                                      if (ec) {
                                        finish(s);
                                        return;
                                      }
                                      read(s);
                                    });
          accept();
        });
  }

  void finish(const std::shared_ptr<Session>& s) {
    if (s->closed) {
      return;
    }
    s->closed = true;
    --open_;
    boost::system::error_code ec;
    s->stream.lowest_layer().close(ec);
  }

  void read(std::shared_ptr<Session> s) {
    s->request = {};
    boost::beast::http::async_read(
        s->stream, s->buffer, s->request, [this, s](boost::system::error_code ec, size_t) {
          if (ec) {
            finish(s);
            return;
          }
          SeenRequest seen;
          seen.method = std::string(s->request.method_string());
          seen.target = std::string(s->request.target());
          seen.body = s->request.body();
          seen.connection = s->id;
          for (const auto& f : s->request) {
            std::string name(f.name_string());
            for (char& ch : name) {
              ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            }
            seen.headers[name] = std::string(f.value());
          }
          Handler handler;
          {
            std::lock_guard<std::mutex> lock(mu_);
            seen_.push_back(seen);
            handler = handler_;
          }
          ++requests_;
          Reply reply = handler(seen);
          if (reply.delay.count() > 0) {
            s->timer.expires_after(reply.delay);
            s->timer.async_wait([this, s, reply](boost::system::error_code) { respond(s, reply); });
          } else {
            respond(s, reply);
          }
        });
  }

  void respond(std::shared_ptr<Session> s, const Reply& reply) {
    if (s->closed) {
      return;
    }
    if (reply.drop) {
      finish(s);
      return;
    }
    if (!reply.raw.empty()) {
      writeRaw(s, std::make_shared<std::vector<std::string>>(reply.raw), 0,
               reply.connection_close || reply.close_after);
      return;
    }
    namespace http = boost::beast::http;
    s->response = {};
    s->response.version(11);
    s->response.result(static_cast<unsigned>(reply.status));
    for (const auto& [name, value] : reply.headers) {
      s->response.insert(name, value);
    }
    s->response.body() = reply.body;
    s->response.keep_alive(!reply.connection_close);
    s->response.prepare_payload();
    bool close = reply.connection_close || reply.close_after;
    http::async_write(s->stream, s->response,
                      [this, s, close](boost::system::error_code ec, size_t) {
                        if (ec || close) {
                          finish(s);
                          return;
                        }
                        read(s);
                      });
  }

  void writeRaw(std::shared_ptr<Session> s, std::shared_ptr<std::vector<std::string>> pieces,
                size_t next, bool close) {
    if (next == pieces->size()) {
      close ? finish(s) : read(s);
      return;
    }
    boost::asio::async_write(
        s->stream, boost::asio::buffer((*pieces)[next]),
        [this, s, pieces, next, close](boost::system::error_code ec, size_t) {
          if (ec || s->closed) {
            finish(s);
            return;
          }
          s->timer.expires_after(std::chrono::milliseconds(5));
          s->timer.async_wait([this, s, pieces, next, close](boost::system::error_code) {
            writeRaw(s, pieces, next + 1, close);
          });
        });
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Session>> sessions_;
  uint16_t port_ = 0;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> open_{0};
  std::atomic<uint64_t> max_open_{0};
  std::atomic<uint64_t> requests_{0};
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
  std::thread thread_;
};

}  // namespace pushhub::testing
