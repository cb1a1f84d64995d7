#pragma once
// The pushhub.v1.HubAdmin gRPC service: hubs, their keys and their provider credentials created,
// changed and removed at run time (registry/hub_store.h holds them; HubSync brings every
// instance up to date). Every call must be signed with the instance's admin key
// (server.admin_key, key name kAdminKeyName); a hub's own keys are refused. A change is checked
// completely first (every field, and the credentials must load) and written in one conditional
// step, so a refused or raced change leaves nothing half written. Secrets never leave in an
// answer except a secret pushhubd made itself, once. Runs on gRPC's threads only to check the
// signature; the Redis work runs on a worker.

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "gateway/config.h"
#include "gateway/hub_catalog.h"
#include "gateway/stats_collector.h"
#include "gateway/worker.h"
#include "pushhub/v1/pushhub.grpc.pb.h"

namespace pushhub::gateway {

class HubAdminService final : public v1::HubAdmin::CallbackService {
 public:
  // `on_change` runs on a worker after every successful write (it pokes HubSync). Everything
  // must outlive the service.
  HubAdminService(const Config& config, std::vector<std::unique_ptr<Worker>>& workers,
                  StatsCollector& stats, std::function<void()> on_change);

  grpc::ServerUnaryReactor* CreateHub(grpc::CallbackServerContext* context, const v1::Hub* request,
                                      v1::Hub* response) override;
  grpc::ServerUnaryReactor* UpdateHub(grpc::CallbackServerContext* context, const v1::Hub* request,
                                      v1::Hub* response) override;
  grpc::ServerUnaryReactor* DeleteHub(grpc::CallbackServerContext* context,
                                      const v1::HubRef* request,
                                      v1::DeleteHubResponse* response) override;
  grpc::ServerUnaryReactor* GetHub(grpc::CallbackServerContext* context, const v1::HubRef* request,
                                   v1::Hub* response) override;
  grpc::ServerUnaryReactor* ListHubs(grpc::CallbackServerContext* context,
                                     const v1::ListHubsRequest* request,
                                     v1::ListHubsResponse* response) override;
  grpc::ServerUnaryReactor* AddKey(grpc::CallbackServerContext* context,
                                   const v1::AddKeyRequest* request,
                                   v1::KeySecret* response) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* context,
                                      const v1::RotateKeyRequest* request,
                                      v1::KeySecret* response) override;
  grpc::ServerUnaryReactor* RemoveKey(grpc::CallbackServerContext* context,
                                      const v1::RemoveKeyRequest* request,
                                      v1::Hub* response) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::GetStatsRequest* request,
                                     v1::Stats* response) override;

 private:
  // A change of one stored hub: given its current settings, the new settings (or an error to
  // answer). Runs on a worker; may run again when another writer got in between.
  using Change = std::function<Result<HubSettings>(const HubSettings& current)>;

  Result<void> authorize(grpc::CallbackServerContext* context) const;
  Worker& nextWorker();
  // Reads the hub, applies `change`, checks the credentials load, writes it back if nobody
  // changed it meanwhile (retried a few times), then calls `done` with the stored settings.
  void modify(Worker& worker, const std::string& name, Change change,
              std::function<void(Result<HubSettings>)> done, int attempt = 0);

  const Config& config_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  StatsCollector& stats_;
  std::function<void()> on_change_;
  std::atomic<size_t> next_worker_{0};
};

}  // namespace pushhub::gateway
