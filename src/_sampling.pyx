"""Drawing the next token: ``sample`` (from weights), ``sample_logits`` (from logits,
through temperature, top-k, top-p and min-p) and ``filter_logits`` (the support those
draws come from).

The entry points validate (``_checks.pxd``), check every row's values with a kernel
before any draw (so a bad row never leaves the Generator half-advanced), then call
the sampling kernels (``src/kernels/sampling.pxi``, where the algorithms are
described) through the table of the instruction set in use. One draw from one plain
vector -- the common case, and the one where a call's overhead shows -- goes straight
to a one-draw kernel, without temporary arrays.

Random numbers come from a NumPy Generator: the kernels call its bit generator's
``next_double`` through the ``bitgen_t`` of its capsule, inside
``with bit_generator.lock, nogil:`` (NumPy's documented pattern for Cython,
``numpy/random/_examples/cython/extending.pyx``). One uniform double per draw, so a
seed gives the same tokens in every run and process, and one Generator can be shared
by threads.
"""

cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from numpy.random cimport bitgen_t

from _checks cimport (
    as_typed_rows,
    checked_logit_bias,
    checked_penalties,
    checked_window,
    bitgen_of,
    checked_out,
    checked_rows,
    checked_sampler_options,
    checked_size,
    checked_temperature,
    generator_of,
    is_kernel_ready,
    is_ready_float,
    may_share_memory,
    new_array,
    shape_of,
)
from _defs cimport (
    FOUND_NAN,
    Penalties,
    FOUND_NEGATIVE,
    FOUND_POSINF,
    GIL_FREE_MIN,
    NO_FINITE,
    OK,
    ZERO_SUM,
    SamplerOptions,
    SamplerScratch,
    n_draw_blocks,
)
from _kernel_table cimport (
    Kernels,
    active_table,
    adjust_logits,
    draw_min_p_once,
    draw_top_k_once,
    greedy_once,
    check_logits,
    check_weights,
    draw_logits_once,
    draw_weights_once,
    exp_weights,
    filter_logits_rows,
    sample_logits_rows,
    sample_rows,
)

import numpy as np

cnp.import_array()

cdef const Kernels** KERNELS = active_table()

cdef enum:
    TOP_K_FEW = 1024      # the top-k one-draw kernel takes k up to this (filters.pxi)
    STACK_TOKENS = 1024   # the one-draw paths keep the block sums of this many tokens on the stack
    STACK_BLOCKS = 4      # STACK_TOKENS // DRAW_BLOCK


def as_generator(rng, func="as_generator"):
    """The ``rng`` argument as a Generator: None -> fresh entropy, an int >= 0 ->
    ``numpy.random.default_rng(seed)``, a Generator as it is; else TypeError.

    Callers that draw several times from one ``rng`` (the model's generation loop)
    turn it into a Generator once with this; ``func`` names them in error messages.
    """
    return generator_of(rng, func)


# ===========================================================================
# Checking the rows' values (a kernel pass over everything before any draw)
# ===========================================================================

cdef int check_rows(const floating* x, Py_ssize_t rows, Py_ssize_t n, bint logits,
                    Py_ssize_t* bad_row) noexcept:
    """check_logits or check_weights on rows (rows, n); their status."""
    cdef const Kernels* k = KERNELS[0]
    with nogil:
        if logits:
            return check_logits(k, x, rows, n, bad_row)
        return check_weights(k, x, rows, n, bad_row)


cdef object checked_row_values(cnp.ndarray arr, bint logits, str func):
    """``arr`` as kernel-ready (B, V) rows whose values the kernels accept: weights
    finite, >= 0, with a positive finite sum; logits finite or -inf, not all -inf."""
    cdef int typenum = cnp.PyArray_TYPE(arr)
    rows = as_typed_rows(arr, typenum).reshape(-1, arr.shape[arr.ndim - 1])
    cdef cnp.ndarray r = <cnp.ndarray>rows
    cdef Py_ssize_t bad_row = 0, B = r.shape[0], V = r.shape[1]
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        status = check_rows(<const float*>cnp.PyArray_DATA(r), B, V, logits, &bad_row)
    else:
        status = check_rows(<const double*>cnp.PyArray_DATA(r), B, V, logits, &bad_row)
    if status != OK:
        raise ValueError(logits_message(func, status, arr, bad_row) if logits
                         else weights_message(status, arr, bad_row))
    return rows


cdef str first_bad(cnp.ndarray arr, object mask, str name):
    """'name[i] is v' for the first True entry of ``mask``."""
    first = tuple(np.argwhere(mask)[0].tolist())
    return f"{name}[{', '.join(map(str, first))}] is {arr[first]}"


cdef str where_row(cnp.ndarray arr, Py_ssize_t row):
    return "" if arr.ndim == 1 else f" (row {row})"


