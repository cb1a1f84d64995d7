#include "registry/registry.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

#include <chrono>
#include <map>

#include "base/log.h"
#include "registry/record_codec.h"

namespace pushhub::registry {
namespace {

constexpr uint32_t kMaxBuckets = 1u << 16;

// Shared by every script: a varint reader, the record parser (tags, template refs, flags,
// packed channel; see record_codec.h) and unlink(), which drops an installation's tag
// memberships and template references but not its record.
constexpr const char* kLuaPrelude = R"lua(
local function rdvar(s, p)
  local v, m = 0, 1
  while true do
    local b = string.byte(s, p)
    p = p + 1
    if b < 128 then return v + b * m, p end
    v = v + (b - 128) * m
    m = m * 128
  end
end
local function parse(rec)
  local flags = string.byte(rec, 2)
  local p, n, l = 3, 0, 0
  n, p = rdvar(rec, p)
  local tags = {}
  for i = 1, n do
    l, p = rdvar(rec, p)
    tags[i] = string.sub(rec, p, p + l - 1)
    p = p + l
  end
  n, p = rdvar(rec, p)
  local refs = {}
  for i = 1, n do
    l, p = rdvar(rec, p)
    p = p + l
    refs[i] = string.sub(rec, p, p + 7)
    p = p + 8
  end
  l, p = rdvar(rec, p)
  return tags, refs, flags, string.sub(rec, p, p + l - 1)
end
local function unlink(prefix, id, rec, tplkey, rckey, keep)
  local tags, refs = parse(rec)
  for _, t in ipairs(tags) do
    if not (keep and keep[t]) then redis.call('SREM', prefix .. 't:' .. t, id) end
  end
  for _, r in ipairs(refs) do
    if redis.call('HINCRBY', rckey, r, -1) <= 0 then
      redis.call('HDEL', rckey, r)
      redis.call('HDEL', tplkey, r)
    end
  end
end
)lua";

// KEYS: i, tpl, tplrc. ARGV: prefix, id, record, n, n x (ref, template).
// New template refs are taken before the old ones are released, so a template kept across the
// update is never deleted in between.
const Script& upsertScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id, rec = ARGV[1], ARGV[2], ARGV[3]
local tags, refs = parse(rec)
local bodies = {}
for i = 0, tonumber(ARGV[4]) - 1 do bodies[ARGV[5 + 2 * i]] = ARGV[6 + 2 * i] end
for _, r in ipairs(refs) do
  redis.call('HINCRBY', KEYS[3], r, 1)
  redis.call('HSETNX', KEYS[2], r, bodies[r])
end
local keep = {}
for _, t in ipairs(tags) do keep[t] = true end
local old = redis.call('HGET', KEYS[1], id)
if old then unlink(prefix, id, old, KEYS[2], KEYS[3], keep) end
for _, t in ipairs(tags) do redis.call('SADD', prefix .. 't:' .. t, id) end
redis.call('HSET', KEYS[1], id, rec)
if old then return 1 end
return 0
)lua");
  return s;
}

// KEYS: i, tpl, tplrc. ARGV: prefix, id [, packing flags, packed channel].
// With a channel, removes only while the stored channel is still that one.
const Script& removeScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[1], id)
if not old then return 0 end
if ARGV[4] then
  local _, _, flags, chan = parse(old)
  if (flags % 32) - (flags % 8) ~= tonumber(ARGV[3]) or chan ~= ARGV[4] then return 0 end
end
unlink(prefix, id, old, KEYS[2], KEYS[3], nil)
redis.call('HDEL', KEYS[1], id)
return 1
)lua");
  return s;
}

// KEYS: i, tpl [, tag set]. ARGV: mode ('a' all, 't' tag, 'i' one id) [, id].
// Returns {{id, record, ...}, {ref, template, ...}} with each referenced template once.
const Script& resolveScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local mode = ARGV[1]
local recs = {}
if mode == 'i' then
  local r = redis.call('HGET', KEYS[1], ARGV[2])
  if r then recs = {ARGV[2], r} end
elseif mode == 'a' then
  recs = redis.call('HGETALL', KEYS[1])
