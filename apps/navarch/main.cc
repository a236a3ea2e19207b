// navarch: the operator CLI. Thin: the terminal and the real clock; the
// commands are in navarch::cli.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "navarch/base/clock.h"
#include "navarch/cli/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  navarch::cli::RunOptions options;
  // Colour only for a person at a terminal (https://no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  options.color = isatty(STDOUT_FILENO) == 1 &&
                  (no_color == nullptr || no_color[0] == '\0') &&
                  !(term != nullptr && std::strcmp(term, "dumb") == 0);
  return navarch::cli::Run(args, std::cout, std::cerr,
                           navarch::RealClock::Default(), options);
}