cdef str weights_message(int status, cnp.ndarray w, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF or status == FOUND_NEGATIVE:
        bad = np.isnan(w) | (w == np.inf) | (w < 0)
        return f"sample: {first_bad(w, bad, 'weights')}; weights must be finite and >= 0"
    if status == ZERO_SUM:
        return f"sample: the weights are all zero{where_row(w, row)}; their sum must be > 0"
    return (f"sample: the sum of the weights overflows{where_row(w, row)}; "
            f"scale them down")


cdef str logits_message(str func, int status, cnp.ndarray x, Py_ssize_t row):
    if status == FOUND_NAN or status == FOUND_POSINF:
        bad = first_bad(x, np.isnan(x) | (x == np.inf), "logits")
        return f"{func}: {bad}; logits must be finite, or -inf to mask a token"
    if status == NO_FINITE:
        return (f"{func}: every logit is -inf{where_row(x, row)}; "
                f"at least one token must be allowed")
    return (f"{func}: logits / temperature overflows {x.dtype}{where_row(x, row)}; "
            f"use a larger temperature")


# ===========================================================================
# The draws' shape
# ===========================================================================

cdef object shaped_draws(cnp.ndarray tokens, bint batched, object size):
    """Draws (B, prod(size)) as the result: an int, or an int64 array."""
    if size is None:
        return tokens.reshape(-1) if batched else int(tokens[0, 0])
    return tokens.reshape(((<object>tokens).shape[0],) + size if batched else size)


cdef Py_ssize_t draws_per_row(object size):
    cdef Py_ssize_t n = 1
    if size is not None:
        for dim in size:
            n *= <Py_ssize_t>dim
    return n


cdef struct Scratch:
    # A SamplerScratch and the one block of memory behind it.
    SamplerScratch s
    void* memory


# One block of scratch memory kept between calls: a row of 10^7 weights is 80 MB, which
# malloc maps fresh (and the kernel faults in page by page) on every call otherwise.
# Taken and given back with the GIL held, so two threads never share it (a second
# concurrent call allocates its own).
cdef void* KEPT_MEMORY = NULL
cdef Py_ssize_t KEPT_BYTES = 0
cdef bint KEPT_BUSY = False
cdef enum:
    KEEP_AT_MOST = 256 << 20       # bytes of scratch kept between calls


cdef void* take_memory(Py_ssize_t nbytes):
    """nbytes of scratch (NULL if out of memory): the kept block when free and large
    enough (grown if it may be), else a fresh one."""
    global KEPT_MEMORY, KEPT_BYTES, KEPT_BUSY
    if not KEPT_BUSY and nbytes <= KEEP_AT_MOST:
        if nbytes > KEPT_BYTES:
            free(KEPT_MEMORY)
            KEPT_MEMORY = malloc(nbytes)
            KEPT_BYTES = nbytes if KEPT_MEMORY != NULL else 0
        if KEPT_MEMORY != NULL:
            KEPT_BUSY = True
            return KEPT_MEMORY
    return malloc(nbytes)


cdef void give_memory(void* memory):
    """Back from take_memory."""
    global KEPT_BUSY
    if memory == KEPT_MEMORY and memory != NULL:
        KEPT_BUSY = False
    else:
        free(memory)


cdef int scratch_for(Scratch* scratch, Py_ssize_t V, const SamplerOptions* opt) except -1:
    """Buffers for rows of V logits, in one allocation: the integer weights, the block
    sums, and a second row only for min_tokens_to_keep > 1 with a threshold filter.
    Give it back with give_memory(scratch.memory)."""
    cdef bint saves = opt.min_keep > 1 and (opt.min_p > 0.0 or opt.top_n_sigma >= 0.0)
    cdef Py_ssize_t n_w = V * sizeof(int64_t), n_saved = n_w if saves else 0
    cdef Py_ssize_t n_sums = n_draw_blocks(V) * sizeof(double)
    scratch.memory = take_memory(n_w + n_saved + 2 * n_sums)
    if scratch.memory == NULL:
        raise MemoryError()
    scratch.s.w = <int64_t*>scratch.memory
    scratch.s.saved = <int64_t*>(<char*>scratch.memory + n_w) if saves else NULL
    scratch.s.weight_sums = <int64_t*>(<char*>scratch.memory + n_w + n_saved)
    scratch.s.sums = <double*>(<char*>scratch.memory + n_w + n_saved + n_sums)
    return 0


# ===========================================================================
# The kernels' calls (fused bodies: the dtype is chosen once per call)
# ===========================================================================

cdef Py_ssize_t draw_once(const floating* x, Py_ssize_t V, double t, bint logits,
                          object gen) except -2:
    """One token from weights (``logits`` False) or from softmax(x / t), t > 0, no
    filter; -1 (nothing drawn) where the one-draw kernel does not apply."""
    cdef const Kernels* k = KERNELS[0]
    cdef double stack_sums[STACK_BLOCKS]
    cdef double* sums = &stack_sums[0]
    cdef Py_ssize_t token
    bit_generator = gen.bit_generator
    cdef bitgen_t* rng = bitgen_of(bit_generator)
    if V > STACK_TOKENS:
        sums = <double*>malloc(n_draw_blocks(V) * sizeof(double))
        if sums == NULL:
            raise MemoryError()
    with bit_generator.lock:
        if V < GIL_FREE_MIN:
            token = (draw_logits_once(k, x, V, t, sums, rng) if logits
                     else draw_weights_once(k, x, V, sums, rng))
        else:
            with nogil:
                token = (draw_logits_once(k, x, V, t, sums, rng) if logits
                         else draw_weights_once(k, x, V, sums, rng))
    if sums != &stack_sums[0]:
        free(sums)
    return token


cdef void run_sample_rows(const floating* w, Py_ssize_t B, Py_ssize_t V, double* cum,
                          object gen, int64_t* out, Py_ssize_t n_draws) except *:
    """The sample_rows kernel under the Generator's lock, without the GIL."""
    cdef const Kernels* k = KERNELS[0]
    bit_generator = gen.bit_generator
    cdef bitgen_t* rng = bitgen_of(bit_generator)
    with bit_generator.lock, nogil:
        sample_rows(k, w, B, V, cum, rng, out, n_draws)


cdef void run_sample_logits_rows(const floating* x, Py_ssize_t B, Py_ssize_t V,
                                 const SamplerOptions* opt, const SamplerScratch* scratch,
                                 object gen, int64_t* out, Py_ssize_t n_draws) except *:
    """The sample_logits_rows kernel without the GIL; under the Generator's lock unless
    greedy (temperature 0 draws nothing)."""
    cdef const Kernels* k = KERNELS[0]
    cdef bitgen_t* rng
    if opt.temperature == 0.0:
        with nogil:
            sample_logits_rows(k, x, B, V, opt, scratch, NULL, out, n_draws)
        return
    bit_generator = gen.bit_generator
    rng = bitgen_of(bit_generator)
    with bit_generator.lock, nogil:
        sample_logits_rows(k, x, B, V, opt, scratch, rng, out, n_draws)


cdef int run_filter_rows(const floating* x, Py_ssize_t B, Py_ssize_t V,
                         const SamplerOptions* opt, const SamplerScratch* scratch,
                         floating* out, Py_ssize_t* bad_row) noexcept:
    """The filter_logits_rows kernel, without the GIL."""
    cdef const Kernels* k = KERNELS[0]
    with nogil:
        return filter_logits_rows(k, x, B, V, opt, scratch, out, bad_row)


# ===========================================================================
# The general paths: any input and options (they raise every error)
# ===========================================================================

cdef object sample_general(object weights, object size, object rng):
    """``sample`` for any input: validate and coerce, check every row, then draw."""
    cdef cnp.ndarray wa = checked_rows(weights, "weights", "sample")
    shape = checked_size(size, "sample")
    gen = generator_of(rng, "sample")
    cdef Py_ssize_t V = wa.shape[wa.ndim - 1]
    rows = checked_row_values(wa, False, "sample")
    cdef cnp.ndarray r = <cnp.ndarray>rows
    cdef Py_ssize_t B = r.shape[0], n_draws = draws_per_row(shape)
    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef cnp.ndarray cum = np.empty(V, dtype=np.float64)
    cdef double* c = <double*>cnp.PyArray_DATA(cum)
    if n_draws:
        if cnp.PyArray_TYPE(r) == cnp.NPY_FLOAT:
            run_sample_rows(<const float*>cnp.PyArray_DATA(r), B, V, c, gen, out, n_draws)
        else:
            run_sample_rows(<const double*>cnp.PyArray_DATA(r), B, V, c, gen, out, n_draws)
    return shaped_draws(tokens, wa.ndim == 2, shape)


cdef tuple NO_CHAIN = (None, None, 1, None, 1.0, 0.0, 0.0, 64, None)   # the keywords' defaults


cdef list checked_windows(object history, object penalty_last_n, Py_ssize_t B, Py_ssize_t V,
                          bint batched, str func):
    """One window of positions per row: ``history`` shared by every row, or (2-D logits)
    a sequence of B histories, one per row."""
    per_row = batched and history is not None and (
        (isinstance(history, np.ndarray) and history.ndim == 2)
        or (isinstance(history, (list, tuple)) and len(history) > 0
            and all(hasattr(item, "__len__") for item in history)))
    if not per_row:
        return [checked_window(history, penalty_last_n, V, func)] * B
    if len(history) != B:
        raise ValueError(f"{func}: history has {len(history)} rows, the logits have {B}")
    return [checked_window(item, penalty_last_n, V, func) for item in history]


cdef object adjusted_rows(object rows, cnp.ndarray xa, tuple chain, Penalties* pen, str func):
    """The checked rows after the logit bias and the penalties: a copy, or ``rows``
    itself when neither changes anything. Raises if they leave a row with +inf or
    with no token."""
    cdef cnp.ndarray r = <cnp.ndarray>rows
    cdef Py_ssize_t B = r.shape[0], V = r.shape[1], row
    positions, biases = checked_logit_bias(chain[3], V, func)
    windows = checked_windows(chain[8], chain[7], B, V, xa.ndim == 2, func)
    pen.n_bias = len(positions)
    if pen.n_bias == 0 and not (pen.active and any(len(w) for w in windows)):
        return rows
    cdef cnp.ndarray y = np.array(r, copy=True, order="C")
    cdef cnp.ndarray window, scratch
    cdef const Kernels* k = KERNELS[0]
    cdef int status = OK
    pen.bias_positions = <const int64_t*>cnp.PyArray_DATA(positions)
    pen.bias_values = <const double*>cnp.PyArray_DATA(biases)
    for row in range(B):
        window = windows[row]
        scratch = np.empty(len(window), dtype=np.int64)
        if cnp.PyArray_TYPE(y) == cnp.NPY_FLOAT:
            status = adjust_logits(k, <float*>cnp.PyArray_DATA(y) + row * V, V, pen,
                                   <const int64_t*>cnp.PyArray_DATA(window), len(window),
                                   <int64_t*>cnp.PyArray_DATA(scratch))
        else:
            status = adjust_logits(k, <double*>cnp.PyArray_DATA(y) + row * V, V, pen,
                                   <const int64_t*>cnp.PyArray_DATA(window), len(window),
                                   <int64_t*>cnp.PyArray_DATA(scratch))
        if status == FOUND_POSINF:
            raise ValueError(f"{func}: a logit{where_row(xa, row)} is +inf after logit_bias "
                             f"and the penalties; use smaller biases or penalties")
        if status == NO_FINITE:
            raise ValueError(f"{func}: every logit{where_row(xa, row)} is -inf after "
                             f"logit_bias and the penalties; at least one token must be allowed")
    return y


cdef object sample_logits_general(object logits, object temperature, object top_k,
                                  object top_p, object min_p, object size, object rng,
                                  tuple chain):
    """``sample_logits`` for any input and options: validate, check, adjust (bias,
    penalties), filter, draw."""
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "sample_logits")
    cdef SamplerOptions opt = checked_sampler_options(temperature, top_k, top_p, min_p,
                                                      chain[0], chain[1], chain[2],
                                                      "sample_logits")
    cdef Penalties pen = checked_penalties(chain[4], chain[5], chain[6], "sample_logits")
    shape = checked_size(size, "sample_logits")
    gen = generator_of(rng, "sample_logits")
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = checked_row_values(xa, True, "sample_logits")
    rows = adjusted_rows(rows, xa, chain, &pen, "sample_logits")
    cdef cnp.ndarray r = <cnp.ndarray>rows
    cdef Py_ssize_t B = r.shape[0], n_draws = draws_per_row(shape)
    cdef cnp.ndarray tokens = np.empty((B, n_draws), dtype=np.int64)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(tokens)
    cdef Scratch scratch
    if n_draws == 0:
        return shaped_draws(tokens, xa.ndim == 2, shape)
    scratch_for(&scratch, V, &opt)
    try:
        if cnp.PyArray_TYPE(r) == cnp.NPY_FLOAT:
            run_sample_logits_rows(<const float*>cnp.PyArray_DATA(r), B, V, &opt, &scratch.s,
                                   gen, out, n_draws)
        else:
            run_sample_logits_rows(<const double*>cnp.PyArray_DATA(r), B, V, &opt, &scratch.s,
                                   gen, out, n_draws)
    finally:
        give_memory(scratch.memory)
    return shaped_draws(tokens, xa.ndim == 2, shape)


