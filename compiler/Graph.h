//===- Graph.h - The model as a graph, for Graphviz -------------*- C++ -*-===//
//
// `massc --emit=dot` draws the model as the source wrote it: one node per
// layer call (with the names and shapes of the parameters it holds), one
// cluster per block call and per task, edges labelled with the shapes that
// flow along them. The elaborator records which call and which block or
// task built each op; printDot reads that record beside the module.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_COMPILER_GRAPH_H
#define MASS_COMPILER_GRAPH_H

#include "compiler/AST.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace mass {

/// What the elaborator records for the graph view.
struct ModelGraph {
  /// A block call or a task; cluster 0 is the model itself.
  struct Cluster {
    int parent = -1;
    bool isTask = false;
    std::string name;  // the block's or the task's name
    ast::Loc loc;      // the call, or the task statement
    double weight = 1; // a task's
    /// A parameter created inside a block call, and its name below the
    /// call ("conv1.weight"): the call's prefix is the rest of its name.
    int anchorArg = -1;
    std::string anchorSuffix;
  };
  /// A layer call, or an arithmetic operator between tensors.
  struct Call {
    int cluster = 0;
    std::string callee; // "conv2d", "+"
    ast::Loc loc;
  };
  std::vector<Cluster> clusters;
  std::vector<Call> calls;
  /// The call that built each op of the model's function.
  llvm::DenseMap<mlir::Operation *, int> callOf;
  /// The call that created each parameter or buffer (by argument number).
  llvm::DenseMap<unsigned, int> ownerOf;
};

/// Prints `module`'s forward function as a Graphviz digraph.
mlir::LogicalResult printDot(mlir::ModuleOp module, const ModelGraph &graph,
                             llvm::raw_ostream &os);

} // namespace mass

#endif // MASS_COMPILER_GRAPH_H
