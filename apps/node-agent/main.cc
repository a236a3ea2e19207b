// node-agent: one per GPU machine. Thin: flags, config, signals, wiring; the
// work is in navarch::agent::Agent.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/agent.h"
#include "navarch/agent/agent_config.h"
#include "navarch/agent/assigned_node_id.h"
#include "navarch/agent/commands.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/gpu/nvml_backend.h"
#include "navarch/agent/grpc_client.h"
#include "navarch/agent/node_identity.h"
#include "navarch/agent/node_token_file.h"
#include "navarch/agent/process_runner.h"
#include "navarch/base/backoff.h"
#include "navarch/base/clock.h"
#include "navarch/base/duration.h"
#include "navarch/base/logging.h"

namespace {

using navarch::agent::Agent;

// Upstream's Go flags take one dash ("-server"); CLI11 would read that as
// short flags. Rewrite the long names we know.
std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  static const char* kLong[] = {"server",
                                "node-id",
                                "provider",
                                "region",
                                "zone",
                                "instance-type",
                                "pool",
                                "labels",
                                "auth-token",
                                "gpu-backend",
                                "fake-gpus",
                                "fake-gpu-model",
                                "kmsg",
                                "config",
                                "log-level",
                                "log-format",
                                "version",
                                "fake-seed",
                                "tls-ca-file",
                                "tls-cert-file",
                                "tls-key-file",
                                "node-id-source",
                                "node-id-allow-hostname",
                                "metadata-timeout"};
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    for (const char* name : kLong) {
      std::string single = absl::StrCat("-", name);
      if (a == single || a.rfind(single + "=", 0) == 0) a = "-" + a;
    }
    args.push_back(a);
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
  return args;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

std::string KernelVersion() {
  struct utsname u;
  return uname(&u) == 0 ? u.release : "";
}

// A stable seed per node, so a restarted fake agent has the same GPU UUIDs.
uint64_t SeedFor(const std::string& node_id) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : node_id) h = (h ^ c) * 1099511628211ULL;
  return h;
}

struct Flags {
  std::string server, node_id, provider = "gcp", region, zone, instance_type,
                               pool, labels;
  std::string auth_token, gpu_backend, fake_model, kmsg = "/dev/kmsg",
                                                   config_path;
  std::string log_level, log_format;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  std::string node_id_source, metadata_timeout, node_token_file;
  bool node_id_allow_hostname = false;
  int fake_gpus = -1;
  uint64_t fake_seed = 0;
  bool version = false;
};

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--server", f.server,
                 "control plane: HOST:PORT or http(s)://HOST:PORT")
      ->required();
  app.add_option("--node-id", f.node_id,
                 "this node's id, or 'auto': the instance's id from the "
                 "cloud's metadata (default: the config's node_id, else the "
                 "hostname)");
  app.add_option("--node-id-source", f.node_id_source,
                 "with --node-id auto, ask only this: ec2 | gce | file:PATH | "
                 "control-plane | hostname (default: ec2, gce, "
                 "/etc/navarch/node-id, then, with a bootstrap token, the "
                 "control plane, in turn)");
  app.add_flag("--node-id-allow-hostname", f.node_id_allow_hostname,
               "with --node-id auto, fall back to the hostname when no cloud "
               "answers");
  app.add_option("--metadata-timeout", f.metadata_timeout,
                 "with --node-id auto, each metadata request's timeout "
                 "(default 2s; connect 1s)");
  app.add_option("--provider", f.provider, "cloud provider name")
      ->capture_default_str();
  app.add_option("--region", f.region, "region");
  app.add_option("--zone", f.zone, "zone");
  app.add_option("--instance-type", f.instance_type, "instance type");
  app.add_option("--pool", f.pool, "pool name (becomes the label pool=NAME)");
  app.add_option("--labels", f.labels, "labels as k=v,k=v");
  app.add_option("--auth-token", f.auth_token,
                 "bearer token (default: $NAVARCH_AUTH_TOKEN)");
  app.add_option("--node-token-file", f.node_token_file,
                 "where the node token a bootstrap token is exchanged for is "
                 "kept, and read at start in preference to --auth-token "
                 "(default: $NAVARCH_NODE_TOKEN_FILE)");
  app.add_option("--tls-ca-file", f.tls_ca_file,
                 "PEM CA bundle to verify the control plane with (default: "
                 "the system's roots); turns TLS on");
  app.add_option("--tls-cert-file", f.tls_cert_file,
                 "PEM client certificate for mTLS (naming this node "
                 "authenticates it without a token)");
  app.add_option("--tls-key-file", f.tls_key_file,
                 "PEM private key of --tls-cert-file");
  app.add_option("--gpu-backend", f.gpu_backend,
                 "auto | nvml | fake (default: auto)")
      ->check(CLI::IsMember({"auto", "nvml", "fake"}));
  app.add_option("--fake-gpus", f.fake_gpus,
                 "simulated GPUs (fake backend; default 8)")
      ->check(CLI::Range(0, 64));
  app.add_option("--fake-gpu-model", f.fake_model,
                 "simulated GPU model (default: NVIDIA H100 80GB HBM3)");
  app.add_option("--fake-seed", f.fake_seed,
                 "seed of the simulated GPUs (default: from the node id)");
  app.add_option("--kmsg", f.kmsg,
                 "kernel log to read XIDs from ('' to disable)")
      ->capture_default_str();
  app.add_option("--config", f.config_path, "agent configuration file (YAML)");
  app.add_option("--log-level", f.log_level, "debug | info | warn | error");
  app.add_option("--log-format", f.log_format, "json | text");
  app.add_flag("--version", f.version, "print the version and exit");
}

