#include "providers/wns/wns_provider.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "providers/common/tls.h"

namespace pushhub::providers::wns {
namespace {

constexpr size_t kMaxReasonBytes = 200;
constexpr int64_t kMaxTtlSeconds = 2147483647;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool isAlnum(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

bool isTrueFalse(std::string_view s) { return s == "true" || s == "false"; }

using Row = StatusVerdict;

// spec/pns-protocols.md §4.4 (codes) and §6 (outcomes); 200 is decided by X-WNS-Status.
Row byStatus(int status) {
  switch (status) {
    case 400:
      return {OutcomeKind::kPermanentBadRequest, "InvalidNotificationFormat"};
    case 401:
      return {OutcomeKind::kRefreshAuth, "InvalidCredentials"};
    case 403:  // the token's app is not the channel's app
      return {OutcomeKind::kConfigError, "InvalidCredentials"};
    case 404:
      return {OutcomeKind::kDropToken, "BadChannel"};
    case 405:
      return {OutcomeKind::kPermanentBadRequest, "PnsInterfaceError"};
    case 406:
    case 429:
      return {OutcomeKind::kRetryAfter, "Throttled"};
    case 410:
      return {OutcomeKind::kDropToken, "ExpiredChannel"};
    case 413:
      return {OutcomeKind::kPermanentBadRequest, "InvalidNotificationSize"};
    default:
      break;
  }
  return byStatusClass(status);
}

}  // namespace

WnsProvider::WnsProvider(WnsConfig config, std::shared_ptr<AccessTokenSource> tokens, Clock clock)
    : config_(std::move(config)),
      allowed_hosts_(config_.allowed_hosts),
      tokens_(std::move(tokens)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })) {
  config_.secret.clear();  // the token source holds the credential
}

bool WnsProvider::ready() const { return tokens_->current() != nullptr; }

void WnsProvider::whenReady(boost::asio::any_io_executor executor,
                            std::function<void(Result<void>)> done) {
  tokens_->get(std::move(executor),
               [done = std::move(done)](Result<std::shared_ptr<const AccessToken>> token) {
                 if (!token) {
                   done(token.error());
                 } else {
                   done(Result<void>());
                 }
               });
}

Result<ConnectionPool::Options> WnsProvider::poolOptions(const WnsConfig& config) {
  // No host: every request names its channel's host (ProviderClient's per-host pools).
  auto o =
      ConnectionPool::overTls(config.ca_file, AlpnOffer::kH2OrHttp1, "", 443, config.connections);
  if (o) {
    // WNS documents HTTP/1.1; negotiating keeps HTTP/2 where an endpoint (or the mock) offers it.
    o->protocol = ConnectionPool::Protocol::kNegotiate;
  }
  return o;
}

Result<WnsProvider::Headers> WnsProvider::parseHeaders(const std::vector<Header>& headers,
                                                       size_t body_size) {
  Headers out;
  bool seen[8] = {};
  auto once = [&seen](int slot, const std::string& name) -> Result<void> {
    if (seen[slot]) {
      return Error::invalidArgument(name + ": given more than once");
    }
    seen[slot] = true;
    return {};
  };
  for (const Header& h : headers) {
    std::string name = lower(h.name);
    if (name.rfind("x-wns-", 0) != 0) {
      continue;  // another platform's header, or content-type, which the provider sets
    }
    std::string value = lower(h.value);
    Result<void> ok;
    if (name == "x-wns-type") {
      ok = once(0, name);
      out.type = value;
      if (ok && value != "wns/toast" && value != "wns/tile" && value != "wns/badge" &&
          value != "wns/raw") {
        return Error::invalidArgument(name +
                                      ": must be wns/toast, wns/tile, wns/badge or "
                                      "wns/raw, got '" +
                                      h.value + "'");
      }
    } else if (name == "x-wns-cache-policy") {
      ok = once(1, name);
      out.cache_policy = value;
      if (ok && value != "cache" && value != "no-cache") {
        return Error::invalidArgument(name + ": must be cache or no-cache, got '" + h.value + "'");
      }
    } else if (name == "x-wns-requestforstatus") {
      ok = once(2, name);
      out.request_for_status = value;
      if (ok && !isTrueFalse(value)) {
        return Error::invalidArgument(name + ": must be true or false, got '" + h.value + "'");
      }
    } else if (name == "x-wns-tag" || name == "x-wns-group") {
      bool tag = name == "x-wns-tag";
      ok = once(tag ? 3 : 4, name);
      (tag ? out.tag : out.group) = h.value;
      if (ok && (h.value.empty() || h.value.size() > kMaxTagBytes || !isAlnum(h.value))) {
        return Error::invalidArgument(name + ": must be 1 to 16 letters or digits");
      }
    } else if (name == "x-wns-ttl") {
      ok = once(5, name);
      out.ttl = h.value;
      int64_t seconds = -1;
      bool digits =
          !h.value.empty() && h.value.size() <= 10 &&
          std::all_of(h.value.begin(), h.value.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits) {
        std::from_chars(h.value.data(), h.value.data() + h.value.size(), seconds);
      }
      if (ok && (!digits || seconds > kMaxTtlSeconds)) {
        return Error::invalidArgument(name + ": must be whole seconds from 0 to 2147483647, got '" +
                                      h.value + "'");
      }
    } else if (name == "x-wns-suppresspopup") {
      ok = once(6, name);
      out.suppress_popup = value;
      if (ok && !isTrueFalse(value)) {
        return Error::invalidArgument(name + ": must be true or false, got '" + h.value + "'");
      }
    } else if (name == "x-wns-priority") {
      ok = once(7, name);
      out.priority = h.value;
      if (ok && (h.value.size() != 1 || h.value[0] < '1' || h.value[0] > '4')) {
        return Error::invalidArgument(name + ": must be 1, 2, 3 or 4, got '" + h.value + "'");
      }
    } else {
      return Error::invalidArgument(name + ": not a WNS header this hub knows");
    }
    if (!ok) {
      return ok.error();
    }
  }
  if (out.type.empty()) {
    return Error::invalidArgument(
        "x-wns-type: required (wns/toast, wns/tile, wns/badge or wns/raw)");
  }
  out.content_type = out.type == "wns/raw" ? "application/octet-stream" : "text/xml";
  if (body_size == 0) {
    return Error::invalidArgument("payload: must not be empty");
  }
  if (body_size > kMaxPayloadBytes) {
    return Error::invalidArgument("payload: " + std::to_string(body_size) +
                                  " bytes, WNS allows at most " + std::to_string(kMaxPayloadBytes));
  }
  return out;
}

