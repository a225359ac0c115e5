//===- Train.cpp - The training loop --------------------------------------===//
//
// Reads the model descriptor, loads data, initialises or loads parameters,
// then per epoch: shuffle, train_step + update per batch, validate with
// forward, log, checkpoint. Everything the step loop touches is allocated
// before it starts.
//
//===----------------------------------------------------------------------===//

#include "Train.h"

#include "Augment.h"
#include "Background.h"
#include "Buckets.h"
#include "Comm.h"
#include "DataIO.h"
#include "Device.h"
#include "Json.h"
#include "Model.h"
#include "Replicas.h"
#include "Report.h"
#include "Schedule.h"
#include "Shards.h"

#include "mass/abi.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fnmatch.h>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sched.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace mass::rt;
namespace abi = mass::abi;

// The generated loops run on LLVM's OpenMP runtime, linked into every
// training program; weak, so that the runtime's own tests link without it.
extern "C" void omp_set_num_threads(int) __attribute__((weak));
extern "C" int omp_get_max_threads() __attribute__((weak));
// Defined in GPU programs (DeviceCalls.cpp): the device's check of a
// gradient for NaN and Inf.
extern "C" void mass_device_nonfinite(const float *x, int64_t count,
                                      int32_t *flag) __attribute__((weak));
// And the sharded optimizer's sum of squares of a gradient there.
extern "C" void mass_device_sum_squares(const float *x, int64_t count,
                                        double *lane, int64_t lanes)
    __attribute__((weak));

namespace {

using abi::Role;

/// The outputs that carry a task's loss and its labelled rows.
std::string lossName(const std::string &task) {
  return std::string(abi::kLossPrefix) + task;
}
std::string labelledName(const std::string &task) {
  return std::string(abi::kLabelledPrefix) + task;
}

/// The prefix of the weights inside a resume state file.
const std::string kStateWeights = "weights.";

/// Stops the program with a one-line reason.
struct Failure {
  std::string message;
};
[[noreturn]] void fail(const std::string &message) { throw Failure{message}; }

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool globMatch(const std::string &glob, const std::string &name) {
  return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0;
}

/// Whether each of `n` floats is finite. Inf and NaN are the floats whose
/// exponent bits are all ones: adding one to the exponent field carries
/// into the sign bit only for them. Integer operations on 16-byte vectors
/// (SSE2 and NEON have them) keep the check at about 30 us for a million
/// floats, 1-2% of a step of spec 01.
static bool allFinite(const float *p, size_t n) {
  typedef uint32_t U4 __attribute__((vector_size(16)));
  const U4 exponent = U4{} + 0x7F800000u, carry = U4{} + 0x00800000u;
  U4 a{}, b{};
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    U4 x, y;
    std::memcpy(&x, p + k, 16);
    std::memcpy(&y, p + k + 4, 16);
    a |= (x & exponent) + carry;
    b |= (y & exponent) + carry;
  }
  a |= b;
  uint32_t any = a[0] | a[1] | a[2] | a[3];
  for (; k < n; ++k) {
    uint32_t x;
    std::memcpy(&x, p + k, 4);
    any |= (x & 0x7F800000u) + 0x00800000u;
  }
  return !(any & 0x80000000u);
}

/// Rows of named tensors that share their first dimension.
struct Dataset {
  std::map<std::string, Tensor> columns;
  std::map<std::string, std::string> files; // where each column was read
  int64_t rows = 0;
};

class Trainer {
public:
  Trainer(const ModelSpec &spec, const Options &opts)
      : spec(spec), opts(opts) {}
  int run();

private:
  const ModelSpec &spec;
  const Options &opts;
  const Json &cfg() const { return spec.train; }

  // Settings.
  int64_t epochs = 1, batch = 32, seed = 0;
  // steps > 0: train this many optimizer steps (epochs no longer count);
  // valEvery > 0: a round of that many steps ends in validation, instead
  // of an epoch.
  int64_t steps = 0, valEvery = 0;
  double lr = 0; // the rate before any schedule
  Schedule schedule;
  std::string strategy = "joint";
  std::vector<double> sampleProbs;
  std::vector<Augmentation> augmentations;

  // State.
  std::mt19937_64 rng;
  std::map<std::string, Tensor> params, nextParams, grads, states, nextStates;
  // Buffers: train_step returns their new values into nextBuffers.
  std::map<std::string, Tensor> buffers, nextBuffers;
  // Dropout's key for the step: the seed (negative turns dropout off), the
  // first row of this rank's slice of the batch and the slice's rows.
  Tensor dropoutSeed{DType::I32, {3}};
  bool hasDropout = false;                    // train_step takes a seed
  std::map<std::string, Tensor> batchBuffers; // inputs and labels
  // On a device, the next step's batch, gathered and copied up while the
  // step before runs (trainRound); both sets page-locked.
  std::map<std::string, Tensor> nextBatch;
  std::vector<Tensor> taskWeights;       // one scalar per task
  std::map<std::string, Tensor> outputs; // scalars by output name
  // Each loss output's labelled-row count (null: the loss averages over the
  // whole batch), and each task's loss, in spec.tasks' order.
  std::map<std::string, const Tensor *> lossRows;
  std::vector<const Tensor *> taskLosses;
  Tensor hyperLr{DType::F32, {}}, hyperBc1{DType::F32, {}},
      hyperBc2{DType::F32, {}}, gradNorm{DType::F32, {}};
  int64_t step = 0, startRound = 1;
  /// Steps --skip-nonfinite skipped (this run, and this round).
  int64_t skippedSteps = 0, skippedInRound = 0;
  std::string firstNonfiniteGradient();
  Tensor nonfiniteFlags; // on a GPU, one per parameter
  void swapBuffers();
  /// Why the last step may not update the parameters ("" when it may).
  std::string nonfiniteStep(int64_t stepEpoch);
  // Where the training rows stand: the current epoch's order (drawn from
  // orderRng's state), the next row in it, and how many orders were drawn.
  std::vector<int64_t> order;
  size_t position = 0;
  int64_t epoch = 0;
  std::mt19937_64 orderRng;
  double best = NAN;
  int64_t sinceBest = 0;
  Report report; // every round's values, for --report
  void writeReport() const;
  Dataset trainData, valData;
  bool haveVal = false;
  std::ofstream log;

  EntryCall trainCall, updateCall, forwardCall;

  // Data-parallel training (under mpirun): every rank draws the same global
  // batch, runs the step on its slice of it, and the gradients and the
  // step's outputs are summed over the ranks before the update.
  const int rank = comm::rank(), ranks = comm::size();
  int64_t firstRow = 0; // this rank's slice of the batch
  std::vector<float> reduced;
  // The round's time in the gradients' all-reduce (this rank's wait
  // included), for the log.
  double reduceSeconds = 0;
  size_t reducedBytes = 0; // what a step's collectives sum
  // Under mpirun, unsharded, without replicas: the gradients' sums, started
  // bucket by bucket as the step reports them final (empty: after it).
  GradBuckets buckets;
  void checkParallel() const;
  /// The step's outputs `outs` as sums over their `local` rows (a loss, a
  /// mean, times its rows), appended to `into`; then the sums over the
  /// ranks back as the whole batch's values.
  template <typename T>
  void outputsAsSums(int64_t local, std::vector<T> &into,
                     const std::map<std::string, Tensor> &outs);
  template <typename T> void outputsFromSums(const T *sums, int64_t count);

  // --shard-optimizer under mpirun (ZeRO stage 1, Shards.h): this process
  // owns an exact 1/N of the trained values (parameters may be cut between
  // owners), holds their optimizer state alone and updates them with the
  // compiled update_slice; the gradients are reduced to their owners and
  // the updated values gathered from them.
  bool sharded = false;
  std::vector<const ValueSpec *> trained; // the update's parameters
  ShardPlan shards;
  // This process's share, in the plan's layout: its parameters and
  // gradients packed for the update, and its optimizer state by kind
  // (stateKinds, update_slice's order).
  Tensor shareParams, shareGrads;
  std::vector<Tensor> shareStates;
  // One call's worth of each, for a call over fewer values than
  // update_slice takes (the end of a rate's run), and of its results when
  // it does not write in place; the call's rate.
  Tensor chunkParams, chunkGrads, chunkOutParams;
  std::vector<Tensor> chunkStates, chunkOutStates;
  Tensor sliceLr{DType::F32, {}};
  std::vector<std::string> stateKinds;
  std::vector<float> shardFlat; // every trained value, for gatherStates
  EntryCall sliceCall, squaresCall;
  std::vector<double> squareLanes; // a device's sums of squares (sharded)
  // With clipping, the slice update's squares of every gradient; and this
  // step's squares over every rank, for nonfiniteStep.
  Tensor squaresAll{DType::F32, {}};
  double squaresEverywhere = 0;
  void planShards();
  void reduceShards(int64_t count, int64_t local, const char *what);
  std::vector<const Tensor *> shareTensors() const;
  void updateShare();
  void updateChunk(const ShardPlan::Chunk &c);
  void gatherParams();
  std::map<std::string, Tensor> gatherStates();
  void loadShare(const NamedTensors &state, const std::string &path);
  std::vector<int64_t> optimizerBytes() const;
  int64_t sliceOf(int64_t count, int64_t &first) const;
  int64_t shareStep(int64_t count);
  std::vector<DeviceFloats> shardBuffers(std::map<std::string, Tensor> &of,
                                         std::vector<int> &owners);
  double ownSquares(const std::vector<DeviceFloats> &buffers,
                    const std::vector<int> &owners);
  void allSquares();
  void reduceStep(int64_t count, int64_t local);
  std::string stepWhat() const;
  void packGrads();
  const float *unpackGrads();
  /// A task's weight times its share of a batch of `count` rows held in
  /// rows [first, first + rows): its labelled rows there, over all.
  float shareOf(size_t task, int64_t first, int64_t rows, int64_t count) const;

  // --replicas (Replicas.h): this process's replicas of the batch, empty
  // when off. Replica 0 steps into the trainer's outputs, gradients and
  // buffers; the others into their own. After a step their gradients are
  // added in the tree into replica 0's, and the outputs' sums into
  // replicaSums (then over the processes, in reduceStep).
  struct StepTargets {
    Tensor *seed;
    std::vector<Tensor> *weights;
    std::map<std::string, Tensor> *outputs, *grads, *nextBuffers;
  };
  struct Replica {
    int64_t first = 0, rows = 0; // in the global batch
    EntryCall ownCall, *call = nullptr;
    Tensor seed{DType::I32, {3}};
    std::vector<Tensor> weights;
    std::map<std::string, Tensor> outputs, grads, nextBuffers;
    StepTargets targets{};
  };
  std::vector<Replica> replicaSet;
  int64_t replicasTotal = 0;
  std::vector<double> replicaSums, replicaSumsScratch;
  std::vector<float> reducedScratch;
  bool replicated() const { return !replicaSet.empty(); }
  void startReplicas();
  void planBuckets();
  void runReplicas(bool wait);

  void configure();
  Dataset loadData(const Json &source, const std::string &override,
                   const char *what);
  void checkData(Dataset &data, const char *what);
  void allocate();
  void initParams();
  void loadInit(const std::string &path, const std::vector<std::string> &skip);
  void loadWeights(const NamedTensors &file, const std::string &path,
                   const std::vector<std::string> &skip,
                   const std::string &prefix);
  void gather(const Dataset &data, const std::vector<int64_t> &rows,
              int64_t begin, int64_t count) {
    gather(batchBuffers, data, rows, begin, count);
  }
  void gather(std::map<std::string, Tensor> &into, const Dataset &data,
              const std::vector<int64_t> &rows, int64_t begin, int64_t count,
              int64_t from = 0, int64_t upto = INT64_MAX);
  /// Binds the batch's rows [first, first + count) and the rest: the
  /// trainer's seed, weights, outputs, gradients and buffers, or `to`.
  void bindBatch(EntryCall &call, const EntrySpec &entry, int64_t count,
                 int64_t first = 0) {
    bindBatch(call, entry, count, first,
              {&dropoutSeed, &taskWeights, &outputs, &grads, &nextBuffers});
  }
  void bindBatch(EntryCall &call, const EntrySpec &entry, int64_t count,
                 int64_t first, const StepTargets &to);
  void setTaskWeights();
  /// One forward and backward pass; dropout draws from `dropout`, or from
  /// the generator when it is -1, or is off when it is -2.
  /// On a device, `wait` false leaves the outputs' copies queued, for
  /// deviceSynchronize().
  void trainStep(int64_t count, int64_t dropout = -1, bool wait = true);
  /// trainStep's halves: its draws from the generator and its bindings,
  /// then the step itself (which touches neither).
  void prepareStep(int64_t count, int64_t dropout = -1);
  void runStep(bool wait = true);
  void update();

  struct Totals {
    std::map<std::string, double> sum;
    double samples = 0;
  };
  void accumulate(Totals &t, int64_t count);
  Totals evaluate(const Dataset &data);
  /// Under mpirun: sums the ranks' totals (each evaluated its share).
  void reduceTotals(Totals &t, const char *what);
  Json summarize(const Totals &t, const std::string &task) const;
  std::string describe(const Totals &t) const;
  double monitored(const Totals &val) const;
  bool maximize() const;

  /// With `allStates`, the optimizer state written (else `states`).
  void
  writeCheckpoint(const std::string &file, bool withState, int64_t round,
                  const std::map<std::string, Tensor> *allStates = nullptr);
  void resume(const std::string &dir);
  void dumpGrads();
  void dumpPredictions();
  void generate();
  void dumpParams();
  int ensemble();
  int benchmark();
  void logEvent(const Json &event);
  void logProgramEvent(const char *kind);

