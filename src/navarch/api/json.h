// The JSON shape of our messages for people and scripts (CLI `-o json`, the
// REST API): protobuf's JSON mapping with upstream's field names
// (`node_id`, `last_heartbeat`), enum names as strings
// ("NODE_STATUS_ACTIVE"), RFC 3339 timestamps, and every scalar, enum,
// repeated and map field present, even when zero or empty, so that
// `jq '.[] | .status'` never meets a missing key. Message fields that are
// unset (a timestamp that never happened, such as `terminated_at` of a live
// instance) are left out, as protobuf's mapping does: test them with
// `has("terminated_at")` or `// empty`.
#ifndef NAVARCH_API_JSON_H_
#define NAVARCH_API_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace navarch {

nlohmann::json ToJson(const google::protobuf::Message& message);

// Parses the protobuf JSON mapping (field names in either form). Unknown
// fields are an error naming them.
absl::Status FromJson(absl::string_view json,
                      google::protobuf::Message* message);

}  // namespace navarch

#endif  // NAVARCH_API_JSON_H_
