"""Sampling in pure Python: the teaching version of ``tinyllm.sample``,
``tinyllm.sample_logits`` and ``tinyllm.filter_logits``.

Plain lists, ``math``, ``bisect`` and ``random.Random``; no NumPy. The decoding chain
keeps exactly the tokens the compiled one keeps: every step below is defined so that
no result depends on the order of a floating-point sum (the masses are exact
integers) and the one exponential is spelled out (:func:`filter_exp`). Only the
random stream differs, since this one comes from ``random.Random``. On one row of
logits ``x`` (V tokens)::

    y     = x + logit_bias                       # -inf bans a token
    y_t   = y_t * r if y_t <= 0 else y_t / r     # for each token t of the last
    y_t  -= fma(c_t, frequency, presence)        # penalty_last_n of history (c_t times)
    T = 0: the argmax of y (ties to the lowest index); nothing else applies
    s_i   = (y_i - max(y)) / T                   # T: the temperature; s = 0 at the top
    e_i   = filter_exp(s_i)                      # exp(s_i); 1 at the top, 0 for -inf
    w_i   = round(e_i * 2**K)                    # the weight as an exact integer
    rank: higher y first, ties to the lower index
    top-n-sigma  keep s_i >= -n * std(s)
    top-k        keep the first k of the ranking
    top-p        keep the shortest prefix of the ranking whose w sum to >= p * W
    min-p        keep w_i >= min_p * 2**K        # P_i >= min_p * P_max (w_max = 2**K)
    typical-p    keep the tokens whose -log P_i is nearest the entropy, until >= p * W
    draw         token = the first kept i (index order) with cum_w_i > u * W

W is the sum of w over the tokens still kept; every filter keeps at least
``min_tokens_to_keep`` tokens. ``-inf`` logits are masks and are never kept.
"""

from __future__ import annotations

import math
import random
import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from operator import index

from tinyllm.reference._checks import as_real, checked_temperature, shape, to_floats

__all__ = ["sample", "sample_logits", "filter_logits", "filter_exp"]


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


def _is_bool(value) -> bool:
    """A Python or a NumPy bool (``numpy.bool_`` is no subclass of bool)."""
    return isinstance(value, bool) or (
        type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    )


def _as_integer(value, name: str, func: str) -> int:
    """An integer (Python or NumPy, not a bool) as a Python int."""
    if _is_bool(value):
        raise TypeError(f"{func}: {name} must be an integer, got {value!r}")
    try:
        return index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an integer, got {value!r}") from None


def _checked_top_k(top_k, func: str) -> int | None:
    if top_k is None:
        return None
    k = _as_integer(top_k, "top_k", func)
    if k < 1:
        raise ValueError(f"{func}: top_k must be >= 1, got {k}")
    return k


def _checked_fraction(value, name: str, func: str) -> float:
    """A real in (0, 1]; None is 1 (the filter is off)."""
    if value is None:
        return 1.0
    p = as_real(value, name, func)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"{func}: {name} must be in (0, 1], got {value!r}")
    return p


def _checked_min_p(min_p, func: str) -> float:
    if min_p is None:
        return 0.0
    p = as_real(min_p, "min_p", func)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{func}: min_p must be in [0, 1], got {min_p!r}")
    return p


def _checked_top_n_sigma(top_n_sigma, func: str) -> float | None:
    if top_n_sigma is None:
        return None
    n = as_real(top_n_sigma, "top_n_sigma", func)
    if not (n >= 0.0 and math.isfinite(n)):
        raise ValueError(f"{func}: top_n_sigma must be finite and >= 0, got {top_n_sigma!r}")
    return n


def _checked_count(value, name: str, minimum: int, func: str) -> int:
    """An integer >= ``minimum`` that fits in a Py_ssize_t (as the compiled ones need)."""
    n = _as_integer(value, name, func)
    if n < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {n}")
    if n > sys.maxsize:
        raise ValueError(f"{func}: {name} must be at most {sys.maxsize}, got {n}")
    return n


