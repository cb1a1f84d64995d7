#include "providers/common/access_token.h"

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

#include "base/log.h"
#include "providers/common/connection_pool.h"
#include "providers/common/tls.h"

namespace pushhub::providers {

namespace asio = boost::asio;
using SysClock = std::chrono::system_clock;

namespace {

constexpr size_t kMaxDescriptionChars = 200;

Error unauthenticated(std::string message) {
  return Error{Error::Code::kUnauthenticated, std::move(message)};
}

// Printable ASCII only, bounded: error descriptions come from the network.
std::string sanitize(std::string_view text) {
  std::string out;
  for (char ch : text.substr(0, kMaxDescriptionChars)) {
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  }
  if (text.size() > kMaxDescriptionChars) {
    out += "...";
  }
  return out;
}

// expires_in as a number (FCM, legacy WNS) or a decimal string (Entra ID); nullopt otherwise.
std::optional<int64_t> parseExpiresIn(const boost::json::value* v) {
  if (v == nullptr) {
    return std::nullopt;
  }
  if (v->is_int64()) {
    return v->as_int64();
  }
  if (v->is_uint64()) {
    return v->as_uint64() > 100000000ull
               ? std::nullopt
               : std::optional<int64_t>(static_cast<int64_t>(v->as_uint64()));
  }
  if (v->is_double()) {
    return static_cast<int64_t>(v->as_double());
  }
  if (v->is_string()) {
    const auto& s = v->as_string();
    if (s.empty() || s.size() > 12) {
      return std::nullopt;
    }
    int64_t n = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9') {
        return std::nullopt;
      }
      n = n * 10 + (ch - '0');
    }
    return n;
  }
  return std::nullopt;
}

std::string stringField(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) {
    return {};
  }
  return std::string(it->value().as_string());
}

}  // namespace

Result<std::shared_ptr<AccessTokenSource>> AccessTokenSource::create(std::string name,
                                                                     TokenRequestFactory factory,
                                                                     Options options) {
  if (!factory) {
    return Error::invalidArgument("access token source '" + name + "': no request factory");
  }
  if (options.min_retry.count() <= 0 || options.max_retry < options.min_retry) {
    return Error::invalidArgument("access token source '" + name +
                                  "': need 0 < min_retry <= max_retry");
  }
  if (options.timeout.count() <= 0 || options.refresh_margin.count() < 0) {
    return Error::invalidArgument("access token source '" + name +
                                  "': timeout must be > 0 and refresh_margin >= 0");
  }
  if (!options.clock) {
    options.clock = [] { return SysClock::now(); };
  }
  auto tls = makeTlsClientContext(options.ca_file, AlpnOffer::kHttp1);
  if (!tls) {
    return Error::invalidArgument("access token source '" + name + "': " + tls.error().message);
  }
  return std::shared_ptr<AccessTokenSource>(
      new AccessTokenSource(std::move(name), std::move(factory), std::move(options), *tls));
}

AccessTokenSource::AccessTokenSource(std::string name, TokenRequestFactory factory, Options options,
                                     std::shared_ptr<asio::ssl::context> tls)
    : name_(std::move(name)),
      factory_(std::move(factory)),
      options_(std::move(options)),
      tls_(std::move(tls)),
      log_(log::get("oauth")),
      work_(asio::make_work_guard(ioc_)),
      thread_([this] { ioc_.run(); }) {}

AccessTokenSource::~AccessTokenSource() { stop(); }

bool AccessTokenSource::usable(const std::shared_ptr<const AccessToken>& token,
                               SysClock::time_point now) const {
  return token != nullptr && token->generation > invalidated_.load(std::memory_order_acquire) &&
         now < token->expires_at;
}

std::shared_ptr<const AccessToken> AccessTokenSource::current() const {
  std::shared_ptr<const AccessToken> token = token_.load(std::memory_order_acquire);
  if (token == nullptr) {
    return nullptr;
  }
  SysClock::time_point now = options_.clock();
  if (!usable(token, now)) {
    return nullptr;
  }
  if (now >= token->expires_at - options_.refresh_margin) {
    requestRefresh();
  }
  return token;
}

