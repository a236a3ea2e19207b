#include "navarch/base/backoff.h"

#include <algorithm>
#include <cmath>

#include "absl/random/distributions.h"

namespace navarch {

Backoff::Backoff(BackoffPolicy policy, absl::BitGenRef rng)
    : policy_(policy), rng_(rng) {
  policy_.jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  policy_.multiplier = std::max(policy_.multiplier, 1.0);
  if (policy_.max < policy_.initial) policy_.max = policy_.initial;
}

absl::Duration Backoff::Next() {
  double base_s = absl::ToDoubleSeconds(policy_.initial) *
                  std::pow(policy_.multiplier, std::min(attempt_, 64));
  double max_s = absl::ToDoubleSeconds(policy_.max);
  base_s = std::min(base_s, max_s);
  ++attempt_;
  double factor = 1.0;
  if (policy_.jitter > 0) {
    factor = absl::Uniform(rng_, 1.0 - policy_.jitter, 1.0 + policy_.jitter);
  }
  return absl::Seconds(std::min(base_s * factor, max_s));
}

}  // namespace navarch
