#include "navarch/store/store_factory.h"

#include "absl/strings/str_cat.h"
#include "navarch/store/memory/memory_store.h"
#include "navarch/store/postgres/postgres_store.h"
#include "navarch/store/sqlite/sqlite_store.h"

namespace navarch {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& backend,
                                                 const std::string& path,
                                                 const std::string& dsn) {
  if (backend == "memory")
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  if (backend == "sqlite") {
    if (path.empty()) {
      return absl::InvalidArgumentError(
          "storage backend sqlite needs a database path");
    }
    SqliteOptions options;
    options.path = path;
    auto store = SqliteStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(*std::move(store));
  }
  if (backend == "postgres") {
    if (dsn.empty()) {
      return absl::InvalidArgumentError(
          "storage backend postgres needs a DSN (storage.dsn)");
    }
    PostgresOptions options;
    options.dsn = dsn;
    auto store = PostgresStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(*std::move(store));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown storage backend \"", backend,
                   "\" (known: memory, sqlite, postgres)"));
}

}  // namespace navarch
