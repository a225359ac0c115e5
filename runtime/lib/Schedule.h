//===- Schedule.h - Learning-rate schedules ---------------------*- C++ -*-===//
#ifndef MASS_RUNTIME_SCHEDULE_H
#define MASS_RUNTIME_SCHEDULE_H

#include "Json.h"

#include <cstdint>
#include <string>

namespace mass::rt {

/// The learning rate at each optimizer step, counted from 0:
///   constant                lr
///   step(every, gamma)      lr * gamma^floor(step / every)   (gamma 0.1)
///   exponential(gamma)      lr * gamma^step
///   cosine(warmup, min_lr)  linear warm-up from lr/warmup to lr over
///                           `warmup` steps, then half a cosine from lr down
///                           to min_lr at the last step
struct Schedule {
  std::string kind = "constant";
  double baseLr = 1e-3;
  double every = 1, gamma = 0.1, warmup = 0, minLr = 0;
  int64_t totalSteps = 1;

  /// Reads `schedule = ...` from the train block; false with a reason on a
  /// bad value.
  static bool fromConfig(const Json &config, double baseLr, int64_t totalSteps,
                         Schedule &out, std::string &error);
  double at(int64_t step) const;
};

} // namespace mass::rt

#endif // MASS_RUNTIME_SCHEDULE_H
