//===- Passes.h - Passes of the mass dialect --------------------*- C++ -*-===//
#ifndef MASS_DIALECT_PASSES_H
#define MASS_DIALECT_PASSES_H

#include "dialects/Mass/MassDialect.h"

#include "mlir/Pass/Pass.h"

namespace mass {

#define GEN_PASS_DECL
#include "dialects/Mass/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/Mass/Passes.h.inc"

} // namespace mass

#endif // MASS_DIALECT_PASSES_H
