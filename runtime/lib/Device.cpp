//===- Device.cpp - Mirrors of the host tensors on the device -------------===//

#include "Device.h"

#include "Comm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <utility>

using namespace mass::rt;

namespace {

/// Host memory standing in for a device: the mirror rules run, and a
/// missing upload or download shows as a wrong result in the CPU tests.
class HostMirror final : public Device {
public:
  explicit HostMirror(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void *allocate(size_t bytes) override {
    void *p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
      std::fprintf(stderr, "error: cannot allocate %zu bytes\n", bytes);
      std::exit(1);
    }
    // Poisoned: a read before the first upload is visible.
    std::memset(p, 0xff, bytes);
    return p;
  }
  void release(void *memory) override { std::free(memory); }
  void upload(void *device, const void *host, size_t bytes) override {
    std::memcpy(device, host, bytes);
  }
  void download(void *host, const void *device, size_t bytes) override {
    std::memcpy(host, device, bytes);
  }

private:
  std::string name_;
};

struct Mirror {
  void *device = nullptr;
  size_t capacity = 0;
  bool hostNewer = true;    // the host wrote since the last upload
  bool deviceNewer = false; // a call wrote since the last download
  bool ahead = false;       // uploadAhead copied it for the next call
  bool carved = false;      // a slice of the reserved block
};

struct State {
  std::unique_ptr<Device> device;
  std::unordered_map<const void *, Mirror> mirrors;
  void *arena = nullptr;
  size_t arenaCapacity = 0;
  bool arenaCarved = false;
  // reserveDeviceMemory's block and how much of it is carved.
  char *block = nullptr;
  size_t blockSize = 0, blockUsed = 0;
};

State &state() {
  static State s;
  return s;
}

/// `bytes` of device memory: a slice of the reserved block while it lasts
/// (`carved` true), else an allocation of its own.
void *deviceMemory(State &s, size_t bytes, bool &carved) {
  size_t rounded = (bytes + 255) / 256 * 256;
  carved = s.block && rounded <= s.blockSize - s.blockUsed;
  if (!carved)
    return s.device->allocate(bytes);
  void *p = s.block + s.blockUsed;
  s.blockUsed += rounded;
  return p;
}

/// Gives back what deviceMemory gave: a slice stays carved (the block is
/// freed only with the program).
void releaseDeviceMemory(State &s, void *p, bool carved) {
  if (p && !carved)
    s.device->release(p);
}

Mirror *find(const void *host) {
  auto it = state().mirrors.find(host);
  return it == state().mirrors.end() ? nullptr : &it->second;
}

} // namespace

void Device::sumRanks(const std::vector<DeviceFloats> &buffers,
                      const char *what) {
  if (!comm::parallel())
    return;
  std::string error;
  if (buffers.size() == 1) {
    if (!comm::sum(buffers[0].data, buffers[0].count, what, error))
      comm::fail(error);
    return;
  }
  staging.clear();
  for (const DeviceFloats &b : buffers)
    staging.insert(staging.end(), b.data, b.data + b.count);
  if (!comm::sum(staging.data(), staging.size(), what, error))
    comm::fail(error);
  const float *next = staging.data();
  for (const DeviceFloats &b : buffers) {
    std::copy_n(next, b.count, b.data);
    next += b.count;
  }
}

void Device::sumRanksBeside(const std::vector<DeviceFloats> &buffers,
                            const char *what) {
  beside.insert(beside.end(), buffers.begin(), buffers.end());
  besideWhat = what;
}

void Device::joinSums() {
  if (beside.empty())
    return;
  std::vector<DeviceFloats> buffers;
  buffers.swap(beside);
  sumRanks(buffers, besideWhat.c_str());
}

