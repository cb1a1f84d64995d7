#pragma once
// The TLS + HTTP/2 server core of pns-mock, shared by every emulated provider (APNs, FCM, WNS).
// A connection speaks HTTP/2 when ALPN picks "h2", or HTTP/1.1 keep-alive (a Boost.Beast
// basic_parser filling the recycled H2Request, same handler interface) when ALPN picks "http/1.1"
// or the client offers no ALPN and the listener allows HTTP/1.1. nghttp2 owns no socket: the
// connection reads TLS records with Asio, feeds the bytes to nghttp2_session_mem_recv, and drains
// nghttp2_session_mem_send into one coalesced write buffer per flush.
//
// Threads: a WorkerPool runs one io_context per thread. An H2Listener accepts on its own
// io_context (the control/main thread) and spreads accepted sockets round-robin over the
// workers; an H2Connection and its H2Handler then live only on that worker's thread.

#include <nghttp2/nghttp2.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/result.h"
#include "tools/pns-mock/faults.h"

namespace pushhub::mock {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// One complete request stream (or one HTTP/1.1 request). Header names are lowercase (HTTP/2
// requires it; HTTP/1.1 names are lowercased); pseudo-headers are split out (HTTP/1.1: method,
// target, Host as authority), every other header is kept in arrival order (duplicates included).
struct H2Request {
  int32_t stream_id = 0;
  std::string method;
  std::string path;
  std::string scheme;
  std::string authority;
  HeaderList headers;
  std::string body;
  bool body_truncated = false;  // more than kMaxRequestBody bytes arrived; the rest was dropped
  bool http1 = false;           // arrived over HTTP/1.1 (stream_id is 0 then)
  bool chunked = false;         // HTTP/1.1 body sent with Transfer-Encoding: chunked

  // First value of header `name` (lowercase), or nullptr.
  const std::string* header(std::string_view name) const;
  // Number of times `name` occurs.
  int headerCount(std::string_view name) const;
  void clear();
};

// Lowercases the ASCII letters A-Z of `s` in place (other bytes are kept): HTTP/1.1 header names.
void lowercaseAscii(std::string& s);

// For tests: parses the HTTP/1.1 request at the start of `bytes` as a connection does, with only
// the fast path for plain requests (`plain`) or only Beast's parser. True when that parser took
// a whole request: `request` is then filled as a handler sees it, with `keep_alive` and
// `consumed` (the request's bytes).
bool parseHttp1RequestForTest(std::string_view bytes, bool plain, H2Request& request,
                              bool& keep_alive, size_t& consumed);

// What the handler answers. An empty body sends HEADERS with END_STREAM only.
struct H2Response {
  int status = 200;
  HeaderList headers;  // lowercase names, without :status
  std::string body;
  // Close the TCP connection at once instead of answering (no GOAWAY, no RST_STREAM).
  bool drop_connection = false;
  // Milliseconds to wait before answering (0 = at once).
  uint32_t delay_ms = 0;

  void clear();
};

class H2Connection;

// The provider logic of one connection. Created by the listener's factory for each accepted
// connection and owned by it; all calls come from the connection's worker thread.
class H2Handler {
 public:
  virtual ~H2Handler() = default;
  // A request is complete; fill `response` (it arrives cleared). `connection` may be used to
  // change SETTINGS from here.
  virtual void onRequest(const H2Request& request, H2Response& response,
                         H2Connection& connection) = 0;
};

// A TLS server certificate context with ALPN "h2" required. Built once at start-up, shared
// read-only by all workers.
Result<std::shared_ptr<boost::asio::ssl::context>> makeServerTlsContext(const std::string& cert,
                                                                        const std::string& key);

// The same with a chosen ALPN offer: `alpn` is "h2", "http/1.1", "h2,http/1.1" or "http/1.1,h2"
// (the server's preference order). A client offering none of them gets a fatal alert; a client
// offering no ALPN at all completes the handshake (HTTP/1.1 then, if the listener allows it).
Result<std::shared_ptr<boost::asio::ssl::context>> makeServerTlsContext(const std::string& cert,
                                                                        const std::string& key,
                                                                        std::string_view alpn);

// True when `alpn` is one of the offers makeServerTlsContext accepts.
bool validAlpnOffer(std::string_view alpn);

// N io_contexts with one thread each. start() launches the threads, stop() stops the contexts
// and joins; both from the owning (main) thread.
class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  ~WorkerPool();
  size_t size() const { return contexts_.size(); }
  boost::asio::io_context& context(size_t i) { return *contexts_[i]; }
  void start();
  void stop();
  // Runs fn(i) on worker i's thread for every worker, then done() once, on the thread of the
  // worker that finished last. Any thread; the workers must be running.
  void runOnAll(std::function<void(size_t)> fn, std::function<void()> done);

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<std::thread> threads_;
  bool started_ = false;
};

