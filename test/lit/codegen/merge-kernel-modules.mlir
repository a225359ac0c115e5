// RUN: mass-opt --mass-merge-kernel-modules %s | FileCheck %s

// Two outlined kernels of the same name, each in its module with its copy
// of a constant global, end in one module: each kernel named after its old
// module, the global once, the launches pointing there.
// CHECK: gpu.module @mass_kernels {
// CHECK-NEXT: memref.global "private" constant @k
// CHECK-NEXT: gpu.func @f_kernel(
// CHECK: gpu.func @f_kernel_0(
// CHECK-NOT: gpu.module
// CHECK-NOT: memref.global "private" constant @k
// CHECK: gpu.launch_func @mass_kernels::@f_kernel blocks
// CHECK-NEXT: gpu.launch_func @mass_kernels::@f_kernel_0 blocks
module attributes {gpu.container_module} {
  memref.global "private" constant @k : memref<f32> = dense<2.0>
  gpu.module @f_kernel {
    memref.global "private" constant @k : memref<f32> = dense<2.0>
    gpu.func @f_kernel(%a: memref<4xf32>) kernel {
      %g = memref.get_global @k : memref<f32>
      gpu.return
    }
  }
  gpu.module @f_kernel_0 {
    memref.global "private" constant @k : memref<f32> = dense<2.0>
    gpu.func @f_kernel(%a: memref<4xf32>) kernel {
      %g = memref.get_global @k : memref<f32>
      gpu.return
    }
  }
  func.func @f(%a: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @f_kernel::@f_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @f_kernel_0::@f_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    return
  }
}
