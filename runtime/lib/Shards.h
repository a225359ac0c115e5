//===- Shards.h - The sharded optimizer's split of the parameters -*- C++
//-*-===//
//
// --shard-optimizer (ZeRO stage 1): the trained parameters, one after
// another in the update's order, form one flat vector of T values, and
// process r of N owns the values [T*r/N, T*(r+1)/N) of it (the first T%N
// processes one more): it alone holds their optimizer state and updates
// them. A parameter may be cut between two owners; each owner's part of it
// is a piece. An owner keeps its pieces' state in one vector, laid out
// learning-rate scale by scale (the slice update takes one rate a call),
// each scale's pieces one after another, and updates it in calls of the
// compiled update_slice over `chunk` values at a time.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_SHARDS_H
#define MASS_RUNTIME_SHARDS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mass::rt {

class ShardPlan {
public:
  /// Values [begin, begin + count) of parameter `param` (its index in the
  /// update's order), owned by `owner`; on the owner they lie at `at` in
  /// its state's layout (-1 elsewhere).
  struct Piece {
    size_t param;
    int64_t begin, count;
    int owner;
    int64_t at;
  };
  /// One call of the slice update: `count` (at most the chunk) values from
  /// `at` in this process's layout, at the rate times `scale`.
  struct Chunk {
    int64_t at, count;
    double scale;
  };

  /// Splits parameters of `sizes` values with learning-rate `scales` among
  /// `ranks` processes, for process `rank`. False, with a message, when a
  /// process would own more values than MPI counts (2^31 - 1).
  bool plan(const std::vector<int64_t> &sizes,
            const std::vector<double> &scales, int ranks, int rank,
            int64_t chunk, std::string &error);

  /// Every piece, in the flat vector's order (so owners ascend).
  const std::vector<Piece> &pieces() const { return all; }
  /// Values per owner.
  const std::vector<int> &counts() const { return perOwner; }
  /// This process's share: its values, and its calls of the slice update.
  int64_t owned() const { return mine; }
  const std::vector<Chunk> &chunks() const { return calls; }
  /// Where parameter `param`'s values start in the flat vector.
  int64_t offset(size_t param) const { return offsets[param]; }

private:
  std::vector<Piece> all;
  std::vector<int> perOwner;
  std::vector<int64_t> offsets;
  std::vector<Chunk> calls;
  int64_t mine = 0;
};

} // namespace mass::rt

#endif // MASS_RUNTIME_SHARDS_H
