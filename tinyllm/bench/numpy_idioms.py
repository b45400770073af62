"""The NumPy idioms tinyllm is measured against: the common one and the best we can write.

For each operation there is the *common* idiom (what most code does: ``softmax`` then
``Generator.choice(p=)``, a full ``argsort``) and one or more *best* ones, written as a
competent user writes their fastest version: buffers allocated once and reused through
``out=``, two-level (block) draws instead of a full cumulative sum, ``partition``
instead of a sort, thresholds that skip ``exp`` on rejected tokens, value sorts
instead of ``argsort``. The report's "NumPy best" column is the fastest of all of them
on each case.

Every filter has a ``*_kept(x, ...)`` function returning the indices it keeps (the
support set, in any order), and the timed call draws from exactly that set, so the
tests can check that each idiom keeps what ``tinyllm.filter_logits`` keeps: ties go
to the lower index, ``-inf`` is never kept, top-p keeps the shortest best-ranked
prefix whose mass reaches ``p`` of the total (typical-p the same over the
distance-to-entropy ranking), min-p the tokens with probability >= ``min_p`` times
the largest. Filters run at temperature 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Draw = Callable[[], int]


# ---------------------------------------------------------------------------
# Draws from non-negative weights
# ---------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    """``e = np.exp(x - x.max()); e / e.sum()``: the common softmax."""
    e = np.exp(x - x.max())
    return e / e.sum()


def block_size(V: int) -> int:
    """The block length of a two-level draw: a power of two near sqrt(V), at least 16."""
    return max(16, 1 << round(math.log2(math.sqrt(V))))


class CumsumDraw:
    """Inverse-CDF draw into a preallocated float64 table: ``cumsum`` + ``searchsorted``."""

    def __init__(self, V: int):
        self.cum = np.empty(V, dtype=np.float64)

    def __call__(self, w: np.ndarray, u: float) -> int:
        cum = self.cum[: len(w)]
        np.cumsum(w, dtype=np.float64, out=cum)
        return min(int(np.searchsorted(cum, u * cum[-1], side="right")), len(w) - 1)


class BlockDraw:
    """Two-level inverse-CDF draw: sums of blocks of ``block_size(V)`` weights (a fast,
    vectorised reduction), a search among the block sums, then the cumulative sum of
    one block only. Avoids the slow full ``cumsum``."""

    def __init__(self, V: int, dtype):
        self.block = block_size(V)
        self.full = V // self.block * self.block  # the weights in whole blocks
        blocks = -(-V // self.block)
        self.sums = np.empty(blocks, dtype=dtype)
        self.cum = np.empty(blocks, dtype=np.float64)

    def __call__(self, w: np.ndarray, u: float) -> int:
        b, full = self.block, self.full
        np.sum(w[:full].reshape(-1, b), axis=1, out=self.sums[: full // b])
        if full < len(w):
            self.sums[-1] = w[full:].sum()
        np.cumsum(self.sums, out=self.cum)
        r = u * self.cum[-1]
        k = min(int(np.searchsorted(self.cum, r, side="right")), len(self.cum) - 1)
        if k:
            r -= self.cum[k - 1]
        inner = np.cumsum(w[k * b : (k + 1) * b], dtype=np.float64)
        return k * b + min(int(np.searchsorted(inner, r, side="right")), len(inner) - 1)


def draw_among(x: np.ndarray, kept: np.ndarray, u: float) -> int:
    """A token of ``kept`` drawn with weights ``exp(x - max)`` (temperature 1)."""
    v = x[kept]
    cum = np.cumsum(np.exp(v - v.max()), dtype=np.float64)
    return int(kept[min(int(np.searchsorted(cum, u * cum[-1], side="right")), len(kept) - 1)])


def choice_among(x: np.ndarray, kept: np.ndarray, rng: np.random.Generator) -> int:
    """The common draw: ``rng.choice(kept, p=softmax(x[kept]))``."""
    return int(kept[rng.choice(len(kept), p=softmax(x[kept]))])


# ---------------------------------------------------------------------------
# Plain draws: sample(p) and sample_logits(x, temperature=T)
# ---------------------------------------------------------------------------


def sample_choice(p: np.ndarray, rng: np.random.Generator) -> Draw:
    """Common: ``rng.choice(V, p=p)`` (checks and renormalises ``p`` on every call)."""
    V = len(p)
    return lambda: int(rng.choice(V, p=p))


def sample_cumsum(p: np.ndarray, rng: np.random.Generator) -> Draw:
    """Best: cumsum into a preallocated table + searchsorted."""
    draw = CumsumDraw(len(p))
    return lambda: draw(p, rng.random())


def sample_blocks(p: np.ndarray, rng: np.random.Generator) -> Draw:
    """Best: the two-level block draw."""
    draw = BlockDraw(len(p), p.dtype)
    return lambda: draw(p, rng.random())


def temperature_choice(x: np.ndarray, T: float, rng: np.random.Generator) -> Draw:
    """Common: ``rng.choice(V, p=softmax(x / T))``."""
    V = len(x)
    return lambda: int(rng.choice(V, p=softmax(x / T)))


def _exp_into(x: np.ndarray, T: float, out: np.ndarray) -> np.ndarray:
    """``exp((x - max) / T)`` written into ``out`` (no allocation)."""
    np.subtract(x, x.max(), out=out)
    if T != 1.0:
        out *= 1.0 / T
    return np.exp(out, out=out)


def temperature_cumsum(x: np.ndarray, T: float, rng: np.random.Generator) -> Draw:
    """Best: exp into a buffer, cumsum into a table, searchsorted."""
    work, draw = np.empty_like(x), CumsumDraw(len(x))
    return lambda: draw(_exp_into(x, T, work), rng.random())


def temperature_blocks(x: np.ndarray, T: float, rng: np.random.Generator) -> Draw:
    """Best: exp into a buffer, then the two-level block draw."""
    work, draw = np.empty_like(x), BlockDraw(len(x), x.dtype)
    return lambda: draw(_exp_into(x, T, work), rng.random())


def greedy_argmax(x: np.ndarray) -> Draw:
    """Common and best: ``np.argmax``."""
    return lambda: int(np.argmax(x))


# ---------------------------------------------------------------------------
# top-k
# ---------------------------------------------------------------------------


def _finite(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(x > -np.inf)


def top_k_argsort_kept(x: np.ndarray, k: int) -> np.ndarray:
    """Common: the first k of a stable ``argsort(-x)``, without the -inf ones."""
    kept = np.argsort(-x, kind="stable")[:k]
    return kept[x[kept] > -np.inf]


def top_k_partition_kept(x: np.ndarray, k: int, work: np.ndarray | None = None) -> np.ndarray:
    """Best: the k-th largest value by ``partition`` (in a reused buffer), then the
    tokens at or above it in index order; surplus ties at the threshold dropped from
    the end (ties go to the lower index)."""
    V = len(x)
    if k >= V:
        return _finite(x)
    work = np.empty_like(x) if work is None else work
    np.copyto(work, x)
    work.partition(V - k)
    threshold = work[V - k]
    if threshold == -np.inf:
        return _finite(x)
    kept = np.flatnonzero(x >= threshold)
    if len(kept) > k:
        ties = np.flatnonzero(x[kept] == threshold)
        kept = np.delete(kept, ties[len(ties) - (len(kept) - k) :])
    return kept


def top_k_argpartition_kept(x: np.ndarray, k: int) -> np.ndarray:
    """Best: ``argpartition``'s k largest; when ties at the threshold reach outside
    them, the tokens above it and the lowest-indexed ties instead."""
    V = len(x)
    if k >= V:
        return _finite(x)
    kept = np.argpartition(x, V - k)[V - k :]
    threshold = x[kept].min()
    if threshold == -np.inf:
        return _finite(x)
    if np.count_nonzero(x == threshold) > np.count_nonzero(x[kept] == threshold):
        above = np.flatnonzero(x > threshold)
        kept = np.concatenate([above, np.flatnonzero(x == threshold)[: k - len(above)]])
    return kept


def top_k_argsort(x, k, rng) -> Draw:
    return lambda: choice_among(x, top_k_argsort_kept(x, k), rng)


def top_k_partition(x, k, rng) -> Draw:
    work = np.empty_like(x)
    return lambda: draw_among(x, top_k_partition_kept(x, k, work), rng.random())


def top_k_argpartition(x, k, rng) -> Draw:
    return lambda: draw_among(x, top_k_argpartition_kept(x, k), rng.random())


# ---------------------------------------------------------------------------
# top-p
# ---------------------------------------------------------------------------


def _prefix_reaching(cum: np.ndarray, target: float) -> int:
    """The length of the shortest prefix whose cumulative sum reaches ``target``."""
    return min(int(np.searchsorted(cum, target, side="left")) + 1, len(cum))


def _at_or_above(x: np.ndarray, threshold, n: int) -> np.ndarray:
    """The n best-ranked tokens when the n-th best value is ``threshold``: every token
    above it, then ties in index order."""
    kept = np.flatnonzero(x >= threshold)
    if len(kept) > n:
        ties = np.flatnonzero(x[kept] == threshold)
        kept = np.delete(kept, ties[len(ties) - (len(kept) - n) :])
    return kept


def top_p_argsort_kept(x: np.ndarray, p: float) -> np.ndarray:
    """Common: stable ``argsort(-x)``, exp, cumsum, the prefix reaching p of the total."""
    order = np.argsort(-x, kind="stable")
    cum = np.cumsum(np.exp(x[order] - x[order[0]]), dtype=np.float64)
    return order[: _prefix_reaching(cum, p * cum[-1])]


class TopPSort:
    """Best: a value sort (no ``argsort``) in a reused buffer, exp of the sorted values,
    the prefix reaching p found through block sums (no full cumsum), then the tokens
    at or above the threshold value in index order."""

    def __init__(self, V: int, dtype):
        self.sorted = np.empty(V, dtype=dtype)
        self.e = np.empty(V, dtype=dtype)
        self.block = block_size(V)

    def kept(self, x: np.ndarray, p: float) -> np.ndarray:
        np.copyto(self.sorted, x)
        self.sorted.sort()
        desc = self.sorted[::-1]
        e = np.exp(np.subtract(desc, desc[0], out=self.e), out=self.e)
        n = _first_reaching(e, p * float(e.sum(dtype=np.float64)), self.block)
        return _at_or_above(x, desc[n - 1], n)


def _first_reaching(w: np.ndarray, target: float, block: int) -> int:
    """The shortest prefix of ``w`` whose sum reaches ``target``: block sums, their
    cumulative sum, then the cumulative sum of the one block where it is reached."""
    full = len(w) // block * block
    sums = np.sum(w[:full].reshape(-1, block), axis=1, dtype=np.float64)
    cum = np.cumsum(sums)
    k = int(np.searchsorted(cum, target, side="left"))
    before = cum[k - 1] if k else 0.0
    inner = np.cumsum(w[k * block : (k + 1) * block], dtype=np.float64) + before
    return min(k * block + _prefix_reaching(inner, target), len(w))


class TopPPartition:
    """Best: ``partition`` the k largest values (k = 64, 256, 1024, ... until their
    mass reaches p of the total), then sort only the candidates."""

    START = 64

    def __init__(self, V: int, dtype):
        self.work = np.empty(V, dtype=dtype)
        self.e = np.empty(V, dtype=dtype)

    def kept(self, x: np.ndarray, p: float) -> np.ndarray:
        V, m = len(x), x.max()
        target = p * float(_exp_into(x, 1.0, self.e).sum(dtype=np.float64))
        k = self.START
        while k < V:
            np.copyto(self.work, x)
            self.work.partition(V - k)
            threshold = self.work[V - k]
            if np.exp(self.work[V - k :] - m).sum(dtype=np.float64) >= target:
                candidates = np.flatnonzero(x >= threshold)
                break
            k *= 4
        else:
            candidates = _finite(x)
        order = candidates[np.argsort(-x[candidates], kind="stable")]
        cum = np.cumsum(np.exp(x[order] - m), dtype=np.float64)
        return order[: _prefix_reaching(cum, target)]


def top_p_argsort(x, p, rng) -> Draw:
    return lambda: choice_among(x, top_p_argsort_kept(x, p), rng)


def top_p_sort(x, p, rng) -> Draw:
    finder = TopPSort(len(x), x.dtype)
    return lambda: draw_among(x, finder.kept(x, p), rng.random())


def top_p_partition(x, p, rng) -> Draw:
    finder = TopPPartition(len(x), x.dtype)
    return lambda: draw_among(x, finder.kept(x, p), rng.random())


# ---------------------------------------------------------------------------
# min-p
# ---------------------------------------------------------------------------


def min_p_mask_kept(x: np.ndarray, q: float) -> np.ndarray:
    """Common: softmax, then the tokens with p >= q * max(p)."""
    p = softmax(x)
    return np.flatnonzero((p >= q * p.max()) & (x > -np.inf))


def min_p_threshold_kept(x: np.ndarray, q: float) -> np.ndarray:
    """Best: p_i >= q p_max  <=>  x_i >= max(x) + log(q): a threshold on the logits,
    with exp only on the kept tokens."""
    return np.flatnonzero(x >= x.max() + math.log(q))


def min_p_mask(x, q, rng) -> Draw:
    """Common: softmax, zero the rest, renormalise, ``rng.choice(V, p=)``."""
    V = len(x)

    def draw() -> int:
        p = softmax(x)
        p[p < q * p.max()] = 0.0
        return int(rng.choice(V, p=p / p.sum()))

    return draw


def min_p_threshold(x, q, rng) -> Draw:
    return lambda: draw_among(x, min_p_threshold_kept(x, q), rng.random())


# ---------------------------------------------------------------------------
# typical-p (Meister et al. 2022, as transformers' TypicalLogitsWarper)
# ---------------------------------------------------------------------------


def typical_distances(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e, d): e = exp(x - max) and d = |-log p - H|, the distance of each token's
    surprisal from the entropy H (inf for -inf tokens)."""
    s = x - x.max()
    e = np.exp(s)
    total = e.sum(dtype=np.float64)
    log_p = s - math.log(total)
    with np.errstate(invalid="ignore"):  # 0 * -inf is nan: masked tokens add nothing
        entropy = -np.nansum(e / total * log_p)
    return e, np.abs(-log_p - entropy)