def _checked_position(value, name: str, n_tokens: int, func: str) -> int:
    """A position in [0, n_tokens): TypeError if not an integer, ValueError if out of range."""
    if _is_bool(value):
        raise TypeError(f"{func}: {name} must hold integer positions, got {value!r}")
    try:
        position = index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must hold integer positions, got {value!r}") from None
    if not 0 <= position < n_tokens:
        raise ValueError(
            f"{func}: {name}: position {position} is out of range for {n_tokens} tokens"
        )
    return position


def _checked_logit_bias(logit_bias, n_tokens: int, func: str) -> dict[int, float]:
    """{position: bias}; a bias is finite, or -inf to ban the token."""
    if logit_bias is None:
        return {}
    if not isinstance(logit_bias, Mapping):
        raise TypeError(
            f"{func}: logit_bias must be a dict {{position: bias}}, got {type(logit_bias).__name__}"
        )
    checked = {}
    for key, value in logit_bias.items():
        position = _as_integer(key, "a logit_bias position", func)
        if not 0 <= position < n_tokens:
            raise ValueError(
                f"{func}: logit_bias: position {position} is out of range for {n_tokens} tokens"
            )
        bias = as_real(value, f"logit_bias[{position}]", func)
        if math.isnan(bias) or bias == math.inf:
            raise ValueError(
                f"{func}: logit_bias[{position}] is {bias}; "
                f"a bias must be finite, or -inf to ban the token"
            )
        checked[position] = bias
    return checked


def _checked_repetition_penalty(repetition_penalty, func: str) -> float:
    r = as_real(repetition_penalty, "repetition_penalty", func)
    if not (r > 0.0 and math.isfinite(r)):
        raise ValueError(
            f"{func}: repetition_penalty must be finite and > 0, got {repetition_penalty!r}"
        )
    return r


def _checked_finite(value, name: str, func: str) -> float:
    v = as_real(value, name, func)
    if not math.isfinite(v):
        raise ValueError(f"{func}: {name} must be finite, got {value!r}")
    return v


def _checked_penalty_last_n(penalty_last_n, func: str) -> int | None:
    if penalty_last_n is None:
        return None
    return _checked_count(penalty_last_n, "penalty_last_n", 0, func)


def _is_sequence(value) -> bool:
    """A list, tuple, range, array...: something with a length and items, not a string."""
    if isinstance(value, (str, bytes, bytearray, Mapping)):
        return False
    try:
        len(value)
    except TypeError:
        return False
    return hasattr(value, "__getitem__")


def _is_position(value) -> bool:
    """An integer (Python or NumPy) other than a bool."""
    if _is_bool(value):
        return False
    try:
        index(value)
    except TypeError:
        return False
    return True


def _checked_history(history, n_rows: int, batched: bool, n_tokens: int, func: str):
    """The history of each row as a list of positions: one sequence for every row, or
    (2-D logits) one sequence per row."""
    if history is None:
        return [[] for _ in range(n_rows)]
    if _is_position(history):
        raise ValueError(f"{func}: history must be a 1-D sequence of positions, got shape ()")
    if not _is_sequence(history):
        raise TypeError(
            f"{func}: history must be None or a sequence of positions, got {type(history).__name__}"
        )
    items = list(history)
    per_row = len(items) > 0 and not _is_position(items[0]) and _is_sequence(items[0])
    if not per_row:
        row = [_checked_position(v, "history", n_tokens, func) for v in items]
        return [row for _ in range(n_rows)]
    if not batched:
        raise ValueError(
            f"{func}: history must be one sequence of positions for logits of shape (V,), "
            f"got a sequence of {len(items)} sequences"
        )
    if len(items) != n_rows:
        raise ValueError(f"{func}: history has {len(items)} rows, the logits have {n_rows}")
    rows = []
    for item in items:
        if not _is_sequence(item):
            raise TypeError(f"{func}: history must hold sequences of positions, got {item!r}")
        rows.append([_checked_position(v, "history", n_tokens, func) for v in item])
    return rows


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


