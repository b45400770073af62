"""The operations the benchmark times, each with tinyllm's call and its idioms.

An :class:`Op` is one table of the report: a tinyllm call (``sample_logits(x,
top_p=0.9)``) and the idioms it races, by library (NumPy, PyTorch, plain Python)
and role: ``common`` (what most code does) or ``best`` (the fastest version we can
write). A case is an op on one row: a logit family, a size V and a dtype. Inputs are
made once per case, outside the timed calls, and every contender that draws gets
its own generator seeded alike.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

import tinyllm
from tinyllm.bench import families
from tinyllm.bench import numpy_idioms as npi
from tinyllm.bench import python_idioms as pyi

TEMPERATURE = 0.8
TOP_K = 50
TOP_P = 0.9
MIN_P = 0.05
TYPICAL_P = 0.9
REPETITION_PENALTY = 1.1
PENALTY_LAST_N = 64
HISTORY = 256  # positions generated so far; the penalties read the last PENALTY_LAST_N
PROJECT_K = 256  # project(h, W): W of shape (256, V), or (1, 5) at the blog's V = 5
PROJECT_MAX_V = 50_000  # W of 256 x 50 000 float64 is 100 MB: no larger
#: Largest input (numbers, or multiply-adds for project) timed in plain Python.
PYTHON_MAX = 100_000

LIBRARIES = {"tinyllm": "tinyllm", "numpy": "NumPy", "torch": "PyTorch", "python": "Python"}


def torch_module():
    """``tinyllm.bench.torch_idioms`` when PyTorch is installed, else None."""
    try:
        from tinyllm.bench import torch_idioms
    except ImportError:
        return None
    return torch_idioms


class Row:
    """One case's inputs: the array, and (made on demand) its list, tensor and the
    contenders' generators, all seeded alike."""

    SEED = 1

    def __init__(self, x: np.ndarray, **extra):
        self.x = x
        self.extra = extra  # h and W for project, b for dot, the history for penalties

    @functools.cached_property
    def list(self) -> list[float]:
        return self.x.tolist()

    @functools.cached_property
    def tensor(self):
        return torch_module().tensor(self.x)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.SEED)

    def random(self) -> random.Random:
        return random.Random(self.SEED)

    def generator(self):
        return torch_module().generator(self.SEED)

    @property
    def window(self) -> np.ndarray:
        return self.extra["history"][-PENALTY_LAST_N:]


@dataclass(frozen=True)
class Idiom:
    """One contender: ``make(row)`` returns the no-argument call that is timed."""

    library: str  # "numpy", "torch", "python", or "tinyllm" for a variant of tinyllm's call
    role: str  # "common" or "best"
    name: str  # short, unique within the op: the JSON's "idiom"
    label: str  # what the report's column header says
    make: Callable[[Row], Callable[[], object]]

    @property
    def key(self) -> str:
        return f"{self.library}:{self.name}"


@dataclass(frozen=True)
class Op:
    """One operation: tinyllm's call, its idioms, and which inputs it runs on."""

    name: str
    title: str
    tinyllm: Callable[[Row], Callable[[], object]]
    idioms: tuple[Idiom, ...]
    make_row: Callable[[str, int, str], Row]
    every_family: bool = True  # False: N(0, 1) only (the kernels do not care)
    max_V: int | None = None
    python_size: Callable[[int], int] = lambda V: V  # numbers the Python idiom handles

    def runs_at(self, size: int) -> bool:
        return self.max_V is None or size <= self.max_V


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def logits_row(family: str, V: int, dtype: str) -> Row:
    return Row(families.logits(family, V, dtype))


def probs_row(family: str, V: int, dtype: str) -> Row:
    """Probabilities (computed in float64, then cast) of the family's logits."""
    return Row(npi.softmax(families.logits(family, V, "float64")).astype(dtype))


def history_row(family: str, V: int, dtype: str) -> Row:
    history = np.random.default_rng(2).integers(0, V, HISTORY)
    return Row(families.logits(family, V, dtype), history=history)


def project_row(family: str, V: int, dtype: str) -> Row:
    k = 1 if V <= 5 else PROJECT_K
    rng = np.random.default_rng(0)
    W = rng.standard_normal((k, V)).astype(dtype)
    return Row(rng.standard_normal(k).astype(dtype), W=W)


