"""The instruction set tinyllm runs on: a look at the CPU, and the choice of kernels.

The kernels (``src/_kernels.pyx``) are built once per instruction set, as
``tinyllm._kernels_baseline`` and, on x86-64 with gcc or clang, ``_kernels_avx2``
(AVX2 + FMA + F16C) and ``_kernels_avx512`` (AVX-512 F/DQ/VL/BW). At import this module picks
the best build that was made and that this CPU (and its operating system) runs;
``TINYLLM_SIMD=baseline|avx2|avx512``, set before tinyllm is imported, asks for one (a
build the CPU cannot run, or that was not made, falls back to the next best).

The stage modules read the chosen table through ``active_table``, a capsule of the
pointer to it, once per call: :func:`use` switches every one of them at once (the
tests run each kernel on every instruction set the CPU has; not meant for threads
that are computing at the time).
"""

import importlib
import os

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New

from _kernel_table cimport Kernels

cdef extern from *:
    """
    /* Whether the CPU (and the OS, which must save the YMM registers) runs AVX2, FMA
       and F16C (the half-precision conversions of packed weights). */
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    static int tinyllm_cpu_has_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            && __builtin_cpu_supports("f16c");
    }
    /* ... and AVX-512 F/DQ/VL/BW (gcc's check includes the OS saving the ZMM state). */
    static int tinyllm_cpu_has_avx512(void) {
        __builtin_cpu_init();
        return tinyllm_cpu_has_avx2()
            && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    }
    #else  /* MSVC or not x86: no AVX2 build is made there */
    static int tinyllm_cpu_has_avx2(void) { return 0; }
    static int tinyllm_cpu_has_avx512(void) { return 0; }
    #endif
    """
    int tinyllm_cpu_has_avx2() nogil
    int tinyllm_cpu_has_avx512() nogil


#: The instruction sets a build of the kernels may target, best first.
ISAS = ("avx512", "avx2", "baseline")

cdef const Kernels* ACTIVE = NULL

#: A capsule of the pointer to the table in use (read by the stage modules).
active_table = PyCapsule_New(&ACTIVE, "tinyllm._cpu.active_table", NULL)


def cpu_runs(str isa):
    """Whether this CPU (and OS) can run the kernels built for ``isa``."""
    if isa == "avx512":
        return bool(tinyllm_cpu_has_avx512())
    if isa == "avx2":
        return bool(tinyllm_cpu_has_avx2())
    if isa == "baseline":
        return True
    raise ValueError(f"unknown instruction set {isa!r}: expected one of {', '.join(ISAS)}")


def kernels_module(str isa):
    """The build of the kernels for ``isa`` (ImportError if it was not made here)."""
    return importlib.import_module(f"tinyllm._kernels_{isa}")


def built(str isa):
    """Whether the kernels were built for ``isa`` (only the baseline on arm64 or MSVC)."""
    try:
        kernels_module(isa)
    except ImportError:
        return False
    return True


def available():
    """The instruction sets whose kernels were built and run on this CPU, baseline first."""
    return [isa for isa in reversed(ISAS) if cpu_runs(isa) and built(isa)]


def active():
    """The instruction set of the kernels in use."""
    return ACTIVE.isa.decode()


def use(str isa):
    """Run every kernel from the build for ``isa`` from now on; returns the one before.

    Raises ValueError if that build was not made here or this CPU cannot run it.
    """
    if isa not in available():
        raise ValueError(f"the {isa} kernels are not available here "
                         f"(available: {', '.join(available())})")
    global ACTIVE
    previous = None if ACTIVE == NULL else active()
    ACTIVE = <const Kernels*>PyCapsule_GetPointer(kernels_module(isa).table, "tinyllm.Kernels")
    return previous


def best_available(wanted=""):
    """The instruction set to use: ``wanted`` (a TINYLLM_SIMD value) if it runs here,
    else the best one below it that does ("" or anything unknown: the best of all)."""
    wanted = wanted.strip().lower()
    candidates = ISAS[ISAS.index(wanted):] if wanted in ISAS else ISAS
    runnable = available()
    return next(isa for isa in candidates if isa in runnable)


kernels_module("baseline")   # always built: if it is missing, this ImportError names it

#: The instruction set picked at import (TINYLLM_SIMD, else the best this CPU runs).
CHOSEN = best_available(os.environ.get("TINYLLM_SIMD", ""))
use(CHOSEN)
