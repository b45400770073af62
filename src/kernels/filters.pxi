# kernels/filters.pxi -- the decoding chain on one row of logits: penalties, then the
# filters (top-n-sigma, top-k, top-p, min-p, typical-p) in time linear in the row,
# whatever its distribution.
#
# The contract is tinyllm.reference.sampling (same kept sets, bit for bit). To make
# that possible without a sort, nothing is decided on a floating-point sum whose
# value depends on the order of its terms:
#
#     s_i = (y_i - m) / T                    m = max y, T the temperature
#     e_i = filter_exp(s_i)                  an exp with every multiply-add fused: the
#                                            same bits in every build and in Python
#     w_i = round(e_i * 2^K)                 integer weights, K = min(52, 63 - bitlen(V)):
#                                            their sums are exact (< 2^63) in any order
#
# Tokens are ranked by y (higher first, ties to the lower index). top-k, top-p and
# typical-p keep the shortest prefix of an order (the ranking; typical-p: the distance
# to the entropy) whose count or weight reaches a threshold. That prefix is found by
# radix selection on the order's key (a double): a histogram of 2^11 equal slices of
# the key range (counts and weights), keep the slice where the running sum crosses the
# threshold, repeat on it; once at most CAP tokens are left they are gathered (for the
# ranking, by one vectorised band pass over the logits) and the levels go on over the
# list; a slice of one key value is a run of ties, walked in index order; one of a
# few tokens is sorted. Keys spread over many orders of magnitude, which equal slices
# split badly, go on by their bits (a key as sortable bits, 11 at a time). Each pass
# is one read of the row: flat, peaked, tied and masked rows all cost a few passes,
# and nothing sorts the vocabulary.
#
# top-n-sigma and min-p are thresholds; top-k and top-n-sigma decide on logits alone,
# so the weights (an exp each) are computed after them, for the tokens they keep.
# One draw after top-k alone or min-p alone (the last section) first gathers the
# tokens that may be kept and computes an exp for those only.

from libc.math cimport INFINITY, fabs, fma, isfinite, log, sqrt
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memset
from numpy.random cimport bitgen_t

from _defs cimport FOUND_POSINF, NO_FINITE, OK, Penalties, SamplerOptions

cdef enum:
    REMOVED = -1          # the weight that marks a removed token (kept ones have >= 0)
    N_BUCKETS = 2048      # radix selection: 2^11 buckets per pass (32 KiB of counters)
    MAX_LEVELS = 3        # linear levels before the selection goes on by bits
    CAP = 2048            # tokens in play gathered into a list (on the stack) to finish
    TOP_K_FEW = 1024      # draw_top_k_once takes k up to this
    SAMPLE_MAX = 2048     # draw_top_k_once's sample of the row
    SPARE = 16            # extra buckets for the tokens a pass skips (spread: no store chain)
    FEW = 48              # a boundary bucket of at most this many tokens is sorted
    LANES8 = 8            # top-n-sigma's sums: 8 lanes, a fixed order (n_sigma_threshold)

cdef enum KeyOrder:
    BY_RANK = 0           # key = -y: the ranking (top-k, top-p, min_keep)
    BY_TYPICALITY = 1     # key = |(-log p_i) - H|: typical-p's order


# ===========================================================================
# Logit bias and penalties (before the temperature), on a writable row
# ===========================================================================

cdef void sort_positions(int64_t* a, Py_ssize_t n) noexcept nogil:
    """Ascending, in place: insertion sort for a short window, qsort beyond."""
    cdef Py_ssize_t i, j
    cdef int64_t v
    if n > 64:
        qsort(a, n, sizeof(int64_t), compare_positions)
        return
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


cdef int compare_positions(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const int64_t*>a)[0], y = (<const int64_t*>b)[0]
    return (x > y) - (x < y)


cdef int adjust_logits(floating* y, Py_ssize_t n, const Penalties* pen,
                       const int64_t* window, Py_ssize_t n_window,
                       int64_t* sorted_window) noexcept nogil:
    """y += logit bias; then, for each distinct token t of the window, seen c times:
    the repetition penalty (CTRL, Keskar et al. 2019, as transformers and llama.cpp:
    y_t * r if y_t <= 0 else y_t / r), then y_t -= c * frequency + presence (OpenAI's
    formula, one fused multiply-add). Each result is rounded to the row's dtype.
    ``sorted_window`` (n_window) is scratch. Returns FOUND_POSINF if a touched logit
    became +inf, NO_FINITE if none is left above -inf, else OK."""
    cdef Py_ssize_t i, j, count
    cdef int64_t t
    cdef double v
    cdef bint banned = False
    for i in range(pen.n_bias):
        t = pen.bias_positions[i]
        y[t] = <floating>(y[t] + pen.bias_values[i])
        banned |= y[t] == -INFINITY
        if y[t] == INFINITY:
            return FOUND_POSINF
    if n_window > 0 and pen.active:
        for i in range(n_window):
            sorted_window[i] = window[i]
        sort_positions(sorted_window, n_window)
        i = 0
        while i < n_window:
            t = sorted_window[i]
            j = i
            while j < n_window and sorted_window[j] == t:
                j += 1
            count = j - i
            i = j
            v = y[t]
            if v == -INFINITY:
                continue          # a masked token stays masked (-inf - -inf would be NaN)
            if pen.repetition != 1.0:
                v = <floating>(v * pen.repetition if v <= 0.0 else v / pen.repetition)
            y[t] = <floating>(v - fma(<double>count, pen.frequency, pen.presence))
            if y[t] == INFINITY:
                return FOUND_POSINF
            banned |= y[t] == -INFINITY
    if banned:
        for i in range(n):
            if y[i] != -INFINITY:
                return OK
        return NO_FINITE
    return OK


# ===========================================================================
# The exp of the filters, the integer weights, the keys
# ===========================================================================