def dot_row(family: str, V: int, dtype: str) -> Row:
    a, b = np.random.default_rng(0).standard_normal((2, V)).astype(dtype)
    return Row(a, b=b)


# ---------------------------------------------------------------------------
# The contenders, by library
# ---------------------------------------------------------------------------


def numpy(role: str, name: str, label: str, make) -> Idiom:
    return Idiom("numpy", role, name, label, make)


def torch(role: str, name: str, label: str, make) -> Idiom:
    return Idiom("torch", role, name, label, make)


def python(name: str, label: str, make) -> Idiom:
    return Idiom("python", "common", name, label, make)


def sampling_call(**options) -> Callable[[Row], Callable[[], object]]:
    """tinyllm's ``sample_logits(x, **options)`` with the row's generator."""

    def make(row: Row):
        x, g = row.x, row.rng()
        return lambda: tinyllm.sample_logits(x, rng=g, **options)

    return make


def penalty_options() -> Callable[[Row], dict]:
    return lambda row: {
        "repetition_penalty": REPETITION_PENALTY,
        "penalty_last_n": PENALTY_LAST_N,
        "history": row.extra["history"],
    }


def _penalised_call(row: Row):
    x, g, options = row.x, row.rng(), penalty_options()(row)
    return lambda: tinyllm.sample_logits(x, temperature=TEMPERATURE, rng=g, **options)


def _filter_idioms(param, np_common, np_best, torch_scores, py_kept, np_labels) -> tuple:
    """The idioms of a filter: NumPy's common and best ones, transformers-style
    PyTorch, plain Python."""
    common_name, common_label = np_labels[0]
    idioms = [numpy("common", common_name, common_label, lambda r: np_common(r.x, param, r.rng()))]
    for (name, label), make in zip(np_labels[1:], np_best):
        idioms.append(numpy("best", name, label, lambda r, make=make: make(r.x, param, r.rng())))
    tm = torch_module()
    if tm is not None:
        draw = tm.filtered(torch_scores(tm))
        idioms.append(
            torch(
                "common",
                "transformers",
                "transformers-style processor + softmax + multinomial",
                lambda r: draw(r.tensor, param, r.generator()),
            )
        )
    py_draw = pyi.filtered(py_kept)
    idioms.append(python("loop", "plain Python", lambda r: py_draw(r.list, param, r.random())))
    return tuple(idioms)


