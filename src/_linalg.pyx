"""Dot product and projection: the model's f1 and f2.

The entry points validate and coerce their inputs (``_checks.pxd``), then call the
``dot`` and ``project`` kernels (``src/kernels/linalg.pxi``) through the table of the
instruction set in use. A fast path takes plain arrays straight to the kernel: the
blog's vectors are so short that a check or a copy would cost more than the product.
Large enough batches of ``project`` go to NumPy's BLAS instead (``np.matmul``), as
training's matrix products do: a matrix-matrix product blocked for registers and
cache beats a kernel that streams W.
"""

cimport numpy as cnp
from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from _checks cimport (
    as_float_array,
    as_typed_rows,
    checked_out,
    common_typenum,
    describe_bad_value,
    is_kernel_ready,
    may_share_memory,
    new_array,
    shape_of,
)
from _defs cimport GIL_FREE_MIN, project_scratch
from _kernel_table cimport Kernels, absmax, active_table
from _kernel_table cimport dot as dot_kernel
from _kernel_table cimport project as project_kernel

import numpy as np  # no-cython-lint (the _checks.pxd functions look np up here)

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

cdef const Kernels** KERNELS = active_table()

# Where ``project`` hands a batch to NumPy's BLAS: at least BLAS_MIN_ROWS rows and
# BLAS_MIN_WORK multiply-adds (B * k * V). The kernel streams W once per column tile
# at 15-25 GFLOP/s whatever B is; gemm reuses each loaded value of W for several rows
# of H from registers. Measured with ``python bench/project_blas.py`` (interleaved
# rounds, min) on the project's 2-core AMD EPYC (AVX-512), NumPy 2.4 on OpenBLAS
# 0.3.31 (2 threads), float32 and float64, k x V from 16 x 64 to 256 x 32 000:
# np.matmul is 1.7-2.6x faster than the kernel from B = 4 (4-5.6x at B = 64); at
# B = 2 it is 0.9-1.6x (slower on a 31 MiB float32 W), so B = 2 stays here. Below
# ~64k multiply-adds the call into NumPy (~3 us with the checks) costs more than the
# product (16 x 64 at B = 8: kernel 0.9 us, np.matmul 1.1 us before the checks).
cdef enum:
    BLAS_MIN_ROWS = 4
    BLAS_MIN_WORK = 65536

#: The switch point above, for the tests and the benchmark: (rows, multiply-adds).
BLAS_SWITCH = (BLAS_MIN_ROWS, BLAS_MIN_WORK)


# ===========================================================================
# The kernels' calls (one fused body each: the dtype is chosen once per call)
# ===========================================================================

cdef double run_dot(const floating* x, const floating* w, Py_ssize_t n) noexcept:
    """sum(x * w), without the GIL when the vectors are long enough to pay for it."""
    cdef const Kernels* k = KERNELS[0]
    if n < GIL_FREE_MIN:
        return dot_kernel(k, x, w, n)
    with nogil:
        return dot_kernel(k, x, w, n)


cdef int run_project(const floating* H, Py_ssize_t B, const floating* W, Py_ssize_t n_in,
                     Py_ssize_t n_out, floating* out) except -1:
    """out (B, n_out) = H (B, n_in) @ W (n_in, n_out); 0 if a result is not finite, else 1.

    The double accumulators live on the stack for small outputs, else on the heap.
    """
    cdef const Kernels* k = KERNELS[0]
    cdef Py_ssize_t n_acc = project_scratch(B, n_out)
    cdef double stack_acc[1024]
    cdef double* acc = &stack_acc[0]
    cdef bint finite
    if n_acc > 1024:
        acc = <double*>malloc(n_acc * sizeof(double))
        if acc == NULL:
            raise MemoryError()
    if B * n_in * n_out < GIL_FREE_MIN:
        finite = project_kernel(k, H, B, W, n_in, n_out, out, acc)
    else:
        with nogil:
            finite = project_kernel(k, H, B, W, n_in, n_out, out, acc)
    if acc != &stack_acc[0]:
        free(acc)
    return finite


cdef bint uses_blas(Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out) noexcept:
    """Whether a projection of B rows of n_in onto n_out goes to BLAS (see BLAS_SWITCH)."""
    return B >= BLAS_MIN_ROWS and B * n_in * n_out >= BLAS_MIN_WORK


