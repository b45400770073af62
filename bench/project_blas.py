"""Batched projection: tinyllm's kernel, tinyllm.project and np.matmul, per shape and batch.

How to run it (from the repository root, with tinyllm built in place or installed)::

    python bench/project_blas.py                     # ~1 min: the switch point and B = 64
    python bench/project_blas.py --shapes 256x32000 --batches 64 --dtypes float32

``project(h, W)`` with h of shape (B, k) hands the product to NumPy's BLAS from
``tinyllm._linalg.BLAS_SWITCH`` on (B rows and B * k * V multiply-adds); this prints
what that choice is made from: the time of tinyllm's own kernel
(``tinyllm._linalg._project_kernel``, never BLAS), of ``tinyllm.project`` (the checks
and whichever path it takes) and of ``np.matmul(h, W)``, each of the last two also with
``out=`` a preallocated array (a new result of a few MiB costs its page faults, the
same for both). They are timed in interleaved rounds and the fastest round kept, so
that a busy machine disturbs them alike. ``vs matmul`` is matmul's time / the other's
(the issue's target: project >= 0.95 at B = 64). BLAS runs on as many threads as it is
configured for (OPENBLAS_NUM_THREADS, ...), the same for np.matmul and project.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

CHECKOUT = Path(__file__).resolve().parent.parent
# The checkout's own tinyllm when it is built in place, else the installed one.
if any(p.suffix in (".so", ".pyd") for p in (CHECKOUT / "tinyllm").glob("_linalg*")):
    sys.path.insert(0, str(CHECKOUT))

import tinyllm  # noqa: E402
from tinyllm import _linalg  # noqa: E402

SHAPES = ["16x64", "64x256", "128x8000", "256x32000"]
BATCHES = [2, 4, 8, 16, 64]


def seconds_per_call(func: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls


def calls_per_round(func: Callable[[], object], seconds: float = 0.01) -> int:
    """Enough calls for a round of about ``seconds``."""
    func()
    calls = 1
    while seconds_per_call(func, calls) * calls < seconds:
        calls *= 2
    return calls


def fastest(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The fastest round's time per call of each contender, the rounds interleaved."""
    calls = {name: calls_per_round(func) for name, func in contenders.items()}
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, func in contenders.items():
            best[name] = min(best[name], seconds_per_call(func, calls[name]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="k x V, e.g. 256x32000")
    parser.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    rows, work = _linalg.BLAS_SWITCH
    print(f"# project vs np.matmul; BLAS from B >= {rows} and B*k*V >= {work}")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy "
        f"{np.__version__}, kernels {tinyllm._compiled.SIMD}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}"
    )
    print()
    print(
        "| dtype | k | V | B | kernel µs | project µs | np.matmul µs | project out= µs "
        "| np.matmul out= µs | kernel vs matmul | project vs matmul | project vs matmul, out= |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    rng = np.random.default_rng(0)
    for dtype in args.dtypes:
        for shape in args.shapes:
            k, V = (int(n) for n in shape.split("x"))
            W = rng.standard_normal((k, V)).astype(dtype)
            for B in args.batches:
                H = rng.standard_normal((B, k)).astype(dtype)
                out = np.empty((B, V), dtype)
                t = fastest(
                    {
                        "kernel": lambda: _linalg._project_kernel(H, W),
                        "project": lambda: tinyllm.project(H, W),
                        "matmul": lambda: np.matmul(H, W),
                        "project out": lambda: tinyllm.project(H, W, out=out),
                        "matmul out": lambda: np.matmul(H, W, out=out),
                    },
                    args.rounds,
                )
                us = {name: f"{seconds * 1e6:.1f}" for name, seconds in t.items()}
                print(
                    f"| {dtype} | {k} | {V} | {B} | {us['kernel']} | {us['project']} "
                    f"| {us['matmul']} | {us['project out']} | {us['matmul out']} "
                    f"| {t['matmul'] / t['kernel']:.2f} | {t['matmul'] / t['project']:.2f} "
                    f"| {t['matmul out'] / t['project out']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
