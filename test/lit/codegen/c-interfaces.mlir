// RUN: mass-opt --mass-c-interfaces %s | FileCheck %s

// Entry points get C interfaces; their role attributes, which the model
// descriptor holds, are dropped.
// CHECK-LABEL: func.func @update
// CHECK-SAME: (%{{.*}}: tensor<2xf32>) -> tensor<2xf32> attributes {llvm.emit_c_interface}
// CHECK-NOT: mass.param
func.func @update(%p: tensor<2xf32> {mass.param = "w"}) -> (tensor<2xf32> {mass.param = "w"}) {
  return %p : tensor<2xf32>
}