struct H2ConnectionOptions {
  uint32_t initial_max_concurrent_streams = 1;
  // Where to add received bytes (a per-worker counter; may be null). Worker thread only.
  uint64_t* bytes_received_counter = nullptr;
  // Serve HTTP/1.1 when ALPN selects it or the client sends no ALPN (else such clients are
  // disconnected, as APNs does).
  bool allow_http1 = false;
};

// One accepted TLS/HTTP2 connection. Kept alive by shared_ptr captured in its pending I/O and
// timers; all members are used only on its worker thread.
class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  // Makes the handler of a new connection; called on the connection's worker thread.
  using Factory = std::function<std::unique_ptr<H2Handler>(size_t worker, H2Connection&)>;

  H2Connection(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls, size_t worker,
               uint64_t id, H2ConnectionOptions options);
  ~H2Connection();

  void start(std::unique_ptr<H2Handler> handler, std::function<void()> on_closed);

  // Sends a SETTINGS frame with MAX_CONCURRENT_STREAMS = n now (if different from the value
  // last advertised).
  void setMaxConcurrentStreams(uint32_t n);
  uint32_t advertisedMaxConcurrentStreams() const { return advertised_max_streams_; }
  // Sends GOAWAY(last processed stream, NO_ERROR, debug_data), refuses new streams, and closes
  // once the streams already accepted are answered.
  void goaway(std::string_view debug_data);
  // Closes the TCP connection now.
  void drop();

  size_t worker() const { return worker_; }
  uint64_t id() const { return id_; }
  // Most streams open at once on this connection so far.
  uint32_t maxConcurrentSeen() const { return max_concurrent_seen_; }
  uint64_t bytesReceived() const { return bytes_received_; }
  uint32_t openStreams() const { return open_streams_; }
  H2Handler* handler() { return handler_.get(); }
  bool closed() const { return closed_; }

  bool isHttp1() const { return http1_ != nullptr; }

  // nghttp2 callbacks (C trampolines in the .cc forward here).
  struct Stream;
  struct Http1;
  int onBeginHeaders(int32_t stream_id);
  int onHeader(int32_t stream_id, std::string_view name, std::string_view value);
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len);
  int onFrameRecv(const nghttp2_frame* frame);
  int onStreamClose(int32_t stream_id);
  ssize_t readBody(int32_t stream_id, uint8_t* buf, size_t length, uint32_t* data_flags);

 private:
  void handshake();
  bool initSession();
  void read();
  // Reads what the peer sent into `into`; `then(self, n)` runs unless the connection closed or
  // the read failed (then it is dropped). The bytes are counted (countReceived).
  template <class Then>
  void readSome(boost::asio::mutable_buffer into, Then then);
  void flush();
  void closeIfDone();
  // Closes without a RST: shuts down our sending side (the client reads every response, then
  // EOF) and discards what the client still sends until it closes, or for at most a few
  // seconds. Closing a socket that has unread bytes sends a RST, and a RST can destroy
  // responses the client has not read yet (servers' "lingering close").
  void lingerThenDrop();
  // Adds `n` bytes read to this connection's count and to options_.bytes_received_counter.
  void countReceived(size_t n);
  // Hands the stream's request to the handler and carries out its answer: drop the connection,
  // or answer now or after the response's delay_ms. HTTP/2 and HTTP/1.1 alike.
  void dispatch(Stream* stream);
  // Sends the stream's response (HTTP/1.1: writes it; HTTP/2: submits it and flushes).
  void answer(Stream* stream);
  void sendResponse(Stream* stream);
  Stream* acquireStream();
  void startHttp1();
  // Starts on the next request (or closes after a GOAWAY).
  void readHttp1();
  // Feeds the buffer to the parser until the request is complete, reading as needed.
  void parseHttp1();
  void readHttp1Some();
  void dispatchHttp1(bool chunked, bool keep_alive);
  void writeHttp1(bool close);

  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> tls_;
  size_t worker_;
  uint64_t id_;
  H2ConnectionOptions options_;
  nghttp2_session* session_ = nullptr;
  std::unique_ptr<H2Handler> handler_;
  std::function<void()> on_closed_;
  std::vector<uint8_t> read_buf_;
  std::vector<uint8_t> write_buf_;
  bool writing_ = false;
  bool reading_ = false;
  bool in_recv_ = false;  // inside nghttp2_session_mem_recv: mem_send is not allowed
  bool closed_ = false;
  bool lingering_ = false;  // lingerThenDrop() started: reads are discarded
  std::unique_ptr<boost::asio::steady_timer> linger_timer_;
  // After our GOAWAY: streams above this id are refused unprocessed, as RFC 9113 6.8 promises
  // the client (it retries them elsewhere). nghttp2 only enforces it once the frame is written,
  // and a write in progress can delay that past the next read.
  int32_t goaway_last_stream_id_ = -1;
  uint32_t advertised_max_streams_ = 0;
  uint32_t open_streams_ = 0;
  uint32_t max_concurrent_seen_ = 0;
  uint64_t bytes_received_ = 0;
  // Every Stream ever allocated (owned here), and the ones not attached to an nghttp2 stream.
  std::vector<std::unique_ptr<Stream>> streams_all_;
  std::vector<Stream*> streams_free_;
  std::unique_ptr<Http1> http1_;  // set when the connection speaks HTTP/1.1
};

