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
updates). tinyllm's step (``tinyllm._train.TrainState.step``) runs the same math: the
matrix products on the same BLAS (NumPy's, through ``np.matmul(..., out=...)``), the
rest in fused Cython kernels on one thread; it additionally makes sure that the loss,
the gradients and the update are finite (NumPy does not).

Every contender is timed in interleaved rounds and the median kept; tokens/s = batch
size / median step time (one token predicted per window). Both sides call the same
BLAS library, so they get the same number of BLAS threads: ``--blas-threads``
(default 1, set with threadpoolctl; 0 leaves BLAS's default), printed in the header.
Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (as above) if your environment sets them.
Each compiled variant that exists (``_train``, and ``_train_avx2``/``_train_avx512`` when built) is
timed separately; the variant ``tinyllm`` itself loads is marked. ``--profile``
adds the median time of each phase of a step, for NumPy and for the variant used.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

V, D_EMB, CONTEXT, HIDDEN = 32_000, 64, 8, 256
NUMPY_PHASES = (
    "gather + f1",
    "f2 = H W2",
    "softmax + xent + dZ",
    "dW2 = H^T dZ",
    "dH",
    "dW1, dX, scatter",
    "finiteness check",
    "optimizer update",
)


def numpy_state(E, W1, W2, optimizer, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8, phases=None):
    """The same training step in NumPy; returns ``step(windows, targets, lr) -> loss``.

    With a dict ``phases``, each step adds the seconds of its phases to it.
    """
    clock = time.perf_counter
    params = [E.copy(), W1.copy(), W2.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    dE = np.zeros_like(E)
    t = [0]

    def step(windows, targets, lr):
        t0 = clock()
        E, W1, W2 = params
        B = len(targets)
        X = E[windows].reshape(B, -1)
        H = X @ W1
        t1 = clock()
        Z = H @ W2
        t2 = clock()
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        rows = np.arange(B)
        loss = float(-np.log(Z[rows, targets]).mean())
        Z[rows, targets] -= 1
        Z /= B
        t3 = clock()
        dW2 = H.T @ Z
        t4 = clock()
        dH = Z @ W2.T
        t5 = clock()
        dW1 = X.T @ dH
        dX = dH @ W1.T
        dE[...] = 0
        np.add.at(dE, windows.reshape(-1), dX.reshape(-1, E.shape[1]))
        t6 = clock()
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
        if phases is not None:
            t7 = clock()
            for name, dt in zip(
                NUMPY_PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, 0.0, t7 - t6)
            ):
                phases.setdefault(name, []).append(dt)
        return loss

    return step


def on_isa(step, isa: str):
    """``step`` with tinyllm's kernels switched to the build for ``isa`` while it runs."""
    from tinyllm import _cpu

    def run_step(*args):
        previous = _cpu.use(isa)
        try:
            return step(*args)
        finally:
            _cpu.use(previous)

    return run_step


def run(
    batch_size: int, optimizer: str, rounds: int, warmup: int = 2, profile: bool = False
) -> dict:
    rng = np.random.default_rng(0)
    f = np.float32
    E = rng.standard_normal((V, D_EMB)).astype(f)
    W1 = (rng.standard_normal((CONTEXT * D_EMB, HIDDEN)) / np.sqrt(CONTEXT * D_EMB)).astype(f)
    W2 = (rng.standard_normal((HIDDEN, V)) / np.sqrt(HIDDEN)).astype(f)
    windows = rng.integers(0, V, (batch_size, CONTEXT))
    targets = rng.integers(0, V, batch_size)
    lr = 1e-4
    from tinyllm import _cpu
    from tinyllm._compiled import TrainState

    used = f"tinyllm_{_cpu.CHOSEN}"
    np_phases: dict[str, list[float]] = {}
    contenders = {"numpy": numpy_state(E, W1, W2, optimizer, phases=np_phases if profile else None)}
    used_state = None
    for isa in _cpu.available():
        state = TrainState(E, W1, W2, optimizer=optimizer, batch_size=batch_size)
        contenders[f"tinyllm_{isa}"] = on_isa(state.step, isa)
        if f"tinyllm_{isa}" == used:
            used_state = state
    tl_phases: dict[str, list[float]] = {}
    for step in contenders.values():
        for _ in range(warmup):
            step(windows, targets, lr)
    np_phases.clear()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            step(windows, targets, lr)
            times[name].append(time.perf_counter() - start)
            if profile and used_state is not None and name == used:
                for phase, dt in used_state._phase_seconds().items():
                    tl_phases.setdefault(phase, []).append(dt)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    phase_medians = {
        side: {k: statistics.median(v) for k, v in ph.items()}
        for side, ph in (("numpy", np_phases), ("tinyllm", tl_phases))
        if ph
    }
    return {
        "batch_size": batch_size,
        "optimizer": optimizer,
        "medians": medians,
        "used": used,
        "times": times,
        "phases": phase_medians,
    }


def blas_threads() -> str:
    """The thread count of each BLAS NumPy loaded, as threadpoolctl reports it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}: "
        f"{i['num_threads']}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return "; ".join(info) or "none found"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--optimizer", nargs="+", choices=("adam", "sgd"), default=["adam", "sgd"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads, for both sides (default 1; 0: BLAS's default)",
    )
    parser.add_argument("--profile", action="store_true", help="also time each phase of a step")
    args = parser.parse_args()
    limiter = None
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.blas_threads, user_api="blas")
    print(f"# Training throughput: V={V}, d={D_EMB}, c={CONTEXT}, h={HIDDEN}, float32")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy "
        f"{np.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}; "
        f"BLAS threads (both sides): {blas_threads()}"
    )
    print()
    print("| batch | optimizer | contender | ms/step | tokens/s | speed-up vs numpy |")
    print("|------:|-----------|-----------|--------:|---------:|------------------:|")
    results = []
    for B in args.batch_size:
        for opt in args.optimizer:
            r = run(B, opt, args.rounds, profile=args.profile)
            results.append(r)
            base = r["medians"]["numpy"]
            for name, t in r["medians"].items():
                mark = " (used)" if name == r["used"] else ""
                ratio = "" if name == "numpy" else f"{base / t:.2f}×"
                print(
                    f"| {B} | {opt} | {name}{mark} | {t * 1e3:.1f} | {B / t:,.0f} | {ratio} |",
                    flush=True,
                )
    if args.profile:
        print("\n# Median ms per phase (numpy | tinyllm, the variant used)\n")
        print("| batch | optimizer | " + " | ".join(NUMPY_PHASES) + " |")
        print("|------:|-----------|" + "---:|" * len(NUMPY_PHASES))
        for r in results:
            ph = r["phases"]
            cells = []
            for k, name in enumerate(NUMPY_PHASES):
                tl = list(ph.get("tinyllm", {}).values())
                cells.append(
                    f"{ph['numpy'][name] * 1e3:.2f} \\| " + (f"{tl[k] * 1e3:.2f}" if tl else "-")
                )
            print(f"| {r['batch_size']} | {r['optimizer']} | " + " | ".join(cells) + " |")
    if limiter is not None:
        limiter.unregister() if hasattr(limiter, "unregister") else None


if __name__ == "__main__":
    main()
