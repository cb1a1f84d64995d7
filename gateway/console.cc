#include "gateway/console.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <openssl/crypto.h>

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cassert>
#include <cmath>

#include <fmt/format.h>

#include "base/sas.h"
#include "gateway/console_assets.h"
#include "gateway/rest_api.h"

namespace pushhub::gateway::console {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using google::protobuf::util::TimeUtil;

constexpr std::string_view kCookie = "pushhub_console";
constexpr std::string_view kApi = "/console/api/";
constexpr size_t kMaxRevoked = 10000;

int64_t unixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string protoJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// Every console answer: no caching of anything signed-in, no framing, no sniffing, no referrer.
http::HttpResponse answer(int status, std::string content_type, std::string body) {
  http::HttpResponse r{status, std::move(content_type), std::move(body)};
  r.headers = {{"Cache-Control", "no-store"},
               {"X-Content-Type-Options", "nosniff"},
               {"Referrer-Policy", "no-referrer"},
               {"X-Frame-Options", "DENY"}};
  return r;
}

http::HttpResponse jsonAnswer(int status, const json::value& body) {
  return answer(status, "application/json", json::serialize(body));
}

http::HttpResponse refusal(int status, std::string_view message) {
  return jsonAnswer(status, json::object{{"error", message}});
}

http::HttpResponse errorAnswer(const Error& error) {
  return refusal(static_cast<int>(httpStatusOf(error)), error.message);
}

std::string cookieValue(const http::HttpRequest& request) {
  std::string_view header = request.header("cookie");
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view{} : header.substr(end + 1);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > kCookie.size() && pair.substr(0, kCookie.size()) == kCookie &&
        pair[kCookie.size()] == '=') {
      return std::string(pair.substr(kCookie.size() + 1));
    }
  }
  return "";
}

