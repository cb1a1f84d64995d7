#include "tools/pns-mock/h2_server.h"

#include "tools/pns-mock/stats.h"

#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>

#include "base/ascii.h"
#include "base/log.h"

namespace pushhub::mock {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kReadBufferBytes = 16 * 1024;
constexpr size_t kWriteCoalesceBytes = 64 * 1024;
constexpr size_t kMaxRequestBody = 64 * 1024;
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
// HTTP/1.1: bodies above this are refused with 413 and the connection closed; bodies between
// kMaxRequestBody and this are kept truncated, like HTTP/2 ones.
constexpr uint64_t kMaxHttp1Body = 1024 * 1024;
constexpr uint32_t kMaxHttp1Header = 64 * 1024;
// Room offered to each HTTP/1.1 read: one TLS record's plaintext at most.
constexpr size_t kHttp1ReadBytes = 16 * 1024;

// ALPN offers in wire format (length-prefixed), in the server's preference order.
constexpr std::string_view kAlpnH2{"\x02h2", 3};
constexpr std::string_view kAlpnHttp11{"\x08http/1.1", 9};
constexpr std::string_view kAlpnH2Http11{"\x02h2\x08http/1.1", 12};
constexpr std::string_view kAlpnHttp11H2{"\x08http/1.1\x02h2", 12};

const std::string_view* alpnWire(std::string_view offer) {
  if (offer == "h2") {
    return &kAlpnH2;
  }
  if (offer == "http/1.1") {
    return &kAlpnHttp11;
  }
  if (offer == "h2,http/1.1") {
    return &kAlpnH2Http11;
  }
  if (offer == "http/1.1,h2") {
    return &kAlpnHttp11H2;
  }
  return nullptr;
}

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("pns-mock");
  return l;
}

H2Connection* conn(void* user_data) { return static_cast<H2Connection*>(user_data); }

int onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  return conn(user_data)->onBeginHeaders(frame->hd.stream_id);
}

int onHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
               const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  return conn(user_data)->onHeader(
      frame->hd.stream_id, std::string_view(reinterpret_cast<const char*>(name), namelen),
      std::string_view(reinterpret_cast<const char*>(value), valuelen));
}

int onDataChunkCb(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                  void* user_data) {
  return conn(user_data)->onDataChunk(stream_id, data, len);
}

int onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return conn(user_data)->onFrameRecv(frame);
}

int onStreamCloseCb(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
  return conn(user_data)->onStreamClose(stream_id);
}

ssize_t readBodyCb(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                   uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
  return conn(user_data)->readBody(stream_id, buf, length, data_flags);
}

