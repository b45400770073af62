# cython: language_level=3
"""The argument checks of every entry point, written once.

The policy, everywhere in tinyllm:

- ``TypeError`` when an argument is of the wrong kind: not a number (a string, a bool,
  None where a number is needed), not an integer where one is needed, an array of a
  non-real dtype (complex, object, strings), an ``out`` that is not an array of the
  result's dtype, an ``rng`` that is not a seed or a Generator;
- ``ValueError`` when it is of the right kind with a wrong value: out of range, NaN
  or infinite, a wrong shape, an empty array, a read-only ``out``, a result that is
  not finite.

Every message starts with the entry point's name (``softmax: temperature must ...``),
which the model and the command line strip where the user did not call it by name.
Python and NumPy numbers are alike: a ``numpy.int64`` is an integer, a
``numpy.float32`` a real number, a ``numpy.bool_`` a bool.

Only ``inline`` functions: each stage module compiles the ones it uses, and cimporting
this file creates no run-time import. Their Python-level names are looked up in the
module that uses them: every stage module does ``import numpy as np``. Raising is
allowed here (these hold the GIL); the kernels behind them cannot raise.
"""

cimport numpy as cnp
from cpython.number cimport PyNumber_Index
from cpython.object cimport PyObject_TypeCheck, PyTypeObject
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.math cimport INFINITY, isfinite, isnan
from numpy.random cimport bitgen_t

from _defs cimport Penalties, SamplerOptions

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyBoolArrType_Type      # numpy.bool_

# Declares the name for the functions below; the import that binds it runs in each
# stage module (a .pxd's own imports do not run), which all import numpy as np.
import numpy as np


# ===========================================================================
# Arrays
# ===========================================================================

cdef inline bint is_kernel_ready(cnp.ndarray arr) noexcept:
    """The layout the kernels read and write directly: C-contiguous, aligned and in the
    machine's byte order (a '>f8' array on a little-endian CPU holds the same numbers
    with their bytes reversed: a kernel reading it raw gets garbage)."""
    return (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_ISNOTSWAPPED(arr))


cdef inline bint is_ready_float(object a, int ndim) noexcept:
    """``a`` is a kernel-ready float32/float64 ndarray with ``ndim`` dimensions, none of
    them empty: what an entry point's fast path takes without a check or a copy."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int typenum = cnp.PyArray_TYPE(arr)
    return ((typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)
            and cnp.PyArray_NDIM(arr) == ndim and cnp.PyArray_SIZE(arr) > 0
            and is_kernel_ready(arr))


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
    """``arr`` cast to ``typenum``, kernel-ready (copied only when needed)."""
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISNOTSWAPPED(arr):
        arr = cnp.PyArray_Cast(arr, typenum)      # a native, C-ordered copy
    if not is_kernel_ready(arr):
        arr = cnp.PyArray_NewCopy(arr, cnp.NPY_CORDER)
    return arr


cdef inline tuple shape_of(cnp.ndarray a):
    """``a.shape`` as a Python tuple (on a typed ndarray ``.shape`` is a C pointer)."""
    return (<object>a).shape


cdef inline cnp.ndarray checked_rows(object values, str name, str func):
    """``values`` as a float32/float64 array of shape (V,) or (B, V), V and B >= 1."""
    cdef cnp.ndarray arr = as_float_array(values, f"{func}: {name}")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{func}: {name} must have shape (V,) or (B, V), got shape {shape_of(arr)}"
        )
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty (shape {shape_of(arr)})")
    return arr


cdef inline object checked_positions(object values, str name, Py_ssize_t limit, str func):
    """``values`` as a C-contiguous intp array of positions in [0, limit)."""
    arr = np.asarray(values)
    if arr.size == 0:
        arr = arr.astype(np.intp)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{func}: {name} must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= limit):
        bad = arr[(arr < 0) | (arr >= limit)].flat[0]
        raise ValueError(f"{func}: {name}: position {int(bad)} is out of range for {limit} tokens")
    return np.ascontiguousarray(arr, dtype=np.intp)


cdef inline cnp.ndarray checked_out(object out, tuple shape, int typenum, str func):
    """Validate a user-given ``out`` array: an ndarray of the result's dtype (TypeError
    otherwise, as NumPy's ``out=``), writable and of the result's shape (ValueError).

    Any layout and byte order is accepted: the callers compute into a scratch array
    and copy into ``out`` when it is not kernel-ready.
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
    return np.empty(shape, dtype=cnp.PyArray_DescrFromType(typenum))


cdef inline bint may_share_memory(cnp.ndarray a, cnp.ndarray b):
    return np.may_share_memory(a, b)


