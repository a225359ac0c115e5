//===- Comm.cpp - The processes that train together -----------------------===//
//
// MPI through dlopen: mpi.h gives the types and, for MPICH-like libraries,
// the handles; Open MPI's handles are addresses of the library's globals,
// looked up with dlsym like its functions. Collectives are nonblocking ones
// polled against a deadline.
//
//===----------------------------------------------------------------------===//

#include "Comm.h"
#include "Replicas.h"

#include "mass/abi.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if MASS_HAVE_MPI
#include <dlfcn.h>
// The C API alone (Open MPI's header would bring its C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

using namespace mass::rt;

namespace {

int gRank = 0, gSize = 1, gLocalSize = 1, gLocalRank = 0;
double gTimeout = 0;

/// An environment variable as a positive integer, or 0.
int envCount(const char *name) {
  const char *v = std::getenv(name);
  if (!v || !*v)
    return 0;
  char *end = nullptr;
  long n = std::strtol(v, &end, 10);
  return *end || n < 1 || n > (1 << 24) ? 0 : static_cast<int>(n);
}

#if MASS_HAVE_MPI

/// The MPI functions and handles the runtime uses.
struct Mpi {
  decltype(&MPI_Init_thread) initThread = nullptr;
  decltype(&MPI_Comm_rank) commRank = nullptr;
  decltype(&MPI_Comm_size) commSize = nullptr;
  decltype(&MPI_Comm_set_errhandler) setErrhandler = nullptr;
  decltype(&MPI_Iallreduce) iallreduce = nullptr;
  decltype(&MPI_Iallgatherv) iallgatherv = nullptr;
  decltype(&MPI_Igatherv) igatherv = nullptr;
  decltype(&MPI_Ibcast) ibcast = nullptr;
  decltype(&MPI_Test) test = nullptr;
  decltype(&MPI_Isend) isend = nullptr;
  decltype(&MPI_Irecv) irecv = nullptr;
  decltype(&MPI_Abort) abort = nullptr;
  decltype(&MPI_Finalize) finalize = nullptr;
  decltype(&MPI_Error_string) errorString = nullptr;
  MPI_Comm world{};
  MPI_Datatype f32{}, f64{}, i32{}, byte{};
  MPI_Op sum{};
  MPI_Errhandler errorsReturn{};
  MPI_Request requestNull{};
  bool running = false;
};
Mpi gMpi;

template <typename F>
bool resolve(void *library, const char *symbol, F &out, std::string &error) {
  out = reinterpret_cast<F>(dlsym(library, symbol));
  if (!out)
    error = std::string("the MPI library lacks ") + symbol;
  return out != nullptr;
}

/// A predefined handle: in Open MPI the address of a global of the library
/// (the header's macro would make the program link against it), elsewhere
/// the header's constant.
#ifdef OPEN_MPI
#define MASS_MPI_HANDLE(global, constant) dlsym(library, #global)
#else
#define MASS_MPI_HANDLE(global, constant) constant
#endif
template <typename H, typename V>
bool handle(V value, const char *global, H &out, std::string &error) {
  if (!value) {
    error = std::string("the MPI library lacks ") + global;
    return false;
  }
  out = (H)value;
  return true;
}
#define MASS_RESOLVE_HANDLE(global, constant, out)                             \
  handle(MASS_MPI_HANDLE(global, constant), #global, out, error)

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING + 1] = {};
  int length = 0;
  if (gMpi.errorString && gMpi.errorString(code, text, &length) == MPI_SUCCESS)
    return std::string(text, static_cast<size_t>(length));
  return "MPI error " + std::to_string(code);
}

