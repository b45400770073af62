"""The argument rules every entry point shares (src/_checks.pxd), each tested on several
of them at once: which dtypes are computed in which precision and which are refused,
inputs of any strides (broadcast ones too), and an unusable ``out=``.

The rules of one module alone are in its own file (test_linalg.py, test_softmax.py,
test_sampling.py, ...).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinyllm

from conftest import BLOG_LOGITS, BLOG_PROBS

# ===========================================================================
# Strides
# ===========================================================================


def test_broadcast_input():
    row = np.array([0.0, math.log(3)])
    x = np.broadcast_to(row, (4, 2))  # stride 0 and read-only
    np.testing.assert_allclose(tinyllm.softmax(x), np.tile([0.25, 0.75], (4, 1)), rtol=1e-15)
    np.testing.assert_allclose(tinyllm.softmax(x, axis=0), np.full((4, 2), 0.25), rtol=1e-15)
    W = np.broadcast_to(np.arange(3.0), (2, 3))
    np.testing.assert_array_equal(tinyllm.project(np.ones(2), W), [0.0, 2.0, 4.0])


# ===========================================================================
# dtype rules
# ===========================================================================

OTHER_REAL = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint64,
    np.float16,
    np.longdouble,
]


@pytest.mark.parametrize("in_dtype", OTHER_REAL, ids=lambda d: np.dtype(d).name)
def test_other_real_dtypes_are_computed_in_float64(in_dtype):
    x = np.array([1, 0, 1, 1], dtype=in_dtype)
    W = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=in_dtype)
    x64 = x.astype(np.float64)
    for f in (tinyllm.softmax, tinyllm.log_softmax):
        got = f(x)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, f(x64))
    got = tinyllm.project(x, W)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [2.0, 1.0])
    mixed = tinyllm.project(x, W.astype(np.float32))
    assert mixed.dtype == np.float64
    assert tinyllm.dot(x, x) == 3.0 and type(tinyllm.dot(x, x)) is float


def test_float32_stays_float32_and_float64_stays_float64(dtype):
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    for f in (tinyllm.softmax, tinyllm.log_softmax):
        assert f(x).dtype == dtype and f(x, axis=0).dtype == dtype
    assert tinyllm.project(x, x).dtype == dtype
    assert tinyllm.project(x[0], x).dtype == dtype


def test_python_lists_are_float64():
    assert tinyllm.softmax([1, 2, 3]).dtype == np.float64
    np.testing.assert_allclose(tinyllm.softmax(BLOG_LOGITS), BLOG_PROBS, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(tinyllm.project([1, 2], [[1], [2]]), [5.0])
    assert tinyllm.dot([1, 2], [3, 4]) == 11.0


NON_REAL = {
    "complex128": np.array([1 + 0j, 2]),
    "complex64": np.array([1, 2], dtype=np.complex64),
    "object": np.array([1.0, 2.0], dtype=object),
    "str": np.array(["1", "2"]),
    "bytes": np.array([b"1", b"2"]),
    "datetime": np.array([1, 2], dtype="datetime64[s]"),
    "timedelta": np.array([1, 2], dtype="timedelta64[s]"),
    "list-with-None": [1.0, None],
}


@pytest.mark.parametrize("bad", list(NON_REAL.values()), ids=list(NON_REAL))
def test_non_real_dtypes_are_type_errors(bad):
    good = np.ones(2)
    calls = {
        "dot x": lambda: tinyllm.dot(bad, good),
        "dot w": lambda: tinyllm.dot(good, bad),
        "project h": lambda: tinyllm.project(bad, np.ones((2, 2))),
        "project W": lambda: tinyllm.project(
            good, np.stack([bad, bad]) if isinstance(bad, np.ndarray) else [bad, bad]
        ),
        "softmax": lambda: tinyllm.softmax(bad),
        "log_softmax": lambda: tinyllm.log_softmax(bad),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="real numbers"):
            call()
            pytest.fail(name)


# ===========================================================================
# out=
# ===========================================================================


def _readonly(shape, dtype):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


#: Unusable ``out`` arrays and the error NumPy's own ``out=`` gives for each: the
#: wrong type or dtype is a TypeError, the wrong shape or a read-only array a ValueError.
BAD_OUTS = {
    "wrong-shape": (lambda shape, dtype: np.zeros(shape + (1,), dtype), ValueError),
    "transposed-shape": (
        lambda shape, dtype: np.zeros(shape[::-1] if len(shape) == 2 else (1,) + shape, dtype),
        ValueError,
    ),
    "wrong-dtype": (
        lambda shape, dtype: np.zeros(shape, np.float64 if dtype == np.float32 else np.float32),
        TypeError,
    ),
    "read-only": (_readonly, ValueError),
    "list": (lambda shape, dtype: np.zeros(shape, dtype).tolist(), TypeError),
    "matrix-of-ints": (lambda shape, dtype: np.zeros(shape, np.int64), TypeError),
}


@pytest.mark.parametrize("make_out, error", list(BAD_OUTS.values()), ids=list(BAD_OUTS))
def test_bad_out(make_out, error, dtype):
    x = np.ones((2, 3), dtype)
    for f in (tinyllm.softmax, tinyllm.log_softmax):
        with pytest.raises(error, match="out"):
            f(x, out=make_out((2, 3), dtype))
    W = np.ones((3, 4), dtype)
    with pytest.raises(error, match="out"):
        tinyllm.project(x, W, out=make_out((2, 4), dtype))
    with pytest.raises(error, match="out"):
        tinyllm.project(x[0], W, out=make_out((4,), dtype))
    with pytest.raises(error, match="out"):
        tinyllm.filter_logits(x, out=make_out((2, 3), dtype))