def _check_adjusted(ys: list[list[float]], batched: bool, func: str) -> None:
    """The rows after logit_bias and the penalties: still no NaN or +inf (an overflow),
    and still a finite logit in every row (a bias of -inf may ban them all)."""
    for r, y in enumerate(ys):
        for i, v in enumerate(y):
            if math.isnan(v) or v == math.inf:
                where = f"{r}, {i}" if batched else f"{i}"
                raise ValueError(
                    f"{func}: logits[{where}] is {v} after logit_bias and the penalties; "
                    f"use smaller biases or penalties"
                )
        if all(v == -math.inf for v in y):
            where = f" (row {r})" if batched else ""
            raise ValueError(
                f"{func}: every logit{where} is -inf after logit_bias and the penalties; "
                f"at least one token must be allowed"
            )


@dataclass(frozen=True)
class _Chain:
    """The checked options of the decoding chain (None or a neutral value: off)."""

    temperature: float
    top_k: int | None
    top_p: float
    min_p: float
    typical_p: float
    top_n_sigma: float | None
    min_keep: int
    logit_bias: dict[int, float]
    repetition_penalty: float
    presence_penalty: float
    frequency_penalty: float
    penalty_last_n: int | None


def _checked_chain(func, rows, batched, temperature, top_k, top_p, min_p, options):
    """The checked options and each row's history; the first bad one raises, in the
    order of the signature."""
    n_tokens = len(rows[0])
    chain = _Chain(
        temperature=checked_temperature(temperature, func),
        top_k=_checked_top_k(top_k, func),
        top_p=_checked_fraction(top_p, "top_p", func),
        min_p=_checked_min_p(min_p, func),
        typical_p=_checked_fraction(options["typical_p"], "typical_p", func),
        top_n_sigma=_checked_top_n_sigma(options["top_n_sigma"], func),
        min_keep=_checked_count(options["min_tokens_to_keep"], "min_tokens_to_keep", 1, func),
        logit_bias=_checked_logit_bias(options["logit_bias"], n_tokens, func),
        repetition_penalty=_checked_repetition_penalty(options["repetition_penalty"], func),
        presence_penalty=_checked_finite(options["presence_penalty"], "presence_penalty", func),
        frequency_penalty=_checked_finite(options["frequency_penalty"], "frequency_penalty", func),
        penalty_last_n=_checked_penalty_last_n(options["penalty_last_n"], func),
    )
    histories = _checked_history(options["history"], len(rows), batched, n_tokens, func)
    return chain, histories


# ---------------------------------------------------------------------------
# One rounding: the fused multiply-add (the penalties and filter_exp)
# ---------------------------------------------------------------------------


def _exact_fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once, for Pythons without ``math.fma`` (before 3.13): the exact
    value as a ratio of integers, then one int / int true division, which CPython rounds
    correctly. (An exact zero comes out +0.0 where IEEE may say -0.0: nothing here can
    tell the difference.)"""
    an, ad = a.as_integer_ratio()
    bn, bd = b.as_integer_ratio()
    cn, cd = c.as_integer_ratio()
    numerator = an * bn * cd + cn * ad * bd
    try:
        return numerator / (ad * bd * cd)
    except OverflowError:  # beyond the largest double: IEEE rounds to an infinity
        return math.inf if numerator > 0 else -math.inf


_math_fma = getattr(math, "fma", None)


def fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once, as C's ``fma`` (an overflow is an infinity, where
    ``math.fma`` raises)."""
    if _math_fma is not None:
        try:
            return _math_fma(a, b, c)
        except OverflowError:
            pass
    return _exact_fma(a, b, c)


# ---------------------------------------------------------------------------
# Steps 1-2: logit_bias and the penalties
# ---------------------------------------------------------------------------


def _apply_logit_bias(y: list[float], logit_bias: dict[int, float]) -> None:
    """y_t += bias_t: OpenAI's ``logit_bias`` (llama.cpp's ``llama_sampler_logit_bias``);
    a bias of -inf bans the token."""
    for t, bias in logit_bias.items():
        y[t] = y[t] + bias


def _penalty_window(history: list[int], last_n: int | None) -> list[int]:
    """The last ``last_n`` tokens of the history (all of it for None, none for 0)."""
    if last_n is None:
        return history
    return history[max(0, len(history) - last_n) :] if last_n > 0 else []