// Parses the command line into `f` (an empty --auth-token and
// --node-token-file from their environment variables); an exit code when
// main should stop.
std::optional<int> ParseFlags(int argc, char** argv, Flags& f) {
  CLI::App app{
      "Navarch node agent: reports this machine's GPUs and health to the "
      "control plane."};
  app.name("node-agent");
  AddFlags(app, f);
  try {
    std::vector<std::string> args = NormalizeArgs(argc, argv);
    // --version must work without --server.
    for (const auto& a : args) {
      if (a == "--version") {
        std::cout << "node-agent " << NAVARCH_VERSION << "\n";
        return 0;
      }
    }
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (f.auth_token.empty()) f.auth_token = Env("NAVARCH_AUTH_TOKEN");
  if (f.node_token_file.empty()) {
    f.node_token_file = Env("NAVARCH_NODE_TOKEN_FILE");
  }
  return std::nullopt;
}

// The config file's log settings, overridden by the flags.
absl::Status ResolveLogging(const Flags& f,
                            const navarch::agent::AgentConfig& config,
                            navarch::LogLevel& level,
                            navarch::LogFormat& format) {
  level = config.log_level.value_or(navarch::LogLevel::kInfo);
  format = config.log_format.value_or(navarch::LogFormat::kJson);
  if (!f.log_level.empty()) {
    auto l = navarch::ParseLogLevel(f.log_level);
    if (!l.ok()) return l.status();
    level = *l;
  }
  if (!f.log_format.empty()) {
    auto fmt = navarch::ParseLogFormat(f.log_format);
    if (!fmt.ok()) return fmt.status();
    format = *fmt;
  }
  return absl::OkStatus();
}

// The node id: --node-id, else the config's node_id, else "auto" when a
// source is named, else the hostname (upstream's default). "auto" asks the
// VM's cloud (navarch/agent/node_identity.h), whose answer also fills an
// empty --region, --zone and --instance-type, and, with a bootstrap token,
// the control plane (`control_plane`). Returns where the id came
// from, for the log; INVALID_ARGUMENT for bad settings (exit 2), other
// codes when no source answers (exit 1).
absl::StatusOr<std::string> ResolveNodeId(
    Flags& f, const navarch::agent::AgentConfig& c,
    std::function<absl::StatusOr<std::string>()> control_plane) {
  using navarch::agent::kNodeIdAuto;
  const navarch::agent::NodeIdConfig& conf = c.identity;
  std::string id = !f.node_id.empty() ? f.node_id : conf.node_id;
  const std::string source =
      !f.node_id_source.empty() ? f.node_id_source : conf.source;
  if (id.empty() && !source.empty()) id = kNodeIdAuto;
  if (id.empty()) {
    f.node_id = Hostname();
    if (f.node_id.empty()) {
      return absl::InvalidArgumentError(
          "cannot read the hostname; pass --node-id");
    }
    return std::string("the hostname");
  }
  if (id != kNodeIdAuto) {
    if (!f.node_id_source.empty()) {
      return absl::InvalidArgumentError(
          "--node-id-source applies to --node-id auto only");
    }
    const bool from_flag = !f.node_id.empty();
    f.node_id = id;
    return std::string(from_flag ? "--node-id" : "the config's node_id");
  }
  navarch::agent::NodeIdentityOptions o;
  if (!source.empty()) {
    auto parsed = navarch::agent::ParseNodeIdSource(source);
    if (!parsed.ok()) return parsed.status();
    o.source = *parsed;
  }
  o.allow_hostname = f.node_id_allow_hostname || conf.allow_hostname;
  // Lambda: the id the control plane assigns, asked with the bootstrap
  // token, kept beside the node token for the next start.
  if (navarch::agent::IsBootstrapToken(f.auth_token)) {
    o.control_plane = std::move(control_plane);
  }
  o.assigned_file = navarch::agent::AssignedNodeIdFile(f.node_token_file);
  o.metadata.timeout = conf.timeout;
  o.metadata.connect_timeout = conf.connect_timeout;
  if (!f.metadata_timeout.empty()) {
    auto t = navarch::ParseGoDuration(f.metadata_timeout);
    if (!t.ok() || *t <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad --metadata-timeout \"", f.metadata_timeout,
                       "\": expected a duration such as 2s"));
    }
    o.metadata.timeout = *t;
  }
  auto found = navarch::agent::ResolveNodeIdentity(o);
  if (!found.ok()) return found.status();
  f.node_id = found->node_id;
  if (f.region.empty()) f.region = found->region;
  if (f.zone.empty()) f.zone = found->zone;
  if (f.instance_type.empty()) f.instance_type = found->instance_type;
  return found->source;
}

