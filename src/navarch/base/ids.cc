#include "navarch/base/ids.h"

#include <cstdint>
#include <cstring>

#include "absl/random/distributions.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace navarch {

std::string NewUuid(absl::BitGenRef rng) {
  const uint64_t hi = absl::Uniform<uint64_t>(rng);
  const uint64_t lo = absl::Uniform<uint64_t>(rng);
  return UuidFromBits(hi, lo);
}

std::string UuidFromBits(uint64_t hi, uint64_t lo) {
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  // 8-4-4-4-12 hex digits (by hand: StrFormat costs ~30x as much, and a
  // simulated fleet formats hundreds of thousands).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  auto put = [&](size_t at, uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[at + i] = kHex[v & 0xf];
  };
  put(0, hi >> 32, 8);
  put(9, (hi >> 16) & 0xffff, 4);
  put(14, hi & 0xffff, 4);
  put(19, lo >> 48, 4);
  put(24, lo & 0xffffffffffffULL, 12);
  return out;
}

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (id.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, " is required"));
  if (id.size() > 253) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", id.size(), " characters long; the limit is 253"));
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s %s contains the character %s; allowed are letters, digits and . "
          "_ : -",
          what, absl::StrCat("\"", absl::CHexEscape(id.substr(0, 64)), "\""),
          absl::StrCat("'", absl::CHexEscape(absl::string_view(&c, 1)), "'")));
    }
  }
  return absl::OkStatus();
}

namespace {
bool ValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII (nearly all of it) eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i == s.size()) break;
    unsigned char c = s[i];
    int n = c < 0x80           ? 0
            : (c >> 5) == 0x6  ? 1
            : (c >> 4) == 0xe  ? 2
            : (c >> 3) == 0x1e ? 3
                               : -1;
    if (n < 0 || i + n >= s.size() + (n == 0 ? 1 : 0)) {
      if (n != 0) return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size() ||
          (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
        return false;
    }
    i += n + 1;
  }
  return true;
}
}  // namespace

absl::Status ValidateText(absl::string_view what, absl::string_view text,
                          size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", text.size(), " bytes long; the limit is ", max_bytes));
  }
  if (!ValidUtf8(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

}  // namespace navarch
