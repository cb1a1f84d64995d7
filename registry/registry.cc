#include "registry/registry.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

#include <algorithm>
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
//   rdvar/parse   the record reader (record_codec.h): tags, template refs, flags, packed channel,
//                 template names, user id
//   members       what a record is listed under in t: tags, '+' template tags and names, $UserId
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
  local refs, names = {}, {}
  for i = 1, n do
    l, p = rdvar(rec, p)
    names[i] = string.sub(rec, p, p + l - 1)
    p = p + l
    refs[i] = string.sub(rec, p, p + 7)
    p = p + 8
  end
  l, p = rdvar(rec, p)
  local chan = string.sub(rec, p, p + l - 1)
  p = p + l
  l, p = rdvar(rec, p)
  local id = string.sub(rec, p, p + l - 1)
  p = p + l
  l, p = rdvar(rec, p)
  return tags, refs, flags, chan, names, string.sub(rec, p, p + l - 1), p + l, id
end
-- The record's expiration (unix s, 0 = never) and last update (unix ms), which follow the user
-- id at `p` (parse's seventh result).
local function times(rec, p)
  local exp, q = rdvar(rec, p)
  return exp, (rdvar(rec, q))
end
local function wrvar(v)
  local out = {}
  while v >= 128 do
    out[#out + 1] = string.char(v % 128 + 128)
    v = math.floor(v / 128)
  end
  out[#out + 1] = string.char(v)
  return table.concat(out)
end
-- What a record is listed under in the bucket's tag hash: its tags (template tags carry their
-- '+' from the record), '+' .. each template's name, and '$UserId:{user}'. Each once.
local function members(rec)
  local tags, _, _, _, names, user = parse(rec)
  local out, seen = {}, {}
  local function add(m)
    if not seen[m] then
      seen[m] = true
      out[#out + 1] = m
    end
  end
  for _, t in ipairs(tags) do add(t) end
  for _, n in ipairs(names) do add('+' .. n) end
  if user ~= '' then add('$UserId:{' .. user .. '}') end
  return out
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
-- Adds `slot` to each tag of `list` (tags it is not in yet): one HMGET and one HSET for the
-- packed lists, whatever the number of tags (each call from a script costs Redis about as much
-- as the work it does here).
local function tagadd(prefix, list, slot)
  if #list == 0 then return end
  local tk = prefix .. 't'
  local packed = redis.call('HMGET', tk, unpack(list))
  local writes = {}
  for i, tag in ipairs(list) do
    local v = packed[i]
    if v == '' then
      redis.call('SADD', tk .. ':' .. tag, slot)
    elseif v and #v + 3 > MAXPACK then
      local members = {slot}
      for j = 1, #v, 3 do members[#members + 1] = dec(v, j) end
      redis.call('SADD', tk .. ':' .. tag, unpack(members))
      writes[#writes + 1] = tag
      writes[#writes + 1] = ''
    else
      writes[#writes + 1] = tag
      writes[#writes + 1] = (v or '') .. enc(slot)
    end
  end
  if #writes > 0 then redis.call('HSET', tk, unpack(writes)) end
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
  local _, refs = parse(rec)
  local had = {}
  for _, t in ipairs(members(rec)) do
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
-- Removes the installation `id` at `slot` whose record is `rec`, as if it was never there.
local function erase(prefix, keys, id, slot, rec)
  unlink(prefix, slot, rec, keys[2], keys[3], nil)
  delrec(prefix, slot, #rec)
  redis.call('HDEL', keys[1], id)
  redis.call('ZREM', prefix .. 'e', slot)
  redis.call('ZREM', prefix .. 'd', slot)
  release(prefix, slot)
end
-- Keeps the sweep's sets in step with the record at `slot`: e scores it by its expiration, d by
-- when its channel was marked dead (its last update then), so a sweep reads only what is due.
-- `old`: the record it replaces (nil for a new slot, or when its expiration is unchanged): a set
-- is only cleared where the old record was in it.
local function schedule(prefix, slot, rec, old)
  local _, _, flags, _, _, _, p = parse(rec)
  local exp, updated = times(rec, p)
  local old_exp, old_dead = 0, false
  if old then
    local _, _, old_flags, _, _, _, op = parse(old)
    old_exp = times(old, op)
    old_dead = old_flags % 8 >= 4
  end
  if exp ~= 0 then
    redis.call('ZADD', prefix .. 'e', exp, slot)
  elseif old_exp ~= 0 then
    redis.call('ZREM', prefix .. 'e', slot)
  end
  if flags % 8 >= 4 then
    redis.call('ZADD', prefix .. 'd', updated, slot)
  elseif old_dead then
    redis.call('ZREM', prefix .. 'd', slot)
  end
end
)lua";

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, id, record, n, n x (ref, template)
// [, expected last update].
// With an expected last update (unix ms), writes only if the installation exists and was last
// written then; otherwise returns -1 and changes nothing (Registry::update retries).
// New template refs are taken before the old ones are released, so a template kept across the
// update is never deleted in between. Tags the old record already had are not added again (a
// packed tag list, unlike a set, would hold the slot twice).
const Script& upsertScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id, rec = ARGV[1], ARGV[2], ARGV[3]
local expected = ARGV[5 + 2 * tonumber(ARGV[4])]
if expected then
  local at = redis.call('HGET', KEYS[1], id)
  local current = at and getrec(prefix, tonumber(at))
  if not current then return -1 end
  local _, _, _, _, _, _, p = parse(current)
  local _, updated = times(current, p)
  if updated ~= tonumber(expected) then return -1 end
end
local _, refs = parse(rec)
local tags = members(rec)
local bodies = {}
for i = 0, tonumber(ARGV[4]) - 1 do bodies[ARGV[5 + 2 * i]] = ARGV[6 + 2 * i] end
for _, r in ipairs(refs) do
  redis.call('HINCRBY', KEYS[3], r, 1)
  redis.call('HSETNX', KEYS[2], r, bodies[r])
end
local keep = {}
for _, t in ipairs(tags) do keep[t] = true end
local slot = redis.call('HGET', KEYS[1], id)
local existed, oldlen, had, old = 0, 0, {}, nil
if slot then
  existed = 1
  slot = tonumber(slot)
  old = getrec(prefix, slot)
  if old then
    oldlen = #old
    had = unlink(prefix, slot, old, KEYS[2], KEYS[3], keep)
    -- The last update is the token update() compares, so it must move even when two writes
    -- fall in the same millisecond: never at or before the one replaced.
    local _, _, _, _, _, _, op = parse(old)
    local _, before = times(old, op)
    local _, _, _, _, _, _, np = parse(rec)
    local _, q = rdvar(rec, np)
    local stamp, r = rdvar(rec, q)
    if stamp <= before then
      rec = string.sub(rec, 1, q - 1) .. wrvar(before + 1) .. string.sub(rec, r)
    end
  end
else
  slot = alloc(prefix)
  if slot > MAXSLOT then
    return redis.error_reply('registry: bucket holds too many installations')
  end
  redis.call('HSET', KEYS[1], id, slot)
end
local added = {}
for _, t in ipairs(tags) do
  if not had[t] then added[#added + 1] = t end
end
tagadd(prefix, added, slot)
putrec(prefix, slot, rec, oldlen)
schedule(prefix, slot, rec, old)
return existed
)lua");
  return s;
}

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, id.
const Script& removeScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id = ARGV[1], ARGV[2]
local slot = redis.call('HGET', KEYS[1], id)
if not slot then return 0 end
slot = tonumber(slot)
local old = getrec(prefix, slot)
if old then
  erase(prefix, KEYS, id, slot, old)
else
  redis.call('HDEL', KEYS[1], id)
  release(prefix, slot)
end
return 1
)lua");
  return s;
}

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, id, packing flags, packed channel, now (unix ms).
// Marks the channel expired and stamps the last update, only while the stored channel is still
// that one and not marked yet. Its memberships stay: a resolve skips it, and a new channel
// (upsert) clears the mark.
const Script& expireChannelScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, id = ARGV[1], ARGV[2]
local slot = redis.call('HGET', KEYS[1], id)
if not slot then return 0 end
slot = tonumber(slot)
local old = getrec(prefix, slot)
if not old then return 0 end
local _, _, flags, chan, _, _, p = parse(old)
if (flags % 32) - (flags % 8) ~= tonumber(ARGV[3]) or chan ~= ARGV[4] or flags % 8 >= 4 then
  return 0
end
local exp, q = rdvar(old, p)
local _, rest = rdvar(old, q)
-- What follows the last update (a registration's trailer) is kept as is.
local marked = string.char(flags + 4) .. string.sub(old, 2, p - 1) .. wrvar(exp) ..
               wrvar(tonumber(ARGV[5])) .. string.sub(old, rest)
putrec(prefix, slot, marked, #old)
schedule(prefix, slot, marked)
return 1
)lua");
  return s;
}

// KEYS: x, tpl, tplrc, r, t, f. ARGV: prefix, now (unix s), dead before (unix ms), limit.
// Deletes up to `limit` installations of the bucket whose expiration has passed or whose channel
// was marked expired before `dead before`, found through the e and d sets (usually absent, so a
// sweep of a bucket with nothing due reads two empty keys). Returns how many.
const Script& sweepScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, now, dead_before, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local due = redis.call('ZRANGEBYSCORE', prefix .. 'e', '-inf', now, 'LIMIT', 0, limit)
for _, slot in ipairs(redis.call('ZRANGEBYSCORE', prefix .. 'd', '-inf', dead_before,
                                 'LIMIT', 0, limit)) do
  due[#due + 1] = slot
end
local removed, seen = 0, {}
for _, slot in ipairs(due) do
  if not seen[slot] then
    seen[slot] = true
    local rec = getrec(prefix, tonumber(slot))
    if not rec then
      redis.call('ZREM', prefix .. 'e', slot)
      redis.call('ZREM', prefix .. 'd', slot)
    else
      local _, _, flags, _, _, _, p, id = parse(rec)
      local exp, updated = times(rec, p)
      if (exp ~= 0 and exp <= now) or (flags % 8 >= 4 and updated <= dead_before) then
        erase(prefix, KEYS, id, tonumber(slot), rec)
        removed = removed + 1
      end
    end
  end
end
return removed
)lua");
  return s;
}

// KEYS: x, tpl, r, t. ARGV: prefix, mode ('a' all, 't' tag, 'i' one id, 'e' an expression)
// [, tag or id | expression arguments, below].
// Returns {{record, ...}, {ref, template, ...}, {tag index, ...}} with each referenced template
// once; records carry their installation id; the third list names the expression's tags that
// have no member at all in the bucket (the tag index may drop this bucket for them).
const Script& resolveScript() {
  static const Script s(std::string(kLuaPrelude) + R"lua(
local prefix, mode = ARGV[1], ARGV[2]
local recs, absentTags = {}, {}
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
elseif mode == 'e' then
  -- A tag expression in negation normal form (expr::TagExpression::nnf): ARGV[4] is the program,
  -- two bytes a step (op 't' tag, 'n' not tag, '&', '|'; then '0' + tag index), ARGV[5..] the
  -- tags. Sets are Lua tables slot -> true. A tag's set is its own members; in a template send
  -- ('t') also those listed under '+tag' (a template's tag or name), so the bucket returns a
  -- superset that pushhubd narrows per template. A negated tag reads only the installation's
  -- own tags: that keeps the result a superset (see registry.h).
  local templated, prog = ARGV[3] == 't', ARGV[4]
  local function field(name, into)
    local v = redis.call('HGET', KEYS[4], name)
    if v == '' then
      for _, m in ipairs(redis.call('SMEMBERS', KEYS[4] .. ':' .. name)) do into[tonumber(m)] = true end
    elseif v then
      for i = 1, #v, 3 do into[dec(v, i)] = true end
    end
    return v
  end
  -- own[i]: the installations carrying tag i themselves; any[i]: those, and in a template send
  -- those with a template named or tagged i.
  local own, any, absent = {}, {}, {}
  local function load(i)
    if own[i] then return end
    local tag, set, marked = ARGV[5 + i], {}, {}
    if string.sub(tag, 1, 17) == '$InstallationId:{' then
      local slot = redis.call('HGET', KEYS[1], string.sub(tag, 18, -2))
      if slot then set[tonumber(slot)] = true end
      own[i], any[i] = set, set
      return
    end
    local found = field(tag, set)
    local found_marked = field('+' .. tag, marked)
    if not found and not found_marked then absent[#absent + 1] = i end
    own[i], any[i] = set, set
    if templated and found_marked then
      local both = {}
      for slot in pairs(set) do both[slot] = true end
      for slot in pairs(marked) do both[slot] = true end
      any[i] = both
    end
  end
  local everyone
  local stack = {}
  for k = 1, #prog, 2 do
    local op, i = string.sub(prog, k, k), string.byte(prog, k + 1) - 48
    if op == 't' then
      load(i)
      stack[#stack + 1] = any[i]
    elseif op == 'n' then
      if not everyone then
        everyone = {}
        for _, v in ipairs(redis.call('HVALS', KEYS[1])) do everyone[tonumber(v)] = true end
      end
      load(i)
      local has, set = own[i], {}
      for slot in pairs(everyone) do
        if not has[slot] then set[slot] = true end
      end
      stack[#stack + 1] = set
    else
      local b, a, set = stack[#stack], stack[#stack - 1], {}
      stack[#stack] = nil
      if op == '&' then
        for slot in pairs(a) do
          if b[slot] then set[slot] = true end
        end
      else
        for slot in pairs(a) do set[slot] = true end
        for slot in pairs(b) do set[slot] = true end
      end
      stack[#stack] = set
    end
  end
  local slots = {}
  for slot in pairs(stack[1] or {}) do slots[#slots + 1] = slot end
  table.sort(slots)
  fetch(slots)
  absentTags = absent
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
return {recs, tpls, absentTags}
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
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3) {
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

// Which of `expression`'s tags the installation of `view` carries itself: its own tags and the
// implicit $InstallationId and $UserId ones.
std::vector<bool> ownTags(const expr::TagExpression& expression, const codec::RecordView& view) {
  const auto& tags = expression.tags();
  std::vector<bool> own(tags.size(), false);
  view.forEachTag([&](std::string_view tag) {
    for (size_t i = 0; i < tags.size(); ++i) own[i] = own[i] || tags[i] == tag;
  });
  for (size_t i = 0; i < tags.size(); ++i) {
    own[i] = own[i] || tags[i] == expr::installationIdTag(view.id) ||
             (!view.user_id.empty() && tags[i] == expr::userIdTag(view.user_id));
  }
  return own;
}

// Whether `expression` selects the template `name` of an installation carrying `own`.
bool templateMatches(const expr::TagExpression& expression, const std::vector<bool>& own,
                     std::string_view name, const InstallationTemplate& tpl) {
  const auto& tags = expression.tags();
  return expression.matches([&](size_t i) {
    return own[i] || tags[i] == name ||
           std::find(tpl.tags.begin(), tpl.tags.end(), tags[i]) != tpl.tags.end();
  });
}

// Live installations among `records` as targets (expired ones and dead channels left out), of
// each only what a send needs: records are viewed in place, not decoded into Installations
// (tags and user ids were ~40% of a broadcast's decoding; docs/PERFORMANCE.md). With `exact`
// (a template send to an expression), only the templates the expression selects are kept, and
// installations left with none are dropped.
Result<std::vector<ResolvedTarget>> toTargets(const std::vector<std::string_view>& records,
                                              const std::vector<RedisReply>& tpls,
                                              const Selector* exact = nullptr) {
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
    std::vector<bool> own;
    if (exact != nullptr) own = ownTags(*exact->expression, view);
    ResolvedTarget& t = targets.emplace_back();
    t.installation_id = view.id;
    t.platform = view.platform;
    t.push_channel = view.pushChannel();
    t.template_registration = view.registration && view.template_count > 0;
    t.templates.reserve(view.template_count);
    for (size_t i = 0; i < view.template_count; ++i) {
      const auto& ref = view.templates[i];
      auto it = templates->find(ref.ref);
      if (it == templates->end()) {
        log::get("registry")
            ->error("template {} of {} is missing; skipped", ref.name, t.installation_id);
      } else if (exact == nullptr ||
                 templateMatches(*exact->expression, own, ref.name, *it->second)) {
        t.templates.emplace_back(std::string(ref.name), it->second);
      }
    }
    if (exact != nullptr && t.templates.empty()) targets.pop_back();
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
    ok = validateRecordId(*id);
  }
  if (!ok) {
    boost::asio::post(io, [cb = std::move(cb), e = ok.error()] { cb(e); });
  }
  return static_cast<bool>(ok);
}

// KEYS: the index key. ARGV: bucket, the entry's value when it was read. Deletes the entry
// only if nothing wrote it since.
const Script& pruneScript() {
  static const Script s(R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
)lua");
  return s;
}

int64_t nowSeconds() { return nowMs() / 1000; }

// How long a worker trusts that a tag is indexed as "*" before it writes the entry again, and
// how many such tags it remembers (past that it forgets them all and learns them again).
constexpr int64_t kEverywhereRecheckSeconds = 60;
// Installations one sweep call deletes at most (a bucket with more due takes several ticks).
constexpr size_t kMaxSweptPerCall = 64;
constexpr size_t kMaxEverywhere = 100000;

// KEYS: the index key. ARGV: bucket, now (unix s), the most buckets it lists. Returns 0 when the
// entry is "*" (any bucket), 1 when it lists the bucket.
// Lists the bucket, or, once the tag is in more buckets than that, only "*" = any bucket: the
// index may over-list, a tag that common gains nothing from it, and one field costs less than a
// hash of every bucket (which Redis would also move out of its compact encoding past 512).
const Script& indexAddScript() {
  static const Script s(R"lua(
if redis.call('HEXISTS', KEYS[1], '*') == 1 then
  redis.call('HSET', KEYS[1], '*', ARGV[2])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '*', ARGV[2])
  return 0
end
return 1
)lua");
  return s;
}

// How many buckets a tag's index entry lists before it becomes "any bucket": an eighth of the
// hub (a send to a tag in more buckets than that saves little by skipping the others), at least
// 16, at most 512 (Redis's listpack limit for hashes).
uint32_t indexedBucketsLimit(uint32_t buckets) { return std::clamp(buckets / 8, 16u, 512u); }

constexpr const char* kWrittenMeanwhile =
    "registry: the installation was written by someone else meanwhile; try again";

}  // namespace

Registry::Registry(RedisClient& redis, Options options) : redis_(redis), options_(options) {}

std::string Registry::indexKey(const Hub& hub, std::string_view tag) {
  return fmt::format("ph:ix:{{{}:{}}}", hub.name, tag);
}

std::vector<std::string> Registry::indexedTags(const Installation& installation) {
  std::vector<std::string> tags = installation.tags;
  if (installation.registration) {
    tags.push_back(channelTag(installation.platform, installation.push_channel));
  }
  for (const auto& [name, t] : installation.templates) {
    // kUnnamedTemplate: no expression can name it, so no send looks it up.
    if (name != kUnnamedTemplate) tags.push_back(name);
    tags.insert(tags.end(), t.tags.begin(), t.tags.end());
  }
  if (!installation.user_id.empty()) tags.push_back(expr::userIdTag(installation.user_id));
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

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
  write(hub, installation, std::nullopt, std::move(cb));
}

void Registry::write(const Hub& hub, const Installation& installation,
                     std::optional<int64_t> expected_last_update,
                     std::function<void(Result<void>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  if (auto r = validateInstallation(installation); !r) {
    boost::asio::post(redis_.ioContext(), [cb = std::move(cb), e = r.error()] { cb(e); });
    return;
  }
  // The index first, the bucket after: a failure in between over-lists (registry.h). Tags this
  // worker saw indexed as "*" are skipped: "*" is never narrowed again, so it already covers
  // this bucket.
  std::vector<std::string> tags = indexedTags(installation);
  int64_t now_s = nowSeconds();
  std::erase_if(tags, [&](const std::string& tag) {
    auto it = everywhere_.find(indexKey(hub, tag));
    return it != everywhere_.end() && now_s - it->second < kEverywhereRecheckSeconds;
  });
  if (tags.empty()) return writeBucket(hub, installation, std::move(cb), expected_last_update);
  struct Pending {
    size_t left;
    std::optional<Error> error;
    std::function<void(Result<void>)> cb;
  };
  auto pending = std::make_shared<Pending>(Pending{tags.size(), std::nullopt, std::move(cb)});
  std::string bucket = std::to_string(bucketOf(installation.id, hub.buckets));
  std::string now = std::to_string(now_s);
  std::string limit = std::to_string(indexedBucketsLimit(hub.buckets));
  auto shared = std::make_shared<const Installation>(installation);
  for (const auto& tag : tags) {
    std::string key = indexKey(hub, tag);
    redis_.evalScript(
        indexAddScript(), {key}, {bucket, now, limit},
        [this, hub, shared, pending, expected_last_update, key, now_s](Result<RedisReply> r) {
          if (!r && !pending->error) pending->error = r.error();
          if (r && r->type == RedisReply::Type::kInteger && r->integer == 0) {
            if (everywhere_.size() >= kMaxEverywhere) everywhere_.clear();
            everywhere_[key] = now_s;
          }
          if (--pending->left > 0) return;
          if (pending->error) return pending->cb(*pending->error);
          writeBucket(hub, *shared, std::move(pending->cb), expected_last_update);
        });
  }
}

void Registry::writeBucket(const Hub& hub, const Installation& installation,
                           std::function<void(Result<void>)> cb,
                           std::optional<int64_t> expected_last_update) {
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
  if (expected_last_update) args.push_back(std::to_string(*expected_last_update));
  redis_.evalScript(upsertScript(), keys.writeKeys(), std::move(args),
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      if (r->type == RedisReply::Type::kInteger && r->integer == -1) {
                        return cb(Error{Error::Code::kUnavailable, kWrittenMeanwhile});
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

void Registry::update(const Hub& hub, const std::string& id, Change change,
                      std::function<void(Result<Installation>)> cb) {
  updateAttempt(hub, id, std::make_shared<Change>(std::move(change)), std::move(cb), 1);
}

void Registry::updateAttempt(const Hub& hub, const std::string& id, std::shared_ptr<Change> change,
                             std::function<void(Result<Installation>)> cb, int attempt) {
  constexpr int kMaxAttempts = 5;
  get(hub, id,
      [this, hub, id, change, cb = std::move(cb),
       attempt](const Result<std::optional<Installation>>& found) mutable {
        if (!found.has_value() || !found->has_value()) {
          return cb(found.has_value() ? Error::notFound("installation '" + id + "' not found")
                                      : found.error());
        }
        const Installation& current = **found;
        int64_t read_at = current.last_update_ms;
        auto changed = (*change)(current);
        if (!changed) return cb(changed.error());
        if (changed->id != id) {
          return cb(Error::invalidArgument("installationId: an update cannot change it"));
        }
        // Stamped anew, so the next read-modify-write sees this one.
        changed->last_update_ms = std::max(nowMs(), read_at + 1);
        auto result = std::make_shared<Installation>(std::move(*changed));
        write(
            hub, *result, read_at,
            [this, hub, id, change, cb = std::move(cb), attempt, result](Result<void> ok) mutable {
              if (ok) return cb(std::move(*result));
              if (ok.error().message == kWrittenMeanwhile && attempt < kMaxAttempts) {
                return updateAttempt(hub, id, change, std::move(cb), attempt + 1);
              }
              cb(ok.error());
            });
      });
}

void Registry::remove(const Hub& hub, const std::string& id, std::function<void(Result<bool>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, &id, cb)) {
    return;
  }
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(removeScript(), keys.writeKeys(), {keys.prefix, id},
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(r->integer == 1);
                    });
}

void Registry::expireChannel(const Hub& hub, const std::string& id, const std::string& channel,
                             std::function<void(Result<bool>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, &id, cb)) {
    return;
  }
  auto [packing, packed] = codec::packChannel(channel);
  BucketKeys keys{bucketPrefix(hub, bucketOf(id, hub.buckets))};
  redis_.evalScript(
      expireChannelScript(), keys.writeKeys(),
      {keys.prefix, id, std::to_string(packing), std::move(packed), std::to_string(nowMs())},
      [cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) {
          return cb(r.error());
        }
        cb(r->integer == 1);
      });
}

void Registry::sweep(const Hub& hub, uint32_t bucket, std::chrono::seconds dead_channel_retention,
                     std::function<void(Result<size_t>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  if (bucket >= hub.buckets) {
    return boost::asio::post(redis_.ioContext(), [cb = std::move(cb)] {
      cb(Error::invalidArgument("bucket: not below the hub's buckets"));
    });
  }
  BucketKeys keys{bucketPrefix(hub, bucket)};
  int64_t now_ms = nowMs();
  redis_.evalScript(sweepScript(), keys.writeKeys(),
                    {keys.prefix, std::to_string(now_ms / 1000),
                     std::to_string(now_ms - dead_channel_retention.count() * 1000),
                     std::to_string(kMaxSweptPerCall)},
                    [cb = std::move(cb)](Result<RedisReply> r) {
                      if (!r) {
                        return cb(r.error());
                      }
                      cb(static_cast<size_t>(std::max<int64_t>(0, r->integer)));
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
      if (auto r = validateTag(selector.value, "selector.tag");
          !r && !selector.value.starts_with(kChannelTagPrefix)) {
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
    case Selector::Kind::kExpression: {
      if (!selector.expression) {
        return post(Error::invalidArgument("selector.expression: is required"));
      }
      const auto& e = *selector.expression;
      std::vector<std::string> args{std::move(prefix), "e", selector.templates ? "t" : "n", ""};
      for (const auto& step : e.nnf()) {
        using Op = expr::TagExpression::Op;
        args[3] += step.op == Op::kTag      ? 't'
                   : step.op == Op::kNotTag ? 'n'
                   : step.op == Op::kAnd    ? '&'
                                            : '|';
        args[3] += static_cast<char>('0' + step.tag);
      }
      args.insert(args.end(), e.tags().begin(), e.tags().end());
      auto exact = selector.templates ? std::make_shared<const Selector>(selector) : nullptr;
      return resolveByScript(hub, bucket, std::move(args), std::move(cb), std::move(exact));
    }
  }
}

void Registry::candidateBuckets(
    const Hub& hub, const expr::TagExpression& expression,
    std::function<void(Result<std::optional<std::vector<uint32_t>>>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  struct Pending {
    expr::TagExpression expression;
    std::vector<std::optional<std::vector<uint32_t>>> buckets;
    size_t left = 0;
    std::optional<Error> error;
    std::function<void(Result<std::optional<std::vector<uint32_t>>>)> cb;
  };
  auto pending = std::make_shared<Pending>();
  pending->expression = expression;
  pending->buckets.resize(expression.tags().size());
  pending->cb = std::move(cb);
  auto done = [pending] {
    if (pending->error) return pending->cb(*pending->error);
    // Copied, not moved: a tag may occur more than once in the expression.
    pending->cb(
        pending->expression.candidateBuckets([&](size_t i) { return pending->buckets[i]; }));
  };
  // A tag only under `!` narrows nothing, so only positive occurrences are asked for.
  std::vector<bool> positive(expression.tags().size(), false);
  for (const auto& step : expression.nnf()) {
    if (step.op == expr::TagExpression::Op::kTag) positive[step.tag] = true;
  }
  for (size_t i = 0; i < expression.tags().size(); ++i) {
    const std::string& tag = expression.tags()[i];
    if (tag.starts_with(expr::kInstallationIdPrefix)) {
      std::string_view id(tag);
      id = id.substr(expr::kInstallationIdPrefix.size(),
                     id.size() - expr::kInstallationIdPrefix.size() - 1);
      pending->buckets[i] = std::vector<uint32_t>{bucketOf(id, hub.buckets)};
    } else if (positive[i]) {
      ++pending->left;
    }
  }
  if (pending->left == 0) {
    return boost::asio::post(redis_.ioContext(), done);
  }
  for (size_t i = 0; i < expression.tags().size(); ++i) {
    const std::string& tag = expression.tags()[i];
    if (tag.starts_with(expr::kInstallationIdPrefix) || !positive[i]) continue;
    bucketsOfTag(hub, tag, [pending, done, i](Result<std::optional<std::vector<uint32_t>>> r) {
      if (!r) {
        if (!pending->error) pending->error = r.error();
      } else {
        pending->buckets[i] = std::move(*r);
      }
      if (--pending->left == 0) done();
    });
  }
}

void Registry::bucketsOfTag(const Hub& hub, std::string_view tag,
                            std::function<void(Result<std::optional<std::vector<uint32_t>>>)> cb) {
  redis_.command({"HKEYS", indexKey(hub, tag)}, [cb = std::move(cb),
                                                 buckets = hub.buckets](Result<RedisReply> r) {
    if (!r) return cb(r.error());
    if (std::any_of(r->elements.begin(), r->elements.end(),
                    [](const RedisReply& e) { return e.str == "*"; })) {
      return cb(
          std::optional<std::vector<uint32_t>>());  // a tag in too many buckets to list: any bucket
    }
    std::vector<uint32_t> list;
    for (const auto& e : r->elements) {
      uint32_t b = 0;
      auto [end, ec] = std::from_chars(e.str.data(), e.str.data() + e.str.size(), b);
      if (ec == std::errc() && b < buckets) list.push_back(b);
    }
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    cb(std::optional<std::vector<uint32_t>>(std::move(list)));
  });
}

struct Registry::IdScan {
  std::string key;
  std::string pattern;
  std::vector<std::string> ids;
  std::function<void(Result<std::vector<std::string>>)> cb;
};

void Registry::idsWithPrefix(const Hub& hub, uint32_t bucket, std::string_view prefix,
                             std::function<void(Result<std::vector<std::string>>)> cb) {
  if (!checkOrPost(redis_.ioContext(), hub, nullptr, cb)) {
    return;
  }
  if (bucket >= hub.buckets) {
    return boost::asio::post(redis_.ioContext(), [cb = std::move(cb)] {
      cb(Error::invalidArgument("bucket: not below the hub's buckets"));
    });
  }
  // Escaped, the prefix matches literally ('*', '?', '[' and '\' are glob characters to MATCH).
  std::string pattern;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') pattern += '\\';
    pattern += c;
  }
  pattern += '*';
  auto scan = std::make_shared<IdScan>(
      IdScan{bucketPrefix(hub, bucket) + "x", std::move(pattern), {}, std::move(cb)});
  scanIds(std::move(scan), "0");
}

void Registry::scanIds(std::shared_ptr<IdScan> scan, const std::string& cursor) {
  redis_.command({"HSCAN", scan->key, cursor, "MATCH", scan->pattern, "COUNT", "1000"},
                 [this, scan](Result<RedisReply> r) {
                   if (!r) return scan->cb(r.error());
                   if (r->elements.size() != 2) {
                     return scan->cb(Error::internal("registry: unexpected HSCAN reply"));
                   }
                   const auto& pairs = r->elements[1].elements;
                   for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
                     scan->ids.push_back(pairs[i].str);
                   }
                   if (r->elements[0].str != "0") return scanIds(scan, r->elements[0].str);
                   // HSCAN may return an id twice while the map is rehashed.
                   auto& ids = scan->ids;
                   std::sort(ids.begin(), ids.end());
                   ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
                   scan->cb(std::move(ids));
                 });
}

void Registry::pruneIndex(const Hub& hub, uint32_t bucket, std::string tag) {
  constexpr size_t kMaxPrunesInFlight = 64;  // lazy work; more can wait for a later send
  if (prunes_in_flight_ >= kMaxPrunesInFlight) return;
  ++prunes_in_flight_;
  auto key = indexKey(hub, tag);
  auto field = std::to_string(bucket);
  auto done = [this](Result<RedisReply>) { --prunes_in_flight_; };
  redis_.command({"HGET", key, field}, [this, hub, bucket, tag, key, field,
                                        done](Result<RedisReply> written) {
    int64_t at = 0;
    if (!written || written->type != RedisReply::Type::kString ||
        std::from_chars(written->str.data(), written->str.data() + written->str.size(), at).ec !=
            std::errc() ||
        nowSeconds() - at < options_.index_prune_grace.count()) {
      return done(Error::internal("not prunable"));
    }
    // Read after the entry: an upsert that lists the tag here wrote the entry before its bucket.
    std::string tags = bucketPrefix(hub, bucket) + "t";
    redis_.transaction(
        {{"HEXISTS", tags, tag}, {"HEXISTS", tags, std::string(codec::kTemplateTagMark) + tag}},
        [this, key, field, value = written->str, done](Result<RedisReply> members) {
          if (!members || members->elements.size() != 2 || members->elements[0].integer != 0 ||
              members->elements[1].integer != 0) {
            return done(Error::internal("still a member"));
          }
          redis_.evalScript(pruneScript(), {key}, {field, value}, done);
        });
  });
}

void Registry::resolveByScript(const Hub& hub, uint32_t bucket, std::vector<std::string> args,
                               std::function<void(Result<std::vector<ResolvedTarget>>)> cb,
                               std::shared_ptr<const Selector> exact) {
  BucketKeys keys{bucketPrefix(hub, bucket)};
  // The expression's tags, to name the ones the script found absent (args[4..]).
  std::vector<std::string> tags;
  if (args.size() > 4 && args[1] == "e") tags.assign(args.begin() + 4, args.end());
  redis_.evalScript(
      resolveScript(), keys.readKeys(), std::move(args),
      [this, hub, bucket, tags = std::move(tags), exact = std::move(exact),
       cb = std::move(cb)](Result<RedisReply> r) {
        if (!r) {
          return cb(r.error());
        }
        auto records = scriptRecords(*r);
        if (!records) {
          return cb(records.error());
        }
        for (const auto& absent : r->elements[2].elements) {
          if (absent.integer >= 0 && static_cast<size_t>(absent.integer) < tags.size()) {
            pruneIndex(hub, bucket, tags[static_cast<size_t>(absent.integer)]);
          }
        }
        cb(toTargets(*records, r->elements[1].elements, exact.get()));
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
