"""Training: the forward pass on a batch, its gradients, and the optimizer steps.

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
    then SGD with momentum or Adam on E, W1, W2, each after decoupled weight decay
    (p *= 1 - lr * weight_decay, as torch.optim.AdamW; see kernels/train.pxi).

Who does what. The matrix products (three of them B x h x V: nearly all the
arithmetic) go to NumPy's BLAS: ``np.matmul(..., out=...)`` into scratch arrays
allocated once per TrainState, the transposes being views (BLAS reads them
transposed; nothing is copied). Everything else is a kernel of
``src/kernels/train.pxi``, called through the table of the instruction set in use,
each one pass over its data: the gather and scatter of embedding rows, tanh (the
forward pass's own kernels, for a batch), the softmax + cross-entropy + gradient of a
row, and the optimizer update of each weight array (momentum/moments, bias
correction and the new weight in one pass, no temporaries). Each method branches
on the dtype once, into a fused body.

Finiteness. A step whose loss, gradients or new weights would not be finite must
change nothing. The loss is checked first (also against ``max_loss``). The update
pass itself records the largest magnitude of every weight, moment and velocity it
writes, and the gradients' largest magnitudes are known cheaply (dE and dW1 are
small; |dW2| <= max|H|, since every entry of dZ is at most 1/B in magnitude). From
these a few lines of arithmetic bound every number the next update can produce; only
when that bound does not prove the update finite is the exact check made: a pass
that computes every new value without storing it.
"""

cimport cython
cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY, isfinite
from numpy cimport intp_t

from _checks cimport as_float_array, as_real, checked_count, checked_positions
from _kernel_table cimport (
    Kernels,
    absmax,
    active_table,
    adam,
    clear_rows,
    gather,
    rows_absmax,
    scatter_rows,
    sgd,
    tanh_all,
    tanh_backward,
    xent,
)

import numpy as np
from time import perf_counter

cnp.import_array()

cdef const Kernels** KERNELS = active_table()


class Diverged(ValueError):
    """A training step whose loss is not finite or above its limit, or whose gradients
    or updated weights would not be finite. The step changed nothing."""


cdef inline void* data(object arr) noexcept:
    """The first byte of a C-contiguous array (or of a view that starts where it does)."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


# ===========================================================================
# The loss alone: cross_entropy_grad
# ===========================================================================

cdef void run_xent(floating* Z, Py_ssize_t B, Py_ssize_t V, const intp_t* targets,
                   double scale, double* losses) noexcept:
    cdef const Kernels* k = KERNELS[0]
    with nogil:
        xent(k, Z, B, V, targets, scale, True, losses)


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
    ta = checked_positions(targets, "targets", la.shape[1], "cross_entropy_grad")
    if ta.ndim != 1 or ta.shape[0] != la.shape[0]:
        raise ValueError(f"cross_entropy_grad: targets have shape {ta.shape}, "
                         f"expected ({la.shape[0]},)")
    if not np.isfinite(la).all():
        raise ValueError("cross_entropy_grad: logits contain NaN or infinite values")
    grad = np.array(la, order="C", copy=True)
    losses = np.empty(la.shape[0], dtype=np.float64)
    cdef Py_ssize_t B = la.shape[0], V = la.shape[1]
    cdef const intp_t* t = <const intp_t*>data(ta)
    if grad.dtype == np.float32:
        run_xent(<float*>data(grad), B, V, t, scale, <double*>data(losses))
    else:
        run_xent(<double*>data(grad), B, V, t, scale, <double*>data(losses))
    return losses, grad


# ===========================================================================
# TrainState: its phases (fused bodies), then the class
# ===========================================================================

#: The phases of TrainState.step, in the order they run (see TrainState._phase_seconds).
_PHASES = ("gather + f1", "f2 = H W2", "softmax + xent + dZ", "dW2 = H^T dZ", "dH^T = W2 dZ^T",
           "dW1, dX, scatter", "finiteness check", "optimizer update")
cdef enum:
    N_PHASES = 8

# Overflow in a product is reported as a non-finite loss or update, not as a warning.
_QUIET = dict(over="ignore", invalid="ignore", divide="ignore")


# The phases are functions of the state and a NULL pointer ``like`` of its dtype, which
# only picks the fused specialisation: each method branches on the dtype once.

cdef int gather_f1(TrainState s, floating* like, const intp_t* w, Py_ssize_t n) except -1:
    """X = the windows' embeddings side by side, H = [tanh](X @ W1), on rows :n."""
    cdef const Kernels* k = KERNELS[0]
    cdef const floating* E = <const floating*>data(s.E)
    cdef floating* X = <floating*>data(s.X)
    cdef floating* H = <floating*>data(s.H)
    with nogil:
        gather(k, E, s.d, w, n, s.c, X)
    np.matmul(s.X[:n], s.W1, out=s.H[:n])
    if s.tanh:
        with nogil:
            tanh_all(k, H, n * s.h)
    return 0


