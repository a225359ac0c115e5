# lit configuration for Mass's FileCheck tests.
import os
import shutil
import sys

import lit.formats

config.name = "Mass"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mass", ".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.mass_obj_root, "test", "lit")

# Spec fixtures are inputs of the tests in spec/, not tests themselves.
config.excludes.append("fixtures")

path = [config.mass_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")]
config.environment["PATH"] = os.pathsep.join(path)
# massc's object cache: the build's own, not the user's.
config.environment["MASS_CACHE_DIR"] = os.path.join(config.mass_obj_root, "mass-cache")
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%spec", os.path.join(config.test_source_root, "spec", "fixtures")))
config.substitutions.append(("%examples", os.path.join(config.test_source_root, "..", "..", "examples")))

# Tests that link a training program need the runtime library (the
# sanitizer build has none).
if os.path.exists(os.path.join(config.mass_obj_root, "lib", "libmass_runtime.a")):
    config.available_features.add("runtime")

# Rendering --emit=dot's graphs needs Graphviz (scripts/install-deps.sh).
if shutil.which("dot"):
    config.available_features.add("graphviz")

# The CUDA target's tests need the CUDA toolkit (libdevice, and ptxas to
# assemble the PTX); without it they are unsupported.
if getattr(config, "ptxas", ""):
    config.available_features.add("cuda")
    config.substitutions.append(("%ptxas", config.ptxas))
config.substitutions.append(("%assemble_ptx", sys.executable + " " + os.path.join(config.test_source_root, "spec", "assemble_ptx.py")))
