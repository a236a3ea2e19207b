// PCI addresses as drivers print them. NVML says "00000000:3B:00.0" (8-digit
// domain, upper case, with the function); the kernel log's XID lines say
// "0000:3b:00" (4-digit domain, lower case, no function). Both name the same
// GPU, so we compare parsed addresses, never strings.
#ifndef NAVARCH_AGENT_GPU_PCI_H_
#define NAVARCH_AGENT_GPU_PCI_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace navarch::agent {

struct PciAddress {
  uint32_t domain = 0;
  uint32_t bus = 0;
  uint32_t device = 0;
  std::optional<uint32_t> function;

  // Same GPU: the function is ignored (XID lines omit it; a GPU is function 0).
  bool SameDevice(const PciAddress& o) const {
    return domain == o.domain && bus == o.bus && device == o.device;
  }
  // "0000:3b:00.0" (function 0 when absent).
  std::string ToString() const;
};

// Parses "[domain:]bus:device[.function]" in hex, case-insensitively. The
// domain has 4 or 8 digits, bus and device 2, the function 1. Surrounding
// whitespace and a "PCI:" prefix are accepted.
std::optional<PciAddress> ParsePciAddress(absl::string_view text);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_GPU_PCI_H_
