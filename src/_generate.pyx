"""The forward pass and the generation loop, on a model's arrays.

    x (c*d,) = the context's embeddings, flattened    f1 = x @ W1 (tanh)    logits = f1 @ W2

:func:`forward` runs it once, for ``TinyLM.logits`` and ``trace``; :class:`Generation`
runs the autoregressive loop -- forward pass, filters, draw, append -- for many tokens
per nogil call. Both call the kernels of ``src/kernels/generate.pxi`` through the table
of the instruction set in use: one forward pass for everything the model computes.
"""

cimport cython
cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

from _checks cimport (
    bitgen_of,
    checked_logit_bias,
    checked_penalties,
    checked_sampler_options,
    checked_window,
    generator_of,
    is_kernel_ready,
)
from _defs cimport (
    FOUND_POSINF,
    GIL_FREE_MIN,
    NO_FINITE,
    OK,
    TINYLLM_FORMAT_BF16,
    TINYLLM_FORMAT_F16,
    TINYLLM_FORMAT_F32,
    TINYLLM_FORMAT_I8,
    TINYLLM_INT8_GROUP,
    TINYLLM_PANEL,
    TINYLLM_WIDE_PANEL,
    GenerationState,
    Weights,
    n_draw_blocks,
    project_scratch,
    tinyllm_packed,
    weights_scratch,
)
from _kernel_table cimport (
    Kernels,
    active_table,
    forward_row,
    generate_batch,
    generate_tokens,
)

from contextlib import ExitStack

import numpy as np

cnp.import_array()

cdef const Kernels** KERNELS = active_table()

cdef enum:
    LINE = 64              # bytes: each scratch buffer of a Generation starts a new line
    STACK_POSITIONS = 512  # take_tokens keeps up to this many positions on the stack
    SLICE_WORK = 1 << 21   # step work (see Generation.slice_tokens) per nogil call: ~1-5 ms


# ===========================================================================
# W2 packed in panels
# ===========================================================================

#: dtype of the values -> (format name, kernel code)
_FORMATS = {
    np.dtype(np.float32): ("float32", TINYLLM_FORMAT_F32),
    np.dtype(np.float16): ("float16", TINYLLM_FORMAT_F16),
    np.dtype(np.uint16): ("bfloat16", TINYLLM_FORMAT_BF16),
    np.dtype(np.int8): ("int8", TINYLLM_FORMAT_I8),
}


def _float_panels(columns):
    """(h, P, 64) -> (P, h * 64): each panel's rows in groups of 8 (the last one h mod 8
    rows), each group as its four 16-column blocks one after the other (packed.h)."""
    h, P = columns.shape[0], columns.shape[1]
    full = h - h % 8
    panels = columns.transpose(1, 0, 2)                            # (P, h, 64)
    groups = panels[:, :full].reshape(P, full // 8, 8, 4, 16).transpose(0, 1, 3, 2, 4)
    tail = panels[:, full:].reshape(P, h - full, 4, 16).transpose(0, 2, 1, 3)
    return np.concatenate([groups.reshape(P, full * 64), tail.reshape(P, (h - full) * 64)],
                          axis=1)


def _aligned_empty(Py_ssize_t nbytes):
    """A uint8 array of ``nbytes`` that starts on a 64-byte line."""
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + nbytes]