// "/console/api/notifications/<id>[/<verb>]" -> {"<id>", "<verb>"}.
std::pair<std::string, std::string> idAndVerb(std::string_view rest) {
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return {std::string(rest), ""};
  return {std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

// What the page may know of its session: never a secret.
json::object describe(const Session& session, std::string_view secret) {
  return {{"hub", session.hub},
          {"key_name", session.key_name},
          {"expires", session.expires},
          {"csrf", csrfToken(session, secret)}};
}

// A device handle shown enough to recognise, not whole.
std::string maskHandle(const std::string& handle) {
  if (handle.size() <= 12) return std::string(handle.size(), '*');
  return handle.substr(0, 6) + "..." + handle.substr(handle.size() - 4) + " (" +
         std::to_string(handle.size()) + " characters)";
}

}  // namespace

struct Console::Signed {
  Session session;
  std::string cookie;
  std::string secret;

  // A SharedAccessSignature of the session's key for the hub: what the APIs would be given.
  std::string authorization() const {
    return sas::makeToken("sb://pushhub-console/" + session.hub, session.key_name, secret,
                          std::chrono::system_clock::now() + std::chrono::minutes(5));
  }
};

struct Console::LivePage {
  std::shared_ptr<http::ResponseStream> stream;
  std::string cookie;
};

Console::Console(asio::io_context& home, const HubCatalog& catalog, HubService& hubs,
                 StatsCollector& stats, Options options)
    : home_(home),
      catalog_(catalog),
      hubs_(hubs),
      stats_(stats),
      options_(options),
      sample_timer_(home),
      tick_timer_(home) {}

Console::~Console() = default;

void Console::start() {
  assert(home_.get_executor().running_in_this_thread());
  sample();
}

void Console::stop() {
  stopped_ = true;
  sample_timer_.cancel();
  tick_timer_.cancel();
  for (auto& page : live_) page->stream->close();
  live_.clear();
}

bool Console::handle(const http::HttpRequest& request, Respond& respond) {
  assert(home_.get_executor().running_in_this_thread());
  const std::string& path = request.path;
  if (path.rfind(kApi, 0) != 0) return serveAsset(request, respond);

  std::string_view route = std::string_view(path).substr(kApi.size());
  bool post = request.method == "POST";
  if (!post && request.method != "GET") {
    respond(refusal(405, "GET or POST only"));
    return true;
  }
  if (post && !sameOrigin(request)) {
    respond(refusal(403, "cross-origin request refused"));
    return true;
  }
  if (route == "signin") {
    if (!post) {
      respond(refusal(405, "POST only"));
    } else {
      signIn(request, respond);
    }
    return true;
  }

  auto session = sessionOf(request);
  if (!session) {
    respond(refusal(401, "sign in first (no valid session)"));
    return true;
  }
  if (post && request.header("x-pushhub-csrf") != csrfToken(session->session, session->secret)) {
    respond(refusal(403, "X-Pushhub-Csrf: missing or wrong"));
    return true;
  }
  if (route == "session" && !post) {
    respond(jsonAnswer(200, describe(session->session, session->secret)));
  } else if (route == "signout" && post) {
    signOut(*session, respond);
  } else if (route == "live" && !post) {
    openLive(*session, respond);
  } else if (route == "overview" && !post) {
    overview(*session, [respond](std::string body) mutable {
      respond(answer(200, "application/json", std::move(body)));
    });
  } else if (route.rfind("notifications/", 0) == 0) {
    auto [id, verb] = idAndVerb(route.substr(14));
    if (verb.empty() && !post) {
      notification(*session, id, respond);
    } else if (verb == "cancel" && post) {
      cancel(*session, id, respond);
    } else {
      respond(refusal(404, "unknown console call"));
    }
  } else if (route.rfind("installations/", 0) == 0 && !post) {
    installation(*session, std::string(route.substr(14)), respond);
  } else {
    respond(refusal(404, "unknown console call"));
  }
  return true;
}

bool Console::serveAsset(const http::HttpRequest& request, Respond& respond) {
  std::string_view name = request.path;
  if (name == "/" || name == "/console" || name == "/console/") {
    name = "index.html";
  } else if (name.rfind("/console/", 0) == 0) {
    name.remove_prefix(9);
  } else {
    return false;
  }
  const Asset* asset = findAsset(name);
  if (!asset) return false;
  if (request.method != "GET") {
    respond(refusal(405, "GET only"));
    return true;
  }
  auto r = answer(200, std::string(asset->content_type), std::string(asset->body));
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                         "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                         "base-uri 'none'; form-action 'self'");
  respond(std::move(r));
  return true;
}

bool Console::sameOrigin(const http::HttpRequest& request) {
  std::string_view origin = request.header("origin");
  if (origin.empty()) {
    // Browsers send Origin with every POST; without it, trust only what Fetch Metadata says.
    std::string_view site = request.header("sec-fetch-site");
    return site.empty() || site == "same-origin" || site == "none";
  }
  std::string_view host = request.header("host");
  auto scheme_end = origin.find("://");
  return !host.empty() && scheme_end != std::string_view::npos &&
         origin.substr(scheme_end + 3) == host;
}

std::optional<Console::Signed> Console::verifyCookie(const std::string& value) const {
  auto session = decode(value);
  if (!session || session->expires <= unixSeconds() || revoked_.count(session->nonce)) {
    return std::nullopt;
  }
  auto hub = catalog_.find(session->hub);
  if (!hub) return std::nullopt;
  const AccessKey* key = hub->settings.findKey(session->key_name);
  if (!key || !key->allows(kManage) || !verify(value, key->secret)) return std::nullopt;
  return Signed{std::move(*session), value, key->secret};
}

std::optional<Console::Signed> Console::sessionOf(const http::HttpRequest& request) const {
  std::string value = cookieValue(request);
  if (value.empty()) return std::nullopt;
  return verifyCookie(value);
}

void Console::signIn(const http::HttpRequest& request, Respond& respond) {
  if (request.header("content-type").rfind("application/json", 0) != 0) {
    return respond(refusal(415, "Content-Type: must be application/json"));
  }
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec || !body.is_object()) return respond(refusal(400, "body: must be a JSON object"));
  auto text = [&](std::string_view field) -> std::string {
    const json::value* v = body.as_object().if_contains(field);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  std::string hub_name = text("hub");
  std::string key_name = text("key_name");
  std::string key = text("key");
  if (std::string connection = text("connection_string"); !connection.empty()) {
    auto parsed = sas::parseConnectionString(connection);
    if (!parsed) return respond(refusal(400, "connection_string: " + parsed.error().message));
    key_name = parsed->key_name;
    key = parsed->key;
  }
  if (hub_name.empty() || hub_name.size() > 256) {
    return respond(refusal(400, "hub: required, at most 256 characters"));
  }
  if (key_name.empty() || key.empty() || key_name.size() > 256 || key.size() > 1024) {
    return respond(refusal(400,
                           "connection_string, or key_name and key: required (a key name of at "
                           "most 256 characters, a key of at most 1024)"));
  }
  // One answer for every wrong part, so a guess learns nothing of which part was wrong.
  auto wrong = [&] { respond(refusal(401, "wrong hub, key name or key")); };
  auto hub = catalog_.find(hub_name);
  if (!hub) return wrong();
  const AccessKey* access = hub->settings.findKey(key_name);
  if (!access || access->secret.size() != key.size() ||
      CRYPTO_memcmp(access->secret.data(), key.data(), key.size()) != 0) {
    return wrong();
  }
  if (!access->allows(kManage)) {
    return respond(refusal(403, "the console needs a key with the Manage right"));
  }
  Session session{hub->settings.name, access->name,
                  unixSeconds() + std::chrono::seconds(options_.session_lifetime).count(),
                  newNonce()};
  std::string cookie = encode(session, access->secret);
  auto r = jsonAnswer(200, describe(session, access->secret));
  r.headers.emplace_back(
      "Set-Cookie", fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", kCookie,
                                cookie, std::chrono::seconds(options_.session_lifetime).count(),
                                options_.secure_cookie ? "; Secure" : ""));
  respond(std::move(r));
}

