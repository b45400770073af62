"""Shared test helpers: the blog's numbers, the dtype -> tolerance table, the
instruction sets to run the kernels on, memory layouts, hypothesis strategies and the
chi-square test of draws."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import _cpu

DTYPES = [np.float32, np.float64]

#: Relative tolerance of a compiled kernel against tinyllm.reference, per dtype.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


# ---------------------------------------------------------------------------
# The tests read English, whatever the machine's locale (LANG=es_ES.UTF-8 would make
# the displays and the command line Spanish): test_i18n.py asks for Spanish itself.
# ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def english(monkeypatch) -> Iterator[None]:
    from tinyllm import _i18n

    monkeypatch.setenv("LANGUAGE", "en")  # read first, by tinyllm and by the children
    _i18n.set_language(None)
    yield
    _i18n.set_language(None)


# ---------------------------------------------------------------------------
# The blog's numbers (part 3 unless said; ../shared/reference of the project)
# ---------------------------------------------------------------------------
BLOG_PROMPT = "el cielo es"
BLOG_IDS = [578, 350, 698]
BLOG_X = [0.3, -0.6, 0.8, -0.1, 0.1, -0.1]  # the three embeddings, end to end
BLOG_W1 = [1, 0.5, 1.5, 1, 0.5, 1.5]  # f1 = x · W1 = 1.0
BLOG_W2 = [2.5, 0.7, 2.0, 0.2, 0.5]  # W2's one row: with f1 = 1, the logits
BLOG_LOGITS = [2.5, 0.7, 2.0, 0.2, 0.5]
BLOG_PROBS = [0.4981509447, 0.0823437973, 0.3021438211, 0.0499440377, 0.0674173992]
BLOG_PART2_LOGITS = [4500, 1260, 3600, 360, 900]
BLOG_PART2_PROBS = [0.423729, 0.118644, 0.338983, 0.033898, 0.084746]


def exact_weights(logits, temperature=1.0) -> list[int]:
    """Issue 11's weights of a row, written out: w_i = round(e_i * 2**K) (exact integers;
    0 for a -inf logit), e_i = filter_exp((x_i - max) / T), K = min(52, 63 - V.bit_length())."""
    from tinyllm.reference.sampling import filter_exp

    x = [float(v) for v in logits]
    m = max(x)
    bits = min(52, 63 - len(x).bit_length())
    e = [filter_exp((v - m) / temperature) if v != -math.inf else 0.0 for v in x]
    return [round(v * 2.0**bits) for v in e]


# ---------------------------------------------------------------------------
# Instruction sets: the kernels are built once per instruction set, and the tests
# run them all (tinyllm.softmax and friends run the one tinyllm._cpu picked)
# ---------------------------------------------------------------------------


@contextmanager
def running(isa: str) -> Iterator[None]:
    """Every kernel call inside runs the build for ``isa``."""
    previous = _cpu.use(isa)
    try:
        yield
    finally:
        _cpu.use(previous)


class Isa:
    """The compiled functions on the kernels of one instruction set: ``Isa("avx2").softmax(x)``
    is ``tinyllm.softmax(x)`` run on the AVX2 build. Test hooks too (``_exp``, ...)."""

    _MODULES = ("_linalg", "_softmax", "_sampling", "_generate", "_train")

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __getattr__(self, attr: str):
        for stem in self._MODULES:
            func = getattr(getattr(tinyllm, stem, None) or _import(stem), attr, None)
            if func is not None:
                break
        else:
            raise AttributeError(attr)

        def on_this_isa(*args, **kwargs):
            with running(self.name):
                return func(*args, **kwargs)

        return on_this_isa


def _import(stem: str):
    import importlib

    return importlib.import_module(f"tinyllm.{stem}")


#: The instruction sets whose kernels were built and that this CPU runs, baseline first.
ISAS = [Isa(name) for name in _cpu.available()]

#: The one tinyllm._cpu picked at import (TINYLLM_SIMD, else the best): for a slow test
#: whose outcome does not depend on the kernels' build.
CHOSEN_ISA = Isa(_cpu.CHOSEN)


def isa_id(isa: Isa) -> str:
    return isa.name


@pytest.fixture(params=ISAS, ids=isa_id)
def each_isa(request) -> Iterator[str]:
    """Run the test once per instruction set, with every kernel on that build."""
    with running(request.param.name):
        yield request.param.name


#: Memory layouts an input may come in; ``with_layout`` makes each of them.
LAYOUTS = [
    "C",
    "F",
    "strided",
    "sliced",
    "row-steps",
    "reversed",
    "transposed",
    "readonly",
    "unaligned",
]


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """An array equal to ``a`` (same shape, dtype and values) laid out as ``layout``.

    C: contiguous; F: Fortran order; strided: every axis steps over a gap;
    sliced: a slice of a wider array (rows contiguous, but not one block);
    row-steps: every other entry along the first axis (rows contiguous);
    reversed: negative strides; transposed: a transposed view of a contiguous
    buffer; readonly: a non-writable C array; unaligned: data at an odd address.
    """
    a = np.asarray(a)
    if layout == "C":
        out = np.ascontiguousarray(a)
    elif layout == "F":
        out = np.asfortranarray(a)
    elif layout == "strided":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        out = big[tuple(slice(1, None, 2) for _ in a.shape)]
        out[...] = a
    elif layout == "sliced":
        big = np.zeros(a.shape[:-1] + (a.shape[-1] + 3,), dtype=a.dtype)
        out = big[..., 1:-2]
        out[...] = a
    elif layout == "row-steps":
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
        out = big[::2]
        out[...] = a
    elif layout == "reversed":
        out = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
        out = out[tuple(slice(None, None, -1) for _ in a.shape)]
    elif layout == "transposed":
        out = np.ascontiguousarray(a.T).T
    elif layout == "readonly":
        out = a.copy()
        out.flags.writeable = False
    elif layout == "unaligned":
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        out = np.ndarray(a.shape, dtype=a.dtype, buffer=buf.data, offset=1)
        out[...] = a
    else:
        raise AssertionError(layout)
    assert out.shape == a.shape and out.dtype == a.dtype
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable == (layout != "readonly")
    assert out.flags.aligned == (layout != "unaligned")
    if layout in ("strided", "reversed") and out.size > 1:
        assert not out.flags.c_contiguous
    return out


def finite(dtype, max_abs: float = 1e3) -> st.SearchStrategy[float]:
    """Finite, normal floats of ``dtype`` in [-max_abs, max_abs]."""
    width = 32 if dtype == np.float32 else 64
    return st.floats(-max_abs, max_abs, width=width, allow_subnormal=False)


def arrays(dtype, shape, max_abs: float = 1e3) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=finite(dtype, max_abs))


def unchanged(before: np.ndarray, after: np.ndarray) -> None:
    np.testing.assert_array_equal(after, before, err_msg="the input was modified")


def assert_raises(exc, fragments, fn, *args, **kwargs) -> None:
    """``fn(*args, **kwargs)`` raises ``exc`` with every one of ``fragments`` in its message."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