  // The modes and the epochs (run() reads top to bottom).
  void loadStartingWeights();
  /// Fails unless --init or the train block's init gave weights: `what`
  /// (--eval-only, ...) means nothing on a randomly initialised model.
  void requireWeights(const char *what) const;
  bool loadedWeights = false;
  void evaluateOnly();
  int train();
  std::vector<int64_t> shardRows() const;
  std::vector<double> balancedWeights(const std::vector<int64_t> &rows) const;
  void drawOrder(std::vector<int64_t> &order, const std::vector<int64_t> &rows,
                 const std::vector<double> &weights);
  bool byStep() const { return steps > 0 || valEvery > 0; }
  Totals trainRound(int64_t count, const std::vector<int64_t> &rows,
                    const std::vector<double> &weights, double &lr);
  int64_t drawBatch(std::map<std::string, Tensor> &into,
                    const std::vector<int64_t> &rows,
                    const std::vector<double> &weights);
  void pinBatches();
  bool prefetchInBackground() const;
  void showProgress(int64_t done, int64_t count) const;
  void logRound(int64_t round, int64_t rounds, const Totals &seen,
                const Totals &val, double lr, double seconds,
                double trainSeconds);
  bool recordValidation(const Totals &val);

  // Last, so that it is destroyed first: its job uses the members above.
  BackgroundJob prefetcher;
};

/// When the program started (static initialisation, before main).
const std::chrono::steady_clock::time_point kProcessStart =
    std::chrono::steady_clock::now();

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

//===----------------------------------------------------------------------===//
// Configuration and data
//===----------------------------------------------------------------------===//

void Trainer::configure() {
  epochs = opts.epochs > 0 ? opts.epochs
                           : static_cast<int64_t>(cfg().numberOr("epochs", 1));
  batch = opts.batch > 0 ? opts.batch
                         : static_cast<int64_t>(cfg().numberOr("batch", 32));
  steps = opts.steps > 0 ? opts.steps
                         : static_cast<int64_t>(cfg().numberOr("steps", 0));
  valEvery = opts.valEvery > 0
                 ? opts.valEvery
                 : static_cast<int64_t>(cfg().numberOr("val_every", 0));
  seed = opts.seed >= 0 ? opts.seed
                        : static_cast<int64_t>(cfg().numberOr("seed", 0));
  rng.seed(static_cast<uint64_t>(seed));
  lr = opts.lr > 0 ? opts.lr : spec.lr;
  const Json &strat = cfg()["strategy"];
  strategy = strat.stringOr("kind", "joint");
  if (strategy == "sample") {
    for (const auto &[task, weight] : spec.tasks)
      sampleProbs.push_back(strat.numberOr(task, 0));
    if (std::accumulate(sampleProbs.begin(), sampleProbs.end(), 0.0) <= 0)
      fail("strategy sample(...) gives no task a positive probability");
  }
  std::string error;
  if (!parseAugmentations(cfg()["augment"], spec.inputs, augmentations, error))
    fail(error);
}

Dataset Trainer::loadData(const Json &source, const std::string &override,
                          const char *what) {
  Dataset data;
  std::string error;
  std::string path = override;
  if (path.empty() && source.isString())
    path = source.str();
  std::vector<ValueSpec> wanted = spec.inputs;
  wanted.insert(wanted.end(), spec.labels.begin(), spec.labels.end());

  std::string kind = source.isObject() ? source.stringOr("kind", "") : "";
  if (kind == "csv") {
    std::string file = path;
    if (file.empty() && !source["args"].items().empty())
      file = source["args"].items()[0].str();
    for (const ValueSpec &v : wanted) {
      std::vector<std::string> cols;
      for (const Json &c : source[v.name].items())
        cols.push_back(c.str());
      if (cols.empty())
        fail(std::string(what) + " data: csv(...) names no columns for '" +
             v.name + "'");
      Tensor t;
      if (!readCsvColumns(file, cols, t, error))
        fail(error);
      data.columns[v.name] = std::move(t);
      data.files[v.name] = file;
    }
  } else if (kind == "tokens") {
    std::string file = path;
    if (file.empty() && !source["args"].items().empty())
      file = source["args"].items()[0].str();
    if (spec.inputs.size() != 1 || spec.labels.size() != 1 ||
        spec.inputs[0].shape.size() != 2)
      fail("tokens(...) data needs a model with one input and one label "
           "[B, T]");
    std::vector<int32_t> ids;
    if (!readTokens(file, ids, error))
      fail(error);
    // Windows of T ids that do not overlap; each label is its window
    // shifted by one.
    const int64_t t = spec.inputs[0].shape[1];
    const int64_t windows = (static_cast<int64_t>(ids.size()) - 1) / t;
    if (windows < 1)
      fail(std::string(what) + " data: '" + file + "' holds " +
           std::to_string(ids.size()) + " tokens; one window of " +
           std::to_string(t) + " and its next token need " +
           std::to_string(t + 1));
    Tensor in(DType::I32, {windows, t}), next(DType::I32, {windows, t});
    for (int64_t w = 0; w < windows; ++w)
      for (int64_t k = 0; k < t; ++k) {
        in.i[w * t + k] = ids[w * t + k];
        next.i[w * t + k] = ids[w * t + k + 1];
      }
    data.columns[spec.inputs[0].name] = std::move(in);
    data.columns[spec.labels[0].name] = std::move(next);
    data.files[spec.inputs[0].name] = data.files[spec.labels[0].name] = file;
  } else if (kind == "idx" && path.empty()) {
    if (spec.inputs.size() != 1 || spec.labels.size() != 1)
      fail("idx(...) data needs a model with one input and one label");
    Tensor images, labels;
    if (!readIdx(source.stringOr("images", ""), true, images, error) ||
        !readIdx(source.stringOr("labels", ""), false, labels, error))
      fail(error);
    data.columns[spec.inputs[0].name] = std::move(images);
    data.columns[spec.labels[0].name] = std::move(labels);
    data.files[spec.inputs[0].name] = source.stringOr("images", "");
    data.files[spec.labels[0].name] = source.stringOr("labels", "");
  } else {
    if (path.empty())
      fail(std::string("no ") + what + " data: set " + what +
           "_data in the train block or pass --" + what + " DIR");
    for (const ValueSpec &v : wanted) {
      std::string file = path + "/" + v.name + ".npy";
      if (!exists(file))
        fail(std::string(what) + " data: '" + file +
             "' is missing (one .npy "
             "file per input and label)");
      Tensor t;
      if (!readNpy(file, t, error))
        fail(error);
      data.columns[v.name] = std::move(t);
      data.files[v.name] = file;
    }
  }
  checkData(data, what);
  return data;
}

/// Checks the data against the model once, when it is opened: shapes, row
/// counts, element types, labels within their classes (or -1), ids within
/// their embedding, targets within their loss's domain and, unless
/// --allow-nonfinite, no NaN or Inf. Each failure names the file, the row
/// and the value.
void Trainer::checkData(Dataset &data, const char *what) {
  data.rows = -1;
  std::vector<ValueSpec> wanted = spec.inputs;
  wanted.insert(wanted.end(), spec.labels.begin(), spec.labels.end());
  for (const ValueSpec &v : wanted) {
    Tensor &t = data.columns[v.name];
    std::string where =
        std::string(what) + " data '" + data.files[v.name] +
        "': " + (v.role == Role::Label ? "label '" : "input '") + v.name + "'";
    std::vector<int64_t> want(v.shape.begin() + 1, v.shape.end());
    std::vector<int64_t> have(t.shape.begin() + (t.shape.empty() ? 0 : 1),
                              t.shape.end());
    // [N, 1] targets read from CSV fit a [B] label, and the reverse.
    int64_t wantCount = 1, haveCount = 1;
    for (int64_t d : want)
      wantCount *= d;
    for (int64_t d : have)
      haveCount *= d;
    if (t.shape.empty() || (have != want && wantCount != haveCount) ||
        (have != want && want.size() > 1))
      fail(where + " has shape " + formatShape(t.shape) +
           ", the model expects " + formatShape(v.shape));
    if (data.rows >= 0 && t.shape[0] != data.rows)
      fail(where + " has " + std::to_string(t.shape[0]) +
           " rows, others have " + std::to_string(data.rows));
    data.rows = t.shape[0];
    const int64_t perSample =
        t.shape[0] > 0 ? std::max<int64_t>(1, t.numel() / t.shape[0]) : 1;
    auto at = [&](int64_t k) {
      return " at row " + std::to_string(k / perSample);
    };
    auto number = [](double x) {
      char text[32];
      std::snprintf(text, sizeof text, "%.9g", x);
      return std::string(text);
    };
    // The elements, owned or (a mapped .npy) viewed.
    const int64_t numel = t.numel();
    if (t.dtype == DType::F32 && !opts.allowNonfinite)
      pageIn(t); // read in full next
    if (t.dtype == DType::F32 && !opts.allowNonfinite && numel > 0 &&
        !allFinite(t.floats(), numel))
      for (int64_t k = 0; k < numel; ++k)
        if (!std::isfinite(t.floats()[k]))
          fail(where + " holds " + number(t.floats()[k]) + at(k) +
               " (--allow-nonfinite lets NaN and Inf through)");
    // Convert the element type where the values allow it.
    if (v.dtype == DType::I32 && t.dtype == DType::F32) {
      Tensor c(DType::I32, t.shape);
      const float *x = t.floats();
      for (int64_t k = 0; k < numel; ++k) {
        if (!(x[k] == std::floor(x[k])))
          fail(where + " holds the non-integer " + number(x[k]) + at(k));
        if (x[k] < INT32_MIN || x[k] > INT32_MAX)
          fail(where + " holds " + number(x[k]) + at(k) +
               ", beyond the 32-bit integers labels and ids are");
        c.i[k] = static_cast<int32_t>(x[k]);
      }
      t = std::move(c);
    } else if (v.dtype == DType::F32 && t.dtype == DType::I32) {
      Tensor c(DType::F32, t.shape);
      for (int64_t k = 0; k < numel; ++k)
        c.f[k] = static_cast<float>(t.ints()[k]);
      t = std::move(c);
    }
    const int32_t *ids = t.dtype == DType::I32 ? t.ints() : nullptr;
    const float *values = t.dtype == DType::F32 ? t.floats() : nullptr;
    if (v.dtype == DType::I32 && v.role == Role::Label) {
      for (int64_t k = 0; k < numel; ++k) {
        int32_t x = ids[k];
        if (x < -1 || (v.idBound > 0 && x >= v.idBound))
          fail(where + " holds the class " + std::to_string(x) + at(k) +
               (v.idBound > 0
                    ? "; the logits have " + std::to_string(v.idBound) +
                          " classes (and -1 marks no label)"
                    : "; classes are >= 0 (and -1 marks no label)"));
      }
    } else if (v.dtype == DType::I32 && v.idBound > 0) {
      for (int64_t k = 0; k < numel; ++k)
        if (ids[k] < 0 || ids[k] >= v.idBound)
          fail(where + " holds the id " + std::to_string(ids[k]) + at(k) +
               "; its embedding takes ids in [0, " + std::to_string(v.idBound) +
               ")");
    }
    if (v.dtype == DType::F32 && v.hasTargetRange)
      for (int64_t k = 0; k < numel; ++k)
        if (values[k] < v.targetMin || values[k] > v.targetMax)
          fail(where + " holds the target " + number(values[k]) + at(k) +
               "; its loss takes targets in [" + number(v.targetMin) + ", " +
               number(v.targetMax) + "]");
    t.shape = want;
    t.shape.insert(t.shape.begin(), data.rows);
  }
  if (data.rows <= 0)
    fail(std::string(what) + " data is empty");
}

//===----------------------------------------------------------------------===//
// Buffers and parameters
//===----------------------------------------------------------------------===//

/// Where the entry points see `t` (its mirror on a device).
float *seen(Tensor &t) {
  return static_cast<float *>(
      deviceBuffer(t.data(), t.bytes(), Sync::OnChange));
}

int64_t elements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

void Trainer::allocate() {
  if (opts.shardOptimizer && ranks > 1)
    planShards();
  for (const ValueSpec &v : spec.params) {
    params[v.name] = Tensor(DType::F32, v.shape);
    if (!spec.update.inPlace)
      nextParams[v.name] = Tensor(DType::F32, v.shape);
    grads[v.name] = Tensor(DType::F32, v.shape);
  }
  for (const ValueSpec &v : spec.buffers) {
    buffers[v.name] = Tensor(DType::F32, v.shape);
    nextBuffers[v.name] = Tensor(DType::F32, v.shape);
  }
  for (const ValueSpec &v : spec.update.args)
    if (v.role == Role::State && !sharded) {
      states[v.name] = Tensor(DType::F32, v.shape);
      if (!spec.update.inPlace)
        nextStates[v.name] = Tensor(DType::F32, v.shape);
    }
  for (const ValueSpec &v : spec.inputs)
    batchBuffers[v.name] = Tensor(v.dtype, v.withBatch(batch));
  for (const ValueSpec &v : spec.labels)
    batchBuffers[v.name] = Tensor(v.dtype, v.withBatch(batch));
  taskWeights.assign(spec.tasks.size(), Tensor(DType::F32, {}));
  for (const EntrySpec *e : {&spec.trainStep, &spec.forward, &spec.update})
    for (const ValueSpec &v : e->results)
      if (v.role == Role::Output)
        outputs[v.name] = Tensor(DType::F32, {});
  // Found once, not by name in every step.
  for (const auto &[task, weight] : spec.tasks) {
    auto labelled = outputs.find(labelledName(task));
    lossRows[lossName(task)] =
        labelled == outputs.end() ? nullptr : &labelled->second;
    taskLosses.push_back(&outputs[lossName(task)]);
  }
  trainCall = EntryCall(spec.trainStep);
  hasDropout =
      std::any_of(spec.trainStep.args.begin(), spec.trainStep.args.end(),
                  [](const ValueSpec &v) { return v.role == Role::Seed; });
  updateCall = EntryCall(spec.update);
  forwardCall = EntryCall(spec.forward);
  if (sharded) {
    sliceCall = EntryCall(spec.updateSlice);
    if (spec.gradSquares.present)
      squaresCall = EntryCall(spec.gradSquares);
  }
  // Every batch holds at most `batch` samples: the arena is allocated once.
  size_t arena = 0;
  for (const EntrySpec *e :
       {&spec.trainStep, &spec.update, &spec.updateSlice, &spec.gradSquares,
        &spec.forward, &spec.predict, &spec.score})
    arena = std::max(arena, e->arenaSize(batch));
  if (activeDevice()) {
    // On a device: one block for the arena and the mirrors of every tensor
    // a step binds (the batch twice: trainRound's next batch), 256-byte
    // slices, and 64 KiB for the scalars (losses, rates, seeds).
    auto slice = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
    size_t total = slice(arena) + (64u << 10);
    for (auto *set : {&params, &nextParams, &grads, &buffers, &nextBuffers,
                      &states, &nextStates, &batchBuffers, &batchBuffers})
      for (const auto &entry : *set)
        total += slice(entry.second.bytes());
    for (const Tensor *t : shareTensors())
      total += slice(t->bytes());
    reserveDeviceMemory(total);
  }
  reserveArena(arena);
}