def _apply_penalties(y: list[float], window: list[int], chain: _Chain) -> None:
    """Penalise each distinct token t of the window, seen c_t times.

    The repetition penalty r of CTRL (Keskar et al. 2019) as transformers'
    ``RepetitionPenaltyLogitsProcessor`` and llama.cpp's ``llama_sampler_penalties_apply``
    apply it: y_t * r if y_t <= 0, else y_t / r (transformers tests y_t < 0: the same
    at 0). Then OpenAI's presence and frequency penalties, as llama.cpp writes them:
    y_t -= c_t * frequency + presence (the penalty a fused multiply-add, so one rounding;
    then one subtraction). A -inf logit stays -inf.
    """
    r = chain.repetition_penalty
    for t, count in Counter(window).items():
        if r != 1.0:
            y[t] = y[t] * r if y[t] <= 0.0 else y[t] / r
        if y[t] == -math.inf:
            continue  # a ban stays a ban (-inf minus a penalty of -inf would be NaN)
        y[t] = y[t] - fma(float(count), chain.frequency_penalty, chain.presence_penalty)


def _adjusted_logits(x: list[float], history: list[int], chain: _Chain) -> list[float]:
    """y: the row after logit_bias and the penalties (y = x without them)."""
    y = list(x)
    _apply_logit_bias(y, chain.logit_bias)
    _apply_penalties(y, _penalty_window(history, chain.penalty_last_n), chain)
    return y


# ---------------------------------------------------------------------------
# Step 3: the exponential, the weights and the ranking
# ---------------------------------------------------------------------------


_ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_LOG2_E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_EXP_COEFFICIENTS = (  # of the Taylor series of exp(r) on |r| <= ln(2) / 2, highest first
    2.7621338669142925e-07,
    2.75572664186123e-06,
    2.4801518641395993e-05,
    0.00019841269864380513,
    0.0013888888918939168,
    0.008333333333329793,
    0.04166666666662064,
    0.16666666666666669,
    0.5000000000000001,
    1.0,
    1.0,
)


def filter_exp(s: float) -> float:
    """exp(s) for s <= 0 (or -inf), computed the way the compiled filters compute it.

    Every step is one correctly rounded operation, so this Python function and the
    vectorised C agree bit for bit: exp(s) = 2**n * exp(r) with n = round(s / ln 2)
    and r = s - n ln 2 (in two parts, LN2_HI + LN2_LO), exp(r) by a degree-12
    polynomial in Horner's form with fused multiply-adds. 1 exactly for s = 0, 0 below
    -746 (where exp underflows); within a few ulp of ``math.exp``.
    """
    if s < -746.0:  # -inf too
        return 0.0
    t = fma(s, _LOG2_E, _ROUND_SHIFT)  # the low bits of t hold n = round(s * log2(e))
    n = t - _ROUND_SHIFT  # exact: an integer-valued double
    r = fma(-n, _LN2_HI, s)
    r = fma(-n, _LN2_LO, r)
    p = 2.510134692835034e-08
    for c in _EXP_COEFFICIENTS:
        p = fma(p, r, c)
    return math.ldexp(p, int(n))  # p * 2**n, rounded once (subnormal results too)


def _weight_bits(n_tokens: int) -> int:
    """K: the weights are e * 2**K, so that V of them add up to less than 2**63."""
    return min(52, 63 - n_tokens.bit_length())


def _ranking(y: list[float], tokens) -> list[int]:
    """``tokens`` best first: higher logit first, ties to the lower index."""
    return sorted(tokens, key=lambda i: (-y[i], i))


@dataclass
class _Row:
    """One row at temperature T > 0: y, s, e, w as in the module's docstring."""

    y: list[float]
    s: list[float]
    e: list[float]
    w: list[int]
    bits: int  # K


def _scaled_row(y: list[float], temperature: float) -> _Row:
    m = max(y)
    s = [(v - m) / temperature if v != -math.inf else -math.inf for v in y]
    e = [filter_exp(v) for v in s]
    bits = _weight_bits(len(y))
    w = [round(v * 2.0**bits) for v in e]  # round() ties to even; exact ints
    return _Row(y, s, e, w, bits)


def _greedy(y: list[float]) -> int:
    """The argmax, ties to the lowest index."""
    return y.index(max(y))


# ---------------------------------------------------------------------------
# Step 4: the filters. Each takes the kept tokens best-ranked first and returns the
# ones it keeps, best-ranked first too, at least min_keep of them.
# ---------------------------------------------------------------------------


