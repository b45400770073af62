# kernels/sampling.pxi -- drawing the next token: from weights, or from logits through
# temperature, top-k, top-p (nucleus) and min-p filters.
#
#     sample:         P(i) = w_i / sum_j w_j
#     sample_logits:  P(i) = e_i / sum_{j kept} e_j,   e_i = exp((x_i - max_j x_j) / T)
#
# The filters run in Hugging Face transformers' order, each on the renormalised
# result of the previous one. Tokens are ranked by logit, ties to the lower index.
#
#     temperature 0  the argmax alone (greedy; ties to the lowest index)
#     top-k          the k best-ranked tokens
#     top-p          the best-ranked tokens, in order, until their mass reaches >= p
#     min-p          the tokens with P(i) >= min_p * max_j P(j)
#
# No stage sorts the vocabulary: top-k keeps a heap of k candidates (O(V log k));
# top-p finds, with threshold passes, a prefix of the ranking that holds mass p,
# heapifies it and pops only the nucleus (O(V + c + m log c) for c candidates and
# a nucleus of m tokens; c = V at worst); min-p is a threshold pass. The nucleus is
# popped in rank order, so its cumulative sum is exactly the one of the documented
# walk (and of tinyllm.reference). One draw needs no table: the weights' sums per
# block of DRAW_BLOCK tokens (vectorised), then a walk over the block sums and one
# block. ``size`` draws build a cumulative table once per row, in double also for
# float32, and binary-search it once per draw: O(V + size log V), not O(size V).
# Without filters, the weights exp((x - m) / T) come from fastmath's vectorised
# scaled exp (float arithmetic for float32 logits; weights below e^-86 of the max's
# are 0) and are not stored: one pass sums them per block, the draw recomputes one
# block. The filters use libm's exp, as tinyllm.reference does, so support sets are
# decided on the same numbers.
#
# Random numbers: one ``next_double`` of the NumPy Generator's bit generator per
# draw (the caller holds its lock), so a seed gives the same tokens everywhere.

from cython cimport floating
from libc.math cimport INFINITY, NAN, exp, isfinite, isinf, isnan
from libc.stdint cimport int64_t
from numpy.random cimport bitgen_t

from _defs cimport (
    DRAW_BLOCK,
    FOUND_NAN,
    FOUND_NEGATIVE,
    FOUND_POSINF,
    NO_FINITE,
    OK,
    RESULT_OVERFLOW,
    SUM_OVERFLOW,
    ZERO_SUM,
    SamplerOptions,
    SamplerScratch,
    n_draw_blocks,
)

# Removed tokens are marked with this weight (kept ones have weights >= 0).
cdef enum:
    REMOVED = -1         # the weight that marks a removed token (kept ones have >= 0)


# ===========================================================================
# input checks (a pass over everything before any draw, so a bad row
# never leaves the Generator half-advanced)
# ===========================================================================

cdef int check_weights(const floating* w, Py_ssize_t rows, Py_ssize_t n,
                       Py_ssize_t* bad_row) noexcept nogil:
    """Every row of w (rows, n) finite, >= 0, with a positive sum that fits in a double."""
    cdef Py_ssize_t r, i
    cdef double v, total
    for r in range(rows):
        bad_row[0] = r
        total = 0.0
        for i in range(n):
            v = w[r * n + i]
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


cdef int check_logits(const floating* x, Py_ssize_t rows, Py_ssize_t n,
                      Py_ssize_t* bad_row) noexcept nogil:
    """Every row of x (rows, n) free of NaN and +inf, with at least one entry > -inf."""
    cdef Py_ssize_t r, i
    cdef double v
    cdef bint any_finite
    for r in range(rows):
        bad_row[0] = r
        any_finite = False
        for i in range(n):
            v = x[r * n + i]
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
# ranking and binary heaps of token indices
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
# the filters. ``e`` holds one weight per token: exp((x_i - m) / T) for a
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


cdef double CUTS[4]
CUTS[:] = [0.0625, 2.0 ** -12, 2.0 ** -32, 0.0]     # keep_top_p's candidate thresholds


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
        cut = CUTS[attempt]
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


