//===- Graph.cpp - The model as a Graphviz digraph ------------------------===//
//
// Nodes are calls (a layer, or an operator between tensors), inputs and
// labels, and each task's loss; clusters are block calls and tasks, nested
// as the source nests them. A node that holds parameters lists them with
// their shapes; an edge carries the shape of the tensor it stands for, the
// batch dimension written B.
//
//===----------------------------------------------------------------------===//

#include "compiler/Graph.h"

#include "mass/vocabulary.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdio>
#include <map>

using namespace mass;

namespace {

/// `text` inside a DOT double-quoted string.
std::string quote(llvm::StringRef text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

/// "B×64×8×8"; "i32 B" for integers; "scalar" for rank 0.
std::string describe(mlir::Type type) {
  auto tensor = mlir::dyn_cast<mlir::RankedTensorType>(type);
  if (!tensor)
    return "";
  std::string out;
  if (!tensor.getElementType().isF32()) {
    llvm::raw_string_ostream os(out);
    os << tensor.getElementType() << " ";
  }
  if (tensor.getRank() == 0)
    return out + "scalar";
  for (auto [i, d] : llvm::enumerate(tensor.getShape())) {
    if (i)
      out += "\u00d7";
    out += mlir::ShapedType::isDynamic(d) ? "B" : std::to_string(d);
  }
  return out;
}

std::string formatNumber(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

struct Node {
  int cluster = 0;
  std::string label;
  std::string tooltip;
  std::string style; // the node's own attributes
  llvm::SetVector<unsigned> params;
};

class DotPrinter {
public:
  DotPrinter(mlir::func::FuncOp func, const ModelGraph &graph)
      : func(func), graph(graph) {}
  void print(llvm::StringRef model, llvm::raw_ostream &os);

private:
  mutable mlir::func::FuncOp func;
  const ModelGraph &graph;
  // By id, in order of appearance.
  llvm::MapVector<std::string, Node, std::map<std::string, unsigned>> nodes;
  std::vector<std::tuple<std::string, std::string, std::string>> edges;
  std::map<int, std::vector<int>> children; // cluster -> child clusters
  std::vector<bool> shown;                  // clusters that hold a node

  llvm::StringRef argName(unsigned arg, abi::Role &role) const;
  std::string clusterLabel(int cluster) const;
  void addEdge(std::string from, std::string to, std::string label) {
    auto edge =
        std::make_tuple(std::move(from), std::move(to), std::move(label));
    if (!llvm::is_contained(edges, edge))
      edges.push_back(std::move(edge));
  }
  void collect();
  void printCluster(int cluster, llvm::raw_ostream &os, unsigned depth);
};

llvm::StringRef DotPrinter::argName(unsigned arg, abi::Role &role) const {
  for (abi::Role r : {abi::Role::Input, abi::Role::Label, abi::Role::Param,
                      abi::Role::Buffer})
    if (auto name = func.getArgAttrOfType<mlir::StringAttr>(
            arg, llvm::StringRef(abi::attr(r)))) {
      role = r;
      return name.getValue();
    }
  role = abi::Role::Output;
  return "";
}

void DotPrinter::collect() {
  mlir::Block &body = func.getBody().front();
  // Ops outside the record (none the elaborator builds) get nodes of
  // their own, numbered in order.
  llvm::DenseMap<mlir::Operation *, unsigned> unrecorded;
  auto nodeOf = [&](mlir::Operation *op) -> std::string {
    auto it = graph.callOf.find(op);
    if (it != graph.callOf.end())
      return "n" + std::to_string(it->second);
    auto [slot, fresh] = unrecorded.try_emplace(op, unrecorded.size());
    return "op" + std::to_string(slot->second);
  };
  // Constants are no nodes: an operator shows its number ("* 0.5"), a
  // layer keeps its own constants to itself.
  auto hidden = [&](mlir::Operation *op) {
    return mlir::isa<mlir::arith::ConstantOp>(op);
  };
  auto isOperator = [&](mlir::Operation *op) {
    auto it = graph.callOf.find(op);
    return it != graph.callOf.end() &&
           llvm::is_contained({"+", "-", "*", "/"},
                              graph.calls[it->second].callee);
  };

  for (mlir::BlockArgument arg : body.getArguments()) {
    abi::Role role;
    llvm::StringRef name = argName(arg.getArgNumber(), role);
    if (role != abi::Role::Input && role != abi::Role::Label)
      continue;
    Node &node = nodes["a" + std::to_string(arg.getArgNumber())];
    node.label = (role == abi::Role::Input ? "input " : "label ") + name.str();
    node.style = role == abi::Role::Input
                     ? "shape=ellipse, fillcolor=\"#dbe8fb\""
                     : "shape=ellipse, fillcolor=\"#e4f3e0\"";
  }

  for (mlir::Operation &op : body) {
    if (mlir::isa<mlir::func::ReturnOp>(op) || hidden(&op))
      continue;
    std::string id = nodeOf(&op);
    bool fresh = !nodes.count(id);
    Node &node = nodes[id];
    if (fresh) {
      auto it = graph.callOf.find(&op);
      if (it != graph.callOf.end()) {
        const ModelGraph::Call &call = graph.calls[it->second];
        node.cluster = call.cluster;
        node.label = call.callee;
        node.tooltip = llvm::formatv("{0}:{1}:{2}", call.loc.file,
                                     call.loc.line, call.loc.col);
      } else {
        node.label = op.getName().getStringRef().str();
      }
    }
    // Operands from outside this op: inputs, parameters, other nodes.
    op.walk([&](mlir::Operation *inner) {
      for (auto [index, operand] : llvm::enumerate(inner->getOperands())) {
        if (auto arg = mlir::dyn_cast<mlir::BlockArgument>(operand)) {
          if (arg.getOwner() != &body)
            continue;
          abi::Role role;
          argName(arg.getArgNumber(), role);
          if (role == abi::Role::Param || role == abi::Role::Buffer)
            nodes[id].params.insert(arg.getArgNumber());
          else
            addEdge("a" + std::to_string(arg.getArgNumber()), id,
                    describe(operand.getType()));
          continue;
        }
        mlir::Operation *def =
            body.findAncestorOpInBlock(*operand.getDefiningOp());
        if (!def || def == &op)
          continue;
        if (hidden(def)) {
          if (!isOperator(&op))
            continue;
          // A number in an expression: "* 0.5", "1 -".
          auto splat = mlir::dyn_cast<mlir::SplatElementsAttr>(
              mlir::cast<mlir::arith::ConstantOp>(def).getValue());
          if (!splat || !splat.getElementType().isF32())
            continue;
          std::string number = formatNumber(splat.getSplatValue<float>());
          std::string &label = nodes[id].label;
          label = index == 0 ? number + " " + label : label + " " + number;
          continue;
        }
        std::string from = nodeOf(def);
        if (from == id)
          continue;
        addEdge(from, id, describe(operand.getType()));
      }
    });
  }

  // Each task's loss, weighted, as a sink in the task's cluster.
  auto ret = mlir::cast<mlir::func::ReturnOp>(body.getTerminator());
  for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
    auto name = func.getResultAttrOfType<mlir::StringAttr>(
        i, llvm::StringRef(abi::attr(abi::Role::Output)));
    if (!name || !name.getValue().starts_with(abi::kLossPrefix))
      continue;
    llvm::StringRef task = name.getValue().drop_front(abi::kLossPrefix.size());
    int cluster = 0;
    double weight = 1;
    for (auto [c, info] : llvm::enumerate(graph.clusters))
      if (info.isTask && info.name == task) {
        cluster = c;
        weight = info.weight;
      }
    std::string id = "loss_" + std::to_string(i);
    Node &node = nodes[id];
    node.cluster = cluster;
    node.label = "loss \u00d7 " + formatNumber(weight);
    node.style = "shape=doubleoctagon, fillcolor=\"#f6dede\"";
    if (mlir::Operation *def = value.getDefiningOp())
      addEdge(nodeOf(body.findAncestorOpInBlock(*def)), id,
              describe(value.getType()));
  }

  // Labels: the parameters each node holds, by their checkpoint names.
  for (auto &[id, node] : nodes) {
    if (node.params.empty()) {
      if (node.style.empty())
        node.style = "fillcolor=white";
      continue;
    }
    node.style = "fillcolor=\"#fdf1d2\"";
    int call = id[0] == 'n' ? std::stoi(id.substr(1)) : -1;
    for (unsigned arg : node.params) {
      abi::Role role;
      llvm::StringRef name = argName(arg, role);
      node.label +=
          "\n" + name.str() + "  " + describe(func.getArgument(arg).getType());
      // Shared: the call that made it uses it too (tied weights).
      auto owner = graph.ownerOf.find(arg);
      if (owner == graph.ownerOf.end() || owner->second == call)
        continue;
      auto maker = nodes.find("n" + std::to_string(owner->second));
      if (maker != nodes.end() && maker->second.params.count(arg))
        node.label += " (shared)";
    }
  }

  shown.assign(graph.clusters.size(), false);
  for (auto &entry : nodes)
    for (int c = entry.second.cluster; c >= 0 && !shown[c];
         c = graph.clusters[c].parent)
      shown[c] = true;
  for (auto [c, info] : llvm::enumerate(graph.clusters))
    if (info.parent >= 0 && shown[c])
      children[info.parent].push_back(c);
}

std::string DotPrinter::clusterLabel(int cluster) const {
  const ModelGraph::Cluster &info = graph.clusters[cluster];
  if (info.isTask)
    return "task " + info.name + " (weight " + formatNumber(info.weight) + ")";
  std::string label = info.name;
  if (info.anchorArg >= 0) {
    abi::Role role;
    llvm::StringRef full = argName(info.anchorArg, role);
    std::string suffix = "." + info.anchorSuffix;
    if (full.ends_with(suffix))
      label += " " + full.drop_back(suffix.size()).str();
  }
  return label;
}

void DotPrinter::printCluster(int cluster, llvm::raw_ostream &os,
                              unsigned depth) {
  std::string indent(2 * depth, ' ');
  for (auto &[id, node] : nodes) {
    if (node.cluster != cluster)
      continue;
    os << indent << id << " [label=" << quote(node.label);
    if (!node.tooltip.empty())
      os << ", tooltip=" << quote(node.tooltip);
    os << ", " << node.style << "];\n";
  }
  auto it = children.find(cluster);
  if (it == children.end())
    return;
  for (int child : it->second) {
    const ModelGraph::Cluster &info = graph.clusters[child];
    os << indent << "subgraph cluster_" << child << " {\n";
    os << indent << "  label=" << quote(clusterLabel(child)) << ";\n";
    os << indent << "  tooltip="
       << quote(llvm::formatv("{0}:{1}:{2}", info.loc.file, info.loc.line,
                              info.loc.col)
                    .str())
       << ";\n";
    os << indent << "  style=\"rounded,filled\"; color=\"#9aa5b1\"; "
       << "fillcolor=" << (info.isTask ? "\"#fbf4f4\"" : "\"#f4f6f8\"")
       << ";\n";
    printCluster(child, os, depth + 1);
    os << indent << "}\n";
  }
}

void DotPrinter::print(llvm::StringRef model, llvm::raw_ostream &os) {
  collect();
  os << "digraph " << quote(model) << " {\n";
  os << "  graph [label=" << quote(model)
     << ", labelloc=t, fontname=\"Helvetica\", fontsize=14, rankdir=TB, "
        "nodesep=0.25, ranksep=0.3];\n";
  os << "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
        "fontsize=10];\n";
  os << "  edge [fontname=\"Helvetica\", fontsize=8, color=\"#4a5560\"];\n";
  printCluster(0, os, 1);
  for (auto &[from, to, label] : edges)
    os << "  " << from << " -> " << to << " [label=" << quote(label) << "];\n";
  os << "}\n";
}

} // namespace

mlir::LogicalResult mass::printDot(mlir::ModuleOp module,
                                   const ModelGraph &graph,
                                   llvm::raw_ostream &os) {
  auto func = module.lookupSymbol<mlir::func::FuncOp>(abi::kForward);
  if (!func || func.getBody().empty()) {
    mlir::emitError(module.getLoc()) << "the module has no forward function";
    return mlir::failure();
  }
  llvm::StringRef model = "model";
  if (auto name = module->getAttrOfType<mlir::StringAttr>("mass.model"))
    model = name.getValue();
  DotPrinter(func, graph).print(model, os);
  return mlir::success();
}
