//===- Cuda.cpp - The GPU through the CUDA driver API ---------------------===//
//
// Linked into the programs massc writes for --target=cuda (libmass_cuda.a).
// The driver (libcuda.so.1) is opened when the program starts, not linked:
// on a machine without an NVIDIA driver the program says so and exits 1.
//
// The generated host code launches its kernels through the mgpu* calls
// MLIR's gpu-to-llvm emits, which would load the module, create a stream,
// launch, synchronise and unload at every launch. Here each module is
// loaded once, every launch goes to the one stream the runtime's copies
// use, and nothing waits until the host reads a result. The next batch
// goes up on a second stream from page-locked memory while the step
// before it runs (Device::uploadAhead).
//
//===----------------------------------------------------------------------===//

#include "Comm.h"
#include "Device.h"
#include "DeviceKernelLaunch.h"
#include "mass/abi.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda.h>
#include <dlfcn.h>
#if MASS_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

using namespace mass::rt;

namespace {

/// The driver functions the runtime calls, found in libcuda.so.1.
struct Driver {
  CUresult (*init)(unsigned);
  CUresult (*deviceGet)(CUdevice *, int);
  CUresult (*deviceGetCount)(int *);
  CUresult (*deviceGetName)(char *, int, CUdevice);
  CUresult (*deviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
  CUresult (*primaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*ctxSetCurrent)(CUcontext);
  CUresult (*memAlloc)(CUdeviceptr *, size_t);
  CUresult (*memFree)(CUdeviceptr);
  CUresult (*memcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*memcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*memcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*memHostRegister)(void *, size_t, unsigned);
  CUresult (*memsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*streamCreate)(CUstream *, unsigned);
  CUresult (*streamSynchronize)(CUstream);
  CUresult (*streamQuery)(CUstream);
  CUresult (*streamWaitEvent)(CUstream, CUevent, unsigned);
  CUresult (*eventCreate)(CUevent *, unsigned);
  CUresult (*eventRecord)(CUevent, CUstream);
  CUresult (*moduleLoadDataEx)(CUmodule *, const void *, unsigned,
                               CUjit_option *, void **);
  CUresult (*moduleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                           unsigned, unsigned, unsigned, CUstream, void **,
                           void **);
  CUresult (*getErrorName)(CUresult, const char **);
  CUresult (*getErrorString)(CUresult, const char **);
};

Driver driver;
// Every launch and copy goes to `stream`, in order, but uploadAhead's
// copies, which go to `copyStream`; `copied` marks the last of them.
CUstream stream = nullptr, copyStream = nullptr;
CUevent copied = nullptr;
// NCCL's collectives go to `commStream`, after the work queued on `stream`
// before them (`queued` marks it); `stream` waits for them (`summed`) at
// once, or for sums beside the step at joinSums(). One stream for every
// collective keeps them in the order all ranks queue them.
CUstream commStream = nullptr;
CUevent queued = nullptr, summed = nullptr;
std::unordered_map<const void *, CUmodule> modules;
std::map<std::pair<CUmodule, const char *>, CUfunction> functions;

std::string describe(CUresult result) {
  const char *name = nullptr, *text = nullptr;
  if (driver.getErrorName)
    driver.getErrorName(result, &name);
  if (driver.getErrorString)
    driver.getErrorString(result, &text);
  return std::string(name ? name : "CUDA error " + std::to_string(result)) +
         (text ? std::string(" (") + text + ")" : "");
}

/// Ends the program on a driver error: the GPU's state is unknown after it.
void check(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return;
  std::fflush(stdout);
  std::fprintf(stderr, "error: CUDA driver: %s failed: %s\n", what,
               describe(result).c_str());
  comm::abort(1);
  std::exit(1);
}

template <typename F> bool find(void *library, const char *symbol, F &out) {
  out = reinterpret_cast<F>(dlsym(library, symbol));
  return out != nullptr;
}

/// The first of `names` that opens (null or empty ones skipped), or null
/// with `tried` holding why each failed.
void *openFirst(std::initializer_list<const char *> names, std::string &tried) {
  for (const char *name : names) {
    if (!name || !*name)
      continue;
    if (void *library = dlopen(name, RTLD_NOW | RTLD_LOCAL))
      return library;
    const char *why = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (why ? why : name);
  }
  return nullptr;
}

#if MASS_HAVE_NCCL
#ifndef MASS_NCCL_LIBRARY_PATH
#define MASS_NCCL_LIBRARY_PATH ""
#endif

/// NCCL, opened at the first sum over the processes: the file $MASS_NCCL
/// names, else libnccl.so.2 from the library path, else the toolkit's copy
/// the runtime was built beside.
struct Nccl {
  ncclComm_t comm = nullptr;
  decltype(&ncclGetUniqueId) getUniqueId = nullptr;
  decltype(&ncclCommInitRank) commInitRank = nullptr;
  decltype(&ncclAllReduce) allReduce = nullptr;
  decltype(&ncclReduce) reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclGroupStart) groupStart = nullptr;
  decltype(&ncclGroupEnd) groupEnd = nullptr;
  decltype(&ncclCommGetAsyncError) asyncError = nullptr;
  decltype(&ncclCommAbort) commAbort = nullptr;
  decltype(&ncclGetErrorString) errorString = nullptr;
};
Nccl nccl;

void ncclCheck(ncclResult_t result, const std::string &what) {
  if (result == ncclSuccess)
    return;
  comm::fail("NCCL: " + what + ": " +
             (nccl.errorString ? std::string(nccl.errorString(result))
                               : "error " + std::to_string(result)));
}

/// Opens NCCL and joins this rank's GPU to the job's communicator: rank 0
/// draws its unique id, and MPI brings it to the others.
void startNccl() {
  if (nccl.comm)
    return;
  std::string tried;
  void *library = openFirst(
      {std::getenv("MASS_NCCL"), "libnccl.so.2", MASS_NCCL_LIBRARY_PATH},
      tried);
  if (!library)
    comm::fail("data-parallel training on GPUs sums with NCCL, which was not "
               "found (" +
               tried +
               "): add its folder to LD_LIBRARY_PATH or name the file in "
               "MASS_NCCL");
  if (!find(library, "ncclGetUniqueId", nccl.getUniqueId) ||
      !find(library, "ncclCommInitRank", nccl.commInitRank) ||
      !find(library, "ncclAllReduce", nccl.allReduce) ||
      !find(library, "ncclReduce", nccl.reduce) ||
      !find(library, "ncclBroadcast", nccl.broadcast) ||
      !find(library, "ncclGroupStart", nccl.groupStart) ||
      !find(library, "ncclGroupEnd", nccl.groupEnd) ||
      !find(library, "ncclCommGetAsyncError", nccl.asyncError) ||
      !find(library, "ncclCommAbort", nccl.commAbort) ||
      !find(library, "ncclGetErrorString", nccl.errorString))
    comm::fail("the NCCL library found lacks a function this program calls "
               "(it is older than NCCL 2.14)");
  ncclUniqueId id{};
  if (comm::rank() == 0)
    ncclCheck(nccl.getUniqueId(&id), "ncclGetUniqueId");
  std::string error;
  if (!comm::broadcast(&id, sizeof id, "NCCL's unique id", error))
    comm::fail(error);
  ncclCheck(nccl.commInitRank(&nccl.comm, comm::size(), id, comm::rank()),
            "ncclCommInitRank (one GPU for each process?)");
}

/// Fails when a sum over the processes queued on the GPU failed.
void checkNcclErrors(const std::string &pending) {
  ncclResult_t async = ncclSuccess;
  if (nccl.asyncError(nccl.comm, &async) == ncclSuccess &&
      async != ncclInProgress)
    ncclCheck(async, "summing " + pending);
}
#endif

class Gpu final : public Device {
public:
  explicit Gpu(std::string name) : deviceName(std::move(name)) {}
  std::string name() const override { return deviceName; }
  void *allocate(size_t bytes) override {
    CUdeviceptr p = 0;
    CUresult result = driver.memAlloc(&p, bytes);
    if (result != CUDA_SUCCESS) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: cannot allocate %zu bytes on %s: %s\n",
                   bytes, deviceName.c_str(), describe(result).c_str());
      std::exit(1);
    }
    return reinterpret_cast<void *>(p);
  }
  void release(void *memory) override {
    check(driver.memFree(reinterpret_cast<CUdeviceptr>(memory)), "cuMemFree");
  }
  void upload(void *device, const void *host, size_t bytes) override {
    check(driver.memcpyHtoDAsync(reinterpret_cast<CUdeviceptr>(device), host,
                                 bytes, stream),
          "cuMemcpyHtoDAsync");
    // From pageable memory the copy is staged before the call returns; from
    // pinned memory it runs later, so the host waits to keep the contract
    // that the buffer may be reused.
    if (isPinned(host, bytes))
      synchronize();
  }
  void pin(void *host, size_t bytes) override {
    // Without the lock (a limit on locked memory) the copies still work,
    // synchronously.
    if (bytes && driver.memHostRegister(host, bytes, 0) == CUDA_SUCCESS)
      pinned[static_cast<const char *>(host)] = bytes;
  }
  void uploadAhead(void *device, const void *host, size_t bytes) override {
    check(driver.memcpyHtoDAsync(reinterpret_cast<CUdeviceptr>(device), host,
                                 bytes, copyStream),
          "cuMemcpyHtoDAsync");
    check(driver.eventRecord(copied, copyStream), "cuEventRecord");
  }
  void waitForCopies() override {
    check(driver.streamWaitEvent(stream, copied, 0), "cuStreamWaitEvent");
  }
  void download(void *host, const void *device, size_t bytes) override {
    check(driver.memcpyDtoHAsync(host, reinterpret_cast<CUdeviceptr>(device),
                                 bytes, stream),
          "cuMemcpyDtoHAsync");
    synchronize();
  }
  void downloadAsync(void *host, const void *device, size_t bytes) override {
    check(driver.memcpyDtoHAsync(host, reinterpret_cast<CUdeviceptr>(device),
                                 bytes, stream),
          "cuMemcpyDtoHAsync");
  }
  void synchronize() override {
    joinSums();
    if (pending.empty()) {
      check(driver.streamSynchronize(stream), "cuStreamSynchronize");
      return;
    }
    // A sum over the processes is queued: the stream is polled, so that a
    // rank that died or hangs ends the wait after the timeout.
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration<double>(comm::timeout());
    for (int spins = 0;; ++spins) {
      CUresult result = driver.streamQuery(stream);
      if (result == CUDA_SUCCESS)
        break;
      if (result != CUDA_ERROR_NOT_READY)
        check(result, "cuStreamQuery");
#if MASS_HAVE_NCCL
      checkNcclErrors(pending);
      if (std::chrono::steady_clock::now() > deadline) {
        nccl.commAbort(nccl.comm);
        comm::fail(comm::noAnswer(pending.c_str()));
      }
#else
      (void)deadline;
#endif
      if (spins > 1000)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    pending.clear();
  }
  void sumRanks(const std::vector<DeviceFloats> &buffers,
                const char *what) override {
    if (comm::parallel())
      collective(buffers, {}, what);
  }
  void sumRanksBeside(const std::vector<DeviceFloats> &buffers,
                      const char *what) override {
    if (comm::parallel())
      collective(buffers, {}, what, false, true);
  }
  void joinSums() override {
    if (!sumsBeside)
      return;
    check(driver.eventRecord(summed, commStream), "cuEventRecord");
    check(driver.streamWaitEvent(stream, summed, 0), "cuStreamWaitEvent");
    sumsBeside = false;
  }
  void reduceToOwners(const std::vector<DeviceFloats> &buffers,
                      const std::vector<int> &owners,
                      const char *what) override {
    if (comm::parallel())
      collective(buffers, owners, what, true);
  }
  void gatherFromOwners(const std::vector<DeviceFloats> &buffers,
                        const std::vector<int> &owners,
                        const char *what) override {
    if (comm::parallel())
      collective(buffers, owners, what, false);
  }
  void copy(void *to, const void *from, size_t bytes) override {
    check(driver.memcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(to),
                                 reinterpret_cast<CUdeviceptr>(from), bytes,
                                 stream),
          "cuMemcpyDtoDAsync");
  }
  void zero(void *device, size_t bytes) override {
    check(driver.memsetD8Async(reinterpret_cast<CUdeviceptr>(device), 0, bytes,
                               stream),
          "cuMemsetD8Async");
  }

