//===- MassDialect.td - The mass dialect -------------------*- tablegen -*-===//
#ifndef MASS_DIALECT_TD
#define MASS_DIALECT_TD

include "mlir/IR/OpBase.td"

def Mass_Dialect : Dialect {
  let name = "mass";
  let cppNamespace = "::mass";
  let summary = "Graph-level neural network operations on tensors";
  let description = [{
    Ops of the Mass model language on ranked tensors whose first dimension
    (the batch) may be dynamic. Layers that hold parameters take them as
    operands; the parameters themselves are arguments of the enclosing
    function, named by the `mass.param` argument attribute.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::tensor::TensorDialect"];
}

class Mass_Op<string mnemonic, list<Trait> traits = []>
    : Op<Mass_Dialect, mnemonic, traits>;

#endif // MASS_DIALECT_TD
