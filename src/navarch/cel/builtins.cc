#include "navarch/cel/builtins.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/charconv.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/cel/text.h"
#include "re2/re2.h"

namespace navarch::cel::internal {
namespace {

using Kind = Value::Kind;

absl::Status Error(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// The wording of the conformance tests (integer_math.textproto).
absl::Status Overflow() { return Error("return error for overflow"); }

bool Both(const Value& a, const Value& b, Kind kind) {
  return a.kind() == kind && b.kind() == kind;
}

// Arithmetic (langdef.md "Numeric Values", "Overflow"): both operands of one
// type, integer overflow is an error, doubles follow IEEE 754.
absl::Status Add(const Value& a, const Value& b, Value* out) {
  if (a.kind() != b.kind()) return NoSuchOverload("_+_", {&a, &b});
  switch (a.kind()) {
    case Kind::kInt: {
      int64_t r;
      if (__builtin_add_overflow(a.int_value(), b.int_value(), &r)) {
        return Overflow();
      }
      *out = Value::Int(r);
      return absl::OkStatus();
    }
    case Kind::kUint: {
      uint64_t r;
      if (__builtin_add_overflow(a.uint_value(), b.uint_value(), &r)) {
        return Overflow();
      }
      *out = Value::Uint(r);
      return absl::OkStatus();
    }
    case Kind::kDouble:
      *out = Value::Double(a.double_value() + b.double_value());
      return absl::OkStatus();
    case Kind::kString:
      *out = Value::String(absl::StrCat(a.string_value(), b.string_value()));
      return absl::OkStatus();
    case Kind::kBytes:
      *out = Value::Bytes(absl::StrCat(a.bytes_value(), b.bytes_value()));
      return absl::OkStatus();
    case Kind::kList: {
      const auto& x = a.list_value();
      const auto& y = b.list_value();
      if (y.empty()) {
        *out = a;
      } else if (x.empty()) {
        *out = b;
      } else {
        std::vector<Value> joined;
        joined.reserve(x.size() + y.size());
        joined.insert(joined.end(), x.begin(), x.end());
        joined.insert(joined.end(), y.begin(), y.end());
        *out = Value::List(std::move(joined));
      }
      return absl::OkStatus();
    }
    default:
      return NoSuchOverload("_+_", {&a, &b});
  }
}

absl::Status Subtract(const Value& a, const Value& b, Value* out) {
  if (Both(a, b, Kind::kInt)) {
    int64_t r;
    if (__builtin_sub_overflow(a.int_value(), b.int_value(), &r)) {
      return Overflow();
    }
    *out = Value::Int(r);
  } else if (Both(a, b, Kind::kUint)) {
    uint64_t r;
    if (__builtin_sub_overflow(a.uint_value(), b.uint_value(), &r)) {
      return Overflow();
    }
    *out = Value::Uint(r);
  } else if (Both(a, b, Kind::kDouble)) {
    *out = Value::Double(a.double_value() - b.double_value());
  } else {
    return NoSuchOverload("_-_", {&a, &b});
  }
  return absl::OkStatus();
}

absl::Status Multiply(const Value& a, const Value& b, Value* out) {
  if (Both(a, b, Kind::kInt)) {
    int64_t r;
    if (__builtin_mul_overflow(a.int_value(), b.int_value(), &r)) {
      return Overflow();
    }
    *out = Value::Int(r);
  } else if (Both(a, b, Kind::kUint)) {
    uint64_t r;
    if (__builtin_mul_overflow(a.uint_value(), b.uint_value(), &r)) {
      return Overflow();
    }
    *out = Value::Uint(r);
  } else if (Both(a, b, Kind::kDouble)) {
    *out = Value::Double(a.double_value() * b.double_value());
  } else {
    return NoSuchOverload("_*_", {&a, &b});
  }
  return absl::OkStatus();
}

// Integer division truncates toward zero, as C++ does.
absl::Status Divide(const Value& a, const Value& b, Value* out) {
  if (Both(a, b, Kind::kInt)) {
    const int64_t x = a.int_value();
    const int64_t y = b.int_value();
    if (y == 0) return Error("division by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) return Overflow();
    *out = Value::Int(x / y);
  } else if (Both(a, b, Kind::kUint)) {
    if (b.uint_value() == 0) return Error("division by zero");
    *out = Value::Uint(a.uint_value() / b.uint_value());
  } else if (Both(a, b, Kind::kDouble)) {
    *out = Value::Double(a.double_value() / b.double_value());
  } else {
    return NoSuchOverload("_/_", {&a, &b});
  }
  return absl::OkStatus();
}

// The remainder takes the sign of the dividend (truncated division).
absl::Status Modulo(const Value& a, const Value& b, Value* out) {
  if (Both(a, b, Kind::kInt)) {
    const int64_t x = a.int_value();
    const int64_t y = b.int_value();
    if (y == 0) return Error("modulus by zero");
    // INT64_MIN % -1 traps on x86; cel-go reports it as an overflow.
    if (x == std::numeric_limits<int64_t>::min() && y == -1) return Overflow();
    *out = Value::Int(x % y);
  } else if (Both(a, b, Kind::kUint)) {
    if (b.uint_value() == 0) return Error("modulus by zero");
    *out = Value::Uint(a.uint_value() % b.uint_value());
  } else {
    return NoSuchOverload("_%_", {&a, &b});
  }
  return absl::OkStatus();
}

absl::Status Negate(const Value& a, Value* out) {
  if (a.is_int()) {
    if (a.int_value() == std::numeric_limits<int64_t>::min()) return Overflow();
    *out = Value::Int(-a.int_value());
  } else if (a.is_double()) {
    *out = Value::Double(-a.double_value());
  } else {
    return NoSuchOverload("-_", {&a});
  }
  return absl::OkStatus();
}

// Ordering (langdef.md "Ordering"): numbers across int, uint and double,
// otherwise both operands of one orderable type. NaN orders with nothing.
absl::Status Order(Builtin fn, const Value& a, const Value& b, Value* out) {
  int c;
  if (a.is_number() && b.is_number()) {
    const std::optional<int> r = CompareNumbers(a, b);
    if (!r.has_value()) {
      *out = Value::Bool(false);
      return absl::OkStatus();
    }
    c = *r;
  } else if (Both(a, b, Kind::kString)) {
    // Byte order of UTF-8 is code point order.
    c = a.string_value().compare(b.string_value());
  } else if (Both(a, b, Kind::kBytes)) {
    c = a.bytes_value().compare(b.bytes_value());
  } else if (Both(a, b, Kind::kBool)) {
    c = static_cast<int>(a.bool_value()) - static_cast<int>(b.bool_value());
  } else {
    return NoSuchOverload(BuiltinName(fn), {&a, &b});
  }
  bool r = false;
  switch (fn) {
    case Builtin::kLess:
      r = c < 0;
      break;
    case Builtin::kLessEqual:
      r = c <= 0;
      break;
    case Builtin::kGreater:
      r = c > 0;
      break;
    default:
      r = c >= 0;
      break;
  }
  *out = Value::Bool(r);
  return absl::OkStatus();
}

absl::Status In(const Value& a, const Value& b, Value* out) {
  if (b.is_list()) {
    for (const Value& e : b.list_value()) {
      if (e == a) {
        *out = Value::Bool(true);
        return absl::OkStatus();
      }
    }
    *out = Value::Bool(false);
    return absl::OkStatus();
  }
  if (b.is_map()) {
    *out = Value::Bool(b.map_value().Find(a) != nullptr);
    return absl::OkStatus();
  }
  return NoSuchOverload("@in", {&a, &b});
}

absl::Status Size(const Value& a, Value* out) {
  size_t n;
  switch (a.kind()) {
    case Kind::kString:
      n = CountCodePoints(a.string_value());
      break;
    case Kind::kBytes:
      n = a.bytes_value().size();
      break;
    case Kind::kList:
      n = a.list_value().size();
      break;
    case Kind::kMap:
      n = a.map_value().size();
      break;
    default:
      return NoSuchOverload("size", {&a});
  }
  *out = Value::Int(static_cast<int64_t>(n));
  return absl::OkStatus();
}

absl::Status StringPredicate(Builtin fn, const Value& a, const Value& b,
                             Value* out) {
  if (!Both(a, b, Kind::kString))
    return NoSuchOverload(BuiltinName(fn), {&a, &b});
  const absl::string_view s = a.string_value();
  const absl::string_view t = b.string_value();
  bool r;
  switch (fn) {
    case Builtin::kContains:
      r = absl::StrContains(s, t);
      break;
    case Builtin::kStartsWith:
      r = absl::StartsWith(s, t);
      break;
    default:
      r = absl::EndsWith(s, t);
      break;
  }
  *out = Value::Bool(r);
  return absl::OkStatus();
}

// RE2 syntax; a match anywhere in the string counts (langdef.md "Regular
// Expressions").
absl::Status Matches(const Expr& call, const Value& a, const Value& b,
                     Value* out) {
  if (!Both(a, b, Kind::kString)) return NoSuchOverload("matches", {&a, &b});
  const absl::string_view s = a.string_value();
  const re2::StringPiece text(s.data(), s.size());
  if (call.regex != nullptr) {
    *out = Value::Bool(re2::RE2::PartialMatch(text, *call.regex));
    return absl::OkStatus();
  }
  re2::RE2::Options options;
  options.set_log_errors(false);
  const absl::string_view p = b.string_value();
  const re2::RE2 re(re2::StringPiece(p.data(), p.size()), options);
  if (!re.ok()) {
    return Error(absl::StrCat("invalid regular expression: ", re.error()));
  }
  *out = Value::Bool(re2::RE2::PartialMatch(text, re));
  return absl::OkStatus();
}

// Decimal digits with an optional sign, like Go's strconv.ParseInt(s, 10,
// 64) and ParseUint, which cel-go uses. Returns false on anything else or
// on overflow of the magnitude.
bool ParseDecimal(absl::string_view s, bool allow_sign, bool* negative,
                  uint64_t* magnitude) {
  *negative = false;
  if (allow_sign && !s.empty() && (s[0] == '+' || s[0] == '-')) {
    *negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *magnitude = v;
  return true;
}

absl::Status RangeError(const Value& a, absl::string_view type) {
  return Error(absl::StrCat(type, " overflow: ", a.DebugString(), " is out of ",
                            type, " range"));
}

absl::Status ConversionError(const Value& a, absl::string_view type) {
  return Error(absl::StrCat("cannot convert ", a.DebugString(), " to ", type));
}

absl::Status ToInt(const Value& a, Value* out) {
  switch (a.kind()) {
    case Kind::kInt:
      *out = a;
      return absl::OkStatus();
    case Kind::kUint:
      if (a.uint_value() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return RangeError(a, "int");
      }
      *out = Value::Int(static_cast<int64_t>(a.uint_value()));
      return absl::OkStatus();
    case Kind::kDouble: {
      // Truncates toward zero. Both bounds are exclusive: -2^63 itself is
      // out of range (conformance conversions.textproto, as in cel-go).
      const double d = a.double_value();
      if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return RangeError(a, "int");
      }
      *out = Value::Int(static_cast<int64_t>(d));
      return absl::OkStatus();
    }
    case Kind::kString: {
      bool negative;
      uint64_t m;
      if (!ParseDecimal(a.string_value(), true, &negative, &m)) {
        return ConversionError(a, "int");
      }
      const uint64_t limit =
          negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
      if (m > limit) return RangeError(a, "int");
      *out = Value::Int(negative ? static_cast<int64_t>(0 - m)
                                 : static_cast<int64_t>(m));
      return absl::OkStatus();
    }
    default:
      return NoSuchOverload("int", {&a});
  }
}

absl::Status ToUint(const Value& a, Value* out) {
  switch (a.kind()) {
    case Kind::kUint:
      *out = a;
      return absl::OkStatus();
    case Kind::kInt:
      if (a.int_value() < 0) return RangeError(a, "uint");
      *out = Value::Uint(static_cast<uint64_t>(a.int_value()));
      return absl::OkStatus();
    case Kind::kDouble: {
      const double d = a.double_value();
      if (!(d >= 0 && d < 18446744073709551616.0)) return RangeError(a, "uint");
      *out = Value::Uint(static_cast<uint64_t>(d));
      return absl::OkStatus();
    }
    case Kind::kString: {
      bool negative;
      uint64_t m;
      if (!ParseDecimal(a.string_value(), false, &negative, &m)) {
        return ConversionError(a, "uint");
      }
      *out = Value::Uint(m);
      return absl::OkStatus();
    }
    default:
      return NoSuchOverload("uint", {&a});
  }
}

absl::Status ToDouble(const Value& a, Value* out) {
  switch (a.kind()) {
    case Kind::kDouble:
      *out = a;
      return absl::OkStatus();
    case Kind::kInt:
      *out = Value::Double(static_cast<double>(a.int_value()));
      return absl::OkStatus();
    case Kind::kUint:
      *out = Value::Double(static_cast<double>(a.uint_value()));
      return absl::OkStatus();
    case Kind::kString: {
      // Like Go's strconv.ParseFloat: an optional sign, decimal or exponent
      // notation, "inf", "infinity" and "nan" in any case; overflow fails,
      // underflow rounds to zero.
      absl::string_view s = a.string_value();
      bool negative = false;
      if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s.remove_prefix(1);
      }
      if (s.empty() || s[0] == '+' || s[0] == '-') {
        return ConversionError(a, "double");
      }
      double d = 0;
      const auto r = absl::from_chars(s.data(), s.data() + s.size(), d);
      if (r.ptr != s.data() + s.size() ||
          (r.ec != std::errc() &&
           !(r.ec == std::errc::result_out_of_range && d == 0))) {
        return ConversionError(a, "double");
      }
      *out = Value::Double(negative ? -d : d);
      return absl::OkStatus();
    }
    default:
      return NoSuchOverload("double", {&a});
  }
}

absl::Status ToString(const Value& a, Value* out) {
  switch (a.kind()) {
    case Kind::kString:
      *out = a;
      return absl::OkStatus();
    case Kind::kInt:
      *out = Value::String(absl::StrCat(a.int_value()));
      return absl::OkStatus();
    case Kind::kUint:
      *out = Value::String(absl::StrCat(a.uint_value()));
      return absl::OkStatus();
    case Kind::kDouble:
      *out = Value::String(FormatDouble(a.double_value()));
      return absl::OkStatus();
    case Kind::kBool:
      *out = Value::String(a.bool_value() ? "true" : "false");
      return absl::OkStatus();
    case Kind::kBytes:
      if (!IsValidUtf8(a.bytes_value())) {
        return Error("invalid UTF-8 in bytes, cannot convert to string");
      }
      *out = Value::String(std::string(a.bytes_value()));
      return absl::OkStatus();
    default:
      return NoSuchOverload("string", {&a});
  }
}

absl::Status ToBool(const Value& a, Value* out) {
  if (a.is_bool()) {
    *out = a;
    return absl::OkStatus();
  }
  if (!a.is_string()) return NoSuchOverload("bool", {&a});
  // The spellings Go's strconv.ParseBool accepts, as cel-go does.
  const absl::string_view s = a.string_value();
  if (s == "true" || s == "True" || s == "TRUE" || s == "t" || s == "T" ||
      s == "1") {
    *out = Value::Bool(true);
  } else if (s == "false" || s == "False" || s == "FALSE" || s == "f" ||
             s == "F" || s == "0") {
    *out = Value::Bool(false);
  } else {
    return ConversionError(a, "bool");
  }
  return absl::OkStatus();
}

absl::Status ToBytes(const Value& a, Value* out) {
  if (a.is_bytes()) {
    *out = a;
  } else if (a.is_string()) {
    *out = Value::Bytes(std::string(a.string_value()));
  } else {
    return NoSuchOverload("bytes", {&a});
  }
  return absl::OkStatus();
}

}  // namespace

const char* BuiltinName(Builtin fn) {
  switch (fn) {
    case Builtin::kNot:
      return "!_";
    case Builtin::kNegate:
      return "-_";
    case Builtin::kAdd:
      return "_+_";
    case Builtin::kSubtract:
      return "_-_";
    case Builtin::kMultiply:
      return "_*_";
    case Builtin::kDivide:
      return "_/_";
    case Builtin::kModulo:
      return "_%_";
    case Builtin::kEqual:
      return "_==_";
    case Builtin::kNotEqual:
      return "_!=_";
    case Builtin::kLess:
      return "_<_";
    case Builtin::kLessEqual:
      return "_<=_";
    case Builtin::kGreater:
      return "_>_";
    case Builtin::kGreaterEqual:
      return "_>=_";
    case Builtin::kIn:
      return "@in";
    case Builtin::kSize:
      return "size";
    case Builtin::kContains:
      return "contains";
    case Builtin::kStartsWith:
      return "startsWith";
    case Builtin::kEndsWith:
      return "endsWith";
    case Builtin::kMatches:
      return "matches";
    case Builtin::kToInt:
      return "int";
    case Builtin::kToUint:
      return "uint";
    case Builtin::kToDouble:
      return "double";
    case Builtin::kToString:
      return "string";
    case Builtin::kToBool:
      return "bool";
    case Builtin::kToBytes:
      return "bytes";
    case Builtin::kDyn:
      return "dyn";
  }
  return "?";
}

absl::Status NoSuchOverload(absl::string_view fn,
                            absl::Span<const Value* const> args) {
  std::string message = absl::StrCat("no such overload: ", fn, "(");
  for (size_t i = 0; i < args.size(); ++i) {
    absl::StrAppend(&message, i == 0 ? "" : ", ", args[i]->type_name());
  }
  message.push_back(')');
  return absl::InvalidArgumentError(message);
}

absl::Status CallBuiltin(const Expr& call, absl::Span<const Value* const> args,
                         Value* out) {
  const Value& a = *args[0];
  switch (call.fn) {
    case Builtin::kNot:
      if (!a.is_bool()) return NoSuchOverload("!_", {&a});
      *out = Value::Bool(!a.bool_value());
      return absl::OkStatus();
    case Builtin::kNegate:
      return Negate(a, out);
    case Builtin::kAdd:
      return Add(a, *args[1], out);
    case Builtin::kSubtract:
      return Subtract(a, *args[1], out);
    case Builtin::kMultiply:
      return Multiply(a, *args[1], out);
    case Builtin::kDivide:
      return Divide(a, *args[1], out);
    case Builtin::kModulo:
      return Modulo(a, *args[1], out);
    case Builtin::kEqual:
      *out = Value::Bool(a == *args[1]);
      return absl::OkStatus();
    case Builtin::kNotEqual:
      *out = Value::Bool(a != *args[1]);
      return absl::OkStatus();
    case Builtin::kLess:
    case Builtin::kLessEqual:
    case Builtin::kGreater:
    case Builtin::kGreaterEqual:
      return Order(call.fn, a, *args[1], out);
    case Builtin::kIn:
      return In(a, *args[1], out);
    case Builtin::kSize:
      return Size(a, out);
    case Builtin::kContains:
    case Builtin::kStartsWith:
    case Builtin::kEndsWith:
      return StringPredicate(call.fn, a, *args[1], out);
    case Builtin::kMatches:
      return Matches(call, a, *args[1], out);
    case Builtin::kToInt:
      return ToInt(a, out);
    case Builtin::kToUint:
      return ToUint(a, out);
    case Builtin::kToDouble:
      return ToDouble(a, out);
    case Builtin::kToString:
      return ToString(a, out);
    case Builtin::kToBool:
      return ToBool(a, out);
    case Builtin::kToBytes:
      return ToBytes(a, out);
    case Builtin::kDyn:
      *out = a;
      return absl::OkStatus();
  }
  return absl::InternalError("unknown builtin");
}

}  // namespace navarch::cel::internal
