//===- Model.cpp - The compiled model as the runtime sees it --------------===//

#include "Model.h"
#include "Device.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include <cstring>

using namespace mass::rt;
namespace abi = mass::abi;

std::vector<int64_t> ValueSpec::withBatch(int64_t batch) const {
  std::vector<int64_t> s = shape;
  for (int64_t &d : s)
    if (d < 0)
      d = batch;
  return s;
}

static bool parseValue(const Json &j, ValueSpec &v, std::string &error) {
  std::string role = j.stringOr(abi::key::kRole, "");
  if (!abi::roleOfWord(role, v.role)) {
    error = "a descriptor value has an unknown role '" + role + "'";
    return false;
  }
  v.name = j.stringOr(abi::key::kName, "");
  v.dtype =
      j.stringOr(abi::key::kDtype, "f32") == "i32" ? DType::I32 : DType::F32;
  for (const Json &d : j[abi::key::kShape].items())
    v.shape.push_back(static_cast<int64_t>(d.num()));
  v.init = j.stringOr(abi::key::kInit, "");
  v.initScale = j.numberOr(abi::key::kInitScale, 0);
  v.kind = j.stringOr(abi::key::kKind, "");
  v.idBound = static_cast<int64_t>(j.numberOr(abi::key::kIdBound, 0));
  v.hasTargetRange = j.has(abi::key::kTargetMin);
  v.targetMin = j.numberOr(abi::key::kTargetMin, 0);
  v.targetMax = j.numberOr(abi::key::kTargetMax, 0);
  return true;
}

static bool parseEntry(const Json &j, EntrySpec &e, std::string &error) {
  if (!j.isObject())
    return true;
  e.present = true;
  for (const Json &a : j[abi::key::kArgs].items()) {
    e.args.emplace_back();
    if (!parseValue(a, e.args.back(), error))
      return false;
  }
  for (const Json &r : j[abi::key::kResults].items()) {
    e.results.emplace_back();
    if (!parseValue(r, e.results.back(), error))
      return false;
  }
  e.inPlace = j[abi::key::kInPlace].kind() == Json::Kind::Bool &&
              j[abi::key::kInPlace].flag();
  const Json &arena = j[abi::key::kArena];
  if (arena.isObject()) {
    e.hasArena = true;
    e.arenaBytes = static_cast<int64_t>(arena.numberOr(abi::key::kBytes, -1));
    e.arenaBytesPerSample =
        static_cast<int64_t>(arena.numberOr(abi::key::kBytesPerSample, -1));
    if (e.arenaBytes < 0 || e.arenaBytesPerSample < 0) {
      error = "the model descriptor has a malformed arena";
      return false;
    }
  }
  const Json &ready = j[abi::key::kGradReady];
  if (ready.kind() != Json::Kind::Null) {
    std::vector<bool> seen(e.results.size(), false);
    size_t grads = 0;
    for (const ValueSpec &r : e.results)
      grads += r.role == abi::Role::Grad;
    for (const Json &v : ready.items()) {
      double value = v.kind() == Json::Kind::Number ? v.num() : -1;
      double result = value - static_cast<double>(e.args.size());
      if (!(result >= 0 && result < static_cast<double>(e.results.size())) ||
          e.results[static_cast<size_t>(result)].role != abi::Role::Grad ||
          seen[static_cast<size_t>(result)]) {
        error = "the model descriptor's grad_ready names no gradient result";
        return false;
      }
      seen[static_cast<size_t>(result)] = true;
      e.gradReady.push_back(static_cast<int64_t>(value));
    }
    if (e.gradReady.size() != grads) {
      error = "the model descriptor's grad_ready misses a gradient";
      return false;
    }
  }
  return true;
}

/// update_slice: one flat parameter of 1 to kSliceValues values, its
/// gradient and states of that shape, scalar hyperparameters.
static bool checkSlice(const EntrySpec &e, std::string &error) {
  error = "the model descriptor's update_slice is malformed";
  if (!e.present || e.args.empty() || e.args[0].role != abi::Role::Param ||
      e.args[0].shape.size() != 1 || e.args[0].shape[0] < 1 ||
      e.args[0].shape[0] > abi::kSliceValues)
    return false;
  const std::vector<int64_t> &flat = e.args[0].shape;
  for (const std::vector<ValueSpec> *list : {&e.args, &e.results})
    for (const ValueSpec &v : *list) {
      bool scalar = v.role == abi::Role::Hyper;
      if (v.dtype != DType::F32 ||
          (scalar ? !v.shape.empty() : v.shape != flat) ||
          (list == &e.results && v.role != abi::Role::Param &&
           v.role != abi::Role::State) ||
          (v.role != abi::Role::Param && v.role != abi::Role::Grad &&
           v.role != abi::Role::State && !scalar))
        return false;
    }
  error.clear();
  return true;
}

