"""Tests for the sampler (tinyllm._sampling) and its pure-Python reference.

Every test runs once per instruction set the kernels were built for and this CPU runs
(conftest.each_isa), with every kernel switched to that build.

Every random test has a fixed seed (hypothesis runs derandomized), so nothing here
is flaky: a statistical test either always passes or always fails.
"""

import math
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm._sampling import filter_logits, sample, sample_logits
from tinyllm.reference import sampling as ref

from conftest import (
    BLOG_LOGITS,
    BLOG_PROBS,
    DTYPES,
    P_THRESHOLD,
    chi2_sf,
    chi_square_pvalue,
    exact_weights,
    softmax64,
)

INF = math.inf

pytestmark = pytest.mark.usefixtures("each_isa")

deterministic = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def support(x):
    return np.isfinite(np.asarray(x, dtype=np.float64))


def test_chi2_sf_matches_tables():
    # Critical values at 5% and 0.1% from standard tables; df = 2 is exp(-x / 2).
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, rel=1e-5)
    assert chi2_sf(11.0705, 5) == pytest.approx(0.05, rel=1e-4)
    assert chi2_sf(27.8772, 9) == pytest.approx(0.001, rel=1e-3)
    assert chi2_sf(124.342, 100) == pytest.approx(0.05, rel=1e-3)
    for x in (0.5, 3.0, 40.0):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_draws(dtype):
    p = np.array(BLOG_PROBS, dtype=dtype)
    x = np.log(p)
    assert np.array_equal(sample(p, size=200, rng=7), sample(p, size=200, rng=7))
    assert np.array_equal(
        sample_logits(x, top_p=0.9, size=200, rng=7), sample_logits(x, top_p=0.9, size=200, rng=7)
    )
    g1, g2 = np.random.default_rng(42), np.random.default_rng(42)
    assert [sample(p, rng=g1) for _ in range(50)] == [sample(p, rng=g2) for _ in range(50)]


def test_int_seed_equals_default_rng_of_seed():
    g = np.random.default_rng(123)
    assert np.array_equal(
        sample(BLOG_PROBS, size=100, rng=123), sample(BLOG_PROBS, size=100, rng=g)
    )


