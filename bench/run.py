"""Benchmark tinyllm's kernels against NumPy and the pure-Python reference, in one run.

    python bench/run.py            # all sizes
    python bench/run.py --quick    # a few seconds

Each case times every contender in interleaved rounds (so a noisy neighbour slows
them all alike), keeps the median per contender and reports ratios:
speed-up = other's time / tinyllm's time. Absolute times vary between machines and
runs; the ratios measured side by side are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import tinyllm
from tinyllm import reference as ref


def time_call(fn: Callable[[], object], min_time: float = 0.02) -> float:
    """Seconds per call of ``fn``, looping until ``min_time`` has passed."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n
        n *= 2 if elapsed == 0 else max(2, int(min_time / elapsed * 1.2))


def compare(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each contender over interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(time_call(fn))
    return {name: statistics.median(s) for name, s in samples.items()}


def numpy_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def cases(quick: bool):
    rng = np.random.default_rng(0)
    sizes = [5, 1_000] if quick else [5, 1_000, 32_000, 1_000_000]
    for dtype in (np.float32, np.float64):
        for V in sizes:
            x = (rng.standard_normal(V) * 3).astype(dtype)
            xl = x.tolist()
            row = {"tinyllm": lambda x=x: tinyllm.softmax(x), "numpy": lambda x=x: numpy_softmax(x)}
            if V <= 32_000:
                row["python"] = lambda xl=xl: ref.softmax(xl)
            yield f"softmax V={V} {np.dtype(dtype).name}", row
        for n in ([6, 1_000] if quick else [6, 1_000, 100_000]):
            a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
            row = {"tinyllm": lambda a=a, b=b: tinyllm.dot(a, b), "numpy": lambda a=a, b=b: np.dot(a, b)}
            if n <= 100_000:
                row["python"] = lambda a=a.tolist(), b=b.tolist(): ref.dot(a, b)
            yield f"dot n={n} {np.dtype(dtype).name}", row
        for k, V in ([(1, 5), (64, 1_000)] if quick else [(1, 5), (64, 1_000), (256, 32_000)]):
            h, W = rng.standard_normal(k).astype(dtype), rng.standard_normal((k, V)).astype(dtype)
            row = {"tinyllm": lambda h=h, W=W: tinyllm.project(h, W), "numpy": lambda h=h, W=W: h @ W}
            if k * V <= 100_000:
                row["python"] = lambda h=h.tolist(), W=W.tolist(): ref.project(h, W)
            yield f"project k={k} V={V} {np.dtype(dtype).name}", row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)

    print(f"tinyllm {tinyllm.__version__}, numpy {np.__version__}, median of {rounds} rounds\n")
    print(f"| case | tinyllm µs | NumPy µs | Python µs | vs NumPy | vs Python |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for name, row in cases(args.quick):
        t = compare(row, rounds)
        us = {k: v * 1e6 for k, v in t.items()}
        py = f"{us['python']:.2f}" if "python" in us else "–"
        vs_py = f"{t['python'] / t['tinyllm']:.1f}×" if "python" in t else "–"
        print(f"| {name} | {us['tinyllm']:.2f} | {us['numpy']:.2f} | {py} | "
              f"{t['numpy'] / t['tinyllm']:.2f}× | {vs_py} |")


if __name__ == "__main__":
    main()