void Console::signOut(const Signed& session, Respond& respond) {
  int64_t now = unixSeconds();
  std::erase_if(revoked_, [now](const auto& entry) { return entry.second <= now; });
  if (revoked_.size() >= kMaxRevoked) revoked_.erase(revoked_.begin());
  revoked_[session.session.nonce] = session.session.expires;
  for (auto& page : live_) {
    if (page->cookie == session.cookie) page->stream->close();
  }
  auto r = jsonAnswer(200, json::object{{"signed_out", true}});
  r.headers.emplace_back("Set-Cookie",
                         fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", kCookie,
                                     options_.secure_cookie ? "; Secure" : ""));
  respond(std::move(r));
}

void Console::openLive(const Signed& session, Respond& respond) {
  std::erase_if(live_, [](const auto& page) { return !page->stream->open(); });
  if (live_.size() >= options_.max_live_pages) {
    return respond(refusal(503, fmt::format("too many live console pages (limit {}); close one",
                                            options_.max_live_pages)));
  }
  auto r = answer(200, "text/event-stream", "retry: 2000\n\n");
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.on_stream = [this, cookie = session.cookie](std::shared_ptr<http::ResponseStream> stream) {
    if (stopped_) return stream->close();
    live_.push_back(std::make_shared<LivePage>(LivePage{std::move(stream), cookie}));
    if (!ticking_) tick();
  };
  respond(std::move(r));
}

