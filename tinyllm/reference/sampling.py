"""Sampling in pure Python: the teaching version of ``tinyllm.sample``,
``tinyllm.sample_logits`` and ``tinyllm.filter_logits``.

Plain lists, ``math``, ``bisect`` and ``random.Random``; no NumPy. The filters keep
exactly the tokens the compiled ones keep (the arithmetic is done in the same
order, so even the boundary cases agree); only the random stream differs, since
this one comes from ``random.Random``. On one row of logits ``x``::

    m   = max(x)
    e_i = exp((x_i - m) / T)                       # T: the temperature
    rank: higher logit first, ties to the lower index
    top-k   keep the first k tokens of the ranking
    top-p   walk the ranking adding e_i / sum(e of the kept); stop once it is >= p
    min-p   keep e_i / S >= min_p * max_j (e_j / S), S = sum(e of the kept)
    draw    cum = running sums of the kept e_i;  token = first i with cum_i > u * cum[-1]

Sums run in index order with plain ``+=`` (not ``sum()``, which compensates
rounding on Python 3.12+), as the compiled kernels do. ``-inf`` logits are masks;
temperature 0 is greedy (the argmax, ties to the lowest index).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from numbers import Integral
from operator import index

from tinyllm.reference._checks import as_real, checked_temperature, shape, to_floats

__all__ = ["sample", "sample_logits", "filter_logits"]


# ---------------------------------------------------------------------------
# Argument checks (the same rules and messages as the compiled entry points)
# ---------------------------------------------------------------------------


def _as_random(rng, func: str) -> random.Random:
    """None -> fresh entropy, an int -> Random(seed), a random.Random as it is."""
    if rng is None:
        return random.Random()
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{func}: an rng seed must be >= 0, got {rng}")
        return random.Random(int(rng))
    raise TypeError(
        f"{func}: rng must be None, an int seed or a random.Random, got {type(rng).__name__}"
    )


def _checked_top_k(top_k, func: str) -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool):
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}")
    try:
        k = index(top_k)
    except TypeError:
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}") from None
    if k < 1:
        raise ValueError(f"{func}: top_k must be >= 1, got {k}")
    return k


def _checked_top_p(top_p, func: str) -> float:
    if top_p is None:
        return 1.0
    p = as_real(top_p, "top_p", func)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"{func}: top_p must be in (0, 1], got {top_p!r}")
    return p


def _checked_min_p(min_p, func: str) -> float:
    if min_p is None:
        return 0.0
    p = as_real(min_p, "min_p", func)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{func}: min_p must be in [0, 1], got {min_p!r}")
    return p


def _checked_size(size, func: str) -> tuple[int, ...] | None:
    if size is None:
        return None
    items = size if isinstance(size, (tuple, list)) else (size,)
    dims = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"{func}: size must be an int or a tuple of ints, got {size!r}")
        try:
            dim = index(item)
        except TypeError:
            raise TypeError(
                f"{func}: size must be an int or a tuple of ints, got {size!r}"
            ) from None
        if dim < 0:
            raise ValueError(f"{func}: size must not be negative, got {size!r}")
        dims.append(dim)
    return tuple(dims)


def _checked_rows(values, name: str, func: str) -> tuple[list[list[float]], bool]:
    """``values`` as a list of rows of floats, and whether it was 2-D."""
    values_shape = shape(values)
    values = to_floats(values, f"{func}: {name}")
    if len(values_shape) not in (1, 2):
        raise ValueError(f"{func}: {name} must have shape (V,) or (B, V), got shape {values_shape}")
    if 0 in values_shape:
        raise ValueError(f"{func}: {name} is empty (shape {values_shape})")
    batched = len(values_shape) == 2
    return (values if batched else [values]), batched


def _check_weights(rows: list[list[float]], batched: bool) -> None:
    for r, row in enumerate(rows):
        for i, w in enumerate(row):
            if math.isnan(w) or w == math.inf or w < 0.0:
                where = f"{r}, {i}" if batched else f"{i}"
                raise ValueError(
                    f"sample: weights[{where}] is {w}; weights must be finite and >= 0"
                )
    for r, row in enumerate(rows):
        where = f" (row {r})" if batched else ""
        total = 0.0
        for w in row:
            total += w
        if total == 0.0:
            raise ValueError(f"sample: the weights are all zero{where}; their sum must be > 0")
        if total == math.inf:
            raise ValueError(f"sample: the sum of the weights overflows{where}; scale them down")


def _check_logits(rows: list[list[float]], batched: bool, func: str) -> None:
    for r, row in enumerate(rows):
        for i, v in enumerate(row):
            if math.isnan(v) or v == math.inf:
                where = f"{r}, {i}" if batched else f"{i}"
                raise ValueError(
                    f"{func}: logits[{where}] is {v}; "
                    f"logits must be finite, or -inf to mask a token"
                )
    for r, row in enumerate(rows):
        if all(v == -math.inf for v in row):
            where = f" (row {r})" if batched else ""
            raise ValueError(
                f"{func}: every logit is -inf{where}; at least one token must be allowed"
            )


# ---------------------------------------------------------------------------
# The filters, on one checked row
# ---------------------------------------------------------------------------


def _kept_mass(e: list[float | None]) -> float:
    total = 0.0
    for w in e:
        if w is not None:
            total += w
    return total


def _filtered_weights(
    x: list[float], temperature: float, top_k: int | None, top_p: float, min_p: float
) -> list[float | None]:
    """The weight exp((x_i - m) / T) of each kept token, None for a removed one."""
    finite = [i for i, v in enumerate(x) if v != -math.inf]
    m = max(x)
    if temperature == 0.0:
        best = x.index(m)  # the first maximum
        return [1.0 if i == best else None for i in range(len(x))]

    def ranking(kept):
        return sorted(kept, key=lambda i: (-x[i], i))

    kept = finite
    if top_k is not None and top_k < len(kept):
        kept = ranking(kept)[:top_k]
    kept_set = set(kept)
    e = [math.exp((v - m) / temperature) if i in kept_set else None for i, v in enumerate(x)]

    if top_p < 1.0:
        total = _kept_mass(e)
        mass = 0.0
        nucleus = []
        for i in ranking(i for i, w in enumerate(e) if w is not None):
            nucleus.append(i)
            mass += e[i] / total
            if mass >= top_p:
                break
        nucleus_set = set(nucleus)
        e = [w if i in nucleus_set else None for i, w in enumerate(e)]

    if min_p > 0.0:
        total = _kept_mass(e)
        top = max(w / total for w in e if w is not None)
        threshold = min_p * top
        e = [w if w is not None and w / total >= threshold else None for w in e]
    return e


def _draws(weights: list[float], n_draws: int, rng: random.Random) -> list[int]:
    """n_draws tokens from non-negative weights: cumulative table + binary search."""
    cum = []
    running = 0.0
    last = 0
    for i, w in enumerate(weights):
        if w > 0.0:
            running += w
            last = i
        cum.append(running)
    # bisect_right: the first i with cum[i] > r. u * total may round up to total.
    return [min(bisect_right(cum, rng.random() * running), last) for _ in range(n_draws)]


def _shaped(flat: list[int], dims: tuple[int, ...]):
    """The flat list of draws nested as ``dims``."""
    if not dims:
        return flat[0]
    step = len(flat) // dims[0] if dims[0] else 0
    return [_shaped(flat[j * step : (j + 1) * step], dims[1:]) for j in range(dims[0])]


def _result(per_row: list[list[int]], batched: bool, size: tuple[int, ...] | None):
    if size is None:
        tokens = [row[0] for row in per_row]
        return tokens if batched else tokens[0]
    shaped = [_shaped(row, size) for row in per_row]
    return shaped if batched else shaped[0]


def _n_draws(size: tuple[int, ...] | None) -> int:
    return 1 if size is None else math.prod(size)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def sample(weights, size=None, rng=None):
    """Draw token indices with probability proportional to ``weights``.

    Parameters
    ----------
    weights : list of float, shape (V,) or (B, V)
        Non-negative, finite weights with a positive sum per row.
    size : int or tuple of ints, optional
        Draws per distribution; None for one (an int for 1-D weights).
    rng : None, int or random.Random, optional
        The random stream: an int seeds ``random.Random(seed)``; None takes fresh
        entropy. One ``rng.random()`` per draw.

    Returns
    -------
    int or (nested) list of int
        An int for 1-D weights and ``size=None``; otherwise nested lists of shape
        ``size`` (1-D weights), ``(B,)`` or ``(B,) + size`` (2-D weights).

    Raises
    ------
    ValueError, TypeError
        As ``tinyllm.sample``.
    """
    rows, batched = _checked_rows(weights, "weights", "sample")
    dims = _checked_size(size, "sample")
    rng = _as_random(rng, "sample")
    _check_weights(rows, batched)
    n_draws = _n_draws(dims)
    return _result([_draws(row, n_draws, rng) for row in rows], batched, dims)


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, size=None, rng=None):
    """Draw tokens from ``softmax(logits / temperature)`` after top-k, top-p, min-p.

    Parameters
    ----------
    logits : list of float, shape (V,) or (B, V)
        Scores; ``-inf`` masks a token.
    temperature, top_k, top_p, min_p
        As ``tinyllm.sample_logits``: temperature 0 is greedy; top-k keeps k
        tokens; top-p the smallest best-ranked set whose probability reaches
        >= top_p; min-p the tokens with probability >= min_p times the largest.
    size, rng
        As in :func:`sample`.

    Returns
    -------
    int or (nested) list of int
        As in :func:`sample`.

    Raises
    ------
    ValueError, TypeError
        As ``tinyllm.sample_logits``.
    """
    func = "sample_logits"
    rows, batched = _checked_rows(logits, "logits", func)
    t = checked_temperature(temperature, func)
    k = _checked_top_k(top_k, func)
    p = _checked_top_p(top_p, func)
    mp = _checked_min_p(min_p, func)
    dims = _checked_size(size, func)
    rng = _as_random(rng, func)
    _check_logits(rows, batched, func)
    n_draws = _n_draws(dims)
    per_row = []
    for row in rows:
        e = _filtered_weights(row, t, k, p, mp)
        weights = [0.0 if w is None else w for w in e]
        if t == 0.0:
            per_row.append([weights.index(1.0)] * n_draws)  # greedy: no random numbers
        else:
            per_row.append(_draws(weights, n_draws, rng))
    return _result(per_row, batched, dims)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """The logits that :func:`sample_logits` draws from: ``logits / temperature``
    for the tokens the filters keep, ``-inf`` for the others (temperature 0: the
    argmax alone, its logit unscaled).

    Parameters
    ----------
    logits : list of float, shape (V,) or (B, V)
    temperature, top_k, top_p, min_p
        As in :func:`sample_logits`.

    Returns
    -------
    list of float, same shape as ``logits``

    Raises
    ------
    ValueError, TypeError
        As ``tinyllm.filter_logits``.
    """
    func = "filter_logits"
    rows, batched = _checked_rows(logits, "logits", func)
    t = checked_temperature(temperature, func)
    k = _checked_top_k(top_k, func)
    p = _checked_top_p(top_p, func)
    mp = _checked_min_p(min_p, func)
    _check_logits(rows, batched, func)
    result = []
    for r, row in enumerate(rows):
        e = _filtered_weights(row, t, k, p, mp)
        out = []
        for v, w in zip(row, e):
            if w is None:
                out.append(-math.inf)
                continue
            scaled = v if t == 0.0 else v / t
            if math.isinf(scaled):
                where = f" (row {r})" if batched else ""
                raise ValueError(
                    f"{func}: logits / temperature overflows float64{where}; "
                    f"use a larger temperature"
                )
            out.append(scaled)
        result.append(out)
    return result if batched else result[0]