private:
  /// One NCCL group on the collectives' stream, after the work queued
  /// before: without `owners` an all-reduce of each buffer, else a reduce
  /// to each buffer's owner (`toOwners`) or a broadcast from it. The work
  /// queued after waits for it, or with `beside` only from joinSums().
  void collective(const std::vector<DeviceFloats> &buffers,
                  const std::vector<int> &owners, const char *what,
                  bool toOwners = false, bool beside = false) {
#if MASS_HAVE_NCCL
    startNccl();
    check(driver.eventRecord(queued, stream), "cuEventRecord");
    check(driver.streamWaitEvent(commStream, queued, 0), "cuStreamWaitEvent");
    auto onStream = reinterpret_cast<cudaStream_t>(commStream);
    std::string doing = std::string("summing ") + what;
    ncclCheck(nccl.groupStart(), "ncclGroupStart");
    for (size_t k = 0; k < buffers.size(); ++k) {
      const DeviceFloats &b = buffers[k];
      if (!b.count)
        continue;
      ncclResult_t result =
          owners.empty() ? nccl.allReduce(b.data, b.data, b.count, ncclFloat32,
                                          ncclSum, nccl.comm, onStream)
          : toOwners     ? nccl.reduce(b.data, b.data, b.count, ncclFloat32,
                                       ncclSum, owners[k], nccl.comm, onStream)
                         : nccl.broadcast(b.data, b.data, b.count, ncclFloat32,
                                          owners[k], nccl.comm, onStream);
      ncclCheck(result, doing);
    }
    ncclCheck(nccl.groupEnd(), doing);
    pending = what;
    sumsBeside = true;
    if (!beside)
      joinSums();
#else
    (void)buffers, (void)owners, (void)toOwners, (void)beside;
    comm::fail(std::string(what) +
               ": this GPU program's runtime was built without NCCL (the "
               "CUDA toolkit's nccl.h), which sums over the processes");
#endif
  }

  bool isPinned(const void *host, size_t bytes) const {
    const char *p = static_cast<const char *>(host);
    auto it = pinned.upper_bound(p);
    if (it == pinned.begin())
      return false;
    --it;
    return p + bytes <= it->first + it->second;
  }

  std::string deviceName;
  std::map<const char *, size_t> pinned; // page-locked ranges
  std::string pending;     // the sum over the processes queued last, if any
  bool sumsBeside = false; // collectives `stream` does not wait for yet
};

} // namespace

