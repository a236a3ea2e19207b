#include "navarch/agent/monitor.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/api/names.h"

namespace navarch::agent {
namespace {

std::string Metric(const HealthEvent& e, const std::string& key) {
  auto it = e.metrics().find(key);
  return it == e.metrics().end() ? "<none>" : it->second;
}

class MonitorTest : public ::testing::Test {
 protected:
  MonitorTest() : fake_({.gpu_count = 8}), monitor_(fake_, clock_) {}

  void SetUp() override {
    ASSERT_TRUE(monitor_.Start().ok());
    // The first poll sets baselines; a healthy fake raises nothing.
    ASSERT_TRUE(monitor_.Poll().empty());
  }

  // The events of the next poll.
  std::vector<HealthEvent> Next() { return monitor_.Poll(); }

  FakeClock clock_;
  FakeGpuBackend fake_;
  GpuMonitor monitor_;
};

TEST_F(MonitorTest, HealthyFleetReportsHealthyChecksAndMetrics) {
  EXPECT_EQ(monitor_.Inventory().size(), 8u);
  EXPECT_EQ(monitor_.BootCheck().status(), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(monitor_.BootCheck().message(),
            "8 GPUs detected and accessible at start");
  EXPECT_EQ(monitor_.BootCheck().details().at("driver_version"), "580.159.04");
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(monitor_.GpuCheck().message(), "all 8 GPUs healthy");
  auto metrics = monitor_.Metrics();
  ASSERT_EQ(metrics.size(), 8u);
  EXPECT_EQ(metrics[3].gpu_index(), 3);
  EXPECT_GT(metrics[3].temperature(), 20);
  EXPECT_GT(metrics[3].power_usage(), 0);
  EXPECT_GT(metrics[3].memory_used(), 0);
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(Next().empty()) << "poll " << i;
}

TEST_F(MonitorTest, EccRisesAreEvents) {
  fake_.AddEccErrors(2, 3, 0);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_ECC_SBE);
  EXPECT_EQ(e[0].system(), HEALTH_WATCH_SYSTEM_MEM);
  EXPECT_EQ(e[0].gpu_index(), 2);
  EXPECT_EQ(e[0].gpu_uuid(), fake_.Device(2)->uuid);
  EXPECT_EQ(Metric(e[0], "ecc_sbe_count"), "3");
  EXPECT_TRUE(Next().empty());  // no new errors, no new event

  fake_.AddEccErrors(2, 0, 1);
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_ECC_DBE);
  EXPECT_EQ(Metric(e[0], "ecc_dbe_count"), "1");
  EXPECT_EQ(Metric(e[0], "ecc_dbe_delta"), "1");
}

TEST_F(MonitorTest, RowRemapping) {
  fake_.SetRowRemap(5, true, false);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_MEMORY);
  EXPECT_EQ(Metric(e[0], "row_remap_pending"), "1");
  EXPECT_TRUE(Next().empty());
  fake_.SetRowRemap(5, false, true);
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(Metric(e[0], "row_remap_failure"), "1");
  EXPECT_EQ(Metric(e[0], "ecc_dbe_count"), "1");
}

TEST_F(MonitorTest, ThrottleReasons) {
  fake_.SetTemperature(1, 80);
  fake_.SetClockEventReasons(
      1, kClockEventHwSlowdown | kClockEventHwThermalSlowdown);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_THERMAL);
  EXPECT_EQ(Metric(e[0], "temperature"), "80");
  EXPECT_EQ(Metric(e[0], "clock_event_reasons"), "0x48");
  EXPECT_TRUE(Next().empty());  // still throttled: no new event

  fake_.SetClockEventReasons(
      2, kClockEventHwSlowdown | kClockEventHwPowerBrakeSlowdown);
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_POWER);
  EXPECT_NE(e[0].message().find("power brake"), std::string::npos);

  // Software power capping is normal operation, not an event.
  fake_.SetClockEventReasons(3, kClockEventSwPowerCap);
  EXPECT_TRUE(Next().empty());
}