cdef double batch_loss(TrainState s, floating* like, const intp_t* w, const intp_t* t,
                       Py_ssize_t n) except? -1.0:
    """Sum of the cross-entropies of a batch of n windows (no gradient)."""
    cdef const Kernels* k = KERNELS[0]
    cdef floating* Z = <floating*>data(s.Z)
    cdef double total
    gather_f1(s, like, w, n)
    np.matmul(s.H[:n], s.W2, out=s.Z[:n])
    with nogil:
        total = xent(k, Z, n, s.V, t, 1.0, False, NULL)
    return total


cdef double batch_gradients(TrainState s, floating* like, const intp_t* w, const intp_t* t,
                            Py_ssize_t n, double* clock) except? -1.0:
    """The mean loss of a batch and, if finite, its gradients into dE, dW1, dW2.
    ``clock`` (if not NULL) receives the time after each of the first 6 phases."""
    cdef const Kernels* k = KERNELS[0]
    cdef floating* Zp = <floating*>data(s.Z)
    cdef floating* dHp = <floating*>data(s.dH)
    cdef const floating* Hp = <const floating*>data(s.H)
    cdef const floating* dXp = <const floating*>data(s.dX)
    cdef floating* dEp = <floating*>data(s.dE)
    cdef double loss
    H, Z = s.H[:n], s.Z[:n]
    gather_f1(s, like, w, n)
    if clock != NULL:
        clock[1] = perf_counter()
    np.matmul(H, s.W2, out=Z)                                   # the logits
    if clock != NULL:
        clock[2] = perf_counter()
    with nogil:                                                 # Z becomes dZ
        loss = xent(k, Zp, n, s.V, t, 1.0 / n, True, NULL) / n
    if clock != NULL:
        clock[3] = perf_counter()
    if not isfinite(loss):
        return loss
    np.matmul(H.T, Z, out=s.dW2)                                # dW2 = H^T dZ
    if clock != NULL:
        clock[4] = perf_counter()
    dH = s.dH[:s.h * n].reshape(s.h, n)                         # dH^T, C order
    np.matmul(s.W2, Z.T, out=dH)                                # dH^T = W2 dZ^T
    if clock != NULL:
        clock[5] = perf_counter()
    if s.tanh:
        with nogil:
            tanh_backward(k, dHp, Hp, s.h, n)
    np.matmul(s.X[:n].T, dH.T, out=s.dW1)                       # dW1 = X^T dH
    np.matmul(dH.T, s.W1.T, out=s.dX[:n])                       # dX = dH W1^T
    with nogil:
        scatter_rows(k, dXp, w, n, s.c, dEp, s.d)
    return loss


