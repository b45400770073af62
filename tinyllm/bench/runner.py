"""Running the benchmark: the plan (quick or full), the cases, generation, a progress bar.

:func:`run` times every case of the plan and returns the results as one JSON-ready
dict (see :mod:`tinyllm.bench` for its schema). Each case times tinyllm and every
idiom of its op in interleaved rounds (:mod:`tinyllm.bench.timing`) on one thread
each (:func:`tinyllm.bench.machine.one_thread`); ratio = the idiom's median time ÷
tinyllm's, so 3 means tinyllm takes a third of the time.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from tinyllm.bench import families, generation, machine, ops, targets
from tinyllm.bench.generation import FORMATS, GenerationCase
from tinyllm.bench.timing import interleaved

SCHEMA = "tinyllm-bench/1"


@dataclass(frozen=True)
class Plan:
    """What to run: sizes, dtypes, rounds; the ops run on every logit family."""

    mode: str
    sizes: tuple[int, ...]
    rounds: int
    min_time: float  # seconds of calls per timed sample
    budget: float  # seconds of timed rounds per case, at most (then fewer rounds, >= 1)
    float64: bool  # also float64 rows (N(0, 1) only)
    generation: tuple[GenerationCase, ...] = ()
    only: str | None = None  # a regular expression on the case's key

    def cases(self, all_ops: tuple[ops.Op, ...]) -> Iterator[tuple[ops.Op, str, int, str]]:
        """(op, family, V, dtype) of every case, in the report's order."""
        pattern = re.compile(self.only) if self.only else None
        for op in all_ops:
            for V in self.sizes:
                if not op.runs_at(V):
                    continue
                for dtype in ("float32", "float64") if self.float64 else ("float32",):
                    every = op.every_family and dtype == "float32"
                    for family in families.FAMILIES if every else ("normal-1",):
                        key = case_key(op.name, family, V, dtype)
                        if pattern is None or pattern.search(key):
                            yield op, family, V, dtype


QUICK = Plan(
    mode="quick",
    sizes=(5, 32_000),
    rounds=3,
    min_time=0.002,
    budget=5.0,
    float64=False,
    generation=(
        GenerationCase("blog", ("float64",), tokens={"tinyllm": 200, "numpy": 200, "python": 200}),
        GenerationCase(
            "large",
            FORMATS,
            (1, 8),
            tokens={"tinyllm": 20, "numpy": 20, "torch": 20, "python": 1},
        ),
    ),
)
FULL = Plan(
    mode="full",
    sizes=(5, 1_000, 32_000, 1_000_000, 10_000_000),
    rounds=5,
    min_time=0.01,
    budget=30.0,
    float64=True,
    generation=(
        GenerationCase("blog", ("float64",), tokens={"tinyllm": 1000, "numpy": 200, "python": 200}),
        GenerationCase(
            "large",
            FORMATS,
            (1, 8, 64),
            tokens={"tinyllm": 50, "numpy": 20, "torch": 20, "python": 2},
        ),
        GenerationCase("8k-h128", tokens={"tinyllm": 100, "numpy": 50, "torch": 50}),
        GenerationCase("32k-h64", tokens={"tinyllm": 100, "numpy": 50, "torch": 50}),
    ),
)


def case_key(op: str, family: str, V: int, dtype: str) -> str:
    """A case's name, which ``--only`` matches: 'top_p normal-1 V=32000 float32'."""
    return f"{op} {family} V={V} {dtype}"


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


