"""The vectorisable exp of src/kernels/fastmath.pxi, through the test hook tinyllm._softmax._exp.

Against np.exp in long double (64-bit mantissa on x86: exact enough to count ulps of
float64), on every build that runs here: over the whole range, near 0, near where the
results become subnormal and underflow to 0, and at the special values.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ISAS, isa_id

builds = pytest.mark.parametrize("build", ISAS, ids=isa_id)

if np.finfo(np.longdouble).nmant < 60:  # pragma: no cover - MSVC and arm64 macOS
    pytest.skip("needs an 80-bit long double to count ulps", allow_module_level=True)

#: Worst error allowed, in units in the last place of the exact result (the
#: polynomials are within ~0.1 ulp; the rest is rounding, with or without FMA).
MAX_ULP = 1.5


def _points(dtype, nonpos):
    rng = np.random.default_rng(0)
    if dtype == np.float64:
        lo, hi, subnormal = -746.0, 709.78, (-745.2, -708.3)
    else:
        lo, hi, subnormal = -104.0, 88.72, (-103.98, -87.3)
    x = np.concatenate(
        [
            rng.uniform(lo, hi, 200_000),
            rng.uniform(-1, 1, 50_000),
            rng.uniform(*subnormal, 50_000),
            -np.logspace(-30, np.log10(-lo), 20_000),
            np.logspace(-30, np.log10(hi), 20_000),
            [0.0, -0.0, np.finfo(dtype).tiny, -np.finfo(dtype).tiny, -1e-30, lo, hi],
        ]
    ).astype(dtype)
    return x[x <= 0] if nonpos else x


def _ulp_error(got, x, dtype):
    exact = np.exp(x.astype(np.longdouble))
    finite = exact < np.finfo(dtype).max
    err = np.abs(got[finite].astype(np.longdouble) - exact[finite])
    ulp = np.spacing(exact[finite].astype(dtype)).astype(np.longdouble)  # subnormal ulps too
    return err / ulp


@builds
@pytest.mark.parametrize("nonpos", [False, True], ids=["exp", "exp_nonpos"])
def test_exp_within_an_ulp_and_a_half(build, nonpos, dtype):
    x = _points(dtype, nonpos)
    got = build._exp(x, nonpos)
    assert got.dtype == dtype
    errors = _ulp_error(got, x, dtype)
    worst = int(np.argmax(errors))
    assert errors[worst] <= MAX_ULP, f"{errors[worst]:.3f} ulp at x = {x[worst]!r}"


@builds
@pytest.mark.parametrize("nonpos", [False, True], ids=["exp", "exp_nonpos"])
def test_exp_special_values(build, nonpos, dtype):
    x = np.array([-np.inf, np.nan, 0.0, -0.0, -1e4, np.finfo(dtype).min], dtype)
    got = build._exp(x, nonpos)
    np.testing.assert_array_equal(got[[0, 4, 5]], 0.0)  # exactly 0: -inf is a mask
    assert np.isnan(got[1])
    np.testing.assert_array_equal(got[2:4], 1.0)
    if not nonpos:
        np.testing.assert_array_equal(
            build._exp(np.array([np.inf, 1e4, np.finfo(dtype).max], dtype)), np.inf
        )


@builds
def test_exp_underflow_boundary(build, dtype):
    """The smallest subnormal result is reached, and below half of it the result is 0."""
    tiny_sub = np.finfo(dtype).smallest_subnormal
    edge = np.log(np.longdouble(tiny_sub))  # exp(edge) is the smallest subnormal number
    x = np.array([edge + 0.01, edge - 0.01, edge - 0.75, edge - 1.0], dtype)
    for nonpos in (False, True):
        got = build._exp(x, nonpos)
        assert got[0] == tiny_sub and got[1] == tiny_sub
        np.testing.assert_array_equal(got[2:], 0.0)


# ---------------------------------------------------------------------------
# The sampling weights exp((x - m) / T) of scaled_expf / scaled_exp, through the
# hook tinyllm._sampling._exp_weights (what sample_logits' one-draw path uses)
# ---------------------------------------------------------------------------

sampling_builds = pytest.mark.parametrize("build", ISAS, ids=isa_id)

#: Below exp(CUTOFF) of the max's weight, a weight is exactly 0 (kernels/fastmath.pxi).
CUTOFF = {np.float32: -86.0, np.float64: -707.0}
TEMPERATURES = [1.0, 0.8, 3.7, 0.01, 100.0, 1e-25, 1e25, 1e-30, 1e30]


def _scaled_logits(dtype, t, seed=0):
    """Logits whose (x - max) / t covers [-95, 0] (and beyond -707 in float64)."""
    rng = np.random.default_rng(seed)
    a = np.concatenate(
        [
            rng.uniform(-95.0, 0.0, 20_000),
            rng.uniform(-1.0, 0.0, 5_000),
            -np.logspace(-12, 2, 2_000),
            rng.uniform(-800.0, -600.0, 2_000),
            [-86.0, -85.99, -707.0, -706.99, 0.0],
        ]
    )
    top = 3.0 if 1e-3 <= t <= 1e3 else 0.0  # keep x - top exact enough to cover the range
    x = (top + a * t).astype(dtype)
    rng.shuffle(x)
    return np.concatenate([x, [-np.inf, dtype(top)]]).astype(dtype)


def _exact_weights(x, t):
    xl = x.astype(np.longdouble)
    a = (xl - xl.max()) / np.longdouble(t)
    return a, np.exp(a)


@sampling_builds
@pytest.mark.parametrize("t", TEMPERATURES)
def test_sampling_weights_accuracy(build, dtype, t):
    x = _scaled_logits(dtype, t)
    w, sums = build._exp_weights(x, t)
    assert w.dtype == dtype and sums.dtype == np.float64
    a, exact = _exact_weights(x, t)
    kept = a >= CUTOFF[dtype]
    err = np.abs(w[kept].astype(np.longdouble) - exact[kept])
    if dtype == np.float32:
        # TwoSum makes x - m exact, Cody-Waite keeps the reduction exact: within
        # two ulps of float (measured: 1.4), at every temperature.
        ulps = err / np.spacing(exact[kept].astype(np.float32)).astype(np.longdouble)
        assert ulps.max() <= 2.0, f"{float(ulps.max()):.2f} ulp at x = {x[kept][np.argmax(ulps)]!r}"
    else:
        # The degree-7 polynomial (5.2e-11), plus the rounding of x - m in double.
        bound = 6e-11 + np.abs(a[kept]) * 2.0**-52
        rel = err / exact[kept]
        assert np.all(rel <= bound), f"{float(rel.max()):.3g} relative"


@sampling_builds
@pytest.mark.parametrize("t", TEMPERATURES)
def test_sampling_weights_flush_to_zero(build, dtype, t):
    """0 exactly below the cutoff (and for -inf), a normal number above it: no
    subnormal weight, ever; the max weighs exactly 1."""
    x = _scaled_logits(dtype, t)
    w, _ = build._exp_weights(x, t)
    a, _ = _exact_weights(x, t)
    # One ulp of the rounding of (x - m) / T either side of the cutoff may go either way.
    margin = abs(CUTOFF[dtype]) * 1e-6
    assert np.all(w[a < CUTOFF[dtype] - margin] == 0.0)
    assert np.all(w[a > CUTOFF[dtype] + margin] >= np.finfo(dtype).tiny)
    assert not np.any((w > 0) & (w < np.finfo(dtype).tiny))
    assert w[-1] == 1.0 and w[-2] == 0.0  # the max, and -inf
    assert np.all(w[x == x.max()] == 1.0)


@sampling_builds
def test_sampling_block_sums_are_the_weights_sums(build, dtype):
    """The walk of a draw adds the weights exp_block_weights gives; the block sums it
    walks first come from exp_block_sum: the same numbers, summed in another order
    (8 float weights per partial sum for float32, then double)."""
    rng = np.random.default_rng(1)
    for V in (1, 5, 31, 256, 257, 1_000, 32_000):
        x = (rng.standard_normal(V) * 3).astype(dtype)
        w, sums = build._exp_weights(x, 0.8)
        assert sums.shape == ((V + 255) // 256,)
        expected = np.add.reduceat(w.astype(np.float64), np.arange(0, V, 256))
        rtol = 8 * 2.0**-24 if dtype == np.float32 else 1e-15
        np.testing.assert_allclose(sums, expected, rtol=rtol)


@sampling_builds
def test_sampling_weights_same_in_vector_body_and_tail(build, dtype):
    """A weight depends on x[i] alone, not on where the loop (vector body or scalar
    tail, of the pass or of the draw's recomputation) meets it."""
    x = (np.random.default_rng(2).standard_normal(1_000) * 3).astype(dtype)
    x[0] = 10.0
    w, _ = build._exp_weights(x, 0.7)
    for n in (1, 7, 33, 255, 300):
        np.testing.assert_array_equal(build._exp_weights(x[:n], 0.7)[0], w[:n])
    np.testing.assert_array_equal(build._exp_weights(x[::-1].copy(), 0.7)[0], w[::-1])


@sampling_builds
def test_sampling_weights_outside_the_fast_path(build, dtype):
    """None (the sampler takes its other path) for a NaN -- also one whose payload the
    exponent add could turn into a number --, +inf, all -inf, or an extreme T."""
    x = np.array([0.0, -1.0, 2.0], dtype)
    assert build._exp_weights(x, 1e-31) is None and build._exp_weights(x, 1e31) is None
    assert build._exp_weights(np.array([-np.inf, -np.inf], dtype), 1.0) is None
    assert build._exp_weights(np.array([0.0, np.inf], dtype), 1.0) is None
    bits = {
        np.float32: (np.uint32, [0x7FC00000, 0x7FC001FF, 0xFFC00001, 0x7F800001]),
        np.float64: (np.uint64, [0x7FF8000000000000, 0x7FF00000000007A2, 0xFFF8000000000FFF]),
    }
    utype, patterns = bits[dtype]
    for pattern in patterns:
        for V in (5, 100, 1_000):
            y = np.zeros(V, dtype)
            y[V // 2] = np.array(pattern, utype).view(dtype)
            assert np.isnan(y[V // 2])
            assert build._exp_weights(y, 1.0) is None, hex(pattern)
            with pytest.raises(ValueError, match=r"is nan"):
                build.sample_logits(y, temperature=0.8, rng=0)
    # An extreme temperature draws through libm's exp, as the filters do.
    assert {build.sample_logits(x, temperature=1e-31, rng=s) for s in range(20)} == {2}
    assert {build.sample_logits(x, temperature=1e31, rng=s) for s in range(200)} == {0, 1, 2}
