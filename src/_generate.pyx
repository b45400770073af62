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
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

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
    GenerationState,
    Weights,
    n_draw_blocks,
    project_scratch,
)
from _kernel_table cimport Kernels, active_table, forward_row, generate_tokens

import numpy as np

cnp.import_array()

cdef const Kernels** KERNELS = active_table()

cdef enum:
    LINE = 64              # bytes: each scratch buffer of a Generation starts a new line
    STACK_POSITIONS = 512  # take_tokens keeps up to this many positions on the stack
    SLICE_WORK = 1 << 21   # step work (see Generation.slice_tokens) per nogil call: ~1-5 ms


# ===========================================================================
# The model's arrays and a context, checked
# ===========================================================================

cdef int checked_weights(object E, object W1, object W2, bint tanh, str func,
                         Weights* weights) except -1:
    """Fill ``weights`` from a model's arrays; returns their typenum. The arrays must be
    the model's own: kernel-ready 2-D arrays of one dtype whose shapes fit together."""
    cdef int typenum = cnp.NPY_FLOAT if cnp.PyArray_Check(E) and \
        cnp.PyArray_TYPE(<cnp.ndarray>E) == cnp.NPY_FLOAT else cnp.NPY_DOUBLE
    for name, arr in (("embeddings", E), ("W1", W1), ("W2", W2)):
        if not (cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == typenum
                and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 2
                and is_kernel_ready(<cnp.ndarray>arr)):
            raise TypeError(f"{func}: {name} must be a C-contiguous, aligned, native "
                            f"byte order 2-D float32 or float64 array of the embeddings' dtype")
    cdef Py_ssize_t V = cnp.PyArray_DIM(<cnp.ndarray>E, 0), d = cnp.PyArray_DIM(<cnp.ndarray>E, 1)
    cdef Py_ssize_t rows1 = cnp.PyArray_DIM(<cnp.ndarray>W1, 0)
    cdef Py_ssize_t h = cnp.PyArray_DIM(<cnp.ndarray>W1, 1)
    cdef Py_ssize_t c = rows1 // d if d else 0
    if (V == 0 or d == 0 or h == 0 or c == 0 or rows1 != c * d
            or cnp.PyArray_DIM(<cnp.ndarray>W2, 0) != h
            or cnp.PyArray_DIM(<cnp.ndarray>W2, 1) != V):
        raise ValueError(f"{func}: shapes {E.shape}, {W1.shape}, {W2.shape} do not fit "
                         f"embeddings (V, d), W1 (c*d, h), W2 (h, V)")
    weights.E = cnp.PyArray_DATA(<cnp.ndarray>E)
    weights.W1 = cnp.PyArray_DATA(<cnp.ndarray>W1)
    weights.W2 = cnp.PyArray_DATA(<cnp.ndarray>W2)
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
    W1 : ndarray, shape (c*d, h)
    W2 : ndarray, shape (h, V)
        A model's arrays: C-contiguous, native byte order, one dtype (float32 or
        float64), as :class:`tinyllm.TinyLM` keeps them.
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
    cdef double* acc = NULL
    cdef int status
    dtype = np.float32 if typenum == cnp.NPY_FLOAT else np.float64
    cdef cnp.ndarray x = np.empty(weights.c * weights.d, dtype=dtype)
    cdef cnp.ndarray f1 = np.empty(weights.h, dtype=dtype)
    cdef cnp.ndarray logits = np.empty(weights.V, dtype=dtype)
    cdef const Kernels* k = KERNELS[0]
    if weights.c > 64:
        positions = <int64_t*>malloc(weights.c * sizeof(int64_t))
    acc = <double*>malloc(n_acc * sizeof(double))
    try:
        if positions == NULL or acc == NULL:
            raise MemoryError()
        copy_context(context, &weights, positions, "forward")
        with nogil:
            if typenum == cnp.NPY_FLOAT:
                status = forward_row(k, &weights, positions, <float*>cnp.PyArray_DATA(x),
                                     <float*>cnp.PyArray_DATA(f1),
                                     <float*>cnp.PyArray_DATA(logits), acc)
            else:
                status = forward_row(k, &weights, positions, <double*>cnp.PyArray_DATA(x),
                                     <double*>cnp.PyArray_DATA(f1),
                                     <double*>cnp.PyArray_DATA(logits), acc)
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
    model whose logits overflow fails before any token is drawn. Setting one up is
    otherwise cheap (no NumPy call for a list or tuple of ints as the context), so a
    model makes a new one per ``generate`` call instead of sharing mutable state
    between calls and threads.

    Parameters
    ----------
    embeddings : ndarray, shape (V, d)
    W1 : ndarray, shape (c*d, h)
    W2 : ndarray, shape (h, V)
        C-contiguous arrays of one dtype, float32 or float64 (the model's).
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
                 penalty_last_n=64, history=None):
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
        self.first_logits()

    cdef int allocate(self, Py_ssize_t itemsize) except -1:
        """Every buffer the loop needs, in one block (a new line each)."""
        cdef GenerationState* g = &self.state
        cdef Py_ssize_t V = g.weights.V, c = g.weights.c, h = g.weights.h
        cdef bint saves = g.options.min_keep > 1 and (g.options.min_p > 0.0
                                                      or g.options.top_n_sigma >= 0.0)
        cdef Py_ssize_t sizes[8]
        sizes[:] = [c * sizeof(int64_t), c * g.weights.d * itemsize, h * itemsize,
                    V * itemsize, project_scratch(1, max(V, h)) * sizeof(double),
                    V * sizeof(int64_t), (V if saves else 0) * sizeof(int64_t),
                    2 * n_draw_blocks(V) * sizeof(double)]
        cdef Py_ssize_t i, total = 0
        for i in range(8):
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
                               <float*>g.f1, <float*>self.logits, g.acc)
        return forward_row(self.kernels, &g.weights, g.context, <double*>g.x,
                           <double*>g.f1, <double*>self.logits, g.acc)

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
