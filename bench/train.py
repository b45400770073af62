"""Training throughput: tinyllm's compiled training step against the same step in NumPy.

How to run it (from the repository root, with tinyllm built in place or installed)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train.py            # ~1 min
    python bench/train.py --batch-size 32 128 --optimizer adam --rounds 5

The configuration is the larger one of the performance issue: V = 32 000, d = 64,
c = 8, h = 256, float32. One step = gather the windows' embeddings, f1 = x @ W1,
logits = f1 @ W2, softmax cross-entropy and its gradient, dW2 = f1^T dlogits,
df1 = dlogits W2^T, dW1 = x^T df1, dx = df1 W1^T, scatter dx into dE, then the
optimizer update (Adam, or SGD with momentum) of E, W1 and W2. The NumPy version is
what a competent NumPy user writes (``@`` on OpenBLAS, ``np.add.at``, in-place
updates). tinyllm's step (``tinyllm._train.TrainState.step``) runs the same math in
Cython kernels without the GIL on one thread, and additionally checks that the loss
and the update are finite (a pass NumPy does not make).

Every contender is timed in interleaved rounds and the median kept; tokens/s = batch
size / median step time (one token predicted per window). NumPy's BLAS uses its
default thread count unless ``--blas-threads`` (needs threadpoolctl); tinyllm uses
one thread. Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (as above) if your environment
sets them. Each compiled variant that exists (``_train``, and ``_train_avx2`` when
built) is timed separately; the variant ``tinyllm`` itself loads is marked.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import time

import numpy as np

V, D_EMB, CONTEXT, HIDDEN = 32_000, 64, 8, 256


def numpy_state(E, W1, W2, optimizer, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8):
    """The same training step in NumPy; returns ``step(windows, targets, lr) -> loss``."""
    params = [E.copy(), W1.copy(), W2.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    dE = np.zeros_like(E)
    t = [0]

    def step(windows, targets, lr):
        E, W1, W2 = params
        B = len(targets)
        X = E[windows].reshape(B, -1)
        H = X @ W1
        Z = H @ W2
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        rows = np.arange(B)
        loss = float(-np.log(Z[rows, targets]).mean())
        Z[rows, targets] -= 1
        Z /= B
        dW2 = H.T @ Z
        dH = Z @ W2.T
        dW1 = X.T @ dH
        dX = dH @ W1.T
        dE[...] = 0
        np.add.at(dE, windows.reshape(-1), dX.reshape(-1, E.shape[1]))
        t[0] += 1
        for i, (p, g) in enumerate(zip(params, (dE, dW1, dW2))):
            if optimizer == "sgd":
                m[i] *= momentum
                m[i] += g
                p -= lr * m[i]
            else:
                m[i] *= b1
                m[i] += (1 - b1) * g
                v[i] *= b2
                v[i] += (1 - b2) * g * g
                mhat = m[i] / (1 - b1 ** t[0])
                vhat = v[i] / (1 - b2 ** t[0])
                p -= lr * mhat / (np.sqrt(vhat) + eps)
        return loss

    return step


def variants():
    """The compiled training modules that exist, and the one tinyllm uses."""
    import tinyllm._compiled as compiled

    found = {}
    for name in ("_train", "_train_avx2"):
        try:
            found[name] = importlib.import_module(f"tinyllm.{name}")
        except ImportError:
            pass
    used = next((n for n, mod in found.items() if mod.TrainState is compiled.TrainState), None)
    return found, used


def run(batch_size: int, optimizer: str, rounds: int, warmup: int = 2) -> dict:
    rng = np.random.default_rng(0)
    f = np.float32
    E = rng.standard_normal((V, D_EMB)).astype(f)
    W1 = (rng.standard_normal((CONTEXT * D_EMB, HIDDEN)) / np.sqrt(CONTEXT * D_EMB)).astype(f)
    W2 = (rng.standard_normal((HIDDEN, V)) / np.sqrt(HIDDEN)).astype(f)
    windows = rng.integers(0, V, (batch_size, CONTEXT))
    targets = rng.integers(0, V, batch_size)
    lr = 1e-4
    modules, used = variants()
    contenders = {"numpy": numpy_state(E, W1, W2, optimizer)}
    for name, mod in modules.items():
        state = mod.TrainState(E, W1, W2, optimizer=optimizer, batch_size=batch_size)
        contenders[f"tinyllm{name}"] = state.step
    for step in contenders.values():
        for _ in range(warmup):
            step(windows, targets, lr)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            step(windows, targets, lr)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return {"batch_size": batch_size, "optimizer": optimizer, "medians": medians,
            "used": f"tinyllm{used}" if used else None, "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--optimizer", nargs="+", choices=("adam", "sgd"), default=["adam", "sgd"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args()
    limiter = None
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.blas_threads)
    print(f"# Training throughput: V={V}, d={D_EMB}, c={CONTEXT}, h={HIDDEN}, float32")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy "
          f"{np.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}; "
          f"BLAS threads: {'default' if args.blas_threads is None else args.blas_threads}")
    print()
    print("| batch | optimizer | contender | ms/step | tokens/s | speed-up vs numpy |")
    print("|------:|-----------|-----------|--------:|---------:|------------------:|")
    for B in args.batch_size:
        for opt in args.optimizer:
            r = run(B, opt, args.rounds)
            base = r["medians"]["numpy"]
            for name, t in r["medians"].items():
                mark = " (used)" if name == r["used"] else ""
                ratio = "" if name == "numpy" else f"{base / t:.2f}×"
                print(f"| {B} | {opt} | {name}{mark} | {t * 1e3:.1f} | {B / t:,.0f} | {ratio} |",
                      flush=True)
    if limiter is not None:
        limiter.unregister() if hasattr(limiter, "unregister") else None


if __name__ == "__main__":
    main()