void Trainer::initParams() {
  for (const ValueSpec &v : spec.buffers)
    std::fill(buffers[v.name].f.begin(), buffers[v.name].f.end(),
              v.init == "ones" ? 1.0f : 0.0f);
  for (const ValueSpec &v : spec.params) {
    Tensor &t = params[v.name];
    if (v.init == "uniform") {
      std::uniform_real_distribution<float> d(-v.initScale, v.initScale);
      for (float &x : t.f)
        x = d(rng);
    } else if (v.init == "normal") {
      std::normal_distribution<float> d(0.0f, v.initScale);
      for (float &x : t.f)
        x = d(rng);
    } else {
      std::fill(t.f.begin(), t.f.end(), v.init == "ones" ? 1.0f : 0.0f);
    }
  }
  hostWrote(params);
  hostWrote(buffers);
}

void Trainer::loadInit(const std::string &path,
                       const std::vector<std::string> &skip) {
  NamedTensors file;
  std::string error;
  if (!readSafetensors(path, file, error))
    fail(error);
  loadWeights(file, path, skip, "");
}

/// Copies every parameter and buffer not matched by `skip` from `file`
/// (read from `path`), where each is named PREFIX + its name.
void Trainer::loadWeights(const NamedTensors &file, const std::string &path,
                          const std::vector<std::string> &skip,
                          const std::string &prefix) {
  auto load = [&](const std::vector<ValueSpec> &specs,
                  std::map<std::string, Tensor> &into) {
    for (const ValueSpec &v : specs) {
      if (std::any_of(skip.begin(), skip.end(), [&](const std::string &g) {
            return globMatch(g, v.name);
          }))
        continue;
      auto it = file.tensors.find(prefix + v.name);
      if (it == file.tensors.end())
        fail("'" + path + "' has no tensor '" + prefix + v.name +
             "' (skip it with init = load(path, skip: [...]))");
      if (it->second.shape != v.shape || it->second.dtype != DType::F32)
        fail("'" + path + "': '" + prefix + v.name + "' has shape " +
             formatShape(it->second.shape) + ", the model expects " +
             formatShape(v.shape));
      into[v.name].f = it->second.f;
    }
  };
  load(spec.params, params);
  load(spec.buffers, buffers);
  hostWrote(params);
  hostWrote(buffers);
}

/// Rows [begin, begin + count) of `rows` (or of the data, when empty) into
/// the batch buffers `into`: of each sample only [from, upto) but the
/// labels shareStep counts, whole.
void Trainer::gather(std::map<std::string, Tensor> &into, const Dataset &data,
                     const std::vector<int64_t> &rows, int64_t begin,
                     int64_t count, int64_t from, int64_t upto) {
  for (auto &[name, buffer] : into) {
    const Tensor &src = data.columns.at(name);
    int64_t row = src.rowSize();
    buffer.shape[0] = count;
    bool whole = std::any_of(
        spec.taskLabels.begin(), spec.taskLabels.end(),
        [&, &name = name](const auto &task) { return task.second == name; });
    for (int64_t k = 0; k < count; ++k) {
      if (!whole && (k < from || k >= upto))
        continue;
      int64_t r = rows.empty() ? begin + k : rows[begin + k];
      if (src.dtype == DType::F32)
        std::copy_n(src.floats() + r * row, row, buffer.f.data() + k * row);
      else
        std::copy_n(src.ints() + r * row, row, buffer.i.data() + k * row);
    }
  }
}

void Trainer::bindBatch(EntryCall &call, const EntrySpec &entry, int64_t count,
                        int64_t first, const StepTargets &to) {
  size_t index = 0;
  size_t task = 0;
  for (const ValueSpec &v : entry.args) {
    if (v.role == Role::Input || v.role == Role::Label) {
      Tensor &t = batchBuffers[v.name];
      call.bind(index, static_cast<char *>(t.data()) + first * t.rowSize() * 4,
                v.withBatch(count));
    } else if (v.role == Role::Param)
      call.bind(index, params[v.name]);
    else if (v.role == Role::Buffer)
      call.bind(index, buffers[v.name]);
    else if (v.role == Role::Seed)
      call.bind(index, *to.seed);
    else if (v.role == Role::TaskWeight)
      call.bind(index, (*to.weights)[task++]);
    ++index;
  }
  for (const ValueSpec &v : entry.results) {
    if (v.role == Role::Output)
      call.bind(index, (*to.outputs)[v.name]);
    else if (v.role == Role::Grad)
      call.bind(index, (*to.grads)[v.name]);
    else if (v.role == Role::Buffer)
      call.bind(index, (*to.nextBuffers)[v.name]);
    ++index;
  }
}

void Trainer::setTaskWeights() {
  size_t chosen = 0;
  if (strategy == "alternate") {
    chosen = static_cast<size_t>(step % spec.tasks.size());
  } else if (strategy == "sample") {
    std::discrete_distribution<size_t> d(sampleProbs.begin(),
                                         sampleProbs.end());
    chosen = d(rng);
  }
  for (size_t t = 0; t < spec.tasks.size(); ++t) {
    bool on = strategy == "joint" || t == chosen;
    taskWeights[t].f[0] = on ? static_cast<float>(spec.tasks[t].second) : 0.0f;
  }
}

/// The step wrote the buffers' new values (batch norm's running statistics)
/// into the second set: they become current (and, called again, the old
/// ones come back).
void Trainer::swapBuffers() {
  for (const ValueSpec &v : spec.trainStep.results)
    if (v.role == Role::Buffer)
      std::swap(buffers[v.name].f, nextBuffers[v.name].f);
}

void Trainer::trainStep(int64_t count, int64_t dropout, bool wait) {
  if (replicated()) {
    shareStep(count);
    prepareStep(count, dropout);
    runStep(wait);
    reduceStep(count, count);
    return;
  }
  prepareStep(count, dropout);
  runStep(wait);
}

void Trainer::prepareStep(int64_t count, int64_t dropout) {
  // Only models with dropout draw, so that others keep their shuffles.
  if (dropout == -1 && hasDropout)
    dropout = static_cast<int64_t>(rng() & 0x7fffffff);
  int32_t key = static_cast<int32_t>(dropout < 0 ? -1 : dropout);
  if (replicated()) {
    for (Replica &r : replicaSet) {
      r.seed.i = {key, static_cast<int32_t>(r.first),
                  static_cast<int32_t>(r.rows)};
      bindBatch(*r.call, spec.trainStep, r.rows, r.first, r.targets);
    }
    return;
  }
  dropoutSeed.i = {key, static_cast<int32_t>(firstRow),
                   static_cast<int32_t>(count)};
  bindBatch(trainCall, spec.trainStep, count, firstRow);
}

void Trainer::runStep(bool wait) {
  if (replicated())
    runReplicas(wait);
  else
    trainCall.invoke(mass_train_step, wait);
  swapBuffers();
}

void Trainer::update() {
  double t = static_cast<double>(step + 1);
  hyperLr.f[0] = static_cast<float>(schedule.at(step));
  hyperBc1.f[0] = static_cast<float>(1 - std::pow(spec.beta1, t));
  hyperBc2.f[0] = static_cast<float>(1 - std::pow(spec.beta2, t));
  // Sharded, each rank updates its share, and the owners' values then go
  // to every rank.
  if (sharded) {
    updateShare();
    gatherParams();
    return;
  }
  size_t index = 0;
  for (const ValueSpec &v : spec.update.args) {
    if (v.role == Role::Param)
      updateCall.bind(index, params[v.name]);
    else if (v.role == Role::Grad)
      updateCall.bind(index, grads[v.name]);
    else if (v.role == Role::State)
      updateCall.bind(index, states[v.name]);
    else if (v.role == Role::Hyper && v.name == abi::kLr)
      updateCall.bind(index, hyperLr);
    else if (v.role == Role::Hyper && v.name == abi::kBiasCorrection1)
      updateCall.bind(index, hyperBc1);
    else if (v.role == Role::Hyper && v.name == abi::kBiasCorrection2)
      updateCall.bind(index, hyperBc2);
    ++index;
  }
  // In place (massc found it safe), the new values overwrite the old;
  // otherwise they go to the second set of buffers, swapped in after.
  bool inPlace = spec.update.inPlace;
  for (const ValueSpec &v : spec.update.results) {
    if (v.role == Role::Param)
      updateCall.bind(index, (inPlace ? params : nextParams)[v.name]);
    else if (v.role == Role::State)
      updateCall.bind(index, (inPlace ? states : nextStates)[v.name]);
    else
      updateCall.bind(index, gradNorm);
    ++index;
  }
  updateCall.invoke(mass_update);
  if (!inPlace)
    for (const ValueSpec &v : spec.update.results) {
      if (v.role == Role::Param)
        std::swap(params[v.name].f, nextParams[v.name].f);
      else if (v.role == Role::State)
        std::swap(states[v.name].f, nextStates[v.name].f);
    }
}

//===----------------------------------------------------------------------===//
// Metrics
//===----------------------------------------------------------------------===//

void Trainer::accumulate(Totals &t, int64_t count) {
  for (const auto &[name, value] : outputs) {
    double v = value.f[0];
    // Losses are batch means: weight them by the rows they average over,
    // the labelled ones where the compiler counts them (cross-entropy
    // skips -1 labels), else the batch.
    auto loss = lossRows.find(name);
    if (loss != lossRows.end())
      v *= loss->second ? loss->second->f[0] : static_cast<double>(count);
    t.sum[name] += v;
  }
  t.samples += count;
}

Trainer::Totals Trainer::evaluate(const Dataset &data) {
  Totals totals;
  // Under mpirun each rank takes every ranks-th batch, then the totals are
  // summed: the batches are those of one process.
  int64_t index = 0;
  for (int64_t begin = 0; begin < data.rows; begin += batch) {
    if (index++ % ranks != rank)
      continue;
    int64_t count = std::min(batch, data.rows - begin);
    gather(data, {}, begin, count);
    bindBatch(forwardCall, spec.forward, count);
    forwardCall.invoke(mass_forward);
    accumulate(totals, count);
  }
  if (ranks > 1)
    reduceTotals(totals, "the validation totals");
  return totals;
}

/// {"loss": .., "accuracy": .., ...} for one task.
Json Trainer::summarize(const Totals &t, const std::string &task) const {
  Json out = Json::object();
  auto get = [&](const std::string &k) {
    auto it = t.sum.find(k);
    return it == t.sum.end() ? 0.0 : it->second;
  };
  double rows =
      t.sum.count(labelledName(task)) ? get(labelledName(task)) : t.samples;
  out.set("loss", Json::number(rows > 0 ? get(lossName(task)) / rows : 0.0));
  std::string prefix = std::string(abi::kMetricPrefix) + task + ".";
  for (const auto &[name, value] : t.sum) {
    if (name.rfind(prefix, 0) != 0 || name.size() < 4 ||
        name.compare(name.size() - 4, 4, ".sum") != 0)
      continue;
    std::string metric =
        name.substr(prefix.size(), name.size() - prefix.size() - 4);
    double count = get(prefix + metric + ".count");
    double v = count > 0 ? value / count : 0.0;
    if (metric == "rmse")
      v = std::sqrt(v);
    out.set(metric, Json::number(v));
  }
  return out;
}

std::string Trainer::describe(const Totals &t) const {
  std::string s;
  for (const auto &[task, weight] : spec.tasks) {
    Json m = summarize(t, task);
    for (const auto &[name, value] : m.members()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s%s %.4f",
                    spec.tasks.size() > 1 ? (task + ".").c_str() : "",
                    name.c_str(), value.num());
      s += buf;
    }
  }
  return s;
}

bool Trainer::maximize() const {
  std::string metric = cfg()["checkpoint"]["metric"].isString()
                           ? cfg()["checkpoint"]["metric"].str()
                           : "val.loss";
  return metric.size() < 5 ||
         metric.compare(metric.size() - 5, 5, ".loss") != 0;
}