def _lanesum(tokens: list[int], term) -> float:
    """The sum of term(i) over ``tokens`` in 8 lanes (lane = i mod 8, in index order),
    then the lanes pairwise: the order the vectorised C adds them in."""
    lanes = [0.0] * 8
    for i in sorted(tokens):
        lanes[i % 8] += term(i)
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
        (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
    )


def _at_least(kept: list[int], before: list[int], min_keep: int) -> list[int]:
    """``kept``, or the min_keep best-ranked of ``before`` if it keeps fewer."""
    return kept if len(kept) >= min_keep else before[:min_keep]


def _shortest_prefix(order: list[int], w: list[int], fraction: float, min_keep: int) -> list[int]:
    """The shortest prefix of ``order`` whose weights reach ``fraction`` of the total,
    compared as float(sum) >= fraction * float(W); at least min_keep tokens."""
    target = fraction * float(sum(w[i] for i in order))
    mass = 0
    for n, i in enumerate(order, start=1):
        mass += w[i]
        if float(mass) >= target:
            return order[: max(n, min_keep)]
    return order  # unreachable: mass == W >= target at the end


def _keep_top_n_sigma(kept: list[int], row: _Row, n: float, min_keep: int) -> list[int]:
    """Top-n-sigma (Tang et al. 2024, "Top-nσ: Not All Logits Are You Need"; llama.cpp's
    ``llama_sampler_top_n_sigma_apply``): keep the tokens within n standard deviations
    of the top logit, s_i >= -n * sigma, the mean and deviation over the kept tokens.

    Ours sums in 8 lanes (:func:`_lanesum`), keeps min_keep tokens, and n = 0 keeps the
    top logit's ties (llama.cpp makes n <= 0 a no-op).
    """
    s = row.s
    count = len(kept)
    mean = _lanesum(kept, lambda i: s[i]) / count
    sigma = math.sqrt(_lanesum(kept, lambda i: (s[i] - mean) * (s[i] - mean)) / count)
    threshold = -(n * sigma)
    return _at_least([i for i in kept if s[i] >= threshold], kept, min_keep)


def _keep_top_k(kept: list[int], k: int, min_keep: int) -> list[int]:
    """Top-k (Fan et al. 2018; transformers' ``TopKLogitsWarper``, llama.cpp's
    ``llama_sampler_top_k_apply``): the k best-ranked tokens.

    Exactly max(k, min_keep): ties at the k-th logit go to the lower indices
    (transformers keeps every token tied with the k-th).
    """
    return kept[: max(k, min_keep)]


def _keep_top_p(kept: list[int], row: _Row, p: float, min_keep: int) -> list[int]:
    """Top-p, nucleus sampling (Holtzman et al. 2020; transformers' ``TopPLogitsWarper``,
    llama.cpp's ``llama_sampler_top_p_apply``): the shortest best-ranked prefix whose
    probability reaches p.

    The masses are the exact integer weights w (no rounding in the running sum), ties
    keep the lower indices first.
    """
    return _shortest_prefix(kept, row.w, p, min_keep)


def _keep_min_p(kept: list[int], row: _Row, q: float, min_keep: int) -> list[int]:
    """Min-p (Nguyen et al. 2024; transformers' ``MinPLogitsWarper``, llama.cpp's
    ``llama_sampler_min_p_apply``): keep P_i >= q * P_max on the weights the draw uses,
    i.e. w_i >= q * 2**K, since the top token's weight is 2**K (an exact comparison
    of an int and a float).
    """
    limit = q * 2.0**row.bits
    return _at_least([i for i in kept if row.w[i] >= limit], kept, min_keep)


