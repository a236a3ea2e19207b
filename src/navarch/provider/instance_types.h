// Abstract instance types ("h100-8x") and what each provider type calls them.
// Keyed by provider *type*, not by the config name, so a provider named
// "my-lambda" resolves like "lambda" (upstream keyed by name and missed it).
#ifndef NAVARCH_PROVIDER_INSTANCE_TYPES_H_
#define NAVARCH_PROVIDER_INSTANCE_TYPES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "navarch/config/config.h"

namespace navarch {

struct AbstractInstanceType {
  absl::string_view name;  // "h100-8x"
  int gpu_count;
  absl::string_view gpu_model;
  // Concrete names; empty where the provider has no such machine.
  absl::string_view lambda;
  absl::string_view gcp;
  absl::string_view aws;
};

// The whole table, in a stable order.
const std::vector<AbstractInstanceType>& AbstractInstanceTypes();

// nullptr unless `name` is an abstract type.
const AbstractInstanceType* FindAbstractInstanceType(absl::string_view name);

// The concrete type for `type`: the mapping where there is one, `name`
// unchanged where `name` is not abstract or the provider type (fake, local)
// takes any name. Empty where `name` is abstract but the provider has no such
// machine; callers treat that as INVALID_ARGUMENT for that provider.
std::string ResolveInstanceType(absl::string_view name, ProviderType type);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_INSTANCE_TYPES_H_
