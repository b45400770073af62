"""Timing: calibrated loops, interleaved rounds, medians.

A *contender* is a no-argument callable whose inputs were prepared beforehand, so
only the call itself is timed. :func:`interleaved` first calibrates each contender
(how many calls make one sample last ``min_time``), then runs ``rounds`` rounds (fewer
when they would exceed a time budget); each
round takes one sample of every contender, in an order rotated by one each round.
A noisy neighbour thus slows every contender alike, and the median per contender
discards the rounds it spoiled.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timing:
    """Seconds per call of one contender: the median over rounds and every sample."""

    median: float
    samples: list[float] = field(default_factory=list)
    calls_per_sample: int = 1

    @property
    def spread(self) -> float:
        """(max - min) / median over the rounds: how noisy this figure is."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def to_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": min(self.samples),
            "spread": self.spread,
            "calls_per_sample": self.calls_per_sample,
            "samples_s": self.samples,
        }


def one_sample(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` back-to-back calls (garbage collector off)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls
    finally:
        if gc_was_on:
            gc.enable()


def calibrate(fn: Callable[[], object], min_time: float) -> tuple[int, float]:
    """How many calls of ``fn`` make one sample last at least ``min_time`` seconds, and
    the seconds per call seen. A warm-up call (first-touch page faults, lazy imports,
    caches) comes first; when it alone lasts ``min_time``, one call per sample it is."""
    per_call = one_sample(fn, 1)
    calls = 1
    for _ in range(4):
        if per_call * calls >= min_time:
            break
        calls = max(calls + 1, math.ceil(min_time / max(per_call, 1e-9) * 1.1))
        per_call = one_sample(fn, calls)
    return calls, per_call


def interleaved(
    contenders: dict[str, Callable[[], object]],
    rounds: int,
    min_time: float,
    budget: float | None = None,
) -> dict[str, Timing]:
    """Median seconds per call of every contender, measured in interleaved rounds.

    With a ``budget`` (seconds), fewer rounds (at least one) when ``rounds`` of them
    would take longer: a case whose calls take seconds needs few to be measured.
    """
    names = list(contenders)
    calls, per_call = {}, {}
    for name in names:
        calls[name], per_call[name] = calibrate(contenders[name], min_time)
    if budget is not None:
        one_round = sum(calls[name] * per_call[name] for name in names)
        rounds = max(1, min(rounds, int(budget / max(one_round, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(one_sample(contenders[name], calls[name]))
    return {
        name: Timing(statistics.median(samples[name]), samples[name], calls[name]) for name in names
    }
