//===- ObjectCache.cpp - Compiled models kept by what they came from ------===//

#include "codegen/ObjectCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CachePruning.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

#include <unistd.h>

using namespace mass;

std::string ObjectCache::defaultDirectory() {
  if (std::optional<std::string> dir =
          llvm::sys::Process::GetEnv("MASS_CACHE_DIR"))
    return *dir;
  llvm::SmallString<256> dir;
  if (!llvm::sys::path::cache_directory(dir))
    return "";
  llvm::sys::path::append(dir, "mass");
  return dir.str().str();
}

std::string ObjectCache::key(llvm::ArrayRef<llvm::StringRef> parts) {
  llvm::SHA256 hash;
  for (llvm::StringRef part : parts) {
    hash.update(std::to_string(part.size()) + ":");
    hash.update(part);
  }
  return llvm::toHex(hash.final(), /*LowerCase=*/true);
}

// LLVM's cache pruning only ever removes files named llvmcache-*.
std::string ObjectCache::path(llvm::StringRef key) const {
  llvm::SmallString<256> p(directory);
  llvm::sys::path::append(p, "llvmcache-" + key + ".a");
  return p.str().str();
}

std::optional<std::string> ObjectCache::lookup(llvm::StringRef key,
                                               std::string &damaged) const {
  std::string p = path(key);
  int fd;
  if (llvm::sys::fs::openFileForRead(p, fd))
    return std::nullopt;
  llvm::sys::fs::file_status status;
  char magic[8] = {};
  bool regular = !llvm::sys::fs::status(fd, status) &&
                 status.type() == llvm::sys::fs::file_type::regular_file;
  bool archive = regular && ::read(fd, magic, sizeof magic) == sizeof magic &&
                 llvm::StringRef(magic, sizeof magic) == "!<arch>\n";
  // Recently used (for pruning); a cache shared read-only stays as it is.
  if (archive)
    (void)llvm::sys::fs::setLastAccessAndModificationTime(
        fd, std::chrono::system_clock::now());
  llvm::sys::Process::SafelyCloseFileDescriptor(fd);
  if (archive)
    return p;
  if (regular) {
    damaged = p;
    remove(key);
  }
  return std::nullopt;
}

std::optional<std::string> ObjectCache::store(llvm::StringRef key,
                                              llvm::StringRef bytes,
                                              std::string &error) const {
  if (std::error_code ec = llvm::sys::fs::create_directories(directory)) {
    error = "cannot create '" + directory + "': " + ec.message();
    return std::nullopt;
  }
  llvm::SmallString<256> model(directory);
  llvm::sys::path::append(model, "tmp-%%%%%%%%.a");
  llvm::Expected<llvm::sys::fs::TempFile> temp =
      llvm::sys::fs::TempFile::create(model);
  if (!temp) {
    error = "cannot write in '" + directory +
            "': " + llvm::toString(temp.takeError());
    return std::nullopt;
  }
  {
    llvm::raw_fd_ostream os(temp->FD, /*shouldClose=*/false);
    os << bytes;
    os.flush();
    if (os.has_error()) {
      error = "cannot write '" + temp->TmpName + "': " + os.error().message();
      os.clear_error();
      llvm::consumeError(temp->discard());
      return std::nullopt;
    }
  }
  std::string p = path(key);
  if (llvm::Error e = temp->keep(p)) {
    error = "cannot write '" + p + "': " + llvm::toString(std::move(e));
    return std::nullopt;
  }
  llvm::Expected<llvm::CachePruningPolicy> policy =
      llvm::parseCachePruningPolicy(
          "prune_interval=1h:prune_after=720h:cache_size_bytes=2g");
  if (policy)
    llvm::pruneCache(directory, *policy);
  else
    llvm::consumeError(policy.takeError());
  return p;
}

void ObjectCache::remove(llvm::StringRef key) const {
  (void)llvm::sys::fs::remove(path(key));
}
