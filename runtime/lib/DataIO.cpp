//===- DataIO.cpp - Reading data files ------------------------------------===//

#include "DataIO.h"
#include "Json.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace mass::rt;

/// Maps `path` read-only: `bytes` are its contents while `mapping` (or a
/// copy of it) lives. An empty file maps to no bytes.
static bool mapFile(const std::string &path,
                    std::shared_ptr<const void> &mapping,
                    std::string_view &bytes, std::string &error) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    error = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "cannot read '" + path + "': not a regular file";
    ::close(fd);
    return false;
  }
  size_t size = static_cast<size_t>(st.st_size);
  void *base =
      size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  int mapErrno = errno;
  ::close(fd);
  if (base == MAP_FAILED) {
    error = "cannot map '" + path + "': " + std::strerror(mapErrno);
    return false;
  }
  mapping = std::shared_ptr<const void>(base, [size](const void *p) {
    if (p)
      ::munmap(const_cast<void *>(p), size);
  });
  bytes = std::string_view(static_cast<const char *>(base), size);
  return true;
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

bool mass::rt::readNpy(const std::string &path, Tensor &out,
                       std::string &error) {
  std::shared_ptr<const void> mapping;
  std::string_view bytes;
  if (!mapFile(path, mapping, bytes, error))
    return false;
  auto bad = [&](const std::string &why) {
    error = "'" + path + "' is not a usable .npy file: " + why;
    return false;
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return bad("no .npy magic");
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(bytes[8]) |
                (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else {
    if (bytes.size() < 12)
      return bad("truncated header");
    headerLen = 0;
    for (int k = 0; k < 4; ++k)
      headerLen |= size_t(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
    offset = 12;
  }
  if (offset + headerLen > bytes.size())
    return bad("truncated header");
  std::string header(bytes.substr(offset, headerLen));
  auto field = [&](const std::string &key) -> std::string {
    size_t p = header.find("'" + key + "'");
    if (p == std::string::npos)
      return "";
    p = header.find(':', p);
    if (p == std::string::npos)
      return "";
    size_t q = p + 1;
    while (q < header.size() && header[q] == ' ')
      ++q;
    if (q >= header.size())
      return "";
    if (header[q] == '(') {
      size_t e = header.find(')', q);
      return e == std::string::npos ? "" : header.substr(q, e - q + 1);
    }
    size_t e = header.find_first_of(",}", q);
    return header.substr(q, e == std::string::npos ? e : e - q);
  };
  std::string descr = field("descr"), order = field("fortran_order"),
              shapeText = field("shape");
  if (order.find("True") != std::string::npos)
    return bad("Fortran order is not supported; save a C-ordered array");
  // The shape: a tuple of non-negative sizes whose product the file's
  // length can hold (checked before anything is allocated).
  std::vector<int64_t> shape;
  if (shapeText.empty() || shapeText.front() != '(')
    return bad("no shape in the header");
  for (size_t k = 1; k + 1 < shapeText.size();) {
    unsigned char c = static_cast<unsigned char>(shapeText[k]);
    if (std::isdigit(c)) {
      size_t e = k;
      while (e < shapeText.size() &&
             std::isdigit(static_cast<unsigned char>(shapeText[e])))
        ++e;
      if (e - k > 15)
        return bad("the shape " + shapeText + " is too large");
      shape.push_back(std::stoll(shapeText.substr(k, e - k)));
      k = e;
    } else if (c == ',' || c == ' ' || c == 'L') {
      ++k;
    } else {
      return bad("the shape " + shapeText + " is not a tuple of sizes");
    }
  }
  struct Kind {
    const char *descr;
    size_t size;
    bool isFloat;
  };
  static const Kind kinds[] = {{"'<f4'", 4, true},  {"'<f8'", 8, true},
                               {"'<i4'", 4, false}, {"'<i8'", 8, false},
                               {"'<i2'", 2, false}, {"'<u2'", 2, false},
                               {"'|u1'", 1, false}, {"'|i1'", 1, false}};
  const Kind *kind = nullptr;
  for (const Kind &k : kinds)
    if (descr == k.descr)
      kind = &k;
  if (!kind)
    return bad("element type " + descr +
               " is not supported (use float32, float64, int32, int64 or "
               "uint8)");
  size_t data = offset + headerLen;
  size_t available = (bytes.size() - data) / kind->size, count = 1;
  for (int64_t d : shape) {
    if (d != 0 && count > available / static_cast<size_t>(d))
      return bad("the data is shorter than its shape " + formatShape(shape));
    count *= static_cast<size_t>(d);
  }
  if (bytes.size() - data != count * kind->size)
    return bad("the data is " +
               std::string(bytes.size() - data < count * kind->size
                               ? "shorter"
                               : "longer") +
               " than its shape " + formatShape(shape));
  const char *p = bytes.data() + data;
  // float32 and int32 stay in the mapping: the tensor views them.
  if (kind->size == 4 && reinterpret_cast<uintptr_t>(p) % 4 == 0) {
    Tensor t;
    t.dtype = kind->isFloat ? DType::F32 : DType::I32;
    t.shape = shape;
    t.view = p;
    t.keep = mapping;
    out = std::move(t);
    return true;
  }
  Tensor t(kind->isFloat ? DType::F32 : DType::I32, shape);
  for (int64_t k = 0; k < t.numel(); ++k) {
    const char *e = p + k * kind->size;
    if (kind->isFloat) {
      if (kind->size == 4) {
        std::memcpy(&t.f[k], e, 4);
      } else {
        double v;
        std::memcpy(&v, e, 8);
        t.f[k] = static_cast<float>(v);
      }
    } else if (kind->size == 4) {
      std::memcpy(&t.i[k], e, 4);
    } else if (kind->size == 8) {
      int64_t v;
      std::memcpy(&v, e, 8);
      if (v < INT32_MIN || v > INT32_MAX)
        return bad("element " + std::to_string(k) + " (" + std::to_string(v) +
                   ") does not fit in int32");
      t.i[k] = static_cast<int32_t>(v);
    } else if (kind->size == 2) {
      uint16_t v;
      std::memcpy(&v, e, 2);
      t.i[k] = std::strcmp(kind->descr, "'<u2'") == 0
                   ? static_cast<int32_t>(v)
                   : static_cast<int32_t>(static_cast<int16_t>(v));
    } else {
      t.i[k] = std::strcmp(kind->descr, "'|u1'") == 0
                   ? static_cast<unsigned char>(*e)
                   : static_cast<signed char>(*e);
    }
  }
  out = std::move(t);
  return true;
}

void mass::rt::pageIn(const Tensor &t) {
#ifdef MADV_POPULATE_READ
  if (!t.view || t.numel() == 0)
    return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = reinterpret_cast<uintptr_t>(t.view) / page * page;
  uintptr_t end = reinterpret_cast<uintptr_t>(t.view) + t.bytes();
  ::madvise(reinterpret_cast<void *>(begin), end - begin, MADV_POPULATE_READ);
#else
  (void)t;
#endif
}

bool mass::rt::readTokens(const std::string &path, std::vector<int32_t> &out,
                          std::string &error) {
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0) {
    Tensor t;
    if (!readNpy(path, t, error))
      return false;
    if (t.dtype != DType::I32 || t.shape.size() != 1) {
      error = "'" + path +
              "' is not a token stream: expected a 1-D integer "
              "array, got " +
              std::string(t.dtype == DType::I32 ? "integers " : "floats ") +
              formatShape(t.shape);
      return false;
    }
    out.assign(t.ints(), t.ints() + t.numel());
    return true;
  }
  std::shared_ptr<const void> mapping;
  std::string_view bytes;
  if (!mapFile(path, mapping, bytes, error))
    return false;
  auto bad = [&](const std::string &why) {
    error = "'" + path + "' is not a token stream (llm.c's .bin): " + why;
    return false;
  };
  constexpr size_t kHeader = 256 * 4;
  if (bytes.size() < kHeader)
    return bad("shorter than its 1024-byte header");
  int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof header);
  if (header[0] != 20240520)
    return bad("the magic number is " + std::to_string(header[0]) +
               ", not 20240520");
  if (header[1] != 1)
    return bad("version " + std::to_string(header[1]) +
               " is not supported (only 1: uint16 tokens)");
  if (header[2] < 0 ||
      bytes.size() - kHeader != static_cast<size_t>(header[2]) * 2)
    return bad("the header counts " + std::to_string(header[2]) +
               " tokens but the file holds " +
               std::to_string((bytes.size() - kHeader) / 2));
  out.resize(static_cast<size_t>(header[2]));
  for (size_t k = 0; k < out.size(); ++k) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + kHeader + 2 * k, 2);
    out[k] = v;
  }
  return true;
}

