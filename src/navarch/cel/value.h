// CEL runtime values: null, bool, int, uint, double, string, bytes, list, map.
//
// A Value is immutable and cheap to copy: scalars are stored inline and
// strings, bytes, lists and maps are shared (reference counted) between
// copies, so a Value may be read from any number of threads at once.
#ifndef NAVARCH_CEL_VALUE_H_
#define NAVARCH_CEL_VALUE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace navarch::cel {

class MapValue;

class Value {
 public:
  // The runtime type of a value. The order is part of no contract.
  enum class Kind : uint8_t {
    kNull,
    kBool,
    kInt,
    kUint,
    kDouble,
    kString,
    kBytes,
    kList,
    kMap,
  };

  // null.
  Value() noexcept : kind_(Kind::kNull), int_(0) {}

  static Value Null() { return Value(); }
  static Value Bool(bool value);
  static Value Int(int64_t value);
  static Value Uint(uint64_t value);
  static Value Double(double value);
  // `value` must be valid UTF-8 (CEL strings are sequences of code points);
  // ValueFromJson and the evaluator only ever create valid strings.
  static Value String(std::string value);
  static Value Bytes(std::string value);
  static Value List(std::vector<Value> elements);
  // Keys must be bool, int, uint or string, and no two keys may be equal
  // (an int and a uint with the same numeric value are equal keys).
  static absl::StatusOr<Value> Map(
      std::vector<std::pair<Value, Value>> entries);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_uint() const { return kind_ == Kind::kUint; }
  bool is_double() const { return kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_bytes() const { return kind_ == Kind::kBytes; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_map() const { return kind_ == Kind::kMap; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kUint ||
           kind_ == Kind::kDouble;
  }

  // Accessors. Calling one that does not match kind() is a programming error
  // (checked with assert in debug builds).
  bool bool_value() const;
  int64_t int_value() const;
  uint64_t uint_value() const;
  double double_value() const;
  absl::string_view string_value() const;  // kString
  absl::string_view bytes_value() const;   // kBytes
  const std::vector<Value>& list_value() const;
  const MapValue& map_value() const;

  // The CEL type name: "null_type", "bool", "int", "uint", "double",
  // "string", "bytes", "list" or "map".
  absl::string_view type_name() const { return KindName(kind_); }
  static absl::string_view KindName(Kind kind);

  // The value written as a CEL literal that evaluates back to an equal value
  // (maps keep insertion order), e.g. `{"a": [1, 2u, 3.0, b"\xff"]}`.
  std::string DebugString() const;

 private:
  Value(Kind kind, std::shared_ptr<const void> rep)
      : kind_(kind), int_(0), rep_(std::move(rep)) {}

  Kind kind_;
  union {
    bool bool_;
    int64_t int_;
    uint64_t uint_;
    double double_;
  };
  // std::string for kString and kBytes, std::vector<Value> for kList,
  // MapValue for kMap; empty otherwise.
  std::shared_ptr<const void> rep_;
};

// CEL equality (langdef.md "Equality"): values of different types are
// unequal, except that int, uint and double compare by numeric value; NaN
// equals nothing, itself included; lists and maps compare element by element.
// Never fails. Note that, as in CEL, NaN makes this relation non-reflexive.
bool operator==(const Value& a, const Value& b);
inline bool operator!=(const Value& a, const Value& b) { return !(a == b); }

// Writes DebugString(); lets tests print values.
std::ostream& operator<<(std::ostream& os, const Value& value);

// Orders two numbers of any numeric kinds: -1, 0 or 1, or nullopt when either
// is NaN. int against uint is exact; a double against an int or uint compares
// in double precision, as the conformance tests require.
std::optional<int> CompareNumbers(const Value& a, const Value& b);

// An immutable CEL map. Iteration follows insertion order.
class MapValue {
 public:
  using Entry = std::pair<Value, Value>;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

  // The value under `key`, or nullptr. Numeric keys match across int, uint
  // and integral doubles (so `{1u: x}[1]` and `{1: x}[1.0]` find x); a key of
  // any other kind (null, a list, ...) is never present.
  const Value* Find(const Value& key) const;
  // The value under the string key `key`, or nullptr.
  const Value* Find(absl::string_view key) const;

 private:
  friend class Value;

  // A key reduced to what identifies it: numbers by value, whatever their
  // kind. `bits` holds the bool, the uint64, or the int64 when `negative`.
  struct Key {
    enum class Tag : uint8_t { kBool, kNumber, kString };
    Tag tag = Tag::kBool;
    bool negative = false;
    uint64_t bits = 0;
    absl::string_view text;

    friend bool operator==(const Key& a, const Key& b) {
      return a.tag == b.tag && a.negative == b.negative && a.bits == b.bits &&
             a.text == b.text;
    }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.tag, k.negative, k.bits, k.text);
    }
  };
  static std::optional<Key> MakeKey(const Value& key);
  const Value* FindKey(const Key& key) const;

  // Below this size a linear scan beats hashing.
  static constexpr size_t kIndexThreshold = 8;

  std::vector<Entry> entries_;
  // Key -> position in entries_; only built for maps above kIndexThreshold.
  // The string_views point into entries_, which never changes once built.
  absl::flat_hash_map<Key, uint32_t> index_;
};

}  // namespace navarch::cel

#endif  // NAVARCH_CEL_VALUE_H_