cdef double train_step(TrainState s, floating* like, const intp_t* w, const intp_t* t,
                       Py_ssize_t n, double lr, double max_loss) except? -1.0:
    """One update (see TrainState.step); Diverged, with nothing changed, if it would
    not be finite."""
    cdef double gmax[3]
    cdef double trial[9]
    cdef double clock[N_PHASES + 1]
    cdef long tnext = s.steps + 1
    cdef double c1 = 1.0 / (1.0 - s.beta1 ** tnext), c2 = 1.0 / (1.0 - s.beta2 ** tnext)
    cdef double keep = 1.0 - lr * s.weight_decay             # decoupled weight decay
    cdef int k
    clock[0] = perf_counter()
    cdef double loss = batch_gradients(s, like, w, t, n, clock)
    if not isfinite(loss):
        raise Diverged(f"the loss is {loss}")
    if loss > max_loss:
        raise Diverged(f"the loss is {loss:.4g}, above {max_loss:.4g}")
    clock[6] = perf_counter()
    gradient_bounds(s, like, w, n, gmax)
    if not proven_finite(s, lr, c1, c2, keep, gmax):
        update(s, like, lr, c1, c2, keep, False, trial)          # the exact check: nothing stored
        for k in range(9):
            if not isfinite(trial[k]):
                raise Diverged("a gradient or an updated weight is not finite")
    clock[7] = perf_counter()
    update(s, like, lr, c1, c2, keep, True, &s.tracked[0])
    clock[8] = perf_counter()
    s.steps += 1
    for k in range(N_PHASES):
        s.seconds[k] = clock[k + 1] - clock[k]
    return loss


cdef int gradient_bounds(TrainState s, floating* like, const intp_t* w, Py_ssize_t n,
                         double* gmax) except -1:
    """gmax[k] >= max |gradient of weight k| (NaN if a gradient is not finite).

    dE and dW1 exactly (a batch writes only n*c rows of dE; dW1 is small). dW2 =
    H^T dZ is not read: every entry of dZ is at most 1/n in magnitude (a softmax
    probability, or it minus one, over n), so |dW2| <= max|H| up to the rounding
    of a sum of n products.
    """
    cdef const Kernels* k = KERNELS[0]
    cdef const floating* dE = <const floating*>data(s.dE)
    cdef const floating* dW1 = <const floating*>data(s.dW1)
    cdef const floating* H = <const floating*>data(s.H)
    cdef double hmax
    cdef double rounding = 2.4e-7 if floating is float else 4.5e-16
    with nogil:
        gmax[0] = rows_absmax(k, dE, s.d, w, n * s.c)
        gmax[1] = absmax(k, dW1, s.c * s.d * s.h)
        hmax = absmax(k, H, n * s.h)
    gmax[2] = hmax * (1.01 + n * rounding)
    return 0


cdef bint proven_finite(TrainState s, double lr, double c1, double c2, double keep,
                        const double* gmax):
    """Whether the tracked maxima and ``gmax`` prove every number of the update finite.

    Bounds on the magnitude of each intermediate of the kernels' formulas, computed in
    double with a margin of 3x below float32's largest number (16x for float64).
    False (then the exact check runs) when a bound is too large or is NaN.
    """
    cdef double limit = 1e38 if s.f32 else 1e307
    cdef double eps = <float>s.eps if s.f32 else s.eps
    cdef double b1 = s.beta1, b2 = s.beta2, mu = s.momentum
    cdef double p, m, v, g, a, b, num
    cdef int k
    keep = abs(keep)                                         # |p * keep| <= p * |keep|
    if not (lr < limit and c1 < limit and c2 < limit and keep < limit and eps > 0.0):
        return False
    for k in range(3):
        p, m, v, g = s.tracked[3 * k], s.tracked[3 * k + 1], s.tracked[3 * k + 2], gmax[k]
        p = p * keep                                         # >= |decayed weight|
        if not (g < limit and p < limit):
            return False
        if s.optimizer == "adam":
            a = b1 * m + (1.0 - b1) * g                      # >= |new m|
            b = b2 * v + (1.0 - b2) * g * g                  # >= new v
            num = lr * (a * c1)                              # >= |lr m c1|
            if not (g * g < limit and a * c1 < limit and b * c2 < limit and num < limit
                    and p + num / eps < limit):              # the denominator is >= eps
                return False
        else:
            a = mu * m + g                                   # >= |new velocity|
            if not (a < limit and p + lr * a < limit):
                return False
    return True


