#include "registry/hub_store.h"

#include <algorithm>

namespace pushhub::registry {
namespace {

// KEYS: hubs, rev. ARGV: name, document, mode (c | u | a), expected document (optional).
// 1 written; -1 exists (create); -2 missing (update); -3 changed meanwhile.
const Script& putScript() {
  static const Script s(R"lua(
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'c' and current then return -1 end
if ARGV[3] == 'u' and not current then return -2 end
if ARGV[4] and current ~= ARGV[4] then return -3 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
)lua");
  return s;
}

// KEYS: hubs, rev. ARGV: name. 1 removed, 0 missing.
const Script& removeScript() {
  static const Script s(R"lua(
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
)lua");
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

void HubStore::put(const std::string& name, const std::string& document, Mode mode,
                   std::function<void(Result<void>)> cb, const std::string* expected) {
  std::vector<std::string> args{lower(name), document,
                                mode == Mode::kCreate   ? "c"
                                : mode == Mode::kUpdate ? "u"
                                                        : "a"};
  if (expected != nullptr) args.push_back(*expected);
  redis_.evalScript(
      putScript(), {kHubsKey, kRevisionKey}, std::move(args),
      [name, cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) return cb(r.error());
        switch (r->integer) {
          case 1:
            return cb(Result<void>());
          case -1:
            return cb(Error{Error::Code::kAlreadyExists, "hub: '" + name + "' exists"});
          case -2:
            return cb(Error::notFound("hub: no hub named '" + name + "'"));
          default:
            return cb(Error{Error::Code::kAborted, "hub: '" + name +
                                                       "' was changed meanwhile; read it "
                                                       "again and retry"});
        }
      });
}

void HubStore::remove(const std::string& name, std::function<void(Result<void>)> cb) {
  redis_.evalScript(removeScript(), {kHubsKey, kRevisionKey}, {lower(name)},
                    [name, cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) return cb(r.error());
                      if (r->integer == 0) {
                        return cb(Error::notFound("hub: no hub named '" + name + "'"));
                      }
                      cb(Result<void>());
                    });
}

void HubStore::revision(std::function<void(Result<int64_t>)> cb) {
  redis_.command({"GET", kRevisionKey}, [cb = std::move(cb)](Result<RedisReply> r) {
    if (!r) return cb(r.error());
    cb(r->isNil() ? 0 : std::stoll(r->str));
  });
}

void HubStore::get(const std::string& name, std::function<void(Result<std::string>)> cb) {
  redis_.command({"HGET", kHubsKey, lower(name)}, [name, cb = std::move(cb)](Result<RedisReply> r) {
    if (!r) return cb(r.error());
    if (r->isNil()) return cb(Error::notFound("hub: no hub named '" + name + "'"));
    cb(std::move(r->str));
  });
}

void HubStore::load(std::function<void(Result<Snapshot>)> cb) {
  redis_.transaction({{"GET", kRevisionKey}, {"HGETALL", kHubsKey}},
                     [cb = std::move(cb)](Result<RedisReply> r) {
                       if (!r) return cb(r.error());
                       if (r->elements.size() != 2) {
                         return cb(Error::internal("hubs: unexpected reply"));
                       }
                       Snapshot snapshot;
                       const auto& rev = r->elements[0];
                       snapshot.revision = rev.isNil() ? 0 : std::stoll(rev.str);
                       const auto& fields = r->elements[1].elements;
                       for (size_t i = 0; i + 1 < fields.size(); i += 2) {
                         snapshot.documents[fields[i].str] = fields[i + 1].str;
                       }
                       cb(std::move(snapshot));
                     });
}

}  // namespace pushhub::registry
