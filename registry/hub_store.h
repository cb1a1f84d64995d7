#pragma once
// HubStore: the hubs every pushhubd instance serves, kept in Redis so that a hub created or
// changed through one instance reaches all of them without a config push (docs/ARCHITECTURE.md,
// Hubs). A hub is an opaque document here (the gateway's serialized hub with its keys and
// credentials); this class only stores, lists and versions them.
//
// Redis layout (one hash tag, so every script touches one slot, also on a cluster):
//   ph:{hubs}       hash: lower-cased hub name -> document
//   ph:{hubs}:rev   integer, incremented by every change; instances poll it and reload on change
//
// Threading: the RedisClient's thread only.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "base/result.h"
#include "registry/redis_client.h"

namespace pushhub::registry {

class HubStore {
 public:
  enum class Mode { kCreate, kUpdate, kUpsert };
  struct Snapshot {
    int64_t revision = 0;
    std::map<std::string, std::string> documents;  // by lower-cased name
  };

  explicit HubStore(RedisClient& redis) : redis_(redis) {}

  // Writes `document` under `name` (lower-cased here). kCreate fails with kAlreadyExists when the
  // name is taken, kUpdate with kNotFound when it is not; with `expected` set, kUpdate also fails
  // (kAborted) unless the stored document still equals it, so two concurrent read-modify-writes
  // cannot lose one another's change.
  void put(const std::string& name, const std::string& document, Mode mode,
           std::function<void(Result<void>)> cb, const std::string* expected = nullptr);
  // kNotFound when there is no such hub.
  void remove(const std::string& name, std::function<void(Result<void>)> cb);
  void revision(std::function<void(Result<int64_t>)> cb);
  // The document of one hub; kNotFound when there is none.
  void get(const std::string& name, std::function<void(Result<std::string>)> cb);
  // Every document and the revision they belong to, read in one transaction.
  void load(std::function<void(Result<Snapshot>)> cb);

  static constexpr const char* kHubsKey = "ph:{hubs}";
  static constexpr const char* kRevisionKey = "ph:{hubs}:rev";

 private:
  RedisClient& redis_;
};

}  // namespace pushhub::registry
