"""Input checks shared by the pure-Python reference functions.

They mirror the compiled entry points: non-real values are a TypeError, ragged
nested lists a ValueError, and the shape of a nested list is worked out the
way NumPy would (``3.0`` has shape ``()``, ``[[1, 2]]`` has shape ``(1, 2)``).
"""

from __future__ import annotations

import math
from numbers import Real


def shape(x) -> tuple[int, ...]:
    """The shape of a nested list or tuple (``()`` for a single number)."""
    if not isinstance(x, (list, tuple)):
        return ()
    inner = [shape(item) for item in x]
    if any(s != inner[0] for s in inner):
        raise ValueError(f"ragged nested list: its items have shapes {sorted(set(inner))}")
    return (len(x),) + (inner[0] if inner else ())


def to_floats(x, name: str):
    """``x`` with every number turned into a float (same nesting); TypeError if not real."""
    if isinstance(x, (list, tuple)):
        return [to_floats(item, name) for item in x]
    if not isinstance(x, Real):
        raise TypeError(f"{name} must hold real numbers (floats, ints or bools), got {x!r}")
    return float(x)


def first_non_finite(x, name: str) -> str:
    """Name the first NaN or infinite entry of ``x`` (for error messages), or ''."""
    if isinstance(x, list):
        for i, item in enumerate(x):
            found = first_non_finite(item, f"{name}[{i}]")
            if found:
                return found
        return ""
    return "" if math.isfinite(x) else f"{name} is {x}"


def _is_numpy_bool(value) -> bool:
    """``numpy.bool_`` (not a subclass of bool), recognised without importing NumPy."""
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")


def as_real(value, name: str, func: str) -> float:
    """A real number as a float: TypeError for strings (``float("2")`` would accept
    them), bools and anything ``float()`` refuses."""
    if isinstance(value, (str, bytes, bool)) or _is_numpy_bool(value):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}") from None


def checked_temperature(temperature, func: str) -> float:
    """A finite temperature >= 0 (0: greedy, the limit T -> 0)."""
    t = as_real(temperature, "temperature", func)
    if not (t >= 0.0 and math.isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and >= 0, got {temperature!r}")
    return t
