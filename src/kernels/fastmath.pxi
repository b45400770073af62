# kernels/fastmath.pxi -- the exp and the row reductions every other kernel uses.
#
# A branch-free exp that gcc and clang vectorise (no libm call inside the loop).
#
#     exp(x) = 2^n * exp(r),   n = round(x / ln 2),   r = x - n ln 2  in [-ln2/2, ln2/2]
#
# Cody and Waite's reduction: n is rounded with the 1.5 * 2^52 "magic number" (adding
# it leaves round(x log2 e) in the low mantissa bits, so no float->int conversion,
# which SSE2/AVX2 lack for 64-bit ints); ln 2 is split into a high part with trailing
# zero bits (n * LN2_HI is exact) and a low correction. exp(r) is a polynomial
# 1 + r + r^2 q(r) whose q is a near-minimax (Chebyshev) fit on [-ln2/2, ln2/2]:
# degree 11 in double (<= 1 ulp with the final rounding), 6 in float, evaluated by
# Horner's rule (one fused multiply-add per degree with -mfma). 2^n is built
# from bits as 2^n1 * 2^n2 with n1 = floor(n / 2), so that subnormal results are
# rounded once and correctly, and overflow still gives +inf.
#
# Special values without branches: the input is clamped to where exp is 0 or +inf
# anyway, so -inf gives exactly 0, +inf gives +inf, and NaN stays NaN (the clamps
# are written ``lo if x < lo else x``: a NaN fails the comparison and passes through).
# exp(0) is exactly 1.
#
# All inline: the caller should keep the surrounding loop free of branches and calls
# too (e.g. accumulate with several partial sums) so the compiler can vectorise it.


from cython cimport floating
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy


# ---------------------------------------------------------------------------
# Bit casts (memcpy: defined behaviour, and gcc/clang turn it into a no-op
# that vectorises)
# ---------------------------------------------------------------------------
cdef inline uint64_t _bits64(double x) noexcept nogil:
    cdef uint64_t u
    memcpy(&u, &x, sizeof(u))
    return u


cdef inline double _from_bits64(uint64_t u) noexcept nogil:
    cdef double x
    memcpy(&x, &u, sizeof(x))
    return x


cdef inline uint32_t _bits32(float x) noexcept nogil:
    cdef uint32_t u
    memcpy(&u, &x, sizeof(u))
    return u


cdef inline float _from_bits32(uint32_t u) noexcept nogil:
    cdef float x
    memcpy(&x, &u, sizeof(x))
    return x


# ---------------------------------------------------------------------------
# double
# ---------------------------------------------------------------------------
cdef inline double _exp_poly(double x, double* t, double scale) noexcept nogil:
    """scale * exp(r) for x = n ln 2 + r, and in ``t`` the magic sum whose low bits hold n.

    ``scale`` is a power of two known at compile time: the compiler folds it into
    the coefficients (exactly), which saves a multiplication per number.
    """
    t[0] = x * 1.4426950408889634 + 6755399441055744.0              # + 1.5 * 2^52
    cdef double n = t[0] - 6755399441055744.0                       # round(x log2 e)
    cdef double r = x - n * 0.6931471803691238                      # LN2_HI: n * it is exact
    r = r - n * 1.9082149292705877e-10                              # LN2_LO
    # Horner: 1 + r + r^2 (q0 + q1 r + ... + q9 r^9)
    cdef double p = 2.510134692835034e-08 * scale
    p = p * r + 2.7621338669142925e-07 * scale
    p = p * r + 2.75572664186123e-06 * scale
    p = p * r + 2.4801518641395993e-05 * scale
    p = p * r + 0.00019841269864380513 * scale
    p = p * r + 0.0013888888918939168 * scale
    p = p * r + 0.008333333333329793 * scale
    p = p * r + 0.04166666666662064 * scale
    p = p * r + 0.16666666666666669 * scale
    p = p * r + 0.5000000000000001 * scale
    p = p * r + scale
    return p * r + scale


cdef inline double fast_exp(double x) noexcept nogil:
    """exp(x) within 1 ulp (subnormal results rounded correctly); -inf -> 0, NaN -> NaN."""
    # exp(-746) < 2^-1075 rounds to 0; exp(710) overflows: clamping changes nothing
    # but keeps n in [-1077, 1025], where 2^n1 and 2^n2 below are normal numbers.
    x = -746.0 if x < -746.0 else x
    x = 710.0 if x > 710.0 else x
    cdef double t
    cdef double p = _exp_poly(x, &t, 1.0)
    # n from t's low bits (two's complement: t = 1.5 * 2^52 + n). Biased by 2048
    # so that the halving is a logical shift (SSE2/AVX2 have no 64-bit arithmetic one).
    cdef uint64_t biased = _bits64(t) - <uint64_t>0x4338000000000000 + 2048
    cdef uint64_t e1 = (biased >> 1) - 1024 + 1023                  # n1 + 1023
    cdef uint64_t e2 = biased - 2048 - (e1 - 1023) + 1023            # n - n1 + 1023
    return p * _from_bits64(e1 << 52) * _from_bits64(e2 << 52)


