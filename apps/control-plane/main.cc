// control-plane: the Navarch server. Thin: flags, config, signals; the work is
// in navarch::ControlPlaneServer.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/config/config_loader.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/server.h"
#include "nlohmann/json.hpp"

namespace {

// Upstream's Go flags accept one dash ("-config"); CLI11 reads that as short
// flags. Rewrite the long names we know.
std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    for (const char* name : {"config", "ready-file", "log-level", "log-format",
                             "version", "auth-token", "mint-node-token"}) {
      std::string single = absl::StrCat("-", name);
      if (a == single || a.rfind(single + "=", 0) == 0) a = "-" + a;
    }
    args.push_back(a);
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
  return args;
}

bool WriteReadyFile(const std::string& path, const std::string& grpc_address,
                    const std::string& http_address) {
  nlohmann::json j = {{"grpc_address", grpc_address},
                      {"http_address", http_address},
                      {"pid", static_cast<int>(getpid())}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump() << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// A token given on the command line shows in `ps` and /proc/<pid>/cmdline;
// blank it there once it is read.
void HideToken(int argc, char** argv, const std::string& token) {
  for (int i = 1; i < argc; ++i) {
    char* hit = std::strstr(argv[i], token.c_str());
    if (hit != nullptr) std::memset(hit, 'x', token.size());
  }
}

struct Flags {
  std::string config_path, ready_file, log_level, log_format, auth_token;
  std::string mint_node_token;  // a node id
  bool version = false;
};

// Parses the command line into `f`; an exit code when main should stop.
std::optional<int> ParseFlags(int argc, char** argv, Flags& f) {
  CLI::App app{
      "Navarch control plane: tracks GPU nodes, their health and commands."};
  app.add_option("-c,--config", f.config_path,
                 "YAML configuration file (default: built-in)");
  app.add_option("--ready-file", f.ready_file,
                 "write {\"grpc_address\", \"http_address\", \"pid\"} as "
                 "JSON here once listening");
  app.add_option("--auth-token", f.auth_token,
                 "bearer token with every right (upstream's flag); wins over "
                 "NAVARCH_AUTH_TOKEN. Prefer the environment or auth.tokens: "
                 "a command line is visible to other users");
  app.add_option("--log-level", f.log_level,
                 "debug|info|warn|error (overrides logging.level)");
  app.add_option("--log-format", f.log_format,
                 "json|text (overrides logging.format)");
  app.add_option("--mint-node-token", f.mint_node_token,
                 "print the token of this node id, signed with "
                 "auth.node_token_key of --config, and exit");
  app.add_flag("--version", f.version, "print the version and exit");
  try {
    app.parse(NormalizeArgs(argc, argv));
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (f.version) {
    std::cout << "control-plane " << NAVARCH_VERSION << "\n";
    return 0;
  }
  return std::nullopt;
}

// The configuration file (or the defaults) with the flags applied.
absl::StatusOr<navarch::Config> LoadConfig(const Flags& f) {
  navarch::Config config = navarch::DefaultConfig();
  if (!f.config_path.empty()) {
    auto loaded = navarch::LoadConfigFile(f.config_path);
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid configuration:\n", loaded.status().message()));
    }
    config = std::move(*loaded);
  }
  if (!f.log_level.empty()) {
    auto l = navarch::ParseLogLevel(f.log_level);
    if (!l.ok()) return l.status();
    config.logging.level = *l;
  }
  if (!f.log_format.empty()) {
    auto fmt = navarch::ParseLogFormat(f.log_format);
    if (!fmt.ok()) return fmt.status();
    config.logging.format = *fmt;
  }
  return config;
}

// Upstream's single token: the flag, else the environment. It adds one
// token with every right to those of auth.tokens.
absl::Status AddAuthToken(int argc, char** argv, std::string auth_token,
                          navarch::Config& config) {
  if (!auth_token.empty()) {
    HideToken(argc, argv, auth_token);
  } else if (const char* env = std::getenv("NAVARCH_AUTH_TOKEN")) {
    auth_token = env;
  }
  if (auth_token.empty()) return absl::OkStatus();
  navarch::AuthTokenConfig token;
  token.name = "auth-token";
  token.role = navarch::AuthRole::kOperator;
  token.value = auth_token;
  for (const auto& t : config.auth.tokens) {
    if (t.name == token.name) {
      return absl::InvalidArgumentError(
          "auth.tokens has a token named 'auth-token', the name of the "
          "--auth-token / NAVARCH_AUTH_TOKEN token; rename it");
    }
  }
  config.auth.tokens.push_back(token);
  return absl::OkStatus();
}

// Serves until SIGINT or SIGTERM (blocked in every thread by main); SIGHUP
// reloads the health policy.
int Serve(const navarch::Config& config, const Flags& f,
          const sigset_t& signals, const navarch::Logger& log) {
  navarch::ControlPlaneServer server(config, navarch::RealClock::Default(),
                                     log);
  // Once it serves: at once, or (a standby replica) when it takes over.
  server.set_on_serving([&] {
    if (!f.ready_file.empty() &&
        !WriteReadyFile(f.ready_file, server.grpc_address(),
                        server.http_address())) {
      log.Error("cannot write the ready file", {{"path", f.ready_file}});
      std::_Exit(1);
    }
  });
  if (absl::Status s = server.Start(); !s.ok()) {
    log.Error("control plane failed to start",
              {{"error", std::string(s.message())}});
    std::cerr << "control-plane: " << s.message() << "\n";
    return 1;
  }
  int sig = 0;
  while (true) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    // SIGHUP: reload the health policy; a bad one is rejected and logged.
    (void)server.ReloadPolicy();
  }
  log.Info("signal received; stopping",
           {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  server.Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, which leaves the mutex deadlock
  // detector on for every lock (gRPC's too): 4-5 % of the server's CPU
  // (docs/performance.md). Lock order is checked in the debug/asan builds'
  // tests instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (std::optional<int> exit = ParseFlags(argc, argv, flags)) return *exit;
  absl::StatusOr<navarch::Config> config = LoadConfig(flags);
  if (config.ok() && !flags.mint_node_token.empty()) {
    absl::StatusOr<std::string> token =
        navarch::MintNodeToken(config->auth, flags.mint_node_token);
    if (!token.ok()) {
      std::cerr << "control-plane: " << token.status().message() << "\n";
      return 2;
    }
    std::cout << *token << "\n";
    return 0;
  }
  absl::Status token = config.ok()
                           ? AddAuthToken(argc, argv, flags.auth_token, *config)
                           : config.status();
  if (!token.ok()) {
    std::cerr << "control-plane: " << token.message() << "\n";
    return 2;
  }
  navarch::ResolveConfig(&*config);

  // Block the stop and reload signals in every thread; the main thread waits
  // for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  navarch::Logger log(std::make_shared<navarch::LogSink>(
      &std::cout, config->logging.format, config->logging.level,
      &navarch::RealClock::Default()));
  log.Info("starting Navarch control plane",
           {{"version", NAVARCH_VERSION},
            {"config", flags.config_path.empty() ? "(built-in defaults)"
                                                 : flags.config_path}});
  return Serve(*config, flags, signals, log);
}