// ALPN: "h2" is offered by us and required of the client.
int alpnSelectCb(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (nghttp2_select_next_protocol(&selected, outlen, in, inlen) != 1) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// ALPN with a configured offer (`arg` points at one of the kAlpn* wire strings): the first of
// the server's protocols that the client also offers.
int alpnOfferSelectCb(SSL*, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void* arg) {
  std::string_view server = *static_cast<const std::string_view*>(arg);
  for (size_t s = 0; s < server.size(); s += 1 + static_cast<unsigned char>(server[s])) {
    std::string_view want = server.substr(s + 1, static_cast<unsigned char>(server[s]));
    for (unsigned int c = 0; c < inlen; c += 1 + in[c]) {
      if (c + 1 + in[c] > inlen) {
        break;
      }
      if (std::string_view(reinterpret_cast<const char*>(in + c + 1), in[c]) == want) {
        *out = in + c + 1;
        *outlen = in[c];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// The longest head (request line and fields) the plain parser takes; Beast's limit,
// kMaxHttp1Header, is far above.
constexpr size_t kMaxPlainHttp1Head = 8 * 1024;

// tchar (RFC 9110 5.6.2): what a method and a header name are made of.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  }
  return t;
}();

bool isToken(std::string_view s) {
  bool ok = !s.empty();
  for (char c : s) {
    ok &= kTokenChars[static_cast<unsigned char>(c)];
  }
  return ok;
}

// `s` equals `lower` (lowercase ASCII) ignoring the case of letters; beast::iequals costs ~18
// instructions a character, and runs on header names of every request.
bool iequalsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    char l = lower[i];
    char c = l >= 'a' && l <= 'z' ? static_cast<char>(s[i] | 0x20) : s[i];
    if (c != l) {
      return false;
    }
  }
  return true;
}

// The header fields parsePlainHttp1 looks at (Beast's parser gives them meaning).
enum class PlainField : uint8_t { kOther, kContentLength, kConnection, kDecline };

PlainField plainField(std::string_view name) {
  const auto iequals = iequalsLower;
  switch (name.size()) {
    case 14:
      return iequals(name, "content-length") ? PlainField::kContentLength : PlainField::kOther;
    case 10:
      return iequals(name, "connection") ? PlainField::kConnection : PlainField::kOther;
    case 6:
      return iequals(name, "expect") ? PlainField::kDecline : PlainField::kOther;
    case 7:
      return iequals(name, "upgrade") ? PlainField::kDecline : PlainField::kOther;
    case 16:
      return iequals(name, "proxy-connection") ? PlainField::kDecline : PlainField::kOther;
    case 17:
      return iequals(name, "transfer-encoding") ? PlainField::kDecline : PlainField::kOther;
    default:
      return PlainField::kOther;
  }
}

// A plain HTTP/1.1 request, complete at the start of a buffer, as parsePlainHttp1 found it
// (views into the buffer).
struct PlainHttp1Request {
  static constexpr size_t kMaxFields = 32;
  std::string_view method;
  std::string_view target;
  std::array<std::pair<std::string_view, std::string_view>, kMaxFields> fields;
  size_t field_count = 0;
  std::string_view body;
  size_t size = 0;  // bytes of the request, head and body
  bool keep_alive = true;
};

// The fast path of HTTP/1.1 parsing, for the requests clients like pushhubd send: the whole
// request in `in`, "HTTP/1.1", a head of at most kMaxPlainHttp1Head bytes in CRLF lines of
// visible ASCII, and no Transfer-Encoding, Expect, Upgrade, Proxy-Connection, repeated or
// listed Content-Length or Connection other than close / keep-alive. True when `in` starts with
// such a request; false when it does not (or not yet): Beast's parser then decides, as for every
// request before. The fast path has to be right only about what it takes, which is stricter
// than what Beast takes; Beast's general parser cost ~6,300 instructions a request.
bool parsePlainHttp1(std::string_view in, PlainHttp1Request& r) {
  std::string_view head = in.substr(0, kMaxPlainHttp1Head);  // the rest of the head: lines
  // Takes the next line off `head` (without its CRLF); false when there is no whole line (the
  // head is incomplete or too long), or it ends in a bare LF. A bare CR fails the character
  // checks.
  std::string_view line;
  auto nextLine = [&head, &line] {
    const auto* lf = static_cast<const char*>(std::memchr(head.data(), '\n', head.size()));
    if (lf == nullptr) {
      return false;
    }
    auto len = static_cast<size_t>(lf - head.data());
    if (len == 0 || head[len - 1] != '\r') {
      return false;
    }
    line = std::string_view(head.data(), len - 1);
    head.remove_prefix(len + 1);
    return true;
  };
  if (!nextLine()) {
    return false;
  }
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) {
    return false;
  }
  r.method = std::string_view(line.data(), sp);
  line.remove_prefix(sp + 1);
  sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || !isToken(r.method)) {
    return false;
  }
  r.target = std::string_view(line.data(), sp);
  line.remove_prefix(sp + 1);
  if (line != "HTTP/1.1" || !ascii::allVisible(r.target)) {
    return false;
  }
  r.field_count = 0;
  r.keep_alive = true;
  bool has_length = false;
  bool has_connection = false;
  uint64_t length = 0;
  for (;;) {
    if (!nextLine()) {
      return false;
    }
    if (line.empty()) {
      break;  // the end of the head
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || r.field_count == PlainHttp1Request::kMaxFields) {
      return false;
    }
    std::string_view name(line.data(), colon);
    std::string_view value(line.data() + colon + 1, line.size() - colon - 1);
    if (!isToken(name) || !ascii::allFieldText(value)) {
      return false;
    }
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    switch (plainField(name)) {
      case PlainField::kContentLength:
        if (has_length || value.empty() || value.size() > 9) {
          return false;
        }
        for (char c : value) {
          if (c < '0' || c > '9') {
            return false;
          }
          length = length * 10 + static_cast<uint64_t>(c - '0');
        }
        has_length = true;
        break;
      case PlainField::kConnection:
        if (has_connection) {
          return false;
        }
        has_connection = true;
        if (iequalsLower(value, "close")) {
          r.keep_alive = false;
        } else if (!iequalsLower(value, "keep-alive")) {
          return false;
        }
        break;
      case PlainField::kDecline:
        return false;
      case PlainField::kOther:
        break;
    }
    r.fields[r.field_count++] = {name, value};
  }
  auto head_size = static_cast<size_t>(head.data() - in.data());
  // Larger bodies are truncated (or refused) by the general path.
  if (length > kMaxRequestBody || in.size() - head_size < length) {
    return false;
  }
  r.body = std::string_view(in.data() + head_size, length);
  r.size = head_size + length;
  return true;
}