void AccessTokenSource::requestRefresh() const {
  if (stopped_.load(std::memory_order_acquire) || refresh_posted_.exchange(true)) {
    return;
  }
  auto* self = const_cast<AccessTokenSource*>(this);
  asio::post(ioc_, [self] {
    self->refresh_posted_.store(false);
    if (!self->fetching_ && !self->stopped_.load() && self->options_.clock() >= self->retry_at_) {
      self->startFetch();
    }
  });
}

void AccessTokenSource::get(asio::any_io_executor executor, Done done) {
  Waiter waiter{std::move(executor), std::move(done)};
  if (stopped_.load(std::memory_order_acquire)) {
    reply(waiter, Error::unavailable("access token source '" + name_ + "' is stopped"));
    return;
  }
  asio::post(ioc_, [this, waiter = std::move(waiter)]() mutable { onGet(std::move(waiter)); });
}

void AccessTokenSource::invalidate(uint64_t generation) {
  uint64_t seen = invalidated_.load(std::memory_order_acquire);
  while (seen < generation &&
         !invalidated_.compare_exchange_weak(seen, generation, std::memory_order_acq_rel)) {
  }
}

void AccessTokenSource::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  asio::post(ioc_, [this] {
    if (pool_ != nullptr) {
      pool_->shutdown();  // a fetch in progress fails (and so do its waiters)
    }
    pool_.reset();
    fail(Error::unavailable("access token source '" + name_ + "' is stopped"));
  });
  work_.reset();
  if (thread_.joinable()) {
    thread_.join();
  }
  // get() calls that raced stop() posted after the thread left run(): answer them here.
  ioc_.restart();
  ioc_.poll();
}

void AccessTokenSource::onGet(Waiter waiter) {
  if (stopped_.load(std::memory_order_acquire)) {
    reply(waiter, Error::unavailable("access token source '" + name_ + "' is stopped"));
    return;
  }
  SysClock::time_point now = options_.clock();
  std::shared_ptr<const AccessToken> token = token_.load(std::memory_order_acquire);
  if (usable(token, now)) {
    if (now >= token->expires_at - options_.refresh_margin && !fetching_ && now >= retry_at_) {
      startFetch();  // refresh in the background; this caller needs no wait
    }
    reply(waiter, std::move(token));
    return;
  }
  if (!fetching_ && now < retry_at_) {
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(retry_at_ - now).count();
    reply(waiter, Error{last_error_.code, last_error_.message + " (next attempt in " +
                                              std::to_string(std::max<int64_t>(wait, 1)) + " s)"});
    return;
  }
  waiters_.push_back(std::move(waiter));
  if (!fetching_) {
    startFetch();
  }
}

void AccessTokenSource::startFetch() {
  fetching_ = true;
  fetches_.fetch_add(1, std::memory_order_relaxed);
  Result<TokenRequest> request = factory_();
  if (!request) {
    const Error& e = request.error();
    std::string message =
        "access token source '" + name_ + "': cannot build the token request: " + e.message;
    fail(e.code == Error::Code::kUnavailable ? Error::unavailable(std::move(message))
                                             : unauthenticated(std::move(message)));
    return;
  }
  auto url = boost::urls::parse_uri(request->url);
  if (!url || url->scheme() != "https" || url->host().empty()) {
    fail(unauthenticated("access token source '" + name_ +
                         "': token URL must be https://host[:port]/path"));
    return;
  }
  std::string host = url->host();
  uint16_t port = 443;
  if (url->has_port()) {
    port = url->port_number();
  }
  std::string path =
      url->encoded_path().empty() ? std::string("/") : std::string(url->encoded_path());
  std::string endpoint = "https://" + host + (url->has_port() ? ":" + std::to_string(port) : "") +
                         std::string(url->encoded_path());
  if (url->has_query()) {
    path += "?" + std::string(url->encoded_query());
  }
  std::string key = host + ":" + std::to_string(port);
  if (pool_ == nullptr || pool_endpoint_ != key) {
    if (pool_ != nullptr) {
      pool_->shutdown();
    }
    ConnectionPool::Options o;
    o.protocol = ConnectionPool::Protocol::kHttp1;
    o.host = host;
    o.port = port;
    o.tls = tls_;
    o.connections = 1;
    o.max_pending = 16;
    o.connect_timeout = options_.timeout;
    o.request_timeout = options_.timeout;
    pool_ = std::make_unique<ConnectionPool>(ioc_, std::move(o));
    pool_endpoint_ = key;
  }
  Request r;
  r.method = "POST";
  r.path = std::move(path);
  r.headers = {{"content-type", request->content_type, false},
               {"accept", "application/json", false}};
  r.body = std::move(request->body);
  log_->debug("{}: fetching an access token from {}", name_, endpoint);
  pool_->submit(std::move(r), [this, endpoint](Result<Response> response) {
    onFetched(endpoint, std::move(response));
  });
}

