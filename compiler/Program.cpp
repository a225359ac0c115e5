//===- Program.cpp - Loading a .mass file and its imports -----------------===//

#include "compiler/Program.h"
#include "compiler/Diagnostics.h"
#include "compiler/Parser.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mass;

namespace {

class Loader {
public:
  Loader(llvm::ArrayRef<std::string> includeDirs, llvm::SourceMgr &sourceMgr,
         mlir::MLIRContext &context)
      : includeDirs(includeDirs), sourceMgr(sourceMgr), context(context) {}

  /// Loads `path`; `importedAt` is the import that names it (null for the
  /// main file).
  mlir::LogicalResult load(const std::string &path,
                           const ast::ImportDecl *importedAt) {
    llvm::SmallString<256> real;
    if (llvm::sys::fs::real_path(path, real))
      real = path;
    std::string key = real.str().str();

    // A file on the current import chain imports itself, directly or not.
    for (size_t i = 0; i < chain.size(); ++i) {
      if (chain[i] != key)
        continue;
      std::string cycle;
      for (size_t j = i; j < chain.size(); ++j)
        cycle += llvm::sys::path::filename(chain[j]).str() + " -> ";
      cycle += llvm::sys::path::filename(key).str();
      emitError(importedAt->loc, &context) << "import cycle: " << cycle;
      return mlir::failure();
    }
    if (loaded.count(key))
      return mlir::success();

    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
        llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
    if (!buffer) {
      if (importedAt)
        emitError(importedAt->loc, &context)
            << "cannot import '" << importedAt->path
            << "': " << buffer.getError().message();
      else
        llvm::errs() << "massc: error: cannot read '" << path
                     << "': " << buffer.getError().message() << "\n";
      return mlir::failure();
    }
    unsigned id =
        sourceMgr.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
    mlir::FailureOr<std::unique_ptr<ast::Module>> module =
        parseFile(sourceMgr, id, context);
    if (mlir::failed(module))
      return mlir::failure();
    loaded[key] = true;
    ast::Module *m = module->get();
    program.modules.push_back(std::move(*module));

    chain.push_back(key);
    for (const ast::ImportDecl &imp : m->imports) {
      FailureOrPath resolved = resolve(path, imp);
      if (mlir::failed(resolved) || mlir::failed(load(*resolved, &imp)))
        return mlir::failure();
    }
    chain.pop_back();
    return mlir::success();
  }

  Program program;

private:
  using FailureOrPath = mlir::FailureOr<std::string>;
  llvm::ArrayRef<std::string> includeDirs;
  llvm::SourceMgr &sourceMgr;
  mlir::MLIRContext &context;
  llvm::StringMap<bool> loaded;
  std::vector<std::string> chain;

  FailureOrPath resolve(llvm::StringRef importer, const ast::ImportDecl &imp) {
    if (llvm::sys::path::is_absolute(imp.path))
      return imp.path;
    llvm::SmallString<256> candidate(llvm::sys::path::parent_path(importer));
    llvm::sys::path::append(candidate, imp.path);
    if (llvm::sys::fs::exists(candidate))
      return candidate.str().str();
    for (const std::string &dir : includeDirs) {
      llvm::SmallString<256> inDir(dir);
      llvm::sys::path::append(inDir, imp.path);
      if (llvm::sys::fs::exists(inDir))
        return inDir.str().str();
    }
    // Let load() report the error for the path relative to the importer.
    return candidate.str().str();
  }
};

} // namespace

mlir::FailureOr<Program>
mass::loadProgram(llvm::StringRef path, llvm::ArrayRef<std::string> includeDirs,
                  llvm::SourceMgr &sourceMgr, mlir::MLIRContext &context) {
  Loader loader(includeDirs, sourceMgr, context);
  if (mlir::failed(loader.load(path.str(), nullptr)))
    return mlir::failure();
  return std::move(loader.program);
}
