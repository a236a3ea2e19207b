#include "navarch/agent/gpu/fake_backend.h"

#include <set>

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

TEST(FakeGpuBackendTest, InventoryLooksLikeAnHgxBoard) {
  FakeGpuBackend fake({});
  ASSERT_TRUE(fake.Init().ok());
  auto count = fake.DeviceCount();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 8);
  std::set<std::string> uuids, buses;
  for (int i = 0; i < 8; ++i) {
    auto d = fake.Device(i);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->index, i);
    EXPECT_EQ(d->name, "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(d->uuid.rfind("GPU-", 0), 0u);
    EXPECT_EQ(d->uuid.size(), 40u);  // GPU- + 36
    EXPECT_EQ(d->pci_bus_id.size(), 16u);
    EXPECT_EQ(d->pci_bus_id.substr(0, 9), "00000000:");
    EXPECT_EQ(d->memory_total_bytes, 81559LL * 1024 * 1024);
    uuids.insert(d->uuid);
    buses.insert(d->pci_bus_id);
  }
  EXPECT_EQ(uuids.size(), 8u);
  EXPECT_EQ(buses.size(), 8u);
  EXPECT_EQ(fake.Device(0)->pci_bus_id, "00000000:18:00.0");
  EXPECT_EQ(fake.Device(7)->pci_bus_id, "00000000:DB:00.0");
  auto sys = fake.SystemInfo();
  ASSERT_TRUE(sys.ok());
  EXPECT_EQ(sys->driver_version, "580.159.04");
  EXPECT_EQ(sys->cuda_version, "13.0");
}

TEST(FakeGpuBackendTest, BoardsBeyondTheFirstGetTheirOwnPciDomain) {
  FakeGpuBackend fake({.gpu_count = 18});
  ASSERT_TRUE(fake.Init().ok());
  EXPECT_EQ(fake.Device(8)->pci_bus_id, "00000001:18:00.0");
  EXPECT_EQ(fake.Device(13)->pci_bus_id, "00000001:AB:00.0");
  EXPECT_EQ(fake.Device(17)->pci_bus_id, "00000002:2A:00.0");
}

TEST(FakeGpuBackendTest, SameSeedSameGpusAndReadings) {
  FakeGpuBackend a({.gpu_count = 2, .seed = 7}), b({.gpu_count = 2, .seed = 7}),
      c({.gpu_count = 2, .seed = 8});
  for (auto* f : {&a, &b, &c}) ASSERT_TRUE(f->Init().ok());
  EXPECT_EQ(a.Device(1)->uuid, b.Device(1)->uuid);
  EXPECT_NE(a.Device(1)->uuid, c.Device(1)->uuid);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a.Read(0)->temperature_c, b.Read(0)->temperature_c);
  }
}

TEST(FakeGpuBackendTest, ReadingsMoveWithinRealisticBounds) {
  FakeGpuBackend fake({.gpu_count = 1, .model = "NVIDIA H200"});
  ASSERT_TRUE(fake.Init().ok());
  std::set<int> temps, utils;
  for (int i = 0; i < 200; ++i) {
    auto r = fake.Read(0);
    ASSERT_TRUE(r.ok());
    EXPECT_GE(*r->temperature_c, 25);
    EXPECT_LT(*r->temperature_c, *r->slowdown_temperature_c);
    EXPECT_GE(*r->power_watts, 50);
    EXPECT_LE(*r->power_watts, 700);
    EXPECT_LE(*r->memory_used_bytes, *r->memory_total_bytes);
    EXPECT_EQ(*r->memory_total_bytes, 150754820096LL);  // the fixture's H200
    EXPECT_EQ(r->nvlinks.size(), 18u);
    temps.insert(*r->temperature_c);
    utils.insert(*r->utilization_gpu_percent);
  }
  EXPECT_GT(temps.size(), 3u);
  EXPECT_GT(utils.size(), 10u);
}

