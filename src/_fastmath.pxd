# READY: fast_exp, fast_expf, fast_expf_sum (and the *_nonpos variants for x <= 0): stable signatures.
# cython: language_level=3
"""A branch-free exp that gcc and clang vectorise (no libm call inside the loop).

    exp(x) = 2^n * exp(r),   n = round(x / ln 2),   r = x - n ln 2  in [-ln2/2, ln2/2]

Cody and Waite's reduction: n is rounded with the 1.5 * 2^52 "magic number" (adding
it leaves round(x log2 e) in the low mantissa bits, so no float->int conversion,
which SSE2/AVX2 lack for 64-bit ints); ln 2 is split into a high part with trailing
zero bits (n * LN2_HI is exact) and a low correction. exp(r) is a polynomial
1 + r + r^2 q(r) whose q is a near-minimax (Chebyshev) fit on [-ln2/2, ln2/2]:
degree 11 in double (<= 1 ulp with the final rounding), 6 in float, evaluated by
Horner's rule (one fused multiply-add per degree with -mfma). 2^n is built
from bits as 2^n1 * 2^n2 with n1 = floor(n / 2), so that subnormal results are
rounded once and correctly, and overflow still gives +inf.

Special values without branches: the input is clamped to where exp is 0 or +inf
anyway, so -inf gives exactly 0, +inf gives +inf, and NaN stays NaN (the clamps
are written ``lo if x < lo else x``: a NaN fails the comparison and passes through).
exp(0) is exactly 1.

Only inline functions: cimporting this file adds no runtime import. The caller
should keep the surrounding loop free of branches and calls too (e.g. accumulate
with several partial sums) so the compiler can vectorise it.
"""

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