def test_same_seed_across_processes(each_isa):
    code = (
        "from tinyllm._sampling import sample, sample_logits\n"
        f"print(sample({BLOG_PROBS!r}, size=100, rng=2024).tolist())\n"
        f"print(sample_logits({BLOG_LOGITS!r}, temperature=0.8, top_k=4, "
        "size=100, rng=99).tolist())\n"
    )
    root = str(Path(tinyllm.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PYTHONHASHSEED"] = "random"
    env["TINYLLM_SIMD"] = each_isa  # the other process on the same build
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == str(sample(BLOG_PROBS, size=100, rng=2024).tolist())
    assert lines[1] == str(
        sample_logits(BLOG_LOGITS, temperature=0.8, top_k=4, size=100, rng=99).tolist()
    )


def test_different_seeds_differ():
    draws = {tuple(sample(BLOG_PROBS, size=100, rng=seed).tolist()) for seed in range(10)}
    assert len(draws) == 10
    draws = {
        tuple(sample_logits(np.log(BLOG_PROBS), size=100, rng=seed).tolist()) for seed in range(10)
    }
    assert len(draws) == 10


def test_none_rng_takes_fresh_entropy():
    assert not np.array_equal(sample(np.ones(1000), size=50), sample(np.ones(1000), size=50))


def test_one_double_per_draw():
    # The Generator advances by exactly one double per draw, so split calls continue
    # the same stream as one big call.
    g = np.random.default_rng(5)
    split = np.concatenate([sample(BLOG_PROBS, size=30, rng=g), sample(BLOG_PROBS, size=70, rng=g)])
    assert np.array_equal(split, sample(BLOG_PROBS, size=100, rng=5))
    g, h = np.random.default_rng(5), np.random.default_rng(5)
    sample_logits(np.zeros((3, 8)), top_k=3, size=(2, 5), rng=g)
    h.random(30)
    assert g.bit_generator.state == h.bit_generator.state


def test_greedy_draws_no_random_numbers():
    g = np.random.default_rng(5)
    before = g.bit_generator.state
    assert sample_logits([0.0, 1.0], temperature=0, size=10, rng=g).tolist() == [1] * 10
    assert g.bit_generator.state == before


# ---------------------------------------------------------------------------
# Distributions: chi-square tests over >= 1e5 draws
# ---------------------------------------------------------------------------

N_DRAWS = 200_000


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_blog_distribution(dtype):
    tokens = sample(np.array(BLOG_PROBS, dtype=dtype), size=N_DRAWS, rng=1)
    assert tokens.dtype == np.int64
    assert chi_square_pvalue(tokens, BLOG_PROBS) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_logits_blog_distribution(dtype):
    logits = np.log(np.array(BLOG_PROBS, dtype=dtype))
    tokens = sample_logits(logits, size=N_DRAWS, rng=2)
    assert chi_square_pvalue(tokens, BLOG_PROBS) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_blog_distribution_one_draw_at_a_time(dtype):
    g = np.random.default_rng(3)
    p = np.array(BLOG_PROBS, dtype=dtype)
    tokens = [sample(p, rng=g) for _ in range(100_000)]
    assert all(type(t) is int for t in tokens[:10])
    assert chi_square_pvalue(tokens, BLOG_PROBS) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_draws_across_blocks(dtype):
    # One draw per call takes the path without a cumulative table (block sums of
    # 256 tokens, then one block): a vocabulary of several blocks, whole blocks of
    # zero weight and masked logits, one draw at a time.
    r = np.random.default_rng(8)
    V = 1_100
    w = r.random(V) ** 4
    w[256:512] = 0.0  # a whole block without mass
    w[r.random(V) < 0.2] = 0.0
    w[-1] = 3.0  # the last token of the last (partial) block
    weights = w.astype(dtype)
    g = np.random.default_rng(3)
    tokens = [sample(weights, rng=g) for _ in range(100_000)]
    assert chi_square_pvalue(tokens, weights.astype(np.float64)) > P_THRESHOLD
    logits = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)) * 0.8, -INF).astype(dtype)
    tokens = [sample_logits(logits, temperature=0.8, rng=g) for _ in range(100_000)]
    assert chi_square_pvalue(tokens, softmax64(logits.astype(np.float64) / 0.8)) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_draw_far_below_the_max(dtype):
    # (x - max) / T beyond the float range: weight 0, never an error or a NaN.
    big = 3e38 if dtype == np.float32 else 1e308
    x = np.array([-big, 0.0, -big, -INF, -1.0], dtype=dtype)
    draws = {sample_logits(x, temperature=0.01, rng=s) for s in range(50)}
    assert draws == {1}


def test_unnormalised_weights():
    weights = np.array(BLOG_PROBS) * 37.5
    assert chi_square_pvalue(sample(weights, size=N_DRAWS, rng=4), BLOG_PROBS) > P_THRESHOLD
    assert chi_square_pvalue(sample([1, 0, 3], size=N_DRAWS, rng=4), [1, 0, 3]) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [10, 11, 12])
def test_sample_random_distributions(dtype, seed):
    r = np.random.default_rng(seed)
    V = int(r.integers(5, 60))
    weights = r.dirichlet(np.full(V, 0.7)).astype(dtype)
    weights[r.random(V) < 0.15] = 0
    weights[0] += 0.1
    tokens = sample(weights, size=N_DRAWS, rng=seed)
    assert chi_square_pvalue(tokens, weights.astype(np.float64)) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [20, 21, 22])
def test_sample_logits_random_distributions(dtype, seed):
    r = np.random.default_rng(seed)
    V = int(r.integers(5, 60))
    logits = (r.normal(size=V) * 2).astype(dtype)
    logits[r.random(V) < 0.15] = -np.inf
    logits[0] = 1.0
    t = float(r.choice([0.5, 1.0, 1.7]))
    tokens = sample_logits(logits, temperature=t, size=N_DRAWS, rng=seed)
    assert chi_square_pvalue(tokens, softmax64(logits.astype(np.float64) / t)) > P_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "filters",
    [
        dict(top_k=3),
        dict(top_p=0.8),
        dict(min_p=0.1),
        dict(temperature=0.7, top_k=8, top_p=0.9, min_p=0.05),
    ],
    ids=["top_k", "top_p", "min_p", "all"],
)
def test_sample_logits_filtered_distribution(dtype, filters):
    r = np.random.default_rng(30)
    logits = (r.normal(size=40) * 1.5).astype(dtype)
    kept = filter_logits(logits, **filters)
    tokens = sample_logits(logits, size=N_DRAWS, rng=31, **filters)
    assert chi_square_pvalue(tokens, softmax64(kept)) > P_THRESHOLD


