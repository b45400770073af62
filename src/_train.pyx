"""Training kernels: the forward pass on a batch, its gradients, and the optimizer steps.

One training step on a batch of B windows of c tokens (V tokens, d dims, h hidden, D = c*d):

    X  (B, D) = rows E[window] side by side          gather
    H  (B, h) = X @ W1        [ H = tanh(X @ W1) ]   f1 (optionally through tanh)
    Z  (B, V) = H @ W2                               f2: the logits
    loss      = mean_b -log softmax(Z[b])[target_b]  cross-entropy
    dZ        = (softmax(Z) - onehot(target)) / B    its gradient, written over Z
    dW2 (h, V) = H^T @ dZ
    dH  (B, h) = dZ @ W2^T    [ dH *= 1 - H*H ]      back through tanh
    dW1 (D, h) = X^T @ dH
    dX  (B, D) = dH @ W1^T
    dE  (V, d) += dX rows, scattered back to the rows they came from
    then SGD with momentum or Adam on E, W1, W2.

Who does what. The matrix products (three of them B x h x V: nearly all the
arithmetic) go to NumPy's BLAS: ``np.matmul(..., out=...)`` into scratch arrays
allocated once per TrainState, the transposes being views (BLAS reads them
transposed; nothing is copied). Everything else is a ``noexcept nogil`` kernel here,
each one pass over its data: the gather and scatter of embedding rows, tanh, the
softmax + cross-entropy + gradient of a row (_fastmath's vectorised exp), and the
optimizer update of each weight array (momentum/moments, bias correction and the
new weight in one pass, no temporaries).

Finiteness. A step whose loss, gradients or new weights would not be finite must
change nothing. The loss is checked first. The update pass itself records the
largest magnitude of every weight, moment and velocity it writes (an integer max of
the bit patterns: it vectorises, and a NaN is larger than any number), and the
gradients' largest magnitudes are known cheaply (dE and dW1 are small; |dW2| <=
max|H|, since every entry of dZ is at most 1/B in magnitude). From these a few lines of arithmetic bound every number the next
update can produce; only when that bound does not prove the update finite is the
exact check made: a pass that computes every new value without storing it.

Layout: the kernels (``noexcept nogil``, fused float/double, trusting their inputs) in
the order data flows -- forward, loss, backward, optimizers -- then the
Python-facing entry points that validate, call BLAS and the kernels.
"""

cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, NAN, isfinite, log, tanh
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

from _common cimport as_float_array
from _fastmath cimport (
    CHUNK,
    LANES,
    _bits32,
    _bits64,
    _from_bits32,
    _from_bits64,
    fast_exp,
    fast_expf,
    row_max,
)

import numpy as np
from time import perf_counter

cnp.import_array()

ctypedef cnp.intp_t intp_t

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
    OB = 256      # numbers per block of the Adam update (its buffers stay in L1)

cdef enum Optim:
    SGD = 0
    ADAM = 1


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

cdef void gather(const floating[:, ::1] E, const intp_t[:, ::1] windows,
                 floating[:, ::1] X) noexcept nogil:
    """X[b] = E[windows[b, 0]], E[windows[b, 1]], ... side by side (the blog's flatten)."""
    cdef Py_ssize_t b, t, d = E.shape[1]
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            memcpy(&X[b, t * d], &E[windows[b, t], 0], d * sizeof(floating))


cdef void tanh_rows(floating[:, ::1] H) noexcept nogil:
    cdef Py_ssize_t b, j
    for b in range(H.shape[0]):
        for j in range(H.shape[1]):
            H[b, j] = tanh(H[b, j])


# ===========================================================================
# Loss: softmax cross-entropy and its gradient
# ===========================================================================

cdef inline floating exp_of(floating x) noexcept nogil:
    if floating is float:
        return fast_expf(x)
    else:
        return fast_exp(x)