TEST_F(MonitorTest, TemperatureThresholdsWithHysteresis) {
  fake_.SetTemperature(4, 89);  // H100 slowdown threshold
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_THERMAL);
  EXPECT_EQ(Metric(e[0], "temperature"), "89");
  EXPECT_EQ(Metric(e[0], "threshold"), "slowdown");
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_DEGRADED);
  EXPECT_NE(monitor_.GpuCheck().message().find("GPU 4 temperature high: 89°C"),
            std::string::npos);

  fake_.SetTemperature(4, 87);  // below, but within the hysteresis
  EXPECT_TRUE(Next().empty());
  fake_.SetTemperature(4, 89);
  EXPECT_TRUE(Next().empty());

  fake_.SetTemperature(4, 92);  // shutdown threshold
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(Metric(e[0], "threshold"), "shutdown");

  fake_.SetTemperature(4, 60);
  EXPECT_TRUE(Next().empty());
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_HEALTHY);
  fake_.SetTemperature(4, 90);  // re-armed after cooling down
  EXPECT_EQ(Next().size(), 1u);
}

TEST_F(MonitorTest, PcieDowntrainingMustPersist) {
  fake_.SetPcieLink(6, 5, 8);
  EXPECT_TRUE(Next().empty());  // one poll could be a retrain
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_PCIE);
  EXPECT_EQ(Metric(e[0], "pcie_link_width"), "8");
  EXPECT_EQ(Metric(e[0], "pcie_link_width_max"), "16");
  EXPECT_TRUE(Next().empty());
}

TEST_F(MonitorTest, NvLinkErrorsAndLinkDown) {
  fake_.AddNvLinkErrors(0, 4, 10, 0, 2);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_NVLINK);
  EXPECT_EQ(Metric(e[0], "link_id"), "4");
  EXPECT_EQ(Metric(e[0], "replay_errors"), "10");
  EXPECT_EQ(Metric(e[0], "crc_flit_errors"), "2");
  fake_.SetNvLinkActive(0, 7, false);
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(Metric(e[0], "link_state"), "inactive");
}

// A fake whose NVLink readings can come in another order or without some
// counters, as a real driver's may.
class ShuffledLinks final : public GpuBackend {
 public:
  explicit ShuffledLinks(FakeGpuBackend& fake) : fake_(fake) {}
  std::string Name() const override { return "shuffled"; }
  absl::Status Init() override { return fake_.Init(); }
  absl::StatusOr<GpuSystemInfo> SystemInfo() override {
    return fake_.SystemInfo();
  }
  absl::StatusOr<int> DeviceCount() override { return fake_.DeviceCount(); }
  absl::StatusOr<GpuDevice> Device(int i) override { return fake_.Device(i); }
  absl::StatusOr<GpuReading> Read(int i) override {
    absl::StatusOr<GpuReading> r = fake_.Read(i);
    if (!r.ok()) return r;
    if (reverse) std::reverse(r->nvlinks.begin(), r->nvlinks.end());
    if (drop_counters) {
      for (NvLinkReading& l : r->nvlinks) l.replay_errors.reset();
    }
    return r;
  }
  absl::StatusOr<std::vector<XidEvent>> WaitXid(absl::Duration t) override {
    return fake_.WaitXid(t);
  }
  bool reverse = false;
  bool drop_counters = false;

 private:
  FakeGpuBackend& fake_;
};

TEST(MonitorNvLinkTest, LinksAreMatchedByIdInAnyOrderAndKeepTheirCounters) {
  FakeClock clock;
  FakeGpuBackend fake({.gpu_count = 2});
  ShuffledLinks backend(fake);
  GpuMonitor monitor(backend, clock);
  ASSERT_TRUE(monitor.Start().ok());
  ASSERT_TRUE(monitor.Poll().empty());  // baselines
  backend.reverse = true;               // same counters, other order
  EXPECT_TRUE(monitor.Poll().empty());
  fake.AddNvLinkErrors(1, 2, 5, 0, 0);
  std::vector<HealthEvent> e = monitor.Poll();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].gpu_index(), 1);
  EXPECT_EQ(Metric(e[0], "link_id"), "2");
  EXPECT_EQ(Metric(e[0], "replay_errors"), "5");
  // A reading without the replay counter keeps the last one: the next rise
  // counts from it, not from zero.
  backend.reverse = false;
  backend.drop_counters = true;
  EXPECT_TRUE(monitor.Poll().empty());
  backend.drop_counters = false;
  fake.AddNvLinkErrors(1, 2, 3, 0, 0);
  e = monitor.Poll();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(Metric(e[0], "replay_errors"), "3");
  EXPECT_TRUE(monitor.Poll().empty());
}