void Console::tick() {
  std::erase_if(live_, [](const auto& page) { return !page->stream->open(); });
  if (live_.empty() || stopped_) return;
  scheduleTick();  // the next in a second, whatever this one's gathering does
  // A gathering still out (a worker slow to answer) is waited for, up to kStuckGather.
  auto now = std::chrono::steady_clock::now();
  if (ticking_ && now - tick_started_ < kStuckGather) return;
  // Each page's session again: an expired, signed-out or re-keyed one stops here.
  std::map<std::string, std::vector<std::shared_ptr<LivePage>>> by_hub;
  std::map<std::string, Signed> signer;
  for (auto& page : live_) {
    auto session = verifyCookie(page->cookie);
    if (!session) {
      page->stream->write("event: signedout\ndata: {}\n\n");
      page->stream->close();
      continue;
    }
    by_hub[session->session.hub].push_back(page);
    signer.emplace(session->session.hub, std::move(*session));
  }
  std::erase_if(live_, [](const auto& page) { return !page->stream->open(); });
  if (by_hub.empty()) return;
  ticking_ = true;
  tick_started_ = now;
  auto left = std::make_shared<size_t>(by_hub.size());
  for (auto& [hub, pages] : by_hub) {
    overview(signer.at(hub), [this, pages = pages, left](std::string body) {
      std::string event = "data: " + body + "\n\n";
      for (const auto& page : pages) page->stream->write(event);
      if (--*left == 0) ticking_ = false;
    });
  }
}