cdef inline double filter_exp(double s) noexcept nogil:
    """exp(s) for s <= 0 (or -inf), within an ulp, with the same bits everywhere.

    fastmath's Cody-Waite reduction and polynomial, but every multiply-add is an
    explicit fused one (fma): compilers may contract a * b + c on one instruction set
    and not on another, and tinyllm.reference computes the same fmas in Python.
    Below -746 the result is 0 (as exp's, rounded).
    """
    cdef double sc = s if s >= -746.0 else -746.0
    cdef double t = fma(sc, 1.4426950408889634, 6755399441055744.0)   # + 1.5 * 2^52
    cdef double n = t - 6755399441055744.0                              # round(s log2 e)
    cdef double r = fma(-n, 0.6931471803691238, sc)
    r = fma(-n, 1.9082149292705877e-10, r)
    cdef double p = 2.510134692835034e-08
    p = fma(p, r, 2.7621338669142925e-07)
    p = fma(p, r, 2.75572664186123e-06)
    p = fma(p, r, 2.4801518641395993e-05)
    p = fma(p, r, 0.00019841269864380513)
    p = fma(p, r, 0.0013888888918939168)
    p = fma(p, r, 0.008333333333329793)
    p = fma(p, r, 0.04166666666662064)
    p = fma(p, r, 0.16666666666666669)
    p = fma(p, r, 0.5000000000000001)
    p = fma(p, r, 1.0)
    p = fma(p, r, 1.0)
    # p * 2^n with one rounding: p * 2^-64 is exact, 2^(n + 64) a normal number.
    cdef uint64_t biased = _bits64(t) - <uint64_t>0x4338000000000000 + (64 + 1023)
    p = (p * 5.421010862427522e-20) * _from_bits64(biased << 52)
    return 0.0 if s < -746.0 else p


cdef void filter_exp_array(const double* s, double* out, Py_ssize_t n) noexcept nogil:
    """out[i] = filter_exp(s[i]) (a test hook: the reference computes the same bits)."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = filter_exp(s[i])


cdef inline int weight_bits(Py_ssize_t n) noexcept nogil:
    """K = min(52, 63 - bitlen(n)): n weights of at most 2^K add up below 2^63."""
    cdef int bits = 0
    while n:
        bits += 1
        n >>= 1
    return 52 if 63 - bits > 52 else 63 - bits


cdef inline int64_t to_fixed(double v) noexcept nogil:
    """round(v), ties to even, for 0 <= v <= 2^52: the integer lands in the low bits
    of v + 2^52 (no float -> int64 conversion, which AVX2 lacks)."""
    return <int64_t>(_bits64(v + 4503599627370496.0) - <uint64_t>0x4330000000000000)


cdef inline uint64_t sortable(double v) noexcept nogil:
    """Bits of v that sort as v does (v + 0.0 folds -0.0 into 0.0: equal keys)."""
    cdef uint64_t u = _bits64(v + 0.0)
    return ~u if u >> 63 else u | (<uint64_t>1 << 63)


cdef struct Row:
    # What the filters know about one row: the scale of s and e, and typical-p's terms.
    double m              # max y
    double ymin           # min finite y: with m, the range of the ranking's keys
    Py_ssize_t kept       # how many tokens are kept
    int64_t total         # their weight (-1: not known, to be added up)
    double t              # temperature
    double scale          # 2^K
    double logz           # typical-p: log(W / 2^K)
    double h              # typical-p: the entropy
    int order             # KeyOrder of the current selection


cdef inline double key_value(const floating* y, Py_ssize_t i, const Row* row) noexcept nogil:
    """The value that orders token i (ascending) in the current selection."""
    cdef double s
    if row.order == BY_RANK:
        return -(<double>y[i])
    s = (y[i] - row.m) / row.t
    return fabs((row.logz - s) - row.h)


cdef Py_ssize_t mark_finite(const floating* y, Py_ssize_t n, int64_t* w,
                            Row* row) noexcept nogil:
    """w[i] = 0 (kept, weight to come) for a finite y[i], REMOVED for -inf; the largest
    and the smallest finite y in row.m and row.ymin; returns how many are kept. The
    filters on logits (top-n-sigma, top-k) need no weights. Explicit lanes for the min
    and max, so the loop vectorises."""
    cdef double low[LANES8]
    cdef double high[LANES8]
    cdef Py_ssize_t b, i, j, kept = 0, body = n - n % LANES8
    cdef double v
    for j in range(LANES8):
        low[j] = INFINITY
        high[j] = -INFINITY
    for b in range(body // LANES8):
        i = b * LANES8
        for j in range(LANES8):
            v = y[i + j]
            w[i + j] = 0 if v != -INFINITY else REMOVED
            kept += v != -INFINITY
            low[j] = v if ((v < low[j]) & (v != -INFINITY)) else low[j]
            high[j] = v if v > high[j] else high[j]
    for i in range(body, n):
        v = y[i]
        w[i] = 0 if v != -INFINITY else REMOVED
        kept += v != -INFINITY
        low[0] = v if ((v < low[0]) & (v != -INFINITY)) else low[0]
        high[0] = v if v > high[0] else high[0]
    for j in range(1, LANES8):
        low[0] = low[j] if low[j] < low[0] else low[0]
        high[0] = high[j] if high[j] > high[0] else high[0]
    row.ymin = low[0]
    row.m = high[0]
    row.kept = kept
    row.total = -1
    return kept


cdef void fill_weights(const floating* y, Py_ssize_t n, Row* row, int64_t* w) noexcept nogil:
    """w[i] = round(filter_exp(s_i) * 2^K) for the kept tokens, and their total. A
    vectorised pass over the row, or, when few are kept (after top-k), one exp per
    kept token."""
    cdef Py_ssize_t i
    cdef double weight
    cdef int64_t total = 0, one = to_fixed(row.scale)
    if row.ymin == row.m:         # a flat row: every s is 0, every weight 2^K, no exp
        for i in range(n):
            w[i] = one if w[i] >= 0 else REMOVED
        row.total = one * row.kept
        return
    if row.kept < n // 16:
        for i in range(n):
            if w[i] >= 0:
                w[i] = to_fixed(filter_exp((y[i] - row.m) / row.t) * row.scale)
                total += w[i]
        row.total = total
        return
    for i in range(n):
        weight = filter_exp((y[i] - row.m) / row.t) * row.scale
        w[i] = to_fixed(weight) if w[i] >= 0 else REMOVED
        total += w[i] if w[i] > 0 else 0
    row.total = total


cdef int64_t kept_weight(const int64_t* w, Py_ssize_t n) noexcept nogil:
    """The exact sum of the kept weights."""
    cdef int64_t total = 0
    cdef Py_ssize_t i
    for i in range(n):
        total += w[i] if w[i] > 0 else 0
    return total


cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__AVX512F__) && defined(__AVX512VL__)
    #include <immintrin.h>
    #endif
    /* out[0:count] = the indices i < n (ascending) with x[i] >= cut; out must hold
       n + 16. The AVX-512 path compresses in registers, then stores whole vectors
       (a compressing store to memory is slow on some CPUs). */
    static Py_ssize_t tinyllm_at_least_f32(const float* x, Py_ssize_t n, double cut,
                                           int32_t* out) {
        Py_ssize_t i = 0, count = 0;
        float c = (float)cut;
        if ((double)c < cut) c = nextafterf(c, INFINITY);   /* x >= c iff x >= cut */
    #if defined(__AVX512F__) && defined(__AVX512VL__)
        __m512 vc = _mm512_set1_ps(c);
        __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i step = _mm512_set1_epi32(16);
        for (; i + 16 <= n; i += 16) {
            __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vc, _CMP_GE_OQ);
            _mm512_storeu_si512((void*)(out + count), _mm512_maskz_compress_epi32(m, idx));
            count += __builtin_popcount((unsigned)m);
            idx = _mm512_add_epi32(idx, step);
        }
    #endif
        for (; i < n; i++) {
            out[count] = (int32_t)i;
            count += x[i] >= c;
        }
        return count;
    }
    static Py_ssize_t tinyllm_at_least_f64(const double* x, Py_ssize_t n, double cut,
                                           int32_t* out) {
        Py_ssize_t i = 0, count = 0;
    #if defined(__AVX512F__) && defined(__AVX512VL__)
        __m512d vc = _mm512_set1_pd(cut);
        __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i step = _mm256_set1_epi32(8);
        for (; i + 8 <= n; i += 8) {
            __mmask8 m = _mm512_cmp_pd_mask(_mm512_loadu_pd(x + i), vc, _CMP_GE_OQ);
            _mm256_storeu_si256((__m256i*)(out + count), _mm256_maskz_compress_epi32(m, idx));
            count += __builtin_popcount((unsigned)m);
            idx = _mm256_add_epi32(idx, step);
        }
    #endif
        for (; i < n; i++) {
            out[count] = (int32_t)i;
            count += x[i] >= cut;
        }
        return count;
    }
    /* As above for lo <= x[i] <= hi, writing at most cap indices (out holds cap + 16):
       -1 when more are found. */
    static Py_ssize_t tinyllm_between_f32(const float* x, Py_ssize_t n, double lo, double hi,
                                          int32_t* out, Py_ssize_t cap) {
        Py_ssize_t i = 0, count = 0;
        float a = (float)lo, b = (float)hi;
        if ((double)a < lo) a = nextafterf(a, INFINITY);    /* x >= a iff x >= lo */
        if ((double)b > hi) b = nextafterf(b, -INFINITY);   /* x <= b iff x <= hi */
    #if defined(__AVX512F__) && defined(__AVX512VL__)
        __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
        __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i step = _mm512_set1_epi32(16);
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i);
            __mmask16 m = _mm512_cmp_ps_mask(v, va, _CMP_GE_OQ)
                          & _mm512_cmp_ps_mask(v, vb, _CMP_LE_OQ);
            if (count > cap) return -1;
            _mm512_storeu_si512((void*)(out + count), _mm512_maskz_compress_epi32(m, idx));
            count += __builtin_popcount((unsigned)m);
            idx = _mm512_add_epi32(idx, step);
        }
    #endif
        for (; i < n; i++) {
            if (count > cap) return -1;
            out[count] = (int32_t)i;
            count += (x[i] >= a) & (x[i] <= b);
        }
        return count > cap ? -1 : count;
    }
    static Py_ssize_t tinyllm_between_f64(const double* x, Py_ssize_t n, double lo, double hi,
                                          int32_t* out, Py_ssize_t cap) {
        Py_ssize_t i = 0, count = 0;
    #if defined(__AVX512F__) && defined(__AVX512VL__)
        __m512d va = _mm512_set1_pd(lo), vb = _mm512_set1_pd(hi);
        __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i step = _mm256_set1_epi32(8);
        for (; i + 8 <= n; i += 8) {
            __m512d v = _mm512_loadu_pd(x + i);
            __mmask8 m = _mm512_cmp_pd_mask(v, va, _CMP_GE_OQ)
                         & _mm512_cmp_pd_mask(v, vb, _CMP_LE_OQ);
            if (count > cap) return -1;
            _mm256_storeu_si256((__m256i*)(out + count), _mm256_maskz_compress_epi32(m, idx));
            count += __builtin_popcount((unsigned)m);
            idx = _mm256_add_epi32(idx, step);
        }
    #endif
        for (; i < n; i++) {
            if (count > cap) return -1;
            out[count] = (int32_t)i;
            count += (x[i] >= lo) & (x[i] <= hi);
        }
        return count > cap ? -1 : count;
    }
    """
    Py_ssize_t tinyllm_at_least_f32(const float*, Py_ssize_t, double, int32_t*) noexcept nogil
    Py_ssize_t tinyllm_at_least_f64(const double*, Py_ssize_t, double, int32_t*) noexcept nogil
    Py_ssize_t tinyllm_between_f32(const float*, Py_ssize_t, double, double, int32_t*,
                                   Py_ssize_t) noexcept nogil
    Py_ssize_t tinyllm_between_f64(const double*, Py_ssize_t, double, double, int32_t*,
                                   Py_ssize_t) noexcept nogil


