"""Shared test helpers: the dtype -> tolerance table, memory layouts and hypothesis strategies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import _compiled

DTYPES = [np.float32, np.float64]

#: Relative tolerance of a compiled kernel against tinyllm.reference, per dtype.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

#: Every build of each compiled module that runs on this machine: the baseline, and
#: the AVX2+FMA build when it was made and the CPU has AVX2 and FMA. Kernel tests run
#: each of them against the reference (tinyllm.softmax is only the one in use).
BUILDS = {stem: _compiled.builds(stem) for stem in _compiled.COMPILED_MODULES}


def build_id(module) -> str:
    return module.__name__.rpartition(".")[2]


#: Memory layouts an input may come in; ``with_layout`` makes each of them.
LAYOUTS = ["C", "F", "strided", "sliced", "row-steps", "reversed", "transposed", "readonly", "unaligned"]


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


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param
