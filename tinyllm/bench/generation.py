"""Generation: tokens/s of ``TinyLM.generate`` per weight format, batch size and thread count.

A :class:`GenerationCase` is one model shape (the blog's model, or V, h with d = 64,
c = 8): tinyllm generates with W2 in each weight format (``model.quantize(fmt)``)
and for each batch size B (``model.generate([prompt] * B, n, rng=[...])``, one W2
read per step for the whole batch), and races, at the same B:

- the NumPy loops (:mod:`tinyllm.bench.models`): the common one (``x @ W1 @ W2``,
  B = 1 only) and the best ones, every buffer preallocated (:data:`models.NUMPY_LOOPS`;
  the report keeps the fastest and names it), always float32 (the model's dtype);
- PyTorch float32 and bfloat16 (:class:`torch_idioms.TorchLoop`: ``matmul(out=)``,
  a multinomial or a cumsum + searchsorted draw), one thread, when installed;
- plain Python (``tinyllm.reference.PythonLM``), B = 1 only, when the case asks.

Every contender of a case is timed in the same interleaved rounds, so the ratios
come from one run. Each record's ``seconds`` is per token (a call of B sequences of
n tokens makes B·n tokens); ``ratio`` divides it by tinyllm's in the case's first
format at the same B. Each step reads all of W2 once (once for the batch), so W2's
bytes in that format ÷ seconds per step is the rate W2 is read at; the report puts it
next to the *read floor*: the fastest plain read of a buffer of the same size
(:func:`read_floor`, ``tinyllm._linalg._read_bandwidth_probe``), what no projection
that reads W2 once per step can beat.

Formats and batches this tinyllm does not have yet (``TinyLM.quantize``, a list of
prompts) are skipped with the reason; so is any thread count but 1 (the hook for a
``threads=`` option).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinyllm.bench import models
from tinyllm.bench.ops import torch_module
from tinyllm.bench.timing import interleaved

#: tinyllm's weight formats (issue 12), as ``TinyLM.quantize`` and ``weight_format`` say them.
FORMATS = ("float32", "float16", "bfloat16", "int8")
#: Bytes per weight of W2 in each format (int8 adds one float32 scale per column).
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}

#: W2 smaller than this is not worth a read rate: a step's time is then the rest of it.
FLOOR_MIN_BYTES = 2**20

#: Model name -> (what makes it: (model, prompt positions), how the report says it).
MODELS: dict[str, tuple[Callable, str]] = {
    "blog": (models.blog_model, "the blog's model (V = 5, float64)"),
    "large": (models.large_model, "V = 32,000, d = 64, c = 8, h = 256, float32"),
    "8k-h128": (
        functools.partial(models.shape_model, 8_000, 128),
        "V = 8,000, d = 64, c = 8, h = 128, float32",
    ),
    "32k-h64": (
        functools.partial(models.shape_model, 32_000, 64),
        "V = 32,000, d = 64, c = 8, h = 64, float32",
    ),
}


@dataclass(frozen=True)
class GenerationCase:
    """One model shape and what to time on it.

    ``formats[0]`` is the model's own dtype: the base of the ratios. ``tokens`` gives
    each library's tokens per sequence per call (0: not timed).
    """

    model: str
    formats: tuple[str, ...] = ("float32",)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    tokens: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What ``--only`` matches: 'generate large'."""
        return f"generate {self.model}"


def w2_bytes(fmt: str, hidden: int, V: int) -> int:
    """The bytes of W2 (h, V) in ``fmt``: what each generation step reads."""
    return hidden * V * ITEMSIZE[fmt] + (4 * V if fmt == "int8" else 0)


