//===- nearest.h - "Did you mean": the nearest of some names ----*- C++ -*-===//
//
// massc's diagnostics and a training program's flags both suggest the known
// name nearest a misspelled one. Distance is the optimal string alignment
// (edits and swaps of neighbours each count one, so "cdua" is one from
// "cuda"), ignoring case; header-only, as the runtime links no LLVM.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_NEAREST_H
#define MASS_NEAREST_H

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

namespace mass {

/// The optimal-string-alignment distance between `a` and `b`, ignoring
/// case; `limit` + 1 when it exceeds `limit` (or the words are too long).
inline unsigned nameDistance(std::string_view a, std::string_view b,
                             unsigned limit) {
  constexpr size_t kLongest = 256;
  if (a.size() > kLongest || b.size() > kLongest)
    return limit + 1;
  size_t diff = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (diff > limit)
    return limit + 1;
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  size_t n = b.size() + 1;
  std::vector<unsigned> before(n), previous(n), current(n);
  for (size_t j = 0; j < n; ++j)
    previous[j] = static_cast<unsigned>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = static_cast<unsigned>(i);
    for (size_t j = 1; j < n; ++j) {
      unsigned cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      current[j] = std::min(
          {previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1]))
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return std::min(previous[b.size()], limit + 1);
}

/// The candidate nearest `name` (the first of equals) within a third of its
/// length in edits, at most two, as clang's typo correction allows; empty
/// when none is that near, or when `name` is one of them.
template <typename Range>
std::string_view nearestName(std::string_view name, const Range &candidates) {
  std::string_view best;
  unsigned bestDistance =
      std::min<unsigned>(2, static_cast<unsigned>((name.size() + 2) / 3)) + 1;
  for (const auto &c : candidates) {
    std::string_view candidate(c);
    if (candidate == name)
      return {};
    unsigned d = nameDistance(name, candidate, bestDistance);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

} // namespace mass

#endif // MASS_NEAREST_H
