// Identifiers: random UUIDs from an injected generator, and validation of the
// identifiers clients send us.
#ifndef NAVARCH_BASE_IDS_H_
#define NAVARCH_BASE_IDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace navarch {

// A random (version 4) UUID in canonical lowercase form.
std::string NewUuid(absl::BitGenRef rng);
// The version 4 UUID made of `hi` and `lo` (their version and variant bits
// overwritten), in canonical lowercase form: for UUIDs derived from a hash
// (the simulator's GPUs). NewUuid(rng) is UuidFromBits(rng(), rng()).
std::string UuidFromBits(uint64_t hi, uint64_t lo);

// Node and instance ids: 1-253 characters of [A-Za-z0-9._:-]. `what` names the
// field in the error ("node_id").
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// Bounded free text: at most `max_bytes` bytes of valid UTF-8.
absl::Status ValidateText(absl::string_view what, absl::string_view text,
                          size_t max_bytes);

}  // namespace navarch

#endif  // NAVARCH_BASE_IDS_H_
