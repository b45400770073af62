"""Drawing the next token: from weights, or from logits through temperature, top-k,
top-p (nucleus) and min-p filters.

    sample:         P(i) = w_i / sum_j w_j
    sample_logits:  P(i) = e_i / sum_{j kept} e_j,   e_i = exp((x_i - max_j x_j) / T)

The filters run in Hugging Face transformers' order, each on the renormalised
result of the previous one. Tokens are ranked by logit, ties to the lower index.

    temperature 0  the argmax alone (greedy; ties to the lowest index)
    top-k          the k best-ranked tokens
    top-p          the best-ranked tokens, in order, until their mass reaches >= p
    min-p          the tokens with P(i) >= min_p * max_j P(j)

No stage sorts the vocabulary: top-k keeps a heap of k candidates (O(V log k));
top-p finds, with threshold passes, a prefix of the ranking that holds mass p,
heapifies it and pops only the nucleus (O(V + c + m log c) for c candidates and
a nucleus of m tokens; c = V at worst); min-p is a threshold pass. The nucleus is
popped in rank order, so its cumulative sum is exactly the one of the documented
walk (and of tinyllm.reference). One draw needs no table: the weights' sums
per block of 256 tokens (vectorised), then a walk over the block sums and one
block. ``size`` draws build a cumulative table once per row, in double also for
float32, and binary-search it once per draw: O(V + size log V), not O(size V).
Without filters, the weights exp((x - m) / T) come from _fastmath's vectorised
scaled exp (float arithmetic for float32 logits, 8 per AVX2 vector; weights
below e^-86 of the max's are 0) and are not stored: one pass sums them per
block, the draw recomputes one block. The filters use libm's exp, as
tinyllm.reference does, so support sets are decided on the same numbers.

Generation (:class:`Generation`) runs the model's whole step -- gather, x @ W1,
@ W2 (the kernel of _project.pxd), filters and draw -- for many tokens in one
nogil call under the Generator's lock, on scratch buffers allocated once.

Random numbers come from a NumPy Generator: the kernels call its bit generator's
``next_double`` through the ``bitgen_t`` of its capsule, inside
``with bit_generator.lock, nogil:`` (NumPy's documented pattern for Cython,
``numpy/random/_examples/cython/extending.pyx``). One uniform double per draw, so
a seed gives the same tokens in every run and process, and one Generator can be
shared by threads.

Layout: ``noexcept nogil`` kernels in data-flow order (input checks, ranking and
heaps, the filters, the cumulative table and the draws, single draws, whole
batches, the generation loop), then the Python-facing entry points that validate,
coerce and call them (a fast path for one draw from a plain vector first), and
the Generation class.
"""

cimport cython
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython cimport floating
from libc.math cimport INFINITY, NAN, exp, isfinite, isinf, isnan, tanh
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove
from numpy.random cimport bitgen_t

from _fastmath cimport (
    ScaledExp,
    ScaledExpf,
    row_all_finite,
    scaled_exp,
    scaled_exp_init,
    scaled_expf,
    scaled_expf_init,
)
from _project cimport madd, project_rows, project_tile

from _common cimport (
    FOUND_NAN,
    FOUND_POSINF,
    NO_FINITE,
    NOT_FINITE,
    OK,
    as_float_array,
    as_typed_rows,
    checked_out,
    is_kernel_ready,
    may_share_memory,
    new_array,
    shape_of,
)

import numbers
import sys
from operator import index as operator_index

import numpy as np

cnp.import_array()

# Statuses of this module's kernels, beyond the shared ones in _common.Status.
cdef enum:
    FOUND_NEGATIVE = 10   # a weight < 0 (-inf included)
    ZERO_SUM = 11         # a row of weights that are all zero
    SUM_OVERFLOW = 12     # a row of finite weights whose sum overflows
    RESULT_OVERFLOW = 13  # filter_logits: logits / temperature overflows the dtype

# Removed tokens are marked with this weight (kept ones have weights >= 0).
cdef double REMOVED = -1.0


# ===========================================================================
# Kernels: input checks (a pass over everything before any draw, so a bad row
# never leaves the Generator half-advanced)
# ===========================================================================

cdef int check_weights(const floating[:, ::1] w, Py_ssize_t* bad_row) noexcept nogil:
    """Every row finite, >= 0, with a positive sum that fits in a double."""
    cdef Py_ssize_t r, i
    cdef double v, total
    for r in range(w.shape[0]):
        bad_row[0] = r
        total = 0.0
        for i in range(w.shape[1]):
            v = w[r, i]
            if isnan(v):
                return FOUND_NAN
            if v == INFINITY:
                return FOUND_POSINF
            if v < 0.0:
                return FOUND_NEGATIVE
            total += v
        if total == 0.0:
            return ZERO_SUM
        if total == INFINITY:
            return SUM_OVERFLOW
    return OK


cdef int check_logits(const floating[:, ::1] x, Py_ssize_t* bad_row) noexcept nogil:
    """Every row free of NaN and +inf, with at least one entry > -inf."""
    cdef Py_ssize_t r, i
    cdef double v
    cdef bint any_finite
    for r in range(x.shape[0]):
        bad_row[0] = r
        any_finite = False
        for i in range(x.shape[1]):
            v = x[r, i]
            if isnan(v):
                return FOUND_NAN
            if v == INFINITY:
                return FOUND_POSINF
            if v != -INFINITY:
                any_finite = True
        if not any_finite:
            return NO_FINITE
    return OK


# ===========================================================================
# Kernels: ranking and binary heaps of token indices
# ===========================================================================