@cython.auto_pickle(False)     # holds a pointer into its own arrays: not picklable
cdef class PackedMatrix:
    """A weight matrix (W2 (h, V), or W1) re-laid for the kernels: panels of 64 columns
    (16 for int8), in one weight format.

    The generation loop and :func:`forward` take one in place of W2 or W1 (with
    float32 embeddings). Each panel's weights are contiguous, so a step reads the
    matrix once, as one stream, and sums 64 outputs in registers (kernels/packed.h);
    a float32 one gives the bits of the plain array.

    Parameters
    ----------
    values : ndarray, shape (h, V)
        float32 (format ``"float32"``), float16 (``"float16"``), uint16 holding the
        upper 16 bits of float32s (``"bfloat16"``) or int8 in [-127, 127]
        (``"int8"``, with ``scales``). Any layout or byte order (copied).
    scales : ndarray, shape (V,), optional
        int8 only: finite float32 scales > 0; column j means ``values[:, j] * scales[j]``.

    Attributes
    ----------
    format : str
    shape : tuple of int
        (h, V)
    nbytes : int
        Bytes of the packed weights (with their scales).
    """

    cdef tinyllm_packed packed
    cdef readonly str format
    cdef readonly tuple shape
    cdef object panels, scales, column_sums    # the arrays behind the pointers

    def __init__(self, values, scales=None):
        values = np.asarray(values)
        if values.dtype.newbyteorder("=") not in _FORMATS or values.ndim != 2 or values.size == 0:
            raise TypeError(f"PackedMatrix: values must be a non-empty 2-D float32, float16, "
                            f"uint16 (bfloat16) or int8 array, got {values.dtype} with shape "
                            f"{values.shape}")
        values = values.astype(values.dtype.newbyteorder("="), copy=False)
        self.format, self.packed.format = _FORMATS[values.dtype]
        cdef Py_ssize_t h = values.shape[0], V = values.shape[1]
        cdef Py_ssize_t width = TINYLLM_PANEL if values.dtype == np.int8 else TINYLLM_WIDE_PANEL
        cdef Py_ssize_t P = (V + width - 1) // width
        self.shape = (h, V)
        self.packed.k, self.packed.n, self.packed.n_panels = h, V, P
        self.packed.k_groups = (h + TINYLLM_INT8_GROUP - 1) // TINYLLM_INT8_GROUP
        if self.format == "int8":
            self.pack_int8(values, scales)
        else:
            if scales is not None:
                raise ValueError(f"PackedMatrix: scales are for int8 values, not {self.format}")
            if self.format != "bfloat16" and not np.isfinite(values).all():
                raise ValueError("PackedMatrix: values must be finite")
            if self.format == "bfloat16" and ((values & 0x7F80) == 0x7F80).any():
                raise ValueError("PackedMatrix: values must be finite bfloat16 numbers")
            padded = np.zeros((h, P * width), dtype=values.dtype)
            padded[:, :V] = values
            self.panels = self.into_panels(_float_panels(padded.reshape(h, P, width)))
            self.packed.scales = NULL
            self.packed.column_sums = NULL

    cdef object into_panels(self, laid_out):
        """Copy ``laid_out`` (any view of the final layout) to a 64-byte-aligned block."""
        block = _aligned_empty(laid_out.nbytes).view(laid_out.dtype).reshape(laid_out.shape)
        block[...] = laid_out
        self.packed.panels = cnp.PyArray_DATA(block)
        return block

    cdef int pack_int8(self, values, scales) except -1:
        cdef Py_ssize_t h = self.packed.k, V = self.packed.n, P = self.packed.n_panels
        cdef Py_ssize_t G = self.packed.k_groups
        if ((values < -127) | (values > 127)).any():
            raise ValueError("PackedMatrix: int8 values must be in [-127, 127]")
        if scales is None:
            raise ValueError("PackedMatrix: int8 values need their column scales")
        scales = np.asarray(scales)
        if scales.shape != (V,) or scales.dtype.kind != "f":
            raise ValueError(f"PackedMatrix: scales must be {V} floats, got dtype "
                             f"{scales.dtype} with shape {scales.shape}")
        scales = scales.astype(np.float32)
        if not (np.isfinite(scales) & (scales > 0)).all():
            raise ValueError("PackedMatrix: scales must be finite and > 0")
        padded = np.zeros((G * TINYLLM_INT8_GROUP, P * TINYLLM_PANEL), dtype=np.int8)
        padded[:h, :V] = values
        # (G, 4, P, 16) -> (P, G, 16, 4): four rows of a column in each 32-bit lane
        self.panels = self.into_panels(
            padded.reshape(G, TINYLLM_INT8_GROUP, P, TINYLLM_PANEL).transpose(2, 0, 3, 1))
        self.scales = np.ones(P * TINYLLM_PANEL, dtype=np.float32)
        self.scales[:V] = scales
        self.column_sums = padded.sum(axis=0, dtype=np.int32)
        self.packed.scales = <const float*>cnp.PyArray_DATA(self.scales)
        self.packed.column_sums = <const int32_t*>cnp.PyArray_DATA(self.column_sums)
        return 0

    @property
    def nbytes(self):
        extra = 0 if self.scales is None else self.scales.nbytes + self.column_sums.nbytes
        return self.panels.nbytes + extra

    def __repr__(self):
        return f"PackedMatrix(format={self.format!r}, shape={self.shape})"


def int8_path():
    """The int8 projection path of the kernels in use: ``"avx512-vnni"``, ``"avx512"`` or
    ``"avx2"`` (16-bit products) or ``"portable"``."""
    return KERNELS[0].int8_path().decode()


def set_int8_vnni(bint on):
    """Let the int8 projection use VNNI (where the CPU has it) or not; returns whether it
    did. For tests and benchmarks: every path gives the same numbers."""
    return bool(KERNELS[0].set_int8_vnni(on))


# ===========================================================================
# The model's arrays and a context, checked
# ===========================================================================

