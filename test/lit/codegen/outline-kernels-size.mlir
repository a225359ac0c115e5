// RUN: mass-opt --mass-outline-kernels="optimize-for-size=true" %s | FileCheck %s
// RUN: mass-opt --mass-outline-kernels %s | FileCheck %s --check-prefix=DEFAULT

// With optimize-for-size, a kernel that only moves data (an im2col copy:
// loads, stores and index arithmetic) or whose loop is vector code
// already is optimised for size by LLVM (optsize: not unrolled, not
// vectorised again); one with scalar arithmetic on floats keeps LLVM's
// unrolling.
// CHECK-LABEL: func.func @step(
// CHECK: call @step_kernel0(
// CHECK: call @step_kernel1(
// CHECK: call @step_kernel2(
// CHECK-LABEL: func.func private @step_kernel0(
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, mass.kernel, no_inline, passthrough = ["optsize"]}
// CHECK: memref.store
// CHECK-LABEL: func.func private @step_kernel1(
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, mass.kernel, no_inline, passthrough = ["optsize"]}
// CHECK: arith.addf {{.*}} : vector<16xf32>
// CHECK-LABEL: func.func private @step_kernel2(
// CHECK-SAME: attributes {llvm.linkage = #llvm.linkage<internal>, mass.kernel, no_inline} {
// CHECK: arith.select
// DEFAULT-NOT: optsize
// DEFAULT: func.func private @step_kernel2(
// DEFAULT-NOT: optsize
func.func @step(%x: memref<8x3x10xf32>, %cols: memref<8x3x3x8xf32>, %a: memref<64xf32>, %b: memref<64xf32>, %mask: memref<64xi1>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%n) = (%c0) to (%c8) step (%c1) {
    scf.for %c = %c0 to %c3 step %c1 {
      scf.for %k = %c0 to %c3 step %c1 {
        scf.for %j = %c0 to %c8 step %c1 {
          %at = arith.addi %j, %k : index
          %v = memref.load %x[%n, %c, %at] : memref<8x3x10xf32>
          memref.store %v, %cols[%n, %c, %k, %j] : memref<8x3x3x8xf32>
        }
      }
    }
  }
  scf.parallel (%i) = (%c0) to (%c64) step (%c16) {
    %v = vector.load %a[%i] : memref<64xf32>, vector<16xf32>
    %w = vector.load %b[%i] : memref<64xf32>, vector<16xf32>
    %s = arith.addf %v, %w : vector<16xf32>
    vector.store %s, %b[%i] : memref<64xf32>, vector<16xf32>
  }
  scf.parallel (%i) = (%c0) to (%c64) step (%c1) {
    %m = memref.load %mask[%i] : memref<64xi1>
    %v = memref.load %a[%i] : memref<64xf32>
    %s = arith.select %m, %v, %zero : f32
    memref.store %s, %b[%i] : memref<64xf32>
  }
  return
}