namespace {

/// `buffers` packed rank after rank (their owners ascend) into `packed`,
/// and the values each rank owns.
void packByOwner(const std::vector<DeviceFloats> &buffers,
                 const std::vector<int> &owners, std::vector<float> &packed,
                 std::vector<int> &counts) {
  counts.assign(static_cast<size_t>(comm::size()), 0);
  packed.clear();
  for (size_t k = 0; k < buffers.size(); ++k) {
    packed.insert(packed.end(), buffers[k].data,
                  buffers[k].data + buffers[k].count);
    counts[static_cast<size_t>(owners[k])] +=
        static_cast<int>(buffers[k].count);
  }
}

/// Copies back the buffers `mine` selects (owned by this rank or not).
void unpackByOwner(const std::vector<float> &packed,
                   const std::vector<DeviceFloats> &buffers,
                   const std::vector<int> &owners, bool mine) {
  const float *next = packed.data();
  for (size_t k = 0; k < buffers.size(); ++k) {
    if ((owners[k] == comm::rank()) == mine)
      std::copy_n(next, buffers[k].count, buffers[k].data);
    next += buffers[k].count;
  }
}

/// Packs `buffers` by owner, runs `collective` on the packed vector, and
/// copies back the buffers this rank owns (`mine`) or the others'.
bool exchangeByOwner(const std::vector<DeviceFloats> &buffers,
                     const std::vector<int> &owners, const char *what,
                     std::vector<float> &packed, std::string &error,
                     bool (*collective)(float *, const std::vector<int> &,
                                        const char *, std::string &),
                     bool mine) {
  std::vector<int> counts;
  packByOwner(buffers, owners, packed, counts);
  if (!collective(packed.data(), counts, what, error))
    return false;
  unpackByOwner(packed, buffers, owners, mine);
  return true;
}

} // namespace

bool mass::rt::reduceToOwnersOnHost(const std::vector<DeviceFloats> &buffers,
                                    const std::vector<int> &owners,
                                    const char *what,
                                    std::vector<float> &packed,
                                    std::string &error) {
  return exchangeByOwner(buffers, owners, what, packed, error,
                         comm::reduceScatter, /*mine=*/true);
}

bool mass::rt::gatherFromOwnersOnHost(const std::vector<DeviceFloats> &buffers,
                                      const std::vector<int> &owners,
                                      const char *what,
                                      std::vector<float> &packed,
                                      std::string &error) {
  return exchangeByOwner(buffers, owners, what, packed, error, comm::allGather,
                         /*mine=*/false);
}

void Device::reduceToOwners(const std::vector<DeviceFloats> &buffers,
                            const std::vector<int> &owners, const char *what) {
  std::string error;
  if (!reduceToOwnersOnHost(buffers, owners, what, staging, error))
    comm::fail(error);
}

void Device::gatherFromOwners(const std::vector<DeviceFloats> &buffers,
                              const std::vector<int> &owners,
                              const char *what) {
  std::string error;
  if (!gatherFromOwnersOnHost(buffers, owners, what, staging, error))
    comm::fail(error);
}

std::unique_ptr<Device> mass::rt::makeHostMirror(std::string name) {
  return std::make_unique<HostMirror>(std::move(name));
}

Device *mass::rt::activeDevice() { return state().device.get(); }

void mass::rt::deviceSynchronize() {
  if (Device *device = activeDevice())
    device->synchronize();
}

bool mass::rt::selectDevice(const std::string &target, std::string &error) {
  if (target == "cuda") {
    if (!mass_cuda_device) {
      error = "this program was compiled for an NVIDIA GPU but linked "
              "without the CUDA runtime (libmass_cuda.a)";
      return false;
    }
    Device *gpu = mass_cuda_device(&error);
    if (!gpu)
      return false;
    state().device.reset(gpu);
    if (comm::rank() == 0)
      std::printf("running on %s\n", gpu->name().c_str());
    return true;
  }
  if (!target.empty()) {
    error = "this program was compiled for an unknown target '" + target + "'";
    return false;
  }
  const char *mirror = std::getenv("MASS_DEVICE_MIRROR");
  if (mirror && std::strcmp(mirror, "1") == 0) {
    state().device = makeHostMirror("host mirror");
    if (comm::rank() == 0)
      std::printf("running on the %s\n", state().device->name().c_str());
  }
  return true;
}

