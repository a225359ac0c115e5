//===- Shapes.cpp - Shape rules of the mass ops ---------------------------===//

#include "dialects/Mass/Shapes.h"

#include "mlir/IR/BuiltinTypeInterfaces.h"
#include "llvm/ADT/STLExtras.h"

#include <optional>
#include <sstream>

using namespace mass;
using llvm::ArrayRef;

static bool isDynamic(int64_t d) { return mlir::ShapedType::isDynamic(d); }

std::string mass::formatShape(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += ", ";
    s += isDynamic(d) ? "B" : std::to_string(d);
  }
  return s + "]";
}

std::optional<int64_t> mass::normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

ShapeResult mass::broadcastShape(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  size_t rank = std::max(lhs.size(), rhs.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i < rank - lhs.size() ? 1 : lhs[i - (rank - lhs.size())];
    int64_t b = i < rank - rhs.size() ? 1 : rhs[i - (rank - rhs.size())];
    if (a == b || b == 1)
      out[i] = a;
    else if (a == 1)
      out[i] = b;
    else
      return ShapeResult::error("cannot broadcast shapes " + formatShape(lhs) +
                                " and " + formatShape(rhs));
  }
  return out;
}

ShapeResult mass::denseShape(ArrayRef<int64_t> input, ArrayRef<int64_t> weight,
                             const ArrayRef<int64_t> *bias) {
  if (input.empty())
    return ShapeResult::error("dense needs an input of rank 1 or more, got " +
                              formatShape(input));
  if (weight.size() != 2 || weight[1] != input.back())
    return ShapeResult::error("dense: weight " + formatShape(weight) +
                              " does not fit input " + formatShape(input) +
                              "; expected [out, " +
                              std::to_string(input.back()) + "]");
  if (bias && (bias->size() != 1 || (*bias)[0] != weight[0]))
    return ShapeResult::error("dense: bias " + formatShape(*bias) +
                              " does not fit weight " + formatShape(weight));
  Shape out(input.begin(), input.end());
  out.back() = weight[0];
  return out;
}

ShapeResult mass::matmulShape(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  if (lhs.size() < 2 || rhs.size() < 2)
    return ShapeResult::error("matmul needs operands of rank 2 or more, got " +
                              formatShape(lhs) + " and " + formatShape(rhs));
  int64_t k1 = lhs.back(), k2 = rhs[rhs.size() - 2];
  if (k1 != k2)
    return ShapeResult::error("matmul: inner dimensions differ: " +
                              formatShape(lhs) + " and " + formatShape(rhs));
  ShapeResult batch = broadcastShape(lhs.drop_back(2), rhs.drop_back(2));
  if (!batch.ok())
    return ShapeResult::error("matmul: batch dimensions of " +
                              formatShape(lhs) + " and " + formatShape(rhs) +
                              " do not broadcast");
  Shape out = batch.shape();
  out.push_back(lhs[lhs.size() - 2]);
  out.push_back(rhs.back());
  return out;
}

