#include "navarch/agent/gpu/pci.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace navarch::agent {
namespace {

// Reads exactly `digits` hex digits from the front of `s`.
std::optional<uint32_t> Hex(absl::string_view& s, size_t digits) {
  if (s.size() < digits) return std::nullopt;
  uint32_t v = 0;
  for (size_t i = 0; i < digits; ++i) {
    char c = s[i];
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
    int d = absl::ascii_isdigit(static_cast<unsigned char>(c))
                ? c - '0'
                : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    v = v * 16 + static_cast<uint32_t>(d);
  }
  s.remove_prefix(digits);
  return v;
}

bool Consume(absl::string_view& s, char c) {
  if (s.empty() || s.front() != c) return false;
  s.remove_prefix(1);
  return true;
}

size_t HexRun(absl::string_view s) {
  size_t n = 0;
  while (n < s.size() && absl::ascii_isxdigit(static_cast<unsigned char>(s[n])))
    ++n;
  return n;
}

}  // namespace

std::string PciAddress::ToString() const {
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus, device,
                         function.value_or(0));
}

std::optional<PciAddress> ParsePciAddress(absl::string_view text) {
  absl::string_view s = absl::StripAsciiWhitespace(text);
  if (s.size() >= 4 && absl::EqualsIgnoreCase(s.substr(0, 4), "pci:"))
    s.remove_prefix(4);
  PciAddress a;
  // With a domain the first run of hex digits is 4 or 8 long; without one it
  // is the 2-digit bus.
  size_t first = HexRun(s);
  if (first == 4 || first == 8) {
    auto domain = Hex(s, first);
    if (!domain || !Consume(s, ':')) return std::nullopt;
    a.domain = *domain;
  } else if (first != 2) {
    return std::nullopt;
  }
  auto bus = Hex(s, 2);
  if (!bus || !Consume(s, ':')) return std::nullopt;
  auto device = Hex(s, 2);
  if (!device) return std::nullopt;
  a.bus = *bus;
  a.device = *device;
  if (Consume(s, '.')) {
    auto fn = Hex(s, 1);
    if (!fn) return std::nullopt;
    a.function = *fn;
  }
  if (!s.empty()) return std::nullopt;
  return a;
}

}  // namespace navarch::agent
