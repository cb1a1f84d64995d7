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
// All writes of one installation are one Lua script (atomic, one slot). The scripts name the
// keys they derive from the prefix (r1.., t:<tag>) themselves; they all carry the bucket's hash
// tag, so they live in the declared keys' slot. Memory stays low while a bucket holds at most
// ~400 installations (hash-max-listpack-entries, 512 by default); size `buckets` accordingly.
// The implicit tags $InstallationId:{id} and $UserId:{user} are not stored: one installation is
// selected with Selector::Kind::kInstallation; $UserId selection is future work.
//
// Threading: a Registry wraps one RedisClient and follows its rule: only the thread running
// that client's io_context calls it, and callbacks run on that thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "registry/installation.h"
#include "registry/redis_client.h"

namespace pushhub::registry {

struct Hub {
  std::string name;         // validateHubName()
  uint32_t buckets = 1024;  // a power of two, fixed for the life of the hub
};

struct Selector {
  enum class Kind { kAll, kTag, kInstallation };
  Kind kind = Kind::kAll;
  std::string value;  // the tag (kTag) or installation id (kInstallation)
};

struct ResolvedTarget {
  std::string installation_id;
  Platform platform = Platform::kApns;
  std::string push_channel;
  // Template name -> template; targets of one resolve() call that use the same template share
  // one object, so a send can render each distinct template once.
  std::vector<std::pair<std::string, std::shared_ptr<const InstallationTemplate>>> templates;
};

class Registry {
 public:
  explicit Registry(RedisClient& redis);

  // FNV-1a 32 of the id, masked to `buckets` (a power of two).
  static uint32_t bucketOf(std::string_view installation_id, uint32_t buckets);

  // Creates or replaces. Validates hub and installation first: invalid -> kInvalidArgument and
  // nothing is written. Stamps last_update_ms with the current time when it is 0.
  void upsert(const Hub& hub, const Installation& installation,
              std::function<void(Result<void>)> cb);
  // nullopt when there is no such installation.
  void get(const Hub& hub, const std::string& id,
           std::function<void(Result<std::optional<Installation>>)> cb);
  // true if it existed. Removes its tag memberships and releases its template references.
  void remove(const Hub& hub, const std::string& id, std::function<void(Result<bool>)> cb);

  // Targets in `bucket` matching `selector`, in one round trip with the templates they
  // reference. kTag: members of the bucket's tag list (a Lua script); kAll: every installation
  // of the bucket (plain reads in one MULTI; a bucket with a record over 256 bytes takes a
  // second round trip, through the script); kInstallation: that id if it lives in this bucket
  // (else empty, without asking Redis). Installations whose expiration_unix has passed or whose
  // channel is marked expired are skipped.
  void resolve(const Hub& hub, uint32_t bucket, const Selector& selector,
               std::function<void(Result<std::vector<ResolvedTarget>>)> cb);

  // Removes the installation only if its push channel is still `channel` (the device may have
  // re-registered since the provider reported the old one dead). true if removed.
  void dropChannel(const Hub& hub, const std::string& id, const std::string& channel,
                   std::function<void(Result<bool>)> cb);

  // "ph:{H:b}:" - the prefix of every key of one bucket (exposed for tests and tools).
  static std::string bucketPrefix(const Hub& hub, uint32_t bucket);

 private:
  void resolveEveryone(const Hub& hub, uint32_t bucket,
                       std::function<void(Result<std::vector<ResolvedTarget>>)> cb);
  // The remove script; `condition` (packing flags, packed channel) makes it remove only while
  // the stored channel is still that one.
  void removeWith(const Hub& hub, const std::string& id, std::vector<std::string> condition,
                  std::function<void(Result<bool>)> cb);
  void resolveByScript(const Hub& hub, uint32_t bucket, std::vector<std::string> args,
                       std::function<void(Result<std::vector<ResolvedTarget>>)> cb);

  RedisClient& redis_;
};

}  // namespace pushhub::registry