cdef int checked_weights(object E, object W1, object W2, bint tanh, str func,
                         Weights* weights) except -1:
    """Fill ``weights`` from a model's arrays; returns their typenum. The arrays must be
    the model's own: kernel-ready 2-D arrays of one dtype whose shapes fit together;
    W1 and W2 may be PackedMatrix objects (with float32 embeddings)."""
    cdef bint packed1 = isinstance(W1, PackedMatrix), packed2 = isinstance(W2, PackedMatrix)
    cdef bint float_E = (cnp.PyArray_Check(E)
                         and cnp.PyArray_TYPE(<cnp.ndarray>E) == cnp.NPY_FLOAT)
    cdef int typenum = cnp.NPY_FLOAT if packed1 or packed2 or float_E else cnp.NPY_DOUBLE
    arrays = ([("embeddings", E)] + ([] if packed1 else [("W1", W1)])
              + ([] if packed2 else [("W2", W2)]))
    for name, arr in arrays:
        if not (cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == typenum
                and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 2
                and is_kernel_ready(<cnp.ndarray>arr)):
            raise TypeError(f"{func}: {name} must be a C-contiguous, aligned, native "
                            f"byte order 2-D float32 or float64 array of the embeddings' dtype"
                            + (" (float32 with a packed W1 or W2)" if packed1 or packed2
                               else ""))
    cdef Py_ssize_t V = cnp.PyArray_DIM(<cnp.ndarray>E, 0), d = cnp.PyArray_DIM(<cnp.ndarray>E, 1)
    cdef Py_ssize_t rows1 = W1.shape[0], h = W1.shape[1]
    cdef Py_ssize_t c = rows1 // d if d else 0
    if (V == 0 or d == 0 or h == 0 or c == 0 or rows1 != c * d or W2.shape != (h, V)):
        raise ValueError(f"{func}: shapes {E.shape}, {W1.shape}, {W2.shape} do not fit "
                         f"embeddings (V, d), W1 (c*d, h), W2 (h, V)")
    weights.E = cnp.PyArray_DATA(<cnp.ndarray>E)
    weights.W1 = NULL if packed1 else cnp.PyArray_DATA(<cnp.ndarray>W1)
    weights.W1_packed = &(<PackedMatrix>W1).packed if packed1 else NULL
    weights.W2 = NULL if packed2 else cnp.PyArray_DATA(<cnp.ndarray>W2)
    weights.W2_packed = &(<PackedMatrix>W2).packed if packed2 else NULL
    weights.V, weights.d, weights.c, weights.h = V, d, c, h
    weights.tanh = tanh
    return typenum


cdef int copy_context(object context, const Weights* weights, int64_t* out, str func) except -1:
    """Check the c positions and copy them into ``out``: a list or tuple of ints
    directly, anything else through NumPy (integer dtypes only)."""
    cdef Py_ssize_t i, c = weights.c, V = weights.V
    cdef long long v
    cdef int overflow = 0
    cdef bint plain = (type(context) is list or type(context) is tuple) and len(context) == c
    if plain:
        for i in range(c):
            item = context[i]
            if type(item) is not int:
                plain = False
                break
            v = PyLong_AsLongLongAndOverflow(item, &overflow)
            if overflow or not 0 <= v < V:
                plain = False      # NumPy's answer below: out of range, or not an int64
                break
            out[i] = v
    if plain:
        return 0
    positions = np.asarray(context)
    if positions.shape != (c,) or positions.dtype.kind not in "iu":
        raise ValueError(f"{func}: context must be {c} integer positions, got {context!r}")
    if ((positions < 0) | (positions >= V)).any():
        raise ValueError(f"{func}: a context position is out of range for {V} tokens")
    for i, position in enumerate(positions.tolist()):
        out[i] = position
    return 0


cdef str overflow_message(str func, Py_ssize_t token):
    return (f"{func}: the logits of token {token} are not finite: the model's weights "
            f"overflow the float range")


cdef str step_message(str func, int status, Py_ssize_t token):
    """The error of a generation step that failed with ``status``."""
    if status == FOUND_POSINF:
        return (f"{func}: a logit of token {token} is +inf after logit_bias and the "
                f"penalties; use smaller biases or penalties")
    if status == NO_FINITE:
        return (f"{func}: every logit of token {token} is -inf after logit_bias and the "
                f"penalties; at least one token must be allowed")
    return overflow_message(func, token)


# ===========================================================================
# One forward pass
# ===========================================================================