Result<const WnsProvider::Headers*> WnsProvider::checkedHeaders(
    const std::shared_ptr<const Notification>& n) {
  if (const Headers* known = checked_.find(n)) {
    return known;
  }
  auto parsed = parseHeaders(n->headers, n->body.size());
  if (!parsed) {
    return parsed.error();
  }
  return checked_.remember(n, std::move(parsed).value());
}

Result<Request> WnsProvider::encode(const Target& target,
                                    const std::shared_ptr<const Notification>& notification) {
  const Notification& n = *notification;
  auto channel = parseChannelUri(target.push_channel, allowed_hosts_);
  if (!channel) {
    return channel.error();
  }
  auto checked = checkedHeaders(notification);
  if (!checked) {
    return checked.error();
  }
  const Headers& h = **checked;
  std::shared_ptr<const AccessToken> token = tokens_->current();
  if (!token) {
    return Error::unavailable("wns access token: none available");
  }
  last_generation_ = token->generation;

  Request r;
  r.method = "POST";
  r.credential_generation = token->generation;
  r.host = std::move(channel->host);
  r.port = channel->port;
  r.path = std::move(channel->target);
  r.sensitive_path = true;
  r.headers.reserve(11);
  r.headers.push_back({"authorization", token->authorization, true});
  r.headers.push_back({"content-type", h.content_type, false});
  r.headers.push_back({"x-wns-type", h.type, false});
  auto optional = [&r](std::string_view name, const std::string& value, bool sensitive) {
    if (!value.empty()) {
      r.headers.push_back({std::string(name), value, sensitive});
    }
  };
  optional("x-wns-cache-policy", h.cache_policy, false);
  optional("x-wns-requestforstatus", h.request_for_status, false);
  optional("x-wns-tag", h.tag, false);
  optional("x-wns-group", h.group, false);
  if (!h.ttl.empty()) {
    r.headers.push_back({"x-wns-ttl", h.ttl, false});
  } else if (n.expiry) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(*n.expiry - clock_()).count();
    // Changes every second: never indexed, it would only churn the HPACK table.
    r.headers.push_back(
        {"x-wns-ttl", std::to_string(std::clamp<int64_t>(left, 1, kMaxTtlSeconds)), true});
  }
  optional("x-wns-suppresspopup", h.suppress_popup, false);
  optional("x-wns-priority", h.priority, false);
  // Every target of a send carries the same payload: share it, do not copy it.
  r.shared_body = std::shared_ptr<const std::string>(notification, &n.body);
  return r;
}

Outcome WnsProvider::classify(const Response& response) const {
  Outcome o;
  o.http_status = response.status;
  std::string status = lower(response.header("x-wns-status"));
  if (!status.empty()) {
    o.reason = status;
  } else {
    o.reason = std::string(response.header("x-wns-error-description").substr(0, kMaxReasonBytes));
  }
  Row row = byStatus(response.status);
  if (response.status >= 200 && response.status <= 299) {
    // "received" (or no status at all: WNS took the request) is the only success; "dropped"
    // is final and not worth a retry.
    if (status == "channelthrottled") {
      row = {OutcomeKind::kRetryAfter, "Throttled"};
    } else if (status == "dropped") {
      row = {OutcomeKind::kPermanentBadRequest, "Dropped"};
    } else {
      row = {OutcomeKind::kDelivered, "Success"};
    }
  }
  o.kind = row.kind;
  o.azure_outcome = row.azure_outcome;
  if (o.kind == OutcomeKind::kRetryAfter || o.kind == OutcomeKind::kRetryBackoff) {
    auto now = clock_();
    auto after = parseRetryAfter(response.header("retry-after"), now);
    if (!after) {
      after = parseRetryAfter(response.header("x-wns-continue-after"), now);
    }
    if (after) {
      o.retry_after = *after;
      if (response.status == 503) {
        o.kind = OutcomeKind::kRetryAfter;  // 503 honours Retry-After when WNS sends one
      }
    }
  }
  return o;
}

void WnsProvider::onAuthRejected(const Response& rejected) {
  tokens_->invalidate(rejected.credential_generation != 0 ? rejected.credential_generation
                                                          : last_generation_);
}

void WnsProvider::onAuthRejected() { tokens_->invalidate(last_generation_); }

}  // namespace pushhub::providers::wns
