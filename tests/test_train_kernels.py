"""The training kernels (tinyllm._train): gradients against finite differences and NumPy,
the optimizer updates, and what happens when a step would not be finite."""

import numpy as np
import pytest

from tinyllm._train import Diverged, TrainState, cross_entropy_grad

RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _np_loss(E, W1, W2, windows, targets, tanh):
    """The same forward pass and mean cross-entropy in plain NumPy (the oracle)."""
    X = E[windows].reshape(len(windows), -1)
    H = X @ W1
    if tanh:
        H = np.tanh(H)
    Z = H @ W2
    Z = Z - Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(targets)), targets].mean()


def _problem(seed, V=9, d=3, c=3, h=4, B=6):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((V, d))
    W1 = rng.standard_normal((c * d, h)) * 0.5
    W2 = rng.standard_normal((h, V)) * 0.5
    windows = rng.integers(0, V, (B, c))
    windows[0, 0] = windows[0, 2]  # a token twice in one window: its rows add up
    windows[1] = windows[0]  # and the same window twice in a batch
    targets = rng.integers(0, V, B)
    return E, W1, W2, windows, targets


@pytest.mark.parametrize("tanh", [False, True], ids=["linear", "tanh"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_finite_differences(tanh, seed):
    E, W1, W2, windows, targets = _problem(seed)
    state = TrainState(E, W1, W2, tanh=tanh, batch_size=len(targets))
    loss, dE, dW1, dW2 = state.gradients(windows, targets)
    assert loss == pytest.approx(_np_loss(E, W1, W2, windows, targets, tanh), rel=1e-12)
    eps = 1e-6
    for name, P, G in (("E", E, dE), ("W1", W1, dW1), ("W2", W2, dW2)):
        numeric = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            old = P[idx]
            P[idx] = old + eps
            up = _np_loss(E, W1, W2, windows, targets, tanh)
            P[idx] = old - eps
            down = _np_loss(E, W1, W2, windows, targets, tanh)
            P[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(G, numeric, rtol=1e-6, atol=1e-8, err_msg=name)
    # Rows of E that no window uses get no gradient.
    unused = np.setdiff1d(np.arange(len(E)), windows)
    assert not dE[unused].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_large_shapes_against_numpy_backward(dtype):
    """Shapes that exercise every block and remainder of the blocked products."""
    rng = np.random.default_rng(3)
    V, d, c, h, B = 301, 5, 3, 17, 11
    E = rng.standard_normal((V, d)).astype(dtype)
    W1 = (rng.standard_normal((c * d, h)) / 4).astype(dtype)
    W2 = (rng.standard_normal((h, V)) / 4).astype(dtype)
    windows = rng.integers(0, V, (B, c))
    targets = rng.integers(0, V, B)
    state = TrainState(E, W1, W2, tanh=True, batch_size=B)
    assert state.dtype == dtype
    _, dE, dW1, dW2 = state.gradients(windows, targets)
    # The textbook backward pass in float64 NumPy.
    E64, W164, W264 = (a.astype(np.float64) for a in (E, W1, W2))
    X = E64[windows].reshape(B, -1)
    H = np.tanh(X @ W164)
    Z = H @ W264
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    dZ = P.copy()
    dZ[np.arange(B), targets] -= 1
    dZ /= B
    ref_dW2 = H.T @ dZ
    dH = (dZ @ W264.T) * (1 - H * H)
    ref_dW1 = X.T @ dH
    dX = dH @ W164.T
    ref_dE = np.zeros_like(E64)
    np.add.at(ref_dE, windows.reshape(-1), dX.reshape(-1, d))
    tol = dict(rtol=1e-3, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    for got, want in ((dE, ref_dE), (dW1, ref_dW1), (dW2, ref_dW2)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_grad(dtype):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((4, 7)) * 3).astype(dtype)
    targets = np.array([0, 6, 3, 3])
    losses, grad = cross_entropy_grad(logits, targets, scale=0.25)
    x = logits.astype(np.float64)
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(losses, -np.log(p[np.arange(4), targets]), rtol=RTOL[dtype] * 10)
    onehot = np.eye(7)[targets]
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, (p - onehot) * 0.25, rtol=RTOL[dtype] * 10, atol=1e-7)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)


def test_cross_entropy_grad_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 1000.0]])
    losses, grad = cross_entropy_grad(logits, [1, 2])
    assert np.isfinite(losses).all() and np.isfinite(grad).all()
    assert losses[0] == pytest.approx(1e4) and losses[1] == pytest.approx(np.log(3))
    np.testing.assert_allclose(grad[1], [1 / 3, 1 / 3, -2 / 3])