def build_ops() -> tuple[Op, ...]:
    """Every operation, in the report's order."""
    tm = torch_module()
    T = TEMPERATURE

    def with_torch(*idioms_if_torch):
        return idioms_if_torch if tm is not None else ()

    ops = [
        Op(
            "temperature",
            f"sample_logits(x, temperature={T}): one draw",
            sampling_call(temperature=T),
            (
                numpy(
                    "common",
                    "choice",
                    "softmax + Generator.choice(p=)",
                    lambda r: npi.temperature_choice(r.x, T, r.rng()),
                ),
                numpy(
                    "best",
                    "cumsum",
                    "exp + cumsum + searchsorted, out= buffers",
                    lambda r: npi.temperature_cumsum(r.x, T, r.rng()),
                ),
                numpy(
                    "best",
                    "blocks",
                    "exp + two-level block draw, out= buffers",
                    lambda r: npi.temperature_blocks(r.x, T, r.rng()),
                ),
                *with_torch(
                    torch(
                        "common",
                        "multinomial",
                        "softmax + multinomial",
                        lambda r: tm.temperature_multinomial(r.tensor, T, r.generator()),
                    ),
                    torch(
                        "best",
                        "cumsum",
                        "exp + cumsum + searchsorted, out= buffers",
                        lambda r: tm.temperature_cumsum(r.tensor, T, r.generator()),
                    ),
                ),
                python(
                    "choices",
                    "exp list + random.choices",
                    lambda r: pyi.temperature(r.list, T, r.random()),
                ),
            ),
            logits_row,
        ),
        Op(
            "greedy",
            "sample_logits(x, temperature=0): the argmax",
            sampling_call(temperature=0),
            (
                numpy("common", "argmax", "np.argmax", lambda r: npi.greedy_argmax(r.x)),
                *with_torch(
                    torch("common", "argmax", "torch.argmax", lambda r: tm.greedy_argmax(r.tensor))
                ),
                python("index", "x.index(max(x))", lambda r: pyi.greedy(r.list)),
            ),
            logits_row,
        ),
        Op(
            "top_k",
            f"sample_logits(x, top_k={TOP_K}): one draw",
            sampling_call(top_k=TOP_K),
            _filter_idioms(
                TOP_K,
                npi.top_k_argsort,
                (npi.top_k_partition, npi.top_k_argpartition),
                lambda tm: tm.top_k_scores,
                pyi.top_k_kept,
                (
                    ("argsort", "argsort + Generator.choice"),
                    ("partition", "partition + threshold mask"),
                    ("argpartition", "argpartition"),
                ),
            ),
            logits_row,
        ),
        Op(
            "top_p",
            f"sample_logits(x, top_p={TOP_P}): one draw",
            sampling_call(top_p=TOP_P),
            _filter_idioms(
                TOP_P,
                npi.top_p_argsort,
                (npi.top_p_sort, npi.top_p_partition),
                lambda tm: tm.top_p_scores,
                pyi.top_p_kept,
                (
                    ("argsort", "argsort + cumsum + Generator.choice"),
                    ("sort", "value sort + block sums + threshold mask"),
                    ("partition", "growing partition + sort of the candidates"),
                ),
            ),
            logits_row,
        ),
        Op(
            "min_p",
            f"sample_logits(x, min_p={MIN_P}): one draw",
            sampling_call(min_p=MIN_P),
            _filter_idioms(
                MIN_P,
                npi.min_p_mask,
                (npi.min_p_threshold,),
                lambda tm: tm.min_p_scores,
                pyi.min_p_kept,
                (
                    ("mask", "softmax + mask + Generator.choice"),
                    ("threshold", "logit threshold, exp on kept tokens only"),
                ),
            ),
            logits_row,
        ),
        Op(
            "typical_p",
            f"sample_logits(x, typical_p={TYPICAL_P}): one draw",
            sampling_call(typical_p=TYPICAL_P),
            _filter_idioms(
                TYPICAL_P,
                npi.typical_argsort,
                (npi.typical_partition,),
                lambda tm: tm.typical_scores,
                pyi.typical_kept,
                (
                    ("argsort", "transformers' recipe: argsort + cumsum + choice"),
                    ("partition", "growing argpartition + sort of the candidates"),
                ),
            ),
            logits_row,
        ),
        Op(
            "penalties",
            f"sample_logits(x, temperature={T}, repetition_penalty={REPETITION_PENALTY}, "
            f"penalty_last_n={PENALTY_LAST_N}, history=<{HISTORY} tokens>)",
            _penalised_call,
            (
                Idiom(
                    "tinyllm",
                    "best",
                    "no-penalties",
                    f"tinyllm without penalties (temperature={T} only)",
                    sampling_call(temperature=T),
                ),
                numpy(
                    "common",
                    "choice",
                    "np.unique + np.where on a copy, softmax + choice",
                    lambda r: npi.penalty_choice(r.x, r.window, REPETITION_PENALTY, T, r.rng()),
                ),
                numpy(
                    "best",
                    "blocks",
                    "np.unique + np.where in a buffer, block draw",
                    lambda r: npi.penalty_blocks(r.x, r.window, REPETITION_PENALTY, T, r.rng()),
                ),
                *with_torch(
                    torch(
                        "common",
                        "transformers",
                        "transformers' gather/where/scatter + softmax + multinomial",
                        lambda r: tm.penalty(
                            r.tensor,
                            tm.tensor(r.window),
                            REPETITION_PENALTY,
                            T,
                            r.generator(),
                        ),
                    )
                ),
                python(
                    "loop",
                    "plain Python",
                    lambda r: pyi.penalty(
                        r.list, r.window.tolist(), REPETITION_PENALTY, T, r.random()
                    ),
                ),
            ),
            history_row,
        ),
        Op(
            "sample",
            "sample(p): one draw from probabilities",
            lambda r: partial(tinyllm.sample, r.x, rng=r.rng()),
            (
                numpy(
                    "common",
                    "choice",
                    "Generator.choice(p=)",
                    lambda r: npi.sample_choice(r.x, r.rng()),
                ),
                numpy(
                    "best",
                    "cumsum",
                    "cumsum + searchsorted, out= buffer",
                    lambda r: npi.sample_cumsum(r.x, r.rng()),
                ),
                numpy(
                    "best",
                    "blocks",
                    "two-level block draw",
                    lambda r: npi.sample_blocks(r.x, r.rng()),
                ),
                *with_torch(
                    torch(
                        "common",
                        "multinomial",
                        "multinomial",
                        lambda r: tm.sample_multinomial(r.tensor, r.generator()),
                    ),
                    torch(
                        "best",
                        "cumsum",
                        "cumsum + searchsorted, out= buffers",
                        lambda r: tm.sample_cumsum(r.tensor, r.generator()),
                    ),
                ),
                python("choices", "random.choices", lambda r: pyi.sample(r.list, r.random())),
            ),
            probs_row,
        ),
        Op(
            "softmax",
            "softmax(x)",
            lambda r: partial(tinyllm.softmax, r.x),
            (
                numpy(
                    "common",
                    "exp",
                    "exp(x - max) / sum",
                    lambda r: partial(npi.softmax, r.x),
                ),
                numpy("best", "out", "the same in one out= buffer", lambda r: npi.softmax_out(r.x)),
                *with_torch(
                    torch(
                        "common",
                        "softmax",
                        "torch.softmax",
                        lambda r: partial(tm.torch.softmax, r.tensor, dim=-1),
                    )
                ),
                python("loop", "plain Python", lambda r: partial(pyi.softmax, r.list)),
            ),
            logits_row,
            every_family=False,
        ),
        Op(
            "log_softmax",
            "log_softmax(x)",
            lambda r: partial(tinyllm.log_softmax, r.x),
            (
                numpy(
                    "common",
                    "exp",
                    "s - log(sum(exp(s)))",
                    lambda r: partial(npi.log_softmax, r.x),
                ),
                numpy("best", "out", "out= buffers", lambda r: npi.log_softmax_out(r.x)),
                *with_torch(
                    torch(
                        "common",
                        "log_softmax",
                        "torch.log_softmax",
                        lambda r: partial(tm.torch.log_softmax, r.tensor, dim=-1),
                    )
                ),
                python("loop", "plain Python", lambda r: partial(pyi.log_softmax, r.list)),
            ),
            logits_row,
            every_family=False,
        ),
        Op(
            "project",
            f"project(h, W): h @ W, W of shape ({PROJECT_K}, V) (the blog's (1, 5) at V = 5)",
            lambda r: partial(tinyllm.project, r.x, r.extra["W"]),
            (
                numpy("common", "matmul", "h @ W", lambda r: partial(np.matmul, r.x, r.extra["W"])),
                numpy(
                    "best",
                    "out",
                    "np.matmul(h, W, out=buffer)",
                    lambda r: npi.project_out(r.x, r.extra["W"]),
                ),
                *with_torch(
                    torch(
                        "common",
                        "matmul",
                        "h @ W",
                        lambda r: partial(tm.torch.matmul, r.tensor, tm.tensor(r.extra["W"])),
                    )
                ),
                python(
                    "loop",
                    "sum(map(mul, h, column))",
                    lambda r: partial(pyi.project, r.list, list(zip(*r.extra["W"].tolist()))),
                ),
            ),
            project_row,
            every_family=False,
            max_V=PROJECT_MAX_V,
            python_size=lambda V: V * (1 if V <= 5 else PROJECT_K),
        ),
        Op(
            "dot",
            "dot(a, b), n = V",
            lambda r: partial(tinyllm.dot, r.x, r.extra["b"]),
            (
                numpy("common", "dot", "np.dot", lambda r: partial(np.dot, r.x, r.extra["b"])),
                *with_torch(
                    torch(
                        "common",
                        "dot",
                        "torch.dot",
                        lambda r: partial(tm.torch.dot, r.tensor, tm.tensor(r.extra["b"])),
                    )
                ),
                python(
                    "loop",
                    "sum(map(mul, a, b))",
                    lambda r: partial(pyi.dot, r.list, r.extra["b"].tolist()),
                ),
            ),
            dot_row,
            every_family=False,
        ),
    ]
    return tuple(ops)


def unsupported(op: Op) -> str | None:
    """Why this build of tinyllm cannot run ``op`` (a keyword it does not know yet), or None.

    Tries tinyllm's call once on a tiny row: a TypeError is a missing keyword.
    """
    try:
        op.tinyllm(op.make_row("normal-1", 8, "float64"))()
    except TypeError as exc:
        return f"this build of tinyllm cannot run it yet ({exc})"
    return None
