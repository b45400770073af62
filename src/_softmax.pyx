"""Numerically stable softmax and log-softmax along any axis.

    softmax(x / T)_i     = exp((x_i - m) / T) / sum_j exp((x_j - m) / T),   m = max_j x_j
    log_softmax(x / T)_i = (x_i - m) / T - log(sum_j exp((x_j - m) / T))

Subtracting the max first keeps every exponent <= 0, so nothing overflows; the
sum is accumulated in double for float32 too. -inf entries are masks
(probability 0); NaN, +inf and slices without any finite entry are errors.

Three passes over a row, each a loop gcc/clang vectorise (no call, no branch):
1. the max;
2. a_i = (x_i - m) / T, exp(a_i) and its sum; out_i = exp(a_i) (softmax) or a_i
   (log_softmax). exp is _fastmath's polynomial, not libm. float32 at T = 1 stays
   in float arithmetic (8 numbers per AVX2 instruction), with x_i - m made exact
   by TwoSum; everything else is computed in double;
3. out_i *= 1 / sum (softmax) or out_i -= log(sum) (log_softmax).
A NaN is not looked for in pass 1: exp(NaN) makes the sum NaN, checked once.

Layout: ``noexcept nogil`` kernels first, then the Python-facing entry points (a
fast path for the common case of a contiguous 1-D or 2-D array along its last
axis, which goes straight to the kernel through the NumPy C-API, and the general
path for everything else), then hooks for the tests.
"""

cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, isfinite, isnan, log

from _common cimport (
    FOUND_NAN,
    FOUND_POSINF,
    NO_FINITE,
    OK,
    as_float_array,
    as_typed_rows,
    checked_out,
    is_kernel_ready,
    may_share_memory,
    new_array,
    shape_of,
)
from _fastmath cimport (
    CHUNK,
    LANES,
    fast_exp,
    fast_exp_nonpos,
    fast_expf,
    fast_expf_sum_nonpos,
    row_max,
)

import numpy as np
from operator import index as operator_index

cnp.import_array()

cdef enum:
    # Below this many numbers the kernel runs without releasing the GIL: releasing
    # and taking it back costs more than the work.
    NOGIL_MIN = 8192


# ===========================================================================
# Kernels: one row
# ===========================================================================

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
    cdef Py_ssize_t chunk = 1 if keep_arg else CHUNK
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


# ===========================================================================
# Entry points
# ===========================================================================

