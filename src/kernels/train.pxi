# kernels/train.pxi -- the steps of training between its matrix products (which are
# BLAS's, through NumPy): the gather of embedding rows and the activation (the forward
# pass's own, for a batch), softmax cross-entropy and its gradient, back through tanh,
# the scatter of the embeddings' gradient, and the optimizers' updates.
#
#     loss      = mean_b -log softmax(Z[b])[target_b]   cross-entropy
#     dZ        = (softmax(Z) - onehot(target)) / B     its gradient, written over Z
#     dH       *= 1 - H*H                               back through tanh
#     dE       += dX rows, scattered back to the rows they came from
#
# SGD with momentum (PyTorch's form):  v = mu v + g;   p -= lr v
# Adam (Kingma & Ba 2015):  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
#                           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
# Both after decoupled weight decay, p *= keep = 1 - lr wd (see the optimizers below).
#
# Each kernel is one pass over its data. The optimizers record the largest magnitude
# of what they write (an integer max of the bit patterns: it vectorises, and a NaN is
# larger than any number), from which the caller bounds the next update.

from cython cimport floating
from libc.math cimport INFINITY, NAN, isfinite, log, tanh
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset
from numpy cimport intp_t

cdef extern from *:
    """
    /* sqrt of each number of a short buffer, in place, with SIMD instructions. The
       optimizer loops cannot call libm's sqrt: without -fno-math-errno gcc keeps it a
       scalar call (it may set errno), and the whole loop stays scalar. */
    #include <math.h>
    #if defined(__AVX__)
    #include <immintrin.h>
    #define TINYLLM_AVX 1
    #elif defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
    #include <emmintrin.h>
    #define TINYLLM_SSE2 1
    #endif
    static inline void tinyllm_sqrt_f32(float* x, Py_ssize_t n) {
        Py_ssize_t i = 0;
    #if defined(TINYLLM_AVX)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
    #elif defined(TINYLLM_SSE2)
        for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
    #endif
        for (; i < n; i++) x[i] = sqrtf(x[i]);
    }
    static inline void tinyllm_sqrt_f64(double* x, Py_ssize_t n) {
        Py_ssize_t i = 0;
    #if defined(TINYLLM_AVX)
        for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
    #elif defined(TINYLLM_SSE2)
        for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
    #endif
        for (; i < n; i++) x[i] = sqrt(x[i]);
    }
    """
    void tinyllm_sqrt_f32(float* x, Py_ssize_t n) noexcept nogil
    void tinyllm_sqrt_f64(double* x, Py_ssize_t n) noexcept nogil

cdef enum:
    ADAM_BLOCK = 256     # numbers per block of the Adam update (its buffers stay in L1)


# ===========================================================================
# Small helpers: |x| as bits (for max reductions that vectorise), sqrt of a buffer
# ===========================================================================

cdef inline uint32_t abs_bits32(float x) noexcept nogil:
    """The bits of |x|: ordered as |x| is, with inf above every number and NaN above inf."""
    return _bits32(x) & <uint32_t>0x7FFFFFFF


cdef inline uint64_t abs_bits64(double x) noexcept nogil:
    """The bits of |x|, as abs_bits32."""
    return _bits64(x) & <uint64_t>0x7FFFFFFFFFFFFFFF


