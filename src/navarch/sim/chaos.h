// Chaos for stress runs: random failures at a rate per 1,000 nodes per
// minute (a Poisson process on virtual time, without upstream's cap of one
// per second), cascades to nodes in the same real zone, region, provider or
// rack, recoveries, scheduled outages and correlated failures. Every draw
// comes from the engine's own seeded generators, one per purpose.
#ifndef NAVARCH_SIM_CHAOS_H_
#define NAVARCH_SIM_CHAOS_H_

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "navarch/base/clock.h"
#include "navarch/sim/scenario.h"
#include "navarch/sim/sim_agent.h"

namespace navarch::sim {

enum class FailureCause { kScenario, kChaos, kCascade, kOutage, kCorrelated };
const char* FailureCauseName(FailureCause cause);

// The nodes that are registered and running, in a stable order (insertion,
// with the last moved into a removed one's place), and the same grouped by
// zone, region and provider, so that a cascade finds its zone's nodes
// without a walk of the fleet. Each live node carries a flag: it has an
// injected failure (cascades pass it over), kept beside it so that a
// cascade reads its zone's flags in one sweep.
class LiveSet {
 public:
  enum Scope { kZone = 0, kRegion = 1, kProvider = 2 };
  struct Member {
    const NodeSpec* node;
    bool failing;
  };

  // False when already there / not there.
  bool Add(const NodeSpec* node, bool failing = false);
  bool Remove(const NodeSpec* node);
  bool Contains(const NodeSpec* node) const { return slots_.contains(node); }
  // Sets the node's flag; nothing for a node that is not live.
  void SetFailing(const NodeSpec* node, bool failing);
  bool Failing(const NodeSpec* node) const;

  const std::vector<const NodeSpec*>& nodes() const { return all_; }
  size_t size() const { return all_.size(); }
  // The live nodes that share `origin`'s zone, region or provider (origin
  // itself included if live), in a stable order.
  const std::vector<Member>& InScope(const NodeSpec& origin, Scope scope);

 private:
  struct Slot {
    uint32_t all;
    uint32_t in[3];  // index in groups_[key[i]]
    int key[3];
    bool failing;
  };
  int Key(Scope scope, const std::string& name);

  std::vector<const NodeSpec*> all_;
  absl::flat_hash_map<const NodeSpec*, Slot> slots_;
  // "<scope>/<name>" -> index in groups_.
  absl::flat_hash_map<std::string, int> keys_;
  std::vector<std::vector<Member>> groups_;
  // {}: clang rejects default-initializing a const member whose type has no
  // user-provided constructor (libstdc++'s vector() is defaulted).
  const std::vector<Member> none_{};
};

// What the engine needs from the simulation.
class ChaosHost {
 public:
  virtual ~ChaosHost() = default;
  virtual LiveSet& Live() = 0;
  // Injects; false when the node cannot take it (not running).
  virtual bool InjectFailure(const std::string& node_id, const Failure& f,
                             FailureCause cause) = 0;
  virtual void RecoverFailure(const std::string& node_id,
                              const std::string& type) = 0;
  // (Live().Failing(node): true while the node carries an injected
  // failure; cascades skip it, so a cascade reaches every node of its scope
  // at most once. The host keeps the flags.)
};

// What the report reads from the engine (the simulation counts the rest).
struct ChaosStats {
  int64_t cascading = 0;
  int64_t correlated = 0;
  int64_t outages = 0;  // outages started
  int active_outages = 0;
};

// Upstream's simulator table: which XIDs a recovery may clear.
bool IsRecoverableXid(int code);

class ChaosEngine {
 public:
  ChaosEngine(const ChaosSpec& spec, Clock& clock, ChaosHost& host,
              uint64_t seed);

  // Starts injecting at `start` (outage times count from there) until `end`.
  void Start(absl::Time start, absl::Time end);

  // The simulation calls this for every injected failure, whatever caused
  // it, so cascades, recoveries and correlated failures follow.
  void OnInjected(const NodeSpec& node, const Failure& f, FailureCause cause);

  // A failure of the configured type mix on GPU/XID draws.
  Failure RandomFailure(const NodeSpec& node);
  int RandomXid(std::mt19937_64& rng);

  const ChaosStats& stats() const { return stats_; }

 private:
  void ScheduleNext();
  void Cascade(const NodeSpec& origin, int depth);
  // The live nodes in `scope` of `origin`, without it, and without those
  // with a failure when `healthy_only`.
  std::vector<const NodeSpec*> InScope(const NodeSpec& origin,
                                       const std::string& scope,
                                       bool healthy_only);

  const ChaosSpec spec_;
  Clock& clock_;
  ChaosHost& host_;
  std::mt19937_64 timing_rng_, pick_rng_, cascade_rng_, recovery_rng_,
      outage_rng_, correlated_rng_;
  absl::Time end_ = absl::InfinitePast();
  // Nodes a cascade has picked and will hit (live nodes).
  absl::flat_hash_set<const NodeSpec*> cascade_pending_;
  ChaosStats stats_;
};

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_CHAOS_H_