def test_batch_rows_have_their_own_distributions():
    weights = np.array([BLOG_PROBS, BLOG_PROBS[::-1], [0, 0, 0, 0, 1]])
    tokens = sample(weights, size=N_DRAWS, rng=8)
    assert tokens.shape == (3, N_DRAWS)
    assert chi_square_pvalue(tokens[0], BLOG_PROBS) > P_THRESHOLD
    assert chi_square_pvalue(tokens[1], BLOG_PROBS[::-1]) > P_THRESHOLD
    assert (tokens[2] == 4).all()
    logits = np.log(np.maximum(weights, 1e-300))
    logits[2, :4] = -np.inf
    tokens = sample_logits(logits, size=N_DRAWS, rng=9)
    assert chi_square_pvalue(tokens[1], BLOG_PROBS[::-1]) > P_THRESHOLD
    assert (tokens[2] == 4).all()


def test_zero_weights_and_masks_never_drawn():
    tokens = sample([0, 1e-300, 0, 0, 2.0, 0], size=N_DRAWS, rng=0)
    assert set(np.unique(tokens).tolist()) <= {1, 4}
    tokens = sample_logits([-INF, 0.0, -INF, -INF, 0.0, -INF], size=N_DRAWS, rng=0)
    assert set(np.unique(tokens).tolist()) == {1, 4}


@pytest.mark.parametrize(
    "filters",
    [dict(), dict(top_k=2), dict(top_p=0.6), dict(min_p=0.3)],
    ids=["none", "top_k", "top_p", "min_p"],
)
def test_reference_distribution(filters):
    logits = np.log(BLOG_PROBS).tolist()
    tokens = ref.sample_logits(logits, size=100_000, rng=random.Random(1), **filters)
    expected = softmax64(ref.filter_logits(logits, **filters))
    assert chi_square_pvalue(tokens, expected) > P_THRESHOLD
    tokens = ref.sample(BLOG_PROBS, size=100_000, rng=2)
    assert chi_square_pvalue(tokens, BLOG_PROBS) > P_THRESHOLD


# ---------------------------------------------------------------------------
# Support sets: the compiled filters against the reference, exactly
# ---------------------------------------------------------------------------


def assert_same_support(logits, **filters):
    logits = np.asarray(logits)
    got = filter_logits(logits, **filters)
    expected = ref.filter_logits(logits.tolist(), **filters)
    assert support(got).tolist() == support(expected).tolist(), (logits, filters)
    # Kept tokens carry logits / T (in the input's dtype).
    keep = support(got)
    assert np.allclose(got[keep], np.asarray(expected, dtype=logits.dtype)[keep], rtol=1e-6)
    return keep


tied_logits = st.lists(
    st.one_of(st.integers(-3, 3).map(float), st.just(-INF)), min_size=1, max_size=16
).filter(lambda x: any(v != -INF for v in x))

filters_strategy = st.fixed_dictionaries(
    {
        "temperature": st.sampled_from([0.0, 0.3, 1.0, 2.5]),
        "top_k": st.one_of(st.none(), st.integers(1, 18)),
        "top_p": st.one_of(
            st.none(), st.sampled_from([1e-12, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0])
        ),
        "min_p": st.one_of(st.none(), st.sampled_from([0.0, 0.01, 0.2, 0.5, 0.99, 1.0])),
    }
)


@deterministic
@given(tied_logits, st.sampled_from([1.0, 0.37, 13.1]), st.sampled_from(DTYPES), filters_strategy)
def test_support_matches_reference_with_ties(ints, scale, dtype, filters):
    logits = (np.array(ints) * scale).astype(dtype)
    assert_same_support(logits, **filters)
    assert_same_support(np.stack([logits, logits[::-1]]), **filters)


@deterministic
@given(
    st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=40),
    st.sampled_from(DTYPES),
    filters_strategy,
)
def test_support_matches_reference_random_floats(values, dtype, filters):
    assert_same_support(np.array(values, dtype=dtype), **filters)


@pytest.mark.parametrize("dtype", DTYPES)
def test_support_matches_reference_large_vocabulary(dtype):
    r = np.random.default_rng(40)
    for _ in range(20):
        logits = (r.normal(size=2000) * 3).astype(dtype)
        logits[r.random(2000) < 0.1] = -np.inf
        filters = dict(
            temperature=float(r.choice([0.5, 1.0])),
            top_k=int(r.integers(1, 2500)),
            top_p=float(r.random()),
            min_p=float(r.random() * 0.3),
        )
        assert_same_support(logits, **filters)
        for name in ("top_k", "top_p", "min_p"):
            assert_same_support(logits, **{name: filters[name]})