bool mass::rt::writeNpy(const std::string &path, const Tensor &t,
                        std::string &error) {
  std::string shape = "(";
  for (int64_t d : t.shape)
    shape += std::to_string(d) + ",";
  if (t.shape.size() > 1)
    shape.pop_back();
  shape += ")";
  std::string header = "{'descr': '" +
                       std::string(t.dtype == DType::F32 ? "<f4" : "<i4") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xFF);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char *>(t.data()), t.bytes());
  return writeFileAtomically(path, bytes, error);
}

//===----------------------------------------------------------------------===//
// CSV
//===----------------------------------------------------------------------===//

static std::vector<std::string> splitCsvLine(std::string_view line) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (size_t k = 0; k < line.size(); ++k) {
    char c = line[k];
    if (quoted) {
      if (c == '"' && k + 1 < line.size() && line[k + 1] == '"') {
        cell += '"';
        ++k;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.push_back(cell);
      cell.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  cells.push_back(cell);
  return cells;
}

bool mass::rt::readCsvColumns(const std::string &path,
                              const std::vector<std::string> &columns,
                              Tensor &out, std::string &error) {
  std::shared_ptr<const void> mapping;
  std::string_view contents;
  if (!mapFile(path, mapping, contents, error))
    return false;
  // Lines end at '\n'; splitCsvLine drops a '\r' before it.
  size_t cursor = 0;
  auto nextLine = [&](std::string_view &line) {
    if (cursor >= contents.size())
      return false;
    size_t end = contents.find('\n', cursor);
    if (end == std::string_view::npos)
      end = contents.size();
    line = contents.substr(cursor, end - cursor);
    cursor = end + 1;
    return true;
  };
  std::string_view line;
  if (!nextLine(line)) {
    error = "'" + path + "' is empty; expected a header row";
    return false;
  }
  std::vector<std::string> header = splitCsvLine(line);
  for (size_t a = 0; a < header.size(); ++a)
    for (size_t b = a + 1; b < header.size(); ++b)
      if (header[a] == header[b]) {
        error = path + ":1: the header names the column '" + header[a] +
                "' twice (columns " + std::to_string(a + 1) + " and " +
                std::to_string(b + 1) + ")";
        return false;
      }
  std::vector<size_t> index;
  for (const std::string &c : columns) {
    size_t k = 0;
    while (k < header.size() && header[k] != c)
      ++k;
    if (k == header.size()) {
      error = "'" + path + "' has no column '" + c + "'";
      return false;
    }
    index.push_back(k);
  }
  std::vector<float> values;
  int64_t rows = 0;
  size_t lineNo = 1;
  while (nextLine(line)) {
    ++lineNo;
    if (line.empty() || line == "\r")
      continue;
    std::vector<std::string> cells = splitCsvLine(line);
    if (cells.size() != header.size()) {
      error = path + ":" + std::to_string(lineNo) + ": the row has " +
              std::to_string(cells.size()) + " cells, the header " +
              std::to_string(header.size());
      return false;
    }
    for (size_t k : index) {
      char *end = nullptr;
      const char *text = cells[k].c_str();
      float v = std::strtof(text, &end);
      while (end && *end == ' ')
        ++end;
      if (end == text || *end != '\0') {
        error = path + ":" + std::to_string(lineNo) + ": '" + cells[k] +
                "' in column '" + header[k] + "' is not a number";
        return false;
      }
      values.push_back(v);
    }
    ++rows;
  }
  out = Tensor(DType::F32, {rows, static_cast<int64_t>(columns.size())});
  out.f = std::move(values);
  return true;
}

//===----------------------------------------------------------------------===//
// IDX
//===----------------------------------------------------------------------===//

bool mass::rt::readIdx(const std::string &path, bool scale, Tensor &out,
                       std::string &error) {
  std::shared_ptr<const void> mapping;
  std::string_view bytes;
  if (!mapFile(path, mapping, bytes, error))
    return false;
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 8) {
    error = "'" + path + "' is not an IDX file of unsigned bytes";
    return false;
  }
  int dims = static_cast<unsigned char>(bytes[3]);
  if (bytes.size() < size_t(4 + 4 * dims)) {
    error = "'" + path + "': truncated IDX header";
    return false;
  }
  std::vector<int64_t> shape;
  for (int d = 0; d < dims; ++d) {
    const unsigned char *p =
        reinterpret_cast<const unsigned char *>(bytes.data()) + 4 + 4 * d;
    shape.push_back((int64_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]);
  }
  if (dims == 3) // images: [N, H, W] -> [N, 1, H, W]
    shape.insert(shape.begin() + 1, 1);
  Tensor t(scale ? DType::F32 : DType::I32, shape);
  size_t data = 4 + 4 * dims;
  if (bytes.size() - data < size_t(t.numel())) {
    error = "'" + path + "': the data is shorter than its shape";
    return false;
  }
  for (int64_t k = 0; k < t.numel(); ++k) {
    unsigned char v = static_cast<unsigned char>(bytes[data + k]);
    if (scale)
      t.f[k] = v / 255.0f;
    else
      t.i[k] = v;
  }
  out = std::move(t);
  return true;
}

//===----------------------------------------------------------------------===//
// safetensors
//===----------------------------------------------------------------------===//

uint32_t mass::rt::crc32(const void *data, size_t size, uint32_t crc) {
  // CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), so that
  // Python's zlib.crc32 checks a checkpoint's tensors too. Eight bytes a
  // round through eight tables ("slicing by 8"): table k holds the CRC of
  // a byte followed by k zero bytes. About 1.5 GB/s instead of 0.3.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
                "crc32 reads little-endian words");
  using Tables = std::array<std::array<uint32_t, 256>, 8>;
  static const Tables table = [] {
    Tables t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][n] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (uint32_t n = 0; n < 256; ++n)
        t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xFF];
    return t;
  }();
  const auto *p = static_cast<const unsigned char *>(data);
  crc = ~crc;
  size_t k = 0;
  for (; k + 8 <= size; k += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p + k, 4);
    std::memcpy(&hi, p + k + 4, 4);
    lo ^= crc;
    crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^
          table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24] ^
          table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
          table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
  }
  for (; k < size; ++k)
    crc = table[0][(crc ^ p[k]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

static std::string hex32(uint32_t v) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", v);
  return text;
}

/// A header's integer: a JSON number that is integral and in [0, limit].
static bool headerInteger(const Json &j, double limit, size_t &out) {
  if (!j.isNumber() || !(j.num() >= 0) || j.num() > limit ||
      j.num() != std::floor(j.num()))
    return false;
  out = static_cast<size_t>(j.num());
  return true;
}

bool mass::rt::readSafetensors(const std::string &path, NamedTensors &out,
                               std::string &error) {
  std::shared_ptr<const void> mapping;
  std::string_view bytes;
  if (!mapFile(path, mapping, bytes, error))
    return false;
  auto bad = [&](const std::string &why) {
    error = "'" + path + "' is not a usable safetensors file: " + why;
    return false;
  };
  if (bytes.size() < 8)
    return bad("too short");
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k)
    n |= uint64_t(static_cast<unsigned char>(bytes[k])) << (8 * k);
  if (n > bytes.size() - 8)
    return bad("header longer than the file");
  Json header;
  std::string why;
  if (!Json::parse(std::string(bytes.substr(8, n)), header, why) ||
      !header.isObject())
    return bad("bad header (" + why + ")");
  const size_t base = 8 + n, dataSize = bytes.size() - base;

  // First the header alone: every tensor's type, shape and place, the places
  // covering the data without overlap or gap, as the format requires.
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    size_t begin, end;
  };
  std::vector<Entry> entries;
  std::map<std::string, std::string> sums; // tensor -> crc32 in hex
  for (const auto &[name, info] : header.members()) {
    if (name == "__metadata__") {
      if (!info.isObject())
        return bad("__metadata__ is not an object");
      for (const auto &[k, v] : info.members()) {
        if (!v.isString())
          return bad("__metadata__ '" + k + "' is not a string");
        if (k.compare(0, 6, "crc32.") == 0)
          sums[k.substr(6)] = v.str();
        else
          out.metadata[k] = v.str();
      }
      continue;
    }
    Entry e{name, info.stringOr("dtype", ""), {}, 0, 0};
    size_t width = e.dtype == "F32" || e.dtype == "I32"   ? 4
                   : e.dtype == "F64" || e.dtype == "I64" ? 8
                                                          : 0;
    if (!width)
      return bad("'" + name + "' has dtype " + e.dtype +
                 "; F32, F64, I32 and I64 are supported");
    const Json &offsets = info["data_offsets"];
    if (!offsets.isArray() || offsets.items().size() != 2 ||
        !headerInteger(offsets.items()[0], double(dataSize), e.begin) ||
        !headerInteger(offsets.items()[1], double(dataSize), e.end) ||
        e.begin > e.end)
      return bad("'" + name + "' has data_offsets outside the file's " +
                 std::to_string(dataSize) + " bytes of data");
    if (!info["shape"].isArray())
      return bad("'" + name + "' has no shape");
    size_t count = 1, available = (e.end - e.begin) / width;
    for (const Json &d : info["shape"].items()) {
      size_t size;
      if (!headerInteger(d, 9007199254740992.0, size))
        return bad("'" + name +
                   "' has a shape that is not a list of sizes "
                   ">= 0");
      e.shape.push_back(static_cast<int64_t>(size));
      if (size != 0 && count > available / size)
        count = available + 1; // more than the bytes hold; reported below
      else
        count *= size;
    }
    if (count * width != e.end - e.begin)
      return bad("'" + name + "' has " + std::to_string(e.end - e.begin) +
                 " bytes for shape " + formatShape(e.shape));
    entries.push_back(std::move(e));
  }
  std::vector<const Entry *> byPlace;
  for (const Entry &e : entries)
    byPlace.push_back(&e);
  std::sort(byPlace.begin(), byPlace.end(), [](const Entry *a, const Entry *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  size_t covered = 0;
  for (size_t k = 0; k < byPlace.size(); ++k) {
    if (k > 0 && byPlace[k]->begin < byPlace[k - 1]->end)
      return bad("the data of '" + byPlace[k - 1]->name + "' and '" +
                 byPlace[k]->name + "' overlap");
    if (byPlace[k]->begin != covered)
      return bad("the data has unused bytes before '" + byPlace[k]->name + "'");
    covered = byPlace[k]->end;
  }
  if (covered != dataSize)
    return bad("the data has " + std::to_string(dataSize - covered) +
               " unused bytes at its end");
  for (const auto &sum : sums)
    if (std::none_of(entries.begin(), entries.end(),
                     [&](const Entry &e) { return e.name == sum.first; }))
      return bad("__metadata__ has a checksum for '" + sum.first +
                 "', which the file does not hold");

  // Then the data, each tensor checked against its checksum when the file
  // has one (Mass writes one for every tensor; other writers may not).
  for (const Entry &e : entries) {
    const char *p = bytes.data() + base + e.begin;
    auto sum = sums.find(e.name);
    if (sum != sums.end() && sum->second != hex32(crc32(p, e.end - e.begin)))
      return bad("the data of '" + e.name +
                 "' does not match its checksum "
                 "(the file is corrupted)");
    Tensor t(e.dtype[0] == 'F' ? DType::F32 : DType::I32, e.shape);
    if (e.dtype == "F32" || e.dtype == "I32") {
      std::memcpy(t.data(), p, t.bytes());
    } else {
      for (int64_t k = 0; k < t.numel(); ++k) {
        if (e.dtype == "F64") {
          double v;
          std::memcpy(&v, p + 8 * k, 8);
          t.f[k] = static_cast<float>(v);
        } else {
          int64_t v;
          std::memcpy(&v, p + 8 * k, 8);
          if (v < INT32_MIN || v > INT32_MAX)
            return bad("'" + e.name + "' element " + std::to_string(k) + " (" +
                       std::to_string(v) + ") does not fit in int32");
          t.i[k] = static_cast<int32_t>(v);
        }
      }
    }
    out.tensors[e.name] = std::move(t);
  }
  return true;
}

bool mass::rt::writeSafetensors(const std::string &path, const NamedTensors &in,
                                std::string &error) {
  Json header = Json::object();
  Json meta = Json::object();
  for (const auto &[k, v] : in.metadata)
    meta.set(k, Json::string(v));
  for (const auto &[name, t] : in.tensors)
    meta.set("crc32." + name, Json::string(hex32(crc32(t.data(), t.bytes()))));
  if (!meta.members().empty())
    header.set("__metadata__", meta);
  size_t offset = 0;
  for (const auto &[name, t] : in.tensors) {
    Json info = Json::object();
    info.set("dtype", Json::string(t.dtype == DType::F32 ? "F32" : "I32"));
    Json shape = Json::array();
    for (int64_t d : t.shape)
      shape.push(Json::number(static_cast<double>(d)));
    info.set("shape", shape);
    Json offsets = Json::array();
    offsets.push(Json::number(static_cast<double>(offset)));
    offsets.push(Json::number(static_cast<double>(offset + t.bytes())));
    info.set("data_offsets", offsets);
    header.set(name, info);
    offset += t.bytes();
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) // keeps the data 8-byte aligned
    text += ' ';
  std::string bytes(8, '\0');
  for (int k = 0; k < 8; ++k)
    bytes[k] = static_cast<char>((uint64_t(text.size()) >> (8 * k)) & 0xFF);
  bytes += text;
  for (const auto &[name, t] : in.tensors)
    bytes.append(static_cast<const char *>(t.data()), t.bytes());
  return writeFileAtomically(path, bytes, error);
}

bool mass::rt::writeFileAtomically(const std::string &path,
                                   const std::string &bytes,
                                   std::string &error) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    error = "cannot write '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      error = "cannot write '" + tmp + "': " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    error = "cannot flush '" + tmp + "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path +
            "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}
