"""tinyllm.reference on hand-computed cases, the blog's golden numbers and its error rules.

The reference is the oracle of test_linalg.py and test_softmax.py, so it is checked here on its own:
against numbers worked out by hand, and against an independent NumPy formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import reference as ref

from conftest import BLOG_IDS, BLOG_LOGITS, BLOG_PROBS, BLOG_W1, BLOG_W2, BLOG_X

INF = math.inf
NAN = math.nan


def close(got, expected, rtol=1e-14):
    """Nested lists equal within ``rtol`` (and of the same shape)."""
    got, expected = np.array(got), np.array(expected)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=0)
    return True


# ===========================================================================
# Golden numbers
# ===========================================================================


def test_blog_f1_dot():
    assert ref.dot(BLOG_X, BLOG_W1) == pytest.approx(1.0, abs=1e-12)


def test_blog_f2_project_gives_the_logits():
    f1 = ref.dot(BLOG_X, BLOG_W1)
    assert ref.project([f1], [BLOG_W2]) == pytest.approx(BLOG_LOGITS, abs=1e-12)


def test_blog_softmax():
    probs = ref.softmax(BLOG_LOGITS)
    assert len(probs) == 5
    for p, expected in zip(probs, BLOG_PROBS):
        assert abs(p - expected) <= 1e-9


def test_blog_log_softmax():
    logp = ref.log_softmax(BLOG_LOGITS)
    for lp, expected in zip(logp, BLOG_PROBS):
        assert abs(lp - math.log(expected)) <= 1e-9


def test_blog_parts_1_and_2_by_dot():
    ids = BLOG_IDS  # el, cielo, es
    assert ref.dot(ids, [1, -1.5, 0.5]) == 402.0  # part 1: frío
    assert ref.dot(ids, [1, -2.0, 0.5]) == 227.0  # part 1 with w2 = 2: azul
    assert ref.dot(ids, [1.0, 0.5, 1.5]) == 1800.0  # part 2: f1


# ===========================================================================
# Hand-computed cases
# ===========================================================================


def test_dot_by_hand():
    assert ref.dot([1, 2, 3], [4, -5, 6]) == 12.0
    assert isinstance(ref.dot([1, 2], [3, 4]), float)
    assert ref.dot([True, False], [2, 3]) == 2.0


def test_project_by_hand():
    W = [[1, 0, 1], [0, 1, 1]]
    assert ref.project([1, 2], W) == [1.0, 2.0, 3.0]
    assert ref.project([[1, 2], [3, 4]], W) == [[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]
    assert ref.project([[1, 2]], W) == [[1.0, 2.0, 3.0]]  # a batch of one stays a batch
    assert ref.project((2.0,), ((0.5, -1.0),)) == [1.0, -2.0]  # tuples work too


def test_softmax_by_hand():
    assert ref.softmax([0.0, 0.0]) == [0.5, 0.5]
    assert ref.softmax([0.0, math.log(3)]) == pytest.approx([0.25, 0.75], rel=1e-15)
    assert ref.softmax([7.0]) == [1.0]
    # a shift of every logit changes nothing
    assert ref.softmax([100.0, 100.0 + math.log(3)]) == pytest.approx([0.25, 0.75], rel=1e-12)


def test_softmax_temperature_by_hand():
    # T = 2 halves the logits: [0, 2 ln 3] -> [0, ln 3]
    assert ref.softmax([0.0, 2 * math.log(3)], temperature=2) == pytest.approx(
        [0.25, 0.75], rel=1e-14
    )
    assert ref.log_softmax([0.0, 2 * math.log(3)], temperature=2.0) == pytest.approx(
        [math.log(0.25), math.log(0.75)], rel=1e-14
    )
    # a tiny temperature is argmax, a huge one uniform
    assert ref.softmax([1.0, 2.0, 3.0], temperature=1e-3) == [0.0, 0.0, 1.0]
    assert ref.softmax([1.0, 2.0, 3.0], temperature=1e12) == pytest.approx([1 / 3] * 3, rel=1e-9)


def test_softmax_masks():
    assert ref.softmax([0.0, -INF, 0.0]) == [0.5, 0.0, 0.5]
    assert ref.log_softmax([0.0, -INF, 0.0]) == [-math.log(2), -INF, -math.log(2)]
    assert ref.softmax([-INF, -INF, 3.0]) == [0.0, 0.0, 1.0]


def test_softmax_large_logits_do_not_overflow():
    assert ref.softmax([1e4, -1e4, 0.0]) == [1.0, 0.0, 0.0]
    assert ref.log_softmax([1e4, -1e4]) == [0.0, -2e4]
    assert ref.softmax([1e308, 1e308]) == [0.5, 0.5]
    assert ref.softmax([1e308, -1e308]) == [1.0, 0.0]  # x - max overflows to -inf: probability 0


def test_softmax_along_axes_by_hand():
    a = math.log(3)
    x = [[0.0, a], [a, 0.0], [0.0, 0.0]]  # shape (3, 2)
    by_rows = [[0.25, 0.75], [0.75, 0.25], [0.5, 0.5]]
    assert close(ref.softmax(x), by_rows)
    assert close(ref.softmax(x, axis=1), by_rows)
    assert close(ref.softmax(x, axis=-1), by_rows)
    # columns: exp = [1, 3, 1] and [3, 1, 1]
    by_columns = [[0.2, 0.6], [0.6, 0.2], [0.2, 0.2]]
    assert close(ref.softmax(x, axis=0), by_columns)
    assert close(ref.softmax(x, axis=-2), by_columns)


def test_softmax_3d_middle_axis_by_hand():
    a = math.log(3)
    # x[i][j][k] with shape (2, 2, 3); along axis 1 every pair is [0, a] or [a, 0]
    x = [[[0.0, a, 0.0], [a, 0.0, 0.0]], [[a, a, 0.0], [0.0, 0.0, 0.0]]]
    expected = [[[0.25, 0.75, 0.5], [0.75, 0.25, 0.5]], [[0.75, 0.75, 0.5], [0.25, 0.25, 0.5]]]
    assert close(ref.softmax(x, axis=1), expected)
    assert close(ref.softmax(x, axis=-2), expected)
    assert ref.softmax(x, axis=0)[0][0] == pytest.approx([0.25, 0.5, 0.5], rel=1e-14)


# ===========================================================================
# Against an independent formula (NumPy) on random input
# ===========================================================================


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
        elements=st.floats(-50, 50),
    ),
    data=st.data(),
    temperature=st.floats(0.05, 20),
)
def test_softmax_agrees_with_numpy_formula(x, data, temperature):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    z = (x - x.max(axis=axis, keepdims=True)) / temperature
    e = np.exp(z)
    expected = e / e.sum(axis=axis, keepdims=True)
    got = np.array(ref.softmax(x.tolist(), axis=axis, temperature=temperature))
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
    expected_log = z - np.log(e.sum(axis=axis, keepdims=True))
    got_log = np.array(ref.log_softmax(x.tolist(), axis=axis, temperature=temperature))
    np.testing.assert_allclose(got_log, expected_log, rtol=1e-12, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), k=st.integers(1, 6), V=st.integers(1, 6), B=st.integers(1, 4))
def test_project_and_dot_agree_with_numpy(data, k, V, B):
    h = data.draw(hnp.arrays(np.float64, (B, k), elements=st.integers(-100, 100)), label="h")
    W = data.draw(hnp.arrays(np.float64, (k, V), elements=st.integers(-100, 100)), label="W")
    # integers: every sum is exact, so equality is the right test
    assert ref.project(h.tolist(), W.tolist()) == (h @ W).tolist()
    assert ref.project(h[0].tolist(), W.tolist()) == (h[0] @ W).tolist()
    assert ref.dot(h[0].tolist(), W[:, 0].tolist()) == float(h[0] @ W[:, 0])


# ===========================================================================
# Error rules
# ===========================================================================


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    for fragment in match:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "x, w, shapes",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], ("(2,)", "(3,)")),
        ([[1.0, 2.0]], [1.0, 2.0], ("(1, 2)", "(2,)")),
        (3.0, [1.0], ("()", "(1,)")),
    ],
    ids=["lengths", "2-d", "scalar"],
)
def test_dot_wrong_shapes_name_both(x, w, shapes):
    _raises(ValueError, ("dot",) + shapes, ref.dot, x, w)


@pytest.mark.parametrize(
    "h, W, shapes",
    [
        ([1.0, 2.0], [[1.0], [2.0], [3.0]], ("(2,)", "(3, 1)")),
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], ("(1, 2)", "(1, 3)")),
        ([1.0], [1.0], ("(1,)", "(1,)")),
        ([[[1.0]]], [[1.0]], ("(1, 1, 1)", "(1, 1)")),
        (1.0, [[1.0]], ("()", "(1, 1)")),
    ],
    ids=["k", "batched-k", "W-1d", "h-3d", "h-scalar"],
)
def test_project_wrong_shapes_name_both(h, W, shapes):
    _raises(ValueError, ("project",) + shapes, ref.project, h, W)


def test_empty_inputs():
    _raises(ValueError, ("empty",), ref.dot, [], [])
    _raises(ValueError, ("empty",), ref.project, [1.0], [[]])
    _raises(ValueError, ("empty", "(2, 1)", "(1, 0)"), ref.project, [[1.0], [2.0]], [[]])


def test_project_empty_after_shapes_align():
    _raises(ValueError, ("empty", "(1, 0)"), ref.project, [1.0], [[]])
    with pytest.raises(ValueError, match="not aligned"):
        ref.project([], [])


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
def test_dot_and_project_reject_non_finite(bad):
    _raises(ValueError, ("x[1]", "finite"), ref.dot, [1.0, bad], [1.0, 1.0])
    _raises(ValueError, ("w[0]",), ref.dot, [1.0, 1.0], [bad, 1.0])
    _raises(ValueError, ("h[0][1]",), ref.project, [[1.0, bad]], [[1.0], [1.0]])
    _raises(ValueError, ("W[1][0]",), ref.project, [1.0, 1.0], [[1.0], [bad]])


def test_dot_and_project_overflow():
    _raises(ValueError, ("overflow",), ref.dot, [1e300, 1e300], [1e300, 1e300])
    _raises(ValueError, ("overflow",), ref.project, [1e300], [[1e300]])


@pytest.mark.parametrize("func", [ref.softmax, ref.log_softmax])
class TestSoftmaxErrors:
    def test_empty(self, func):
        _raises(ValueError, ("empty", "(0,)"), func, [])
        _raises(ValueError, ("empty", "(2, 0)"), func, [[], []])

    def test_scalar(self, func):
        _raises(ValueError, ("at least one dimension",), func, 3.0)

    def test_nan_anywhere(self, func):
        _raises(ValueError, ("NaN",), func, [1.0, NAN])
        _raises(ValueError, ("NaN",), func, [[1.0, 2.0], [-INF, NAN]], axis=0)

    def test_posinf(self, func):
        _raises(ValueError, ("+inf",), func, [1.0, INF])
        _raises(ValueError, ("+inf",), func, [[INF], [1.0]], axis=0)

    def test_all_masked_slice(self, func):
        _raises(ValueError, ("-inf",), func, [-INF, -INF])
        _raises(ValueError, ("-inf",), func, [[0.0, -INF], [1.0, -INF]], axis=0)
        func([[0.0, -INF], [1.0, -INF]], axis=1)  # every row has a finite entry: fine

    @pytest.mark.parametrize("t", [-1.0, NAN, INF, -INF])
    def test_bad_temperature(self, func, t):
        _raises(ValueError, ("temperature",), func, [1.0, 2.0], temperature=t)

    @pytest.mark.parametrize("t", ["2", None, 1j, True])
    def test_non_real_temperature(self, func, t):
        _raises(TypeError, ("temperature",), func, [1.0, 2.0], temperature=t)

    @pytest.mark.parametrize("axis", [1, -2, 5])
    def test_axis_out_of_bounds(self, func, axis):
        _raises(ValueError, ("axis", "out of bounds"), func, [1.0, 2.0], axis=axis)

    @pytest.mark.parametrize("axis", [0.0, "0", None, True])
    def test_axis_not_an_integer(self, func, axis):
        _raises(TypeError, ("axis",), func, [1.0, 2.0], axis=axis)

    def test_ragged(self, func):
        _raises(ValueError, ("ragged",), func, [[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("bad", [1j, "1.0", None, b"1", object()], ids=repr)
def test_non_real_values_are_type_errors(bad):
    for call in (
        lambda: ref.dot([1.0, bad], [1.0, 1.0]),
        lambda: ref.dot([1.0, 1.0], [bad, 1.0]),
        lambda: ref.project([bad], [[1.0]]),
        lambda: ref.project([1.0], [[bad]]),
        lambda: ref.softmax([0.0, bad]),
        lambda: ref.log_softmax([[0.0], [bad]], axis=0),
    ):
        with pytest.raises(TypeError, match="real numbers"):
            call()


def test_inputs_are_not_modified():
    x = [[1.0, 2.0], [3.0, -INF]]
    snapshot = [row[:] for row in x]
    ref.softmax(x, axis=0)
    ref.log_softmax(x)
    ref.project(x[0], [[1.0], [2.0]])
    assert x == snapshot
