#include "gateway/api_service.h"

namespace pushhub::gateway {
namespace {

// Hands the call to `operation(authorization, done)` and finishes it with what `done` gets.
template <typename Operation>
grpc::ServerUnaryReactor* serve(grpc::CallbackServerContext* context, Operation operation) {
  auto* reactor = context->DefaultReactor();
  operation(authorizationOf(context), [reactor](Result<void> ok) {
    reactor->Finish(ok ? grpc::Status::OK : toStatus(ok.error()));
  });
  return reactor;
}

}  // namespace

grpc::Status toStatus(const Error& error) {
  switch (error.code) {
    case Error::Code::kInvalidArgument:
      return {grpc::StatusCode::INVALID_ARGUMENT, error.message};
    case Error::Code::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, error.message};
    case Error::Code::kUnauthenticated:
      return {grpc::StatusCode::UNAUTHENTICATED, error.message};
    case Error::Code::kPermissionDenied:
      return {grpc::StatusCode::PERMISSION_DENIED, error.message};
    case Error::Code::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, error.message};
    case Error::Code::kAlreadyExists:
      return {grpc::StatusCode::ALREADY_EXISTS, error.message};
    case Error::Code::kAborted:
      return {grpc::StatusCode::ABORTED, error.message};
    case Error::Code::kFailedPrecondition:
      return {grpc::StatusCode::FAILED_PRECONDITION, error.message};
    case Error::Code::kInternal:
      break;
  }
  return {grpc::StatusCode::INTERNAL, error.message};
}

std::string_view authorizationOf(grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

grpc::ServerUnaryReactor* ApiService::CreateOrUpdateInstallation(
    grpc::CallbackServerContext* context, const v1::CreateOrUpdateInstallationRequest* request,
    v1::CreateOrUpdateInstallationResponse* /*response*/) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.createOrUpdateInstallation(authorization, *request, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::BatchCreateOrUpdateInstallations(
    grpc::CallbackServerContext* context,
    const v1::BatchCreateOrUpdateInstallationsRequest* request,
    v1::BatchCreateOrUpdateInstallationsResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.batchCreateOrUpdateInstallations(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::GetInstallation(grpc::CallbackServerContext* context,
                                                      const v1::GetInstallationRequest* request,
                                                      v1::Installation* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.getInstallation(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::PatchInstallation(grpc::CallbackServerContext* context,
                                                        const v1::PatchInstallationRequest* request,
                                                        v1::Installation* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.patchInstallation(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::DeleteInstallation(
    grpc::CallbackServerContext* context, const v1::DeleteInstallationRequest* request,
    v1::DeleteInstallationResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.deleteInstallation(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::SendNotification(grpc::CallbackServerContext* context,
                                                       const v1::SendNotificationRequest* request,
                                                       v1::SendNotificationResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.sendNotification(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::CancelNotification(
    grpc::CallbackServerContext* context, const v1::CancelNotificationRequest* request,
    v1::CancelNotificationResponse* /*response*/) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.cancelNotification(authorization, *request, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::ListScheduledNotifications(
    grpc::CallbackServerContext* context, const v1::ListScheduledNotificationsRequest* request,
    v1::ListScheduledNotificationsResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.listScheduledNotifications(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::ListNotifications(grpc::CallbackServerContext* context,
                                                        const v1::ListNotificationsRequest* request,
                                                        v1::ListNotificationsResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.listNotifications(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::ListInstallations(grpc::CallbackServerContext* context,
                                                        const v1::ListInstallationsRequest* request,
                                                        v1::ListInstallationsResponse* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.listInstallations(authorization, *request, response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ApiService::GetNotification(grpc::CallbackServerContext* context,
                                                      const v1::GetNotificationRequest* request,
                                                      v1::NotificationStatus* response) {
  return serve(context, [&](std::string_view authorization, HubService::Done done) {
    hubs_.getNotification(authorization, *request, response, std::move(done));
  });
}

}  // namespace pushhub::gateway
