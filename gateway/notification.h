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
#include "gateway/template_renderer.h"
#include "providers/common/provider.h"
#include "pushhub/v1/pushhub.pb.h"
#include "registry/installation.h"
#include "registry/registry.h"

namespace pushhub::gateway {

inline constexpr size_t kMaxTemplateProperties = 64;
inline constexpr size_t kMaxTemplatePropertyNameLength = 64;
inline constexpr size_t kMaxTemplatePropertyValueBytes = 4096;

Result<registry::Platform> fromProto(v1::Platform platform, std::string_view field);
v1::Platform toProto(registry::Platform platform);

// Checks everything a send can be refused for before it is stored: audience, payloads and their
// platform limits and headers, template properties, expiry. Errors name the field and the limit.
Result<void> validateSendRequest(const v1::SendNotificationRequest& request,
                                 std::chrono::system_clock::time_point now);

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
std::string encodeJob(const JobBuckets& buckets);
Result<JobBuckets> decodeJob(std::string_view payload);

// The send's tag expression (its `tag` or `tag_expression`), or nullptr for a broadcast or a
// send to one installation. The request must have passed validateSendRequest.
std::shared_ptr<const expr::TagExpression> expressionOf(const v1::SendNotificationRequest& request);

// Splits a send into jobs of at most `buckets_per_job` buckets each: every bucket of the hub,
// or only `candidates` (sorted) when the tag index narrowed them; a send to one installation is
// one job for its bucket. No candidate: no job.
std::vector<JobBuckets> planJobs(const v1::SendNotificationRequest& request, uint32_t buckets,
                                 uint32_t buckets_per_job,
                                 const std::optional<std::vector<uint32_t>>& candidates);

registry::Selector selectorOf(const v1::SendNotificationRequest& request);

// What a worker keeps of a stored notification while it delivers it.
struct PreparedNotification {
  std::string id;
  std::string hub;
  registry::Selector selector;
  // Native payloads by platform (index = registry::Platform); empty where none was given.
  std::array<std::shared_ptr<const providers::Notification>, 3> native;
  bool uses_templates = false;
  TemplateProperties properties;
  std::optional<std::chrono::system_clock::time_point> expiry;

  bool expired(std::chrono::system_clock::time_point now) const { return expiry && now >= *expiry; }
  // Renders one template of a target into a provider notification.
  std::shared_ptr<const providers::Notification> render(
      registry::Platform platform, const registry::InstallationTemplate& tpl) const;
};

Result<std::shared_ptr<const PreparedNotification>> prepareNotification(std::string id,
                                                                        std::string_view stored);

}  // namespace pushhub::gateway
