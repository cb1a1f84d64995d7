#pragma once
// The pushhub.v1.PushHub gRPC service. Runs on gRPC's threads only long enough to authenticate
// (SAS), validate and convert a request; the Redis work is posted to a worker (round robin) and
// the call is finished from that worker's thread when Redis answers.

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "gateway/config.h"
#include "gateway/hub_catalog.h"
#include "gateway/worker.h"
#include "pushhub/v1/pushhub.grpc.pb.h"

namespace pushhub::gateway {

// Runs `work(worker, reactor)` on `worker`'s thread and returns the call's reactor, which `work`
// must finish. For the gRPC services' handlers, which run on gRPC's threads.
template <typename Work>
grpc::ServerUnaryReactor* runOnWorker(grpc::CallbackServerContext* context, Worker& worker,
                                      Work work) {
  auto* reactor = context->DefaultReactor();
  boost::asio::post(worker.ioc(), [&worker, reactor, work = std::move(work)]() mutable {
    work(worker, reactor);
  });
  return reactor;
}

class ApiService final : public v1::PushHub::CallbackService {
 public:
  // `config`, `catalog` and the workers must outlive the service (and the gRPC server).
  ApiService(const Config& config, const HubCatalog& catalog,
             std::vector<std::unique_ptr<Worker>>& workers);

  // v1::PushHub::CallbackService
  grpc::ServerUnaryReactor* CreateOrUpdateInstallation(
      grpc::CallbackServerContext* context, const v1::CreateOrUpdateInstallationRequest* request,
      v1::CreateOrUpdateInstallationResponse* response) override;
  grpc::ServerUnaryReactor* BatchCreateOrUpdateInstallations(
      grpc::CallbackServerContext* context,
      const v1::BatchCreateOrUpdateInstallationsRequest* request,
      v1::BatchCreateOrUpdateInstallationsResponse* response) override;
  grpc::ServerUnaryReactor* GetInstallation(grpc::CallbackServerContext* context,
                                            const v1::GetInstallationRequest* request,
                                            v1::Installation* response) override;
  grpc::ServerUnaryReactor* PatchInstallation(grpc::CallbackServerContext* context,
                                              const v1::PatchInstallationRequest* request,
                                              v1::Installation* response) override;
  grpc::ServerUnaryReactor* DeleteInstallation(grpc::CallbackServerContext* context,
                                               const v1::DeleteInstallationRequest* request,
                                               v1::DeleteInstallationResponse* response) override;
  grpc::ServerUnaryReactor* SendNotification(grpc::CallbackServerContext* context,
                                             const v1::SendNotificationRequest* request,
                                             v1::SendNotificationResponse* response) override;
  grpc::ServerUnaryReactor* CancelNotification(grpc::CallbackServerContext* context,
                                               const v1::CancelNotificationRequest* request,
                                               v1::CancelNotificationResponse* response) override;
  grpc::ServerUnaryReactor* ListScheduledNotifications(
      grpc::CallbackServerContext* context, const v1::ListScheduledNotificationsRequest* request,
      v1::ListScheduledNotificationsResponse* response) override;
  static constexpr int kMaxScheduledListed = 1000;
  grpc::ServerUnaryReactor* GetNotification(grpc::CallbackServerContext* context,
                                            const v1::GetNotificationRequest* request,
                                            v1::NotificationStatus* response) override;

 private:
  // The hub the caller may act on with `right`, or the status to answer. The caller keeps the
  // runtime (shared) for as long as it uses the settings, whatever the catalog does meanwhile.
  Result<HubPtr> authorize(grpc::CallbackServerContext* context, const std::string& hub,
                           Right right) const;
  // authorize(), then the request's installation id checked.
  Result<HubPtr> authorizeInstallation(grpc::CallbackServerContext* context, const std::string& hub,
                                       const std::string& id, Right right) const;
  Worker& nextWorker();
  // Runs `work(worker, reactor)` on the next worker's thread and returns the reactor, which
  // `work` must finish.
  template <typename Work>
  grpc::ServerUnaryReactor* onWorker(grpc::CallbackServerContext* context, Work work) {
    return runOnWorker(context, nextWorker(), std::move(work));
  }

  const Config& config_;
  const HubCatalog& catalog_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::atomic<size_t> next_worker_{0};
};

// Error -> gRPC status, keeping the message.
grpc::Status toStatus(const Error& error);

int64_t unixNow();

// The name of the key whose secret signed the call's SharedAccessSignature. `secret_of(name,
// previous)` gives a key's secret, or with previous=true the secret it had before a rotation
// while that is still accepted; nothing for an unknown key. Any thread.
Result<std::string> verifySignature(
    grpc::CallbackServerContext* context,
    const std::function<std::optional<std::string>(std::string_view key_name, bool previous)>&
        secret_of);

}  // namespace pushhub::gateway