cdef bint unused_rows_finite(const floating* H, Py_ssize_t B, const floating* W,
                             Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Whether every row i of W that all of H's rows multiply by zero is finite.

    A BLAS may skip the products of a zero in H (the reference BLAS does), so a NaN or
    an infinity in such a row would vanish from the result instead of showing in it.
    Usually no column of H is all zeros and this reads one entry per column.
    """
    cdef Py_ssize_t i, b
    for i in range(n_in):
        b = 0
        while b < B and H[b * n_in + i] == 0:
            b += 1
        if b == B and not isfinite(absmax(KERNELS[0], W + i * n_out, n_out)):
            return False
    return True


cdef bint project_blas(cnp.ndarray ha, cnp.ndarray Wa, cnp.ndarray target,
                       floating* like) except -1:
    """target = ha @ Wa by NumPy's BLAS; 0 if the result (or an input) is not finite.

    ``like`` (NULL) picks the fused specialisation of ``target``'s dtype.
    """
    cdef Py_ssize_t B = cnp.PyArray_DIM(ha, 0)
    cdef Py_ssize_t n_in = cnp.PyArray_DIM(Wa, 0), n_out = cnp.PyArray_DIM(Wa, 1)
    cdef const floating* H = <const floating*>cnp.PyArray_DATA(ha)
    cdef const floating* W = <const floating*>cnp.PyArray_DATA(Wa)
    cdef const floating* out = <const floating*>cnp.PyArray_DATA(target)
    cdef bint finite
    # Non-finite results are reported below, with the entry at fault, not as warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        np.matmul(ha, Wa, out=target)
    with nogil:
        finite = (isfinite(absmax(KERNELS[0], out, B * n_out))
                  and unused_rows_finite(H, B, W, n_in, n_out))
    return finite


# ===========================================================================
# Entry points
# ===========================================================================

cdef str nonfinite_message(str func, list named_arrays):
    """Explain a non-finite result: a bad input value, or else an overflow."""
    for name, arr in named_arrays:
        found = describe_bad_value(arr, name)
        if found:
            return f"{func}: {found}; inputs must be finite"
    return f"{func}: the result overflows the float range (inputs are finite but too large)"


cdef inline int plain_pair_typenum(object a, object b) noexcept:
    """NPY_FLOAT or NPY_DOUBLE when ``a`` and ``b`` are kernel-ready arrays of it, else -1."""
    if not (cnp.PyArray_Check(a) and cnp.PyArray_Check(b)):
        return -1
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if ((typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)
            and cnp.PyArray_TYPE(<cnp.ndarray>b) == typenum
            and is_kernel_ready(<cnp.ndarray>a) and is_kernel_ready(<cnp.ndarray>b)):
        return typenum
    return -1


cdef tuple coerced_dot_inputs(object x, object w):
    """The general path of ``dot``: validate, then cast to a common dtype, contiguous."""
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
    return as_typed_rows(xa, typenum), as_typed_rows(wa, typenum)


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
    cdef cnp.ndarray xa, wa
    cdef int typenum = plain_pair_typenum(x, w)
    if (typenum != -1 and cnp.PyArray_NDIM(<cnp.ndarray>x) == 1
            and cnp.PyArray_NDIM(<cnp.ndarray>w) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>x, 0) == cnp.PyArray_DIM(<cnp.ndarray>w, 0)
            and cnp.PyArray_DIM(<cnp.ndarray>x, 0) > 0):
        xa, wa = <cnp.ndarray>x, <cnp.ndarray>w       # fast path: nothing to check or copy
    else:
        xa, wa = coerced_dot_inputs(x, w)
        typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n = cnp.PyArray_DIM(xa, 0)
    cdef void* px = cnp.PyArray_DATA(xa)
    cdef void* pw = cnp.PyArray_DATA(wa)
    cdef double result
    if typenum == cnp.NPY_FLOAT:
        result = run_dot(<const float*>px, <const float*>pw, n)
    else:
        result = run_dot(<const double*>px, <const double*>pw, n)
    if not isfinite(result):
        raise ValueError(nonfinite_message("dot", [("x", xa), ("w", wa)]))
    return result


cdef int project_arrays(cnp.ndarray ha, cnp.ndarray Wa, cnp.ndarray target,
                        bint blas_allowed=True) except -1:
    """target = ha @ Wa on kernel-ready arrays of one dtype; ValueError if not finite.

    Large batches go to BLAS (see BLAS_SWITCH) unless ``blas_allowed`` is False.
    """
    cdef Py_ssize_t n_in = cnp.PyArray_DIM(Wa, 0), n_out = cnp.PyArray_DIM(Wa, 1)
    cdef Py_ssize_t B = cnp.PyArray_DIM(ha, 0) if cnp.PyArray_NDIM(ha) == 2 else 1
    cdef void* H = cnp.PyArray_DATA(ha)
    cdef void* W = cnp.PyArray_DATA(Wa)
    cdef void* out = cnp.PyArray_DATA(target)
    cdef int finite
    if blas_allowed and uses_blas(B, n_in, n_out):
        if cnp.PyArray_TYPE(Wa) == cnp.NPY_FLOAT:
            finite = project_blas(ha, Wa, target, <float*>NULL)
        else:
            finite = project_blas(ha, Wa, target, <double*>NULL)
    elif cnp.PyArray_TYPE(Wa) == cnp.NPY_FLOAT:
        finite = run_project(<const float*>H, B, <const float*>W, n_in, n_out, <float*>out)
    else:
        finite = run_project(<const double*>H, B, <const double*>W, n_in, n_out, <double*>out)
    if not finite:
        raise ValueError(nonfinite_message("project", [("h", ha), ("W", Wa)]))
    return 0


cdef project_general(h, W, out, bint blas_allowed=True):
    """The general path of ``project``: any dtype, layout or ``out``."""
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
    cdef tuple shape = shape_of(Wa)[1:]
    if batched:
        shape = shape_of(ha)[:1] + shape

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, "project")
    )
    # Compute in place when ``out`` is kernel-ready and shares no memory with the
    # inputs; otherwise into a scratch array that is copied into ``out``.
    cdef cnp.ndarray target = result
    if out is not None and (
        not is_kernel_ready(result)
        or may_share_memory(result, ha)
        or may_share_memory(result, Wa)
    ):
        target = new_array(shape, typenum)
    project_arrays(ha, Wa, target, blas_allowed)
    if target is not result:
        result[...] = target
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
        Writable array of the result's shape and dtype to write into (any layout
        or byte order).

    Returns
    -------
    ndarray, shape (V,) or (B, V)
        float32 when both inputs are float32, else float64; ``out`` if given.

    Raises
    ------
    ValueError
        Shapes do not align (both are named), an array is empty, an entry is NaN
        or infinite, the result overflows, or ``out`` has another shape or is
        read-only.
    TypeError
        A complex, object or otherwise non-real dtype; an ``out`` that is not an
        array of the result's dtype.

    Notes
    -----
    A batch of at least 4 rows and 65 536 multiply-adds (B * k * V) is computed by
    NumPy's BLAS (``np.matmul``), several times faster than tinyllm's own kernel
    there. Its rows may then differ from the single-row results
    ``project(h[b], W)`` in the last bits, and in float32 BLAS sums in float32, so
    its rounding error grows with k (the kernel's, summing blocks of 8 products into
    double, does not). Smaller batches run on the kernel: each row equals its single
    projection bit for bit. A multi-threaded BLAS waits for all its threads: when
    other work keeps the cores busy, limit it to one (``OPENBLAS_NUM_THREADS=1``
    or threadpoolctl).
    """
    cdef cnp.ndarray ha, Wa, result
    cdef cnp.npy_intp dims[2]
    cdef int typenum = plain_pair_typenum(h, W) if out is None else -1
    cdef int nd
    if (typenum != -1 and cnp.PyArray_NDIM(<cnp.ndarray>W) == 2
            and 1 <= cnp.PyArray_NDIM(<cnp.ndarray>h) <= 2
            and cnp.PyArray_SIZE(<cnp.ndarray>h) > 0 and cnp.PyArray_SIZE(<cnp.ndarray>W) > 0
            and cnp.PyArray_DIM(<cnp.ndarray>h, cnp.PyArray_NDIM(<cnp.ndarray>h) - 1)
            == cnp.PyArray_DIM(<cnp.ndarray>W, 0)):
        # Fast path: kernel-ready arrays of one dtype, no out. Nothing to check or copy.
        ha, Wa = <cnp.ndarray>h, <cnp.ndarray>W
        nd = cnp.PyArray_NDIM(ha)
        dims[0] = cnp.PyArray_DIM(ha, 0)
        dims[nd - 1] = cnp.PyArray_DIM(Wa, 1)
        result = cnp.PyArray_SimpleNew(nd, dims, typenum)
        project_arrays(ha, Wa, result)
        return result
    return project_general(h, W, out)


# ===========================================================================
# The benchmark's read floor
# ===========================================================================

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* OR every 8-byte word of words[0..n) together. Eight independent accumulators of
       16-byte vectors (gcc/clang vector extensions: SSE2 on x86-64, NEON on arm64) keep
       eight loads in flight and no dependency between them, so the loop is bound by how
       fast the memory (or the cache level the buffer fits in) delivers bytes, not by the
       OR. A compiler without vector extensions gets the same shape with scalar words. */
    #if defined(__GNUC__) || defined(__clang__)
    typedef uint64_t tinyllm_u64x2 __attribute__((vector_size(16)));
    #define TINYLLM_PROBE_LANES 2
    #else
    typedef uint64_t tinyllm_u64x2;
    #define TINYLLM_PROBE_LANES 1
    #endif
    static uint64_t tinyllm_or_words(const uint64_t* words, Py_ssize_t n) {
        const Py_ssize_t step = 8 * TINYLLM_PROBE_LANES;
        tinyllm_u64x2 a0, a1, a2, a3, a4, a5, a6, a7, v;
        Py_ssize_t i = 0, j;
        uint64_t total = 0;
        memset(&a0, 0, sizeof a0); a1 = a2 = a3 = a4 = a5 = a6 = a7 = a0;
        for (; i + step <= n; i += step) {
            const uint64_t* p = words + i;
            /* memcpy: an unaligned-safe vector load (compiled to one movdqu/ldr). */
            memcpy(&v, p + 0 * TINYLLM_PROBE_LANES, sizeof v); a0 |= v;
            memcpy(&v, p + 1 * TINYLLM_PROBE_LANES, sizeof v); a1 |= v;
            memcpy(&v, p + 2 * TINYLLM_PROBE_LANES, sizeof v); a2 |= v;
            memcpy(&v, p + 3 * TINYLLM_PROBE_LANES, sizeof v); a3 |= v;
            memcpy(&v, p + 4 * TINYLLM_PROBE_LANES, sizeof v); a4 |= v;
            memcpy(&v, p + 5 * TINYLLM_PROBE_LANES, sizeof v); a5 |= v;
            memcpy(&v, p + 6 * TINYLLM_PROBE_LANES, sizeof v); a6 |= v;
            memcpy(&v, p + 7 * TINYLLM_PROBE_LANES, sizeof v); a7 |= v;
        }
        a0 |= a1 | a2 | a3 | a4 | a5 | a6 | a7;
        for (j = 0; j < TINYLLM_PROBE_LANES; j++) {
            uint64_t lane;
            memcpy(&lane, (const char*)&a0 + j * sizeof lane, sizeof lane);
            total |= lane;
        }
        for (; i < n; i++) total |= words[i];
        return total;
    }
    """
    uint64_t tinyllm_or_words(const uint64_t* words, Py_ssize_t n) noexcept nogil


def _read_bandwidth_probe(const uint64_t[::1] words):
    """Read a buffer once, as fast as one core can: the benchmark's read floor.

    ``tinyllm bench`` times this on a buffer of W2's size to say how close generation
    comes to the memory (or cache) bandwidth for that size: a projection that reads W2
    once per token cannot beat it. The loop ORs the buffer's 8-byte words together in
    eight independent 16-byte accumulators, without the GIL, so it is bound by the
    loads alone; the result is returned so that no compiler can drop the reads.

    Parameters
    ----------
    words : numpy.ndarray of uint64, shape (n,), C-contiguous
        The buffer (read-only arrays are fine); n may be 0.

    Returns
    -------
    int
        The bitwise OR of every word (0 for an empty buffer).

    Raises
    ------
    ValueError
        ``words`` is not one-dimensional, not contiguous, or not of uint64.
    TypeError
        ``words`` is not a buffer (a list, say).
    """
    cdef Py_ssize_t n = words.shape[0]
    cdef uint64_t total = 0
    if n:
        with nogil:
            total = tinyllm_or_words(&words[0], n)
    return total


def _project_kernel(h, W):
    """``project(h, W)`` on tinyllm's kernel whatever the batch size (never BLAS).

    For the benchmark of the BLAS switch (``bench/project_blas.py``) and the tests.
    """
    return project_general(h, W, None, False)