cdef double xent_row(floating* z, Py_ssize_t V, intp_t target, double scale,
                     bint grad) noexcept nogil:
    """-log softmax(z)[target]; with ``grad``, z becomes (softmax(z) - onehot) * scale.

    Stable: max subtracted first, so every exponent is <= 0; the sum ends in double.
    NaN or +inf in z gives a NaN loss. Three passes over the row (it stays in L2),
    each in LANES independent lanes so that it vectorises: the max; the
    exponentials, summed (and, with ``grad``, stored over z); the scaling.
    """
    cdef floating part[LANES]
    cdef double lanes[LANES]
    cdef Py_ssize_t b, i, j, blocks = V // LANES
    cdef floating m, e
    cdef double total = 0.0, loss
    m = row_max(z, V)
    if not isfinite(m):                  # +inf (or all -inf): not a distribution
        return NAN
    loss = -(<double>z[target] - m)      # NaN if z held a NaN (then so is the sum)
    for j in range(LANES):
        part[j] = 0
        lanes[j] = 0.0
    for b in range(blocks):
        i = b * LANES
        if grad:
            for j in range(LANES):
                e = exp_of(<floating>(z[i + j] - m))
                z[i + j] = e
                part[j] += e
        else:
            for j in range(LANES):
                part[j] += exp_of(<floating>(z[i + j] - m))
        if b % CHUNK == CHUNK - 1 or b == blocks - 1:
            for j in range(LANES):
                lanes[j] += part[j]
                part[j] = 0
    for i in range(blocks * LANES, V):
        e = exp_of(<floating>(z[i] - m))
        if grad:
            z[i] = e
        total += e
    for j in range(LANES):
        total += lanes[j]
    loss += log(total)
    if grad:
        e = <floating>(scale / total)
        for j in range(V):
            z[j] = z[j] * e
        z[target] -= <floating>scale
    return loss


cdef double xent(floating[:, ::1] Z, const intp_t[::1] targets, double scale, bint grad,
                 double* losses) noexcept nogil:
    """Sum over rows of the cross-entropy (each in ``losses`` if not NULL); see xent_row."""
    cdef Py_ssize_t b, V = Z.shape[1]
    cdef double total = 0.0, loss
    for b in range(Z.shape[0]):
        loss = xent_row(&Z[b, 0], V, targets[b], scale, grad)
        if losses != NULL:
            losses[b] = loss
        total += loss
    return total


# ===========================================================================
# Backward (the products are BLAS's; these are the steps between them)
# ===========================================================================

cdef void tanh_backward(floating[:, ::1] dHt, const floating[:, ::1] H) noexcept nogil:
    """dH *= 1 - H*H (H holds tanh's output: tanh' = 1 - tanh^2); dHt is dH transposed."""
    cdef Py_ssize_t b, j
    for j in range(dHt.shape[0]):
        for b in range(dHt.shape[1]):
            dHt[j, b] = dHt[j, b] * (1 - H[b, j] * H[b, j])


cdef void scatter_rows(const floating[:, ::1] dX, const intp_t[:, ::1] windows,
                       floating[:, ::1] dE) noexcept nogil:
    """dE[windows[b, t]] += dX[b, t*d:(t+1)*d] (a token repeated in a window adds up)."""
    cdef Py_ssize_t b, t, k, d = dE.shape[1], row
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            row = windows[b, t]
            for k in range(d):
                dE[row, k] += dX[b, t * d + k]


cdef double rows_absmax(const floating[:, ::1] dE, const intp_t[:, ::1] windows) noexcept nogil:
    """max |dE| over the rows the windows name (the only rows a batch writes)."""
    cdef Py_ssize_t b, t
    cdef double m = 0.0, r
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            r = absmax(&dE[windows[b, t], 0], dE.shape[1])
            if not (r <= m):             # NaN sticks
                m = r
    return m


cdef void clear_rows(floating[:, ::1] dE, const intp_t[:, ::1] windows) noexcept nogil:
    """dE[windows[b, t]] = 0: dE is zero again between steps."""
    cdef Py_ssize_t b, t
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            memset(&dE[windows[b, t], 0], 0, dE.shape[1] * sizeof(floating))


# ===========================================================================
# Optimizers: one pass over each weight array
#
# SGD with momentum (PyTorch's form):  v = mu v + g;   p -= lr v
# Adam (Kingma & Ba 2015):  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
#                           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
# With ``apply`` the new values are stored; without, only computed (the exact check).
# Either way ``maxes`` receives the largest magnitudes of what was (or would be)
# written: [new p, new velocity or m, new v], NaN or inf if any of them is not finite.
# The float32 arithmetic stays in float32 (8 numbers per AVX2 instruction).
# ===========================================================================

