"""The plain-Python idioms: lists, ``math``, ``heapq`` and ``random.Random``.

What someone without NumPy writes: a list comprehension of ``math.exp`` and
``random.choices`` (C-level accumulate + bisect) for a draw, ``heapq.nlargest`` or
``sorted`` for a ranking. No argument checks: this is not ``tinyllm.reference`` (the
validating teaching version, several times slower). Inputs are Python lists, made
once outside the timed call. Every filter's ``*_kept`` keeps what
``tinyllm.filter_logits`` keeps (see :mod:`tinyllm.bench.numpy_idioms`).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from operator import mul

Draw = Callable[[], int]
NEG_INF = -math.inf


def draw_among(x: list[float], kept: list[int], rng: random.Random) -> int:
    """A token of ``kept`` with weights exp(x - max): ``random.choices``."""
    m = max(x[i] for i in kept)
    return rng.choices(kept, weights=[math.exp(x[i] - m) for i in kept])[0]


def sample(p: list[float], rng: random.Random) -> Draw:
    """``random.choices(range(V), weights=p)``."""
    tokens = range(len(p))
    return lambda: rng.choices(tokens, weights=p)[0]


def temperature(x: list[float], T: float, rng: random.Random) -> Draw:
    """exp((x - max) / T) in a list comprehension, then ``random.choices``."""
    return lambda: _softmax_draw(x, 1.0 / T, rng)


def _softmax_draw(x: list[float], inv_t: float, rng: random.Random) -> int:
    m = max(x)
    return rng.choices(range(len(x)), weights=[math.exp((v - m) * inv_t) for v in x])[0]


def greedy(x: list[float]) -> Draw:
    """``x.index(max(x))``: the first maximum."""
    return lambda: x.index(max(x))


def ranking(x: list[float]) -> list[int]:
    """Indices by decreasing logit, ties in index order (``sorted`` is stable)."""
    return sorted(range(len(x)), key=x.__getitem__, reverse=True)


def top_k_kept(x: list[float], k: int) -> list[int]:
    """``heapq.nlargest`` (same as a stable sort's first k), without -inf tokens."""
    return [i for i in heapq.nlargest(k, range(len(x)), key=x.__getitem__) if x[i] > NEG_INF]


def top_p_kept(x: list[float], p: float) -> list[int]:
    """The ranking, then add up exp(x - max) until p of the total is reached."""
    order = ranking(x)
    m = x[order[0]]
    e = [math.exp(x[i] - m) for i in order]
    target, mass = p * sum(e), 0.0
    for n, w in enumerate(e, 1):
        mass += w
        if mass >= target:
            return order[:n]
    return order


def min_p_kept(x: list[float], q: float) -> list[int]:
    """x_i >= max(x) + log(q), i.e. p_i >= q * p_max."""
    cut = max(x) + math.log(q)
    return [i for i, v in enumerate(x) if v >= cut]


def typical_kept(x: list[float], tau: float) -> list[int]:
    """Rank finite tokens by |-log p - H| (ties in index order), keep the shortest
    prefix with mass >= tau of the total."""
    m = max(x)
    finite = [i for i, v in enumerate(x) if v > NEG_INF]
    e = {i: math.exp(x[i] - m) for i in finite}
    total = sum(e.values())
    log_total = math.log(total)
    entropy = -sum(w / total * (x[i] - m - log_total) for i, w in e.items())
    order = sorted(finite, key=lambda i: abs(log_total - (x[i] - m) - entropy))
    target, mass = tau * total, 0.0
    for n, i in enumerate(order, 1):
        mass += e[i]
        if mass >= target:
            return order[:n]
    return order


def filtered(kept_of: Callable[[list[float], float], list[int]]):
    """The draw of a filter: its kept set, then :func:`draw_among`."""

    def make(x: list[float], param, rng: random.Random) -> Draw:
        return lambda: draw_among(x, kept_of(x, param), rng)

    return make


def penalize(x: list[float], window: list[int], r: float) -> list[float]:
    """A copy of ``x`` with each distinct token of ``window`` penalised (CTRL)."""
    y = list(x)
    for t in set(window):
        v = y[t]
        y[t] = v / r if v > 0 else v * r
    return y


def penalty(x: list[float], window: list[int], r: float, T: float, rng) -> Draw:
    """The penalty on a copy, then the temperature draw."""
    return lambda: _softmax_draw(penalize(x, window, r), 1.0 / T, rng)


def softmax(x: list[float]) -> list[float]:
    m = max(x)
    e = [math.exp(v - m) for v in x]
    s = sum(e)
    return [v / s for v in e]


def log_softmax(x: list[float]) -> list[float]:
    m = max(x)
    log_s = math.log(sum(math.exp(v - m) for v in x))
    return [v - m - log_s for v in x]


def project(h: list[float], columns: list[tuple[float, ...]]) -> list[float]:
    """h @ W with W given as its columns: one ``sum(map(mul, ...))`` per output."""
    return [sum(map(mul, h, col)) for col in columns]


def dot(a: list[float], b: list[float]) -> float:
    return sum(map(mul, a, b))