double Trainer::monitored(const Totals &val) const {
  std::string metric = cfg()["checkpoint"]["metric"].isString()
                           ? cfg()["checkpoint"]["metric"].str()
                           : "val.loss";
  if (metric == "val.loss") {
    double total = 0;
    for (const auto &[task, weight] : spec.tasks)
      total += weight * summarize(val, task).numberOr("loss", 0);
    return total;
  }
  // val.TASK.METRIC
  std::string rest = metric.substr(4);
  std::string task = rest.substr(0, rest.find('.'));
  std::string name = rest.substr(rest.find('.') + 1);
  return summarize(val, task).numberOr(name, NAN);
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

void Trainer::writeCheckpoint(const std::string &file, bool withState,
                              int64_t round,
                              const std::map<std::string, Tensor> *allStates) {
  if (!allStates)
    allStates = &states;
  std::string dir =
      opts.checkpointDir.empty() ? "checkpoints" : opts.checkpointDir;
  ::mkdir(dir.c_str(), 0755);
  // The device's parameters, buffers and optimizer state come down first.
  fetch(params);
  fetch(buffers);
  if (withState)
    fetch(states);
  NamedTensors out;
  for (const auto &[name, t] : params)
    out.tensors[name] = t;
  for (const auto &[name, t] : buffers)
    out.tensors[name] = t;
  out.metadata["model"] = spec.name;
  out.metadata[byStep() ? "step" : "epoch"] =
      std::to_string(byStep() ? step : round);
  std::string error;
  if (!writeSafetensors(dir + "/" + file, out, error))
    fail(error);
  if (!withState)
    return;
  // The resume state holds the weights too, so that one atomic write is one
  // consistent snapshot: a run killed between this file and the one above
  // resumes from the state's epoch, never from weights of one epoch and
  // moments of another.
  NamedTensors state;
  for (const auto &[name, t] : params)
    state.tensors[kStateWeights + name] = t;
  for (const auto &[name, t] : buffers)
    state.tensors[kStateWeights + name] = t;
  for (const auto &[name, t] : *allStates)
    state.tensors[name] = t;
  std::ostringstream rngState, orderState;
  rngState << rng;
  orderState << orderRng;
  state.metadata["step"] = std::to_string(step);
  state.metadata["round"] = std::to_string(round);
  state.metadata["epoch"] = std::to_string(epoch);
  state.metadata["position"] = std::to_string(position);
  state.metadata["order_rng"] = orderState.str();
  state.metadata["best"] = std::isnan(best) ? "nan" : std::to_string(best);
  state.metadata["since_best"] = std::to_string(sinceBest);
  state.metadata["rng"] = rngState.str();
  if (!report.empty())
    state.metadata["report"] = report.toText();
  if (!writeSafetensors(dir + "/last.state.safetensors", state, error))
    fail(error);
}

void Trainer::resume(const std::string &dir) {
  NamedTensors state;
  std::string error;
  std::string statePath = dir + "/last.state.safetensors";
  if (!readSafetensors(statePath, state, error))
    fail(error);
  loadWeights(state, statePath, {}, kStateWeights);
  if (sharded)
    loadShare(state, statePath);
  for (auto &[name, t] : states) {
    auto it = state.tensors.find(name);
    if (it == state.tensors.end() || it->second.shape != t.shape)
      fail("'" + dir + "/last.state.safetensors' has no usable '" + name + "'");
    t.f = it->second.f;
  }
  hostWrote(states);
  try {
    step = std::stoll(state.metadata.at("step"));
    startRound = std::stoll(state.metadata.at("round")) + 1;
    epoch = std::stoll(state.metadata.at("epoch"));
    position = std::stoull(state.metadata.at("position"));
    std::istringstream orderIn(state.metadata.at("order_rng"));
    if (!(orderIn >> orderRng))
      throw std::invalid_argument("order_rng");
    best = state.metadata.at("best") == "nan"
               ? NAN
               : std::stod(state.metadata.at("best"));
    sinceBest = std::stoll(state.metadata.at("since_best"));
    std::istringstream in(state.metadata.at("rng"));
    if (!(in >> rng))
      throw std::invalid_argument("rng");
    // The earlier rounds' curves (absent when that run drew none).
    auto curves = state.metadata.find("report");
    if (curves != state.metadata.end() && !report.fromText(curves->second))
      throw std::invalid_argument("report");
  } catch (const std::exception &) {
    fail("'" + dir + "/last.state.safetensors' lacks its resume metadata");
  }
}

/// The peak resident memory so far in MiB (Linux's VmHWM), or -1.
static double peakResidentMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::strtod(line.c_str() + 6, nullptr) / 1024;
  return -1;
}

/// "ready" (the first step is next) and "end" (training is over): the
/// seconds since the program started and its peak resident memory.
void Trainer::logProgramEvent(const char *kind) {
  Json e = Json::object();
  e.set("event", Json::string(kind));
  e.set("seconds", Json::number(secondsSince(kProcessStart)));
  e.set("peak_resident_mib", Json::number(peakResidentMiB()));
  if (ranks > 1) {
    e.set("processes", Json::number(ranks));
    // Each rank's optimizer state: all of it everywhere, or sharded each
    // rank's share.
    Json bytes = Json::array();
    for (int64_t b : optimizerBytes())
      bytes.push(Json::number(static_cast<double>(b)));
    e.set(sharded ? "optimizer_bytes_per_rank" : "optimizer_bytes_each", bytes);
  }
  if (replicated())
    e.set("replicas", Json::number(static_cast<double>(replicasTotal)));
  if (buckets.buckets() > 0) {
    // How many buckets the gradients' sums go in, and how many of their
    // starts so far came from inside a step.
    e.set("gradient_buckets",
          Json::number(static_cast<double>(buckets.buckets())));
    e.set("buckets_started_during_steps",
          Json::number(static_cast<double>(buckets.startedDuringSteps())));
  }
  logEvent(e);
}

void Trainer::logEvent(const Json &event) {
  if (log.is_open()) {
    log << event.dump() << "\n";
    log.flush();
  }
}

void Trainer::dumpParams() {
  auto list = [](const std::vector<ValueSpec> &specs, const char *what) {
    int64_t total = 0;
    for (const ValueSpec &v : specs) {
      int64_t n = elements(v.shape);
      total += n;
      std::printf("%-40s %-16s %10lld%s\n", v.name.c_str(),
                  formatShape(v.shape).c_str(), static_cast<long long>(n),
                  *what == 'b' ? "  buffer" : "");
    }
    return total;
  };
  int64_t params = list(spec.params, "param");
  int64_t buffers = list(spec.buffers, "buffer");
  std::printf("%lld parameters in %zu tensors", static_cast<long long>(params),
              spec.params.size());
  if (!spec.buffers.empty())
    std::printf("; %lld buffer values in %zu tensors",
                static_cast<long long>(buffers), spec.buffers.size());
  std::printf("\n");
}

void Trainer::dumpGrads() {
  int64_t count = std::min(batch, trainData.rows);
  gather(trainData, {}, 0, count);
  for (size_t t = 0; t < spec.tasks.size(); ++t)
    taskWeights[t].f[0] = static_cast<float>(spec.tasks[t].second);
  trainStep(count, opts.dropoutSeed >= 0 ? opts.dropoutSeed : -2);
  fetch(grads);
  NamedTensors out;
  for (const auto &[name, g] : grads)
    out.tensors["grad." + name] = g;
  double total = 0;
  for (const auto &[task, weight] : spec.tasks) {
    Tensor l(DType::F32, {});
    l.f[0] = outputs[lossName(task)].f[0];
    total += weight * l.f[0];
    out.tensors[lossName(task)] = l;
  }
  Tensor l(DType::F32, {});
  l.f[0] = static_cast<float>(total);
  out.tensors["loss"] = l;
  std::string error;
  if (!writeSafetensors(opts.dumpGrads, out, error))
    fail(error);
}

/// Runs @predict over the validation data in evaluation mode and writes
/// every prediction, all rows, as safetensors.
void Trainer::dumpPredictions() {
  if (!spec.predict.present)
    fail("this program has no predict entry point; recompile it");
  EntryCall predictCall(spec.predict);
  NamedTensors out;
  std::vector<Tensor> batchPreds;
  for (const ValueSpec &v : spec.predict.results) {
    batchPreds.emplace_back(DType::F32, v.withBatch(batch));
    out.tensors[v.name] = Tensor(DType::F32, v.withBatch(valData.rows));
  }
  for (int64_t begin = 0; begin < valData.rows; begin += batch) {
    int64_t count = std::min(batch, valData.rows - begin);
    gather(valData, {}, begin, count);
    bindBatch(predictCall, spec.predict, count);
    size_t index = spec.predict.args.size();
    for (size_t k = 0; k < batchPreds.size(); ++k)
      predictCall.bind(index + k, batchPreds[k].data(),
                       spec.predict.results[k].withBatch(count));
    predictCall.invoke(mass_predict);
    for (size_t k = 0; k < batchPreds.size(); ++k) {
      Tensor &all = out.tensors[spec.predict.results[k].name];
      int64_t row = all.rowSize();
      std::copy_n(batchPreds[k].f.data(), count * row,
                  all.f.data() + begin * row);
    }
  }
  out.metadata["model"] = spec.name;
  std::string error;
  if (!writeSafetensors(opts.dumpPredictions, out, error))
    fail(error);
}

/// Samples `--generate N` tokens after the prompt, one at a time: each
/// from the evaluation-mode logits at the last position of the window of
/// the last T tokens (the window starts at position 0 while it is shorter
/// than T; a causal model's later positions do not matter), with
/// `--temperature` (0: the most likely token) and `--top-k`. With a
/// vocabulary of 256 the tokens are bytes: the prompt is text, and so is
/// the output; otherwise both are ids separated by spaces.
void Trainer::generate() {
  if (!spec.predict.present)
    fail("this program has no predict entry point; recompile it");
  const ValueSpec *logits = nullptr;
  int sequences = 0;
  for (const ValueSpec &v : spec.predict.results)
    if (v.kind == "logits" && v.shape.size() == 3) {
      logits = &v;
      ++sequences;
    }
  if (spec.inputs.size() != 1 || spec.inputs[0].dtype != DType::I32 ||
      spec.inputs[0].shape.size() != 2 || sequences != 1 ||
      logits->shape[1] != spec.inputs[0].shape[1])
    fail("--generate needs a model whose one input is i32 [B, T] token ids "
         "and whose one sequence of logits is [B, T, V]");
  const ValueSpec &input = spec.inputs[0];
  const int64_t window = input.shape[1], vocab = logits->shape[2];
  const bool bytes = vocab == 256;
  std::vector<int32_t> context;
  if (bytes) {
    for (unsigned char c : opts.prompt)
      context.push_back(c);
    if (context.empty())
      context.push_back('\n'); // a start: the text seen after a line
  } else {
    std::istringstream in(opts.prompt);
    for (std::string word; in >> word;) {
      char *end = nullptr;
      long id = std::strtol(word.c_str(), &end, 10);
      if (*end || id < 0 || id >= vocab)
        fail("--prompt: '" + word + "' is not a token id in [0, " +
             std::to_string(vocab) + ")");
      context.push_back(static_cast<int32_t>(id));
    }
    if (context.empty())
      fail("--prompt: give at least one token id (the vocabulary has " +
           std::to_string(vocab) + " tokens, not bytes)");
  }
  if (input.idBound > 0)
    for (int32_t id : context)
      if (id >= input.idBound)
        fail("--prompt: the token " + std::to_string(id) +
             " is outside the embedding's table of " +
             std::to_string(input.idBound));
  if (opts.topK > vocab)
    fail("--top-k " + std::to_string(opts.topK) + " exceeds the vocabulary (" +
         std::to_string(vocab) + ")");
  requireWeights("--generate");

  EntryCall call(spec.predict);
  Tensor &ids = batchBuffers[input.name];
  ids.shape[0] = 1;
  std::vector<Tensor> preds;
  for (const ValueSpec &v : spec.predict.results)
    preds.emplace_back(DType::F32, v.withBatch(1));
  size_t which = logits - spec.predict.results.data();
  std::vector<double> p(static_cast<size_t>(vocab));
  std::vector<int32_t> top(static_cast<size_t>(vocab));
  auto emit = [&](int32_t id) {
    if (bytes)
      std::fputc(id, stdout);
    else
      std::printf("%d ", id);
  };
  for (int32_t id : context)
    emit(id);
  std::fflush(stdout);
  for (int64_t n = 0; n < opts.generate; ++n) {
    int64_t length = std::min<int64_t>(window, context.size());
    std::fill(ids.i.begin(), ids.i.begin() + window, 0);
    std::copy(context.end() - length, context.end(), ids.i.begin());
    bindBatch(call, spec.predict, 1);
    size_t index = spec.predict.args.size();
    for (size_t k = 0; k < preds.size(); ++k)
      call.bind(index + k, preds[k]);
    call.invoke(mass_predict);
    const float *row = preds[which].f.data() + (length - 1) * vocab;
    int32_t next = 0;
    if (opts.temperature == 0) {
      next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    } else {
      // The k most likely tokens (all with no --top-k), then a softmax of
      // their logits / temperature.
      std::iota(top.begin(), top.end(), 0);
      int64_t keep = opts.topK > 0 ? opts.topK : vocab;
      std::partial_sort(top.begin(), top.begin() + keep, top.end(),
                        [&](int32_t a, int32_t b) {
                          return row[a] > row[b] || (row[a] == row[b] && a < b);
                        });
      double most = row[top[0]];
      for (int64_t k = 0; k < keep; ++k)
        p[k] = std::exp((row[top[k]] - most) / opts.temperature);
      std::discrete_distribution<int64_t> d(p.begin(), p.begin() + keep);
      next = top[d(rng)];
    }
    context.push_back(next);
    emit(next);
    std::fflush(stdout);
  }
  std::printf("\n");
}

