"""Numerically stable softmax and log-softmax along any axis.

    softmax(x / T)_i     = exp((x_i - m) / T) / sum_j exp((x_j - m) / T),   m = max_j x_j
    log_softmax(x / T)_i = (x_i - m) / T - log(sum_j exp((x_j - m) / T))

The entry points validate (``_checks.pxd``), move the axis last, and call the
``softmax_rows`` kernel (``src/kernels/softmax.pxi``, where the algorithm is described)
through the table of the instruction set in use: a fast path for the common case of
a contiguous 1-D or 2-D array along its last axis, straight to the kernel through the
NumPy C-API, and the general path for everything else (which raises every error).
Temperature 0 is the greedy limit: probability 1 on the argmax (its lowest index).
"""

cimport numpy as cnp
from cython cimport floating
from libc.math cimport isfinite

from _checks cimport (
    as_float_array,
    as_typed_rows,
    checked_axis,
    checked_out,
    checked_temperature,
    is_kernel_ready,
    may_share_memory,
    new_array,
    shape_of,
)
from _defs cimport FOUND_NAN, FOUND_POSINF, GIL_FREE_MIN, OK
from _kernel_table cimport Kernels, active_table, exp_array, softmax_rows

import numpy as np

cnp.import_array()

cdef const Kernels** KERNELS = active_table()


# ===========================================================================
# Entry points
# ===========================================================================

cdef int run_rows(const floating* x, floating* out, Py_ssize_t rows, Py_ssize_t n,
                  double t, bint take_log, Py_ssize_t* bad_row) noexcept:
    """The softmax_rows kernel, without the GIL when the work is large enough to pay
    for it. Returns its status (OK, or why a row has no distribution)."""
    cdef const Kernels* k = KERNELS[0]
    if rows * n < GIL_FREE_MIN:
        return softmax_rows(k, x, out, rows, n, t, take_log, bad_row)
    with nogil:
        return softmax_rows(k, x, out, rows, n, t, take_log, bad_row)


cdef tuple moved_shape(tuple shape, Py_ssize_t ax):
    return shape[:ax] + shape[ax + 1:] + (shape[ax],)


cdef bint same_layout(cnp.ndarray a, cnp.ndarray b):
    """Same memory, same element order: the kernel may then write over its input."""
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
            and (<object>a).shape == (<object>b).shape
            and (<object>a).strides == (<object>b).strides)


cdef str status_message(str func, int status, cnp.ndarray xa, Py_ssize_t ax, Py_ssize_t bad_row):
    where = "" if xa.ndim == 1 else f" (slice {bad_row} along axis {ax})"
    if status == FOUND_NAN:
        return f"{func}: x contains NaN{where}"
    if status == FOUND_POSINF:
        return f"{func}: x contains +inf{where}; only -inf is allowed (as a mask)"
    return f"{func}: every entry of a slice is -inf{where}; at least one must be finite"


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


cdef object softmax_fast(object x, object axis, object temperature, object out,
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
        raise ValueError(status_message(func, status, xa, ndim - 1, bad_row))
    return result


# ---------------------------------------------------------------------------
# The general path: any real dtype, layout, ndim and axis.
# ---------------------------------------------------------------------------

cdef object softmax_along(object x, object axis, object temperature, object out,
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
    rows = as_typed_rows(xa if last_axis else np.moveaxis(xa, ax, -1), typenum).reshape(-1, n)
    cdef cnp.ndarray target = result
    if not (last_axis and is_kernel_ready(result)) or (
        out is not None and may_share_memory(result, rows)
        and not same_layout(result.reshape(-1, n), rows)
    ):
        target = new_array(moved_shape(shape, ax), typenum)
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
        raise ValueError(status_message(func, status, xa, ax, bad_row))
    if target is not result:
        if last_axis:
            result[...] = target.reshape(shape)
        else:
            np.moveaxis(result, ax, -1)[...] = target.reshape(moved_shape(shape, ax))
    return result


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
    result = softmax_fast(x, axis, temperature, out, False, "softmax")
    if result is None:
        result = softmax_along(x, axis, temperature, out, False, "softmax")
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
    result = softmax_fast(x, axis, temperature, out, True, "log_softmax")
    if result is None:
        result = softmax_along(x, axis, temperature, out, True, "log_softmax")
    return result


# ===========================================================================
# A hook for the tests (not part of the API)
# ===========================================================================

def _exp(x, bint nonpos=False):
    """The kernels' exp of every entry of a 1-D float32 or float64 array, as a new array.

    float64: fast_exp (fast_exp_nonpos if ``nonpos``); float32: fast_expf
    (fast_expf_sum_nonpos(x, 0) if ``nonpos``). The ``nonpos`` ones need x <= 0.
    """
    cdef cnp.ndarray xa = np.ascontiguousarray(x)
    if xa.ndim != 1 or cnp.PyArray_TYPE(xa) not in (cnp.NPY_FLOAT, cnp.NPY_DOUBLE):
        raise ValueError("_exp: x must be a 1-D float32 or float64 array")
    cdef cnp.ndarray result = np.empty_like(xa)
    cdef const Kernels* k = KERNELS[0]
    cdef Py_ssize_t n = xa.shape[0]
    with nogil:
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            exp_array(k, <const float*>cnp.PyArray_DATA(xa), <float*>cnp.PyArray_DATA(result),
                      n, nonpos)
        else:
            exp_array(k, <const double*>cnp.PyArray_DATA(xa), <double*>cnp.PyArray_DATA(result),
                      n, nonpos)
    return result