# ===========================================================================
# One draw from one plain vector: raw pointers, no temporary arrays, the GIL kept
# when the work is too small to pay for releasing it
# ===========================================================================

cdef object sample_one(cnp.ndarray wa, object rng):
    """``sample(weights, rng=rng)`` for plain 1-D weights: block sums, then one draw."""
    gen = generator_of(rng, "sample")
    cdef Py_ssize_t V = cnp.PyArray_DIM(wa, 0), token
    cdef void* w = cnp.PyArray_DATA(wa)
    if cnp.PyArray_TYPE(wa) == cnp.NPY_FLOAT:
        token = draw_once(<const float*>w, V, 1.0, False, gen)
    else:
        token = draw_once(<const double*>w, V, 1.0, False, gen)
    if token < 0:
        return sample_general(wa, None, gen)   # raises, naming the bad weight
    return token


cdef object greedy_one(cnp.ndarray xa, object rng):
    """``sample_logits(logits, 0, rng=rng)`` for plain 1-D logits: the first argmax, one
    read-only pass (without the GIL for a long row); the Generator is not advanced."""
    if not (rng is None or isinstance(rng, np.random.Generator)):
        generator_of(rng, "sample_logits")       # checked all the same (raises if bad)
    cdef const Kernels* k = KERNELS[0]
    cdef Py_ssize_t V = cnp.PyArray_DIM(xa, 0), token
    cdef void* x = cnp.PyArray_DATA(xa)
    cdef bint is_float = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT
    if V < GIL_FREE_MIN:
        token = (greedy_once(k, <const float*>x, V) if is_float
                 else greedy_once(k, <const double*>x, V))
    else:
        with nogil:
            token = (greedy_once(k, <const float*>x, V) if is_float
                     else greedy_once(k, <const double*>x, V))
    if token < 0:       # NaN, +inf or all -inf: the general path names it
        return sample_logits_general(xa, 0.0, None, None, None, None, rng, NO_CHAIN)
    return token