cdef inline str describe_bad_value(cnp.ndarray arr, str name):
    """Name the first non-finite entry of ``arr`` (for error messages), or ''."""
    bad = np.argwhere(~np.isfinite(arr))
    if bad.shape[0] == 0:
        return ""
    first = tuple(bad[0].tolist())
    index = first[0] if len(first) == 1 else first
    return f"{name}[{index}] is {arr[first]}"


# ===========================================================================
# Numbers
# ===========================================================================

cdef inline bint is_bool(object value) noexcept:
    """A Python or a NumPy bool (``numpy.bool_`` is no subclass of bool)."""
    return isinstance(value, bool) or PyObject_TypeCheck(value, &PyBoolArrType_Type)


cdef inline double as_real(object value, str name, str func) except? -1.0:
    """A real number as a double: a Python or NumPy int or float; not a string
    (``float("2")`` would take it), not a bool."""
    if isinstance(value, (str, bytes)) or is_bool(value):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: {name} must be a real number, got {value!r}") from None


cdef inline object as_integer(object value, str name, str func):
    """An integer (Python or NumPy, not a bool) as a Python int."""
    if is_bool(value):
        raise TypeError(f"{func}: {name} must be an integer, got {value!r}")
    try:
        return PyNumber_Index(value)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an integer, got {value!r}") from None


cdef inline Py_ssize_t checked_count(object value, str name, Py_ssize_t minimum,
                                     str func) except -1:
    """An integer >= ``minimum`` that fits in a Py_ssize_t."""
    n = as_integer(value, name, func)
    if n < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}, got {n}")
    if n > PY_SSIZE_T_MAX:
        raise ValueError(f"{func}: {name} must be at most {PY_SSIZE_T_MAX}, got {n}")
    return n


cdef inline double checked_temperature(object temperature, str func) except -1.0:
    """A finite temperature >= 0, as a double (0: greedy)."""
    cdef double t = as_real(temperature, "temperature", func)
    if not (t >= 0.0 and isfinite(t)):
        raise ValueError(f"{func}: temperature must be finite and >= 0, got {temperature!r}")
    return t


cdef inline SamplerOptions checked_sampler_options(object temperature, object top_k,
                                                   object top_p, object min_p,
                                                   object typical_p, object top_n_sigma,
                                                   object min_tokens_to_keep,
                                                   str func) except *:
    """The sampling options, checked in the order they apply (the first bad one raises):
    temperature finite and >= 0; top_k None or an integer >= 1; top_p None or in (0, 1];
    min_p None or in [0, 1]; typical_p None or in (0, 1]; top_n_sigma None or finite
    and >= 0; min_tokens_to_keep an integer >= 1. None switches a filter off."""
    cdef SamplerOptions opt
    opt.temperature = checked_temperature(temperature, func)
    opt.top_k = 0
    if top_k is not None:
        k = as_integer(top_k, "top_k", func)
        if k < 1:
            raise ValueError(f"{func}: top_k must be >= 1, got {k}")
        opt.top_k = min(k, PY_SSIZE_T_MAX)
    opt.top_p = checked_fraction(top_p, "top_p", func)
    opt.min_p = 0.0
    if min_p is not None:
        opt.min_p = as_real(min_p, "min_p", func)
        if not (0.0 <= opt.min_p <= 1.0):
            raise ValueError(f"{func}: min_p must be in [0, 1], got {min_p!r}")
    opt.typical_p = checked_fraction(typical_p, "typical_p", func)
    opt.top_n_sigma = -1.0
    if top_n_sigma is not None:
        opt.top_n_sigma = as_real(top_n_sigma, "top_n_sigma", func)
        if not (opt.top_n_sigma >= 0.0 and isfinite(opt.top_n_sigma)):
            raise ValueError(f"{func}: top_n_sigma must be finite and >= 0, got {top_n_sigma!r}")
    opt.min_keep = checked_count(min_tokens_to_keep, "min_tokens_to_keep", 1, func)
    return opt


cdef inline double checked_fraction(object value, str name,
                                    str func) except -1.0:
    """None (1.0: off) or a real in (0, 1]."""
    if value is None:
        return 1.0
    cdef double v = as_real(value, name, func)
    if not (0.0 < v <= 1.0):
        raise ValueError(f"{func}: {name} must be in (0, 1], got {value!r}")
    return v


cdef inline Penalties checked_penalties(object repetition_penalty, object presence_penalty,
                                        object frequency_penalty, str func) except *:
    """The penalties (no logit bias yet): repetition > 0 and finite, presence and
    frequency finite."""
    cdef Penalties pen
    pen.bias_positions = NULL
    pen.bias_values = NULL
    pen.n_bias = 0
    pen.repetition = as_real(repetition_penalty, "repetition_penalty", func)
    if not (pen.repetition > 0.0 and isfinite(pen.repetition)):
        raise ValueError(f"{func}: repetition_penalty must be finite and > 0, "
                         f"got {repetition_penalty!r}")
    pen.presence = as_real(presence_penalty, "presence_penalty", func)
    if not isfinite(pen.presence):
        raise ValueError(f"{func}: presence_penalty must be finite, got {presence_penalty!r}")
    pen.frequency = as_real(frequency_penalty, "frequency_penalty", func)
    if not isfinite(pen.frequency):
        raise ValueError(f"{func}: frequency_penalty must be finite, got {frequency_penalty!r}")
    pen.active = pen.repetition != 1.0 or pen.presence != 0.0 or pen.frequency != 0.0
    return pen