cdef void sgd(floating* p, const floating* g, floating* vel, Py_ssize_t n,
              floating lr, floating mu, bint apply, double* maxes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v, q
    cdef uint32_t pm32 = 0, vm32 = 0, u32
    cdef uint64_t pm64 = 0, vm64 = 0, u64
    for i in range(n):
        v = mu * vel[i] + g[i]
        q = p[i] - lr * v
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
               bint apply, double* maxes) noexcept nogil:
    """``c1 = 1 / (1 - b1^t)`` and ``c2 = 1 / (1 - b2^t)`` are the bias corrections.

    In blocks of OB numbers: the new moments into two small buffers (and m1, m2),
    sqrt of the second with SIMD instructions, then the new weights.
    """
    cdef floating abuf[OB]
    cdef floating sbuf[OB]
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
        nb = n - i0 if n - i0 < OB else OB
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
            q = pp[i] - lr * (abuf[i] * c1) / (sbuf[i] + eps)
            if apply:
                pp[i] = q
            if floating is float:
                u32 = abs_bits32(q)
                pm32 = u32 if u32 > pm32 else pm32
            else:
                u64 = abs_bits64(q)
                pm64 = u64 if u64 > pm64 else pm64
        i0 += OB
    if floating is float:
        maxes[0] = _from_bits32(pm32)
        maxes[1] = _from_bits32(am32)
        maxes[2] = _from_bits32(bm32)
    else:
        maxes[0] = _from_bits64(pm64)
        maxes[1] = _from_bits64(am64)
        maxes[2] = _from_bits64(bm64)


# ===========================================================================
# Entry points
# ===========================================================================

def cross_entropy_grad(logits, targets, double scale=1.0):
    """Softmax cross-entropy of each row and its gradient w.r.t. the logits.

    Parameters
    ----------
    logits : array_like, shape (B, V)
        Finite scores, float32 or float64 (other real dtypes become float64).
    targets : array_like of int, shape (B,)
        The index of the right token of each row, in ``[0, V)``.
    scale : float, default 1.0
        Multiplies the gradient (``1 / B`` gives the gradient of the mean).

    Returns
    -------
    losses : ndarray of float64, shape (B,)
        ``-log softmax(logits[b])[targets[b]]``.
    grad : ndarray, shape (B, V), the dtype of ``logits``
        ``(softmax(logits[b]) - onehot(targets[b])) * scale``.

    Raises
    ------
    ValueError
        Shapes do not match, a target is out of range, a logit is not finite.
    TypeError
        Non-real logits or non-integer targets.
    """
    cdef cnp.ndarray la = as_float_array(logits, "cross_entropy_grad: logits")
    if la.ndim != 2 or la.shape[0] == 0 or la.shape[1] == 0:
        raise ValueError(f"cross_entropy_grad: logits must be a non-empty (B, V) matrix, "
                         f"got shape {(<object>la).shape}")
    ta = _positions(targets, "cross_entropy_grad: targets", la.shape[1])
    if ta.ndim != 1 or ta.shape[0] != la.shape[0]:
        raise ValueError(f"cross_entropy_grad: targets have shape {ta.shape}, "
                         f"expected ({la.shape[0]},)")
    if not np.isfinite(la).all():
        raise ValueError("cross_entropy_grad: logits contain NaN or infinite values")
    grad = np.array(la, order="C", copy=True)
    losses = np.empty(la.shape[0], dtype=np.float64)
    cdef double[::1] lv = losses
    cdef const intp_t[::1] tv = ta
    cdef float[:, ::1] g32
    cdef double[:, ::1] g64
    if grad.dtype == np.float32:
        g32 = grad
        with nogil:
            xent(g32, tv, scale, True, &lv[0])
    else:
        g64 = grad
        with nogil:
            xent(g64, tv, scale, True, &lv[0])
    return losses, grad


