"""The vectorisable exp of src/_fastmath.pxd, through the test hook tinyllm._softmax._exp.

Against np.exp in long double (64-bit mantissa on x86: exact enough to count ulps of
float64), on every build that runs here: over the whole range, near 0, near where the
results become subnormal and underflow to 0, and at the special values.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BUILDS, build_id

builds = pytest.mark.parametrize("build", BUILDS["_softmax"], ids=build_id)

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
    x = np.concatenate([
        rng.uniform(lo, hi, 200_000), rng.uniform(-1, 1, 50_000), rng.uniform(*subnormal, 50_000),
        -np.logspace(-30, np.log10(-lo), 20_000), np.logspace(-30, np.log10(hi), 20_000),
        [0.0, -0.0, np.finfo(dtype).tiny, -np.finfo(dtype).tiny, -1e-30, lo, hi],
    ]).astype(dtype)
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
        np.testing.assert_array_equal(build._exp(np.array([np.inf, 1e4, np.finfo(dtype).max], dtype)), np.inf)


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
