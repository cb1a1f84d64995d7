#pragma once
// Registry: installations of every hub in Redis, spread over B buckets per hub so a tag or
// broadcast send fans out bucket by bucket, each bucket inside one Redis Cluster slot.
//
// Redis layout (also in registry/README.md). Hub H has B buckets (a power of two);
// bucket(id) = FNV-1a-32(id) & (B - 1). Every key of bucket b carries the hash tag {H:b}. Each
// installation of a bucket gets a small integer slot (lowest free one first), so that tag lists
// and record fields are integers Redis 7.0 stores in a byte or two inside listpacks:
//   ph:{H:b}:x         hash  installation id -> slot
//   ph:{H:b}:r, r1..   hash  slot -> record (record_codec.h, includes the id), cut into 64-byte
//                            parts (r = part 0, rK = part K) so every value stays listpack-sized
//   ph:{H:b}:t         hash  tag -> up to 20 packed 3-byte slots, or "" when promoted to t:<tag>
//   ph:{H:b}:t:<tag>   set   slots having <tag>, only for tags with more than 20 in the bucket
//   ph:{H:b}:f         zset  freed slots below the highest allocated one (score = slot)
//   ph:{H:b}:tpl       hash  template ref (8 bytes of SHA-1) -> encoded template, once per bucket
//   ph:{H:b}:tplrc     hash  template ref -> number of record references; 0 deletes both fields
//   ph:{H:b}:e         zset  slots of installations with an expiration time, scored by it
//   ph:{H:b}:d         zset  slots whose channel a provider called dead, scored by when (unix ms)
// All writes of one installation are one Lua script (atomic, one slot). The scripts name the
// keys they derive from the prefix (r1.., t:<tag>) themselves; they all carry the bucket's hash
// tag, so they live in the declared keys' slot. Memory stays low while a bucket holds at most
// ~400 installations (hash-max-listpack-entries, 512 by default); size `buckets` accordingly.
//
// What an installation is listed under in t: its own tags, "$UserId:{user}" when it has a user,
// and, marked with '+', each template's name and tags ("+name", "+tag"). $InstallationId:{id} is
// the x hash itself. A native send evaluates a tag expression over the unmarked entries, exactly.
// A template send must select each template by the installation's tags plus that template's name
// and tags; the bucket evaluates a superset (a tag reads "tag" or "+tag", a negated tag reads
// only "tag", both monotone in negation normal form) and resolve() narrows it per template.
//
// The tag index (cross-slot, so it may over-list but never under-list):
//   ph:ix:{H:tag}      hash  bucket -> unix seconds of the last write that listed the tag there;
//                            once the tag is in more than max(16, min(512, B/8)) buckets, only
//                            "*" -> seconds: any bucket (never narrowed again)
// An upsert writes the index entries of every tag it lists (template tags and names unmarked,
// $UserId:{user} as is) before its bucket script, and waits for them: a failure in between leaves
// an entry too many, never one too few. A tag the worker saw as "*" within the last minute is
// not written again ("*" is never narrowed, so it already lists every bucket). A send to an
// expression visits only the buckets the index gives its tags (TagExpression::candidateBuckets).
// Entries are pruned lazily: a resolve that finds none of a tag's members in the bucket asks for a
// prune, which deletes the entry only if it was last written more than `index_prune_grace` ago, the
// bucket still has no member for it, and the entry is unchanged since it was read (a
// compare-and-delete in the index's slot). Any upsert in flight wrote its entry less than a command
// timeout ago, so the grace (far longer than a command timeout) keeps it.
//
// Threading: a Registry wraps one RedisClient and follows its rule: only the thread running
// that client's io_context calls it, and callbacks run on that thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "expr/tag_expression.h"
#include "registry/installation.h"
#include "registry/redis_client.h"