cdef double checked_temperature(object temperature, str func) except -1.0:
    """A finite temperature >= 0, as a double (0: the greedy limit).

    The rule of every tinyllm function: a real number (Python or NumPy int or float),
    not a string (float("2") would accept it) and not a bool.
    """
    if isinstance(temperature, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}") from None
    if not (t >= 0.0 and isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and >= 0, got {temperature!r}")
    return t


cdef Py_ssize_t checked_axis(object axis, int ndim, str func) except -1:
    """``axis`` normalised to 0..ndim-1 (bools are not axes, though ``index(True)`` is 1)."""
    try:
        if isinstance(axis, (bool, np.bool_)):
            raise TypeError
        ax = operator_index(axis)
    except TypeError:
        raise TypeError(f"{func}: axis must be an integer, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(f"{func}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return ax % ndim


cdef int run_rows(const floating* x, floating* out, Py_ssize_t rows, Py_ssize_t n,
                  double t, bint take_log, Py_ssize_t* bad_row) noexcept:
    """softmax_rows, without the GIL when the work is large enough to pay for it."""
    if rows * n < NOGIL_MIN:
        return softmax_rows(x, out, rows, n, t, take_log, bad_row)
    with nogil:
        return softmax_rows(x, out, rows, n, t, take_log, bad_row)


# ---------------------------------------------------------------------------
# The fast path: a 1-D or 2-D float32/float64 C-contiguous array, the last axis, a
# float temperature, no ``out`` or a C-contiguous one. Everything through the C-API
# (no Python-level call, no memoryview); per call it costs a fraction of a
# microsecond, which is what softmax of the blog's 5 logits takes. Anything else
# returns None and goes the general way (which also raises every error).
# ---------------------------------------------------------------------------

cdef inline bint is_plain_array(object a, int ndim, int typenum):
    """An ndarray of exactly this type: ``ndim`` dims, ``typenum``, kernel-ready."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_NDIM(arr) == ndim and cnp.PyArray_TYPE(arr) == typenum
            and is_kernel_ready(arr))


cdef object _softmax_fast(object x, object axis, object temperature, object out,
                          bint take_log, str func):
    if not cnp.PyArray_CheckExact(x):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int ndim = cnp.PyArray_NDIM(xa)
    cdef int typenum = cnp.PyArray_TYPE(xa)
    if not ((ndim == 1 or ndim == 2) and (typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)
            and is_plain_array(xa, ndim, typenum)):
        return None
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(xa)
    cdef Py_ssize_t n = dims[ndim - 1]
    cdef Py_ssize_t rows = 1 if ndim == 1 else dims[0]
    if n == 0 or rows == 0 or type(axis) is not int or type(temperature) is not float:
        return None
    if not (axis == -1 or axis == ndim - 1):
        return None
    cdef double t = temperature
    if not (t > 0.0 and isfinite(t)):
        return None

    cdef cnp.ndarray result
    cdef char* x_start = <char*>cnp.PyArray_DATA(xa)
    cdef char* o_start
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(xa)
    if out is None:
        result = cnp.PyArray_EMPTY(ndim, dims, typenum, 0)
    else:
        if not (is_plain_array(out, ndim, typenum) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
            return None
        result = <cnp.ndarray>out
        if not cnp.PyArray_SAMESHAPE(result, xa):
            return None
        o_start = <char*>cnp.PyArray_DATA(result)
        # Writing over the input is fine element for element; a shifted overlap is not.
        if o_start != x_start and o_start < x_start + nbytes and x_start < o_start + nbytes:
            return None

    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        status = run_rows(<const float*>x_start, <float*>cnp.PyArray_DATA(result),
                          rows, n, t, take_log, &bad_row)
    else:
        status = run_rows(<const double*>x_start, <double*>cnp.PyArray_DATA(result),
                          rows, n, t, take_log, &bad_row)
    if status != OK:
        raise ValueError(_status_message(func, status, xa, ndim - 1, bad_row))
    return result


# ---------------------------------------------------------------------------
# The general path: any real dtype, layout, ndim and axis.
# ---------------------------------------------------------------------------

cdef object _softmax_along(object x, object axis, object temperature, object out,
                           bint take_log, str func):
    cdef cnp.ndarray xa = as_float_array(x, f"{func}: x")
    if xa.ndim == 0:
        raise ValueError(f"{func}: x must have at least one dimension, got a scalar")
    if xa.size == 0:
        raise ValueError(f"{func}: x is empty (shape {shape_of(xa)})")
    cdef Py_ssize_t ax = checked_axis(axis, xa.ndim, func)
    cdef double t = checked_temperature(temperature, func)
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef tuple shape = shape_of(xa)
    cdef Py_ssize_t n = shape[ax]
    cdef bint last_axis = ax == xa.ndim - 1

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, func)
    )
    # The kernel works on rows: move the axis last and view the rest as a batch.
    # Inputs are copied only when that view needs it; output is written in place
    # when ``out`` (or the fresh result) has that row layout and no partial overlap.
    rows = as_typed_rows(xa if last_axis else _moveaxis(xa, ax), typenum).reshape(-1, n)
    cdef cnp.ndarray target = result
    if not (last_axis and is_kernel_ready(result)) or (
        out is not None and may_share_memory(result, rows)
        and not _same_layout(result.reshape(-1, n), rows)
    ):
        target = new_array(_moved_shape(shape, ax), typenum)
    target_rows = target.reshape(-1, n)

    # The memoryviews check the row layout (in a checked build, also the bounds).
    cdef const float[:, ::1] x32
    cdef float[:, ::1] o32
    cdef const double[:, ::1] x64
    cdef double[:, ::1] o64
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        x32, o32 = rows, target_rows
        status = run_rows(&x32[0, 0], &o32[0, 0], x32.shape[0], n, t, take_log, &bad_row)
    else:
        x64, o64 = rows, target_rows
        status = run_rows(&x64[0, 0], &o64[0, 0], x64.shape[0], n, t, take_log, &bad_row)
    if status != OK:
        raise ValueError(_status_message(func, status, xa, ax, bad_row))
    if target is not result:
        if last_axis:
            result[...] = target.reshape(shape)
        else:
            _moveaxis(result, ax)[...] = target.reshape(_moved_shape(shape, ax))
    return result


cdef object _moveaxis(cnp.ndarray a, Py_ssize_t ax):
    import numpy as np
    return np.moveaxis(a, ax, -1)


cdef tuple _moved_shape(tuple shape, Py_ssize_t ax):
    return shape[:ax] + shape[ax + 1:] + (shape[ax],)


cdef bint _same_layout(cnp.ndarray a, cnp.ndarray b):
    """Same memory, same element order: the kernel may then write over its input."""
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
            and (<object>a).shape == (<object>b).shape
            and (<object>a).strides == (<object>b).strides)


cdef str _status_message(str func, int status, cnp.ndarray xa, Py_ssize_t ax, Py_ssize_t bad_row):
    where = "" if xa.ndim == 1 else f" (slice {bad_row} along axis {ax})"
    if status == FOUND_NAN:
        return f"{func}: x contains NaN{where}"
    if status == FOUND_POSINF:
        return f"{func}: x contains +inf{where}; only -inf is allowed (as a mask)"
    return f"{func}: every entry of a slice is -inf{where}; at least one must be finite"


def softmax(x, axis=-1, temperature=1.0, out=None):
    """Numerically stable softmax of ``x / temperature`` along ``axis``.

    Parameters
    ----------
    x : array_like
        Logits, any number of dimensions. float32 stays float32, float64 stays
        float64, other real dtypes are computed in float64. ``-inf`` entries are
        masked out (probability 0).
    axis : int, default -1
        The axis along which the probabilities sum to 1.
    temperature : float, default 1.0
        Divides the logits first: < 1 sharpens, > 1 flattens. Finite and >= 0;
        0 is the greedy limit: probability 1 for the largest logit (the lowest
        index among ties, the token ``sample_logits(temperature=0)`` picks), 0
        for every other.
    out : ndarray, optional
        Writable array of ``x``'s shape and result dtype to write into (may be
        ``x`` itself).

    Returns
    -------
    ndarray
        Probabilities of the same shape as ``x``; ``out`` if given.

    Raises
    ------
    ValueError
        Empty or 0-d input, NaN or +inf entries, a slice that is all -inf, a bad
        axis or temperature (negative, NaN or inf), or an ``out`` of another
        shape or read-only.
    TypeError
        A complex, object or otherwise non-real dtype; a temperature that is not
        a real number (a string, a bool); an ``out`` that is not an array of the
        result's dtype.
    """
    result = _softmax_fast(x, axis, temperature, out, False, "softmax")
    if result is None:
        result = _softmax_along(x, axis, temperature, out, False, "softmax")
    return result


def log_softmax(x, axis=-1, temperature=1.0, out=None):
    """Numerically stable log-softmax of ``x / temperature`` along ``axis``.

    Equal to ``log(softmax(x, axis, temperature))`` but accurate where the
    probabilities underflow. Masked (``-inf``) entries give ``-inf``.

    Parameters
    ----------
    x : array_like
        Logits, any number of dimensions (dtype rules as in :func:`softmax`).
    axis : int, default -1
        The axis along which ``exp(result)`` sums to 1.
    temperature : float, default 1.0
        Divides the logits first. Finite and >= 0 (0: log of the greedy limit,
        0 at the argmax and -inf elsewhere; see :func:`softmax`).
    out : ndarray, optional
        Writable array of ``x``'s shape and result dtype to write into.

    Returns
    -------
    ndarray
        Log-probabilities of the same shape as ``x``; ``out`` if given.

    Raises
    ------
    ValueError, TypeError
        As :func:`softmax`.
    """
    result = _softmax_fast(x, axis, temperature, out, True, "log_softmax")
    if result is None:
        result = _softmax_along(x, axis, temperature, out, True, "log_softmax")
    return result


# ===========================================================================
# Hooks for the tests and benchmarks (not part of the API)
# ===========================================================================

def _exp(x, bint nonpos=False):
    """_fastmath's exp of every entry of a 1-D float32 or float64 array, as a new array.

    float64: fast_exp (fast_exp_nonpos if ``nonpos``); float32: fast_expf
    (fast_expf_sum_nonpos(x, 0) if ``nonpos``). The ``nonpos`` ones need x <= 0.
    """
    cdef cnp.ndarray xa = as_typed_rows(np.asarray(x), cnp.PyArray_TYPE(np.asarray(x)))
    if xa.ndim != 1 or cnp.PyArray_TYPE(xa) not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE):
        raise ValueError("_exp: x must be a 1-D float32 or float64 array")
    cdef cnp.ndarray result = np.empty_like(xa)
    cdef Py_ssize_t i, n = xa.shape[0]
    cdef float* f_in = <float*>cnp.PyArray_DATA(xa)
    cdef float* f_out = <float*>cnp.PyArray_DATA(result)
    cdef double* d_in = <double*>cnp.PyArray_DATA(xa)
    cdef double* d_out = <double*>cnp.PyArray_DATA(result)
    with nogil:
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            if nonpos:
                for i in range(n):
                    f_out[i] = fast_expf_sum_nonpos(f_in[i], 0.0)
            else:
                for i in range(n):
                    f_out[i] = fast_expf(f_in[i])
        elif nonpos:
            for i in range(n):
                d_out[i] = fast_exp_nonpos(d_in[i])
        else:
            for i in range(n):
                d_out[i] = fast_exp(d_in[i])
    return result


cdef extern from *:
    """
    /* Whether the CPU (and the OS, which must save the YMM registers) runs AVX2 and FMA. */
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    static int tinyllm_cpu_has_avx2_fma(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    /* ... and AVX-512 F/DQ/VL/BW (gcc's check includes the OS saving the ZMM state). */
    static int tinyllm_cpu_has_avx512(void) {
        __builtin_cpu_init();
        return tinyllm_cpu_has_avx2_fma()
            && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    }
    #else  /* MSVC or not x86: no AVX2 build is made there */
    static int tinyllm_cpu_has_avx2_fma(void) { return 0; }
    static int tinyllm_cpu_has_avx512(void) { return 0; }
    #endif
    """
    int tinyllm_cpu_has_avx2_fma() nogil
    int tinyllm_cpu_has_avx512() nogil


def _cpu_has_avx2_fma():
    """Whether this CPU can run the AVX2+FMA builds (tinyllm/_compiled.py asks the baseline)."""
    return bool(tinyllm_cpu_has_avx2_fma())


def _cpu_has_avx512():
    """Whether this CPU can run the AVX-512 (F, DQ, VL, BW) + FMA builds."""
    return bool(tinyllm_cpu_has_avx512())