void Console::scheduleTick() {
  if (stopped_ || live_.empty()) return;
  tick_timer_.expires_after(kLiveInterval);
  tick_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void Console::overview(const Signed& session, std::function<void(std::string)> done) {
  struct Gather {
    std::shared_ptr<const InstanceSnapshot> snapshot;
    v1::ListNotificationsResponse latest;
    v1::ListScheduledNotificationsResponse scheduled;
    std::optional<Error> latest_error, scheduled_error;
    int left = 3;
    std::function<void(std::string)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->done = std::move(done);
  std::string hub = session.session.hub;
  auto finish = [this, gather, hub] {
    if (--gather->left != 0) return;
    const InstanceSnapshot& s = *gather->snapshot;
    uint64_t errors = 0, retried = 0, moved = 0, ask = 0;
    for (const auto* w : s.atomics) {
      errors += w->redis_errors.load(std::memory_order_relaxed);
      retried += w->redis.retried.load(std::memory_order_relaxed);
      moved += w->redis.moved.load(std::memory_order_relaxed);
      ask += w->redis.ask.load(std::memory_order_relaxed);
    }
    json::object redis{{"workers", s.workers},
                       {"workers_with_redis", s.workers_connected},
                       {"queue_readable", s.queue.has_value()},
                       {"errors", errors},
                       {"retries", retried},
                       {"moved", moved},
                       {"ask", ask}};
    auto part = [](const google::protobuf::Message& m, const std::optional<Error>& error) {
      if (!error) return protoJson(m);
      return json::serialize(json::object{{"error", error->message}});
    };
    gather->done(fmt::format(
        R"({{"hub":{},"time_ms":{},"stats":{},"redis":{},"chart":{},"latest":{},"scheduled":{}}})",
        json::serialize(json::value(hub)), unixMs(), protoJson(toProto(s, hub)),
        json::serialize(redis), chartJson(hub), part(gather->latest, gather->latest_error),
        part(gather->scheduled, gather->scheduled_error)));
  };
  stats_.collect(true, [gather, finish](std::shared_ptr<const InstanceSnapshot> snapshot) {
    gather->snapshot = std::move(snapshot);
    finish();
  });
  // HubService answers on a worker: back to home with the answer.
  auto back = [this, finish](std::optional<Error>* slot) {
    return [this, finish, slot](const Result<void>& ok) {
      asio::post(home_, [finish, slot, ok] {
        if (!ok) *slot = ok.error();
        finish();
      });
    };
  };
  std::string authorization = session.authorization();
  v1::ListNotificationsRequest latest;
  latest.set_hub(hub);
  latest.set_max(kLatestListed);
  hubs_.listNotifications(authorization, latest, &gather->latest, back(&gather->latest_error));
  v1::ListScheduledNotificationsRequest scheduled;
  scheduled.set_hub(hub);
  scheduled.set_max(100);
  hubs_.listScheduledNotifications(authorization, scheduled, &gather->scheduled,
                                   back(&gather->scheduled_error));
}

void Console::notification(const Signed& session, const std::string& id, Respond& respond) {
  auto status = std::make_shared<v1::NotificationStatus>();
  v1::GetNotificationRequest request;
  request.set_hub(session.session.hub);
  request.set_notification_id(id);
  hubs_.getNotification(
      session.authorization(), request, status.get(), [status, respond](const Result<void>& ok) {
        respond(ok ? answer(200, "application/json", protoJson(*status)) : errorAnswer(ok.error()));
      });
}

void Console::cancel(const Signed& session, const std::string& id, Respond& respond) {
  v1::CancelNotificationRequest request;
  request.set_hub(session.session.hub);
  request.set_notification_id(id);
  hubs_.cancelNotification(session.authorization(), request, [id, respond](const Result<void>& ok) {
    respond(ok ? jsonAnswer(200, json::object{{"cancelled", id}}) : errorAnswer(ok.error()));
  });
}

void Console::installation(const Signed& session, const std::string& id, Respond& respond) {
  auto found = std::make_shared<v1::Installation>();
  v1::GetInstallationRequest request;
  request.set_hub(session.session.hub);
  request.set_installation_id(id);
  hubs_.getInstallation(session.authorization(), request, found.get(),
                        [found, respond](const Result<void>& ok) {
                          if (!ok) return respond(errorAnswer(ok.error()));
                          found->set_push_channel(maskHandle(found->push_channel()));
                          respond(answer(200, "application/json", protoJson(*found)));
                        });
}

void Console::sample() {
  if (stopped_) return;
  stats_.collect(false, [this](std::shared_ptr<const InstanceSnapshot> snapshot) {
    Sample sample{unixMs(), {}};
    for (const auto& [hub, routes] : snapshot->hubs) {
      auto& totals = sample.hubs[hub];
      for (size_t p = 0; p < kPlatforms; ++p) {
        for (uint64_t n : routes[p].deliveries) totals[p] += n;
      }
    }
    samples_.push_back(std::move(sample));
    auto keep = (kChartSpan + kChartStep) / std::chrono::milliseconds(1);
    while (samples_.size() > 2 && samples_.back().unix_ms - samples_.front().unix_ms > keep) {
      samples_.pop_front();
    }
    scheduleSample();
  });
}

void Console::scheduleSample() {
  if (stopped_) return;
  sample_timer_.expires_after(kChartStep);
  sample_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sample();
  });
}

// Deliveries per second by platform between consecutive samples: [[unix ms, apns, fcm, wns]].
std::string Console::chartJson(const std::string& hub) const {
  json::array points;
  static const std::array<uint64_t, 3> kNone{};
  for (size_t i = 1; i < samples_.size(); ++i) {
    const auto& before = samples_[i - 1];
    const auto& after = samples_[i];
    auto find = [&hub](const Sample& s) -> const std::array<uint64_t, 3>& {
      auto it = s.hubs.find(hub);
      return it == s.hubs.end() ? kNone : it->second;
    };
    const auto& a = find(before);
    const auto& b = find(after);
    double seconds = std::max<int64_t>(1, after.unix_ms - before.unix_ms) / 1000.0;
    json::array point{after.unix_ms};
    for (size_t p = 0; p < kPlatforms; ++p) {
      point.push_back(b[p] >= a[p] ? std::round((b[p] - a[p]) / seconds * 10) / 10 : 0.0);
    }
    points.push_back(std::move(point));
  }
  return json::serialize(json::object{{"step_seconds", kChartStep.count()},
                                      {"platforms", json::array{"apns", "fcm", "wns"}},
                                      {"points", std::move(points)}});
}

}  // namespace pushhub::gateway::console