// Parses one HTTP/1.1 request straight into the connection's recycled H2Request: the method,
// target and headers are assigned into the previous request's strings (keeping their capacity;
// header names lowercased in place) and the body is appended to request.body, truncated at
// kMaxRequestBody. Beast's request_parser would build a basic_fields, one allocation per
// header, only for us to copy it out again. A parser parses one message: make a new one
// (cheap, it allocates nothing) for each request.
class Http1RequestParser final : public bhttp::basic_parser<true> {
 public:
  // `spare` keeps header strings beyond this request's count for later, longer requests.
  Http1RequestParser(H2Request& request, HeaderList& spare) : request_(request), spare_(spare) {
    request_.stream_id = 0;
    request_.method.clear();
    request_.path.clear();
    request_.scheme.assign("https");
    request_.authority.clear();
    request_.body.clear();
    request_.body_truncated = false;
    request_.http1 = true;
    request_.chunked = false;
  }

  // The request carries "Expect: 100-continue" (valid once the header is done).
  bool expectsContinue() const { return expect_continue_; }

  // Fills the request from one parsePlainHttp1 found, instead of parsing (a fresh parser only).
  void fill(const PlainHttp1Request& plain) {
    request_.method.assign(plain.method);
    request_.path.assign(plain.target);
    for (size_t i = 0; i < plain.field_count; ++i) {
      auto [name, value] = plain.fields[i];
      addField(name, value);
      if (iequalsLower(name, "host")) {
        request_.authority.assign(value);
      }
    }
    headerDone();
    append(plain.body);
  }

 private:
  void on_request_impl(bhttp::verb, boost::beast::string_view method,
                       boost::beast::string_view target, int, boost::system::error_code&) override {
    request_.method.assign(method);
    request_.path.assign(target);
  }

  void on_response_impl(int, boost::beast::string_view, int, boost::system::error_code&) override {}

  void on_field_impl(bhttp::field f, boost::beast::string_view name,
                     boost::beast::string_view value, boost::system::error_code&) override {
    addField(name, value);
    if (f == bhttp::field::host) {
      request_.authority.assign(value);
    } else if (f == bhttp::field::expect && boost::beast::iequals(value, "100-continue")) {
      expect_continue_ = true;
    }
  }

  void on_header_impl(boost::system::error_code&) override { headerDone(); }

  void addField(std::string_view name, std::string_view value) {
    HeaderList& headers = request_.headers;
    if (count_ == headers.size()) {
      if (spare_.empty()) {
        headers.emplace_back();
      } else {
        headers.push_back(std::move(spare_.back()));
        spare_.pop_back();
      }
    }
    auto& [lower, v] = headers[count_++];
    lower.assign(name);
    lowercaseAscii(lower);
    v.assign(value);
  }

  void headerDone() {
    // The previous request's extra headers: keep their strings, not in this request.
    HeaderList& headers = request_.headers;
    while (headers.size() > count_) {
      spare_.push_back(std::move(headers.back()));
      headers.pop_back();
    }
  }

  void on_body_init_impl(const boost::optional<uint64_t>& content_length,
                         boost::system::error_code&) override {
    if (content_length) {
      request_.body.reserve(std::min<uint64_t>(*content_length, kMaxRequestBody));
    }
  }

  size_t on_body_impl(boost::beast::string_view data, boost::system::error_code&) override {
    append(data);
    return data.size();
  }

  void on_chunk_header_impl(uint64_t, boost::beast::string_view,
                            boost::system::error_code&) override {}

  size_t on_chunk_body_impl(uint64_t, boost::beast::string_view data,
                            boost::system::error_code&) override {
    append(data);
    return data.size();
  }

  void on_finish_impl(boost::system::error_code&) override {}

  void append(std::string_view data) {
    size_t room = kMaxRequestBody - request_.body.size();
    if (data.size() > room) {
      request_.body_truncated = true;
      data = data.substr(0, room);
    }
    request_.body.append(data);
  }

  H2Request& request_;
  HeaderList& spare_;
  size_t count_ = 0;  // headers of this request so far
  bool expect_continue_ = false;
};

}  // namespace

bool parseHttp1RequestForTest(std::string_view bytes, bool plain, H2Request& request,
                              bool& keep_alive, size_t& consumed) {
  HeaderList spare;
  Http1RequestParser parser(request, spare);
  parser.header_limit(kMaxHttp1Header);
  parser.body_limit(kMaxHttp1Body);
  if (plain) {
    PlainHttp1Request r;
    if (!parsePlainHttp1(bytes, r)) {
      return false;
    }
    parser.fill(r);
    keep_alive = r.keep_alive;
    consumed = r.size;
    request.chunked = false;
    return true;
  }
  parser.eager(true);
  consumed = 0;
  while (!parser.is_done()) {
    boost::system::error_code ec;
    size_t n = parser.put(asio::buffer(bytes.data() + consumed, bytes.size() - consumed), ec);
    consumed += n;
    if (ec || (n == 0 && !parser.is_done())) {
      return false;
    }
  }
  keep_alive = parser.keep_alive();
  request.chunked = parser.chunked();
  return true;
}

