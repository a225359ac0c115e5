//===- MassOps.h - Operations of the mass dialect ---------------*- C++ -*-===//
#ifndef MASS_DIALECT_MASSOPS_H
#define MASS_DIALECT_MASSOPS_H

#include "dialects/Mass/MassDialect.h"

#include "mlir/IR/BuiltinTypes.h"

#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include <type_traits>

#include "dialects/Mass/MassInterfaces.h.inc"

namespace mass::trait {
/// See Mass_LoopNestReduction in MassInterfaces.td.
template <typename ConcreteType>
class LoopNestReduction
    : public mlir::OpTrait::TraitBase<ConcreteType, LoopNestReduction> {};
/// See Mass_Builtin in MassInterfaces.td.
template <typename ConcreteType>
class Builtin : public mlir::OpTrait::TraitBase<ConcreteType, Builtin> {};
} // namespace mass::trait

#define GET_OP_CLASSES
#include "dialects/Mass/MassOps.h.inc"

#include "dialects/Mass/Shapes.h"

namespace mass {

/// Whether the op has a `kernel` attribute (the pools do).
template <typename Op, typename = void> struct HasKernel : std::false_type {};
template <typename Op>
struct HasKernel<Op, std::void_t<decltype(std::declval<Op>().getKernel())>>
    : std::true_type {};

/// The window of a convolution op or a pool, read from its attributes (a
/// convolution's kernel is its weight's KH and KW, left empty here; pools
/// have no dilation).
template <typename Op> Window windowOf(Op op) {
  Window w;
  w.stride.assign(op.getStride().begin(), op.getStride().end());
  w.padding.assign(op.getPadding().begin(), op.getPadding().end());
  if constexpr (HasKernel<Op>::value)
    w.kernel.assign(op.getKernel().begin(), op.getKernel().end());
  else
    w.dilation.assign(op.getDilation().begin(), op.getDilation().end());
  return w;
}

} // namespace mass

#endif // MASS_DIALECT_MASSOPS_H
