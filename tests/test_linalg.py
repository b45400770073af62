"""project at sizes the hypothesis tests never reach: long reductions (large k) and
wide outputs (several column tiles), in every build of tinyllm._linalg.

float32 project sums blocks of 8 rows in float32 and folds each block sum into a
double accumulator per output, so its error does not grow with k: the bound below
is a few float32 roundings of sum_i |h_i W_ij|, whatever k is. (Accumulating in
float32 all along errs by ~k eps: ~7e-6 relative at k = 65536 on positive data.)
"""

import math

import numpy as np
import pytest

from conftest import ISAS, isa_id

LINALG = ISAS


def exact_projection(h, W):
    """h @ W with every output summed exactly (math.fsum of the float64 products)."""
    h64, W64 = h.astype(np.float64), W.astype(np.float64)
    return np.array([math.fsum(h64 * W64[:, j]) for j in range(W.shape[1])])


@pytest.mark.parametrize("linalg", LINALG, ids=isa_id)
@pytest.mark.parametrize("k", [65_536, 65_541])   # a multiple of 8, and 5 rows past one
def test_float32_error_does_not_grow_with_k(linalg, k):
    rng = np.random.default_rng(1)
    h = rng.random(k, dtype=np.float32)                      # all positive: no cancellation
    W = rng.random((k, 3), dtype=np.float32)
    got = linalg.project(h, W).astype(np.float64)
    exact = exact_projection(h, W)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    # 8-term float32 block sums (<= 8 eps each), the final rounding (eps / 2): well
    # under 1e-6 relative. A float32 running sum would be ~7e-6 off here.
    assert np.all(np.abs(got - exact) <= 1e-6 * scale)


@pytest.mark.parametrize("linalg", LINALG, ids=isa_id)
def test_float32_error_with_cancellation(linalg):
    rng = np.random.default_rng(2)
    k = 20_000
    h = rng.standard_normal(k).astype(np.float32)
    W = rng.standard_normal((k, 4)).astype(np.float32)
    got = linalg.project(h, W).astype(np.float64)
    scale = np.abs(h.astype(np.float64)) @ np.abs(W.astype(np.float64))
    assert np.all(np.abs(got - exact_projection(h, W)) <= 1e-6 * scale)


@pytest.mark.parametrize("linalg", LINALG, ids=isa_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
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


@pytest.mark.parametrize("linalg", LINALG, ids=isa_id)
def test_dot_long_float32_accumulates_in_double(linalg):
    rng = np.random.default_rng(4)
    x = rng.random(100_003, dtype=np.float32)
    w = rng.random(100_003, dtype=np.float32)
    exact = math.fsum(x.astype(np.float64) * w.astype(np.float64))
    assert abs(linalg.dot(x, w) - exact) <= 1e-13 * exact