cdef inline double fast_exp_nonpos(double x) noexcept nogil:
    """exp(x) for x <= 0 (or -inf, NaN), within 1 ulp; cheaper than fast_exp."""
    cdef double t
    cdef double p = _exp_poly(x, &t, 5.421010862427522e-20)          # 2^-64 exp(r)
    cdef uint64_t e = _bits64(t) - <uint64_t>0x4338000000000000 + (64 + 1023)
    p = p * _from_bits64(e << 52)                                    # * 2^(n + 64)
    # Below -746 (n < -1077) the exponent field above is garbage, but exp is 0.
    return 0.0 if x < -746.0 else p


# ---------------------------------------------------------------------------
# float
# ---------------------------------------------------------------------------
cdef inline float _expf_poly(float hi, float lo, float* t, float scale) noexcept nogil:
    """scale * exp(r) for hi + lo = n ln 2 + r, and in ``t`` the magic sum whose low
    bits hold n (``scale`` as in _exp_poly)."""
    t[0] = hi * <float>1.44269504 + <float>12582912.0                # + 1.5 * 2^23
    cdef float n = t[0] - <float>12582912.0
    cdef float r = hi - n * <float>0.693145751953125                # LN2_HI: exact (Sterbenz)
    r = r - n * <float>1.428606765330187e-06 + lo                   # LN2_LO, then the correction
    cdef float p = <float>0.0013926926614021907 * scale
    p = p * r + <float>0.008363773874405574 * scale
    p = p * r + <float>0.04166655011030512 * scale
    p = p * r + <float>0.16666573381900845 * scale
    p = p * r + <float>0.5 * scale
    p = p * r + scale
    return p * r + scale


cdef inline float fast_expf_sum(float hi, float lo) noexcept nogil:
    """exp(hi + lo) in float arithmetic, lo a small correction (|lo| <= ulp(hi)).

    For an argument that float cannot hold exactly, e.g. x - m split by TwoSum into
    its rounded value and its rounding error: exp(fl(x - m)) alone would be off by
    up to |x - m| * 2^-24 relative (6e-6 at x - m = -100).
    """
    # exp(-104) < 2^-150 rounds to 0; exp(89) overflows; n stays in [-151, 129].
    hi = <float>-104.0 if hi < <float>-104.0 else hi
    hi = <float>89.0 if hi > <float>89.0 else hi
    cdef float t
    cdef float p = _expf_poly(hi, lo, &t, <float>1.0)
    cdef uint32_t biased = _bits32(t) - <uint32_t>0x4B400000 + 256
    cdef uint32_t e1 = (biased >> 1) - 128 + 127
    cdef uint32_t e2 = biased - 256 - (e1 - 127) + 127
    return p * _from_bits32(e1 << 23) * _from_bits32(e2 << 23)


cdef inline float fast_expf(float x) noexcept nogil:
    """exp(x) in float arithmetic, within 1 ulp of float; -inf -> 0, NaN -> NaN."""
    return fast_expf_sum(x, <float>-0.0)   # x + -0.0 == x for every x: folded away


cdef inline float fast_expf_sum_nonpos(float hi, float lo) noexcept nogil:
    """exp(hi + lo) for hi <= 0 (or -inf, NaN), as fast_expf_sum; lo is ignored when
    hi < -104, where the result is 0 (so a NaN or inf lo there does no harm)."""
    cdef float t
    cdef float p = _expf_poly(hi, lo, &t, <float>2.3283064365386963e-10)   # 2^-32 exp(r)
    cdef uint32_t e = _bits32(t) - <uint32_t>0x4B400000 + (32 + 127)
    p = p * _from_bits32(e << 23)                                    # * 2^(n + 32)
    # Below -104 (n < -151) the exponent field above is garbage, but exp is 0.
    return <float>0.0 if hi < <float>-104.0 else p


