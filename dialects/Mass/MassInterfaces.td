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

def Mass_ElementwiseOpInterface : OpInterface<"ElementwiseOpInterface"> {
  let cppNamespace = "::mass";
  let description = [{
    An op that applies one scalar function to every element of its
    operands, broadcast NumPy-style to its result's shape. Fusion groups
    such ops, and every backend lowers them through the one scalar body
    this interface builds (MassScalar.cpp), so that an elementwise op is
    written once.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds the scalar function: the result element from one element of
        each operand, as arith and math ops (f32).
      }],
      "::mlir::Value", "buildScalar",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::Location":$loc,
           "::mlir::ValueRange":$elements)>
  ];
}

// A reduction that lowers to one loop nest carrying a running value (sum,
// maximum): fusion may end a group of elementwise ops with it.
def Mass_LoopNestReduction : NativeOpTrait<"LoopNestReduction"> {
  let cppNamespace = "::mass::trait";
}

// A unary elementwise op that the language calls by its mnemonic,
// `NAME(x)`: the frontend's table of built-ins lists it without an entry of
// its own.
def Mass_Builtin : NativeOpTrait<"Builtin"> {
  let cppNamespace = "::mass::trait";
}

#endif // MASS_INTERFACES_TD
