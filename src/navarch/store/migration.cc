#include "navarch/store/migration.h"

#include "absl/strings/str_cat.h"

namespace navarch {

absl::Status CheckMigrationHistory(const std::vector<Migration>& migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema migration ", migrations[i].name, " has version ",
                       migrations[i].version, ", expected ", i + 1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<const Migration*> NextMigration(
    const std::vector<Migration>& migrations, int64_t current) {
  const int64_t latest = static_cast<int64_t>(migrations.size());
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", current,
        " is newer than this binary knows (", latest,
        "): it was written by a newer Navarch; run that version, or restore "
        "a backup taken before the upgrade"));
  }
  if (current == latest) return nullptr;
  return &migrations[current];
}

}  // namespace navarch
