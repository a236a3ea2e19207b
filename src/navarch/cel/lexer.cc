#include "navarch/cel/lexer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/charconv.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/cel/text.h"

namespace navarch::cel::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

class Lexer {
 public:
  explicit Lexer(absl::string_view source) : src_(source) {}

  absl::StatusOr<std::vector<Token>> Run() {
    std::vector<Token> tokens;
    while (true) {
      SkipSpaceAndComments();
      Token token;
      token.offset = static_cast<uint32_t>(pos_);
      if (pos_ >= src_.size()) {
        tokens.push_back(std::move(token));
        return tokens;
      }
      absl::Status status = Next(&token);
      if (!status.ok()) return status;
      token.length = static_cast<uint32_t>(pos_ - token.offset);
      tokens.push_back(std::move(token));
    }
  }

 private:
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0';
  }

  absl::Status Error(size_t offset, absl::string_view message) const {
    return SourceError(src_, static_cast<uint32_t>(offset), message);
  }

  void SkipSpaceAndComments() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++pos_;
      } else if (c == '/' && Peek(1) == '/') {
        while (pos_ < src_.size() && src_[pos_] != '\n' && src_[pos_] != '\r') {
          ++pos_;
        }
      } else {
        return;
      }
    }
  }

  absl::Status Next(Token* token) {
    const char c = src_[pos_];
    if (IsDigit(c) || (c == '.' && IsDigit(Peek(1)))) return Number(token);
    if (c == '"' || c == '\'') return String(token, false, false);
    if (IsIdentStart(c)) {
      // String prefixes: r (raw), b (bytes), or both in either order.
      auto is_r = [](char p) { return p == 'r' || p == 'R'; };
      auto is_b = [](char p) { return p == 'b' || p == 'B'; };
      auto is_quote = [](char p) { return p == '"' || p == '\''; };
      if ((is_r(c) || is_b(c)) && is_quote(Peek(1))) {
        pos_ += 1;
        return String(token, is_r(c), is_b(c));
      }
      if (((is_r(c) && is_b(Peek(1))) || (is_b(c) && is_r(Peek(1)))) &&
          is_quote(Peek(2))) {
        pos_ += 2;
        return String(token, true, true);
      }
      return Identifier(token);
    }
    return Punctuation(token);
  }

  absl::Status Identifier(Token* token) {
    const size_t start = pos_;
    while (pos_ < src_.size() && IsIdentChar(src_[pos_])) ++pos_;
    const absl::string_view word = src_.substr(start, pos_ - start);
    if (word == "true") {
      token->kind = TokenKind::kTrue;
    } else if (word == "false") {
      token->kind = TokenKind::kFalse;
    } else if (word == "null") {
      token->kind = TokenKind::kNull;
    } else if (word == "in") {
      token->kind = TokenKind::kIn;
    } else {
      token->kind = TokenKind::kIdent;
      token->text = std::string(word);
    }
    return absl::OkStatus();
  }

  absl::Status Number(Token* token) {
    const size_t start = pos_;
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X') &&
        IsHexDigit(Peek(2))) {
      pos_ += 2;
      uint64_t value = 0;
      bool overflow = false;
      while (IsHexDigit(Peek())) {
        if (value > (std::numeric_limits<uint64_t>::max() >> 4)) {
          overflow = true;
        }
        value = (value << 4) | static_cast<uint64_t>(HexValue(Peek()));
        ++pos_;
      }
      return Integer(token, start, value, overflow);
    }
    while (IsDigit(Peek())) ++pos_;
    bool is_double = false;
    if (Peek() == '.' && IsDigit(Peek(1))) {
      is_double = true;
      ++pos_;
      while (IsDigit(Peek())) ++pos_;
    }
    if ((Peek() == 'e' || Peek() == 'E') &&
        (IsDigit(Peek(1)) ||
         ((Peek(1) == '+' || Peek(1) == '-') && IsDigit(Peek(2))))) {
      is_double = true;
      pos_ += 2;
      while (IsDigit(Peek())) ++pos_;
    }
    const absl::string_view text = src_.substr(start, pos_ - start);
    if (is_double) {
      double d = 0;
      const auto result =
          absl::from_chars(text.data(), text.data() + text.size(), d);
      if (result.ec == std::errc::result_out_of_range && d != 0) {
        // Overflow; underflow rounds to zero, as in cel-go.
        return Error(start, absl::StrCat("invalid double literal: ", text));
      }
      token->kind = TokenKind::kDouble;
      token->dbl = result.ec == std::errc() ? d : 0.0;
      return absl::OkStatus();
    }
    uint64_t value = 0;
    bool overflow = false;
    for (char c : text) {
      const auto digit = static_cast<uint64_t>(c - '0');
      if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
        overflow = true;
      }
      value = value * 10 + digit;
    }
    return Integer(token, start, value, overflow);
  }

  absl::Status Integer(Token* token, size_t start, uint64_t value,
                       bool overflow) {
    const bool is_uint = Peek() == 'u' || Peek() == 'U';
    if (is_uint) ++pos_;
    const absl::string_view text = src_.substr(start, pos_ - start);
    if (overflow) {
      return Error(start, absl::StrCat(is_uint ? "invalid uint literal: "
                                               : "invalid int literal: ",
                                       text));
    }
    token->uint = value;
    if (is_uint) {
      token->kind = TokenKind::kUint;
    } else {
      // 2^63 is only valid after a minus sign; the parser checks.
      if (value > (uint64_t{1} << 63)) {
        return Error(start, absl::StrCat("invalid int literal: ", text));
      }
      token->kind = TokenKind::kInt;
      token->int_overflow = value == (uint64_t{1} << 63);
    }
    return absl::OkStatus();
  }

  // pos_ is at the opening quote.
  absl::Status String(Token* token, bool raw, bool bytes) {
    const size_t start = pos_;
    const char quote = src_[pos_];
    const bool triple = Peek(1) == quote && Peek(2) == quote;
    pos_ += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) {
        return Error(start, "Syntax error: unterminated string literal");
      }
      const char c = src_[pos_];
      if (c == quote) {
        if (!triple) {
          ++pos_;
          break;
        }
        if (Peek(1) == quote && Peek(2) == quote) {
          pos_ += 3;
          break;
        }
      }
      if (!triple && (c == '\n' || c == '\r')) {
        return Error(pos_, "Syntax error: newline in string literal");
      }
      if (c == '\\' && !raw) {
        absl::Status status = Escape(bytes, &out);
        if (!status.ok()) return status;
        continue;
      }
      out.push_back(c);
      ++pos_;
    }
    token->kind = bytes ? TokenKind::kBytes : TokenKind::kString;
    token->text = std::move(out);
    return absl::OkStatus();
  }

  // pos_ is at the backslash. The escapes of langdef.md "String and Bytes
  // Values".
  absl::Status Escape(bool bytes, std::string* out) {
    const size_t start = pos_;
    const char c = Peek(1);
    auto simple = [&](char value) {
      out->push_back(value);
      pos_ += 2;
      return absl::OkStatus();
    };
    switch (c) {
      case '\\':
      case '?':
      case '"':
      case '\'':
      case '`':
        return simple(c);
      case 'a':
        return simple('\a');
      case 'b':
        return simple('\b');
      case 'f':
        return simple('\f');
      case 'n':
        return simple('\n');
      case 'r':
        return simple('\r');
      case 't':
        return simple('\t');
      case 'v':
        return simple('\v');
      default:
        break;
    }
    uint32_t value = 0;
    size_t digits = 0;
    int base = 16;
    if (c == 'x' || c == 'X') {
      digits = 2;
    } else if (c == 'u' || c == 'U') {
      if (bytes) {
        return Error(start, absl::StrCat("Syntax error: \\", std::string(1, c),
                                         " escape is not allowed in bytes"));
      }
      digits = c == 'u' ? 4 : 8;
    } else if (c >= '0' && c <= '3') {
      base = 8;
      digits = 3;
      --pos_;  // the first octal digit is part of the value
    } else {
      return Error(start, "Syntax error: invalid escape sequence");
    }
    pos_ += 2;
    for (size_t i = 0; i < digits; ++i) {
      const char d = Peek();
      const bool ok = base == 16 ? IsHexDigit(d) : (d >= '0' && d <= '7');
      if (!ok) return Error(start, "Syntax error: invalid escape sequence");
      value = value * static_cast<uint32_t>(base) +
              static_cast<uint32_t>(HexValue(d));
      ++pos_;
    }
    if (bytes) {
      // \x and octal escapes denote octets in bytes literals.
      out->push_back(static_cast<char>(value));
      return absl::OkStatus();
    }
    if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
      return Error(start,
                   absl::StrFormat("Syntax error: invalid code point U+%04X "
                                   "in escape sequence",
                                   value));
    }
    AppendUtf8(value, out);
    return absl::OkStatus();
  }

  absl::Status Punctuation(Token* token) {
    const char c = src_[pos_];
    const char n = Peek(1);
    auto one = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 1;
      return absl::OkStatus();
    };
    auto two = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 2;
      return absl::OkStatus();
    };
    switch (c) {
      case '(':
        return one(TokenKind::kLParen);
      case ')':
        return one(TokenKind::kRParen);
      case '[':
        return one(TokenKind::kLBracket);
      case ']':
        return one(TokenKind::kRBracket);
      case '{':
        return one(TokenKind::kLBrace);
      case '}':
        return one(TokenKind::kRBrace);
      case '.':
        return one(TokenKind::kDot);
      case ',':
        return one(TokenKind::kComma);
      case ':':
        return one(TokenKind::kColon);
      case '?':
        return one(TokenKind::kQuestion);
      case '+':
        return one(TokenKind::kPlus);
      case '-':
        return one(TokenKind::kMinus);
      case '*':
        return one(TokenKind::kStar);
      case '/':
        return one(TokenKind::kSlash);
      case '%':
        return one(TokenKind::kPercent);
      case '!':
        return n == '=' ? two(TokenKind::kNe) : one(TokenKind::kNot);
      case '<':
        return n == '=' ? two(TokenKind::kLe) : one(TokenKind::kLt);
      case '>':
        return n == '=' ? two(TokenKind::kGe) : one(TokenKind::kGt);
      case '=':
        if (n == '=') return two(TokenKind::kEq);
        break;
      case '&':
        if (n == '&') return two(TokenKind::kAnd);
        break;
      case '|':
        if (n == '|') return two(TokenKind::kOr);
        break;
      default:
        break;
    }
    // Show the whole (UTF-8) character, not just its first byte.
    size_t len = 1;
    while (pos_ + len < src_.size() &&
           (static_cast<unsigned char>(src_[pos_ + len]) & 0xC0) == 0x80) {
      ++len;
    }
    return Error(pos_,
                 absl::StrCat("Syntax error: token recognition error at: '",
                              src_.substr(pos_, len), "'"));
  }

  absl::string_view src_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(absl::string_view source) {
  if (source.size() > kMaxSourceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("expression is ", source.size(),
                     " bytes long; the limit is ", kMaxSourceBytes));
  }
  const size_t bad = FindInvalidUtf8(source);
  if (bad != source.size()) {
    return SourceError(source, static_cast<uint32_t>(bad),
                       "Syntax error: invalid UTF-8");
  }
  return Lexer(source).Run();
}

std::string Position(absl::string_view source, uint32_t offset) {
  int line = 1;
  int column = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    const char c = source[i];
    if (c == '\n' ||
        (c == '\r' && (i + 1 >= source.size() || source[i + 1] != '\n'))) {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80 && c != '\r') {
      ++column;
    }
  }
  return absl::StrCat(line, ":", column);
}

absl::Status SourceError(absl::string_view source, uint32_t offset,
                         absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(Position(source, offset), ": ", message));
}

std::string Describe(absl::string_view source, const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of input";
  // Keep messages on one line and short: a long or multi-line token (a
  // triple-quoted string) shows its start only.
  constexpr size_t kMaxShown = 32;
  absl::string_view text = source.substr(token.offset, token.length);
  size_t cut = std::min(text.find_first_of("\r\n"), kMaxShown);
  if (cut >= text.size()) return absl::StrCat("'", text, "'");
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;  // not inside a UTF-8 sequence
  }
  return absl::StrCat("'", text.substr(0, cut), "...'");
}

}  // namespace navarch::cel::internal
