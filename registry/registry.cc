#include "registry/registry.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

#include <charconv>
#include <chrono>
#include <map>
#include <optional>

#include "base/log.h"
#include "registry/record_codec.h"

namespace pushhub::registry {
namespace {

constexpr uint32_t kMaxBuckets = 1u << 16;

// Shared by every script. Bucket layout (registry.h): x = id -> slot, r/r1/r2... = slot -> record
// cut into PART-byte parts, t = tag -> packed slots or '' when promoted to the set t:<tag>,
// f = free slots (zset, score = slot). Slots are small integers, the lowest free one is reused,
// so every member and field stays an integer Redis stores in a byte or two.
//   rdvar/parse   the record reader (record_codec.h): tags, template refs, flags, packed channel
//   getrec/putrec/delrec   a record's parts (a part shorter than PART is the last one)
//   tagadd/tagdel  tag membership: up to MAXPACK bytes of 3-byte big-endian slots in the t hash,
//                  beyond that a set of slots (no demotion; the set goes when it empties)
//   alloc/release  slots; the allocated slots are always 0 .. HLEN(x) + ZCARD(f) - 1
//   unlink        drops a record's tag memberships (except `keep`) and its template references
constexpr const char* kLuaPrelude = R"lua(
local PART, MAXPACK, MAXSLOT = 64, 60, 16777215
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
  local flags = string.byte(rec, 1)
  local p, n, l = 2, 0, 0
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
local function partkey(prefix, k)
  if k == 0 then return prefix .. 'r' end
  return prefix .. 'r' .. k
end
local function getrec(prefix, slot)
  local rec = redis.call('HGET', prefix .. 'r', slot)
  if not rec then return nil end
  local k, last = 1, rec
  while #last == PART do
    last = redis.call('HGET', prefix .. 'r' .. k, slot)
    if not last then break end
    rec = rec .. last
    k = k + 1
  end
  return rec
end
local function putrec(prefix, slot, rec, oldlen)
  local n = math.ceil(#rec / PART)
  for k = 0, n - 1 do
    redis.call('HSET', partkey(prefix, k), slot, string.sub(rec, k * PART + 1, (k + 1) * PART))
  end
  for k = n, math.ceil(oldlen / PART) - 1 do redis.call('HDEL', partkey(prefix, k), slot) end
end
local function delrec(prefix, slot, oldlen)
  for k = 0, math.max(1, math.ceil(oldlen / PART)) - 1 do
    redis.call('HDEL', partkey(prefix, k), slot)
  end
end
local function enc(slot)
  return string.char(math.floor(slot / 65536) % 256, math.floor(slot / 256) % 256, slot % 256)
end
local function dec(v, i)
  local a, b, c = string.byte(v, i, i + 2)
  return a * 65536 + b * 256 + c
end
local function tagadd(prefix, tag, slot)
  local tk = prefix .. 't'
  local v = redis.call('HGET', tk, tag)
  if v == '' then
    redis.call('SADD', tk .. ':' .. tag, slot)
  elseif v and #v + 3 > MAXPACK then
    local members = {slot}
    for i = 1, #v, 3 do members[#members + 1] = dec(v, i) end
    redis.call('SADD', tk .. ':' .. tag, unpack(members))
    redis.call('HSET', tk, tag, '')
  else
    redis.call('HSET', tk, tag, (v or '') .. enc(slot))
  end
end
local function tagdel(prefix, tag, slot)
  local tk = prefix .. 't'
  local v = redis.call('HGET', tk, tag)
  if v == '' then
    if redis.call('SREM', tk .. ':' .. tag, slot) == 1 and
       redis.call('SCARD', tk .. ':' .. tag) == 0 then
      redis.call('HDEL', tk, tag)
    end
  elseif v then
    local e = enc(slot)
    for i = 1, #v, 3 do
      if string.sub(v, i, i + 2) == e then
        v = string.sub(v, 1, i - 1) .. string.sub(v, i + 3)
        if v == '' then
          redis.call('HDEL', tk, tag)
        else
          redis.call('HSET', tk, tag, v)
        end
        return
      end
    end
  end
end
local function alloc(prefix)
  local low = redis.call('ZPOPMIN', prefix .. 'f')
  if low[1] then return tonumber(low[1]) end
  return redis.call('HLEN', prefix .. 'x')
end
-- After the id left x: slot goes to the free list, or, when it was the highest allocated slot,
-- the allocation shrinks past it and past any free slots right below it.
local function release(prefix, slot)
  local fk = prefix .. 'f'
  local n = redis.call('HLEN', prefix .. 'x') + redis.call('ZCARD', fk)
  if slot < n then
    redis.call('ZADD', fk, slot, slot)
    return
  end
  while n > 0 do
    local top = redis.call('ZRANGE', fk, -1, -1)
    if not top[1] or tonumber(top[1]) ~= n - 1 then return end
    redis.call('ZREM', fk, top[1])
    n = n - 1
  end
end
local function unlink(prefix, slot, rec, tplkey, rckey, keep)
  local tags, refs = parse(rec)
  local had = {}
  for _, t in ipairs(tags) do
    had[t] = true
    if not (keep and keep[t]) then tagdel(prefix, t, slot) end
  end
  for _, r in ipairs(refs) do
    if redis.call('HINCRBY', rckey, r, -1) <= 0 then
      redis.call('HDEL', rckey, r)
      redis.call('HDEL', tplkey, r)
    end
  end
  return had
end
)lua";

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, id, record, n, n x (ref, template).
// New template refs are taken before the old ones are released, so a template kept across the
// update is never deleted in between. Tags the old record already had are not added again (a
// packed tag list, unlike a set, would hold the slot twice).
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
local slot = redis.call('HGET', KEYS[1], id)
local existed, oldlen, had = 0, 0, {}
if slot then
  existed = 1
  slot = tonumber(slot)
  local old = getrec(prefix, slot)
  if old then
    oldlen = #old
    had = unlink(prefix, slot, old, KEYS[2], KEYS[3], keep)
  end
else
  slot = alloc(prefix)
  if slot > MAXSLOT then
    return redis.error_reply('registry: bucket holds too many installations')
  end
  redis.call('HSET', KEYS[1], id, slot)
end
for _, t in ipairs(tags) do
  if not had[t] then tagadd(prefix, t, slot) end
end
putrec(prefix, slot, rec, oldlen)
return existed
)lua");
  return s;
}

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, id [, packing flags, packed channel].
// With a channel, removes only while the stored channel is still that one.
const Script& removeScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id = ARGV[1], ARGV[2]
local slot = redis.call('HGET', KEYS[1], id)
if not slot then return 0 end
slot = tonumber(slot)
local old = getrec(prefix, slot)
if old then
  if ARGV[4] then
    local _, _, flags, chan = parse(old)
    if (flags % 32) - (flags % 8) ~= tonumber(ARGV[3]) or chan ~= ARGV[4] then return 0 end
  end
  unlink(prefix, slot, old, KEYS[2], KEYS[3], nil)
  delrec(prefix, slot, #old)
end
redis.call('HDEL', KEYS[1], id)
release(prefix, slot)
return 1
)lua");
  return s;
}

