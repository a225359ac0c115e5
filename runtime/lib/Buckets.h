//===- Buckets.h - Gradient sums that start during the backward pass -*- C++
//-*-===//
//
// Under mpirun the processes' gradients are summed between the backward
// pass and the update. The step reports each gradient final as soon as its
// last write is done (massc's mass-grad-ready pass calls
// mass_grad_ready(value)); the gradients, in that order, form buckets of
// about --bucket-mb, and each bucket's sum starts as its last gradient is
// reported, while the backward pass goes on (PyTorch DDP's buckets). The
// order comes from the model descriptor, the same on every process, so
// every process starts the same sums in the same order, including one
// that has no rows in a step: it adds zeros.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_BUCKETS_H
#define MASS_RUNTIME_BUCKETS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mass::rt {

class GradBuckets {
public:
  /// A gradient the step writes: its value index and its host buffer.
  struct Grad {
    int64_t value;
    float *data;
    size_t count;
  };

  /// Plans the buckets: consecutive runs of `grads` (in the order the step
  /// reports them) of at most `capBytes` each, a larger gradient alone.
  void plan(const std::vector<Grad> &grads, double capBytes);
  size_t buckets() const { return bucketEnd.size(); }
  /// The bytes summed per step.
  size_t bytes() const;
  /// The buckets started while a step still ran, over all steps so far
  /// (the others started after it: a rank with no rows, or a bucket that
  /// ends with the step's last gradient, starts with its report).
  size_t startedDuringSteps() const { return startedDuring; }

  /// Makes the next step's reports on this thread start the buckets. With
  /// `zeros` this process adds zeros (it has no rows in this step). `what`
  /// names the sums in messages.
  void arm(bool zeros, const std::string &what);
  /// The step's report: gradient `value` is final.
  void ready(int64_t value);
  /// Stops the reports, starts the buckets the step did not report (all of
  /// them when it did not run), waits for every sum and, on the CPU, puts
  /// the sums into the gradients (on a GPU they are summed in place).
  bool finish(std::string &error);

private:
  void startBucket(size_t b);

  std::vector<Grad> grads;         // in the order of the reports
  std::vector<size_t> bucketEnd;   // bucket b: grads [end of b - 1, end of b)
  std::vector<size_t> bucketOf;    // by position in `grads`
  std::vector<int64_t> positionOf; // value -> position, -1 for none
  std::vector<std::vector<float>> staging; // per bucket, on the CPU
  std::vector<size_t> waiting; // per bucket: its gradients not yet reported
  size_t started = 0;          // buckets started, in order
  size_t startedDuring = 0;
  bool zeros = false;
  std::string what;
};

} // namespace mass::rt

/// The step's report that the gradient of value index `value` is final
/// (mass-grad-ready's call): starts its bucket when it is the bucket's last.
/// Outside a step under mpirun (one process, a replica's thread, an
/// evaluation) it does nothing.
extern "C" void mass_grad_ready(int64_t value);

#endif // MASS_RUNTIME_BUCKETS_H