/// grad_squares, present with clipping alone: update's gradients in its
/// order, and one scalar output.
static bool checkSquares(const EntrySpec &update, const EntrySpec &e,
                         std::string &error) {
  bool clipping = false;
  std::vector<std::string> grads, args;
  for (const ValueSpec &v : update.args) {
    if (v.role == abi::Role::Grad)
      grads.push_back(v.name);
  }
  for (const ValueSpec &v : update.results)
    clipping |= v.role == abi::Role::Output && v.name == abi::kGradNorm;
  for (const ValueSpec &v : e.args)
    if (v.role == abi::Role::Grad)
      args.push_back(v.name);
  if (e.present == clipping &&
      (!clipping || (args == grads && e.args.size() == grads.size() &&
                     e.results.size() == 1 && e.results[0].shape.empty())))
    return true;
  error = "the model descriptor's grad_squares does not match its update";
  return false;
}

bool ModelSpec::parse(const char *descriptor, ModelSpec &out,
                      std::string &error) {
  Json root;
  if (!Json::parse(descriptor, root, error)) {
    error = "the model descriptor is not valid JSON: " + error;
    return false;
  }
  if (root.numberOr(abi::key::kVersion, 0) != 1) {
    error = "the model descriptor has an unknown version";
    return false;
  }
  out.name = root.stringOr(abi::key::kModel, "model");
  out.target = root.stringOr(abi::key::kTarget, "");
  for (const Json &t : root[abi::key::kTasks].items()) {
    out.tasks.push_back(
        {t.stringOr(abi::key::kName, ""), t.numberOr(abi::key::kWeight, 1.0)});
    if (t.has(abi::key::kLabels))
      out.taskLabels[out.tasks.back().first] =
          t.stringOr(abi::key::kLabels, "");
  }
  out.train = root[abi::key::kTrain];
  const Json &entries = root[abi::key::kEntries];
  auto entry = [&](std::string_view name) {
    return entries[std::string(name)];
  };
  if (!parseEntry(entry(abi::kForward), out.forward, error) ||
      !parseEntry(entry(abi::kTrainStep), out.trainStep, error) ||
      !parseEntry(entry(abi::kUpdate), out.update, error) ||
      !parseEntry(entry(abi::kUpdateSlice), out.updateSlice, error) ||
      !parseEntry(entry(abi::kGradSquaresEntry), out.gradSquares, error) ||
      !parseEntry(entry(abi::kPredict), out.predict, error) ||
      !parseEntry(entry(abi::kScore), out.score, error))
    return false;
  const Json &optimizer = root[std::string(abi::kOptimizer)];
  out.optimizer = optimizer.stringOr(std::string(abi::kOptimizerKind), "");
  out.lr = optimizer.numberOr(std::string(abi::kOptimizerLr), -1);
  out.beta1 = optimizer.numberOr(std::string(abi::kOptimizerBeta1), -1);
  out.beta2 = optimizer.numberOr(std::string(abi::kOptimizerBeta2), -1);
  if (out.update.present && (out.optimizer.empty() || out.lr <= 0 ||
                             out.beta1 < 0 || out.beta2 < 0)) {
    error = "the model descriptor lacks its optimizer settings";
    return false;
  }
  for (const auto &[name, factor] :
       optimizer[std::string(abi::kOptimizerLrScales)].members()) {
    bool trained = false;
    for (const ValueSpec &v : out.update.args)
      trained |= v.role == abi::Role::Param && v.name == name;
    if (!trained || !factor.isNumber() || !std::isfinite(factor.num())) {
      error = "the model descriptor's lr_scales names '" + name +
              "', not a trained parameter with a finite factor";
      return false;
    }
    out.lrScales[name] = factor.num();
  }
  if (out.update.present && (!checkSlice(out.updateSlice, error) ||
                             !checkSquares(out.update, out.gradSquares, error)))
    return false;
  for (const ValueSpec &v : out.forward.args) {
    if (v.role == abi::Role::Input)
      out.inputs.push_back(v);
    else if (v.role == abi::Role::Label)
      out.labels.push_back(v);
    else if (v.role == abi::Role::Param)
      out.params.push_back(v);
    else if (v.role == abi::Role::Buffer)
      out.buffers.push_back(v);
  }
  return true;
}

