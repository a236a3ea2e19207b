// Opens the store the configuration names, so the control plane does not
// depend on any one backend.
#ifndef NAVARCH_STORE_STORE_FACTORY_H_
#define NAVARCH_STORE_STORE_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "navarch/store/store.h"

namespace navarch {

// `backend`: "memory" (nothing survives a restart), "sqlite" (`path` is the
// database file, created with its directories) or "postgres" (`dsn` is the
// libpq connection string; several control planes may share the database,
// and the control plane elects a leader among them: leader_lease.h).
// INVALID_ARGUMENT for an unknown backend or a missing path or
// DSN, and the backend's own error otherwise.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& backend,
                                                 const std::string& path,
                                                 const std::string& dsn = "");

}  // namespace navarch

#endif  // NAVARCH_STORE_STORE_FACTORY_H_