ShapeResult mass::reduceShape(ArrayRef<int64_t> input, ArrayRef<int64_t> axes,
                              bool keepdim) {
  int64_t rank = input.size();
  llvm::SmallVector<bool> reduced(rank, false);
  for (int64_t axis : axes) {
    std::optional<int64_t> a = normalizeAxis(axis, rank);
    if (!a)
      return ShapeResult::error("axis " + std::to_string(axis) +
                                " is out of range for " + formatShape(input));
    if (reduced[*a])
      return ShapeResult::error("axis " + std::to_string(axis) +
                                " is named twice");
    reduced[*a] = true;
  }
  Shape out;
  for (int64_t i = 0; i < rank; ++i) {
    if (!reduced[i])
      out.push_back(input[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

ShapeResult mass::concatShape(ArrayRef<ArrayRef<int64_t>> inputs,
                              int64_t axis) {
  if (inputs.empty())
    return ShapeResult::error("concat: needs at least one tensor");
  int64_t rank = inputs[0].size();
  if (axis < -rank || axis >= rank)
    return ShapeResult::error("concat: axis " + std::to_string(axis) +
                              " is out of range for " + formatShape(inputs[0]));
  if (axis < 0)
    axis += rank;
  Shape out(inputs[0].begin(), inputs[0].end());
  out[axis] = 0;
  for (ArrayRef<int64_t> in : inputs) {
    bool fits = (int64_t)in.size() == rank;
    for (int64_t d = 0; fits && d < rank; ++d)
      fits = d == axis || in[d] == inputs[0][d];
    if (!fits)
      return ShapeResult::error("concat: " + formatShape(in) +
                                " does not fit " + formatShape(inputs[0]) +
                                " along axis " + std::to_string(axis));
    if (isDynamic(in[axis]))
      return ShapeResult::error("concat: cannot join along the batch axis of " +
                                formatShape(in));
    out[axis] += in[axis];
  }
  return out;
}

ShapeResult mass::transposeShape(ArrayRef<int64_t> input,
                                 ArrayRef<int64_t> perm) {
  if (perm.size() != input.size())
    return ShapeResult::error("transpose: perm has " +
                              std::to_string(perm.size()) + " entries for " +
                              formatShape(input));
  llvm::SmallVector<bool> seen(input.size(), false);
  Shape out;
  for (int64_t p : perm) {
    if (p < 0 || p >= (int64_t)input.size() || seen[p])
      return ShapeResult::error("transpose: perm is not a permutation of 0.." +
                                std::to_string(input.size() - 1));
    seen[p] = true;
    out.push_back(input[p]);
  }
  return out;
}

ShapeResult mass::reshapeShape(ArrayRef<int64_t> input,
                               ArrayRef<int64_t> target) {
  auto product = [](ArrayRef<int64_t> s) {
    int64_t n = 1;
    for (int64_t d : s)
      if (!isDynamic(d) && d != -1)
        n *= d;
    return n;
  };
  int64_t inputDynamic = llvm::count_if(input, isDynamic);
  int64_t unknown =
      llvm::count_if(target, [](int64_t d) { return d == -1 || isDynamic(d); });
  if (unknown > 1)
    return ShapeResult::error("reshape: at most one size may be inferred, in " +
                              formatShape(target));
  int64_t known = product(target);
  int64_t total = product(input);
  for (int64_t d : target)
    if (!isDynamic(d) && (d == 0 || d < -1))
      return ShapeResult::error("reshape: invalid size in target shape");
  Shape out(target.begin(), target.end());
  if (unknown == 0) {
    if (inputDynamic)
      return ShapeResult::error("reshape: the target shape must keep the "
                                "batch dimension of " +
                                formatShape(input));
    if (known != total)
      return ShapeResult::error("reshape: cannot reshape " +
                                formatShape(input) + " into " +
                                formatShape(target));
    return out;
  }
  if (inputDynamic) {
    // The inferred size becomes dynamic; the static parts must divide one
    // another ([B, 7] into [?, 5, 7] holds when B is a multiple of 5: the
    // inverse of a sequence's positions merged into its batch).
    if (total % known != 0 && known % total != 0)
      return ShapeResult::error("reshape: cannot reshape " +
                                formatShape(input) + " into " +
                                formatShape(target));
    for (int64_t &d : out)
      if (d == -1 || isDynamic(d))
        d = mlir::ShapedType::kDynamic;
    return out;
  }
  if (total % known != 0)
    return ShapeResult::error("reshape: cannot reshape " + formatShape(input) +
                              " into " + formatShape(target));
  for (int64_t &d : out)
    if (d == -1 || isDynamic(d))
      d = total / known;
  return out;
}

ShapeResult mass::embeddingShape(ArrayRef<int64_t> ids,
                                 ArrayRef<int64_t> weight) {
  if (weight.size() != 2 || isDynamic(weight[0]) || isDynamic(weight[1]))
    return ShapeResult::error(
        "embedding: expected a static table [V, D], got " +
        formatShape(weight));
  if (ids.empty())
    return ShapeResult::error("embedding: expected ids [B, ...], got a scalar");
  Shape out(ids.begin(), ids.end());
  out.push_back(weight[1]);
  return out;
}

ShapeResult mass::attentionShape(ArrayRef<int64_t> query, ArrayRef<int64_t> key,
                                 ArrayRef<int64_t> value, int64_t heads,
                                 bool causal) {
  if (query.size() != 3 || key.size() != 3 || value.size() != 3)
    return ShapeResult::error("attention: expected query [B, T, D] and key "
                              "and value [B, S, D], got " +
                              formatShape(query) + ", " + formatShape(key) +
                              " and " + formatShape(value));
  int64_t dim = query[2];
  if (isDynamic(dim) || isDynamic(query[1]) || isDynamic(key[1]))
    return ShapeResult::error("attention: the sequence and feature sizes "
                              "must be static, got " +
                              formatShape(query));
  if (key != value || key[0] != query[0] || key[2] != dim)
    return ShapeResult::error("attention: key " + formatShape(key) +
                              " and value " + formatShape(value) +
                              " must both be [B, S, " + std::to_string(dim) +
                              "] for query " + formatShape(query));
  if (heads < 1 || dim % heads != 0)
    return ShapeResult::error("attention: " + std::to_string(heads) +
                              " heads do not divide " + std::to_string(dim) +
                              " features");
  if (dim / heads > kMaxAttentionHead)
    return ShapeResult::error("attention: heads of " +
                              std::to_string(dim / heads) +
                              " features are not supported yet (at most " +
                              std::to_string(kMaxAttentionHead) + ")");
  if (causal && query[1] != key[1])
    return ShapeResult::error("attention: a causal mask needs as many keys as "
                              "queries, got " +
                              std::to_string(query[1]) + " and " +
                              std::to_string(key[1]));
  return Shape(query.begin(), query.end());
}

ShapeResult mass::sliceShape(ArrayRef<int64_t> full, ArrayRef<int64_t> part,
                             int64_t axis, int64_t offset) {
  if (axis < 0 || axis >= (int64_t)full.size() || full.size() != part.size())
    return ShapeResult::error("axis " + std::to_string(axis) +
                              " does not fit " + formatShape(full) + " and " +
                              formatShape(part));
  for (int64_t d = 0; d < (int64_t)full.size(); ++d)
    if (d != axis && full[d] != part[d])
      return ShapeResult::error(formatShape(part) + " differs from " +
                                formatShape(full) + " off axis " +
                                std::to_string(axis));
  if (isDynamic(full[axis]) || isDynamic(part[axis]) || offset < 0 ||
      offset + part[axis] > full[axis])
    return ShapeResult::error("positions " + std::to_string(offset) + " to " +
                              std::to_string(offset + part[axis]) +
                              " are not in " + formatShape(full) +
                              " along axis " + std::to_string(axis));
  return Shape(part.begin(), part.end());
}

ShapeResult mass::classifierShape(ArrayRef<int64_t> logits,
                                  ArrayRef<int64_t> labels) {
  if (logits.size() != 2)
    return ShapeResult::error("expected logits of shape [B, classes] (or "
                              "[B, T, classes] with labels [B, T]), got " +
                              formatShape(logits));
  if (labels.size() != 1 || labels[0] != logits[0])
    return ShapeResult::error("labels " + formatShape(labels) +
                              " do not fit logits " + formatShape(logits) +
                              "; expected [" +
                              formatShape(logits.take_front()).substr(1));
  return Shape{};
}

ShapeResult mass::binaryAccuracyShape(ArrayRef<int64_t> logits,
                                      ArrayRef<int64_t> targets) {
  if (logits.size() != 2 || logits[1] != 1 || targets != logits)
    return ShapeResult::error(
        "binary accuracy needs logits [B, 1] and f32 targets of the same "
        "shape, got " +
        formatShape(logits) + " and " + formatShape(targets));
  return Shape(logits.begin(), logits.end());
}

ShapeResult mass::smoothingRange(double smoothing) {
  if (smoothing < 0.0 || smoothing > 1.0) {
    std::ostringstream os;
    os << "smoothing must lie in [0, 1], got " << smoothing;
    return ShapeResult::error(os.str());
  }
  return Shape{};
}

/// The output size of a window along one axis, or -1 when it has none.
static int64_t windowOutput(int64_t in, int64_t kernel, int64_t stride,
                            int64_t pad, int64_t dilation) {
  int64_t span = dilation * (kernel - 1) + 1;
  if (in + 2 * pad < span)
    return -1;
  return (in + 2 * pad - span) / stride + 1;
}

/// Checks the window's numbers and the spatial sizes of `input`; fills
/// the output's H and W into `out`.
static std::optional<std::string> spatial(llvm::StringRef op,
                                          ArrayRef<int64_t> input,
                                          const Window &w, Shape &out) {
  auto pair = [](ArrayRef<int64_t> v) {
    return v[0] == v[1]
               ? std::to_string(v[0])
               : "[" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + "]";
  };
  if (input.size() != 4)
    return op.str() + ": expected an NCHW tensor [N, C, H, W], got " +
           formatShape(input);
  if (w.kernel.size() != 2 || w.stride.size() != 2 || w.padding.size() != 2 ||
      w.dilation.size() != 2)
    return op.str() + ": kernel, stride, padding and dilation need two values";
  for (int i = 0; i < 2; ++i) {
    if (w.kernel[i] < 1)
      return op.str() + ": the kernel must be positive, got " + pair(w.kernel);
    if (w.stride[i] < 1)
      return op.str() + ": the stride must be positive, got " + pair(w.stride);
    if (w.dilation[i] < 1)
      return op.str() + ": the dilation must be positive, got " +
             pair(w.dilation);
    if (w.padding[i] < 0)
      return op.str() + ": the padding must not be negative, got " +
             pair(w.padding);
    if (isDynamic(input[2 + i]))
      return op.str() + ": H and W must have static sizes, got " +
             formatShape(input);
    int64_t size = windowOutput(input[2 + i], w.kernel[i], w.stride[i],
                                w.padding[i], w.dilation[i]);
    if (size < 1)
      return op.str() + ": a " + pair(w.kernel) + " window" +
             (w.dilation[i] > 1 ? " dilated by " + pair(w.dilation) : "") +
             " does not fit " + formatShape(input) + " padded by " +
             pair(w.padding);
    out.push_back(size);
  }
  return std::nullopt;
}

ShapeResult mass::conv2dShape(ArrayRef<int64_t> input, ArrayRef<int64_t> weight,
                              const Window &window, int64_t groups) {
  if (weight.size() != 4)
    return ShapeResult::error("conv2d: expected a weight [O, C / groups, KH, "
                              "KW], got " +
                              formatShape(weight));
  if (input.size() == 4 && isDynamic(input[1]))
    return ShapeResult::error("conv2d: the channel axis must have a static "
                              "size, got " +
                              formatShape(input));
  if (groups < 1)
    return ShapeResult::error("conv2d: groups must be positive, got " +
                              std::to_string(groups));
  Window w = window;
  w.kernel = {weight[2], weight[3]};
  Shape out;
  if (input.size() == 4) {
    out = {input[0], weight[0]};
    if (input[1] % groups || weight[0] % groups)
      return ShapeResult::error(
          "conv2d: groups (" + std::to_string(groups) +
          ") must divide the input's channels (" + std::to_string(input[1]) +
          ") and the output's (" + std::to_string(weight[0]) + ")");
    if (input[1] / groups != weight[1])
      return ShapeResult::error("conv2d: a weight " + formatShape(weight) +
                                " takes " + std::to_string(weight[1] * groups) +
                                " input channels, got " + formatShape(input));
  }
  if (std::optional<std::string> e = spatial("conv2d", input, w, out))
    return ShapeResult::error(*e);
  return out;
}

ShapeResult mass::poolShape(llvm::StringRef op, ArrayRef<int64_t> input,
                            const Window &window) {
  Shape out;
  if (input.size() == 4)
    out = {input[0], input[1]};
  if (std::optional<std::string> e = spatial(op, input, window, out))
    return ShapeResult::error(*e);
  for (int i = 0; i < 2; ++i)
    if (2 * window.padding[i] > window.kernel[i])
      return ShapeResult::error(
          op.str() + ": the padding (" + std::to_string(window.padding[i]) +
          ") may be at most half the kernel (" +
          std::to_string(window.kernel[i]) + "), as in PyTorch");
  return out;
}
