"""Softmax and log-softmax in pure Python: the teaching version of ``tinyllm.softmax``
and ``tinyllm.log_softmax``.

Plain (nested) lists and ``math``, no NumPy: slow on purpose and easy to read. It is
the oracle of the tests and the baseline of the benchmarks, so it keeps the names,
semantics and errors of the compiled functions. The stable algorithm, on one slice::

    m = max(x)                        # subtracting it keeps every exp() <= 1
    s_i = (x_i - m) / T               # T: the temperature
    softmax_i     = exp(s_i) / sum_j exp(s_j)
    log_softmax_i = s_i - log(sum_j exp(s_j))

``-inf`` entries are masks (probability 0, log-probability -inf); NaN, +inf and a
slice with no finite entry are errors. Temperature 0 is the greedy limit: probability
1 for the first largest entry, 0 for the others (the token greedy sampling picks).
"""

from __future__ import annotations

import math
from operator import index

from tinyllm.reference._checks import checked_temperature, shape, to_floats

__all__ = ["softmax", "log_softmax"]


def _one_slice(x: list[float], temperature: float, take_log: bool, func: str) -> list[float]:
    """softmax (or log_softmax) of one 1-D slice."""
    if any(math.isnan(v) for v in x):
        raise ValueError(f"{func}: x contains NaN")
    m = max(x)
    if m == math.inf:
        raise ValueError(f"{func}: x contains +inf; only -inf is allowed (as a mask)")
    if m == -math.inf:
        raise ValueError(f"{func}: every entry of a slice is -inf; at least one must be finite")
    if temperature == 0.0:  # the limit T -> 0, with ties to the first (as greedy sampling)
        best = x.index(m)
        if take_log:
            return [0.0 if i == best else -math.inf for i in range(len(x))]
        return [1.0 if i == best else 0.0 for i in range(len(x))]
    shifted = [(v - m) / temperature for v in x]  # all <= 0: exp() cannot overflow
    exps = [math.exp(s) for s in shifted]
    total = sum(exps)  # >= 1: the max contributes exp(0)
    if take_log:
        log_total = math.log(total)
        return [s - log_total for s in shifted]
    return [e / total for e in exps]


def _along(x: list, axis: int, ndim: int, fn):
    """Apply ``fn`` (1-D list -> 1-D list) to every slice of nested list ``x`` along ``axis``."""
    if axis > 0:
        return [_along(item, axis - 1, ndim - 1, fn) for item in x]
    if ndim == 1:
        return fn(x)
    # axis 0 of an n-D list: regroup so that axis 0 is one level further in
    # (zip(*x) walks the next axis), work there, then regroup back.
    regrouped = [_along(list(column), 0, ndim - 1, fn) for column in zip(*x)]
    return [list(row) for row in zip(*regrouped)]


def _softmax_along(x, axis, temperature, take_log: bool, func: str):
    x_shape = shape(x)
    x = to_floats(x, f"{func}: x")
    if not x_shape:
        raise ValueError(f"{func}: x must have at least one dimension, got a scalar")
    if 0 in x_shape:
        raise ValueError(f"{func}: x is empty (shape {x_shape})")
    ndim = len(x_shape)
    try:
        if isinstance(axis, bool):
            raise TypeError
        ax = index(axis)
    except TypeError:
        raise TypeError(f"{func}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"{func}: axis {axis} is out of bounds for an array of dimension {ndim}")
    t = checked_temperature(temperature, func)
    return _along(x, ax % ndim, ndim, lambda row: _one_slice(row, t, take_log, func))


def softmax(x, axis=-1, temperature=1.0):
    """Numerically stable softmax of ``x / temperature`` along ``axis``.

    Parameters
    ----------
    x : list of float, nested to any depth
        Logits. ``-inf`` entries are masked out (probability 0).
    axis : int, default -1
        The axis along which the probabilities sum to 1.
    temperature : float, default 1.0
        Divides the logits first: < 1 sharpens, > 1 flattens. Finite and >= 0
        (0: all the mass on the first largest logit).

    Returns
    -------
    list of float, same nesting as ``x``

    Raises
    ------
    ValueError
        A number (0-d) or empty input, NaN or +inf entries, a slice that is all
        -inf, a bad axis or temperature.
    TypeError
        A value that is not a real number.
    """
    return _softmax_along(x, axis, temperature, False, "softmax")


def log_softmax(x, axis=-1, temperature=1.0):
    """Numerically stable log-softmax of ``x / temperature`` along ``axis``.

    Equal to ``log(softmax(x, axis, temperature))`` but exact where the
    probabilities underflow. Masked (``-inf``) entries give ``-inf``.

    Parameters, Returns and Raises as in :func:`softmax`.
    """
    return _softmax_along(x, axis, temperature, True, "log_softmax")