namespace {

// The bytes of `x` with ASCII A-Z lowercased (SWAR: eight at a time, no branch per byte).
uint64_t lowercaseWord(uint64_t x) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  uint64_t low7 = x & kLow7;
  uint64_t at_least_a = low7 + 0x3f3f3f3f3f3f3f3full;   // top bit set: low7 >= 'A' (0x41)
  uint64_t above_z = low7 + 0x2525252525252525ull;      // top bit set: low7 > 'Z' (0x5a)
  uint64_t upper = at_least_a & ~above_z & ~x & kHigh;  // ASCII (top bit clear) A..Z
  return x | (upper >> 2);                              // 0x80 >> 2 = 0x20: to lowercase
}

}  // namespace

// Every header name of every HTTP/1.1 request goes through here: a byte-by-byte loop cost ~5
// instructions a character.
void lowercaseAscii(std::string& s) {
  char* p = s.data();
  size_t n = s.size();
  uint64_t x = 0;
  if (n < 8) {
    std::memcpy(&x, p, n);  // zero padding is not a letter
    x = lowercaseWord(x);
    std::memcpy(p, &x, n);
    return;
  }
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&x, p + i, 8);
    x = lowercaseWord(x);
    std::memcpy(p + i, &x, 8);
  }
  if (n % 8 != 0) {
    // The last 8 bytes again, overlapping the ones done: lowercasing twice changes nothing.
    std::memcpy(&x, p + n - 8, 8);
    x = lowercaseWord(x);
    std::memcpy(p + n - 8, &x, 8);
  }
}

// HTTP/1.1 state of a connection: one request at a time (no pipelining in flight; pipelined
// bytes wait in the buffer), parsed into and answered from the recycled Stream.
struct H2Connection::Http1 {
  boost::beast::flat_buffer buffer;
  std::optional<Http1RequestParser> parser;
  HeaderList spare_headers;
  Stream* stream = nullptr;
  std::string out;
  bool keep_alive = true;
  bool busy = false;    // a request's header is in: it is being read, handled or answered
  bool goaway = false;  // close after the current answer (or now, when idle)
  bool fresh = false;   // no byte of the next request parsed yet: parsePlainHttp1 may take it
  PlainHttp1Request plain;
};

// Per-stream state, recycled through a free list so string capacity is reused across requests.
struct H2Connection::Stream {
  H2Request request;
  H2Response response;
  size_t body_offset = 0;
  uint64_t generation = 0;  // bumped on release, so a late timer can tell its stream is gone
  bool in_use = false;
  std::unique_ptr<asio::steady_timer> timer;
};

const std::string* H2Request::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) {
      return &v;
    }
  }
  return nullptr;
}

int H2Request::headerCount(std::string_view name) const {
  int count = 0;
  for (const auto& h : headers) {
    count += h.first == name ? 1 : 0;
  }
  return count;
}

void H2Request::clear() {
  stream_id = 0;
  method.clear();
  path.clear();
  scheme.clear();
  authority.clear();
  headers.clear();
  body.clear();
  body_truncated = false;
}

void H2Response::clear() {
  status = 200;
  headers.clear();
  body.clear();
  drop_connection = false;
  delay_ms = 0;
}

Result<std::shared_ptr<ssl::context>> makeServerTlsContext(const std::string& cert,
                                                           const std::string& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  ctx->use_certificate_chain_file(cert, ec);
  if (ec) {
    return Error::invalidArgument("--cert " + cert + ": " + ec.message());
  }
  ctx->use_private_key_file(key, ssl::context::pem, ec);
  if (ec) {
    return Error::invalidArgument("--key " + key + ": " + ec.message());
  }
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), alpnSelectCb, nullptr);
  return ctx;
}

bool validAlpnOffer(std::string_view alpn) { return alpnWire(alpn) != nullptr; }

Result<std::shared_ptr<ssl::context>> makeServerTlsContext(const std::string& cert,
                                                           const std::string& key,
                                                           std::string_view alpn) {
  const std::string_view* wire = alpnWire(alpn);
  if (wire == nullptr) {
    return Error::invalidArgument("ALPN offer '" + std::string(alpn) +
                                  "': expected h2, http/1.1, h2,http/1.1 or http/1.1,h2");
  }
  auto ctx = makeServerTlsContext(cert, key);
  if (!ctx) {
    return ctx;
  }
  SSL_CTX_set_alpn_select_cb((*ctx)->native_handle(), alpnOfferSelectCb,
                             const_cast<std::string_view*>(wire));
  return ctx;
}

