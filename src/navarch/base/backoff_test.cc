#include "navarch/base/backoff.h"

#include <random>

#include "gtest/gtest.h"

namespace navarch {
namespace {

TEST(BackoffTest, GrowsGeometricallyToTheCapWithoutJitter) {
  std::mt19937_64 rng(1);
  Backoff b({absl::Seconds(1), absl::Seconds(10), 2.0, 0.0}, rng);
  EXPECT_EQ(b.Next(), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(2));
  EXPECT_EQ(b.Next(), absl::Seconds(4));
  EXPECT_EQ(b.Next(), absl::Seconds(8));
  EXPECT_EQ(b.Next(), absl::Seconds(10));
  EXPECT_EQ(b.Next(), absl::Seconds(10));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Seconds(1));
}

TEST(BackoffTest, JitterStaysInBoundsAndIsReproducible) {
  std::mt19937_64 rng1(42), rng2(42);
  Backoff a({absl::Seconds(2), absl::Seconds(60), 2.0, 0.5}, rng1);
  Backoff b({absl::Seconds(2), absl::Seconds(60), 2.0, 0.5}, rng2);
  bool varied = false;
  for (int i = 0; i < 20; ++i) {
    absl::Duration da = a.Next(), db = b.Next();
    EXPECT_EQ(da, db);
    double base = std::min(2.0 * std::pow(2.0, i), 60.0);
    EXPECT_GE(absl::ToDoubleSeconds(da), base * 0.5 - 1e-9);
    EXPECT_LE(absl::ToDoubleSeconds(da), std::min(base * 1.5, 60.0) + 1e-9);
    if (std::abs(absl::ToDoubleSeconds(da) - base) > 1e-6) varied = true;
  }
  EXPECT_TRUE(varied);
}

}  // namespace
}  // namespace navarch
