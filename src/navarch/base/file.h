// Small files a process keeps between runs (the agent's node token).
#ifndef NAVARCH_BASE_FILE_H_
#define NAVARCH_BASE_FILE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace navarch {

// The whole file. NOT_FOUND when it does not exist; other errors name the
// path and errno's words.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Replaces `path` with `contents` so that a reader (or a crash) sees either
// the old file or the whole new one, never a part: written to a temporary
// file beside it with `mode`, flushed to disk, renamed over it, and the
// folder flushed. The folder must exist.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& contents, mode_t mode);

}  // namespace navarch

#endif  // NAVARCH_BASE_FILE_H_
