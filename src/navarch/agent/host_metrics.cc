#include "navarch/agent/host_metrics.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace navarch::agent {
namespace {

// Reads at most a few KB: the lines we want are at the top.
bool ReadHead(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  out->assign(8192, '\0');
  in.read(out->data(), static_cast<std::streamsize>(out->size()));
  out->resize(static_cast<size_t>(in.gcount()));
  return true;
}

}  // namespace

HostMetrics::HostMetrics(std::string proc_stat, std::string proc_meminfo)
    : proc_stat_(std::move(proc_stat)),
      proc_meminfo_(std::move(proc_meminfo)) {}

absl::StatusOr<HostMetrics::CpuSample> HostMetrics::ReadCpu() const {
  std::string text;
  if (!ReadHead(proc_stat_, &text))
    return absl::UnavailableError("cannot read " + proc_stat_);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "cpu ")) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already part of user, so only the first eight count.
    if (f.size() < 4) break;
    uint64_t v[8] = {};
    for (size_t i = 0; i < std::min<size_t>(8, f.size()); ++i) {
      if (!absl::SimpleAtoi(f[i], &v[i]))
        return absl::DataLossError("bad cpu line");
    }
    CpuSample s;
    for (uint64_t x : v) s.total += x;
    s.idle = v[3] + v[4];
    return s;
  }
  return absl::DataLossError("no cpu line in " + proc_stat_);
}

double HostMetrics::CpuPercent() {
  auto now = ReadCpu();
  if (!now.ok()) return 0;
  std::optional<CpuSample> prev = previous_;
  previous_ = *now;
  if (!prev || now->total <= prev->total) return 0;
  double total = static_cast<double>(now->total - prev->total);
  double idle =
      now->idle >= prev->idle ? static_cast<double>(now->idle - prev->idle) : 0;
  return std::clamp((total - idle) / total * 100.0, 0.0, 100.0);
}

double HostMetrics::MemoryPercent() const {
  std::string text;
  if (!ReadHead(proc_meminfo_, &text)) return 0;
  uint64_t total = 0, available = 0;
  bool have_total = false, have_available = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    uint64_t* dst = nullptr;
    if (absl::ConsumePrefix(&line, "MemTotal:")) {
      dst = &total;
      have_total = true;
    } else if (absl::ConsumePrefix(&line, "MemAvailable:")) {
      dst = &available;
      have_available = true;
    } else {
      continue;
    }
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), dst)) return 0;
  }
  if (!have_total || !have_available || total == 0 || available > total)
    return 0;
  return static_cast<double>(total - available) / static_cast<double>(total) *
         100.0;
}

}  // namespace navarch::agent
