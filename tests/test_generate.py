"""Generation with the model (TinyLM.generate, stream, draw_next) and the compiled loop
behind it (tinyllm._generate): seeds, filters, streaming, the notebooks' experiment.

Every test runs once per instruction set the kernels were built for and this CPU runs
(conftest.each_isa), with every kernel switched to that build."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinyllm
from tinyllm import TinyLM, TinyLMConfig

from conftest import BLOG_PROBS, CHOSEN_ISA, isa_id

pytestmark = pytest.mark.usefixtures("each_isa")


@pytest.fixture(scope="module")
def model():
    return TinyLM.from_blog()


def test_same_seed_same_text_different_seeds_differ(model):
    a = model.generate("el cielo es", 30, rng=0)
    assert a == model.generate("el cielo es", 30, rng=0)
    assert a == model.generate("el cielo es", 30, rng=np.random.default_rng(0))
    assert len({model.generate("el cielo es", 30, rng=s) for s in range(5)}) > 1
    assert len(a.split()) == 30 and set(a.split()) <= set(model.vocab.tokens)


def test_same_seed_across_processes(model, each_isa):
    code = (
        "import tinyllm; print(tinyllm.TinyLM.from_blog().generate('el cielo es', 25, rng=7,"
        " top_p=0.9))"
    )
    env = dict(os.environ, TINYLLM_SIMD=each_isa)  # the other process on the same build
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        check=True,
    ).stdout.strip()
    assert out == model.generate("el cielo es", 25, rng=7, top_p=0.9)


def test_greedy_is_argmax_every_step():
    cfg = TinyLMConfig(vocab_size=9, dim=3, context=2, hidden=4)
    m = TinyLM.random(cfg, seed=3)
    positions = m.generate_positions([1, 2], 12, temperature=0)
    context = [1, 2]
    for p in positions:  # replay: each token is the argmax for the last c tokens
        assert p == int(np.argmax(m.logits(context)))
        context = context[1:] + [p]


def test_autoregressive_context_is_last_c_tokens():
    cfg = TinyLMConfig(vocab_size=6, dim=2, context=3, hidden=2)
    m = TinyLM.random(cfg, seed=1)
    rng = np.random.default_rng(5)
    got = m.generate_positions([0, 1, 2, 3], 10, rng=np.random.default_rng(5))
    context = [1, 2, 3]
    for p in got:  # the same stream through sample_logits on the replayed contexts
        from tinyllm import sample_logits

        assert p == sample_logits(m.logits(context), rng=rng)
        context = context[1:] + [p]


def test_filters_restrict_the_tokens(model):
    assert set(model.generate("el cielo es", 200, top_k=1, rng=0).split()) == {"azul"}
    assert set(model.generate("el cielo es", 200, top_k=2, rng=0).split()) <= {"azul", "frío"}
    # blog probs: azul .498 < .5, so top-p 0.5 needs frío too; 0.49 keeps azul only
    assert set(model.generate("el cielo es", 200, top_p=0.49, rng=0).split()) == {"azul"}
    assert set(model.generate("el cielo es", 200, min_p=0.5, rng=0).split()) <= {"azul", "frío"}
    assert model.generate("el cielo es", 5, temperature=0) == "azul azul azul azul azul"
    assert model.generate("el cielo es", 0, rng=0) == ""


def test_stream_yields_tokens_and_can_stop_half_way(model):
    stream = model.stream("el cielo es", 50, rng=0)
    first = [next(stream) for _ in range(5)]
    stream.close()
    assert first == model.generate("el cielo es", 5, rng=0).split()
    assert model.generate("el cielo es", 5, rng=0).split() == first  # model still usable
    assert (
        list(model.stream("el cielo es", 4, rng=1))
        == model.generate("el cielo es", 4, rng=1).split()
    )


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        (dict(temperature=-1), ValueError, "temperature"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(top_k=1.5), TypeError, "top_k"),
        (dict(top_p=0), ValueError, "top_p"),
        (dict(top_p=1.5), ValueError, "top_p"),
        (dict(min_p=-0.1), ValueError, "min_p"),
        (dict(rng="seed"), TypeError, "rng"),
        (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    ],
)
def test_bad_options_raise_before_the_first_token(model, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        model.stream("el cielo es", **kwargs)  # no next() needed: checked eagerly
    with pytest.raises(exc, match=message):
        model.generate("el cielo es", **kwargs)


def test_bad_prompts(model):
    with pytest.raises(ValueError, match="needs at least 3"):
        model.generate("cielo es", 3)
    with pytest.raises(ValueError, match="unknown word 'mar'"):
        model.stream("el mar es")


def test_draw_next_counts_match_probabilities(model):
    d = model.draw_next("el cielo es", 100_000, rng=0)
    assert sum(d.counts.values()) == 100_000 and list(d.counts) == list(model.vocab.tokens)
    freqs = np.array(list(d.frequencies.values()))
    # 5 sigma of a binomial at n = 1e5 is < 0.008: a fixed seed, so this never flakes
    assert np.abs(freqs - BLOG_PROBS).max() < 0.008
    np.testing.assert_allclose(d.probs, BLOG_PROBS, atol=1e-9)
    assert d.tokens[:20] == model.draw_next("el cielo es", 20, rng=0).tokens
    greedy = model.draw_next("el cielo es", 10, temperature=0)
    assert greedy.counts["azul"] == 10 and greedy.probs[0] == 1.0
    assert json.loads(json.dumps(d.to_dict()))["counts"]["azul"] == d.counts["azul"]


# ---------------------------------------------------------------------------
# The compiled generation loop (tinyllm._generate.Generation)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", [None, "tanh"])
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(temperature=0.7),
        dict(top_k=3),
        dict(top_p=0.8),
        dict(min_p=0.2),
        dict(temperature=1.3, top_k=6, top_p=0.9, min_p=0.05),
        dict(temperature=0),
    ],
    ids=["plain", "T", "top_k", "top_p", "min_p", "all", "greedy"],
)
def test_loop_replays_as_sample_logits_on_each_step(dtype, activation, options):
    # Each token is the one sample_logits draws from that step's logits with the
    # same Generator: the loop in C computes the same logits and the same draw.
    from tinyllm import sample_logits

    cfg = TinyLMConfig(
        vocab_size=300, dim=4, context=3, hidden=16, dtype=dtype, activation=activation
    )
    m = TinyLM.random(cfg, seed=2)
    got = m.generate_positions([5, 6, 7], 40, rng=np.random.default_rng(9), **options)
    rng, context = np.random.default_rng(9), [5, 6, 7]
    for p in got:
        # (with tanh: the loop's is libm's, the model's np.tanh; equal on these seeds)
        assert p == sample_logits(m.logits(context), rng=rng, **options)
        context = context[1:] + [p]
    assert got == list(m.stream_positions([5, 6, 7], 40, rng=np.random.default_rng(9), **options))


def test_generation_draws_one_double_per_token():
    m = TinyLM.from_blog()
    g, h = np.random.default_rng(4), np.random.default_rng(4)
    m.generate_positions("el cielo es", 37, rng=g, top_p=0.9)
    h.random(37)
    assert g.bit_generator.state == h.bit_generator.state
    g = np.random.default_rng(4)
    before = g.bit_generator.state
    m.generate_positions("el cielo es", 10, rng=g, temperature=0)
    assert g.bit_generator.state == before  # greedy: nothing drawn


def test_stream_stopped_early_draws_no_more():
    m = TinyLM.from_blog()
    g = np.random.default_rng(1)
    stream = m.stream("el cielo es", 100, rng=g)
    [next(stream) for _ in range(3)]
    stream.close()
    h = np.random.default_rng(1)
    h.random(3)
    assert g.bit_generator.state == h.bit_generator.state


def _traced_peak(fn):
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# ~2 s a run, and what tracemalloc sees does not depend on the build (the kernels
# allocate nothing; the stage modules, built once, do): on the chosen instruction set only.
@pytest.mark.parametrize("each_isa", [CHOSEN_ISA], ids=isa_id, indirect=True)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generating_allocates_nothing_per_token(dtype):
    from tinyllm._compiled import Generation

    m = TinyLM.random(
        TinyLMConfig(vocab_size=2000, dim=8, context=4, hidden=32, dtype=dtype), seed=0
    )
    args = (m.embedding.table, m.W1, m.W2, [1, 2, 3, 4])
    small = _traced_peak(lambda: Generation(*args, top_p=0.9, rng=0).take(100))
    large = _traced_peak(lambda: Generation(*args, top_p=0.9, rng=0).take(10_000))
    # The only thing that grows is the int64 result (8 bytes a token).
    assert large - small <= 8 * (10_000 - 100) + 1024
    stream_small = _traced_peak(lambda: list(m.stream_positions([1, 2, 3, 4], 100, rng=0)))
    stream_large = _traced_peak(lambda: sum(m.stream_positions([1, 2, 3, 4], 3_000, rng=0)))
    assert stream_large <= stream_small + 1024


def test_generation_arguments_are_checked():
    from tinyllm._compiled import Generation

    m = TinyLM.from_blog()
    E, W1, W2 = m.embedding.table, m.W1, m.W2
    with pytest.raises(TypeError, match="W1"):
        Generation(E, W1.astype(np.float32), W2, [0, 1, 2])
    with pytest.raises(ValueError, match="do not fit"):
        Generation(E, W1[:5], W2, [0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):
        Generation(E, W1, W2, [0, 1, 5])
    with pytest.raises(ValueError, match="3 integer positions"):
        Generation(E, W1, W2, [0, 1])
    with pytest.raises(ValueError, match="top_p"):
        Generation(E, W1, W2, [0, 1, 2], top_p=0)
    with pytest.raises(TypeError, match="rng"):
        Generation(E, W1, W2, [0, 1, 2], rng="seed")
    with pytest.raises(ValueError, match="n must be >= 0"):
        Generation(E, W1, W2, [0, 1, 2], rng=0).take(-1)
    assert Generation(E, W1, W2, [0, 1, 2], rng=0).take(0).shape == (0,)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "sizes",
    [
        (5, 2, 3, 1),  # the blog's: both projections on the small path (k < 8, few outputs)
        (9, 3, 2, 4),  # small path, h > 1
        (7, 4, 3, 9),  # x @ W1 sums 12 rows (blocked); f1 @ W2 has 9 (blocked)
        (40, 2, 3, 5),  # f1 @ W2 with 40 outputs: the blocked projection
    ],
)
def test_loop_logits_equal_the_models_bit_for_bit(dtype, sizes):
    # Whatever path a projection takes in the loop, its logits are project()'s, so
    # the tokens are sample_logits' on the model's logits even at a near tie.
    from tinyllm._compiled import Generation

    V, d, c, h = sizes
    m = TinyLM.random(TinyLMConfig(vocab_size=V, dim=d, context=c, hidden=h, dtype=dtype), seed=V)
    for seed in range(5):
        start = [int(p) for p in np.random.default_rng(seed).integers(0, V, c)]
        g = Generation(m.embedding.table, m.W1, m.W2, start, rng=seed)
        assert g.last_logits() is None
        tokens = g.take(7).tolist()
        last_context = (start + tokens)[-c - 1 : -1]
        logits = g.last_logits()
        assert logits.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(logits, m.logits(last_context))


def test_take_tokens_gives_the_vocabularys_items(model):
    from tinyllm._compiled import Generation

    args = (model.embedding.table, model.W1, model.W2, [3, 1, 4])
    positions = Generation(*args, rng=3).take(600).tolist()  # more than the stack buffer
    assert Generation(*args, rng=3).take_tokens(600, model.vocab.tokens) == [
        model.vocab[p] for p in positions
    ]
    assert Generation(*args, rng=3).take_tokens(0, model.vocab.tokens) == []
    with pytest.raises(ValueError, match="5 tokens"):
        Generation(*args, rng=3).take_tokens(2, ("a", "b"))
    with pytest.raises(ValueError, match="n must be >= 0"):
        Generation(*args, rng=3).take_tokens(-1, model.vocab.tokens)
    with pytest.raises(TypeError):
        Generation(*args, rng=3).take_tokens(2, list(model.vocab.tokens))


def test_generation_context_forms():
    from tinyllm._compiled import Generation

    m = TinyLM.from_blog()
    E, W1, W2 = m.embedding.table, m.W1, m.W2
    expected = Generation(E, W1, W2, [3, 1, 4], rng=0).take(20)
    for context in (
        (3, 1, 4),
        np.array([3, 1, 4]),
        np.array([3, 1, 4], dtype=np.uint8),
        [np.int64(3), 1, 4],
        [3, True, 4],
    ):
        np.testing.assert_array_equal(Generation(E, W1, W2, context, rng=0).take(20), expected)
    for context in ([3, 1, 5], [-1, 1, 4], np.array([3, 1, 9])):
        with pytest.raises(ValueError, match="out of range"):
            Generation(E, W1, W2, context)
    for context in ([3, 1.0, 4], [3, 1], "314", [[3, 1, 4]], (3, 1, 2**70)):
        with pytest.raises(ValueError, match="3 integer positions"):
            Generation(E, W1, W2, context)


def test_option_messages_name_the_option_only(model):
    # The model's messages are the options' own, without the compiled check's name.
    with pytest.raises(ValueError, match=r"^top_p must be in \(0, 1\], got 0$"):
        model.generate("el cielo es", top_p=0)
    with pytest.raises(TypeError, match=r"^temperature must be a real number, got 'hot'$"):
        model.generate("el cielo es", temperature="hot")
    with pytest.raises(ValueError, match=r"^temperature must be finite and >= 0, got inf$"):
        model.generate("el cielo es", temperature=float("inf"))
    with pytest.raises(TypeError, match=r"^generate: rng must be None"):
        model.generate("el cielo es", rng="seed")
    with pytest.raises(ValueError, match="top_k"):  # the first bad option is named
        model.generate("el cielo es", top_k=0, rng="seed")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_tiny_temperature_means_what_it_means_in_sample_logits(dtype):
    # logits / T overflows the dtype, but the weights exp((x - max) / T) do not: the
    # draws are those of sample_logits (all on the argmax), as every other temperature.
    m = TinyLM.from_blog(dtype)
    t = 1e-320 if dtype == "float64" else 1e-40
    assert m.generate("el cielo es", 4, temperature=t, rng=0) == "azul azul azul azul"
    assert tinyllm.sample_logits(m.logits("el cielo es"), temperature=t, rng=0) == 0
    with pytest.raises(ValueError, match="overflow"):  # filter_logits returns logits / T
        tinyllm.filter_logits(m.logits("el cielo es"), temperature=t)


def test_logits_that_overflow_raise_before_the_first_token():
    big = np.finfo(np.float32).max / 2
    cfg = TinyLMConfig(vocab_size=3, dim=1, context=1, hidden=1, dtype="float32")
    m = TinyLM(cfg, TinyLM.random(cfg).vocab, [[1.0], [2.0], [4.0]], [[big]], [[1.0, -1.0, 0.5]])
    with pytest.raises(ValueError, match="logits of token 0 are not finite"):
        m.stream([2], 5, rng=0)  # inf logits: before the first token
    with pytest.raises(ValueError, match="not finite"):
        m.logits([2])
    assert m.generate([0], 3, temperature=0) == "t0 t0 t0"  # finite for this context
    # A later step: after t0 comes t2 (the largest logit), whose logits overflow.
    m = TinyLM(cfg, m.vocab, [[1.0], [2.0], [4.0]], [[big]], [[1.0, -1.0, 2.0]])
    with pytest.raises(ValueError, match="logits of token 1 are not finite"):
        m.generate([0], 3, temperature=0)
