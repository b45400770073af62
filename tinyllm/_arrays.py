"""Validation shared by the model, its configuration and its embedding table: integer
arguments, weight arrays, and memory that a request would need."""

from __future__ import annotations

import functools
import os

import numpy as np

DTYPES = ("float64", "float32")


def checked_int(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``: anything with ``__index__`` but a bool.

    Raises TypeError for a non-integer, ValueError below ``minimum``; both name ``name``.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = value.__index__()
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_dtype_name(dtype) -> str:
    """'float64' or 'float32' from a name or NumPy dtype; ValueError otherwise."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}")
    return name


def as_weight_matrix(
    values, name: str, dtype="float64", shape: tuple[int, int] | None = None
) -> np.ndarray:
    """A read-only 2-D copy of ``values`` in ``dtype``, checked to be real, finite and non-empty."""
    dtype = as_dtype_name(dtype)
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    with np.errstate(over="ignore"):  # reported just below, as a ValueError
        out = np.array(arr, dtype=dtype, order="C")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} overflows {dtype}")
    out.flags.writeable = False
    return out


@functools.cache  # asked on every generate() call; the machine does not change
def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # Windows, or an unknown name
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1: '1.5 GiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(nbytes: float, what: str, advice: str = "") -> None:
    """Raise ValueError, before anything is allocated, when ``what`` would need more
    memory than this machine has (``nbytes``, an estimate; the message gives it,
    then ``advice`` if any).

    The limit is the physical memory: a request above it would fail or swap, so it
    is refused with the amount it needs instead of a MemoryError (or the OOM killer)
    half-way. Where the OS does not report its memory, 2**40 bytes (1 TiB) is the
    limit.
    """
    limit = physical_memory() or 1 << 40
    if nbytes > limit:
        raise ValueError(
            f"{what} would need {format_bytes(nbytes)} of memory; this machine "
            f"has {format_bytes(limit)}" + (f" ({advice})" if advice else "")
        )