@pytest.mark.parametrize(
    "args, exc, match",
    [
        (([[1.0, np.nan]], [0]), ValueError, "NaN"),
        (([[1.0, 2.0]], [2]), ValueError, "out of range"),
        (([[1.0, 2.0]], [0, 1]), ValueError, "targets have shape"),
        (([1.0, 2.0], [0]), ValueError, r"\(B, V\)"),
        (([[1.0, 2.0]], [0.5]), TypeError, "integers"),
    ],
)
def test_cross_entropy_grad_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        cross_entropy_grad(*args)


def _reference_update(optimizer, p, g, m, v, t, lr, wd, momentum=0.9):
    """One step of torch.optim.AdamW (its documented algorithm: p *= 1 - lr*wd, then
    Adam's bias-corrected step), or of SGD with momentum after the same decoupled
    decay. Returns the new p, m, v."""
    p = p * (1 - lr * wd)
    if optimizer == "sgd":
        m = momentum * m + g
        return p - lr * m, m, v
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    mhat = m / (1 - 0.9**t)
    vhat = v / (1 - 0.999**t)
    return p - lr * mhat / (np.sqrt(vhat) + 1e-8), m, v


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_steps_match_numpy_updates(optimizer, weight_decay):
    E, W1, W2, windows, targets = _problem(5)
    state = TrainState(
        E, W1, W2, optimizer=optimizer, batch_size=6, momentum=0.8, weight_decay=weight_decay
    )
    assert state.weight_decay == weight_decay
    params = [E.copy(), W1.copy(), W2.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, lr in enumerate((0.1, 0.05, 0.02), start=1):
        ref = TrainState(*params, batch_size=6)
        loss_ref, *grads = ref.gradients(windows, targets)
        loss = state.step(windows, targets, lr)
        assert loss == pytest.approx(loss_ref, rel=1e-12)
        for i, g in enumerate(grads):
            params[i], m[i], v[i] = _reference_update(
                optimizer, params[i], g, m[i], v[i], t, lr, weight_decay, momentum=0.8
            )
        for got, want in zip((state.E, state.W1, state.W2), params):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert state.steps == 3


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_shrinks_every_weight_by_one_minus_lr_wd(optimizer):
    """Decoupled: the decay is p * (1 - lr*wd) on top of the undecayed step, whatever
    the gradient (a weight with no gradient, as an unused embedding row, still shrinks);
    it does not enter the moments."""
    E, W1, W2, windows, targets = _problem(6)
    plain = TrainState(E, W1, W2, optimizer=optimizer, batch_size=6)
    decayed = TrainState(E, W1, W2, optimizer=optimizer, batch_size=6, weight_decay=0.25)
    plain.step(windows, targets, 0.2)
    decayed.step(windows, targets, 0.2)
    for start, a, b in (
        (E, plain.E, decayed.E),
        (W1, plain.W1, decayed.W1),
        (W2, plain.W2, decayed.W2),
    ):
        np.testing.assert_allclose(b - a, -0.2 * 0.25 * start, rtol=1e-12, atol=1e-15)
    unused = np.setdiff1d(np.arange(len(E)), windows)
    assert len(unused) and np.array_equal(decayed.E[unused], E[unused] * (1 - 0.05))
    # The second step's update part is the same: the moments did not see the decay.
    plain.step(windows, targets, 0.2)
    decayed.step(windows, targets, 0.2)
    assert not np.allclose(plain.W2, decayed.W2)


def test_weight_decay_that_overflows_changes_nothing():
    """lr * wd so large that p * (1 - lr*wd) overflows float32: Diverged, nothing
    changed. 1 - lr*wd (-1e37) and every weight (<= ~300) are far below float32's
    largest number, so only a bound that multiplies them sends the step to the exact
    check."""
    E, W1, W2, windows, targets = _problem(4)
    arrays = [a.astype(np.float32) for a in (E * 100, W1, W2)]
    for optimizer in ("adam", "sgd"):
        state = TrainState(*arrays, optimizer=optimizer, batch_size=6, weight_decay=1e38)
        with pytest.raises(Diverged, match="not finite"):
            state.step(windows, targets, 0.1)
        assert state.steps == 0
        for got, want in zip((state.E, state.W1, state.W2), arrays):
            np.testing.assert_array_equal(got, want)


def test_steps_lower_the_loss_and_loss_is_chunked():
    E, W1, W2, windows, targets = _problem(2)
    state = TrainState(E, W1, W2, batch_size=4)
    before = state.loss(windows, targets)  # 6 rows in chunks of 4
    assert before == pytest.approx(_np_loss(E, W1, W2, windows, targets, False), rel=1e-12)
    for _ in range(50):  # rows 2..5: distinct windows, learnable
        state.step(windows[2:], targets[2:], 0.05)
    assert state.loss(windows[2:], targets[2:]) < 0.1 < before
    # The caller's arrays are never written.
    np.testing.assert_array_equal(E, _problem(2)[0])


def test_non_finite_step_changes_nothing():
    assert issubclass(Diverged, ValueError)  # the rule of every bad value in tinyllm
    E, W1, W2, windows, targets = _problem(4)
    E32, W132, W232 = E.astype(np.float32), W1.astype(np.float32), (W2 * 1000).astype(np.float32)
    state = TrainState(E32, W132, W232, optimizer="sgd", batch_size=6)
    with pytest.raises(Diverged, match="not finite"):
        state.step(windows, targets, 1e37)  # the update overflows float32
    assert state.steps == 0
    np.testing.assert_array_equal(state.E, E32)
    np.testing.assert_array_equal(state.W1, W132)
    np.testing.assert_array_equal(state.W2, W232)
    state.step(windows, targets, 0.1)  # and the state still works
    assert state.steps == 1
    huge = TrainState(
        (E * 1e30).astype(np.float32),
        (W1 * 1e10).astype(np.float32),
        W2.astype(np.float32),
        batch_size=6,
    )  # f1 overflows: the loss is NaN
    with pytest.raises(Diverged, match="loss"):
        huge.step(windows, targets, 0.1)
    assert huge.steps == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(batch_size=0), "batch_size"),
        (dict(momentum=1.0), "momentum"),
        (dict(eps=0.0), "eps"),
        (dict(weight_decay=-0.1), "weight_decay must be finite and >= 0"),
        (dict(weight_decay=float("nan")), "weight_decay"),
        (dict(weight_decay=float("inf")), "weight_decay"),
    ],
)
def test_train_state_bad_options(kwargs, match):
    E, W1, W2, _, _ = _problem(0)
    with pytest.raises(ValueError, match=match):
        TrainState(E, W1, W2, **kwargs)