bool openLibrary(std::string &error) {
  const char *name = std::getenv("MASS_MPI_LIBRARY");
  // Global: Open MPI's components, opened by the library itself, resolve
  // its symbols.
  void *library = nullptr;
  for (const char *candidate : {name, MASS_MPI_LIBRARY, MASS_MPI_LIBRARY_PATH})
    if (candidate && *candidate && !library)
      library = dlopen(candidate, RTLD_NOW | RTLD_GLOBAL);
  if (!library) {
    const char *why = dlerror();
    error = std::string("cannot open the MPI library ") +
            (name && *name ? name : MASS_MPI_LIBRARY) + " (" +
            (why ? why : "not found") +
            "); install Open MPI (Debian: openmpi-bin) or set MASS_MPI_LIBRARY";
    return false;
  }
  Mpi &m = gMpi;
  return resolve(library, "MPI_Init_thread", m.initThread, error) &&
         resolve(library, "MPI_Comm_rank", m.commRank, error) &&
         resolve(library, "MPI_Comm_size", m.commSize, error) &&
         resolve(library, "MPI_Comm_set_errhandler", m.setErrhandler, error) &&
         resolve(library, "MPI_Iallreduce", m.iallreduce, error) &&
         resolve(library, "MPI_Iallgatherv", m.iallgatherv, error) &&
         resolve(library, "MPI_Igatherv", m.igatherv, error) &&
         resolve(library, "MPI_Ibcast", m.ibcast, error) &&
         resolve(library, "MPI_Test", m.test, error) &&
         resolve(library, "MPI_Isend", m.isend, error) &&
         resolve(library, "MPI_Irecv", m.irecv, error) &&
         resolve(library, "MPI_Abort", m.abort, error) &&
         resolve(library, "MPI_Finalize", m.finalize, error) &&
         resolve(library, "MPI_Error_string", m.errorString, error) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_comm_world, MPI_COMM_WORLD, m.world) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_float, MPI_FLOAT, m.f32) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_double, MPI_DOUBLE, m.f64) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_int, MPI_INT, m.i32) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_byte, MPI_BYTE, m.byte) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_op_sum, MPI_SUM, m.sum) &&
         MASS_RESOLVE_HANDLE(ompi_mpi_errors_return, MPI_ERRORS_RETURN,
                             m.errorsReturn) &&
         MASS_RESOLVE_HANDLE(ompi_request_null, MPI_REQUEST_NULL,
                             m.requestNull);
}

