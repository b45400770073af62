"""The performance targets (issues 4 and 11), checked against the ratios of one run.

A target names an op, a column (a library and role: "NumPy best" is the fastest
NumPy idiom of each case), the sizes it applies to and the ratio needed on every
family and dtype measured there. Its status is MET when every such case reaches it,
NOT MET otherwise, "not measured" when the run had none; the worst case is named.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

FILTERS = ("top_p", "top_k", "min_p", "typical_p")


@dataclass(frozen=True)
class Target:
    goal: str  # the wording, short
    op: str
    library: str  # "numpy", "torch", "python" or "tinyllm" (a variant of tinyllm's call)
    role: str  # "best": the fastest idiom of that library; "common": its common one
    needed: float  # the ratio (idiom's time ÷ tinyllm's) each case must reach
    min_V: int = 0
    max_V: int | None = None

    def applies(self, size: int) -> bool:
        return self.min_V <= size and (self.max_V is None or size <= self.max_V)


def targets() -> list[Target]:
    rows = []
    for op in FILTERS:
        rows += [
            Target(f"{op}: ≥ 3× the best NumPy, V = 32k … 10⁷", op, "numpy", "best", 3, 32_000),
            Target(
                f"{op}: ≥ 5× PyTorch transformers-style at 32k",
                op,
                "torch",
                "common",
                5,
                32_000,
                32_000,
            ),
            Target(f"{op}: ≥ 1× NumPy's common idiom, V ≥ 1k", op, "numpy", "common", 1, 1_000),
        ]
    rows += [
        Target(
            "temperature: ≥ 3× the best NumPy at 32k",
            "temperature",
            "numpy",
            "best",
            3,
            32_000,
            32_000,
        ),
        Target(
            "temperature: ≥ 5× PyTorch cumsum + searchsorted at 32k",
            "temperature",
            "torch",
            "best",
            5,
            32_000,
            32_000,
        ),
        Target("greedy: ≥ 1× np.argmax at every size", "greedy", "numpy", "best", 1),
        Target(
            "penalties cost < 10 % at 32k (time without ÷ with ≥ 0.91)",
            "penalties",
            "tinyllm",
            "best",
            1 / 1.1,
            32_000,
            32_000,
        ),
        Target(
            "generation, blog model: ≥ 30× plain Python", "generate", "python", "common", 30, 5, 5
        ),
        Target(
            "generation, V = 32k model: ≥ 2× NumPy",
            "generate",
            "numpy",
            "common",
            2,
            32_000,
            32_000,
        ),
    ]
    return rows


def column_ratios(results: list[dict], library: str, role: str) -> dict[tuple, float]:
    """{(op, family, V, dtype): ratio} of a column: the fastest idiom of ``library``
    (``role`` "best": any of its idioms; "common": its common ones)."""
    found: dict[tuple, float] = defaultdict(lambda: float("inf"))
    for r in results:
        if r["library"] == library and (role == "best" or r["role"] == role):
            key = (r["op"], r["family"], r["V"], r["dtype"])
            found[key] = min(found[key], r["ratio"])
    return dict(found)


def check(target: Target, results: list[dict]) -> dict:
    cases = {
        key: ratio
        for key, ratio in column_ratios(results, target.library, target.role).items()
        if key[0] == target.op and target.applies(key[2])
    }
    row = {
        "goal": target.goal,
        "op": target.op,
        "vs": f"{target.library} {target.role}",
        "needed": target.needed,
        "cases": len(cases),
        "met": sum(ratio >= target.needed for ratio in cases.values()),
    }
    if not cases:
        return {**row, "status": "not measured", "worst": None}
    (_, family, V, dtype), worst = min(cases.items(), key=lambda item: item[1])
    status = "MET" if row["met"] == len(cases) else "NOT MET"
    return {
        **row,
        "status": status,
        "worst": {"ratio": worst, "family": family, "V": V, "dtype": dtype},
    }


def check_all(results: list[dict]) -> list[dict]:
    return [check(target, results) for target in targets()]
