// node-agent: one per GPU machine. Thin: flags, config, signals, wiring; the
// work is in navarch::agent::Agent.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
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
#include "navarch/agent/commands.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/gpu/nvml_backend.h"
#include "navarch/agent/grpc_client.h"
#include "navarch/agent/process_runner.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"

namespace {

using navarch::agent::Agent;

// Upstream's Go flags take one dash ("-server"); CLI11 would read that as
// short flags. Rewrite the long names we know.
std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  static const char* kLong[] = {
      "server",      "node-id",       "provider",    "region",
      "zone",        "instance-type", "pool",        "labels",
      "auth-token",  "gpu-backend",   "fake-gpus",   "fake-gpu-model",
      "kmsg",        "config",        "log-level",   "log-format",
      "version",     "fake-seed",     "tls-ca-file", "tls-cert-file",
      "tls-key-file"};
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

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG, which leaves the mutex deadlock
  // detector on for every lock (gRPC's too): 4-5 % of the server's CPU
  // (docs/performance.md). Lock order is checked in the debug/asan builds'
  // tests instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "Navarch node agent: reports this machine's GPUs and health to the "
      "control plane."};
  app.name("node-agent");
  std::string server, node_id, provider = "gcp", region, zone, instance_type,
                               pool, labels;
  std::string auth_token, gpu_backend, fake_model, kmsg = "/dev/kmsg",
                                                   config_path;
  std::string log_level, log_format;
  int fake_gpus = -1;
  uint64_t fake_seed = 0;
  bool version = false;
  app.add_option("--server", server,
                 "control plane: HOST:PORT or http(s)://HOST:PORT")
      ->required();
  app.add_option("--node-id", node_id,
                 "this node's id (default: the hostname)");
  app.add_option("--provider", provider, "cloud provider name")
      ->capture_default_str();
  app.add_option("--region", region, "region");
  app.add_option("--zone", zone, "zone");
  app.add_option("--instance-type", instance_type, "instance type");
  app.add_option("--pool", pool, "pool name (becomes the label pool=NAME)");
  app.add_option("--labels", labels, "labels as k=v,k=v");
  app.add_option("--auth-token", auth_token,
                 "bearer token (default: $NAVARCH_AUTH_TOKEN)");
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  app.add_option("--tls-ca-file", tls_ca_file,
                 "PEM CA bundle to verify the control plane with (default: "
                 "the system's roots); turns TLS on");
  app.add_option("--tls-cert-file", tls_cert_file,
                 "PEM client certificate for mTLS (naming this node "
                 "authenticates it without a token)");
  app.add_option("--tls-key-file", tls_key_file,
                 "PEM private key of --tls-cert-file");
  app.add_option("--gpu-backend", gpu_backend,
                 "auto | nvml | fake (default: auto)")
      ->check(CLI::IsMember({"auto", "nvml", "fake"}));
  app.add_option("--fake-gpus", fake_gpus,
                 "simulated GPUs (fake backend; default 8)")
      ->check(CLI::Range(0, 64));
  app.add_option("--fake-gpu-model", fake_model,
                 "simulated GPU model (default: NVIDIA H100 80GB HBM3)");
  app.add_option("--fake-seed", fake_seed,
                 "seed of the simulated GPUs (default: from the node id)");
  app.add_option("--kmsg", kmsg, "kernel log to read XIDs from ('' to disable)")
      ->capture_default_str();
  app.add_option("--config", config_path, "agent configuration file (YAML)");
  app.add_option("--log-level", log_level, "debug | info | warn | error");
  app.add_option("--log-format", log_format, "json | text");
  app.add_flag("--version", version, "print the version and exit");
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

  navarch::agent::AgentConfig config;
  if (!config_path.empty()) {
    auto loaded = navarch::agent::LoadAgentConfig(config_path);
    if (!loaded.ok()) {
      std::cerr << "node-agent: invalid configuration:\n"
                << loaded.status().message() << "\n";
      return 2;
    }
    config = *loaded;
  }
  navarch::LogLevel level = config.log_level.value_or(navarch::LogLevel::kInfo);
  navarch::LogFormat format =
      config.log_format.value_or(navarch::LogFormat::kJson);
  if (!log_level.empty()) {
    auto l = navarch::ParseLogLevel(log_level);
    if (!l.ok()) {
      std::cerr << "node-agent: " << l.status().message() << "\n";
      return 2;
    }
    level = *l;
  }
  if (!log_format.empty()) {
    auto f = navarch::ParseLogFormat(log_format);
    if (!f.ok()) {
      std::cerr << "node-agent: " << f.status().message() << "\n";
      return 2;
    }
    format = *f;
  }

  if (node_id.empty()) node_id = Hostname();
  if (node_id.empty()) {
    std::cerr << "node-agent: cannot read the hostname; pass --node-id\n";
    return 2;
  }
  if (auth_token.empty()) auth_token = Env("NAVARCH_AUTH_TOKEN");

  navarch::RegisterNodeRequest identity;
  identity.set_node_id(node_id);
  identity.set_provider(provider);
  identity.set_region(region);
  identity.set_zone(zone);
  identity.set_instance_type(instance_type);
  navarch::NodeMetadata* meta = identity.mutable_metadata();
  meta->set_hostname(Hostname());
  meta->set_kernel_version(KernelVersion());
  for (absl::string_view kv :
       absl::StrSplit(labels, ',', absl::SkipWhitespace())) {
    std::vector<std::string> parts =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    std::string key(absl::StripAsciiWhitespace(parts[0]));
    if (parts.size() != 2 || key.empty()) {
      std::cerr << "node-agent: bad label \"" << kv
                << "\": expected key=value\n";
      return 2;
    }
    (*meta->mutable_labels())[key] =
        std::string(absl::StripAsciiWhitespace(parts[1]));
  }
  if (!pool.empty()) (*meta->mutable_labels())["pool"] = pool;

  // Block the stop signals in every thread (threads inherit the mask); the
  // main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  navarch::RealClock& clock = navarch::RealClock::Default();
  navarch::Logger log(
      std::make_shared<navarch::LogSink>(&std::cout, format, level, &clock));

  // The GPU backend. Upstream's NAVARCH_FAKE_GPU / NAVARCH_GPU_COUNT /
  // NAVARCH_GPU_TYPE still select and shape the fake one.
  if (gpu_backend.empty())
    gpu_backend = Env("NAVARCH_FAKE_GPU") == "true" ? "fake" : "auto";
  std::unique_ptr<navarch::agent::GpuBackend> backend;
  if (gpu_backend == "fake") {
    navarch::agent::FakeGpuOptions o;
    if (fake_gpus < 0 && !Env("NAVARCH_GPU_COUNT").empty()) {
      fake_gpus = std::atoi(Env("NAVARCH_GPU_COUNT").c_str());
    }
    o.gpu_count = fake_gpus < 0 ? 8 : fake_gpus;
    if (fake_model.empty()) fake_model = Env("NAVARCH_GPU_TYPE");
    if (!fake_model.empty()) o.model = fake_model;
    o.seed = fake_seed != 0 ? fake_seed : SeedFor(node_id);
    backend = std::make_unique<navarch::agent::FakeGpuBackend>(o);
  } else {
    auto nvml = navarch::agent::NvmlBackend::Load();
    if (!nvml.ok()) {
      std::cerr << "node-agent: no NVIDIA GPUs can be read: "
                << nvml.status().message() << "\n"
                << "node-agent: on a machine without NVIDIA's driver, use "
                   "--gpu-backend fake "
                   "to simulate GPUs\n";
      return 1;
    }
    if (!(*nvml)->missing_symbols().empty()) {
      log.Info("this NVML lacks some functions; those readings are off",
               {{"missing", absl::StrJoin((*nvml)->missing_symbols(), ",")}});
    }
    backend = std::move(*nvml);
  }

  navarch::agent::GrpcClientOptions client_options;
  client_options.server = server;
  client_options.auth_token = auth_token;
  client_options.tls_ca_file = tls_ca_file;
  client_options.tls_cert_file = tls_cert_file;
  client_options.tls_key_file = tls_key_file;
  client_options.user_agent =
      absl::StrCat("navarch-node-agent/", NAVARCH_VERSION);
  auto client = navarch::agent::GrpcControlPlaneClient::Create(client_options);
  if (!client.ok()) {
    std::cerr << "node-agent: " << client.status().message() << "\n";
    return 2;
  }

  navarch::agent::AgentOptions options;
  options.identity = identity;
  options.config = config;
  options.diagnostic_command = navarch::agent::ResolveDiagnosticCommand(
      config.diagnostic_command, Env("PATH"));
  options.kmsg_path = kmsg;
  options.seed = SeedFor(node_id) ^ static_cast<uint64_t>(getpid());
  options.xid_thread = true;
  // A terminate command ends the agent like SIGTERM does.
  options.on_terminate = [] { kill(getpid(), SIGTERM); };

  navarch::agent::PosixProcessRunner processes(clock);
  log.Info("node agent", {{"version", NAVARCH_VERSION},
                          {"node_id", node_id},
                          {"server", (*client)->target()},
                          {"gpu_backend", backend->Name()},
                          {"kmsg", kmsg},
                          {"diagnostic", options.diagnostic_command.empty()
                                             ? "nvml-sweep"
                                             : options.diagnostic_command}});
  {
    Agent agent(options, clock, **client, *backend, processes, log);
    agent.Start();
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log.Info("signal received; stopping",
             {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
    agent.Stop();
  }
  return 0;
}