// What the node registers as: ids, placement, metadata and labels.
absl::StatusOr<navarch::RegisterNodeRequest> Identity(const Flags& f) {
  navarch::RegisterNodeRequest identity;
  identity.set_node_id(f.node_id);
  identity.set_provider(f.provider);
  identity.set_region(f.region);
  identity.set_zone(f.zone);
  identity.set_instance_type(f.instance_type);
  navarch::NodeMetadata* meta = identity.mutable_metadata();
  meta->set_hostname(Hostname());
  meta->set_kernel_version(KernelVersion());
  for (absl::string_view kv :
       absl::StrSplit(f.labels, ',', absl::SkipWhitespace())) {
    std::vector<std::string> parts =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    std::string key(absl::StripAsciiWhitespace(parts[0]));
    if (parts.size() != 2 || key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad label \"", kv, "\": expected key=value"));
    }
    (*meta->mutable_labels())[key] =
        std::string(absl::StripAsciiWhitespace(parts[1]));
  }
  if (!f.pool.empty()) (*meta->mutable_labels())["pool"] = f.pool;
  return identity;
}

// The GPU backend. Upstream's NAVARCH_FAKE_GPU / NAVARCH_GPU_COUNT /
// NAVARCH_GPU_TYPE still select and shape the fake one.
absl::StatusOr<std::unique_ptr<navarch::agent::GpuBackend>> MakeBackend(
    Flags f, const navarch::Logger& log) {
  if (f.gpu_backend.empty())
    f.gpu_backend = Env("NAVARCH_FAKE_GPU") == "true" ? "fake" : "auto";
  if (f.gpu_backend == "fake") {
    navarch::agent::FakeGpuOptions o;
    if (f.fake_gpus < 0 && !Env("NAVARCH_GPU_COUNT").empty()) {
      f.fake_gpus = std::atoi(Env("NAVARCH_GPU_COUNT").c_str());
    }
    o.gpu_count = f.fake_gpus < 0 ? 8 : f.fake_gpus;
    if (f.fake_model.empty()) f.fake_model = Env("NAVARCH_GPU_TYPE");
    if (!f.fake_model.empty()) o.model = f.fake_model;
    o.seed = f.fake_seed != 0 ? f.fake_seed : SeedFor(f.node_id);
    return std::make_unique<navarch::agent::FakeGpuBackend>(o);
  }
  auto nvml = navarch::agent::NvmlBackend::Load();
  if (!nvml.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no NVIDIA GPUs can be read: ", nvml.status().message(),
                     "\nnode-agent: on a machine without NVIDIA's driver, use "
                     "--gpu-backend fake to simulate GPUs"));
  }
  if (!(*nvml)->missing_symbols().empty()) {
    log.Info("this NVML lacks some functions; those readings are off",
             {{"missing", absl::StrJoin((*nvml)->missing_symbols(), ",")}});
  }
  return std::unique_ptr<navarch::agent::GpuBackend>(std::move(*nvml));
}