def _keep_typical(kept: list[int], row: _Row, tau: float, min_keep: int) -> list[int]:
    """Locally typical sampling (Meister et al. 2022; transformers' ``TypicalLogitsWarper``,
    llama.cpp's ``llama_sampler_typical_apply``): rank the tokens by how far their
    information -log P_i is from the entropy H, nearest first, and keep the shortest
    prefix of that order whose probability reaches tau.

    With P_i = w_i / W and Z = W * 2**-K: -log P_i = log Z - s_i and
    H = log Z - sum(w_i s_i) / W, the sum taken in exact integers (A, each term
    rounded once). Ties in the
    distance go to the lower index (transformers keeps every tied token; llama.cpp
    stops at a mass strictly above tau).
    """
    s, w, bits = row.s, row.w, row.bits
    total = sum(w[i] for i in kept)
    spread = sum(round(-(float(w[i]) * s[i])) for i in kept if w[i] > 0)  # A
    log_z = math.log(float(total) * 2.0**-bits)
    entropy = log_z + float(spread) / float(total)
    distance = {i: abs((log_z - s[i]) - entropy) for i in kept}
    nearest_first = sorted(kept, key=lambda i: (distance[i], i))
    chosen = set(_shortest_prefix(nearest_first, w, tau, min_keep))
    return [i for i in kept if i in chosen]


def _kept_tokens(row: _Row, chain: _Chain) -> list[int]:
    """The tokens the filters keep, in index order (step 4, the filters in order)."""
    y, min_keep = row.y, chain.min_keep
    kept = _ranking(y, (i for i, v in enumerate(y) if v != -math.inf))
    if chain.top_n_sigma is not None:
        kept = _keep_top_n_sigma(kept, row, chain.top_n_sigma, min_keep)
    if chain.top_k is not None:
        kept = _keep_top_k(kept, chain.top_k, min_keep)
    if chain.top_p < 1.0:
        kept = _keep_top_p(kept, row, chain.top_p, min_keep)
    if chain.min_p > 0.0:
        kept = _keep_min_p(kept, row, chain.min_p, min_keep)
    if chain.typical_p < 1.0:
        kept = _keep_typical(kept, row, chain.typical_p, min_keep)
    return sorted(kept)


# ---------------------------------------------------------------------------
# Step 5: the draw
# ---------------------------------------------------------------------------


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


def _draws_from_kept(kept: list[int], w: list[int], n_draws: int, rng: random.Random) -> list[int]:
    """n_draws of the kept tokens with probability w_i / W: the first kept i (index
    order) whose float(cumulative w) > u * float(W); the last with w > 0 if none."""
    cumulative = []
    running = 0
    for i in kept:
        running += w[i]
        cumulative.append(float(running))
    total = float(running)
    last = max(j for j, i in enumerate(kept) if w[i] > 0)
    return [kept[min(bisect_right(cumulative, rng.random() * total), last)] for _ in range(n_draws)]


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


def _checked_logits_and_chain(func, logits, temperature, top_k, top_p, min_p, options):
    """The rows of logits (their shape checked), whether they were 2-D, the chain's
    options and each row's history."""
    rows, batched = _checked_rows(logits, "logits", func)
    chain, histories = _checked_chain(
        func, rows, batched, temperature, top_k, top_p, min_p, options
    )
    return rows, batched, chain, histories


def _adjusted_rows(func, rows, batched, chain, histories) -> list[list[float]]:
    """Steps 1-2 on every row, each row checked before and after (before any draw)."""
    _check_logits(rows, batched, func)
    ys = [_adjusted_logits(row, history, chain) for row, history in zip(rows, histories)]
    _check_adjusted(ys, batched, func)
    return ys


