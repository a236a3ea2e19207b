#include "navarch/provider/provider.h"

namespace navarch {

absl::string_view ProviderInstanceStateName(ProviderInstanceState state) {
  switch (state) {
    case ProviderInstanceState::kProvisioning:
      return "provisioning";
    case ProviderInstanceState::kRunning:
      return "running";
    case ProviderInstanceState::kTerminating:
      return "terminating";
    case ProviderInstanceState::kTerminated:
      return "terminated";
  }
  return "unknown";
}

ProviderErrorClass ClassifyProviderError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return ProviderErrorClass::kNone;
    case absl::StatusCode::kResourceExhausted:
      return ProviderErrorClass::kCapacity;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kOutOfRange:
      return ProviderErrorClass::kInvalid;
    default:
      return ProviderErrorClass::kTransient;
  }
}

absl::string_view ProviderErrorClassName(ProviderErrorClass c) {
  switch (c) {
    case ProviderErrorClass::kNone:
      return "none";
    case ProviderErrorClass::kCapacity:
      return "capacity";
    case ProviderErrorClass::kInvalid:
      return "invalid";
    case ProviderErrorClass::kTransient:
      return "transient";
  }
  return "unknown";
}

}  // namespace navarch