namespace pushhub::registry {

struct Hub {
  std::string name;         // validateHubName()
  uint32_t buckets = 1024;  // a power of two, fixed for the life of the hub
};

struct Selector {
  enum class Kind { kAll, kTag, kInstallation, kExpression };
  Kind kind = Kind::kAll;
  std::string value;  // the tag (kTag) or installation id (kInstallation)
  // kExpression: the expression, and whether the send renders templates (then each template is
  // selected on its own, by the installation's tags plus the template's name and tags).
  std::shared_ptr<const expr::TagExpression> expression;
  bool templates = false;

  static Selector all() { return Selector(); }
  static Selector tag(std::string tag) { return make(Kind::kTag, std::move(tag)); }
  static Selector installation(std::string id) { return make(Kind::kInstallation, std::move(id)); }
  static Selector matching(std::shared_ptr<const expr::TagExpression> expression, bool templates) {
    Selector s = make(Kind::kExpression, "");
    s.expression = std::move(expression);
    s.templates = templates;
    return s;
  }

 private:
  static Selector make(Kind kind, std::string value) {
    Selector s;
    s.kind = kind;
    s.value = std::move(value);
    return s;
  }
};

struct ResolvedTarget {
  std::string installation_id;
  Platform platform = Platform::kApns;
  std::string push_channel;
  // Template name -> template; targets of one resolve() call that use the same template share
  // one object, so a send can render each distinct template once.
  std::vector<std::pair<std::string, std::shared_ptr<const InstallationTemplate>>> templates;
  // A template registration (Azure's model): it receives template sends only, where an
  // installation with templates receives native sends too.
  bool template_registration = false;
};

class Registry {
 public:
  struct Options {
    // How old an index entry must be before a prune may delete it (see the header comment);
    // tests shorten it.
    std::chrono::seconds index_prune_grace{600};
  };
  explicit Registry(RedisClient& redis) : Registry(redis, Options()) {}
  Registry(RedisClient& redis, Options options);

  // FNV-1a 32 of the id, masked to `buckets` (a power of two).
  static uint32_t bucketOf(std::string_view installation_id, uint32_t buckets);

  // Creates or replaces. Validates hub and installation first: invalid -> kInvalidArgument and
  // nothing is written. Stamps last_update_ms with the current time when it is 0.
  void upsert(const Hub& hub, const Installation& installation,
              std::function<void(Result<void>)> cb);
  // nullopt when there is no such installation.
  void get(const Hub& hub, const std::string& id,
           std::function<void(Result<std::optional<Installation>>)> cb);
  // Reads the installation, applies `change` to it and writes the result, only if nobody wrote
  // the installation in between (compare-and-set on its last update; retried up to 5 times, then
  // kUnavailable). NOT_FOUND when there is none; `change`'s error is returned as is and nothing
  // is written. Gives the installation as stored. `change` may run more than once.
  using Change = std::function<Result<Installation>(const Installation&)>;
  void update(const Hub& hub, const std::string& id, Change change,
              std::function<void(Result<Installation>)> cb);

  // true if it existed. Removes its tag memberships and releases its template references.
  void remove(const Hub& hub, const std::string& id, std::function<void(Result<bool>)> cb);

  // The buckets a send to `expression` must visit, from the tag index (sorted); nullopt: every
  // bucket. One HKEYS per tag of the expression, $InstallationId:{id} computed without Redis.
  void candidateBuckets(const Hub& hub, const expr::TagExpression& expression,
                        std::function<void(Result<std::optional<std::vector<uint32_t>>>)> cb);

  // The buckets the tag index lists for one tag (sorted, possibly too many, never too few);
  // nullopt: any bucket. Takes any tag the index holds, channel tags (channelTag) included.
  void bucketsOfTag(const Hub& hub, std::string_view tag,
                    std::function<void(Result<std::optional<std::vector<uint32_t>>>)> cb);

  // The ids in `bucket` that start with `prefix` (sorted), e.g. kRegistrationIdPrefix: one HSCAN
  // of the bucket's id map (a few hundred ids), more when the map is large.
  void idsWithPrefix(const Hub& hub, uint32_t bucket, std::string_view prefix,
                     std::function<void(Result<std::vector<std::string>>)> cb);