def sample_logits(
    logits,
    temperature=1.0,
    top_k=None,
    top_p=None,
    min_p=None,
    size=None,
    rng=None,
    *,
    typical_p=None,
    top_n_sigma=None,
    min_tokens_to_keep=1,
    logit_bias=None,
    repetition_penalty=1.0,
    presence_penalty=0.0,
    frequency_penalty=0.0,
    penalty_last_n=64,
    history=None,
):
    """Draw tokens from ``softmax(logits / temperature)`` after the decoding chain:
    logit_bias, the penalties, then top-n-sigma, top-k, top-p, min-p, typical-p.

    Parameters
    ----------
    logits : list of float, shape (V,) or (B, V)
        Scores; ``-inf`` masks a token.
    temperature : float
        >= 0; 0 is greedy (the argmax after bias and penalties, no random number).
    top_k : int, optional
        Keep the k best-ranked tokens (ties to the lower index).
    top_p : float in (0, 1], optional
        Keep the shortest best-ranked set whose probability reaches top_p.
    min_p : float in [0, 1], optional
        Keep the tokens whose probability is >= min_p times the largest.
    size, rng
        As in :func:`sample`.
    typical_p : float in (0, 1], optional
        Keep the tokens whose information is nearest the entropy, until their
        probability reaches typical_p (1 is off).
    top_n_sigma : float >= 0, optional
        Keep the tokens whose scaled logit is within top_n_sigma standard deviations
        of the largest.
    min_tokens_to_keep : int >= 1
        Every filter keeps at least this many tokens (all of them if fewer).
    logit_bias : mapping {position: bias}, optional
        Added to the logits first; a bias of -inf bans the token.
    repetition_penalty : float > 0
        Divides the positive logits of the tokens in the window and multiplies the
        others (1 is off).
    presence_penalty, frequency_penalty : float
        Subtracted from the logit of each token of the window: presence once,
        frequency once per occurrence (0 is off; negative values reward).
    penalty_last_n : int >= 0 or None
        The window: the last penalty_last_n tokens of ``history`` (None: all of it,
        0: none).
    history : sequence of int, optional
        The positions generated so far, for every row; for 2-D logits also one
        sequence per row.

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
    options = dict(
        typical_p=typical_p,
        top_n_sigma=top_n_sigma,
        min_tokens_to_keep=min_tokens_to_keep,
        logit_bias=logit_bias,
        repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        penalty_last_n=penalty_last_n,
        history=history,
    )
    rows, batched, chain, histories = _checked_logits_and_chain(
        func, logits, temperature, top_k, top_p, min_p, options
    )
    dims = _checked_size(size, func)
    rng = _as_random(rng, func)
    ys = _adjusted_rows(func, rows, batched, chain, histories)
    n_draws = _n_draws(dims)
    per_row = []
    for y in ys:
        if chain.temperature == 0.0:
            per_row.append([_greedy(y)] * n_draws)  # no random numbers
            continue
        row = _scaled_row(y, chain.temperature)
        per_row.append(_draws_from_kept(_kept_tokens(row, chain), row.w, n_draws, rng))
    return _result(per_row, batched, dims)


def filter_logits(
    logits,
    temperature=1.0,
    top_k=None,
    top_p=None,
    min_p=None,
    *,
    typical_p=None,
    top_n_sigma=None,
    min_tokens_to_keep=1,
    logit_bias=None,
    repetition_penalty=1.0,
    presence_penalty=0.0,
    frequency_penalty=0.0,
    penalty_last_n=64,
    history=None,
):
    """The logits that :func:`sample_logits` draws from: ``y / temperature`` for the
    tokens the chain keeps (y: the logits after logit_bias and the penalties), ``-inf``
    for the others (temperature 0: the argmax alone, its y unscaled).

    Parameters
    ----------
    logits : list of float, shape (V,) or (B, V)
    temperature, top_k, top_p, min_p, typical_p, top_n_sigma, min_tokens_to_keep, \
logit_bias, repetition_penalty, presence_penalty, frequency_penalty, penalty_last_n, history
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
    options = dict(
        typical_p=typical_p,
        top_n_sigma=top_n_sigma,
        min_tokens_to_keep=min_tokens_to_keep,
        logit_bias=logit_bias,
        repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty,
        penalty_last_n=penalty_last_n,
        history=history,
    )
    rows, batched, chain, histories = _checked_logits_and_chain(
        func, logits, temperature, top_k, top_p, min_p, options
    )
    ys = _adjusted_rows(func, rows, batched, chain, histories)
    t = chain.temperature
    result = []
    for r, y in enumerate(ys):
        if t == 0.0:
            best = _greedy(y)
            result.append([y[best] if i == best else -math.inf for i in range(len(y))])
            continue
        kept = set(_kept_tokens(_scaled_row(y, t), chain))
        out = [y[i] / t if i in kept else -math.inf for i in range(len(y))]
        if any(v == math.inf or v == -math.inf for i, v in enumerate(out) if i in kept):
            where = f" (row {r})" if batched else ""
            raise ValueError(
                f"{func}: logits / temperature overflows float64{where}; use a larger temperature"
            )
        result.append(out)
    return result if batched else result[0]
