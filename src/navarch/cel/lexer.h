// Splits CEL source text into tokens (langdef.md "Syntax", the lexis).
// Internal.
#ifndef NAVARCH_CEL_LEXER_H_
#define NAVARCH_CEL_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace navarch::cel::internal {

enum class TokenKind : uint8_t {
  kEnd,
  kIdent,
  kInt,  // magnitude in `uint`; the sign comes from the parser
  kUint,
  kDouble,
  kString,  // decoded value in `text`
  kBytes,   // decoded value in `text`
  kTrue,
  kFalse,
  kNull,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kColon,
  kQuestion,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kNot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  uint32_t offset = 0;  // byte offset of the first character
  uint32_t length = 0;  // bytes of source text
  // kInt: the magnitude, which may exceed INT64_MAX only by the one value
  // that `-` turns into INT64_MIN (`int_overflow` says whether it does).
  uint64_t uint = 0;
  bool int_overflow = false;
  double dbl = 0;
  std::string text;  // kIdent: the name; kString, kBytes: the decoded value
};

// Expressions longer than this are rejected before lexing, which bounds the
// work a compile may do (cel-go has a similar code point limit).
inline constexpr size_t kMaxSourceBytes = 100'000;

// Tokenizes `source`; the last token is kEnd. Errors carry "line:col: ".
absl::StatusOr<std::vector<Token>> Lex(absl::string_view source);

// "line:col" (1-based, columns in code points) of byte `offset` in `source`.
std::string Position(absl::string_view source, uint32_t offset);

// An InvalidArgument status "line:col: message" for `offset` in `source`.
absl::Status SourceError(absl::string_view source, uint32_t offset,
                         absl::string_view message);

// How a token is shown in syntax errors: its source text, or "end of input".
std::string Describe(absl::string_view source, const Token& token);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_LEXER_H_
