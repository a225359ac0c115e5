//===- Json.h - A small JSON reader and writer ------------------*- C++ -*-===//
//
// Enough JSON for the model descriptor, safetensors headers and the metrics
// log. Objects keep their keys in order.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_JSON_H
#define MASS_RUNTIME_JSON_H

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mass::rt {

class Json {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Json() = default;
  static Json number(double v);
  static Json string(std::string v);
  static Json boolean(bool v);
  static Json array();
  static Json object();

  Kind kind() const { return k; }
  bool isNull() const { return k == Kind::Null; }
  bool isNumber() const { return k == Kind::Number; }
  bool isString() const { return k == Kind::String; }
  bool isArray() const { return k == Kind::Array; }
  bool isObject() const { return k == Kind::Object; }

  double num() const { return n; }
  bool flag() const { return b; }
  const std::string &str() const { return s; }
  const std::vector<Json> &items() const { return arr; }
  const std::vector<std::pair<std::string, Json>> &members() const {
    return obj;
  }

  /// The member `key`, or null when absent (or when this is no object).
  const Json &operator[](const std::string &key) const;
  bool has(const std::string &key) const;
  double numberOr(const std::string &key, double dflt) const;
  std::string stringOr(const std::string &key, const std::string &dflt) const;

  void push(Json v) { arr.push_back(std::move(v)); }
  void set(const std::string &key, Json v);
  /// Appends a member without looking for an earlier one of the same key
  /// (the reader checks for duplicates itself, in constant time per key).
  void append(std::string key, Json v) {
    obj.emplace_back(std::move(key), std::move(v));
  }

  std::string dump() const;

  /// Parses `text`; on failure returns false and says why in `error`.
  static bool parse(const std::string &text, Json &out, std::string &error);

private:
  Kind k = Kind::Null;
  double n = 0;
  bool b = false;
  std::string s;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
};

std::string jsonEscape(const std::string &s);

} // namespace mass::rt

#endif // MASS_RUNTIME_JSON_H
