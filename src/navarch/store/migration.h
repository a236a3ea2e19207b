// Versioned schema migrations, the rules the SQL backends (SQLite,
// PostgreSQL) share; each applies the steps its own way (a transaction per
// step, under its own lock).
#ifndef NAVARCH_STORE_MIGRATION_H_
#define NAVARCH_STORE_MIGRATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace navarch {

struct Migration {
  int version;       // 1, 2, 3, ... without gaps
  std::string name;  // recorded in schema_migrations, for operators
  std::string sql;   // one or more statements
};

// INVALID_ARGUMENT unless the versions are 1, 2, 3, ... in order.
absl::Status CheckMigrationHistory(const std::vector<Migration>& migrations);

// The step that follows schema version `current`: null when `current` is
// the newest of `migrations`; FAILED_PRECONDITION when the database is newer
// than this binary knows (written by a newer Navarch).
absl::StatusOr<const Migration*> NextMigration(
    const std::vector<Migration>& migrations, int64_t current);

}  // namespace navarch

#endif  // NAVARCH_STORE_MIGRATION_H_
