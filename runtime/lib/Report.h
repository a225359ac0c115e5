//===- Report.h - Training curves as an SVG picture -------------*- C++ -*-===//
//
// `--report FILE.svg`: after each round the program redraws the loss and
// every metric of every task, train and validation, one panel per task and
// value, as a standalone SVG document a browser shows.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_REPORT_H
#define MASS_RUNTIME_REPORT_H

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mass::rt {

class Report {
public:
  /// One value of a round: `x` is its epoch or step, `split` "train" or
  /// "val". Non-finite values leave a gap.
  void add(double x, const std::string &task, const std::string &value,
           const std::string &split, double y);
  bool empty() const { return series.empty(); }

  /// The curves; `xLabel` names the x axis ("epoch", "step").
  std::string svg(const std::string &title, const std::string &xLabel) const;

  /// The points as text (for a checkpoint, so that a resumed run draws the
  /// rounds before it too), and back; fromText fails on malformed text.
  std::string toText() const;
  bool fromText(const std::string &text);

private:
  // (task, value) -> split -> points, in the order added.
  using Key = std::pair<std::string, std::string>;
  std::map<Key, std::map<std::string, std::vector<std::pair<double, double>>>>
      series;
  std::vector<Key> order; // panels in the order first seen
};

} // namespace mass::rt

#endif // MASS_RUNTIME_REPORT_H
