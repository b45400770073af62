# kernels/sampling.pxi -- drawing the next token: from weights, or from logits through
# the decoding chain of filters.pxi.
#
#     sample:         P(i) = w_i / sum_j w_j
#     sample_logits:  P(i) = w_i / sum_{j kept} w_j,  w_i = round(2^K exp((y_i - max y) / T))
#
# One draw needs no table: the weights' sums per block of DRAW_BLOCK tokens, then a
# walk over the block sums and one block. ``size`` draws build a cumulative table
# once per row and binary-search it once per draw: O(V + size log V), not O(size V).
# Without filters, bias or penalties (only a temperature) the weights
# exp((x - m) / T) come from fastmath's vectorised scaled exp (float arithmetic for
# float32 logits; weights below e^-86 of the max's are 0) and are not stored: one
# pass sums them per block, the draw recomputes one block. With filters, the draw
# reads the filters' exact integer weights (filters.pxi). Temperature 0 is one
# read-only pass: the first argmax.
#
# Random numbers: one ``next_double`` of the NumPy Generator's bit generator per
# draw (the caller holds its lock), so a seed gives the same tokens everywhere.

from cython cimport floating
from libc.math cimport INFINITY, NAN, exp, fabs, isfinite, isinf, isnan, log
from libc.stdint cimport int64_t
from numpy.random cimport bitgen_t