/// Evaluates the members' combined predictions on the validation data:
/// class probabilities are averaged for logits, values for the rest; the
/// combination is scored with the first member's parameters (which only
/// matter to losses with parameter terms).
int Trainer::ensemble() {
  if (!spec.predict.present || !spec.score.present)
    fail("this program has no predict/score entry points; recompile it");
  std::vector<std::string> files;
  for (size_t begin = 0; begin <= opts.ensemble.size();) {
    size_t end = opts.ensemble.find(',', begin);
    if (end == std::string::npos)
      end = opts.ensemble.size();
    if (end > begin)
      files.push_back(opts.ensemble.substr(begin, end - begin));
    begin = end + 1;
  }
  if (files.empty())
    fail("--ensemble expects A.safetensors,B.safetensors,...");
  struct Member {
    std::map<std::string, Tensor> params, buffers;
  };
  std::vector<Member> members;
  for (const std::string &file : files) {
    loadInit(file, {});
    members.push_back({params, buffers});
  }
  // Prediction buffers: one set per member, and the combination.
  std::vector<std::vector<Tensor>> preds(members.size());
  std::vector<Tensor> combined;
  for (const ValueSpec &v : spec.predict.results) {
    for (auto &p : preds)
      p.emplace_back(DType::F32, v.withBatch(batch));
    combined.emplace_back(DType::F32, v.withBatch(batch));
  }
  EntryCall predictCall(spec.predict), scoreCall(spec.score);
  Totals totals;
  for (int64_t begin = 0; begin < valData.rows; begin += batch) {
    int64_t count = std::min(batch, valData.rows - begin);
    gather(valData, {}, begin, count);
    for (size_t m = 0; m < members.size(); ++m) {
      params = members[m].params;
      buffers = members[m].buffers;
      hostWrote(params);
      hostWrote(buffers);
      bindBatch(predictCall, spec.predict, count);
      size_t index = spec.predict.args.size();
      for (size_t k = 0; k < preds[m].size(); ++k)
        predictCall.bind(index + k, preds[m][k].data(),
                         spec.predict.results[k].withBatch(count));
      predictCall.invoke(mass_predict);
    }
    for (size_t k = 0; k < combined.size(); ++k) {
      const ValueSpec &v = spec.predict.results[k];
      int64_t n = 1;
      for (int64_t d : v.withBatch(count))
        n *= d;
      int64_t width = v.shape.empty() ? 1 : v.withBatch(count).back();
      float *out = combined[k].f.data();
      std::fill(out, out + n, 0.0f);
      for (auto &member : preds) {
        const float *in = member[k].f.data();
        if (v.kind != "logits") {
          for (int64_t e = 0; e < n; ++e)
            out[e] += in[e] / members.size();
          continue;
        }
        for (int64_t row = 0; row < n; row += width) {
          float top = *std::max_element(in + row, in + row + width);
          double z = 0;
          for (int64_t c = 0; c < width; ++c)
            z += std::exp(in[row + c] - top);
          for (int64_t c = 0; c < width; ++c)
            out[row + c] += std::exp(in[row + c] - top) / z / members.size();
        }
      }
      if (v.kind == "logits")
        for (int64_t e = 0; e < n; ++e)
          out[e] = std::log(std::max(out[e], 1e-30f));
    }
    params = members[0].params;
    buffers = members[0].buffers;
    hostWrote(params);
    hostWrote(buffers);
    bindBatch(scoreCall, spec.score, count);
    size_t first = spec.score.args.size() - combined.size();
    for (size_t k = 0; k < combined.size(); ++k)
      scoreCall.bind(first + k, combined[k].data(),
                     spec.score.args[first + k].withBatch(count));
    scoreCall.invoke(mass_score);
    accumulate(totals, count);
  }
  std::printf("ensemble of %zu:%s\n", members.size(), describe(totals).c_str());
  for (const auto &[task, weight] : spec.tasks) {
    Json e = summarize(totals, task);
    e.set("event", Json::string("ensemble"));
    e.set("split", Json::string("val"));
    e.set("task", Json::string(task));
    e.set("members", Json::number(static_cast<double>(members.size())));
    logEvent(e);
  }
  return 0;
}

/// Times training steps (train_step and update) and forward passes on the
/// first batch, after warming up, and prints one JSON line.
int Trainer::benchmark() {
  int64_t count = std::min(batch, trainData.rows);
  gather(trainData, {}, 0, count);
  for (size_t t = 0; t < spec.tasks.size(); ++t)
    taskWeights[t].f[0] = static_cast<float>(spec.tasks[t].second);
  std::string error; // a constant schedule cannot fail
  Schedule::fromConfig(Json(), lr, 1, schedule, error);
  auto time = [&](auto body) {
    for (int k = 0; k < 3; ++k)
      body();
    deviceSynchronize();
    auto start = std::chrono::steady_clock::now();
    for (int64_t k = 0; k < opts.benchmark; ++k)
      body();
    // A GPU's last launches may still run.
    deviceSynchronize();
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - start)
               .count() /
           opts.benchmark;
  };
  double stepMs = opts.benchmarkForwardOnly ? NAN : time([&] {
    trainStep(count);
    update();
  });
  double forwardMs = time([&] {
    bindBatch(forwardCall, spec.forward, count);
    forwardCall.invoke(mass_forward);
  });
  Json out = Json::object();
  out.set("model", Json::string(spec.name));
  out.set("batch", Json::number(static_cast<double>(count)));
  out.set("steps", Json::number(static_cast<double>(opts.benchmark)));
  if (!opts.benchmarkForwardOnly)
    out.set("train_step_ms", Json::number(stepMs));
  out.set("forward_ms", Json::number(forwardMs));
  if (!opts.benchmarkForwardOnly)
    out.set("samples_per_s", Json::number(count * 1000.0 / stepMs));
  std::printf("benchmark %s\n", out.dump().c_str());
  return 0;
}

//===----------------------------------------------------------------------===//
// Data parallel (under mpirun)
//===----------------------------------------------------------------------===//

/// What data-parallel training does not cover yet fails before any step.
void Trainer::checkParallel() const {
  std::string what = ranks > 1 ? "data-parallel training (" +
                                     std::to_string(ranks) + " processes) "
                               : "--replicas ";
  for (const auto &[task, weight] : spec.tasks) {
    auto labels = spec.taskLabels.find(task);
    if (labels == spec.taskLabels.end()) {
      if (lossRows.at(lossName(task)))
        fail(what + "needs task '" + task +
             "''s cross-entropy to take a label input as it is");
      continue;
    }
    auto column = batchBuffers.find(labels->second);
    if (column == batchBuffers.end() || column->second.dtype != DType::I32)
      fail("the model descriptor gives task '" + task + "' the labels '" +
           labels->second + "', which are no i32 label");
  }
}

/// This rank's rows of a batch of `count`: [first, first + the result).
int64_t Trainer::sliceOf(int64_t count, int64_t &first) const {
  first = count * rank / ranks;
  return count * (rank + 1) / ranks - first;
}

/// This rank's slice of a batch of `count` rows, drawn alike on every rank:
/// sets firstRow and returns the slice's rows. Each task's weight becomes
/// its share of the task's rows (the labelled ones, for a cross-entropy that
/// skips -1 labels), so that the gradients summed over the ranks are those
/// of the whole batch's mean losses.
/// With --replicas, each of this process's replicas gets its rows and
/// shares instead (the trainer's weights stay the whole batch's).
int64_t Trainer::shareStep(int64_t count) {
  if (replicated()) {
    int64_t local = 0;
    for (size_t j = 0; j < replicaSet.size(); ++j) {
      Replica &r = replicaSet[j];
      int64_t g = rank * static_cast<int64_t>(replicaSet.size()) +
                  static_cast<int64_t>(j);
      r.first = count * g / replicasTotal;
      r.rows = count * (g + 1) / replicasTotal - r.first;
      for (size_t t = 0; t < spec.tasks.size(); ++t)
        r.weights[t].f[0] = shareOf(t, r.first, r.rows, count);
      local += r.rows;
    }
    firstRow = replicaSet[0].first;
    return local;
  }
  int64_t local = sliceOf(count, firstRow);
  for (size_t t = 0; t < spec.tasks.size(); ++t)
    taskWeights[t].f[0] = shareOf(t, firstRow, local, count);
  return local;
}

float Trainer::shareOf(size_t task, int64_t first, int64_t rows,
                       int64_t count) const {
  double mine = static_cast<double>(rows), all = static_cast<double>(count);
  auto labels = spec.taskLabels.find(spec.tasks[task].first);
  if (labels != spec.taskLabels.end()) {
    const Tensor &l = batchBuffers.at(labels->second);
    int64_t row = l.rowSize();
    mine = all = 0;
    for (int64_t k = 0; k < count * row; ++k)
      if (l.i[k] >= 0) {
        all += 1;
        mine += k >= first * row && k < (first + rows) * row;
      }
  }
  return static_cast<float>(all > 0 ? taskWeights[task].f[0] * (mine / all)
                                    : 0.0);
}

template <typename T>
void Trainer::outputsAsSums(int64_t local, std::vector<T> &into,
                            const std::map<std::string, Tensor> &outs) {
  for (const ValueSpec &v : spec.trainStep.results)
    if (v.role == Role::Output) {
      auto loss = lossRows.find(v.name);
      double rows = static_cast<double>(local);
      if (loss == lossRows.end())
        rows = 1.0;
      else if (loss->second)
        rows =
            outs.at(labelledName(v.name.substr(abi::kLossPrefix.size()))).f[0];
      into.push_back(static_cast<T>(outs.at(v.name).f[0] * rows));
    }
}

template <typename T>
void Trainer::outputsFromSums(const T *sums, int64_t count) {
  for (const ValueSpec &v : spec.trainStep.results)
    if (v.role == Role::Output)
      outputs[v.name].f[0] = static_cast<float>(*sums++);
  // The labelled counts are now the batch's: the losses' sums become means.
  for (const ValueSpec &v : spec.trainStep.results) {
    auto loss = lossRows.find(v.name);
    if (v.role != Role::Output || loss == lossRows.end())
      continue;
    double rows =
        loss->second ? loss->second->f[0] : static_cast<double>(count);
    outputs[v.name].f[0] =
        static_cast<float>(rows > 0 ? outputs[v.name].f[0] / rows : 0.0);
  }
}

/// The gradients, parameter after parameter, into `reduced`.
void Trainer::packGrads() {
  reduced.clear();
  for (const ValueSpec &v : spec.params) {
    const std::vector<float> &g = grads.at(v.name).f;
    reduced.insert(reduced.end(), g.begin(), g.end());
  }
}

/// The gradients back from `reduced`; returns what follows them there.
const float *Trainer::unpackGrads() {
  const float *next = reduced.data();
  for (const ValueSpec &v : spec.params) {
    std::vector<float> &g = grads.at(v.name).f;
    std::copy_n(next, g.size(), g.begin());
    next += g.size();
  }
  return next;
}

/// Names the sums of this step's gradients in messages.
std::string Trainer::stepWhat() const {
  return "the gradients of step " + std::to_string(step + 1);
}

/// Sums the ranks' gradients and the step's outputs; the outputs then hold
/// the whole batch's values, as on one process.
void Trainer::reduceStep(int64_t count, int64_t local) {
  std::string what = stepWhat();
  auto start = std::chrono::steady_clock::now();
  if (replicated()) {
    // The replicas' sums, added in the tree over the processes: every rank
    // ends with all the gradients, sharded or not (sharded, the clipping
    // takes their squares from grad_squares, added as on one process).
    std::string error;
    if (ranks > 1) {
      packGrads();
      reducedBytes =
          reduced.size() * sizeof(float) + replicaSums.size() * sizeof(double);
      if (!comm::sumInOrder(reduced.data(), reduced.size(), reducedScratch,
                            what.c_str(), error) ||
          !comm::sumInOrder(replicaSums.data(), replicaSums.size(),
                            replicaSumsScratch, what.c_str(), error))
        fail(error);
      unpackGrads();
      reduceSeconds += secondsSince(start);
    }
    outputsFromSums(replicaSums.data(), count);
    if (sharded)
      allSquares();
    return;
  }
  if (sharded) {
    reduceShards(count, local, what.c_str());
    reduceSeconds += secondsSince(start);
    return;
  }
  std::string error;
  if (buckets.buckets() > 0 || activeDevice()) {
    // The gradients: the buckets started during the step, or on a device
    // all at once, where they lie (NCCL sums them there on a GPU). The
    // outputs, on the host, follow by MPI.
    if (buckets.buckets() > 0) {
      if (!buckets.finish(error))
        fail(error);
      reducedBytes = buckets.bytes();
    } else {
      std::vector<DeviceFloats> sums;
      reducedBytes = 0;
      for (const ValueSpec &v : spec.params) {
        Tensor &g = grads.at(v.name);
        sums.push_back({seen(g), g.f.size()});
        reducedBytes += g.bytes();
      }
      activeDevice()->sumRanks(sums, what.c_str());
    }
    std::vector<double> outputSums;
    outputsAsSums(local, outputSums, outputs);
    if (!comm::sum(outputSums.data(), outputSums.size(), what.c_str(), error))
      fail(error);
    // The next wait for the device waits for the sums too.
    if (activeDevice())
      deviceSynchronize();
    reduceSeconds += secondsSince(start);
    outputsFromSums(outputSums.data(), count);
    reducedBytes += outputSums.size() * sizeof(double);
    return;
  }
  packGrads();
  outputsAsSums(local, reduced, outputs);
  reducedBytes = reduced.size() * sizeof(float);
  if (!comm::sum(reduced.data(), reduced.size(), what.c_str(), error))
    fail(error);
  reduceSeconds += secondsSince(start);
  outputsFromSums(unpackGrads(), count);
}

/// Under mpirun (unsharded, without replicas): the buckets the gradients'
/// sums start in while the step runs, in the order the step reports them
/// (the descriptor's grad_ready). --bucket-mb=0, or a step that reports
/// nothing, sums them all after it.
void Trainer::planBuckets() {
  const EntrySpec &step = spec.trainStep;
  if (ranks < 2 || sharded || replicated() || step.gradReady.empty() ||
      opts.bucketMb <= 0)
    return;
  std::vector<GradBuckets::Grad> order;
  for (int64_t value : step.gradReady) {
    const ValueSpec &v =
        step.results[static_cast<size_t>(value) - step.args.size()];
    Tensor &g = grads.at(v.name);
    order.push_back({value, g.f.data(), g.f.size()});
  }
  buckets.plan(order, opts.bucketMb * 1024 * 1024);
}

