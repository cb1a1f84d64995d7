#pragma once
// HubService: a hub's operations, whatever the transport. The gRPC PushHub service (and the Azure
// REST front end) only translate their wire format to and from the v1 messages, and an Error to
// their status; everything else is here, written once, so every surface answers alike:
//   - authorization: a SharedAccessSignature whose key the hub has, whose sr covers the hub
//     (sas::covers), and whose key holds the operation's right (Listen, Send or Manage);
//   - validation: a refusal names the field and the limit, and nothing is stored;
//   - the work itself, on a worker's thread (Redis).
//
// Threads: an operation may be called from any thread. `done` is called exactly once: on the
// calling thread when the request is refused before any work starts, else on a worker's thread
// (the calling one when called from a worker, as the REST front end is; else the next worker,
// round robin).
// `authorization` and the request are read before the call returns; a response must stay alive
// until `done` is called, and is complete only when `done` gets success.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "gateway/config.h"
#include "gateway/hub_catalog.h"
#include "gateway/worker.h"
#include "pushhub/v1/pushhub.pb.h"

namespace pushhub::gateway {

class HubService {
 public:
  using Done = std::function<void(Result<void>)>;

  // `config`, `catalog` and the workers must outlive the service.
  HubService(const Config& config, const HubCatalog& catalog,
             std::vector<std::unique_ptr<Worker>>& workers);

  // `authorization`: the header (or metadata) value the caller sent; empty when none.
  // Installations: Listen for one, Manage for a batch.
  void createOrUpdateInstallation(std::string_view authorization,
                                  const v1::CreateOrUpdateInstallationRequest& request, Done done);
  static constexpr int kMaxBatchInstallations = 1000;
  void batchCreateOrUpdateInstallations(std::string_view authorization,
                                        const v1::BatchCreateOrUpdateInstallationsRequest& request,
                                        v1::BatchCreateOrUpdateInstallationsResponse* response,
                                        Done done);
  void getInstallation(std::string_view authorization, const v1::GetInstallationRequest& request,
                       v1::Installation* response, Done done);
  void patchInstallation(std::string_view authorization,
                         const v1::PatchInstallationRequest& request, v1::Installation* response,
                         Done done);
  void deleteInstallation(std::string_view authorization,
                          const v1::DeleteInstallationRequest& request,
                          v1::DeleteInstallationResponse* response, Done done);
  // Sends (Send right): a test send answers once its outcome is final (at most 30 s).
  void sendNotification(std::string_view authorization, const v1::SendNotificationRequest& request,
                        v1::SendNotificationResponse* response, Done done);
  void cancelNotification(std::string_view authorization,
                          const v1::CancelNotificationRequest& request, Done done);
  static constexpr int kMaxScheduledListed = 1000;
  void listScheduledNotifications(std::string_view authorization,
                                  const v1::ListScheduledNotificationsRequest& request,
                                  v1::ListScheduledNotificationsResponse* response, Done done);
  void getNotification(std::string_view authorization, const v1::GetNotificationRequest& request,
                       v1::NotificationStatus* response, Done done);
  // The latest sends, newest first, without their failures (Manage).
  static constexpr int kMaxNotificationsListed = registry::NotificationQueue::kRecentKept;
  void listNotifications(std::string_view authorization,
                         const v1::ListNotificationsRequest& request,
                         v1::ListNotificationsResponse* response, Done done);

  // Every installation and registration of the hub, a page at a time (Manage): for export.
  static constexpr int kMaxInstallationsListed = 1000;
  void listInstallations(std::string_view authorization,
                         const v1::ListInstallationsRequest& request,
                         v1::ListInstallationsResponse* response, Done done);

  // Registrations (anh-wire.md 7): registry::Installations with `registration` set, in the same
  // store and targeted by tags alike. `id` is the client's registration id (without
  // kRegistrationIdPrefix). Listen: one registration, a new id, a lookup by channel; Manage:
  // listing all or by tag. An If-Match value (absent: none) admits a registration by
  // registry::etagMatches; a refusal is FAILED_PRECONDITION, a missing one NOT_FOUND.
  //
  // Creates or replaces `registration` (its id set, as rest::registrationFromXml makes it); with
  // `if_match` only replaces an existing one it admits. `stored`: as stored, with its ETag.
  void putRegistration(std::string_view authorization, const std::string& hub,
                       registry::Installation registration, std::optional<std::string> if_match,
                       registry::Installation* stored, Done done);
  void getRegistration(std::string_view authorization, const std::string& hub,
                       const std::string& id, registry::Installation* found, Done done);
  void deleteRegistration(std::string_view authorization, const std::string& hub,
                          const std::string& id, std::optional<std::string> if_match, Done done);
  // A fresh id in Azure's shape ("{19 digits}-{19 digits}-1"); nothing is stored until a put.
  void createRegistrationId(std::string_view authorization, const std::string& hub, std::string* id,
                            Done done);
  struct RegistrationQuery {
    enum class Kind { kAll, kTag, kChannel };
    Kind kind = Kind::kAll;
    std::string tag;                                          // kTag
    registry::Platform platform = registry::Platform::kApns;  // kChannel
    std::string channel;                                      // kChannel
    size_t top = kMaxRegistrationsListed;                     // 1 to kMaxRegistrationsListed
    std::string continuation;  // from the previous page, "" for the first
  };
  struct RegistrationPage {
    std::vector<registry::Installation> registrations;
    std::string continuation;  // "" on the last page
  };
  static constexpr size_t kMaxRegistrationsListed = 100;
  // One page, in a stable order (bucket, then id): registrations written meanwhile may or may
  // not show, none is listed twice.
  void listRegistrations(std::string_view authorization, const std::string& hub,
                         RegistrationQuery query, RegistrationPage* page, Done done);

 private:
  // The hub the caller may act on with `right`. The caller keeps the runtime (shared) for as
  // long as it uses the settings, whatever the catalog does meanwhile.
  Result<HubPtr> authorize(std::string_view authorization, const std::string& hub,
                           Right right) const;
  // authorize(), then the installation's or registration's id checked (an error names
  // `id_field`).
  Result<HubPtr> authorizeRecord(std::string_view authorization, const std::string& hub,
                                 const std::string& id, std::string_view id_field,
                                 Right right) const;
  // Runs `work(worker)` at once when called on a worker's thread, else posts it to the next
  // worker (round robin).
  template <typename Work>
  void onWorker(Work work);

  const Config& config_;
  const HubCatalog& catalog_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::atomic<size_t> next_worker_{0};
};

int64_t unixNow();

// A fresh registration id in Azure's shape, "{19 digits}-{19 digits}-1" (128 random bits less
// the modulo). Any thread.
std::string newRegistrationId();

// The name of the key whose secret signed `authorization` (a SharedAccessSignature), whose sr
// must cover `resource_path` (sas::covers: "/<hub>" for a hub's calls, "/" for the namespace's).
// `secrets_of(name)` gives the secrets a key's tokens may be signed with: its secret, and the one
// it had before a rotation while that is still accepted; none for an unknown key. Any thread.
Result<std::string> verifySignature(
    std::string_view authorization, std::string_view resource_path,
    const std::function<std::vector<std::string>(std::string_view key_name)>& secrets_of);

}  // namespace pushhub::gateway
