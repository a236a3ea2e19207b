// Seeded randomness for the simulator: one generator per purpose, so adding
// a draw for one purpose (say, cold starts) never shifts the numbers another
// (say, chaos) sees, and the same seed gives the same run.
#ifndef NAVARCH_SIM_RNG_H_
#define NAVARCH_SIM_RNG_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace navarch::sim {

// What a generator is for; the value is mixed into the seed.
enum class Purpose : uint64_t {
  kFleetGen = 1,
  kStartup = 2,
  kChaosTiming = 3,
  kChaosPick = 4,
  kCascade = 5,
  kRecovery = 6,
  kOutage = 7,
  kCorrelated = 8,
  kReplacement = 9,
  kFleetService = 10,
  kProvider = 11,
  kGpu = 12,
  kPoolManager = 13,
};

// splitmix64: decorrelates nearby seeds.
inline uint64_t MixSeed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline std::mt19937_64 MakeRng(uint64_t seed, Purpose purpose) {
  return std::mt19937_64(MixSeed(seed, static_cast<uint64_t>(purpose)));
}

// Uniform in [0, 1). Written out (not std::uniform_real_distribution) so the
// numbers are the same with every standard library.
inline double Uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Uniform integer in [0, n); 0 when n <= 0.
inline uint64_t UniformInt(std::mt19937_64& rng, uint64_t n) {
  if (n == 0) return 0;
  return static_cast<uint64_t>(Uniform(rng) * static_cast<double>(n)) % n;
}

// Standard normal by Box-Muller (library-independent, like Uniform).
inline double Normal(std::mt19937_64& rng) {
  double u1 = Uniform(rng);
  double u2 = Uniform(rng);
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Exponentially distributed with the given mean.
inline double Exponential(std::mt19937_64& rng, double mean) {
  double u = Uniform(rng);
  return -std::log(1.0 - u) * mean;
}

// Index picked by weight; -1 when every weight is <= 0.
template <typename T, typename WeightOf>
int PickWeighted(std::mt19937_64& rng, const std::vector<T>& items,
                 WeightOf weight_of) {
  double total = 0;
  for (const T& t : items) total += std::max(0.0, weight_of(t));
  if (total <= 0) return -1;
  double x = Uniform(rng) * total;
  for (size_t i = 0; i < items.size(); ++i) {
    double w = std::max(0.0, weight_of(items[i]));
    if (x < w) return static_cast<int>(i);
    x -= w;
  }
  for (size_t i = items.size(); i-- > 0;) {
    if (weight_of(items[i]) > 0) return static_cast<int>(i);
  }
  return -1;
}

// d scaled by a uniform factor in [1 - J%, 1 + J%] (upstream's jitter).
inline absl::Duration Jitter(std::mt19937_64& rng, absl::Duration d,
                             int jitter_percent) {
  if (jitter_percent <= 0) return d;
  double f = 1.0 + (Uniform(rng) - 0.5) * 2.0 * jitter_percent / 100.0;
  return d * f;
}

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_RNG_H_