/// --replicas=R: this process's R / N replicas, their gradients, outputs
/// and buffers (replica 0's are the trainer's), and their threads.
void Trainer::startReplicas() {
  replicasTotal = opts.replicas;
  std::string flag = "--replicas=" + std::to_string(replicasTotal);
  if (activeDevice())
    fail(flag + " is not supported on a GPU yet: train without it");
  int64_t mine = replicasTotal / ranks;
  // Each process's replicas must form a subtree of the R replicas' tree
  // (one process holds the whole tree).
  if (replicasTotal % ranks != 0 || (ranks > 1 && (mine & (mine - 1)) != 0))
    fail(flag + " over " + std::to_string(ranks) +
         " processes: each process runs a power of two of the replicas "
         "(R / N = 1, 2, 4, ...), so that their sums add in one tree for "
         "any N");
  // Each replica is a thread with its own gradients and arena.
  constexpr int64_t kMaxPerProcess = 256;
  if (replicasTotal > batch)
    fail(flag + " splits a batch of " + std::to_string(batch) +
         " rows: at most one replica per row");
  if (mine > kMaxPerProcess)
    fail(flag + " over " + std::to_string(ranks) + " process" +
         (ranks > 1 ? "es" : "") + " runs " + std::to_string(mine) +
         " replicas on each, more than " + std::to_string(kMaxPerProcess));
  replicaSet.resize(static_cast<size_t>(mine));
  for (size_t j = 0; j < replicaSet.size(); ++j) {
    Replica &r = replicaSet[j];
    r.weights.assign(spec.tasks.size(), Tensor(DType::F32, {}));
    if (j == 0) {
      r.call = &trainCall;
      r.targets = {&r.seed, &r.weights, &outputs, &grads, &nextBuffers};
      continue;
    }
    r.ownCall = EntryCall(spec.trainStep);
    r.ownCall.ownArena();
    r.call = &r.ownCall;
    for (const auto &[name, t] : outputs)
      r.outputs[name] = Tensor(t.dtype, t.shape);
    for (const auto &[name, t] : grads)
      r.grads[name] = Tensor(t.dtype, t.shape);
    for (const auto &[name, t] : nextBuffers)
      r.nextBuffers[name] = Tensor(t.dtype, t.shape);
    r.targets = {&r.seed, &r.weights, &r.outputs, &r.grads, &r.nextBuffers};
  }
  // The replicas run at once (batch norm sums over them inside the step),
  // the step's threads shared among them.
  int threads = omp_get_max_threads ? omp_get_max_threads() : 1;
  replicas::start(static_cast<int>(mine),
                  std::max(1, threads / static_cast<int>(mine)));
}

/// Runs every replica's step (one with no rows adds nothing; it still runs
/// when the step sums over the replicas inside), then adds their gradients
/// in the tree into the trainer's and their outputs' sums into replicaSums.
void Trainer::runReplicas(bool wait) {
  replicas::run([&](int j) {
    Replica &r = replicaSet[static_cast<size_t>(j)];
    if (r.rows > 0 || !spec.buffers.empty())
      r.call->invoke(mass_train_step, wait);
    if (r.rows == 0) {
      for (auto &entry : *r.targets.grads)
        std::fill(entry.second.f.begin(), entry.second.f.end(), 0.0f);
      for (auto &entry : *r.targets.outputs)
        entry.second.f[0] = 0;
    }
  });
  std::vector<float *> parts(replicaSet.size());
  for (const ValueSpec &v : spec.params) {
    for (size_t j = 0; j < replicaSet.size(); ++j)
      parts[j] = replicaSet[j].targets.grads->at(v.name).f.data();
    comm::addInTree(parts.data(), parts.size(), grads.at(v.name).f.size());
  }
  std::vector<std::vector<double>> sums(replicaSet.size());
  std::vector<double *> sumParts;
  for (size_t j = 0; j < replicaSet.size(); ++j) {
    outputsAsSums(replicaSet[j].rows, sums[j], *replicaSet[j].targets.outputs);
    sumParts.push_back(sums[j].data());
  }
  comm::addInTree(sumParts.data(), sumParts.size(), sums[0].size());
  replicaSums = sums[0];
}

//===----------------------------------------------------------------------===//
// The sharded optimizer (--shard-optimizer, ZeRO stage 1)
//===----------------------------------------------------------------------===//

/// The plan (Shards.h), and this rank's share of the parameters,
/// gradients and optimizer state.
void Trainer::planShards() {
  sharded = true;
  std::vector<int64_t> sizes;
  std::vector<double> scales;
  for (const ValueSpec &v : spec.update.args)
    if (v.role == Role::Param) {
      trained.push_back(&v);
      sizes.push_back(elements(v.shape));
      auto scale = spec.lrScales.find(v.name);
      scales.push_back(scale == spec.lrScales.end() ? 1.0 : scale->second);
    }
  int64_t chunk = spec.updateSlice.args[0].shape[0];
  std::string error;
  if (!shards.plan(sizes, scales, ranks, rank, chunk, error))
    fail(error);
  for (const ValueSpec &v : spec.updateSlice.args)
    if (v.role == Role::State)
      stateKinds.push_back(v.name.substr(v.name.rfind('.') + 1));
  // (At least one value each, so that every tensor has memory.)
  std::vector<int64_t> share{std::max<int64_t>(shards.owned(), 1)};
  shareParams = Tensor(DType::F32, share);
  shareGrads = Tensor(DType::F32, share);
  shareStates.assign(stateKinds.size(), Tensor(DType::F32, share));
  chunkParams = Tensor(DType::F32, {chunk});
  chunkGrads = Tensor(DType::F32, {chunk});
  chunkStates.assign(stateKinds.size(), Tensor(DType::F32, {chunk}));
  if (!spec.updateSlice.inPlace) {
    chunkOutParams = Tensor(DType::F32, {chunk});
    chunkOutStates.assign(stateKinds.size(), Tensor(DType::F32, {chunk}));
  }
  shardFlat.resize(static_cast<size_t>(
      std::accumulate(sizes.begin(), sizes.end(), int64_t(0))));
}

/// The tensors of this rank's share, for the device's reservation.
std::vector<const Tensor *> Trainer::shareTensors() const {
  std::vector<const Tensor *> out;
  if (!sharded)
    return out;
  for (const Tensor *t :
       {&shareParams, &shareGrads, &chunkParams, &chunkGrads, &chunkOutParams})
    out.push_back(t);
  for (const std::vector<Tensor> *set :
       {&shareStates, &chunkStates, &chunkOutStates})
    for (const Tensor &t : *set)
      out.push_back(&t);
  return out;
}

/// Each rank's optimizer state in bytes.
std::vector<int64_t> Trainer::optimizerBytes() const {
  std::vector<int64_t> bytes(ranks, 0);
  for (int r = 0; r < ranks; ++r)
    if (sharded)
      bytes[r] = int64_t(4) * shards.counts()[r] *
                 static_cast<int64_t>(stateKinds.size());
    else
      for (const ValueSpec &v : spec.update.args)
        bytes[r] += v.role == Role::State ? 4 * elements(v.shape) : 0;
  return bytes;
}

namespace {

/// Copies `count` floats where the entry points see them (on the device,
/// queued in order).
void copyFloats(float *to, const float *from, int64_t count) {
  if (Device *device = activeDevice())
    device->copy(to, from, static_cast<size_t>(count) * sizeof(float));
  else
    std::copy_n(from, count, to);
}

} // namespace

/// The pieces of the tensors of `of`, where the entry points see them, and
/// their owners.
std::vector<DeviceFloats>
Trainer::shardBuffers(std::map<std::string, Tensor> &of,
                      std::vector<int> &owners) {
  std::vector<DeviceFloats> buffers;
  owners.clear();
  for (const ShardPlan::Piece &piece : shards.pieces()) {
    float *base = seen(of.at(trained[piece.param]->name));
    buffers.push_back({base + piece.begin, static_cast<size_t>(piece.count)});
    owners.push_back(piece.owner);
  }
  return buffers;
}

/// The sum of the squares of this rank's own gradients `buffers` (of
/// `owners`): on a GPU a kernel adds them in fixed lanes, in place.
double Trainer::ownSquares(const std::vector<DeviceFloats> &buffers,
                           const std::vector<int> &owners) {
  double mine = 0;
  if (activeDevice() && mass_device_sum_squares) {
    constexpr int64_t kLanes = 16384;
    squareLanes.resize(kLanes);
    size_t bytes = kLanes * sizeof(double);
    auto *lanes = static_cast<double *>(
        deviceBuffer(squareLanes.data(), bytes, Sync::Never));
    activeDevice()->zero(lanes, bytes);
    for (size_t k = 0; k < buffers.size(); ++k)
      if (owners[k] == rank)
        mass_device_sum_squares(buffers[k].data,
                                static_cast<int64_t>(buffers[k].count), lanes,
                                kLanes);
    activeDevice()->download(squareLanes.data(), lanes, bytes);
    for (double lane : squareLanes)
      mine += lane;
    return mine;
  }
  // Host memory (the host mirror's too), in 8 lanes that vectorise, added
  // in a fixed order.
  constexpr size_t kLanes = 8;
  double lanes[kLanes] = {};
  for (size_t k = 0; k < buffers.size(); ++k) {
    if (owners[k] != rank)
      continue;
    const float *x = buffers[k].data;
    size_t n = buffers[k].count, i = 0;
    for (; i + kLanes <= n; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l)
        lanes[l] += static_cast<double>(x[i + l]) * x[i + l];
    for (; i < n; ++i)
      lanes[i % kLanes] += static_cast<double>(x[i]) * x[i];
  }
  for (double lane : lanes)
    mine += lane;
  return mine;
}

/// Sharded: each owner gets the sums of its pieces of the gradients (a
/// reduce-scatter, or NCCL's reduces on a GPU); the others' pieces it
/// zeroes; then the step's outputs and the squares of each rank's pieces
/// are summed.
void Trainer::reduceShards(int64_t count, int64_t local, const char *what) {
  std::vector<int> owners;
  std::vector<DeviceFloats> buffers = shardBuffers(grads, owners);
  std::string error;
  Device *device = activeDevice();
  if (device)
    device->reduceToOwners(buffers, owners, what);
  else if (!reduceToOwnersOnHost(buffers, owners, what, shardFlat, error))
    fail(error);
  for (size_t k = 0; k < buffers.size(); ++k) {
    if (owners[k] == rank)
      continue;
    if (device)
      device->zero(buffers[k].data, buffers[k].count * sizeof(float));
    else
      std::fill_n(buffers[k].data, buffers[k].count, 0.0f);
  }
  double mine = ownSquares(buffers, owners);
  std::vector<double> sums;
  outputsAsSums(local, sums, outputs);
  sums.push_back(mine);
  reducedBytes = shardFlat.size() * sizeof(float) + sums.size() * 8;
  if (!comm::sum(sums.data(), sums.size(), what, error))
    fail(error);
  outputsFromSums(sums.data(), count);
  squaresEverywhere = sums.back();
  squaresAll.f[0] = static_cast<float>(squaresEverywhere);
}

/// With clipping, when this rank holds every gradient summed (replicas):
/// their squares as the unsharded update adds them (grad_squares), so
/// that the clipping is one process's to the bit.
void Trainer::allSquares() {
  if (!spec.gradSquares.present || !mass_grad_squares)
    return;
  size_t index = 0;
  for (const ValueSpec &v : spec.gradSquares.args)
    squaresCall.bind(index++, grads.at(v.name));
  squaresCall.bind(index, squaresAll);
  squaresCall.invoke(mass_grad_squares);
  squaresEverywhere = squaresAll.f[0];
}

/// This rank's share of the update: its pieces of the parameters and
/// gradients packed, update_slice over each run of one rate, and the new
/// values back into the parameters.
void Trainer::updateShare() {
  for (const ShardPlan::Piece &piece : shards.pieces())
    if (piece.owner == rank) {
      const std::string &name = trained[piece.param]->name;
      copyFloats(seen(shareParams) + piece.at,
                 seen(params.at(name)) + piece.begin, piece.count);
      copyFloats(seen(shareGrads) + piece.at,
                 seen(grads.at(name)) + piece.begin, piece.count);
    }
  for (const ShardPlan::Chunk &c : shards.chunks())
    updateChunk(c);
  for (const ShardPlan::Piece &piece : shards.pieces())
    if (piece.owner == rank) {
      Tensor &t = params.at(trained[piece.param]->name);
      copyFloats(seen(t) + piece.begin, seen(shareParams) + piece.at,
                 piece.count);
    }
  for (Tensor &t : shareStates)
    deviceWrote(t.data(), t.bytes(), false);
}