def ranked_cumulative(logits, temperature=1.0):
    """The top-p walk as specified (issue 11): (rank order, cumulative integer masses)."""
    x = [float(v) for v in logits]
    w = exact_weights(x, temperature)
    order = sorted((i for i, v in enumerate(x) if v != -INF), key=lambda i: (-x[i], i))
    cum, mass = [], 0
    for i in order:
        mass += w[i]
        cum.append(mass)
    return order, cum


def smallest_top_p_reaching(mass, total):
    """The smallest double p with p * float(total) >= float(mass): a top-p boundary."""
    p = float(mass) / float(total)
    while p * float(total) < float(mass):
        p = math.nextafter(p, 2.0)
    while math.nextafter(p, 0.0) * float(total) >= float(mass):
        p = math.nextafter(p, 0.0)
    return p


def top_p_support(logits, top_p):
    """The support top-p keeps, the compiled one checked against the reference."""
    return assert_same_support(logits, top_p=top_p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_top_p_exactly_a_cumulative_mass(dtype, seed):
    # The smallest p whose target p * W reaches a cumulative mass keeps exactly the
    # tokens up to it (equal masses: the first); the next p up keeps more once its
    # target passes that mass.
    r = np.random.default_rng(seed)
    logits = r.integers(-3, 3, size=12).astype(dtype) * dtype(0.7)
    order, cum = ranked_cumulative(logits)
    total = float(cum[-1])
    for mass in cum:
        p = smallest_top_p_reaching(mass, cum[-1])
        first = next(i for i, c in enumerate(cum) if float(c) >= p * total)
        keep = top_p_support(logits, p)
        assert sorted(np.flatnonzero(keep).tolist()) == sorted(order[: first + 1])
        above = math.nextafter(p, 2.0)
        if above <= 1.0 and above * total > float(cum[first]):
            assert keep.sum() < top_p_support(logits, above).sum()


def test_dyadic_top_p_boundaries():
    # exp(log(2^-k)) is exact for these k, so the probabilities are exactly
    # 0.5, 0.25, 0.125, 0.125 and the cumulative sums exactly 0.5, 0.75, 0.875, 1.
    assert all(math.exp(math.log(q)) == q for q in (0.5, 0.25))
    logits = np.array([math.log(0.25), 0.0, math.log(0.25), math.log(0.5)])  # ranks: 1, 3, 0, 2
    for p, kept in [
        (0.5, [1]),
        (0.75, [1, 3]),
        (0.875, [0, 1, 3]),
        (1.0, [0, 1, 2, 3]),
        (math.nextafter(0.5, 1), [1, 3]),
        (math.nextafter(0.75, 1), [0, 1, 3]),
        (math.nextafter(0.5, 0), [1]),
    ]:
        assert np.flatnonzero(assert_same_support(logits, top_p=p)).tolist() == kept, p
    # Eight equal logits: 1/8 each, ties broken towards the lower index.
    for j in range(1, 9):
        keep = assert_same_support(np.zeros(8), top_p=j / 8)
        assert np.flatnonzero(keep).tolist() == list(range(j))


def test_top_p_one_keeps_all_even_underflowed():
    logits = np.array([0.0, -800.0, -INF, -2.0])  # exp(-800) underflows to 0
    assert support(filter_logits(logits, top_p=1.0)).tolist() == [True, True, False, True]
    assert support(filter_logits(logits, top_p=None)).tolist() == [True, True, False, True]
    assert_same_support(logits, top_p=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiny_top_p_keeps_the_argmax(dtype):
    r = np.random.default_rng(3)
    for _ in range(50):
        logits = r.integers(-2, 3, size=10).astype(dtype)
        keep = assert_same_support(logits, top_p=1e-300)
        assert np.flatnonzero(keep).tolist() == [int(np.argmax(logits))]


def test_top_k_ties_to_the_lower_index():
    logits = np.array([1.0, 3.0, 3.0, 2.0, 3.0, -INF])
    assert np.flatnonzero(assert_same_support(logits, top_k=1)).tolist() == [1]
    assert np.flatnonzero(assert_same_support(logits, top_k=2)).tolist() == [1, 2]
    assert np.flatnonzero(assert_same_support(logits, top_k=4)).tolist() == [1, 2, 3, 4]
    assert np.flatnonzero(assert_same_support(logits, top_k=5)).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("dtype", DTYPES)
def test_top_k_one_and_all(dtype):
    r = np.random.default_rng(4)
    logits = r.normal(size=30).astype(dtype)
    logits[[3, 7]] = -np.inf
    assert np.flatnonzero(assert_same_support(logits, top_k=1)).tolist() == [int(np.argmax(logits))]
    everything = np.isfinite(logits).tolist()
    assert assert_same_support(logits, top_k=30).tolist() == everything
    assert assert_same_support(logits, top_k=28).tolist() == everything
    assert assert_same_support(logits, top_k=10**9).tolist() == everything
    assert assert_same_support(logits, top_k=27).sum() == 27


def test_min_p_boundaries():
    logits = np.array([math.log(0.25), 0.0, math.log(0.25), math.log(0.5)])  # p = .125 .5 .125 .25
    for min_p, kept in [
        (0.0, [0, 1, 2, 3]),
        (0.25, [0, 1, 2, 3]),
        (math.nextafter(0.25, 1), [1, 3]),
        (0.5, [1, 3]),
        (math.nextafter(0.5, 1), [1]),
        (1.0, [1]),
    ]:
        assert np.flatnonzero(assert_same_support(logits, min_p=min_p)).tolist() == kept, min_p
    # min_p = 1 keeps every token tied for the maximum.
    assert np.flatnonzero(assert_same_support([2.0, 5.0, 5.0, 1.0], min_p=1.0)).tolist() == [1, 2]


def test_filters_renormalise_in_transformers_order():
    logits = np.log([0.4, 0.3, 0.2, 0.1])
    # After top-k=2 the renormalised probabilities are 4/7 and 3/7: top-p=0.5 keeps one.
    assert np.flatnonzero(assert_same_support(logits, top_k=2, top_p=0.5)).tolist() == [0]
    # Without top-k, 0.4 < 0.5: top-p keeps two.
    assert np.flatnonzero(assert_same_support(logits, top_p=0.5)).tolist() == [0, 1]
    # top-p then min-p: after top-p=0.95 (three tokens), min-p=0.6 keeps p >= 0.6 * 4/9.
    assert np.flatnonzero(assert_same_support(logits, top_p=0.85, min_p=0.6)).tolist() == [0, 1]


def test_temperature_scales_the_kept_logits():
    out = filter_logits([2.0, 1.0, 0.0], temperature=2.0)
    assert out.tolist() == [1.0, 0.5, 0.0]
    assert filter_logits([2.0, 1.0, 0.0]).tolist() == [2.0, 1.0, 0.0]
    # Temperature 0: the argmax alone, its logit unscaled.
    assert filter_logits([2.0, 3.0, 3.0], temperature=0).tolist() == [-INF, 3.0, -INF]
    assert ref.filter_logits([2.0, 3.0, 3.0], temperature=0) == [-INF, 3.0, -INF]


def test_filter_logits_overflow_is_an_error():
    with pytest.raises(ValueError, match="overflows"):
        filter_logits(np.array([3e38, 0.0], dtype=np.float32), temperature=0.5)
    with pytest.raises(ValueError, match="overflows"):
        ref.filter_logits([1e308, 0.0], temperature=0.1)
    # sample_logits works on (x - max) / T: no overflow there.
    assert sample_logits(np.array([3e38, 0.0], dtype=np.float32), temperature=0.5, rng=0) == 0


# ---------------------------------------------------------------------------
# Greedy decoding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_greedy_ties_to_the_lowest_index(dtype):
    logits = np.array([1.0, 4.0, -INF, 4.0, 4.0], dtype=dtype)
    assert sample_logits(logits, temperature=0) == 1
    assert ref.sample_logits(logits.tolist(), temperature=0) == 1
    assert sample_logits(logits, temperature=0, size=3).tolist() == [1, 1, 1]
    batch = np.array([[0.0, 2.0, 2.0], [5.0, 5.0, 5.0], [-INF, -INF, 1.0]], dtype=dtype)
    assert sample_logits(batch, temperature=0).tolist() == [1, 0, 2]
    assert ref.sample_logits(batch.tolist(), temperature=0) == [1, 0, 2]
    # The filters cannot change the argmax.
    assert sample_logits(logits, temperature=0, top_k=1, top_p=0.1, min_p=1.0) == 1


def test_top_k_one_is_greedy():
    r = np.random.default_rng(6)
    logits = r.integers(0, 4, size=(20, 9)).astype(float)
    assert np.array_equal(
        sample_logits(logits, top_k=1, size=5, rng=1)[:, 0], sample_logits(logits, temperature=0)
    )


# ---------------------------------------------------------------------------
# Shapes, dtypes and layouts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("func", [sample, sample_logits], ids=["sample", "sample_logits"])
@pytest.mark.parametrize(
    "size, shape",
    [
        (5, (5,)),
        ((2, 3), (2, 3)),
        (0, (0,)),
        ((), ()),
        ([4], (4,)),
        (np.int64(3), (3,)),
        ((2, 0), (2, 0)),
    ],
)
def test_size_shapes(func, size, shape):
    tokens = func(BLOG_PROBS, size=size, rng=0)
    assert isinstance(tokens, np.ndarray) and tokens.dtype == np.int64
    assert tokens.shape == shape
    batch = func([BLOG_PROBS, BLOG_PROBS, BLOG_PROBS], size=size, rng=0)
    assert batch.shape == (3,) + shape and batch.dtype == np.int64
    assert ((batch >= 0) & (batch < 5)).all()


@pytest.mark.parametrize("func", [sample, sample_logits], ids=["sample", "sample_logits"])
def test_single_draw_is_an_int_and_batch_one_per_row(func):
    token = func(BLOG_PROBS, rng=0)
    assert type(token) is int and 0 <= token < 5
    tokens = func(np.tile(BLOG_PROBS, (7, 1)), rng=0)
    assert tokens.shape == (7,) and tokens.dtype == np.int64


@pytest.mark.parametrize("func", [ref.sample, ref.sample_logits], ids=["sample", "sample_logits"])
def test_reference_shapes(func):
    assert type(func(BLOG_PROBS, rng=0)) is int
    assert np.array(func(BLOG_PROBS, size=(2, 3), rng=0)).shape == (2, 3)
    assert np.array(func([BLOG_PROBS] * 4, rng=0)).shape == (4,)
    assert np.array(func([BLOG_PROBS] * 4, size=(2, 3), rng=0)).shape == (4, 2, 3)
    assert func(BLOG_PROBS, size=0, rng=0) == []
    assert func(BLOG_PROBS, size=5, rng=1) == func(BLOG_PROBS, size=5, rng=random.Random(1))


@pytest.mark.parametrize("func", [sample, sample_logits], ids=["sample", "sample_logits"])
def test_non_contiguous_and_read_only_inputs(func):
    base = np.array([BLOG_PROBS] * 4)
    values = base if func is sample else np.log(base)
    strided = values[::2, :]  # rows 0 and 2
    columns = np.asfortranarray(values)
    read_only = values.copy()
    read_only.flags.writeable = False
    expected = func(values[[0, 2]], size=50, rng=3)
    assert np.array_equal(func(strided, size=50, rng=3), expected)
    assert np.array_equal(func(columns, size=50, rng=3), func(values, size=50, rng=3))
    assert np.array_equal(func(read_only, size=50, rng=3), func(values, size=50, rng=3))
    assert np.array_equal(
        func(values[0, ::-1], size=50, rng=3), func(values[0, ::-1].copy(), size=50, rng=3)
    )


def test_other_real_dtypes_become_float64():
    assert np.array_equal(
        sample(np.array([1, 0, 3]), size=20, rng=1), sample([1.0, 0.0, 3.0], size=20, rng=1)
    )
    assert sample(np.array([False, True, False]), rng=1) == 1
    assert sample(np.array([0, 2, 0], dtype=np.float16), rng=1) == 1
    assert filter_logits(np.array([1, 2, 3], dtype=np.int32), top_k=1).dtype == np.float64
    assert filter_logits(np.array([1, 2, 3], dtype=np.float32), top_k=1).dtype == np.float32


@pytest.mark.parametrize("func", [sample, sample_logits, filter_logits])
@pytest.mark.parametrize(
    "bad", [np.array([1 + 1j, 2]), np.array([1.0, "a"], dtype=object)], ids=["complex", "object"]
)
def test_complex_and_object_dtypes_are_type_errors(func, bad):
    with pytest.raises(TypeError, match="real numbers"):
        func(bad)


def test_filter_logits_out():
    logits = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    out = np.empty_like(logits)
    assert filter_logits(logits, top_k=2, out=out) is out
    assert support(out).tolist() == [[True, False, True], [False, True, True]]
    filter_logits(logits, top_k=1, out=logits)  # in place
    assert logits.tolist() == [[3.0, -INF, -INF], [-INF, 5.0, -INF]]
    column_major = np.empty((2, 3), order="F")
    filter_logits([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], top_k=2, out=column_major)
    assert support(column_major).tolist() == [[True, False, True], [False, True, True]]
    with pytest.raises(ValueError, match="shape"):
        filter_logits(np.zeros(3), out=np.zeros(4))
    with pytest.raises(TypeError, match="dtype"):
        filter_logits(np.zeros(3), out=np.zeros(3, dtype=np.float32))


# ---------------------------------------------------------------------------
# Bad input: each case is its own test, for the kernels and for the reference
# ---------------------------------------------------------------------------

IMPLS = {
    "compiled": (sample, sample_logits, filter_logits),
    "reference": (ref.sample, ref.sample_logits, ref.filter_logits),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "weights, match",
    [
        ([0.5, math.nan, 0.5], r"weights\[1\] is nan"),
        ([0.5, INF, 0.5], r"weights\[1\] is inf"),
        ([0.5, -INF, 0.5], r"weights\[1\] is -inf"),
        ([0.5, -0.1, 0.5], r"weights\[1\] is -0.1"),
        ([[1.0, 2.0], [1.0, -2.0]], r"weights\[1, 1\] is -2.0"),
        ([0.0, 0.0, 0.0], "all zero"),
        ([[1.0, 2.0], [0.0, 0.0]], r"all zero \(row 1\)"),
        ([], "empty"),
        ([[]], "empty"),
        (1.0, r"shape \(V,\) or \(B, V\)"),
        ([[[1.0]]], r"shape \(V,\) or \(B, V\)"),
        ([1.7e308, 1.7e308], "overflows"),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "negative",
        "negative-2d",
        "zeros",
        "zeros-row",
        "empty",
        "empty-2d",
        "scalar",
        "3d",
        "sum-overflows",
    ],
)
def test_bad_weights(impl, weights, match):
    with pytest.raises(ValueError, match=match):
        IMPLS[impl][0](weights)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("which", [1, 2], ids=["sample_logits", "filter_logits"])
@pytest.mark.parametrize(
    "logits, match",
    [
        ([-INF, -INF, -INF], "every logit is -inf"),
        ([[0.0, 1.0], [-INF, -INF]], r"every logit is -inf \(row 1\)"),
        ([-INF, math.nan, 0.0], r"logits\[1\] is nan"),
        ([-INF, INF, 0.0], r"logits\[1\] is inf"),
        ([[0.0, 1.0], [0.0, INF]], r"logits\[1, 1\] is inf"),
        ([], "empty"),
    ],
    ids=["all-masked", "row-masked", "nan", "+inf", "+inf-2d", "empty"],
)
def test_bad_logits(impl, which, logits, match):
    with pytest.raises(ValueError, match=match):
        IMPLS[impl][which](logits)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("which", [1, 2], ids=["sample_logits", "filter_logits"])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(temperature=-0.5), ValueError, "temperature must be finite and >= 0"),
        (dict(temperature=math.nan), ValueError, "temperature"),
        (dict(temperature=INF), ValueError, "temperature"),
        (dict(temperature="1"), TypeError, "temperature must be a real number"),
        (dict(top_k=0), ValueError, "top_k must be >= 1, got 0"),
        (dict(top_k=-3), ValueError, "top_k must be >= 1"),
        (dict(top_k=2.0), TypeError, "top_k must be an integer"),
        (dict(top_k="2"), TypeError, "top_k must be an integer"),
        (dict(top_k=True), TypeError, "top_k must be an integer"),
        (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(top_p=-0.2), ValueError, "top_p"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(top_p=math.nan), ValueError, "top_p"),
        (dict(top_p="0.5"), TypeError, "top_p must be a real number"),
        (dict(min_p=-0.1), ValueError, r"min_p must be in \[0, 1\]"),
        (dict(min_p=1.01), ValueError, "min_p"),
        (dict(min_p=math.nan), ValueError, "min_p"),
    ],
    ids=[
        "temperature<0",
        "temperature-nan",
        "temperature-inf",
        "temperature-str",
        "top_k=0",
        "top_k<0",
        "top_k-float",
        "top_k-str",
        "top_k-bool",
        "top_p=0",
        "top_p<0",
        "top_p>1",
        "top_p-nan",
        "top_p-str",
        "min_p<0",
        "min_p>1",
        "min_p-nan",
    ],
)
def test_bad_filter_arguments(impl, which, kwargs, error, match):
    with pytest.raises(error, match=match):
        IMPLS[impl][which]([1.0, 2.0, 3.0], **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("which", [0, 1], ids=["sample", "sample_logits"])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(size=-1), ValueError, "size must not be negative"),
        (dict(size=(2, -1)), ValueError, "size must not be negative"),
        (dict(size=2.5), TypeError, "size must be an int or a tuple of ints"),
        (dict(size="3"), TypeError, "size"),
        (dict(rng="seed"), TypeError, "rng must be None, an int seed or a"),
        (dict(rng=1.5), TypeError, "rng must be"),
        (dict(rng=True), TypeError, "rng must be"),
        (dict(rng=-1), ValueError, "seed must be >= 0"),
    ],
    ids=[
        "size<0",
        "size-tuple<0",
        "size-float",
        "size-str",
        "rng-str",
        "rng-float",
        "rng-bool",
        "rng<0",
    ],
)
def test_bad_size_and_rng(impl, which, kwargs, error, match):
    with pytest.raises(error, match=match):
        IMPLS[impl][which]([0.2, 0.3, 0.5], **kwargs)


