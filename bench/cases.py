"""The table of kernel cases: every operation, size, dtype and batch, with its contenders.

A case is one row of the report: an operation on inputs of one shape and dtype, and
the contenders that compute it (``tinyllm`` first). Inputs are made once per case,
outside the timed calls; every contender that draws random numbers gets its own
seeded generator. Contenders that are not installed (SciPy, PyTorch) are left out;
the pure-Python reference is left out, and the case says so, once the input has more
than :data:`PYTHON_MAX_ELEMENTS` numbers (it would take seconds per call).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import baselines as bl
import numpy as np

import tinyllm
from tinyllm import reference as ref

#: Largest input (numbers, or multiply-adds for project) timed in pure Python.
PYTHON_MAX_ELEMENTS = 100_000
#: Largest batched input (B * V numbers); B=64 x V=1 000 000 would need GBs of temporaries.
BATCH_MAX_ELEMENTS = 4_000_000

TEMPERATURE = 0.8
TOP_P = 0.9
DRAWS = 1_000  # draws per distribution in the sample(size=) rows


@dataclass
class Case:
    """One benchmark row: an operation on one shape and dtype, and its contenders."""

    op: str
    dtype: str
    batch: int
    dims: dict[str, int]  # {"V": ...}, {"k": ..., "V": ...} or {"n": ...}
    contenders: dict[str, Callable[[], object]]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The case's name in the report, the JSON and the targets: 'softmax float32 B=1 V=5'."""
        dims = " ".join(f"{name}={value}" for name, value in self.dims.items())
        batch = "" if self.op == "dot" else f" B={self.batch}"
        return f"{self.op} {self.dtype}{batch} {dims}"


@dataclass(frozen=True)
class Plan:
    """Which sizes to run (quick or full)."""

    vocab_sizes: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    project_shapes: tuple[tuple[int, int], ...]  # (k, V)
    dot_sizes: tuple[int, ...]


FULL = Plan(
    vocab_sizes=(5, 1_000, 32_000, 1_000_000),
    batches=(1, 64),
    dtypes=("float32", "float64"),
    project_shapes=((1, 5), (64, 1_000), (256, 32_000), (256, 50_000)),
    dot_sizes=(6, 100, 1_000, 100_000, 1_000_000),
)
QUICK = Plan(
    vocab_sizes=(5, 32_000),
    batches=(1, 64),
    dtypes=("float32", "float64"),
    project_shapes=((1, 5), (256, 50_000)),
    dot_sizes=(6, 1_000),
)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def make_logits(V: int, dtype: str, batch: int, seed: int = 0) -> np.ndarray:
    """Logits of order a few units (standard normal x 3), shape (V,) or (batch, V)."""
    shape = (V,) if batch == 1 else (batch, V)
    return (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype)


def make_probs(V: int, dtype: str, batch: int) -> np.ndarray:
    """Probabilities (rows sum to 1, computed in float64 then cast)."""
    return bl.np_softmax(make_logits(V, "float64", batch)).astype(dtype)


