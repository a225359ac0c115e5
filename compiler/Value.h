//===- Value.h - Values while elaborating a model ---------------*- C++ -*-===//
//
// Blocks are compile-time functions: while the frontend expands a model, a
// name holds either a tensor (an SSA value of the function being built) or a
// compile-time value: a number, a bool, a string, a list or tuple, or a
// tensor type such as f32[8, 16].
//
//===----------------------------------------------------------------------===//
#ifndef MASS_COMPILER_VALUE_H
#define MASS_COMPILER_VALUE_H

#include "compiler/AST.h"

#include "mlir/IR/Value.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace mass {

/// The largest size, stride, count or dimension a layer argument or a type
/// may give, and the most elements one tensor may hold (before the batch
/// dimension): sizes beyond them are errors, never wrapped or overflowed.
constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxElements = int64_t(1) << 40;

struct Value {
  /// Poison: what a name holds when its statement failed, so that uses
  /// of it fail quietly instead of repeating the error ("unknown name").
  enum class Kind { Tensor, Number, Bool, String, List, Tuple, Type, Poison };

  Kind kind = Kind::Number;
  ast::Loc loc;                // where the value was written or computed
  mlir::Value tensor;          // Tensor
  double number = 0;           // Number
  bool isInteger = false;      // Number written or computed as an integer
  bool boolean = false;        // Bool
  std::string str;             // String; the dtype of a Type
  std::vector<Value> elements; // List, Tuple
  std::vector<int64_t> dims;   // Type: -1 for the batch dimension

  static Value ofTensor(mlir::Value v, ast::Loc loc) {
    Value r;
    r.kind = Kind::Tensor;
    r.tensor = v;
    r.loc = std::move(loc);
    return r;
  }
  static Value ofNumber(double n, bool isInteger, ast::Loc loc) {
    Value r;
    r.kind = Kind::Number;
    r.number = n;
    r.isInteger = isInteger;
    r.loc = std::move(loc);
    return r;
  }
  static Value ofBool(bool b, ast::Loc loc) {
    Value r;
    r.kind = Kind::Bool;
    r.boolean = b;
    r.loc = std::move(loc);
    return r;
  }

  static Value poison(ast::Loc loc) {
    Value r;
    r.kind = Kind::Poison;
    r.loc = std::move(loc);
    return r;
  }

  bool isTensor() const { return kind == Kind::Tensor; }
  bool isNumber() const { return kind == Kind::Number; }
  bool isSeq() const { return kind == Kind::List || kind == Kind::Tuple; }

  /// This number as an integer, when it is an integer within +-kMaxDim.
  std::optional<int64_t> asInteger() const {
    if (!isNumber() || !isInteger || !(std::fabs(number) <= kMaxDim))
      return std::nullopt;
    return static_cast<int64_t>(number);
  }

  /// "a tensor [B, 10]", "the number 3", ...: for diagnostics.
  std::string describe() const;
};

} // namespace mass

#endif // MASS_COMPILER_VALUE_H
