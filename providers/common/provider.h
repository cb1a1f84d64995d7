#pragma once
// The contract every push provider implements (APNs, FCM, WNS): turn one target and one
// rendered notification into a Request, and one Response into an Outcome. No I/O inside: the
// ConnectionPool does the I/O and ProviderClient joins the two.
//
// A Provider instance belongs to one worker (one io_context thread), like the pool it feeds;
// shared state behind it (e.g. a token source) must be thread-safe on its own.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "providers/common/http_message.h"
#include "providers/common/outcome.h"

namespace pushhub::providers {

// One device: its installation (for outcome bookkeeping) and its platform handle.
struct Target {
  std::string installation_id;
  std::string push_channel;  // APNs device token / FCM registration token / WNS channel URI
};

struct Notification {
  std::string body;  // rendered payload, exactly as it goes on the wire
  // Sender-supplied platform headers, e.g. apns-push-type, apns-priority, apns-expiration,
  // apns-collapse-id. Each provider validates the ones it knows and rejects malformed ones.
  std::vector<Header> headers;
  // After this the notification is stale; providers translate it to their TTL header.
  std::optional<std::chrono::system_clock::time_point> expiry;
};

// Remembers a value worked out from one notification (a provider's checked headers), for as long
// as that notification is alive: every target of a send encodes the same notification, so the
// work is done once per send. Holds no reference: a new notification at a dead one's address is
// not mistaken for it. Used on one thread, like the provider that owns it.
template <typename T>
class PerNotification {
 public:
  // The value remembered for `n`, or nullptr when it was worked out for another notification.
  const T* find(const std::shared_ptr<const Notification>& n) const {
    return n.get() == for_ && !owner_.expired() ? &value_ : nullptr;
  }
  const T* remember(const std::shared_ptr<const Notification>& n, T value) {
    value_ = std::move(value);
    for_ = n.get();
    owner_ = n;
    return &value_;
  }

 private:
  const Notification* for_ = nullptr;
  std::weak_ptr<const Notification> owner_;
  T value_{};
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view name() const = 0;
  // Builds the request for one target; an error means this notification can never be sent to
  // this target as is (the caller records it as a permanent bad request). No I/O.
  // `notification` is never null and is shared, unchanged, by every target of a send: a provider
  // that sends the body as is shares it (Request::shared_body, an aliasing pointer into
  // `notification`) rather than copying it per target, and may remember work that depends on the
  // notification alone for as long as that object is alive.
  virtual Result<Request> encode(const Target& target,
                                 const std::shared_ptr<const Notification>& notification) = 0;
  // Classifies a provider response. No I/O.
  virtual Outcome classify(const Response& response) const = 0;
  // Called when classify() returned kRefreshAuth for `rejected`: the next encode() must use a
  // fresh credential (subject to the provider's own rate rules). `rejected.credential_generation`
  // is the Request::credential_generation encode() set for the rejected request, so a provider
  // with an AccessTokenSource calls invalidate(rejected.credential_generation) and many
  // in-flight 401s of one token cause one refresh. The default calls onAuthRejected().
  virtual void onAuthRejected(const Response& rejected) { onAuthRejected(); }
  // Older form for providers that need no response (APNs).
  virtual void onAuthRejected() {}

  // True when encode() can run now (e.g. a valid access token is cached). Called before every
  // encode(): keep it cheap (no allocation, no lock). Default true.
  virtual bool ready() const { return true; }
  // When !ready(): calls `done` on `executor` once encode() can run, or with the error that
  // stops it: kUnauthenticated/kPermissionDenied -> the send's outcome is kConfigError
  // "InvalidCredentials"; anything else (kUnavailable) -> kRetryBackoff "PnsUnreachable".
  // ProviderClient has at most one call outstanding (sends that wait share it); `done` is called
  // exactly once, never from inside whenReady() itself.
  virtual void whenReady(boost::asio::any_io_executor executor,
                         std::function<void(Result<void>)> done) {
    boost::asio::post(executor, [done = std::move(done)] { done({}); });
  }
};

}  // namespace pushhub::providers
