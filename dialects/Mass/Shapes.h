//===- Shapes.h - Shape rules of the mass ops -------------------*- C++ -*-===//
//
// One place for the shape rules: the frontend uses them to infer types and
// report errors at .mass source locations, the op verifiers to check IR.
// Each rule returns the result shape, or a message that names the shapes.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_DIALECT_SHAPES_H
#define MASS_DIALECT_SHAPES_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <variant>

namespace mass {

using Shape = llvm::SmallVector<int64_t, 4>;

/// A result shape, or why there is none.
class ShapeResult {
public:
  ShapeResult(Shape shape) : value(std::move(shape)) {}
  static ShapeResult error(std::string message) {
    ShapeResult r{Shape{}};
    r.value = std::move(message);
    return r;
  }
  bool ok() const { return std::holds_alternative<Shape>(value); }
  const Shape &shape() const { return std::get<Shape>(value); }
  const std::string &message() const { return std::get<std::string>(value); }

private:
  std::variant<Shape, std::string> value;
};

/// `[B, 1, 28, 28]`: dynamic sizes print as B.
std::string formatShape(llvm::ArrayRef<int64_t> shape);

/// Normalises `axis` (negative counts from the end) against `rank`.
std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank);

ShapeResult broadcastShape(llvm::ArrayRef<int64_t> lhs,
                           llvm::ArrayRef<int64_t> rhs);
ShapeResult denseShape(llvm::ArrayRef<int64_t> input,
                       llvm::ArrayRef<int64_t> weight,
                       const llvm::ArrayRef<int64_t> *bias);
ShapeResult matmulShape(llvm::ArrayRef<int64_t> lhs,
                        llvm::ArrayRef<int64_t> rhs);
ShapeResult reduceShape(llvm::ArrayRef<int64_t> input,
                        llvm::ArrayRef<int64_t> axes, bool keepdim);
/// Inputs joined along `axis` (negative counts from the end): same rank,
/// equal sizes but along `axis`, which may not be the batch.
ShapeResult concatShape(llvm::ArrayRef<llvm::ArrayRef<int64_t>> inputs,
                        int64_t axis);
ShapeResult transposeShape(llvm::ArrayRef<int64_t> input,
                           llvm::ArrayRef<int64_t> perm);
/// `target` may hold one -1 (or a dynamic size) to be inferred.
ShapeResult reshapeShape(llvm::ArrayRef<int64_t> input,
                         llvm::ArrayRef<int64_t> target);
/// A sliding window over H and W: each array holds the height's value and
/// the width's.
struct Window {
  llvm::SmallVector<int64_t, 2> kernel, stride, padding, dilation = {1, 1};
};
/// conv2d: `input [N, C, H, W]`, `weight [O, C / groups, KH, KW]` (the
/// window's kernel comes from the weight).
ShapeResult conv2dShape(llvm::ArrayRef<int64_t> input,
                        llvm::ArrayRef<int64_t> weight, const Window &window,
                        int64_t groups);
/// maxpool and avgpool (`op` names the op in messages): `[N, C, H, W]`.
ShapeResult poolShape(llvm::StringRef op, llvm::ArrayRef<int64_t> input,
                      const Window &window);
/// embedding: `ids [B, ...]` and `weight [V, D]` give `[B, ..., D]`.
ShapeResult embeddingShape(llvm::ArrayRef<int64_t> ids,
                           llvm::ArrayRef<int64_t> weight);
/// attention: `query [B, T, D]`, `key` and `value [B, S, D]`, `heads`
/// dividing D into heads of at most `maxHead` columns; `causal` needs
/// T = S. The result is the query's shape.
ShapeResult attentionShape(llvm::ArrayRef<int64_t> query,
                           llvm::ArrayRef<int64_t> key,
                           llvm::ArrayRef<int64_t> value, int64_t heads,
                           bool causal);
/// The largest head attention's kernels take (abi.h's).
inline constexpr int64_t kMaxAttentionHead = 256;
/// A run of `part`'s size along `axis` of `full`, starting at `offset`,
/// with `full` and `part` equal off that axis (slice and pad).
ShapeResult sliceShape(llvm::ArrayRef<int64_t> full,
                       llvm::ArrayRef<int64_t> part, int64_t axis,
                       int64_t offset);
/// Checks `logits [B, C]` against class-index `labels [B]`.
ShapeResult classifierShape(llvm::ArrayRef<int64_t> logits,
                            llvm::ArrayRef<int64_t> labels);
/// Checks binary accuracy's `logits [B, 1]` against f32 `targets` of the
/// same shape.
ShapeResult binaryAccuracyShape(llvm::ArrayRef<int64_t> logits,
                                llvm::ArrayRef<int64_t> targets);
/// Checks cross_entropy's label smoothing: in [0, 1].
ShapeResult smoothingRange(double smoothing);

} // namespace mass

#endif // MASS_DIALECT_SHAPES_H
