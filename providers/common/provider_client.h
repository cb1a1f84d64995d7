#pragma once
// ProviderClient joins one Provider (encode/classify, no I/O) to one ConnectionPool (the I/O):
// one per worker per hub per platform, living on that worker's io_context.
//
// send() turns every way a send can end into exactly one Outcome:
// - encode error            -> kPermanentBadRequest ("InvalidNotificationFormat"), no I/O;
// - transport error         -> kRetryBackoff ("PnsUnreachable"), reason = the error text;
// - kRefreshAuth            -> Provider::onAuthRejected(), re-encode and retry once, then report
//                              whatever the retry gives;
// - recycle_connection      -> the connection that carried the response is drained and replaced.
//
// Threading: every member function runs on the io_context's thread; `done` is called there,
// never from inside send() itself.

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>

#include "providers/common/connection_pool.h"
#include "providers/common/provider.h"

namespace pushhub::providers {

class ProviderClient {
 public:
  using Done = std::function<void(Outcome)>;

  ProviderClient(boost::asio::io_context& ioc, std::unique_ptr<Provider> provider,
                 ConnectionPool::Options pool_options);
  ProviderClient(const ProviderClient&) = delete;
  ProviderClient& operator=(const ProviderClient&) = delete;

  // Sends one notification to one target; `done` is called exactly once. Pass rvalues to avoid
  // copies: the target and notification are kept until the outcome is final (an auth retry
  // re-encodes them).
  void send(Target target, Notification notification, Done done);

  size_t inFlight() const { return in_flight_; }
  Provider& provider() { return *provider_; }
  ConnectionPool& pool() { return pool_; }

 private:
  struct Send;
  void start(std::shared_ptr<Send> send);
  void onResponse(std::shared_ptr<Send> send, Result<Response> response);

  boost::asio::io_context& ioc_;
  std::unique_ptr<Provider> provider_;
  ConnectionPool pool_;
  size_t in_flight_ = 0;
};

}  // namespace pushhub::providers
