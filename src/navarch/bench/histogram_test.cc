#include "navarch/bench/histogram.h"

#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "navarch/bench/workload.h"

namespace navarch::bench {
namespace {

TEST(LatencyHistogramTest, BucketsAreContinuousAndTight) {
  for (int i = 0; i < LatencyHistogram::kBuckets - 1; ++i) {
    ASSERT_EQ(LatencyHistogram::HighestOf(i) + 1,
              LatencyHistogram::LowestOf(i + 1))
        << "bucket " << i;
  }
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128},
                     uint64_t{255}, uint64_t{256}, uint64_t{1000},
                     uint64_t{123456789}, uint64_t{1} << 62, ~uint64_t{0}}) {
    int i = LatencyHistogram::IndexOf(v);
    ASSERT_LT(i, LatencyHistogram::kBuckets);
    EXPECT_LE(LatencyHistogram::LowestOf(i), v);
    EXPECT_GE(LatencyHistogram::HighestOf(i), v);
    // Within 1/128 of the value.
    EXPECT_LE(LatencyHistogram::HighestOf(i) - LatencyHistogram::LowestOf(i),
              v / 128);
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformSample) {
  LatencyHistogram h;
  for (int i = 1; i <= 10000; ++i) h.Record(absl::Microseconds(i));
  EXPECT_EQ(h.count(), 10000);
  EXPECT_EQ(h.min(), absl::Microseconds(1));
  EXPECT_EQ(h.max(), absl::Microseconds(10000));
  auto near = [](absl::Duration got, absl::Duration want) {
    double g = absl::ToDoubleMicroseconds(got);
    double w = absl::ToDoubleMicroseconds(want);
    return g >= w && g <= w * 1.01;
  };
  EXPECT_TRUE(near(h.Percentile(0.5), absl::Microseconds(5000)))
      << h.Percentile(0.5);
  EXPECT_TRUE(near(h.Percentile(0.99), absl::Microseconds(9900)))
      << h.Percentile(0.99);
  EXPECT_TRUE(near(h.Percentile(0.999), absl::Microseconds(9990)))
      << h.Percentile(0.999);
  EXPECT_EQ(h.Percentile(1.0), absl::Microseconds(10000));
  EXPECT_NEAR(absl::ToDoubleMicroseconds(h.mean()), 5000.5, 0.01);
}

TEST(LatencyHistogramTest, EmptyAndNegative) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.99), absl::ZeroDuration());
  EXPECT_EQ(h.min(), absl::ZeroDuration());
  h.Record(absl::Milliseconds(-3));
  EXPECT_EQ(h.count(), 1);
  EXPECT_EQ(h.max(), absl::ZeroDuration());
}

TEST(LatencyHistogramTest, ConcurrentRecordsAndMerge) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.RecordNanos(1000 * (t + 1));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.count(), 40000);
  LatencyHistogram sum;
  sum.Merge(h);
  sum.Merge(h);
  EXPECT_EQ(sum.count(), 80000);
  EXPECT_EQ(sum.min(), absl::Nanoseconds(1000));
  EXPECT_EQ(sum.max(), absl::Nanoseconds(4000));
}

TEST(WorkloadTest, RegistrationsAreRealisticAndDeterministic) {
  FleetShape shape;
  RegisterNodeRequest a, b;
  FillRegister(shape, 41, &a);
  FillRegister(shape, 41, &b);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(a.node_id(), "bench-node-41");
  ASSERT_EQ(a.gpus_size(), 8);
  EXPECT_EQ(a.gpus(3).uuid().size(), 40u);
  EXPECT_EQ(a.gpus(3).uuid().rfind("GPU-", 0), 0u);
  EXPECT_NE(a.gpus(3).uuid(), a.gpus(4).uuid());
  EXPECT_EQ(a.gpus(0).pci_bus_id(), "00000000:18:00.0");
  EXPECT_EQ(a.metadata().labels().at("pool"), "bench");

  HeartbeatRequest hb;
  FillHeartbeat(shape, 41, 1, absl::FromUnixSeconds(1767225600), &hb);
  FillHeartbeat(shape, 42, 2, absl::FromUnixSeconds(1767225601), &hb);
  EXPECT_EQ(hb.node_id(), "bench-node-42");
  EXPECT_EQ(hb.metrics().gpu_metrics_size(), 8);

  ReportHealthRequest xid;
  FillXidReport(shape, 41, 2, 79, absl::FromUnixSeconds(1767225600), &xid);
  ASSERT_EQ(xid.events_size(), 1);
  EXPECT_EQ(xid.events(0).metrics().at("xid_code"), "79");
  EXPECT_EQ(xid.events(0).gpu_uuid(), a.gpus(2).uuid());
}

}  // namespace
}  // namespace navarch::bench
