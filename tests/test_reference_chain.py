"""Issue 11's decoding chain (logit_bias, penalties, top-n-sigma, top-k, top-p, min-p,
typical-p, exact integer masses) on both implementations: tinyllm.reference and the
compiled tinyllm.sample_logits / filter_logits.

- the peers' own published cases: Hugging Face transformers'
  tests/generation/test_logits_process.py and llama.cpp's tests/test-sampling.cpp,
  ported (inputs and expected kept sets or probabilities), with our documented
  differences (ties to the lower index, exact masses, -inf never kept) asserted as ours;
- properties (hypothesis): min_tokens_to_keep, masks, prefixes of the ranking, greedy
  after bias and penalties, what the penalties touch;
- argument errors for every new keyword;
- draws: the rule of step 5 exactly, and chi-square tests against softmax(filter_logits).

Every test takes ``impl``: "reference" or "compiled", the same expectations for both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.reference import sampling as ref

from conftest import (
    P_THRESHOLD,
    chi_square_pvalue,
    exact_weights,
    softmax64,
)

INF = math.inf
NAN = math.nan

deterministic = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Impl:
    """One implementation behind one interface: lists (or arrays) in, lists out."""

    def __init__(self, name: str):
        self.name = name
        compiled = name == "compiled"
        self.sample_logits = tinyllm.sample_logits if compiled else ref.sample_logits
        self.filter_logits = tinyllm.filter_logits if compiled else ref.filter_logits

    def __repr__(self) -> str:
        return self.name

    def _input(self, logits):
        # The reference takes plain lists (a float32 array's values, exactly).
        return logits if self.name == "compiled" else np.asarray(logits).tolist()

    def rng(self, seed: int):
        return np.random.default_rng(seed) if self.name == "compiled" else random.Random(seed)

    def uniforms(self, seed: int, n: int) -> list[float]:
        """The first n doubles of the stream ``rng(seed)`` (one per draw)."""
        if self.name == "compiled":
            return np.random.default_rng(seed).random(n).tolist()
        stream = random.Random(seed)
        return [stream.random() for _ in range(n)]

    def filtered(self, logits, **options) -> list:
        """filter_logits as (nested) lists of Python floats."""
        out = self.filter_logits(self._input(logits), **options)
        return out.tolist() if self.name == "compiled" else out

    def kept(self, logits, **options) -> list:
        """The kept positions (a list per row for 2-D logits)."""
        out = self.filtered(logits, **options)
        if out and isinstance(out[0], list):
            return [[i for i, v in enumerate(row) if v != -INF] for row in out]
        return [i for i, v in enumerate(out) if v != -INF]

    def draws(self, logits, size=None, seed=0, **options):
        tokens = self.sample_logits(self._input(logits), size=size, rng=self.rng(seed), **options)
        return tokens.tolist() if isinstance(tokens, np.ndarray) else tokens


@pytest.fixture(params=["reference", "compiled"])
def impl(request) -> Impl:
    return Impl(request.param)


def probabilities(impl: Impl, logits, **options) -> list[float]:
    """softmax(filter_logits(...)): the distribution the draws come from (0 off the support)."""
    return softmax64(impl.filtered(logits, **options)).tolist()


def ranking(y) -> list[int]:
    """Best first: higher logit first, ties to the lower index; -inf left out."""
    return sorted((i for i, v in enumerate(y) if v != -INF), key=lambda i: (-y[i], i))


# ===========================================================================
# Hugging Face transformers: tests/generation/test_logits_process.py
# (class LogitsProcessorTest). Its scores are float32 torch tensors.
# ===========================================================================


def test_transformers_top_k_dist_warper(impl):
    # test_top_k_dist_warper: a ramp, and a ramp whose first half is lifted by V.
    ramp = [[float(i) for i in range(10)], [float(i + 10 * (i < 5)) for i in range(10)]]
    assert impl.kept(ramp, top_k=3) == [[7, 8, 9], [2, 3, 4]]
    # "min_tokens overwrites k: 3 tokens are kept"
    ramp5 = [[float(i) for i in range(5)]] * 2
    assert impl.kept(ramp5, top_k=1, min_tokens_to_keep=3) == [[2, 3, 4]] * 2
    # "uniform dist is not changed": transformers keeps every token tied with the k-th;
    # ours keeps exactly max(k, min_tokens_to_keep) = 3, ties to the lower index.
    uniform = [[0.2] * 5] * 2
    assert impl.kept(uniform, top_k=1, min_tokens_to_keep=3) == [[0, 1, 2]] * 2


def test_transformers_top_p_dist_warper(impl):
    # test_top_p_dist_warper: "keep min num values so that sum is >= top_p".
    probs = [[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]]
    dist32 = np.log(np.array(probs, dtype=np.float32))
    assert impl.kept(dist32, top_p=0.8) == [[0, 3], [1, 2, 3]]
    expected = [[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]]
    np.testing.assert_allclose(np.exp(impl.filtered(dist32, top_p=0.8)), expected, atol=1e-3)
    # Row 0 sits on the boundary (0.5 + 0.3 = 0.8 in real numbers). In float64 its exact
    # mass falls short of 0.8 * W by rounding, and the next token joins: of the two
    # tied 0.1s, the lower index.
    assert impl.kept(np.log(probs), top_p=0.8) == [[0, 1, 3], [1, 2, 3]]
    # "second batch would keep only 1, but due to min_tokens_to_keep=2 keeps 2"
    ramp = [[float(i - 5) for i in range(10)], [100.0 * (i - 5) for i in range(10)]]
    assert [len(row) for row in impl.kept(ramp, top_p=0.9, min_tokens_to_keep=2)] == [3, 2]
    assert [len(row) for row in impl.kept(ramp, top_p=0.9)] == [3, 1]


def test_transformers_min_p_dist_warper(impl):
    # test_min_p_dist_warper: "two tokens should be kept (0.047 > 0.9*0.05=0.045)",
    # "all should be kept -- no high-probability token", "only the first token".
    probs = [[0.9, 0.0274, 0.047, 0.0274], [0.15, 0.3, 0.3, 0.25], [0.97, 0.01, 0.01, 0.01]]
    dist = np.log(np.array(probs, dtype=np.float32))
    assert impl.kept(dist, min_p=0.05) == [[0, 2], [0, 1, 2, 3], [0]]
    ramp = [[float(i - 5) for i in range(10)], [100.0 * (i - 5) for i in range(10)]]
    assert [len(row) for row in impl.kept(ramp, min_p=0.9, min_tokens_to_keep=2)] == [2, 2]


def test_transformers_typical_dist_warper(impl):
    # test_typical_dist_warper
    dist = np.log(np.array([[0.97, 0.01, 0.01, 0.01], [0.4, 0.2, 0.2, 0.2]], dtype=np.float32))
    assert impl.kept(dist, typical_p=0.5) == [[0], [1, 2, 3]]
    # "uniform dist is not changed": transformers keeps every token tied in distance
    # with the last one it needs; ours keeps the shortest prefix (0.6 >= 0.5), at least
    # min_tokens_to_keep = 3 of them, ties to the lower index.
    assert impl.kept([[0.2] * 5] * 2, typical_p=0.5, min_tokens_to_keep=3) == [[0, 1, 2]] * 2
    # "second batch would keep only 1, but due to min_tokens_to_keep=2 keeps 2"
    ramp = [[float(i - 5) for i in range(10)], [100.0 * (i - 5) for i in range(10)]]
    assert [len(row) for row in impl.kept(ramp, typical_p=0.7, min_tokens_to_keep=2)] == [2, 2]
    assert [len(row) for row in impl.kept(ramp, typical_p=0.7)] == [2, 1]


def test_transformers_repetition_penalty_dist_process(impl):
    # test_repetition_penalty_dist_process: input_ids [[0, 1], [5, 0]], penalty 2.0 on
    # uniform scores 1/V with scores[0, 0] = -1/V and scores[1, 5] = 4/V.
    scores = [[0.1] * 10 for _ in range(2)]
    scores[0][0] = -0.1
    scores[1][5] = 0.4
    out = impl.filtered(scores, repetition_penalty=2.0, history=[[0, 1], [5, 0]])
    assert (out[0][0], out[0][1]) == (-0.1 * 2, 0.1 / 2)
    assert (out[1][0], out[1][5]) == (0.1 / 2, 0.4 / 2)
    # The tokens outside the history are untouched.
    assert [v for i, v in enumerate(out[0]) if i not in (0, 1)] == [0.1] * 8
    assert [v for i, v in enumerate(out[1]) if i not in (0, 5)] == [0.1] * 8


# ===========================================================================
# llama.cpp: tests/test-sampling.cpp. Its sampler_tester takes probabilities and
# builds logits = logf(p) (float32); the expected probabilities are those after
# llama_sampler_init_dist, renormalised, within 1e-5 (its check()). llama.cpp lists
# them in its own (sorted) order; here they are written per token index.
# ===========================================================================

LLAMA_PROBS = [0.1, 0.2, 0.3, 0.4]


def llama_logits(probs):
    return np.log(np.array(probs, dtype=np.float32))


def f32(value: float) -> float:
    """A float literal of llama.cpp's (``0.7f``) as the double it is."""
    return float(np.float32(value))