cdef object sample_logits_one(cnp.ndarray xa, double t, object rng):
    """``sample_logits(logits, t, rng=rng)`` for plain 1-D logits, t > 0, no filter."""
    gen = generator_of(rng, "sample_logits")
    cdef Py_ssize_t V = cnp.PyArray_DIM(xa, 0), token
    cdef void* x = cnp.PyArray_DATA(xa)
    if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
        token = draw_once(<const float*>x, V, t, True, gen)
    else:
        token = draw_once(<const double*>x, V, t, True, gen)
    if token < 0:
        # NaN, +inf or all -inf (the general path raises, naming the bad logit), or
        # a temperature outside [1e-30, 1e30] (it draws with libm's exp).
        return sample_logits_general(xa, t, None, None, None, None, gen, NO_CHAIN)
    return token


cdef object few_kept_one(cnp.ndarray xa, object temperature, object top_k, object min_p,
                         object rng):
    """``sample_logits(logits, t, top_k=k, rng=rng)`` or ``(..., min_p=q, ...)`` for plain
    1-D logits, one filter alone: the tokens that may be kept gathered in one pass, an
    exp for them only (kernels/filters.pxi: draw_top_k_once, draw_min_p_once). Other
    cases (T = 0, min_p = 0, k >= V / 4, rows the kernels do not take) go to the
    general path, which gives the same token."""
    cdef SamplerOptions opt = checked_sampler_options(temperature, top_k, None, min_p, None,
                                                      None, 1, "sample_logits")
    cdef Py_ssize_t V = cnp.PyArray_DIM(xa, 0), token = -1
    if (opt.temperature == 0.0 or (top_k is None and opt.min_p == 0.0)
            or (top_k is not None and (opt.top_k > TOP_K_FEW or 4 * opt.top_k >= V))
            or V >= (1 << 31) - 16):
        return sample_logits_general(xa, temperature, top_k, None, min_p, None, rng, NO_CHAIN)
    gen = generator_of(rng, "sample_logits")
    bit_generator = gen.bit_generator
    cdef bitgen_t* bits = bitgen_of(bit_generator)
    cdef const Kernels* k = KERNELS[0]
    cdef void* x = cnp.PyArray_DATA(xa)
    cdef bint is_float = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT
    cdef void* memory = malloc((V + 16) * sizeof(int32_t) + V * sizeof(int64_t))
    if memory == NULL:
        raise MemoryError()
    cdef int32_t* kept = <int32_t*>memory
    cdef int64_t* w = <int64_t*>(<char*>memory + (V + 16) * sizeof(int32_t))
    cdef double t = opt.temperature, q = opt.min_p
    cdef Py_ssize_t kk = opt.top_k
    cdef bint by_top_k = top_k is not None
    try:
        with bit_generator.lock, nogil:
            if by_top_k:
                token = (draw_top_k_once(k, <const float*>x, V, t, kk, kept, w, bits)
                         if is_float else
                         draw_top_k_once(k, <const double*>x, V, t, kk, kept, w, bits))
            else:
                token = (draw_min_p_once(k, <const float*>x, V, t, q, kept, w, bits)
                         if is_float else
                         draw_min_p_once(k, <const double*>x, V, t, q, kept, w, bits))
    finally:
        free(memory)
    if token < 0:        # nothing drawn: the general path says why, or draws
        return sample_logits_general(xa, temperature, top_k, None, min_p, None, gen, NO_CHAIN)
    return token


