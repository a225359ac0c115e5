//===- Device.h - Where the entry points' buffers live ----------*- C++ -*-===//
//
// A CPU program's entry points read and write the runtime's host tensors
// directly. A GPU program's read and write device memory: each host tensor
// an entry point sees has a mirror on the device, allocated when first
// bound and kept for the run. The mirrors follow one rule per role, so
// that parameters, gradients and optimizer state stay on the device from
// step to step: inputs, labels and the per-step scalars go up before every
// call; outputs and predictions come down after it; parameters, buffers
// and optimizer state go up only after the host wrote them (hostWrote) and
// come down only when the host reads them (fetch). The host mirror
// (MASS_DEVICE_MIRROR=1 on a CPU program) runs the same rules on host
// memory, so the CPU tests check them.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_DEVICE_H
#define MASS_RUNTIME_DEVICE_H

#include "Tensor.h"

#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mass::rt {

/// `count` floats of a device's memory.
struct DeviceFloats {
  float *data;
  size_t count;
};

/// Memory and copies of one device. Failures end the program with a
/// message (exit 1): there is nothing to recover to.
class Device {
public:
  virtual ~Device() = default;
  /// For messages: "NVIDIA H200 (sm_90)".
  virtual std::string name() const = 0;
  virtual void *allocate(size_t bytes) = 0;
  virtual void release(void *memory) = 0;
  /// Ordered after the work already queued; the host buffer may be
  /// reused when it returns.
  virtual void upload(void *device, const void *host, size_t bytes) = 0;
  /// Waits for the work queued before it.
  virtual void download(void *host, const void *device, size_t bytes) = 0;
  /// Queued after the work before it: `host` holds the bytes only after
  /// synchronize().
  virtual void downloadAsync(void *host, const void *device, size_t bytes) {
    download(host, device, bytes);
  }
  /// Waits for all the work queued.
  virtual void synchronize() { joinSums(); }
  /// Page-locks `bytes` at `host` for the rest of the run, so that copies
  /// from it are asynchronous (nothing where copies are plain memcpy).
  virtual void pin(void * /*host*/, size_t /*bytes*/) {}
  /// Queued on a second stream, beside the work already queued (which
  /// must not touch `device`): the copy runs while that work does; `host`
  /// must hold the bytes until the copy ran, and work queued after
  /// waitForCopies() sees them.
  virtual void uploadAhead(void *device, const void *host, size_t bytes) {
    upload(device, host, bytes);
  }
  /// The work queued from now on waits for the copies uploadAhead queued.
  virtual void waitForCopies() {}
  /// Sums each of `buffers` (this device's memory) over the processes of
  /// the job, in place: after the work queued before, and before the work
  /// queued after, on every rank in the same order. `what` names them in
  /// a failure's message; a failure ends the job. By default the device's
  /// memory is the host's (the host mirror, the emulated GPU), and MPI sums
  /// the buffers packed into one vector.
  virtual void sumRanks(const std::vector<DeviceFloats> &buffers,
                        const char *what);
  /// As sumRanks, but beside the work queued after it, which must not
  /// touch `buffers`: the sums may run while that work does (on a GPU, NCCL
  /// on a stream of its own), until joinSums(), after which queued work
  /// sees them. A synchronize() joins them too. By default, and on the
  /// emulated GPU, the sums wait for joinSums.
  virtual void sumRanksBeside(const std::vector<DeviceFloats> &buffers,
                              const char *what);
  virtual void joinSums();
  /// The sharded optimizer's collectives, on `buffers` whose `owners` (one
  /// rank each) ascend: reduceToOwners sums each buffer over the processes
  /// into its owner's copy (the others' are left as they were or not);
  /// gatherFromOwners copies each owner's buffer to every other rank. As
  /// sumRanks, queued in order; by default MPI's reduce-scatter and
  /// all-gather on the buffers packed rank after rank.
  virtual void reduceToOwners(const std::vector<DeviceFloats> &buffers,
                              const std::vector<int> &owners, const char *what);
  virtual void gatherFromOwners(const std::vector<DeviceFloats> &buffers,
                                const std::vector<int> &owners,
                                const char *what);
  /// Copies `bytes` from `from` to `to`, both on the device, queued in
  /// order.
  virtual void copy(void *to, const void *from, size_t bytes) {
    std::memmove(to, from, bytes);
  }
  /// Sets `bytes` at `device` to zero, queued in order.
  virtual void zero(void *device, size_t bytes) {
    std::memset(device, 0, bytes);
  }

protected:
  /// The default collectives' packed buffers, kept from call to call.
  std::vector<float> staging;
  /// The default sumRanksBeside's buffers, summed at joinSums.
  std::vector<DeviceFloats> beside;
  std::string besideWhat;
};