cdef inline Py_ssize_t indices_between(const floating* x, Py_ssize_t n, double lo, double hi,
                                       int32_t* out, Py_ssize_t cap) noexcept nogil:
    """out[0:count] = the indices of the lo <= x[i] <= hi, ascending; -1 beyond cap."""
    if floating is float:
        return tinyllm_between_f32(x, n, lo, hi, out, cap)
    else:
        return tinyllm_between_f64(x, n, lo, hi, out, cap)


cdef inline Py_ssize_t indices_at_least(const floating* x, Py_ssize_t n, double cut,
                                        int32_t* out) noexcept nogil:
    """out[0:count] = the indices of the x[i] >= cut, ascending (out holds n + 16)."""
    if floating is float:
        return tinyllm_at_least_f32(x, n, cut, out)
    else:
        return tinyllm_at_least_f64(x, n, cut, out)


# ===========================================================================
# Radix selection: the shortest prefix of an order whose measure reaches a bound
# ===========================================================================

cdef inline bint reached(int64_t measure, double bound) noexcept nogil:
    """The prefix's count or weight reaches the bound (as a correctly rounded double:
    a monotone test, so the shortest such prefix is well defined)."""
    return <double>measure >= bound


cdef inline bint before(uint64_t ka, Py_ssize_t a, uint64_t kb, Py_ssize_t b) noexcept nogil:
    """(key, index) order: a smaller key first, ties to the lower index."""
    return ka < kb or (ka == kb and a < b)


cdef void sort_few(uint64_t* keys, Py_ssize_t* idx, Py_ssize_t count) noexcept nogil:
    """Insertion sort of (key, index) pairs: for FEW of them, or for pairs nearly in order."""
    cdef Py_ssize_t i, j, ti
    cdef uint64_t tk
    for i in range(1, count):
        tk = keys[i]
        ti = idx[i]
        j = i - 1
        while j >= 0 and before(tk, ti, keys[j], idx[j]):
            keys[j + 1] = keys[j]
            idx[j + 1] = idx[j]
            j -= 1
        keys[j + 1] = tk
        idx[j + 1] = ti