EntryCall::EntryCall(const EntrySpec &spec) {
  auto add = [&](const ValueSpec &v, bool result) {
    words.emplace_back(3 + 2 * v.shape.size(), 0);
    batched.push_back(!v.shape.empty() && v.shape[0] < 0);
    roles.push_back(v.role);
    isResult.push_back(result);
  };
  for (const ValueSpec &v : spec.args)
    add(v, false);
  for (const ValueSpec &v : spec.results)
    add(v, true);
  if (spec.hasArena) {
    arena = &spec;
    words.emplace_back(5, 0); // memref<?xi8>
  }
  for (auto &w : words)
    pointers.push_back(w.data());
  resident.assign(words.size(), false);
}

void EntryCall::bindResident(size_t index, void *data,
                             const std::vector<int64_t> &shape) {
  bind(index, data, shape);
  resident[index] = true;
}

void EntryCall::bind(size_t index, void *data,
                     const std::vector<int64_t> &shape) {
  std::vector<int64_t> &w = words[index];
  resident[index] = false;
  size_t rank = (w.size() - 3) / 2;
  std::memcpy(&w[0], &data, sizeof(void *));
  std::memcpy(&w[1], &data, sizeof(void *));
  w[2] = 0;
  int64_t stride = 1;
  for (size_t k = rank; k-- > 0;) {
    w[3 + k] = shape[k];
    w[3 + rank + k] = stride;
    stride *= shape[k];
  }
  if (batched[index])
    batch = shape[0];
}

namespace {

/// Grows `memory` to hold `bytes` (64-byte aligned); exits when it cannot.
void *grow(std::unique_ptr<void, FreeMemory> &memory, size_t &capacity,
           size_t bytes) {
  if (bytes > capacity) {
    size_t rounded = (bytes + 63) / 64 * 64;
    memory.reset(std::aligned_alloc(64, rounded));
    if (!memory) {
      std::fprintf(stderr, "error: cannot allocate %zu bytes for the arena\n",
                   rounded);
      std::exit(1);
    }
    capacity = rounded;
  }
  return memory.get();
}

} // namespace

void *mass::rt::reserveArena(size_t bytes) {
  if (activeDevice())
    return deviceArena(bytes);
  static std::unique_ptr<void, FreeMemory> memory;
  static size_t capacity = 0;
  return grow(memory, capacity, bytes);
}

void EntryCall::invoke(void (*entry)(void **), bool wait) {
  if (arena) {
    size_t bytes = arena->arenaSize(batch);
    void *memory = privateArena && !activeDevice()
                       ? grow(own, ownCapacity, bytes)
                       : reserveArena(bytes);
    std::vector<int64_t> &w = words.back();
    std::memcpy(&w[0], &memory, sizeof(void *));
    std::memcpy(&w[1], &memory, sizeof(void *));
    w[2] = 0;
    w[3] = static_cast<int64_t>(bytes);
    w[4] = 1;
  }
  if (!activeDevice()) {
    entry(pointers.data());
    return;
  }
  // On a device: each value's mirror goes in its descriptor for the call,
  // copied up or down as its role says (Device.h).
  size_t values = size();
  std::vector<void *> host(values);
  std::vector<size_t> bytes(values);
  for (size_t k = 0; k < values; ++k) {
    std::vector<int64_t> &w = words[k];
    if (resident[k])
      continue;
    size_t rank = (w.size() - 3) / 2;
    size_t n = 4; // f32 and i32
    for (size_t d = 0; d < rank; ++d)
      n *= static_cast<size_t>(w[3 + d]);
    std::memcpy(&host[k], &w[0], sizeof(void *));
    bytes[k] = n;
    Sync sync = Sync::Never;
    if (!isResult[k])
      sync = roles[k] == abi::Role::Param || roles[k] == abi::Role::Buffer ||
                     roles[k] == abi::Role::State || roles[k] == abi::Role::Grad
                 ? Sync::OnChange
                 : Sync::Always;
    void *device = deviceBuffer(host[k], n, sync);
    std::memcpy(&w[0], &device, sizeof(void *));
    std::memcpy(&w[1], &device, sizeof(void *));
  }
  entry(pointers.data());
  // Outputs and predictions come down now, in one wait for all of them;
  // the rest stay on the device, newer than the host's copies.
  bool downloaded = false;
  for (size_t k = 0; k < values; ++k) {
    if (resident[k])
      continue;
    if (isResult[k]) {
      bool now = roles[k] == abi::Role::Output || roles[k] == abi::Role::Pred;
      deviceWrote(host[k], bytes[k], now);
      downloaded |= now;
    }
    std::memcpy(&words[k][0], &host[k], sizeof(void *));
    std::memcpy(&words[k][1], &host[k], sizeof(void *));
  }
  if (downloaded && wait)
    deviceSynchronize();
}