WorkerPool::WorkerPool(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
  }
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  if (started_) {
    return;
  }
  started_ = true;
  for (auto& ctx : contexts_) {
    threads_.emplace_back([c = ctx.get()] {
      auto guard = asio::make_work_guard(*c);
      c->run();
    });
  }
}

void WorkerPool::stop() {
  for (auto& ctx : contexts_) {
    ctx->stop();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

void WorkerPool::runOnAll(std::function<void(size_t)> fn, std::function<void()> done) {
  auto remaining = std::make_shared<std::atomic<size_t>>(contexts_.size());
  auto shared_fn = std::make_shared<std::function<void(size_t)>>(std::move(fn));
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (size_t i = 0; i < contexts_.size(); ++i) {
    asio::post(*contexts_[i], [i, remaining, shared_fn, shared_done] {
      (*shared_fn)(i);
      if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) {
        (*shared_done)();
      }
    });
  }
}

H2Connection::H2Connection(tcp::socket socket, ssl::context& tls, size_t worker, uint64_t id,
                           H2ConnectionOptions options)
    : tls_(std::move(socket), tls),
      worker_(worker),
      id_(id),
      options_(options),
      read_buf_(kReadBufferBytes) {
  write_buf_.reserve(kWriteCoalesceBytes + 16 * 1024);
}

H2Connection::~H2Connection() {
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
}

void H2Connection::start(std::unique_ptr<H2Handler> handler, std::function<void()> on_closed) {
  handler_ = std::move(handler);
  on_closed_ = std::move(on_closed);
  boost::system::error_code ignored;
  tls_.next_layer().set_option(tcp::no_delay(true), ignored);
  // As in pushhubd's pool (providers/common/pool_connection.cc): asio's SSL_MODE_RELEASE_BUFFERS
  // would free and reallocate OpenSSL's record buffers around every HTTP/1.1 request.
  SSL_clear_mode(tls_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  handshake();
}

void H2Connection::handshake() {
  tls_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](
                                                     boost::system::error_code ec) {
    if (ec) {
      logger()->debug("connection {}: TLS handshake failed: {}", self->id_, ec.message());
      self->drop();
      return;
    }
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(self->tls_.native_handle(), &alpn, &alpn_len);
    std::string_view selected(reinterpret_cast<const char*>(alpn), alpn_len);
    if (self->options_.allow_http1 && (alpn_len == 0 || selected == "http/1.1")) {
      self->startHttp1();
      return;
    }
    if (alpn_len != 2 || std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
      logger()->debug("connection {}: client did not negotiate h2", self->id_);
      self->drop();
      return;
    }
    if (!self->initSession()) {
      self->drop();
      return;
    }
    self->flush();
    self->read();
  });
}

bool H2Connection::initSession() {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeadersCb);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeaderCb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkCb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecvCb);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamCloseCb);
  int rv = nghttp2_session_server_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) {
    return false;
  }
  advertised_max_streams_ = options_.initial_max_concurrent_streams;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, advertised_max_streams_},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 2) != 0) {
    return false;
  }
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  return true;
}

template <class Then>
void H2Connection::readSome(asio::mutable_buffer into, Then then) {
  reading_ = true;
  tls_.async_read_some(into, [self = shared_from_this(), then = std::move(then)](
                                 boost::system::error_code ec, size_t n) mutable {
    self->reading_ = false;
    if (self->closed_) {
      return;
    }
    if (ec) {
      self->drop();
      return;
    }
    self->countReceived(n);
    then(*self, n);
  });
}

void H2Connection::read() {
  readSome(asio::buffer(read_buf_), [](H2Connection& self, size_t n) {
    if (self.lingering_) {
      self.read();  // discarded, until the client closes (the read fails and drops)
      return;
    }
    self.in_recv_ = true;
    ssize_t rv = nghttp2_session_mem_recv(self.session_, self.read_buf_.data(), n);
    self.in_recv_ = false;
    if (self.closed_) {
      return;
    }
    if (rv < 0) {
      logger()->debug("connection {}: nghttp2_session_mem_recv: {}", self.id_,
                      nghttp2_strerror(static_cast<int>(rv)));
      self.drop();
      return;
    }
    self.flush();
    if (!self.closed_ && nghttp2_session_want_read(self.session_) != 0) {
      self.read();
    }
  });
}

