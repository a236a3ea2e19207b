#include "navarch/sim/fleet_gen.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/sim/rng.h"

namespace navarch::sim {

std::string DefaultInstanceType(const std::string& provider, int gpu_count) {
  if (provider == "gcp") {
    return gpu_count == 8 ? "a3-highgpu-8g"
                          : absl::StrCat("a3-highgpu-", gpu_count, "g");
  }
  if (provider == "aws") return gpu_count == 8 ? "p5.48xlarge" : "p4d.24xlarge";
  if (provider == "lambda") return absl::StrCat("gpu_", gpu_count, "x_h100");
  return "generic-gpu";
}

std::vector<NodeSpec> GenerateFleet(const FleetGenSpec& spec,
                                    std::mt19937_64& rng) {
  std::vector<WeightedName> providers = spec.providers;
  if (providers.empty()) providers = {{"aws", 35}, {"gcp", 50}, {"lambda", 15}};
  std::vector<WeightedName> regions = spec.regions;
  if (regions.empty()) {
    regions = {{"asia-east1", 10},
               {"europe-west1", 15},
               {"us-central1", 30},
               {"us-east1", 25},
               {"us-west1", 20}};
  }
  auto weight = [](const WeightedName& w) { return w.weight; };
  std::vector<NodeSpec> out;
  out.reserve(spec.total_nodes);
  for (int i = 0; i < spec.total_nodes; ++i) {
    int t = PickWeighted(rng, spec.templates,
                         [](const TemplateSpec& t) { return t.weight; });
    const TemplateSpec& tmpl = spec.templates[std::max(t, 0)];
    int p = std::max(PickWeighted(rng, providers, weight), 0);
    int r = std::max(PickWeighted(rng, regions, weight), 0);
    NodeSpec n;
    n.provider = providers[p].name;
    n.region = regions[r].name;
    if (auto z = spec.zones.find(n.region);
        z != spec.zones.end() && !z->second.empty()) {
      n.zone = z->second[UniformInt(rng, z->second.size())];
    } else {
      n.zone = absl::StrCat(n.region, "-",
                            std::string(1, "abcd"[UniformInt(rng, 4)]));
    }
    n.id = absl::StrFormat("%s-%s-%s-%04d", n.provider, n.region, tmpl.name, i);
    n.gpu_count = tmpl.gpu_count;
    n.gpu_type = tmpl.gpu_type;
    n.instance_type = tmpl.instance_type.empty()
                          ? DefaultInstanceType(n.provider, tmpl.gpu_count)
                          : tmpl.instance_type;
    n.labels = tmpl.labels;
    n.labels["template"] = tmpl.name;
    n.labels["generated"] = "true";
    n.labels["index"] = absl::StrCat(i);
    out.push_back(std::move(n));
  }
  return out;
}

absl::Duration ColdStart(const StartupSpec& spec, std::mt19937_64& rng) {
  if (spec.cold_start_mean > absl::ZeroDuration()) {
    absl::Duration d =
        spec.cold_start_mean + spec.cold_start_stddev * Normal(rng);
    d = std::max(d, absl::ZeroDuration());
    if (spec.cold_start_min > absl::ZeroDuration())
      d = std::max(d, spec.cold_start_min);
    if (spec.cold_start_max > absl::ZeroDuration())
      d = std::min(d, spec.cold_start_max);
    return d;
  }
  if (spec.cold_start_min > absl::ZeroDuration() ||
      spec.cold_start_max > absl::ZeroDuration()) {
    absl::Duration span = spec.cold_start_max - spec.cold_start_min;
    if (span <= absl::ZeroDuration()) return spec.cold_start_min;
    return spec.cold_start_min + span * Uniform(rng);
  }
  return absl::ZeroDuration();
}

std::vector<NodeStart> StartupSchedule(const StartupSpec& spec, int nodes,
                                       std::mt19937_64& rng,
                                       absl::Duration* end) {
  std::vector<NodeStart> out(nodes);
  absl::Duration t = absl::ZeroDuration();
  const int j = spec.jitter_percent;
  if (spec.pattern == "linear" && nodes > 0) {
    absl::Duration total = spec.duration > absl::ZeroDuration()
                               ? spec.duration
                               : absl::Seconds(30);
    absl::Duration interval = total / nodes;
    for (int i = 0; i < nodes; ++i) {
      if (i > 0) t += Jitter(rng, interval, j);
      out[i].start = t;
    }
  } else if (spec.pattern == "exponential" && nodes > 0) {
    absl::Duration total =
        spec.duration > absl::ZeroDuration() ? spec.duration : absl::Minutes(2);
    int rounds = 0;
    for (int started = 0, batch = 1; started < nodes; batch *= 2) {
      started += batch;
      ++rounds;
    }
    absl::Duration gap = total / std::max(rounds, 1);
    int i = 0;
    for (int batch = 1; i < nodes; batch *= 2) {
      for (int k = 0; k < batch && i < nodes; ++k) out[i++].start = t;
      if (i < nodes) t += Jitter(rng, gap, j);
    }
  } else if (spec.pattern == "wave" && nodes > 0) {
    absl::Duration total =
        spec.duration > absl::ZeroDuration() ? spec.duration : absl::Minutes(5);
    int batch = std::max(spec.batch_size, 1);
    int batches = (nodes + batch - 1) / batch;
    absl::Duration gap = total / batches;
    for (int i = 0; i < nodes; ++i) {
      if (i > 0 && i % batch == 0) t += Jitter(rng, gap, j);
      out[i].start = t;
    }
  }
  for (auto& s : out) s.cold_start = ColdStart(spec, rng);
  *end = t;
  return out;
}

}  // namespace navarch::sim