# ---------------------------------------------------------------------------
# The chi-square test of draws against probabilities, without scipy
# ---------------------------------------------------------------------------


def _gamma_q(a, x):
    """Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' gammq)."""
    if x <= 0.0:
        return 1.0
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # series for P(a, x)
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return 1.0 - total * math.exp(log_prefactor)
    # Lentz's continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h * math.exp(log_prefactor)


def chi2_sf(stat, df):
    """P(X >= stat) for X ~ chi-square with df degrees of freedom."""
    return _gamma_q(df / 2.0, stat / 2.0)


def chi_square_pvalue(tokens, probs):
    """Pearson's test of draws against probabilities (bins with expected < 5 pooled).

    Tokens of probability 0 must never be drawn: that is asserted, not tested.
    """
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum()
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=probs.size)
    assert counts.size == probs.size, "a token outside the vocabulary was drawn"
    assert counts[probs == 0].sum() == 0, "a token of probability 0 was drawn"
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    obs = list(counts[big]) + [counts[~big & (probs > 0)].sum()]
    exp = list(expected[big]) + [expected[~big & (probs > 0)].sum()]
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
    return chi2_sf(stat, len(exp) - 1)


# A conservative fixed threshold: with fixed seeds the outcome never changes, and a
# wrong distribution over >= 1e5 draws gives p-values far below it.
P_THRESHOLD = 1e-4


def softmax64(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()
