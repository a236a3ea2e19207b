// absl::Status helpers. Errors are values across component boundaries.
#ifndef NAVARCH_BASE_STATUS_H_
#define NAVARCH_BASE_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define NAVARCH_STATUS_CONCAT_INNER_(a, b) a##b
#define NAVARCH_STATUS_CONCAT_(a, b) NAVARCH_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define NAVARCH_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status navarch_status_ = (expr);           \
    if (!navarch_status_.ok()) return navarch_status_; \
  } while (false)

// NAVARCH_ASSIGN_OR_RETURN(auto x, StatusOrExpr()): binds the value or returns
// the error from the enclosing function.
#define NAVARCH_ASSIGN_OR_RETURN(lhs, expr) \
  NAVARCH_ASSIGN_OR_RETURN_IMPL_(           \
      NAVARCH_STATUS_CONCAT_(navarch_statusor_, __LINE__), lhs, expr)
#define NAVARCH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

namespace navarch {

// Prefixes the message of a non-OK status with `context: `, keeping its code.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// The one classifier of retryable statuses (agent, notifier dispatcher,
// provider errors, metrics sources all use it).
//
// True for an error that may pass on a later try of the same request:
// UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL,
// UNKNOWN, CANCELLED. False for OK and for everything else.
bool IsRetryableError(const absl::Status& status);
// True for an error that the same request will meet again (a bad argument,
// a failed precondition, missing rights, an unknown name, an unsupported
// call, a duplicate, lost data): not OK and not retryable. Retrying it
// unchanged is pointless.
bool IsPermanentError(const absl::Status& status);

}  // namespace navarch

#endif  // NAVARCH_BASE_STATUS_H_