// The token to send: the node token kept in --node-token-file (from an
// earlier bootstrap) when there is one for this node, else --auth-token.
std::string StartToken(const Flags& f, const navarch::Logger& log) {
  if (f.node_token_file.empty()) return f.auth_token;
  absl::StatusOr<std::string> kept =
      navarch::agent::LoadNodeToken(f.node_token_file, f.node_id);
  if (!kept.ok()) {
    log.Warn("node token file not used", {{"error", kept.status()}});
    return f.auth_token;
  }
  if (kept->empty()) return f.auth_token;
  log.Info("using the node token kept from an earlier registration",
           {{"file", f.node_token_file}});
  return *kept;
}

absl::StatusOr<std::unique_ptr<navarch::agent::GrpcControlPlaneClient>>
MakeClient(const Flags& f, const std::string& token,
           const navarch::Logger& log) {
  navarch::agent::GrpcClientOptions o;
  o.server = f.server;
  o.auth_token = token;
  o.on_node_token = [path = f.node_token_file, log](const std::string& token) {
    if (path.empty()) {
      log.Warn(
          "registered with a bootstrap token, but without --node-token-file "
          "the node token it was exchanged for is lost at the next start",
          {});
      return;
    }
    absl::Status s = navarch::agent::SaveNodeToken(path, token);
    if (!s.ok()) {
      log.Warn("node token not kept", {{"error", s}});
    } else {
      log.Info("node token kept for the next start", {{"file", path}});
    }
  };
  o.tls_ca_file = f.tls_ca_file;
  o.tls_cert_file = f.tls_cert_file;
  o.tls_key_file = f.tls_key_file;
  o.user_agent = absl::StrCat("navarch-node-agent/", NAVARCH_VERSION);
  return navarch::agent::GrpcControlPlaneClient::Create(o);
}

// The control-plane source of --node-id auto: RegisterNode with an empty
// node id and the bootstrap token, retried (backoff) while the control plane
// has not recorded the instance yet, until a stop signal. The node token it
// answers with is kept in --node-token-file, where StartToken finds it.
absl::StatusOr<std::string> AskNodeId(const Flags& f,
                                      const sigset_t& stop_signals,
                                      const navarch::Logger& log) {
  absl::StatusOr<navarch::RegisterNodeRequest> identity = Identity(f);
  if (!identity.ok()) return identity.status();
  auto client = MakeClient(f, f.auth_token, log);
  if (!client.ok()) return client.status();
  std::mt19937_64 rng(static_cast<uint64_t>(getpid()));
  navarch::Backoff backoff(
      {absl::Milliseconds(500), absl::Seconds(15), 2.0, 0.2}, rng);
  auto wait = [&stop_signals](absl::Duration d) {
    const timespec ts = absl::ToTimespec(d);
    siginfo_t info;
    // A stop signal ends the wait and the agent (it stays pending for
    // nobody: main exits on the error).
    return sigtimedwait(&stop_signals, &info, &ts) < 0;
  };
  return navarch::agent::AskControlPlaneForNodeId(**client, *identity, backoff,
                                                  wait, log);
}

