//===- Augment.cpp - Seeded data augmentation of training batches ---------===//

#include "Augment.h"

#include <algorithm>

using namespace mass::rt;

bool mass::rt::parseAugmentations(const Json &list,
                                  const std::vector<ValueSpec> &inputs,
                                  std::vector<Augmentation> &out,
                                  std::string &error) {
  for (const Json &item : list.items()) {
    Augmentation a;
    std::string kind = item.stringOr("kind", "");
    a.input = item.stringOr("input", "");
    auto input =
        std::find_if(inputs.begin(), inputs.end(),
                     [&](const ValueSpec &v) { return v.name == a.input; });
    if (input == inputs.end() || input->dtype != DType::F32) {
      error = "augment " + kind + ": '" + a.input +
              "' is not an f32 input of the model";
      return false;
    }
    if (kind == "random_crop" || kind == "flip") {
      a.kind =
          kind == "flip" ? Augmentation::Kind::Flip : Augmentation::Kind::Crop;
      if (input->shape.size() < 3) {
        error = "augment " + kind + ": '" + a.input + "' has shape " +
                formatShape(input->shape) +
                "; it needs an image [B, ..., H, W]";
        return false;
      }
      a.pad = static_cast<int64_t>(item.numberOr("pad", 0));
      if (a.kind == Augmentation::Kind::Crop && a.pad < 0) {
        error = "augment random_crop: pad must not be negative";
        return false;
      }
    } else if (kind == "noise") {
      a.kind = Augmentation::Kind::Noise;
      a.std = item.numberOr("std", 0);
      if (!(a.std >= 0)) {
        error = "augment noise: std must not be negative";
        return false;
      }
    } else {
      error = "unknown augmentation '" + kind + "'";
      return false;
    }
    out.push_back(a);
  }
  return true;
}

void mass::rt::augment(const Augmentation &a, Tensor &batch, int64_t count,
                       std::mt19937_64 &rng, int64_t from, int64_t upto) {
  auto changes = [&](int64_t s) { return s >= from && s < upto; };
  if (a.kind == Augmentation::Kind::Noise) {
    std::normal_distribution<float> noise(0.0f, static_cast<float>(a.std));
    int64_t row = batch.rowSize();
    for (int64_t s = 0; s < count; ++s)
      for (int64_t k = s * row; k < (s + 1) * row; ++k) {
        float x = noise(rng);
        if (changes(s))
          batch.f[k] += x;
      }
    return;
  }
  size_t rank = batch.shape.size();
  int64_t h = batch.shape[rank - 2], w = batch.shape[rank - 1];
  int64_t planes = batch.rowSize() / (h * w);
  std::vector<float> plane(h * w);
  for (int64_t s = 0; s < count; ++s) {
    float *sample = batch.f.data() + s * batch.rowSize();
    if (a.kind == Augmentation::Kind::Flip) {
      if (std::uniform_int_distribution<int>(0, 1)(rng) == 0 || !changes(s))
        continue;
      for (int64_t p = 0; p < planes * h; ++p)
        std::reverse(sample + p * w, sample + (p + 1) * w);
      continue;
    }
    // The crop's corner in the padded image, as RandomCrop draws it.
    std::uniform_int_distribution<int64_t> offset(0, 2 * a.pad);
    int64_t dy = offset(rng) - a.pad, dx = offset(rng) - a.pad;
    if (!changes(s))
      continue;
    for (int64_t p = 0; p < planes; ++p) {
      float *img = sample + p * h * w;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          int64_t si = i + dy, sj = j + dx;
          plane[i * w + j] =
              si >= 0 && si < h && sj >= 0 && sj < w ? img[si * w + sj] : 0.0f;
        }
      std::copy(plane.begin(), plane.end(), img);
    }
  }
}