// KEYS: x, tpl, r, t. ARGV: prefix, mode ('a' all, 't' tag, 'i' one id) [, tag or id].
// Returns {{record, ...}, {ref, template, ...}} with each referenced template once; records
// carry their installation id.
const Script& resolveScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, mode = ARGV[1], ARGV[2]
local recs = {}
-- Appends the parts after the first to the records at recs[at[j]] of slots more[j].
local function rest(more, at)
  local k = 1
  while #more > 0 do
    local parts = {}
    for i = 1, #more, 1000 do
      local vals = redis.call('HMGET', prefix .. 'r' .. k, unpack(more, i, math.min(i + 999, #more)))
      for j = 1, #vals do parts[i + j - 1] = vals[j] end
    end
    local m2, a2 = {}, {}
    for j = 1, #more do
      local v = parts[j]
      if v then
        recs[at[j]] = recs[at[j]] .. v
        if #v == PART then
          m2[#m2 + 1] = more[j]
          a2[#a2 + 1] = at[j]
        end
      end
    end
    more, at, k = m2, a2, k + 1
  end
end
local function fetch(slots)
  local more, at = {}, {}
  for i = 1, #slots, 1000 do
    local last = math.min(i + 999, #slots)
    local vals = redis.call('HMGET', KEYS[3], unpack(slots, i, last))
    for j = i, last do
      local v = vals[j - i + 1]
      if v then
        recs[#recs + 1] = v
        if #v == PART then
          more[#more + 1] = slots[j]
          at[#at + 1] = #recs
        end
      end
    end
  end
  rest(more, at)
end
if mode == 'i' then
  local s = redis.call('HGET', KEYS[1], ARGV[3])
  if s then fetch({s}) end
elseif mode == 'a' then
  local all = redis.call('HGETALL', KEYS[3])
  local more, at = {}, {}
  for i = 2, #all, 2 do
    recs[#recs + 1] = all[i]
    if #all[i] == PART then
      more[#more + 1] = all[i - 1]
      at[#at + 1] = #recs
    end
  end
  rest(more, at)
else
  local v = redis.call('HGET', KEYS[4], ARGV[3])
  if v == '' then
    fetch(redis.call('SMEMBERS', KEYS[4] .. ':' .. ARGV[3]))
  elseif v then
    local slots = {}
    for i = 1, #v, 3 do slots[#slots + 1] = dec(v, i) end
    fetch(slots)
  end
end
local seen, refs = {}, {}
for i = 1, #recs do
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
  std::string index() const { return prefix + "x"; }
  std::string records() const { return prefix + "r"; }  // part 0; parts 1.. are r1, r2, ...
  std::string tags() const { return prefix + "t"; }
  std::string freeSlots() const { return prefix + "f"; }
  std::string templates() const { return prefix + "tpl"; }
  std::string refcounts() const { return prefix + "tplrc"; }
  // The keys every write script declares (it derives r1.., t:<tag> from the prefix).
  std::vector<std::string> writeKeys() const {
    return {index(), templates(), refcounts(), records(), tags(), freeSlots()};
  }
  std::vector<std::string> readKeys() const { return {index(), templates(), records(), tags()}; }
};

// One decoded get reply: records (carrying their ids) with their templates shared by ref.
using Decoded = codec::DecodedRecord;
using TemplatesByRef =
    std::map<std::string, std::shared_ptr<const InstallationTemplate>, std::less<>>;
// Records and the templates they name, as a get reads them.
using ScriptReply = std::pair<std::vector<Decoded>, TemplatesByRef>;

// `tpls` alternates template ref and encoded template (the script's reply and HGETALL alike).
Result<TemplatesByRef> decodeTemplates(const std::vector<RedisReply>& tpls) {
  TemplatesByRef templates;
  for (size_t i = 0; i + 1 < tpls.size(); i += 2) {
    auto t = codec::decodeTemplate(tpls[i + 1].str);
    if (!t) {
      return t.error();
    }
    templates.emplace(tpls[i].str, std::make_shared<const InstallationTemplate>(std::move(*t)));
  }
  return templates;
}

void logCorrupt(std::string_view record) {
  log::get("registry")
      ->error("an installation record ({} bytes) is corrupt; skipped", record.size());
}

// The resolve script's reply ({records}, {ref, template, ...}): the records, as views into it.
Result<std::vector<std::string_view>> scriptRecords(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2) {
    return Error::internal("registry: unexpected reply shape from the resolve script");
  }
  std::vector<std::string_view> records;
  records.reserve(reply.elements[0].elements.size());
  for (const auto& r : reply.elements[0].elements) {
    records.emplace_back(r.str);
  }
  return records;
}

Result<ScriptReply> decodeScriptReply(const RedisReply& reply) {
  auto records = scriptRecords(reply);
  if (!records) {
    return records.error();
  }
  auto templates = decodeTemplates(reply.elements[1].elements);
  if (!templates) {
    return templates.error();
  }
  std::vector<Decoded> out;
  out.reserve(records->size());
  for (std::string_view r : *records) {
    auto rec = codec::decodeRecord(r);
    if (!rec) {
      logCorrupt(r);
      continue;
    }
    out.push_back(std::move(*rec));
  }
  return std::make_pair(std::move(out), std::move(*templates));
}

// Live installations among `records` as targets (expired ones and dead channels left out), of
// each only what a send needs: records are viewed in place, not decoded into Installations
// (tags and user ids were ~40% of a broadcast's decoding; docs/PERFORMANCE.md).
Result<std::vector<ResolvedTarget>> toTargets(const std::vector<std::string_view>& records,
                                              const std::vector<RedisReply>& tpls) {
  auto templates = decodeTemplates(tpls);
  if (!templates) {
    return templates.error();
  }
  int64_t now_s = nowMs() / 1000;
  std::vector<ResolvedTarget> targets;
  targets.reserve(records.size());
  codec::RecordView view;
  for (std::string_view r : records) {
    if (!codec::viewRecord(r, view)) {
      logCorrupt(r);
      continue;
    }
    if (view.push_channel_expired || (view.expiration_unix != 0 && view.expiration_unix <= now_s)) {
      continue;
    }
    ResolvedTarget& t = targets.emplace_back();
    t.installation_id = view.id;
    t.platform = view.platform;
    t.push_channel = view.pushChannel();
    t.templates.reserve(view.template_count);
    for (size_t i = 0; i < view.template_count; ++i) {
      const auto& ref = view.templates[i];
      auto it = templates->find(ref.ref);
      if (it != templates->end()) {
        t.templates.emplace_back(std::string(ref.name), it->second);
      } else {
        log::get("registry")
            ->error("template {} of {} is missing; skipped", ref.name, t.installation_id);
      }
    }
  }
  return targets;
}

// A broadcast reads a bucket with plain HGETALLs in one MULTI instead of the resolve script: for
// the same records the script cost Redis ~8x the CPU (Lua tables and string concatenation per
// record; docs/PERFORMANCE.md). It fetches this many parts; a bucket holding a longer record
// (more than 256 bytes: long WNS channel URIs, many tags) goes through the script instead.
constexpr size_t kBroadcastParts = 4;
constexpr size_t kRecordPart = 64;  // PART in the scripts

// Joins the parts of the broadcast transaction's reply (EXISTS r4, HGETALL r, r1 .. r3, tpl:
// slot -> part) into whole records, in r's order. nullopt when some record continues past the
// parts fetched (r4 exists) or the reply is not what the transaction asks for.
std::optional<std::vector<std::string>> joinParts(std::vector<RedisReply>& replies) {
  if (replies.size() != kBroadcastParts + 2 || replies[0].integer != 0) {
    return std::nullopt;
  }
  replies.erase(replies.begin());
  for (const auto& r : replies) {
    if (r.type != RedisReply::Type::kArray || r.elements.size() % 2 != 0) {
      return std::nullopt;
    }
  }
  auto& firsts = replies[0].elements;
  size_t count = firsts.size() / 2;
  // Slots are small and dense (the lowest free one is reused), so a vector indexes them.
  constexpr uint32_t kNoRecord = UINT32_MAX;
  std::vector<uint32_t> record_of_slot;
  std::vector<std::string> records;
  records.reserve(count);
  for (size_t i = 0; i < firsts.size(); i += 2) {
    uint32_t slot = 0;
    const std::string& field = firsts[i].str;
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), slot);
    if (ec != std::errc() || end != field.data() + field.size() || slot > 4 * count + 4096) {
      return std::nullopt;
    }
    if (slot >= record_of_slot.size()) {
      record_of_slot.resize(slot + 1, kNoRecord);
    }
    record_of_slot[slot] = static_cast<uint32_t>(records.size());
    records.push_back(std::move(firsts[i + 1].str));
  }
  for (size_t k = 1; k < kBroadcastParts; ++k) {
    auto& parts = replies[k].elements;
    for (size_t i = 0; i < parts.size(); i += 2) {
      uint32_t slot = 0;
      const std::string& field = parts[i].str;
      auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), slot);
      if (ec != std::errc() || slot >= record_of_slot.size() || record_of_slot[slot] == kNoRecord) {
        continue;  // no record has this slot (the scripts never leave such a part)
      }
      std::string& record = records[record_of_slot[slot]];
      if (record.size() == k * kRecordPart) {  // part k - 1 was full, so this one continues it
        record += parts[i + 1].str;
      }
    }
  }
  return records;
}

// Checks the hub and, when given, an installation id. On failure posts the error to `cb` (never
// calling it inline, as the Registry's callbacks never are) and returns false.
template <typename T>
bool checkOrPost(boost::asio::io_context& io, const Hub& hub, const std::string* id,
                 std::function<void(Result<T>)>& cb) {
  Result<void> ok = validateHub(hub);
  if (ok && id != nullptr) {
    ok = validateInstallationId(*id);
  }
  if (!ok) {
    boost::asio::post(io, [cb = std::move(cb), e = ok.error()] { cb(e); });
  }
  return static_cast<bool>(ok);
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
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  if (auto r = validateInstallation(installation); !r) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e = r.error()] { cb(e); });
    return;
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
  redis_.evalScript(upsertScript(), keys.writeKeys(), std::move(args),
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(Result<void>());
                    });
}

void Registry::get(const Hub& hub, const std::string& id,
                   std::function<void(Result<std::optional<Installation>>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, &id, cb)) {
    return;
  }
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(resolveScript(), keys.readKeys(), {keys.prefix, "i", id},
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      auto decoded = decodeScriptReply(*r);
                      if (!decoded) {
                        return cb(decoded.error());
                      }
                      auto& [records, templates] = *decoded;
                      if (records.empty()) {
                        return cb(std::optional<Installation>());
                      }
                      Installation in = std::move(records.front().installation);
                      for (const auto& ref : records.front().templates) {
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
  if (checkOrPost(redis_.ioContext(), hub, &id, cb)) {
    removeWith(hub, id, {}, std::move(cb));
  }
}

void Registry::dropChannel(const Hub& hub, const std::string& id, const std::string& channel,
                           std::function<void(Result<bool>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, &id, cb)) {
    return;
  }
  auto [packing, packed] = codec::packChannel(channel);
  removeWith(hub, id, {std::to_string(packing), std::move(packed)}, std::move(cb));
}

void Registry::removeWith(const Hub& hub, const std::string& id, std::vector<std::string> condition,
                          std::function<void(Result<bool>)> cb) {
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  std::vector<std::string> args{keys.prefix, id};
  for (auto& c : condition) {
    args.push_back(std::move(c));
  }
  redis_.evalScript(removeScript(), keys.writeKeys(), std::move(args),
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
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  if (bucket >= hub.buckets) {
    return post(Error::invalidArgument(
        fmt::format("bucket: {} is not below the hub's {} buckets", bucket, hub.buckets)));
  }
  std::string prefix = bucketPrefix(hub, bucket);
  switch (selector.kind) {
    case Selector::Kind::kAll:
      return resolveEveryone(hub, bucket, std::move(cb));
    case Selector::Kind::kTag:
      if (auto r = validateTag(selector.value, "selector.tag"); !r) {
        return post(r.error());
      }
      return resolveByScript(hub, bucket, {std::move(prefix), "t", selector.value}, std::move(cb));
    case Selector::Kind::kInstallation:
      if (auto r = validateInstallationId(selector.value, "selector.installationId"); !r) {
        return post(r.error());
      }
      if (bucketOf(selector.value, hub.buckets) != bucket) {
        return post(std::vector<ResolvedTarget>());
      }
      return resolveByScript(hub, bucket, {std::move(prefix), "i", selector.value}, std::move(cb));
  }
}

void Registry::resolveByScript(const Hub& hub, uint32_t bucket, std::vector<std::string> args,
                               std::function<void(Result<std::vector<ResolvedTarget>>)> cb) {
  BucketKeys keys{bucketPrefix(hub, bucket)};
  redis_.evalScript(resolveScript(), keys.readKeys(), std::move(args),
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      auto records = scriptRecords(*r);
                      if (!records) {
                        return cb(records.error());
                      }
                      cb(toTargets(*records, r->elements[1].elements));
                    });
}

void Registry::resolveEveryone(const Hub& hub, uint32_t bucket,
                               std::function<void(Result<std::vector<ResolvedTarget>>)> cb) {
  BucketKeys keys{bucketPrefix(hub, bucket)};
  std::vector<std::vector<std::string>> commands;
  commands.reserve(kBroadcastParts + 2);
  commands.push_back({"EXISTS", keys.records() + std::to_string(kBroadcastParts)});
  for (size_t k = 0; k < kBroadcastParts; ++k) {
    commands.push_back({"HGETALL", k == 0 ? keys.records() : keys.records() + std::to_string(k)});
  }
  commands.push_back({"HGETALL", keys.templates()});
  redis_.transaction(std::move(commands), [this, hub, bucket, keys,
                                           cb = std::move(cb)](Result<RedisReply> r) mutable {
    if (!r) {
      return cb(r.error());
    }
    auto records = r->type == RedisReply::Type::kArray ? joinParts(r->elements) : std::nullopt;
    if (!records) {
      return resolveByScript(hub, bucket, {keys.prefix, "a"}, std::move(cb));
    }
    cb(toTargets(std::vector<std::string_view>(records->begin(), records->end()),
                 r->elements.back().elements));
  });
}

}  // namespace pushhub::registry
