// SHA-256 as lower-case hex: request signing (SigV4), idempotency tokens that
// must fit a cloud's length limit, and the checksums of what the control
// plane serves to new machines.
#ifndef NAVARCH_NET_DIGEST_H_
#define NAVARCH_NET_DIGEST_H_

#include <string>

#include "absl/strings/string_view.h"

namespace navarch {

std::string Sha256Hex(absl::string_view data);

}  // namespace navarch

#endif  // NAVARCH_NET_DIGEST_H_