  // Targets in `bucket` matching `selector`, in one round trip with the templates they
  // reference. kExpression: the expression evaluated by the resolve script (see the header
  // comment; a template send keeps only the templates that match); kTag: members of the
  // bucket's tag list (a Lua script; a channel tag is taken too); kAll: every installation
  // of the bucket (plain reads in one MULTI; a bucket with a record over 256 bytes takes a
  // second round trip, through the script); kInstallation: that id if it lives in this bucket
  // (else empty, without asking Redis). Installations whose expiration_unix has passed or whose
  // channel is marked expired are skipped.
  void resolve(const Hub& hub, uint32_t bucket, const Selector& selector,
               std::function<void(Result<std::vector<ResolvedTarget>>)> cb);

  // A provider called `channel` dead: marks the installation's channel expired, as Azure does
  // (pushChannelExpired), only if its channel is still `channel` (the device may have
  // re-registered since) and stamps its last update. The installation stays readable, is no
  // longer targeted, and is deleted by sweep() after the retention unless a new channel is
  // registered first. true if marked.
  void expireChannel(const Hub& hub, const std::string& id, const std::string& channel,
                     std::function<void(Result<bool>)> cb);

  // Deletes the installations of one bucket whose expiration time has passed, and those whose
  // channel was marked expired more than `dead_channel_retention` ago, at most 64 per call: one
  // script that reads only what is due (the bucket's e and d sets, absent for most buckets), so
  // a sweeper's work per tick is bounded and near nothing when nothing is due. Gives how many
  // were deleted.
  void sweep(const Hub& hub, uint32_t bucket, std::chrono::seconds dead_channel_retention,
             std::function<void(Result<size_t>)> cb);

  // "ph:{H:b}:" - the prefix of every key of one bucket (exposed for tests and tools).
  static std::string bucketPrefix(const Hub& hub, uint32_t bucket);
  // "ph:ix:{H:tag}" - the tag index entry of one tag (exposed for tests and tools).
  static std::string indexKey(const Hub& hub, std::string_view tag);
  // The tags `installation` is indexed under: its tags, its templates' names (but
  // kUnnamedTemplate) and tags, $UserId:{user}, and a registration's channel tag; each once.
  static std::vector<std::string> indexedTags(const Installation& installation);

  // Prunes issued and not yet answered (a resolve issues them; tests wait for none).
  size_t prunesInFlight() const { return prunes_in_flight_; }

 private:
  void resolveEveryone(const Hub& hub, uint32_t bucket,
                       std::function<void(Result<std::vector<ResolvedTarget>>)> cb);
  void resolveByScript(const Hub& hub, uint32_t bucket, std::vector<std::string> args,
                       std::function<void(Result<std::vector<ResolvedTarget>>)> cb,
                       std::shared_ptr<const Selector> exact = nullptr);
  // upsert(), or with `expected_last_update` a write only if the stored installation was last
  // written then (update()).
  void write(const Hub& hub, const Installation& installation,
             std::optional<int64_t> expected_last_update, std::function<void(Result<void>)> cb);
  void updateAttempt(const Hub& hub, const std::string& id, std::shared_ptr<Change> change,
                     std::function<void(Result<Installation>)> cb, int attempt);
  // The bucket script, after the index entries of `installation` are written.
  void writeBucket(const Hub& hub, const Installation& installation,
                   std::function<void(Result<void>)> cb,
                   std::optional<int64_t> expected_last_update);
  // Drops `tag`'s index entry for `bucket` if it is older than the grace and the bucket has no
  // member for it (see the header comment). Fire and forget: a failure leaves the entry.
  void pruneIndex(const Hub& hub, uint32_t bucket, std::string tag);
  // One HSCAN step of idsWithPrefix.
  struct IdScan;
  void scanIds(std::shared_ptr<IdScan> scan, const std::string& cursor);

  RedisClient& redis_;
  Options options_;
  size_t prunes_in_flight_ = 0;
  // Index keys this worker found to be "*" (any bucket), with when: an upsert skips writing them.
  std::unordered_map<std::string, int64_t> everywhere_;
};

}  // namespace pushhub::registry
