#include "navarch/provider/instance_types.h"

namespace navarch {

const std::vector<AbstractInstanceType>& AbstractInstanceTypes() {
  // Upstream's table (configuration.md) plus H200 and B200. a10-1x on GCP is
  // an L4 machine, as upstream maps it: GCP has no A10.
  static const auto* const kTypes = new std::vector<AbstractInstanceType>{
      {"h100-8x", 8, "H100", "gpu_8x_h100_sxm5", "a3-highgpu-8g",
       "p5.48xlarge"},
      {"h100-1x", 1, "H100", "gpu_1x_h100_pcie", "a3-highgpu-1g", ""},
      {"a100-8x", 8, "A100", "gpu_8x_a100", "a2-highgpu-8g", "p4d.24xlarge"},
      {"a100-4x", 4, "A100", "gpu_4x_a100", "a2-highgpu-4g", ""},
      {"a100-1x", 1, "A100", "gpu_1x_a100", "a2-highgpu-1g", ""},
      {"a10-1x", 1, "A10", "gpu_1x_a10", "g2-standard-4", "g5.xlarge"},
      {"l4-1x", 1, "L4", "", "g2-standard-4", "g6.xlarge"},
      {"h200-8x", 8, "H200", "", "a3-ultragpu-8g", "p5e.48xlarge"},
      {"b200-8x", 8, "B200", "gpu_8x_b200_sxm6", "a4-highgpu-8g",
       "p6-b200.48xlarge"},
  };
  return *kTypes;
}

const AbstractInstanceType* FindAbstractInstanceType(absl::string_view name) {
  for (const AbstractInstanceType& t : AbstractInstanceTypes()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string ResolveInstanceType(absl::string_view name, ProviderType type) {
  const AbstractInstanceType* t = FindAbstractInstanceType(name);
  if (t == nullptr) return std::string(name);
  switch (type) {
    case ProviderType::kLambda:
      return std::string(t->lambda);
    case ProviderType::kGcp:
      return std::string(t->gcp);
    case ProviderType::kAws:
      return std::string(t->aws);
    case ProviderType::kFake:
    case ProviderType::kLocal:
      return std::string(name);
  }
  return std::string(name);
}

}  // namespace navarch
