"""What the figures were measured on: CPU, threads, library versions, BLAS, environment."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import os
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

import tinyllm


def optional(module: str):
    """The module, or None if it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


#: Variables that change how NumPy's BLAS (and PyTorch) run. OPENBLAS_CORETYPE and
#: OPENBLAS_L2_SIZE force an older kernel choice and slow current NumPy down.
BLAS_ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MKL_ENABLE_INSTRUCTIONS",
    "NPY_DISABLE_CPU_FEATURES",
)
SLOWING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: The CPU flags that matter for the kernels (the full list is in the JSON too).
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512vl",
    "avx512bw",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "asimd",
    "sve",
)


def cpu() -> dict:
    """Model name, SIMD flags and cache sizes from /proc/cpuinfo and sysfs (Linux), core counts."""
    info: dict = {
        "model": platform.processor() or platform.machine(),
        "flags": [],
        "logical_cpus": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            name, _, value = (part.strip() for part in line.partition(":"))
            if name == "model name" and "model_name_set" not in info:
                info["model"], info["model_name_set"] = value, True
            elif name in ("flags", "Features") and not info["flags"]:
                info["flags"] = value.split()
            elif name == "cache size" and "cache" not in info:
                info["cache"] = value
        info.pop("model_name_set", None)
    info["simd"] = [flag for flag in SIMD_FLAGS if flag in info["flags"]]
    info["l3_bytes"] = l3_bytes()
    return info


def has_vnni(cpu_info: dict) -> bool:
    """Whether the CPU (:func:`cpu`) has int8 dot products: AVX-512 VNNI or AVX-VNNI."""
    return bool({"avx512_vnni", "avx_vnni"} & set(cpu_info["flags"]))


def l3_bytes() -> int | None:
    """The last-level cache of CPU 0 in bytes (Linux sysfs), or None."""
    size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    try:
        text = size.read_text().strip()
    except OSError:
        return None
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tinyllm": tinyllm.__version__,
    }
    for name in ("torch", "threadpoolctl", "matplotlib"):
        try:  # the installed distribution, without importing it
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def blas() -> dict:
    """Which BLAS (library, version, kernel architecture, threads) NumPy and PyTorch load.

    threadpoolctl reports what is actually loaded; without it, ``np.show_config()``
    says what NumPy was built against.
    """
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is not None:
        libraries = threadpoolctl.threadpool_info()
        return {
            "source": "threadpoolctl",
            "libraries": libraries,
            "summary": "; ".join(_describe_library(lib) for lib in libraries),
        }
    text = io.StringIO()
    with contextlib.redirect_stdout(text), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Install pyyaml for better output"
        np.show_config()
    return {
        "source": "numpy.show_config",
        "show_config": text.getvalue(),
        "summary": "install threadpoolctl to see the loaded BLAS and its kernel",
    }


def _describe_library(lib: dict) -> str:
    parts = [lib.get("internal_api", "?"), lib.get("version") or ""]
    if lib.get("architecture"):
        parts.append(f"kernel {lib['architecture']}")
    parts.append(f"{lib.get('num_threads')} threads")
    owner = Path(lib.get("filepath", "")).parts
    where = next((p for p in owner if p in ("numpy.libs", "scipy.libs", "torch")), "")
    return " ".join(p for p in parts if p) + (f" ({where})" if where else "")


@contextlib.contextmanager
def one_thread():
    """Run the contenders on one thread each: NumPy's BLAS through threadpoolctl (when
    installed), PyTorch through ``torch.set_num_threads(1)``; both restored after.

    Yields the list of notes for the report (what could not be limited).
    """
    notes: list[str] = []
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    threadpoolctl = optional("threadpoolctl")
    with contextlib.ExitStack() as stack:
        if threadpoolctl is None:
            notes.append(
                "NumPy's BLAS keeps its default thread count: "
                "pip install threadpoolctl to pin it to 1 thread"
            )
        else:
            stack.enter_context(threadpoolctl.threadpool_limits(limits=1, user_api="blas"))
        if torch is not None:
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, torch_threads)
        yield notes


def environment() -> dict:
    values = {name: os.environ.get(name) for name in BLAS_ENV_VARS}
    return {"vars": values, "openblas_tuning_vars_set": [n for n in SLOWING_VARS if values[n]]}


KERNELS = ("dot", "project", "softmax", "log_softmax", "sample", "sample_logits")


def tinyllm_build() -> dict:
    """Which compiled module serves each kernel, and its upper-case build constants
    (DEBUG_CHECKS, and whatever CPU-dispatch flags the modules export)."""
    modules = {name: getattr(tinyllm, name).__module__ for name in KERNELS}
    constants = {}
    for module_name in sorted(set(modules.values())):
        module = sys.modules.get(module_name)
        constants[module_name] = (
            {
                k: v
                for k, v in vars(module).items()
                if k.isupper() and isinstance(v, (bool, int, float, str, tuple))
            }
            if module
            else {}
        )
    debug = any(c.get("DEBUG_CHECKS") for c in constants.values())
    return {
        "debug_checks": debug,
        "kernel_modules": modules,
        "module_constants": constants,
        "path": str(Path(tinyllm.__file__).parent),
    }


def describe() -> dict:
    """Everything the report's header and the JSON's "machine" entry need."""
    torch = sys.modules.get("torch")
    return {
        "cpu": cpu(),
        "platform": platform.platform(),
        "versions": versions(),
        "threads": {
            "tinyllm": 1,
            "torch": torch.get_num_threads() if torch is not None else None,
            "numpy_blas": _blas_thread_count(),
        },
        "blas": blas(),
        "env": environment(),
        "tinyllm_build": tinyllm_build(),
    }


def _blas_thread_count():
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    counts = [
        lib["num_threads"]
        for lib in threadpoolctl.threadpool_info()
        if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", "")
    ]
    return counts[0] if counts else None