else
  local ids = redis.call('SMEMBERS', KEYS[3])
  for i = 1, #ids, 1000 do
    local last = math.min(i + 999, #ids)
    local vals = redis.call('HMGET', KEYS[1], unpack(ids, i, last))
    for j = i, last do
      local v = vals[j - i + 1]
      if v then
        recs[#recs + 1] = ids[j]
        recs[#recs + 1] = v
      end
    end
  end
end
local seen, refs = {}, {}
for i = 2, #recs, 2 do
  local _, rr = parse(recs[i])
  for _, r in ipairs(rr) do
    if not seen[r] then
      seen[r] = true
      refs[#refs + 1] = r
    end
  end
end
local tpls = {}
for i = 1, #refs, 1000 do
  local last = math.min(i + 999, #refs)
  local vals = redis.call('HMGET', KEYS[2], unpack(refs, i, last))
  for j = i, last do
    local v = vals[j - i + 1]
    if v then
      tpls[#tpls + 1] = refs[j]
      tpls[#tpls + 1] = v
    end
  end
end
return {recs, tpls}
)lua");
  return s;
}

Result<void> validateHub(const Hub& hub) {
  if (auto r = validateHubName(hub.name); !r) {
    return r;
  }
  if (hub.buckets == 0 || hub.buckets > kMaxBuckets || (hub.buckets & (hub.buckets - 1)) != 0) {
    return Error::invalidArgument(
        fmt::format("hub.buckets: must be a power of two between 1 and {}", kMaxBuckets));
  }
  return {};
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct BucketKeys {
  std::string prefix;
  std::string records() const { return prefix + "i"; }
  std::string templates() const { return prefix + "tpl"; }
  std::string refcounts() const { return prefix + "tplrc"; }
  std::string tag(std::string_view t) const { return prefix + "t:" + std::string(t); }
};

// One decoded resolve/get reply: records with their templates shared by ref.
struct Decoded {
  std::string id;
  codec::DecodedRecord record;
};

Result<std::pair<std::vector<Decoded>,
                 std::map<std::string, std::shared_ptr<const InstallationTemplate>>>>
decodeResolveReply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2) {
    return Error::internal("registry: unexpected reply shape from the resolve script");
  }
  const auto& recs = reply.elements[0].elements;
  const auto& tpls = reply.elements[1].elements;
  std::map<std::string, std::shared_ptr<const InstallationTemplate>> templates;
  for (size_t i = 0; i + 1 < tpls.size(); i += 2) {
    auto t = codec::decodeTemplate(tpls[i + 1].str);
    if (!t) {
      return t.error();
    }
    templates.emplace(tpls[i].str, std::make_shared<const InstallationTemplate>(std::move(*t)));
  }
  std::vector<Decoded> out;
  out.reserve(recs.size() / 2);
  for (size_t i = 0; i + 1 < recs.size(); i += 2) {
    auto rec = codec::decodeRecord(recs[i + 1].str);
    if (!rec) {
      log::get("registry")->error("installation record of {} is corrupt; skipped", recs[i].str);
      continue;
    }
    out.push_back(Decoded{recs[i].str, std::move(*rec)});
  }
  return std::make_pair(std::move(out), std::move(templates));
}

}  // namespace

Registry::Registry(RedisClient& redis) : redis_(redis) {}

uint32_t Registry::bucketOf(std::string_view installation_id, uint32_t buckets) {
  uint32_t h = 2166136261u;
  for (char c : installation_id) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h & (buckets - 1);
}

std::string Registry::bucketPrefix(const Hub& hub, uint32_t bucket) {
  return fmt::format("ph:{{{}:{}}}:", hub.name, bucket);
}

void Registry::upsert(const Hub& hub, const Installation& installation,
                      std::function<void(Result<void>)> cb) {
  auto fail = [&](const Error& e) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e] { cb(e); });
  };
  if (auto r = validateHub(hub); !r) {
    return fail(r.error());
  }
  if (auto r = validateInstallation(installation); !r) {
    return fail(r.error());
  }
  std::vector<codec::TemplateRef> refs;
  std::map<std::string, std::string> bodies;  // ref -> encoded template, each once
  for (const auto& [name, t] : installation.templates) {
    std::string encoded = codec::encodeTemplate(t);
    std::string ref = codec::templateRef(encoded);
    refs.push_back({name, ref});
    bodies.emplace(std::move(ref), std::move(encoded));
  }
  std::string record;
  if (installation.last_update_ms == 0) {
    Installation stamped = installation;
    stamped.last_update_ms = nowMs();
    record = codec::encodeRecord(stamped, refs);
  } else {
    record = codec::encodeRecord(installation, refs);
  }
  BucketKeys keys{bucketPrefix(hub, bucketOf(installation.id, hub.buckets))};
  std::vector<std::string> args{keys.prefix, installation.id, std::move(record),
                                std::to_string(bodies.size())};
  for (auto& [ref, body] : bodies) {
    args.push_back(ref);
    args.push_back(std::move(body));
  }
  redis_.evalScript(upsertScript(), {keys.records(), keys.templates(), keys.refcounts()},
                    std::move(args), [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(Result<void>());
                    });
}

