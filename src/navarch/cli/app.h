// The navarch command line as a function: arguments in, text and an exit
// code out. main() only adds the process (argv, the terminal, the real
// clock); tests call Run directly with their own streams and a FakeClock.
#ifndef NAVARCH_CLI_APP_H_
#define NAVARCH_CLI_APP_H_

#include <ostream>
#include <string>
#include <vector>

#include "navarch/base/clock.h"

namespace navarch::cli {

// Exit codes: 0 success; 1 the command failed (the reason, once, on stderr);
// 2 the command line is wrong.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

struct RunOptions {
  // Paint statuses with ANSI colours: main sets it when stdout is a terminal
  // and NO_COLOR is unset. JSON is never painted.
  bool color = false;
};

// `args` excludes the program name. Flags also come from the environment
// (NAVARCH_SERVER, NAVARCH_AUTH_TOKEN), read when Run is called.
int Run(const std::vector<std::string>& args, std::ostream& out,
        std::ostream& err, Clock& clock, const RunOptions& options = {});

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_APP_H_