/// One call of update_slice over `c`: in place over the share itself, or,
/// for fewer values than it takes, over a copy of them in the chunk
/// buffers (whose other values are left from before: their results are
/// not used). Results not written in place come back from chunkOut*.
void Trainer::updateChunk(const ShardPlan::Chunk &c) {
  bool whole = c.count == static_cast<int64_t>(chunkParams.f.size());
  bool inPlace = spec.updateSlice.inPlace;
  auto argument = [&](Tensor &share, Tensor &chunk) {
    float *at = seen(share) + c.at;
    if (whole)
      return at;
    copyFloats(seen(chunk), at, c.count);
    return seen(chunk);
  };
  float *param = argument(shareParams, chunkParams);
  float *grad = argument(shareGrads, chunkGrads);
  std::vector<float *> state;
  for (size_t k = 0; k < stateKinds.size(); ++k)
    state.push_back(argument(shareStates[k], chunkStates[k]));
  float *newParam = inPlace ? param : seen(chunkOutParams);
  std::vector<float *> newState = state;
  for (size_t k = 0; k < stateKinds.size() && !inPlace; ++k)
    newState[k] = seen(chunkOutStates[k]);
  // The rate: the compiled update multiplies the rate by the scale in f32.
  sliceLr.f[0] =
      c.scale == 1 ? hyperLr.f[0] : hyperLr.f[0] * static_cast<float>(c.scale);
  std::vector<int64_t> shape{static_cast<int64_t>(chunkParams.f.size())};
  size_t index = 0, states = 0;
  for (const ValueSpec &v : spec.updateSlice.args) {
    if (v.role == Role::Param)
      sliceCall.bindResident(index, param, shape);
    else if (v.role == Role::Grad)
      sliceCall.bindResident(index, grad, shape);
    else if (v.role == Role::State)
      sliceCall.bindResident(index, state[states++], shape);
    else if (v.name == abi::kLr)
      sliceCall.bind(index, sliceLr);
    else if (v.name == abi::kGradSquares)
      sliceCall.bind(index, squaresAll);
    else if (v.name == abi::kBiasCorrection1)
      sliceCall.bind(index, hyperBc1);
    else if (v.name == abi::kBiasCorrection2)
      sliceCall.bind(index, hyperBc2);
    ++index;
  }
  states = 0;
  for (const ValueSpec &v : spec.updateSlice.results)
    sliceCall.bindResident(
        index++, v.role == Role::Param ? newParam : newState[states++], shape);
  sliceCall.invoke(mass_update_slice);
  // Back into the share, where the call did not write it.
  auto back = [&](Tensor &share, float *result) {
    float *at = seen(share) + c.at;
    if (result != at)
      copyFloats(at, result, c.count);
  };
  back(shareParams, newParam);
  for (size_t k = 0; k < stateKinds.size(); ++k)
    back(shareStates[k], newState[k]);
}

void Trainer::gatherParams() {
  std::string what = "the parameters of step " + std::to_string(step + 1);
  std::vector<int> owners;
  std::vector<DeviceFloats> buffers = shardBuffers(params, owners);
  std::string error;
  if (Device *device = activeDevice())
    device->gatherFromOwners(buffers, owners, what.c_str());
  else if (!gatherFromOwnersOnHost(buffers, owners, what.c_str(), shardFlat,
                                   error))
    fail(error);
  // On a device every parameter is now newer there than on the host.
  for (const ValueSpec *v : trained) {
    Tensor &t = params.at(v->name);
    deviceWrote(t.data(), t.bytes(), false);
  }
}

/// Every rank's optimizer state, on rank 0 (empty elsewhere), for a
/// checkpoint: each kind's share in the flat vector's order, gathered.
std::map<std::string, Tensor> Trainer::gatherStates() {
  std::map<std::string, Tensor> all;
  std::string error;
  for (size_t k = 0; k < stateKinds.size(); ++k) {
    Tensor &share = shareStates[k];
    fetch(share);
    for (const ShardPlan::Piece &piece : shards.pieces())
      if (piece.owner == rank)
        std::copy_n(share.f.begin() + piece.at, piece.count,
                    shardFlat.begin() + shards.offset(piece.param) +
                        piece.begin);
    std::string what =
        "the optimizer state (" + stateKinds[k] + ") for a checkpoint";
    if (!comm::gather(shardFlat.data(), shards.counts(), what.c_str(), error))
      fail(error);
    if (rank != 0)
      continue;
    for (size_t p = 0; p < trained.size(); ++p) {
      Tensor t(DType::F32, trained[p]->shape);
      std::copy_n(shardFlat.begin() + shards.offset(p), t.f.size(),
                  t.f.begin());
      all[trained[p]->name + "." + stateKinds[k]] = std::move(t);
    }
  }
  return all;
}

/// Sharded --resume: this rank's pieces of every state in `state`.
void Trainer::loadShare(const NamedTensors &state, const std::string &path) {
  for (size_t k = 0; k < stateKinds.size(); ++k) {
    for (const ShardPlan::Piece &piece : shards.pieces()) {
      if (piece.owner != rank)
        continue;
      const ValueSpec &v = *trained[piece.param];
      std::string name = v.name + "." + stateKinds[k];
      auto it = state.tensors.find(name);
      if (it == state.tensors.end() || it->second.shape != v.shape)
        fail("'" + path + "' has no usable '" + name + "'");
      std::copy_n(it->second.f.begin() + piece.begin, piece.count,
                  shareStates[k].f.begin() + piece.at);
    }
    hostWrote(shareStates[k]);
  }
}

void Trainer::reduceTotals(Totals &t, const char *what) {
  // Every output's total, in one order on every rank (a rank that saw no
  // batch has none yet).
  std::vector<double> sums;
  for (const auto &[name, value] : outputs)
    sums.push_back(t.sum[name]);
  sums.push_back(t.samples);
  std::string error;
  if (!comm::sum(sums.data(), sums.size(), what, error))
    fail(error);
  size_t k = 0;
  for (const auto &[name, value] : outputs)
    t.sum[name] = sums[k++];
  t.samples = sums[k];
}

//===----------------------------------------------------------------------===//
// The loop
//===----------------------------------------------------------------------===//

/// What the program does, chosen once from the options (in this order of
/// precedence).
enum class Mode {
  DumpParams,
  Generate,
  DumpGrads,
  Benchmark,
  Ensemble,
  Predict,
  Evaluate,
  Train
};

Mode chooseMode(const Options &o) {
  if (o.dumpParams)
    return Mode::DumpParams;
  if (o.generate > 0)
    return Mode::Generate;
  if (!o.dumpGrads.empty())
    return Mode::DumpGrads;
  if (o.benchmark > 0)
    return Mode::Benchmark;
  if (!o.ensemble.empty())
    return Mode::Ensemble;
  if (!o.dumpPredictions.empty())
    return Mode::Predict;
  if (o.evalOnly)
    return Mode::Evaluate;
  return Mode::Train;
}

int Trainer::run() {
  Mode mode = chooseMode(opts);
  if (ranks > 1 && mode != Mode::Train)
    fail("under mpirun only training runs on " + std::to_string(ranks) +
         " processes; --dump-params, --generate, --dump-grads, --benchmark, "
         "--ensemble, --dump-predictions and --eval-only run as one process");
  configure();
  allocate();
  if (ranks > 1 || opts.replicas > 0)
    checkParallel();
  if (opts.replicas > 0)
    startReplicas();
  planBuckets();
  if (mode == Mode::DumpParams) {
    dumpParams();
    return 0;
  }
  initParams();
  loadStartingWeights();
  if (mode == Mode::Generate) {
    generate();
    return 0;
  }

  if (mode == Mode::DumpGrads || mode == Mode::Benchmark || mode == Mode::Train)
    trainData = loadData(cfg()["train_data"], opts.train, "train");
  if (mode == Mode::DumpGrads) {
    dumpGrads();
    return 0;
  }
  if (mode == Mode::Benchmark)
    return benchmark();

  haveVal = !opts.val.empty() || cfg().has("val_data");
  if (haveVal)
    valData = loadData(cfg()["val_data"], opts.val, "val");
  else if (mode != Mode::Train)
    fail(std::string(mode == Mode::Ensemble  ? "--ensemble"
                     : mode == Mode::Predict ? "--dump-predictions"
                                             : "--eval-only") +
         " needs validation data (val_data or --val)");
  if (mode == Mode::Predict || mode == Mode::Evaluate)
    requireWeights(mode == Mode::Predict ? "--dump-predictions"
                                         : "--eval-only");
  if (!opts.log.empty() && rank == 0) {
    log.open(opts.log, std::ios::app);
    if (!log)
      fail("cannot open the log '" + opts.log + "'");
  }
  switch (mode) {
  case Mode::Ensemble:
    return ensemble();
  case Mode::Predict:
    dumpPredictions();
    return 0;
  case Mode::Evaluate:
    evaluateOnly();
    return 0;
  default:
    return train();
  }
}

/// --init, or the train block's init = load(path, skip: [...]).
void Trainer::loadStartingWeights() {
  std::vector<std::string> skip;
  std::string path = opts.init;
  const Json &init = cfg()["init"];
  if (init.isObject()) {
    for (const Json &g : init["skip"].items())
      skip.push_back(g.str());
    if (path.empty())
      path = init.stringOr("path", "");
  }
  if (!path.empty()) {
    loadInit(path, skip);
    loadedWeights = true;
  }
}

void Trainer::requireWeights(const char *what) const {
  if (!loadedWeights)
    fail(std::string(what) +
         " needs trained weights: give --init FILE.safetensors (or init = "
         "load(...) in the train block)");
}

void Trainer::evaluateOnly() {
  Totals val = evaluate(valData);
  std::printf("eval:%s\n", describe(val).c_str());
  for (const auto &[task, weight] : spec.tasks) {
    Json e = summarize(val, task);
    e.set("event", Json::string("eval"));
    e.set("split", Json::string("val"));
    e.set("task", Json::string(task));
    logEvent(e);
  }
}

//===----------------------------------------------------------------------===//
// Training
//===----------------------------------------------------------------------===//

/// The rounds: each trains for an epoch (or `val_every` steps), validates,
/// logs, keeps its checkpoints and may stop early. Training ends after the
/// epochs, or after `steps` optimizer steps.
int Trainer::train() {
  std::vector<int64_t> rows = shardRows();
  int64_t stepsPerEpoch =
      (static_cast<int64_t>(rows.size()) + batch - 1) / batch;
  int64_t total = steps > 0 ? steps : stepsPerEpoch * epochs;
  int64_t roundSteps = valEvery > 0 ? valEvery : stepsPerEpoch;
  int64_t rounds = (total + roundSteps - 1) / roundSteps;
  std::string error;
  if (!Schedule::fromConfig(cfg()["schedule"], lr, total, schedule, error))
    fail(error);
  std::vector<double> weights = balancedWeights(rows);
  if (!opts.resume.empty()) {
    resume(opts.resume);
    // The interrupted epoch's order, drawn again from its generator.
    std::mt19937_64 now = rng;
    rng = orderRng;
    drawOrder(order, rows, weights);
    rng = now;
    if (position > order.size())
      fail("'" + opts.resume + "/last.state.safetensors' is at row " +
           std::to_string(position) + " of an epoch of " +
           std::to_string(order.size()));
  }
  bool checkpointing = cfg().has("checkpoint") || !opts.checkpointDir.empty();
  bool keepBest = cfg()["checkpoint"].stringOr("kind", "") == "best";
  int64_t patience = static_cast<int64_t>(cfg()["early_stop"].numberOr("n", 0));

  // The curves so far (none, or a resumed run's): a report that cannot be
  // written fails now, not after the first round.
  writeReport();
  // How long the program took to be ready: the data opened and checked,
  // the parameters initialised or loaded.
  logProgramEvent("ready");

  for (int64_t round = startRound; round <= rounds && step < total; ++round) {
    auto start = std::chrono::steady_clock::now();
    double lr = schedule.at(step);
    Totals seen =
        trainRound(std::min(roundSteps, total - step), rows, weights, lr);
    double trainSeconds = secondsSince(start);
    Totals val = haveVal ? evaluate(valData) : Totals{};
    logRound(round, rounds, seen, val, lr, secondsSince(start), trainSeconds);

    bool improved = haveVal && recordValidation(val);
    // Rank 0 alone writes checkpoints: every rank holds the same weights
    // (and, sharded, rank 0 gathers the optimizer state first).
    if (checkpointing) {
      std::map<std::string, Tensor> gathered;
      if (sharded)
        gathered = gatherStates();
      if (rank == 0) {
        if (keepBest && improved)
          writeCheckpoint("best.safetensors", false, round);
        writeCheckpoint("last.safetensors", true, round,
                        sharded ? &gathered : nullptr);
      }
    }
    if (patience > 0 && sinceBest >= patience) {
      if (rank == 0)
        std::printf("early stop: no improvement in %lld %s\n",
                    static_cast<long long>(patience),
                    byStep() ? "validations" : "epochs");
      break;
    }
  }
  logProgramEvent("end");
  return 0;
}

/// This process's shard of the training rows.
std::vector<int64_t> Trainer::shardRows() const {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < trainData.rows; ++r)
    if (r % opts.shards == opts.shard)
      rows.push_back(r);
  if (rows.empty())
    fail("shard " + std::to_string(opts.shard) + "/" +
         std::to_string(opts.shards) + " holds no training rows");
  return rows;
}

/// With balanced sampling, each row's weight, 1 / (rows of its class);
/// otherwise none.
std::vector<double>
Trainer::balancedWeights(const std::vector<int64_t> &rows) const {
  std::vector<double> weights;
  const Json &sampling = cfg()["sampling"];
  if (sampling.stringOr("kind", "shuffle") != "balanced")
    return weights;
  const Tensor &labels = trainData.columns.at(sampling.stringOr("label", ""));
  std::map<int32_t, double> counts;
  for (int64_t r : rows)
    counts[labels.ints()[r * labels.rowSize()]] += 1;
  for (int64_t r : rows)
    weights.push_back(1.0 / counts[labels.ints()[r * labels.rowSize()]]);
  return weights;
}

/// The epoch's rows: a shuffle of `rows`, or with `weights` as many draws
/// with replacement.
void Trainer::drawOrder(std::vector<int64_t> &order,
                        const std::vector<int64_t> &rows,
                        const std::vector<double> &weights) {
  if (weights.empty()) {
    order = rows;
    std::shuffle(order.begin(), order.end(), rng);
    return;
  }
  order.resize(rows.size());
  std::discrete_distribution<size_t> d(weights.begin(), weights.end());
  for (int64_t &r : order)
    r = rows[d(rng)];
}