// Accepts TLS connections on one endpoint and runs them on the workers. Constructed and used
// on the main thread (the acceptor's io_context); forEachConnection only on a worker's thread.
// `factory` and `options` are called on the worker thread that will run the connection.
// Must outlive the workers' io_contexts' handlers (stop the WorkerPool before destroying it).
class H2Listener {
 public:
  // Binds and listens synchronously; throws boost::system::system_error on failure (start-up).
  H2Listener(boost::asio::io_context& accept_io, WorkerPool& workers,
             std::shared_ptr<boost::asio::ssl::context> tls, const std::string& address,
             uint16_t port, H2Connection::Factory factory,
             std::function<H2ConnectionOptions(size_t worker)> options);
  uint16_t port() const { return port_; }
  void stop();

  // Calls fn for each open connection of worker `worker`. Call only on that worker's thread.
  void forEachConnection(size_t worker, const std::function<void(H2Connection&)>& fn);
  // While `fault` (a refusal) lasts, connections are closed as soon as they are accepted;
  // nullptr accepts again. Any thread.
  void refuse(std::shared_ptr<Fault> fault);

 private:
  void accept();

  boost::asio::ip::tcp::acceptor acceptor_;
  WorkerPool& workers_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  H2Connection::Factory factory_;
  std::function<H2ConnectionOptions(size_t worker)> options_;
  uint16_t port_ = 0;
  size_t next_worker_ = 0;
  uint64_t next_id_ = 1;
  std::shared_ptr<Fault> refusing_;  // the acceptor's thread only
  // Per worker: its open connections (touched only on that worker's thread).
  std::vector<std::unordered_set<H2Connection*>> connections_;
};

}  // namespace pushhub::mock
