#include "navarch/bench/scale_bench.h"

#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "navarch/bench/child_process.h"
#include "nlohmann/json.hpp"

namespace navarch::bench {
namespace {

namespace fs = std::filesystem;

struct Running {
  std::unique_ptr<ChildProcess> process;
  std::string address;
};

absl::StatusOr<Running> StartControlPlane(Clock& clock,
                                          const ScaleOptions& options,
                                          const std::string& config,
                                          const std::string& dir) {
  const std::string ready = dir + "/ready.json";
  std::error_code ec;
  fs::remove(ready, ec);
  auto process = ChildProcess::Spawn(
      options.control_plane, {"--config", config, "--ready-file", ready},
      dir + "/control-plane.log");
  if (!process.ok()) return process.status();
  auto content =
      WaitForReadyFile(ready, **process, clock, options.start_timeout);
  if (!content.ok()) {
    return absl::Status(content.status().code(),
                        absl::StrCat(content.status().message(), "; see ", dir,
                                     "/control-plane.log"));
  }
  nlohmann::json j = nlohmann::json::parse(*content, nullptr, false);
  if (j.is_discarded() || !j.contains("grpc_address")) {
    return absl::InternalError(
        absl::StrCat("unexpected ready file: ", *content));
  }
  return Running{*std::move(process), j["grpc_address"].get<std::string>()};
}

int64_t FileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

// The default config: SQLite in `dir`, loopback ports, log level warn.
std::string WriteDefaultConfig(const std::string& dir) {
  const std::string config = dir + "/navarch.yaml";
  std::ofstream out(config);
  out << "server:\n"
      << "  address: \"127.0.0.1:0\"\n"
      << "  http_address: \"127.0.0.1:0\"\n"
      << "  data_dir: " << dir << "/data\n"
      << "storage:\n  backend: sqlite\n"
      << "logging:\n  level: warn\n";
  return config;
}

// Registers the nodes and measures memory, heartbeats and the database; then
// stops the control plane: SIGKILL when a restart follows, else SIGTERM.
absl::Status MeasureFirstRun(Clock& clock, const ScaleOptions& options,
                             const std::string& config, const std::string& dir,
                             TargetOptions target_options,
                             ScaleResult& result) {
  auto cp = StartControlPlane(clock, options, config, dir);
  if (!cp.ok()) return cp.status();
  target_options.address = cp->address;
  Target target(target_options, clock);
  if (absl::Status s = target.WaitConnected(absl::Seconds(10)); !s.ok())
    return s;
  // Let start-up allocations settle before the baseline.
  absl::SleepFor(absl::Milliseconds(500));
  auto rss = ReadRssBytes(cp->process->pid());
  if (!rss.ok()) return rss.status();
  result.rss_empty_bytes = *rss;

  result.registration = RunRegistrations(target, clock, options.shape, 0,
                                         options.nodes, options.concurrency);
  if (result.registration.errors > 0) {
    return absl::InternalError(
        absl::StrCat("registration failed: ", result.registration.first_error));
  }
  rss = ReadRssBytes(cp->process->pid());
  if (!rss.ok()) return rss.status();
  result.rss_registered_bytes = *rss;

  result.heartbeats = RunHeartbeatRound(target, clock, options.shape,
                                        options.nodes, options.concurrency);
  if (result.heartbeats.errors > 0) {
    return absl::InternalError(
        absl::StrCat("heartbeats failed: ", result.heartbeats.first_error));
  }
  // Heartbeats reach the store within a second (FleetOptions); after two
  // the database holds every node's metrics.
  absl::SleepFor(absl::Seconds(2));
  rss = ReadRssBytes(cp->process->pid());
  if (!rss.ok()) return rss.status();
  result.rss_steady_bytes = *rss;
  if (options.nodes > 0) {
    result.rss_per_node_bytes =
        static_cast<double>(result.rss_steady_bytes - result.rss_empty_bytes) /
        static_cast<double>(options.nodes);
  }
  if (options.config.empty()) {
    fs::path db = fs::path(dir) / "data" / "navarch.db";
    result.database_bytes = FileSize(db) + FileSize(db.string() + "-wal");
  }
  if (!options.restart) {
    cp->process->Signal(SIGTERM);
    (void)cp->process->Wait(clock, absl::Seconds(30));
    return absl::OkStatus();
  }
  cp->process->Signal(SIGKILL);
  return cp->process->Wait(clock, absl::Seconds(10)).status();
}

// Waits until the restarted control plane answers GetNode for the last node.
absl::Status WaitForLastNode(Clock& clock, const ScaleOptions& options,
                             Target& target, absl::Duration t0) {
  const std::string last = NodeId(options.shape, options.nodes - 1);
  for (;;) {
    GetNodeRequest req;
    req.set_node_id(last);
    GetNodeResponse resp;
    grpc::ClientContext ctx;
    target.Prepare(&ctx);
    grpc::Status s = target.stub(0).GetNode(&ctx, req, &resp);
    if (s.ok()) return absl::OkStatus();
    if (clock.SteadyNow() - t0 > options.start_timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("GetNode after restart: ", s.error_message()));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// Starts the control plane again on the same database and times how long
// until it serves every node.
absl::Status MeasureRestart(Clock& clock, const ScaleOptions& options,
                            const std::string& config, const std::string& dir,
                            TargetOptions target_options, ScaleResult& result) {
  const absl::Duration t0 = clock.SteadyNow();
  auto cp = StartControlPlane(clock, options, config, dir);
  if (!cp.ok()) return cp.status();
  result.restart_ready = clock.SteadyNow() - t0;
  target_options.address = cp->address;
  Target target(target_options, clock);
  if (absl::Status s = WaitForLastNode(clock, options, target, t0); !s.ok())
    return s;
  result.restart_first_get = clock.SteadyNow() - t0;
  // One call per region: the whole fleet in one ListNodes answer would pass
  // the server's 64 MiB message limit at this size.
  int64_t listed = 0;
  for (const char* region : kRegions) {
    ListNodesRequest req;
    req.set_region(region);
    ListNodesResponse resp;
    grpc::ClientContext ctx;
    target.Prepare(&ctx);
    grpc::Status s = target.stub(0).ListNodes(&ctx, req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "ListNodes(region=", region, ") after restart: ", s.error_message()));
    }
    listed += resp.nodes_size();
  }
  result.restart_all_listed = clock.SteadyNow() - t0;
  result.listed_nodes = listed;
  auto rss = ReadRssBytes(cp->process->pid());
  if (rss.ok()) result.rss_restarted_bytes = *rss;
  cp->process->Signal(SIGTERM);
  (void)cp->process->Wait(clock, absl::Seconds(30));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ScaleResult> RunScaleBench(Clock& clock,
                                          const ScaleOptions& options) {
  ScaleResult result;
  result.nodes = options.nodes;
  std::string dir = options.work_dir;
  bool temporary = false;
  if (dir.empty()) {
    std::string tmpl =
        (fs::temp_directory_path() / "navarch-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr)
      return absl::InternalError("cannot create a temporary folder");
    dir = tmpl;
    temporary = true;
  } else {
    fs::create_directories(dir);
  }
  absl::Cleanup remove_dir = [&] {
    std::error_code ec;
    if (temporary) fs::remove_all(dir, ec);
  };
  result.work_dir = dir;
  const std::string config =
      options.config.empty() ? WriteDefaultConfig(dir) : options.config;
  TargetOptions target_options;
  target_options.token = options.token;
  target_options.rpc_timeout = absl::Seconds(60);
  if (absl::Status s =
          MeasureFirstRun(clock, options, config, dir, target_options, result);
      !s.ok()) {
    return s;
  }
  if (!options.restart) return result;
  if (absl::Status s =
          MeasureRestart(clock, options, config, dir, target_options, result);
      !s.ok()) {
    return s;
  }
  return result;
}

}  // namespace navarch::bench
