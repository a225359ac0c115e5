//===- Model.h - The compiled model as the runtime sees it ------*- C++ -*-===//
#ifndef MASS_RUNTIME_MODEL_H
#define MASS_RUNTIME_MODEL_H

#include "Json.h"
#include "Tensor.h"

#include "mass/vocabulary.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mass::rt {

/// One argument or result of an entry point.
struct ValueSpec {
  abi::Role role = abi::Role::Input;
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape; // -1: the batch
  std::string init;
  double initScale = 0;
  std::string kind;            // predictions: "logits" or "value"
  int64_t idBound = 0;         // an input of ids: each must lie in [0, idBound)
  bool hasTargetRange = false; // an f32 label: each in [targetMin, targetMax]
  double targetMin = 0, targetMax = 0;

  std::vector<int64_t> withBatch(int64_t batch) const;
};

struct EntrySpec {
  bool present = false;
  std::vector<ValueSpec> args, results;
  /// The arena the entry's intermediates live in (planned by massc), passed
  /// after the results: bytes + bytesPerSample * batch.
  bool hasArena = false;
  /// The parameter and state results may be bound to the buffers of the
  /// arguments they replace (the optimizer step then updates in place).
  bool inPlace = false;
  int64_t arenaBytes = 0, arenaBytesPerSample = 0;
  /// The gradients' value indices (arguments, then results) in the order
  /// the entry reports each final by calling mass_grad_ready(value); empty
  /// when it does not. Every gradient result appears once.
  std::vector<int64_t> gradReady;

  size_t arenaSize(int64_t batch) const {
    return static_cast<size_t>(arenaBytes + arenaBytesPerSample * batch);
  }
};

/// The one arena every entry point's call uses (calls never overlap):
/// grown to `bytes` if smaller, 64-byte aligned. Reserving it for the
/// largest batch before training keeps allocation out of the steps.
void *reserveArena(size_t bytes);

struct ModelSpec {
  std::string name;
  std::string target; // "cuda" for a GPU program, else empty
  std::vector<std::pair<std::string, double>> tasks;
  /// By task: the label input whose -1 entries its cross-entropy skips
  /// (absent for other losses, which average over every row).
  std::map<std::string, std::string> taskLabels;
  Json train;
  EntrySpec forward, trainStep, update, updateSlice, gradSquares, predict,
      score;
  // The optimizer as massc resolved it (abi::kOptimizer).
  std::string optimizer;
  double lr = 0, beta1 = 0, beta2 = 0;
  /// The trained parameters whose learning rate lr_scale scales, by name.
  std::map<std::string, double> lrScales;
  // From forward's arguments. Buffers (batch norm's running statistics)
  // are saved and loaded with the parameters but not optimised.
  std::vector<ValueSpec> inputs, labels, params, buffers;

  static bool parse(const char *descriptor, ModelSpec &out, std::string &error);
};

/// Frees what std::aligned_alloc gave.
struct FreeMemory {
  void operator()(void *p) const { std::free(p); }
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
  /// As bind, with `data` where the entry point reads it already (on a
  /// device, the device's memory: no mirror, no copies).
  void bindResident(size_t index, void *data,
                    const std::vector<int64_t> &shape);
  /// Binds the arena, sized for the batch of the values bound last, and
  /// calls `entry`. On a device the outputs come down before it returns,
  /// or with `wait` false are queued, for deviceSynchronize().
  void invoke(void (*entry)(void **), bool wait = true);
  size_t size() const { return words.size() - (arena ? 1 : 0); }
  /// Gives this call an arena of its own instead of the one all share (a
  /// replica's step, run at the same time as another's).
  void ownArena() { privateArena = true; }

private:
  std::vector<std::vector<int64_t>> words; // per value: 3 + 2 * rank
  std::vector<void *> pointers;
  std::vector<bool> batched; // per value: is dimension 0 the batch
  std::vector<abi::Role> roles;
  std::vector<bool> isResult;
  std::vector<bool> resident;
  int64_t batch = 0;
  const EntrySpec *arena = nullptr;
  bool privateArena = false;
  std::unique_ptr<void, FreeMemory> own;
  size_t ownCapacity = 0;
};

} // namespace mass::rt

#endif // MASS_RUNTIME_MODEL_H
