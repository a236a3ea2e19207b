// navarch-bench: load generator and benchmarks of the control plane. Thin:
// flags and output; the work is in src/navarch/bench.
//
//   navarch-bench echo-server --address 127.0.0.1:0 [--ready-file F]
//   navarch-bench heartbeat --target ADDR[,ADDR...] --nodes N --duration 10s
//       --concurrency C [--register] [--rate R] [--token T] [--json]
//   navarch-bench xid --target ADDR --nodes N [--rate R] [--json]
//   navarch-bench scale --control-plane build/bin/control-plane --nodes N
//       [--json]
// docs/performance.md shows what each measures and how the figures there were
// made.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/duration.h"
#include "navarch/bench/child_process.h"
#include "navarch/bench/echo_server.h"
#include "navarch/bench/load.h"
#include "navarch/bench/report.h"
#include "navarch/bench/scale_bench.h"
#include "navarch/bench/xid_bench.h"
#include "nlohmann/json.hpp"

namespace {

using navarch::bench::FleetShape;
using navarch::bench::RunResult;
using navarch::bench::Target;
using navarch::bench::TargetOptions;

int Fail(const std::string& what) {
  std::cerr << "navarch-bench: " << what << "\n";
  return 1;
}

// A Go-style duration flag ("10s", "500ms").
absl::Duration ParseDurationOrDie(const std::string& flag,
                                  const std::string& text) {
  auto d = navarch::ParseGoDuration(text);
  if (!d.ok() || *d < absl::ZeroDuration()) {
    std::cerr << "navarch-bench: --" << flag << ": invalid duration \"" << text
              << "\"\n";
    std::exit(2);
  }
  return *d;
}

bool WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << content;
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Common target flags.
struct TargetFlags {
  std::string targets;
  std::string token;
  int channels = 4;
  std::string timeout = "10s";

  void Add(CLI::App* cmd, bool several) {
    cmd->add_option("--target", targets,
                    several ? "server address host:port; several, comma "
                              "separated, are measured in turn under the "
                              "same load"
                            : "server address host:port")
        ->required();
    cmd->add_option("--token", token,
                    "bearer token (sent as `authorization: Bearer T`)");
    cmd->add_option("--channels", channels,
                    "HTTP/2 connections to spread calls over")
        ->capture_default_str();
    cmd->add_option("--rpc-timeout", timeout, "deadline of each call")
        ->capture_default_str();
  }

  TargetOptions Options(const std::string& address) const {
    TargetOptions o;
    o.address = address;
    o.token = token;
    o.channels = channels;
    o.rpc_timeout = ParseDurationOrDie("rpc-timeout", timeout);
    return o;
  }
};

int RunEchoServer(const std::string& address, const std::string& ready_file) {
  // The main thread waits for the stop signals; block them everywhere.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto server = navarch::bench::EchoServer::Start(address);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  nlohmann::json j = {{"grpc_address", (*server)->address()},
                      {"pid", static_cast<int>(getpid())}};
  std::cout << j.dump() << std::endl;
  if (!ready_file.empty() && !WriteFileAtomically(ready_file, j.dump() + "\n"))
    return Fail(absl::StrCat("cannot write ", ready_file));
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Shutdown();
  std::cerr << "navarch-bench echo-server: " << (*server)->calls()
            << " calls answered\n";
  return 0;
}

struct EchoCommand {
  std::string address = "127.0.0.1:0", ready_file;
  CLI::App* cmd = nullptr;

  void Add(CLI::App& app) {
    cmd = app.add_subcommand(
        "echo-server",
        "a ControlPlaneService that answers RegisterNode, SendHeartbeat and "
        "ReportHealth at once (the transport's limit)");
    cmd->add_option("--address", address, "listen address (port 0: any)")
        ->capture_default_str();
    cmd->add_option("--ready-file", ready_file,
                    "write {\"grpc_address\", \"pid\"} here once listening");
  }
};

struct HeartbeatCommand {
  TargetFlags target;
  FleetShape shape;
  int64_t nodes = 1000;
  std::string duration = "10s", warmup = "1s";
  int concurrency = 0;
  double rate = 0;
  bool register_nodes = false, json = false;
  int rounds = 1;
  int register_concurrency = 256;
  int64_t server_pid = 0;
  CLI::App* cmd = nullptr;