def typical_argsort_kept(x: np.ndarray, tau: float) -> np.ndarray:
    """Common (transformers' recipe): stable argsort of d, cumsum of the probabilities
    in that order, the shortest prefix reaching tau of the total."""
    e, d = typical_distances(x)
    order = np.argsort(d, kind="stable")
    cum = np.cumsum(e[order], dtype=np.float64)
    kept = order[: _prefix_reaching(cum, tau * cum[-1])]
    return kept[x[kept] > -np.inf]


def typical_partition_kept(x: np.ndarray, tau: float) -> np.ndarray:
    """Best: ``argpartition`` of d for the k closest (k = 64, 256, ... until their mass
    reaches tau of the total), then a sort of those candidates only."""
    e, d = typical_distances(x)
    V, target = len(x), tau * float(e.sum(dtype=np.float64))
    k = TopPPartition.START
    while k < V:
        nearest = np.argpartition(d, k)[:k]
        if e[nearest].sum(dtype=np.float64) >= target:
            candidates = np.flatnonzero(d <= d[nearest].max())  # index order, ties included
            break
        k *= 4
    else:
        candidates = _finite(x)
    order = candidates[np.argsort(d[candidates], kind="stable")]
    cum = np.cumsum(e[order], dtype=np.float64)
    return order[: _prefix_reaching(cum, target)]


