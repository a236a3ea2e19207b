// Identifiers: random UUIDs from an injected generator, and validation of the
// identifiers clients send us.
#ifndef NAVARCH_BASE_IDS_H_
#define NAVARCH_BASE_IDS_H_

#include <string>
#include <string_view>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace navarch {

// A random (version 4) UUID in canonical lowercase form.
std::string NewUuid(absl::BitGenRef rng);

// Node and instance ids: 1-253 characters of [A-Za-z0-9._:-]. `what` names the
// field in the error ("node_id").
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// Bounded free text: at most `max_bytes` bytes of valid UTF-8.
absl::Status ValidateText(absl::string_view what, absl::string_view text,
                          size_t max_bytes);

}  // namespace navarch

#endif  // NAVARCH_BASE_IDS_H_
