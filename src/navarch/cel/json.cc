#include "navarch/cel/json.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "navarch/cel/text.h"
#include "nlohmann/json.hpp"

namespace navarch::cel {
namespace {

constexpr int kMaxJsonDepth = 1000;

absl::StatusOr<Value> FromJson(const nlohmann::json& json, int depth) {
  if (depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nests deeper than the limit of ", kMaxJsonDepth));
  }
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::Null();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(json.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::Int(json.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      // nlohmann reads every non-negative integer as unsigned; CEL code
      // writes `x == 13` with an int literal, so keep int where it fits.
      const auto u = json.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::Int(static_cast<int64_t>(u));
      }
      return Value::Uint(u);
    }
    case nlohmann::json::value_t::number_float:
      return Value::Double(json.get<double>());
    case nlohmann::json::value_t::string: {
      const auto& s = json.get_ref<const std::string&>();
      if (!internal::IsValidUtf8(s)) {
        return absl::InvalidArgumentError("invalid UTF-8 in JSON string");
      }
      return Value::String(s);
    }
    case nlohmann::json::value_t::binary: {
      const auto& b = json.get_binary();
      return Value::Bytes(std::string(b.begin(), b.end()));
    }
    case nlohmann::json::value_t::array: {
      std::vector<Value> elements;
      elements.reserve(json.size());
      for (const auto& element : json) {
        absl::StatusOr<Value> v = FromJson(element, depth + 1);
        if (!v.ok()) return v.status();
        elements.push_back(*std::move(v));
      }
      return Value::List(std::move(elements));
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<Value, Value>> entries;
      entries.reserve(json.size());
      for (const auto& [key, element] : json.items()) {
        if (!internal::IsValidUtf8(key)) {
          return absl::InvalidArgumentError("invalid UTF-8 in JSON key");
        }
        absl::StatusOr<Value> v = FromJson(element, depth + 1);
        if (!v.ok()) return v.status();
        entries.emplace_back(Value::String(key), *std::move(v));
      }
      return Value::Map(std::move(entries));
    }
    case nlohmann::json::value_t::discarded:
      break;
  }
  return absl::InvalidArgumentError("discarded JSON value");
}

// The "interoperable" range of langdef.md "JSON Data Conversion".
constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

}  // namespace

absl::StatusOr<Value> ValueFromJson(const nlohmann::json& json) {
  return FromJson(json, 0);
}

nlohmann::json ValueToJson(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return value.bool_value();
    case Value::Kind::kInt: {
      const int64_t i = value.int_value();
      if (i > kMaxSafeInteger || i < -kMaxSafeInteger) return absl::StrCat(i);
      return i;
    }
    case Value::Kind::kUint: {
      const uint64_t u = value.uint_value();
      if (u > static_cast<uint64_t>(kMaxSafeInteger)) return absl::StrCat(u);
      return u;
    }
    case Value::Kind::kDouble: {
      const double d = value.double_value();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      return d;
    }
    case Value::Kind::kString:
      return std::string(value.string_value());
    case Value::Kind::kBytes:
      return absl::Base64Escape(value.bytes_value());
    case Value::Kind::kList: {
      nlohmann::json array = nlohmann::json::array();
      for (const Value& e : value.list_value()) array.push_back(ValueToJson(e));
      return array;
    }
    case Value::Kind::kMap: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& [key, v] : value.map_value()) {
        object[key.is_string() ? std::string(key.string_value())
                               : key.DebugString()] = ValueToJson(v);
      }
      return object;
    }
  }
  return nullptr;
}

}  // namespace navarch::cel
