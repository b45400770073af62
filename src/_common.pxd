# cython: language_level=3
"""Shared declarations for the kernels: status codes and the array checks of the
Python-facing entry points.

Only ``inline`` functions live here, so cimporting this file creates no runtime
import: each ``.pyx`` gets its own copy of these small helpers.
"""

cimport numpy as cnp

# ---------------------------------------------------------------------------
# Status codes returned by the ``noexcept nogil`` kernels. A kernel cannot raise;
# it reports what it found and the entry point turns that into a ValueError.
# ---------------------------------------------------------------------------
cdef enum Status:
    OK = 0
    FOUND_NAN = 1        # a NaN in the input
    FOUND_POSINF = 2     # a +inf in the input (softmax: -inf is a mask, +inf is not)
    NO_FINITE = 3        # a softmax slice whose entries are all -inf
    NOT_FINITE = 4       # a non-finite result (NaN/inf in the inputs, or overflow)


# ---------------------------------------------------------------------------
# Entry-point helpers (hold the GIL; raise with the offending value named)
# ---------------------------------------------------------------------------
cdef inline bint is_kernel_ready(cnp.ndarray arr) noexcept:
    """The layout the kernels read and write directly: C-contiguous, aligned and in the
    machine's byte order (a '>f8' array on a little-endian CPU holds the same numbers
    with their bytes reversed: a kernel reading it raw gets garbage)."""
    return (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr))


cdef inline cnp.ndarray as_float_array(object x, str name):
    """``x`` as an ndarray of float32 or float64 in native byte order.

    Native float32 and float64 arrays are returned as they are (no copy, any
    strides, read-only allowed); byte-swapped ones are converted once, like a
    non-contiguous input; other real dtypes (bool, integers, float16, long
    double, either byte order) are converted to float64; anything else is a
    TypeError.
    """
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(x):
        arr = <cnp.ndarray>x
    else:
        arr = cnp.PyArray_FROM_O(x)
    cdef int typenum = cnp.PyArray_TYPE(arr)
    if typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE:
        return arr if cnp.PyArray_ISNOTSWAPPED(arr) else cnp.PyArray_Cast(arr, typenum)
    if arr.dtype.kind in "biuf":
        return cnp.PyArray_Cast(arr, cnp.NPY_DOUBLE)
    raise TypeError(
        f"{name} must hold real numbers (float32, float64, ints or bools), "
        f"got dtype {arr.dtype}"
    )


cdef inline int common_typenum(cnp.ndarray a, cnp.ndarray b):
    """float32 only when both are float32, else float64 (NumPy's promotion)."""
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT and cnp.PyArray_TYPE(b) == cnp.NPY_FLOAT:
        return cnp.NPY_FLOAT
    return cnp.NPY_DOUBLE


cdef inline cnp.ndarray as_typed_rows(cnp.ndarray arr, int typenum):
    """``arr`` cast to ``typenum``, kernel-ready (copied only when needed).

    The kernels take ``[::1]`` / ``[:, ::1]`` memoryviews, which need the whole
    array C-contiguous: a contiguous last axis is not enough (``x[::2]`` of a 2-D
    ``x`` has contiguous rows but is rejected by Cython).
    """
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr):
        arr = cnp.PyArray_Cast(arr, typenum)      # a native, C-ordered copy
    if not is_kernel_ready(arr):
        arr = cnp.PyArray_NewCopy(arr, cnp.NPY_CORDER)
    return arr


cdef inline tuple shape_of(cnp.ndarray a):
    """``a.shape`` as a Python tuple (on a typed ndarray ``.shape`` is a C pointer)."""
    return (<object>a).shape


cdef inline cnp.ndarray checked_out(object out, tuple shape, int typenum, str func):
    """Validate a user-given ``out`` array: an ndarray of the result's dtype (TypeError
    otherwise, as NumPy's ``out=``), writable and of the result's shape (ValueError).

    Any layout and byte order is accepted: the callers compute into a scratch array
    and copy into ``out`` when it is not kernel-ready (:func:`is_kernel_ready`).
    """
    if not cnp.PyArray_Check(out):
        raise TypeError(f"{func}: out must be a NumPy array, got {type(out).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>out
    if cnp.PyArray_TYPE(arr) != typenum:
        expected = cnp.PyArray_DescrFromType(typenum)
        raise TypeError(f"{func}: out has dtype {arr.dtype}, expected {expected}")
    if shape_of(arr) != shape:
        raise ValueError(f"{func}: out has shape {shape_of(arr)}, expected {shape}")
    if not arr.flags.writeable:
        raise ValueError(f"{func}: out is read-only")
    return arr


cdef inline cnp.ndarray new_array(tuple shape, int typenum):
    import numpy as np
    return np.empty(shape, dtype=cnp.PyArray_DescrFromType(typenum))


cdef inline bint may_share_memory(cnp.ndarray a, cnp.ndarray b):
    import numpy as np
    return np.may_share_memory(a, b)


cdef inline str describe_bad_value(cnp.ndarray arr, str name):
    """Name the first non-finite entry of ``arr`` (for error messages), or ''."""
    import numpy as np
    bad = np.argwhere(~np.isfinite(arr))
    if bad.shape[0] == 0:
        return ""
    first = tuple(bad[0].tolist())
    index = first[0] if len(first) == 1 else first
    return f"{name}[{index}] is {arr[first]}"
