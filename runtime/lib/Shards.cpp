//===- Shards.cpp - The sharded optimizer's split of the parameters -------===//
#include "Shards.h"

#include <algorithm>
#include <climits>

using namespace mass::rt;

bool ShardPlan::plan(const std::vector<int64_t> &sizes,
                     const std::vector<double> &scales, int ranks, int rank,
                     int64_t chunk, std::string &error) {
  all.clear();
  calls.clear();
  offsets.clear();
  perOwner.assign(static_cast<size_t>(ranks), 0);
  int64_t total = 0;
  for (int64_t n : sizes) {
    offsets.push_back(total);
    total += n;
  }
  // Owner r's values start at r * (T / N) + min(r, T % N).
  auto start = [&](int r) {
    return r * (total / ranks) + std::min<int64_t>(r, total % ranks);
  };
  for (int r = 0; r < ranks; ++r) {
    int64_t count = start(r + 1) - start(r);
    if (count > INT_MAX) {
      error = "--shard-optimizer: a process's share of the parameters holds " +
              std::to_string(count) + " values, more than MPI counts (2^31)";
      return false;
    }
    perOwner[static_cast<size_t>(r)] = static_cast<int>(count);
  }
  // The pieces: each parameter cut at the owners' starts.
  int owner = 0;
  for (size_t p = 0; p < sizes.size(); ++p)
    for (int64_t at = offsets[p]; at < offsets[p] + sizes[p];) {
      while (start(owner + 1) <= at)
        ++owner;
      int64_t end = std::min(offsets[p] + sizes[p], start(owner + 1));
      all.push_back({p, at - offsets[p], end - at, owner, -1});
      at = end;
    }
  // This process's layout: its pieces scale by scale (in the order each
  // scale first appears), and the calls over each scale's run.
  std::vector<double> seen;
  for (const Piece &piece : all)
    if (piece.owner == rank &&
        std::find(seen.begin(), seen.end(), scales[piece.param]) == seen.end())
      seen.push_back(scales[piece.param]);
  mine = 0;
  for (double scale : seen) {
    int64_t first = mine;
    for (Piece &piece : all)
      if (piece.owner == rank && scales[piece.param] == scale) {
        piece.at = mine;
        mine += piece.count;
      }
    for (int64_t at = first; at < mine; at += chunk)
      calls.push_back({at, std::min(chunk, mine - at), scale});
  }
  return true;
}
