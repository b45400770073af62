"""f2 on W2 packed in panels (issue 12) against the row-major kernel it replaced and the
read floor.

For each float32 shape (h, V), in the same interleaved rounds:

- the projection's read rate: W2's bytes / the time of ``forward`` on a model whose
  f1 is trivial (d = c = 1), packed and row-major, next to the read floor (the
  benchmark's plain read of a buffer of W2's size, ``_read_bandwidth_probe``);
- generation tokens/s (``Generation.take``, d = 64, c = 8, temperature 1): W1 and W2
  packed (what every float32 model uses now) against the same loop on the row-major
  arrays (the kernel of tinyllm before issue 12, still what ``forward`` runs on plain
  arrays).

    python bench/packed_projection.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinyllm._generate import Generation, PackedMatrix, forward
from tinyllm._linalg import _read_bandwidth_probe

SHAPES = [(128, 8_000), (64, 32_000), (128, 32_000), (256, 32_000)]


def best_time(call, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def measure(h: int, V: int, rounds: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    W2 = (rng.standard_normal((h, V)) / np.sqrt(h)).astype(np.float32)
    packed = PackedMatrix(W2)
    # projection only: d = c = 1, so x @ W1 is h multiply-adds
    E1 = rng.standard_normal((V, 1)).astype(np.float32)
    W1_1 = rng.standard_normal((1, h)).astype(np.float32)
    # generation: the larger model's d and c
    E = rng.standard_normal((V, 64)).astype(np.float32)
    W1 = (rng.standard_normal((512, h)) / np.sqrt(512)).astype(np.float32)
    words = np.ones(W2.nbytes // 8, dtype=np.uint64)
    n = max(20, int(2e8 // W2.nbytes))

    def tokens(w1, w2):
        return lambda: Generation(E, w1, w2, list(range(8)), rng=0).take(n)

    calls = {
        "project packed": lambda: forward(E1, W1_1, packed, [0]),
        "project rows": lambda: forward(E1, W1_1, W2, [0]),
        "floor": lambda: _read_bandwidth_probe(words),
        "generate packed": tokens(PackedMatrix(W1), packed),
        "generate rows": tokens(W1, W2),
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            repeat = 1 if name.startswith("generate") else 10
            best[name] = min(best[name], best_time(call, repeat))
    for name in ("generate packed", "generate rows"):
        best[name] /= n
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        "| h × V | W2 MiB | read floor GB/s | packed GB/s (% of floor) | row-major GB/s "
        "| tokens/s packed | tokens/s row-major | packed ÷ row-major |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for h, V in SHAPES:
        t = measure(h, V, args.rounds)
        nbytes = h * V * 4
        floor, packed, rows = (
            nbytes / t[k] / 1e9 for k in ("floor", "project packed", "project rows")
        )
        print(
            f"| {h} × {V} | {nbytes / 2**20:.1f} | {floor:.0f} | {packed:.0f} "
            f"({100 * packed / floor:.0f} %) | {rows:.0f} | {1 / t['generate packed']:.0f} "
            f"| {1 / t['generate rows']:.0f} "
            f"| {t['generate rows'] / t['generate packed']:.2f}× |"
        )


if __name__ == "__main__":
    main()
