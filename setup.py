"""Build the Cython kernels in ``src/`` as ``tinyllm._<name>`` extension modules.

Every ``src/<name>.pyx`` becomes ``tinyllm.<name>``. Compiler directives are set once,
here, for the whole build. Set ``TINYLLM_DEBUG_CHECKS=1`` to rebuild everything with
bounds, wraparound and initialisation checks on (the test-suite runs against that
build too, in ``.ci/run``).
"""

import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG_CHECKS = os.environ.get("TINYLLM_DEBUG_CHECKS", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG_CHECKS,
    "wraparound": DEBUG_CHECKS,
    "initializedcheck": DEBUG_CHECKS,
    "cdivision": True,
    "embedsignature": True,
}

if os.name == "nt":
    extra_compile_args = ["/O2"]
else:
    # -O3 lets gcc/clang vectorise the inner loops; no -ffast-math: the inf/NaN
    # rules of softmax depend on IEEE semantics.
    extra_compile_args = ["-O3"]
    if DEBUG_CHECKS:
        extra_compile_args = ["-O1", "-g"]

define_macros = [
    ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
    # Visible at run time as tinyllm._linalg.DEBUG_CHECKS, so CI can tell the builds apart.
    ("TINYLLM_DEBUG_CHECKS", "1" if DEBUG_CHECKS else "0"),
]

extensions = [
    Extension(
        f"tinyllm.{pyx.stem}",
        [str(pyx.relative_to(HERE))],
        include_dirs=[np.get_include(), "src"],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
    )
    for pyx in sorted((HERE / "src").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
        # Generated C stays out of src/; the checked build gets its own copy.
        build_dir="build/cython-debug" if DEBUG_CHECKS else "build/cython",
    ),
)
