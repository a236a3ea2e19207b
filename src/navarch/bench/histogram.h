// A latency histogram in the manner of HdrHistogram: logarithmic buckets, each
// split linearly into 2^kSubBucketBits sub-buckets, so every recorded value is
// known to within 1/128 (0.8 %) whatever its magnitude, from a nanosecond to
// centuries, in a fixed 7,424-slot table. Recording is one relaxed atomic
// increment: the load generator's callback threads share one histogram
// without a lock.
#ifndef NAVARCH_BENCH_HISTOGRAM_H_
#define NAVARCH_BENCH_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace navarch::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  // Shifts 0..56 cover every uint64 nanosecond count.
  static constexpr int kBuckets = (64 - kSubBucketBits + 1) * kSubBuckets;

  LatencyHistogram();
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Negative durations count as zero. Thread-safe.
  void Record(absl::Duration d);
  void RecordNanos(int64_t nanos);
  // Adds `other`'s counts. Not atomic with respect to concurrent Records on
  // `other`.
  void Merge(const LatencyHistogram& other);
  void Reset();

  int64_t count() const;
  absl::Duration min() const;
  absl::Duration max() const;
  absl::Duration mean() const;
  // The value at quantile q (0..1): the highest value equivalent to the
  // bucket holding the ceil(q * count)-th smallest sample, capped at max().
  // Zero when empty.
  absl::Duration Percentile(double q) const;

  // Bucket arithmetic, exposed for tests.
  static int IndexOf(uint64_t nanos);
  static uint64_t LowestOf(int index);
  static uint64_t HighestOf(int index);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_;
  std::atomic<int64_t> total_{0};
  std::atomic<int64_t> sum_nanos_{0};
  std::atomic<int64_t> min_nanos_;
  std::atomic<int64_t> max_nanos_{0};
};

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_HISTOGRAM_H_