def make_project_inputs(k: int, V: int, dtype: str, batch: int):
    """h of shape (k,) or (batch, k) and W of shape (k, V), standard normal."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal(k if batch == 1 else (batch, k)).astype(dtype)
    return h, rng.standard_normal((k, V)).astype(dtype)


def as_tensor(a: np.ndarray):
    """The array as a torch tensor sharing its memory, or None without PyTorch."""
    return None if bl.torch is None else bl.torch.from_numpy(a)


def rngs(seed: int = 1):
    """Separate seeded generators for tinyllm, NumPy, PyTorch and pure Python."""
    torch_gen = None if bl.torch is None else bl.torch_generator(seed)
    return (
        np.random.default_rng(seed),
        np.random.default_rng(seed),
        torch_gen,
        random.Random(seed),
    )


def available(contenders: dict) -> dict[str, Callable[[], object]]:
    """Drop the contenders written as ``condition and (lambda: ...)`` whose condition failed."""
    return {name: fn for name, fn in contenders.items() if fn}


# ---------------------------------------------------------------------------
# Contenders per operation. ``py`` says whether to time the pure-Python reference;
# ``py and (lambda xl=x.tolist(): ...)`` converts to lists only when it is timed.
# ---------------------------------------------------------------------------


def softmax_contenders(x, py):
    t = as_tensor(x)
    return {
        "tinyllm": lambda: tinyllm.softmax(x),
        "numpy": lambda: bl.np_softmax(x),
        "scipy": bl.scipy_special is not None and (lambda: bl.scipy_softmax(x)),
        "torch": t is not None and (lambda: bl.torch_softmax(t)),
        "python": py and (lambda xl=x.tolist(): ref.softmax(xl)),
    }


def log_softmax_contenders(x, py):
    t = as_tensor(x)
    return {
        "tinyllm": lambda: tinyllm.log_softmax(x),
        "numpy": lambda: bl.np_log_softmax(x),
        "scipy": bl.scipy_special is not None and (lambda: bl.scipy_log_softmax(x)),
        "torch": t is not None and (lambda: bl.torch_log_softmax(t)),
        "python": py and (lambda xl=x.tolist(): ref.log_softmax(xl)),
    }


def sample_contenders(p, py, size=None):
    g_tiny, g_np, g_torch, g_py = rngs()
    t = as_tensor(p)
    return {
        "tinyllm": lambda: tinyllm.sample(p, size=size, rng=g_tiny),
        "numpy": lambda: bl.np_sample(p, g_np, size=size),
        "torch": t is not None and (lambda: bl.torch_sample(t, g_torch, size=size)),
        "python": py and (lambda pl=p.tolist(): ref.sample(pl, size=size, rng=g_py)),
    }


def sample_size_contenders(p, py):
    return sample_contenders(p, py, size=DRAWS)


def temperature_contenders(x, py):
    g_tiny, g_np, g_torch, g_py = rngs()
    t = as_tensor(x)
    T = TEMPERATURE
    return {
        "tinyllm": lambda: tinyllm.sample_logits(x, temperature=T, rng=g_tiny),
        "numpy": lambda: bl.np_sample_logits(x, T, g_np),
        "torch": t is not None and (lambda: bl.torch_sample_logits(t, T, g_torch)),
        "python": py and (lambda xl=x.tolist(): ref.sample_logits(xl, temperature=T, rng=g_py)),
    }


def top_p_contenders(x, py):
    g_tiny, g_np, g_torch, g_py = rngs()
    t = as_tensor(x)
    P = TOP_P
    return {
        "tinyllm": lambda: tinyllm.sample_logits(x, top_p=P, rng=g_tiny),
        "numpy": lambda: bl.np_top_p(x, P, g_np),
        "torch": t is not None and (lambda: bl.torch_top_p(t, P, g_torch)),
        "python": py and (lambda xl=x.tolist(): ref.sample_logits(xl, top_p=P, rng=g_py)),
    }


def project_contenders(h, W, py):
    th, tW = as_tensor(h), as_tensor(W)
    return {
        "tinyllm": lambda: tinyllm.project(h, W),
        "numpy": lambda: bl.np_project(h, W),
        "torch": th is not None and (lambda: bl.torch_project(th, tW)),
        "python": py and (lambda hl=h.tolist(), Wl=W.tolist(): ref.project(hl, Wl)),
    }


def dot_contenders(a, b, py):
    ta, tb = as_tensor(a), as_tensor(b)
    return {
        "tinyllm": lambda: tinyllm.dot(a, b),
        "numpy": lambda: bl.np_dot(a, b),
        "torch": ta is not None and (lambda: bl.torch_dot(ta, tb)),
        "python": py and (lambda al=a.tolist(), bl_=b.tolist(): ref.dot(al, bl_)),
    }


#: The operations on a vocabulary-sized input: name, input maker, contenders, batches.
VOCAB_OPS = (
    ("softmax", make_logits, softmax_contenders, None),
    ("log_softmax", make_logits, log_softmax_contenders, None),
    ("sample", make_probs, sample_contenders, None),
    (f"sample_size{DRAWS}", make_probs, sample_size_contenders, (1,)),
    (f"sample_logits_T{TEMPERATURE}", make_logits, temperature_contenders, None),
    (f"sample_logits_top_p{TOP_P}", make_logits, top_p_contenders, None),
)

#: What each operation computes, for the report's headings.
TITLES = {
    "softmax": "softmax(x)",
    "log_softmax": "log_softmax(x)",
    "sample": "sample(p): one draw per distribution",
    f"sample_size{DRAWS}": f"sample(p, size={DRAWS}): {DRAWS} draws from one distribution",
    f"sample_logits_T{TEMPERATURE}": (
        f"sample_logits(x, temperature={TEMPERATURE}): one draw per row"
    ),
    f"sample_logits_top_p{TOP_P}": f"sample_logits(x, top_p={TOP_P}): one draw per row",
    "project": "project(h, W) = h @ W, h (k,) or (B, k), W (k, V)",
    "dot": "dot(a, b), 1-D",
}


def python_case(elements: int, case_skips: dict[str, str]) -> bool:
    """Whether to time pure Python on an input this big; records the reason if not."""
    if elements <= PYTHON_MAX_ELEMENTS:
        return True
    case_skips["python"] = f"skipped: {elements:,} numbers (limit {PYTHON_MAX_ELEMENTS:,})"
    return False


def kernel_cases(plan: Plan) -> Iterator[Case]:
    """Every case of the plan, built lazily (the inputs of one case at a time)."""
    for dtype in plan.dtypes:
        for op, make_input, contenders, batches in VOCAB_OPS:
            for batch in batches or plan.batches:
                for V in plan.vocab_sizes:
                    if batch * V > BATCH_MAX_ELEMENTS:
                        continue
                    skips: dict[str, str] = {}
                    py = python_case(batch * V, skips)
                    yield Case(
                        op,
                        dtype,
                        batch,
                        {"V": V},
                        available(contenders(make_input(V, dtype, batch), py)),
                        skips,
                    )
        for batch in plan.batches:
            for k, V in plan.project_shapes:
                h, W = make_project_inputs(k, V, dtype, batch)
                skips = {}
                py = python_case(batch * k * V, skips)
                yield Case(
                    "project",
                    dtype,
                    batch,
                    {"k": k, "V": V},
                    available(project_contenders(h, W, py)),
                    skips,
                )
        for n in plan.dot_sizes:
            rng = np.random.default_rng(0)
            a, b = rng.standard_normal((2, n)).astype(dtype)
            skips = {}
            py = python_case(n, skips)
            yield Case("dot", dtype, 1, {"n": n}, available(dot_contenders(a, b, py)), skips)


def not_run(plan: Plan) -> list[str]:
    """The batch x size combinations left out of the plan, for the report's notes."""
    return [
        f"B={b} x V={V:,}"
        for b in plan.batches
        for V in plan.vocab_sizes
        if b * V > BATCH_MAX_ELEMENTS
    ]
