#include "gateway/hub_admin_service.h"

#include <google/protobuf/util/time_util.h>
#include <openssl/rand.h>

#include <boost/asio/post.hpp>

#include "base/log.h"
#include "gateway/api_service.h"
#include "gateway/hub_service.h"

namespace pushhub::gateway {
namespace {

using google::protobuf::util::TimeUtil;
constexpr int kMaxAttempts = 4;
constexpr uint32_t kDefaultGraceSeconds = 3600;
constexpr uint32_t kMaxGraceSeconds = 30 * 24 * 3600;

grpc::ServerUnaryReactor* finish(grpc::CallbackServerContext* context, const Error& error) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(toStatus(error));
  return reactor;
}

// 32 random bytes, base64: what `openssl rand -base64 32` gives.
std::string newSecret() {
  unsigned char bytes[32];
  RAND_bytes(bytes, sizeof bytes);
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < sizeof bytes; i += 3) {
    uint32_t n = bytes[i] << 16 | (i + 1 < sizeof bytes ? bytes[i + 1] << 8 : 0) |
                 (i + 2 < sizeof bytes ? bytes[i + 2] : 0);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(i + 1 < sizeof bytes ? kB64[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < sizeof bytes ? kB64[n & 63] : '=');
  }
  return out;
}

Result<HubSettings> parseDocument(const std::string& document) {
  v1::Hub proto;
  if (!proto.ParseFromString(document)) return Error::internal("stored hub does not parse");
  return hubFromProto(proto, nullptr);
}

// The stored document of `hub`, once its credentials were seen to load.
Result<std::string> checkedDocument(const HubSettings& hub) {
  std::string document = hubToProto(hub, true).SerializeAsString();
  auto runtime = buildRuntime(hub, document);
  if (!runtime) return Error::invalidArgument(runtime.error().message);
  return document;
}

}  // namespace

HubAdminService::HubAdminService(const Config& config,
                                 std::vector<std::unique_ptr<Worker>>& workers,
                                 StatsCollector& stats, std::function<void()> on_change)
    : config_(config), workers_(workers), stats_(stats), on_change_(std::move(on_change)) {}

Worker& HubAdminService::nextWorker() {
  return *workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
}

Result<void> HubAdminService::authorize(grpc::CallbackServerContext* context) const {
  if (config_.admin_key.empty()) {
    return Error{Error::Code::kPermissionDenied,
                 "hub management is off on this instance: set server.admin_key"};
  }
  std::string_view header = authorizationOf(context);
  auto signer = verifySignature(header, "/", [this](std::string_view name) {
    if (name != kAdminKeyName) return std::vector<std::string>();
    return std::vector<std::string>{config_.admin_key};
  });
  if (!signer) {
    if (!header.empty() &&
        header.find(std::string("skn=") + kAdminKeyName) == std::string_view::npos) {
      return Error{Error::Code::kPermissionDenied,
                   std::string("hub management needs the instance admin key (key name ") +
                       kAdminKeyName + "); a hub's keys cannot manage hubs"};
    }
    return signer.error();
  }
  return {};
}

void HubAdminService::modify(Worker& worker, const std::string& name, Change change,
                             std::function<void(Result<HubSettings>)> done, int attempt) {
  worker.hubStore().get(
      name, [this, &worker, name, change = std::move(change), done = std::move(done),
             attempt](Result<std::string> stored) mutable {
        if (!stored) return done(stored.error());
        auto current = parseDocument(*stored);
        if (!current) return done(current.error());
        auto next = change(*current);
        if (!next) return done(next.error());
        auto document = checkedDocument(*next);
        if (!document) return done(document.error());
        auto expected = std::make_shared<std::string>(std::move(*stored));
        worker.hubStore().put(
            name, *document, registry::HubStore::Mode::kUpdate,
            [this, &worker, name, change = std::move(change), done = std::move(done), attempt,
             next = std::move(*next), expected](Result<void> ok) mutable {
              if (!ok && ok.error().code == Error::Code::kAborted && attempt + 1 < kMaxAttempts) {
                return modify(worker, name, std::move(change), std::move(done), attempt + 1);
              }
              if (!ok) return done(ok.error());
              on_change_();
              done(std::move(next));
            },
            expected.get());
      });
}

