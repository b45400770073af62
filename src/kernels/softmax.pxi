# kernels/softmax.pxi -- numerically stable softmax and log-softmax of rows.
#
#     softmax(x / T)_i     = exp((x_i - m) / T) / sum_j exp((x_j - m) / T),   m = max_j x_j
#     log_softmax(x / T)_i = (x_i - m) / T - log(sum_j exp((x_j - m) / T))
#
# Subtracting the max first keeps every exponent <= 0, so nothing overflows; the
# sum is accumulated in double for float32 too. -inf entries are masks
# (probability 0); NaN, +inf and rows without any finite entry are errors.
# Temperature 0 is the greedy limit (greedy_row).
#
# Three passes over a row, each a loop gcc/clang vectorise (no call, no branch):
# 1. the max;
# 2. a_i = (x_i - m) / T, exp(a_i) and its sum; out_i = exp(a_i) (softmax) or a_i
#    (log_softmax). exp is fastmath's polynomial, not libm. float32 at T = 1 stays
#    in float arithmetic (8 numbers per AVX2 instruction), with x_i - m made exact
#    by TwoSum; everything else is computed in double;
# 3. out_i *= 1 / sum (softmax) or out_i -= log(sum) (log_softmax).
# A NaN is not looked for in pass 1: exp(NaN) makes the sum NaN, checked once.

from cython cimport floating
from libc.math cimport INFINITY, isnan, log

from _defs cimport FOUND_NAN, FOUND_POSINF, NO_FINITE, OK

# Pass 2's arithmetic, chosen once per row and resolved at compile time: the kernels
# take a NULL pointer to one of these empty structs, whose type picks the
# specialisation. (With a run-time flag inside the loop gcc computes every variant
# and blends the results.)
cdef struct FloatShift:     # float32 input, T == 1: float arithmetic, x - m exact (TwoSum)
    char unused
cdef struct DoubleShift:    # double arithmetic, T == 1: no division
    char unused
cdef struct DoubleScaled:   # double arithmetic, divided by T
    char unused

ctypedef fused pass2:
    FloatShift
    DoubleShift
    DoubleScaled


cdef inline floating shifted_exp(floating v, double m, double t, floating* arg,
                                 pass2* how) noexcept nogil:
    """exp(a) with a = (v - m) / t; also stores a in ``arg``."""
    cdef float s, v_part, m_part, err, mf
    if floating is float and pass2 is FloatShift:
        # float32 logits leave v - m inexact in float, and its rounding error alone
        # would cost up to |v - m| * 2^-24 relative accuracy in exp: TwoSum gives the
        # rounded difference and its exact error.
        mf = <float>m
        s = v - mf
        v_part = s + mf
        m_part = s - v_part
        err = (v - v_part) - (mf + m_part)
        arg[0] = s   # == fl(s + err): err is s's own rounding error
        # For a -inf mask err is NaN (inf - inf): fast_expf_sum_nonpos ignores it there.
        return fast_expf_sum_nonpos(s, err)
    cdef double a = v - m
    if pass2 is DoubleScaled:
        a = a / t
    arg[0] = <floating>a
    return <floating>fast_exp_nonpos(a)


cdef double exp_sum(const floating* x, floating* out, Py_ssize_t n, double m, double t,
                    bint keep_arg, pass2* how) noexcept nogil:
    """sum_i exp(a_i), a_i = (x_i - m) / t, in double; out_i = a_i if keep_arg else exp(a_i)."""
    cdef floating part[LANES]   # partial sums, flushed into ``lanes`` every ``chunk`` blocks
    cdef double lanes[LANES]
    cdef double total = 0.0
    cdef Py_ssize_t b, i, j, blocks = n // LANES
    # log_softmax needs the sum to double precision: log(sum) ~ sum - 1 is the whole
    # result of a dominant entry, and 1 + 1e-12 is 1 in float.
    cdef Py_ssize_t chunk = 1 if keep_arg else FLOAT_SUM_BLOCKS
    cdef floating a, e
    for j in range(LANES):
        part[j] = 0.0
        lanes[j] = 0.0
    for b in range(blocks):
        i = b * LANES
        for j in range(LANES):
            e = shifted_exp(x[i + j], m, t, &a, how)
            out[i + j] = a if keep_arg else e
            part[j] += e
        if b % chunk == chunk - 1 or b == blocks - 1:
            for j in range(LANES):
                lanes[j] += part[j]
                part[j] = 0.0
    for i in range(blocks * LANES, n):
        e = shifted_exp(x[i], m, t, &a, how)
        out[i] = a if keep_arg else e
        total += e
    for j in range(LANES):
        total += lanes[j]
    return total


