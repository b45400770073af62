"""Dot product and projection in pure Python: the teaching version of ``tinyllm.dot``
and ``tinyllm.project``.

Plain lists and floats, no NumPy: slow on purpose and easy to read. It is the oracle
of the tests and the baseline of the benchmarks, so it keeps the names, semantics and
errors of the compiled functions (results are always Python floats, i.e. float64).
"""

from __future__ import annotations

from tinyllm.reference._checks import first_non_finite, shape, to_floats

__all__ = ["dot", "project"]


def _require_finite(func: str, named: list[tuple[str, list]], result) -> None:
    """ValueError if an input entry is NaN/inf, or else if the result overflowed."""
    for name, values in named:
        found = first_non_finite(values, name)
        if found:
            raise ValueError(f"{func}: {found}; inputs must be finite")
    if first_non_finite(result, "result"):
        raise ValueError(
            f"{func}: the result overflows the float range (inputs are finite but too large)"
        )


def dot(x, w) -> float:
    """Dot product of two vectors: ``sum(x[i] * w[i])`` (the blog's ``f1``).

    Parameters
    ----------
    x, w : list of float, shape (n,)
        Real vectors of the same length.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Shapes differ (both are named), the vectors are empty, an entry is NaN or
        infinite, or the result overflows.
    TypeError
        A value that is not a real number.
    """
    x_shape, w_shape = shape(x), shape(w)
    x, w = to_floats(x, "dot: x"), to_floats(w, "dot: w")
    if len(x_shape) != 1 or x_shape != w_shape:
        raise ValueError(
            f"dot: shapes {x_shape} and {w_shape} are not aligned: "
            f"need two 1-D vectors of the same length"
        )
    if x_shape[0] == 0:
        raise ValueError("dot: empty vectors (shape (0,))")
    result = sum(xi * wi for xi, wi in zip(x, w))
    _require_finite("dot", [("x", x), ("w", w)], result)
    return result


def project(h, W):
    """Project a vector, or a batch of vectors, through a matrix: ``h @ W`` (the blog's ``f2``).

    Entry ``j`` of the result is the dot product of ``h`` with column ``j`` of ``W``.

    Parameters
    ----------
    h : list of float, shape (k,), or list of lists, shape (B, k)
    W : list of lists of float, shape (k, V)

    Returns
    -------
    list of float, shape (V,), or list of lists, shape (B, V)

    Raises
    ------
    ValueError
        Shapes do not align (both are named), an input is empty, an entry is NaN or
        infinite, or the result overflows.
    TypeError
        A value that is not a real number.
    """
    h_shape, W_shape = shape(h), shape(W)
    h, W = to_floats(h, "project: h"), to_floats(W, "project: W")
    if len(W_shape) != 2 or len(h_shape) not in (1, 2) or h_shape[-1] != W_shape[0]:
        raise ValueError(
            f"project: shapes {h_shape} and {W_shape} are not aligned: "
            f"need h of shape (k,) or (B, k) and W of shape (k, V)"
        )
    if 0 in h_shape or 0 in W_shape:
        raise ValueError(f"project: empty input (shapes {h_shape} and {W_shape})")
    columns = list(zip(*W))  # column j of W, as a tuple of k numbers
    rows = h if len(h_shape) == 2 else [h]
    result = [[sum(hi * wi for hi, wi in zip(row, col)) for col in columns] for row in rows]
    _require_finite("project", [("h", h), ("W", W)], result)
    return result if len(h_shape) == 2 else result[0]