@pytest.mark.parametrize(
    "rng",
    [np.random.RandomState(0), random.Random(0), np.random.PCG64(0)],
    ids=["RandomState", "random.Random", "BitGenerator"],
)
def test_other_rng_types_are_type_errors(rng):
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        sample(BLOG_PROBS, rng=rng)
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        sample_logits(BLOG_PROBS, rng=rng)


def test_reference_rejects_numpy_generators():
    with pytest.raises(TypeError, match=r"random\.Random"):
        ref.sample(BLOG_PROBS, rng=np.random.default_rng(0))


def test_numpy_integer_seed():
    assert np.array_equal(
        sample(BLOG_PROBS, size=20, rng=np.int64(4)), sample(BLOG_PROBS, size=20, rng=4)
    )


def test_bad_row_leaves_the_generator_untouched():
    g = np.random.default_rng(0)
    before = g.bit_generator.state
    with pytest.raises(ValueError):
        sample([[1.0, 2.0], [1.0, math.nan]], size=10, rng=g)
    with pytest.raises(ValueError):
        sample_logits([[1.0, 2.0], [-INF, -INF]], size=10, rng=g)
    assert g.bit_generator.state == before


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def test_generator_shared_by_threads():
    g = np.random.default_rng(11)
    logits = np.log(np.tile(BLOG_PROBS, (4, 1)))
    results, errors = [[], []], []

    def work(slot):
        try:
            for _ in range(300):
                results[slot].append(sample_logits(logits, top_p=0.95, size=50, rng=g))
                results[slot].append(sample(BLOG_PROBS, size=50, rng=g))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    draws = np.concatenate([t.ravel() for slot in results for t in slot])
    assert draws.size == 2 * 300 * (4 * 50 + 50)
    assert ((draws >= 0) & (draws < 5)).all()
    # Every double was used once: the Generator advanced by exactly the number of draws.
    h = np.random.default_rng(11)
    h.random(draws.size)
    assert g.bit_generator.state == h.bit_generator.state


