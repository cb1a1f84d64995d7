#include "tools/pns-mock/control.h"

#include "tools/pns-mock/stats.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

namespace pushhub::mock {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using Respond = std::function<void(HttpResponse)>;

HttpResponse jsonResponse(int status, const boost::json::value& v) {
  HttpResponse r;
  r.status = status;
  r.body = boost::json::serialize(v);
  return r;
}

HttpResponse errorResponse(int status, std::string message) {
  return jsonResponse(status, boost::json::object{{"error", std::move(message)}});
}

HttpResponse okResponse() { return jsonResponse(200, boost::json::object{{"ok", true}}); }

bool isHexToken(std::string_view s) {
  if (s.empty() || s.size() % 2 != 0) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// Parses an optional JSON object body ("" = {}).
Result<boost::json::object> parseBody(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    return boost::json::object{};
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return Error::invalidArgument("body: expected a JSON object");
  }
  return std::move(v.as_object());
}

// Reads an optional non-negative integer field within [min, max].
Result<std::optional<uint32_t>> optionalUint(const boost::json::object& o, std::string_view key,
                                             uint32_t min, uint32_t max) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return std::optional<uint32_t>{};
  }
  int64_t n = -1;
  if (v->is_int64()) {
    n = v->as_int64();
  } else if (v->is_uint64() && v->as_uint64() <= max) {
    n = static_cast<int64_t>(v->as_uint64());
  }
  if (n < min || n > max) {
    return Error::invalidArgument(std::string(key) + ": expected an integer from " +
                                  std::to_string(min) + " to " + std::to_string(max));
  }
  return std::optional<uint32_t>(static_cast<uint32_t>(n));
}

Result<std::vector<std::string>> tokenList(const MockProvider& m, const boost::json::object& o,
                                           std::string_view key) {
  std::vector<std::string> out;
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) {
    return out;
  }
  if (!v->is_array()) {
    return Error::invalidArgument(std::string(key) + ": expected an array of strings");
  }
  size_t i = 0;
  for (const auto& item : v->as_array()) {
    Result<std::string> token = Error::invalidArgument("expected a string");
    if (item.is_string()) {
      token = m.normalizeToken(std::string_view(item.as_string()));
    }
    if (!token) {
      return Error::invalidArgument(std::string(key) + "[" + std::to_string(i) +
                                    "]: " + token.error().message);
    }
    out.push_back(std::move(*token));
    ++i;
  }
  return out;
}

class Control {
 public:
  explicit Control(std::vector<MockProvider*> providers) : providers_(std::move(providers)) {}

  void handle(const HttpRequest& req, Respond respond) {
    const std::string& p = req.path;
    bool get = req.method == "GET";
    bool post = req.method == "POST";
    if (p == "/_mock/stats" && get) {
      auto t = req.query.find("tokens");
      bool with_tokens = t == req.query.end() || t->second != "0";
      stats(with_tokens, std::move(respond));
    } else if (p == "/_mock/received" && get) {
      received(req, std::move(respond));
    } else if (p == "/_mock/reset" && post) {
      forAll([](MockProvider* m, std::function<void()> d) { m->reset(std::move(d)); },
             std::move(respond));
    } else if (p == "/_mock/config" && post) {
      config(req, std::move(respond));
    } else if (p == "/_mock/goaway" && post) {
      goaway(req, std::move(respond));
    } else if (p == "/_mock/tokens" && post) {
      tokens(req, std::move(respond));
    } else if (p == "/_mock/expire-tokens" && post) {
      expireTokens(req, std::move(respond));
    } else if (p == "/_mock/faults" && post) {
      faults(req, std::move(respond));
    } else if (p == "/_mock/stats" || p == "/_mock/received" || p == "/_mock/reset" ||
               p == "/_mock/config" || p == "/_mock/goaway" || p == "/_mock/tokens" ||
               p == "/_mock/expire-tokens" || p == "/_mock/faults") {
      respond(errorResponse(405, req.method + " not allowed on " + p));
    } else {
      respond(errorResponse(404, "unknown path " + p));
    }
  }

 private:
  MockProvider* find(std::string_view name) {
    for (MockProvider* m : providers_) {
      if (m->name() == name) {
        return m;
      }
    }
    return nullptr;
  }

  // Runs op on each provider in turn, then answers {"ok":true}.
  void forAll(std::function<void(MockProvider*, std::function<void()>)> op, Respond respond,
              size_t i = 0) {
    if (i == providers_.size()) {
      respond(okResponse());
      return;
    }
    op(providers_[i], [this, op, respond = std::move(respond), i]() mutable {
      forAll(std::move(op), std::move(respond), i + 1);
    });
  }

  void stats(bool with_tokens, Respond respond, std::shared_ptr<boost::json::object> out = nullptr,
             size_t i = 0) {
    if (!out) {
      out = std::make_shared<boost::json::object>();
    }
    if (i == providers_.size()) {
      respond(jsonResponse(200, *out));
      return;
    }
    MockProvider* m = providers_[i];
    m->stats(with_tokens, [this, with_tokens, m, out, respond = std::move(respond),
                           i](boost::json::object o) mutable {
      (*out)[m->name()] = std::move(o);
      stats(with_tokens, std::move(respond), out, i + 1);
    });
  }