def forward(embeddings, W1, W2, context, tanh=False):
    """The forward pass of one context: ``(x, f1, logits)``.

    Parameters
    ----------
    embeddings : ndarray, shape (V, d)
    W1 : ndarray, shape (c*d, h), or PackedMatrix
    W2 : ndarray, shape (h, V), or PackedMatrix
        A model's arrays: C-contiguous, native byte order, one dtype (float32 or
        float64), as :class:`tinyllm.TinyLM` keeps them; W1 and W2 may be
        :class:`PackedMatrix` objects (with float32 embeddings): the same numbers as
        the float32 arrays they hold, read faster.
    context : sequence of int, length c
        Vocabulary positions.
    tanh : bool, default False
        ``f1 = tanh(x @ W1)`` (a model with ``activation="tanh"``).

    Returns
    -------
    x : ndarray, shape (c*d,)
        The context's embeddings, flattened row by row.
    f1 : ndarray, shape (h,)
    logits : ndarray, shape (V,)
        In the weights' dtype; the same numbers the generation loop computes.

    Raises
    ------
    ValueError
        Shapes that do not fit, a position out of range, logits that are not finite.
    TypeError
        Arrays of another dtype or layout.
    """
    cdef Weights weights
    cdef int typenum = checked_weights(embeddings, W1, W2, bool(tanh), "forward", &weights)
    cdef int64_t stack_positions[64]
    cdef int64_t* positions = stack_positions
    cdef Py_ssize_t n_acc = project_scratch(1, max(weights.h, weights.V))
    cdef Py_ssize_t n_packed = weights_scratch(&weights, 1)
    cdef double* acc = NULL
    cdef int status
    dtype = np.float32 if typenum == cnp.NPY_FLOAT else np.float64
    cdef cnp.ndarray x = np.empty(weights.c * weights.d, dtype=dtype)
    cdef cnp.ndarray f1 = np.empty(weights.h, dtype=dtype)
    cdef cnp.ndarray logits = np.empty(weights.V, dtype=dtype)
    cdef const Kernels* k = KERNELS[0]
    if weights.c > 64:
        positions = <int64_t*>malloc(weights.c * sizeof(int64_t))
    acc = <double*>malloc(n_acc * sizeof(double) + n_packed)   # the packed scratch after
    try:
        if positions == NULL or acc == NULL:
            raise MemoryError()
        copy_context(context, &weights, positions, "forward")
        with nogil:
            if typenum == cnp.NPY_FLOAT:
                status = forward_row(k, &weights, positions, <float*>cnp.PyArray_DATA(x),
                                     <float*>cnp.PyArray_DATA(f1),
                                     <float*>cnp.PyArray_DATA(logits), acc, acc + n_acc)
            else:
                status = forward_row(k, &weights, positions, <double*>cnp.PyArray_DATA(x),
                                     <double*>cnp.PyArray_DATA(f1),
                                     <double*>cnp.PyArray_DATA(logits), acc, NULL)
    finally:
        if positions != stack_positions:
            free(positions)
        free(acc)
    if status != OK:
        raise ValueError("forward: the logits are not finite: the model's weights overflow "
                         "the float range")
    return x, f1, logits


# ===========================================================================
# Generation
# ===========================================================================

cdef inline char* carve(char** cursor, Py_ssize_t nbytes) noexcept nogil:
    """The next ``nbytes`` of a block, rounded up to whole cache lines."""
    cdef char* start = cursor[0]
    cursor[0] += (nbytes + LINE - 1) // LINE * LINE
    return start


