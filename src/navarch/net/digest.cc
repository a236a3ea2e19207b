#include "navarch/net/digest.h"

#include <openssl/sha.h>

#include "absl/strings/escaping.h"

namespace navarch {

std::string Sha256Hex(absl::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(out), sizeof(out)));
}

}  // namespace navarch
