# kernels/generate.pxi -- the model's forward pass, and the generation loop built on it.
#
#     x (c*d,)    = E[context[0]], ..., E[context[c-1]]    gather, row by row (the blog's flatten)
#     f1 (h,)     = x @ W1          (tanh(x @ W1) for a model with activation="tanh")
#     logits (V,) = f1 @ W2
#
# forward_row is the one forward pass of tinyllm: TinyLM.logits and trace call it
# through the _generate module, and the generation loop calls it once per token.
# (Training runs the same gather and tanh kernels, with its batch products on BLAS.)
#
# The loop applies the logit bias and penalties (filters.pxi's adjust_logits), draws
# a token from the logits (sampling.pxi's draw_from_logits), appends
# it to the context and runs the forward pass for the next one: every token of a
# call in one nogil call, no Python round trip, no allocation (the buffers are the
# caller's, in the GenerationState).

from cython cimport floating
from libc.math cimport tanh
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memmove

from _defs cimport NOT_FINITE, OK, GenerationState, Weights, tinyllm_packed

cdef enum:
    SMALL_COPY = 16       # embedding rows and contexts this short are copied by a loop


cdef int forward_row(const Weights* m, const int64_t* positions, floating* x, floating* f1,
                     floating* logits, double* acc, void* packed_scratch) noexcept nogil:
    """The forward pass of one context of c positions: x, f1 and the logits.

    ``acc`` holds project_scratch(1, max(h, V)) doubles, and ``packed_scratch``
    weights_scratch(m, 1) bytes when W1 or W2 is packed (float32 models only; then
    f1 or f2 is packed.h's projection, with the bits of project_one's). Returns
    NOT_FINITE when a logit is not finite (the weights are, but their products can
    overflow), else OK.

    Small models (the blog's: V = 5, d = 2, c = 3, h = 1) spend most of a step on
    fixed costs, not arithmetic: small projections keep their accumulators in
    registers (project_one), and short rows are copied by loops instead of memcpy.
    The arithmetic is the same, in the same order: the numbers do not depend on it.
    """
    cdef Py_ssize_t bad_row
    gather_context(m, positions, x)
    return forward_gathered(m, 1, x, f1, logits, acc, packed_scratch, &bad_row)


cdef inline int forward_gathered(const Weights* m, Py_ssize_t B, floating* x, floating* f1,
                                 floating* logits, double* acc, void* packed_scratch,
                                 Py_ssize_t* bad_row) noexcept nogil:
    """f1 and the logits of B gathered contexts x (B, c*d): forward_row's rest, for one
    row or a batch. Returns NOT_FINITE, with ``bad_row`` the first row whose logits are
    not finite, else OK."""
    cdef Py_ssize_t b, cd = m.c * m.d
    cdef bint finite = project_weights(m.W1_packed, m.W1, x, B, cd, m.h, f1, acc,
                                       packed_scratch)
    if finite:
        hidden_activation(m, f1, B * m.h)
        finite = project_weights(m.W2_packed, m.W2, f1, B, m.h, m.V, logits, acc,
                                 packed_scratch)
    for b in range(B):
        if not (finite and row_all_finite(logits + b * m.V, m.V)):
            bad_row[0] = b
            return NOT_FINITE
    return OK


cdef inline bint project_weights(const tinyllm_packed* packed, const void* W,
                                 const floating* H, Py_ssize_t B, Py_ssize_t k, Py_ssize_t n,
                                 floating* out, double* acc,
                                 void* packed_scratch) noexcept nogil:
    """out (B, n) = H (B, k) @ W (k, n): packed.h's kernel when W is packed (float32
    models), else project_one (one row) or project_rows -- the same bits every way.
    False if the packed int8 kernel met a row of H that is not finite."""
    if floating is float:
        if packed != NULL:
            return packed_project(packed, H, B, out, packed_scratch)
    if B == 1:
        project_one(H, <const floating*>W, k, n, out, acc)
    else:
        project_rows(H, B, <const floating*>W, k, n, out, acc)
    return True


cdef inline void gather_context(const Weights* m, const int64_t* positions,
                                floating* x) noexcept nogil:
    """x (c*d,) = the embeddings of the c positions, row after row."""
    cdef const floating* E = <const floating*>m.E
    cdef const floating* row
    cdef Py_ssize_t i, j, d = m.d
    for j in range(m.c):
        row = E + positions[j] * d
        if d <= SMALL_COPY:
            for i in range(d):
                x[j * d + i] = row[i]
        else:
            memcpy(x + j * d, row, d * sizeof(floating))


cdef inline void hidden_activation(const Weights* m, floating* f1, Py_ssize_t n) noexcept nogil:
    """f1 = tanh(f1) for a model with activation="tanh"; nothing otherwise."""
    cdef Py_ssize_t j
    if m.tanh:
        for j in range(n):
            f1[j] = tanh(f1[j])


