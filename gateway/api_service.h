#pragma once
// The pushhub.v1.PushHub gRPC service: a thin front end over HubService, which authorizes,
// validates and does the work. A handler runs on gRPC's thread only to hand the request over; the
// call is finished from whichever thread HubService answers on.

#include <boost/asio/post.hpp>

#include <memory>
#include <string_view>
#include <vector>

#include "gateway/hub_service.h"
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
  // `hubs` must outlive the service (and the gRPC server).
  explicit ApiService(HubService& hubs) : hubs_(hubs) {}

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
  grpc::ServerUnaryReactor* ListNotifications(grpc::CallbackServerContext* context,
                                              const v1::ListNotificationsRequest* request,
                                              v1::ListNotificationsResponse* response) override;
  grpc::ServerUnaryReactor* ListInstallations(grpc::CallbackServerContext* context,
                                              const v1::ListInstallationsRequest* request,
                                              v1::ListInstallationsResponse* response) override;
  grpc::ServerUnaryReactor* GetNotification(grpc::CallbackServerContext* context,
                                            const v1::GetNotificationRequest* request,
                                            v1::NotificationStatus* response) override;

 private:
  HubService& hubs_;
};

// Error -> gRPC status, keeping the message.
grpc::Status toStatus(const Error& error);

// The call's `authorization` metadata entry; empty when there is none. Valid during the handler.
std::string_view authorizationOf(grpc::CallbackServerContext* context);

}  // namespace pushhub::gateway
