//===- Train.h - The training program ---------------------------*- C++ -*-===//
#ifndef MASS_RUNTIME_TRAIN_H
#define MASS_RUNTIME_TRAIN_H

#include <cstdint>
#include <string>

namespace mass::rt {

/// Command-line settings; unset ones come from the model's train block.
struct Options {
  std::string train, val, log, report, checkpointDir, resume, init, ensemble,
      dumpGrads, dumpPredictions;
  int64_t dropoutSeed = -1; // with dumpGrads: dropout on, from this seed
  int64_t epochs = -1, batch = -1, seed = -1;
  int64_t steps = -1, valEvery = -1; // the train block's steps, val_every
  // --generate: sample this many tokens after the prompt, then exit.
  int64_t generate = 0;
  std::string prompt;
  double temperature = 1.0;
  int64_t topK = 0;    // 0: sample from every token
  int64_t threads = 0; // 0: OpenMP's default, one per core
  double lr = -1;
  int64_t shard = 0, shards = 1;
  // Under mpirun: how long a collective waits for the other ranks.
  double commTimeout = 120;
  // Under mpirun: each process holds and updates the optimizer state of
  // its share of the parameters (ZeRO stage 1).
  bool shardOptimizer = false;
  // Under mpirun: the gradients' sums start in buckets of at most this many
  // MiB as the step finishes them (0: all after the step).
  double bucketMb = 25;
  // --replicas: the global batch split into this many fixed parts, summed
  // in one order for any number of processes (0: off).
  int64_t replicas = 0;
  int64_t benchmark = 0; // time this many steps on the first batch
  bool benchmarkForwardOnly = false;
  bool evalOnly = false, dumpParams = false;
  bool allowNonfinite = false; // let NaN and Inf in the data through
  bool skipNonfinite = false;  // skip steps with a non-finite loss or gradient
  // 1: draw the next batch on a second thread while a step runs; -1: on the
  // training thread; 0: on a second thread when a core is free of the
  // step's threads.
  int prefetch = 0;
};

/// Runs the program; returns the exit status. Failures print one line,
/// "error: REASON", on stderr.
int run(const Options &options);

} // namespace mass::rt

#endif // MASS_RUNTIME_TRAIN_H
