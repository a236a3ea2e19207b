#include "navarch/bench/workload.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/time_util.h"

namespace navarch::bench {
namespace {

// The PCI buses of the eight GPUs of an HGX H100 board, in NVML order.
constexpr uint32_t kHgxBuses[] = {0x18, 0x2a, 0x3a, 0x5d,
                                  0x9a, 0xab, 0xba, 0xdb};
constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kH100Memory = 81559 * kMiB;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint32_t BusOf(int g) { return kHgxBuses[g % 8]; }

}  // namespace

std::string NodeId(const FleetShape& shape, int64_t i) {
  return absl::StrCat(shape.node_prefix, i);
}

std::string GpuUuid(int64_t i, int g) {
  uint64_t a = SplitMix64(static_cast<uint64_t>(i) * 64 + g);
  uint64_t b = SplitMix64(a);
  return absl::StrFormat("GPU-%08x-%04x-4%03x-%04x-%012x", a >> 32,
                         (a >> 16) & 0xffff, a & 0xfff,
                         0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
}

void FillRegister(const FleetShape& shape, int64_t i,
                  RegisterNodeRequest* req) {
  req->Clear();
  const char* region = kRegions[i % 4];
  req->set_node_id(NodeId(shape, i));
  req->set_provider("aws");
  req->set_region(region);
  req->set_zone(absl::StrCat(region, (i / 4) % 2 == 0 ? "a" : "b"));
  req->set_instance_type("p5.48xlarge");
  for (int g = 0; g < shape.gpus_per_node; ++g) {
    GPUInfo* gpu = req->add_gpus();
    gpu->set_index(g);
    gpu->set_uuid(GpuUuid(i, g));
    gpu->set_name("NVIDIA H100 80GB HBM3");
    gpu->set_pci_bus_id(absl::StrFormat("00000000:%02X:00.0", BusOf(g)));
    gpu->set_memory_total(kH100Memory);
    gpu->set_driver_version("550.54.15");
    gpu->set_cuda_version("12.4");
  }
  NodeMetadata* m = req->mutable_metadata();
  uint32_t ip = 0x0a000000u | static_cast<uint32_t>(i & 0xffffff);
  m->set_hostname(absl::StrFormat("ip-10-%d-%d-%d", (ip >> 16) & 0xff,
                                  (ip >> 8) & 0xff, ip & 0xff));
  m->set_internal_ip(absl::StrFormat("10.%d.%d.%d", (ip >> 16) & 0xff,
                                     (ip >> 8) & 0xff, ip & 0xff));
  m->set_kernel_version("6.1.0-18-cloud-amd64");
  if (!shape.pool.empty()) (*m->mutable_labels())["pool"] = shape.pool;
}

void FillHeartbeat(const FleetShape& shape, int64_t i, int64_t seq,
                   absl::Time now, HeartbeatRequest* req) {
  req->set_node_id(NodeId(shape, i));
  *req->mutable_timestamp() = ToTimestamp(now);
  NodeMetrics* m = req->mutable_metrics();
  int wobble = static_cast<int>((seq + i) % 7);
  m->set_cpu_usage_percent(31.5 + wobble);
  m->set_memory_usage_percent(62.25 + wobble / 2.0);
  // Reuse the repeated field's elements when the request is filled again.
  while (m->gpu_metrics_size() > shape.gpus_per_node)
    m->mutable_gpu_metrics()->RemoveLast();
  for (int g = 0; g < shape.gpus_per_node; ++g) {
    GPUMetrics* gm = g < m->gpu_metrics_size() ? m->mutable_gpu_metrics(g)
                                               : m->add_gpu_metrics();
    gm->set_gpu_index(g);
    gm->set_temperature(62 + (wobble + g) % 9);
    gm->set_power_usage(540 + 17 * ((wobble + g) % 9));
    gm->set_utilization_percent(88.0 + (wobble + g) % 11);
    gm->set_memory_used(kH100Memory - (9000 + 512 * ((wobble + g) % 5)) * kMiB);
  }
}

void FillXidReport(const FleetShape& shape, int64_t i, int gpu, int xid,
                   absl::Time at, ReportHealthRequest* req) {
  req->Clear();
  req->set_node_id(NodeId(shape, i));
  HealthEvent* e = req->add_events();
  *e->mutable_timestamp() = ToTimestamp(at);
  e->set_gpu_index(gpu);
  e->set_gpu_uuid(GpuUuid(i, gpu));
  e->set_event_type(HEALTH_EVENT_TYPE_XID);
  std::string bus = absl::StrFormat("0000:%02x:00", BusOf(gpu));
  (*e->mutable_metrics())["xid_code"] = absl::StrCat(xid);
  (*e->mutable_metrics())["pci_bus_id"] = bus;
  (*e->mutable_metrics())["source"] = "kmsg";
  e->set_system(HEALTH_WATCH_SYSTEM_DRIVER);
  e->set_message(absl::StrCat(
      "NVRM: Xid (PCI:", bus, "): ", xid, ", pid=<unknown>, name=<unknown>",
      xid == 79 ? ", GPU has fallen off the bus." : "."));
}

}  // namespace navarch::bench