def typical_argsort(x, tau, rng) -> Draw:
    return lambda: choice_among(x, typical_argsort_kept(x, tau), rng)


def typical_partition(x, tau, rng) -> Draw:
    return lambda: draw_among(x, typical_partition_kept(x, tau), rng.random())


# ---------------------------------------------------------------------------
# Repetition penalty (CTRL, transformers' RepetitionPenaltyLogitsProcessor)
# ---------------------------------------------------------------------------


def penalize(x: np.ndarray, window: np.ndarray, r: float, out: np.ndarray) -> np.ndarray:
    """``x`` into ``out``, with each distinct token of ``window`` divided by r where its
    logit is positive, multiplied by r elsewhere."""
    np.copyto(out, x)
    seen = np.unique(window)
    v = out[seen]
    out[seen] = np.where(v > 0, v / r, v * r)
    return out


def penalty_choice(x, window, r, T, rng) -> Draw:
    """Common: the penalty on a copy, then softmax(y / T) and ``rng.choice``."""
    V = len(x)
    return lambda: int(rng.choice(V, p=softmax(penalize(x, window, r, x.copy()) / T)))


def penalty_blocks(x, window, r, T, rng) -> Draw:
    """Best: the penalty in a reused buffer, then the two-level block draw."""
    y, work, draw = np.empty_like(x), np.empty_like(x), BlockDraw(len(x), x.dtype)
    return lambda: draw(_exp_into(penalize(x, window, r, y), T, work), rng.random())


