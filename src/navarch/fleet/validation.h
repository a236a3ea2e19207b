// Boundaries: what a request may contain. A violation is INVALID_ARGUMENT
// saying what is wrong, checked before anything changes.
#ifndef NAVARCH_FLEET_VALIDATION_H_
#define NAVARCH_FLEET_VALIDATION_H_

#include "absl/status/status.h"
#include "navarch/control_plane.pb.h"

namespace navarch {

inline constexpr int kMaxGpusPerNode = 64;
inline constexpr int kMaxEventsPerReport = 1024;
inline constexpr int kMaxResultsPerReport = 256;
inline constexpr int kMaxMapEntries = 64;
inline constexpr size_t kMaxShortString = 256;  // names, ids, versions, labels
inline constexpr size_t kMaxLongString = 4096;  // messages
inline constexpr size_t kMaxMessageBytes = 4 << 20;

absl::Status ValidateRegister(const RegisterNodeRequest& r);
absl::Status ValidateHeartbeat(const HeartbeatRequest& r);
absl::Status ValidateReportHealth(const ReportHealthRequest& r);
absl::Status ValidateIssueCommand(const IssueCommandRequest& r);
absl::Status ValidateAckCommand(const AckCommandRequest& r);

}  // namespace navarch

#endif  // NAVARCH_FLEET_VALIDATION_H_
