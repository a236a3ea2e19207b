#include "navarch/agent/event_queue.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

HealthEvent Xid(int gpu, int code, const char* source) {
  HealthEvent e;
  e.set_event_type(HEALTH_EVENT_TYPE_XID);
  e.set_gpu_index(gpu);
  (*e.mutable_metrics())["xid_code"] = absl::StrCat(code);
  (*e.mutable_metrics())["source"] = source;
  return e;
}

TEST(EventQueueTest, KeepsOrderAndBoundsSize) {
  FakeClock clock;
  EventQueue q({.capacity = 3}, clock);
  for (int i = 0; i < 5; ++i) {
    HealthEvent e;
    e.set_message(absl::StrCat(i));
    EXPECT_EQ(q.Push(e), i < 3);
  }
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.dropped(), 2u);
  auto front = q.Front(2);
  ASSERT_EQ(front.size(), 2u);
  EXPECT_EQ(front[0].message(), "0");
  EXPECT_EQ(front[1].message(), "1");
  q.Pop(2);
  EXPECT_EQ(q.Front(10)[0].message(), "2");
  q.Pop(10);
  EXPECT_TRUE(q.empty());
}

TEST(EventQueueTest, SameXidFromSeveralSourcesCountsOnce) {
  FakeClock clock;
  EventQueue q({}, clock);
  EXPECT_TRUE(q.Push(Xid(3, 79, "nvml")));
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(q.Push(Xid(3, 79, "kmsg")));  // the same error
  EXPECT_EQ(q.duplicates(), 1u);
  EXPECT_TRUE(q.Push(Xid(3, 79, "kmsg")));   // a second, real one...
  EXPECT_FALSE(q.Push(Xid(3, 79, "nvml")));  // ...which NVML saw too
  EXPECT_TRUE(q.Push(Xid(4, 79, "kmsg")));   // another GPU
  EXPECT_TRUE(q.Push(Xid(3, 48, "kmsg")));   // another code
  // The GPU poll noticing a lost GPU is a third witness of the same XID 79.
  EXPECT_FALSE(q.Push(Xid(4, 79, "gpu_count")));
  clock.Advance(absl::Seconds(31));
  EXPECT_TRUE(q.Push(Xid(4, 79, "nvml")));  // outside the window
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(q.duplicates(), 3u);
}

}  // namespace
}  // namespace navarch::agent
