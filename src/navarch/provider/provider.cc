#include "navarch/provider/provider.h"

#include "navarch/base/status.h"

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
  if (status.ok()) return ProviderErrorClass::kNone;
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    return ProviderErrorClass::kCapacity;
  }
  return IsPermanentError(status) ? ProviderErrorClass::kInvalid
                                  : ProviderErrorClass::kTransient;
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