  void Add(CLI::App& app);
  int Run(navarch::Clock& clock);

 private:
  // Registers the nodes on target `t` (with --register); an exit code when
  // that failed.
  std::optional<int> Register(Target& t, const std::string& address,
                              navarch::Clock& clock, nlohmann::json& report);
  // The per-target reports and the ratios of their throughput.
  nlohmann::json Summary(const std::vector<std::string>& addresses,
                         std::vector<nlohmann::json>& per_target,
                         const std::vector<std::vector<nlohmann::json>>& runs,
                         const std::vector<double>& sum_rps);
};

void HeartbeatCommand::Add(CLI::App& app) {
  cmd = app.add_subcommand(
      "heartbeat", "heartbeats round-robin over N nodes, closed or open loop");
  target.Add(cmd, true);
  cmd->add_option("--nodes", nodes, "nodes bench-node-0 .. N-1")
      ->capture_default_str();
  cmd->add_option("--duration", duration, "length of each run")
      ->capture_default_str();
  cmd->add_option("--warmup", warmup,
                  "not measured at the start of each run (at most half of it)")
      ->capture_default_str();
  cmd->add_option("--concurrency", concurrency,
                  "calls in flight (closed loop; default 64), or the cap on "
                  "them (open loop; default 10000)");
  cmd->add_option("--rate", rate,
                  "open loop: heartbeats per second, latency measured from "
                  "the time each was due");
  cmd->add_flag("--register", register_nodes, "register the nodes first");
  cmd->add_option("--register-concurrency", register_concurrency,
                  "registrations in flight")
      ->capture_default_str();
  cmd->add_option("--node-prefix", shape.node_prefix, "node id prefix")
      ->capture_default_str();
  cmd->add_option("--rounds", rounds,
                  "with several targets: runs per target, alternating")
      ->capture_default_str();
  cmd->add_option("--server-pid", server_pid,
                  "report this process's VmRSS before and after registering");
  cmd->add_flag("--json", json, "print one JSON object");
}

std::optional<int> HeartbeatCommand::Register(Target& t,
                                              const std::string& address,
                                              navarch::Clock& clock,
                                              nlohmann::json& report) {
  int64_t rss_before = 0;
  if (server_pid > 0) {
    auto rss = navarch::bench::ReadRssBytes(server_pid);
    if (rss.ok()) rss_before = *rss;
  }
  RunResult reg = navarch::bench::RunRegistrations(t, clock, shape, 0, nodes,
                                                   register_concurrency);
  if (!json) std::cout << ToText(absl::StrCat("register on ", address), reg);
  report["registration"] = ToJson(reg);
  if (server_pid > 0) {
    auto rss = navarch::bench::ReadRssBytes(server_pid);
    if (rss.ok()) {
      report["rss_before_bytes"] = rss_before;
      report["rss_after_bytes"] = *rss;
      report["rss_per_node_bytes"] =
          static_cast<double>(*rss - rss_before) /
          static_cast<double>(std::max<int64_t>(nodes, 1));
    }
  }
  if (reg.errors == 0) return std::nullopt;
  if (json) std::cout << report.dump() << "\n";
  return Fail(absl::StrCat("registration failed: ", reg.first_error));
}

nlohmann::json HeartbeatCommand::Summary(
    const std::vector<std::string>& addresses,
    std::vector<nlohmann::json>& per_target,
    const std::vector<std::vector<nlohmann::json>>& runs,
    const std::vector<double>& sum_rps) {
  for (size_t t = 0; t < per_target.size(); ++t) {
    // The last run's figures at the top level; every run under "runs".
    for (auto& [k, v] : runs[t].back().items()) per_target[t][k] = v;
    if (runs[t].size() > 1) {
      per_target[t]["runs"] = runs[t];
      per_target[t]["mean_throughput_rps"] =
          sum_rps[t] / static_cast<double>(runs[t].size());
    }
  }
  if (per_target.size() == 1) return per_target[0];
  nlohmann::json out = nlohmann::json::object();
  out["targets"] = per_target;
  std::vector<double> ratios;
  for (size_t t = 0; t < per_target.size(); ++t)
    ratios.push_back(sum_rps[0] > 0 ? sum_rps[t] / sum_rps[0] : 0);
  out["throughput_ratio_to_first"] = ratios;
  if (!json) {
    for (size_t t = 1; t < per_target.size(); ++t) {
      std::cout << addresses[t] << " / " << addresses[0]
                << " throughput: " << ratios[t] << "\n";
    }
  }
  return out;
}

