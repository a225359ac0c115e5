// RUN: mass-opt --mass-predict %s | FileCheck %s

// The predictions are what the loss and metric ops judge: @predict stops
// there, @score starts there.
module {
  func.func @forward(%x: tensor<?x4xf32> {mass.input = "x"},
                     %y: tensor<?xi32> {mass.label = "y"},
                     %t: tensor<?x1xf32> {mass.label = "t"},
                     %w: tensor<3x4xf32> {mass.param = "w"},
                     %v: tensor<1x4xf32> {mass.param = "v"})
      -> (tensor<f32> {mass.output = "loss.a"}, tensor<f32> {mass.output = "loss.b"}) {
    %0 = mass.dense %x, %w : (tensor<?x4xf32>, tensor<3x4xf32>) -> tensor<?x3xf32>
    %1 = mass.relu %0 : tensor<?x3xf32>
    %2 = mass.cross_entropy %1, %y : tensor<?x3xf32>, tensor<?xi32>
    %3 = mass.dense %x, %v : (tensor<?x4xf32>, tensor<1x4xf32>) -> tensor<?x1xf32>
    %4 = mass.mse %3, %t : tensor<?x1xf32>
    return %2, %4 : tensor<f32>, tensor<f32>
  }
}

// CHECK-LABEL: func.func @predict(
// CHECK-SAME: -> (tensor<?x3xf32> {mass.kind = "logits", mass.pred = "pred.0"}, tensor<?x1xf32> {mass.kind = "value", mass.pred = "pred.1"})
// CHECK: %[[D:.*]] = mass.dense
// CHECK: %[[R:.*]] = mass.relu %[[D]]
// CHECK: %[[V:.*]] = mass.dense
// CHECK-NOT: mass.cross_entropy
// CHECK-NOT: mass.mse
// CHECK: return %[[R]], %[[V]]

// CHECK-LABEL: func.func @score(
// CHECK-SAME: %[[Y:[a-z0-9]+]]: tensor<?xi32> {mass.label = "y"}
// CHECK-SAME: %[[T:[a-z0-9]+]]: tensor<?x1xf32> {mass.label = "t"}
// CHECK-SAME: %[[P0:[a-z0-9]+]]: tensor<?x3xf32> {mass.kind = "logits", mass.pred = "pred.0"}, %[[P1:[a-z0-9]+]]: tensor<?x1xf32> {mass.kind = "value", mass.pred = "pred.1"})
// CHECK-NOT: mass.dense
// CHECK: %[[CE:.*]] = mass.cross_entropy %[[P0]], %[[Y]]
// CHECK: %[[MSE:.*]] = mass.mse %[[P1]], %[[T]]
// CHECK: return %[[CE]], %[[MSE]]