@cython.auto_pickle(False)     # holds raw pointers into its buffers: not picklable
cdef class Generation:
    """Autoregressive generation from a model's arrays, many tokens per nogil call.

    Holds the weights, the context, the sampling options, the Generator and every
    scratch buffer (one allocation, here): :meth:`take` then runs the whole loop of
    forward pass, filters and draw in C, under the Generator's lock, without
    allocating per token. The tokens are the ones that calling
    :func:`~tinyllm.sample_logits` on each step's logits with the same Generator would
    give.

    The logits of the first token are computed (and checked) when it is made, so a
    model whose logits overflow fails before any token is drawn (``first_logits=False``
    leaves them to the first step: a :class:`BatchGeneration` computes them for all its
    sequences in one pass). Setting one up is
    otherwise cheap (no NumPy call for a list or tuple of ints as the context), so a
    model makes a new one per ``generate`` call instead of sharing mutable state
    between calls and threads.

    Parameters
    ----------
    embeddings : ndarray, shape (V, d)
    W1 : ndarray, shape (c*d, h), or PackedMatrix
    W2 : ndarray, shape (h, V), or PackedMatrix
        C-contiguous arrays of one dtype, float32 or float64 (the model's); W1 and
        W2 may be :class:`PackedMatrix` objects (with float32 embeddings).
    context : sequence of int, length c
        The positions the model reads first (the prompt's last c).
    temperature, top_k, top_p, min_p
        As in :func:`~tinyllm.sample_logits`.
    rng : None, int or numpy.random.Generator
        As in :func:`~tinyllm.sample_logits` (one double per token; none when greedy).
    tanh : bool, default False
        ``f1 = tanh(x @ W1)`` (a model with ``activation="tanh"``).

    Raises
    ------
    ValueError
        Shapes that do not fit together, a position out of range, a bad option, or
        first logits that are not finite.
    TypeError
        Arrays of another dtype or layout, a bad option type or ``rng``.
    """

    cdef readonly object embeddings, W1, W2
    cdef object gen, bit_generator
    cdef const Kernels* kernels    # the instruction set's table when it was made
    cdef GenerationState state
    cdef void* logits              # (V,) in the weights' dtype
    cdef Py_ssize_t slice_tokens   # tokens per nogil call: a few ms of work (see fill)
    cdef bint is_float, stepped
    cdef Py_ssize_t window_capacity   # positions the window's buffer holds
    cdef object bias_positions, bias_values   # arrays behind g.penalties' pointers
    cdef void* memory              # one block: the context and every buffer
    cdef void* window_memory       # the penalties' window and its sorting scratch

    def __cinit__(self):
        self.memory = NULL         # freed by __dealloc__, also after a failed __init__
        self.window_memory = NULL
        self.window_capacity = 0
        self.stepped = False

    def __dealloc__(self):
        free(self.memory)
        free(self.window_memory)

    def __init__(self, embeddings, W1, W2, context, temperature=1.0, top_k=None,
                 top_p=None, min_p=None, rng=None, tanh=False, *, typical_p=None,
                 top_n_sigma=None, min_tokens_to_keep=1, logit_bias=None,
                 repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                 penalty_last_n=64, history=None, first_logits=True):
        cdef GenerationState* g = &self.state
        cdef int typenum = checked_weights(embeddings, W1, W2, bool(tanh), "generate", &g.weights)
        self.is_float = typenum == cnp.NPY_FLOAT
        g.options = checked_sampler_options(temperature, top_k, top_p, min_p, typical_p,
                                            top_n_sigma, min_tokens_to_keep, "generate")
        g.penalties = checked_penalties(repetition_penalty, presence_penalty,
                                        frequency_penalty, "generate")
        self.bias_positions, self.bias_values = checked_logit_bias(logit_bias, g.weights.V,
                                                                   "generate")
        g.penalties.n_bias = len(self.bias_positions)
        g.penalties.bias_positions = <const int64_t*>cnp.PyArray_DATA(self.bias_positions)
        g.penalties.bias_values = <const double*>cnp.PyArray_DATA(self.bias_values)
        self.allocate(sizeof(float) if self.is_float else sizeof(double))
        copy_context(context, &g.weights, g.context, "generate")
        self.start_window(checked_window(history, penalty_last_n, g.weights.V, "generate"),
                          penalty_last_n)
        self.gen = generator_of(rng, "generate")
        self.bit_generator = self.gen.bit_generator
        g.rng = bitgen_of(self.bit_generator)
        self.embeddings, self.W1, self.W2 = embeddings, W1, W2     # kept alive: read below
        self.kernels = KERNELS[0]
        # Multiply-adds of one step (gather, f1, f2), plus the sampler's passes over
        # the logits and a fixed cost: a rough but safe measure of a step's time.
        cdef Py_ssize_t V = g.weights.V, h = g.weights.h
        cdef Py_ssize_t step_work = g.weights.c * g.weights.d * (h + 1) + V * (h + 4) + 64
        self.slice_tokens = max(1, SLICE_WORK // step_work)
        if first_logits:
            self.first_logits()

    cdef int allocate(self, Py_ssize_t itemsize) except -1:
        """Every buffer the loop needs, in one block (a new line each)."""
        cdef GenerationState* g = &self.state
        cdef Py_ssize_t V = g.weights.V, c = g.weights.c, h = g.weights.h
        cdef bint saves = g.options.min_keep > 1 and (g.options.min_p > 0.0
                                                      or g.options.top_n_sigma >= 0.0)
        cdef Py_ssize_t sizes[9]
        sizes[:] = [c * sizeof(int64_t), c * g.weights.d * itemsize, h * itemsize,
                    V * itemsize, project_scratch(1, max(V, h)) * sizeof(double),
                    V * sizeof(int64_t), (V if saves else 0) * sizeof(int64_t),
                    2 * n_draw_blocks(V) * sizeof(double),
                    weights_scratch(&g.weights, 1)]
        cdef Py_ssize_t i, total = 0
        for i in range(9):
            total += (sizes[i] + LINE - 1) // LINE * LINE
        free(self.memory)
        self.memory = malloc(total)
        if self.memory == NULL:
            raise MemoryError()
        cdef char* cursor = <char*>self.memory
        g.context = <int64_t*>carve(&cursor, sizes[0])
        g.x = carve(&cursor, sizes[1])
        g.f1 = carve(&cursor, sizes[2])
        self.logits = carve(&cursor, sizes[3])
        g.acc = <double*>carve(&cursor, sizes[4])
        g.scratch.w = <int64_t*>carve(&cursor, sizes[5])
        g.scratch.saved = <int64_t*>carve(&cursor, sizes[6]) if saves else NULL
        g.scratch.sums = <double*>carve(&cursor, sizes[7])
        g.scratch.weight_sums = <int64_t*>(g.scratch.sums + n_draw_blocks(V))
        g.packed_scratch = carve(&cursor, sizes[8]) if sizes[8] else NULL
        return 0

    cdef int start_window(self, cnp.ndarray history, object penalty_last_n) except -1:
        """The penalties' window: the last ``penalty_last_n`` positions of the history
        (already cut to them), then every drawn token."""
        cdef GenerationState* g = &self.state
        g.n_window = 0
        g.window_limit = 0
        self.window_capacity = 0
        if not g.penalties.active:
            return 0               # nothing reads the window
        g.window_limit = PY_SSIZE_T_MAX if penalty_last_n is None else int(penalty_last_n)
        self.reserve_window(history.shape[0])
        g.n_window = history.shape[0]
        if g.n_window:
            memcpy(g.window, cnp.PyArray_DATA(history), g.n_window * sizeof(int64_t))
        return 0

    cdef int reserve_window(self, Py_ssize_t capacity) except -1:
        """Room for ``capacity`` positions in the window (and its sorting scratch)."""
        cdef GenerationState* g = &self.state
        if capacity <= self.window_capacity:
            return 0
        capacity = max(capacity, 2 * self.window_capacity, 64)
        cdef void* memory = malloc(2 * capacity * sizeof(int64_t))
        if memory == NULL:
            raise MemoryError()
        if g.n_window:
            memcpy(memory, g.window, g.n_window * sizeof(int64_t))
        free(self.window_memory)
        self.window_memory = memory
        g.window = <int64_t*>memory
        g.sorted_window = g.window + capacity
        self.window_capacity = capacity
        return 0

    cdef int forward_first(self) noexcept nogil:
        """forward_row on the context, into the logits buffer (the first token's)."""
        cdef GenerationState* g = &self.state
        if self.is_float:
            return forward_row(self.kernels, &g.weights, g.context, <float*>g.x,
                               <float*>g.f1, <float*>self.logits, g.acc, g.packed_scratch)
        return forward_row(self.kernels, &g.weights, g.context, <double*>g.x,
                           <double*>g.f1, <double*>self.logits, g.acc, NULL)

    cdef int first_logits(self) except -1:
        """The forward pass of the first token, ahead of the loop (which then starts from
        its logits): ValueError now if they are not finite."""
        cdef GenerationState* g = &self.state
        cdef int status
        if g.weights.V * (g.weights.h + 1) < GIL_FREE_MIN:   # the blog's: too small to pay
            status = self.forward_first()
        else:
            with nogil:
                status = self.forward_first()
        if status != OK:
            raise ValueError(overflow_message("generate", 0))
        g.have_logits = True
        return 0

    def take(self, Py_ssize_t n):
        """The next ``n`` tokens (vocabulary positions), as an int64 array of shape (n,).

        Raises ValueError if the logits overflow (the tokens before are then lost;
        the context stays at the last good token).
        """
        if n < 0:
            raise ValueError(f"Generation.take: n must be >= 0, got {n}")
        cdef cnp.ndarray tokens = np.empty(n, dtype=np.int64)
        self.fill(<int64_t*>cnp.PyArray_DATA(tokens), n)
        return tokens

    def take_tokens(self, Py_ssize_t n, tuple tokens not None):
        """The next ``n`` tokens as items of ``tokens``, a tuple of V (the vocabulary's
        strings): the list of ``tokens[position]``, with no array or int made per token.

        Raises as :meth:`take`; ValueError if ``tokens`` does not hold V items.
        """
        if n < 0:
            raise ValueError(f"Generation.take_tokens: n must be >= 0, got {n}")
        if len(tokens) != self.state.weights.V:
            raise ValueError(f"Generation.take_tokens: tokens has {len(tokens)} items, "
                             f"the model has {self.state.weights.V} tokens")
        cdef int64_t stack[STACK_POSITIONS]
        cdef int64_t* out = stack
        cdef Py_ssize_t i
        if n > STACK_POSITIONS:
            out = <int64_t*>malloc(n * sizeof(int64_t))
            if out == NULL:
                raise MemoryError()
        try:
            self.fill(out, n)
            return [tokens[out[i]] for i in range(n)]
        finally:
            if out != stack:
                free(out)

    cdef int fill(self, int64_t* out, Py_ssize_t n) except -1:
        """out[0:n] = the next n tokens: nogil calls of the loop under the Generator's
        lock, ``slice_tokens`` tokens each (a few milliseconds of work), with a look
        for signals between them, so that Ctrl-C stops a long generation at once
        (KeyboardInterrupt; the tokens of this call are then lost, the context and
        the Generator stay where the last finished slice left them)."""
        cdef Py_ssize_t start = 0, count, done = 0
        cdef int status = OK
        cdef GenerationState* g = &self.state
        while start < n:
            count = min(self.slice_tokens, n - start)
            if g.window_limit:                 # room for the window's growth
                self.reserve_window(min(g.n_window + count, g.window_limit))
            with self.bit_generator.lock, nogil:
                if self.is_float:
                    status = generate_tokens(self.kernels, g, <float*>self.logits, out + start,
                                             count, &done)
                else:
                    status = generate_tokens(self.kernels, g, <double*>self.logits, out + start,
                                             count, &done)
            self.stepped = True
            if status != OK:
                raise ValueError(step_message("generate", status, start + done))
            start += count
            PyErr_CheckSignals()
        return 0

    def last_logits(self):
        """The logits of the last step, as the loop computed them (a copy of shape
        (V,) in the weights' dtype), or None before the first token. For tests and
        debugging: they equal the model's logits for that context, bit for bit.
        """
        if not self.stepped:
            return None
        cdef Py_ssize_t V = self.state.weights.V
        cdef cnp.ndarray result = np.empty(V, dtype=np.float32 if self.is_float else np.float64)
        memcpy(cnp.PyArray_DATA(result), self.logits,
               V * (sizeof(float) if self.is_float else sizeof(double)))
        return result


@cython.auto_pickle(False)     # holds raw pointers into its buffers: not picklable
cdef class BatchGeneration:
    """Several generations of one model, stepped together: W1 and W2 are read once per
    step for the whole batch, instead of once per sequence.

    Each sequence keeps everything of its own :class:`Generation` -- context, options,
    penalties, history and Generator -- and gets exactly the tokens it would get alone
    (the batch projections give a row the bits of its single projection). Made from
    the generations, before or after they were stepped alone; while in a batch they
    should not be stepped alone.

    Parameters
    ----------
    generations : sequence of Generation
        At least one, all on the same arrays (the same objects: one model), each with
        a Generator of its own (sharing one would make the tokens depend on the batch).

    Raises
    ------
    ValueError
        No generations, generations of different models, or a Generator shared.
    TypeError
        An item that is not a Generation.
    """

    cdef list generations          # the sequences still in the batch, in order
    cdef list indexes              # their positions in the batch as it was made
    cdef GenerationState** states  # &generation.state of each, in the same order
    cdef const Kernels* kernels
    cdef bint is_float, have_logits
    cdef Py_ssize_t B, V, itemsize, slice_tokens
    cdef void* memory              # states, X, F1, logits, accumulators, packed scratch
    cdef void* X
    cdef void* F1
    cdef void* logits
    cdef double* acc
    cdef void* packed_scratch

    def __cinit__(self):
        self.memory = NULL

    def __dealloc__(self):
        free(self.memory)

    def __init__(self, generations):
        gens = list(generations)
        if not gens:
            raise ValueError("BatchGeneration: needs at least one generation")
        for gen in gens:
            if not isinstance(gen, Generation):
                raise TypeError(f"BatchGeneration: expected Generation items, got "
                                f"{type(gen).__name__}")
        cdef Generation first = gens[0], gen_b
        for gen_b in gens:
            if (gen_b.embeddings is not first.embeddings or gen_b.W1 is not first.W1
                    or gen_b.W2 is not first.W2
                    or gen_b.state.weights.tanh != first.state.weights.tanh):
                raise ValueError("BatchGeneration: the generations must share one model's "
                                 "arrays")
        if len({id(gen_b.bit_generator) for gen_b in gens}) != len(gens):
            raise ValueError("BatchGeneration: each sequence needs a Generator of its own "
                             "(one Generator shared would make each sequence's tokens "
                             "depend on the others)")
        self.generations = gens
        self.indexes = list(range(len(gens)))
        self.kernels = first.kernels
        self.is_float = first.is_float
        self.itemsize = sizeof(float) if self.is_float else sizeof(double)
        self.B = len(gens)
        self.V = first.state.weights.V
        self.allocate()
        cdef Py_ssize_t b, V = self.V
        self.have_logits = all((<Generation>g).state.have_logits for g in gens)
        for b in range(self.B):
            gen_b = gens[b]
            self.states[b] = &gen_b.state
            if self.have_logits:       # the first step's, computed and checked already
                memcpy(<char*>self.logits + b * V * self.itemsize, gen_b.logits,
                       V * self.itemsize)
        self.slice_tokens = max(1, first.slice_tokens // self.B)

    cdef int allocate(self) except -1:
        """Every buffer of the batch step, in one block (a new line each)."""
        cdef const Weights* m = &(<Generation>self.generations[0]).state.weights
        cdef Py_ssize_t B = self.B
        cdef Py_ssize_t sizes[6]
        sizes[:] = [B * sizeof(GenerationState*), B * m.c * m.d * self.itemsize,
                    B * m.h * self.itemsize, B * m.V * self.itemsize,
                    project_scratch(B, max(m.h, m.V)) * sizeof(double),
                    weights_scratch(m, B)]
        cdef Py_ssize_t i, total = 0
        for i in range(6):
            total += (sizes[i] + LINE - 1) // LINE * LINE
        self.memory = malloc(total)
        if self.memory == NULL:
            raise MemoryError()
        cdef char* cursor = <char*>self.memory
        self.states = <GenerationState**>carve(&cursor, sizes[0])
        self.X = carve(&cursor, sizes[1])
        self.F1 = carve(&cursor, sizes[2])
        self.logits = carve(&cursor, sizes[3])
        self.acc = <double*>carve(&cursor, sizes[4])
        self.packed_scratch = carve(&cursor, sizes[5]) if sizes[5] else NULL
        return 0

    @property
    def active(self):
        """The positions (in the batch as it was made) of the sequences still in it."""
        return list(self.indexes)

    def retire(self, Py_ssize_t index):
        """Take sequence ``index`` (its position in the batch as made) out of the batch:
        the next steps skip it (a sequence that met its stop or its length)."""
        if index not in self.indexes:
            raise ValueError(f"BatchGeneration.retire: sequence {index} is not in the batch")
        cdef Py_ssize_t b = self.indexes.index(index), V = self.V
        del self.indexes[b]
        del self.generations[b]
        memmove(&self.states[b], &self.states[b + 1],
                (self.B - b - 1) * sizeof(GenerationState*))
        if self.have_logits:           # keep the pending rows in step with the states
            memmove(<char*>self.logits + b * V * self.itemsize,
                    <char*>self.logits + (b + 1) * V * self.itemsize,
                    (self.B - b - 1) * V * self.itemsize)
        self.B -= 1

    def take(self, Py_ssize_t n):
        """The next ``n`` tokens of every sequence in the batch: an int64 array of shape
        (number of sequences in it, n), rows in the order of :attr:`active`.

        Raises ValueError if a step fails (logits that overflow, or a bias and
        penalties that leave no token), naming the sequence; the tokens of this call
        are then lost.
        """
        if n < 0:
            raise ValueError(f"BatchGeneration.take: n must be >= 0, got {n}")
        cdef cnp.ndarray tokens = np.empty((self.B, n), dtype=np.int64)
        if self.B and n:
            self.fill(<int64_t*>cnp.PyArray_DATA(tokens), n)
        return tokens

    cdef int fill(self, int64_t* out, Py_ssize_t n) except -1:
        """out (B, n): as Generation.fill, all the sequences at once, under the locks of
        all their Generators."""
        cdef Py_ssize_t start = 0, count, done = 0, bad = 0
        cdef int status = OK
        cdef Generation gen
        while start < n:
            count = min(self.slice_tokens, n - start)
            for gen in self.generations:
                if gen.state.window_limit:      # room for the window's growth
                    gen.reserve_window(min(gen.state.n_window + count, gen.state.window_limit))
            with ExitStack() as locks:
                for gen in self.generations:
                    locks.enter_context(gen.bit_generator.lock)
                with nogil:
                    if self.is_float:
                        status = generate_batch(self.kernels, self.states, self.B,
                                                <float*>self.X, <float*>self.F1,
                                                <float*>self.logits, self.acc,
                                                self.packed_scratch, &self.have_logits,
                                                out + start, n, count, &done, &bad)
                    else:
                        status = generate_batch(self.kernels, self.states, self.B,
                                                <double*>self.X, <double*>self.F1,
                                                <double*>self.logits, self.acc,
                                                self.packed_scratch, &self.have_logits,
                                                out + start, n, count, &done, &bad)
            for gen in self.generations:
                gen.stepped = True
                gen.state.have_logits = False
            if status != OK:
                raise ValueError(f"{step_message('generate', status, start + done)} "
                                 f"(sequence {self.indexes[bad]} of the batch)")
            start += count
            PyErr_CheckSignals()
        return 0