cdef object penalized_one(cnp.ndarray xa, object temperature, object rng,
                          object min_tokens_to_keep, object repetition_penalty,
                          object presence_penalty, object frequency_penalty,
                          object penalty_last_n, object history):
    """``sample_logits`` for plain 1-D logits, a temperature and the penalties over a
    history (a list of ints or a 1-D int64 array), nothing else: the window is read
    straight from it, the row copied once and penalised in C, then the one-draw path.
    Anything unusual
    (a bad position, NaN logits, a temperature outside [1e-30, 1e30], T = 0) goes to
    the general path, which raises or handles it."""
    cdef SamplerOptions opt = checked_sampler_options(temperature, None, None, None, None,
                                                      None, min_tokens_to_keep,
                                                      "sample_logits")
    cdef Penalties pen = checked_penalties(repetition_penalty, presence_penalty,
                                           frequency_penalty, "sample_logits")
    cdef Py_ssize_t V = cnp.PyArray_DIM(xa, 0), n, start = 0, i, token = -1
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(xa)
    cdef object item
    cdef const int64_t* positions = NULL
    cdef bint is_list = type(history) is list
    if not is_list:
        if not (cnp.PyArray_Check(history) and is_kernel_ready(<cnp.ndarray>history)
                and cnp.PyArray_TYPE(<cnp.ndarray>history) == cnp.NPY_INT64
                and cnp.PyArray_NDIM(<cnp.ndarray>history) == 1):
            return sample_logits_general(xa, temperature, None, None, None, None, rng,
                                         (None, None, min_tokens_to_keep, None,
                                          repetition_penalty, presence_penalty,
                                          frequency_penalty, penalty_last_n, history))
        positions = <const int64_t*>cnp.PyArray_DATA(<cnp.ndarray>history)
    n = len(history)
    cdef tuple chain = (None, None, min_tokens_to_keep, None, repetition_penalty,
                        presence_penalty, frequency_penalty, penalty_last_n, history)
    if penalty_last_n is not None:
        if not (type(penalty_last_n) is int and 0 <= penalty_last_n):
            return sample_logits_general(xa, temperature, None, None, None, None, rng, chain)
        start = max(n - <Py_ssize_t>min(<object>penalty_last_n, n), 0)
    if opt.temperature == 0.0 or not pen.active or n - start > 4096:
        return sample_logits_general(xa, temperature, None, None, None, None, rng, chain)
    for i in range(n):                 # every position checked, as the general path does
        if positions != NULL:
            if not (0 <= positions[i] < V):
                return sample_logits_general(xa, temperature, None, None, None, None, rng,
                                             chain)
            continue
        item = (<list>history)[i]
        if type(item) is not int or not (0 <= <object>item < V):
            return sample_logits_general(xa, temperature, None, None, None, None, rng, chain)
    gen = generator_of(rng, "sample_logits")
    cdef void* memory = malloc(V * itemsize + 2 * (n - start + 1) * sizeof(int64_t))
    if memory == NULL:
        raise MemoryError()
    cdef int64_t* window = <int64_t*>(<char*>memory + V * itemsize)
    cdef int64_t* scratch = window + (n - start + 1)
    cdef const Kernels* k = KERNELS[0]
    cdef int status
    try:
        for i in range(start, n):
            window[i - start] = positions[i] if positions != NULL else <int64_t>(<list>history)[i]
        memcpy(memory, cnp.PyArray_DATA(xa), V * itemsize)
        pen.n_bias = 0
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            status = adjust_logits(k, <float*>memory, V, &pen, window, n - start, scratch)
            if status == OK:
                token = draw_once(<const float*>memory, V, opt.temperature, True, gen)
        else:
            status = adjust_logits(k, <double*>memory, V, &pen, window, n - start, scratch)
            if status == OK:
                token = draw_once(<const double*>memory, V, opt.temperature, True, gen)
    finally:
        free(memory)
    if token < 0:     # a bad row, before or after the penalties: the general path says why
        return sample_logits_general(xa, temperature, None, None, None, None, rng, chain)
    return token