/// The sharded optimizer's collectives on host memory (the CPU target's,
/// and the default Device's; see Device::reduceToOwners), with MPI, the
/// buffers packed in `packed` (kept by the caller from call to call).
bool reduceToOwnersOnHost(const std::vector<DeviceFloats> &buffers,
                          const std::vector<int> &owners, const char *what,
                          std::vector<float> &packed, std::string &error);
bool gatherFromOwnersOnHost(const std::vector<DeviceFloats> &buffers,
                            const std::vector<int> &owners, const char *what,
                            std::vector<float> &packed, std::string &error);

/// The device the entry points run on; null when they run on the host's
/// buffers themselves.
Device *activeDevice();

/// Chooses the device for a program whose descriptor says `target`
/// ("cuda" or empty): the GPU, the host mirror when MASS_DEVICE_MIRROR=1,
/// else none. Returns false with `error` set when the GPU is unusable.
bool selectDevice(const std::string &target, std::string &error);

/// Host memory standing in for a device, following the same copy rules:
/// the host mirror, and the emulated GPU of `massc --emulate-gpu`
/// programs, named `name`.
std::unique_ptr<Device> makeHostMirror(std::string name);

/// Mirror bookkeeping (no-ops without a device).
enum class Sync {
  Always,   // copied up before each call (inputs, per-step scalars)
  OnChange, // copied up when the host wrote it (parameters, state)
  Never,    // written by the call (results)
};
/// The device copy of the host buffer `host` of `bytes`, copied up per
/// `sync`.
void *deviceBuffer(void *host, size_t bytes, Sync sync);
/// Copies the host buffer `host` of `bytes` (a batch the next call reads
/// with Sync::Always) up to its mirror now, on the device's second stream,
/// while the calls queued before run: they must not read that mirror. The
/// next call that binds it waits for the copy instead of copying again.
void uploadAhead(void *host, size_t bytes);
/// After a call that wrote the mirror of `host`: queues its copy down
/// (`now`: the host reads it after deviceSynchronize), or marks it newer
/// than the host's copy.
void deviceWrote(void *host, size_t bytes, bool now);
/// The host changed `t`: the next call copies it up.
void hostWrote(Tensor &t);
void hostWrote(std::map<std::string, Tensor> &tensors);
/// The host is about to read `t`: brings down the device's newer copy.
void fetch(Tensor &t);
void fetch(std::map<std::string, Tensor> &tensors);
/// Waits for the active device's queued work (nothing without one).
void deviceSynchronize();

/// The arena of the entry points' intermediates, on the device.
void *deviceArena(size_t bytes);

/// Allocates one block of `bytes` on the active device (nothing without
/// one) from which the mirrors and the arena are carved from then on, in
/// 256-byte-aligned slices that stay for the run: one allocation at
/// start-up rather than one per tensor. What no longer fits (a batch
/// larger than the block was sized for) gets an allocation of its own.
void reserveDeviceMemory(size_t bytes);

} // namespace mass::rt

extern "C" {
/// Defined by libmass_cuda.a (Cuda.cpp) in GPU programs: the GPU, or null
/// with `error` set.
mass::rt::Device *mass_cuda_device(std::string *error) __attribute__((weak));
}

#endif // MASS_RUNTIME_DEVICE_H
