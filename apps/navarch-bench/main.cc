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

  // echo-server
  std::string echo_address = "127.0.0.1:0", echo_ready;
  CLI::App* echo = app.add_subcommand(
      "echo-server",
      "a ControlPlaneService that answers RegisterNode, SendHeartbeat and "
      "ReportHealth at once (the transport's limit)");
  echo->add_option("--address", echo_address, "listen address (port 0: any)")
      ->capture_default_str();
  echo->add_option("--ready-file", echo_ready,
                   "write {\"grpc_address\", \"pid\"} here once listening");

  // heartbeat
  TargetFlags hb_target;
  FleetShape hb_shape;
  int64_t hb_nodes = 1000;
  std::string hb_duration = "10s", hb_warmup = "1s";
  int hb_concurrency = 0;
  double hb_rate = 0;
  bool hb_register = false, hb_json = false;
  int hb_rounds = 1;
  int hb_register_concurrency = 256;
  int64_t hb_server_pid = 0;
  CLI::App* hb = app.add_subcommand(
      "heartbeat", "heartbeats round-robin over N nodes, closed or open loop");
  hb_target.Add(hb, true);
  hb->add_option("--nodes", hb_nodes, "nodes bench-node-0 .. N-1")
      ->capture_default_str();
  hb->add_option("--duration", hb_duration, "length of each run")
      ->capture_default_str();
  hb->add_option("--warmup", hb_warmup,
                 "not measured at the start of each run (at most half of it)")
      ->capture_default_str();
  hb->add_option("--concurrency", hb_concurrency,
                 "calls in flight (closed loop; default 64), or the cap on "
                 "them (open loop; default 10000)");
  hb->add_option("--rate", hb_rate,
                 "open loop: heartbeats per second, latency measured from "
                 "the time each was due");
  hb->add_flag("--register", hb_register, "register the nodes first");
  hb->add_option("--register-concurrency", hb_register_concurrency,
                 "registrations in flight")
      ->capture_default_str();
  hb->add_option("--node-prefix", hb_shape.node_prefix, "node id prefix")
      ->capture_default_str();
  hb->add_option("--rounds", hb_rounds,
                 "with several targets: runs per target, alternating")
      ->capture_default_str();
  hb->add_option("--server-pid", hb_server_pid,
                 "report this process's VmRSS before and after registering");
  hb->add_flag("--json", hb_json, "print one JSON object");

  // xid
  TargetFlags xid_target;
  navarch::bench::XidOptions xid_options;
  xid_options.shape.node_prefix =
      absl::StrCat("bench-xid-", absl::ToUnixSeconds(clock.Now()), "-");
  bool xid_no_register = false, xid_json = false;
  std::string xid_decision_timeout = "10s", xid_provision_timeout = "3s";
  CLI::App* xid = app.add_subcommand(
      "xid",
      "fatal XID reports: time to the UNHEALTHY decision and to the "
      "replacement's provision, from the control plane's event log");
  xid_target.Add(xid, false);
  xid->add_option("--nodes", xid_options.nodes, "nodes, one XID each")
      ->capture_default_str();
  xid->add_option("--fleet", xid_options.fleet,
                  "nodes registered (default --nodes); the first --nodes "
                  "report an XID");
  xid->add_option("--xid", xid_options.xid, "XID code")->capture_default_str();
  xid->add_option("--rate", xid_options.rate,
                  "reports per second (0: all at once)")
      ->capture_default_str();
  xid->add_option("--concurrency", xid_options.concurrency, "calls in flight")
      ->capture_default_str();
  xid->add_option("--pool", xid_options.shape.pool,
                  "the nodes' pool label (a pool using the fake provider)")
      ->capture_default_str();
  xid->add_option("--node-prefix", xid_options.shape.node_prefix,
                  "node id prefix (fresh by default: an UNHEALTHY node stays "
                  "so)");
  xid->add_flag("--no-register", xid_no_register,
                "the nodes are registered already");
  xid->add_option("--decision-timeout", xid_decision_timeout,
                  "wait this long for the decisions")
      ->capture_default_str();
  xid->add_option("--provision-timeout", xid_provision_timeout,
                  "wait this long for replacement events")
      ->capture_default_str();
  xid->add_flag("--json", xid_json, "print one JSON object");

  // scale
  navarch::bench::ScaleOptions scale_options;
  bool scale_json = false, scale_no_restart = false;
  CLI::App* scale = app.add_subcommand(
      "scale",
      "starts a control plane, registers N nodes: RSS per node; then kill -9 "
      "and time until it serves them all again");
  scale
      ->add_option("--control-plane", scale_options.control_plane,
                   "the control-plane binary")
      ->required();
  scale->add_option("--config", scale_options.config,
                    "config file (default: SQLite in a temporary folder, "
                    "loopback ports, log level warn)");
  scale->add_option("--work-dir", scale_options.work_dir,
                    "keep database and logs here (default: temporary)");
  scale->add_option("--nodes", scale_options.nodes, "nodes to register")
      ->capture_default_str();
  scale
      ->add_option("--concurrency", scale_options.concurrency,
                   "calls in flight")
      ->capture_default_str();
  scale->add_option("--token", scale_options.token, "bearer token");
  scale->add_flag("--no-restart", scale_no_restart, "skip the kill -9 part");
  scale->add_flag("--json", scale_json, "print one JSON object");

  CLI11_PARSE(app, argc, argv);

  // The echo server runs with deadlock detection off, as the control plane
  // does (set at the top of main), so the two differ only in their handlers.
  if (echo->parsed()) return RunEchoServer(echo_address, echo_ready);

  if (hb->parsed()) {
    navarch::bench::HeartbeatLoad load;
    load.shape = hb_shape;
    load.nodes = hb_nodes;
    load.duration = ParseDurationOrDie("duration", hb_duration);
    load.warmup = ParseDurationOrDie("warmup", hb_warmup);
    load.rate = hb_rate;
    load.concurrency =
        hb_concurrency > 0 ? hb_concurrency : (hb_rate > 0 ? 10000 : 64);
    std::vector<std::string> addresses =
        absl::StrSplit(hb_target.targets, ',', absl::SkipEmpty());
    std::vector<std::unique_ptr<Target>> targets;
    for (const auto& a : addresses) {
      targets.push_back(std::make_unique<Target>(hb_target.Options(a), clock));
      if (absl::Status s = targets.back()->WaitConnected(absl::Seconds(10));
          !s.ok()) {
        return Fail(std::string(s.message()));
      }
    }
    nlohmann::json out = nlohmann::json::object();
    std::vector<nlohmann::json> per_target(targets.size(),
                                           nlohmann::json::object());
    for (size_t t = 0; t < targets.size(); ++t) {
      per_target[t]["target"] = addresses[t];
      if (!hb_register) continue;
      int64_t rss_before = 0;
      if (hb_server_pid > 0) {
        auto rss = navarch::bench::ReadRssBytes(hb_server_pid);
        if (rss.ok()) rss_before = *rss;
      }
      RunResult reg = navarch::bench::RunRegistrations(
          *targets[t], clock, hb_shape, 0, hb_nodes, hb_register_concurrency);
      if (!hb_json)
        std::cout << ToText(absl::StrCat("register on ", addresses[t]), reg);
      per_target[t]["registration"] = ToJson(reg);
      if (hb_server_pid > 0) {
        auto rss = navarch::bench::ReadRssBytes(hb_server_pid);
        if (rss.ok()) {
          per_target[t]["rss_before_bytes"] = rss_before;
          per_target[t]["rss_after_bytes"] = *rss;
          per_target[t]["rss_per_node_bytes"] =
              static_cast<double>(*rss - rss_before) /
              static_cast<double>(std::max<int64_t>(hb_nodes, 1));
        }
      }
      if (reg.errors > 0) {
        if (hb_json) std::cout << per_target[t].dump() << "\n";
        return Fail(absl::StrCat("registration failed: ", reg.first_error));
      }
    }
    // Several targets: alternate, so that whatever else the machine does
    // falls on each alike.
    std::vector<std::vector<nlohmann::json>> runs(targets.size());
    std::vector<double> sum_rps(targets.size(), 0);
    int64_t total_errors = 0;
    for (int r = 0; r < std::max(hb_rounds, 1); ++r) {
      for (size_t t = 0; t < targets.size(); ++t) {
        RunResult res = navarch::bench::RunHeartbeats(*targets[t], clock, load);
        total_errors += res.errors;
        if (!hb_json) {
          std::cout << ToText(
              absl::StrCat("heartbeat ", addresses[t],
                           hb_rate > 0 ? " (open loop)" : " (closed loop)"),
              res);
        }
        runs[t].push_back(ToJson(res));
        sum_rps[t] += res.throughput_rps;
      }
    }
    for (size_t t = 0; t < targets.size(); ++t) {
      // The last run's figures at the top level; every run under "runs".
      for (auto& [k, v] : runs[t].back().items()) per_target[t][k] = v;
      if (runs[t].size() > 1) {
        per_target[t]["runs"] = runs[t];
        per_target[t]["mean_throughput_rps"] =
            sum_rps[t] / static_cast<double>(runs[t].size());
      }
    }
    if (targets.size() == 1) {
      out = per_target[0];
    } else {
      out["targets"] = per_target;
      std::vector<double> ratios;
      for (size_t t = 0; t < targets.size(); ++t)
        ratios.push_back(sum_rps[0] > 0 ? sum_rps[t] / sum_rps[0] : 0);
      out["throughput_ratio_to_first"] = ratios;
      if (!hb_json) {
        for (size_t t = 1; t < targets.size(); ++t) {
          std::cout << addresses[t] << " / " << addresses[0]
                    << " throughput: " << ratios[t] << "\n";
        }
      }
    }
    out["config"] = {{"nodes", hb_nodes},
                     {"duration_s", absl::ToDoubleSeconds(load.duration)},
                     {"concurrency", load.concurrency},
                     {"rate", hb_rate},
                     {"channels", hb_target.channels},
                     {"rounds", hb_rounds}};
    if (hb_json) std::cout << out.dump() << "\n";
    return total_errors > 0 ? 3 : 0;
  }

  if (xid->parsed()) {
    xid_options.register_nodes = !xid_no_register;
    xid_options.decision_timeout =
        ParseDurationOrDie("decision-timeout", xid_decision_timeout);
    xid_options.provision_timeout =
        ParseDurationOrDie("provision-timeout", xid_provision_timeout);
    Target target(xid_target.Options(xid_target.targets), clock);
    if (absl::Status s = target.WaitConnected(absl::Seconds(10)); !s.ok())
      return Fail(std::string(s.message()));
    auto result = navarch::bench::RunXidBench(target, clock, xid_options);
    if (!result.ok()) return Fail(std::string(result.status().message()));
    if (xid_json) {
      std::cout << ToJson(*result).dump() << "\n";
    } else {
      std::cout << ToText(*result);
    }
    return result->reports.errors > 0 || result->decided < result->nodes ? 3
                                                                         : 0;
  }

  if (scale->parsed()) {
    scale_options.restart = !scale_no_restart;
    auto result = navarch::bench::RunScaleBench(clock, scale_options);
    if (!result.ok()) return Fail(std::string(result.status().message()));
    if (scale_json) {
      std::cout << ToJson(*result).dump() << "\n";
    } else {
      std::cout << ToText(*result);
    }
    return 0;
  }
  return 2;
}
