// Stress fleets: nodes generated from weighted templates, providers, regions
// and zones, and when each one starts (upstream's four startup patterns,
// jitter and cold starts).
#ifndef NAVARCH_SIM_FLEET_GEN_H_
#define NAVARCH_SIM_FLEET_GEN_H_

#include <random>
#include <vector>

#include "absl/time/time.h"
#include "navarch/sim/scenario.h"

namespace navarch::sim {

// Node i: template, provider and region by weight, zone from `zones` (else
// region + "-" + one of a..d); id "<provider>-<region>-<template>-<%04d i>";
// labels = the template's + template, generated=true, index.
std::vector<NodeSpec> GenerateFleet(const FleetGenSpec& spec,
                                    std::mt19937_64& rng);

// The instance type upstream picks when a template names none.
std::string DefaultInstanceType(const std::string& provider, int gpu_count);

struct NodeStart {
  absl::Duration start;       // from the start of the run
  absl::Duration cold_start;  // then the agent registers after this
};

// One entry per node, in node order. `end` receives when the last node
// starts (chaos begins then).
std::vector<NodeStart> StartupSchedule(const StartupSpec& spec, int nodes,
                                       std::mt19937_64& rng,
                                       absl::Duration* end);

// Upstream's cold start: N(mean, stddev) clipped at 0 then to [min, max]
// when set; else uniform [min, max); else 0.
absl::Duration ColdStart(const StartupSpec& spec, std::mt19937_64& rng);

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_FLEET_GEN_H_
