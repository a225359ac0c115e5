//===- Buckets.cpp - Gradient sums that start during the backward pass ---===//

#include "Buckets.h"

#include "Comm.h"
#include "Device.h"

#include <algorithm>

using namespace mass::rt;

namespace {

/// The buckets of the step running on this thread, between arm and finish.
thread_local GradBuckets *gArmed = nullptr;

} // namespace

void GradBuckets::plan(const std::vector<Grad> &order, double capBytes) {
  grads = order;
  bucketEnd.clear();
  bucketOf.clear();
  positionOf.clear();
  double bytes = 0;
  for (size_t k = 0; k < grads.size(); ++k) {
    double size = static_cast<double>(grads[k].count * sizeof(float));
    if (k > 0 && bytes + size > capBytes) {
      bucketEnd.push_back(k);
      bytes = 0;
    }
    bytes += size;
    bucketOf.push_back(bucketEnd.size());
    if (grads[k].value >= static_cast<int64_t>(positionOf.size()))
      positionOf.resize(static_cast<size_t>(grads[k].value) + 1, -1);
    positionOf[static_cast<size_t>(grads[k].value)] = static_cast<int64_t>(k);
  }
  if (!grads.empty())
    bucketEnd.push_back(grads.size());
  staging.assign(bucketEnd.size(), {});
  waiting.assign(bucketEnd.size(), 0);
}

size_t GradBuckets::bytes() const {
  size_t total = 0;
  for (const Grad &g : grads)
    total += g.count * sizeof(float);
  return total;
}

void GradBuckets::arm(bool noRows, const std::string &name) {
  zeros = noRows;
  what = name;
  started = 0;
  for (size_t b = 0; b < bucketEnd.size(); ++b)
    waiting[b] = bucketEnd[b] - (b ? bucketEnd[b - 1] : 0);
  gArmed = this;
}

void GradBuckets::ready(int64_t value) {
  if (value < 0 || value >= static_cast<int64_t>(positionOf.size()) ||
      positionOf[static_cast<size_t>(value)] < 0)
    comm::fail("mass_grad_ready: the step reported value " +
               std::to_string(value) + ", which is no gradient");
  size_t b =
      bucketOf[static_cast<size_t>(positionOf[static_cast<size_t>(value)])];
  if (waiting[b] == 0)
    comm::fail("mass_grad_ready: the step reported value " +
               std::to_string(value) + " twice");
  // Buckets end in the order of the reports, so each starts after the one
  // before it on every process.
  if (--waiting[b] == 0 && b == started)
    while (started < bucketEnd.size() && waiting[started] == 0) {
      startBucket(started++);
      ++startedDuring;
    }
  comm::progress();
}

void GradBuckets::startBucket(size_t b) {
  size_t first = b ? bucketEnd[b - 1] : 0;
  if (Device *device = activeDevice()) {
    // Queued on the device's stream after the kernels that wrote them (the
    // step may be running: its results' mirrors are not copied up).
    std::vector<DeviceFloats> sums;
    for (size_t k = first; k < bucketEnd[b]; ++k) {
      const Grad &g = grads[k];
      size_t bytes = g.count * sizeof(float);
      auto *data =
          static_cast<float *>(deviceBuffer(g.data, bytes, Sync::Never));
      if (zeros)
        device->zero(data, bytes);
      sums.push_back({data, g.count});
    }
    device->sumRanksBeside(sums, what.c_str());
    // The sums are the gradients now, newer than the host's copies.
    for (size_t k = first; k < bucketEnd[b]; ++k)
      deviceWrote(grads[k].data, grads[k].count * sizeof(float), false);
    return;
  }
  std::vector<float> &into = staging[b];
  into.clear();
  for (size_t k = first; k < bucketEnd[b]; ++k) {
    const Grad &g = grads[k];
    if (zeros)
      into.insert(into.end(), g.count, 0.0f);
    else
      into.insert(into.end(), g.data, g.data + g.count);
  }
  std::string error;
  if (!comm::startSum(into.data(), into.size(), what.c_str(), error))
    comm::fail(error);
}

bool GradBuckets::finish(std::string &error) {
  if (gArmed == this)
    gArmed = nullptr;
  // A step that did not run (no rows here) or stopped reporting.
  while (started < bucketEnd.size())
    startBucket(started++);
  if (Device *device = activeDevice()) {
    device->joinSums();
    return true;
  }
  if (!comm::finishSums(what.c_str(), error))
    return false;
  for (size_t b = 0; b < bucketEnd.size(); ++b) {
    const float *next = staging[b].data();
    for (size_t k = b ? bucketEnd[b - 1] : 0; k < bucketEnd[b]; ++k) {
      std::copy_n(next, grads[k].count, grads[k].data);
      next += grads[k].count;
    }
  }
  return true;
}

extern "C" void mass_grad_ready(int64_t value) {
  if (gArmed)
    gArmed->ready(value);
}
