#include "navarch/agent/host_metrics.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

class HostMetricsTest : public ::testing::Test {
 protected:
  HostMetricsTest() {
    std::string base = (std::filesystem::temp_directory_path() /
                        ("host-metrics-" + std::to_string(getpid())))
                           .string();
    stat_ = base + ".stat";
    meminfo_ = base + ".meminfo";
  }
  ~HostMetricsTest() override {
    std::remove(stat_.c_str());
    std::remove(meminfo_.c_str());
  }
  void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  std::string stat_, meminfo_;
};

TEST_F(HostMetricsTest, CpuIsTheBusyShareSinceTheLastSample) {
  HostMetrics m(stat_, meminfo_);
  Write(stat_, "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n");
  EXPECT_EQ(m.CpuPercent(), 0);  // no previous sample yet
  // +400 total, of which +100 idle and +100 iowait: 50% busy.
  Write(stat_, "cpu  200 0 200 800 200 0 0 0 0 0\n");
  EXPECT_DOUBLE_EQ(m.CpuPercent(), 50);
  // No time passed: 0, not a division by zero.
  EXPECT_EQ(m.CpuPercent(), 0);
}

TEST_F(HostMetricsTest, MemoryIsTotalMinusAvailable) {
  HostMetrics m(stat_, meminfo_);
  Write(meminfo_,
        "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    "
        "250 kB\n");
  EXPECT_DOUBLE_EQ(m.MemoryPercent(), 75);
}

TEST_F(HostMetricsTest, UnreadableFilesGiveZero) {
  HostMetrics m("/nonexistent/stat", "/nonexistent/meminfo");
  EXPECT_EQ(m.CpuPercent(), 0);
  EXPECT_EQ(m.MemoryPercent(), 0);
  Write(meminfo_, "garbage\n");
  EXPECT_EQ(HostMetrics(stat_, meminfo_).MemoryPercent(), 0);
}

TEST(HostMetricsRealTest, ReadsThisMachine) {
  HostMetrics m;
  m.CpuPercent();
  double cpu = m.CpuPercent();
  EXPECT_GE(cpu, 0);
  EXPECT_LE(cpu, 100);
  double mem = m.MemoryPercent();
  EXPECT_GT(mem, 0);
  EXPECT_LT(mem, 100);
}

}  // namespace
}  // namespace navarch::agent