cdef inline void remember(GenerationState* g, int64_t token) noexcept nogil:
    """Append a drawn token to the penalties' window (dropping the oldest when full)."""
    if g.window_limit == 0:
        return
    if g.n_window == g.window_limit:
        memmove(g.window, g.window + 1, (g.window_limit - 1) * sizeof(int64_t))
        g.n_window -= 1
    g.window[g.n_window] = token
    g.n_window += 1


cdef int generate_tokens(GenerationState* g, floating* logits, int64_t* out, Py_ssize_t n,
                         Py_ssize_t* done) noexcept nogil:
    """out[0:n] = the next n tokens, each drawn from the logits of the current context,
    then appended to it (the context is g.context, updated in place).

    ``logits`` (V,) holds the logits of the current context when ``g.have_logits``
    (the caller may compute them ahead, to check them); otherwise the forward pass
    runs first; then the logit bias and the penalties change it in place. Returns
    NOT_FINITE if a step's logits are not finite, FOUND_POSINF or NO_FINITE if the bias
    and penalties make one +inf or leave none, with ``done`` the tokens written.
    """
    cdef Py_ssize_t step
    cdef Py_ssize_t token
    cdef int status
    for step in range(n):
        done[0] = step
        if not g.have_logits:
            if forward_row(&g.weights, g.context, <floating*>g.x, <floating*>g.f1, logits,
                           g.acc, g.packed_scratch) != OK:
                return NOT_FINITE
        if g.penalties.n_bias or (g.penalties.active and g.n_window):
            status = adjust_logits(logits, g.weights.V, &g.penalties, g.window, g.n_window,
                                   g.sorted_window)
            if status != OK:
                return status          # FOUND_POSINF or NO_FINITE
        token = draw_from_logits(logits, g.weights.V, &g.options, &g.scratch, g.rng)
        g.have_logits = False
        out[step] = token
        append_token(g, token)
    done[0] = n
    return OK


cdef inline void append_token(GenerationState* g, int64_t token) noexcept nogil:
    """The drawn token joins the penalties' window and the end of the context."""
    cdef Py_ssize_t j, c = g.weights.c
    remember(g, token)
    if c <= SMALL_COPY:
        for j in range(c - 1):
            g.context[j] = g.context[j + 1]
    else:
        memmove(g.context, g.context + 1, (c - 1) * sizeof(int64_t))
    g.context[c - 1] = token


cdef int generate_batch(GenerationState** gs, Py_ssize_t B, floating* X, floating* F1,
                        floating* logits, double* acc, void* packed_scratch,
                        bint* have_logits, int64_t* out, Py_ssize_t out_stride, Py_ssize_t n,
                        Py_ssize_t* done, Py_ssize_t* bad_row) noexcept nogil:
    """generate_tokens for B sequences of one model at once: out[b * out_stride + s] is
    token s of sequence b, for s < n.

    Each step runs the forward pass of the B contexts as batch products -- X (B, c*d),
    F1 (B, h), logits (B, V): W1 and W2 are read once per step for the whole batch --
    then filters and draws each row with its own sequence's options, penalties and
    Generator. project_rows and packed_project give a batch row the bits of its
    single projection, so sequence b gets the tokens generate_tokens gives it alone.

    ``logits`` holds the batch's logits when ``have_logits[0]`` (the first step's,
    computed when the sequences were made). ``acc`` holds project_scratch(B, max(h, V))
    doubles, ``packed_scratch`` weights_scratch(m, B) bytes. Returns as
    generate_tokens, with ``bad_row`` the sequence whose step failed.
    """
    cdef const Weights* m = &gs[0].weights
    cdef Py_ssize_t step, b, V = m.V, cd = m.c * m.d
    cdef GenerationState* g
    cdef floating* row
    cdef int status
    for step in range(n):
        done[0] = step
        if not have_logits[0]:
            for b in range(B):
                gather_context(m, gs[b].context, X + b * cd)
            if forward_gathered(m, B, X, F1, logits, acc, packed_scratch, bad_row) != OK:
                return NOT_FINITE
        have_logits[0] = False
        for b in range(B):
            g = gs[b]
            row = logits + b * V
            if g.penalties.n_bias or (g.penalties.active and g.n_window):
                status = adjust_logits(row, V, &g.penalties, g.window, g.n_window,
                                       g.sorted_window)
                if status != OK:
                    bad_row[0] = b
                    return status
            out[b * out_stride + step] = draw_from_logits(row, V, &g.options, &g.scratch,
                                                          g.rng)
            append_token(g, out[b * out_stride + step])
    done[0] = n
    return OK
