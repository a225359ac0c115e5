//===- DataIO.h - Reading data files ----------------------------*- C++ -*-===//
//
// NumPy .npy, CSV with a header, IDX (MNIST's format) and safetensors. Each
// reader returns false with a one-line reason instead of throwing.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_DATAIO_H
#define MASS_RUNTIME_DATAIO_H

#include "Tensor.h"

#include <map>
#include <string>
#include <vector>

namespace mass::rt {

/// Reads a C-ordered .npy file of float32/float64 (as f32) or int64/int32/
/// int16/uint16/int8/uint8 (as i32; an int64 outside int32's range is an
/// error) elements.
bool readNpy(const std::string &path, Tensor &out, std::string &error);
bool writeNpy(const std::string &path, const Tensor &t, std::string &error);

/// Maps the pages of a tensor that views a mapped file in one call, before
/// something reads all of it (about 20% faster than a fault per page);
/// nothing for an owned tensor, or where the kernel cannot.
void pageIn(const Tensor &t);

/// Reads a stream of token ids: llm.c's .bin (a header of 256 int32:
/// 20240520, 1, count; then count uint16 ids) or a one-dimensional integer
/// .npy (chosen by the extension).
bool readTokens(const std::string &path, std::vector<int32_t> &out,
                std::string &error);

/// Reads the named columns of a CSV file with a header row, as f32 [N, C].
bool readCsvColumns(const std::string &path,
                    const std::vector<std::string> &columns, Tensor &out,
                    std::string &error);

/// Reads an IDX file (ubyte images scaled to [0, 1] as f32, ubyte labels as
/// i32).
bool readIdx(const std::string &path, bool scale, Tensor &out,
             std::string &error);

/// CRC-32 (zlib's): the checksum of each tensor a checkpoint holds.
uint32_t crc32(const void *data, size_t size, uint32_t crc = 0);

/// safetensors: tensors by name, plus string metadata. The writer records
/// the CRC-32 of each tensor's bytes in __metadata__ as "crc32.NAME"; the
/// reader checks those it finds (and keeps them out of `metadata`), and
/// refuses headers whose shapes, offsets or data do not add up.
struct NamedTensors {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
bool readSafetensors(const std::string &path, NamedTensors &out,
                     std::string &error);
/// Writes atomically: to a temporary file beside `path`, flushed to disk,
/// then renamed over it.
bool writeSafetensors(const std::string &path, const NamedTensors &in,
                      std::string &error);

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
bool writeFileAtomically(const std::string &path, const std::string &bytes,
                         std::string &error);

} // namespace mass::rt

#endif // MASS_RUNTIME_DATAIO_H