# ---------------------------------------------------------------------------
# Sampling weights: exp((x - m) / T) with the temperature folded into the
# reduction, and results too small to matter flushed to exactly 0
# ---------------------------------------------------------------------------
#
# The weights of sample_logits, w = exp((x - m) / T) with m = max x, in one pass
# over the row. Two differences from fast_exp(a) of a = (x - m) / T:
#
# * No product by 1 / T before the reduction: n = round((x - m) * log2(e) / T)
#   and r = ((x - m) - n * T ln 2) / T. In float, x - m is made exact by TwoSum
#   (its rounding error alone would cost |x - m| 2^-24 relative accuracy: 6e-6 at
#   x - m = -100) and n * (T ln 2)_hi is exact (Cody-Waite), so the argument's
#   only rounding is that of the final product by 1 / T, below 2^-24 * ln2/2.
#   In double the polynomial's coefficients are divided by T^j once per row.
# * Weights below e^-86 (float) or e^-707 (double) relative to the max are
#   exactly 0 instead of subnormal or tiny normal numbers. Such a token has
#   probability < 4.5e-38: no sampler observes it (a draw resolves 2^-53), and
#   subnormal results cost a microcode assist each on x86 CPUs. In exchange, 2^n
#   is added to the exponent field of exp(r) in [0.7, 1.42] by an integer add
#   (no multiplication; valid while the result is a normal number).
#
# Accuracy, relative to the exact weight: float within 2 ulp of float (the
# degree-6 polynomial of fast_expf; measured 1.4 ulp in tests/test_fastmath.py);
# double within 5.2e-11 (a degree-7 near-minimax polynomial instead of fast_exp's
# degree 11: the loop is bound by its FMAs, 9 per 4 weights instead of 14, and
# degree 8, 1.1e-12, cost 7% more), plus |x - m| / T * 2^-53 from the rounding
# of x - m. For sampling this is a total variation distance from softmax(x / T)
# below 1e-6 (float32: 2.4e-7 from the weights, up to 4.8e-7 from the block sums
# of _sampling, which add 8 float weights per partial sum) or 1e-10 (float64): a
# chi-square test would need some 1e12 resp. 1e20 draws to see it. The
# temperature must be in [1e-30, 1e30] (the *_init functions return False
# otherwise: 1 / T^7 and T ln 2 must stay normal numbers). m must be finite and
# >= x (the row's max). -inf gives exactly 0, x == m exactly 1.
# A NaN x gives an unspecified result (the exponent add can turn a NaN with a
# payload into a number): the caller must reject NaN first (_sampling's
# lane_max returns NaN for a row holding one).

cdef enum:
    SCALED_EXPF_MIN_ARG = -86      # float: (x - m) / T below this -> 0
    SCALED_EXP_MIN_ARG = -707      # double: (x - m) / T below this -> 0

cdef struct ScaledExpf:
    float m          # the shift (a float: the max of float logits)
    float k          # log2(e) / T
    float l_hi       # T ln 2 with 16 significant bits: n * l_hi exact for |n| < 2^8
    float l_lo       # T ln 2 - l_hi
    float inv_t      # 1 / T
    float lo         # SCALED_EXPF_MIN_ARG * T


cdef struct ScaledExp:
    double m, k, t_ln2, lo    # as in ScaledExpf (t_ln2 = T ln 2, rounded once)
    double c1, c2, c3, c4, c5, c6, c7       # the polynomial's coefficients / T^j


cdef inline bint scaled_expf_init(ScaledExpf* c, double m, double t) noexcept nogil:
    """The constants of scaled_expf for shift m (a float value) and temperature t."""
    if not (1e-30 <= t <= 1e30):
        return False
    cdef double t_ln2 = t * 0.6931471805599453
    c.m = <float>m
    c.k = <float>(1.4426950408889634 / t)
    c.l_hi = _from_bits32(_bits32(<float>t_ln2) & <uint32_t>0xFFFFFF00)
    c.l_lo = <float>(t_ln2 - <double>c.l_hi)
    c.inv_t = <float>(1.0 / t)
    c.lo = <float>(SCALED_EXPF_MIN_ARG * t)
    return True


cdef inline float scaled_expf(float x, ScaledExpf c) noexcept nogil:
    """exp((x - c.m) / T), 0 below e^-86 (see above); x not NaN; branch-free."""
    # TwoSum: s + err == x - m exactly (err is NaN for x = -inf: masked below).
    cdef float s = x - c.m
    cdef float x_part = s + c.m
    cdef float m_part = s - x_part
    cdef float err = (x - x_part) - (c.m + m_part)
    # Below c.lo, n < -125 and the exponent add below makes garbage bits: masked
    # by the final select, with no floating-point operation on them in between
    # (no clamp: one operation less per vector).
    cdef float t = s * c.k + <float>12582912.0                    # + 1.5 * 2^23
    cdef float n = t - <float>12582912.0                          # round(s / (T ln 2))
    cdef float r = s - n * c.l_hi                                 # exact
    r = (r - n * c.l_lo + err) * c.inv_t                          # in ~[-ln2/2, ln2/2]
    cdef float p = <float>0.0013926926614021907
    p = p * r + <float>0.008363773874405574
    p = p * r + <float>0.04166655011030512
    p = p * r + <float>0.16666573381900845
    p = p * r + <float>0.5
    p = p * r + <float>1.0
    p = p * r + <float>1.0
    # t's low bits hold n (two's complement); << 23 drops the magic number's bits.
    p = _from_bits32(_bits32(p) + (_bits32(t) << 23))             # * 2^n
    return <float>0.0 if s < c.lo else p