cdef object _positions(object values, str name, Py_ssize_t limit):
    """``values`` as a C-contiguous intp array with every entry in [0, limit)."""
    arr = np.asarray(values)
    if arr.size == 0:
        arr = arr.astype(np.intp)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= limit):
        bad = arr[(arr < 0) | (arr >= limit)].flat[0]
        raise ValueError(f"{name}: position {int(bad)} is out of range for {limit} tokens")
    return np.ascontiguousarray(arr, dtype=np.intp)


#: The phases of TrainState.step, in the order they run (see TrainState._phase_seconds).
_PHASES = ("gather + f1", "f2 = H W2", "softmax + xent + dZ", "dW2 = H^T dZ", "dH^T = W2 dZ^T",
           "dW1, dX, scatter", "finiteness check", "optimizer update")
cdef enum:
    N_PHASES = 8

# Overflow in a product is reported as a non-finite loss or update, not as a warning.
_QUIET = dict(over="ignore", invalid="ignore", divide="ignore")


@cython.auto_pickle(False)
cdef class TrainState:
    """The weights being trained, the optimizer's moments and the step's scratch space.

    Parameters
    ----------
    E, W1, W2 : array_like, shapes (V, d), (c*d, h), (h, V)
        The starting weights (copied; float32 if all three are float32, else float64).
    tanh : bool, default False
        The hidden layer is ``tanh(x @ W1)`` instead of ``x @ W1``.
    optimizer : {"adam", "sgd"}, default "adam"
    batch_size : int, default 32
        The largest batch :meth:`step` accepts (scratch space is sized for it).
    momentum : float, default 0.9
        SGD's momentum ``mu`` (0 is plain SGD).
    beta1, beta2, eps : float, default 0.9, 0.999, 1e-8
        Adam's parameters.

    Notes
    -----
    :meth:`step` runs forward, loss, backward and the update: the matrix products on
    NumPy's BLAS (with as many threads as NumPy's BLAS is allowed), everything else
    in kernels on one thread without the GIL. A step whose loss, gradients or updated
    weights would not be finite raises ``FloatingPointError`` and leaves the weights
    and moments as they were. (The weights are the state's own: ``E``, ``W1`` and
    ``W2`` are meant to be read; the finiteness check relies on the largest weight
    the state itself wrote.)
    """

    cdef readonly object E, W1, W2          # the weights (writable copies, C order)
    cdef readonly bint tanh
    cdef readonly str optimizer
    cdef readonly Py_ssize_t batch_size
    cdef readonly long steps                 # updates applied so far (Adam's t)
    cdef readonly double momentum, beta1, beta2, eps
    cdef object dE, dW1, dW2                 # gradients (dE kept zero between steps)
    cdef object s1, s2                       # SGD velocity / Adam m, v: one list per weight
    cdef object X, H, Z, dH, dX              # per-batch scratch
    cdef bint f32
    cdef Py_ssize_t V, d, c, h
    # Per weight k (E, W1, W2): the largest |p|, |velocity or m| and v as last written,
    # at 3k, 3k+1, 3k+2. They bound what the next update can produce.
    cdef double tracked[9]
    cdef double seconds[N_PHASES]            # the last step's phases

    def __init__(self, E, W1, W2, *, tanh=False, optimizer="adam", batch_size=32,
                 momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8):
        arrays = [as_float_array(a, f"TrainState: {n}") for a, n in ((E, "E"), (W1, "W1"), (W2, "W2"))]
        if any(a.ndim != 2 or a.size == 0 for a in arrays):
            raise ValueError("TrainState: E, W1 and W2 must be non-empty 2-D matrices, got shapes "
                             + ", ".join(str(a.shape) for a in arrays))
        Ea, W1a, W2a = arrays
        V, d = Ea.shape
        D, h = W1a.shape
        if D % d or W2a.shape != (h, V):
            raise ValueError(f"TrainState: shapes E {Ea.shape}, W1 {W1a.shape}, W2 {W2a.shape} "
                             f"do not fit: need (V, d), (c*d, h), (h, V)")
        for a, n in zip(arrays, ("E", "W1", "W2")):
            if not np.isfinite(a).all():
                raise ValueError(f"TrainState: {n} contains NaN or infinite values")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"TrainState: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"TrainState: batch_size must be an integer >= 1, got {batch_size!r}")
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"TrainState: momentum must be in [0, 1), got {momentum!r}")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"TrainState: beta1 and beta2 must be in [0, 1), got {beta1!r}, {beta2!r}")
        if not (eps > 0.0 and isfinite(eps)):
            raise ValueError(f"TrainState: eps must be finite and > 0, got {eps!r}")
        self.f32 = all(a.dtype == np.float32 for a in arrays)
        dt = np.float32 if self.f32 else np.float64
        self.E, self.W1, self.W2 = (np.array(a, dtype=dt, order="C", copy=True) for a in arrays)
        self.V, self.d, self.c, self.h = V, d, D // d, h
        self.tanh = bool(tanh)
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.momentum, self.beta1, self.beta2, self.eps = momentum, beta1, beta2, eps
        self.steps = 0
        B = self.batch_size
        self.dE = np.zeros_like(self.E)
        self.dW1 = np.zeros_like(self.W1)
        self.dW2 = np.zeros_like(self.W2)
        self.s1 = [np.zeros_like(p) for p in (self.E, self.W1, self.W2)]
        self.s2 = [np.zeros_like(p) for p in (self.E, self.W1, self.W2)] if optimizer == "adam" else None
        self.X = np.empty((B, D), dtype=dt)
        self.H = np.empty((B, h), dtype=dt)
        self.Z = np.empty((B, V), dtype=dt)
        # dH is made transposed, dH^T (h, n) = W2 dZ^T: BLAS is faster that way round
        # than dZ W2^T (both read W2 as it is stored). Flat: (h, n) for any n <= B.
        self.dH = np.empty(h * B, dtype=dt)
        self.dX = np.empty((B, D), dtype=dt)
        for k, p in enumerate((self.E, self.W1, self.W2)):
            self.tracked[3 * k] = float(np.abs(p).max())
            self.tracked[3 * k + 1] = 0.0
            self.tracked[3 * k + 2] = 0.0
        for k in range(N_PHASES):
            self.seconds[k] = 0.0

    @property
    def dtype(self):
        """float32 or float64: the precision of the weights and of every computation."""
        return self.E.dtype

    def _phase_seconds(self):
        """The seconds each phase of the last :meth:`step` took, by name (for profiling)."""
        return {name: self.seconds[k] for k, name in enumerate(_PHASES)}

    def _batch(self, windows, targets, str func):
        w = _positions(windows, f"TrainState.{func}: windows", self.V)
        t = _positions(targets, f"TrainState.{func}: targets", self.V)
        if w.ndim != 2 or w.shape[1] != self.c or w.shape[0] == 0:
            raise ValueError(f"TrainState.{func}: windows must have shape (B, {self.c}) with B >= 1, "
                             f"got {w.shape}")
        if t.shape != (w.shape[0],):
            raise ValueError(f"TrainState.{func}: targets have shape {t.shape}, expected ({w.shape[0]},)")
        return w, t

    # -- the phases ---------------------------------------------------------------

    cdef int _gather_f1(self, const intp_t[:, ::1] w, Py_ssize_t n) except -1:
        """X = the windows' embeddings side by side, H = [tanh](X @ W1), on rows :n."""
        cdef float[:, ::1] E32, X32, H32
        cdef double[:, ::1] E64, X64, H64
        X, H = self.X[:n], self.H[:n]
        if self.f32:
            E32, X32 = self.E, X
            with nogil:
                gather(E32, w, X32)
        else:
            E64, X64 = self.E, X
            with nogil:
                gather(E64, w, X64)
        np.matmul(X, self.W1, out=H)
        if self.tanh:
            if self.f32:
                H32 = H
                with nogil:
                    tanh_rows(H32)
            else:
                H64 = H
                with nogil:
                    tanh_rows(H64)
        return 0

    cdef double _xent(self, const intp_t[::1] t, Py_ssize_t n, bint grad, double scale) except? -1.0:
        """Sum of the cross-entropies of rows :n of Z; with ``grad``, Z becomes dZ."""
        cdef float[:, ::1] Z32
        cdef double[:, ::1] Z64
        cdef double total
        if self.f32:
            Z32 = self.Z
            with nogil:
                total = xent(Z32[:n], t, scale, grad, NULL)
        else:
            Z64 = self.Z
            with nogil:
                total = xent(Z64[:n], t, scale, grad, NULL)
        return total

    cdef int _dW1_dX_scatter(self, const intp_t[:, ::1] w, Py_ssize_t n) except -1:
        """[dH *= tanh'], dW1 = X^T dH, dX = dH W1^T, dE += dX's rows (dH^T already made)."""
        cdef float[:, ::1] dH32, H32, dX32, dE32
        cdef double[:, ::1] dH64, H64, dX64, dE64
        H, X, dX = self.H[:n], self.X[:n], self.dX[:n]
        dH = self.dH[:self.h * n].reshape(self.h, n)          # dH^T, C order
        if self.tanh:
            if self.f32:
                dH32, H32 = dH, H
                with nogil:
                    tanh_backward(dH32, H32)
            else:
                dH64, H64 = dH, H
                with nogil:
                    tanh_backward(dH64, H64)
        np.matmul(X.T, dH.T, out=self.dW1)
        np.matmul(dH.T, self.W1.T, out=dX)
        if self.f32:
            dX32, dE32 = dX, self.dE
            with nogil:
                scatter_rows(dX32, w, dE32)
        else:
            dX64, dE64 = dX, self.dE
            with nogil:
                scatter_rows(dX64, w, dE64)
        return 0

    cdef int _clear_dE(self, const intp_t[:, ::1] w) except -1:
        cdef float[:, ::1] dE32
        cdef double[:, ::1] dE64
        if self.f32:
            dE32 = self.dE
            with nogil:
                clear_rows(dE32, w)
        else:
            dE64 = self.dE
            with nogil:
                clear_rows(dE64, w)
        return 0

    cdef int _gradient_bounds(self, const intp_t[:, ::1] w, Py_ssize_t n, double* gmax) except -1:
        """gmax[k] >= max |gradient of weight k| (NaN if a gradient is not finite).

        dE and dW1 exactly (a batch writes only B*c rows of dE; dW1 is small). dW2 =
        H^T dZ is not read: every entry of dZ is at most 1/n in magnitude (a softmax
        probability, or it minus one, over n), so |dW2| <= max|H| up to the rounding
        of a sum of n products.
        """
        cdef float[:, ::1] dE32, dW132, H32
        cdef double[:, ::1] dE64, dW164, H64
        cdef double hmax
        if self.f32:
            dE32, dW132, H32 = self.dE, self.dW1, self.H
            with nogil:
                gmax[0] = rows_absmax(dE32, w)
                gmax[1] = absmax(&dW132[0, 0], dW132.shape[0] * dW132.shape[1])
                hmax = absmax(&H32[0, 0], n * H32.shape[1])
            gmax[2] = hmax * (1.01 + n * 2.4e-7)
        else:
            dE64, dW164, H64 = self.dE, self.dW1, self.H
            with nogil:
                gmax[0] = rows_absmax(dE64, w)
                gmax[1] = absmax(&dW164[0, 0], dW164.shape[0] * dW164.shape[1])
                hmax = absmax(&H64[0, 0], n * H64.shape[1])
            gmax[2] = hmax * (1.01 + n * 4.5e-16)
        return 0

    cdef bint _proven_finite(self, double lr, double c1, double c2, const double* gmax):
        """Whether the tracked maxima and ``gmax`` prove every number of the update finite.

        Bounds on the magnitude of each intermediate of the kernels' formulas, computed in
        double with a margin of 3x below float32's largest number (16x for float64).
        False (then the exact check runs) when a bound is too large or is NaN.
        """
        cdef double limit = 1e38 if self.f32 else 1e307
        cdef double eps = <float>self.eps if self.f32 else self.eps
        cdef double b1 = self.beta1, b2 = self.beta2, mu = self.momentum
        cdef double p, s, v, g, a, b, num
        cdef int k
        if not (lr < limit and c1 < limit and c2 < limit and eps > 0.0):
            return False
        for k in range(3):
            p, s, v, g = self.tracked[3 * k], self.tracked[3 * k + 1], self.tracked[3 * k + 2], gmax[k]
            if not (g < limit and p < limit):
                return False
            if self.optimizer == "adam":
                a = b1 * s + (1.0 - b1) * g                      # >= |new m|
                b = b2 * v + (1.0 - b2) * g * g                  # >= new v
                num = lr * (a * c1)                              # >= |lr m c1|
                if not (g * g < limit and a * c1 < limit and b * c2 < limit and num < limit
                        and p + num / eps < limit):              # the denominator is >= eps
                    return False
            else:
                a = mu * s + g                                   # >= |new velocity|
                if not (a < limit and p + lr * a < limit):
                    return False
        return True

    cdef int _update(self, double lr, double c1, double c2, bint apply, double* maxes) except -1:
        """The optimizer on E, W1 and W2 (``apply``: stored; else only computed); see adam/sgd."""
        cdef int k
        cdef bint adam_ = self.optimizer == "adam"
        cdef float[::1] p32, g32, a32, b32
        cdef double[::1] p64, g64, a64, b64
        cdef Py_ssize_t n
        for k, (p, g) in enumerate(((self.E, self.dE), (self.W1, self.dW1), (self.W2, self.dW2))):
            m1 = self.s1[k]
            m2 = self.s2[k] if adam_ else m1
            n = p.size
            if self.f32:
                p32, g32, a32, b32 = p.reshape(-1), g.reshape(-1), m1.reshape(-1), m2.reshape(-1)
                with nogil:
                    if adam_:
                        adam(&p32[0], &g32[0], &a32[0], &b32[0], n, <float>lr, <float>self.beta1,
                             <float>self.beta2, <float>self.eps, <float>c1, <float>c2, apply,
                             maxes + 3 * k)
                    else:
                        sgd(&p32[0], &g32[0], &a32[0], n, <float>lr, <float>self.momentum, apply,
                            maxes + 3 * k)
            else:
                p64, g64, a64, b64 = p.reshape(-1), g.reshape(-1), m1.reshape(-1), m2.reshape(-1)
                with nogil:
                    if adam_:
                        adam(&p64[0], &g64[0], &a64[0], &b64[0], n, lr, self.beta1, self.beta2,
                             self.eps, c1, c2, apply, maxes + 3 * k)
                    else:
                        sgd(&p64[0], &g64[0], &a64[0], n, lr, self.momentum, apply, maxes + 3 * k)
        return 0

    # -- the API ------------------------------------------------------------------

    def loss(self, windows, targets):
        """Mean cross-entropy of predicting ``targets`` from ``windows`` (no update).

        Parameters
        ----------
        windows : array_like of int, shape (N, c)
            Each row: the positions of c consecutive tokens.
        targets : array_like of int, shape (N,)
            The position of the token that follows each window.

        Returns
        -------
        float
            ``mean_n -log p(targets[n] | windows[n])`` (NaN or inf if the model's
            logits are not finite).
        """
        w, t = self._batch(windows, targets, "loss")
        cdef const intp_t[:, ::1] wv = w
        cdef const intp_t[::1] tv = t
        cdef Py_ssize_t N = w.shape[0], lo, hi
        cdef double total = 0.0
        with np.errstate(**_QUIET):
            for lo in range(0, N, self.batch_size):
                hi = min(lo + self.batch_size, N)
                self._gather_f1(wv[lo:hi], hi - lo)
                np.matmul(self.H[:hi - lo], self.W2, out=self.Z[:hi - lo])
                total += self._xent(tv[lo:hi], hi - lo, False, 1.0)
        return total / N

    def gradients(self, windows, targets):
        """The mean loss on a batch and its gradients, without updating anything.

        Returns
        -------
        loss : float
        dE, dW1, dW2 : ndarray, shapes (V, d), (c*d, h), (h, V)
            Fresh arrays (dE is dense: zero for the rows the batch does not use).
        """
        w, t = self._batch(windows, targets, "gradients")
        if w.shape[0] > self.batch_size:
            raise ValueError(f"TrainState.gradients: batch of {w.shape[0]} > batch_size {self.batch_size}")
        cdef const intp_t[:, ::1] wv = w
        cdef const intp_t[::1] tv = t
        cdef Py_ssize_t n = w.shape[0]
        saved = np.seterr(**_QUIET)
        try:
            self._gather_f1(wv, n)
            H, Z = self.H[:n], self.Z[:n]
            np.matmul(H, self.W2, out=Z)
            loss = self._xent(tv, n, True, 1.0 / n) / n
            if isfinite(loss):
                np.matmul(H.T, Z, out=self.dW2)
                np.matmul(self.W2, Z.T, out=self.dH[:self.h * n].reshape(self.h, n))
                self._dW1_dX_scatter(wv, n)
            result = (loss, self.dE.copy(), self.dW1.copy(), self.dW2.copy())
        finally:
            self._clear_dE(wv)
            np.seterr(**saved)
        return result

    def step(self, windows, targets, lr, max_loss=None):
        """One update on a batch: forward, loss, backward, then SGD or Adam with ``lr``.

        Parameters
        ----------
        windows : array_like of int, shape (B, c), B <= batch_size
        targets : array_like of int, shape (B,)
        lr : float
            The learning rate of this step (finite, > 0).
        max_loss : float, optional
            A batch loss above this (computed before the update) counts as
            divergence: the step raises and changes nothing. Training passes a few
            times the loss of a uniform guess, ``log V``, so that a run whose loss
            explodes stops while the weights are still the last good ones.

        Returns
        -------
        float
            The batch's mean loss before the update.

        Raises
        ------
        FloatingPointError
            The loss is not finite or above ``max_loss``, or a gradient or an
            updated weight would not be finite; nothing was changed (the message
            says which).
        """
        w, t = self._batch(windows, targets, "step")
        cdef Py_ssize_t n = w.shape[0]
        if n > self.batch_size:
            raise ValueError(f"TrainState.step: batch of {n} > batch_size {self.batch_size}")
        lr = float(lr)
        if not (lr > 0.0 and isfinite(lr)):
            raise ValueError(f"TrainState.step: lr must be finite and > 0, got {lr!r}")
        cdef double loss_limit = INFINITY if max_loss is None else float(max_loss)
        if not loss_limit > 0.0:
            raise ValueError(f"TrainState.step: max_loss must be > 0, got {max_loss!r}")
        cdef const intp_t[:, ::1] wv = w
        cdef const intp_t[::1] tv = t
        cdef double gmax[3]
        cdef double trial[9]
        cdef double clock[N_PHASES + 1]
        cdef long tnext = self.steps + 1
        cdef double c1 = 1.0 / (1.0 - self.beta1 ** tnext), c2 = 1.0 / (1.0 - self.beta2 ** tnext)
        cdef int k
        H, Z = self.H[:n], self.Z[:n]
        for k in range(N_PHASES):
            self.seconds[k] = 0.0
        saved = np.seterr(**_QUIET)
        try:
            clock[0] = perf_counter()
            self._gather_f1(wv, n)
            clock[1] = perf_counter()
            np.matmul(H, self.W2, out=Z)                      # the logits
            clock[2] = perf_counter()
            loss = self._xent(tv, n, True, 1.0 / n) / n       # Z becomes dZ
            clock[3] = perf_counter()
            if not isfinite(loss):
                raise FloatingPointError(f"the loss is {loss}")
            if loss > loss_limit:
                raise FloatingPointError(f"the loss is {loss:.4g}, above {loss_limit:.4g}")
            np.matmul(H.T, Z, out=self.dW2)                   # dW2 = H^T dZ
            clock[4] = perf_counter()
            np.matmul(self.W2, Z.T, out=self.dH[:self.h * n].reshape(self.h, n))   # dH^T = W2 dZ^T
            clock[5] = perf_counter()
            self._dW1_dX_scatter(wv, n)
            clock[6] = perf_counter()
            self._gradient_bounds(wv, n, gmax)
            if not self._proven_finite(lr, c1, c2, gmax):
                self._update(lr, c1, c2, False, trial)        # the exact check: nothing stored
                for k in range(9):
                    if not isfinite(trial[k]):
                        raise FloatingPointError("a gradient or an updated weight is not finite")
            clock[7] = perf_counter()
            self._update(lr, c1, c2, True, &self.tracked[0])
            clock[8] = perf_counter()
            self.steps += 1
            for k in range(N_PHASES):
                self.seconds[k] = clock[k + 1] - clock[k]
        finally:
            self._clear_dE(wv)
            np.seterr(**saved)
        return loss