void H2Connection::flush() {
  if (writing_ || closed_ || in_recv_) {
    return;
  }
  write_buf_.clear();
  while (write_buf_.size() < kWriteCoalesceBytes) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      logger()->debug("connection {}: nghttp2_session_mem_send: {}", id_,
                      nghttp2_strerror(static_cast<int>(n)));
      drop();
      return;
    }
    if (n == 0) {
      break;
    }
    write_buf_.insert(write_buf_.end(), data, data + n);
  }
  if (write_buf_.empty()) {
    closeIfDone();
    return;
  }
  writing_ = true;
  asio::async_write(tls_, asio::buffer(write_buf_),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      self->writing_ = false;
                      if (ec) {
                        self->drop();
                        return;
                      }
                      self->flush();
                    });
}

void H2Connection::closeIfDone() {
  if (!closed_ && nghttp2_session_want_read(session_) == 0 &&
      nghttp2_session_want_write(session_) == 0) {
    lingerThenDrop();
  }
}

void H2Connection::lingerThenDrop() {
  if (closed_ || lingering_) {
    return;
  }
  lingering_ = true;
  boost::system::error_code ignored;
  tls_.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  linger_timer_ = std::make_unique<asio::steady_timer>(tls_.get_executor());
  linger_timer_->expires_after(std::chrono::seconds(2));
  linger_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) {
      self->drop();
    }
  });
  if (!reading_) {
    read();
  }
}

void H2Connection::drop() {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (linger_timer_) {
    linger_timer_->cancel();
  }
  boost::system::error_code ignored;
  tls_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  tls_.next_layer().close(ignored);
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    cb();
  }
}

void H2Connection::setMaxConcurrentStreams(uint32_t n) {
  if (closed_ || session_ == nullptr || http1_ || n == advertised_max_streams_) {
    return;
  }
  advertised_max_streams_ = n;
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, n}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 1);
  flush();
}

void H2Connection::goaway(std::string_view debug_data) {
  if (closed_) {
    return;
  }
  if (http1_) {
    // HTTP/1.1 has no GOAWAY: answer the request in progress with "Connection: close", or
    // close an idle connection now.
    http1_->goaway = true;
    if (!http1_->busy) {
      drop();
    }
    return;
  }
  if (session_ == nullptr) {
    return;
  }
  goaway_last_stream_id_ = nghttp2_session_get_last_proc_stream_id(session_);
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, goaway_last_stream_id_, NGHTTP2_NO_ERROR,
                        reinterpret_cast<const uint8_t*>(debug_data.data()), debug_data.size());
  flush();
}

H2Connection::Stream* H2Connection::acquireStream() {
  Stream* s = nullptr;
  if (!streams_free_.empty()) {
    s = streams_free_.back();
    streams_free_.pop_back();
  } else {
    streams_all_.push_back(std::make_unique<Stream>());
    s = streams_all_.back().get();
  }
  s->in_use = true;
  s->body_offset = 0;
  s->request.clear();
  s->response.clear();
  return s;
}

int H2Connection::onBeginHeaders(int32_t stream_id) {
  Stream* s = acquireStream();
  s->request.stream_id = stream_id;
  nghttp2_session_set_stream_user_data(session_, stream_id, s);
  ++open_streams_;
  max_concurrent_seen_ = std::max(max_concurrent_seen_, open_streams_);
  return 0;
}

int H2Connection::onHeader(int32_t stream_id, std::string_view name, std::string_view value) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
  if (s == nullptr) {
    return 0;
  }
  H2Request& r = s->request;
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      r.method.assign(value);
    } else if (name == ":path") {
      r.path.assign(value);
    } else if (name == ":scheme") {
      r.scheme.assign(value);
    } else if (name == ":authority") {
      r.authority.assign(value);
    }
    return 0;
  }
  r.headers.emplace_back(name, value);
  return 0;
}

