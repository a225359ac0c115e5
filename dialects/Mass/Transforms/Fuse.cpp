//===- Fuse.cpp - Fusion groups on the mass dialect -------------*- C++ -*-===//
//
// Chains of elementwise ops over one shape, possibly ending in a reduction,
// become mass.fusion regions: the unit that code generation runs as one
// loop nest, and that --emit=fused shows.
//
//===----------------------------------------------------------------------===//

#include "dialects/Mass/MassOps.h"
#include "dialects/Mass/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/SetVector.h"

namespace mass {
#define GEN_PASS_DEF_MASSFUSE
#include "dialects/Mass/Passes.h.inc"
} // namespace mass

using namespace mass;
using namespace mlir;

namespace {

bool isElementwise(Operation *op) { return isa<ElementwiseOpInterface>(op); }

/// Reductions that lower to a single loop nest.
bool isReduction(Operation *op) {
  return op->hasTrait<trait::LoopNestReduction>();
}

struct Group {
  SmallVector<Operation *> members;
  Operation *root;
};

class Fuse : public mass::impl::MassFuseBase<Fuse> {
  void runOnOperation() override {
    for (Block &block : getOperation().getBody())
      duplicateCheapProducers(block);
    for (Block &block : getOperation().getBody())
      for (Group &group : formGroups(block))
        if (group.members.size() > 1)
          outline(group);
  }

  /// A one-instruction elementwise op read by several ops that could each
  /// fuse it (elementwise ops of its shape, reductions of it) gets one copy
  /// per reader: recomputing it in each group costs less than writing it
  /// to memory and reading it back (g * g in the gradient norm and in
  /// Adam's second moment).
  void duplicateCheapProducers(Block &block) {
    SmallVector<Operation *> cheap;
    for (Operation &op : block) {
      if (!isa<AddOp, SubOp, MulOp, NegOp, AbsOp>(op) || op.hasOneUse() ||
          op.use_empty())
        continue;
      Type type = op.getResult(0).getType();
      bool fusable = llvm::all_of(op.getUsers(), [&](Operation *user) {
        return user->getBlock() == &block &&
               ((isElementwise(user) && user->getResult(0).getType() == type) ||
                isReduction(user));
      });
      if (fusable)
        cheap.push_back(&op);
    }
    for (Operation *op : cheap) {
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : op->getUses())
        uses.push_back(&use);
      for (OpOperand *use : llvm::drop_begin(uses)) {
        OpBuilder b(use->getOwner());
        use->set(b.clone(*op)->getResult(0));
      }
    }
  }

  /// Groups the ops of `block`, roots last to first.
  SmallVector<Group> formGroups(Block &block) {
    SmallVector<Group> groups;
    DenseMap<Operation *, unsigned> groupOf;
    SmallVector<Operation *> ops;
    for (Operation &op : block)
      ops.push_back(&op);
    for (Operation *root : llvm::reverse(ops)) {
      bool reduces = isReduction(root);
      if (groupOf.count(root) || !(reduces || isElementwise(root)))
        continue;
      unsigned id = groups.size();
      Type shape = reduces ? root->getOperand(0).getType()
                           : root->getResult(0).getType();
      groups.push_back({{root}, root});
      groupOf[root] = id;
      auto inGroup = [&](Operation *op) {
        auto it = groupOf.find(op);
        return it != groupOf.end() && it->second == id;
      };
      SmallVector<Operation *> work{root};
      while (!work.empty()) {
        Operation *member = work.pop_back_val();
        for (Value operand : member->getOperands()) {
          Operation *producer = operand.getDefiningOp();
          if (!producer || producer->getBlock() != &block ||
              groupOf.count(producer) || !isElementwise(producer) ||
              producer->getResult(0).getType() != shape)
            continue;
          // Other users must run after the group, which runs at its root;
          // a reduction's group has no other results.
          bool joins = llvm::all_of(producer->getUsers(), [&](Operation *u) {
            return inGroup(u) || (!reduces && root->isBeforeInBlock(u));
          });
          if (!joins)
            continue; // may join later, through another member
          groupOf[producer] = id;
          groups.back().members.push_back(producer);
          work.push_back(producer);
        }
      }
    }
    return groups;
  }

  /// Moves the members of `group` into a mass.fusion op at its root.
  void outline(Group &group) {
    llvm::SmallPtrSet<Operation *, 16> members(group.members.begin(),
                                               group.members.end());
    llvm::sort(group.members, [](Operation *a, Operation *b) {
      return a->isBeforeInBlock(b);
    });
    llvm::SetVector<Value> inputs, constants;
    SmallVector<Value> outputs;
    for (Operation *op : group.members) {
      for (Value operand : op->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (def && members.contains(def))
          continue;
        if (matchPattern(operand, m_Constant()))
          constants.insert(operand);
        else
          inputs.insert(operand);
      }
      for (Value result : op->getResults())
        if (llvm::any_of(result.getUsers(),
                         [&](Operation *u) { return !members.contains(u); }))
          outputs.push_back(result);
    }

    OpBuilder b(group.root->getContext());
    b.setInsertionPointAfter(group.root);
    SmallVector<Type> resultTypes;
    for (Value v : outputs)
      resultTypes.push_back(v.getType());
    auto fusion = b.create<FusionOp>(group.root->getLoc(), resultTypes,
                                     inputs.getArrayRef());
    Block *body = b.createBlock(&fusion.getBody());
    IRMapping mapping;
    for (Value input : inputs)
      mapping.map(input, body->addArgument(input.getType(), input.getLoc()));
    for (Value c : constants)
      b.clone(*c.getDefiningOp(), mapping);
    for (Operation *op : group.members)
      b.clone(*op, mapping);
    SmallVector<Value> yielded;
    for (Value v : outputs)
      yielded.push_back(mapping.lookup(v));
    b.create<YieldOp>(group.root->getLoc(), yielded);

    for (auto [value, result] : llvm::zip(outputs, fusion.getResults()))
      value.replaceUsesWithIf(result, [&](OpOperand &use) {
        return !members.contains(use.getOwner());
      });
    for (Operation *op : llvm::reverse(group.members))
      op->erase();
  }
};

} // namespace