cdef inline bint ranks_before(const floating* x, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Token a ranks before token b: a higher logit, or the same and a lower index."""
    return x[a] > x[b] or (x[a] == x[b] and a < b)


cdef inline bint heap_above(const floating* x, Py_ssize_t a, Py_ssize_t b,
                            bint best_first) noexcept nogil:
    """In a best-first heap the better token sits above; in a worst-first, the worse."""
    return ranks_before(x, a, b) if best_first else ranks_before(x, b, a)


cdef void sift_down(const floating* x, Py_ssize_t* heap, Py_ssize_t n, Py_ssize_t pos,
                    bint best_first) noexcept nogil:
    """Move heap[pos] down until both children are below it."""
    cdef Py_ssize_t item = heap[pos], child
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and heap_above(x, heap[child + 1], heap[child], best_first):
            child += 1
        if not heap_above(x, heap[child], item, best_first):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


cdef void heapify(const floating* x, Py_ssize_t* heap, Py_ssize_t n,
                  bint best_first) noexcept nogil:
    """Floyd's bottom-up heap construction: O(n)."""
    cdef Py_ssize_t pos
    for pos in range(n // 2 - 1, -1, -1):
        sift_down(x, heap, n, pos, best_first)


# ===========================================================================
# Kernels: the filters. ``e`` holds one weight per token: exp((x_i - m) / T) for a
# kept token (>= 0; 0 where it underflows), REMOVED for a dropped or masked one.
# ===========================================================================

cdef void remove_after(const floating* x, double* e, Py_ssize_t n,
                       Py_ssize_t last) noexcept nogil:
    """Threshold pass: drop every kept token that ranks after token ``last``."""
    cdef Py_ssize_t i
    for i in range(n):
        if e[i] >= 0.0 and ranks_before(x, last, i):
            e[i] = REMOVED


cdef void keep_top_k(const floating* x, double* e, Py_ssize_t n, Py_ssize_t k,
                     Py_ssize_t* heap) noexcept nogil:
    """Keep the k best-ranked tokens (k < number kept): a worst-first heap of k
    candidates whose root, at the end, is the k-th best. O(n log k)."""
    cdef Py_ssize_t i, count = 0
    for i in range(n):
        if e[i] < 0.0:
            continue
        if count < k:
            heap[count] = i
            count += 1
            if count == k:
                heapify(x, heap, k, False)
        elif ranks_before(x, i, heap[0]):
            heap[0] = i
            sift_down(x, heap, k, 0, False)
    remove_after(x, e, n, heap[0])


cdef double kept_mass(const double* e, Py_ssize_t n) noexcept nogil:
    """sum of the kept weights, in index order (the reference sums the same way)."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    for i in range(n):
        if e[i] > 0.0:
            total += e[i]
    return total


cdef bint walk_nucleus(const floating* x, const double* e, Py_ssize_t* heap,
                       Py_ssize_t count, double total, double p,
                       Py_ssize_t* last) noexcept nogil:
    """Pop heap[0:count] best-first, adding e_i / total, until the sum is >= p.

    ``last`` is the last token taken; returns False if the candidates ran out first.
    """
    cdef double mass = 0.0
    heapify(x, heap, count, True)
    while True:
        last[0] = heap[0]
        mass += e[last[0]] / total
        if mass >= p:
            return True
        count -= 1
        if count == 0:
            return False
        heap[0] = heap[count]
        sift_down(x, heap, count, 0, True)


cdef void keep_top_p(const floating* x, double* e, Py_ssize_t n, double p,
                     Py_ssize_t* heap) noexcept nogil:
    """Keep the best-ranked tokens, in rank order, until their probability reaches
    >= p. The nucleus is walked in rank order on a heap of candidates: the tokens
    with e_i >= cut, which are a prefix of the ranking (e grows with the logit).
    A cheap pass tries cuts 2^-4, 2^-12, 2^-32 (e_max = 1) until the candidates
    hold mass p; cut 0 takes every kept token. So a small nucleus costs a few
    passes over the vocabulary plus a heap of a few tokens."""
    cdef Py_ssize_t i, count, last = 0
    cdef double total = kept_mass(e, n), mass, cut
    cdef int attempt
    for attempt in range(4):
        cut = 0.0625 if attempt == 0 else 2.0 ** -12 if attempt == 1 else 2.0 ** -32 if attempt == 2 else 0.0
        count = 0
        mass = 0.0
        for i in range(n):
            if e[i] >= cut:
                heap[count] = i
                count += 1
                mass += e[i]
        # The walk decides; the mass test only skips hopeless heaps. If rounding
        # makes a walk run out, the next cut repeats it on more candidates.
        if cut == 0.0 or mass >= p * total:
            if walk_nucleus(x, e, heap, count, total, p, &last) or cut == 0.0:
                break   # at cut 0, running out means rounding kept the mass below p: keep all
    remove_after(x, e, n, last)


cdef void keep_min_p(double* e, Py_ssize_t n, double min_p) noexcept nogil:
    """Keep the tokens with P(i) >= min_p * max_j P(j): two threshold passes."""
    cdef Py_ssize_t i
    cdef double total = kept_mass(e, n), top = 0.0, q, threshold
    for i in range(n):
        if e[i] >= 0.0:
            q = e[i] / total
            if q > top:
                top = q
    threshold = min_p * top
    for i in range(n):
        if e[i] >= 0.0 and e[i] / total < threshold:
            e[i] = REMOVED


cdef Py_ssize_t filter_row(const floating* x, Py_ssize_t n, double temperature,
                           Py_ssize_t top_k, double top_p, double min_p,
                           double* e, Py_ssize_t* heap) noexcept nogil:
    """e[0:n] = the weights of row x[0:n] after the filters; returns the argmax.

    The row must be checked (no NaN or +inf, one entry > -inf). ``top_k`` 0,
    ``top_p`` 1 and ``min_p`` 0 switch a filter off; temperature 0 keeps the argmax.
    """
    cdef Py_ssize_t i, best = 0, n_finite = 0
    cdef double m = -INFINITY
    for i in range(n):
        if x[i] > m:
            m = x[i]
            best = i
        if x[i] != -INFINITY:
            n_finite += 1
            e[i] = 0.0
        else:
            e[i] = REMOVED
    if temperature == 0.0:
        for i in range(n):
            e[i] = REMOVED
        e[best] = 1.0
        return best
    # top-k ranks by logit: it runs before the exponentials, so only k are computed.
    if 0 < top_k < n_finite:
        keep_top_k(x, e, n, top_k, heap)
    for i in range(n):
        if e[i] >= 0.0:
            e[i] = exp((x[i] - m) / temperature)     # (x - m) <= 0: no overflow
    if top_p < 1.0:
        keep_top_p(x, e, n, top_p, heap)
    if min_p > 0.0:
        keep_min_p(e, n, min_p)
    return best


# ===========================================================================
# Kernels: the cumulative table and the draws
# ===========================================================================

cdef Py_ssize_t cumulate(double* e, Py_ssize_t n) noexcept nogil:
    """In place: e[i] = sum of the positive weights e[0..i]. Returns the last token
    with a positive weight (the total is then e[n - 1])."""
    cdef Py_ssize_t i, last = 0
    cdef double running = 0.0
    for i in range(n):
        if e[i] > 0.0:
            running += e[i]
            last = i
        e[i] = running
    return last


cdef inline Py_ssize_t search_cumulative(const double* cum, Py_ssize_t n,
                                         double r) noexcept nogil:
    """The smallest i with cum[i] > r (cum non-decreasing), or n: binary search.

    A token of weight 0 is never returned: its cum equals its predecessor's.
    """
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if cum[mid] > r:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef void draw(const double* cum, Py_ssize_t n, Py_ssize_t last, bitgen_t* rng,
               int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """out[0:n_draws] = tokens drawn from the cumulative table: one double each."""
    cdef Py_ssize_t d, i
    cdef double total = cum[n - 1]
    for d in range(n_draws):
        i = search_cumulative(cum, n, rng.next_double(rng.state) * total)
        # u < 1, but u * total can round up to total: the last positive token then.
        out[d] = i if i <= last else last


# ===========================================================================
# Kernels: one draw without a table. A single draw needs no cumulative table: the
# weights' sums per BLOCK of tokens (vectorised, several partial sums), then the
# draw walks the block sums and a single block. The total is the sum of the block
# sums in the order the walk adds them, so the walk always lands in a block.
# ===========================================================================

cdef enum:
    BLOCK = 256          # tokens per block sum
    LANES = 32           # independent partial sums: the compiler makes vectors of them
                         # (a loop of 32, not 8: gcc vectorises the loop, not 8 statements)


cdef inline Py_ssize_t n_blocks(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef double lane_max(const floating* x, Py_ssize_t n) noexcept nogil:
    """max_i x[i], or NaN if an x[i] is NaN (-inf if there is no other value).

    The NaN is kept in lanes of its own (a max would drop it): the weights'
    exponent add (_fastmath's scaled_exp) may turn a NaN with a payload into a
    number, so the caller must see it here. The pass reads the row from L2: the
    extra compare and select per vector cost nothing.
    """
    cdef floating mx[LANES]
    cdef floating bad[LANES]
    cdef Py_ssize_t b, i, j, body = n - n % LANES
    if n < LANES:                 # a short row (the blog's V = 5): no lanes to set up
        mx[0] = -INFINITY
        bad[0] = 0
        for i in range(n):
            mx[0] = x[i] if x[i] > mx[0] else mx[0]
            bad[0] = x[i] if x[i] != x[i] else bad[0]
        return mx[0] + bad[0] * 0     # NaN if a NaN was seen, else mx[0]
    for j in range(LANES):
        mx[j] = -INFINITY
        bad[j] = 0
    for b in range(body // LANES):
        i = b * LANES
        for j in range(LANES):
            mx[j] = x[i + j] if x[i + j] > mx[j] else mx[j]
            bad[j] = x[i + j] if x[i + j] != x[i + j] else bad[j]
    for i in range(body, n):
        mx[0] = x[i] if x[i] > mx[0] else mx[0]
        bad[0] = x[i] if x[i] != x[i] else bad[0]
    for j in range(1, LANES):
        mx[0] = mx[j] if mx[j] > mx[0] else mx[0]
        bad[0] = bad[j] if bad[j] != bad[j] else bad[0]
    return mx[0] + bad[0] * 0


cdef double lane_sum(const floating* w, Py_ssize_t n, double* smallest) noexcept nogil:
    """sum_i w[i] in double (LANES partial sums); lowers ``smallest`` to min_i w[i]."""
    cdef double s[LANES]
    cdef double mn[LANES]
    cdef double v
    cdef Py_ssize_t b, i, j, body = n - n % LANES
    if n < LANES:                 # a short row: no lanes to set up
        s[0] = 0.0
        for i in range(n):
            v = w[i]
            s[0] += v
            smallest[0] = v if v < smallest[0] else smallest[0]
        return s[0]
    for j in range(LANES):
        s[j] = 0.0
        mn[j] = smallest[0]
    for b in range(body // LANES):
        i = b * LANES
        for j in range(LANES):
            v = w[i + j]
            s[j] += v
            mn[j] = v if v < mn[j] else mn[j]
    for i in range(body, n):
        v = w[i]
        s[0] += v
        mn[0] = v if v < mn[0] else mn[0]
    for j in range(1, LANES):
        s[0] += s[j]
        mn[0] = mn[j] if mn[j] < mn[0] else mn[0]
    smallest[0] = mn[0]
    return s[0]


cdef double block_sums(const floating* w, Py_ssize_t n, double* sums,
                       double* smallest) noexcept nogil:
    """sums[b] = sum of the weights of block b; returns the total (the sum of the
    sums, in order), and min_i w[i] in ``smallest``. A NaN or +inf weight makes the
    total NaN or inf, a negative one makes ``smallest`` < 0: the caller checks."""
    cdef Py_ssize_t b, start
    cdef double total = 0.0
    smallest[0] = INFINITY
    for b in range(n_blocks(n)):
        start = b * BLOCK
        sums[b] = lane_sum(w + start, min(BLOCK, n - start), smallest)
        total += sums[b]
    return total


cdef struct ExpConsts:
    # exp((x - m) / T) of _fastmath: the constants of the float and double versions.
    ScaledExpf f
    ScaledExp d


cdef inline bint exp_consts(ExpConsts* c, double m, double t) noexcept nogil:
    """Both versions' constants for shift m (the row's max) and temperature t; False
    when t is outside the range they support (the caller takes another path)."""
    return scaled_expf_init(&c.f, m, t) and scaled_exp_init(&c.d, m, t)


cdef inline floating scaled_weight(floating x, ScaledExpf cf, ScaledExp cd) noexcept nogil:
    """exp((x - m) / T): _fastmath's scaled_expf for float32 logits (8 per AVX2
    vector), scaled_exp for float64. Weights below e^-86 resp. e^-707 of the max's
    (which is 1) are 0, so no subnormal number is ever made."""
    if floating is float:
        return scaled_expf(x, cf)
    else:
        return scaled_exp(x, cd)


cdef double exp_block_sum(const floating* x, Py_ssize_t n, const ExpConsts* consts) noexcept nogil:
    """The sum of the weights exp((x[i] - m) / T), i < n (n <= BLOCK); NaN if an x[i]
    is NaN. Not stored: a store per vector costs 20% here (measured).

    LANES partial sums in the weights' type (a lane adds BLOCK / LANES = 8 float
    weights: relative error <= 8 * 2^-24), then added in double.
    """
    cdef floating part[LANES]
    cdef double total = 0.0
    cdef Py_ssize_t b, i, j, body = n - n % LANES
    # Local copies, held in registers across the loop.
    cdef ScaledExpf cf = consts.f
    cdef ScaledExp cd = consts.d
    for j in range(LANES):
        part[j] = 0.0
    for b in range(body // LANES):
        i = b * LANES
        for j in range(LANES):
            part[j] += scaled_weight(x[i + j], cf, cd)
    for i in range(body, n):
        total += scaled_weight(x[i], cf, cd)
    for j in range(LANES):
        total += part[j]
    return total


cdef void exp_block_weights(const floating* x, Py_ssize_t n, const ExpConsts* consts,
                            floating* w) noexcept nogil:
    """w[i] = exp((x[i] - m) / T), i < n: the weights that exp_block_sum added (the
    same inline function of x[i] and the constants: element by element, the same
    operations in the same order, so the same numbers)."""
    cdef Py_ssize_t i
    cdef ScaledExpf cf = consts.f
    cdef ScaledExp cd = consts.d
    for i in range(n):
        w[i] = scaled_weight(x[i], cf, cd)


cdef double exp_block_sums(const floating* x, Py_ssize_t n, double t, ExpConsts* consts,
                           double* sums) noexcept nogil:
    """m = max x; sums[b] = the sum of block b's weights exp((x[i] - m) / t), and the
    total (the sum of the sums, in order); ``consts`` is set for draw_one_exp.
    Returns NaN for a row with a NaN or +inf or no finite entry, or for t outside
    [1e-30, 1e30]: the caller then takes another path (which raises, or uses
    libm's exp). No array of weights: the draw recomputes one block.

    (Tracking the max inside the exp loop instead of a pass of its own was tried:
    it costs as much as the pass, 1.5 us at V = 32 000 in float64.)
    """
    cdef double m = lane_max(x, n), total = 0.0
    cdef Py_ssize_t b, start
    if not (isfinite(m) and exp_consts(consts, m, t)):
        return NAN
    for b in range(n_blocks(n)):
        start = b * BLOCK
        sums[b] = exp_block_sum(x + start, min(BLOCK, n - start), consts)
        total += sums[b]
    return total


cdef inline Py_ssize_t choose_block(Py_ssize_t n, const double* sums, double r,
                                    double* before) noexcept nogil:
    """The block whose share of the running sum of ``sums`` holds r (or the last one
    of positive sum), and in ``before`` the sum of the blocks before it."""
    cdef double running = 0.0
    cdef Py_ssize_t b, chosen = 0
    before[0] = 0.0
    for b in range(n_blocks(n)):
        if sums[b] > 0.0:
            chosen = b
            before[0] = running
            running += sums[b]
            if running > r:
                break
    return chosen


cdef inline Py_ssize_t walk_block(const floating* w, Py_ssize_t n, double r,
                                  double before) noexcept nogil:
    """The first i < n at which before + w[0] + ... + w[i] > r, weight 0 skipped; if
    rounding carries r past the end, the last one of positive weight (or 0)."""
    cdef Py_ssize_t i, last = 0
    for i in range(n):
        if w[i] > 0.0:
            last = i
            before += w[i]
            if before > r:
                return i
    return last


cdef Py_ssize_t draw_one(const floating* w, Py_ssize_t n, const double* sums, double total,
                         double u) noexcept nogil:
    """The token whose share of [0, total) holds u * total (u in [0, 1)): walk the
    block sums, then the one block. Never a token of weight 0: if rounding carries
    u * total past the end, the last token of positive weight."""
    cdef double r = u * total, before
    cdef Py_ssize_t start = choose_block(n, sums, r, &before) * BLOCK
    return start + walk_block(w + start, min(BLOCK, n - start), r, before)


cdef Py_ssize_t draw_one_exp(const floating* x, Py_ssize_t n, const ExpConsts* consts,
                             const double* sums, double total, double u) noexcept nogil:
    """draw_one for the weights exp((x[i] - m) / T) of exp_block_sums: only the
    chosen block's weights are recomputed (exp_block_weights). Should they differ
    in the last bit from those summed, the walk still ends in the block."""
    cdef floating w[BLOCK]
    cdef double r = u * total, before
    cdef Py_ssize_t start = choose_block(n, sums, r, &before) * BLOCK
    cdef Py_ssize_t length = min(BLOCK, n - start)
    exp_block_weights(x + start, length, consts, w)
    return start + walk_block(w, length, r, before)


cdef Py_ssize_t draw_from_logits(const floating* x, Py_ssize_t n, double temperature,
                                 Py_ssize_t top_k, double top_p, double min_p,
                                 double* e, Py_ssize_t* heap, double* sums,
                                 bitgen_t* rng) noexcept nogil:
    """One token from a checked row of logits: the filters, then one draw (one double;
    none for temperature 0). Scratch: ``e`` of n, ``heap`` of n, ``sums`` of
    n_blocks(n).

    Without filters the weights exp((x - m) / T) come from _fastmath's vectorised
    scaled exp (exp_block_sums: no array of weights); the filters use libm's exp,
    as tinyllm.reference does, so that support sets are decided on the same numbers
    (and so does a temperature outside [1e-30, 1e30]).
    """
    cdef double total, smallest
    cdef Py_ssize_t i, best
    cdef ExpConsts consts
    if temperature > 0.0 and top_k == 0 and top_p >= 1.0 and min_p <= 0.0:
        total = exp_block_sums(x, n, temperature, &consts, sums)
        if isfinite(total):              # else t outside [1e-30, 1e30]: libm below
            return draw_one_exp(x, n, &consts, sums, total, rng.next_double(rng.state))
    best = filter_row(x, n, temperature, top_k, top_p, min_p, e, heap)
    if temperature == 0.0:
        return best
    for i in range(n):
        e[i] = e[i] if e[i] > 0.0 else 0.0      # removed tokens (REMOVED < 0) weigh 0
    total = block_sums(e, n, sums, &smallest)
    return draw_one(e, n, sums, total, rng.next_double(rng.state))


# ===========================================================================
# Kernels: whole batches (rows of a C-contiguous matrix, one scratch row)
# ===========================================================================

cdef void sample_rows(const floating[:, ::1] w, double* cum, bitgen_t* rng,
                      int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws tokens per checked row of weights, into out (B, n_draws)."""
    cdef Py_ssize_t r, i, n = w.shape[1], last
    for r in range(w.shape[0]):
        for i in range(n):
            cum[i] = w[r, i]
        last = cumulate(cum, n)
        draw(cum, n, last, rng, out + r * n_draws, n_draws)


cdef void sample_logits_rows(const floating[:, ::1] x, double temperature,
                             Py_ssize_t top_k, double top_p, double min_p,
                             double* e, Py_ssize_t* heap, double* sums,
                             bitgen_t* rng, int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws filtered tokens per checked row of logits, into out (B, n_draws).
    Temperature 0 draws nothing (``rng`` may be NULL): every token is the argmax.
    One draw per row needs no table (draw_from_logits); more build it once."""
    cdef Py_ssize_t r, d, n = x.shape[1], best, last
    for r in range(x.shape[0]):
        if n_draws == 1:
            out[r] = draw_from_logits(&x[r, 0], n, temperature, top_k, top_p, min_p,
                                      e, heap, sums, rng)
            continue
        best = filter_row(&x[r, 0], n, temperature, top_k, top_p, min_p, e, heap)
        if temperature == 0.0:
            for d in range(n_draws):
                out[r * n_draws + d] = best
            continue
        last = cumulate(e, n)
        draw(e, n, last, rng, out + r * n_draws, n_draws)


cdef int filter_logits_rows(const floating[:, ::1] x, double temperature,
                            Py_ssize_t top_k, double top_p, double min_p,
                            double* e, Py_ssize_t* heap, floating[:, ::1] out,
                            Py_ssize_t* bad_row) noexcept nogil:
    """out = x / T where the filters keep a token, -inf elsewhere (T = 0: x itself at
    the argmax). Each row is read whole before it is written: out may be x."""
    cdef Py_ssize_t r, i, n = x.shape[1]
    cdef floating v
    for r in range(x.shape[0]):
        filter_row(&x[r, 0], n, temperature, top_k, top_p, min_p, e, heap)
        for i in range(n):
            if e[i] < 0.0:
                out[r, i] = -INFINITY
                continue
            v = <floating>(x[r, i] if temperature == 0.0 else x[r, i] / temperature)
            if isinf(v):
                bad_row[0] = r
                return RESULT_OVERFLOW
            out[r, i] = v
    return OK


# ===========================================================================
# Kernels: the generation loop. Every token of a generation in one nogil call:
# no Python round trip, no array allocated per token (the scratch is the caller's).
# ===========================================================================

cdef struct Scratch:
    double* acc              # project's double accumulators
    double* e                # filtered weights (double)
    Py_ssize_t* heap         # top-k / top-p candidates
    double* sums             # block sums of the weights


cdef int generate_loop(const floating* E, const floating* W1, const floating* W2,
                       Py_ssize_t V, Py_ssize_t d, Py_ssize_t c, Py_ssize_t h, bint tanh_f1,
                       double temperature, Py_ssize_t top_k, double top_p, double min_p,
                       int64_t* context, floating* x, floating* f1, floating* logits,
                       Scratch* scratch, bitgen_t* rng, int64_t* out, Py_ssize_t n,
                       Py_ssize_t* done) noexcept nogil:
    """out[0:n] = n tokens, each drawn from the model on the last c, then appended.

        x (c*d,) = E[context[0]], ..., E[context[c-1]]      gather, row by row
        f1 (h,)  = x @ W1          (tanh(x @ W1) with tanh_f1)
        logits (V,) = f1 @ W2      -> draw_from_logits -> token; shift the context

    ``context`` (c,) is updated in place; ``done`` counts the tokens written. The
    weights are finite, but the logits may still overflow: NOT_FINITE then.

    Small models (the blog's: V = 5, d = 2, c = 3, h = 1) spend most of a step on
    fixed costs, not arithmetic: a projection with few outputs goes through
    project_small (accumulators in registers; project_rows keeps them in memory,
    which chains every row through a store and a load), and short rows are copied
    by loops instead of memcpy/memmove calls. The arithmetic is the same, in the
    same order: the tokens do not depend on the path.
    """
    cdef Py_ssize_t step, i, j, token
    cdef const floating* row
    cdef bint small_d = d <= SMALL_COPY, small_c = c <= SMALL_COPY
    cdef bint small_f1 = h <= SMALL_WIDTH and c * d < SMALL_DEPTH
    cdef bint small_logits = V <= SMALL_WIDTH and h < SMALL_DEPTH
    for step in range(n):
        done[0] = step
        for j in range(c):
            row = E + context[j] * d
            if small_d:
                for i in range(d):
                    x[j * d + i] = row[i]
            else:
                memcpy(x + j * d, row, d * sizeof(floating))
        if small_f1:
            project_small(x, W1, c * d, h, f1)
        else:
            project_rows(x, 1, W1, c * d, h, f1, scratch.acc)
        if tanh_f1:
            for j in range(h):
                f1[j] = tanh(f1[j])
        if small_logits:
            project_small(f1, W2, h, V, logits)
        else:
            project_rows(f1, 1, W2, h, V, logits, scratch.acc)
        if not row_all_finite(logits, V):
            return NOT_FINITE
        token = draw_from_logits(logits, V, temperature, top_k, top_p, min_p,
                                 scratch.e, scratch.heap, scratch.sums, rng)
        out[step] = token
        if small_c:
            for j in range(c - 1):
                context[j] = context[j + 1]
        else:
            memmove(context, context + 1, (c - 1) * sizeof(int64_t))
        context[c - 1] = token
    done[0] = n
    return OK


# ===========================================================================
# Entry points: argument checks
# ===========================================================================

cpdef object as_generator(object rng, str func="as_generator"):
    """The ``rng`` argument as a Generator: None -> fresh entropy, an int >= 0 ->
    ``numpy.random.default_rng(seed)``, a Generator as it is; else TypeError.

    Callers that draw several times from one ``rng`` (the model's generation loop)
    turn it into a Generator once with this; ``func`` names them in error messages.
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{func}: an rng seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{func}: rng must be None, an int seed or a numpy.random.Generator, "
        f"got {type(rng).__name__}"
    )


cdef double as_real(object value, str name, str func) except? -1.0:
    """A real number as a double (strings are not numbers here)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}") from None


cdef double checked_temperature(object temperature, str func) except -1.0:
    cdef double t = as_real(temperature, "temperature", func)
    if not (t >= 0.0 and isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and >= 0, got {temperature!r}")
    return t


cdef Py_ssize_t checked_top_k(object top_k, str func) except -1:
    """The k of top-k, or 0 for None."""
    if top_k is None:
        return 0
    if isinstance(top_k, (bool, np.bool_)):
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}")
    try:
        k = operator_index(top_k)
    except TypeError:
        raise TypeError(f"{func}: top_k must be an integer, got {top_k!r}") from None
    if k < 1:
        raise ValueError(f"{func}: top_k must be >= 1, got {k}")
    return min(k, sys.maxsize)


cdef double checked_top_p(object top_p, str func) except -1.0:
    """The p of top-p, or 1 (keep all) for None."""
    if top_p is None:
        return 1.0
    cdef double p = as_real(top_p, "top_p", func)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"{func}: top_p must be in (0, 1], got {top_p!r}")
    return p


cdef double checked_min_p(object min_p, str func) except -1.0:
    """The min_p of min-p, or 0 (keep all) for None."""
    if min_p is None:
        return 0.0
    cdef double p = as_real(min_p, "min_p", func)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{func}: min_p must be in [0, 1], got {min_p!r}")
    return p


cdef object checked_size(object size, str func):
    """None, or the shape of the draws as a tuple of ints >= 0."""
    if size is None:
        return None
    if isinstance(size, (tuple, list)):
        items = size
    else:
        items = (size,)
    shape = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{func}: size must be an int or a tuple of ints, got {size!r}")
        try:
            dim = operator_index(item)
        except TypeError:
            raise TypeError(
                f"{func}: size must be an int or a tuple of ints, got {size!r}"
            ) from None
        if dim < 0:
            raise ValueError(f"{func}: size must not be negative, got {size!r}")
        shape.append(dim)
    return tuple(shape)


cdef cnp.ndarray checked_rows(object values, str name, str func):
    """``values`` as a float32/float64 array of shape (V,) or (B, V), V and B >= 1."""
    cdef cnp.ndarray arr = as_float_array(values, f"{func}: {name}")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{func}: {name} must have shape (V,) or (B, V), got shape {shape_of(arr)}"
        )
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty (shape {shape_of(arr)})")
    return arr


cdef object checked_row_values(cnp.ndarray arr, bint logits, str func):
    """``arr`` as C-contiguous (B, V) rows whose values the kernels accept: weights
    finite, >= 0, with a positive finite sum; logits finite or -inf, not all -inf."""
    cdef int typenum = cnp.PyArray_TYPE(arr)
    rows = as_typed_rows(arr, typenum).reshape(-1, arr.shape[arr.ndim - 1])
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        r32 = rows
        with nogil:
            status = check_logits(r32, &bad_row) if logits else check_weights(r32, &bad_row)
    else:
        r64 = rows
        with nogil:
            status = check_logits(r64, &bad_row) if logits else check_weights(r64, &bad_row)
    if status != OK:
        raise ValueError(logits_message(func, status, arr, bad_row) if logits
                         else weights_message(status, arr, bad_row))
    return rows


cdef str first_bad(cnp.ndarray arr, object mask, str name):
    """'name[i] is v' for the first True entry of ``mask``."""
    first = tuple(np.argwhere(mask)[0].tolist())
    return f"{name}[{', '.join(map(str, first))}] is {arr[first]}"


cdef str where_row(cnp.ndarray arr, Py_ssize_t row):
    return "" if arr.ndim == 1 else f" (row {row})"


cdef str weights_message(int status, cnp.ndarray w, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF or status == FOUND_NEGATIVE:
        bad = np.isnan(w) | (w == np.inf) | (w < 0)
        return f"sample: {first_bad(w, bad, 'weights')}; weights must be finite and >= 0"
    if status == ZERO_SUM:
        return f"sample: the weights are all zero{where_row(w, row)}; their sum must be > 0"
    return (f"sample: the sum of the weights overflows{where_row(w, row)}; "
            f"scale them down")


cdef str logits_message(str func, int status, cnp.ndarray x, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF:
        bad = first_bad(x, np.isnan(x) | (x == np.inf), "logits")
        return f"{func}: {bad}; logits must be finite, or -inf to mask a token"
    if status == NO_FINITE:
        return (f"{func}: every logit is -inf{where_row(x, row)}; "
                f"at least one token must be allowed")
    return (f"{func}: logits / temperature overflows {x.dtype}{where_row(x, row)}; "
            f"use a larger temperature")


cdef object shaped_draws(cnp.ndarray tokens, bint batched, object size):
    """Draws (B, prod(size)) as the result: an int, or an int64 array."""
    if size is None:
        return tokens.reshape(-1) if batched else int(tokens[0, 0])
    return tokens.reshape(((<object>tokens).shape[0],) + size if batched else size)


cdef Py_ssize_t draws_per_row(object size):
    cdef Py_ssize_t n = 1
    if size is not None:
        for dim in size:
            n *= <Py_ssize_t>dim
    return n


# ===========================================================================
# Entry points: one draw from one plain vector (the common case, and the one where
# the call's overhead shows): raw pointers, no temporary arrays, the GIL kept when
# the work is too small to pay for releasing it.
# ===========================================================================

cdef enum:
    NOGIL_FROM = 4096    # tokens: below this, keep the GIL (releasing it costs more)
    STACK_TOKENS = 1024  # scratch for at most this many tokens lives on the stack
    STACK_BLOCKS = 4     # STACK_TOKENS // BLOCK


cdef inline bint is_plain_vector(object a) noexcept:
    """A 1-D, non-empty, kernel-ready float32/float64 ndarray."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int typenum = cnp.PyArray_TYPE(arr)
    return ((typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)
            and cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIM(arr, 0) > 0
            and is_kernel_ready(arr))


cdef double next_double(object gen) except? -1.0:
    """One uniform double in [0, 1) from the Generator's bitgen_t, under its lock."""
    bit_generator = gen.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    with bit_generator.lock:
        return bitgen.next_double(bitgen.state)


cdef object sample_one(cnp.ndarray wa, object rng):
    """``sample(weights, rng=rng)`` for plain 1-D weights: block sums, then one draw."""
    gen = as_generator(rng, "sample")
    cdef Py_ssize_t V = cnp.PyArray_DIM(wa, 0), token
    cdef double stack_sums[STACK_BLOCKS]
    cdef double* sums = &stack_sums[0]
    if V > STACK_TOKENS:
        sums = <double*>malloc(n_blocks(V) * sizeof(double))
    cdef void* w = cnp.PyArray_DATA(wa)
    cdef bint is_float = cnp.PyArray_TYPE(wa) == cnp.NPY_FLOAT
    cdef double total, smallest, u
    if sums == NULL:
        raise MemoryError()
    try:
        if V < NOGIL_FROM:
            total = (block_sums(<const float*>w, V, sums, &smallest) if is_float
                     else block_sums(<const double*>w, V, sums, &smallest))
        else:
            with nogil:
                total = (block_sums(<const float*>w, V, sums, &smallest) if is_float
                         else block_sums(<const double*>w, V, sums, &smallest))
        if not (smallest >= 0.0 and 0.0 < total < INFINITY):
            return sample_general(wa, None, gen)   # raises, naming the bad weight
        u = next_double(gen)
        token = (draw_one(<const float*>w, V, sums, total, u) if is_float
                 else draw_one(<const double*>w, V, sums, total, u))
    finally:
        if sums != &stack_sums[0]:
            free(sums)
    return token


cdef object sample_logits_one(cnp.ndarray xa, double t, object rng):
    """``sample_logits(logits, t, rng=rng)`` for plain 1-D logits, t > 0, no filter:
    the max, then the weights' block sums in one pass (no array of weights), then
    one draw that recomputes the chosen block's weights."""
    gen = as_generator(rng, "sample_logits")
    cdef Py_ssize_t V = cnp.PyArray_DIM(xa, 0), token
    cdef bint is_float = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT
    cdef double stack_sums[STACK_BLOCKS]
    cdef double* sums = &stack_sums[0]
    cdef void* x = cnp.PyArray_DATA(xa)
    cdef double total, u
    cdef ExpConsts consts
    if V > STACK_TOKENS:
        sums = <double*>malloc(n_blocks(V) * sizeof(double))
        if sums == NULL:
            raise MemoryError()
    try:
        if V < NOGIL_FROM:
            total = exp_pass(x, V, t, &consts, sums, is_float)
        else:
            with nogil:
                total = exp_pass(x, V, t, &consts, sums, is_float)
        if not isfinite(total):
            # NaN, +inf or all -inf (the general path raises, naming the bad logit),
            # or a temperature outside [1e-30, 1e30] (it draws with libm's exp).
            return sample_logits_general(xa, t, None, None, None, None, gen)
        u = next_double(gen)
        token = (draw_one_exp(<const float*>x, V, &consts, sums, total, u) if is_float
                 else draw_one_exp(<const double*>x, V, &consts, sums, total, u))
    finally:
        if sums != &stack_sums[0]:
            free(sums)
    return token


cdef double exp_pass(const void* x, Py_ssize_t V, double t, ExpConsts* consts,
                     double* sums, bint is_float) noexcept nogil:
    """exp_block_sums of float32 or float64 logits."""
    if is_float:
        return exp_block_sums(<const float*>x, V, t, consts, sums)
    return exp_block_sums(<const double*>x, V, t, consts, sums)


def _exp_weights(logits, double temperature):
    """Hook for the tests (not API): what the one-draw path without filters computes
    for 1-D float32 or float64 ``logits``: ``(weights, sums)``, the weights
    exp((x - max x) / T) (the logits' dtype; exp_block_weights, as the draw sees
    them) and the block sums (float64; exp_block_sum, as the walk sees them), or
    None where that path does not apply (NaN, +inf, no finite logit, T outside
    [1e-30, 1e30]).
    """
    cdef cnp.ndarray xa = np.ascontiguousarray(logits)
    if xa.ndim != 1 or xa.shape[0] == 0 or cnp.PyArray_TYPE(xa) not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE):
        raise ValueError("_exp_weights: logits must be a non-empty 1-D float32 or float64 array")
    cdef Py_ssize_t V = xa.shape[0], b, start
    cdef bint is_float = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT
    cdef cnp.ndarray w = np.empty_like(xa)
    cdef cnp.ndarray sums = np.empty(n_blocks(V), dtype=np.float64)
    cdef ExpConsts consts
    cdef void* x = cnp.PyArray_DATA(xa)
    cdef void* wp = cnp.PyArray_DATA(w)
    cdef double total = exp_pass(x, V, temperature, &consts, <double*>cnp.PyArray_DATA(sums),
                                 is_float)
    if not isfinite(total):
        return None
    for b in range(n_blocks(V)):
        start = b * BLOCK
        if is_float:
            exp_block_weights(<const float*>x + start, min(BLOCK, V - start), &consts,
                              <float*>wp + start)
        else:
            exp_block_weights(<const double*>x + start, min(BLOCK, V - start), &consts,
                              <double*>wp + start)
    return w, sums


# ===========================================================================
# Entry points
# ===========================================================================

def sample(weights, size=None, rng=None):
    """Draw token indices with probability proportional to ``weights``.

    Like ``random.choices(range(V), weights)`` or ``torch.multinomial``: the weights
    need not sum to 1. The cumulative table of a row is built once (in double,
    also for float32) and binary-searched once per draw, so ``size`` draws cost
    O(V + size log V).

    Parameters
    ----------
    weights : array_like, shape (V,) or (B, V)
        Non-negative, finite weights with a positive sum per row. float32 and
        float64 are read as they are, other real dtypes as float64.
    size : int or tuple of ints, optional
        Draws per distribution. None: one draw, returned as an int for 1-D
        ``weights``, or one per row for 2-D.
    rng : None, int or numpy.random.Generator, optional
        The random stream. An int seeds ``numpy.random.default_rng(seed)``: the
        same seed gives the same tokens in every run and process. None takes fresh
        entropy. A Generator is advanced by one double per draw (and may be shared
        by threads).

    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``weights`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D weights), ``(B,)`` or ``(B,) + size`` (2-D weights).

    Raises
    ------
    ValueError
        Empty weights or not 1-D/2-D, a NaN, infinite or negative weight, a row
        of zeros or whose sum overflows, a negative ``size``, a negative seed.
    TypeError
        A complex, object or non-real dtype; a ``size`` or ``rng`` of another type.

    Examples
    --------
    >>> from tinyllm._sampling import sample
    >>> probs = [0.4981509447, 0.0823437973, 0.3021438211, 0.0499440377, 0.0674173992]
    >>> token = sample(probs, rng=0)
    >>> sample(probs, size=(2, 3), rng=0).shape
    (2, 3)
    """
    if size is None and is_plain_vector(weights):
        return sample_one(<cnp.ndarray>weights, rng)
    return sample_general(weights, size, rng)


cdef object sample_general(object weights, object size, object rng):
    """``sample`` for any input: validate and coerce, check every row, then draw."""
    cdef cnp.ndarray wa = checked_rows(weights, "weights", "sample")
    shape = checked_size(size, "sample")
    gen = as_generator(rng, "sample")
    cdef int typenum = cnp.PyArray_TYPE(wa)
    cdef Py_ssize_t V = wa.shape[wa.ndim - 1]
    rows = checked_row_values(wa, False, "sample")
    cdef Py_ssize_t B = rows.shape[0], n_draws = draws_per_row(shape)
    cdef const float[:, ::1] w32
    cdef const double[:, ::1] w64
    if typenum == cnp.NPY_FLOAT:
        w32 = rows
    else:
        w64 = rows

    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef double[::1] cum = np.empty(V, dtype=np.float64)
    bit_generator = gen.bit_generator
    cdef bitgen_t* bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
    if n_draws:
        if typenum == cnp.NPY_FLOAT:
            with bit_generator.lock, nogil:
                sample_rows(w32, &cum[0], bitgen, out, n_draws)
        else:
            with bit_generator.lock, nogil:
                sample_rows(w64, &cum[0], bitgen, out, n_draws)
    return shaped_draws(tokens, wa.ndim == 2, shape)


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None,
                  size=None, rng=None):
    """Draw tokens from ``softmax(logits / temperature)`` after top-k, top-p, min-p.

    The filters run in Hugging Face transformers' order (temperature, top-k,
    top-p, min-p), each on the renormalised result of the previous one; tokens
    are ranked by logit, ties to the lower index. No probability array is built
    in Python and the vocabulary is never fully sorted. :func:`filter_logits`
    returns the support that these draws come from.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token. ``-inf`` masks a token; NaN and +inf are errors.
        float32 and float64 are read as they are, other real dtypes as float64.
    temperature : float, default 1.0
        Divides the logits: < 1 sharpens, > 1 flattens. 0 is greedy: the argmax,
        ties to the lowest index (the Generator is then not advanced).
    top_k : int, optional
        Keep the k highest logits (exactly k; ties to the lower index).
    top_p : float in (0, 1], optional
        Keep the smallest set of best-ranked tokens whose probability reaches
        >= top_p (at least one token; 1 keeps all).
    min_p : float in [0, 1], optional
        Keep the tokens with probability >= min_p times the largest one.
    size : int or tuple of ints, optional
        Draws per row, as in :func:`sample`.
    rng : None, int or numpy.random.Generator, optional
        The random stream, as in :func:`sample` (one double per draw).

    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``logits`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D logits), ``(B,)`` or ``(B,) + size`` (2-D logits).

    Raises
    ------
    ValueError
        Empty logits or not 1-D/2-D, NaN or +inf logits, a row that is all -inf,
        a temperature < 0, NaN or inf, ``top_k`` < 1, ``top_p`` outside (0, 1],
        ``min_p`` outside [0, 1], a negative ``size``, a negative seed.
    TypeError
        A complex, object or non-real dtype; a non-integer ``top_k``; a ``size``
        or ``rng`` of another type.

    Examples
    --------
    >>> from tinyllm._sampling import sample_logits
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], temperature=0)
    0
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], top_k=2, size=4, rng=0).shape
    (4,)
    """
    if (size is None and top_k is None and top_p is None and min_p is None
            and is_plain_vector(logits)):
        t = checked_temperature(temperature, "sample_logits")
        if t > 0.0:
            return sample_logits_one(<cnp.ndarray>logits, t, rng)
    return sample_logits_general(logits, temperature, top_k, top_p, min_p, size, rng)


cdef object sample_logits_general(object logits, object temperature, object top_k,
                                  object top_p, object min_p, object size, object rng):
    """``sample_logits`` for any input and options: validate, check, filter, draw."""
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "sample_logits")
    cdef double t = checked_temperature(temperature, "sample_logits")
    cdef Py_ssize_t k = checked_top_k(top_k, "sample_logits")
    cdef double p = checked_top_p(top_p, "sample_logits")
    cdef double mp = checked_min_p(min_p, "sample_logits")
    shape = checked_size(size, "sample_logits")
    gen = as_generator(rng, "sample_logits")
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = checked_row_values(xa, True, "sample_logits")
    cdef Py_ssize_t B = rows.shape[0], n_draws = draws_per_row(shape)
    cdef const float[:, ::1] x32
    cdef const double[:, ::1] x64
    if typenum == cnp.NPY_FLOAT:
        x32 = rows
    else:
        x64 = rows

    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef double[::1] e = np.empty(V, dtype=np.float64)
    cdef Py_ssize_t[::1] heap = np.empty(V, dtype=np.intp)
    cdef double[::1] sums = np.empty(n_blocks(V), dtype=np.float64)
    cdef bitgen_t* bitgen = NULL
    if n_draws == 0:
        pass
    elif t == 0.0:
        # Greedy: nothing random, no lock.
        if typenum == cnp.NPY_FLOAT:
            with nogil:
                sample_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], &sums[0],
                                   NULL, out, n_draws)
        else:
            with nogil:
                sample_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], &sums[0],
                                   NULL, out, n_draws)
    else:
        bit_generator = gen.bit_generator
        bitgen = <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
        if typenum == cnp.NPY_FLOAT:
            with bit_generator.lock, nogil:
                sample_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], &sums[0],
                                   bitgen, out, n_draws)
        else:
            with bit_generator.lock, nogil:
                sample_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], &sums[0],
                                   bitgen, out, n_draws)
    return shaped_draws(tokens, xa.ndim == 2, shape)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, out=None):
    """The logits that :func:`sample_logits` draws from: ``logits / temperature``
    where the filters keep a token, ``-inf`` where they remove it.

    ``softmax`` of the result is the distribution of the draws; its finite entries
    are the support. Useful to show what each filter does, and to test support
    sets exactly.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token (dtype rules and ``-inf`` masks as in
        :func:`sample_logits`).
    temperature, top_k, top_p, min_p
        As in :func:`sample_logits`. With temperature 0 only the argmax is kept,
        with its logit unscaled.
    out : ndarray, optional
        Writable array of the logits' shape and result dtype to write into (may be
        the logits array itself).

    Returns
    -------
    ndarray, shape (V,) or (B, V)
        float32 for float32 logits, else float64; ``out`` if given.

    Raises
    ------
    ValueError
        As :func:`sample_logits`; also when ``logits / temperature`` overflows the
        dtype, or ``out`` has another shape or is read-only.
    TypeError
        As :func:`sample_logits`; also an ``out`` that is not an array of the
        result's dtype.

    Examples
    --------
    >>> from tinyllm._sampling import filter_logits
    >>> filter_logits([2.0, 1.0, 0.5, -1.0], top_k=2)
    array([  2.,   1., -inf, -inf])
    """
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "filter_logits")
    cdef double t = checked_temperature(temperature, "filter_logits")
    cdef Py_ssize_t k = checked_top_k(top_k, "filter_logits")
    cdef double p = checked_top_p(top_p, "filter_logits")
    cdef double mp = checked_min_p(min_p, "filter_logits")
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef tuple shape = shape_of(xa)
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = checked_row_values(xa, True, "filter_logits")

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, "filter_logits")
    )
    # Write in place when ``result`` is kernel-ready and either is the input's own
    # memory or shares none of it; otherwise through a scratch copy.
    cdef cnp.ndarray target = result
    if not is_kernel_ready(result) or (
        out is not None and may_share_memory(result, rows)
        and cnp.PyArray_DATA(result) != cnp.PyArray_DATA(rows)
    ):
        target = new_array(shape, typenum)
    target_rows = target.reshape(-1, V)

    cdef const float[:, ::1] x32
    cdef float[:, ::1] o32
    cdef const double[:, ::1] x64
    cdef double[:, ::1] o64
    cdef double[::1] e = np.empty(V, dtype=np.float64)
    cdef Py_ssize_t[::1] heap = np.empty(V, dtype=np.intp)
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        x32, o32 = rows, target_rows
        with nogil:
            status = filter_logits_rows(x32, t, k, p, mp, &e[0], &heap[0], o32, &bad_row)
    else:
        x64, o64 = rows, target_rows
        with nogil:
            status = filter_logits_rows(x64, t, k, p, mp, &e[0], &heap[0], o64, &bad_row)
    if status != OK:
        raise ValueError(logits_message("filter_logits", status, xa, bad_row))
    if target is not result:
        result[...] = target
    return result


