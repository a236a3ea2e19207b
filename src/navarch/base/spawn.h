// What every child process Navarch starts gets (the agent's health-check
// runner, the pool manager's command metrics source): its own process group,
// so a timeout can kill the whole tree; no blocked signals and default
// dispositions for the termination signals, because our binaries block
// SIGTERM, SIGINT and SIGHUP in every thread (they wait for them with
// sigwait) and a child would inherit that and could not be stopped.
#ifndef NAVARCH_BASE_SPAWN_H_
#define NAVARCH_BASE_SPAWN_H_

#include <signal.h>
#include <spawn.h>

namespace navarch {

// Initializes `attr` (the caller destroys it).
inline void InitChildSpawnAttr(posix_spawnattr_t* attr) {
  posix_spawnattr_init(attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(attr, &none);
  posix_spawnattr_setsigdefault(attr, &defaults);
  posix_spawnattr_setpgroup(attr, 0);
  posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP |
                                     POSIX_SPAWN_SETSIGMASK |
                                     POSIX_SPAWN_SETSIGDEF);
}

}  // namespace navarch

#endif  // NAVARCH_BASE_SPAWN_H_
