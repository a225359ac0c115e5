//===- MassDialect.h - The mass dialect -------------------------*- C++ -*-===//
#ifndef MASS_DIALECT_MASSDIALECT_H
#define MASS_DIALECT_MASSDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "dialects/Mass/MassDialect.h.inc"

#endif // MASS_DIALECT_MASSDIALECT_H