void Registry::get(const Hub& hub, const std::string& id,
                   std::function<void(Result<std::optional<Installation>>)> cb) {
  auto fail = [&](const Error& e) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e] { cb(e); });
  };
  if (auto r = validateHub(hub); !r) {
    return fail(r.error());
  }
  if (auto r = validateInstallationId(id); !r) {
    return fail(r.error());
  }
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(resolveScript(), {keys.records(), keys.templates()}, {"i", id},
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      auto decoded = decodeResolveReply(*r);
                      if (!decoded) {
                        return cb(decoded.error());
                      }
                      auto& [records, templates] = *decoded;
                      if (records.empty()) {
                        return cb(std::optional<Installation>());
                      }
                      Installation in = std::move(records.front().record.installation);
                      in.id = std::move(records.front().id);
                      for (const auto& ref : records.front().record.templates) {
                        auto it = templates.find(ref.ref);
                        if (it == templates.end()) {
                          return cb(Error::internal("registry: template " + ref.name + " of " +
                                                    in.id + " is missing"));
                        }
                        in.templates[ref.name] = *it->second;
                      }
                      cb(std::optional<Installation>(std::move(in)));
                    });
}

void Registry::remove(const Hub& hub, const std::string& id, std::function<void(Result<bool>)> cb) {
  auto fail = [&](const Error& e) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e] { cb(e); });
  };
  if (auto r = validateHub(hub); !r) {
    return fail(r.error());
  }
  if (auto r = validateInstallationId(id); !r) {
    return fail(r.error());
  }
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(removeScript(), {keys.records(), keys.templates(), keys.refcounts()},
                    {keys.prefix, id}, [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(r->integer == 1);
                    });
}

void Registry::dropChannel(const Hub& hub, const std::string& id, const std::string& channel,
                           std::function<void(Result<bool>)> cb) {
  auto fail = [&](const Error& e) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e] { cb(e); });
  };
  if (auto r = validateHub(hub); !r) {
    return fail(r.error());
  }
  if (auto r = validateInstallationId(id); !r) {
    return fail(r.error());
  }
  auto [packing, packed] = codec::packChannel(channel);
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(removeScript(), {keys.records(), keys.templates(), keys.refcounts()},
                    {keys.prefix, id, std::to_string(packing), std::move(packed)},
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(r->integer == 1);
                    });
}

void Registry::resolve(const Hub& hub, uint32_t bucket, const Selector& selector,
                       std::function<void(Result<std::vector<ResolvedTarget>>)> cb) {
  auto post = [&](Result<std::vector<ResolvedTarget>> r) {
    boost::asio::post(redis_.ioContext(),
                      [cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  };
  if (auto r = validateHub(hub); !r) {
    return post(r.error());
  }
  if (bucket >= hub.buckets) {
    return post(Error::invalidArgument(
        fmt::format("bucket: {} is not below the hub's {} buckets", bucket, hub.buckets)));
  }
  BucketKeys keys{bucketPrefix(hub, bucket)};
  std::vector<std::string> redis_keys{keys.records(), keys.templates()};
  std::vector<std::string> args;
  switch (selector.kind) {
    case Selector::Kind::kAll:
      args = {"a"};
      break;
    case Selector::Kind::kTag:
      if (auto r = validateTag(selector.value, "selector.tag"); !r) {
        return post(r.error());
      }
      redis_keys.push_back(keys.tag(selector.value));
      args = {"t"};
      break;
    case Selector::Kind::kInstallation:
      if (auto r = validateInstallationId(selector.value, "selector.installationId"); !r) {
        return post(r.error());
      }
      if (bucketOf(selector.value, hub.buckets) != bucket) {
        return post(std::vector<ResolvedTarget>());
      }
      args = {"i", selector.value};
      break;
  }
  redis_.evalScript(
      resolveScript(), std::move(redis_keys), std::move(args),
      [cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) {
          return cb(r.error());
        }
        auto decoded = decodeResolveReply(*r);
        if (!decoded) {
          return cb(decoded.error());
        }
        auto& [records, templates] = *decoded;
        int64_t now_s = nowMs() / 1000;
        std::vector<ResolvedTarget> targets;
        targets.reserve(records.size());
        for (auto& d : records) {
          Installation& in = d.record.installation;
          if (in.push_channel_expired || (in.expiration_unix != 0 && in.expiration_unix <= now_s)) {
            continue;
          }
          ResolvedTarget t;
          t.installation_id = std::move(d.id);
          t.platform = in.platform;
          t.push_channel = std::move(in.push_channel);
          for (const auto& ref : d.record.templates) {
            auto it = templates.find(ref.ref);
            if (it != templates.end()) {
              t.templates.emplace_back(ref.name, it->second);
            } else {
              log::get("registry")
                  ->error("template {} of {} is missing; skipped", ref.name, t.installation_id);
            }
          }
          targets.push_back(std::move(t));
        }
        cb(std::move(targets));
      });
}

}  // namespace pushhub::registry
