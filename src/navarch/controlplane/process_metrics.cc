#include "navarch/controlplane/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"

#ifndef NAVARCH_VERSION
#define NAVARCH_VERSION "unknown"
#endif

namespace navarch {
namespace {

std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The fields of /proc/self/stat after the command name, which may itself
// hold spaces and parentheses: fields[0] is field 3 (state) of proc(5).
std::vector<std::string> StatFields() {
  const std::string stat = ReadProcFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return {};
  return absl::StrSplit(stat.substr(paren + 1), ' ', absl::SkipEmpty());
}

std::optional<double> Field(const std::vector<std::string>& fields, int n) {
  // proc(5) numbers fields from 1; fields[0] is field 3.
  const size_t i = static_cast<size_t>(n - 3);
  double v = 0;
  if (i >= fields.size() || !absl::SimpleAtod(fields[i], &v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<double> BootTime() {
  std::istringstream in(ReadProcFile("/proc/stat"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(6), &v)) return v;
    }
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory we are reading
}

void Gauge(MetricWriter& w, const char* name, const char* help, MetricType type,
           std::optional<double> value) {
  if (!value) return;
  w.Family(name, help, type, {});
  w.Sample({}, *value);
}

void CollectProcess(MetricWriter& w, double ticks, double page_size) {
  const std::vector<std::string> f = StatFields();
  std::optional<double> utime = Field(f, 14), stime = Field(f, 15);
  std::optional<double> cpu;
  if (utime && stime) cpu = (*utime + *stime) / ticks;
  Gauge(w, "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        MetricType::kCounter, cpu);
  std::optional<double> rss = Field(f, 24);
  if (rss) *rss *= page_size;
  Gauge(w, "process_resident_memory_bytes", "Resident memory size in bytes.",
        MetricType::kGauge, rss);
  Gauge(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
        MetricType::kGauge, Field(f, 23));
  Gauge(w, "process_open_fds", "Number of open file descriptors.",
        MetricType::kGauge, OpenFds());
  rlimit limit{};
  std::optional<double> max_fds;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur != RLIM_INFINITY) {
    max_fds = static_cast<double>(limit.rlim_cur);
  }
  Gauge(w, "process_max_fds", "Maximum number of open file descriptors.",
        MetricType::kGauge, max_fds);
  std::optional<double> start = Field(f, 22), boot = BootTime();
  std::optional<double> start_time;
  if (start && boot) start_time = *boot + *start / ticks;
  Gauge(w, "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        MetricType::kGauge, start_time);
}

}  // namespace

void AddProcessMetrics(MetricsRegistry& registry) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));
  registry.AddCollector([ticks, page_size](MetricWriter& w) {
    CollectProcess(w, ticks > 0 ? ticks : 100,
                   page_size > 0 ? page_size : 4096);
  });
}

void AddBuildInfo(MetricsRegistry& registry) {
  const std::string grpc_version = grpc::Version();
  registry.AddCollector([grpc_version](MetricWriter& w) {
    w.Family("navarch_build_info",
             "Always 1; the labels name the version of this build.",
             MetricType::kGauge, {"version", "grpc_version"});
    w.Sample({NAVARCH_VERSION, grpc_version}, 1);
  });
}

}  // namespace navarch