class Progress:
    """A one-line bar on stderr, redrawn in place: ``[#####.....] 12/60 top_p ...``.

    Off when ``enabled`` is False; with None, on when stderr is a terminal.
    """

    WIDTH = 30

    def __init__(self, total: int, enabled: bool | None = None):
        self.total, self.done = max(total, 1), 0
        if enabled is None:
            enabled = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        self.enabled = enabled
        self.started = time.perf_counter()

    def step(self, what: str) -> None:
        """Say that step ``done + 1`` of ``total``, ``what``, starts now."""
        if not self.enabled:
            return
        filled = round(self.WIDTH * self.done / self.total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.done += 1
        elapsed = time.perf_counter() - self.started
        line = f"[{bar}] {self.done}/{self.total} {elapsed:4.0f} s  {what}"
        sys.stderr.write("\r" + line[:100].ljust(100))
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


def time_case(op: ops.Op, family: str, V: int, dtype: str, plan: Plan) -> tuple[list, list]:
    """Time tinyllm and the idioms of ``op`` on one row: (result records, skip records)."""
    row = op.make_row(family, V, dtype)
    contenders = {"tinyllm": op.tinyllm(row)}
    skipped = []
    for idiom in op.idioms:
        if idiom.library == "python" and op.python_size(V) > ops.PYTHON_MAX:
            skipped.append(
                {
                    "op": op.name,
                    "family": family,
                    "V": V,
                    "dtype": dtype,
                    "idiom": idiom.key,
                    "reason": f"more than {ops.PYTHON_MAX:,} numbers (seconds per call)",
                }
            )
            continue
        contenders[idiom.key] = idiom.make(row)
    times = interleaved(contenders, plan.rounds, plan.min_time, plan.budget)
    base = times["tinyllm"].median
    by_key = {idiom.key: idiom for idiom in op.idioms}
    records = []
    for key, timing in times.items():
        contender = by_key.get(key)
        records.append(
            {
                "op": op.name,
                "family": family,
                "V": V,
                "dtype": dtype,
                "idiom": key,
                "library": contender.library if contender else "tinyllm",
                "role": contender.role if contender else "measured",
                "seconds": timing.median,
                "ratio": timing.median / base,
                "spread": timing.spread,
                "calls_per_sample": timing.calls_per_sample,
                "samples": timing.samples,
            }
        )
    return records, skipped


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


def time_generation(case: GenerationCase, plan: Plan) -> tuple[list, list]:
    """Seconds per token of every contender of a generation case (see :mod:`.generation`)."""
    return generation.time_case(case, plan.rounds, plan.min_time, plan.budget)


# ---------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------


def run(plan: Plan, progress: bool | None = None) -> dict:
    """Run ``plan`` and return the results (a JSON-ready dict).

    Parameters
    ----------
    plan : Plan
        :data:`QUICK`, :data:`FULL`, or one made from them.
    progress : bool or None
        Draw a progress bar on stderr; None: when stderr is a terminal.
    """
    started = time.perf_counter()
    all_ops = ops.build_ops()  # imports PyTorch when it is installed
    with machine.one_thread() as notes:
        unsupported = {op.name: ops.unsupported(op) for op in all_ops}
        runnable = tuple(op for op in all_ops if not unsupported[op.name])
        cases = list(plan.cases(runnable))
        generation_cases = [
            case for case in plan.generation if not plan.only or re.search(plan.only, case.name)
        ]
        bar = Progress(len(cases) + len(generation_cases), progress)
        results: list[dict] = []
        skipped = [{"op": name, "reason": why} for name, why in unsupported.items() if why]
        try:
            for op, family, V, dtype in cases:
                bar.step(case_key(op.name, family, V, dtype))
                records, skips = time_case(op, family, V, dtype, plan)
                results += records
                skipped += skips
            for case in generation_cases:
                bar.step(case.name)
                records, skips = time_generation(case, plan)
                results += records
                skipped += skips
        finally:
            bar.close()
        described = machine.describe()
    return {
        "schema": SCHEMA,
        "mode": plan.mode,
        "plan": asdict(plan),
        "machine": described,
        "notes": notes,
        "ops": {
            op.name: {
                "title": op.title,
                "idioms": {
                    i.key: {"library": i.library, "role": i.role, "label": i.label}
                    for i in op.idioms
                },
            }
            for op in all_ops
        },
        "results": results,
        "skipped": skipped,
        "targets": targets.check_all(results, vnni=machine.has_vnni(described["cpu"])),
        "seconds": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