  void received(const HttpRequest& req, Respond respond) {
    auto provider = req.query.find("provider");
    std::string name = provider == req.query.end() ? "apns" : provider->second;
    MockProvider* m = find(name);
    if (m == nullptr) {
      respond(errorResponse(400, "provider: unknown provider '" + name + "'"));
      return;
    }
    size_t limit = SIZE_MAX;
    if (auto l = req.query.find("limit"); l != req.query.end()) {
      const std::string& s = l->second;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), limit);
      if (ec != std::errc() || ptr != s.data() + s.size()) {
        respond(errorResponse(400, "limit: expected a non-negative integer"));
        return;
      }
    }
    m->received(limit, [respond = std::move(respond)](boost::json::array a) {
      respond(jsonResponse(200, a));
    });
  }

  void config(const HttpRequest& req, Respond respond) {
    auto body = parseBody(req.body);
    if (!body) {
      respond(errorResponse(400, body.error().message));
      return;
    }
    auto max = optionalUint(*body, "max_concurrent_streams", 1, 0x7fffffff);
    auto delay = optionalUint(*body, "delay_ms", 0, 600000);
    for (const auto* r : {&max, &delay}) {
      if (!*r) {
        respond(errorResponse(400, r->error().message));
        return;
      }
    }
    std::optional<uint32_t> m = *max;
    std::optional<uint32_t> d = *delay;
    forAll([m, d](MockProvider* p, std::function<void()> done) { p->configure(m, d, done); },
           std::move(respond));
  }

  void faults(const HttpRequest& req, Respond respond) {
    auto body = parseBody(req.body);
    if (!body) {
      respond(errorResponse(400, body.error().message));
      return;
    }
    const auto* p = body->if_contains("provider");
    MockProvider* m = p && p->is_string() ? find(std::string_view(p->as_string())) : nullptr;
    if (m == nullptr) {
      respond(errorResponse(400,
                            "provider: expected the name of a served provider (apns, fcm, "
                            "wns)"));
      return;
    }
    auto fault = parseFault(*body, wallUs() / 1000);
    if (!fault) {
      respond(errorResponse(400, fault.error().message));
      return;
    }
    m->setFault(std::move(*fault), [respond = std::move(respond)] { respond(okResponse()); });
  }

  void goaway(const HttpRequest& req, Respond respond) {
    auto body = parseBody(req.body);
    if (!body) {
      respond(errorResponse(400, body.error().message));
      return;
    }
    std::string reason = "Shutdown";
    if (const auto* r = body->if_contains("reason")) {
      if (!r->is_string()) {
        respond(errorResponse(400, "reason: expected a string"));
        return;
      }
      reason = std::string(r->as_string());
    }
    std::string debug = boost::json::serialize(boost::json::object{{"reason", reason}});
    forAll([debug](MockProvider* p, std::function<void()> done) { p->goaway(debug, done); },
           std::move(respond));
  }

  void tokens(const HttpRequest& req, Respond respond) {
    auto body = parseBody(req.body);
    if (!body) {
      respond(errorResponse(400, body.error().message));
      return;
    }
    std::string name = "apns";
    if (const auto* p = body->if_contains("provider"); p != nullptr && p->is_string()) {
      name = std::string(p->as_string());
    }
    MockProvider* m = find(name);
    if (m == nullptr) {
      respond(errorResponse(400, "provider: unknown provider '" + name + "'"));
      return;
    }
    auto dead = tokenList(*m, *body, "dead");
    auto bad = tokenList(*m, *body, "bad");
    for (const auto* r : {&dead, &bad}) {
      if (!*r) {
        respond(errorResponse(400, r->error().message));
        return;
      }
    }
    size_t added = dead->size() + bad->size();
    m->addTokens(std::move(*dead), std::move(*bad), [respond = std::move(respond), added] {
      respond(jsonResponse(200, boost::json::object{{"ok", true}, {"added", added}}));
    });
  }

  void expireTokens(const HttpRequest& req, Respond respond) {
    auto body = parseBody(req.body);
    if (!body) {
      respond(errorResponse(400, body.error().message));
      return;
    }
    std::vector<MockProvider*> targets;
    if (const auto* p = body->if_contains("provider")) {
      if (!p->is_string()) {
        respond(errorResponse(400, "provider: expected a string"));
        return;
      }
      MockProvider* m = find(std::string_view(p->as_string()));
      if (m == nullptr) {
        respond(
            errorResponse(400, "provider: unknown provider '" + std::string(p->as_string()) + "'"));
        return;
      }
      targets.push_back(m);
    } else {
      targets = providers_;
    }
    expireNext(std::move(targets), 0, boost::json::array{}, std::move(respond));
  }

  // Expires the tokens of targets[i..] one after the other, then answers with the names done.
  void expireNext(std::vector<MockProvider*> targets, size_t i, boost::json::array done,
                  Respond respond) {
    while (i < targets.size()) {
      MockProvider* m = targets[i];
      auto next = [this, targets, i, done, respond, m]() mutable {
        done.emplace_back(m->name());
        expireNext(std::move(targets), i + 1, std::move(done), std::move(respond));
      };
      if (m->expireTokens(next)) {
        return;
      }
      if (targets.size() == 1) {
        respond(
            errorResponse(400, "provider: " + std::string(m->name()) + " issues no access tokens"));
        return;
      }
      ++i;
    }
    respond(jsonResponse(200, boost::json::object{{"ok", true}, {"expired", std::move(done)}}));
  }

  std::vector<MockProvider*> providers_;
};

}  // namespace

Result<std::string> MockProvider::normalizeToken(std::string_view token) const {
  if (!isHexToken(token)) {
    return Error::invalidArgument("expected an even-length hex string");
  }
  return toLower(token);
}

http::HttpHandler makeControlHandler(std::vector<MockProvider*> providers) {
  auto control = std::make_shared<Control>(std::move(providers));
  return [control](const HttpRequest& req, Respond respond) {
    control->handle(req, std::move(respond));
  };
}

}  // namespace pushhub::mock