int H2Connection::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
  if (s == nullptr) {
    return 0;
  }
  std::string& body = s->request.body;
  size_t room = kMaxRequestBody > body.size() ? kMaxRequestBody - body.size() : 0;
  if (len > room) {
    s->request.body_truncated = true;
    len = room;
  }
  body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Connection::onFrameRecv(const nghttp2_frame* frame) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  auto* s =
      static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, frame->hd.stream_id));
  if (s == nullptr) {
    return 0;
  }
  if (goaway_last_stream_id_ >= 0 && frame->hd.stream_id > goaway_last_stream_id_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  dispatch(s);
  // A dropped connection must not process (or answer) anything else in this read.
  return closed_ ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

void H2Connection::countReceived(size_t n) {
  bytes_received_ += n;
  if (options_.bytes_received_counter != nullptr) {
    *options_.bytes_received_counter += n;
  }
}

void H2Connection::dispatch(Stream* s) {
  handler_->onRequest(s->request, s->response, *this);
  if (s->response.drop_connection) {
    drop();
    return;
  }
  if (s->response.delay_ms == 0) {
    answer(s);
    return;
  }
  if (!s->timer) {
    s->timer = std::make_unique<asio::steady_timer>(tls_.get_executor());
  }
  s->timer->expires_after(std::chrono::milliseconds(s->response.delay_ms));
  s->timer->async_wait(
      [self = shared_from_this(), s, gen = s->generation](boost::system::error_code ec) {
        // An HTTP/2 stream may have been reset (and recycled) while the timer ran.
        if (ec || self->closed_ || !s->in_use || s->generation != gen) {
          return;
        }
        self->answer(s);
      });
}

void H2Connection::answer(Stream* s) {
  if (http1_) {
    writeHttp1(false);
    return;
  }
  sendResponse(s);
  // Inside nghttp2_session_mem_recv this does nothing: read() flushes once it returns.
  flush();
}

void H2Connection::sendResponse(Stream* s) {
  const H2Response& r = s->response;
  char status[8];
  auto [end, ec] = std::to_chars(status, status + sizeof status, r.status);
  (void)ec;
  nghttp2_nv nva[16];
  size_t n = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    if (n < std::size(nva)) {
      nva[n++] = nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                            const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                            name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
    }
  };
  add(":status", std::string_view(status, static_cast<size_t>(end - status)));
  for (const auto& [name, value] : r.headers) {
    add(name, value);
  }
  if (r.body.empty()) {
    nghttp2_submit_response(session_, s->request.stream_id, nva, n, nullptr);
    return;
  }
  s->body_offset = 0;
  nghttp2_data_provider provider{};
  provider.source.ptr = s;
  provider.read_callback = readBodyCb;
  nghttp2_submit_response(session_, s->request.stream_id, nva, n, &provider);
}

ssize_t H2Connection::readBody(int32_t stream_id, uint8_t* buf, size_t length,
                               uint32_t* data_flags) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
  if (s == nullptr) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  const std::string& body = s->response.body;
  size_t n = std::min(length, body.size() - s->body_offset);
  std::memcpy(buf, body.data() + s->body_offset, n);
  s->body_offset += n;
  if (s->body_offset == body.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(n);
}

int H2Connection::onStreamClose(int32_t stream_id) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
  if (s == nullptr) {
    return 0;
  }
  nghttp2_session_set_stream_user_data(session_, stream_id, nullptr);
  --open_streams_;
  s->in_use = false;
  ++s->generation;
  if (s->timer) {
    s->timer->cancel();
  }
  streams_free_.push_back(s);
  return 0;
}

H2Listener::H2Listener(asio::io_context& accept_io, WorkerPool& workers,
                       std::shared_ptr<ssl::context> tls, const std::string& address, uint16_t port,
                       H2Connection::Factory factory,
                       std::function<H2ConnectionOptions(size_t)> options)
    : acceptor_(accept_io),
      workers_(workers),
      tls_(std::move(tls)),
      factory_(std::move(factory)),
      options_(std::move(options)),
      connections_(workers.size()) {
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  accept();
}

void H2Listener::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void H2Listener::accept() {
  size_t worker = next_worker_;
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_.async_accept(
      workers_.context(worker), [this, worker](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) {
          return;
        }
        if (ec) {
          logger()->warn("accept failed: {}", ec.message());
        } else if (refusing_ && refusing_->take({}, wallUs() / 1000)) {
          boost::system::error_code ignored;
          socket.close(ignored);  // a provider that is down: the client sees the close at once
        } else {
          uint64_t id = next_id_++;
          asio::post(workers_.context(worker), [this, worker, id,
                                                socket = std::move(socket)]() mutable {
            H2ConnectionOptions options = options_(worker);
            auto c = std::make_shared<H2Connection>(std::move(socket), *tls_, worker, id, options);
            connections_[worker].insert(c.get());
            auto handler = factory_(worker, *c);
            c->start(std::move(handler),
                     [this, worker, raw = c.get()] { connections_[worker].erase(raw); });
          });
        }
        accept();
      });
}

void H2Listener::refuse(std::shared_ptr<Fault> fault) {
  asio::post(acceptor_.get_executor(),
             [this, fault = std::move(fault)]() mutable { refusing_ = std::move(fault); });
}

void H2Listener::forEachConnection(size_t worker, const std::function<void(H2Connection&)>& fn) {
  // Copy first: fn may drop a connection, which erases it from the set.
  std::vector<H2Connection*> open(connections_[worker].begin(), connections_[worker].end());
  for (H2Connection* c : open) {
    if (!c->closed()) {
      fn(*c);
    }
  }
}

}  // namespace pushhub::mock