cdef inline bint scaled_exp_init(ScaledExp* c, double m, double t) noexcept nogil:
    """The constants of scaled_exp for shift m and temperature t."""
    if not (1e-30 <= t <= 1e30):
        return False
    cdef double it = 1.0 / t
    c.m = m
    c.k = 1.4426950408889634 * it
    c.t_ln2 = t * 0.6931471805599453
    c.lo = SCALED_EXP_MIN_ARG * t
    # exp(r) ~ 1 + r + r^2 (q0 + q1 r + ... + q5 r^5) on [-ln2/2, ln2/2] (near-minimax:
    # Lawson's reweighted least squares; within 5.2e-11 relative), in r' = r T.
    c.c1 = it
    c.c2 = 0.5000000067657581 * it * it
    c.c3 = 0.16666665869422745 * it * it * it
    c.c4 = 0.04166629505158298 * (it * it) * (it * it)
    c.c5 = 0.00833349698602735 * (it * it) * (it * it) * it
    c.c6 = 0.0013944651144344854 * (it * it * it) * (it * it * it)
    c.c7 = 0.00019790371990499036 * (it * it * it) * (it * it * it) * it
    return True


cdef inline double scaled_exp(double x, ScaledExp c) noexcept nogil:
    """exp((x - c.m) / T), 0 below e^-707 (see above); x not NaN; branch-free."""
    cdef double s = x - c.m                     # below c.lo: masked (as in scaled_expf)
    cdef double t = s * c.k + 6755399441055744.0                  # + 1.5 * 2^52
    cdef double n = t - 6755399441055744.0
    cdef double r = s - n * c.t_ln2                               # r T, r in ~[-ln2/2, ln2/2]
    cdef double p = c.c7
    p = p * r + c.c6
    p = p * r + c.c5
    p = p * r + c.c4
    p = p * r + c.c3
    p = p * r + c.c2
    p = p * r + c.c1
    p = p * r + 1.0
    p = _from_bits64(_bits64(p) + (_bits64(t) << 52))             # * 2^n
    return 0.0 if s < c.lo else p


# ---------------------------------------------------------------------------
# Row reductions (softmax, sampling and training share them)
# ---------------------------------------------------------------------------
cdef enum:
    # Independent partial results per reduction (max, sum): the compiler maps them
    # onto vector registers, and a chain of dependent adds no longer limits the loop.
    # (At 16 or fewer, gcc unrolls the lane loop completely and then fails to
    # vectorise the max.)
    LANES = 32
    # float32 partial sums take FLOAT_SUM_BLOCKS blocks of LANES numbers each before
    # they are added into double: the float additions (8 per vector) stay cheap, and
    # their rounding error below FLOAT_SUM_BLOCKS * 2^-24 relative.
    FLOAT_SUM_BLOCKS = 8


cdef inline floating row_max(const floating* x, Py_ssize_t n) noexcept nogil:
    """max_i x_i, skipping NaN (a NaN is caught later: it makes the sum NaN)."""
    cdef floating lanes[LANES]
    cdef floating m = -INFINITY
    cdef Py_ssize_t b, i, j, body = n - n % LANES
    for j in range(LANES):
        lanes[j] = -INFINITY
    for b in range(body // LANES):
        i = b * LANES
        for j in range(LANES):
            lanes[j] = x[i + j] if x[i + j] > lanes[j] else lanes[j]
    for j in range(LANES):
        m = lanes[j] if lanes[j] > m else m
    for i in range(body, n):
        m = x[i] if x[i] > m else m
    return m


cdef inline bint row_all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """No x[i] is NaN or infinite (v - v is 0 for a finite v, NaN otherwise)."""
    cdef floating z[LANES]
    cdef Py_ssize_t b, i, j, body = n - n % LANES
    if n < LANES:                 # a short row: no lanes to set up
        z[0] = 0
        for i in range(n):
            z[0] += x[i] - x[i]
        return z[0] == 0
    for j in range(LANES):
        z[j] = 0
    for b in range(body // LANES):
        i = b * LANES
        for j in range(LANES):
            z[j] += x[i + j] - x[i + j]
    for i in range(body, n):
        z[0] += x[i] - x[i]
    for j in range(1, LANES):
        z[0] += z[j]
    return z[0] == 0