extern "C" Device *mass_cuda_device(std::string *error) {
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char *why = dlerror();
    *error = "this program runs on an NVIDIA GPU, and this machine has no "
             "CUDA driver (" +
             std::string(why ? why : "libcuda.so.1 not found") + ")";
    return nullptr;
  }
  bool found =
      find(library, "cuInit", driver.init) &&
      find(library, "cuDeviceGet", driver.deviceGet) &&
      find(library, "cuDeviceGetCount", driver.deviceGetCount) &&
      find(library, "cuDeviceGetName", driver.deviceGetName) &&
      find(library, "cuDeviceGetAttribute", driver.deviceGetAttribute) &&
      find(library, "cuDevicePrimaryCtxRetain", driver.primaryCtxRetain) &&
      find(library, "cuCtxSetCurrent", driver.ctxSetCurrent) &&
      find(library, "cuMemAlloc_v2", driver.memAlloc) &&
      find(library, "cuMemFree_v2", driver.memFree) &&
      find(library, "cuMemcpyHtoDAsync_v2", driver.memcpyHtoDAsync) &&
      find(library, "cuMemcpyDtoHAsync_v2", driver.memcpyDtoHAsync) &&
      find(library, "cuMemcpyDtoDAsync_v2", driver.memcpyDtoDAsync) &&
      find(library, "cuMemHostRegister_v2", driver.memHostRegister) &&
      find(library, "cuMemsetD8Async", driver.memsetD8Async) &&
      find(library, "cuStreamCreate", driver.streamCreate) &&
      find(library, "cuStreamSynchronize", driver.streamSynchronize) &&
      find(library, "cuStreamQuery", driver.streamQuery) &&
      find(library, "cuStreamWaitEvent", driver.streamWaitEvent) &&
      find(library, "cuEventCreate", driver.eventCreate) &&
      find(library, "cuEventRecord", driver.eventRecord) &&
      find(library, "cuModuleLoadDataEx", driver.moduleLoadDataEx) &&
      find(library, "cuModuleGetFunction", driver.moduleGetFunction) &&
      find(library, "cuLaunchKernel", driver.launchKernel) &&
      find(library, "cuGetErrorName", driver.getErrorName) &&
      find(library, "cuGetErrorString", driver.getErrorString);
  if (!found) {
    *error = "the CUDA driver (libcuda.so.1) lacks a function this program "
             "calls: it is older than CUDA 12";
    return nullptr;
  }
  CUresult result = driver.init(0);
  CUdevice device = 0;
  int count = 0;
  if (result == CUDA_SUCCESS)
    result = driver.deviceGetCount(&count);
  // Under mpirun, the GPU of this rank's index on its machine (NCCL needs
  // one GPU per rank; CUDA_VISIBLE_DEVICES narrows the choice).
  if (result == CUDA_SUCCESS && count > 0)
    result = driver.deviceGet(&device, comm::localRank() % count);
  else if (result == CUDA_SUCCESS)
    result = CUDA_ERROR_NO_DEVICE;
  if (result != CUDA_SUCCESS) {
    *error = "this program runs on an NVIDIA GPU, and the CUDA driver found "
             "none: " +
             describe(result);
    return nullptr;
  }
  char name[256] = {0};
  int major = 0, minor = 0;
  driver.deviceGetName(name, sizeof name - 1, device);
  driver.deviceGetAttribute(
      &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
  driver.deviceGetAttribute(
      &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
  CUcontext context = nullptr;
  check(driver.primaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  check(driver.ctxSetCurrent(context), "cuCtxSetCurrent");
  check(driver.streamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  check(driver.streamCreate(&copyStream, CU_STREAM_NON_BLOCKING),
        "cuStreamCreate");
  check(driver.eventCreate(&copied, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
  check(driver.streamCreate(&commStream, CU_STREAM_NON_BLOCKING),
        "cuStreamCreate");
  check(driver.eventCreate(&queued, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
  check(driver.eventCreate(&summed, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
  return new Gpu(std::string(name) + " (sm_" + std::to_string(major) +
                 std::to_string(minor) + ")");
}

// DeviceKernels.cu's fat binary (DeviceKernelsFatbin.c, written by the
// toolkit's bin2c at build time, as 8-byte words: aligned).
extern "C" const unsigned long long mass_cuda_kernels_fatbin[];

namespace {

using mass::rt::device::AttentionArgs;
using mass::rt::device::LayerNormArgs;
using mass::rt::device::Strided;

/// DeviceKernels.cu's kernel `name`, its module loaded at the first call.
CUfunction fatbinKernel(const std::string &name) {
  static CUmodule module = nullptr;
  if (!module)
    check(driver.moduleLoadDataEx(&module, mass_cuda_kernels_fatbin, 0, nullptr,
                                  nullptr),
          "cuModuleLoadDataEx (the runtime's attention and layer-norm "
          "kernels)");
  static std::map<std::string, CUfunction> kernels;
  CUfunction &function = kernels[name];
  if (!function)
    check(driver.moduleGetFunction(&function, module, name.c_str()),
          "cuModuleGetFunction");
  return function;
}

[[noreturn]] void gridTooLarge(const std::string &name, int64_t what,
                               const char *of) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: %s: %lld %s do not fit one grid\n", name.c_str(),
               static_cast<long long>(what), of);
  std::exit(1);
}

/// Runs DeviceKernels.cu's one-dimensional kernel `name` over `threads`
/// threads (blocks of 128) with the argument block `args`.
template <typename Args>
void launchRows(const std::string &name, const Args &args, int64_t threads) {
  if (threads <= 0)
    return;
  constexpr int64_t kBlock = 128;
  const int64_t blocks = (threads + kBlock - 1) / kBlock;
  if (blocks > 0x7fffffff)
    gridTooLarge(name, threads, "threads");
  Args copy = args;
  void *params[] = {&copy, &threads};
  check(driver.launchKernel(fatbinKernel(name), static_cast<unsigned>(blocks),
                            1, 1, kBlock, 1, 1, 0, stream, params, nullptr),
        "cuLaunchKernel");
}

} // namespace

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const LayerNormArgs &args,
                                          int64_t threads) {
  launchRows(name, args, threads);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const GeluArgs &args,
                                          int64_t threads) {
  launchRows(name, args, threads);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const FiniteArgs &args,
                                          int64_t threads) {
  launchRows(name, args, threads);
}

void mass::rt::device::launchDeviceKernel(const std::string &name,
                                          const SquaresArgs &args,
                                          int64_t threads) {
  launchRows(name, args, threads);
}

/// The sharded optimizer's sum of squares (Train.cpp, which declares it
/// weak): adds those of the `count` floats at `x` to the `lanes` doubles at
/// `lane` (device memory), queued in order with the steps.
extern "C" void mass_device_sum_squares(const float *x, int64_t count,
                                        double *lane, int64_t lanes) {
  device::launchDeviceKernel("mass_sum_squares",
                             device::SquaresArgs{x, lane, count, lanes},
                             std::min(count, lanes));
}

/// The training loop's non-finite guard (Train.cpp, which declares it weak):
/// sets `*flag` (device memory) to 1 when one of the `count` floats at `x`
/// (device memory) is NaN or Inf, queued in order with the steps. Defined
/// beside the device itself, which every GPU program links.
extern "C" void mass_device_nonfinite(const float *x, int64_t count,
                                      int32_t *flag) {
  device::launchDeviceKernel("mass_nonfinite", device::FiniteArgs{x, flag},
                             count);
}

void mass::rt::device::launchAttentionKernel(const std::string &name,
                                             const AttentionArgs &args,
                                             int64_t rows, int64_t count) {
  if (rows <= 0 || count <= 0)
    return;
  using mass::rt::device::kAttentionBlock;
  const int64_t blocks = (rows + kAttentionBlock - 1) / kAttentionBlock;
  if (count > 0x7fffffff)
    gridTooLarge(name, count, "heads");
  if (blocks > 65535)
    gridTooLarge(name, rows, "rows of a head");
  AttentionArgs copy = args;
  void *params[] = {&copy};
  check(driver.launchKernel(fatbinKernel(name), static_cast<unsigned>(count),
                            static_cast<unsigned>(blocks), 1, kAttentionBlock,
                            1, 1, 0, stream, params, nullptr),
        "cuLaunchKernel");
}

namespace {

/// cuBLAS, opened at the first matrix product (libcublas.so.13 from the
/// library path, or the file $MASS_CUBLAS names).
struct Cublas {
  cublasHandle_t handle = nullptr;
  cublasStatus_t (*create)(cublasHandle_t *);
  cublasStatus_t (*setStream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*sgemmStridedBatched)(cublasHandle_t, cublasOperation_t,
                                        cublasOperation_t, int, int, int,
                                        const float *, const float *, int,
                                        long long, const float *, int,
                                        long long, const float *, float *, int,
                                        long long, int);
  // cuBLASLt, for the products with a bias epilogue (libcublas.so's own
  // dependency, opened by its name once libcublas is loaded).
  cublasLtHandle_t lt = nullptr;
  cublasStatus_t (*ltCreate)(cublasLtHandle_t *);
  cublasStatus_t (*ltDescCreate)(cublasLtMatmulDesc_t *, cublasComputeType_t,
                                 cudaDataType_t);
  cublasStatus_t (*ltDescSet)(cublasLtMatmulDesc_t,
                              cublasLtMatmulDescAttributes_t, const void *,
                              size_t);
  cublasStatus_t (*ltDescDestroy)(cublasLtMatmulDesc_t);
  cublasStatus_t (*ltLayoutCreate)(cublasLtMatrixLayout_t *, cudaDataType,
                                   uint64_t, uint64_t, int64_t);
  cublasStatus_t (*ltLayoutDestroy)(cublasLtMatrixLayout_t);
  cublasStatus_t (*ltMatmul)(cublasLtHandle_t, cublasLtMatmulDesc_t,
                             const void *, const void *, cublasLtMatrixLayout_t,
                             const void *, cublasLtMatrixLayout_t, const void *,
                             const void *, cublasLtMatrixLayout_t, void *,
                             cublasLtMatrixLayout_t,
                             const cublasLtMatmulAlgo_t *, void *, size_t,
                             cudaStream_t);
};

[[noreturn]] void cublasFailed(const std::string &what) {
  std::fflush(stdout);
  std::fprintf(stderr, "error: cuBLAS: %s\n", what.c_str());
  std::exit(1);
}

Cublas &cublas() {
  static Cublas c = [] {
    Cublas out{};
    std::string tried;
    void *library = openFirst({std::getenv("MASS_CUBLAS"), "libcublas.so.13",
                               "libcublas.so.12", "libcublas.so"},
                              tried);
    if (!library)
      cublasFailed("this program multiplies matrices with cuBLAS, which was "
                   "not found (" +
                   tried +
                   "): add its folder to LD_LIBRARY_PATH or name the file "
                   "in MASS_CUBLAS");
    if (!find(library, "cublasCreate_v2", out.create) ||
        !find(library, "cublasSetStream_v2", out.setStream) ||
        !find(library, "cublasSgemmStridedBatched", out.sgemmStridedBatched))
      cublasFailed("the cuBLAS library found lacks a function this program "
                   "calls");
    void *lt = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!lt)
      lt = dlopen("libcublasLt.so.12", RTLD_NOW | RTLD_LOCAL);
    if (!lt || !find(lt, "cublasLtCreate", out.ltCreate) ||
        !find(lt, "cublasLtMatmulDescCreate", out.ltDescCreate) ||
        !find(lt, "cublasLtMatmulDescSetAttribute", out.ltDescSet) ||
        !find(lt, "cublasLtMatmulDescDestroy", out.ltDescDestroy) ||
        !find(lt, "cublasLtMatrixLayoutCreate", out.ltLayoutCreate) ||
        !find(lt, "cublasLtMatrixLayoutDestroy", out.ltLayoutDestroy) ||
        !find(lt, "cublasLtMatmul", out.ltMatmul))
      cublasFailed("cuBLASLt (libcublasLt.so, beside libcublas.so) is "
                   "missing or lacks a function this program calls");
    if (out.ltCreate(&out.lt) != CUBLAS_STATUS_SUCCESS)
      cublasFailed("cannot start cuBLASLt on this GPU");
    if (out.create(&out.handle) != CUBLAS_STATUS_SUCCESS ||
        out.setStream(out.handle, reinterpret_cast<cudaStream_t>(stream)) !=
            CUBLAS_STATUS_SUCCESS)
      cublasFailed("cannot start cuBLAS on this GPU");
    return out;
  }();
  return c;
}

/// One product (one batch) with cuBLASLt's bias epilogue: C = op(first) *
/// op(second) + bias, the bias added to each row i (and with `relu` the
/// ReLU of that; with `useGelu` C that and g.gelu its GELU). Returns
/// cuBLASLt's status: CUBLAS_STATUS_NOT_SUPPORTED when it has no kernel
/// for the epilogue on this layout.
cublasStatus_t gemmWithBias(Cublas &c, const mass::rt::device::GemmArgs &g,
                            bool useGelu) {
  auto ok = [](cublasStatus_t status, const char *what) {
    if (status != CUBLAS_STATUS_SUCCESS)
      cublasFailed(std::string(what) + " failed with status " +
                   std::to_string(static_cast<int>(status)));
  };
  cublasLtMatmulDesc_t desc = nullptr;
  ok(c.ltDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
     "cublasLtMatmulDescCreate");
  cublasOperation_t ta = g.transFirst ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t tb = g.transSecond ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = useGelu  ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                : g.relu ? CUBLASLT_EPILOGUE_RELU_BIAS
                                         : CUBLASLT_EPILOGUE_BIAS;
  auto set = [&](cublasLtMatmulDescAttributes_t attribute, const void *value,
                 size_t bytes) {
    ok(c.ltDescSet(desc, attribute, value, bytes),
       "cublasLtMatmulDescSetAttribute");
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  set(CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
  set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias);
  if (useGelu) {
    // The pre-activation goes to C (the auxiliary output), the GELU to D.
    int64_t ld = g.ldc;
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.c, sizeof g.c);
    set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
  }
  float *d = useGelu ? g.gelu : g.c;
  // The matrices as stored (column-major, before op).
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  ok(c.ltLayoutCreate(&first, CUDA_R_32F, g.transFirst ? g.k : g.m,
                      g.transFirst ? g.m : g.k, g.ldFirst),
     "cublasLtMatrixLayoutCreate");
  ok(c.ltLayoutCreate(&second, CUDA_R_32F, g.transSecond ? g.n : g.k,
                      g.transSecond ? g.k : g.n, g.ldSecond),
     "cublasLtMatrixLayoutCreate");
  ok(c.ltLayoutCreate(&out, CUDA_R_32F, g.m, g.n, useGelu ? g.ldGelu : g.ldc),
     "cublasLtMatrixLayoutCreate");
  // A workspace widens the algorithms cuBLASLt may pick (32 MiB, as its
  // guide advises for Hopper); without one it still finds one.
  static size_t workspaceBytes = 32u << 20;
  static CUdeviceptr workspace = 0;
  if (!workspace && workspaceBytes &&
      driver.memAlloc(&workspace, workspaceBytes) != CUDA_SUCCESS)
    workspaceBytes = 0;
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t status =
      c.ltMatmul(c.lt, desc, &one, g.first, first, g.second, second, &zero, d,
                 out, d, out, nullptr, reinterpret_cast<void *>(workspace),
                 workspaceBytes, reinterpret_cast<cudaStream_t>(stream));
  c.ltLayoutDestroy(first);
  c.ltLayoutDestroy(second);
  c.ltLayoutDestroy(out);
  c.ltDescDestroy(desc);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED || !useGelu)
    ok(status, "cublasLtMatmul");
  return status;
}

} // namespace

void mass::rt::device::launchGemm(const GemmArgs &g) {
  for (int64_t v : {g.m, g.n, g.k, g.ldFirst, g.ldSecond, g.ldc, g.batch})
    if (v > 0x7fffffff)
      cublasFailed("a matrix product of " + std::to_string(v) +
                   " rows, columns or batches is larger than cuBLAS's int");
  Cublas &c = cublas();
  if (g.gelu) {
    // The epilogue where cuBLASLt takes it; else the product with its bias
    // into C, then the runtime's GELU kernel.
    if (geluEpilogueFits(g) &&
        gemmWithBias(c, g, true) == CUBLAS_STATUS_SUCCESS)
      return;
    gemmWithBias(c, g, false);
    const GeluArgs gelu = geluOperands(g);
    launchDeviceKernel("mass_gelu_tanh", gelu, gelu.x.size[0] * gelu.x.size[1]);
    return;
  }
  if (g.bias) {
    gemmWithBias(c, g, false);
    return;
  }
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t status = c.sgemmStridedBatched(
      c.handle, g.transFirst ? CUBLAS_OP_T : CUBLAS_OP_N,
      g.transSecond ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
      static_cast<int>(g.n), static_cast<int>(g.k), &one, g.first,
      static_cast<int>(g.ldFirst), g.strideFirst, g.second,
      static_cast<int>(g.ldSecond), g.strideSecond, g.accumulate ? &one : &zero,
      g.c, static_cast<int>(g.ldc), g.strideC, static_cast<int>(g.batch));
  if (status != CUBLAS_STATUS_SUCCESS)
    cublasFailed("cublasSgemmStridedBatched failed with status " +
                 std::to_string(static_cast<int>(status)));
}

// The calls the generated code makes (MLIR 19's gpu-to-llvm and its
// SelectObjectAttr translation).
extern "C" {

// The kernels as a cubin (massc assembled them with ptxas)...
void *mgpuModuleLoad(void *data, size_t /*bytes*/) {
  auto cached = modules.find(data);
  if (cached != modules.end())
    return cached->second;
  CUmodule module = nullptr;
  check(driver.moduleLoadDataEx(&module, data, 0, nullptr, nullptr),
        "cuModuleLoadDataEx (the kernels' cubin; was the program compiled "
        "with the --cuda-arch of this GPU?)");
  modules[data] = module;
  return module;
}

// ... or as PTX, which the driver compiles for this GPU.
void *mgpuModuleLoadJIT(void *data, int optLevel) {
  auto cached = modules.find(data);
  if (cached != modules.end())
    return cached->second;
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel))};
  CUmodule module = nullptr;
  check(driver.moduleLoadDataEx(&module, data, 1, options, values),
        "cuModuleLoadDataEx (the kernels' PTX)");
  modules[data] = module;
  return module;
}

void *mgpuModuleGetFunction(CUmodule module, const char *name) {
  CUfunction &function = functions[{module, name}];
  if (!function)
    check(driver.moduleGetFunction(&function, module, name),
          "cuModuleGetFunction");
  return function;
}

// Modules stay loaded for the run.
void mgpuModuleUnload(CUmodule) {}

// Every launch goes to the runtime's stream, in order; the host waits only
// when it reads a result (Gpu::download).
void *mgpuStreamCreate() { return stream; }
void mgpuStreamSynchronize(CUstream) {}
void mgpuStreamDestroy(CUstream) {}

void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedBytes, CUstream,
                      void **params, void **extra, size_t /*paramCount*/) {
  // An empty batch launches nothing.
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0)
    return;
  check(driver.launchKernel(
            function, static_cast<unsigned>(gridX),
            static_cast<unsigned>(gridY), static_cast<unsigned>(gridZ),
            static_cast<unsigned>(blockX), static_cast<unsigned>(blockY),
            static_cast<unsigned>(blockZ), static_cast<unsigned>(sharedBytes),
            stream, params, extra),
        "cuLaunchKernel");
}

} // extern "C"
