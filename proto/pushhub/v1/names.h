#pragma once
// The names people and Azure's wire formats use for the v1 enums, in one place for every front
// end and tool. Pure functions, any thread.

#include <string_view>

#include "pushhub/v1/pushhub.pb.h"

namespace pushhub::v1 {

// Azure's notification states (NotificationDetails' State, .NET's NotificationOutcomeState):
// Enqueued, Processing, Completed, Abandoned, NoTargetFound, Scheduled, Cancelled; else Unknown.
inline std::string_view azureStateName(NotificationStatus::State state) {
  switch (state) {
    case NotificationStatus::STATE_ENQUEUED:
      return "Enqueued";
    case NotificationStatus::STATE_PROCESSING:
      return "Processing";
    case NotificationStatus::STATE_COMPLETED:
      return "Completed";
    case NotificationStatus::STATE_ABANDONED:
      return "Abandoned";
    case NotificationStatus::STATE_NO_TARGET_FOUND:
      return "NoTargetFound";
    case NotificationStatus::STATE_SCHEDULED:
      return "Scheduled";
    case NotificationStatus::STATE_CANCELLED:
      return "Cancelled";
    default:
      return "Unknown";
  }
}

}  // namespace pushhub::v1
