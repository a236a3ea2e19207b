#include "navarch/store/memory/memory_store.h"

#include <memory>

#include "gtest/gtest.h"
#include "navarch/store/testing/store_conformance.h"

namespace navarch {
namespace {

class MemoryHarness : public StoreHarness {
 public:
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    return std::unique_ptr<Store>(std::make_unique<MemoryStore>());
  }
  bool durable() const override { return false; }
};

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformanceTest,
                         ::testing::Values(StoreBackend{
                             "memory",
                             [] { return std::make_unique<MemoryHarness>(); }}),
                         StoreBackendName);

}  // namespace
}  // namespace navarch
