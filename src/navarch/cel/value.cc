#include "navarch/cel/value.h"

#include <cassert>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "navarch/cel/text.h"

namespace navarch::cel {

Value Value::Bool(bool value) {
  Value v;
  v.kind_ = Kind::kBool;
  v.bool_ = value;
  return v;
}

Value Value::Int(int64_t value) {
  Value v;
  v.kind_ = Kind::kInt;
  v.int_ = value;
  return v;
}

Value Value::Uint(uint64_t value) {
  Value v;
  v.kind_ = Kind::kUint;
  v.uint_ = value;
  return v;
}

Value Value::Double(double value) {
  Value v;
  v.kind_ = Kind::kDouble;
  v.double_ = value;
  return v;
}

Value Value::String(std::string value) {
  return Value(Kind::kString,
               std::make_shared<const std::string>(std::move(value)));
}

Value Value::Bytes(std::string value) {
  return Value(Kind::kBytes,
               std::make_shared<const std::string>(std::move(value)));
}

Value Value::List(std::vector<Value> elements) {
  return Value(Kind::kList,
               std::make_shared<const std::vector<Value>>(std::move(elements)));
}

absl::StatusOr<Value> Value::Map(std::vector<std::pair<Value, Value>> entries) {
  auto map = std::make_shared<MapValue>();
  map->entries_ = std::move(entries);
  const auto& list = map->entries_;
  const bool indexed = list.size() > MapValue::kIndexThreshold;
  if (indexed) map->index_.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const Value& key = list[i].first;
    std::optional<MapValue::Key> k;
    if (!key.is_double()) k = MapValue::MakeKey(key);
    if (!k.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported key type: ", key.type_name()));
    }
    bool repeated;
    if (indexed) {
      repeated = !map->index_.emplace(*k, static_cast<uint32_t>(i)).second;
    } else {
      repeated = false;
      for (size_t j = 0; j < i && !repeated; ++j) {
        repeated = *MapValue::MakeKey(list[j].first) == *k;
      }
    }
    if (repeated) {
      return absl::InvalidArgumentError(
          absl::StrCat("repeated key: ", key.DebugString()));
    }
  }
  return Value(Kind::kMap, std::shared_ptr<const MapValue>(std::move(map)));
}

bool Value::bool_value() const {
  assert(kind_ == Kind::kBool);
  return bool_;
}

int64_t Value::int_value() const {
  assert(kind_ == Kind::kInt);
  return int_;
}

uint64_t Value::uint_value() const {
  assert(kind_ == Kind::kUint);
  return uint_;
}

double Value::double_value() const {
  assert(kind_ == Kind::kDouble);
  return double_;
}

absl::string_view Value::string_value() const {
  assert(kind_ == Kind::kString);
  return *static_cast<const std::string*>(rep_.get());
}

absl::string_view Value::bytes_value() const {
  assert(kind_ == Kind::kBytes);
  return *static_cast<const std::string*>(rep_.get());
}

const std::vector<Value>& Value::list_value() const {
  assert(kind_ == Kind::kList);
  return *static_cast<const std::vector<Value>*>(rep_.get());
}

const MapValue& Value::map_value() const {
  assert(kind_ == Kind::kMap);
  return *static_cast<const MapValue*>(rep_.get());
}

absl::string_view Value::KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
  }
  return "unknown";
}

namespace {

std::string DoubleLiteral(double d) {
  // Non-finite doubles have no literal; the conversion function spells them.
  if (std::isnan(d)) return "double(\"NaN\")";
  if (std::isinf(d))
    return d > 0 ? "double(\"Infinity\")" : "-double(\"Infinity\")";
  std::string s = internal::FormatDouble(d);
  // "1" would read back as an int.
  if (s.find_first_of(".e") == std::string::npos) s.append(".0");
  return s;
}

void AppendDebugString(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      out->append("null");
      return;
    case Value::Kind::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return;
    case Value::Kind::kInt:
      absl::StrAppend(out, v.int_value());
      return;
    case Value::Kind::kUint:
      absl::StrAppend(out, v.uint_value(), "u");
      return;
    case Value::Kind::kDouble:
      out->append(DoubleLiteral(v.double_value()));
      return;
    case Value::Kind::kString:
      out->append(internal::QuoteString(v.string_value()));
      return;
    case Value::Kind::kBytes:
      out->append(internal::QuoteBytes(v.bytes_value()));
      return;
    case Value::Kind::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.list_value()) {
        if (!first) out->append(", ");
        first = false;
        AppendDebugString(e, out);
      }
      out->push_back(']');
      return;
    }
    case Value::Kind::kMap: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.map_value()) {
        if (!first) out->append(", ");
        first = false;
        AppendDebugString(key, out);
        out->append(": ");
        AppendDebugString(value, out);
      }
      out->push_back('}');
      return;
    }
  }
}