def _exp_weights(logits, double temperature):
    """Hook for the tests (not API): what the one-draw path without filters computes
    for 1-D float32 or float64 ``logits``: ``(weights, sums)``, the weights
    exp((x - max x) / T) (the logits' dtype, as the draw sees them) and the block sums
    (float64, as the walk sees them), or None where that path does not apply (NaN,
    +inf, no finite logit, T outside [1e-30, 1e30]).
    """
    cdef cnp.ndarray xa = np.ascontiguousarray(logits)
    if not is_ready_float(xa, 1):
        raise ValueError("_exp_weights: logits must be a non-empty 1-D float32 or float64 array")
    cdef Py_ssize_t V = xa.shape[0]
    cdef cnp.ndarray w = np.empty_like(xa)
    cdef cnp.ndarray sums = np.empty(n_draw_blocks(V), dtype=np.float64)
    cdef const Kernels* k = KERNELS[0]
    cdef double* s = <double*>cnp.PyArray_DATA(sums)
    cdef bint ok
    if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
        ok = exp_weights(k, <const float*>cnp.PyArray_DATA(xa), V, temperature,
                         <float*>cnp.PyArray_DATA(w), s)
    else:
        ok = exp_weights(k, <const double*>cnp.PyArray_DATA(xa), V, temperature,
                         <double*>cnp.PyArray_DATA(w), s)
    return (w, sums) if ok else None


# ===========================================================================
# Entry points
# ===========================================================================

def sample(weights, size=None, rng=None):
    """Draw token indices with probability proportional to ``weights``.

    Like ``random.choices(range(V), weights)`` or ``torch.multinomial``: the weights
    need not sum to 1. The cumulative table of a row is built once (in double,
    also for float32) and binary-searched once per draw, so ``size`` draws cost
    O(V + size log V).

    Parameters
    ----------
    weights : array_like, shape (V,) or (B, V)
        Non-negative, finite weights with a positive sum per row. float32 and
        float64 are read as they are, other real dtypes as float64.
    size : int or tuple of ints, optional
        Draws per distribution. None: one draw, returned as an int for 1-D
        ``weights``, or one per row for 2-D.
    rng : None, int or numpy.random.Generator, optional
        The random stream. An int seeds ``numpy.random.default_rng(seed)``: the
        same seed gives the same tokens in every run and process. None takes fresh
        entropy. A Generator is advanced by one double per draw (and may be shared
        by threads).

    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``weights`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D weights), ``(B,)`` or ``(B,) + size`` (2-D weights).

    Raises
    ------
    ValueError
        Empty weights or not 1-D/2-D, a NaN, infinite or negative weight, a row
        of zeros or whose sum overflows, a negative ``size``, a negative seed.
    TypeError
        A complex, object or non-real dtype; a ``size`` or ``rng`` of another type.

    Examples
    --------
    >>> from tinyllm._sampling import sample
    >>> probs = [0.4981509447, 0.0823437973, 0.3021438211, 0.0499440377, 0.0674173992]
    >>> token = sample(probs, rng=0)
    >>> sample(probs, size=(2, 3), rng=0).shape
    (2, 3)
    """
    if size is None and is_ready_float(weights, 1):
        return sample_one(<cnp.ndarray>weights, rng)
    return sample_general(weights, size, rng)


_CHAIN_DOC = """
    typical_p : float in (0, 1], optional
        Locally typical sampling (Meister et al. 2022, as transformers'
        ``TypicalLogitsWarper``): keep the tokens whose surprise -log p is closest to
        the entropy, in that order, until their probability reaches >= typical_p.
    top_n_sigma : float >= 0, optional
        Top-n-sigma (Tang et al. 2024, as llama.cpp): keep the tokens whose scaled
        logit is within n standard deviations of the largest.
    min_tokens_to_keep : int >= 1, default 1
        Every filter keeps at least this many tokens (transformers' argument).
    logit_bias : dict {position: bias}, optional
        Added to the logits first (OpenAI, llama.cpp); a bias of -inf bans the token.
    repetition_penalty : float > 0, default 1.0
        CTRL's penalty (Keskar et al. 2019, as transformers and llama.cpp): the logit of
        a token in the window is divided by it if positive, multiplied if not.
    presence_penalty, frequency_penalty : float, default 0.0
        OpenAI's penalties: ``logit -= count * frequency_penalty + presence_penalty``
        for each token seen ``count`` > 0 times in the window.
    penalty_last_n : int >= 0 or None, default 64
        The window: the last ``penalty_last_n`` positions of ``history`` (llama.cpp's
        default); None: all of it (transformers'); 0: no penalties.
    history : sequence of int, optional
        The positions generated so far, which the penalties read. For 2-D logits,
        one sequence for every row, or a sequence of B sequences (one per row).
"""


