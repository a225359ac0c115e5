//===- Comm.h - The processes that train together ---------------*- C++ -*-===//
//
// A training program is one process, or one rank of a job that mpirun
// launched. MPI is opened at run time, and only when mpirun started more
// than one process: a program run on its own loads no MPI library and pays
// nothing for it, and it runs on machines without MPI.
//
// Every collective waits at most the timeout that start() set: a rank that
// died or hangs makes the others fail with a message, never hang.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_COMM_H
#define MASS_RUNTIME_COMM_H

#include <cstddef>
#include <string>
#include <vector>

namespace mass::rt::comm {

/// Joins the job mpirun launched this process into, if any (its rank and
/// size come from the environment; with one process MPI is not opened).
/// Collectives give up after `timeoutSeconds`.
bool start(double timeoutSeconds, std::string &error);
/// This process's rank, and how many processes train together.
int rank();
int size();
inline bool parallel() { return size() > 1; }
/// The processes of this job that run on this machine (for the default
/// number of threads per process).
int localSize();
/// This process's index among those on its machine (for the GPU it uses).
int localRank();
/// The limit start() set on every wait, in seconds.
double timeout();

/// Sums `count` values over every rank, in place; every rank ends with the
/// same sums. `what` names the data in a timeout's message.
bool sum(float *data, size_t count, const char *what, std::string &error);
bool sum(double *data, size_t count, const char *what, std::string &error);
/// Starts summing `count` values over every rank, in place, and returns at
/// once: the sum runs while this rank computes, and is done when
/// finishSums returns. Every rank starts its sums (and calls the other
/// collectives) in the same order; `data` must stay untouched until then.
bool startSum(float *data, size_t count, const char *what, std::string &error);
/// Lets the started sums move on (MPI progresses them only inside its
/// calls); never blocks.
void progress();
/// Waits for every sum startSum started (each within the timeout).
bool finishSums(const char *what, std::string &error);
/// Blocks of a vector laid out rank after rank: counts[r] values of rank r,
/// from the sum of the counts before it. Every rank passes the whole
/// vector and the same counts.
/// Reduce-scatter: afterwards this rank's block holds that block's sums
/// over the ranks (the other blocks are left as they were or not).
bool reduceScatter(float *data, const std::vector<int> &counts,
                   const char *what, std::string &error);
/// All-gather: every rank's block, from that rank, lands on every rank.
bool allGather(float *data, const std::vector<int> &counts, const char *what,
               std::string &error);
/// Sums `count` values over every rank in one fixed order, the same bits on
/// every rank whatever MPI's algorithm: as addInTree adds the ranks'
/// vectors. Over a power of two of ranks, by recursive halving and doubling
/// (about twice the vector sent per rank, as a ring all-reduce); otherwise
/// the vectors are all gathered (into `scratch`, count times the ranks).
bool sumInOrder(float *data, size_t count, std::vector<float> &scratch,
                const char *what, std::string &error);
bool sumInOrder(double *data, size_t count, std::vector<double> &scratch,
                const char *what, std::string &error);
/// Gather to rank 0: every rank's block lands on rank 0 alone.
bool gather(float *data, const std::vector<int> &counts, const char *what,
            std::string &error);

/// Rank 0's `bytes` at `data` land on every rank.
bool broadcast(void *data, size_t bytes, const char *what, std::string &error);

/// The message for a wait on `what` that passed the timeout: asks the other
/// ranks (point to point, for one more timeout) and names those that do not
/// answer. For waits outside MPI (NCCL's on a GPU), after they gave up.
std::string noAnswer(const char *what);

/// Prints `error` for this rank and ends the job (exit status 1): for a
/// failure inside a step, which cannot carry an error back.
[[noreturn]] void fail(const std::string &error);

/// Ends the job on every rank with this exit status (after a failure on
/// this one); returns only when the program is not part of a job.
void abort(int status);
/// Leaves the job (at the end of a run).
void finish();

/// Adds the `count` values of parts[0..n) into parts[0] (the others are
/// overwritten) as a binary tree whose left half is the largest power of
/// two below n: ((p0 + p1) + (p2 + p3)) + p4. Its subtrees are the blocks
/// of k parts for any power of two k, so adding k parts first and then the
/// n / k block sums gives the same bits as adding all n at once.
template <typename T> void addInTree(T *const *parts, size_t n, size_t count) {
  if (n < 2)
    return;
  size_t half = 1;
  while (half * 2 < n)
    half *= 2;
  addInTree(parts, half, count);
  addInTree(parts + half, n - half, count);
  T *into = parts[0];
  const T *add = parts[half];
  for (size_t k = 0; k < count; ++k)
    into[k] += add[k];
}

} // namespace mass::rt::comm

#endif // MASS_RUNTIME_COMM_H
