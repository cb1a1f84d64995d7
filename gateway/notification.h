#pragma once
// A send request on its way through the queue: checked at the API, stored as the serialized
// pushhub.v1.SendNotificationRequest, split into jobs (bucket ranges), and prepared once per
// worker into what the providers need. Pure functions and immutable data; any thread.

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "expr/tag_expression.h"
#include "expr/template.h"
#include "providers/common/provider.h"
#include "pushhub/v1/pushhub.pb.h"
#include "registry/installation.h"
#include "registry/registry.h"

namespace pushhub::gateway {

inline constexpr size_t kMaxTemplateProperties = 64;
inline constexpr size_t kMaxTemplatePropertyNameLength =
    expr::kMaxPropertyNameLength;  // 120, as Azure
inline constexpr size_t kMaxTemplatePropertyValueBytes = 4096;

Result<registry::Platform> fromProto(v1::Platform platform, std::string_view field);
v1::Platform toProto(registry::Platform platform);

inline constexpr std::chrono::seconds kMaxDeadline{7 * 24 * 3600};
inline constexpr size_t kMaxIdempotencyKeyLength = 128;
inline constexpr size_t kMaxTestTargets = 10;  // a test send reaches at most this many, as Azure
// A batch direct send names at most this many handles, as Azure; a job handles them in units of
// kDirectTargetsPerUnit, as it handles buckets.
inline constexpr size_t kMaxDirectTargets = 1000;
inline constexpr size_t kDirectTargetsPerUnit = 100;
inline uint32_t directUnits(size_t targets) {
  return static_cast<uint32_t>((targets + kDirectTargetsPerUnit - 1) / kDirectTargetsPerUnit);
}
// A scheduled time this close to the past still counts as now (clocks of callers drift).
inline constexpr std::chrono::seconds kScheduleSlack{60};

// Checks everything a send can be refused for before it is stored: audience (direct handles by
// their platform's rules; a WNS channel's host is the hub's to check), payloads and their
// platform limits and headers, template properties, expiry, scheduled time (at most
// `max_schedule_ahead` ahead), deadline. Errors name the field and the limit.
Result<void> validateSendRequest(const v1::SendNotificationRequest& request,
                                 std::chrono::system_clock::time_point now,
                                 std::chrono::seconds max_schedule_ahead);

// A random id of 32 lower-case hex characters.
std::string newNotificationId();

// A run of buckets: [first, last).
struct BucketRange {
  uint32_t first = 0;
  uint32_t last = 0;
  bool operator==(const BucketRange&) const = default;
};
// The buckets of one job, as runs: "0-64", or "3-4,17-19,40-41" for a selective send.
using JobBuckets = std::vector<BucketRange>;
// Appends bucket `b` (past every bucket already there), extending the last run when it follows it.
void appendBucket(JobBuckets& buckets, uint32_t b);
// What a job's payload says: its buckets and, for a job split off another one's lagging
// platform (Dispatcher), that platform alone ("32-64/wns").
struct JobWork {
  JobBuckets buckets;
  std::optional<registry::Platform> only;
};
std::string encodeJob(const JobBuckets& buckets,
                      std::optional<registry::Platform> only = std::nullopt);
Result<JobWork> decodeJob(std::string_view payload);

// How far a job got, per platform, as its progress token in Redis records it: every target of
// the platform in the job's first `done` units has its final outcome counted, and `split_at`,
// when set, is where the platform's remaining units were handed to a child job. Encoded "12"
// while every platform is at the same unit and none is split, else one entry per platform in
// Platform order, "40,40,12@32".
struct JobProgress {
  struct Lane {
    uint32_t done = 0;
    std::optional<uint32_t> split_at;
    bool operator==(const Lane&) const = default;
  };
  std::array<Lane, registry::kPlatformCount> lanes{};
  bool operator==(const JobProgress&) const = default;
};
std::string encodeProgress(const JobProgress& progress);
Result<JobProgress> decodeProgress(std::string_view token);

// The send's tag expression (its `tag` or `tag_expression`), or nullptr for a broadcast or a
// send to one installation. The request must have passed validateSendRequest.
std::shared_ptr<const expr::TagExpression> expressionOf(const v1::SendNotificationRequest& request);

// Splits a send into jobs of at most `buckets_per_job` buckets each: every bucket of the hub,
// or only `candidates` (sorted) when the tag index narrowed them; a send to one installation is
// one job for its bucket; a test send is one job (it stops at kMaxTestTargets). No candidate: no
// job. A direct send's "buckets" are its units of kDirectTargetsPerUnit handles.
std::vector<JobBuckets> planJobs(const v1::SendNotificationRequest& request, uint32_t buckets,
                                 uint32_t buckets_per_job,
                                 const std::optional<std::vector<uint32_t>>& candidates);

// The job payloads of a send to `hub`, planned now: planJobs over the buckets the tag index
// gives its expression (every bucket without one). Calls back on the registry's thread.
void planSend(registry::Registry& registry, const registry::Hub& hub,
              std::shared_ptr<const v1::SendNotificationRequest> request, uint32_t buckets_per_job,
              std::function<void(Result<std::vector<std::string>>)> cb);

registry::Selector selectorOf(const v1::SendNotificationRequest& request);

// What a worker keeps of a stored notification while it delivers it.
struct PreparedNotification {
  std::string id;
  std::string hub;
  registry::Selector selector;
  // Native payloads by platform (index = registry::Platform); empty where none was given.
  std::array<std::shared_ptr<const providers::Notification>, 3> native;
  bool uses_templates = false;
  bool test = false;  // a test send: at most kMaxTestTargets targets, every outcome listed
  // A direct send's handles, in order; empty otherwise.
  struct DirectTarget {
    registry::Platform platform;
    std::string handle;
  };
  std::vector<DirectTarget> direct;
  expr::Properties properties;
  std::optional<std::chrono::system_clock::time_point> expiry;
  // The send's deadline: after it nothing more is handed to a provider.
  std::optional<std::chrono::system_clock::time_point> deliver_by;

  bool expired(std::chrono::system_clock::time_point now) const {
    return (expiry && now >= *expiry) || (deliver_by && now >= *deliver_by);
  }

  // One template rendered for this notification: the provider notification, or the Azure outcome
  // every device with this template gets instead (InvalidNotificationSize when the rendered body
  // is over the platform's limit: APNs 4096, or 5120 for apns-push-type voip, FCM 4096, WNS 5000;
  // InvalidNotificationFormat when a stored template no longer compiles).
  struct Rendered {
    std::shared_ptr<const providers::Notification> notification;
    std::string_view failure;
  };
  // Renders one template of a target: body and header values with the properties; an APNs
  // template's expiry, rendered, becomes the notification's expiry when it is an ISO 8601 time
  // or unix seconds and earlier than the send's own.
  Rendered render(registry::Platform platform, const registry::InstallationTemplate& tpl) const;
};

// The largest body a provider takes for this platform and these (lower-case) headers.
size_t payloadLimit(registry::Platform platform, const std::vector<providers::Header>& headers);

Result<std::shared_ptr<const PreparedNotification>> prepareNotification(std::string id,
                                                                        std::string_view stored);

}  // namespace pushhub::gateway