void AccessTokenSource::onFetched(const std::string& endpoint, Result<Response> response) {
  std::string where = "token endpoint " + endpoint;
  if (stopped_.load(std::memory_order_acquire)) {
    fail(Error::unavailable("access token source '" + name_ + "' is stopped"));
    return;
  }
  if (!response) {
    fail(Error::unavailable(where + " unreachable: " + response.error().message));
    return;
  }
  int status = response->status;
  boost::system::error_code ec;
  boost::json::value json = boost::json::parse(response->body, ec);
  const boost::json::object* object = !ec && json.is_object() ? &json.as_object() : nullptr;
  if (status >= 200 && status < 300) {
    if (object == nullptr) {
      fail(Error::unavailable(where + ": HTTP " + std::to_string(status) +
                              " with a body that is not a JSON object"));
      return;
    }
    std::string access_token = stringField(*object, "access_token");
    auto it = object->find("expires_in");
    std::optional<int64_t> expires_in =
        parseExpiresIn(it == object->end() ? nullptr : &it->value());
    if (access_token.empty() || !expires_in || *expires_in <= 0) {
      fail(Error::unavailable(where + ": response lacks access_token or a positive expires_in"));
      return;
    }
    auto token = std::make_shared<AccessToken>();
    token->authorization = "Bearer " + access_token;
    token->expires_at = options_.clock() + std::chrono::seconds(*expires_in);
    token->generation = ++generation_;
    succeed(std::move(token), endpoint);
    return;
  }
  std::string oauth_error = object != nullptr ? stringField(*object, "error") : std::string();
  std::string description =
      object != nullptr ? stringField(*object, "error_description") : std::string();
  std::string message = where + ": HTTP " + std::to_string(status);
  if (!oauth_error.empty()) {
    message += " " + sanitize(oauth_error);
  }
  if (!description.empty()) {
    message += " (" + sanitize(description) + ")";
  }
  if (status == 429 || status >= 500 || status < 400) {
    fail(Error::unavailable(std::move(message)));
  } else if (status == 403 || oauth_error == "access_denied" ||
             oauth_error == "unauthorized_client") {
    fail(Error{Error::Code::kPermissionDenied, std::move(message)});
  } else {
    fail(unauthenticated(std::move(message)));
  }
}

void AccessTokenSource::succeed(std::shared_ptr<const AccessToken> token,
                                const std::string& endpoint) {
  fetching_ = false;
  backoff_ = std::chrono::seconds(0);
  retry_at_ = {};
  auto in = std::chrono::duration_cast<std::chrono::seconds>(token->expires_at - options_.clock());
  log_->info("{}: access token (generation {}) from {}, expires in {} s", name_, token->generation,
             endpoint, in.count());
  token_.store(token, std::memory_order_release);
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) {
    reply(w, token);
  }
}

void AccessTokenSource::fail(Error error) {
  bool was_fetching = fetching_;
  fetching_ = false;
  if (was_fetching && !stopped_.load(std::memory_order_acquire)) {
    backoff_ =
        backoff_.count() == 0 ? options_.min_retry : std::min(backoff_ * 2, options_.max_retry);
    retry_at_ = options_.clock() + backoff_;
    log_->warn("{}: access token fetch failed: {} (next attempt in {} s)", name_, error.message,
               backoff_.count());
  }
  last_error_ = error;
  std::vector<Waiter> waiters;
  waiters.swap(waiters_);
  for (auto& w : waiters) {
    reply(w, error);
  }
}

void AccessTokenSource::reply(const Waiter& waiter,
                              Result<std::shared_ptr<const AccessToken>> result) {
  asio::post(waiter.executor, [done = waiter.done, result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

}  // namespace pushhub::providers
