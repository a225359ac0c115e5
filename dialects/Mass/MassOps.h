//===- MassOps.h - Operations of the mass dialect ---------------*- C++ -*-===//
#ifndef MASS_DIALECT_MASSOPS_H
#define MASS_DIALECT_MASSOPS_H

#include "dialects/Mass/MassDialect.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/Mass/MassInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/Mass/MassOps.h.inc"

#endif // MASS_DIALECT_MASSOPS_H
