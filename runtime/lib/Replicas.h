//===- Replicas.h - One split of the batch for any processes ---*- C++ -*-===//
//
// --replicas=R splits every global batch into R fixed parts, the replicas.
// Each runs the step on its own rows, and their gradients (and batch norm's
// statistics inside the step) are added in one fixed tree over the R
// replicas (comm::addInTree). The N processes of the job each run R / N of
// them, so what a replica computes and the order of every sum over the
// batch do not depend on N: N = 1, 2, 4 ... end with the same bits.
//
// A process's replicas run at once, each on a thread of its own, sharing the
// step's threads: batch norm sums over them inside the step.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_REPLICAS_H
#define MASS_RUNTIME_REPLICAS_H

#include <cstddef>
#include <functional>

namespace mass::rt::replicas {

/// Turns replicas on: `count` of them on this process, each step's
/// generated loops on `threadsEach` OpenMP threads.
void start(int count, int threadsEach);
/// Whether start() was called.
bool on();

/// Runs body(j) for this process's replicas j = 0 .. count - 1 (replica 0
/// on the calling thread) and returns when all are done.
void run(const std::function<void(int)> &body);

/// mass.sum_ranks inside a step on a replica: waits for this process's
/// other replicas to reach it, adds their `data` in the tree, then over the
/// processes, and every replica gets the sums. Failures end the job.
void sumInStep(float *data, size_t count);

} // namespace mass::rt::replicas

#endif // MASS_RUNTIME_REPLICAS_H