/// The next rows of the epoch's order (a new order when one runs out),
/// gathered into `into` and augmented; returns how many.
int64_t Trainer::drawBatch(std::map<std::string, Tensor> &into,
                           const std::vector<int64_t> &rows,
                           const std::vector<double> &weights) {
  if (position >= order.size()) {
    orderRng = rng;
    drawOrder(order, rows, weights);
    position = 0;
    ++epoch;
  }
  int64_t n = std::min<int64_t>(batch, order.size() - position);
  // Under mpirun each rank reads and augments its slice alone (the
  // generator still draws for every sample, so the slices make up one
  // process's batch).
  int64_t first = 0;
  int64_t mine = ranks > 1 ? sliceOf(n, first) : n;
  gather(into, trainData, order, static_cast<int64_t>(position), n, first,
         first + mine);
  position += n;
  for (const Augmentation &a : augmentations)
    augment(a, into[a.input], n, rng, first, first + mine);
  return n;
}

/// The second set of batch buffers, and both page-locked, once.
void Trainer::pinBatches() {
  if (!nextBatch.empty())
    return;
  nextBatch = batchBuffers;
  for (auto *set : {&batchBuffers, &nextBatch})
    for (auto &entry : *set) {
      Tensor &t = entry.second;
      activeDevice()->pin(t.data(), (t.f.size() + t.i.size()) * 4);
    }
}

/// Whether the CPU draws the next batch on a second thread: --prefetch,
/// --no-prefetch, or by default when the step's threads leave a core free.
/// (On a core the step uses, the thread would stall the step's whole team
/// at its next barrier whenever it ran: measured, spec 02 at two threads
/// on two cores, 8% slower.)
bool Trainer::prefetchInBackground() const {
  if (opts.prefetch != 0)
    return opts.prefetch > 0;
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  int cores = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0
                  ? CPU_COUNT(&cpus)
                  : static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  int threads = omp_get_max_threads ? omp_get_max_threads() : 1;
  return threads < cores;
}

/// `count` steps, each on the next rows of the epoch's order (a new
/// order when one runs out); `lr` ends as the last step's rate. The next
/// batch is drawn (gathered and augmented) while a step runs: on the CPU
/// by a background thread (see prefetchInBackground), on a device by the host
/// while the device computes, then copied up on the device's second
/// stream. Either way the generator's draws keep the order they have
/// without prefetching (a batch's augmentation, the step's task choice and
/// dropout seed, the next batch's augmentation), so training is
/// bit-identical with and without it.
Trainer::Totals Trainer::trainRound(int64_t count,
                                    const std::vector<int64_t> &rows,
                                    const std::vector<double> &weights,
                                    double &lr) {
  bool tty = rank == 0 && ::isatty(2);
  const bool ahead = activeDevice() != nullptr;
  const bool background = !ahead && count > 1 && prefetchInBackground();
  if (ahead)
    pinBatches();
  else if (background && nextBatch.empty())
    nextBatch = batchBuffers;
  Totals seen;
  int64_t n = 0, nextRows = 0;
  for (int64_t s = 0; s < count; ++s) {
    if (nextRows > 0) {
      std::swap(batchBuffers, nextBatch);
      n = nextRows, nextRows = 0;
    } else {
      n = drawBatch(batchBuffers, rows, weights);
    }
    setTaskWeights();
    const int64_t local = ranks > 1 || replicated() ? shareStep(n) : n;
    prepareStep(local);
    const int64_t stepEpoch = epoch;
    if (background && s + 1 < count)
      prefetcher.start([&] { nextRows = drawBatch(nextBatch, rows, weights); });
    // A rank with no rows in a short last batch adds nothing; it still
    // runs the step when the step sums over the processes inside (batch
    // norm's statistics), to take part.
    const bool bucketed = buckets.buckets() > 0;
    if (bucketed)
      buckets.arm(local == 0, stepWhat());
    if (local > 0 || !spec.buffers.empty() || replicated())
      runStep(!ahead);
    if (local == 0 && !replicated()) {
      // The buckets add zeros in this rank's place.
      if (!bucketed) {
        for (auto &entry : grads)
          std::fill(entry.second.f.begin(), entry.second.f.end(), 0.0f);
        hostWrote(grads);
      }
      for (const ValueSpec &v : spec.trainStep.results)
        if (v.role == Role::Output)
          outputs[v.name].f[0] = 0;
    }
    if (ahead) {
      if (s + 1 < count) {
        nextRows = drawBatch(nextBatch, rows, weights);
        // This rank's slice of it (the step binds those rows).
        int64_t first = 0;
        int64_t mine = ranks > 1 ? sliceOf(nextRows, first) : nextRows;
        for (auto &entry : nextBatch) {
          Tensor &t = entry.second;
          size_t row = static_cast<size_t>(t.rowSize()) * 4;
          uploadAhead(static_cast<char *>(t.data()) + first * row, mine * row);
        }
      }
      deviceSynchronize();
    }
    prefetcher.wait();
    if (ranks > 1 || replicated())
      reduceStep(n, local);
    std::string nonfinite = nonfiniteStep(stepEpoch);
    if (!nonfinite.empty() && !opts.skipNonfinite)
      fail(nonfinite + " (--skip-nonfinite skips such steps)");
    lr = schedule.at(step);
    if (nonfinite.empty()) {
      accumulate(seen, n);
      update();
    } else {
      // The step counts (its batch is spent, the schedule moves on) but
      // changes nothing: the buffers it wrote are put back.
      swapBuffers();
      ++skippedSteps, ++skippedInRound;
      if (rank == 0)
        std::fprintf(stderr, "warning: %s; skipped\n", nonfinite.c_str());
    }
    ++step;
    if (tty)
      showProgress(s + 1, count);
  }
  if (tty)
    std::fprintf(stderr, "\r%*s\r", 60, "");
  return seen;
}

/// The first parameter whose gradient holds NaN or Inf, or "". On a GPU
/// the gradients stay there: a kernel per gradient sets its flag, and only
/// the flags come down. (The host mirror of a CPU program checks only the
/// losses.)
std::string Trainer::firstNonfiniteGradient() {
  if (activeDevice()) {
    if (!mass_device_nonfinite || spec.params.empty())
      return "";
    Tensor &flags = nonfiniteFlags;
    if (flags.i.size() != spec.params.size())
      flags = Tensor(DType::I32, {static_cast<int64_t>(spec.params.size())});
    std::fill(flags.i.begin(), flags.i.end(), 0);
    auto *onDevice = static_cast<int32_t *>(
        deviceBuffer(flags.data(), flags.bytes(), Sync::Always));
    for (size_t k = 0; k < spec.params.size(); ++k) {
      Tensor &g = grads.at(spec.params[k].name);
      const auto *x = static_cast<const float *>(
          deviceBuffer(g.data(), g.bytes(), Sync::Never));
      mass_device_nonfinite(x, g.numel(), onDevice + k);
    }
    activeDevice()->download(flags.data(), onDevice, flags.bytes());
    for (size_t k = 0; k < spec.params.size(); ++k)
      if (flags.i[k])
        return spec.params[k].name;
    return "";
  }
  for (const ValueSpec &v : spec.params) {
    const std::vector<float> &g = grads.at(v.name).f;
    if (!allFinite(g.data(), g.size()))
      return v.name;
  }
  return "";
}

std::string Trainer::nonfiniteStep(int64_t stepEpoch) {
  std::string why;
  for (size_t k = 0; k < spec.tasks.size(); ++k) {
    float loss = taskLosses[k]->f[0];
    if (!std::isfinite(loss)) {
      why = "the loss of task '" + spec.tasks[k].first + "' is " +
            (std::isnan(loss) ? "NaN" : "infinite");
      break;
    }
  }
  std::string grad = firstNonfiniteGradient();
  // Sharded, a rank sees its own gradients alone; their squares, summed
  // over the ranks, tell every rank that one is not finite.
  if (grad.empty() && sharded && !std::isfinite(squaresEverywhere))
    why += (why.empty() ? "" : "; ") +
           std::string("a gradient that another process holds is not finite");
  else if (!grad.empty())
    why += (why.empty() ? "" : "; ") +
           std::string("the first non-finite gradient is that of '") + grad +
           "'";
  if (why.empty())
    return "";
  return "step " + std::to_string(step + 1) + " (epoch " +
         std::to_string(stepEpoch) + "): " + why;
}

/// The progress bar on a terminal.
void Trainer::showProgress(int64_t done, int64_t count) const {
  int width = 30, filled = static_cast<int>(width * done / count);
  std::fprintf(stderr, "\r  epoch %lld [%s%s] %lld/%lld ",
               static_cast<long long>(epoch), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(),
               static_cast<long long>(done), static_cast<long long>(count));
}

/// The round's summary line and its JSON events, one per task and split:
/// "epoch" events (numbered by epoch) or, when rounds count steps, "step"
/// events (with the step and the epoch).
void Trainer::logRound(int64_t round, int64_t rounds, const Totals &seen,
                       const Totals &val, double lr, double seconds,
                       double trainSeconds) {
  if (rank != 0) { // rank 0 alone logs
    skippedInRound = 0;
    reduceSeconds = 0;
    return;
  }
  if (byStep())
    std::printf("step %lld/%lld (epoch %lld)  train:%s",
                static_cast<long long>(step),
                static_cast<long long>(steps > 0 ? steps : rounds * valEvery),
                static_cast<long long>(epoch), describe(seen).c_str());
  else
    std::printf("epoch %lld/%lld  train:%s", static_cast<long long>(round),
                static_cast<long long>(rounds), describe(seen).c_str());
  if (haveVal)
    std::printf("  val:%s", describe(val).c_str());
  std::printf("  lr %.3g  %.1fs (%.0f samples/s)", lr, seconds,
              seen.samples / std::max(trainSeconds, 1e-9));
  if (skippedInRound > 0)
    std::printf("  skipped %lld non-finite step%s",
                static_cast<long long>(skippedInRound),
                skippedInRound == 1 ? "" : "s");
  std::printf("\n");
  std::fflush(stdout);
  for (const auto &[task, weight] : spec.tasks)
    for (bool isVal : {false, true}) {
      if (isVal && !haveVal)
        continue;
      Json e = Json::object();
      e.set("event", Json::string(byStep() ? "step" : "epoch"));
      if (byStep())
        e.set("step", Json::number(static_cast<double>(step)));
      e.set("epoch",
            Json::number(static_cast<double>(byStep() ? epoch : round)));
      e.set("split", Json::string(isVal ? "val" : "train"));
      e.set("task", Json::string(task));
      Json metrics = summarize(isVal ? val : seen, task);
      for (const auto &[k, v] : metrics.members()) {
        e.set(k, v);
        report.add(static_cast<double>(byStep() ? step : round), task, k,
                   isVal ? "val" : "train", v.num());
      }
      e.set("lr", Json::number(lr));
      e.set("seconds", Json::number(seconds));
      if (!isVal && opts.skipNonfinite)
        e.set("skipped_steps",
              Json::number(static_cast<double>(skippedInRound)));
      // Under mpirun: the processes, the bytes each step's all-reduce sums
      // (gradients and outputs) and the round's seconds in it.
      if (!isVal && ranks > 1) {
        e.set("processes", Json::number(ranks));
        e.set("allreduce_bytes",
              Json::number(static_cast<double>(reducedBytes)));
        e.set("allreduce_seconds", Json::number(reduceSeconds));
      }
      logEvent(e);
    }
  skippedInRound = 0;
  reduceSeconds = 0;
  writeReport();
}

/// --report: the curves so far, redrawn after each round (atomically, so
/// that a browser never shows half a picture).
void Trainer::writeReport() const {
  if (opts.report.empty() || rank != 0)
    return;
  int64_t count = 0;
  for (const ValueSpec &v : spec.params)
    count += elements(v.shape);
  // The count with thousands separated: 269,322.
  std::string digits = std::to_string(count), grouped;
  for (size_t k = 0; k < digits.size(); ++k)
    grouped += (k > 0 && (digits.size() - k) % 3 == 0 ? "," : "") +
               std::string(1, digits[k]);
  std::string title = spec.name + " (" + grouped + " parameters, batch " +
                      std::to_string(batch) + ")";
  std::string error;
  if (!writeFileAtomically(
          opts.report, report.svg(title, byStep() ? "step" : "epoch"), error))
    fail(error);
}

/// Compares the monitored validation value with the best so far; true when
/// it improved.
bool Trainer::recordValidation(const Totals &val) {
  double value = monitored(val);
  bool improved =
      std::isnan(best) || (maximize() ? value > best : value < best);
  if (improved) {
    best = value;
    sinceBest = 0;
  } else {
    ++sinceBest;
  }
  return improved;
}

} // namespace

/// Under mpirun, the threads of each process unless --threads or
/// OMP_NUM_THREADS says: the cores mpirun bound it to, or else the
/// machine's cores shared among the job's processes on it.
static int64_t threadsPerRank() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  int mine = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus)
                                                             : cores;
  if (mine < cores)
    return mine;
  return std::max(1, cores / comm::localSize());
}

int mass::rt::run(const Options &options) {
  std::string error;
  if (!comm::start(options.commTimeout, error)) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  int64_t threads = options.threads;
  if (threads == 0 && comm::parallel() && !std::getenv("OMP_NUM_THREADS"))
    threads = threadsPerRank();
  if (threads > 0 && omp_set_num_threads)
    omp_set_num_threads(static_cast<int>(threads));
  // Under mpirun each rank's messages name it.
  std::string who =
      comm::parallel() ? "rank " + std::to_string(comm::rank()) + ": " : "";
  ModelSpec spec;
  if (!ModelSpec::parse(mass_model_descriptor, spec, error) ||
      !selectDevice(spec.target, error)) {
    std::fprintf(stderr, "error: %s%s\n", who.c_str(), error.c_str());
    return 1;
  }
  try {
    Trainer trainer(spec, options);
    return trainer.run();
  } catch (const Failure &f) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s%s\n", who.c_str(), f.message.c_str());
    return 1;
  }
}