void *mass::rt::deviceBuffer(void *host, size_t bytes, Sync sync) {
  Device *device = activeDevice();
  if (!device || bytes == 0)
    return host;
  Mirror &m = state().mirrors[host];
  if (m.capacity < bytes) {
    // Grown (a larger batch than before): the device's newer contents
    // come down first, so nothing is lost.
    if (m.device && m.deviceNewer)
      device->download(host, m.device, m.capacity);
    releaseDeviceMemory(state(), m.device, m.carved);
    m.device = deviceMemory(state(), bytes, m.carved);
    m.capacity = bytes;
    m.hostNewer = true;
    m.deviceNewer = false;
  }
  if (m.ahead && sync == Sync::Always) {
    // Copied up already (uploadAhead): the call waits for that copy.
    device->waitForCopies();
    m.ahead = false;
  } else if (sync == Sync::Always || (sync == Sync::OnChange && m.hostNewer)) {
    device->upload(m.device, host, bytes);
    m.hostNewer = false;
  }
  return m.device;
}

void mass::rt::uploadAhead(void *host, size_t bytes) {
  Device *device = activeDevice();
  if (!device || bytes == 0)
    return;
  // Allocated (or grown) as a call would; the copy goes on the second
  // stream.
  deviceBuffer(host, bytes, Sync::Never);
  Mirror &m = state().mirrors[host];
  device->uploadAhead(m.device, host, bytes);
  m.hostNewer = false;
  m.ahead = true;
}

void mass::rt::deviceWrote(void *host, size_t bytes, bool now) {
  Device *device = activeDevice();
  Mirror *m = device ? find(host) : nullptr;
  if (!m)
    return;
  m->hostNewer = false;
  if (now) {
    device->downloadAsync(host, m->device, std::min(bytes, m->capacity));
    m->deviceNewer = false;
  } else {
    m->deviceNewer = true;
  }
}

void mass::rt::hostWrote(Tensor &t) {
  if (Mirror *m = activeDevice() ? find(t.data()) : nullptr) {
    m->hostNewer = true;
    m->deviceNewer = false;
  }
}

void mass::rt::hostWrote(std::map<std::string, Tensor> &tensors) {
  for (auto &entry : tensors)
    hostWrote(entry.second);
}

void mass::rt::fetch(Tensor &t) {
  Mirror *m = activeDevice() ? find(t.data()) : nullptr;
  if (m && m->deviceNewer) {
    activeDevice()->download(t.data(), m->device,
                             std::min(t.bytes(), m->capacity));
    m->deviceNewer = false;
  }
}

void mass::rt::fetch(std::map<std::string, Tensor> &tensors) {
  Device *device = activeDevice();
  if (!device)
    return;
  // Every copy queued, then one wait.
  bool queued = false;
  for (auto &entry : tensors) {
    Tensor &t = entry.second;
    Mirror *m = find(t.data());
    if (m && m->deviceNewer) {
      device->downloadAsync(t.data(), m->device,
                            std::min(t.bytes(), m->capacity));
      m->deviceNewer = false;
      queued = true;
    }
  }
  if (queued)
    device->synchronize();
}

void *mass::rt::deviceArena(size_t bytes) {
  State &s = state();
  if (bytes > s.arenaCapacity) {
    releaseDeviceMemory(s, s.arena, s.arenaCarved);
    s.arena = deviceMemory(s, bytes, s.arenaCarved);
    s.arenaCapacity = bytes;
  }
  return s.arena;
}

void mass::rt::reserveDeviceMemory(size_t bytes) {
  State &s = state();
  if (!s.device || s.block || bytes == 0)
    return;
  s.block = static_cast<char *>(s.device->allocate(bytes));
  s.blockSize = bytes;
}
