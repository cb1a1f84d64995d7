#include "providers/common/provider_client.h"

#include <boost/asio/post.hpp>

namespace pushhub::providers {

struct ProviderClient::Send {
  Target target;
  Notification notification;
  Done done;
  bool auth_retried = false;
};

ProviderClient::ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                               ConnectionPool::Options pool_options)
    : ioc_(ioc), provider_(std::move(provider)), pool_(ioc, std::move(pool_options)) {}

void ProviderClient::send(Target target, Notification notification, Done done) {
  ++in_flight_;
  start(std::make_shared<Send>(
      Send{std::move(target), std::move(notification), std::move(done), false}));
}

void ProviderClient::start(std::shared_ptr<Send> send) {
  Result<Request> request = provider_->encode(send->target, send->notification);
  if (!request) {
    Outcome outcome;
    outcome.kind = OutcomeKind::kPermanentBadRequest;
    outcome.reason = request.error().message;
    outcome.azure_outcome = "InvalidNotificationFormat";
    boost::asio::post(ioc_, [this, send, outcome = std::move(outcome)]() mutable {
      --in_flight_;
      send->done(std::move(outcome));
    });
    return;
  }
  pool_.submit(std::move(request).value(), [this, send](Result<Response> response) mutable {
    onResponse(std::move(send), std::move(response));
  });
}

void ProviderClient::onResponse(std::shared_ptr<Send> send, Result<Response> response) {
  if (!response) {
    Outcome outcome;
    outcome.kind = OutcomeKind::kRetryBackoff;
    outcome.reason = response.error().message;
    outcome.azure_outcome = "PnsUnreachable";
    --in_flight_;
    send->done(std::move(outcome));
    return;
  }
  Outcome outcome = provider_->classify(*response);
  if (outcome.recycle_connection) {
    pool_.recycle(response->connection_id);
  }
  if (outcome.kind == OutcomeKind::kRefreshAuth) {
    provider_->onAuthRejected();
    if (!send->auth_retried) {
      send->auth_retried = true;
      start(std::move(send));
      return;
    }
  }
  --in_flight_;
  send->done(std::move(outcome));
}

}  // namespace pushhub::providers
