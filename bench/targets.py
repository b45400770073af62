"""Issue 4's performance targets, checked against the figures of this run.

Each target names a measured figure (a case key and a contender, see ``run.py``'s
``figures``), the value needed and whether more is better. Speed-ups are the other
contender's time / tinyllm's time, measured side by side in this run.
"""

from __future__ import annotations

from dataclasses import dataclass

from cases import TEMPERATURE, TOP_P

DTYPES = ("float32", "float64")
ALL_V = (5, 1_000, 32_000, 1_000_000)


@dataclass(frozen=True)
class Target:
    goal: str  # the wording, short
    key: str  # the measured case
    vs: str  # the contender (or "error" for accuracy)
    needed: float
    more_is_better: bool = True

    def check(self, figures: dict[str, dict[str, float]]) -> dict:
        value = figures.get(self.key, {}).get(self.vs)
        if value is None:
            status = "not measured"
        elif value >= self.needed if self.more_is_better else value <= self.needed:
            status = "MET"
        else:
            status = "NOT MET"
        return {
            "goal": self.goal,
            "case": self.key,
            "vs": self.vs,
            "needed": self.needed,
            "more_is_better": self.more_is_better,
            "measured": value,
            "status": status,
        }


def targets() -> list[Target]:
    """Every target of issue 4, one row per dtype and size it applies to."""
    rows: list[Target] = []
    for dt in DTYPES:
        rows.append(Target("softmax ≥ 4× NumPy at V=5", f"softmax {dt} B=1 V=5", "numpy", 4))
        for V in (32_000, 1_000_000):
            key = f"softmax {dt} B=1 V={V}"
            rows.append(Target("softmax ≥ 2× NumPy at V ≥ 32k", key, "numpy", 2))
            rows.append(Target("softmax ≥ PyTorch at V ≥ 32k", key, "torch", 1))
    for dt in DTYPES:
        key = f"sample_logits_T{TEMPERATURE} {dt} B=1 V=32000"
        rows.append(Target("sample_logits(T) ≥ 10× NumPy softmax + choice", key, "numpy", 10))
        rows.append(Target("sample_logits(T) ≥ 10× torch softmax + multinomial", key, "torch", 10))
        rows.append(
            Target(
                f"top-p {TOP_P} ≥ 5× argsort NumPy",
                f"sample_logits_top_p{TOP_P} {dt} B=1 V=32000",
                "numpy",
                5,
            )
        )
    for dt in DTYPES:
        for V in ALL_V:
            rows.append(
                Target(
                    "sample ≥ 10× Generator.choice(p=) at every V",
                    f"sample {dt} B=1 V={V}",
                    "numpy",
                    10,
                )
            )
    rows.append(
        Target(
            "project f32 ≥ 3× h @ W at the blog's size", "project float32 B=1 k=1 V=5", "numpy", 3
        )
    )
    rows.append(
        Target(
            "project f32 ≥ 0.8× NumPy BLAS at k=256, V=50k",
            "project float32 B=1 k=256 V=50000",
            "numpy",
            0.8,
        )
    )
    for dt in DTYPES:
        for n in (6, 100, 1_000):
            rows.append(
                Target("dot not slower than np.dot for n ≤ 1000", f"dot {dt} n={n}", "numpy", 1)
            )
    rows.append(Target("generation, blog model ≥ 30× pure Python", "generation blog", "python", 30))
    rows.append(Target("generation, large ≥ 100× pure Python", "generation large", "python", 100))
    rows.append(Target("generation, large ≥ 2× NumPy", "generation large", "numpy", 2))
    for dt, bound in (("float32", 2e-6), ("float64", 1e-13)):
        for V in ALL_V:
            rows.append(
                Target(
                    f"softmax {dt} within {bound:g} relative of a precise reference",
                    f"accuracy softmax {dt} V={V}",
                    "error",
                    bound,
                    more_is_better=False,
                )
            )
    return rows


def check_all(figures: dict[str, dict[str, float]]) -> list[dict]:
    return [target.check(figures) for target in targets()]