TEST(MonitorCopyTest, ACopyWatchesItsOwnBackendFromTheSameBaselines) {
  // The simulator's prototype: started, polled once, with an NVLink that
  // has old errors (a baseline, not an event).
  FakeClock clock;
  FakeGpuBackend proto({.gpu_count = 4, .seed = 1});
  proto.AddNvLinkErrors(2, 1, 40, 0, 0);
  GpuMonitor proto_monitor(proto, clock);
  ASSERT_TRUE(proto_monitor.Start().ok());
  ASSERT_TRUE(proto_monitor.Poll().empty());

  const std::vector<std::string> uuids = {
      "GPU-00000000-0000-4000-8000-000000000000",
      "GPU-00000000-0000-4000-8000-000000000001",
      "GPU-00000000-0000-4000-8000-000000000002",
      "GPU-00000000-0000-4000-8000-000000000003"};
  FakeGpuBackend copy(proto, 7, uuids);
  GpuMonitor monitor(proto_monitor, copy, clock, uuids);
  EXPECT_EQ(copy.Device(2)->uuid, uuids[2]);
  ASSERT_EQ(monitor.Inventory().size(), 4u);
  EXPECT_EQ(monitor.Inventory()[3].uuid, uuids[3]);
  // Nothing new: no lost GPUs (the UUIDs changed with the backend), no
  // NVLink event for the old errors.
  EXPECT_TRUE(monitor.Poll().empty());
  EXPECT_EQ(monitor.GpuCheck().status(), HEALTH_STATUS_HEALTHY);
  // A fault in the copy is the copy's: an event naming the copy's GPU.
  copy.AddEccErrors(2, 0, 1);
  std::vector<HealthEvent> e = monitor.Poll();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_ECC_DBE);
  EXPECT_EQ(e[0].gpu_uuid(), uuids[2]);
  EXPECT_TRUE(proto_monitor.Poll().empty());
  EXPECT_EQ(proto.Device(2)->uuid.substr(0, 4), "GPU-");
  EXPECT_NE(proto.Device(2)->uuid, uuids[2]);
  // Faults already in the prototype are copied too.
  proto.SetTemperature(0, 95);
  FakeGpuBackend hot(proto, 8, {});
  EXPECT_EQ(hot.Device(0)->uuid, proto.Device(0)->uuid);
  EXPECT_EQ(*hot.Read(0)->temperature_c, 95);
}

TEST_F(MonitorTest, LostGpuIsAnXid79AndFailsTheGpuCheck) {
  std::string uuid = fake_.Device(3)->uuid;
  fake_.LoseGpu(3);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].event_type(), HEALTH_EVENT_TYPE_XID);
  EXPECT_EQ(e[0].system(), HEALTH_WATCH_SYSTEM_DRIVER);
  EXPECT_EQ(e[0].gpu_index(), 3);
  EXPECT_EQ(e[0].gpu_uuid(), uuid);
  EXPECT_EQ(Metric(e[0], "xid_code"), "79");
  EXPECT_NE(e[0].message().find("GPU has fallen off the bus"),
            std::string::npos);
  EXPECT_TRUE(Next().empty());  // once
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(monitor_.Metrics().size(), 7u);
  fake_.RestoreGpu(3);
  EXPECT_TRUE(Next().empty());
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_HEALTHY);
}

TEST_F(MonitorTest, GpuCountBelowRegistrationIsAnEventForTheMissingGpu) {
  std::string uuid = fake_.Device(5)->uuid;
  fake_.RemoveGpu(5);
  auto e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].gpu_index(),
            5);  // its registration index, not the renumbered one
  EXPECT_EQ(e[0].gpu_uuid(), uuid);
  EXPECT_EQ(Metric(e[0], "xid_code"), "79");
  EXPECT_NE(e[0].message().find("enumerates 7 of 8"), std::string::npos);
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_UNHEALTHY);
  // The GPUs after it were renumbered but are still themselves.
  fake_.AddEccErrors(6, 0, 1);
  e = Next();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].gpu_index(), 6);
}

