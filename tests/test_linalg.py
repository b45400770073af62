"""tinyllm._linalg (dot, project) against tinyllm.reference, on every build of the kernels.

Random inputs come from hypothesis: both dtypes, 1-D and batched, every memory layout
of conftest.LAYOUTS. Then sizes hypothesis never reaches (long reductions, wide
outputs), the batches project hands to NumPy's BLAS, the dtype rules and ``out=`` of
project, and each bad input on its own.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm import reference as ref
from tinyllm._linalg import BLAS_SWITCH, _project_kernel

from conftest import (
    BLOG_LOGITS,
    BLOG_W1,
    BLOG_W2,
    BLOG_X,
    DTYPES,
    ISAS,
    LAYOUTS,
    RTOL,
    arrays,
    assert_raises,
    isa_id,
    unchanged,
    with_layout,
)

INF, NAN = math.inf, math.nan

layouts = st.sampled_from(LAYOUTS)
dtypes = st.sampled_from(DTYPES)


# ===========================================================================
# dot and project against the reference
# ===========================================================================


@settings(max_examples=250, deadline=None)
@given(data=st.data(), dtype=dtypes, n=st.integers(1, 64), lx=layouts, lw=layouts)
def test_dot_matches_reference(data, dtype, n, lx, lw):
    x = with_layout(data.draw(arrays(dtype, n), label="x"), lx)
    w = with_layout(data.draw(arrays(dtype, n), label="w"), lw)
    before = (x.copy(), w.copy())
    expected = ref.dot(x.tolist(), w.tolist())
    # Summation order differs (cancellation is legitimate): bound by sum |x_i w_i|.
    scale = sum(abs(a * b) for a, b in zip(x.tolist(), w.tolist()))
    for build in ISAS:
        got = build.dot(x, w)
        assert type(got) is float
        assert abs(got - expected) <= RTOL[dtype] * scale, isa_id(build)
        assert got == build.dot(np.ascontiguousarray(x), np.ascontiguousarray(w))
    unchanged(before[0], x), unchanged(before[1], w)


@settings(max_examples=250, deadline=None)
@given(
    data=st.data(),
    dtype=dtypes,
    k=st.integers(1, 12),
    V=st.integers(1, 12),
    B=st.none() | st.integers(1, 4),
    lh=layouts,
    lW=layouts,
)
def test_project_matches_reference(data, dtype, k, V, B, lh, lW):
    h_shape = (k,) if B is None else (B, k)
    h = with_layout(data.draw(arrays(dtype, h_shape), label="h"), lh)
    W = with_layout(data.draw(arrays(dtype, (k, V)), label="W"), lW)
    before = (h.copy(), W.copy())
    expected = np.array(ref.project(h.tolist(), W.tolist()))
    # float32 accumulates in float32: bound by rtol * sum_i |h_i W_ij|, plus what
    # products below the smallest normal number may lose.
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    bound = RTOL[dtype] * scale + k * np.finfo(dtype).tiny
    for build in ISAS:
        got = build.project(h, W)
        assert got.dtype == dtype
        assert got.shape == ((V,) if B is None else (B, V))
        assert np.all(np.abs(got.astype(np.float64) - expected) <= bound), isa_id(build)
        np.testing.assert_array_equal(
            got, build.project(np.ascontiguousarray(h), np.ascontiguousarray(W))
        )
    unchanged(before[0], h), unchanged(before[1], W)


def test_long_reductions(dtype):
    rng = np.random.default_rng(5)
    k = 4096
    h = rng.normal(size=(2, k)).astype(dtype)
    W = rng.normal(size=(k, 3)).astype(dtype)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    expected = np.array(ref.project(h.tolist(), W.tolist()))
    assert np.all(np.abs(tinyllm.project(h, W) - expected) <= RTOL[dtype] * scale)
    got = tinyllm.dot(h[0], h[1])
    assert abs(got - ref.dot(h[0].tolist(), h[1].tolist())) <= RTOL[dtype] * float(
        np.abs(h[0] * h[1]).sum()
    )


def test_project_batch_rows_equal_single_projections():
    rng = np.random.default_rng(0)
    H, W = rng.normal(size=(5, 7)), rng.normal(size=(7, 3))
    batched = tinyllm.project(H, W)
    for b in range(5):
        np.testing.assert_array_equal(batched[b], tinyllm.project(H[b], W))


def test_blog_f1_and_f2(dtype):
    x = np.array(BLOG_X, dtype=dtype)
    w = np.array(BLOG_W1, dtype=dtype)
    f1 = tinyllm.dot(x, w)
    assert f1 == pytest.approx(1.0, abs=1e-12 if dtype == np.float64 else 1e-6)
    logits = tinyllm.project(np.array([f1], dtype=dtype), np.array([BLOG_W2], dtype=dtype))
    np.testing.assert_allclose(logits, BLOG_LOGITS, rtol=RTOL[dtype])


# ===========================================================================
# Sizes the hypothesis tests never reach: long reductions (large k) and wide
# outputs (several column tiles).
#
# float32 project sums blocks of 8 rows in float32 and folds each block sum into a
# double accumulator per output, so its error does not grow with k: the bound below
# is a few float32 roundings of sum_i |h_i W_ij|, whatever k is. (Accumulating in
# float32 all along errs by ~k eps: ~7e-6 relative at k = 65536 on positive data.)
# ===========================================================================


def exact_projection(h, W):
    """h @ W with every output summed exactly (math.fsum of the float64 products)."""
    h64, W64 = h.astype(np.float64), W.astype(np.float64)
    return np.array([math.fsum(h64 * W64[:, j]) for j in range(W.shape[1])])


@pytest.mark.parametrize("linalg", ISAS, ids=isa_id)
@pytest.mark.parametrize("k", [65_536, 65_541])  # a multiple of 8, and 5 rows past one
def test_float32_error_does_not_grow_with_k(linalg, k):
    rng = np.random.default_rng(1)
    h = rng.random(k, dtype=np.float32)  # all positive: no cancellation
    W = rng.random((k, 3), dtype=np.float32)
    got = linalg.project(h, W).astype(np.float64)
    exact = exact_projection(h, W)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    # 8-term float32 block sums (<= 8 eps each), the final rounding (eps / 2): well
    # under 1e-6 relative. A float32 running sum would be ~7e-6 off here.
    assert np.all(np.abs(got - exact) <= 1e-6 * scale)


@pytest.mark.parametrize("linalg", ISAS, ids=isa_id)
def test_float32_error_with_cancellation(linalg):
    rng = np.random.default_rng(2)
    k = 20_000
    h = rng.standard_normal(k).astype(np.float32)
    W = rng.standard_normal((k, 4)).astype(np.float32)
    got = linalg.project(h, W).astype(np.float64)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    assert np.all(np.abs(got - exact_projection(h, W)) <= 1e-6 * scale)


@pytest.mark.parametrize("linalg", ISAS, ids=isa_id)
def test_wide_outputs_span_several_tiles(linalg, dtype):
    # V larger than one tile of columns (16384), k not a multiple of the 8-row block.
    rng = np.random.default_rng(3)
    k, V = 13, 40_000
    h = rng.standard_normal((3, k)).astype(dtype)
    W = rng.standard_normal((k, V)).astype(dtype)
    got = linalg.project(h, W)
    expected = h.astype(np.float64) @ W.astype(np.float64)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    assert np.all(np.abs(got - expected) <= rtol * scale)
    # A batch row is its single projection, bit for bit (tiles differ with B).
    for b in range(3):
        np.testing.assert_array_equal(got[b], linalg.project(h[b], W))


@pytest.mark.parametrize("linalg", ISAS, ids=isa_id)
def test_dot_long_float32_accumulates_in_double(linalg):
    rng = np.random.default_rng(4)
    x = rng.random(100_003, dtype=np.float32)
    w = rng.random(100_003, dtype=np.float32)
    exact = math.fsum(x.astype(np.float64) * w.astype(np.float64))
    assert abs(linalg.dot(x, w) - exact) <= 1e-13 * exact


# ===========================================================================
# Batches through BLAS: from BLAS_SWITCH = (rows, multiply-adds) on, project calls
# np.matmul. Its rows may differ from the single projections in the last bits; its
# error is bounded like any order of summation: k * eps * sum_i |h_i W_ij| (the
# classic gamma_k bound, k * eps / 2, with a margin of 2).
# ===========================================================================

BLAS_ROWS, BLAS_WORK = BLAS_SWITCH


def exact_batch_projection(H, W):
    return np.array([exact_projection(h, W) for h in H])


def blas_bound(H, W):
    k = W.shape[0]
    scale = np.abs(H.astype(np.float64)) @ np.abs(W.astype(np.float64))
    return k * np.finfo(W.dtype).eps * scale


@pytest.mark.parametrize("B, k, V", [(BLAS_ROWS, 256, 300), (64, 67, 1000), (9, 1000, 80)])
def test_blas_batches_match_exact_projection(dtype, B, k, V):
    assert B >= BLAS_ROWS and B * k * V >= BLAS_WORK
    rng = np.random.default_rng(6)
    H = rng.standard_normal((B, k)).astype(dtype)
    W = rng.standard_normal((k, V)).astype(dtype)
    got = tinyllm.project(H, W)
    assert got.dtype == dtype and got.shape == (B, V)
    assert np.all(np.abs(got - exact_batch_projection(H, W)) <= blas_bound(H, W))


def switch_sides(rows, work, k=24):
    """Shapes (B, k, V) just below the switch point (B or work) and at it."""
    V_at = -(-work // (rows * k))  # ceil: rows * k * V_at >= work
    V_below = (work - 1) // (rows * k)
    return {
        "at": (rows, k, V_at),
        "fewer rows": (rows - 1, k, V_at * 2),
        "less work": (rows, k, V_below),
    }


@pytest.mark.parametrize("side", ["at", "fewer rows", "less work"])
def test_blas_switch_point(dtype, side):
    B, k, V = switch_sides(BLAS_ROWS, BLAS_WORK)[side]
    rng = np.random.default_rng(7)
    H = rng.standard_normal((B, k)).astype(dtype)
    W = rng.standard_normal((k, V)).astype(dtype)
    blas, kernel = np.matmul(H, W), _project_kernel(H, W)
    assert not np.array_equal(blas, kernel)  # the two paths can be told apart
    got = tinyllm.project(H, W)
    if side == "at":
        assert B * k * V >= BLAS_WORK
        np.testing.assert_array_equal(got, blas)
    else:
        assert B < BLAS_ROWS or B * k * V < BLAS_WORK
        np.testing.assert_array_equal(got, kernel)
        for b in range(B):  # below the switch, a batch row is its single projection
            np.testing.assert_array_equal(got[b], tinyllm.project(H[b], W))


@pytest.mark.parametrize("layout", [*LAYOUTS, "byte-swapped"])
def test_blas_batches_any_layout(dtype, layout):
    rng = np.random.default_rng(8)
    H = rng.standard_normal((8, 64)).astype(dtype)
    W = rng.standard_normal((64, 200)).astype(dtype)
    expected = tinyllm.project(H, W)
    if layout == "byte-swapped":
        swapped = np.dtype(dtype).newbyteorder()
        h_in, W_in = H.astype(swapped), W.astype(swapped)
    else:
        h_in, W_in = with_layout(H, layout), with_layout(W, layout)
    before = (h_in.copy(), W_in.copy())
    np.testing.assert_array_equal(tinyllm.project(h_in, W_in), expected)
    np.testing.assert_array_equal(tinyllm.project(h_in, W), expected)
    np.testing.assert_array_equal(tinyllm.project(H, W_in), expected)
    unchanged(before[0], h_in), unchanged(before[1], W_in)


@pytest.mark.parametrize(
    "out_layout", ["C", "F", "strided", "sliced", "row-steps", "reversed", "unaligned"]
)
def test_blas_batches_out_any_layout(dtype, out_layout):
    rng = np.random.default_rng(9)
    H = rng.standard_normal((8, 64)).astype(dtype)
    W = rng.standard_normal((64, 200)).astype(dtype)
    out = with_layout(np.full((8, 200), 7, dtype), out_layout)
    assert tinyllm.project(H, W, out=out) is out
    np.testing.assert_array_equal(out, tinyllm.project(H, W))
    square = rng.standard_normal((64, 64)).astype(dtype)  # out aliasing an input
    expected = tinyllm.project(square, square)
    assert tinyllm.project(square, square, out=square) is square
    np.testing.assert_array_equal(square, expected)


def test_blas_batch_of_mixed_dtypes_is_float64():
    H = np.ones((8, 64), np.float32)
    W = np.ones((64, 200), np.float64)
    assert tinyllm.project(H, W).dtype == np.float64
    assert tinyllm.project(W.T.astype(np.float32), H.T.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
def test_blas_batches_non_finite_input(bad, dtype):
    H, W = np.ones((8, 64), dtype), np.ones((64, 200), dtype)
    H[5, 7] = bad
    assert_raises(ValueError, ("project", "h[(5, 7)]", "finite"), tinyllm.project, H, W)
    H[5, 7] = 1
    W[3, 150] = bad
    assert_raises(ValueError, ("project", "W[(3, 150)]", "finite"), tinyllm.project, H, W)


@pytest.mark.parametrize("bad", [NAN, INF], ids=["nan", "inf"])
def test_blas_batches_zero_column_does_not_hide_a_bad_weight(bad, dtype):
    # A BLAS may skip the products of a zero in h: every row of H multiplies W's row 3
    # by zero, so the bad weight there must be found by the check, not by the result.
    rng = np.random.default_rng(10)
    H = rng.standard_normal((8, 64)).astype(dtype)
    W = rng.standard_normal((64, 200)).astype(dtype)
    H[:, 3] = 0
    np.testing.assert_array_equal(tinyllm.project(H, W), np.matmul(H, W))  # finite: fine
    W[3, 150] = bad
    assert_raises(ValueError, ("project", "W[(3, 150)]", "finite"), tinyllm.project, H, W)


def test_blas_batches_overflow(dtype):
    big = np.finfo(dtype).max / 2
    H, W = np.full((8, 64), big, dtype), np.full((64, 200), 4.0, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported as the ValueError only, not as a warning
        assert_raises(ValueError, ("project", "overflow"), tinyllm.project, H, W)


# ===========================================================================
# dtypes and out=
# ===========================================================================


def test_mixed_float32_float64_is_float64():
    a32, a64 = np.ones((2, 2), np.float32), np.ones((2, 2), np.float64)
    assert tinyllm.project(a32, a64).dtype == np.float64
    assert tinyllm.project(a64, a32).dtype == np.float64
    assert tinyllm.dot(a32[0], a64[0]) == 2.0


@pytest.mark.parametrize(
    "out_layout", ["C", "F", "strided", "sliced", "row-steps", "reversed", "unaligned"]
)
@pytest.mark.parametrize("batched", [False, True])
def test_project_out_any_layout(out_layout, batched, dtype):
    rng = np.random.default_rng(3)
    h = rng.normal(size=(4, 3) if batched else (3,)).astype(dtype)
    W = rng.normal(size=(3, 5)).astype(dtype)
    out = with_layout(np.full((4, 5) if batched else (5,), 7, dtype), out_layout)
    assert tinyllm.project(h, W, out=out) is out
    np.testing.assert_array_equal(out, tinyllm.project(h, W))


def test_project_out_aliasing_an_input(dtype):
    rng = np.random.default_rng(4)
    H, W = rng.normal(size=(3, 3)).astype(dtype), rng.normal(size=(3, 3)).astype(dtype)
    expected_h, expected_w = tinyllm.project(H, W), tinyllm.project(W, W)
    assert tinyllm.project(H, W, out=H) is H
    np.testing.assert_array_equal(H, expected_h)
    assert tinyllm.project(W, W, out=W) is W
    np.testing.assert_array_equal(W, expected_w)
    v = rng.normal(size=3).astype(dtype)
    expected_v = tinyllm.project(v, W)
    assert tinyllm.project(v, W, out=v) is v
    np.testing.assert_array_equal(v, expected_v)


# ===========================================================================
# Bad input, each case on its own
# ===========================================================================


@pytest.mark.parametrize(
    "x_shape, w_shape", [((2,), (3,)), ((2, 3), (3,)), ((3,), (1, 3)), ((), (1,))], ids=str
)
def test_dot_wrong_shapes_name_both(x_shape, w_shape):
    assert_raises(
        ValueError,
        ("dot", str(x_shape), str(w_shape)),
        tinyllm.dot,
        np.ones(x_shape),
        np.ones(w_shape),
    )


@pytest.mark.parametrize(
    "h_shape, W_shape",
    [
        ((2,), (3, 4)),
        ((5, 2), (3, 4)),
        ((3,), (3,)),
        ((2, 2, 3), (3, 4)),
        ((), (1, 1)),
        ((3,), (3, 4, 1)),
    ],
    ids=str,
)
def test_project_wrong_shapes_name_both(h_shape, W_shape):
    assert_raises(
        ValueError,
        ("project", str(h_shape), str(W_shape)),
        tinyllm.project,
        np.ones(h_shape),
        np.ones(W_shape),
    )


def test_dot_empty():
    assert_raises(ValueError, ("empty",), tinyllm.dot, np.ones(0), np.ones(0))


@pytest.mark.parametrize(
    "h_shape, W_shape",
    [((0,), (0, 3)), ((2, 0), (0, 3)), ((3,), (3, 0)), ((0, 3), (3, 2))],
    ids=str,
)
def test_project_empty(h_shape, W_shape):
    assert_raises(ValueError, ("empty",), tinyllm.project, np.ones(h_shape), np.ones(W_shape))


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("where", [0, 3, 6])
def test_dot_non_finite_anywhere(bad, where, dtype):
    x, w = np.ones(7, dtype), np.ones(7, dtype)
    x[where] = bad
    assert_raises(ValueError, ("dot", f"x[{where}]", "finite"), tinyllm.dot, x, w)
    assert_raises(ValueError, ("dot", f"w[{where}]", "finite"), tinyllm.dot, w, x)


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("where", [(0, 0), (2, 1), (1, 3)], ids=str)
def test_project_non_finite_anywhere(bad, where, dtype):
    H, W = np.ones((3, 4), dtype), np.ones((4, 2), dtype)
    H[where] = bad
    assert_raises(ValueError, ("project", "h[", "finite"), tinyllm.project, H, W)
    assert_raises(ValueError, ("project", "h[", "finite"), tinyllm.project, H[where[0]], W)
    W2 = np.ones((2, 4), dtype)
    W2[where[0] % 2, where[1]] = bad
    assert_raises(ValueError, ("project", "W[", "finite"), tinyllm.project, np.ones(2, dtype), W2)


def test_project_zero_times_nan_still_errors():
    # 0 * NaN is NaN: a zero in h must not hide a bad weight
    assert_raises(
        ValueError, ("W[",), tinyllm.project, np.array([0.0, 1.0]), np.array([[NAN], [1.0]])
    )


def test_dot_and_project_overflow(dtype):
    big = np.finfo(dtype).max / 2
    h, W = np.array([big, big], dtype), np.array([[4.0], [4.0]], dtype)
    assert_raises(ValueError, ("overflow",), tinyllm.project, h, W)
    assert_raises(ValueError, ("overflow",), tinyllm.dot, np.full(3, 1e200), np.full(3, 1e200))
