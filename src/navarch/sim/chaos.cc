#include "navarch/sim/chaos.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "navarch/sim/rng.h"

namespace navarch::sim {

const char* FailureCauseName(FailureCause cause) {
  switch (cause) {
    case FailureCause::kScenario:
      return "scenario";
    case FailureCause::kChaos:
      return "chaos";
    case FailureCause::kCascade:
      return "cascade";
    case FailureCause::kOutage:
      return "outage";
    case FailureCause::kCorrelated:
      return "correlated";
  }
  return "unknown";
}

bool IsRecoverableXid(int code) {
  for (int c : {13, 31, 32, 45, 64, 68, 92, 94}) {
    if (c == code) return true;
  }
  return false;
}

ChaosEngine::ChaosEngine(const ChaosSpec& spec, Clock& clock, ChaosHost& host,
                         uint64_t seed)
    : spec_(spec),
      clock_(clock),
      host_(host),
      timing_rng_(MakeRng(seed, Purpose::kChaosTiming)),
      pick_rng_(MakeRng(seed, Purpose::kChaosPick)),
      cascade_rng_(MakeRng(seed, Purpose::kCascade)),
      recovery_rng_(MakeRng(seed, Purpose::kRecovery)),
      outage_rng_(MakeRng(seed, Purpose::kOutage)),
      correlated_rng_(MakeRng(seed, Purpose::kCorrelated)) {}

int ChaosEngine::RandomXid(std::mt19937_64& rng) {
  static const std::vector<int> kDefault = {13, 31, 32, 43, 45, 48, 63,
                                            64, 74, 79, 92, 94, 95};
  if (spec_.xid_distribution.empty()) {
    return kDefault[UniformInt(rng, kDefault.size())];
  }
  int i = PickWeighted(rng, spec_.xid_distribution,
                       [](const auto& p) { return p.second; });
  return i < 0 ? 79 : spec_.xid_distribution[i].first;
}

Failure ChaosEngine::RandomFailure(const NodeSpec& node) {
  Failure f;
  int i = PickWeighted(pick_rng_, spec_.failure_types,
                       [](const WeightedName& w) { return w.weight; });
  f.type = i < 0 ? "xid_error" : spec_.failure_types[i].name;
  f.gpu = static_cast<int>(UniformInt(pick_rng_, std::max(node.gpu_count, 1)));
  if (f.type == "xid_error") f.xid = RandomXid(pick_rng_);
  return f;
}

void ChaosEngine::Start(absl::Time start, absl::Time end) {
  end_ = end;
  if (!spec_.enabled) return;
  clock_.Schedule(start - clock_.Now(), [this] { ScheduleNext(); });
  for (const OutageSpec& o : spec_.scheduled_outages) {
    absl::Time at = start + o.start_time;
    if (at >= end) continue;
    clock_.Schedule(at - clock_.Now(), [this, o] {
      std::vector<std::string> hit;
      const std::vector<const NodeSpec*> live = host_.Live().nodes();
      double share = 0;
      if (o.scope == "percentage") {
        std::string t = o.target;
        if (!t.empty() && t.back() == '%') t.pop_back();
        share = std::atof(t.c_str()) / 100.0;
      }
      for (const NodeSpec* n : live) {
        bool in = false;
        if (o.scope == "zone") in = n->zone == o.target;
        if (o.scope == "region") in = n->region == o.target;
        if (o.scope == "provider") in = n->provider == o.target;
        if (o.scope == "percentage") in = Uniform(outage_rng_) < share;
        if (in) hit.push_back(n->id);
      }
      ++stats_.outages;
      ++stats_.active_outages;
      Failure f;
      f.type = o.failure_type;
      if (f.type == "xid_error") f.xid = 79;
      f.message = absl::StrCat("outage ", o.name);
      for (const std::string& id : hit) {
        host_.InjectFailure(id, f, FailureCause::kOutage);
      }
      clock_.Schedule(o.duration, [this, hit, type = f.type] {
        for (const std::string& id : hit) host_.RecoverFailure(id, type);
        --stats_.active_outages;
      });
    });
  }
}

void ChaosEngine::ScheduleNext() {
  const absl::Time now = clock_.Now();
  if (now >= end_) return;
  const double nodes = static_cast<double>(host_.Live().size());
  const double per_second = spec_.failure_rate / 60.0 * nodes / 1000.0;
  // The rate follows the live fleet; a long gap is cut into re-evaluations
  // (exact for a memoryless process whose rate is constant in between).
  constexpr double kMaxStep = 10.0;
  double wait = per_second > 0 ? Exponential(timing_rng_, 1.0 / per_second)
                               : kMaxStep + 1;
  if (wait > kMaxStep) {
    if (now + absl::Seconds(kMaxStep) < end_) {
      clock_.Schedule(absl::Seconds(kMaxStep), [this] { ScheduleNext(); });
    }
    return;
  }
  absl::Duration d = absl::Nanoseconds(static_cast<int64_t>(wait * 1e9));
  if (now + d >= end_) return;
  clock_.Schedule(d, [this] {
    const std::vector<const NodeSpec*>& live = host_.Live().nodes();
    if (!live.empty()) {
      const NodeSpec* n = live[UniformInt(pick_rng_, live.size())];
      host_.InjectFailure(n->id, RandomFailure(*n), FailureCause::kChaos);
    }
    ScheduleNext();
  });
}

namespace {
// LiveSet's keys: "<scope>/<name>", by LiveSet::Scope.
constexpr const char* kScopePrefix[] = {"zone/", "region/", "provider/"};
}  // namespace

int LiveSet::Key(Scope scope, const std::string& name) {
  auto [it, added] = keys_.try_emplace(absl::StrCat(kScopePrefix[scope], name),
                                       static_cast<int>(groups_.size()));
  if (added) groups_.emplace_back();
  return it->second;
}

bool LiveSet::Add(const NodeSpec* node, bool failing) {
  if (slots_.contains(node)) return false;
  Slot slot;
  slot.all = static_cast<uint32_t>(all_.size());
  slot.failing = failing;
  all_.push_back(node);
  const std::string* names[] = {&node->zone, &node->region, &node->provider};
  for (int i = 0; i < 3; ++i) {
    slot.key[i] = Key(static_cast<Scope>(i), *names[i]);
    std::vector<Member>& group = groups_[slot.key[i]];
    slot.in[i] = static_cast<uint32_t>(group.size());
    group.push_back(Member{node, failing});
  }
  slots_.emplace(node, slot);
  return true;
}

namespace {
// Swap-removes index `i` of `v`; returns the element moved into it, if any.
template <typename T>
const T* SwapRemove(std::vector<T>& v, uint32_t i) {
  const T* moved = nullptr;
  if (i + 1 != v.size()) {
    v[i] = v.back();
    moved = &v[i];
  }
  v.pop_back();
  return moved;
}
}  // namespace

bool LiveSet::Remove(const NodeSpec* node) {
  auto it = slots_.find(node);
  if (it == slots_.end()) return false;
  const Slot slot = it->second;
  slots_.erase(it);
  if (const NodeSpec* const* m = SwapRemove(all_, slot.all))
    slots_[*m].all = slot.all;
  for (int i = 0; i < 3; ++i) {
    if (const Member* m = SwapRemove(groups_[slot.key[i]], slot.in[i]))
      slots_[m->node].in[i] = slot.in[i];
  }
  return true;
}

void LiveSet::SetFailing(const NodeSpec* node, bool failing) {
  auto it = slots_.find(node);
  if (it == slots_.end()) return;
  Slot& slot = it->second;
  slot.failing = failing;
  for (int i = 0; i < 3; ++i)
    groups_[slot.key[i]][slot.in[i]].failing = failing;
}

bool LiveSet::Failing(const NodeSpec* node) const {
  auto it = slots_.find(node);
  return it != slots_.end() && it->second.failing;
}

const std::vector<LiveSet::Member>& LiveSet::InScope(const NodeSpec& origin,
                                                     Scope scope) {
  const std::string& name = scope == kZone     ? origin.zone
                            : scope == kRegion ? origin.region
                                               : origin.provider;
  auto it = keys_.find(absl::StrCat(kScopePrefix[scope], name));
  return it == keys_.end() ? none_ : groups_[it->second];
}

std::vector<const NodeSpec*> ChaosEngine::InScope(const NodeSpec& origin,
                                                  const std::string& scope,
                                                  bool healthy_only) {
  auto rack_of = [](const NodeSpec& n) -> const std::string& {
    if (auto it = n.labels.find("rack"); it != n.labels.end())
      return it->second;
    if (auto it = n.labels.find("template"); it != n.labels.end())
      return it->second;
    return n.instance_type;
  };
  LiveSet& live = host_.Live();
  std::vector<const NodeSpec*> out;
  auto consider = [&](const NodeSpec* n, bool failing) {
    if (n == &origin || (healthy_only && failing)) return;
    if (scope == "rack" && rack_of(*n) != rack_of(origin)) return;
    out.push_back(n);
  };
  const std::vector<LiveSet::Member>* group = nullptr;
  if (scope == "zone" || scope == "rack") {
    group = &live.InScope(origin, LiveSet::kZone);
  } else if (scope == "region") {
    group = &live.InScope(origin, LiveSet::kRegion);
  } else if (scope == "provider") {
    group = &live.InScope(origin, LiveSet::kProvider);
  }
  if (group != nullptr) {
    out.reserve(group->size());
    for (const LiveSet::Member& m : *group) consider(m.node, m.failing);
  } else {
    out.reserve(live.size());
    for (const NodeSpec* n : live.nodes())
      consider(n, healthy_only && live.Failing(n));
  }
  return out;
}

void ChaosEngine::Cascade(const NodeSpec& origin, int depth) {
  const CascadeSpec& c = spec_.cascading;
  if (depth >= c.max_depth) return;
  if (Uniform(cascade_rng_) > c.probability) return;
  std::vector<const NodeSpec*> cands;
  for (const NodeSpec* n : InScope(origin, c.scope, /*healthy_only=*/true)) {
    if (cascade_pending_.empty() || !cascade_pending_.contains(n))
      cands.push_back(n);
  }
  if (cands.empty()) return;
  int max_affected =
      std::max(1, static_cast<int>(cands.size() * c.max_affected_percent));
  int affected =
      std::min<int>(1 + UniformInt(cascade_rng_, max_affected), cands.size());
  absl::Duration min = c.min_delay, max = c.max_delay;
  if (max <= min) max = min + absl::Seconds(1);
  for (int i = 0; i < affected; ++i) {
    size_t j = i + UniformInt(cascade_rng_, cands.size() - i);
    std::swap(cands[i], cands[j]);
    const NodeSpec* target = cands[i];
    absl::Duration delay = min + (max - min) * Uniform(cascade_rng_);
    Failure f;
    f.type = "xid_error";
    f.xid = RandomXid(cascade_rng_);
    f.gpu = static_cast<int>(
        UniformInt(cascade_rng_, std::max(target->gpu_count, 1)));
    f.message = absl::StrCat("cascade from ", origin.id);
    cascade_pending_.insert(target);
    clock_.Schedule(delay, [this, target, f, depth] {
      cascade_pending_.erase(target);
      if (clock_.Now() >= end_) return;
      if (host_.InjectFailure(target->id, f, FailureCause::kCascade)) {
        Cascade(*target, depth + 1);
      }
    });
  }
}

void ChaosEngine::OnInjected(const NodeSpec& node, const Failure& f,
                             FailureCause cause) {
  if (cause == FailureCause::kCascade) ++stats_.cascading;
  if (cause == FailureCause::kCorrelated) ++stats_.correlated;
  if (!spec_.enabled) return;

  // Recovery: upstream schedules it for recoverable failures only, and never
  // for cascades; outages clear their own failures.
  const RecoverySpec& r = spec_.recovery;
  const bool recoverable = f.type != "xid_error" || IsRecoverableXid(f.xid);
  if (r.enabled && recoverable &&
      (cause == FailureCause::kChaos || cause == FailureCause::kCorrelated) &&
      Uniform(recovery_rng_) <= r.probability) {
    absl::Duration std_dev =
        r.std_dev > absl::ZeroDuration() ? r.std_dev : r.mean_time / 4;
    absl::Duration d = r.mean_time + std_dev * Normal(recovery_rng_);
    d = std::max(d, absl::Seconds(10));
    std::string id = node.id, type = f.type;
    clock_.Schedule(d, [this, id, type] {
      if (clock_.Now() >= end_) return;
      host_.RecoverFailure(id, type);
    });
  }

  if (cause == FailureCause::kChaos && spec_.cascading.enabled) {
    Cascade(node, 0);
  }

  if (cause == FailureCause::kCorrelated) return;
  for (const CorrelatedSpec& c : spec_.correlated_failures) {
    if (f.type != c.trigger_type) continue;
    if (c.trigger_xid != 0 && f.xid != c.trigger_xid) continue;
    if (Uniform(correlated_rng_) >= c.probability) continue;
    std::vector<const NodeSpec*> targets;
    if (c.scope == "same_node") {
      targets.push_back(&node);
    } else {
      std::vector<const NodeSpec*> cands =
          InScope(node, c.scope, /*healthy_only=*/false);
      int n = std::min<int>(c.max_affected, cands.size());
      for (int i = 0; i < n; ++i) {
        size_t j = i + UniformInt(correlated_rng_, cands.size() - i);
        std::swap(cands[i], cands[j]);
        targets.push_back(cands[i]);
      }
    }
    Failure resp;
    resp.type = c.response_type;
    resp.xid = c.response_type == "xid_error" ? c.response_xid : 0;
    resp.gpu = f.gpu;
    resp.message =
        absl::StrCat("correlated failure ", c.name, " after ", f.type,
                     f.xid ? absl::StrCat(" ", f.xid) : "", " on ", node.id);
    for (const NodeSpec* t : targets) {
      std::string id = t->id;
      clock_.Schedule(c.delay, [this, id, resp] {
        if (clock_.Now() >= end_) return;
        host_.InjectFailure(id, resp, FailureCause::kCorrelated);
      });
    }
  }
}

}  // namespace navarch::sim
