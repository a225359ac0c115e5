//===- Model.h - The compiled model as the runtime sees it ------*- C++ -*-===//
#ifndef MASS_RUNTIME_MODEL_H
#define MASS_RUNTIME_MODEL_H

#include "Json.h"
#include "Tensor.h"

#include <string>
#include <vector>

namespace mass::rt {

/// One argument or result of an entry point.
struct ValueSpec {
  std::string role, name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; // -1: the batch
  std::string init;
  double initScale = 0;
  std::string kind; // predictions: "logits" or "value"

  std::vector<int64_t> withBatch(int64_t batch) const;
};

struct EntrySpec {
  bool present = false;
  std::vector<ValueSpec> args, results;
};

struct ModelSpec {
  std::string name;
  std::vector<std::pair<std::string, double>> tasks;
  Json train;
  EntrySpec forward, trainStep, update, predict, score;
  std::vector<ValueSpec> inputs, labels, params; // from forward's arguments

  static bool parse(const char *descriptor, ModelSpec &out, std::string &error);
};

/// A prepared call of one entry point: memref descriptors built once, then
/// pointed at buffers before each call, without allocating.
class EntryCall {
public:
  EntryCall() = default;
  explicit EntryCall(const EntrySpec &spec);

  /// Points value `index` (arguments first, then results) at `data` with
  /// `shape`.
  void bind(size_t index, void *data, const std::vector<int64_t> &shape);
  void bind(size_t index, Tensor &t) { bind(index, t.data(), t.shape); }
  void invoke(void (*entry)(void **));
  size_t size() const { return words.size(); }

private:
  std::vector<std::vector<int64_t>> words; // per value: 3 + 2 * rank
  std::vector<void *> pointers;
};

} // namespace mass::rt

#endif // MASS_RUNTIME_MODEL_H
