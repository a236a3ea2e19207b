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

TEST(MemoryStoreTest, WithoutTheEventLogEventsGetIdsAndAreNotKept) {
  MemoryStore store(MemoryStoreOptions{.keep_events = false});
  for (int i = 0; i < 3; ++i) {
    WriteBatch batch;
    Event e;
    e.set_kind("node.registered");
    e.set_node_id("n1");
    batch.events.push_back(e);
    batch.events.push_back(e);
    absl::Status committed = absl::UnknownError("not called");
    store.Commit(std::move(batch), [&](absl::Status s) { committed = s; });
    ASSERT_TRUE(committed.ok()) << committed;
  }
  absl::StatusOr<StoreSnapshot> snap = store.Load();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->last_event_id, 6);
  absl::StatusOr<EventPage> page = store.ListEvents(EventQuery{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());
}

}  // namespace
}  // namespace navarch
