#include "navarch/agent/gpu/nvml_backend.h"

#include <dlfcn.h>

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

// The fake library's controls, resolved from the same handle NvmlBackend
// uses (dlopen of one path returns one loaded object).
class FakeNvml {
 public:
  FakeNvml() : handle_(dlopen(NAVARCH_FAKE_NVML, RTLD_NOW | RTLD_LOCAL)) {
    Call<void (*)()>("fake_nvml_reset")();
  }
  ~FakeNvml() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  template <typename F>
  F Call(const char* name) {
    return reinterpret_cast<F>(dlsym(handle_, name));
  }

 private:
  void* handle_;
};

TEST(NvmlBackendTest, MissingLibraryFailsWithAClearMessage) {
  auto backend = NvmlBackend::Load("libnvidia-ml-does-not-exist.so.1");
  ASSERT_FALSE(backend.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(backend.status()));
  EXPECT_NE(backend.status().message().find("libnvidia-ml-does-not-exist.so.1"),
            std::string::npos);
  EXPECT_NE(backend.status().message().find("NVIDIA driver"),
            std::string::npos);
}

TEST(NvmlBackendTest, LibraryWithoutNvmlIsRefused) {
  // libc is a real shared library, but not NVML.
  auto backend = NvmlBackend::Load("libc.so.6");
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("nvmlInit"), std::string::npos);
}

TEST(NvmlBackendTest, ReadsWhatTheH200FixtureShows) {
  FakeNvml fake;
  auto loaded = NvmlBackend::Load(NAVARCH_FAKE_NVML);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  NvmlBackend& nvml = **loaded;
  ASSERT_TRUE(nvml.Init().ok());
  // The fake has no NVLink functions: reported, not fatal.
  EXPECT_NE(std::find(nvml.missing_symbols().begin(),
                      nvml.missing_symbols().end(), "nvmlDeviceGetNvLinkState"),
            nvml.missing_symbols().end());

  auto sys = nvml.SystemInfo();
  ASSERT_TRUE(sys.ok());
  EXPECT_EQ(sys->driver_version, "580.159.04");
  EXPECT_EQ(sys->cuda_version, "13.0");
  EXPECT_EQ(*nvml.DeviceCount(), 1);

  auto d = nvml.Device(0);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->name, "NVIDIA H200");
  EXPECT_EQ(d->uuid, "GPU-d49c1d00-83d3-507c-2219-9467d956de9a");
  EXPECT_EQ(d->pci_bus_id, "00000000:00:06.0");
  EXPECT_EQ(d->memory_total_bytes, 150754820096LL);

  auto r = nvml.Read(0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r->temperature_c, 38);
  EXPECT_EQ(*r->slowdown_temperature_c, 89);
  EXPECT_EQ(*r->shutdown_temperature_c, 95);
  EXPECT_DOUBLE_EQ(*r->power_watts, 86.715);
  EXPECT_EQ(*r->utilization_gpu_percent, 0);
  EXPECT_EQ(*r->memory_used_bytes, 644939776LL);
  EXPECT_EQ(*r->ecc_corrected, 0u);
  EXPECT_EQ(*r->ecc_uncorrected, 0u);
  EXPECT_FALSE(*r->remap_pending);
  EXPECT_FALSE(*r->remap_failure);
  EXPECT_EQ(*r->clock_event_reasons, 0x1u);
  EXPECT_EQ(*r->pcie_gen_current, 5);
  EXPECT_EQ(*r->pcie_width_max, 16);
  EXPECT_TRUE(r->nvlinks.empty());
}

TEST(NvmlBackendTest, UnsupportedReadingIsDisabledNotFatal) {
  FakeNvml fake;
  fake.Call<void (*)(int)>("fake_nvml_set_ecc_supported")(0);
  auto loaded = NvmlBackend::Load(NAVARCH_FAKE_NVML);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE((*loaded)->Init().ok());
  auto r = (*loaded)->Read(0);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ecc_corrected.has_value());
  EXPECT_TRUE(r->temperature_c.has_value());
  // Switched off for good: even when the driver would answer now.
  fake.Call<void (*)(int)>("fake_nvml_set_ecc_supported")(1);
  EXPECT_FALSE((*loaded)->Read(0)->ecc_corrected.has_value());
}

TEST(NvmlBackendTest, LostGpuIsNotFound) {
  FakeNvml fake;
  auto loaded = NvmlBackend::Load(NAVARCH_FAKE_NVML);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE((*loaded)->Init().ok());
  fake.Call<void (*)(int, int)>("fake_nvml_set_lost")(0, 1);
  auto r = (*loaded)->Read(0);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("GPU is lost"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound((*loaded)->Device(0).status()));
}

TEST(NvmlBackendTest, InitFailureIsReported) {
  FakeNvml fake;
  fake.Call<void (*)(int)>("fake_nvml_set_init_result")(
      9);  // driver not loaded
  auto loaded = NvmlBackend::Load(NAVARCH_FAKE_NVML);
  ASSERT_TRUE(loaded.ok());
  absl::Status s = (*loaded)->Init();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("Driver Not Loaded"), std::string::npos);
  EXPECT_FALSE((*loaded)->DeviceCount().ok());
}

TEST(NvmlBackendTest, XidEventsComeThroughTheEventSet) {
  FakeNvml fake;
  fake.Call<void (*)(unsigned int)>("fake_nvml_set_gpu_count")(2);
  auto loaded = NvmlBackend::Load(NAVARCH_FAKE_NVML);
  ASSERT_TRUE(loaded.ok());
  ASSERT_TRUE((*loaded)->Init().ok());
  EXPECT_EQ(fake.Call<int (*)()>("fake_nvml_registered")(), 2);
  EXPECT_TRUE((*loaded)->WaitXid(absl::Milliseconds(10))->empty());
  fake.Call<void (*)(int, unsigned long long)>("fake_nvml_inject_xid")(1, 79);
  fake.Call<void (*)(int, unsigned long long)>("fake_nvml_inject_xid")(0, 999);
  auto xids = (*loaded)->WaitXid(absl::Seconds(1));
  ASSERT_TRUE(xids.ok());
  ASSERT_EQ(xids->size(), 2u);
  EXPECT_EQ((*xids)[0].gpu_index, 1);
  EXPECT_EQ((*xids)[0].code, 79);
  EXPECT_EQ((*xids)[0].gpu_uuid, "GPU-d49c1d00-83d3-507c-2219-9467d956de9b");
  EXPECT_EQ((*xids)[1].gpu_index, 0);
  EXPECT_EQ((*xids)[1].code, 0);  // NVML's 999: unknown
}

}  // namespace
}  // namespace navarch::agent