cdef inline void vsqrt(floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        tinyllm_sqrt_f32(x, n)
    else:
        tinyllm_sqrt_f64(x, n)


cdef double absmax(const floating* x, Py_ssize_t n) noexcept nogil:
    """max |x_i| (0 for n = 0); NaN if some x_i is NaN, inf if one is infinite."""
    cdef Py_ssize_t i
    cdef uint32_t m32 = 0, u32
    cdef uint64_t m64 = 0, u64
    if floating is float:
        for i in range(n):
            u32 = abs_bits32(x[i])
            m32 = u32 if u32 > m32 else m32
        return _from_bits32(m32)
    else:
        for i in range(n):
            u64 = abs_bits64(x[i])
            m64 = u64 if u64 > m64 else m64
        return _from_bits64(m64)


# ===========================================================================
# Forward
# ===========================================================================

cdef void gather(const floating* E, Py_ssize_t d, const intp_t* windows, Py_ssize_t B,
                 Py_ssize_t c, floating* X) noexcept nogil:
    """X[b] (c*d,) = E[windows[b, 0]], ..., E[windows[b, c-1]] side by side, b < B (the
    blog's flatten: forward_row's gather, for a batch)."""
    cdef Py_ssize_t b, t
    for b in range(B):
        for t in range(c):
            memcpy(X + (b * c + t) * d, E + windows[b * c + t] * d, d * sizeof(floating))


cdef void tanh_all(floating* H, Py_ssize_t n) noexcept nogil:
    """H_i = tanh(H_i): the hidden layer's activation (libm's tanh, as forward_row)."""
    cdef Py_ssize_t i
    for i in range(n):
        H[i] = tanh(H[i])


# ===========================================================================
# Loss: softmax cross-entropy and its gradient
# ===========================================================================

cdef double xent_row(floating* z, Py_ssize_t V, intp_t target, double scale,
                     bint grad) noexcept nogil:
    """-log softmax(z)[target]; with ``grad``, z becomes (softmax(z) - onehot) * scale
    (without, z is overwritten with exp(z - max z)).

    softmax.pxi's passes, so softmax and the cross-entropy share one exp and one sum:
    the max; exp(z_i - m) (every exponent <= 0) over z, summed in double; the
    scaling. NaN or +inf in z gives a NaN loss.
    """
    cdef double m = row_max(z, V)
    cdef double total, loss
    cdef floating s
    cdef Py_ssize_t i
    if not isfinite(m):                  # +inf (or all -inf): not a distribution
        return NAN
    loss = -(<double>z[target] - m)      # NaN if z held a NaN (then so is the sum)
    if floating is float:
        total = exp_sum(z, z, V, m, 1.0, False, <FloatShift*>NULL)
    else:
        total = exp_sum(z, z, V, m, 1.0, False, <DoubleShift*>NULL)
    loss += log(total)
    if grad:
        s = <floating>(scale / total)
        for i in range(V):
            z[i] = z[i] * s
        z[target] -= <floating>scale
    return loss


cdef double xent(floating* Z, Py_ssize_t B, Py_ssize_t V, const intp_t* targets, double scale,
                 bint grad, double* losses) noexcept nogil:
    """Sum over the B rows of Z (B, V) of the cross-entropy (each in ``losses`` if not
    NULL); see xent_row."""
    cdef Py_ssize_t b
    cdef double total = 0.0, loss
    for b in range(B):
        loss = xent_row(Z + b * V, V, targets[b], scale, grad)
        if losses != NULL:
            losses[b] = loss
        total += loss
    return total


# ===========================================================================
# Backward (the products are BLAS's; these are the steps between them)
# ===========================================================================

cdef void tanh_backward(floating* dHt, const floating* H, Py_ssize_t h,
                        Py_ssize_t B) noexcept nogil:
    """dH *= 1 - H*H (H (B, h) holds tanh's output: tanh' = 1 - tanh^2); dHt (h, B) is
    dH transposed."""
    cdef Py_ssize_t b, j
    for j in range(h):
        for b in range(B):
            dHt[j * B + b] = dHt[j * B + b] * (1 - H[b * h + j] * H[b * h + j])


cdef void scatter_rows(const floating* dX, const intp_t* windows, Py_ssize_t B, Py_ssize_t c,
                       floating* dE, Py_ssize_t d) noexcept nogil:
    """dE[windows[b, t]] += dX[b, t*d:(t+1)*d] (a token repeated in a window adds up)."""
    cdef Py_ssize_t b, t, k
    cdef floating* row
    for b in range(B):
        for t in range(c):
            row = dE + windows[b * c + t] * d
            for k in range(d):
                row[k] += dX[(b * c + t) * d + k]


cdef double rows_absmax(const floating* dE, Py_ssize_t d, const intp_t* windows,
                        Py_ssize_t n_rows) noexcept nogil:
    """max |dE| over the n_rows rows that ``windows`` names (the only rows a batch writes)."""
    cdef Py_ssize_t i
    cdef double m = 0.0, r
    for i in range(n_rows):
        r = absmax(dE + windows[i] * d, d)
        if not (r <= m):             # NaN sticks
            m = r
    return m


cdef void clear_rows(floating* dE, Py_ssize_t d, const intp_t* windows,
                     Py_ssize_t n_rows) noexcept nogil:
    """dE[windows[i]] = 0 for i < n_rows: dE is zero again between steps."""
    cdef Py_ssize_t i
    for i in range(n_rows):
        memset(dE + windows[i] * d, 0, d * sizeof(floating))


# ===========================================================================
# Optimizers: one pass over each weight array
#
# SGD with momentum (PyTorch's form):  v = mu v + g;   p -= lr v
# Adam (Kingma & Ba 2015):  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
#                           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
# Each first shrinks the weight by ``keep = 1 - lr wd``: decoupled weight decay
# (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), applied as
# torch.optim.AdamW does, p *= 1 - lr wd before the step, which reads only g (keep = 1:
# no decay, and the same numbers as without it).
# With ``apply`` the new values are stored; without, only computed (the exact check).
# Either way ``maxes`` receives the largest magnitudes of what was (or would be)
# written: [new p, new velocity or m, new v], NaN or inf if any of them is not finite.
# The float32 arithmetic stays in float32 (8 numbers per AVX2 instruction).
# ===========================================================================

cdef void sgd(floating* p, const floating* g, floating* vel, Py_ssize_t n,
              floating lr, floating mu, floating keep, bint apply, double* maxes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v, q
    cdef uint32_t pm32 = 0, vm32 = 0, u32
    cdef uint64_t pm64 = 0, vm64 = 0, u64
    for i in range(n):
        v = mu * vel[i] + g[i]
        q = p[i] * keep - lr * v
        if apply:
            vel[i] = v
            p[i] = q
        if floating is float:
            u32 = abs_bits32(q)
            pm32 = u32 if u32 > pm32 else pm32
            u32 = abs_bits32(v)
            vm32 = u32 if u32 > vm32 else vm32
        else:
            u64 = abs_bits64(q)
            pm64 = u64 if u64 > pm64 else pm64
            u64 = abs_bits64(v)
            vm64 = u64 if u64 > vm64 else vm64
    if floating is float:
        maxes[0] = _from_bits32(pm32)
        maxes[1] = _from_bits32(vm32)
    else:
        maxes[0] = _from_bits64(pm64)
        maxes[1] = _from_bits64(vm64)
    maxes[2] = 0.0


cdef void adam(floating* p, const floating* g, floating* m1, floating* m2, Py_ssize_t n,
               floating lr, floating b1, floating b2, floating eps, floating c1, floating c2,
               floating keep, bint apply, double* maxes) noexcept nogil:
    """``c1 = 1 / (1 - b1^t)`` and ``c2 = 1 / (1 - b2^t)`` are the bias corrections.

    In blocks of ADAM_BLOCK numbers: the new moments into two small buffers (and m1, m2),
    sqrt of the second with SIMD instructions, then the new weights.
    """
    cdef floating abuf[ADAM_BLOCK]
    cdef floating sbuf[ADAM_BLOCK]
    cdef Py_ssize_t i0, i, nb
    cdef floating a, b, gi, q, one = 1
    cdef uint32_t pm32 = 0, am32 = 0, bm32 = 0, u32
    cdef uint64_t pm64 = 0, am64 = 0, bm64 = 0, u64
    cdef floating* pp
    cdef const floating* gp
    cdef floating* ap
    cdef floating* bp
    i0 = 0
    while i0 < n:
        nb = n - i0 if n - i0 < ADAM_BLOCK else ADAM_BLOCK
        pp = p + i0
        gp = g + i0
        ap = m1 + i0
        bp = m2 + i0
        for i in range(nb):
            gi = gp[i]
            a = b1 * ap[i] + (one - b1) * gi
            b = b2 * bp[i] + (one - b2) * gi * gi
            abuf[i] = a
            sbuf[i] = b * c2
            if floating is float:
                u32 = abs_bits32(a)
                am32 = u32 if u32 > am32 else am32
                u32 = abs_bits32(b)
                bm32 = u32 if u32 > bm32 else bm32
            else:
                u64 = abs_bits64(a)
                am64 = u64 if u64 > am64 else am64
                u64 = abs_bits64(b)
                bm64 = u64 if u64 > bm64 else bm64
            if apply:
                ap[i] = a
                bp[i] = b
        vsqrt(sbuf, nb)
        for i in range(nb):
            q = pp[i] * keep - lr * (abuf[i] * c1) / (sbuf[i] + eps)
            if apply:
                pp[i] = q
            if floating is float:
                u32 = abs_bits32(q)
                pm32 = u32 if u32 > pm32 else pm32
            else:
                u64 = abs_bits64(q)
                pm64 = u64 if u64 > pm64 else pm64
        i0 += ADAM_BLOCK
    if floating is float:
        maxes[0] = _from_bits32(pm32)
        maxes[1] = _from_bits32(am32)
        maxes[2] = _from_bits32(bm32)
    else:
        maxes[0] = _from_bits64(pm64)
        maxes[1] = _from_bits64(am64)
        maxes[2] = _from_bits64(bm64)