grpc::ServerUnaryReactor* HubAdminService::CreateHub(grpc::CallbackServerContext* context,
                                                     const v1::Hub* request, v1::Hub* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  auto hub = hubFromProto(*request, nullptr);
  if (!hub) return finish(context, hub.error());
  auto document = checkedDocument(*hub);
  if (!document) return finish(context, document.error());
  return runOnWorker(context, nextWorker(),
                     [this, response, hub = std::move(*hub), document = std::move(*document)](
                         Worker& worker, grpc::ServerUnaryReactor* reactor) {
                       worker.hubStore().put(hub.name, document, registry::HubStore::Mode::kCreate,
                                             [this, reactor, response, hub](Result<void> ok) {
                                               if (!ok)
                                                 return reactor->Finish(toStatus(ok.error()));
                                               log::get("hubs")->info("hub '{}' created", hub.name);
                                               on_change_();
                                               *response = hubToProto(hub, false);
                                               reactor->Finish(grpc::Status::OK);
                                             });
                     });
}

grpc::ServerUnaryReactor* HubAdminService::UpdateHub(grpc::CallbackServerContext* context,
                                                     const v1::Hub* request, v1::Hub* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  if (!validHubName(request->name())) {
    return finish(context,
                  Error::invalidArgument("name: must be 1 to 50 characters of [A-Za-z0-9._-]"));
  }
  return runOnWorker(
      context, nextWorker(),
      [this, response, wanted = *request](Worker& worker, grpc::ServerUnaryReactor* reactor) {
        modify(
            worker, wanted.name(),
            [wanted](const HubSettings& current) { return hubFromProto(wanted, &current); },
            [reactor, response](Result<HubSettings> stored) {
              if (!stored) return reactor->Finish(toStatus(stored.error()));
              log::get("hubs")->info("hub '{}' updated", stored->name);
              *response = hubToProto(*stored, false);
              reactor->Finish(grpc::Status::OK);
            });
      });
}

grpc::ServerUnaryReactor* HubAdminService::DeleteHub(grpc::CallbackServerContext* context,
                                                     const v1::HubRef* request,
                                                     v1::DeleteHubResponse* /*response*/) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  return runOnWorker(
      context, nextWorker(),
      [this, name = request->name()](Worker& worker, grpc::ServerUnaryReactor* reactor) {
        worker.hubStore().remove(name, [this, reactor, name](Result<void> ok) {
          if (!ok) return reactor->Finish(toStatus(ok.error()));
          log::get("hubs")->info("hub '{}' deleted", name);
          on_change_();
          reactor->Finish(grpc::Status::OK);
        });
      });
}

grpc::ServerUnaryReactor* HubAdminService::GetHub(grpc::CallbackServerContext* context,
                                                  const v1::HubRef* request, v1::Hub* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  return runOnWorker(
      context, nextWorker(),
      [response, name = request->name()](Worker& worker, grpc::ServerUnaryReactor* reactor) {
        worker.hubStore().get(name, [reactor, response](Result<std::string> stored) {
          if (!stored) return reactor->Finish(toStatus(stored.error()));
          auto hub = parseDocument(*stored);
          if (!hub) return reactor->Finish(toStatus(hub.error()));
          *response = hubToProto(*hub, false);
          reactor->Finish(grpc::Status::OK);
        });
      });
}

grpc::ServerUnaryReactor* HubAdminService::ListHubs(grpc::CallbackServerContext* context,
                                                    const v1::ListHubsRequest* /*request*/,
                                                    v1::ListHubsResponse* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  return runOnWorker(
      context, nextWorker(), [response](Worker& worker, grpc::ServerUnaryReactor* reactor) {
        worker.hubStore().load([reactor, response](Result<registry::HubStore::Snapshot> snapshot) {
          if (!snapshot) return reactor->Finish(toStatus(snapshot.error()));
          for (const auto& [name, document] : snapshot->documents) {
            auto hub = parseDocument(document);
            if (hub) *response->add_hubs() = hubToProto(*hub, false);
          }
          reactor->Finish(grpc::Status::OK);
        });
      });
}