cdef int update(TrainState s, floating* like, double lr, double c1, double c2, double keep,
                bint apply, double* maxes) except -1:
    """The optimizer on E, W1 and W2, after p *= keep (``apply``: stored; else only
    computed); maxes[3k..] receives the largest magnitudes written for weight k (see
    kernels/train.pxi)."""
    cdef const Kernels* k = KERNELS[0]
    cdef int i
    cdef bint use_adam = s.optimizer == "adam"
    cdef floating* p
    cdef floating* g
    cdef floating* m1
    cdef floating* m2
    cdef Py_ssize_t n
    for i, (weight, grad) in enumerate(((s.E, s.dE), (s.W1, s.dW1), (s.W2, s.dW2))):
        p, g = <floating*>data(weight), <floating*>data(grad)
        m1 = <floating*>data(s.s1[i])
        m2 = <floating*>data(s.s2[i]) if use_adam else m1
        n = weight.size
        with nogil:
            if use_adam:
                adam(k, p, g, m1, m2, n, <floating>lr, <floating>s.beta1, <floating>s.beta2,
                     <floating>s.eps, <floating>c1, <floating>c2, <floating>keep, apply,
                     maxes + 3 * i)
            else:
                sgd(k, p, g, m1, n, <floating>lr, <floating>s.momentum, <floating>keep, apply,
                    maxes + 3 * i)
    return 0


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
    weight_decay : float, default 0.0
        Decoupled weight decay ``wd`` (finite, >= 0): each step first shrinks every
        weight, ``p *= 1 - lr * wd``, then applies the optimizer's update, which does
        not see the decay. For Adam this is torch.optim.AdamW's step (Loshchilov &
        Hutter 2019, "Decoupled Weight Decay Regularization"); for SGD the same
        decoupled form (their SGDW, scaled by lr as AdamW), not torch.optim.SGD's
        ``weight_decay``, which adds ``wd * p`` to the gradient. 0: no decay.

    Notes
    -----
    :meth:`step` runs forward, loss, backward and the update: the matrix products on
    NumPy's BLAS (with as many threads as NumPy's BLAS is allowed), everything else
    in kernels on one thread without the GIL. A step whose loss, gradients or updated
    weights would not be finite raises :class:`Diverged` and leaves the weights and
    moments as they were. (The weights are the state's own: ``E``, ``W1`` and ``W2``
    are meant to be read; the finiteness check relies on the largest weight the state
    itself wrote.)
    """

    cdef readonly object E, W1, W2          # the weights (writable copies, C order)
    cdef readonly bint tanh
    cdef readonly str optimizer
    cdef readonly Py_ssize_t batch_size
    cdef readonly long steps                 # updates applied so far (Adam's t)
    cdef readonly double momentum, beta1, beta2, eps, weight_decay
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
                 momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        arrays = [as_float_array(a, f"TrainState: {n}")
                  for a, n in ((E, "E"), (W1, "W1"), (W2, "W2"))]
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
        batch_size = checked_count(batch_size, "batch_size", 1, "TrainState")
        momentum = as_real(momentum, "momentum", "TrainState")
        beta1, beta2 = as_real(beta1, "beta1", "TrainState"), as_real(beta2, "beta2", "TrainState")
        eps = as_real(eps, "eps", "TrainState")
        weight_decay = as_real(weight_decay, "weight_decay", "TrainState")
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"TrainState: momentum must be in [0, 1), got {momentum!r}")
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"TrainState: beta1 and beta2 must be in [0, 1), "
                             f"got {beta1!r}, {beta2!r}")
        if not (eps > 0.0 and isfinite(eps)):
            raise ValueError(f"TrainState: eps must be finite and > 0, got {eps!r}")
        if not (weight_decay >= 0.0 and isfinite(weight_decay)):
            raise ValueError(f"TrainState: weight_decay must be finite and >= 0, "
                             f"got {weight_decay!r}")
        self.f32 = all(a.dtype == np.float32 for a in arrays)
        dt = np.float32 if self.f32 else np.float64
        self.E, self.W1, self.W2 = (np.array(a, dtype=dt, order="C", copy=True) for a in arrays)
        self.V, self.d, self.c, self.h = V, d, D // d, h
        self.tanh = bool(tanh)
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.momentum, self.beta1, self.beta2, self.eps = momentum, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.steps = 0
        B = self.batch_size
        self.dE = np.zeros_like(self.E)
        self.dW1 = np.zeros_like(self.W1)
        self.dW2 = np.zeros_like(self.W2)
        self.s1 = [np.zeros_like(p) for p in (self.E, self.W1, self.W2)]
        self.s2 = ([np.zeros_like(p) for p in (self.E, self.W1, self.W2)]
                   if optimizer == "adam" else None)
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
        w = checked_positions(windows, "windows", self.V, f"TrainState.{func}")
        t = checked_positions(targets, "targets", self.V, f"TrainState.{func}")
        if w.ndim != 2 or w.shape[1] != self.c or w.shape[0] == 0:
            raise ValueError(f"TrainState.{func}: windows must have shape (B, {self.c}) "
                             f"with B >= 1, got {w.shape}")
        if t.shape != (w.shape[0],):
            raise ValueError(f"TrainState.{func}: targets have shape {t.shape}, "
                             f"expected ({w.shape[0]},)")
        return w, t

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
        cdef Py_ssize_t N = w.shape[0], lo, hi
        cdef const intp_t* wp = <const intp_t*>data(w)
        cdef const intp_t* tp = <const intp_t*>data(t)
        cdef double total = 0.0
        with np.errstate(**_QUIET):
            for lo in range(0, N, self.batch_size):
                hi = min(lo + self.batch_size, N)
                if self.f32:
                    total += batch_loss(self, <float*>NULL, wp + lo * self.c, tp + lo, hi - lo)
                else:
                    total += batch_loss(self, <double*>NULL, wp + lo * self.c, tp + lo, hi - lo)
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
            raise ValueError(f"TrainState.gradients: batch of {w.shape[0]} "
                             f"> batch_size {self.batch_size}")
        cdef Py_ssize_t n = w.shape[0]
        cdef const intp_t* wp = <const intp_t*>data(w)
        cdef const intp_t* tp = <const intp_t*>data(t)
        saved = np.seterr(**_QUIET)
        try:
            if self.f32:
                loss = batch_gradients(self, <float*>NULL, wp, tp, n, NULL)
            else:
                loss = batch_gradients(self, <double*>NULL, wp, tp, n, NULL)
            result = (loss, self.dE.copy(), self.dW1.copy(), self.dW2.copy())
        finally:
            self.clear_dE(wp, n)
            np.seterr(**saved)
        return result

    def step(self, windows, targets, lr, max_loss=None):
        """One update on a batch: forward, loss, backward, then SGD or Adam with ``lr``
        (after the decay ``p *= 1 - lr * weight_decay``).

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
        Diverged
            The loss is not finite or above ``max_loss``, or a gradient or an
            updated weight would not be finite; nothing was changed (the message
            says which). A ValueError.
        """
        w, t = self._batch(windows, targets, "step")
        cdef Py_ssize_t n = w.shape[0]
        if n > self.batch_size:
            raise ValueError(f"TrainState.step: batch of {n} > batch_size {self.batch_size}")
        cdef double rate = as_real(lr, "lr", "TrainState.step")
        if not (rate > 0.0 and isfinite(rate)):
            raise ValueError(f"TrainState.step: lr must be finite and > 0, got {lr!r}")
        cdef double loss_limit = INFINITY if max_loss is None else as_real(
            max_loss, "max_loss", "TrainState.step")
        if not loss_limit > 0.0:
            raise ValueError(f"TrainState.step: max_loss must be > 0, got {max_loss!r}")
        cdef const intp_t* wp = <const intp_t*>data(w)
        cdef const intp_t* tp = <const intp_t*>data(t)
        cdef int k
        for k in range(N_PHASES):
            self.seconds[k] = 0.0
        saved = np.seterr(**_QUIET)
        try:
            if self.f32:
                loss = train_step(self, <float*>NULL, wp, tp, n, rate, loss_limit)
            else:
                loss = train_step(self, <double*>NULL, wp, tp, n, rate, loss_limit)
        finally:
            self.clear_dE(wp, n)
            np.seterr(**saved)
        return loss

    cdef void clear_dE(self, const intp_t* w, Py_ssize_t n):
        """dE = 0 again on the rows the batch wrote."""
        cdef const Kernels* k = KERNELS[0]
        if self.f32:
            clear_rows(k, <float*>data(self.dE), self.d, w, n * self.c)
        else:
            clear_rows(k, <double*>data(self.dE), self.d, w, n * self.c)