def read_floor(nbytes: int, min_time: float = 0.05, least_runs: int = 5) -> float:
    """The read floor in GB/s: the fastest of several plain reads of ``nbytes``.

    A buffer of ``nbytes`` (rounded down to 8-byte words) is read whole by
    ``tinyllm._linalg._read_bandwidth_probe`` (one thread, load-bound) once to fault
    its pages in and warm the caches as W2 is warm between steps, then again for at
    least ``least_runs`` runs and ``min_time`` seconds; the best run counts (the
    floor is what the machine can do, noise only slows it).
    """
    from tinyllm._linalg import _read_bandwidth_probe

    words = np.ones(max(nbytes // 8, 1), dtype=np.uint64)
    _read_bandwidth_probe(words)
    best, runs, started = float("inf"), 0, time.perf_counter()
    while runs < least_runs or (time.perf_counter() - started < min_time and runs < 10_000):
        start = time.perf_counter()
        _read_bandwidth_probe(words)
        best = min(best, time.perf_counter() - start)
        runs += 1
    return words.nbytes / best / 1e9


# ---------------------------------------------------------------------------
# tinyllm's variants, where this build has them
# ---------------------------------------------------------------------------


def in_format(model, fmt: str):
    """(the model with W2 in ``fmt``, None), or (None, why it cannot be timed)."""
    if fmt == model.config.dtype:
        return model, None
    if not hasattr(model, "quantize"):
        return None, "TinyLM.quantize is missing in this build (issue 12: weight formats)"
    return model.quantize(fmt), None


def batch_unsupported(model, prompt: list[int]) -> str | None:
    """Why ``model.generate`` cannot be timed on a batch of prompts, or None if it can."""
    try:
        out = model.generate([prompt, prompt], 1, rng=[0, 1])
    except (TypeError, ValueError) as exc:
        return f"TinyLM.generate takes no batch of prompts in this build (issue 12): {exc}"
    if not (isinstance(out, list) and len(out) == 2 and all(isinstance(t, str) for t in out)):
        return f"TinyLM.generate on 2 prompts returned {type(out).__name__}, not 2 texts"
    return None


# ---------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------


@dataclass
class Contender:
    """One timed call: ``tokens`` tokens (B sequences of n) of one library and idiom."""

    idiom: str  # "tinyllm", "numpy:dot", "torch:cumsum", "python:loop", ...
    role: str  # "measured" (tinyllm), "common" or "best"
    dtype: str  # the format of the weights it reads
    batch: int
    threads: int
    tokens: int
    call: Callable[[], object]
    label: str = ""

    @property
    def library(self) -> str:
        return self.idiom.split(":")[0]

    @property
    def key(self) -> str:
        return f"{self.idiom} {self.dtype} B={self.batch} threads={self.threads}"


def tinyllm_contenders(case: GenerationCase, model, prompt, skip) -> list[Contender]:
    n = case.tokens.get("tinyllm", 0)
    found: list[Contender] = []
    variants = {}
    for fmt in case.formats:
        variant, why = in_format(model, fmt)
        if why:
            skip(f"tinyllm {fmt}", why)
        else:
            variants[fmt] = variant
    batch_why = batch_unsupported(model, prompt) if max(case.batches) > 1 else None
    for B in case.batches:
        if B > 1 and batch_why:
            skip(f"tinyllm B={B}", batch_why)
            continue
        for threads in case.threads:
            if threads != 1:
                skip(f"tinyllm threads={threads}", "TinyLM.generate has no threads= option yet")
                continue
            for fmt, variant in variants.items():
                call = tinyllm_call(variant, prompt, n, B)
                found.append(Contender("tinyllm", "measured", fmt, B, threads, B * n, call))
    return found


def tinyllm_call(model, prompt: list[int], n: int, B: int) -> Callable[[], object]:
    """``model.generate``: one prompt with one generator, or B prompts with one each."""
    if B == 1:
        rng = np.random.default_rng(0)
        return lambda: model.generate(prompt, n, rng=rng)
    rngs = [np.random.default_rng(i) for i in range(B)]
    return lambda: model.generate([prompt] * B, n, rng=rngs)


def numpy_contenders(case: GenerationCase, batches, model, prompt) -> list[Contender]:
    n = case.tokens.get("numpy", 0)
    if not n:
        return []
    dtype = model.config.dtype
    found = []
    for B in batches:
        if B == 1:
            common = models.NumpyLM(model)
            models.check_same_model(model, prompt, common)
            common_call = functools.partial(common.generate, prompt, n, np.random.default_rng(0))
            label = "x @ W1 @ W2, np.exp, np.cumsum + searchsorted"
            found.append(Contender("numpy:loop", "common", dtype, 1, 1, n, common_call, label))
        for idiom in models.NUMPY_LOOPS:
            loop = models.NumpyLoop(model, idiom, B)
            models.check_same_model(model, prompt, loop)
            call = functools.partial(loop.generate, [prompt] * B, n, np.random.default_rng(0))
            found.append(Contender(f"numpy:{idiom}", "best", dtype, B, 1, B * n, call, loop.label))
    return found


def torch_contenders(case: GenerationCase, batches, model, prompt, skip) -> list[Contender]:
    n = case.tokens.get("torch", 0)
    if not n:
        return []
    tmi = torch_module()
    if tmi is None:
        skip("torch", "PyTorch is not installed")
        return []
    found = []
    for B in batches:
        for dtype in ("float32", "bfloat16"):
            for idiom, (_, label) in tmi.TORCH_LOOPS.items():
                loop = tmi.TorchLoop(model, dtype, idiom, B)
                if dtype == "float32":
                    models.check_same_model(model, prompt, loop)
                call = functools.partial(loop.generate, [prompt] * B, n, tmi.generator(0))
                role = "common" if idiom == "multinomial" else "best"
                found.append(Contender(f"torch:{idiom}", role, dtype, B, 1, B * n, call, label))
    return found


def python_contenders(case: GenerationCase, model, prompt) -> list[Contender]:
    n = case.tokens.get("python", 0)
    if not n:
        return []
    py = models.PythonLM(model)
    models.check_same_model(model, prompt, py)
    call = functools.partial(py.generate, prompt, n, random.Random(0))
    label = "tinyllm.reference.PythonLM: sum(map(mul)) per output, random.choices"
    return [Contender("python:loop", "common", model.config.dtype, 1, 1, n, call, label)]


def contenders(case: GenerationCase, model, prompt: list[int]) -> tuple[list[Contender], list]:
    """Every contender of ``case`` and the skip records of what cannot run here."""
    skipped: list[dict] = []

    def skip(what: str, reason: str) -> None:
        skipped.append({"op": "generate", "family": case.model, "idiom": what, "reason": reason})

    found = tinyllm_contenders(case, model, prompt, skip)
    batches = sorted({c.batch for c in found})  # no baseline where tinyllm did not run
    found += numpy_contenders(case, batches, model, prompt)
    found += torch_contenders(case, batches, model, prompt, skip)
    found += python_contenders(case, model, prompt)
    return found, skipped


# ---------------------------------------------------------------------------
# Timing a case
# ---------------------------------------------------------------------------


def time_case(case: GenerationCase, rounds: int, min_time: float, budget: float):
    """Time every contender of ``case`` in interleaved rounds: (records, skip records)."""
    model, prompt = MODELS[case.model][0]()
    found, skipped = contenders(case, model, prompt)
    by_key = {c.key: c for c in found}
    times = interleaved({k: c.call for k, c in by_key.items()}, rounds, min_time, budget)
    V, h = model.config.vocab_size, model.config.hidden
    base = {
        c.batch: times[c.key].median / c.tokens
        for c in found
        if c.library == "tinyllm" and c.dtype == case.formats[0] and c.threads == 1
    }
    floors: dict[int, float] = {}
    records = []
    for key, c in by_key.items():
        seconds = times[key].median / c.tokens
        record = {
            "op": "generate",
            "family": case.model,
            "V": V,
            "h": h,
            "dtype": c.dtype,
            "batch": c.batch,
            "threads": c.threads,
            "idiom": c.idiom,
            "library": c.library,
            "role": c.role,
            "label": c.label,
            "seconds": seconds,
            "ratio": seconds / base[c.batch] if c.batch in base else None,
            "spread": times[key].spread,
            "tokens_per_call": c.tokens,
            "samples": times[key].samples,
        }
        nbytes = w2_bytes(c.dtype, h, V)
        record["w2_bytes"] = nbytes
        if c.library != "python" and nbytes >= FLOOR_MIN_BYTES:
            record["gb_per_s"] = nbytes / (seconds * c.batch) / 1e9
            if c.library == "tinyllm":
                if nbytes not in floors:
                    floors[nbytes] = read_floor(nbytes)
                record["read_floor_gb_per_s"] = floors[nbytes]
        records.append(record)
    return records, skipped