# ---------------------------------------------------------------------------
# Kernels: softmax, log_softmax, project, dot
# ---------------------------------------------------------------------------


def softmax_out(x: np.ndarray) -> Callable[[], np.ndarray]:
    """Best: subtract, exp and scale in one reused buffer."""
    out = np.empty_like(x)

    def call() -> np.ndarray:
        e = _exp_into(x, 1.0, out)
        e *= 1.0 / e.sum()
        return e

    return call


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Common: ``s = x - max; s - log(sum(exp(s)))``."""
    s = x - x.max()
    return s - np.log(np.exp(s).sum())


def log_softmax_out(x: np.ndarray) -> Callable[[], np.ndarray]:
    """Best: two reused buffers."""
    out, e = np.empty_like(x), np.empty_like(x)

    def call() -> np.ndarray:
        np.subtract(x, x.max(), out=out)
        log_total = math.log(np.exp(out, out=e).sum(dtype=np.float64))
        return np.subtract(out, log_total, out=out)

    return call


def project_out(h: np.ndarray, W: np.ndarray) -> Callable[[], np.ndarray]:
    """Best: ``np.matmul(h, W, out=buffer)``."""
    out = np.empty(W.shape[1], dtype=W.dtype)
    return lambda: np.matmul(h, W, out=out)
