"""int8 generation on each int8 path this CPU has, against the best float32 NumPy loop.

The larger model (V = 32 000, d = 64, c = 8, h = 256) quantised to int8, generating
from its prompt with VNNI (AVX-512 VNNI, where the CPU has it), without it (the AVX-512
build's 16-bit products), and on the AVX2 build; the NumPy loops are the benchmark's
(``tinyllm.bench.models.NumpyLoop``, float32, preallocated buffers). Interleaved
rounds, best of each.

    python bench/int8_paths.py [--rounds 5] [--tokens 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinyllm import _cpu
from tinyllm._generate import set_int8_vnni
from tinyllm.bench.models import NUMPY_LOOPS, NumpyLoop, large_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args()
    n = args.tokens
    model, prompt = large_model()
    int8 = model.quantize("int8")

    def tinyllm_on(isa: str, vnni: bool):
        def call():
            previous = _cpu.use(isa)
            before = set_int8_vnni(vnni)
            try:
                int8.generate_positions(prompt, n, rng=0)
            finally:
                set_int8_vnni(before)
                _cpu.use(previous or _cpu.CHOSEN)

        return call

    calls = {}
    for isa in _cpu.available():
        calls[f"tinyllm int8, {isa} build"] = tinyllm_on(isa, False)
        if isa == "avx512":
            calls["tinyllm int8, avx512 build + VNNI"] = tinyllm_on(isa, True)
    for idiom in NUMPY_LOOPS:
        loop = NumpyLoop(model, idiom)
        calls[f"NumPy float32 loop, {idiom}"] = lambda loop=loop: loop.generate(
            [prompt], n, np.random.default_rng(0)
        )
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(args.rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    numpy_best = min(t for name, t in best.items() if name.startswith("NumPy"))
    print("| contender | tokens/s | vs the best NumPy loop |\n|---|---:|---:|")
    for name, t in best.items():
        print(f"| {name} | {1 / t:.0f} | {numpy_best / t:.2f}× |")


if __name__ == "__main__":
    main()