cdef int bad_row_status(const floating* x, Py_ssize_t n) noexcept nogil:
    """Why a row has no finite max: NaN first (as the reference), else +inf or all -inf."""
    cdef Py_ssize_t i
    cdef floating m = -INFINITY
    for i in range(n):
        if isnan(x[i]):
            return FOUND_NAN
        m = x[i] if x[i] > m else m
    return FOUND_POSINF if m == INFINITY else NO_FINITE


cdef int greedy_row(const floating* x, floating* out, Py_ssize_t n, double m,
                    bint take_log) noexcept nogil:
    """The limit of softmax(x / T) as T -> 0, as sampling's greedy draw sees it: all
    the mass on the argmax, the lowest index among ties (so softmax, filter_logits
    and sample_logits agree at temperature 0). ``m`` is the row's finite max."""
    cdef Py_ssize_t i, best = -1
    for i in range(n):
        if isnan(x[i]):
            return FOUND_NAN
        if best < 0 and x[i] == m:
            best = i
    for i in range(n):
        out[i] = -INFINITY if take_log else 0.0
    out[best] = 0.0 if take_log else 1.0
    return OK


cdef int softmax_row(const floating* x, floating* out, Py_ssize_t n,
                     double temperature, bint take_log) noexcept nogil:
    """One slice: out[0:n] = softmax or log_softmax of x[0:n] / temperature
    (temperature 0: the greedy limit, see greedy_row).

    ``out`` may be ``x`` itself (each entry is read before it is written).
    Returns OK, or FOUND_NAN / FOUND_POSINF / NO_FINITE (``out`` is then undefined).
    """
    cdef Py_ssize_t i
    cdef double total
    cdef floating scale
    # Pass 1: the max (NaN skipped here, caught through the sum).
    cdef double m = row_max(x, n)
    if not (-INFINITY < m < INFINITY):
        return bad_row_status(x, n)
    if temperature == 0.0:
        return greedy_row(x, out, n, m, take_log)
    # Pass 2: the sum of the shifted, scaled exponents; out_i = the exponent for
    # softmax, its argument for log_softmax. (x - m) <= 0: no overflow.
    if floating is float and temperature == 1.0:
        total = exp_sum(x, out, n, m, temperature, take_log, <FloatShift*>NULL)
    elif temperature == 1.0:
        total = exp_sum(x, out, n, m, temperature, take_log, <DoubleShift*>NULL)
    else:
        total = exp_sum(x, out, n, m, temperature, take_log, <DoubleScaled*>NULL)
    if isnan(total):
        return FOUND_NAN
    # Pass 3: normalise (out only: in place is fine).
    cdef floating shift
    if take_log:
        shift = <floating>log(total)
        for i in range(n):
            out[i] = out[i] - shift
        return OK
    scale = <floating>(1.0 / total)
    for i in range(n):
        out[i] = out[i] * scale
    return OK


cdef int softmax_rows(const floating* x, floating* out, Py_ssize_t rows, Py_ssize_t n,
                      double temperature, bint take_log, Py_ssize_t* bad_row) noexcept nogil:
    """Apply softmax_row to each of ``rows`` contiguous rows of length ``n``;
    on failure report the row in ``bad_row``."""
    cdef Py_ssize_t r
    cdef int status
    for r in range(rows):
        status = softmax_row(x + r * n, out + r * n, n, temperature, take_log)
        if status != OK:
            bad_row[0] = r
            return status
    return OK


cdef void exp_array(const floating* x, floating* out, Py_ssize_t n, bint nonpos) noexcept nogil:
    """out_i = fastmath's exp of x_i (a test hook): fast_exp / fast_expf, or with
    ``nonpos`` (x <= 0 only) fast_exp_nonpos / fast_expf_sum_nonpos(x, 0)."""
    cdef Py_ssize_t i
    if floating is float:
        if nonpos:
            for i in range(n):
                out[i] = fast_expf_sum_nonpos(x[i], 0.0)
        else:
            for i in range(n):
                out[i] = fast_expf(x[i])
    elif nonpos:
        for i in range(n):
            out[i] = fast_exp_nonpos(x[i])
    else:
        for i in range(n):
            out[i] = fast_exp(x[i])
