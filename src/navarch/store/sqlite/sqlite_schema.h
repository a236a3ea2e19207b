// The SQLite schema as an ordered history of migrations. A database records
// the steps applied to it in `schema_migrations`; opening it applies the
// missing ones, each in its own transaction, so a failed step leaves the
// database exactly as the previous step left it.
#ifndef NAVARCH_STORE_SQLITE_SQLITE_SCHEMA_H_
#define NAVARCH_STORE_SQLITE_SQLITE_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "navarch/store/migration.h"

struct sqlite3;

namespace navarch::sqlite {

using ::navarch::Migration;

const std::vector<Migration>& BuiltinMigrations();

// Brings `db` up to the last version of `migrations` and returns it.
// FAILED_PRECONDITION if the database is newer than `migrations` (written by
// a newer binary) or has tables but is not a Navarch database; the error of
// the failing step otherwise.
absl::StatusOr<int> Migrate(sqlite3* db,
                            const std::vector<Migration>& migrations);

// The version recorded in `db` (0: none yet).
absl::StatusOr<int> SchemaVersion(sqlite3* db);

}  // namespace navarch::sqlite

#endif  // NAVARCH_STORE_SQLITE_SQLITE_SCHEMA_H_
