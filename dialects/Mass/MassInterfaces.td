//===- MassInterfaces.td - Interfaces of the mass ops ------*- tablegen -*-===//
#ifndef MASS_INTERFACES_TD
#define MASS_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Mass_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mass";
  let description = [{
    An op that can be differentiated in reverse mode. Its vector-Jacobian
    product is built from other mass ops, so that backward graphs are fused
    and lowered like forward ones.
  }];
  let methods = [
    InterfaceMethod<[{
        Given the gradients of the op's results (null where a result gets
        none), appends one gradient per operand to `operandGrads`: a value of
        the operand's type, or null where the operand gets none (integer
        labels, or a zero gradient).
      }],
      "::mlir::LogicalResult", "buildVJP",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // MASS_INTERFACES_TD
