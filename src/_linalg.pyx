"""Dot product and projection: the model's f1 and f2.

Layout: ``noexcept nogil`` kernels on typed memoryviews first (they trust their
inputs), then the Python-facing entry points that validate, coerce and call them.
"""

cimport numpy as cnp
from cython cimport floating
from libc.math cimport isfinite

from _common cimport (
    as_float_array,
    as_typed_rows,
    checked_out,
    common_typenum,
    describe_bad_value,
    may_share_memory,
    new_array,
    shape_of,
)

cnp.import_array()

cdef extern from *:
    """
    #ifndef TINYLLM_DEBUG_CHECKS
    #define TINYLLM_DEBUG_CHECKS 0
    #endif
    """
    int TINYLLM_DEBUG_CHECKS

#: True in a build made with TINYLLM_DEBUG_CHECKS=1 (bounds and wraparound checks on).
DEBUG_CHECKS = bool(TINYLLM_DEBUG_CHECKS)


# ===========================================================================
# Kernels
# ===========================================================================

cdef double dot_kernel(const floating[::1] x, const floating[::1] w) noexcept nogil:
    """sum_i x[i] * w[i], accumulated in double with four partial sums."""
    cdef Py_ssize_t n = x.shape[0], i
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    # Four independent sums let the CPU overlap the additions (and vectorise).
    for i in range(0, n - n % 4, 4):
        s0 += <double>x[i] * w[i]
        s1 += <double>x[i + 1] * w[i + 1]
        s2 += <double>x[i + 2] * w[i + 2]
        s3 += <double>x[i + 3] * w[i + 3]
    for i in range(n - n % 4, n):
        s0 += <double>x[i] * w[i]
    return (s0 + s1) + (s2 + s3)


cdef void project_kernel(const floating[::1] h, const floating[:, ::1] W,
                         floating[::1] out) noexcept nogil:
    """out (V,) = h (k,) @ W (k, V), one row of W at a time (contiguous, vectorisable)."""
    cdef Py_ssize_t k = W.shape[0], V = W.shape[1], i, j
    cdef floating hi
    for j in range(V):
        out[j] = 0
    for i in range(k):
        hi = h[i]
        # No shortcut for hi == 0: NaN/inf in W must still reach the result.
        for j in range(V):
            out[j] += hi * W[i, j]


cdef void project_batch_kernel(const floating[:, ::1] H, const floating[:, ::1] W,
                               floating[:, ::1] out) noexcept nogil:
    """out (B, V) = H (B, k) @ W (k, V), row by row."""
    cdef Py_ssize_t b
    for b in range(H.shape[0]):
        project_kernel(H[b], W, out[b])


cdef bint all_finite(const floating[:, ::1] a) noexcept nogil:
    """True when no entry of ``a`` is NaN or infinite."""
    cdef Py_ssize_t i, j
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if not isfinite(a[i, j]):
                return False
    return True


# ===========================================================================
# Entry points
# ===========================================================================

cdef str _nonfinite_message(str func, list named_arrays):
    """Explain a non-finite result: a bad input value, or else an overflow."""
    for name, arr in named_arrays:
        found = describe_bad_value(arr, name)
        if found:
            return f"{func}: {found}; inputs must be finite"
    return f"{func}: the result overflows the float range (inputs are finite but too large)"