# ===========================================================================
# Entry points: generation
# ===========================================================================

from cpython.exc cimport PyErr_CheckSignals
from cpython.long cimport PyLong_AsLongLongAndOverflow



cdef enum:
    SMALL_WIDTH = 16       # projections with up to this many outputs use project_small...
    SMALL_DEPTH = 8        # ...when they sum fewer rows than this (ROWS: no block of rows)
    SMALL_COPY = 16        # embedding rows and contexts this short are copied by a loop
    SLICE_WORK = 1 << 21   # step work (see Generation.slice_tokens) per nogil call: ~1-5 ms
    LINE = 64              # bytes: each scratch buffer of a Generation starts a new line
    STACK_POSITIONS = 512  # take_tokens keeps up to this many positions on the stack


cdef inline void project_small(const floating* H, const floating* W, Py_ssize_t k,
                               Py_ssize_t V, floating* out) noexcept nogil:
    """out (V,) = H (k,) @ W (k, V) for k < ROWS (8), bit for bit as project_rows.

    project_rows (_project.pxd) with B = 1 and k < ROWS adds the rows one by one to
    a double accumulator per output (``acc[j] += c * w[j]``: the product in
    ``floating``, fused with the sum in double where the target has FMA), then
    rounds once. The same here, in the same order; only the accumulator moves: a
    register here, memory there, where each row waits for the store of the last.
    """
    cdef Py_ssize_t i, j
    cdef double a
    for j in range(V):
        a = 0.0
        for i in range(k):
            if floating is double:
                a = madd(H[i], W[i * V + j], a)
            else:
                a += H[i] * W[i * V + j]     # a float product: nothing to fuse
        out[j] = <floating>a


