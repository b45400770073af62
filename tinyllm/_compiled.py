"""The compiled modules, imported in one place.

tinyllm's numerical code is Cython (``src/``): the kernels, built once per instruction
set (``tinyllm._kernels_baseline``, ``_kernels_avx2``, ``_kernels_avx512``), and the
modules that check arguments and call them, built once (``tinyllm._linalg``,
``_softmax``, ``_sampling``, ``_generate``, ``_train``). ``tinyllm._cpu`` picks, at
import, the kernels of the best instruction set the CPU runs, or the one named by the
environment variable ``TINYLLM_SIMD=baseline|avx2|avx512`` set before tinyllm is
imported; ``SIMD`` tells which.

The rest of the package imports the compiled functions from here, so a missing
build, or one made for another Python, fails at ``import tinyllm`` with one message
that says how to install, instead of a bare ImportError from deep inside the package.
"""

from __future__ import annotations

import importlib
import platform
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
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
    "forward",
    "Generation",
    "BatchGeneration",
    "PackedMatrix",
    "TrainState",
    "Diverged",
    "cross_entropy_grad",
    "SIMD",
]

#: The compiled modules with a Python API, by file stem (the kernel builds are found
#: by tinyllm._cpu).
COMPILED_MODULES = ("_cpu", "_linalg", "_softmax", "_sampling", "_generate", "_train")

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
            p.name
            for p in package_dir.iterdir()
            if p.name.startswith(stem + ".") and p.name.endswith(_EXTENSION_ENDINGS)
        )
    except OSError:
        candidates = []
    if not candidates:
        return f"no compiled {stem} module (the kernels were never built here)"
    usable = [name for name in candidates if name in this_python]
    if usable:
        return f"{', '.join(usable)} (built for this Python, but it failed to load)"
    return (
        f"{', '.join(candidates)}: built for another Python "
        f"(this one loads {stem}{EXTENSION_SUFFIXES[0]})"
    )


def install_message(error: ImportError, package_dir: Path | None = None) -> str:
    """The text of the ImportError raised when a compiled module cannot be imported."""
    package_dir = Path(__file__).resolve().parent if package_dir is None else package_dir
    failed = error.name if error.name and error.name.startswith("tinyllm._") else None
    stems = [failed.rpartition(".")[2]] if failed else list(COMPILED_MODULES)
    found = "\n".join(
        f"  {'found' if i == 0 else '':<14}{_describe_builds(package_dir, stem)}"
        for i, stem in enumerate(stems)
    )
    python = (
        f"{platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.machine()} ({sys.executable})"
    )
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
        f'        pip install -e ".[test]"\n'
        f"    and build them again after changing Python version.\n"
        f"  - inside a source checkout, its tinyllm/ folder hides an installed wheel:\n"
        f"    run from another directory to use the wheel."
    )


# ===========================================================================
# The imports
# ===========================================================================

try:
    # _cpu first: it imports the kernels (the baseline build must be there), and the
    # message names the first module that is missing.
    _MODULES = {stem: importlib.import_module(f"tinyllm.{stem}") for stem in COMPILED_MODULES}
except ImportError as exc:
    raise ImportError(install_message(exc), name=exc.name, path=exc.path) from exc

#: "avx512", "avx2" or "baseline": the instruction set of the kernels chosen at import.
SIMD: str = _MODULES["_cpu"].CHOSEN

if TYPE_CHECKING:  # the same functions for type checkers, from the stubs
    from tinyllm._generate import BatchGeneration, Generation, PackedMatrix, forward
    from tinyllm._linalg import dot, project
    from tinyllm._sampling import as_generator, filter_logits, sample, sample_logits
    from tinyllm._softmax import log_softmax, softmax
    from tinyllm._train import Diverged, TrainState, cross_entropy_grad
else:
    dot, project = _MODULES["_linalg"].dot, _MODULES["_linalg"].project
    softmax, log_softmax = _MODULES["_softmax"].softmax, _MODULES["_softmax"].log_softmax
    as_generator, filter_logits, sample, sample_logits = (
        getattr(_MODULES["_sampling"], name)
        for name in ("as_generator", "filter_logits", "sample", "sample_logits")
    )
    forward, Generation, BatchGeneration, PackedMatrix = (
        getattr(_MODULES["_generate"], name)
        for name in ("forward", "Generation", "BatchGeneration", "PackedMatrix")
    )
    TrainState, Diverged, cross_entropy_grad = (
        getattr(_MODULES["_train"], name)
        for name in ("TrainState", "Diverged", "cross_entropy_grad")
    )