def assert_llama_probs(impl, probs, expected, **options):
    got = probabilities(impl, llama_logits(probs), **options)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "k, expected",
    [
        (1, [0, 0, 0, 1]),
        (3, [0, 0.22222, 0.33333, 0.44444]),
        (4, [0.1, 0.2, 0.3, 0.4]),
        (None, [0.1, 0.2, 0.3, 0.4]),  # llama.cpp's k = 0 (off) is our None; 0 is an error
    ],
)
def test_llama_cpp_top_k(impl, k, expected):
    assert_llama_probs(impl, LLAMA_PROBS, expected, top_k=k)


@pytest.mark.parametrize(
    "p, expected",
    [
        (5e-324, [0, 0, 0, 1]),  # llama.cpp's p = 0 keeps one token; ours must be > 0
        (f32(0.7), [0, 0, 0.428571, 0.571429]),
        (f32(0.8), [0, 0.22222, 0.33333, 0.44444]),
        (1.0, [0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_llama_cpp_top_p(impl, p, expected):
    assert_llama_probs(impl, LLAMA_PROBS, expected, top_p=p)


@pytest.mark.parametrize(
    "q, expected",
    [
        (0.00, [0.1, 0.2, 0.3, 0.4]),
        (0.24, [0.1, 0.2, 0.3, 0.4]),
        (0.26, [0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
        (0.49, [0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
        (0.51, [0, 0, 0.3 / 0.7, 0.4 / 0.7]),
        (0.74, [0, 0, 0.3 / 0.7, 0.4 / 0.7]),
        (0.76, [0, 0, 0, 1]),
        (1.00, [0, 0, 0, 1]),
    ],
)
def test_llama_cpp_min_p(impl, q, expected):
    assert_llama_probs(impl, LLAMA_PROBS, expected, min_p=f32(q))


def test_llama_cpp_min_p_above_one_is_an_error(impl):
    # llama.cpp's test_min_p with 1.05 keeps the top token; min_p is in [0, 1] here.
    with pytest.raises(ValueError, match="min_p"):
        impl.filtered(llama_logits(LLAMA_PROBS), min_p=1.05)


def test_llama_cpp_typical(impl):
    # test_typical (llama.cpp checks the probabilities before renormalising: 0.97 and
    # 0.2, 0.2, 0.2; these are the renormalised ones).
    assert_llama_probs(impl, [0.97, 0.01, 0.01, 0.01], [1, 0, 0, 0], typical_p=0.5)
    assert_llama_probs(impl, [0.4, 0.2, 0.2, 0.2], [0, 1 / 3, 1 / 3, 1 / 3], typical_p=0.5)


@pytest.mark.parametrize(
    "last_tokens, expected, repeat, frequency, presence",
    [
        ([0], [0, 0.25, 0.25, 0.25, 0.25], 50.0, 0.0, 0.0),
        ([0, 1, 2], [0, 0, 0, 0.5, 0.5], 50.0, 0.0, 0.0),
        ([0, 1, 2, 0, 0], [0, 0, 0, 0.5, 0.5], 50.0, 0.0, 0.0),
        ([0], [0.000011, 0.249997, 0.249997, 0.249997, 0.249997], 1.0, 5.0, 5.0),
        ([0, 1, 2], [0.000023, 0.000023, 0.000023, 0.499966, 0.499966], 1.0, 5.0, 5.0),
        ([0, 1, 2, 0, 0], [0.000000, 0.000023, 0.000023, 0.499977, 0.499977], 1.0, 5.0, 5.0),
    ],
)
def test_llama_cpp_penalties(impl, last_tokens, expected, repeat, frequency, presence):
    # test_penalties: the window is the whole history (penalty_last_n = its length).
    options = dict(
        repetition_penalty=repeat,
        frequency_penalty=frequency,
        presence_penalty=presence,
        history=last_tokens,
    )
    for last_n in (len(last_tokens), None):
        assert_llama_probs(impl, [0.2] * 5, expected, penalty_last_n=last_n, **options)


@pytest.mark.parametrize(
    "n, expected",
    [
        (1.0, [0, 0, 0.428571, 0.571429]),
        # llama.cpp: "top_n_sigma == 0 now represents a no-op" (PR 13345). Here None is
        # off and n = 0 keeps s_i >= -0 * sigma: the top token (and its ties) alone.
        (0.0, [0, 0, 0, 1]),
        (3.0, [0.1, 0.2, 0.3, 0.4]),
    ],
)
def test_llama_cpp_top_n_sigma(impl, n, expected):
    assert_llama_probs(impl, LLAMA_PROBS, expected, top_n_sigma=n)
    assert_llama_probs(impl, LLAMA_PROBS, [0.1, 0.2, 0.3, 0.4], top_n_sigma=None)


def llama_queue_expectation(sequence, top_k, top_p, min_p, n_vocab=10_000):
    """(size, smallest kept token) as test_sampler_queue computes them (float32 products)."""
    single = np.float32  # llama.cpp computes these in float
    size, min_token = n_vocab, 0
    for step in sequence:
        if step == "k":
            size, min_token = min(size, top_k), max(min_token, n_vocab - top_k)
        elif step == "p":
            divisor = n_vocab * (n_vocab - 1) // 2 - min_token * (min_token - 1) // 2
            target = math.ceil(single(single(top_p) * single(divisor)))
            min_token, size, cumsum = n_vocab, 0, 0
            while True:  # at least one token
                min_token -= 1
                size += 1
                cumsum += min_token
                if cumsum >= target:
                    break
        elif step == "m":
            expected = math.ceil(single((single(1.0) - single(min_p)) * single(n_vocab)))
            size = min(max(expected, 1), size)
            min_token = max(math.floor(single(single(min_p) * single(n_vocab))), 1)
            min_token = min(max(min_token, n_vocab - size), n_vocab - 1)
    return size, min_token


@pytest.mark.parametrize(
    "sequence, top_k, top_p, min_p",
    [
        ("k", 1, 1.0, 1.0),
        ("k", 100, 1.0, 1.0),
        ("p", 10_000, 0.0003, 1.0),
        ("p", 10_000, 0.8, 1.0),
        ("m", 10_000, 1.0, 9997.9 / 9999.0),
        ("m", 10_000, 1.0, 0.1),
        ("kp", 100, 0.8, 0.1),
        ("pm", 100, 0.8, 0.1),
        ("kpm", 100, 0.8, 0.1),
    ],
)
def test_llama_cpp_sampler_queue(impl, sequence, top_k, top_p, min_p):
    # test_sampler_queue: logits logf(i) for i < 10 000, so P(i) is proportional to i.
    # Only the orders our chain runs in (top-k, then top-p, then min-p).
    with np.errstate(divide="ignore"):
        logits = np.log(np.arange(10_000, dtype=np.float32))  # token 0: -inf
    options = {}
    if "k" in sequence:
        options["top_k"] = top_k
    if "p" in sequence:
        options["top_p"] = f32(top_p)
    if "m" in sequence:
        options["min_p"] = f32(min_p)
    kept = impl.kept(logits, **options)
    size, min_token = llama_queue_expectation(sequence, top_k, top_p, min_p)
    assert (len(kept), kept[0], kept[-1]) == (size, min_token, 9999)
    assert kept == list(range(min_token, 10_000))


def test_llama_cpp_sampler_queue_never_keeps_a_mask(impl):
    # test_sampler_queue("k", top_k=10 000) and ("m", min_p=1e-12) expect 10 000 tokens:
    # llama.cpp counts token 0 (logf(0) = -inf, probability 0). A -inf is never kept here.
    with np.errstate(divide="ignore"):
        logits = np.log(np.arange(10_000, dtype=np.float32))
    assert impl.kept(logits, top_k=10_000) == list(range(1, 10_000))
    assert impl.kept(logits, min_p=f32(1e-12)) == list(range(1, 10_000))


# ===========================================================================
# The chain's own semantics, case by case
# ===========================================================================


def test_logit_bias_adds_then_the_penalties_apply(impl):
    # Bias first: 1 - 2 = -1, then the repetition penalty multiplies a logit <= 0.
    out = impl.filtered([1.0, 0.5], logit_bias={0: -2.0}, repetition_penalty=2.0, history=[0])
    assert out == [-2.0, 0.5]
    out = impl.filtered([1.0, 0.5, 0.25], logit_bias={2: 0.5, 1: -0.25})
    assert out == [1.0, 0.25, 0.75]


def test_logit_bias_minus_inf_bans_a_token(impl):
    x = [3.0, 1.0, 2.0]
    assert impl.kept(x, logit_bias={0: -INF}) == [1, 2]
    assert impl.kept(x, logit_bias={0: -INF}, top_k=3, min_tokens_to_keep=3) == [1, 2]
    assert impl.draws(x, temperature=0, logit_bias={0: -INF}) == 2
    assert set(impl.draws(x, size=2000, seed=1, logit_bias={0: -INF})) == {1, 2}


def test_repetition_penalty_divides_positive_and_multiplies_the_rest(impl):
    x = [-1.0, 0.0, 2.0, 3.0]
    assert impl.filtered(x, repetition_penalty=2.0, history=[0, 1, 2]) == [-2.0, 0.0, 1.0, 3.0]
    # r < 1 rewards: the other way round.
    assert impl.filtered(x, repetition_penalty=0.5, history=[0, 2]) == [-0.5, 0.0, 4.0, 3.0]


def test_presence_and_frequency_penalties(impl):
    # y_t - (c_t * frequency + presence): token 0 seen 3 times, token 1 once.
    x = [1.0, 1.0, 1.0, 1.0]
    out = impl.filtered(x, frequency_penalty=0.5, presence_penalty=0.25, history=[0, 0, 1, 0])
    assert out == [1.0 - (3 * 0.5 + 0.25), 1.0 - (0.5 + 0.25), 1.0, 1.0]
    # Negative penalties reward.
    assert impl.filtered(x, presence_penalty=-1.0, history=[3]) == [1.0, 1.0, 1.0, 2.0]


def test_the_penalty_is_one_fused_multiply_add(impl):
    # c * frequency + presence rounded once: 3 * 0.2 - 0.3 is 0.30000000000000004; a
    # product rounded first, then a sum, would give 0.3000000000000001.
    assert ref.fma(3.0, 0.2, -0.3) == 0.30000000000000004 != 3.0 * 0.2 - 0.3
    options = dict(frequency_penalty=0.2, presence_penalty=-0.3, history=[0, 0, 0])
    assert impl.filtered([0.0, 0.0], **options) == [-0.30000000000000004, 0.0]


@pytest.mark.parametrize(
    "last_n, penalised",
    [
        (None, {0, 1, 2, 3}),
        (64, {0, 1, 2, 3}),
        (7, {0, 1, 2, 3}),  # longer than the history, shorter than twice its length
        (5, {0, 1, 2, 3}),
        (4, {0, 1, 2, 3}),
        (3, {1, 2, 3}),
        (1, {3}),
        (0, set()),
    ],
)
def test_penalty_last_n_is_the_window(impl, last_n, penalised):
    x = [0.0] * 5
    out = impl.filtered(x, presence_penalty=1.0, penalty_last_n=last_n, history=[0, 1, 2, 3])
    assert {i for i, v in enumerate(out) if v != 0.0} == penalised


def test_penalties_default_window_is_64(impl):
    history = [0] + [1] * 64
    out = impl.filtered([0.0, 0.0, 0.0], presence_penalty=1.0, history=history)
    assert out == [0.0, -1.0, 0.0]  # token 0 left the window of the last 64


def test_history_per_row_for_2d_logits(impl):
    x = [[0.0, 0.0, 0.0]] * 2
    out = impl.filtered(x, frequency_penalty=1.0, history=[[0, 0, 1], [2]])
    assert out == [[-2.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
    # One sequence applies to every row.
    assert impl.filtered(x, frequency_penalty=1.0, history=[1]) == [[0.0, -1.0, 0.0]] * 2
    assert impl.filtered(x, frequency_penalty=1.0, history=[[], [1]]) == [
        [0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0],
    ]


def test_history_may_be_an_array_a_tuple_or_a_range(impl):
    x = [0.0] * 4
    expected = impl.filtered(x, frequency_penalty=1.0, history=[0, 1, 1])
    assert impl.filtered(x, frequency_penalty=1.0, history=(0, 1, 1)) == expected
    assert impl.filtered(x, frequency_penalty=1.0, history=np.array([0, 1, 1])) == expected
    assert impl.filtered(x, frequency_penalty=1.0, history=np.array([0, 1, 1], np.int32)) == (
        expected
    )
    assert impl.filtered(x, presence_penalty=1.0, history=range(2)) == [-1.0, -1.0, 0.0, 0.0]
    assert impl.filtered(x, frequency_penalty=1.0, history=[]) == x


def test_masked_token_stays_masked_under_the_penalties(impl):
    # -inf - (c * f + p) with c * f + p = -inf would be NaN: a -inf stays -inf.
    x = [-INF, 0.0]
    huge = dict(presence_penalty=-1e308, frequency_penalty=-1e308)
    assert impl.filtered(x, history=[0], **huge) == [-INF, 0.0]
    assert impl.filtered(x, history=[0], repetition_penalty=3.0) == [-INF, 0.0]


def test_temperature_scales_after_bias_and_penalties(impl):
    out = impl.filtered([1.0, 2.0], temperature=2.0, logit_bias={0: 1.0}, history=[1],
                        presence_penalty=0.5)  # fmt: skip
    assert out == [(1.0 + 1.0) / 2.0, (2.0 - 0.5) / 2.0]


def test_greedy_after_bias_and_penalties(impl):
    x = [1.0, 3.0, 2.0]
    assert impl.draws(x, temperature=0) == 1
    assert impl.draws(x, temperature=0, logit_bias={2: 1.5}) == 2
    assert impl.draws(x, temperature=0, repetition_penalty=4.0, history=[1]) == 2
    # The filters do not apply at temperature 0; filter_logits keeps y, unscaled.
    options = dict(temperature=0, logit_bias={0: 5.0}, typical_p=0.1, top_n_sigma=0.0)
    assert impl.filtered(x, **options) == [6.0, -INF, -INF]
    # Ties: the lowest index.
    assert impl.draws([2.0, 1.0, 2.0], temperature=0, logit_bias={1: 1.0}, size=3) == [0, 0, 0]


def test_top_n_sigma_boundary(impl):
    # s = [0, -2]: mean -1, sigma exactly 1; n = 2 reaches -2 (>=), just below 2 does not.
    assert impl.kept([0.0, -2.0], top_n_sigma=2.0) == [0, 1]
    assert impl.kept([0.0, -2.0], top_n_sigma=math.nextafter(2.0, 0.0)) == [0]
    assert impl.kept([0.0, -2.0], top_n_sigma=0.0) == [0]
    # Masked tokens take no part in the mean and the deviation.
    assert impl.kept([0.0, -INF, -2.0, -INF], top_n_sigma=2.0) == [0, 2]
    # min_tokens_to_keep: the best-ranked of the set before the filter.
    assert impl.kept([0.0, -2.0, -1.0], top_n_sigma=0.0, min_tokens_to_keep=2) == [0, 2]


def test_min_p_is_a_weight_at_least_min_p_times_the_top_ones(impl):
    # w_i / 2**K is the probability relative to the top token's (whose weight is 2**K):
    # min_p = w_i / 2**K keeps token i, the next double up removes it.
    x = [0.0, -0.7, -1.3, 0.0]
    bits = 52  # V = 4: K = min(52, 63 - 3)
    for i in (1, 2):
        q = round(ref.filter_exp(x[i]) * 2.0**bits) / 2.0**bits
        assert i in impl.kept(x, min_p=q)
        assert i not in impl.kept(x, min_p=math.nextafter(q, 1.0))
    assert impl.kept(x, min_p=1.0) == [0, 3]


def test_min_p_uses_filter_exp_bit_for_bit(impl):
    # filter_exp(-0.93) is one ulp above the correctly rounded exp(-0.93) (which libm's
    # exp gives), and its 52-bit weight one above libm's: min_p at that weight keeps the
    # token only with the spec's exponential.
    assert ref.filter_exp(-0.93) == 0.39455371037160114
    weight = round(ref.filter_exp(-0.93) * 2.0**52)
    assert weight == round(math.exp(-0.93) * 2.0**52) + 1
    q = weight / 2.0**52
    assert impl.kept([0.0, -0.93], min_p=q) == [0, 1]
    assert impl.kept([0.0, -0.93], min_p=math.nextafter(q, 1.0)) == [0]


def test_top_p_reaching_the_mass_exactly(impl):
    # Equal logits: w = 2**52 each, W = 2**55 for 8 tokens, and p = j / 8 makes
    # p * W exactly the mass of j tokens: reaching it (>=) is enough.
    for j in range(1, 9):
        assert impl.kept([0.0] * 8, top_p=j / 8) == list(range(j))
        if j < 8:
            assert impl.kept([0.0] * 8, top_p=math.nextafter(j / 8, 1.0)) == list(range(j + 1))
    # typical-p alike: every distance ties, the lower indices first.
    assert impl.kept([0.0] * 8, typical_p=3 / 8) == [0, 1, 2]


def test_top_n_sigma_sums_in_eight_lanes(impl):
    # A boundary found by search: with the 8-lane sums (lane = index mod 8) sigma is
    # 2.399802509235569 and token 0 (s = -6.23) sits exactly on -(n * sigma); a plain
    # running sum gives sigma one ulp lower, and token 0 would be dropped.
    x = [-3.16, -2.21, 3.07, 1.42, 3.06, -1.55, -3.7, -2.08, 2.94, -2.29, -1.54, -0.83]
    n = 2.596046956374131
    assert impl.kept(x, top_n_sigma=n) == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert impl.kept(x, top_n_sigma=math.nextafter(n, 0.0)) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]


def test_top_p_weights_have_k_bits(impl):
    # V = 2048: K = 63 - 12 = 51 bits. A boundary found by search: with 51-bit weights the
    # two best tokens reach p * W; with 52-bit ones (rounded differently) they would not.
    stream = random.Random(9)
    x = [round(stream.uniform(-3.0, 0.0), 3) for _ in range(2048)]
    x[0] = 0.0
    p = 0.0030762829472947323
    assert impl.kept(x, top_p=p) == [0, 961]
    assert impl.kept(x, top_p=math.nextafter(p, 1.0)) == [0, 961, 1172]


def test_min_tokens_to_keep_with_each_filter(impl):
    x = [4.0, 3.0, 2.0, 1.0, 0.0, -INF]
    filters = [
        dict(top_k=1),
        dict(top_p=1e-9),
        dict(min_p=1.0),
        dict(typical_p=1e-9),
        dict(top_n_sigma=0.0),
    ]
    for options in filters:
        assert len(impl.kept(x, **options)) == 1, options
        assert len(impl.kept(x, min_tokens_to_keep=3, **options)) == 3, options
        # More than the finite tokens: all of them, never the -inf.
        assert impl.kept(x, min_tokens_to_keep=10, **options) == [0, 1, 2, 3, 4], options
    # Except typical-p, the kept tokens are the best-ranked ones.
    assert impl.kept(x, top_k=1, min_tokens_to_keep=3) == [0, 1, 2]
    assert impl.kept(x, min_p=1.0, min_tokens_to_keep=3) == [0, 1, 2]


def test_filters_run_in_the_documented_order(impl):
    x = np.log([0.4, 0.3, 0.2, 0.1]).tolist()
    # top-k before top-p: after top-k = 2 the masses are 4/7, 3/7; top-p 0.5 keeps one.
    assert impl.kept(x, top_k=2, top_p=0.5) == [0]
    # top-n-sigma before top-k: its mean and deviation are over all four tokens (it
    # keeps 0 and 1); over top-k's two it would keep token 0 alone.
    assert impl.kept(x, top_n_sigma=1.0, top_k=2) == [0, 1]
    # typical-p last, on the set top-p left: without top-p it drops token 0.
    assert impl.kept(x, typical_p=0.45) == [1, 2]
    assert impl.kept(x, top_p=0.5, typical_p=0.45) == [0]


def test_zero_weight_tokens_are_kept_but_never_drawn(impl):
    # exp(-800) is 0: filter_logits keeps token 1, the draws never pick it.
    x = [0.0, -800.0, -1.0]
    assert impl.kept(x, min_tokens_to_keep=3, top_k=1) == [0, 1, 2]
    assert set(impl.draws(x, size=5000, seed=3, min_tokens_to_keep=3, top_k=1)) == {0, 2}


def test_single_finite_logit_survives_every_filter(impl):
    x = [-INF, 1.5, -INF]
    options = dict(top_k=1, top_p=1e-9, min_p=1.0, typical_p=1e-9, top_n_sigma=0.0)
    assert impl.kept(x, **options) == [1]
    assert impl.draws(x, size=10, **options) == [1] * 10


def test_large_vocabulary_uses_fewer_weight_bits(impl):
    # V >= 2048: K = 63 - V.bit_length() < 52, so that V weights add up below 2**63.
    r = np.random.default_rng(12)
    x = (r.normal(size=3000) * 2).tolist()
    x[5] = max(x) + 1.0
    kept = impl.kept(x, top_p=0.5, typical_p=0.9, min_p=0.01)
    assert 5 in kept
    w = exact_weights(x)
    assert max(w) == 2**51 and sum(w) < 2**63


# ===========================================================================
# Properties
# ===========================================================================

rows = st.lists(
    st.one_of(st.integers(-4, 4).map(float), st.floats(-8, 8), st.just(-INF)),
    min_size=1,
    max_size=12,
).filter(lambda x: any(v != -INF for v in x))

one_filter = st.one_of(
    st.builds(lambda n: {"top_n_sigma": n}, st.sampled_from([0.0, 0.5, 1.0, 3.0])),
    st.builds(lambda k: {"top_k": k}, st.integers(1, 14)),
    st.builds(lambda p: {"top_p": p}, st.sampled_from([1e-12, 0.3, 0.5, 0.9, 0.999])),
    st.builds(lambda q: {"min_p": q}, st.sampled_from([0.01, 0.2, 0.5, 0.9, 1.0])),
    st.builds(lambda t: {"typical_p": t}, st.sampled_from([1e-12, 0.2, 0.5, 0.9, 0.999])),
)


@deterministic
@given(x=rows, options=one_filter, min_keep=st.integers(1, 14))
def test_every_filter_keeps_min_keep_and_no_mask(impl, x, options, min_keep):
    finite = [i for i, v in enumerate(x) if v != -INF]
    kept = impl.kept(x, min_tokens_to_keep=min_keep, **options)
    assert set(kept) <= set(finite)
    assert len(kept) >= min(min_keep, len(finite))
    # At least one token always, and the argmax unless typical-p chose otherwise.
    assert kept
    if "typical_p" not in options:
        assert ranking(x)[0] in kept


@deterministic
@given(
    x=rows,
    options=st.one_of(
        st.builds(lambda k: {"top_k": k}, st.integers(1, 14)),
        st.builds(lambda p: {"top_p": p}, st.floats(1e-9, 1.0)),
    ),
    min_keep=st.integers(1, 4),
    temperature=st.sampled_from([0.25, 1.0, 3.0]),
)
def test_top_k_and_top_p_keep_a_prefix_of_the_ranking(impl, x, options, min_keep, temperature):
    kept = impl.kept(x, temperature=temperature, min_tokens_to_keep=min_keep, **options)
    order = ranking(x)
    assert sorted(order[: len(kept)]) == kept
    if "top_k" in options:
        assert len(kept) == min(max(options["top_k"], min_keep), len(order))


def adjusted(x, logit_bias, history, last_n, repetition, presence, frequency):
    """Steps 1-2 written out, for finite inputs: y = x + bias, then the penalties."""
    y = list(x)
    for t, bias in logit_bias.items():
        y[t] += bias
    window = history if last_n is None else history[max(0, len(history) - last_n) :]
    window = window if last_n != 0 else []
    for t, count in Counter(window).items():
        if repetition != 1.0:
            y[t] = y[t] * repetition if y[t] <= 0 else y[t] / repetition
        y[t] = y[t] - ref.fma(float(count), frequency, presence)
    return y


chain_options = st.fixed_dictionaries(
    {
        "logit_bias": st.dictionaries(st.integers(0, 7), st.integers(-3, 3).map(float), max_size=4),
        "history": st.lists(st.integers(0, 7), max_size=10),
        "penalty_last_n": st.sampled_from([None, 0, 1, 3, 64]),
        "repetition_penalty": st.sampled_from([1.0, 0.5, 1.3, 2.0]),
        "presence_penalty": st.sampled_from([0.0, 0.5, -0.75]),
        "frequency_penalty": st.sampled_from([0.0, 0.25, -0.5]),
    }
)


@deterministic
@given(x=st.lists(st.integers(-4, 4).map(float), min_size=8, max_size=8), options=chain_options)
def test_greedy_is_the_argmax_after_bias_and_penalties(impl, x, options):
    y = adjusted(
        x,
        options["logit_bias"],
        options["history"],
        options["penalty_last_n"],
        options["repetition_penalty"],
        options["presence_penalty"],
        options["frequency_penalty"],
    )
    best = y.index(max(y))
    assert impl.draws(x, temperature=0, **options) == best
    assert impl.filtered(x, temperature=0, top_k=1, **options) == [
        y[i] if i == best else -INF for i in range(8)
    ]
    # At T = 1 without filters, filter_logits is y itself.
    assert impl.filtered(x, **options) == y


@deterministic
@given(
    x=st.lists(st.floats(-20, 20), min_size=8, max_size=8),
    history=st.lists(st.integers(0, 7), max_size=12),
    last_n=st.sampled_from([None, 0, 1, 2, 5, 64]),
    frequency=st.sampled_from([0.125, 0.3, -1.0]),
    presence=st.sampled_from([0.0, 0.7]),
    repetition=st.sampled_from([1.0, 1.5]),
)
def test_penalties_touch_only_the_window(impl, x, history, last_n, frequency, presence, repetition):
    penalties = dict(presence_penalty=presence, repetition_penalty=repetition)
    out = impl.filtered(
        x, history=history, penalty_last_n=last_n, frequency_penalty=frequency, **penalties
    )
    window = history if last_n is None else history[max(0, len(history) - last_n) :]
    window = window if last_n != 0 else []
    changed = {i for i in range(8) if out[i] != x[i]}
    assert changed <= set(window)
    # The frequency penalty counts occurrences in the window.
    counts = Counter(window)
    only_frequency = impl.filtered(
        x, history=history, penalty_last_n=last_n, frequency_penalty=frequency
    )
    assert only_frequency == [x[i] - (counts[i] * frequency + 0.0) if counts[i] else x[i]
                              for i in range(8)]  # fmt: skip


# ===========================================================================
# Argument errors: every new keyword, on sample_logits and filter_logits
# ===========================================================================

X3 = [1.0, 2.0, 3.0]

BAD_ARGUMENTS = [
    # (keyword arguments, error, fragments of the message)
    (dict(typical_p=0.0), ValueError, ["typical_p must be", "0.0"]),
    (dict(typical_p=-0.5), ValueError, ["typical_p must be", "-0.5"]),
    (dict(typical_p=1.5), ValueError, ["typical_p must be", "1.5"]),
    (dict(typical_p=NAN), ValueError, ["typical_p must be", "nan"]),
    (dict(typical_p="0.5"), TypeError, ["typical_p must be a real number", "'0.5'"]),
    (dict(typical_p=True), TypeError, ["typical_p must be a real number", "True"]),
    (dict(typical_p=np.bool_(True)), TypeError, ["typical_p must be a real number"]),
    (dict(top_n_sigma=-1.0), ValueError, ["top_n_sigma must be", "-1.0"]),
    (dict(top_n_sigma=INF), ValueError, ["top_n_sigma must be", "inf"]),
    (dict(top_n_sigma=NAN), ValueError, ["top_n_sigma must be", "nan"]),
    (dict(top_n_sigma="1"), TypeError, ["top_n_sigma must be a real number"]),
    (dict(top_n_sigma=False), TypeError, ["top_n_sigma must be a real number", "False"]),
    (dict(min_tokens_to_keep=0), ValueError, ["min_tokens_to_keep must be >= 1", "0"]),
    (dict(min_tokens_to_keep=-2), ValueError, ["min_tokens_to_keep must be >= 1", "-2"]),
    (dict(min_tokens_to_keep=2**63), ValueError, ["min_tokens_to_keep must be at most"]),
    (dict(min_tokens_to_keep=2.0), TypeError, ["min_tokens_to_keep must be an integer", "2.0"]),
    (dict(min_tokens_to_keep="2"), TypeError, ["min_tokens_to_keep must be an integer"]),
    (dict(min_tokens_to_keep=None), TypeError, ["min_tokens_to_keep must be an integer"]),
    (dict(min_tokens_to_keep=True), TypeError, ["min_tokens_to_keep must be an integer", "True"]),
    (dict(logit_bias=[1.0, 2.0]), TypeError, ["logit_bias must be"]),
    (dict(logit_bias=3.0), TypeError, ["logit_bias must be"]),
    (dict(logit_bias={3: 1.0}), ValueError, ["logit_bias", "position 3", "out of range"]),
    (dict(logit_bias={-1: 1.0}), ValueError, ["logit_bias", "position -1", "out of range"]),
    (dict(logit_bias={1.0: 1.0}), TypeError, ["logit_bias", "1.0"]),
    (dict(logit_bias={"1": 1.0}), TypeError, ["logit_bias", "'1'"]),
    (dict(logit_bias={True: 1.0}), TypeError, ["logit_bias", "True"]),
    (dict(logit_bias={0: NAN}), ValueError, ["logit_bias[0] is nan", "finite, or -inf"]),
    (dict(logit_bias={0: INF}), ValueError, ["logit_bias[0] is inf", "finite, or -inf"]),
    (dict(logit_bias={1: "2"}), TypeError, ["logit_bias[1] must be a real number", "'2'"]),
    (dict(logit_bias={1: True}), TypeError, ["logit_bias[1] must be a real number", "True"]),
    (dict(logit_bias={1: None}), TypeError, ["logit_bias[1] must be a real number"]),
    (dict(repetition_penalty=0.0), ValueError, ["repetition_penalty must be", "0.0"]),
    (dict(repetition_penalty=-1.0), ValueError, ["repetition_penalty must be", "-1.0"]),
    (dict(repetition_penalty=INF), ValueError, ["repetition_penalty must be", "inf"]),
    (dict(repetition_penalty=NAN), ValueError, ["repetition_penalty must be", "nan"]),
    (dict(repetition_penalty=None), TypeError, ["repetition_penalty must be a real number"]),
    (dict(repetition_penalty=True), TypeError, ["repetition_penalty must be a real number"]),
    (dict(presence_penalty=INF), ValueError, ["presence_penalty must be", "inf"]),
    (dict(presence_penalty=-INF), ValueError, ["presence_penalty must be", "-inf"]),
    (dict(presence_penalty=NAN), ValueError, ["presence_penalty must be", "nan"]),
    (dict(presence_penalty="1"), TypeError, ["presence_penalty must be a real number"]),
    (dict(presence_penalty=None), TypeError, ["presence_penalty must be a real number"]),
    (dict(presence_penalty=True), TypeError, ["presence_penalty must be a real number"]),
    (dict(frequency_penalty=INF), ValueError, ["frequency_penalty must be", "inf"]),
    (dict(frequency_penalty=NAN), ValueError, ["frequency_penalty must be", "nan"]),
    (dict(frequency_penalty=b"1"), TypeError, ["frequency_penalty must be a real number"]),
    (dict(frequency_penalty=False), TypeError, ["frequency_penalty must be a real number"]),
    (dict(penalty_last_n=-1), ValueError, ["penalty_last_n must be", "-1"]),
    (dict(penalty_last_n=2**63), ValueError, ["penalty_last_n must be at most"]),
    (dict(penalty_last_n=1.5), TypeError, ["penalty_last_n must be an integer", "1.5"]),
    (dict(penalty_last_n="3"), TypeError, ["penalty_last_n must be an integer"]),
    (dict(penalty_last_n=True), TypeError, ["penalty_last_n must be an integer", "True"]),
    (dict(history=[0, 3]), ValueError, ["history", "position 3", "out of range"]),
    (dict(history=[-1]), ValueError, ["history", "position -1", "out of range"]),
    (dict(history=[0, 1.5]), TypeError, ["history"]),
    (dict(history=["a"]), TypeError, ["history"]),
    (dict(history=[True, False]), TypeError, ["history"]),
    (dict(history="012"), TypeError, ["history"]),
    (dict(history=1), ValueError, ["history must be a 1-D sequence", "shape ()"]),
    (dict(history=np.array([0.0, 1.0])), TypeError, ["history"]),
]


@pytest.mark.parametrize("which", ["sample_logits", "filter_logits"])
@pytest.mark.parametrize(
    "kwargs, error, fragments",
    BAD_ARGUMENTS,
    ids=[f"{next(iter(k))}={next(iter(k.values()))!r}" for k, _, _ in BAD_ARGUMENTS],
)
def test_bad_arguments(impl, which, kwargs, error, fragments):
    with pytest.raises(error) as info:
        getattr(impl, which)(X3, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{which}: "), message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("which", ["sample_logits", "filter_logits"])
def test_bad_history_rows(impl, which):
    call = getattr(impl, which)
    two_rows = [X3, X3]
    with pytest.raises(ValueError, match="history"):
        call(two_rows, history=[[0], [1], [2]])  # three rows of history for two of logits
    with pytest.raises(ValueError, match="position 7"):
        call(two_rows, history=[[0], [1, 7]])
    with pytest.raises(TypeError, match="history"):
        call(two_rows, history=[[0], [1.5]])


@pytest.mark.parametrize("which", ["sample_logits", "filter_logits"])
def test_logits_must_stay_finite_after_bias_and_penalties(impl, which):
    call = getattr(impl, which)
    overflow = r"is \+?inf after logit_bias and the penalties"
    with pytest.raises(ValueError, match=overflow):
        call([1e308, 0.0], logit_bias={0: 1e308})
    with pytest.raises(ValueError, match=overflow):
        call([1e308, 0.0], repetition_penalty=0.5, history=[0])
    with pytest.raises(ValueError, match=overflow):
        call([[0.0, 0.0], [0.0, 0.0]], presence_penalty=-1e308, frequency_penalty=-1e308,
             history=[[], [1]])  # fmt: skip
    banned = "every logit.* is -inf after logit_bias and the penalties"
    with pytest.raises(ValueError, match=banned):
        call([0.0, 1.0], logit_bias={0: -INF, 1: -INF})
    with pytest.raises(ValueError, match=banned) as info:
        call([[0.0, 1.0], [0.0, -INF]], logit_bias={0: -INF}, history=[])
    assert "(row 1)" in str(info.value)


def test_numpy_numbers_are_accepted(impl):
    x = [0.5, 1.5, -1.0, 2.0]
    plain = impl.filtered(
        x,
        top_k=3,
        typical_p=0.9,
        top_n_sigma=2.0,
        min_tokens_to_keep=2,
        logit_bias={1: 0.5},
        repetition_penalty=1.5,
        presence_penalty=0.25,
        frequency_penalty=0.5,
        penalty_last_n=3,
        history=[1, 3, 3],
    )
    numpy = impl.filtered(
        x,
        top_k=np.int64(3),
        typical_p=np.float64(0.9),
        top_n_sigma=np.float64(2.0),
        min_tokens_to_keep=np.int32(2),
        logit_bias={np.int64(1): np.float64(0.5)},
        repetition_penalty=np.float64(1.5),
        presence_penalty=np.float64(0.25),
        frequency_penalty=np.float64(0.5),
        penalty_last_n=np.uint8(3),
        history=[np.int64(1), np.int16(3), 3],
    )
    assert numpy == plain
    # Ints where reals go; 1 switches typical-p off.
    assert impl.filtered(x, typical_p=1, repetition_penalty=1, presence_penalty=0) == x


def test_the_new_keywords_are_keyword_only(impl):
    with pytest.raises(TypeError):
        impl.filter_logits(X3, 1.0, None, None, None, None, 0.5)


# ===========================================================================
# Draws
# ===========================================================================


def expected_draws(logits, uniforms, temperature=1.0, kept=None):
    """Step 5 written out: the first kept i (index order) with float(cum w) > u * float(W);
    the last kept token with w > 0 if none."""
    w = exact_weights(logits, temperature)
    cumulative, running = [], 0
    for i in kept:
        running += w[i]
        cumulative.append(float(running))
    last = max(i for i in kept if w[i] > 0)
    tokens = []
    for u in uniforms:
        target = u * float(running)
        tokens.append(next((i for i, c in zip(kept, cumulative) if c > target), last))
    return tokens


@pytest.mark.parametrize(
    "options",
    [dict(top_k=6), dict(top_p=0.9), dict(temperature=0.7, min_p=0.05, typical_p=0.95)],
    ids=["top_k", "top_p", "min_p+typical"],
)
def test_draws_follow_step_5_exactly(impl, options):
    # Logits out of rank order, with ties and a mask: the cumulative sums run in index
    # order, not in rank order. One uniform per draw, one table for all of a row's draws.
    x = [0.5, 2.0, -1.0, 2.0, 1.0, 0.0, -INF, 1.5, 0.3, -3.0]
    kept = impl.kept(x, **options)
    assert 1 < len(kept) < 9
    for seed in range(40):
        uniforms = impl.uniforms(seed, 8)
        expected = expected_draws(x, uniforms, options.get("temperature", 1.0), kept)
        assert impl.draws(x, size=8, seed=seed, **options) == expected
        assert impl.draws(x, seed=seed, **options) == expected[0]


class FixedStream(random.Random):
    """A random.Random whose random() returns the given doubles, in order."""

    def __init__(self, uniforms):
        super().__init__(0)
        self._uniforms = iter(uniforms)

    def random(self):
        return next(self._uniforms)


def test_reference_draw_at_a_cumulative_boundary():
    # Four equal weights 2**52, W = 2**54: u = j / 4 makes u * W exactly the mass of the
    # first j tokens; the draw is the first token whose cumulative mass is > it.
    x = [0.0, 0.0, -INF, 0.0, 0.0]
    draws = ref.sample_logits(x, size=5, rng=FixedStream([0.0, 0.25, 0.5, 0.75, 0.9]), top_k=4)
    assert draws == [0, 1, 3, 4, 4]
    # The largest u draws the last kept token of positive weight: token 2 (w = 0, as
    # exp(-800) underflows) is kept but never drawn.
    x = [0.0, 0.0, -800.0]
    u = math.nextafter(1.0, 0.0)
    assert ref.sample_logits(x, rng=FixedStream([u]), min_tokens_to_keep=3, top_k=1) == 1


N_DRAWS = 100_000

CHAINS = {
    "typical_p": dict(typical_p=0.6),
    "top_n_sigma": dict(top_n_sigma=1.0),
    "penalties": dict(
        repetition_penalty=1.3,
        presence_penalty=0.4,
        frequency_penalty=0.2,
        history=[3, 3, 7, 1, 3, 12, 7],
        penalty_last_n=6,
    ),
    "logit_bias": dict(logit_bias={0: -INF, 3: 2.0, 7: -1.5, 11: 0.75}),
    "min_tokens_to_keep": dict(top_k=2, min_tokens_to_keep=5),
    "everything": dict(
        temperature=0.8,
        top_k=25,
        top_p=0.97,
        min_p=0.01,
        typical_p=0.9,
        top_n_sigma=2.5,
        logit_bias={2: 1.0},
        repetition_penalty=1.2,
        frequency_penalty=0.1,
        history=[2, 5, 5],
    ),
}


@pytest.mark.parametrize("chain", CHAINS)
def test_draws_follow_the_filtered_distribution(impl, chain):
    options = CHAINS[chain]
    r = np.random.default_rng(50)
    logits = (r.normal(size=40) * 1.5).tolist()
    expected = probabilities(impl, logits, **options)
    assert expected != probabilities(impl, logits), "the chain must change the distribution"
    tokens = impl.draws(logits, size=N_DRAWS, seed=51, **options)
    assert chi_square_pvalue(tokens, expected) > P_THRESHOLD


def test_draws_per_row_with_2d_logits(impl):
    r = np.random.default_rng(52)
    logits = (r.normal(size=(2, 30)) * 1.5).tolist()
    options = dict(typical_p=0.8, frequency_penalty=0.5, history=[[0, 0, 1], [4]])
    tokens = impl.draws(logits, size=N_DRAWS // 2, seed=53, **options)
    filtered = impl.filtered(logits, **options)
    for row in range(2):
        assert chi_square_pvalue(tokens[row], softmax64(filtered[row])) > P_THRESHOLD


# ===========================================================================
# filter_exp and the fused multiply-add (the reference's own)
# ===========================================================================


def test_filter_exp_is_exp():
    assert ref.filter_exp(0.0) == 1.0
    assert ref.filter_exp(-INF) == 0.0
    assert ref.filter_exp(-746.5) == 0.0
    assert ref.filter_exp(-745.0) == 5e-324  # the smallest subnormal, as exp(-745)
    r = random.Random(7)
    for _ in range(5000):
        s = -r.random() * 745.0
        assert ref.filter_exp(s) == pytest.approx(math.exp(s), rel=5e-16, abs=5e-324)
    for s in (-1e-300, -5e-324, -0.5, -math.log(2), -708.4, -709.8):
        assert ref.filter_exp(s) == pytest.approx(math.exp(s), rel=5e-16, abs=5e-324)


def _libm_fma():
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    fma = ctypes.CDLL(name).fma
    fma.restype = ctypes.c_double
    fma.argtypes = [ctypes.c_double] * 3
    return fma


@pytest.mark.skipif(_libm_fma() is None, reason="no C math library to compare with")
def test_exact_fma_is_the_c_fma():
    # The emulation (Pythons before 3.13) rounds a * b + c once, as C's fma does.
    c_fma = _libm_fma()
    r = random.Random(8)
    for _ in range(20_000):
        a = r.uniform(-2.0, 2.0) * 2.0 ** r.randint(-60, 60)
        b = r.uniform(-2.0, 2.0) * 2.0 ** r.randint(-60, 60)
        c = r.uniform(-2.0, 2.0) * 2.0 ** r.randint(-90, 90)
        assert ref._exact_fma(a, b, c) == c_fma(a, b, c), (a, b, c)
    # The case a separate multiply and add gets wrong: the product's rounding error.
    a = 1.0 + 2.0**-30
    assert ref._exact_fma(a, a, -1.0) == c_fma(a, a, -1.0) == 2.0**-29 + 2.0**-60
    assert a * a - 1.0 != 2.0**-29 + 2.0**-60
    # Beyond the largest double: an infinity, as in C (math.fma would raise).
    for a, b, c in [(1e308, 10.0, 0.0), (-1e308, 1.0, -1e308), (1e308, -1e308, 1.0)]:
        assert ref._exact_fma(a, b, c) == ref.fma(a, b, c) == c_fma(a, b, c)


# ===========================================================================
# The compiled chain against the reference, bit for bit (every instruction set)
# ===========================================================================

all_options = st.fixed_dictionaries(
    {
        "temperature": st.sampled_from([0.0, 0.3, 1.0, 2.5]),
        "top_k": st.one_of(st.none(), st.integers(1, 14)),
        "top_p": st.one_of(st.none(), st.sampled_from([1e-12, 0.25, 0.5, 0.9, 1.0])),
        "min_p": st.one_of(st.none(), st.sampled_from([0.0, 0.05, 0.5, 1.0])),
        "typical_p": st.one_of(st.none(), st.sampled_from([1e-9, 0.3, 0.8, 0.99, 1.0])),
        "top_n_sigma": st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.5])),
        "min_tokens_to_keep": st.integers(1, 4),
        "logit_bias": st.dictionaries(
            st.integers(0, 11), st.sampled_from([-INF, -2.5, -0.5, 0.25, 3.0]), max_size=3
        ),
        "repetition_penalty": st.sampled_from([1.0, 0.8, 1.3]),
        "presence_penalty": st.sampled_from([0.0, 0.4, -0.3]),
        "frequency_penalty": st.sampled_from([0.0, 0.2]),
        "penalty_last_n": st.sampled_from([None, 0, 2, 64]),
        "history": st.lists(st.integers(0, 11), max_size=8),
    }
)


@pytest.mark.usefixtures("each_isa")
@deterministic
@given(
    x=st.lists(
        st.one_of(st.floats(-30, 30, width=32), st.integers(-3, 3).map(float), st.just(-INF)),
        min_size=12,
        max_size=12,
    ),
    dtype=st.sampled_from([np.float32, np.float64]),
    options=all_options,
)
def test_compiled_equals_the_reference(x, dtype, options):
    penalized = options["logit_bias"] or (
        options["history"]
        and options["penalty_last_n"] != 0
        and (
            options["repetition_penalty"] != 1.0
            or options["presence_penalty"] != 0.0
            or options["frequency_penalty"] != 0.0
        )
    )
    if penalized:
        # The compiled code rounds a biased or penalised float32 logit to float32 (the
        # row's own dtype; test_filters.py checks it), the reference keeps Python floats.
        dtype = np.float64
    logits = np.array(x, dtype=dtype)
    try:
        expected = ref.filter_logits(logits.tolist(), **options)
    except ValueError:
        with pytest.raises(ValueError):
            tinyllm.filter_logits(logits, **options)
        return
    got = tinyllm.filter_logits(logits, **options)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, np.array(expected, dtype=dtype))
