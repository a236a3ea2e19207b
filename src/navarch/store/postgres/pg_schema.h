// The PostgreSQL store's schema, as versioned migrations like SQLite's
// (append only: a released step is never edited), applied under an advisory
// lock so that control planes starting together migrate once.
#ifndef NAVARCH_STORE_POSTGRES_PG_SCHEMA_H_
#define NAVARCH_STORE_POSTGRES_PG_SCHEMA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "navarch/store/migration.h"
#include "navarch/store/postgres/pg_util.h"

namespace navarch::pg {

using ::navarch::Migration;

const std::vector<Migration>& BuiltinMigrations();

// The advisory lock key migrations hold (pg_advisory_lock): "navarch\0".
inline constexpr int64_t kMigrationLockKey = 0x6e61766172636800;

// Brings the database (the session's current schema) to the newest step of
// `migrations`, one transaction per step, holding kMigrationLockKey
// throughout. Returns the schema version. FAILED_PRECONDITION for a
// database newer than `migrations` or a schema that has tables but is not a
// Navarch one.
absl::StatusOr<int> Migrate(Session& session,
                            const std::vector<Migration>& migrations);

}  // namespace navarch::pg

#endif  // NAVARCH_STORE_POSTGRES_PG_SCHEMA_H_