TEST_F(MonitorTest, NotAnsweringAndNvmlFailureAreCheckFailures) {
  fake_.SetGpuError(2, true);
  EXPECT_TRUE(Next().empty());
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_NE(monitor_.GpuCheck().message().find("GPU 2 does not answer"),
            std::string::npos);
  fake_.SetGpuError(2, false);
  fake_.SetNvmlFailure(true);
  EXPECT_TRUE(Next().empty());
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_NE(monitor_.GpuCheck().message().find("does not answer"),
            std::string::npos);
  fake_.SetNvmlFailure(false);
  Next();
  EXPECT_EQ(monitor_.GpuCheck().status(), HEALTH_STATUS_HEALTHY);
}

TEST_F(MonitorTest, XidsFromBothSourcesNameTheRegisteredGpu) {
  XidEvent nvml{2, fake_.Device(2)->uuid, 48};
  HealthEvent a = monitor_.XidEvent(nvml);
  EXPECT_EQ(a.gpu_index(), 2);
  EXPECT_EQ(Metric(a, "xid_code"), "48");
  EXPECT_EQ(Metric(a, "source"), "nvml");
  EXPECT_EQ(a.message(), "GPU 2: XID 48: Double bit ECC error");

  // GPU 2 of an HGX board is on bus 0x3a; the kernel prints it in lower case
  // with a 4-digit domain.
  auto line = ParseXidLine(
      "NVRM: Xid (PCI:0000:3A:00): 79, pid=77, name=python3, GPU has fallen "
      "off the bus.");
  ASSERT_TRUE(line.has_value());
  HealthEvent b = monitor_.XidEvent(*line);
  EXPECT_EQ(b.gpu_index(), 2);
  EXPECT_EQ(b.gpu_uuid(), fake_.Device(2)->uuid);
  EXPECT_EQ(Metric(b, "source"), "kmsg");
  EXPECT_EQ(Metric(b, "pid"), "77");
  EXPECT_EQ(Metric(b, "process_name"), "python3");
  EXPECT_EQ(Metric(b, "pci_bus_id"), "00000000:3A:00.0");

  auto unknown =
      ParseXidLine("NVRM: Xid (PCI:0000:ff:00): 13, Graphics Exception");
  HealthEvent c = monitor_.XidEvent(*unknown);
  EXPECT_EQ(c.gpu_index(), -1);
  EXPECT_EQ(Metric(c, "pci_bus_id"), "0000:ff:00");
}

TEST_F(MonitorTest, SweepJudgesEveryGpu) {
  SweepResult ok = monitor_.Sweep();
  EXPECT_TRUE(ok.passed);
  EXPECT_EQ(ok.gpus_checked, 8);
  fake_.AddEccErrors(1, 0, 2);
  fake_.SetPcieLink(3, 5, 4);
  fake_.RemoveGpu(7);
  SweepResult bad = monitor_.Sweep();
  EXPECT_FALSE(bad.passed);
  ASSERT_EQ(bad.problems.size(), 3u);
  EXPECT_EQ(bad.problems[0], "GPU 1: 2 uncorrectable ECC error(s)");
  EXPECT_EQ(bad.problems[1], "GPU 3: PCIe link x4 of x16");
  EXPECT_NE(bad.problems[2].find("GPU 7"), std::string::npos);
}

TEST(MonitorStartTest, FailedStartIsReportedAndRetried) {
  FakeClock clock;
  FakeGpuBackend fake({.gpu_count = 2});
  fake.SetInitFailure(
      absl::FailedPreconditionError("NVIDIA driver not loaded"));
  GpuMonitor monitor(fake, clock);
  EXPECT_FALSE(monitor.Start().ok());
  EXPECT_EQ(monitor.BootCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_NE(monitor.BootCheck().message().find("NVIDIA driver not loaded"),
            std::string::npos);
  EXPECT_EQ(monitor.GpuCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_TRUE(monitor.Poll().empty());
  fake.SetInitFailure(absl::OkStatus());
  monitor.Poll();
  EXPECT_TRUE(monitor.started());
  EXPECT_EQ(monitor.Inventory().size(), 2u);
  EXPECT_EQ(monitor.BootCheck().status(), HEALTH_STATUS_HEALTHY);
}

TEST(MonitorStartTest, NoGpusIsAnUnhealthyBoot) {
  FakeClock clock;
  FakeGpuBackend fake({.gpu_count = 0});
  GpuMonitor monitor(fake, clock);
  ASSERT_TRUE(monitor.Start().ok());
  EXPECT_EQ(monitor.BootCheck().status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(monitor.BootCheck().message(), "no GPUs detected");
}

}  // namespace
}  // namespace navarch::agent