grpc::ServerUnaryReactor* HubAdminService::GetStats(grpc::CallbackServerContext* context,
                                                    const v1::GetStatsRequest* request,
                                                    v1::Stats* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  auto* reactor = context->DefaultReactor();
  stats_.collect(true, [reactor, response, hub = request->hub()](auto snapshot) {
    *response = toProto(*snapshot, hub);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* HubAdminService::AddKey(grpc::CallbackServerContext* context,
                                                  const v1::AddKeyRequest* request,
                                                  v1::KeySecret* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  v1::AccessKey key = request->key();
  bool made = key.secret().empty();
  if (made) key.set_secret(newSecret());
  return runOnWorker(
      context, nextWorker(),
      [this, response, hub = request->hub(), key, made](Worker& worker,
                                                        grpc::ServerUnaryReactor* reactor) {
        modify(
            worker, hub,
            [key](const HubSettings& current) -> Result<HubSettings> {
              if (current.findKey(key.name())) {
                return Error::invalidArgument("key.name: '" + key.name() + "' exists");
              }
              v1::Hub proto = hubToProto(current, true);
              *proto.add_keys() = key;
              return hubFromProto(proto, &current);
            },
            [reactor, response, key, made](Result<HubSettings> stored) {
              if (!stored) return reactor->Finish(toStatus(stored.error()));
              response->set_key_name(key.name());
              if (made) response->set_secret(key.secret());
              response->set_fingerprint(fingerprint(key.secret()));
              reactor->Finish(grpc::Status::OK);
            });
      });
}

grpc::ServerUnaryReactor* HubAdminService::RotateKey(grpc::CallbackServerContext* context,
                                                     const v1::RotateKeyRequest* request,
                                                     v1::KeySecret* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  uint32_t grace = request->grace_seconds() == 0 ? kDefaultGraceSeconds : request->grace_seconds();
  if (grace > kMaxGraceSeconds) {
    return finish(context, Error::invalidArgument("grace_seconds: at most 2592000 (30 days)"));
  }
  bool made = request->new_secret().empty();
  std::string secret = made ? newSecret() : request->new_secret();
  return runOnWorker(
      context, nextWorker(),
      [this, response, hub = request->hub(), name = request->key_name(), secret, made, grace](
          Worker& worker, grpc::ServerUnaryReactor* reactor) {
        modify(
            worker, hub,
            [name, secret, grace](const HubSettings& current) -> Result<HubSettings> {
              HubSettings next = current;
              for (auto& key : next.keys) {
                if (key.name != name) continue;
                if (secret == key.secret) {
                  return Error::invalidArgument("new_secret: is the current secret");
                }
                key.previous_secret = key.secret;
                key.previous_valid_until = unixNow() + grace;
                key.secret = secret;
                v1::Hub proto = hubToProto(next, true);
                return hubFromProto(proto, nullptr);  // checks the new secret's rules
              }
              return Error::notFound("key_name: no key named '" + name + "'");
            },
            [reactor, response, name, secret, made](Result<HubSettings> stored) {
              if (!stored) return reactor->Finish(toStatus(stored.error()));
              log::get("hubs")->info("hub '{}': key '{}' rotated", stored->name, name);
              response->set_key_name(name);
              if (made) response->set_secret(secret);
              response->set_fingerprint(fingerprint(secret));
              reactor->Finish(grpc::Status::OK);
            });
      });
}

grpc::ServerUnaryReactor* HubAdminService::RemoveKey(grpc::CallbackServerContext* context,
                                                     const v1::RemoveKeyRequest* request,
                                                     v1::Hub* response) {
  if (auto ok = authorize(context); !ok) return finish(context, ok.error());
  return runOnWorker(
      context, nextWorker(),
      [this, response, hub = request->hub(), name = request->key_name()](
          Worker& worker, grpc::ServerUnaryReactor* reactor) {
        modify(
            worker, hub,
            [name](const HubSettings& current) -> Result<HubSettings> {
              HubSettings next = current;
              auto removed =
                  std::erase_if(next.keys, [&](const AccessKey& k) { return k.name == name; });
              if (removed == 0) return Error::notFound("key_name: no key named '" + name + "'");
              if (next.keys.empty()) {
                return Error::invalidArgument("key_name: a hub needs at least one access key");
              }
              return next;
            },
            [reactor, response](Result<HubSettings> stored) {
              if (!stored) return reactor->Finish(toStatus(stored.error()));
              *response = hubToProto(*stored, false);
              reactor->Finish(grpc::Status::OK);
            });
      });
}

}  // namespace pushhub::gateway