cdef inline tuple checked_logit_bias(object logit_bias, Py_ssize_t V, str func):
    """``logit_bias`` ({position: bias}) as (positions int64, biases float64) arrays:
    positions in [0, V), biases finite or -inf (which bans the token)."""
    from collections.abc import Mapping
    if logit_bias is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if not isinstance(logit_bias, Mapping):
        raise TypeError(f"{func}: logit_bias must be a dict {{position: bias}}, "
                        f"got {type(logit_bias).__name__}")
    positions = np.empty(len(logit_bias), dtype=np.int64)
    biases = np.empty(len(logit_bias), dtype=np.float64)
    cdef Py_ssize_t i = 0
    for key, value in logit_bias.items():
        position = as_integer(key, "a logit_bias position", func)
        if not (0 <= position < V):
            raise ValueError(f"{func}: logit_bias: position {position} is out of range "
                             f"for {V} tokens")
        bias = as_real(value, f"logit_bias[{position}]", func)
        if isnan(bias) or bias == INFINITY:
            raise ValueError(f"{func}: logit_bias[{position}] is {bias}; a bias must be "
                             f"finite, or -inf to ban the token")
        positions[i] = position
        biases[i] = bias
        i += 1
    return positions, biases


cdef inline object checked_window(object history, object penalty_last_n, Py_ssize_t V,
                                  str func):
    """The last ``penalty_last_n`` positions of ``history`` (all if None, none if 0) as a
    C-contiguous int64 array, positions checked in [0, V)."""
    cdef Py_ssize_t last_n = -1
    if penalty_last_n is not None:
        last_n = checked_count(penalty_last_n, "penalty_last_n", 0, func)
    if history is None:
        return np.empty(0, dtype=np.int64)
    if isinstance(history, (str, bytes)):
        raise TypeError(f"{func}: history must be a sequence of positions, got {history!r}")
    shape = np.shape(history)
    if len(shape) != 1:
        raise ValueError(f"{func}: history must be a 1-D sequence of positions, "
                         f"got shape {shape}")
    window = checked_positions(history, "history", V, func)
    if last_n >= 0:
        window = window[window.shape[0] - min(last_n, window.shape[0]):]
    return np.ascontiguousarray(window, dtype=np.int64)


cdef inline object checked_size(object size, str func):
    """None, or the shape of the draws as a tuple of ints >= 0."""
    if size is None:
        return None
    items = size if isinstance(size, (tuple, list)) else (size,)
    shape = []
    for item in items:
        if is_bool(item):
            raise TypeError(f"{func}: size must be an int or a tuple of ints, got {size!r}")
        try:
            dim = PyNumber_Index(item)
        except TypeError:
            raise TypeError(
                f"{func}: size must be an int or a tuple of ints, got {size!r}") from None
        if dim < 0:
            raise ValueError(f"{func}: size must not be negative, got {size!r}")
        shape.append(dim)
    return tuple(shape)


cdef inline Py_ssize_t checked_axis(object axis, int ndim, str func) except -1:
    """``axis`` normalised to 0..ndim-1 (a bool is not an axis, though ``index(True)`` is 1)."""
    ax = as_integer(axis, "axis", func)
    if not -ndim <= ax < ndim:
        raise ValueError(f"{func}: axis {axis} is out of bounds for an array of dimension {ndim}")
    return ax % ndim


# ===========================================================================
# Random numbers
# ===========================================================================

cdef inline object generator_of(object rng, str func):
    """The ``rng`` argument as a Generator: None -> fresh entropy, an int >= 0 ->
    ``numpy.random.default_rng(seed)``, a Generator as it is; else TypeError."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if not is_bool(rng):
        try:
            seed = PyNumber_Index(rng)
        except TypeError:
            pass
        else:
            if seed < 0:
                raise ValueError(f"{func}: an rng seed must be >= 0, got {rng}")
            return np.random.default_rng(seed)
    raise TypeError(
        f"{func}: rng must be None, an int seed or a numpy.random.Generator, "
        f"got {type(rng).__name__}"
    )


cdef inline bitgen_t* bitgen_of(object bit_generator) except NULL:
    """The ``bitgen_t`` of a Generator's bit generator (draw under its ``lock``)."""
    return <bitgen_t*>PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")