from _defs cimport (
    DRAW_BLOCK,
    Penalties,
    has_filters,
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

cdef enum:
    GREEDY_BLOCK = 2048   # greedy_once: a max per block of this many, then one block again


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
    """Every row of x (rows, n) free of NaN and +inf, with at least one entry > -inf:
    one vectorised pass per row (lane_max keeps NaN)."""
    cdef Py_ssize_t r
    cdef double top
    for r in range(rows):
        bad_row[0] = r
        top = lane_max(x + r * n, n)
        if isnan(top):
            return FOUND_NAN
        if top == INFINITY:
            return FOUND_POSINF
        if top == -INFINITY:
            return NO_FINITE
    return OK


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


# ===========================================================================
# draws from the filters' integer weights (filters.pxi): exact running sums, the
# token is the first kept one whose sum, as a double, exceeds u * W
# ===========================================================================

cdef Py_ssize_t last_positive(const int64_t* w, Py_ssize_t n) noexcept nogil:
    """The last token with a positive weight (where u * W rounds up to W)."""
    cdef Py_ssize_t i
    for i in range(n - 1, -1, -1):
        if w[i] > 0:
            return i
    return 0


cdef Py_ssize_t draw_weighted(const int64_t* w, Py_ssize_t n, int64_t* sums,
                              double u) noexcept nogil:
    """One token from the integer weights w (REMOVED and 0 never drawn): the block
    sums (exact), the block whose running sum first exceeds u * W, then its tokens."""
    cdef Py_ssize_t b, i, start, end, n_blocks = n_draw_blocks(n)
    cdef int64_t total = 0, running = 0, part
    for b in range(n_blocks):
        start = b * DRAW_BLOCK
        end = min(start + DRAW_BLOCK, n)
        part = 0
        for i in range(start, end):
            part += w[i] if w[i] > 0 else 0
        sums[b] = part
        total += part
    cdef double r = u * <double>total
    for b in range(n_blocks):
        if <double>(running + sums[b]) > r:
            start = b * DRAW_BLOCK
            for i in range(start, min(start + DRAW_BLOCK, n)):
                if w[i] > 0:
                    running += w[i]
                    if <double>running > r:
                        return i
        running += sums[b]
    return last_positive(w, n)


cdef void draw_weighted_many(int64_t* w, Py_ssize_t n, bitgen_t* rng, int64_t* out,
                             Py_ssize_t n_draws) noexcept nogil:
    """out[0:n_draws] from the integer weights w, which become their running sums: a
    binary search per draw for the first sum that exceeds u * W, as a double."""
    cdef Py_ssize_t i, d, lo, hi, mid, last = last_positive(w, n)
    cdef int64_t running = 0
    cdef double r
    for i in range(n):
        running += w[i] if w[i] > 0 else 0
        w[i] = running
    for d in range(n_draws):
        r = rng.next_double(rng.state) * <double>running
        lo = 0
        hi = n
        while lo < hi:
            mid = lo + (hi - lo) // 2
            if <double>w[mid] > r:
                hi = mid
            else:
                lo = mid + 1
        out[d] = lo if lo <= last else last


cdef Py_ssize_t draw_from_logits(const floating* x, Py_ssize_t n, const SamplerOptions* opt,
                                 const SamplerScratch* scratch, bitgen_t* rng) noexcept nogil:
    """One token from a checked row of logits (bias and penalties applied): the
    filters, then one draw (one double; none for temperature 0).

    With only a temperature in [1e-30, 1e30], the weights exp((x - m) / T) come from
    fastmath's vectorised scaled exp (exp_block_sums: no array of weights); else from
    the filters' integer weights.
    """
    cdef double total
    cdef ExpConsts consts
    if opt.temperature == 0.0:
        return argmax_row(x, n)
    if not has_filters(opt):
        total = exp_block_sums(x, n, opt.temperature, &consts, scratch.sums)
        if isfinite(total):
            return draw_one_exp(x, n, &consts, scratch.sums, total, rng.next_double(rng.state))
    filter_row(x, n, opt, scratch.w, scratch.saved)
    return draw_weighted(scratch.w, n, scratch.weight_sums, rng.next_double(rng.state))


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
    cdef Py_ssize_t r, d, best
    for r in range(rows):
        if n_draws == 1:
            out[r] = draw_from_logits(x + r * n, n, opt, scratch, rng)
            continue
        if opt.temperature == 0.0:
            best = argmax_row(x + r * n, n)
            for d in range(n_draws):
                out[r * n_draws + d] = best
            continue
        filter_row(x + r * n, n, opt, scratch.w, scratch.saved)
        draw_weighted_many(scratch.w, n, rng, out + r * n_draws, n_draws)


cdef int filter_logits_rows(const floating* x, Py_ssize_t rows, Py_ssize_t n,
                            const SamplerOptions* opt, const SamplerScratch* scratch,
                            floating* out, Py_ssize_t* bad_row) noexcept nogil:
    """out = x / T where the filters keep a token, -inf elsewhere (T = 0: x itself at
    the argmax), for rows (rows, n). Each row is read whole before it is written: out
    may be x."""
    cdef Py_ssize_t r, i
    cdef floating v
    cdef double t = opt.temperature
    cdef int64_t* w = scratch.w
    cdef bint overflow
    for r in range(rows):
        filter_row(x + r * n, n, opt, w, scratch.saved)
        overflow = False
        for i in range(n):
            v = <floating>(x[r * n + i] if t == 0.0 else x[r * n + i] / t)
            overflow = overflow | ((w[i] >= 0) & (isinf(v) != 0))
            out[r * n + i] = v if w[i] >= 0 else -INFINITY
        if overflow:
            bad_row[0] = r
            return RESULT_OVERFLOW
    return OK


cdef Py_ssize_t greedy_once(const floating* x, Py_ssize_t n) noexcept nogil:
    """The first argmax of x in one read-only pass, or -1 if x holds a NaN or +inf or
    nothing above -inf (the entry point's general path then names it).

    The max of each block of GREEDY_BLOCK numbers comes from lane_max (vectorised,
    keeps NaN); the first block with the largest max is read again for the index.
    """
    cdef Py_ssize_t start = 0, i, best_block = 0
    cdef double top = -INFINITY, block_max
    while start < n:
        block_max = lane_max(x + start, min(<Py_ssize_t>GREEDY_BLOCK, n - start))
        if isnan(block_max) or block_max == INFINITY:
            return -1
        if block_max > top:
            top = block_max
            best_block = start
        start += GREEDY_BLOCK
    if top == -INFINITY:
        return -1
    for i in range(best_block, min(best_block + <Py_ssize_t>GREEDY_BLOCK, n)):
        if x[i] == top:
            return i
    return -1


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