def test_train_state_bad_shapes_and_batches():
    E, W1, W2, windows, targets = _problem(0)
    with pytest.raises(ValueError, match="do not fit"):
        TrainState(E, W1, W2[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        TrainState(E, W1, np.full_like(W2, np.nan))
    state = TrainState(E, W1, W2, batch_size=6)
    with pytest.raises(ValueError, match="out of range"):
        state.step(windows + 100, targets, 0.1)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        state.step(windows[:, :2], targets, 0.1)
    with pytest.raises(ValueError, match="batch_size"):
        state.step(np.vstack([windows, windows]), np.concatenate([targets, targets]), 0.1)
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr"):
            state.step(windows, targets, lr)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_updates_over_many_blocks_match_numpy(optimizer, dtype, weight_decay):
    """Weights larger than the update's blocks (and not a multiple of them), both dtypes."""
    rng = np.random.default_rng(7)
    V, d, c, h, B = 301, 5, 3, 17, 11
    params = [
        rng.standard_normal((V, d)).astype(dtype),
        (rng.standard_normal((c * d, h)) / 4).astype(dtype),
        (rng.standard_normal((h, V)) / 4).astype(dtype),
    ]
    windows = rng.integers(0, V, (B, c))
    targets = rng.integers(0, V, B)
    state = TrainState(*params, optimizer=optimizer, batch_size=B, weight_decay=weight_decay)
    m = [np.zeros_like(p, dtype=np.float64) for p in params]
    v = [np.zeros_like(p, dtype=np.float64) for p in params]
    ref = [p.astype(np.float64) for p in params]
    for t in (1, 2, 3):
        _, *grads = TrainState(*[p.astype(dtype) for p in ref], batch_size=B).gradients(
            windows, targets
        )
        state.step(windows, targets, 0.01)
        for i, g in enumerate(grads):
            ref[i], m[i], v[i] = _reference_update(
                optimizer, ref[i], g.astype(np.float64), m[i], v[i], t, 0.01, weight_decay
            )
    for got, want in zip((state.E, state.W1, state.W2), ref):
        np.testing.assert_allclose(
            got, want, rtol=RTOL[dtype], atol=1e-5 if dtype == np.float32 else 1e-12
        )
    assert set(state._phase_seconds()) and all(s >= 0 for s in state._phase_seconds().values())
