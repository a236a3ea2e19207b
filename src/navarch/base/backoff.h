// Exponential backoff with jitter. Randomness comes from an injected,
// seedable generator so that tests and the simulator are reproducible.
#ifndef NAVARCH_BASE_BACKOFF_H_
#define NAVARCH_BASE_BACKOFF_H_

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace navarch {

struct BackoffPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Seconds(60);
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [d * (1 - jitter), d * (1 + jitter)],
  // then capped at max. 0 disables jitter; values are clamped to [0, 1].
  double jitter = 0.2;
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, absl::BitGenRef rng);

  // The delay before the next attempt; grows geometrically up to max.
  absl::Duration Next();
  // After a success: the next delay starts from `initial` again.
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  absl::BitGenRef rng_;
  int attempt_ = 0;
};

}  // namespace navarch

#endif  // NAVARCH_BASE_BACKOFF_H_