cdef inline char* carve(char** cursor, Py_ssize_t nbytes) noexcept nogil:
    """The next ``nbytes`` of a block, rounded up to whole cache lines."""
    cdef char* start = cursor[0]
    cursor[0] += (nbytes + LINE - 1) // LINE * LINE
    return start


@cython.auto_pickle(False)     # holds raw pointers into its buffers: not picklable
cdef class Generation:
    """Autoregressive generation from a model's arrays, many tokens per nogil call.

    Holds the weights, the context, the sampling options, the Generator and every
    scratch buffer (one allocation, here): :meth:`take` then runs the whole loop of
    gather, ``x @ W1`` (tanh), ``@ W2``, filters and draw in C, under the
    Generator's lock, without allocating per token. The tokens are the ones that
    calling :func:`sample_logits` on each step's logits with the same Generator
    would give.

    Setting one up is cheap (no NumPy call for a list or tuple of ints as the
    context), so a model makes a new one per ``generate`` call instead of sharing
    mutable state between calls and threads.

    Parameters
    ----------
    embeddings : ndarray, shape (V, d)
    W1 : ndarray, shape (c*d, h)
    W2 : ndarray, shape (h, V)
        C-contiguous arrays of one dtype, float32 or float64 (the model's).
    context : sequence of int, length c
        The positions the model reads first (the prompt's last c).
    temperature, top_k, top_p, min_p
        As in :func:`sample_logits`.
    rng : None, int or numpy.random.Generator
        As in :func:`sample_logits` (one double per token; none when greedy).
    tanh : bool, default False
        ``f1 = tanh(x @ W1)`` (a model with ``activation="tanh"``).

    Raises
    ------
    ValueError
        Shapes that do not fit together, a position out of range, a bad option.
    TypeError
        Arrays of another dtype or layout, a bad option type or ``rng``.
    """

    cdef readonly object embeddings, W1, W2
    cdef object gen, bit_generator
    cdef bitgen_t* bitgen
    cdef Py_ssize_t V, d, c, h, top_k
    cdef Py_ssize_t slice_tokens   # tokens per nogil call: a few ms of work (see fill)
    cdef double temperature, top_p, min_p
    cdef bint tanh_f1, is_float, stepped
    cdef const void* E_data
    cdef const void* W1_data
    cdef const void* W2_data
    cdef void* memory          # one block: the context and every buffer below
    cdef int64_t* context      # (c,) the positions read next, updated in place
    cdef void* x
    cdef void* f1
    cdef void* logits
    cdef Scratch scratch

    def __cinit__(self):
        self.memory = NULL     # freed by __dealloc__, also after a failed __init__
        self.stepped = False

    def __dealloc__(self):
        free(self.memory)

    def __init__(self, embeddings, W1, W2, context, temperature=1.0, top_k=None,
                 top_p=None, min_p=None, rng=None, tanh=False):
        cdef int typenum = cnp.NPY_FLOAT if cnp.PyArray_Check(embeddings) and \
            cnp.PyArray_TYPE(<cnp.ndarray>embeddings) == cnp.NPY_FLOAT else cnp.NPY_DOUBLE
        for name, arr in (("embeddings", embeddings), ("W1", W1), ("W2", W2)):
            if not (cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == typenum
                    and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 2
                    and is_kernel_ready(<cnp.ndarray>arr)):
                raise TypeError(f"Generation: {name} must be a C-contiguous, aligned, native "
                                f"byte order 2-D float32 or float64 array of the embeddings' dtype")
        self.V = cnp.PyArray_DIM(<cnp.ndarray>embeddings, 0)
        self.d = cnp.PyArray_DIM(<cnp.ndarray>embeddings, 1)
        self.h = cnp.PyArray_DIM(<cnp.ndarray>W1, 1)
        cdef Py_ssize_t rows1 = cnp.PyArray_DIM(<cnp.ndarray>W1, 0)
        self.c = rows1 // self.d if self.d else 0
        if self.V == 0 or self.d == 0 or self.h == 0 or rows1 != self.c * self.d \
                or self.c == 0 or cnp.PyArray_DIM(<cnp.ndarray>W2, 0) != self.h \
                or cnp.PyArray_DIM(<cnp.ndarray>W2, 1) != self.V:
            raise ValueError(
                f"Generation: shapes {embeddings.shape}, {W1.shape}, {W2.shape} do not fit "
                f"embeddings (V, d), W1 (c*d, h), W2 (h, V)")
        self.is_float = typenum == cnp.NPY_FLOAT
        self.allocate(sizeof(float) if self.is_float else sizeof(double))
        self.set_context(context)
        self.temperature = checked_temperature(temperature, "generate")
        self.top_k = checked_top_k(top_k, "generate")
        self.top_p = checked_top_p(top_p, "generate")
        self.min_p = checked_min_p(min_p, "generate")
        self.gen = as_generator(rng, "generate")
        self.bit_generator = self.gen.bit_generator
        self.bitgen = <bitgen_t*>PyCapsule_GetPointer(self.bit_generator.capsule, "BitGenerator")
        self.embeddings, self.W1, self.W2 = embeddings, W1, W2     # kept alive: read below
        self.E_data = cnp.PyArray_DATA(<cnp.ndarray>embeddings)
        self.W1_data = cnp.PyArray_DATA(<cnp.ndarray>W1)
        self.W2_data = cnp.PyArray_DATA(<cnp.ndarray>W2)
        self.tanh_f1 = bool(tanh)
        # Multiply-adds of one step (gather, f1, f2), plus the sampler's passes over
        # the logits and a fixed cost: a rough but safe measure of a step's time.
        cdef Py_ssize_t step_work = self.c * self.d * (self.h + 1) + self.V * (self.h + 4) + 64
        self.slice_tokens = max(1, SLICE_WORK // step_work)

    cdef int allocate(self, Py_ssize_t itemsize) except -1:
        """Every buffer the loop needs, in one block (a new line each)."""
        cdef Py_ssize_t V = self.V, acc = project_tile(1, max(V, self.h))
        cdef Py_ssize_t sizes[8]
        sizes[:] = [self.c * sizeof(int64_t), self.c * self.d * itemsize, self.h * itemsize,
                    V * itemsize, acc * sizeof(double), V * sizeof(double),
                    V * sizeof(Py_ssize_t), n_blocks(V) * sizeof(double)]
        cdef Py_ssize_t i, total = 0
        for i in range(8):
            total += (sizes[i] + LINE - 1) // LINE * LINE
        free(self.memory)
        self.memory = malloc(total)
        if self.memory == NULL:
            raise MemoryError()
        cdef char* cursor = <char*>self.memory
        self.context = <int64_t*>carve(&cursor, sizes[0])
        self.x = carve(&cursor, sizes[1])
        self.f1 = carve(&cursor, sizes[2])
        self.logits = carve(&cursor, sizes[3])
        self.scratch.acc = <double*>carve(&cursor, sizes[4])
        self.scratch.e = <double*>carve(&cursor, sizes[5])
        self.scratch.heap = <Py_ssize_t*>carve(&cursor, sizes[6])
        self.scratch.sums = <double*>carve(&cursor, sizes[7])
        return 0

    cdef int set_context(self, object context) except -1:
        """Check the c positions and copy them in: a list or tuple of ints directly,
        anything else through NumPy (integer dtypes only)."""
        cdef Py_ssize_t i
        cdef long long v
        cdef int overflow = 0
        cdef bint plain = (type(context) is list or type(context) is tuple) \
            and len(context) == self.c
        if plain:
            for i in range(self.c):
                item = context[i]
                if type(item) is not int:
                    plain = False
                    break
                v = PyLong_AsLongLongAndOverflow(item, &overflow)
                if overflow or not 0 <= v < self.V:
                    plain = False      # NumPy's answer below: out of range, or not an int64
                    break
                self.context[i] = v
        if plain:
            return 0
        positions = np.asarray(context)
        if positions.shape != (self.c,) or positions.dtype.kind not in "iu":
            raise ValueError(f"Generation: context must be {self.c} integer positions, "
                             f"got {context!r}")
        if ((positions < 0) | (positions >= self.V)).any():
            raise ValueError(f"Generation: a context position is out of range for {self.V} tokens")
        for i, position in enumerate(positions.tolist()):
            self.context[i] = position
        return 0

    def take(self, Py_ssize_t n):
        """The next ``n`` tokens (vocabulary positions), as an int64 array of shape (n,).

        Raises ValueError if the logits overflow (the tokens before are then lost;
        the context stays at the last good token).
        """
        if n < 0:
            raise ValueError(f"Generation.take: n must be >= 0, got {n}")
        cdef cnp.ndarray tokens = np.empty(n, dtype=np.int64)
        self.fill(<int64_t*>cnp.PyArray_DATA(tokens), n)
        return tokens

    def take_tokens(self, Py_ssize_t n, tuple tokens not None):
        """The next ``n`` tokens as items of ``tokens``, a tuple of V (the vocabulary's
        strings): the list of ``tokens[position]``, with no array or int made per token.

        Raises as :meth:`take`; ValueError if ``tokens`` does not hold V items.
        """
        if n < 0:
            raise ValueError(f"Generation.take_tokens: n must be >= 0, got {n}")
        if len(tokens) != self.V:
            raise ValueError(f"Generation.take_tokens: tokens has {len(tokens)} items, "
                             f"the model has {self.V} tokens")
        cdef int64_t stack[STACK_POSITIONS]
        cdef int64_t* out = stack
        cdef Py_ssize_t i
        if n > STACK_POSITIONS:
            out = <int64_t*>malloc(n * sizeof(int64_t))
            if out == NULL:
                raise MemoryError()
        try:
            self.fill(out, n)
            return [tokens[out[i]] for i in range(n)]
        finally:
            if out != stack:
                free(out)

    cdef int fill(self, int64_t* out, Py_ssize_t n) except -1:
        """out[0:n] = the next n tokens: nogil calls of the loop under the Generator's
        lock, ``slice_tokens`` tokens each (a few milliseconds of work), with a look
        for signals between them, so that Ctrl-C stops a long generation at once
        (KeyboardInterrupt; the tokens of this call are then lost, the context and
        the Generator stay where the last finished slice left them)."""
        cdef Py_ssize_t start = 0, count, done = 0
        cdef int status = OK
        while start < n:
            count = min(self.slice_tokens, n - start)
            with self.bit_generator.lock, nogil:
                status = self.run(out + start, count, &done)
            self.stepped = True
            if status != OK:
                raise ValueError(
                    f"generate: the logits of token {start + done} are not finite: the "
                    f"model's weights overflow the float range")
            start += count
            PyErr_CheckSignals()
        return 0

    def last_logits(self):
        """The logits of the last step, as the loop computed them (a copy of shape
        (V,) in the weights' dtype), or None before the first token. For tests and
        debugging: they equal the model's logits for that context, bit for bit.
        """
        if not self.stepped:
            return None
        cdef cnp.ndarray result = np.empty(
            self.V, dtype=np.float32 if self.is_float else np.float64)
        memcpy(cnp.PyArray_DATA(result), self.logits,
               self.V * (sizeof(float) if self.is_float else sizeof(double)))
        return result

    cdef int run(self, int64_t* out, Py_ssize_t n, Py_ssize_t* done) noexcept nogil:
        if self.is_float:
            return generate_loop(
                <const float*>self.E_data, <const float*>self.W1_data, <const float*>self.W2_data, self.V, self.d, self.c, self.h,
                self.tanh_f1, self.temperature, self.top_k, self.top_p, self.min_p,
                self.context, <float*>self.x, <float*>self.f1, <float*>self.logits,
                &self.scratch, self.bitgen, out, n, done)
        return generate_loop(
            <const double*>self.E_data, <const double*>self.W1_data, <const double*>self.W2_data, self.V, self.d, self.c, self.h,
            self.tanh_f1, self.temperature, self.top_k, self.top_p, self.min_p,
            self.context, <double*>self.x, <double*>self.f1, <double*>self.logits,
            &self.scratch, self.bitgen, out, n, done)
