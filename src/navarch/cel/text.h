// Text helpers shared by the lexer, the values and the standard functions:
// UTF-8 handling, number formatting and CEL literal quoting. Internal.
#ifndef NAVARCH_CEL_TEXT_H_
#define NAVARCH_CEL_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace navarch::cel::internal {

// The byte offset of the first invalid UTF-8 sequence in `text`, or
// text.size() when it is all valid. Surrogates and overlong forms are invalid.
size_t FindInvalidUtf8(absl::string_view text);
inline bool IsValidUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == text.size();
}

// The number of code points in valid UTF-8 `text`.
size_t CountCodePoints(absl::string_view text);

// Appends the UTF-8 encoding of `code_point` (at most 0x10FFFF, no surrogate).
void AppendUtf8(uint32_t code_point, std::string* out);

// Formats like Go's strconv.FormatFloat(d, 'g', -1, 64), which is what CEL's
// string(double) produces: the shortest digits that read back to `d`, in
// exponent form below 1e-4 and from 1e6 ("1e+06", "1.5e-07"), else plain
// ("123456", "0.0045"); "+Inf", "-Inf", "NaN".
std::string FormatDouble(double d);

// A CEL string literal (double quoted, escaped) denoting `text`.
std::string QuoteString(absl::string_view text);
// A CEL bytes literal (b"...") denoting `bytes`.
std::string QuoteBytes(absl::string_view bytes);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_TEXT_H_