namespace pushhub::mock {

void H2Connection::startHttp1() {
  http1_ = std::make_unique<Http1>();
  http1_->stream = acquireStream();
  readHttp1();
}

void H2Connection::readHttp1() {
  Http1& h = *http1_;
  h.busy = false;
  if (h.goaway) {
    drop();
    return;
  }
  h.parser.emplace(h.stream->request, h.spare_headers);
  h.parser->header_limit(kMaxHttp1Header);
  h.parser->body_limit(kMaxHttp1Body);
  h.fresh = true;
  // Reading at once costs a recv() that fails with EAGAIN when the client has not sent its next
  // request yet (asio tries every new read at once). Waiting for readability first
  // (socket async_wait) trades it for an epoll_ctl() and another handler, and measured no
  // cheaper; pipelined bytes are parsed from the buffer without any read.
  parseHttp1();
}

void H2Connection::parseHttp1() {
  Http1& h = *http1_;
  Http1RequestParser& parser = *h.parser;
  if (h.fresh && h.buffer.size() != 0) {
    // The first bytes of a request: one whole, plain request is taken without Beast's parser.
    // Anything else (or a request not all here yet) goes to Beast's, from its first byte.
    h.fresh = false;
    auto data = h.buffer.data();
    if (parsePlainHttp1(std::string_view(static_cast<const char*>(data.data()), data.size()),
                        h.plain)) {
      parser.fill(h.plain);
      h.buffer.consume(h.plain.size);
      h.busy = true;
      dispatchHttp1(/*chunked=*/false, h.plain.keep_alive);
      return;
    }
  }
  for (;;) {
    if (!h.busy && parser.is_header_done()) {
      h.busy = true;
      // put() stops once the header is done (so that 100-continue can be answered first);
      // from here it parses the whole body in one call, as far as the buffer holds it.
      parser.eager(true);
      if (parser.expectsContinue()) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(tls_, asio::buffer(kContinue.data(), kContinue.size()),
                          [self = shared_from_this()](boost::system::error_code ec, size_t) {
                            if (self->closed_) {
                              return;
                            }
                            if (ec) {
                              self->drop();
                              return;
                            }
                            self->parseHttp1();
                          });
        return;
      }
    }
    if (parser.is_done()) {
      dispatchHttp1(parser.chunked(), parser.keep_alive());
      return;
    }
    // put() on an empty buffer in the middle of a body succeeds without progress: read first.
    if (h.buffer.size() == 0) {
      readHttp1Some();
      return;
    }
    boost::system::error_code ec;
    h.buffer.consume(parser.put(h.buffer.data(), ec));
    if (ec == bhttp::error::need_more) {
      readHttp1Some();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      // Content-Length or the chunks so far above kMaxHttp1Body: refuse without reading on.
      H2Response& resp = h.stream->response;
      resp.clear();
      resp.status = 413;
      writeHttp1(true);
      return;
    }
    if (ec) {
      drop();
      return;
    }
  }
}

void H2Connection::readHttp1Some() {
  readSome(http1_->buffer.prepare(kHttp1ReadBytes), [](H2Connection& self, size_t n) {
    self.http1_->buffer.commit(n);
    self.parseHttp1();
  });
}

void H2Connection::dispatchHttp1(bool chunked, bool keep_alive) {
  Http1& h = *http1_;
  Stream* s = h.stream;
  s->response.clear();
  s->request.chunked = chunked;
  h.keep_alive = keep_alive;
  open_streams_ = 1;
  max_concurrent_seen_ = std::max<uint32_t>(max_concurrent_seen_, 1);
  dispatch(s);
}

void H2Connection::writeHttp1(bool close) {
  Http1& h = *http1_;
  const H2Response& r = h.stream->response;
  int status = r.status;
  close = close || !h.keep_alive || h.goaway;
  std::string& out = h.out;
  // string_view pieces: append(const char*) would strlen each literal, on every answer.
  using namespace std::string_view_literals;
  out.assign("HTTP/1.1 "sv);
  char digits[16];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, status);
  (void)ec;
  out.append(digits, end);
  out.push_back(' ');
  auto reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(status)));
  out.append(reason.data(), reason.size());
  out.append("\r\n"sv);
  const std::string& body = r.body;
  for (const auto& [name, value] : r.headers) {
    out.append(name).append(": "sv).append(value).append("\r\n"sv);
  }
  auto [bend, bec] = std::to_chars(digits, digits + sizeof digits, body.size());
  (void)bec;
  out.append("content-length: "sv).append(digits, bend).append("\r\n"sv);
  if (close) {
    out.append("connection: close\r\n"sv);
  }
  out.append("\r\n"sv);
  out.append(body);
  h.busy = true;
  asio::async_write(tls_, asio::buffer(out),
                    [self = shared_from_this(), close](boost::system::error_code ec, size_t) {
                      if (self->closed_) {
                        return;
                      }
                      self->open_streams_ = 0;
                      if (ec || close) {
                        self->drop();
                        return;
                      }
                      self->readHttp1();
                    });
}

}  // namespace pushhub::mock
