//===- Replicas.cpp - One split of the batch for any processes -----------===//

#include "Replicas.h"

#include "Comm.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" void omp_set_num_threads(int) __attribute__((weak));
extern "C" int omp_get_max_threads() __attribute__((weak));

using namespace mass::rt;

namespace {

/// The replicas' threads and their meeting points. Created once and never
/// destroyed: its threads wait for work until the process ends, and an
/// exit() anywhere (a failure) must not destroy what they wait on.
struct Group {
  int count = 1;
  int threadsEach = 1;

  std::mutex mutex;
  // run(): each call a generation; `busy` threads have yet to finish it.
  std::condition_variable work, finished;
  const std::function<void(int)> *job = nullptr;
  uint64_t generation = 0;
  int busy = 0;

  // sumInStep(): each replica's vector, the replicas that reached it, and
  // a generation per sum.
  std::condition_variable arrived, summed;
  std::vector<float *> slots;
  int waiting = 0;
  uint64_t sums = 0;
  std::vector<float> scratch;

  void loop(int index);
};

Group *gGroup = nullptr;
/// The replica the calling thread runs (0 on the main thread).
thread_local int tReplica = 0;

void Group::loop(int index) {
  tReplica = index;
  if (omp_set_num_threads)
    omp_set_num_threads(threadsEach);
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)> *body;
    {
      std::unique_lock<std::mutex> lock(mutex);
      work.wait(lock, [&] { return generation != seen; });
      seen = generation;
      body = job;
    }
    (*body)(index);
    std::lock_guard<std::mutex> lock(mutex);
    if (--busy == 0)
      finished.notify_one();
  }
}

} // namespace

void replicas::start(int count, int threadsEach) {
  gGroup = new Group;
  Group &g = *gGroup;
  g.count = count;
  g.threadsEach = std::max(1, threadsEach);
  g.slots.assign(static_cast<size_t>(count), nullptr);
  for (int j = 1; j < count; ++j)
    std::thread([j] { gGroup->loop(j); }).detach();
}

bool replicas::on() { return gGroup != nullptr; }

void replicas::run(const std::function<void(int)> &body) {
  Group &g = *gGroup;
  if (g.count == 1) {
    body(0);
    return;
  }
  int threads = omp_get_max_threads ? omp_get_max_threads() : 1;
  if (omp_set_num_threads)
    omp_set_num_threads(g.threadsEach);
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    g.job = &body;
    g.busy = g.count - 1;
    ++g.generation;
  }
  g.work.notify_all();
  body(0);
  {
    std::unique_lock<std::mutex> lock(g.mutex);
    g.finished.wait(lock, [&] { return g.busy == 0; });
  }
  if (omp_set_num_threads)
    omp_set_num_threads(threads);
}

void replicas::sumInStep(float *data, size_t count) {
  Group &g = *gGroup;
  const char *what = "batch norm's statistics over the replicas";
  std::unique_lock<std::mutex> lock(g.mutex);
  int j = tReplica;
  g.slots[static_cast<size_t>(j)] = data;
  uint64_t sum = g.sums;
  if (++g.waiting == g.count)
    g.arrived.notify_one();
  if (j != 0) {
    g.summed.wait(lock, [&] { return g.sums != sum; });
    return;
  }
  // Replica 0 (the thread that calls MPI) adds, once all wait.
  g.arrived.wait(lock, [&] { return g.waiting == g.count; });
  comm::addInTree(g.slots.data(), g.slots.size(), count);
  std::string error;
  if (!comm::sumInOrder(data, count, g.scratch, what, error))
    comm::fail(error);
  for (size_t k = 1; k < g.slots.size(); ++k)
    std::copy_n(data, count, g.slots[k]);
  g.waiting = 0;
  ++g.sums;
  g.summed.notify_all();
}
