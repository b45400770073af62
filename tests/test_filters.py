"""The compiled decoding chain (src/kernels/filters.pxi): the same kept sets on every
instruction set and on every distribution a user brings (flat, peaked, tied, masked,
power law; sizes up to 10^5), greedy in one read-only pass, penalties in the
generation loop exactly as in sample_logits, and stop sequences.

Agreement with tinyllm.reference, token for token, is in test_reference_chain.py."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import tinyllm
from tinyllm import TinyLM, TinyLMConfig, filter_logits, sample_logits
from tinyllm._sampling import _filter_exp

from conftest import ISAS

# ---------------------------------------------------------------------------
# Logit families (the benchmark's, tinyllm bench)
# ---------------------------------------------------------------------------


def family(name: str, V: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name.startswith("normal"):
        return rng.normal(0.0, float(name[6:]), V)
    if name == "equal":
        return np.zeros(V)
    if name == "zipf":
        return rng.permutation(-1.1 * np.log(np.arange(1, V + 1)))
    if name == "masked":
        x = rng.normal(0.0, 1.0, V)
        x[rng.random(V) < 0.5] = -np.inf
        x[0] = 0.0 if np.isneginf(x).all() else x[0]
        return x
    if name == "ties":
        return rng.integers(-3, 3, V) * 0.5
    raise ValueError(name)


FAMILIES = ["normal0.3", "normal1", "normal3", "equal", "zipf", "masked", "ties"]
FILTERS = [
    dict(top_k=50),
    dict(top_p=0.9),
    dict(top_p=0.3),
    dict(min_p=0.05),
    dict(typical_p=0.9),
    dict(top_n_sigma=1.0),
    dict(top_p=0.9, min_tokens_to_keep=100),
    dict(min_p=0.9, min_tokens_to_keep=7),
    dict(top_n_sigma=0.0, min_tokens_to_keep=3),
    dict(top_k=1000, top_p=0.95, min_p=0.01, typical_p=0.95, top_n_sigma=2.0),
]


def kept(row) -> np.ndarray:
    return np.flatnonzero(np.isfinite(row))


def ranking(x: np.ndarray) -> np.ndarray:
    """Token indices best first: higher logit, ties to the lower index."""
    return np.lexsort((np.arange(x.size), -x))


# ---------------------------------------------------------------------------
# The filters' exp: the same bits in every build
# ---------------------------------------------------------------------------


def test_filter_exp_same_bits_on_every_isa_and_within_an_ulp():
    rng = np.random.default_rng(0)
    s = np.concatenate(
        [
            -rng.exponential(3.0, 5000),
            -rng.uniform(0.0, 750.0, 2000),
            [0.0, -0.0, -1e-300, -5e-324, -745.13, -745.2, -746.0, -746.0001, -1e300, -np.inf],
        ]
    )
    results = [isa._filter_exp(s) for isa in ISAS]
    for other in results[1:]:
        np.testing.assert_array_equal(other.view(np.int64), results[0].view(np.int64))
    # Within an ulp of exp: against exp in long double where it is wider than double
    # (x86: 64-bit mantissa), else within two of NumPy's (itself within about one).
    wide = np.finfo(np.longdouble).nmant > 52
    exact = np.exp(s.astype(np.longdouble)) if wide else np.exp(s)
    normal = exact > 1e-300
    ulp = np.spacing(exact[normal].astype(np.float64)).astype(np.longdouble)
    error = np.abs(results[0][normal].astype(np.longdouble) - exact[normal]) / ulp
    assert error.max() <= (1.0 if wide else 2.0)
    assert _filter_exp(np.array([0.0]))[0] == 1.0
    assert (_filter_exp(np.array([-746.5, -np.inf])) == 0.0).all()


# ---------------------------------------------------------------------------
# Every family and size: the instruction sets agree, and the kept sets are what
# each filter promises (prefixes of the ranking, at least min_tokens_to_keep)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("V", [5, 300, 5000, 100_000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_isa_keeps_the_same_tokens(name, V, dtype):
    x = family(name, V).astype(dtype)
    for options in FILTERS:
        results = [isa.filter_logits(x, temperature=0.8, **options) for isa in ISAS]
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0], err_msg=str(options))
        got = kept(results[0])
        finite = int(np.isfinite(x).sum())
        floor = min(options.get("min_tokens_to_keep", 1), finite)
        assert floor <= got.size <= finite, options
        if set(options) <= {"top_k", "top_p", "min_tokens_to_keep"}:
            # top-k and top-p keep a prefix of the ranking
            assert set(got) == set(ranking(x)[: got.size]), options
        if set(options) == {"top_k"}:
            assert got.size == min(options["top_k"], finite)


@pytest.mark.parametrize("name", FAMILIES)
def test_top_p_keeps_the_shortest_prefix_with_the_mass(name):
    # The nucleus from the kernel's own weights, checked with NumPy: its mass reaches
    # p, and without its last token it does not.
    V = 20_000
    x = family(name, V, seed=3)
    for p in (0.1, 0.5, 0.9, 0.999):
        got = kept(filter_logits(x, top_p=p))
        order = ranking(x)
        assert set(got) == set(order[: got.size])
        w = np.exp(x - x.max())
        w[~np.isfinite(x)] = 0.0
        mass = np.cumsum(w[order]) / w.sum()
        assert mass[got.size - 1] >= p - 1e-12
        if got.size > 1:
            assert mass[got.size - 2] < p + 1e-12


def test_ties_at_the_boundary_go_to_the_lower_indices():
    x = np.zeros(10_000)
    assert kept(filter_logits(x, top_k=37)).tolist() == list(range(37))
    assert kept(filter_logits(x, top_p=0.25)).tolist() == list(range(2500))
    x[5000:] = 1.0  # two levels: the top half first, then the low half by index
    assert kept(filter_logits(x, top_k=5003)).tolist() == list(range(3)) + list(range(5000, 10_000))


def test_filters_on_rows_of_a_batch_are_the_rows_alone():
    x = np.stack([family(n, 3000, seed=i) for i, n in enumerate(FAMILIES)])
    for options in FILTERS:
        batch = filter_logits(x, **options)
        for row, result in zip(x, batch):
            np.testing.assert_array_equal(result, filter_logits(row, **options))


# ---------------------------------------------------------------------------
# Greedy: one read-only pass, no copy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_greedy_is_the_first_argmax_on_every_isa(dtype):
    rng = np.random.default_rng(1)
    for V in (1, 5, 31, 32, 33, 2047, 2048, 2049, 100_000):
        x = rng.normal(size=V).astype(dtype)
        for place in {0, V // 2, V - 1}:
            y = x.copy()
            y[place] = 10.0
            y[(place + V // 3) % V] = 10.0 if V > 2 else y[(place + V // 3) % V]
            for isa in ISAS:
                assert isa.sample_logits(y, temperature=0) == int(np.argmax(y))
        y = np.full(V, -np.inf, dtype)
        y[-1] = 0.0
        assert sample_logits(y, temperature=0) == V - 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_greedy_still_refuses_nan_and_inf(bad):
    x = np.zeros(50_000, np.float32)
    x[40_000] = bad
    with pytest.raises(ValueError, match=r"logits\[40000\]"):
        sample_logits(x, temperature=0)
    with pytest.raises(ValueError, match="every logit is -inf"):
        sample_logits(np.full(5000, -np.inf), temperature=0)


def test_greedy_allocates_nothing_proportional_to_the_row():
    x = np.random.default_rng(0).normal(size=1_000_000).astype(np.float32)
    sample_logits(x, temperature=0)
    tracemalloc.start()
    try:
        sample_logits(x, temperature=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.01 * x.nbytes


def test_greedy_does_not_advance_the_generator():
    g = np.random.default_rng(3)
    sample_logits(np.arange(10.0), temperature=0, rng=g)
    assert g.random() == np.random.default_rng(3).random()


# ---------------------------------------------------------------------------
# Penalties and logit bias
# ---------------------------------------------------------------------------


def test_penalties_follow_their_definitions():
    x = np.array([2.0, -1.0, 0.5, 3.0, 0.0])
    history = [0, 1, 1, 4, 2, 2, 2]
    y = filter_logits(
        x,
        history=history,
        repetition_penalty=2.0,
        presence_penalty=0.25,
        frequency_penalty=0.5,
        penalty_last_n=6,  # the window: 1, 1, 4, 2, 2, 2 (token 0 is out of it)
    )
    expected = [2.0, -1.0 * 2 - (2 * 0.5 + 0.25), 0.5 / 2 - (3 * 0.5 + 0.25), 3.0, 0.0 - 0.75]
    np.testing.assert_array_equal(y, expected)
    # None: the whole history; 0: none
    y = filter_logits(x, history=history, repetition_penalty=2.0, penalty_last_n=None)
    assert y[0] == 1.0
    np.testing.assert_array_equal(
        filter_logits(x, history=history, repetition_penalty=2.0, penalty_last_n=0), x
    )


def test_logit_bias_adds_and_bans():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        filter_logits(x, logit_bias={0: 5.0, 2: -np.inf}), [6.0, 2.0, -np.inf]
    )
    assert sample_logits(x, temperature=0, logit_bias={0: 5.0}) == 0
    with pytest.raises(ValueError, match="every logit is -inf after logit_bias"):
        sample_logits(x, logit_bias={0: -np.inf, 1: -np.inf, 2: -np.inf})
    with pytest.raises(ValueError, match="position 3 is out of range"):
        sample_logits(x, logit_bias={3: 1.0})
    with pytest.raises(ValueError, match="finite, or -inf"):
        sample_logits(x, logit_bias={0: np.nan})
    with pytest.raises(TypeError, match="logit_bias must be a dict"):
        sample_logits(x, logit_bias=[(0, 1.0)])
    with pytest.raises(ValueError, match=r"\+inf after logit_bias"):
        sample_logits(np.array([1e308, 0.0]), logit_bias={0: 1e308})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalised_draws_are_the_same_on_every_path(dtype):
    # A list or an int64 array takes sample_logits' one-row path; a tuple, an int32
    # array or a 2-D batch the general one: the same draws, seed for seed.
    x = np.random.default_rng(0).normal(size=5000).astype(dtype)
    history = np.random.default_rng(1).integers(0, 5000, 300)
    options = dict(repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.1)
    for last_n in (0, 7, 64, None):
        draws = {
            kind: [
                sample_logits(x, 0.9, rng=seed, history=h, penalty_last_n=last_n, **options)
                for seed in range(40)
            ]
            for kind, h in [
                ("list", history.tolist()),
                ("int64", history),
                ("tuple", tuple(history.tolist())),
                ("int32", history.astype(np.int32)),
            ]
        }
        batch = [
            int(
                sample_logits(
                    x[None], 0.9, rng=seed, history=history, penalty_last_n=last_n, **options
                )[0]
            )
            for seed in range(40)
        ]
        assert draws["list"] == draws["int64"] == draws["tuple"] == draws["int32"] == batch
    with pytest.raises(ValueError, match="position 5000 is out of range"):
        sample_logits(x, history=[1, 5000], repetition_penalty=2.0)
    with pytest.raises(ValueError, match=r"logits\[3\]"):
        y = x.copy()
        y[3] = np.nan
        sample_logits(y, history=[1], repetition_penalty=2.0)


def test_penalties_do_not_touch_the_callers_array():
    x = np.array([1.0, 2.0, 3.0])
    x.flags.writeable = False
    sample_logits(x, history=[0, 1], repetition_penalty=3.0, rng=0)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_history_per_row_of_a_batch():
    x = np.zeros((2, 4))
    y = filter_logits(x, history=[[0], [3, 3]], frequency_penalty=1.0)
    np.testing.assert_array_equal(y, [[-1, 0, 0, 0], [0, 0, 0, -2]])
    with pytest.raises(ValueError, match="history has 3 rows"):
        filter_logits(x, history=[[0], [1], [2]], frequency_penalty=1.0)
    with pytest.raises(ValueError, match="position 4 is out of range"):
        filter_logits(x, history=[4], frequency_penalty=1.0)


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(repetition_penalty=0.0), ValueError, "repetition_penalty must be finite and > 0"),
        (dict(repetition_penalty=True), TypeError, "repetition_penalty must be a real"),
        (dict(presence_penalty=np.inf), ValueError, "presence_penalty must be finite"),
        (dict(frequency_penalty="1"), TypeError, "frequency_penalty must be a real"),
        (dict(penalty_last_n=-1), ValueError, "penalty_last_n must be >= 0"),
        (dict(penalty_last_n=2.5), TypeError, "penalty_last_n must be an integer"),
        (dict(typical_p=0.0), ValueError, r"typical_p must be in \(0, 1\]"),
        (dict(top_n_sigma=-1.0), ValueError, "top_n_sigma must be finite and >= 0"),
        (dict(min_tokens_to_keep=0), ValueError, "min_tokens_to_keep must be >= 1"),
        (dict(history=[0.5]), TypeError, "history must be integers"),
    ],
)
def test_bad_chain_arguments(kwargs, exc, message):
    for func in (sample_logits, filter_logits):
        with pytest.raises(exc, match=message):
            func(np.zeros(4), **kwargs)


# ---------------------------------------------------------------------------
# The generation loop: penalties read the prompt and every drawn token
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "options",
    [
        dict(repetition_penalty=1.8),
        dict(presence_penalty=0.7, frequency_penalty=0.4, penalty_last_n=5),
        dict(repetition_penalty=1.3, penalty_last_n=None, top_p=0.9),
        dict(typical_p=0.8, top_n_sigma=1.5, min_tokens_to_keep=2),
        dict(temperature=0, repetition_penalty=4.0, penalty_last_n=8),
    ],
)
def test_loop_with_penalties_replays_as_sample_logits_with_history(dtype, options):
    cfg = TinyLMConfig(vocab_size=50, dim=4, context=3, hidden=8, dtype=dtype)
    m = TinyLM.random(cfg, seed=5)
    prompt = [5, 6, 7, 8]
    got = m.generate_positions(prompt, 60, rng=np.random.default_rng(2), **options)
    rng, history = np.random.default_rng(2), list(prompt)
    for p in got:
        assert p == sample_logits(m.logits(history[-3:]), rng=rng, history=history, **options)
        history.append(p)
    streamed = list(m.stream_positions(prompt, 60, rng=np.random.default_rng(2), **options))
    assert streamed == got


def test_a_repetition_penalty_breaks_the_blogs_loop():
    m = TinyLM.from_blog()
    assert m.generate("el cielo es", 6, temperature=0) == "azul azul azul azul azul azul"
    text = m.generate("el cielo es", 6, temperature=0, repetition_penalty=3.0).split()
    assert text[0] == "azul" and text[1] != "azul"


def test_logit_bias_by_word_in_the_model():
    m = TinyLM.from_blog()
    text = m.generate("el cielo es", 20, rng=0, logit_bias={"azul": -np.inf})
    assert "azul" not in text.split()
    with pytest.raises(tinyllm.UnknownTokenError):
        m.generate("el cielo es", 2, logit_bias={"verde": 1.0})


# ---------------------------------------------------------------------------
# Stop sequences
# ---------------------------------------------------------------------------


def test_stop_words_end_the_generation_before_them():
    m = TinyLM.from_blog()
    full = m.generate_positions("el cielo es", 40, rng=1)
    words = [m.vocab[p] for p in full]
    stop = words[5]
    first = words.index(stop)
    assert m.generate("el cielo es", 40, rng=1, stop=stop) == " ".join(words[:first])
    pair = " ".join(words[7:9])
    at = next(i for i in range(len(words) - 1) if words[i : i + 2] == words[7:9])
    assert m.generate("el cielo es", 40, rng=1, stop=[pair]) == " ".join(words[:at])
    # a stop sequence that never comes: everything
    never = next(
        " ".join([w] * 4) for w in m.vocab.tokens if " ".join([w] * 4) not in " ".join(words)
    )
    assert m.generate_positions("el cielo es", 40, rng=1, stop=[never]) == full


def test_stream_with_stop_holds_back_only_what_may_start_a_stop():
    m = TinyLM.from_blog()
    words = [m.vocab[p] for p in m.generate_positions("el cielo es", 40, rng=2)]
    pair = " ".join(words[10:12])
    at = next(i for i in range(len(words) - 1) if words[i : i + 2] == words[10:12])
    streamed = list(m.stream("el cielo es", 40, rng=2, stop=[pair]))
    assert streamed == words[:at]
    assert list(m.stream("el cielo es", 40, rng=2, stop=[])) == words


def test_bad_stops():
    m = TinyLM.from_blog()
    with pytest.raises(TypeError, match="stop must be a string or a list of strings"):
        m.generate("el cielo es", 3, stop=5)
    with pytest.raises(ValueError, match="holds no word"):
        m.generate("el cielo es", 3, stop=["  "])
    with pytest.raises(tinyllm.UnknownTokenError):
        m.generate("el cielo es", 3, stop=["verde"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_q'"):
        m.generate("el cielo es", 3, top_q=0.5)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tinyllm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_generate_with_the_chain_is_the_apis():
    m = TinyLM.from_blog()
    expected = m.generate(
        "el cielo es",
        12,
        rng=np.random.default_rng(4),
        repetition_penalty=1.5,
        presence_penalty=0.2,
        frequency_penalty=0.1,
        penalty_last_n=6,
        typical_p=0.95,
        top_n_sigma=2.0,
        min_tokens_to_keep=2,
        logit_bias={"el": -1.0},
        stop="es",
    )
    r = run(
        "generate", "el cielo es", "-n", 12, "--seed", 4, "--repetition-penalty", 1.5,
        "--presence-penalty", 0.2, "--frequency-penalty", 0.1, "--penalty-last-n", 6,
        "--typical-p", 0.95, "--top-n-sigma", 2.0, "--min-tokens-to-keep", 2,
        "--logit-bias", "el=-1", "--stop", "es",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("el cielo es " + expected).strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--logit-bias", "azul"], "expected WORD=BIAS"),
        (["--logit-bias", "azul=x"], "BIAS must be a number"),
        # the word, not the token's position in the vocabulary
        (["--logit-bias", "azul=inf"], "BIAS must be finite, or -inf to ban the word, got 'inf'"),
        (["--logit-bias", "azul=nan"], "got 'nan'"),
        (["--logit-bias", "azul=1e400"], "got '1e400'"),
        (["--logit-bias", "verde=1"], "verde"),
        (["--repetition-penalty", "0"], "repetition_penalty must be finite and > 0"),
        (["--penalty-last-n", "-2"], "must be >= -1"),
        (["--stop", "verde"], "verde"),
        (["--typical-p", "1.5"], r"typical_p must be in \(0, 1\]"),
    ],
)
def test_cli_bad_chain_options_are_one_line_errors(args, message):
    r = run("generate", "el cielo es", *args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("tinyllm generate: error:")
    import re

    assert re.search(message, r.stderr), r.stderr


def test_threads_share_no_scratch():
    # The sampler keeps one scratch block between calls (a 10^7 row needs 80 MB); a
    # call that finds it taken must use its own: threads give what one thread gives.
    from concurrent.futures import ThreadPoolExecutor

    rows = [family(name, 60_000, seed=i) for i, name in enumerate(FAMILIES * 3)]

    def work(x):
        return filter_logits(x, top_p=0.9), sample_logits(x, top_p=0.8, typical_p=0.9, rng=1)

    alone = [work(x) for x in rows]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(work, rows))
    for (a, b), (c, d) in zip(alone, together):
        np.testing.assert_array_equal(a, c)
        assert b == d