@pytest.mark.parametrize(
    "rng",
    ["seed", 1.5, True, -1, np.random.RandomState(0)],
    ids=["str", "float", "bool", "negative", "RandomState"],
)
def test_as_generator_rejects_what_the_kernels_reject(rng):
    # The model's generation loop turns rng into a Generator once, with the kernels'
    # own as_generator: same rules, same messages.
    from tinyllm._compiled import as_generator

    with pytest.raises((TypeError, ValueError)) as kernel:
        sample(BLOG_PROBS, rng=rng)
    with pytest.raises(kernel.type) as helper:
        as_generator(rng, "sample")
    assert str(helper.value) == str(kernel.value)


def test_as_generator_accepts_seeds_and_generators():
    from tinyllm._compiled import as_generator

    generator = np.random.default_rng(3)
    assert as_generator(generator, "f") is generator
    assert isinstance(as_generator(None, "f"), np.random.Generator)
    weights = [0.1, 0.2, 0.3, 0.4]
    for seed in (0, np.int64(7)):
        ours = sample(weights, size=20, rng=as_generator(seed, "f"))
        assert np.array_equal(ours, sample(weights, size=20, rng=seed))
    with pytest.raises(ValueError, match="f: an rng seed must be >= 0"):
        as_generator(-1, "f")
