//===- ObjectCache.h - Compiled models kept by what they came from -*- C++
//-*-===//
//
// massc keeps each model's compiled archive on disk under a hash of
// everything the machine code depends on (the compiler, the host CPU, the
// options and the model's IR), so that compiling an unchanged model again
// only links it.
//
//===----------------------------------------------------------------------===//

#ifndef MASS_CODEGEN_OBJECTCACHE_H
#define MASS_CODEGEN_OBJECTCACHE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace mass {

class ObjectCache {
public:
  /// $MASS_CACHE_DIR, else mass/ in the user's cache directory
  /// ($XDG_CACHE_HOME or ~/.cache); empty when there is none.
  static std::string defaultDirectory();

  /// A key naming `parts` together: SHA-256 over each part and its length.
  static std::string key(llvm::ArrayRef<llvm::StringRef> parts);

  explicit ObjectCache(std::string directory)
      : directory(std::move(directory)) {}

  /// The path of the entry for `key` when there is one (and marks it as
  /// recently used). An entry that is not an archive is removed and its
  /// path put in `damaged`.
  std::optional<std::string> lookup(llvm::StringRef key,
                                    std::string &damaged) const;

  /// Stores `bytes` as the entry for `key`: written aside, then renamed,
  /// so that no reader sees half an entry. Returns its path, or nothing
  /// with `error` set. Entries unused for 30 days, and the least recently
  /// used beyond 2 GiB, are pruned now and then.
  std::optional<std::string> store(llvm::StringRef key, llvm::StringRef bytes,
                                   std::string &error) const;

  /// Removes the entry for `key`, if any.
  void remove(llvm::StringRef key) const;

private:
  std::string directory;
  std::string path(llvm::StringRef key) const;
};

} // namespace mass

#endif // MASS_CODEGEN_OBJECTCACHE_H