cdef Py_ssize_t filter_row(const floating* x, Py_ssize_t n, const SamplerOptions* opt,
                           double* e, Py_ssize_t* heap) noexcept nogil:
    """e[0:n] = the weights of row x[0:n] after the filters; returns the argmax.

    The row must be checked (no NaN or +inf, one entry > -inf). ``top_k`` 0,
    ``top_p`` 1 and ``min_p`` 0 switch a filter off; temperature 0 keeps the argmax.
    """
    cdef Py_ssize_t i, best = 0, n_finite = 0
    cdef double m = -INFINITY, temperature = opt.temperature
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
    if 0 < opt.top_k < n_finite:
        keep_top_k(x, e, n, opt.top_k, heap)
    for i in range(n):
        if e[i] >= 0.0:
            e[i] = exp((x[i] - m) / temperature)     # (x - m) <= 0: no overflow
    if opt.top_p < 1.0:
        keep_top_p(x, e, n, opt.top_p, heap)
    if opt.min_p > 0.0:
        keep_min_p(e, n, opt.min_p)
    return best


# ===========================================================================
# the cumulative table and the draws
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
# one draw without a table. A single draw needs no cumulative table: the
# weights' sums per DRAW_BLOCK of tokens (vectorised, several partial sums), then the
# draw walks the block sums and a single block. The total is the sum of the block
# sums in the order the walk adds them, so the walk always lands in a block.
# ===========================================================================

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
    for b in range(n_draw_blocks(n)):
        start = b * DRAW_BLOCK
        sums[b] = lane_sum(w + start, min(DRAW_BLOCK, n - start), smallest)
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
    """The sum of the weights exp((x[i] - m) / T), i < n (n <= DRAW_BLOCK); NaN if an x[i]
    is NaN. Not stored: a store per vector costs 20% here (measured).

    LANES partial sums in the weights' type (a lane adds DRAW_BLOCK / LANES = 8 float
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
    for b in range(n_draw_blocks(n)):
        start = b * DRAW_BLOCK
        sums[b] = exp_block_sum(x + start, min(DRAW_BLOCK, n - start), consts)
        total += sums[b]
    return total


cdef inline Py_ssize_t choose_block(Py_ssize_t n, const double* sums, double r,
                                    double* before) noexcept nogil:
    """The block whose share of the running sum of ``sums`` holds r (or the last one
    of positive sum), and in ``before`` the sum of the blocks before it."""
    cdef double running = 0.0
    cdef Py_ssize_t b, chosen = 0
    before[0] = 0.0
    for b in range(n_draw_blocks(n)):
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
    cdef Py_ssize_t start = choose_block(n, sums, r, &before) * DRAW_BLOCK
    return start + walk_block(w + start, min(DRAW_BLOCK, n - start), r, before)


cdef Py_ssize_t draw_one_exp(const floating* x, Py_ssize_t n, const ExpConsts* consts,
                             const double* sums, double total, double u) noexcept nogil:
    """draw_one for the weights exp((x[i] - m) / T) of exp_block_sums: only the
    chosen block's weights are recomputed (exp_block_weights). Should they differ
    in the last bit from those summed, the walk still ends in the block."""
    cdef floating w[DRAW_BLOCK]
    cdef double r = u * total, before
    cdef Py_ssize_t start = choose_block(n, sums, r, &before) * DRAW_BLOCK
    cdef Py_ssize_t length = min(DRAW_BLOCK, n - start)
    exp_block_weights(x + start, length, consts, w)
    return start + walk_block(w, length, r, before)


cdef Py_ssize_t draw_from_logits(const floating* x, Py_ssize_t n, const SamplerOptions* opt,
                                 const SamplerScratch* scratch, bitgen_t* rng) noexcept nogil:
    """One token from a checked row of logits: the filters, then one draw (one double;
    none for temperature 0).

    Without filters the weights exp((x - m) / T) come from _fastmath's vectorised
    scaled exp (exp_block_sums: no array of weights); the filters use libm's exp,
    as tinyllm.reference does, so that support sets are decided on the same numbers
    (and so does a temperature outside [1e-30, 1e30]).
    """
    cdef double total, smallest
    cdef Py_ssize_t i, best
    cdef ExpConsts consts
    cdef double* e = scratch.e
    cdef double* sums = scratch.sums
    if opt.temperature > 0.0 and opt.top_k == 0 and opt.top_p >= 1.0 and opt.min_p <= 0.0:
        total = exp_block_sums(x, n, opt.temperature, &consts, sums)
        if isfinite(total):              # else t outside [1e-30, 1e30]: libm below
            return draw_one_exp(x, n, &consts, sums, total, rng.next_double(rng.state))
    best = filter_row(x, n, opt, e, scratch.heap)
    if opt.temperature == 0.0:
        return best
    for i in range(n):
        e[i] = e[i] if e[i] > 0.0 else 0.0      # removed tokens (REMOVED < 0) weigh 0
    total = block_sums(e, n, sums, &smallest)
    return draw_one(e, n, sums, total, rng.next_double(rng.state))


# ===========================================================================
# whole batches (rows of a C-contiguous matrix, one scratch row)
# ===========================================================================

cdef void sample_rows(const floating* w, Py_ssize_t rows, Py_ssize_t n, double* cum,
                      bitgen_t* rng, int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws tokens per checked row of weights w (rows, n), into out (rows, n_draws)."""
    cdef Py_ssize_t r, i, last
    for r in range(rows):
        for i in range(n):
            cum[i] = w[r * n + i]
        last = cumulate(cum, n)
        draw(cum, n, last, rng, out + r * n_draws, n_draws)