int HeartbeatCommand::Run(navarch::Clock& clock) {
  navarch::bench::HeartbeatLoad load;
  load.shape = shape;
  load.nodes = nodes;
  load.duration = ParseDurationOrDie("duration", duration);
  load.warmup = ParseDurationOrDie("warmup", warmup);
  load.rate = rate;
  load.concurrency = concurrency > 0 ? concurrency : (rate > 0 ? 10000 : 64);
  std::vector<std::string> addresses =
      absl::StrSplit(target.targets, ',', absl::SkipEmpty());
  std::vector<std::unique_ptr<Target>> targets;
  for (const auto& a : addresses) {
    targets.push_back(std::make_unique<Target>(target.Options(a), clock));
    if (absl::Status s = targets.back()->WaitConnected(absl::Seconds(10));
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  std::vector<nlohmann::json> per_target(targets.size(),
                                         nlohmann::json::object());
  for (size_t t = 0; t < targets.size(); ++t) {
    per_target[t]["target"] = addresses[t];
    if (!register_nodes) continue;
    if (auto exit = Register(*targets[t], addresses[t], clock, per_target[t]))
      return *exit;
  }
  // Several targets: alternate, so that whatever else the machine does
  // falls on each alike.
  std::vector<std::vector<nlohmann::json>> runs(targets.size());
  std::vector<double> sum_rps(targets.size(), 0);
  int64_t total_errors = 0;
  for (int r = 0; r < std::max(rounds, 1); ++r) {
    for (size_t t = 0; t < targets.size(); ++t) {
      RunResult res = navarch::bench::RunHeartbeats(*targets[t], clock, load);
      total_errors += res.errors;
      if (!json) {
        std::cout << ToText(
            absl::StrCat("heartbeat ", addresses[t],
                         rate > 0 ? " (open loop)" : " (closed loop)"),
            res);
      }
      runs[t].push_back(ToJson(res));
      sum_rps[t] += res.throughput_rps;
    }
  }
  nlohmann::json out = Summary(addresses, per_target, runs, sum_rps);
  out["config"] = {{"nodes", nodes},
                   {"duration_s", absl::ToDoubleSeconds(load.duration)},
                   {"concurrency", load.concurrency},
                   {"rate", rate},
                   {"channels", target.channels},
                   {"rounds", rounds}};
  if (json) std::cout << out.dump() << "\n";
  return total_errors > 0 ? 3 : 0;
}

struct XidCommand {
  TargetFlags target;
  navarch::bench::XidOptions options;
  bool no_register = false, json = false;
  std::string decision_timeout = "10s", provision_timeout = "3s";
  CLI::App* cmd = nullptr;

  void Add(CLI::App& app, navarch::Clock& clock);
  int Run(navarch::Clock& clock);
};

void XidCommand::Add(CLI::App& app, navarch::Clock& clock) {
  options.shape.node_prefix =
      absl::StrCat("bench-xid-", absl::ToUnixSeconds(clock.Now()), "-");
  cmd = app.add_subcommand(
      "xid",
      "fatal XID reports: time to the UNHEALTHY decision and to the "
      "replacement's provision, from the control plane's event log");
  target.Add(cmd, false);
  cmd->add_option("--nodes", options.nodes, "nodes, one XID each")
      ->capture_default_str();
  cmd->add_option("--fleet", options.fleet,
                  "nodes registered (default --nodes); the first --nodes "
                  "report an XID");
  cmd->add_option("--xid", options.xid, "XID code")->capture_default_str();
  cmd->add_option("--rate", options.rate, "reports per second (0: all at once)")
      ->capture_default_str();
  cmd->add_option("--concurrency", options.concurrency, "calls in flight")
      ->capture_default_str();
  cmd->add_option("--pool", options.shape.pool,
                  "the nodes' pool label (a pool using the fake provider)")
      ->capture_default_str();
  cmd->add_option("--node-prefix", options.shape.node_prefix,
                  "node id prefix (fresh by default: an UNHEALTHY node stays "
                  "so)");
  cmd->add_flag("--no-register", no_register,
                "the nodes are registered already");
  cmd->add_option("--decision-timeout", decision_timeout,
                  "wait this long for the decisions")
      ->capture_default_str();
  cmd->add_option("--provision-timeout", provision_timeout,
                  "wait this long for replacement events")
      ->capture_default_str();
  cmd->add_flag("--json", json, "print one JSON object");
}

int XidCommand::Run(navarch::Clock& clock) {
  options.register_nodes = !no_register;
  options.decision_timeout =
      ParseDurationOrDie("decision-timeout", decision_timeout);
  options.provision_timeout =
      ParseDurationOrDie("provision-timeout", provision_timeout);
  Target t(target.Options(target.targets), clock);
  if (absl::Status s = t.WaitConnected(absl::Seconds(10)); !s.ok())
    return Fail(std::string(s.message()));
  auto result = navarch::bench::RunXidBench(t, clock, options);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  if (json) {
    std::cout << ToJson(*result).dump() << "\n";
  } else {
    std::cout << ToText(*result);
  }
  return result->reports.errors > 0 || result->decided < result->nodes ? 3 : 0;
}

struct ScaleCommand {
  navarch::bench::ScaleOptions options;
  bool json = false, no_restart = false;
  CLI::App* cmd = nullptr;

  void Add(CLI::App& app);
  int Run(navarch::Clock& clock);
};

void ScaleCommand::Add(CLI::App& app) {
  cmd = app.add_subcommand(
      "scale",
      "starts a control plane, registers N nodes: RSS per node; then kill -9 "
      "and time until it serves them all again");
  cmd->add_option("--control-plane", options.control_plane,
                  "the control-plane binary")
      ->required();
  cmd->add_option("--config", options.config,
                  "config file (default: SQLite in a temporary folder, "
                  "loopback ports, log level warn)");
  cmd->add_option("--work-dir", options.work_dir,
                  "keep database and logs here (default: temporary)");
  cmd->add_option("--nodes", options.nodes, "nodes to register")
      ->capture_default_str();
  cmd->add_option("--concurrency", options.concurrency, "calls in flight")
      ->capture_default_str();
  cmd->add_option("--token", options.token, "bearer token");
  cmd->add_flag("--no-restart", no_restart, "skip the kill -9 part");
  cmd->add_flag("--json", json, "print one JSON object");
}

int ScaleCommand::Run(navarch::Clock& clock) {
  options.restart = !no_restart;
  auto result = navarch::bench::RunScaleBench(clock, options);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  if (json) {
    std::cout << ToJson(*result).dump() << "\n";
  } else {
    std::cout << ToText(*result);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, which leaves the mutex deadlock
  // detector on for every lock (gRPC's too): 4-5 % of the server's CPU
  // (docs/performance.md). Lock order is checked in the debug/asan builds'
  // tests instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "navarch-bench: load generator and benchmarks of the Navarch "
      "control plane (docs/performance.md)."};
  app.require_subcommand(1);
  navarch::RealClock& clock = navarch::RealClock::Default();
  EchoCommand echo;
  echo.Add(app);
  HeartbeatCommand heartbeat;
  heartbeat.Add(app);
  XidCommand xid;
  xid.Add(app, clock);
  ScaleCommand scale;
  scale.Add(app);
  CLI11_PARSE(app, argc, argv);

  // The echo server runs with deadlock detection off, as the control plane
  // does (set at the top of main), so the two differ only in their handlers.
  if (echo.cmd->parsed()) return RunEchoServer(echo.address, echo.ready_file);
  if (heartbeat.cmd->parsed()) return heartbeat.Run(clock);
  if (xid.cmd->parsed()) return xid.Run(clock);
  if (scale.cmd->parsed()) return scale.Run(clock);
  return 2;
}
