"""The compiled kernels, imported in one place.

tinyllm's numerical kernels are Cython extension modules (``src/*.pyx`` built as
``tinyllm._linalg``, ``tinyllm._softmax`` and ``tinyllm._sampling``). The rest of
the package imports them from here, so a missing build, or one made for another
Python, fails at ``import tinyllm`` with one message that says how to install
instead of a bare ImportError from deep inside the package.

On x86-64 each module is also built with AVX2+FMA and with AVX-512
(``tinyllm._softmax_avx2`` and ``tinyllm._softmax_avx512`` beside
``tinyllm._softmax``, from the same source; see setup.py). The functions exported
here come from the best build the CPU runs, or the one named by the environment
variable ``TINYLLM_SIMD=baseline|avx2|avx512`` set before tinyllm is imported.
``SIMD`` tells which.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING


__all__ = [
    "dot",
    "project",
    "softmax",
    "log_softmax",
    "sample",
    "sample_logits",
    "filter_logits",
    "as_generator",
    "Generation",
    "TrainState",
    "cross_entropy_grad",
]

#: The compiled modules of the package, by file stem.
COMPILED_MODULES = ("_linalg", "_softmax", "_sampling", "_train")

#: The SIMD builds made beside the baseline on x86-64, best first: name -> module suffix.
SIMD_VARIANTS = {"avx512": "_avx512", "avx2": "_avx2"}

#: name -> the baseline _softmax function that says whether the CPU runs that build.
_CPU_CHECKS = {"avx512": "_cpu_has_avx512", "avx2": "_cpu_has_avx2_fma"}

# Files that may hold an extension module, for whatever Python they were built.
_EXTENSION_ENDINGS = (".so", ".pyd", ".dylib")


# ===========================================================================
# The message
# ===========================================================================

def _describe_builds(package_dir: Path, stem: str) -> str:
    """What the package folder holds for the compiled module ``stem``, in one line."""
    this_python = {stem + suffix for suffix in EXTENSION_SUFFIXES}
    try:
        candidates = sorted(
            p.name for p in package_dir.iterdir()
            if p.name.startswith(stem + ".") and p.name.endswith(_EXTENSION_ENDINGS)
        )
    except OSError:
        candidates = []
    if not candidates:
        return f"no compiled {stem} module (the kernels were never built here)"
    usable = [name for name in candidates if name in this_python]
    if usable:
        return f"{', '.join(usable)} (built for this Python, but it failed to load)"
    return (f"{', '.join(candidates)}: built for another Python "
            f"(this one loads {stem}{EXTENSION_SUFFIXES[0]})")


def install_message(error: ImportError, package_dir: Path | None = None) -> str:
    """The text of the ImportError raised when a compiled module cannot be imported."""
    package_dir = Path(__file__).resolve().parent if package_dir is None else package_dir
    failed = error.name if error.name and error.name.startswith("tinyllm._") else None
    stems = [failed.rpartition(".")[2]] if failed else list(COMPILED_MODULES)
    found = "\n".join(
        f"  {'found' if i == 0 else '':<14}{_describe_builds(package_dir, stem)}"
        for i, stem in enumerate(stems)
    )
    python = (f"{platform.python_implementation()} {platform.python_version()} "
              f"on {platform.system()} {platform.machine()} ({sys.executable})")
    return (
        f"tinyllm's compiled kernels could not be imported"
        f"{f' ({failed})' if failed else ''}: the extension modules are missing or "
        f"were built for another Python.\n"
        f"  error         {type(error).__name__}: {error}\n"
        f"  this Python   {python}\n"
        f"  tinyllm in    {package_dir}\n"
        f"{found}\n"
        f"To fix it:\n"
        f"  - install a prebuilt wheel (no compiler needed):\n"
        f"        pip install tinyllm-cython\n"
        f"  - or, from a source checkout, build the kernels (needs a C compiler):\n"
        f"        pip install -e \".[test]\"\n"
        f"    and build them again after changing Python version.\n"
        f"  - inside a source checkout, its tinyllm/ folder hides an installed wheel:\n"
        f"    run from another directory to use the wheel."
    )


# ===========================================================================
# The SIMD build
# ===========================================================================

def _cpu_runs(variant: str) -> bool:
    """Whether this CPU (and OS) can run the SIMD build ``variant``; asked of the baseline."""
    return bool(getattr(_BASELINES["_softmax"], _CPU_CHECKS[variant])())


def _built(variant: str) -> bool:
    """Whether the SIMD build ``variant`` of every compiled module imports."""
    try:
        for stem in COMPILED_MODULES:
            importlib.import_module(f"tinyllm.{stem}{SIMD_VARIANTS[variant]}")
    except ImportError:  # not built here (arm64, MSVC)
        return False
    return True


def _simd_choice() -> str:
    """The best SIMD build that was made and runs on this CPU ("avx512", "avx2"), else
    "baseline". TINYLLM_SIMD=baseline|avx2|avx512 asks for one; a build the CPU cannot
    run, or that was not made, falls back to the next best.

    The CPU is asked by the baseline build (gcc/clang's __builtin_cpu_supports,
    which also checks that the operating system saves the AVX registers).
    """
    wanted = os.environ.get("TINYLLM_SIMD", "").strip().lower()
    if wanted == "baseline":
        return "baseline"
    names = list(SIMD_VARIANTS)
    if wanted in SIMD_VARIANTS:
        names = names[names.index(wanted):]
    for name in names:
        if _cpu_runs(name) and _built(name):
            return name
    return "baseline"


def builds(stem: str) -> list[ModuleType]:
    """Every build of the compiled module ``stem`` that was made and runs on this CPU,
    the baseline first (the tests check each of them against the reference)."""
    found = [importlib.import_module(f"tinyllm.{stem}")]
    for name in reversed(SIMD_VARIANTS):  # avx2, then avx512
        if _cpu_runs(name):
            try:
                found.append(importlib.import_module(f"tinyllm.{stem}{SIMD_VARIANTS[name]}"))
            except ImportError:  # not built here (arm64, MSVC)
                pass
    return found


def module(stem: str) -> ModuleType:
    """The build of the compiled module ``stem`` that tinyllm uses: see ``SIMD``."""
    if SIMD != "baseline":
        try:
            return importlib.import_module(f"tinyllm.{stem}{SIMD_VARIANTS[SIMD]}")
        except ImportError:  # not built, or unusable: the baseline always works
            pass
    return importlib.import_module(f"tinyllm.{stem}")


# ===========================================================================
# The imports
# ===========================================================================

try:
    # The baseline builds first: they must all be there, and the message names
    # the first that is not.
    _BASELINES = {stem: importlib.import_module(f"tinyllm.{stem}") for stem in COMPILED_MODULES}
except ImportError as exc:
    raise ImportError(install_message(exc), name=exc.name, path=exc.path) from exc

#: "avx512", "avx2" or "baseline": which build of the kernels the functions below come from.
SIMD = _simd_choice()

if TYPE_CHECKING:  # the same functions for type checkers, whose stubs are the baseline's
    from tinyllm._linalg import dot, project
    from tinyllm._sampling import Generation, as_generator, filter_logits, sample, sample_logits
    from tinyllm._softmax import log_softmax, softmax
    from tinyllm._train import TrainState, cross_entropy_grad
else:
    dot, project = module("_linalg").dot, module("_linalg").project
    softmax, log_softmax = module("_softmax").softmax, module("_softmax").log_softmax
    Generation, as_generator, filter_logits, sample, sample_logits = (
        getattr(module("_sampling"), name)
        for name in ("Generation", "as_generator", "filter_logits", "sample", "sample_logits")
    )
    TrainState, cross_entropy_grad = module("_train").TrainState, module("_train").cross_entropy_grad