def dot(x, w):
    """Dot product of two 1-D vectors: ``sum(x * w)``.

    This is the blog's ``f1(x) = sum(x * w_f1)``.

    Parameters
    ----------
    x, w : array_like, shape (n,)
        Real vectors of the same length. Products and sums are computed in
        double for float32 inputs too; other real dtypes become float64.

    Returns
    -------
    float
        The dot product.

    Raises
    ------
    ValueError
        Shapes differ (both are named), a vector is empty or not 1-D, an entry is
        NaN or infinite, or the result overflows.
    TypeError
        A complex, object or otherwise non-real dtype.
    """
    cdef cnp.ndarray xa = as_float_array(x, "dot: x")
    cdef cnp.ndarray wa = as_float_array(w, "dot: w")
    if xa.ndim != 1 or wa.ndim != 1 or xa.shape[0] != wa.shape[0]:
        raise ValueError(
            f"dot: shapes {shape_of(xa)} and {shape_of(wa)} are not aligned: "
            f"need two 1-D vectors of the same length"
        )
    if xa.shape[0] == 0:
        raise ValueError("dot: empty vectors (shape (0,))")
    cdef int typenum = common_typenum(xa, wa)
    xa = as_typed_rows(xa, typenum)
    wa = as_typed_rows(wa, typenum)

    cdef const float[::1] x32, w32
    cdef const double[::1] x64, w64
    cdef double result
    if typenum == cnp.NPY_FLOAT:
        x32, w32 = xa, wa
        with nogil:
            result = dot_kernel(x32, w32)
    else:
        x64, w64 = xa, wa
        with nogil:
            result = dot_kernel(x64, w64)
    if not isfinite(result):
        raise ValueError(_nonfinite_message("dot", [("x", xa), ("w", wa)]))
    return result


def project(h, W, out=None):
    """Project a vector (or a batch of vectors) through a matrix: ``h @ W``.

    This is the blog's ``f2``: one score (logit) per vocabulary token.

    Parameters
    ----------
    h : array_like, shape (k,) or (B, k)
        Input vector, or a batch of B input vectors.
    W : array_like, shape (k, V)
        Projection matrix.
    out : ndarray, shape (V,) or (B, V), optional
        Writable array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray, shape (V,) or (B, V)
        float32 when both inputs are float32, else float64; ``out`` if given.

    Raises
    ------
    ValueError
        Shapes do not align (both are named), an array is empty, an entry is NaN
        or infinite, the result overflows, or ``out`` is unsuitable.
    TypeError
        A complex, object or otherwise non-real dtype.
    """
    cdef cnp.ndarray ha = as_float_array(h, "project: h")
    cdef cnp.ndarray Wa = as_float_array(W, "project: W")
    if Wa.ndim != 2 or ha.ndim not in (1, 2) or ha.shape[ha.ndim - 1] != Wa.shape[0]:
        raise ValueError(
            f"project: shapes {shape_of(ha)} and {shape_of(Wa)} are not aligned: "
            f"need h of shape (k,) or (B, k) and W of shape (k, V)"
        )
    if ha.size == 0 or Wa.size == 0:
        raise ValueError(f"project: empty input (shapes {shape_of(ha)} and {shape_of(Wa)})")
    cdef int typenum = common_typenum(ha, Wa)
    ha = as_typed_rows(ha, typenum)
    Wa = as_typed_rows(Wa, typenum)
    cdef bint batched = ha.ndim == 2
    cdef tuple shape = (<object>ha.shape[0], <object>Wa.shape[1]) if batched else (<object>Wa.shape[1],)

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, "project")
    )
    # Compute in place when ``out`` is C-contiguous, aligned and shares no memory
    # with the inputs; otherwise into a scratch array that is copied into ``out``.
    cdef cnp.ndarray target = result
    if out is not None and (
        not (cnp.PyArray_IS_C_CONTIGUOUS(result) and cnp.PyArray_ISALIGNED(result))
        or may_share_memory(result, ha)
        or may_share_memory(result, Wa)
    ):
        target = new_array(shape, typenum)

    H2 = ha if batched else ha.reshape(1, -1)
    O2 = target if batched else target.reshape(1, -1)
    cdef const float[:, ::1] H32, W32
    cdef float[:, ::1] O32
    cdef const double[:, ::1] H64, W64
    cdef double[:, ::1] O64
    cdef bint finite
    if typenum == cnp.NPY_FLOAT:
        H32, W32, O32 = H2, Wa, O2
        with nogil:
            project_batch_kernel(H32, W32, O32)
            finite = all_finite(O32)
    else:
        H64, W64, O64 = H2, Wa, O2
        with nogil:
            project_batch_kernel(H64, W64, O64)
            finite = all_finite(O64)
    if not finite:
        raise ValueError(_nonfinite_message("project", [("h", ha), ("W", Wa)]))
    if target is not result:
        result[...] = target
    return result
