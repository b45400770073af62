"""Numerically stable softmax and log-softmax along any axis.

    softmax(x / T)_i     = exp((x_i - m) / T) / sum_j exp((x_j - m) / T),   m = max_j x_j
    log_softmax(x / T)_i = (x_i - m) / T - log(sum_j exp((x_j - m) / T))

Subtracting the max first keeps every exponent <= 0, so nothing overflows; the
sum is accumulated in double for float32 too. -inf entries are masks
(probability 0); NaN, +inf and slices without any finite entry are errors.

Layout: ``noexcept nogil`` kernels first, then the Python-facing entry points.
"""

cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, exp, isfinite, isnan, log

from _common cimport (
    FOUND_NAN,
    FOUND_POSINF,
    NO_FINITE,
    OK,
    as_float_array,
    as_typed_rows,
    checked_out,
    may_share_memory,
    new_array,
    shape_of,
)

import numpy as np
from operator import index as operator_index

cnp.import_array()


# ===========================================================================
# Kernels
# ===========================================================================

cdef int softmax_row(const floating* x, floating* out, Py_ssize_t n,
                     double temperature, bint take_log) noexcept nogil:
    """One slice: out[0:n] = softmax or log_softmax of x[0:n] / temperature.

    ``out`` may be ``x`` itself (each entry is read before it is written).
    Returns OK, or FOUND_NAN / FOUND_POSINF / NO_FINITE (``out`` is then undefined).
    """
    cdef Py_ssize_t i
    cdef double m = -INFINITY, v, z, total = 0.0, log_total
    # Pass 1: the max, checking the entries on the way.
    for i in range(n):
        v = x[i]
        if isnan(v):
            return FOUND_NAN
        if v > m:
            m = v
    if m == INFINITY:
        return FOUND_POSINF
    if m == -INFINITY:
        return NO_FINITE
    # Pass 2: shifted, scaled exponents and their sum. (x - m) <= 0: no overflow.
    if take_log:
        for i in range(n):
            total += exp((x[i] - m) / temperature)
        log_total = log(total)
        for i in range(n):
            out[i] = <floating>((x[i] - m) / temperature - log_total)
        return OK
    for i in range(n):
        z = exp((x[i] - m) / temperature)
        out[i] = <floating>z
        total += z
    # Pass 3: normalise.
    z = 1.0 / total
    for i in range(n):
        out[i] = <floating>(out[i] * z)
    return OK


cdef int softmax_rows(const floating[:, ::1] x, floating[:, ::1] out, double temperature,
                      bint take_log, Py_ssize_t* bad_row) noexcept nogil:
    """Apply softmax_row to every row; on failure report the row in ``bad_row``."""
    cdef Py_ssize_t r
    cdef int status
    for r in range(x.shape[0]):
        status = softmax_row(&x[r, 0], &out[r, 0], x.shape[1], temperature, take_log)
        if status != OK:
            bad_row[0] = r
            return status
    return OK


# ===========================================================================
# Entry points
# ===========================================================================

cdef double checked_temperature(object temperature, str func) except -1.0:
    """A finite temperature > 0, as a double."""
    if isinstance(temperature, (str, bytes)):  # float("2") would accept them
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}") from None
    if not (t > 0.0 and isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and > 0, got {temperature!r}")
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
    if not (last_axis and cnp.PyArray_IS_C_CONTIGUOUS(result) and cnp.PyArray_ISALIGNED(result)) or (
        out is not None and may_share_memory(result, rows)
        and not _same_layout(result.reshape(-1, n), rows)
    ):
        target = new_array(_moved_shape(shape, ax), typenum)
    target_rows = target.reshape(-1, n)

    cdef const float[:, ::1] x32
    cdef float[:, ::1] o32
    cdef const double[:, ::1] x64
    cdef double[:, ::1] o64
    cdef Py_ssize_t bad_row = 0
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        x32, o32 = rows, target_rows
        with nogil:
            status = softmax_rows(x32, o32, t, take_log, &bad_row)
    else:
        x64, o64 = rows, target_rows
        with nogil:
            status = softmax_rows(x64, o64, t, take_log, &bad_row)
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
        Divides the logits first: < 1 sharpens, > 1 flattens. Finite and > 0.
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
        axis or temperature, or an unsuitable ``out``.
    TypeError
        A complex, object or otherwise non-real dtype.
    """
    return _softmax_along(x, axis, temperature, out, False, "softmax")


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
        Divides the logits first. Finite and > 0.
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
    return _softmax_along(x, axis, temperature, out, True, "log_softmax")