cdef inline bint only_temperature(object size, object top_k, object top_p, object min_p,
                                  object typical_p, object top_n_sigma,
                                  object min_tokens_to_keep, object logit_bias,
                                  object repetition_penalty, object presence_penalty,
                                  object frequency_penalty, object penalty_last_n,
                                  object history):
    """One draw with every filter, bias and penalty at its default (the fast paths)."""
    return (size is None and top_k is None and top_p is None and min_p is None
            and typical_p is None and top_n_sigma is None and logit_bias is None
            and history is None and type(min_tokens_to_keep) is int and min_tokens_to_keep == 1
            and type(repetition_penalty) is float and repetition_penalty == 1.0
            and type(presence_penalty) is float and presence_penalty == 0.0
            and type(frequency_penalty) is float and frequency_penalty == 0.0
            and type(penalty_last_n) is int and penalty_last_n == 64)


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None,
                  size=None, rng=None, *, typical_p=None, top_n_sigma=None,
                  min_tokens_to_keep=1, logit_bias=None, repetition_penalty=1.0,
                  presence_penalty=0.0, frequency_penalty=0.0, penalty_last_n=64,
                  history=None):
    """Draw tokens from ``softmax(logits / temperature)`` after the decoding chain.

    The chain runs in the order llama.cpp and transformers apply it: the logit bias,
    the penalties (repetition, presence, frequency) over the last ``penalty_last_n``
    positions of ``history``, the temperature, then the filters top-n-sigma, top-k,
    top-p, min-p and typical-p, each on the renormalised result of the previous one.
    Tokens are ranked by logit, ties to the lower index. Each filter runs in a few
    passes over the row whatever the distribution (flat, peaked, tied, masked): no
    sort of the vocabulary, no probability array in Python. :func:`filter_logits`
    returns the support that these draws come from; ``tinyllm.reference`` computes
    the same support sets in plain Python.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token. ``-inf`` masks a token; NaN and +inf are errors.
        float32 and float64 are read as they are, other real dtypes as float64.
    temperature : float, default 1.0
        Divides the logits: < 1 sharpens, > 1 flattens. 0 is greedy: the argmax
        (after bias and penalties), ties to the lowest index, in one read-only pass
        (the Generator is then not advanced).
    top_k : int, optional
        Keep the k highest logits (exactly k; ties to the lower index).
    top_p : float in (0, 1], optional
        Keep the smallest set of best-ranked tokens whose probability reaches
        >= top_p (at least one token; 1 keeps all).
    min_p : float in [0, 1], optional
        Keep the tokens with probability >= min_p times the largest one.
    size : int or tuple of ints, optional
        Draws per row, as in :func:`sample`.
    rng : None, int or numpy.random.Generator, optional
        The random stream, as in :func:`sample` (one double per draw).
    {chain}
    Returns
    -------
    int or ndarray of int64
        An int for 1-D ``logits`` and ``size=None``; otherwise an array of shape
        ``size`` (1-D logits), ``(B,)`` or ``(B,) + size`` (2-D logits).

    Raises
    ------
    ValueError
        Empty logits or not 1-D/2-D, NaN or +inf logits, a row that is all -inf
        (also after bias and penalties), an option out of its range, a position of
        ``history`` or ``logit_bias`` out of range, a negative ``size`` or seed.
    TypeError
        A complex, object or non-real dtype; an option of the wrong type (a bool
        for a number, a non-integer ``top_k``); a ``size`` or ``rng`` of another type.

    Notes
    -----
    With filters, bias or penalties, the draw reads the filters' exact integer
    weights ``round(2^K exp((x - max) / T))`` (see ``src/kernels/filters.pxi``);
    with only a temperature, vectorised float weights. Both are the same
    distribution to within 2^-39 relative.

    Examples
    --------
    >>> from tinyllm._sampling import sample_logits
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], temperature=0)
    0
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], top_k=2, size=4, rng=0).shape
    (4,)
    >>> sample_logits([2.0, 1.0, 0.5, -1.0], temperature=0, history=[0],
    ...               repetition_penalty=4.0)
    1
    """
    if only_temperature(size, top_k, top_p, min_p, typical_p, top_n_sigma, min_tokens_to_keep,
                        logit_bias, repetition_penalty, presence_penalty, frequency_penalty,
                        penalty_last_n, history) and is_ready_float(logits, 1):
        t = checked_temperature(temperature, "sample_logits")
        if t > 0.0:
            return sample_logits_one(<cnp.ndarray>logits, t, rng)
        return greedy_one(<cnp.ndarray>logits, rng)
    if ((min_p is None) != (top_k is None)
            and only_temperature(size, None, top_p, None, typical_p, top_n_sigma,
                                 min_tokens_to_keep, logit_bias, repetition_penalty,
                                 presence_penalty, frequency_penalty, penalty_last_n, history)
            and is_ready_float(logits, 1)):
        return few_kept_one(<cnp.ndarray>logits, temperature, top_k, min_p, rng)
    if (size is None and top_k is None and top_p is None and min_p is None
            and typical_p is None and top_n_sigma is None and logit_bias is None
            and history is not None and is_ready_float(logits, 1)):
        # The generation step of a user's own loop: penalties on a history.
        return penalized_one(<cnp.ndarray>logits, temperature, rng, min_tokens_to_keep,
                             repetition_penalty, presence_penalty, frequency_penalty,
                             penalty_last_n, history)
    return sample_logits_general(logits, temperature, top_k, top_p, min_p, size, rng,
                                 (typical_p, top_n_sigma, min_tokens_to_keep, logit_bias,
                                  repetition_penalty, presence_penalty, frequency_penalty,
                                  penalty_last_n, history))


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, out=None, *,
                  typical_p=None, top_n_sigma=None, min_tokens_to_keep=1, logit_bias=None,
                  repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                  penalty_last_n=64, history=None):
    """The logits that :func:`sample_logits` draws from: ``y / temperature`` where the
    filters keep a token, ``-inf`` where they remove it (``y``: the logits after the
    bias and the penalties).

    ``softmax`` of the result is the distribution of the draws; its finite entries
    are the support. Useful to show what each filter does, and to test support
    sets exactly.

    Parameters
    ----------
    logits : array_like, shape (V,) or (B, V)
        Scores, one per token (dtype rules and ``-inf`` masks as in
        :func:`sample_logits`).
    temperature, top_k, top_p, min_p
        As in :func:`sample_logits`. With temperature 0 only the argmax is kept,
        with its logit unscaled.
    out : ndarray, optional
        Writable array of the logits' shape and result dtype to write into (may be
        the logits array itself).
    {chain}
    Returns
    -------
    ndarray, shape (V,) or (B, V)
        float32 for float32 logits, else float64; ``out`` if given.

    Raises
    ------
    ValueError
        As :func:`sample_logits`; also when ``logits / temperature`` overflows the
        dtype, or ``out`` has another shape or is read-only.
    TypeError
        As :func:`sample_logits`; also an ``out`` that is not an array of the
        result's dtype.

    Examples
    --------
    >>> from tinyllm._sampling import filter_logits
    >>> filter_logits([2.0, 1.0, 0.5, -1.0], top_k=2)
    array([  2.,   1., -inf, -inf])
    """
    cdef cnp.ndarray xa = checked_rows(logits, "logits", "filter_logits")
    cdef SamplerOptions opt = checked_sampler_options(temperature, top_k, top_p, min_p,
                                                      typical_p, top_n_sigma,
                                                      min_tokens_to_keep, "filter_logits")
    cdef Penalties pen = checked_penalties(repetition_penalty, presence_penalty,
                                           frequency_penalty, "filter_logits")
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef tuple shape = shape_of(xa)
    cdef Py_ssize_t V = xa.shape[xa.ndim - 1]
    rows = checked_row_values(xa, True, "filter_logits")
    rows = adjusted_rows(rows, xa, (typical_p, top_n_sigma, min_tokens_to_keep, logit_bias,
                                    repetition_penalty, presence_penalty, frequency_penalty,
                                    penalty_last_n, history), &pen, "filter_logits")
    cdef cnp.ndarray r = <cnp.ndarray>rows

    cdef cnp.ndarray result = (
        new_array(shape, typenum) if out is None
        else checked_out(out, shape, typenum, "filter_logits")
    )
    # Write in place when ``result`` is kernel-ready and either is the input's own
    # memory or shares none of it; otherwise through a scratch copy.
    cdef cnp.ndarray target = result
    if not is_kernel_ready(result) or (
        out is not None and may_share_memory(result, rows)
        and cnp.PyArray_DATA(result) != cnp.PyArray_DATA(r)
    ):
        target = new_array(shape, typenum)
    cdef Scratch scratch
    cdef Py_ssize_t bad_row = 0
    cdef int status
    scratch_for(&scratch, V, &opt)
    try:
        if typenum == cnp.NPY_FLOAT:
            status = run_filter_rows(<const float*>cnp.PyArray_DATA(r), r.shape[0], V, &opt,
                                     &scratch.s, <float*>cnp.PyArray_DATA(target), &bad_row)
        else:
            status = run_filter_rows(<const double*>cnp.PyArray_DATA(r), r.shape[0], V, &opt,
                                     &scratch.s, <double*>cnp.PyArray_DATA(target), &bad_row)
    finally:
        give_memory(scratch.memory)
    if status != OK:
        raise ValueError(logits_message("filter_logits", status, xa, bad_row))
    if target is not result:
        result[...] = target
    return result


sample_logits.__doc__ = sample_logits.__doc__.replace("{chain}", _CHAIN_DOC.strip("\n"))
filter_logits.__doc__ = filter_logits.__doc__.replace("{chain}", _CHAIN_DOC.strip("\n"))


def _filter_exp(s):
    """Hook for the tests (not API): the filters' exp (``kernels/filters.pxi``) of a
    1-D float64 array of values <= 0, as the instruction set in use computes it."""
    cdef cnp.ndarray sa = np.ascontiguousarray(s, dtype=np.float64)
    cdef cnp.ndarray out = np.empty_like(sa)
    cdef const Kernels* k = KERNELS[0]
    k.filter_exp_array(<const double*>cnp.PyArray_DATA(sa), <double*>cnp.PyArray_DATA(out),
                       sa.shape[0])
    return out
