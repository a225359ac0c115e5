// RUN: mass-opt --mass-constant-globals %s | FileCheck %s

// Constant globals are named and placed in the order the module first
// reads them, whatever order bufferization made them in.
// CHECK: memref.global "private" constant @__mass_constant_0 : memref<f32> = dense<1.000000e+00>
// CHECK-NEXT: memref.global "private" constant @__mass_constant_1 : memref<f32> = dense<2.000000e+00>
// CHECK-LABEL: func.func @f
// CHECK: memref.get_global @__mass_constant_0
// CHECK: memref.get_global @__mass_constant_1
memref.global "private" constant @__constant_xf32_1 : memref<f32> = dense<2.0>
memref.global "private" constant @__constant_xf32 : memref<f32> = dense<1.0>
func.func @f() -> f32 {
  %a = memref.get_global @__constant_xf32 : memref<f32>
  %b = memref.get_global @__constant_xf32_1 : memref<f32>
  %x = memref.load %a[] : memref<f32>
  %y = memref.load %b[] : memref<f32>
  %s = arith.addf %x, %y : f32
  return %s : f32
}