TEST(FakeGpuBackendTest, FaultsShowInReadings) {
  FakeGpuBackend fake({.gpu_count = 4});
  ASSERT_TRUE(fake.Init().ok());
  fake.SetTemperature(1, 93);
  fake.AddEccErrors(1, 5, 1);
  fake.SetRowRemap(1, true, false);
  fake.SetClockEventReasons(
      1, kClockEventHwThermalSlowdown | kClockEventHwSlowdown);
  fake.SetPcieLink(1, 4, 8);
  fake.AddNvLinkErrors(1, 2, 3, 0, 1);
  fake.SetNvLinkActive(1, 3, false);
  auto r = fake.Read(1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->temperature_c, 93);
  EXPECT_EQ(*r->ecc_corrected, 5u);
  EXPECT_EQ(*r->ecc_uncorrected, 1u);
  EXPECT_TRUE(*r->remap_pending);
  EXPECT_EQ(*r->clock_event_reasons,
            kClockEventHwThermalSlowdown | kClockEventHwSlowdown);
  EXPECT_EQ(*r->pcie_gen_current, 4);
  EXPECT_EQ(*r->pcie_width_current, 8);
  EXPECT_EQ(*r->nvlinks[2].replay_errors, 3u);
  EXPECT_EQ(*r->nvlinks[2].crc_flit_errors, 1u);
  EXPECT_FALSE(r->nvlinks[3].active);

  fake.InjectXid(2, 79);
  auto xids = fake.WaitXid(absl::ZeroDuration());
  ASSERT_TRUE(xids.ok());
  ASSERT_EQ(xids->size(), 1u);
  EXPECT_EQ((*xids)[0].gpu_index, 2);
  EXPECT_EQ((*xids)[0].code, 79);
  EXPECT_EQ((*xids)[0].gpu_uuid, fake.Device(2)->uuid);
  EXPECT_TRUE(fake.WaitXid(absl::ZeroDuration())->empty());

  fake.ClearFaults();
  EXPECT_EQ(*fake.Read(1)->ecc_uncorrected, 0u);
}

TEST(FakeGpuBackendTest, LostRemovedAndFailingGpus) {
  FakeGpuBackend fake({.gpu_count = 4});
  ASSERT_TRUE(fake.Init().ok());
  std::string uuid3 = fake.Device(3)->uuid;

  fake.LoseGpu(1);
  EXPECT_EQ(*fake.DeviceCount(), 4);
  EXPECT_TRUE(absl::IsNotFound(fake.Read(1).status()));

  fake.RemoveGpu(2);
  EXPECT_EQ(*fake.DeviceCount(), 3);
  // Later GPUs move down: boot GPU 3 is now index 2.
  EXPECT_EQ(fake.Device(2)->uuid, uuid3);
  EXPECT_EQ(fake.Device(2)->index, 2);

  fake.SetGpuError(0, true);
  EXPECT_TRUE(absl::IsUnavailable(fake.Read(0).status()));

  fake.SetNvmlFailure(true);
  EXPECT_TRUE(absl::IsUnavailable(fake.DeviceCount().status()));
  fake.SetNvmlFailure(false);

  fake.RestoreGpu(1);
  fake.RestoreGpu(2);
  fake.SetGpuError(0, false);
  EXPECT_EQ(*fake.DeviceCount(), 4);
  EXPECT_TRUE(fake.Read(1).ok());
}

TEST(FakeGpuBackendTest, InitFailureAndUninitialisedCalls) {
  FakeGpuBackend fake({});
  EXPECT_FALSE(fake.DeviceCount().ok());
  fake.SetInitFailure(absl::FailedPreconditionError("driver not loaded"));
  EXPECT_FALSE(fake.Init().ok());
  fake.SetInitFailure(absl::OkStatus());
  EXPECT_TRUE(fake.Init().ok());
}

TEST(FakeGpuBackendTest, KnownModelsHaveTheirOwnFigures) {
  FakeGpuBackend l4({.gpu_count = 1, .model = "NVIDIA L4"});
  ASSERT_TRUE(l4.Init().ok());
  auto r = l4.Read(0);
  EXPECT_TRUE(r->nvlinks.empty());
  EXPECT_EQ(*r->pcie_gen_max, 4);
  FakeGpuBackend custom({.gpu_count = 1, .model = "NVIDIA B200"});
  ASSERT_TRUE(custom.Init().ok());
  EXPECT_EQ(custom.Device(0)->name, "NVIDIA B200");
}

}  // namespace
}  // namespace navarch::agent
