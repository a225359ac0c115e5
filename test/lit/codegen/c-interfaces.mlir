// RUN: mass-opt --mass-c-interfaces %s | FileCheck %s

// Entry points get C interfaces; their role attributes, which the model
// descriptor holds, are dropped.
// CHECK-LABEL: func.func @update
// CHECK-SAME: (%{{.*}}: tensor<2xf32>) -> tensor<2xf32> attributes {llvm.emit_c_interface}
// CHECK-NOT: mass.param
func.func @update(%p: tensor<2xf32> {mass.param = "w"}) -> (tensor<2xf32> {mass.param = "w"}) {
  return %p : tensor<2xf32>
}

// The step's gradient results keep where their out-parameters will be:
// after the two arguments, results 1 and 2 are values 3 and 4.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: attributes {llvm.emit_c_interface, mass.grad_values = array<i64: 3, 4>}
func.func @train_step(%x: tensor<2xf32> {mass.input = "x"}, %w: tensor<2xf32> {mass.param = "w"})
    -> (tensor<f32> {mass.output = "loss"}, tensor<2xf32> {mass.grad = "w"}, tensor<2xf32> {mass.grad = "b"}) {
  %z = arith.constant dense<0.0> : tensor<f32>
  return %z, %x, %w : tensor<f32>, tensor<2xf32>, tensor<2xf32>
}
