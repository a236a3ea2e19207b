// Conversions between CEL values and JSON (langdef.md "JSON Data
// Conversion"), for building activations from events and reporting results.
#ifndef NAVARCH_CEL_JSON_H_
#define NAVARCH_CEL_JSON_H_

#include "absl/status/statusor.h"
#include "navarch/cel/value.h"
#include "nlohmann/json_fwd.hpp"

namespace navarch::cel {

// null, booleans, strings, arrays and objects map to their CEL namesakes.
// Integral numbers become int (uint only above INT64_MAX), so that event
// fields compare with int literals; numbers with a fraction or exponent
// become double; binary becomes bytes. Fails on invalid UTF-8 in a string
// and on nesting deeper than 1,000 levels.
absl::StatusOr<Value> ValueFromJson(const nlohmann::json& json);

// The reverse. Integers outside +-(2^53-1) become decimal strings and
// non-finite doubles the strings "NaN", "Infinity" and "-Infinity" (JSON
// numbers cannot carry them exactly); bytes become base64 strings; map keys
// become strings (DebugString for keys that are not strings).
nlohmann::json ValueToJson(const Value& value);

}  // namespace navarch::cel

#endif  // NAVARCH_CEL_JSON_H_