cdef void sample_logits_rows(const floating* x, Py_ssize_t rows, Py_ssize_t n,
                             const SamplerOptions* opt, const SamplerScratch* scratch,
                             bitgen_t* rng, int64_t* out, Py_ssize_t n_draws) noexcept nogil:
    """n_draws filtered tokens per checked row of logits x (rows, n), into out (rows,
    n_draws). Temperature 0 draws nothing (``rng`` may be NULL): every token is the
    argmax. One draw per row needs no table (draw_from_logits); more build it once."""
    cdef Py_ssize_t r, d, best, last
    for r in range(rows):
        if n_draws == 1:
            out[r] = draw_from_logits(x + r * n, n, opt, scratch, rng)
            continue
        best = filter_row(x + r * n, n, opt, scratch.e, scratch.heap)
        if opt.temperature == 0.0:
            for d in range(n_draws):
                out[r * n_draws + d] = best
            continue
        last = cumulate(scratch.e, n)
        draw(scratch.e, n, last, rng, out + r * n_draws, n_draws)


cdef int filter_logits_rows(const floating* x, Py_ssize_t rows, Py_ssize_t n,
                            const SamplerOptions* opt, const SamplerScratch* scratch,
                            floating* out, Py_ssize_t* bad_row) noexcept nogil:
    """out = x / T where the filters keep a token, -inf elsewhere (T = 0: x itself at
    the argmax), for rows (rows, n). Each row is read whole before it is written: out
    may be x."""
    cdef Py_ssize_t r, i
    cdef floating v
    cdef double t = opt.temperature
    cdef double* e = scratch.e
    for r in range(rows):
        filter_row(x + r * n, n, opt, e, scratch.heap)
        for i in range(n):
            if e[i] < 0.0:
                out[r * n + i] = -INFINITY
                continue
            v = <floating>(x[r * n + i] if t == 0.0 else x[r * n + i] / t)
            if isinf(v):
                bad_row[0] = r
                return RESULT_OVERFLOW
            out[r * n + i] = v
    return OK


# ===========================================================================
# One draw from one row: the entry points' fast paths
# ===========================================================================

cdef Py_ssize_t draw_weights_once(const floating* w, Py_ssize_t n, double* sums,
                                  bitgen_t* rng) noexcept nogil:
    """One token drawn from the weights w[0:n] (one double), or -1, without drawing,
    when a weight is negative, NaN or +inf, or their sum is 0 or overflows (the entry
    point then takes its general path, which names the bad weight)."""
    cdef double smallest
    cdef double total = block_sums(w, n, sums, &smallest)
    if not (smallest >= 0.0 and 0.0 < total < INFINITY):
        return -1
    return draw_one(w, n, sums, total, rng.next_double(rng.state))


cdef Py_ssize_t draw_logits_once(const floating* x, Py_ssize_t n, double t, double* sums,
                                 bitgen_t* rng) noexcept nogil:
    """One token from softmax(x / t) for t > 0 and no filter (one double): the max,
    the weights' block sums in one pass (no array of weights), then a draw that
    recomputes the chosen block. -1, without drawing, where this path does not apply:
    a NaN, +inf or no finite logit (the general path names it), or t outside
    [1e-30, 1e30] (the general path draws with libm's exp)."""
    cdef ExpConsts consts
    cdef double total = exp_block_sums(x, n, t, &consts, sums)
    if not isfinite(total):
        return -1
    return draw_one_exp(x, n, &consts, sums, total, rng.next_double(rng.state))


cdef bint exp_weights(const floating* x, Py_ssize_t n, double t, floating* w,
                      double* sums) noexcept nogil:
    """What draw_logits_once computes (a test hook): w[0:n] = the weights exp((x - max
    x) / t) as the draw sees them, sums = their block sums as the walk sees them.
    False where that path does not apply."""
    cdef ExpConsts consts
    cdef Py_ssize_t b, start
    if not isfinite(exp_block_sums(x, n, t, &consts, sums)):
        return False
    for b in range(n_draw_blocks(n)):
        start = b * DRAW_BLOCK
        exp_block_weights(x + start, min(DRAW_BLOCK, n - start), &consts, w + start)
    return True
