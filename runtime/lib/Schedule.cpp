//===- Schedule.cpp - Learning-rate schedules -----------------------------===//

#include "Schedule.h"

#include <algorithm>
#include <cmath>

using namespace mass::rt;

bool Schedule::fromConfig(const Json &config, double baseLr, int64_t totalSteps,
                          Schedule &out, std::string &error) {
  out = Schedule();
  out.baseLr = baseLr;
  out.totalSteps = std::max<int64_t>(totalSteps, 1);
  if (config.isNull())
    return true;
  out.kind = config.stringOr("kind", "constant");
  if (out.kind == "constant")
    return true;
  if (out.kind == "step") {
    out.every = config.numberOr("every", 0);
    out.gamma = config.numberOr("gamma", 0.1);
    if (out.every < 1) {
      error = "schedule step(every: N): N must be at least 1";
      return false;
    }
    return true;
  }
  if (out.kind == "exponential") {
    out.gamma = config.numberOr("gamma", -1);
    if (out.gamma <= 0) {
      error = "schedule exponential(gamma: g): g must be positive";
      return false;
    }
    return true;
  }
  if (out.kind == "cosine") {
    out.warmup = config.numberOr("warmup", 0);
    out.minLr = config.numberOr("min_lr", 0);
    if (out.warmup < 0) {
      error = "schedule cosine(warmup: N): N must be >= 0";
      return false;
    }
    return true;
  }
  error = "unknown schedule '" + out.kind + "'";
  return false;
}

double Schedule::at(int64_t step) const {
  if (kind == "step")
    return baseLr * std::pow(gamma, std::floor(step / every));
  if (kind == "exponential")
    return baseLr * std::pow(gamma, static_cast<double>(step));
  if (kind == "cosine") {
    if (step < warmup)
      return baseLr * (step + 1) / warmup;
    double span = std::max(1.0, totalSteps - warmup - 1);
    double progress = std::min(1.0, (step - warmup) / span);
    return minLr + (baseLr - minLr) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  return baseLr;
}