template <typename T>
int Compare(T a, T b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

}  // namespace

std::string Value::DebugString() const {
  std::string out;
  AppendDebugString(*this, &out);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Value& value) {
  return os << value.DebugString();
}

std::optional<int> CompareNumbers(const Value& a, const Value& b) {
  using K = Value::Kind;
  auto as_double = [](const Value& v) {
    switch (v.kind()) {
      case K::kInt:
        return static_cast<double>(v.int_value());
      case K::kUint:
        return static_cast<double>(v.uint_value());
      default:
        return v.double_value();
    }
  };
  if (a.is_double() || b.is_double()) {
    const double x = as_double(a);
    const double y = as_double(b);
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return Compare(x, y);
  }
  if (a.is_int() && b.is_int()) return Compare(a.int_value(), b.int_value());
  if (a.is_uint() && b.is_uint())
    return Compare(a.uint_value(), b.uint_value());
  if (a.is_int()) {  // int against uint
    if (a.int_value() < 0) return -1;
    return Compare(static_cast<uint64_t>(a.int_value()), b.uint_value());
  }
  if (b.int_value() < 0) return 1;  // uint against int
  return Compare(a.uint_value(), static_cast<uint64_t>(b.int_value()));
}

bool operator==(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.kind() != b.kind()) {
    if (a.is_number() && b.is_number()) {
      const std::optional<int> c = CompareNumbers(a, b);
      return c.has_value() && *c == 0;
    }
    return false;
  }
  switch (a.kind()) {
    case K::kNull:
      return true;
    case K::kBool:
      return a.bool_value() == b.bool_value();
    case K::kInt:
      return a.int_value() == b.int_value();
    case K::kUint:
      return a.uint_value() == b.uint_value();
    case K::kDouble:
      return a.double_value() == b.double_value();  // false for NaN
    case K::kString:
      return a.string_value() == b.string_value();
    case K::kBytes:
      return a.bytes_value() == b.bytes_value();
    case K::kList: {
      const auto& x = a.list_value();
      const auto& y = b.list_value();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (x[i] != y[i]) return false;
      }
      return true;
    }
    case K::kMap: {
      const MapValue& x = a.map_value();
      const MapValue& y = b.map_value();
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x) {
        const Value* other = y.Find(key);
        if (other == nullptr || value != *other) return false;
      }
      return true;
    }
  }
  return false;
}

std::optional<MapValue::Key> MapValue::MakeKey(const Value& key) {
  Key k;
  switch (key.kind()) {
    case Value::Kind::kBool:
      k.tag = Key::Tag::kBool;
      k.bits = key.bool_value() ? 1 : 0;
      return k;
    case Value::Kind::kString:
      k.tag = Key::Tag::kString;
      k.text = key.string_value();
      return k;
    case Value::Kind::kInt:
      k.tag = Key::Tag::kNumber;
      k.negative = key.int_value() < 0;
      k.bits = static_cast<uint64_t>(key.int_value());
      return k;
    case Value::Kind::kUint:
      k.tag = Key::Tag::kNumber;
      k.bits = key.uint_value();
      return k;
    case Value::Kind::kDouble: {
      // Heterogeneous lookup: an integral double finds the int or uint key
      // with the same value (conformance fields.textproto, "in" for maps).
      const double d = key.double_value();
      if (!(d == std::trunc(d))) return std::nullopt;  // also NaN, inf
      k.tag = Key::Tag::kNumber;
      if (d < 0) {
        if (d < -9223372036854775808.0) return std::nullopt;
        k.negative = true;
        k.bits = static_cast<uint64_t>(static_cast<int64_t>(d));
      } else {
        if (d >= 18446744073709551616.0) return std::nullopt;
        k.bits = static_cast<uint64_t>(d);
      }
      return k;
    }
    default:
      return std::nullopt;
  }
}

const Value* MapValue::FindKey(const Key& key) const {
  if (!index_.empty()) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
  }
  for (const auto& entry : entries_) {
    if (*MakeKey(entry.first) == key) return &entry.second;
  }
  return nullptr;
}

const Value* MapValue::Find(const Value& key) const {
  const std::optional<Key> k = MakeKey(key);
  return k.has_value() ? FindKey(*k) : nullptr;
}

const Value* MapValue::Find(absl::string_view key) const {
  if (!index_.empty()) {
    Key k;
    k.tag = Key::Tag::kString;
    k.text = key;
    return FindKey(k);
  }
  // The common case (a small event map) without building a Key.
  for (const auto& entry : entries_) {
    if (entry.first.is_string() && entry.first.string_value() == key) {
      return &entry.second;
    }
  }
  return nullptr;
}

}  // namespace navarch::cel