// Runs the agent until SIGINT or SIGTERM (blocked in every thread by main).
void RunUntilSignal(const navarch::agent::AgentOptions& options,
                    const sigset_t& stop_signals,
                    navarch::agent::GrpcControlPlaneClient& client,
                    navarch::agent::GpuBackend& backend,
                    const navarch::Logger& log) {
  navarch::RealClock& clock = navarch::RealClock::Default();
  navarch::agent::PosixProcessRunner processes(clock);
  log.Info("node agent", {{"version", NAVARCH_VERSION},
                          {"node_id", options.identity.node_id()},
                          {"server", client.target()},
                          {"gpu_backend", backend.Name()},
                          {"kmsg", options.kmsg_path},
                          {"diagnostic", options.diagnostic_command.empty()
                                             ? "nvml-sweep"
                                             : options.diagnostic_command}});
  Agent agent(options, clock, client, backend, processes, log);
  agent.Start();
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log.Info("signal received; stopping",
           {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  agent.Stop();
}

// Blocks SIGINT and SIGTERM in every thread (threads inherit the mask:
// gRPC's too, which the control-plane source of --node-id auto starts); the
// main thread waits for them. Returns them.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

int Fail(absl::string_view message, int code) {
  std::cerr << "node-agent: " << message << "\n";
  return code;
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
  navarch::agent::AgentConfig config;
  if (!flags.config_path.empty()) {
    auto loaded = navarch::agent::LoadAgentConfig(flags.config_path);
    if (!loaded.ok()) {
      return Fail(
          absl::StrCat("invalid configuration:\n", loaded.status().message()),
          2);
    }
    config = *loaded;
  }
  navarch::LogLevel level;
  navarch::LogFormat format;
  if (absl::Status s = ResolveLogging(flags, config, level, format); !s.ok())
    return Fail(s.message(), 2);
  const sigset_t stop_signals = BlockStopSignals();
  navarch::Logger log(std::make_shared<navarch::LogSink>(
      &std::cout, format, level, &navarch::RealClock::Default()));
  absl::StatusOr<std::string> node_id_from =
      ResolveNodeId(flags, config, [&flags, &stop_signals, &log] {
        return AskNodeId(flags, stop_signals, log);
      });
  if (!node_id_from.ok()) {
    const absl::StatusCode code = node_id_from.status().code();
    // Stopped (SIGTERM) while waiting for the control plane to assign an id.
    if (code == absl::StatusCode::kCancelled) return 0;
    return Fail(node_id_from.status().message(),
                code == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  absl::StatusOr<navarch::RegisterNodeRequest> identity = Identity(flags);
  if (!identity.ok()) return Fail(identity.status().message(), 2);
  log.Info("node id", {{"node_id", flags.node_id}, {"from", *node_id_from}});
  auto backend = MakeBackend(flags, log);
  if (!backend.ok()) return Fail(backend.status().message(), 1);
  auto client = MakeClient(flags, StartToken(flags, log), log);
  if (!client.ok()) return Fail(client.status().message(), 2);

  navarch::agent::AgentOptions options;
  options.identity = *identity;
  options.config = config;
  options.diagnostic_command = navarch::agent::ResolveDiagnosticCommand(
      config.diagnostic_command, Env("PATH"));
  options.kmsg_path = flags.kmsg;
  options.seed = SeedFor(flags.node_id) ^ static_cast<uint64_t>(getpid());
  options.xid_thread = true;
  // A terminate command ends the agent like SIGTERM does.
  options.on_terminate = [] { kill(getpid(), SIGTERM); };
  RunUntilSignal(options, stop_signals, **client, **backend, log);
  return 0;
}