cdef struct Levels:
    # The linear buckets chosen so far: a token is in play if, at every level L, its key
    # value falls in bucket digit[L] of the slicing (start[L], scale[L]).
    double start[MAX_LEVELS]
    double scale[MAX_LEVELS]
    int digit[MAX_LEVELS]
    int count


cdef inline int linear_digit(double v, double start, double scale) noexcept nogil:
    """The bucket of v among N_BUCKETS equal slices of [start, start + N_BUCKETS / scale]
    (clamped at both ends): a monotone function of v, so each bucket is an interval of
    the order."""
    cdef double d = (v - start) * scale
    d = d if d > 0.0 else 0.0                        # max and min instructions, no branch
    d = d if d < N_BUCKETS - 1 else N_BUCKETS - 1
    return <int>d


cdef inline bint in_levels(double v, const Levels* lv) noexcept nogil:
    """The key value v lies in every chosen bucket."""
    cdef int L
    cdef bint inside = True
    for L in range(lv.count):
        inside = inside & (linear_digit(v, lv.start[L], lv.scale[L]) == lv.digit[L])
    return inside


cdef inline double from_sortable(uint64_t k) noexcept nogil:
    """The double whose sortable() is k."""
    return _from_bits64(k & ~(<uint64_t>1 << 63) if k >> 63 else ~k)


cdef void levels_interval(const Levels* lv, double* lo, double* hi) noexcept nogil:
    """[lo, hi]: the key values in every chosen bucket (an interval: each digit is a
    monotone function of the value), found by bisection over the doubles."""
    cdef uint64_t a = sortable(-INFINITY), b = sortable(INFINITY), mid, top, bottom
    cdef int L
    # lo: the smallest value whose digits are all >= the chosen ones
    bottom = a
    top = b
    while bottom < top:
        mid = bottom + (top - bottom) // 2
        if not_below(from_sortable(mid), lv):
            top = mid
        else:
            bottom = mid + 1
    lo[0] = from_sortable(bottom)
    # hi: the largest value whose digits are all <= the chosen ones
    bottom = a
    top = b
    while bottom < top:
        mid = bottom + (top - bottom + 1) // 2
        if not_above(from_sortable(mid), lv):
            bottom = mid
        else:
            top = mid - 1
    hi[0] = from_sortable(bottom)


cdef inline bint not_below(double v, const Levels* lv) noexcept nogil:
    """v's digits are >= the chosen ones, in order (the first that differs decides)."""
    cdef int L, d
    for L in range(lv.count):
        d = linear_digit(v, lv.start[L], lv.scale[L])
        if d != lv.digit[L]:
            return d > lv.digit[L]
    return True


cdef inline bint not_above(double v, const Levels* lv) noexcept nogil:
    cdef int L, d
    for L in range(lv.count):
        d = linear_digit(v, lv.start[L], lv.scale[L])
        if d != lv.digit[L]:
            return d < lv.digit[L]
    return True


