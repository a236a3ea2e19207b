// The user data of a cloud pool that sets none (packaging/user-data/default.sh,
// compiled in): installs the agent package from the control plane
// ({{.PackageURL}}, checked against its SHA-256), writes the agent's
// environment file with {{.ControlPlane}} and {{.BootstrapToken}}, and starts
// the agent's unit. docs/pools.md, "Cloud user data".
#ifndef NAVARCH_POOL_DEFAULT_USER_DATA_H_
#define NAVARCH_POOL_DEFAULT_USER_DATA_H_

namespace navarch {

const char* DefaultUserDataTemplate();

}  // namespace navarch

#endif  // NAVARCH_POOL_DEFAULT_USER_DATA_H_
