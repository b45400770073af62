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

Layout: the kernels (``noexcept nogil``, fused float/double, trusting their inputs) in
the order data flows -- matrix products, forward, loss, backward, optimizers, the whole
step -- then the Python-facing entry points that validate and call them.
All matrices are row-major and C-contiguous; the products take leading dimensions so
that they can work on column blocks of a wider matrix.
"""

cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, NAN, isfinite, log, sqrt, tanh
from libc.string cimport memset

from _common cimport as_float_array
from _fastmath cimport fast_exp, fast_expf

import numpy as np

cnp.import_array()

ctypedef cnp.intp_t intp_t

# Status codes of a step, beyond _common's OK.
cdef enum StepStatus:
    LOSS_NOT_FINITE = 10      # the batch's loss is NaN or infinite
    UPDATE_NOT_FINITE = 11    # a gradient, or the weights after the update, would not be finite

cdef enum:
    NB = 256      # column block of the products: K x NB numbers of the right-hand matrix stay in L2
    TB = 128      # rows of W2^T transposed at a time for dZ @ W2^T: TB x h numbers stay in L2

cdef enum Optim:
    SGD = 0
    ADAM = 1


# ===========================================================================
# Matrix products (the hot part: three of them are B x h x V)
# ===========================================================================

cdef void gemm(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
               const floating* A, Py_ssize_t lda, const floating* Bm, Py_ssize_t ldb,
               floating* C, Py_ssize_t ldc, bint accumulate) noexcept nogil:
    """C (M, N) = [C +] A (M, K) @ B (K, N).

    Blocked for the cache: a block of NB columns of B is reused by every row of A;
    two rows of C and four rows of B at a time, so each C entry is loaded and stored
    once per four products and each B entry once per two rows (the j loops vectorise).
    """
    cdef Py_ssize_t j0, nb, i, k, j
    cdef floating a0, a1, a2, a3, e0, e1, e2, e3
    cdef floating* c0
    cdef floating* c1
    cdef const floating* b0
    cdef const floating* b1
    cdef const floating* b2
    cdef const floating* b3
    j0 = 0
    while j0 < N:
        nb = N - j0 if N - j0 < NB else NB
        i = 0
        while i + 1 < M:                              # two rows of C
            c0 = C + i * ldc + j0
            c1 = c0 + ldc
            if not accumulate:
                memset(c0, 0, nb * sizeof(floating))
                memset(c1, 0, nb * sizeof(floating))
            k = 0
            while k + 3 < K:
                a0 = A[i * lda + k]; a1 = A[i * lda + k + 1]
                a2 = A[i * lda + k + 2]; a3 = A[i * lda + k + 3]
                e0 = A[(i + 1) * lda + k]; e1 = A[(i + 1) * lda + k + 1]
                e2 = A[(i + 1) * lda + k + 2]; e3 = A[(i + 1) * lda + k + 3]
                b0 = Bm + k * ldb + j0
                b1 = b0 + ldb
                b2 = b1 + ldb
                b3 = b2 + ldb
                for j in range(nb):
                    c0[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
                    c1[j] += e0 * b0[j] + e1 * b1[j] + e2 * b2[j] + e3 * b3[j]
                k += 4
            while k < K:
                a0 = A[i * lda + k]
                e0 = A[(i + 1) * lda + k]
                b0 = Bm + k * ldb + j0
                for j in range(nb):
                    c0[j] += a0 * b0[j]
                    c1[j] += e0 * b0[j]
                k += 1
            i += 2
        if i < M:                                     # the last row when M is odd
            c0 = C + i * ldc + j0
            if not accumulate:
                memset(c0, 0, nb * sizeof(floating))
            k = 0
            while k + 3 < K:
                a0 = A[i * lda + k]; a1 = A[i * lda + k + 1]
                a2 = A[i * lda + k + 2]; a3 = A[i * lda + k + 3]
                b0 = Bm + k * ldb + j0
                b1 = b0 + ldb
                b2 = b1 + ldb
                b3 = b2 + ldb
                for j in range(nb):
                    c0[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
                k += 4
            while k < K:
                a0 = A[i * lda + k]
                b0 = Bm + k * ldb + j0
                for j in range(nb):
                    c0[j] += a0 * b0[j]
                k += 1
        j0 += NB


cdef void transpose(Py_ssize_t rows, Py_ssize_t cols, const floating* A, Py_ssize_t lda,
                    floating* out, Py_ssize_t ldo) noexcept nogil:
    """out (cols, rows) = A (rows, cols)^T, in 16 x 16 tiles."""
    cdef Py_ssize_t i0, j0, i, j, i1, j1
    for i0 in range(0, rows, 16):
        i1 = rows if i0 + 16 > rows else i0 + 16
        for j0 in range(0, cols, 16):
            j1 = cols if j0 + 16 > cols else j0 + 16
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[j * ldo + i] = A[i * lda + j]


cdef void gemm_tn(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const floating* A,
                  const floating* G, floating* C, floating* scratch) noexcept nogil:
    """C (K, N) = A (M, K)^T @ G (M, N). ``scratch`` holds K*M numbers (A transposed)."""
    transpose(M, K, A, K, scratch, M)
    gemm(K, M, N, scratch, M, G, N, C, N, False)


cdef void gemm_nt(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const floating* G,
                  const floating* W, floating* C, floating* scratch) noexcept nogil:
    """C (M, K) = G (M, N) @ W (K, N)^T, N in blocks of TB (``scratch``: TB*K numbers)."""
    cdef Py_ssize_t n0 = 0, nb
    while n0 < N:
        nb = N - n0 if N - n0 < TB else TB
        transpose(K, nb, W + n0, N, scratch, K)       # W[:, n0:n0+nb]^T -> (nb, K)
        gemm(M, nb, K, G + n0, N, scratch, K, C, K, n0 > 0)
        n0 += TB


# ===========================================================================
# Forward
# ===========================================================================

cdef void gather(const floating[:, ::1] E, const intp_t[:, ::1] windows,
                 floating[:, ::1] X) noexcept nogil:
    """X[b] = E[windows[b, 0]], E[windows[b, 1]], ... side by side (the blog's flatten)."""
    cdef Py_ssize_t b, t, k, d = E.shape[1], row
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            row = windows[b, t]
            for k in range(d):
                X[b, t * d + k] = E[row, k]


cdef void forward(const floating[:, ::1] E, const floating[:, ::1] W1, const floating[:, ::1] W2,
                  const intp_t[:, ::1] windows, bint use_tanh,
                  floating[:, ::1] X, floating[:, ::1] H, floating[:, ::1] Z) noexcept nogil:
    """X, H and the logits Z of a batch: Z = [tanh](X @ W1) @ W2."""
    cdef Py_ssize_t B = windows.shape[0], D = W1.shape[0], h = W1.shape[1], V = W2.shape[1]
    cdef Py_ssize_t b, j
    gather(E, windows, X)
    gemm(B, D, h, &X[0, 0], D, &W1[0, 0], h, &H[0, 0], h, False)
    if use_tanh:
        for b in range(B):
            for j in range(h):
                H[b, j] = tanh(H[b, j])
    gemm(B, h, V, &H[0, 0], h, &W2[0, 0], V, &Z[0, 0], V, False)


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

    Stable: max subtracted first, so every exponent is <= 0; the sum is in double
    (four partial sums, so the loop vectorises). NaN or +inf in z gives a NaN loss.
    """
    cdef Py_ssize_t j
    cdef floating m = -INFINITY, e
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, total, loss
    for j in range(V):
        m = z[j] if z[j] > m else m
    if not isfinite(m):                  # +inf (or all -inf): not a distribution
        return NAN
    for j in range(0, V - V % 4, 4):
        s0 += exp_of(<floating>(z[j] - m))
        s1 += exp_of(<floating>(z[j + 1] - m))
        s2 += exp_of(<floating>(z[j + 2] - m))
        s3 += exp_of(<floating>(z[j + 3] - m))
    for j in range(V - V % 4, V):
        s0 += exp_of(<floating>(z[j] - m))
    total = (s0 + s1) + (s2 + s3)
    loss = log(total) - (<double>z[target] - m)      # NaN if z held a NaN
    if grad:
        e = <floating>(scale / total)
        for j in range(V):
            z[j] = exp_of(<floating>(z[j] - m)) * e
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
# Backward
# ===========================================================================

cdef void scatter_rows(const floating[:, ::1] dX, const intp_t[:, ::1] windows,
                       floating[:, ::1] dE, unsigned char* touched) noexcept nogil:
    """dE[windows[b, t]] += dX[b, t*d:(t+1)*d] (a token repeated in a window adds up)."""
    cdef Py_ssize_t b, t, k, d = dE.shape[1], row
    for b in range(windows.shape[0]):
        for t in range(windows.shape[1]):
            row = windows[b, t]
            touched[row] = 1
            for k in range(d):
                dE[row, k] += dX[b, t * d + k]


cdef void backward(const floating[:, ::1] W1, const floating[:, ::1] W2,
                   const intp_t[:, ::1] windows, bint use_tanh,
                   const floating[:, ::1] X, const floating[:, ::1] H, const floating[:, ::1] dZ,
                   floating[:, ::1] dH, floating[:, ::1] dX, floating* scratch,
                   floating[:, ::1] dE, floating[:, ::1] dW1, floating[:, ::1] dW2,
                   unsigned char* touched) noexcept nogil:
    """The gradients of the batch loss given dZ = its gradient w.r.t. the logits.

    dW1 and dW2 are overwritten; dE is added to (the caller keeps it zero between
    steps) and ``touched`` marks its rows that received something.
    """
    cdef Py_ssize_t B = dZ.shape[0], V = dZ.shape[1], D = W1.shape[0], h = W1.shape[1]
    cdef Py_ssize_t b, j
    gemm_tn(B, h, V, &H[0, 0], &dZ[0, 0], &dW2[0, 0], scratch)      # dW2 = H^T dZ
    gemm_nt(B, V, h, &dZ[0, 0], &W2[0, 0], &dH[0, 0], scratch)      # dH = dZ W2^T
    if use_tanh:                                                     # tanh' = 1 - tanh^2
        for b in range(B):
            for j in range(h):
                dH[b, j] = dH[b, j] * (1 - H[b, j] * H[b, j])
    gemm_tn(B, D, h, &X[0, 0], &dH[0, 0], &dW1[0, 0], scratch)      # dW1 = X^T dH
    gemm_nt(B, h, D, &dH[0, 0], &W1[0, 0], &dX[0, 0], scratch)      # dX = dH W1^T
    scatter_rows(dX, windows, dE, touched)


# ===========================================================================
# Optimizers
#
# SGD with momentum (PyTorch's form):  v = mu v + g;   p -= lr v
# Adam (Kingma & Ba 2015):  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
#                           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
# Each runs twice over the numbers: ``apply=False`` only checks that every new value
# would be finite (a NaN or inf gradient fails too), so a bad step changes nothing.
# ===========================================================================

cdef bint sgd(floating* p, const floating* g, floating* vel, Py_ssize_t n,
              floating lr, floating mu, bint apply) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v, q
    cdef bint ok = True
    if apply:
        for i in range(n):
            v = mu * vel[i] + g[i]
            vel[i] = v
            p[i] = p[i] - lr * v
        return True
    for i in range(n):
        v = mu * vel[i] + g[i]
        q = p[i] - lr * v
        ok = ok & (isfinite(q) != 0)
    return ok


cdef bint adam(floating* p, const floating* g, floating* m1, floating* m2, Py_ssize_t n,
               floating lr, floating b1, floating b2, floating eps, floating c1, floating c2,
               bint apply) noexcept nogil:
    """``c1 = 1 / (1 - b1^t)`` and ``c2 = 1 / (1 - b2^t)`` are the bias corrections."""
    cdef Py_ssize_t i
    cdef floating a, b, q
    cdef floating one = 1
    cdef bint ok = True
    if apply:
        for i in range(n):
            a = b1 * m1[i] + (one - b1) * g[i]
            b = b2 * m2[i] + (one - b2) * g[i] * g[i]
            m1[i] = a
            m2[i] = b
            p[i] = p[i] - lr * (a * c1) / (sqrt(b * c2) + eps)
        return True
    for i in range(n):
        a = b1 * m1[i] + (one - b1) * g[i]
        b = b2 * m2[i] + (one - b2) * g[i] * g[i]
        q = p[i] - lr * (a * c1) / (sqrt(b * c2) + eps)
        ok = ok & (isfinite(q) != 0) & (isfinite(b) != 0)
    return ok


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
    :meth:`step` runs forward, loss, backward and the update in one call without
    the GIL. A step whose loss, gradients or updated weights would not be finite
    raises ``FloatingPointError`` and leaves the weights and moments as they were.
    """

    cdef readonly object E, W1, W2          # the weights (writable copies, C order)
    cdef readonly bint tanh
    cdef readonly str optimizer
    cdef readonly Py_ssize_t batch_size
    cdef readonly long steps                 # updates applied so far (Adam's t)
    cdef readonly double momentum, beta1, beta2, eps
    cdef object dE, dW1, dW2                 # gradients (dE kept zero between steps)
    cdef object s1, s2                       # SGD velocity / Adam m, one list per weight
    cdef object X, H, Z, dH, dX, scratch     # per-batch scratch
    cdef object touched                      # (V,) uint8: rows of dE written this step
    cdef bint f32
    cdef Py_ssize_t V, d, c, h

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
        self.dH = np.empty((B, h), dtype=dt)
        self.dX = np.empty((B, D), dtype=dt)
        self.scratch = np.empty(max(B * max(D, h), TB * max(D, h)), dtype=dt)
        self.touched = np.zeros(V, dtype=np.uint8)

    @property
    def dtype(self):
        """float32 or float64: the precision of the weights and of every computation."""
        return self.E.dtype

    def _batch(self, windows, targets, str func):
        w = _positions(windows, f"TrainState.{func}: windows", self.V)
        t = _positions(targets, f"TrainState.{func}: targets", self.V)
        if w.ndim != 2 or w.shape[1] != self.c or w.shape[0] == 0:
            raise ValueError(f"TrainState.{func}: windows must have shape (B, {self.c}) with B >= 1, "
                             f"got {w.shape}")
        if t.shape != (w.shape[0],):
            raise ValueError(f"TrainState.{func}: targets have shape {t.shape}, expected ({w.shape[0]},)")
        return w, t

    cdef double _run(self, const intp_t[:, ::1] w, const intp_t[::1] t, Py_ssize_t lo,
                     Py_ssize_t hi, bint grad, double scale) except? -1.0:
        """Forward (and, with ``grad``, backward into dE/dW1/dW2) on rows lo:hi; the loss sum."""
        cdef Py_ssize_t n = hi - lo
        cdef double total
        cdef float[:, ::1] E32, W132, W232, X32, H32, Z32, dH32, dX32, dE32, dW132, dW232
        cdef double[:, ::1] E64, W164, W264, X64, H64, Z64, dH64, dX64, dE64, dW164, dW264
        cdef float[::1] s32
        cdef double[::1] s64
        cdef unsigned char[::1] touched = self.touched
        if self.f32:
            E32, W132, W232 = self.E, self.W1, self.W2
            X32, H32, Z32, dH32, dX32 = self.X, self.H, self.Z, self.dH, self.dX
            dE32, dW132, dW232, s32 = self.dE, self.dW1, self.dW2, self.scratch
            with nogil:
                forward(E32, W132, W232, w[lo:hi], self.tanh, X32[:n], H32[:n], Z32[:n])
                total = xent(Z32[:n], t[lo:hi], scale, grad, NULL)
                if grad and isfinite(total):
                    backward(W132, W232, w[lo:hi], self.tanh, X32[:n], H32[:n], Z32[:n],
                             dH32[:n], dX32[:n], &s32[0], dE32, dW132, dW232, &touched[0])
        else:
            E64, W164, W264 = self.E, self.W1, self.W2
            X64, H64, Z64, dH64, dX64 = self.X, self.H, self.Z, self.dH, self.dX
            dE64, dW164, dW264, s64 = self.dE, self.dW1, self.dW2, self.scratch
            with nogil:
                forward(E64, W164, W264, w[lo:hi], self.tanh, X64[:n], H64[:n], Z64[:n])
                total = xent(Z64[:n], t[lo:hi], scale, grad, NULL)
                if grad and isfinite(total):
                    backward(W164, W264, w[lo:hi], self.tanh, X64[:n], H64[:n], Z64[:n],
                             dH64[:n], dX64[:n], &s64[0], dE64, dW164, dW264, &touched[0])
        return total

    def _clear_dE(self):
        rows = np.flatnonzero(self.touched)
        self.dE[rows] = 0
        self.touched[rows] = 0

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
        cdef Py_ssize_t N = w.shape[0], lo
        cdef double total = 0.0
        for lo in range(0, N, self.batch_size):
            total += self._run(w, t, lo, min(lo + self.batch_size, N), False, 1.0)
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
        loss = self._run(w, t, 0, w.shape[0], True, 1.0 / w.shape[0]) / w.shape[0]
        result = (loss, self.dE.copy(), self.dW1.copy(), self.dW2.copy())
        self._clear_dE()
        return result

    def step(self, windows, targets, lr):
        """One update on a batch: forward, loss, backward, then SGD or Adam with ``lr``.

        Parameters
        ----------
        windows : array_like of int, shape (B, c), B <= batch_size
        targets : array_like of int, shape (B,)
        lr : float
            The learning rate of this step (finite, > 0).

        Returns
        -------
        float
            The batch's mean loss before the update.

        Raises
        ------
        FloatingPointError
            The loss, a gradient or an updated weight would not be finite; nothing
            was changed (the message says which).
        """
        w, t = self._batch(windows, targets, "step")
        cdef Py_ssize_t B = w.shape[0]
        if B > self.batch_size:
            raise ValueError(f"TrainState.step: batch of {B} > batch_size {self.batch_size}")
        lr = float(lr)
        if not (lr > 0.0 and isfinite(lr)):
            raise ValueError(f"TrainState.step: lr must be finite and > 0, got {lr!r}")
        try:
            loss = self._run(w, t, 0, B, True, 1.0 / B) / B
            if not isfinite(loss):
                raise FloatingPointError(f"the loss is {loss}")
            if not self._update(lr, False):
                raise FloatingPointError("a gradient or an updated weight is not finite")
            self._update(lr, True)
            self.steps += 1
        finally:
            self._clear_dE()
        return loss

    cdef bint _update(self, double lr, bint apply) except -1:
        cdef bint ok = True
        cdef long t = self.steps + 1
        cdef double c1 = 1.0 / (1.0 - self.beta1 ** t), c2 = 1.0 / (1.0 - self.beta2 ** t)
        for i, (p, g) in enumerate(((self.E, self.dE), (self.W1, self.dW1), (self.W2, self.dW2))):
            if self.optimizer == "adam":
                ok = ok and _adam(p, g, self.s1[i], self.s2[i], lr, self.beta1, self.beta2,
                                  self.eps, c1, c2, apply, self.f32)
            else:
                ok = ok and _sgd(p, g, self.s1[i], lr, self.momentum, apply, self.f32)
        return ok


cdef bint _sgd(object p, object g, object v, double lr, double mu, bint apply, bint f32):
    cdef float[:, ::1] p32, g32, v32
    cdef double[:, ::1] p64, g64, v64
    cdef bint ok
    cdef Py_ssize_t n = p.size
    if f32:
        p32, g32, v32 = p, g, v
        with nogil:
            ok = sgd(&p32[0, 0], &g32[0, 0], &v32[0, 0], n, <float>lr, <float>mu, apply)
    else:
        p64, g64, v64 = p, g, v
        with nogil:
            ok = sgd(&p64[0, 0], &g64[0, 0], &v64[0, 0], n, lr, mu, apply)
    return ok


cdef bint _adam(object p, object g, object m1, object m2, double lr, double b1, double b2,
                double eps, double c1, double c2, bint apply, bint f32):
    cdef float[:, ::1] p32, g32, a32, b32
    cdef double[:, ::1] p64, g64, a64, b64
    cdef bint ok
    cdef Py_ssize_t n = p.size
    if f32:
        p32, g32, a32, b32 = p, g, m1, m2
        with nogil:
            ok = adam(&p32[0, 0], &g32[0, 0], &a32[0, 0], &b32[0, 0], n, <float>lr, <float>b1,
                      <float>b2, <float>eps, <float>c1, <float>c2, apply)
    else:
        p64, g64, a64, b64 = p, g, m1, m2
        with nogil:
            ok = adam(&p64[0, 0], &g64[0, 0], &a64[0, 0], &b64[0, 0], n, lr, b1, b2, eps,
                      c1, c2, apply)
    return ok