cdef void value_range(const floating* y, const int64_t* w, Py_ssize_t n, const Row* row,
                      const Levels* lv, double* vmin, double* vmax) noexcept nogil:
    """The smallest and largest key value of the kept tokens in the chosen buckets.
    Explicit lanes, so the loop vectorises."""
    cdef double lo[LANES8]
    cdef double hi[LANES8]
    cdef Py_ssize_t b, i, j, body = n - n % LANES8
    cdef double v
    cdef bint take
    cdef Row r = row[0]
    cdef Levels levels = lv[0]
    for j in range(LANES8):
        lo[j] = INFINITY
        hi[j] = -INFINITY
    for b in range(body // LANES8):
        i = b * LANES8
        for j in range(LANES8):
            v = key_value(y, i + j, &r)
            take = (w[i + j] >= 0) & in_levels(v, &levels)
            lo[j] = v if (take & (v < lo[j])) else lo[j]
            hi[j] = v if (take & (v > hi[j])) else hi[j]
    for i in range(body, n):
        v = key_value(y, i, &r)
        take = (w[i] >= 0) & in_levels(v, &levels)
        lo[0] = v if (take & (v < lo[0])) else lo[0]
        hi[0] = v if (take & (v > hi[0])) else hi[0]
    for j in range(1, LANES8):
        lo[0] = lo[j] if lo[j] < lo[0] else lo[0]
        hi[0] = hi[j] if hi[j] > hi[0] else hi[0]
    vmin[0] = lo[0]
    vmax[0] = hi[0]


cdef Py_ssize_t select_prefix(const floating* y, const int64_t* w, Py_ssize_t n,
                              const Row* row, bint by_weight, double bound,
                              uint64_t* last_key) noexcept nogil:
    """The last token of the shortest prefix, in (key, index) order of the kept tokens,
    whose count (``by_weight`` False) or weight reaches ``bound``; its key in
    ``last_key``. The kept tokens' total must reach the bound.

    Each pass histograms the key values of the tokens in play into N_BUCKETS equal
    slices of their range (counts and weights per bucket), and keeps the bucket where
    the running measure first reaches the bound, the buckets before it going to
    ``above``. A few such levels bring a flat or peaked row down to at most FEW
    tokens, which are sorted. A bucket of one key value is a run of ties, walked in
    index order. Keys that the linear slices split badly (values spread over many
    orders of magnitude) go on by their bits, 11 at a time.
    """
    cdef Py_ssize_t counts[N_BUCKETS + SPARE]    # + SPARE: where skipped tokens go
    cdef int64_t weights[N_BUCKETS + SPARE]
    cdef uint64_t lo, hi, span, width, k
    cdef int64_t above = 0
    cdef Py_ssize_t i, b, count = row.kept, before_level, n_buckets
    cdef double vmin, vmax, v, scale
    cdef int shift
    cdef Row r = row[0]            # local copies: the compiler may keep them in registers
    cdef Levels lv
    lv.count = 0
    if r.order == BY_RANK:         # keys -y: from -max y to -min y
        vmin, vmax = -r.m, -r.ymin
    else:
        value_range(y, w, n, &r, &lv, &vmin, &vmax)
    while lv.count < MAX_LEVELS and vmin < vmax and isfinite(vmax - vmin):
        scale = N_BUCKETS / (vmax - vmin)
        memset(counts, 0, (N_BUCKETS + SPARE) * sizeof(Py_ssize_t))
        memset(weights, 0, (N_BUCKETS + SPARE) * sizeof(int64_t))
        for i in range(n):        # tokens out of play go to the spare buckets: no branch
            v = key_value(y, i, &r)
            b = (linear_digit(v, vmin, scale) if (w[i] >= 0) & in_levels(v, &lv)
                 else spare(i))
            counts[b] += 1
            weights[b] += w[i]
        b = choose_bucket(counts, weights, N_BUCKETS, by_weight, bound, &above)
        lv.start[lv.count] = vmin
        lv.scale[lv.count] = scale
        lv.digit[lv.count] = <int>b
        lv.count += 1
        before_level = count
        count = counts[b]
        if count <= CAP:          # few enough: the rest on a list of them
            return select_in_list(y, w, n, &r, &lv, count, by_weight, bound, above, last_key)
        if count * 8 > before_level:
            break                 # a poor split: go on with the exact range, by bits
        vmin, vmax = vmin + b / scale, vmin + (b + 1) / scale
    if lv.count:
        value_range(y, w, n, &r, &lv, &vmin, &vmax)
    # The tokens in play are those with keys in [lo, hi] (a bucket is an interval).
    lo = sortable(vmin)
    hi = sortable(vmax)
    lv.count = 0
    while True:
        if lo == hi or count <= FEW:
            return walk_rest(y, w, n, &r, &lv, lo, hi, by_weight, bound, above, last_key)
        span = hi - lo
        shift = 0
        while (span >> shift) >= N_BUCKETS:
            shift += 1
        n_buckets = <Py_ssize_t>(span >> shift) + 1
        memset(counts, 0, n_buckets * sizeof(Py_ssize_t))
        memset(weights, 0, n_buckets * sizeof(int64_t))
        memset(counts + N_BUCKETS, 0, SPARE * sizeof(Py_ssize_t))
        memset(weights + N_BUCKETS, 0, SPARE * sizeof(int64_t))
        for i in range(n):
            k = sortable(key_value(y, i, &r))
            b = (<Py_ssize_t>((k - lo) >> shift)
                 if (w[i] >= 0) & (k >= lo) & (k <= hi) else spare(i))
            counts[b] += 1
            weights[b] += w[i]
        b = choose_bucket(counts, weights, n_buckets, by_weight, bound, &above)
        count = counts[b]
        lo = lo + (<uint64_t>b << shift)
        width = (<uint64_t>1 << shift) - 1
        hi = lo + width if hi - lo > width else hi       # (no overflow past the old hi)


cdef inline Py_ssize_t spare(Py_ssize_t i) noexcept nogil:
    """The spare bucket of a skipped token: 16 of them in turn, so that consecutive
    increments do not wait on each other."""
    return N_BUCKETS + (i & (SPARE - 1))


cdef inline Py_ssize_t choose_bucket(const Py_ssize_t* counts, const int64_t* weights,
                                     Py_ssize_t n_buckets, bint by_weight, double bound,
                                     int64_t* above) noexcept nogil:
    """The first bucket where the running measure reaches the bound; the measure of
    the buckets before it is added to ``above``."""
    cdef Py_ssize_t b
    cdef int64_t measure
    for b in range(n_buckets):
        measure = weights[b] if by_weight else counts[b]
        if reached(above[0] + measure, bound):
            return b
        above[0] += measure
    return n_buckets - 1                           # not reached: cannot happen


cdef Py_ssize_t select_in_list(const floating* y, const int64_t* w, Py_ssize_t n,
                               const Row* row, const Levels* lv, Py_ssize_t count,
                               bint by_weight, double bound, int64_t above,
                               uint64_t* last_key) noexcept nogil:
    """select_prefix's end game, once at most CAP tokens are in play (those in the
    chosen buckets ``lv``): one pass gathers them, in index order; then the same linear
    levels on the list alone (each on its exact range, so each splits it), down to
    FEW tokens, sorted, or one key value, walked in index order."""
    cdef Py_ssize_t idx[CAP]
    cdef uint64_t keys[CAP]
    cdef Py_ssize_t counts[N_BUCKETS]
    cdef int64_t weights[N_BUCKETS]
    cdef Py_ssize_t i, j, b, kept
    cdef double v, vmin, vmax, scale
    cdef Row r = row[0]
    cdef Levels levels = lv[0]
    cdef int32_t band[CAP + 16]
    cdef double lo, hi
    count = -1
    if r.order == BY_RANK:
        # The chosen buckets are one interval of keys -y: gather by y, vectorised.
        levels_interval(&levels, &lo, &hi)
        count = indices_between(y, n, -hi, -lo, band, CAP)
        if count >= 0:
            kept = 0
            for j in range(count):
                i = band[j]
                if w[i] >= 0:
                    idx[kept] = i
                    keys[kept] = sortable(key_value(y, i, &r))
                    kept += 1
            count = kept
    if count < 0:
        count = 0
        for i in range(n):
            v = key_value(y, i, &r)
            if (w[i] >= 0) & in_levels(v, &levels):     # rarely true: predictable
                if count < CAP:
                    idx[count] = i
                    keys[count] = sortable(v)
                    count += 1
    while count > FEW:
        vmin = INFINITY
        vmax = -INFINITY
        for j in range(count):
            v = key_value(y, idx[j], &r)
            vmin = v if v < vmin else vmin
            vmax = v if v > vmax else vmax
        if not (vmin < vmax and isfinite(vmax - vmin)):
            break                 # one key value (ties), or a range too wide to slice
        scale = N_BUCKETS / (vmax - vmin)
        memset(counts, 0, N_BUCKETS * sizeof(Py_ssize_t))
        memset(weights, 0, N_BUCKETS * sizeof(int64_t))
        for j in range(count):
            b = linear_digit(key_value(y, idx[j], &r), vmin, scale)
            counts[b] += 1
            weights[b] += w[idx[j]]
        b = choose_bucket(counts, weights, N_BUCKETS, by_weight, bound, &above)
        kept = 0
        for j in range(count):    # keep bucket b's tokens, in index order
            if linear_digit(key_value(y, idx[j], &r), vmin, scale) == b:
                idx[kept] = idx[j]
                keys[kept] = keys[j]
                kept += 1
        count = kept
    # By (key, index). Past FEW tokens only when slicing cannot separate the keys:
    # ties (already in index order: the insertion sort moves nothing) or a handful of
    # values far apart.
    sort_few(keys, idx, count)
    for j in range(count):
        above += w[idx[j]] if by_weight else 1
        if reached(above, bound):
            last_key[0] = keys[j]
            return idx[j]
    last_key[0] = keys[count - 1]
    return -1                                      # not reached: cannot happen


cdef Py_ssize_t walk_rest(const floating* y, const int64_t* w, Py_ssize_t n, const Row* row,
                          const Levels* lv, uint64_t lo, uint64_t hi, bint by_weight,
                          double bound, int64_t above, uint64_t* last_key) noexcept nogil:
    """The end of select_prefix: the kept tokens in the chosen linear buckets (``lv``,
    if any) or with keys in [lo, hi] -- one key value: ties, in index order; else at
    most FEW tokens, sorted -- walked until the measure reaches the bound."""
    cdef uint64_t few_keys[FEW]
    cdef Py_ssize_t few_idx[FEW]
    cdef Py_ssize_t i, j, found = 0
    cdef uint64_t k
    cdef double v
    cdef bint member, by_levels = lv.count > 0
    cdef bint ties = not by_levels and lo == hi
    cdef Row r = row[0]
    cdef Levels levels = lv[0]
    if ties and r.order == BY_RANK:
        return walk_tied_logits(y, w, n, from_sortable(lo), by_weight, bound, above,
                                last_key)
    for i in range(n):
        v = key_value(y, i, &r)
        k = sortable(v)
        member = (w[i] >= 0) & (in_levels(v, &levels) if by_levels
                                else ((k >= lo) & (k <= hi)))
        if not member:             # (one branch, rarely taken: predictable)
            continue
        if ties:
            above += w[i] if by_weight else 1
            if reached(above, bound):
                last_key[0] = k
                return i
        elif found < FEW:
            few_keys[found] = k
            few_idx[found] = i
            found += 1
    sort_few(few_keys, few_idx, found)
    for j in range(found):
        above += w[few_idx[j]] if by_weight else 1
        if reached(above, bound):
            last_key[0] = few_keys[j]
            return few_idx[j]
    last_key[0] = hi
    return -1                                      # not reached: cannot happen


cdef Py_ssize_t walk_tied_logits(const floating* y, const int64_t* w, Py_ssize_t n,
                                 double key, bint by_weight, double bound, int64_t above,
                                 uint64_t* last_key) noexcept nogil:
    """walk_rest for a run of tied logits (-y == key): they share one weight, so the
    number j of them the measure needs is found by bisection, and the j-th of them in
    index order by counting them per block (a vectorised count) before one block is
    walked. The same token as walking them one by one."""
    cdef double value = -key
    cdef Py_ssize_t i, start, end, block, count = 0, first = -1, lo_j, hi_j, mid, j
    cdef int64_t each
    for i in range(n):                       # the first member gives the shared weight
        if w[i] >= 0 and y[i] == value:
            first = i
            break
    if first < 0:
        return -1                            # no member: cannot happen
    each = w[first] if by_weight else 1
    # The smallest j >= 1 with above + j * each reaching the bound (reached() is
    # monotone in j); the run holds enough members (the caller's total reaches it).
    lo_j = 1
    hi_j = n
    while lo_j < hi_j:
        mid = lo_j + (hi_j - lo_j) // 2
        if reached(above + <int64_t>mid * each, bound):
            hi_j = mid
        else:
            lo_j = mid + 1
    j = lo_j
    last_key[0] = sortable(key)
    start = first
    while start < n:                         # skip whole blocks of members
        end = min(start + 4096, n)
        block = 0
        for i in range(start, end):
            block += (w[i] >= 0) & (y[i] == value)
        if count + block >= j:
            break
        count += block
        start = end
    for i in range(start, n):
        if (w[i] >= 0) & (y[i] == value):
            count += 1
            if count == j:
                return i
    return -1                                # not reached: cannot happen


cdef void remove_after(const floating* y, int64_t* w, Py_ssize_t n, Row* row,
                       uint64_t last_key, Py_ssize_t last) noexcept nogil:
    """Remove every kept token after (last_key, last) in the selection's order."""
    cdef Py_ssize_t i, kept = 0
    cdef uint64_t k
    cdef Row r = row[0]
    for i in range(n):
        k = sortable(key_value(y, i, &r))
        w[i] = REMOVED if ((k > last_key) | ((k == last_key) & (i > last))) else w[i]
        kept += w[i] >= 0
    row.kept = kept
    row.total = -1


cdef void keep_prefix(const floating* y, int64_t* w, Py_ssize_t n, Row* row, int order,
                      double fraction, Py_ssize_t min_keep) noexcept nogil:
    """Keep the shortest prefix of ``order`` whose weight reaches ``fraction`` of the
    kept weight (fraction 2: skip), and at least min_keep tokens of it."""
    cdef uint64_t key_w = 0, key_c = 0
    cdef Py_ssize_t last_w = -1, last_c = -1
    cdef Py_ssize_t kept = row.kept
    row.order = order
    if min_keep >= kept:
        return
    if min_keep > 1 or fraction > 1.0:
        last_c = select_prefix(y, w, n, row, False, <double>min_keep, &key_c)
    if fraction <= 1.0:
        if row.total < 0:
            row.total = kept_weight(w, n)
        last_w = select_prefix(y, w, n, row, True, fraction * <double>row.total, &key_w)
    if last_w < 0 or (last_c >= 0 and before(key_w, last_w, key_c, last_c)):
        last_w = last_c        # the longer of the two prefixes
        key_w = key_c
    remove_after(y, w, n, row, key_w, last_w)


cdef void keep_min_tokens(const floating* y, int64_t* w, const int64_t* saved, Py_ssize_t n,
                          Row* row, Py_ssize_t min_keep) noexcept nogil:
    """A threshold filter left fewer than min_keep tokens: keep instead the min_keep
    best-ranked of the set before it (``saved``, the weights before the filter)."""
    cdef Py_ssize_t i, kept = 0
    for i in range(n):
        w[i] = saved[i]
        kept += w[i] >= 0
    row.kept = kept
    row.total = -1
    keep_prefix(y, w, n, row, BY_RANK, 2.0, min_keep)


# ===========================================================================
# The filters that are thresholds
# ===========================================================================

cdef inline double combine_lanes(const double* lanes) noexcept nogil:
    return (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
            + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7])))


