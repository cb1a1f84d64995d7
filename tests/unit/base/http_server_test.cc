#include "base/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <future>
#include <thread>

#include "tests/support/https_client.h"
#include "tests/support/process.h"

namespace pushhub::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// An HttpServer on its own io_context thread, port 0.
class Served {
 public:
  explicit Served(HttpHandler handler, std::shared_ptr<asio::ssl::context> tls = nullptr,
                  size_t max_connections = HttpServer::kDefaultMaxConnections)
      : server_(std::make_unique<HttpServer>(io_, "127.0.0.1", 0, std::move(handler),
                                             std::move(tls), max_connections)),
        thread_([this] { io_.run(); }) {}
  ~Served() {
    server_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

tcp::socket connectTo(asio::io_context& io, uint16_t port) {
  tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  return socket;
}

TEST(HttpServerTest, HeadersInAndOut) {
  Served served([](const HttpRequest& request, std::function<void(HttpResponse)> respond) {
    HttpResponse r{200, "text/plain",
                   std::string(request.header("x-custom")) + "|" +
                       std::string(request.header("cookie")) + "|" +
                       std::to_string(request.headers.count("X-Custom"))};
    r.headers = {{"Set-Cookie", "a=1; HttpOnly"}, {"Cache-Control", "no-store"}};
    respond(std::move(r));
  });
  asio::io_context io;
  beast::tcp_stream stream(connectTo(io, served.port()));
  bhttp::request<bhttp::string_body> request{bhttp::verb::get, "/", 11};
  request.set(bhttp::field::host, "127.0.0.1");
  request.set("X-Custom", "yes");
  request.insert(bhttp::field::cookie, "a=1");
  request.insert(bhttp::field::cookie, "b=2");
  bhttp::write(stream, request);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  bhttp::read(stream, buffer, response);
  EXPECT_EQ(response.result_int(), 200);
  // Names lower-cased; two Cookie headers read as one list.
  EXPECT_EQ(response.body(), "yes|a=1; b=2|0");
  EXPECT_EQ(response[bhttp::field::set_cookie], "a=1; HttpOnly");
  EXPECT_EQ(response[bhttp::field::cache_control], "no-store");
}

// A streamed answer: its head, then each chunk as written; the client leaving is reported.
TEST(HttpServerTest, StreamsUntilTheClientLeaves) {
  std::promise<std::shared_ptr<ResponseStream>> opened;
  std::promise<void> closed;
  Served served([&](const HttpRequest&, std::function<void(HttpResponse)> respond) {
    HttpResponse r{200, "text/event-stream", "retry: 1000\n\n"};
    r.on_stream = [&](std::shared_ptr<ResponseStream> stream) {
      stream->onClose([&] { closed.set_value(); });
      EXPECT_TRUE(stream->write("data: one\n\n"));
      opened.set_value(stream);
    };
    respond(std::move(r));
  });
  asio::io_context io;
  auto socket = connectTo(io, served.port());
  asio::write(socket, asio::buffer(std::string("GET /live HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string got;
  asio::read_until(socket, asio::dynamic_buffer(got), "data: one\n\n");
  EXPECT_NE(got.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Content-Length"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\n\r\nretry: 1000\n\ndata: one\n\n"), std::string::npos) << got;

  auto stream = opened.get_future().get();
  asio::post(served.io(), [stream] { stream->write("data: two\n\n"); });
  asio::read_until(socket, asio::dynamic_buffer(got), "data: two\n\n");

  socket.close();
  ASSERT_EQ(closed.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  std::promise<bool> still_open;
  asio::post(served.io(), [&] { still_open.set_value(stream->write("data: three\n\n")); });
  EXPECT_FALSE(still_open.get_future().get());
}

// The feeder ends the stream: the client sees the connection close.
TEST(HttpServerTest, FeederClosesTheStream) {
  Served served([](const HttpRequest&, std::function<void(HttpResponse)> respond) {
    HttpResponse r{200, "text/event-stream", ""};
    r.on_stream = [](std::shared_ptr<ResponseStream> stream) {
      stream->write("event: bye\ndata: {}\n\n");
      stream->close();
      EXPECT_FALSE(stream->open());
    };
    respond(std::move(r));
  });
  asio::io_context io;
  auto socket = connectTo(io, served.port());
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  std::string got;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(got), ec);  // to the end of the connection
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos);
}

// A client that does not keep up is cut off once a bounded backlog waits for it.
TEST(HttpServerTest, BacklogIsBounded) {
  std::promise<std::shared_ptr<ResponseStream>> opened;
  Served served([&](const HttpRequest&, std::function<void(HttpResponse)> respond) {
    HttpResponse r{200, "text/event-stream", ""};
    r.on_stream = [&](std::shared_ptr<ResponseStream> stream) { opened.set_value(stream); };
    respond(std::move(r));
  });
  asio::io_context io;
  auto socket = connectTo(io, served.port());
  socket.set_option(asio::socket_base::receive_buffer_size(4096));
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto stream = opened.get_future().get();
  std::promise<int> refused_after;
  asio::post(served.io(), [&] {
    std::string chunk(64 * 1024, 'x');
    int written = 0;
    while (written < 1024 && stream->write(chunk)) ++written;  // at most 64 MiB offered
    refused_after.set_value(written);
  });
  int written = refused_after.get_future().get();
  EXPECT_LT(written, 1024);  // refused before 64 MiB were queued
}

// Past its bound of open connections a new one is closed at once; the open ones still serve.
TEST(HttpServerTest, ConnectionsAreBounded) {
  constexpr size_t kBound = 8;
  Served served(
      [](const HttpRequest&, std::function<void(HttpResponse)> respond) {
        respond({200, "text/plain", "ok"});
      },
      nullptr, kBound);
  asio::io_context io;
  auto ask = [](tcp::socket& socket) -> std::string {
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), ec);
    std::string got;
    if (!ec) asio::read_until(socket, asio::dynamic_buffer(got), "ok", ec);
    return ec ? ec.message() : got.substr(0, 15);
  };
  std::vector<tcp::socket> open;
  for (size_t i = 0; i < kBound; ++i) open.push_back(connectTo(io, served.port()));
  EXPECT_EQ(ask(open.back()), "HTTP/1.1 200 OK");  // accepted after every one before it
  auto extra = connectTo(io, served.port());
  EXPECT_NE(ask(extra), "HTTP/1.1 200 OK");
  EXPECT_EQ(ask(open.front()), "HTTP/1.1 200 OK");
}

TEST(HttpServerTest, ServesTls) {
  testing::TempDir dir;
  auto pki = testing::makeTestPki(dir.path());
  auto tls = serverTlsContext(pki.cert().string(), pki.key().string(), "test.cert / test.key");
  ASSERT_TRUE(tls) << tls.error().message;
  Served served(
      [](const HttpRequest& request, std::function<void(HttpResponse)> respond) {
        respond({200, "text/plain", "over tls " + request.path});
      },
      *tls);
  testing::HttpsClient client(served.port(), pki.ca().string());
  auto r = client.request("GET", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "over tls /hello");

  auto missing = serverTlsContext((dir.path() / "none.pem").string(), pki.key().string(),
                                  "server.admin_tls_cert / server.admin_tls_key");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message.rfind("server.admin_tls_cert / server.admin_tls_key: ", 0), 0u)
      << missing.error().message;
}

}  // namespace
}  // namespace pushhub::http
