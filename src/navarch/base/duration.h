// Durations in the Go syntax used by upstream config files: "500ms", "30s",
// "5m", "1h30m", "1.5h", "-2s". Units: ns, us (or µs), ms, s, m, h. A bare
// number is an error, except "0" (Go accepts it, and upstream configs use it).
#ifndef NAVARCH_BASE_DURATION_H_
#define NAVARCH_BASE_DURATION_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace navarch {

absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text);

// Prints the shortest Go-style form that parses back to the same value:
// 1h30m, 5m, 30s, 1.5s, 500ms, 250us, 0s. Infinite durations print "inf".
std::string FormatGoDuration(absl::Duration d);

}  // namespace navarch

#endif  // NAVARCH_BASE_DURATION_H_