cdef double n_sigma_threshold(const floating* y, const int64_t* w, Py_ssize_t n,
                              const Row* row, double n_sigma) noexcept nogil:
    """-(n * sigma) of s over the kept tokens: the mean and the squared deviations
    are added in 8 lanes by index (i mod 8), a fixed order the reference repeats
    (and the compiler vectorises: a removed token adds 0)."""
    cdef double lanes[LANES8]
    cdef double d, mean
    cdef Py_ssize_t b, i, j, count = row.kept, body = n - n % LANES8
    for j in range(LANES8):
        lanes[j] = 0.0
    for b in range(body // LANES8):
        i = b * LANES8
        for j in range(LANES8):
            lanes[j] += (y[i + j] - row.m) / row.t if w[i + j] >= 0 else 0.0
    for i in range(body, n):
        lanes[i - body] += (y[i] - row.m) / row.t if w[i] >= 0 else 0.0
    mean = combine_lanes(lanes) / <double>count
    for j in range(LANES8):
        lanes[j] = 0.0
    for b in range(body // LANES8):
        i = b * LANES8
        for j in range(LANES8):
            d = (y[i + j] - row.m) / row.t - mean if w[i + j] >= 0 else 0.0
            lanes[j] = fma(d, d, lanes[j])
    for i in range(body, n):
        d = (y[i] - row.m) / row.t - mean if w[i] >= 0 else 0.0
        lanes[i - body] = fma(d, d, lanes[i - body])
    return -(n_sigma * sqrt(combine_lanes(lanes) / <double>count))


cdef Py_ssize_t keep_above(const floating* y, int64_t* w, Py_ssize_t n, const Row* row,
                           bint on_weight, double threshold) noexcept nogil:
    """Remove the kept tokens with s_i (or the weight w_i, ``on_weight``) below the
    threshold; returns how many stay."""
    cdef Py_ssize_t i, kept = 0
    cdef double v
    cdef bint stays
    for i in range(n):
        v = <double>w[i] if on_weight else (y[i] - row.m) / row.t
        stays = (w[i] >= 0) & (v >= threshold)      # no branch: vectorises
        w[i] = w[i] if stays else REMOVED
        kept += stays
    return kept


cdef void keep_threshold(const floating* y, int64_t* w, int64_t* saved, Py_ssize_t n,
                         Row* row, bint on_weight, double threshold,
                         Py_ssize_t min_keep) noexcept nogil:
    """keep_above, with at least min_keep tokens (saved: scratch for the row's weights)."""
    cdef Py_ssize_t i
    if min_keep > 1:
        for i in range(n):
            saved[i] = w[i]
    row.kept = keep_above(y, w, n, row, on_weight, threshold)
    row.total = -1
    if row.kept < min_keep:
        keep_min_tokens(y, w, saved, n, row, min_keep)


cdef void typical_terms(const floating* y, const int64_t* w, Py_ssize_t n,
                        Row* row) noexcept nogil:
    """typical-p's log Z and entropy H, from exact integer sums:
    W = sum w, A = sum round(-w_i s_i), log Z = log(W 2^-K), H = log Z + A / W."""
    cdef Py_ssize_t i
    cdef int64_t total = 0, a = 0
    for i in range(n):
        if w[i] > 0:
            total += w[i]
            a += to_fixed(-(<double>w[i] * ((y[i] - row.m) / row.t)))
    row.logz = log(<double>total / row.scale)
    row.h = row.logz + <double>a / <double>total


# ===========================================================================
# The chain
# ===========================================================================

cdef inline Py_ssize_t argmax_row(const floating* y, Py_ssize_t n) noexcept nogil:
    """The first index of the max of a checked row (sampling.pxi's vectorised pass)."""
    return greedy_once(y, n)


cdef Py_ssize_t filter_row(const floating* y, Py_ssize_t n, const SamplerOptions* opt,
                           int64_t* w, int64_t* saved) noexcept nogil:
    """w[0:n] = the integer weights of the tokens the chain keeps, REMOVED for the
    others, for a checked row y (penalties applied).

    Temperature 0 keeps the argmax alone (weight 1) and returns it. ``saved`` (n) is
    scratch for min_tokens_to_keep > 1 with top-n-sigma or min-p.
    """
    cdef Row row
    cdef Py_ssize_t i, best
    if opt.temperature == 0.0:
        best = argmax_row(y, n)
        for i in range(n):
            w[i] = REMOVED
        w[best] = 1
        return best
    row.t = opt.temperature
    row.scale = <double>(<int64_t>1 << weight_bits(n))
    row.order = BY_RANK
    mark_finite(y, n, w, &row)      # also row.m, the max, and row.kept
    if opt.top_n_sigma >= 0.0 and row.kept > 1:
        keep_threshold(y, w, saved, n, &row, False,
                       n_sigma_threshold(y, w, n, &row, opt.top_n_sigma), opt.min_keep)
    if opt.top_k > 0:
        keep_prefix(y, w, n, &row, BY_RANK, 2.0,
                    opt.top_k if opt.top_k > opt.min_keep else opt.min_keep)
    if opt.min_p > 0.0 and opt.top_p >= 1.0 and opt.min_keep == 1:
        drop_below_min_p(y, w, n, &row, opt.min_p)     # no exp for the sure losers
    fill_weights(y, n, &row, w)
    if opt.top_p < 1.0:
        keep_prefix(y, w, n, &row, BY_RANK, opt.top_p, opt.min_keep)
    if opt.min_p > 0.0:           # P_i >= min_p P_max, with P_max's weight 2^K
        keep_threshold(y, w, saved, n, &row, True, opt.min_p * row.scale, opt.min_keep)
    if opt.typical_p < 1.0 and row.kept > 1:
        typical_terms(y, w, n, &row)
        keep_prefix(y, w, n, &row, BY_TYPICALITY, opt.typical_p, opt.min_keep)
    return 0


cdef void drop_below_min_p(const floating* y, int64_t* w, Py_ssize_t n, Row* row,
                           double min_p) noexcept nogil:
    """Before the weights: remove the tokens that min-p surely removes, by their logit
    alone, so that only the others need an exp. Token i passes min-p only if
    round(e_i 2^K) >= min_p 2^K, so only if e_i >= min_p - 2^-(K+1), and e_i is within
    an ulp of exp(s_i): below log(min_p - 2^-(K+1)), less a margin for the rounding
    of log and exp, it cannot. (Only when nothing between here and min-p needs the
    weights of the tokens it removes: top-p off, min_tokens_to_keep 1.)"""
    cdef double floor = min_p - 0.5 / row.scale
    cdef double cut
    cdef Py_ssize_t i, kept = 0
    if floor <= 0.0:
        return
    cut = log(floor)
    cut -= 1e-12 * (1.0 - cut)
    for i in range(n):
        w[i] = w[i] if (y[i] - row.m) / row.t >= cut else REMOVED
        kept += w[i] >= 0
    row.kept = kept


# ===========================================================================
# One draw with a filter that keeps few tokens (top-k alone, min-p alone): the
# tokens that may be kept are gathered first (a compare-and-compress pass, the
# AVX-512 build compresses 16 floats per instruction), and only they get an exp.
# The same kept set, weights and draw as the chain above and the draw of
# sampling.pxi (the first kept token, in index order, whose running weight exceeds
# u * W): the entry points use these for one row, one draw.
# ===========================================================================

cdef Py_ssize_t draw_from_few(const floating* x, const int32_t* kept, Py_ssize_t count,
                              double m, double t, double scale, double threshold,
                              int64_t* w, double u) noexcept nogil:
    """The draw among the tokens kept[0:count] (ascending indices), each weighted
    round(filter_exp((x - m) / t) * 2^K), those below ``threshold`` dropped (min-p; 0
    keeps all): the first whose running weight exceeds u * W, else the last with a
    weight. ``w`` holds count weights (scratch)."""
    cdef Py_ssize_t j, last = -1
    cdef int64_t total = 0, running = 0
    for j in range(count):
        w[j] = to_fixed(filter_exp((x[kept[j]] - m) / t) * scale)
        w[j] = w[j] if <double>w[j] >= threshold else 0
        total += w[j]
    cdef double r = u * <double>total
    for j in range(count):
        if w[j] > 0:
            last = j
            running += w[j]
            if <double>running > r:
                return kept[j]
    return kept[last] if last >= 0 else -1


cdef inline double min_p_cut(double m, double t, double min_p, double scale) noexcept nogil:
    """The logit below which min-p surely removes a token when the max is m (as
    drop_below_min_p, with room for the rounding of (x - m) / t): -inf if none."""
    cdef double floor = min_p - 0.5 / scale, cut
    if floor <= 0.0 or not isfinite(m):
        return -INFINITY
    cut = log(floor)
    cut -= 1e-12 * (1.0 - cut)
    return (m + cut * t * (1.0 + 1e-12)) - (fabs(m) * 1e-15 + 1e-300)


cdef Py_ssize_t draw_min_p_once(const floating* x, Py_ssize_t n, double t, double min_p,
                                int32_t* kept, int64_t* w, bitgen_t* rng) noexcept nogil:
    """One token from softmax(x / t) after min-p alone (min_tokens_to_keep 1): the max,
    one pass gathering the tokens whose logit does not rule them out (as
    drop_below_min_p), their weights, the draw. ``kept`` holds n + 16, ``w`` n.
    -1, without drawing, for a NaN, +inf or no finite logit, or t outside
    [1e-30, 1e30] (the entry point's general path then says why, or draws).

    (One pass finding the max while gathering, from a cut set by a sample's max, was
    measured slower: a sample's max sits well below a Gaussian row's, so the cut
    gathers far more tokens.)"""
    cdef double m = lane_max(x, n)
    cdef double scale = <double>(<int64_t>1 << weight_bits(n))
    cdef Py_ssize_t count
    if not (isfinite(m) and 1e-30 <= t <= 1e30):
        return -1
    count = indices_at_least(x, n, min_p_cut(m, t, min_p, scale), kept)
    return draw_from_few(x, kept, count, m, t, scale, min_p * scale, w,
                         rng.next_double(rng.state))


cdef Py_ssize_t draw_top_k_once(const floating* x, Py_ssize_t n, double t, Py_ssize_t k,
                                int32_t* kept, int64_t* w, bitgen_t* rng) noexcept nogil:
    """One token from softmax(x / t) after top-k alone (k <= TOP_K_FEW, k < n / 4): a
    threshold from a sample of the row, the tokens at or above it gathered (at least
    k of them, else a lower threshold), the k best of those by (logit, index) on a
    heap, then the draw in index order. ``kept`` holds n + 16, ``w`` n. -1, without
    drawing, where the general path must decide (NaN, +inf, too few finite logits)."""
    cdef double m = lane_max(x, n)
    cdef double scale = <double>(<int64_t>1 << weight_bits(n))
    cdef double sample[SAMPLE_MAX]
    cdef int32_t best[TOP_K_FEW]
    cdef Py_ssize_t s, i, j, count = 0, rank, attempt
    cdef double cut
    if not (isfinite(m) and 1e-30 <= t <= 1e30):
        return -1
    # The sample: every (n / s)-th logit. Its rank-th largest is a threshold that, on
    # average, 2 k + 16 tokens of the row reach.
    s = min(n, <Py_ssize_t>SAMPLE_MAX)
    for i in range(s):
        sample[i] = x[(i * n) // s]
    rank = min(s, (2 * k * s) // n + 16)
    cdef Py_ssize_t size = 0
    if kth_largest(sample, s, min(s, k)) == m:
        # The sample ties with the max (a flat row): if k tokens share the max, the k
        # best are the first k of them, found without gathering the row.
        for i in range(n):
            if x[i] == m:
                best[size] = <int32_t>i
                size += 1
                if size == k:
                    return draw_from_few(x, best, k, m, t, scale, 0.0, w,
                                         rng.next_double(rng.state))
        size = 0
    # The k best of the gathered tokens, on a worst-first heap (by logit, then index);
    # fewer than k finite ones: a lower threshold.
    for attempt in range(3):
        cut = -INFINITY if rank >= s else kth_largest(sample, s, rank)
        count = indices_at_least(x, n, cut, kept)
        size = 0
        for j in range(count):
            i = kept[j]
            if x[i] == -INFINITY:
                continue
            if size < k:
                best[size] = <int32_t>i
                size += 1
                if size == k:
                    heapify_worst_first(x, best, k)
            elif outranks(x, i, best[0]):
                best[0] = <int32_t>i
                sift_worst_first(x, best, k, 0)
        if size == k or cut == -INFINITY:
            break
        rank *= 8
    if size < k:
        return -1                        # fewer than k finite logits: the general path
    sort_indices(best, k)
    return draw_from_few(x, best, k, m, t, scale, 0.0, w, rng.next_double(rng.state))


cdef inline bint outranks(const floating* x, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Token a ranks before token b: a higher logit, or the same and a lower index."""
    return x[a] > x[b] or (x[a] == x[b] and a < b)


cdef void sift_worst_first(const floating* x, int32_t* heap, Py_ssize_t size,
                           Py_ssize_t pos) noexcept nogil:
    cdef int32_t item = heap[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and outranks(x, heap[child], heap[child + 1]):
            child += 1
        if not outranks(x, item, heap[child]):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


cdef void heapify_worst_first(const floating* x, int32_t* heap, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t pos
    for pos in range(size // 2 - 1, -1, -1):
        sift_worst_first(x, heap, size, pos)


cdef void sort_indices(int32_t* a, Py_ssize_t n) noexcept nogil:
    """Ascending (insertion sort: n <= TOP_K_FEW)."""
    cdef Py_ssize_t i, j
    cdef int32_t v
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


cdef double kth_largest(double* a, Py_ssize_t n, Py_ssize_t rank) noexcept nogil:
    """The rank-th largest of a[0:n] (rank 1: the max; -inf sorts last), by
    quickselect in place."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, target = rank - 1
    cdef double pivot, tmp
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                tmp = a[i]
                a[i] = a[j]
                a[j] = tmp
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return a[target]
