#include "navarch/bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace navarch::bench {

LatencyHistogram::LatencyHistogram() { Reset(); }

void LatencyHistogram::Reset() {
  for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  total_.store(0, std::memory_order_relaxed);
  sum_nanos_.store(0, std::memory_order_relaxed);
  min_nanos_.store(std::numeric_limits<int64_t>::max(),
                   std::memory_order_relaxed);
  max_nanos_.store(0, std::memory_order_relaxed);
}

int LatencyHistogram::IndexOf(uint64_t nanos) {
  if (nanos < static_cast<uint64_t>(kSubBuckets))
    return static_cast<int>(nanos);
  // The highest set bit decides the bucket; the next kSubBucketBits bits the
  // sub-bucket. Buckets after the first hold kSubBuckets/2 new sub-buckets
  // each, hence the index arithmetic below is continuous.
  int top_bit = 63 - std::countl_zero(nanos);
  int shift = top_bit - kSubBucketBits;
  uint64_t sub = nanos >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  return shift * kSubBuckets + static_cast<int>(sub);
}

uint64_t LatencyHistogram::LowestOf(int index) {
  if (index < 2 * kSubBuckets) return static_cast<uint64_t>(index);
  int shift = index / kSubBuckets - 1;
  uint64_t sub = static_cast<uint64_t>(index - shift * kSubBuckets);
  return sub << shift;
}

uint64_t LatencyHistogram::HighestOf(int index) {
  if (index < 2 * kSubBuckets) return static_cast<uint64_t>(index);
  int shift = index / kSubBuckets - 1;
  return LowestOf(index) + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(absl::Duration d) {
  RecordNanos(absl::ToInt64Nanoseconds(d));
}

void LatencyHistogram::RecordNanos(int64_t nanos) {
  nanos = std::max<int64_t>(nanos, 0);
  counts_[IndexOf(static_cast<uint64_t>(nanos))].fetch_add(
      1, std::memory_order_relaxed);
  total_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(nanos, std::memory_order_relaxed);
  int64_t seen = min_nanos_.load(std::memory_order_relaxed);
  while (nanos < seen && !min_nanos_.compare_exchange_weak(
                             seen, nanos, std::memory_order_relaxed)) {
  }
  seen = max_nanos_.load(std::memory_order_relaxed);
  while (nanos > seen && !max_nanos_.compare_exchange_weak(
                             seen, nanos, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) {
    uint64_t c = other.counts_[i].load(std::memory_order_relaxed);
    if (c != 0) counts_[i].fetch_add(c, std::memory_order_relaxed);
  }
  int64_t n = other.total_.load(std::memory_order_relaxed);
  if (n == 0) return;
  total_.fetch_add(n, std::memory_order_relaxed);
  sum_nanos_.fetch_add(other.sum_nanos_.load(std::memory_order_relaxed),
                       std::memory_order_relaxed);
  min_nanos_.store(std::min(min_nanos_.load(std::memory_order_relaxed),
                            other.min_nanos_.load(std::memory_order_relaxed)),
                   std::memory_order_relaxed);
  max_nanos_.store(std::max(max_nanos_.load(std::memory_order_relaxed),
                            other.max_nanos_.load(std::memory_order_relaxed)),
                   std::memory_order_relaxed);
}

int64_t LatencyHistogram::count() const {
  return total_.load(std::memory_order_relaxed);
}

absl::Duration LatencyHistogram::min() const {
  if (count() == 0) return absl::ZeroDuration();
  return absl::Nanoseconds(min_nanos_.load(std::memory_order_relaxed));
}

absl::Duration LatencyHistogram::max() const {
  return absl::Nanoseconds(max_nanos_.load(std::memory_order_relaxed));
}

absl::Duration LatencyHistogram::mean() const {
  int64_t n = count();
  if (n == 0) return absl::ZeroDuration();
  return absl::Nanoseconds(sum_nanos_.load(std::memory_order_relaxed) / n);
}

absl::Duration LatencyHistogram::Percentile(double q) const {
  int64_t n = count();
  if (n == 0) return absl::ZeroDuration();
  q = std::clamp(q, 0.0, 1.0);
  int64_t rank = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(q * static_cast<double>(n))));
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += static_cast<int64_t>(counts_[i].load(std::memory_order_relaxed));
    if (seen >= rank) {
      return std::min(absl::Nanoseconds(static_cast<int64_t>(
                          std::min<uint64_t>(HighestOf(i), INT64_MAX))),
                      max());
    }
  }
  return max();
}

}  // namespace navarch::bench
