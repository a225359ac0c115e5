//===- Json.cpp - A small JSON reader and writer --------------------------===//

#include "Json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

using namespace mass::rt;

Json Json::number(double v) {
  Json j;
  j.k = Kind::Number;
  j.n = v;
  return j;
}
Json Json::string(std::string v) {
  Json j;
  j.k = Kind::String;
  j.s = std::move(v);
  return j;
}
Json Json::boolean(bool v) {
  Json j;
  j.k = Kind::Bool;
  j.b = v;
  return j;
}
Json Json::array() {
  Json j;
  j.k = Kind::Array;
  return j;
}
Json Json::object() {
  Json j;
  j.k = Kind::Object;
  return j;
}

const Json &Json::operator[](const std::string &key) const {
  static const Json null;
  for (const auto &[name, value] : obj)
    if (name == key)
      return value;
  return null;
}

bool Json::has(const std::string &key) const {
  for (const auto &member : obj)
    if (member.first == key)
      return true;
  return false;
}

double Json::numberOr(const std::string &key, double dflt) const {
  const Json &v = (*this)[key];
  return v.isNumber() ? v.n : dflt;
}

std::string Json::stringOr(const std::string &key,
                           const std::string &dflt) const {
  const Json &v = (*this)[key];
  return v.isString() ? v.s : dflt;
}

void Json::set(const std::string &key, Json v) {
  for (auto &member : obj)
    if (member.first == key) {
      member.second = std::move(v);
      return;
    }
  obj.emplace_back(key, std::move(v));
}

std::string mass::rt::jsonEscape(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
  }
  return out + "\"";
}

std::string Json::dump() const {
  switch (k) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return b ? "true" : "false";
  case Kind::Number: {
    if (!std::isfinite(n))
      return "null";
    char buf[32];
    if (n == std::floor(n) && std::fabs(n) < 1e15)
      std::snprintf(buf, sizeof buf, "%.0f", n);
    else
      std::snprintf(buf, sizeof buf, "%.9g", n);
    return buf;
  }
  case Kind::String:
    return jsonEscape(s);
  case Kind::Array: {
    std::string out = "[";
    for (size_t i = 0; i < arr.size(); ++i)
      out += (i ? "," : "") + arr[i].dump();
    return out + "]";
  }
  case Kind::Object: {
    std::string out = "{";
    for (size_t i = 0; i < obj.size(); ++i)
      out += (i ? "," : "") + jsonEscape(obj[i].first) + ":" +
             obj[i].second.dump();
    return out + "}";
  }
  }
  return "null";
}

namespace {

class Parser {
public:
  Parser(const std::string &text) : t(text) {}

  bool run(Json &out, std::string &error) {
    if (!value(out, 0) || (skip(), pos != t.size())) {
      error = err.empty() ? "unexpected text at offset " + std::to_string(pos)
                          : err;
      return false;
    }
    return true;
  }

private:
  const std::string &t;
  size_t pos = 0;
  std::string err;

  void skip() {
    while (pos < t.size() && (t[pos] == ' ' || t[pos] == '\n' ||
                              t[pos] == '\r' || t[pos] == '\t'))
      ++pos;
  }
  bool fail(const std::string &why) {
    if (err.empty())
      err = why + " at offset " + std::to_string(pos);
    return false;
  }
  bool literal(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (t.compare(pos, n, word) != 0)
      return false;
    pos += n;
    return true;
  }

  bool string(std::string &out) {
    if (pos >= t.size() || t[pos] != '"')
      return fail("expected a string");
    ++pos;
    while (pos < t.size() && t[pos] != '"') {
      char c = t[pos++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos >= t.size())
        return fail("unterminated escape");
      char e = t[pos++];
      switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u': {
        if (pos + 4 > t.size())
          return fail("bad \\u escape");
        unsigned code = std::strtoul(t.substr(pos, 4).c_str(), nullptr, 16);
        pos += 4;
        if (code < 0x80) {
          out += static_cast<char>(code);
        } else if (code < 0x800) {
          out += static_cast<char>(0xC0 | (code >> 6));
          out += static_cast<char>(0x80 | (code & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (code >> 12));
          out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code & 0x3F));
        }
        break;
      }
      default:
        out += e;
      }
    }
    if (pos >= t.size())
      return fail("unterminated string");
    ++pos;
    return true;
  }

  bool value(Json &out, int depth) {
    if (depth > 64)
      return fail("nesting too deep");
    skip();
    if (pos >= t.size())
      return fail("unexpected end");
    char c = t[pos];
    if (c == '{') {
      ++pos;
      out = Json::object();
      skip();
      if (pos < t.size() && t[pos] == '}') {
        ++pos;
        return true;
      }
      // A key given twice is an error (a reader would otherwise see one of
      // two values, silently).
      std::unordered_set<std::string> seen;
      while (true) {
        skip();
        std::string key;
        if (!string(key))
          return false;
        if (!seen.insert(key).second)
          return fail("the key '" + key + "' appears twice");
        skip();
        if (pos >= t.size() || t[pos++] != ':')
          return fail("expected ':'");
        Json v;
        if (!value(v, depth + 1))
          return false;
        out.append(std::move(key), std::move(v));
        skip();
        if (pos < t.size() && t[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < t.size() && t[pos] == '}') {
          ++pos;
          return true;
        }
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++pos;
      out = Json::array();
      skip();
      if (pos < t.size() && t[pos] == ']') {
        ++pos;
        return true;
      }
      while (true) {
        Json v;
        if (!value(v, depth + 1))
          return false;
        out.push(std::move(v));
        skip();
        if (pos < t.size() && t[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < t.size() && t[pos] == ']') {
          ++pos;
          return true;
        }
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      std::string s;
      if (!string(s))
        return false;
      out = Json::string(std::move(s));
      return true;
    }
    if (literal("true")) {
      out = Json::boolean(true);
      return true;
    }
    if (literal("false")) {
      out = Json::boolean(false);
      return true;
    }
    if (literal("null")) {
      out = Json();
      return true;
    }
    const char *begin = t.c_str() + pos;
    char *end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin)
      return fail("unexpected character");
    pos += end - begin;
    out = Json::number(v);
    return true;
  }
};

} // namespace

bool Json::parse(const std::string &text, Json &out, std::string &error) {
  return Parser(text).run(out, error);
}
