"""The performance targets (issues 4, 11 and 12), checked against the ratios of one run.

A target names an op, a column (a library and role: "NumPy best" is the fastest
NumPy idiom of each case), the sizes it applies to and the ratio needed on every
family and dtype measured there. Its status is MET when every such case reaches it,
NOT MET otherwise, "not measured" when the run had none; the worst case is named.
Generation's targets (:class:`GenerationTarget`) name a model, tinyllm's weight
format and batch size instead, and compare with a baseline at that batch size (or
with tinyllm itself at another one).
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
    ]
    return rows


@dataclass(frozen=True)
class GenerationTarget:
    """tinyllm's tokens/s on ``models`` with W2 in ``fmt`` and ``batch`` prompts, at
    least ``needed`` times a baseline's: the fastest idiom of ``library`` (of ``role``,
    if given) at the same batch size, or, for ``library`` "tinyllm", tinyllm in the
    same format with ``base_batch`` prompts."""

    goal: str
    models: tuple[str, ...]
    fmt: str
    library: str
    needed: float
    role: str | None = None
    batch: int = 1
    base_batch: int = 1


def generation_targets(vnni: bool) -> list[GenerationTarget]:
    """Issue 4's and issue 12's; the int8 target depends on the CPU having VNNI."""
    int8_needed, int8_cpu = (5.0, "with VNNI") if vnni else (2.5, "without VNNI")
    return [
        GenerationTarget(
            "generation, blog model: ≥ 30× plain Python", ("blog",), "float64", "python", 30
        ),
        GenerationTarget(
            "generation, V = 32k model: ≥ 2× NumPy x @ W1 @ W2",
            ("large",), "float32", "numpy", 2, role="common",
        ),
        GenerationTarget(
            "float16: ≥ 2.5× the best float32 NumPy loop",
            ("large",), "float16", "numpy", 2.5, role="best",
        ),
        GenerationTarget(
            f"int8: ≥ {int8_needed:g}× the best float32 NumPy loop ({int8_cpu})",
            ("large",), "int8", "numpy", int8_needed, role="best",
        ),
        GenerationTarget(
            "float32, 8 prompts: ≥ 4× one prompt's tokens/s",
            ("large",), "float32", "tinyllm", 4, batch=8,
        ),
        GenerationTarget(
            "float32, V=8k/h=128 and V=32k/h=64: ≥ 1.2× the best NumPy loop",
            ("8k-h128", "32k-h64"), "float32", "numpy", 1.2, role="best",
        ),
    ]  # fmt: skip


def generation_ratios(target: GenerationTarget, results: list[dict]) -> dict[tuple, float]:
    """{(model, V, fmt, batch): the baseline's time per token ÷ tinyllm's} of ``target``."""
    generated = [r for r in results if r["op"] == "generate" and r.get("threads", 1) == 1]
    found = {}
    for r in generated:
        if not (
            r["library"] == "tinyllm"
            and r["family"] in target.models
            and r["dtype"] == target.fmt
            and r["batch"] == target.batch
        ):
            continue
        if target.library == "tinyllm":
            same = (r["family"], r["dtype"], target.base_batch)
            base = [
                o
                for o in generated
                if o["library"] == "tinyllm" and (o["family"], o["dtype"], o["batch"]) == same
            ]
        else:
            base = [
                o
                for o in generated
                if o["library"] == target.library
                and (target.role is None or o["role"] == target.role)
                and (o["family"], o["batch"]) == (r["family"], r["batch"])
            ]
        if base:
            seconds = min(o["seconds"] for o in base)
            found[(r["family"], r["V"], r["dtype"], r["batch"])] = seconds / r["seconds"]
    return found


def check_generation(target: GenerationTarget, results: list[dict]) -> dict:
    cases = generation_ratios(target, results)
    vs = target.library + (f" {target.role}" if target.role else "")
    if target.library == "tinyllm":
        vs = f"tinyllm B={target.base_batch}"
    return summary(target.goal, "generate", vs, target.needed, cases)


def column_ratios(results: list[dict], library: str, role: str) -> dict[tuple, float]:
    """{(op, family, V, dtype): ratio} of a column: the fastest idiom of ``library``
    (``role`` "best": any of its idioms; "common": its common ones)."""
    found: dict[tuple, float] = defaultdict(lambda: float("inf"))
    for r in results:
        if r["op"] == "generate":  # see generation_ratios
            continue
        if r["role"] == "measured":  # tinyllm's own call: the reference, ratio 1
            continue
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
    return summary(
        target.goal,
        target.op,
        f"{target.library} {target.role}",
        target.needed,
        {key[1:]: ratio for key, ratio in cases.items()},
    )


def summary(goal: str, op: str, vs: str, needed: float, cases: dict[tuple, float]) -> dict:
    """A target's row: ``cases`` maps (family, V, dtype[, batch]) to the ratio reached."""
    row = {
        "goal": goal,
        "op": op,
        "vs": vs,
        "needed": needed,
        "cases": len(cases),
        "met": sum(ratio >= needed for ratio in cases.values()),
    }
    if not cases:
        return {**row, "status": "not measured", "worst": None}
    where, worst = min(cases.items(), key=lambda item: item[1])
    status = "MET" if row["met"] == len(cases) else "NOT MET"
    found = dict(zip(("family", "V", "dtype", "batch"), where))
    return {**row, "status": status, "worst": {"ratio": worst, **found}}


def check_all(results: list[dict], vnni: bool = False) -> list[dict]:
    """Every target's row; ``vnni``: the CPU has VNNI (the int8 target is higher)."""
    rows = [check(target, results) for target in targets()]
    return rows + [check_generation(target, results) for target in generation_targets(vnni)]