/// After a collective timed out: the ranks that do not answer. Each rank
/// that times out sends every other a message and listens for theirs for
/// one more timeout: a live rank waiting in the same collective timed out
/// within one timeout of this one, and answers; a rank that died or hangs
/// does not.
std::string silentRanks() {
  constexpr int kTag = 7077;
  std::vector<MPI_Request> sends(gSize), receives(gSize);
  std::vector<int> mine(gSize, gRank), theirs(gSize, -1);
  std::vector<char> heard(gSize, 0);
  for (int r = 0; r < gSize; ++r) {
    sends[r] = receives[r] = gMpi.requestNull;
    if (r == gRank)
      continue;
    gMpi.isend(&mine[r], 1, gMpi.i32, r, kTag, gMpi.world, &sends[r]);
    gMpi.irecv(&theirs[r], 1, gMpi.i32, r, kTag, gMpi.world, &receives[r]);
  }
  heard[gRank] = 1;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(gTimeout);
  int missing = gSize - 1;
  while (missing > 0 && std::chrono::steady_clock::now() < deadline) {
    for (int r = 0; r < gSize; ++r) {
      int done = 0;
      if (heard[r] ||
          gMpi.test(&receives[r], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS ||
          !done)
        continue;
      heard[r] = 1;
      --missing;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string names;
  for (int r = 0; r < gSize; ++r)
    if (!heard[r])
      names += (names.empty() ? "" : ", ") + std::to_string(r);
  return names;
}

/// Polls `request` until it completes or the timeout passes. Open MPI
/// progresses a nonblocking collective inside MPI_Test: the loop spins
/// first, then sleeps a little between tests, so that ranks sharing cores
/// leave them to the ranks still computing.
bool wait(MPI_Request &request, const char *what, std::string &error) {
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration<double>(gTimeout);
  for (int spins = 0;; ++spins) {
    int done = 0;
    int code = gMpi.test(&request, &done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS) {
      error = std::string(what) + ": " + mpiError(code);
      return false;
    }
    if (done)
      return true;
    if (spins < 1000)
      continue;
    if (std::chrono::steady_clock::now() > deadline) {
      error = comm::noAnswer(what);
      return false;
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(spins < 10000 ? 20 : 200));
  }
}

/// Starts a collective (`start` returns its MPI code and request) and waits
/// for it.
template <typename Start>
bool collective(const char *what, std::string &error, Start start) {
  MPI_Request request;
  int code = start(request);
  if (code != MPI_SUCCESS) {
    error = std::string(what) + ": " + mpiError(code);
    return false;
  }
  return wait(request, what, error);
}

/// Starts the sum over the ranks of `count` values at `data` (in pieces
/// when the count passes int's range), appending the requests to `into`.
bool startSumAs(void *data, size_t count, MPI_Datatype type, const char *what,
                std::string &error, std::vector<MPI_Request> &into) {
  auto *bytes = static_cast<char *>(data);
  size_t unit = type == gMpi.f32 ? sizeof(float) : sizeof(double);
  for (size_t done = 0; done < count;) {
    int n = static_cast<int>(std::min<size_t>(count - done, 1u << 30));
    MPI_Request request;
    int code = gMpi.iallreduce(MPI_IN_PLACE, bytes + done * unit, n, type,
                               gMpi.sum, gMpi.world, &request);
    if (code != MPI_SUCCESS) {
      error = std::string(what) + ": " + mpiError(code);
      return false;
    }
    into.push_back(request);
    done += static_cast<size_t>(n);
  }
  return true;
}

/// Waits for each of `requests` in turn, then forgets them.
bool waitForAll(std::vector<MPI_Request> &requests, const char *what,
                std::string &error) {
  bool ok = true;
  for (MPI_Request &request : requests)
    if (ok && !wait(request, what, error))
      ok = false;
  requests.clear();
  return ok;
}

bool sumAs(void *data, size_t count, MPI_Datatype type, const char *what,
           std::string &error) {
  if (gSize == 1)
    return true;
  std::vector<MPI_Request> requests;
  return startSumAs(data, count, type, what, error, requests) &&
         waitForAll(requests, what, error);
}

/// The sums startSum began and finishSums has not waited for, oldest first.
std::vector<MPI_Request> gStarted;

/// Where each rank's block starts.
std::vector<int> offsets(const std::vector<int> &counts) {
  std::vector<int> at(counts.size(), 0);
  for (size_t r = 1; r < counts.size(); ++r)
    at[r] = at[r - 1] + counts[r - 1];
  return at;
}

#endif // MASS_HAVE_MPI

} // namespace

bool comm::start(double timeoutSeconds, std::string &error) {
  gTimeout = timeoutSeconds;
  // Open MPI's mpirun (and PMI launchers) tell each process the job's size.
  int launched = envCount("OMPI_COMM_WORLD_SIZE");
  if (!launched)
    launched = envCount("PMI_SIZE");
  if (launched <= 1)
    return true;
#if MASS_HAVE_MPI
  if (!openLibrary(error))
    return false;
  int provided = 0;
  // Only the training thread calls MPI.
  int code = gMpi.initThread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  if (code != MPI_SUCCESS) {
    error = "MPI_Init_thread failed: " + mpiError(code);
    return false;
  }
  gMpi.running = true;
  gMpi.setErrhandler(gMpi.world, gMpi.errorsReturn);
  gMpi.commRank(gMpi.world, &gRank);
  gMpi.commSize(gMpi.world, &gSize);
  // Ranks count from 0: envCount's 0 for "0" or unset is the answer.
  gLocalRank = envCount("OMPI_COMM_WORLD_LOCAL_RANK");
  if (!std::getenv("OMPI_COMM_WORLD_LOCAL_RANK"))
    gLocalRank = envCount("MPI_LOCALRANKID");
  gLocalSize = envCount("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!gLocalSize)
    gLocalSize = envCount("MPI_LOCALNRANKS");
  if (!gLocalSize)
    gLocalSize = 1;
  return true;
#else
  error = "mpirun started " + std::to_string(launched) +
          " processes, but this program's runtime was built without MPI "
          "(install libopenmpi-dev and rebuild massc)";
  return false;
#endif
}

int comm::rank() { return gRank; }
int comm::size() { return gSize; }
int comm::localSize() { return gLocalSize; }
int comm::localRank() { return gLocalRank; }
double comm::timeout() { return gTimeout; }

std::string comm::noAnswer(const char *what) {
  char text[64];
  std::snprintf(text, sizeof text, "%g", gTimeout);
#if MASS_HAVE_MPI
  std::string silent = gMpi.running ? silentRanks() : "";
#else
  std::string silent;
#endif
  bool one = silent.find(',') == std::string::npos;
  return std::string("no answer from the other ranks within ") + text +
         " s while waiting for " + what + ": " +
         (silent.empty() ? std::string("a rank died or hangs")
                         : (one ? "rank " : "ranks ") + silent +
                               (one ? " died or hangs" : " died or hang")) +
         " (--comm-timeout sets the limit)";
}

void comm::fail(const std::string &error) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: rank %d: %s\n", gRank, error.c_str());
  comm::abort(1);
  std::exit(1);
}

bool comm::broadcast(void *data, size_t bytes, const char *what,
                     std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  if (bytes > INT_MAX) {
    error = std::string(what) + ": more bytes than MPI counts";
    return false;
  }
  return collective(what, error, [&](MPI_Request &request) {
    return gMpi.ibcast(data, static_cast<int>(bytes), gMpi.byte, 0, gMpi.world,
                       &request);
  });
#else
  (void)data, (void)bytes, (void)what, (void)error;
  return true;
#endif
}

bool comm::sum(float *data, size_t count, const char *what,
               std::string &error) {
#if MASS_HAVE_MPI
  return sumAs(data, count, gMpi.f32, what, error);
#else
  (void)data, (void)count, (void)what, (void)error;
  return true;
#endif
}

bool comm::sum(double *data, size_t count, const char *what,
               std::string &error) {
#if MASS_HAVE_MPI
  return sumAs(data, count, gMpi.f64, what, error);
#else
  (void)data, (void)count, (void)what, (void)error;
  return true;
#endif
}

bool comm::startSum(float *data, size_t count, const char *what,
                    std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  return startSumAs(data, count, gMpi.f32, what, error, gStarted);
#else
  (void)data, (void)count, (void)what, (void)error;
  return true;
#endif
}

void comm::progress() {
#if MASS_HAVE_MPI
  // A request that completes becomes MPI_REQUEST_NULL, which tests done.
  for (MPI_Request &request : gStarted) {
    int done = 0;
    gMpi.test(&request, &done, MPI_STATUS_IGNORE);
  }
#endif
}

bool comm::finishSums(const char *what, std::string &error) {
#if MASS_HAVE_MPI
  return waitForAll(gStarted, what, error);
#else
  (void)what, (void)error;
  return true;
#endif
}

bool comm::reduceScatter(float *data, const std::vector<int> &counts,
                         const char *what, std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  // The whole vector's all-reduce, each rank keeping its block: Open MPI's
  // nonblocking reduce-scatter (libnbc's) took 114 ms for 23 MB on 2
  // processes here, its all-reduce 14 ms (bench/README.md).
  size_t total = 0;
  for (int n : counts)
    total += static_cast<size_t>(n);
  return sumAs(data, total, gMpi.f32, what, error);
#else
  (void)data, (void)counts, (void)what, (void)error;
  return true;
#endif
}

bool comm::allGather(float *data, const std::vector<int> &counts,
                     const char *what, std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  std::vector<int> at = offsets(counts);
  return collective(what, error, [&](MPI_Request &request) {
    return gMpi.iallgatherv(MPI_IN_PLACE, 0, gMpi.f32, data, counts.data(),
                            at.data(), gMpi.f32, gMpi.world, &request);
  });
#else
  (void)data, (void)counts, (void)what, (void)error;
  return true;
#endif
}

namespace {

#if MASS_HAVE_MPI

/// Sends `sendCount` values to `partner` and receives `receiveCount` from it.
template <typename T>
bool exchange(T *send, size_t sendCount, T *receive, size_t receiveCount,
              int partner, const char *what, std::string &error) {
  constexpr int kTag = 7078; // not silentRanks'
  MPI_Datatype type = sizeof(T) == 4 ? gMpi.f32 : gMpi.f64;
  MPI_Request requests[2];
  int code = gMpi.irecv(receive, static_cast<int>(receiveCount), type, partner,
                        kTag, gMpi.world, &requests[0]);
  if (code == MPI_SUCCESS)
    code = gMpi.isend(send, static_cast<int>(sendCount), type, partner, kTag,
                      gMpi.world, &requests[1]);
  if (code != MPI_SUCCESS) {
    error = std::string(what) + ": " + mpiError(code);
    return false;
  }
  return wait(requests[0], what, error) && wait(requests[1], what, error);
}

/// sumInOrder over a power of two of ranks, moving about twice the vector
/// per rank as a ring all-reduce does: halving (partners 1, 2, 4 ... apart,
/// each keeping half of what it held and adding the partner's copy of it)
/// leaves each rank a block summed as addInTree sums, since the ranks
/// paired at each level are its subtrees; doubling back gathers the blocks.
template <typename T>
bool sumInTreeByHalving(T *data, size_t count, std::vector<T> &scratch,
                        const char *what, std::string &error) {
  std::vector<std::pair<size_t, size_t>> held; // before each halving
  size_t lo = 0, hi = count;
  scratch.resize(count - count / 2);
  for (int d = 1; d < gSize; d <<= 1) {
    size_t mid = lo + (hi - lo) / 2;
    bool lower = (gRank & d) == 0;
    size_t keepLo = lower ? lo : mid, keepHi = lower ? mid : hi;
    size_t giveLo = lower ? mid : lo, giveHi = lower ? hi : mid;
    if (!exchange(data + giveLo, giveHi - giveLo, scratch.data(),
                  keepHi - keepLo, gRank ^ d, what, error))
      return false;
    for (size_t k = keepLo; k < keepHi; ++k)
      data[k] += scratch[k - keepLo];
    held.push_back({lo, hi});
    lo = keepLo, hi = keepHi;
  }
  for (int d = gSize >> 1; d >= 1; d >>= 1) {
    auto [wholeLo, wholeHi] = held.back();
    held.pop_back();
    size_t otherLo = lo == wholeLo ? hi : wholeLo;
    size_t otherHi = lo == wholeLo ? wholeHi : lo;
    if (!exchange(data + lo, hi - lo, data + otherLo, otherHi - otherLo,
                  gRank ^ d, what, error))
      return false;
    lo = wholeLo, hi = wholeHi;
  }
  return true;
}

#endif // MASS_HAVE_MPI

template <typename T>
bool sumInOrderAs(T *data, size_t count, std::vector<T> &scratch,
                  const char *what, std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  size_t ranks = static_cast<size_t>(gSize);
  if ((ranks & (ranks - 1)) == 0) {
    if (count > static_cast<size_t>(INT_MAX)) {
      error = std::string(what) + ": " + std::to_string(count) +
              " values, more than MPI counts (2^31)";
      return false;
    }
    return sumInTreeByHalving(data, count, scratch, what, error);
  }
  // Other numbers of ranks: every rank's vector to every rank.
  if (count > static_cast<size_t>(INT_MAX) / ranks) {
    error = std::string(what) + ": " + std::to_string(count) +
            " values on each of " + std::to_string(gSize) +
            " processes, more than MPI counts (2^31)";
    return false;
  }
  scratch.resize(count * ranks);
  std::copy_n(data, count, scratch.begin() + gRank * count);
  MPI_Datatype type = sizeof(T) == 4 ? gMpi.f32 : gMpi.f64;
  std::vector<int> counts(ranks, static_cast<int>(count));
  std::vector<int> at = offsets(counts);
  if (!collective(what, error, [&](MPI_Request &request) {
        return gMpi.iallgatherv(MPI_IN_PLACE, 0, type, scratch.data(),
                                counts.data(), at.data(), type, gMpi.world,
                                &request);
      }))
    return false;
  std::vector<T *> parts;
  for (size_t r = 0; r < ranks; ++r)
    parts.push_back(scratch.data() + r * count);
  comm::addInTree(parts.data(), ranks, count);
  std::copy_n(scratch.begin(), count, data);
  return true;
#else
  (void)data, (void)count, (void)scratch, (void)what, (void)error;
  return true;
#endif
}

} // namespace

bool comm::sumInOrder(float *data, size_t count, std::vector<float> &scratch,
                      const char *what, std::string &error) {
  return sumInOrderAs(data, count, scratch, what, error);
}

bool comm::sumInOrder(double *data, size_t count, std::vector<double> &scratch,
                      const char *what, std::string &error) {
  return sumInOrderAs(data, count, scratch, what, error);
}

bool comm::gather(float *data, const std::vector<int> &counts, const char *what,
                  std::string &error) {
#if MASS_HAVE_MPI
  if (gSize == 1)
    return true;
  std::vector<int> at = offsets(counts);
  return collective(what, error, [&](MPI_Request &request) {
    if (gRank == 0)
      return gMpi.igatherv(MPI_IN_PLACE, 0, gMpi.f32, data, counts.data(),
                           at.data(), gMpi.f32, 0, gMpi.world, &request);
    return gMpi.igatherv(data + at[gRank], counts[gRank], gMpi.f32, nullptr,
                         nullptr, nullptr, gMpi.f32, 0, gMpi.world, &request);
  });
#else
  (void)data, (void)counts, (void)what, (void)error;
  return true;
#endif
}

void comm::abort(int status) {
#if MASS_HAVE_MPI
  if (gMpi.running) {
    std::fflush(stdout);
    std::fflush(stderr);
    gMpi.abort(gMpi.world, status);
  }
#endif
  (void)status;
}

void comm::finish() {
#if MASS_HAVE_MPI
  if (gMpi.running) {
    gMpi.running = false;
    gMpi.finalize();
  }
#endif
}

/// mass.sum_ranks, inside a step: a failure ends the job here (the
/// generated code cannot carry an error back).
extern "C" void _mlir_ciface_mass_sum_ranks(MassMemRef *x) {
  bool replicated = replicas::on();
  if (gSize == 1 && !replicated)
    return;
  int64_t count = x->sizes_and_strides[0], stride = x->sizes_and_strides[1];
  float *data = static_cast<float *>(x->aligned) + x->offset;
  std::vector<float> packed;
  if (stride != 1) {
    packed.resize(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k)
      packed[k] = data[k * stride];
  }
  float *sums = stride == 1 ? data : packed.data();
  std::string error;
  if (replicated)
    replicas::sumInStep(sums, static_cast<size_t>(count));
  else if (!comm::sum(sums, static_cast<size_t>(count),
                      "batch norm's statistics over the processes", error))
    comm::fail(error);
  if (stride != 1)
    for (int64_t k = 0; k < count; ++k)
      data[k * stride] = packed[k];
}
