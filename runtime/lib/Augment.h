//===- Augment.h - Seeded data augmentation of training batches -*- C++ -*-===//
#ifndef MASS_RUNTIME_AUGMENT_H
#define MASS_RUNTIME_AUGMENT_H

#include "Json.h"
#include "Model.h"
#include "Tensor.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mass::rt {

/// One entry of the train block's `augment` list, applied to one input of
/// each training batch (never to validation data or the gradient dump).
struct Augmentation {
  enum class Kind {
    Crop,  // zero-pad by `pad`, crop back at a random offset (RandomCrop)
    Flip,  // mirror the last axis with probability 1/2 (RandomHorizontalFlip)
    Noise, // add N(0, std^2) to every element
  } kind;
  std::string input;
  int64_t pad = 0;
  double std = 0;
};

/// Reads the train block's `augment` list and checks it against the
/// model's inputs: crop and flip need an f32 image [B, ..., H, W].
bool parseAugmentations(const Json &list, const std::vector<ValueSpec> &inputs,
                        std::vector<Augmentation> &out, std::string &error);

/// Applies `a` in place to the first `count` samples of `batch`: draws
/// for all of them, changes samples [from, upto) alone (a process's slice
/// of a batch drawn alike on every process).
void augment(const Augmentation &a, Tensor &batch, int64_t count,
             std::mt19937_64 &rng, int64_t from = 0, int64_t upto = INT64_MAX);

} // namespace mass::rt

#endif // MASS_RUNTIME_AUGMENT_H
