"""Hostile arrays and numbers: what users bring that the kernels were not written for.

- byte-swapped arrays (``'>f8'`` on a little-endian machine, ``'<f8'`` on a big-endian
  one): every entry point converts them once, like a non-contiguous input, and gives
  the reference's answer (they used to be read raw: ``dot`` returned 0.0, ``sample``
  drew the wrong token);
- one rule for numbers: bools are not temperatures anywhere, NumPy integers are
  accepted wherever Python ints are;
- temperature 0 means greedy everywhere: softmax gives the one-hot limit on the
  token that ``sample_logits(temperature=0)`` draws;
- generation that can be interrupted (Ctrl-C within a fraction of a second) and that
  refuses, before any work, a number of tokens that cannot be held in memory.
"""

import _thread
import math
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import TinyLM, TinyLMConfig, Vocab, reference
from tinyllm._compiled import Diverged, TrainState, cross_entropy_grad

from conftest import BLOG_LOGITS, ISAS, RTOL, isa_id

INF = math.inf


def swapped(a, dtype=None) -> np.ndarray:
    """``a`` in ``dtype`` with the byte order that is not this machine's."""
    a = np.asarray(a, dtype=dtype)
    out = a.astype(a.dtype.newbyteorder("S"))
    assert not out.dtype.isnative and np.array_equal(out, a)
    return out


SWAPPABLE = [np.float32, np.float64]


# ===========================================================================
# Byte order: every entry point, every build, against the reference
# ===========================================================================


@pytest.mark.parametrize("build", ISAS, ids=isa_id)
@pytest.mark.parametrize("dtype", SWAPPABLE, ids=["float32", "float64"])
def test_dot_and_project_read_swapped_arrays(build, dtype):
    assert build.dot(swapped([1, 2, 3], dtype), swapped([4, 5, 6], dtype)) == 32.0
    rng = np.random.default_rng(0)
    h, W = rng.normal(size=(2, 7)).astype(dtype), rng.normal(size=(7, 300)).astype(dtype)
    expected = np.array(reference.project(h.tolist(), W.tolist()))
    for args in ((swapped(h), W), (h, swapped(W)), (swapped(h), swapped(W))):
        got = build.project(*args)
        assert got.dtype == dtype and got.dtype.isnative
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
        np.testing.assert_allclose(
            build.project(args[0][0], args[1]), expected[0], rtol=RTOL[dtype], atol=RTOL[dtype]
        )
    # ints of the other byte order are converted as ints are: to float64
    assert build.dot(swapped([1, 2, 3], np.int64), [4, 5, 6]) == 32.0


@pytest.mark.parametrize("build", ISAS, ids=isa_id)
@pytest.mark.parametrize("dtype", SWAPPABLE, ids=["float32", "float64"])
def test_softmax_reads_swapped_arrays(build, dtype):
    x = np.random.default_rng(1).normal(scale=3, size=(3, 50)).astype(dtype)
    x[1, 7] = -INF
    for axis in (-1, 0):
        expected = np.array(reference.softmax(x.tolist(), axis=axis))
        expected_log = np.array(reference.log_softmax(x.tolist(), axis=axis))
        np.testing.assert_allclose(build.softmax(swapped(x), axis=axis), expected, rtol=RTOL[dtype])
        np.testing.assert_allclose(
            build.log_softmax(swapped(x), axis=axis), expected_log, rtol=RTOL[dtype], atol=1e-6
        )
    np.testing.assert_allclose(
        build.softmax(swapped(BLOG_LOGITS, np.int64)),
        reference.softmax([2, 0, 2, 0, 0]),
        rtol=1e-12,
    )


@pytest.mark.parametrize("build", ISAS, ids=isa_id)
@pytest.mark.parametrize("dtype", SWAPPABLE, ids=["float32", "float64"])
def test_out_of_the_other_byte_order_gets_the_right_numbers(build, dtype):
    x = np.random.default_rng(2).normal(size=(4, 9)).astype(dtype)
    out = swapped(np.zeros_like(x))
    assert build.softmax(x, out=out) is out
    np.testing.assert_allclose(out, build.softmax(x), rtol=RTOL[dtype])
    out = swapped(np.zeros_like(x))
    assert build.log_softmax(swapped(x), out=out) is out
    np.testing.assert_allclose(out, build.log_softmax(x), rtol=RTOL[dtype])
    # in place on a swapped array
    y = swapped(x)
    build.softmax(y, out=y)
    np.testing.assert_allclose(y, build.softmax(x), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", SWAPPABLE, ids=["float32", "float64"])
def test_project_and_filter_logits_write_a_swapped_out(dtype):
    rng = np.random.default_rng(3)
    h, W = rng.normal(size=(2, 5)).astype(dtype), rng.normal(size=(5, 40)).astype(dtype)
    out = swapped(np.zeros((2, 40), dtype))
    assert tinyllm.project(h, W, out=out) is out
    np.testing.assert_array_equal(out, tinyllm.project(h, W))
    logits = rng.normal(size=(2, 40)).astype(dtype)
    out = swapped(np.zeros_like(logits))
    assert tinyllm.filter_logits(swapped(logits), top_k=5, out=out) is out
    np.testing.assert_array_equal(out, tinyllm.filter_logits(logits, top_k=5))


@pytest.mark.parametrize("build", ISAS, ids=isa_id)
@pytest.mark.parametrize("dtype", SWAPPABLE, ids=["float32", "float64"])
def test_sampler_reads_swapped_arrays(build, dtype):
    # [3, 1] native: index 0 three times out of four. Read raw, '>f8' drew index 1 97% of the time.
    weights = np.array([3.0, 1.0], dtype)
    draws = build.sample(swapped(weights), size=20_000, rng=0)
    assert draws.tolist() == build.sample(weights, size=20_000, rng=0).tolist()
    assert 0.73 < np.mean(draws == 0) < 0.77
    for seed in range(20):  # the one-draw fast path
        assert build.sample(swapped(weights), rng=seed) == build.sample(weights, rng=seed)
    logits = np.random.default_rng(4).normal(scale=2, size=(3, 700)).astype(dtype)
    logits[0, :10] = -INF
    for options in (
        {},
        {"temperature": 0.7},
        {"top_k": 20},
        {"top_p": 0.8},
        {"min_p": 0.1},
        {"temperature": 0},
    ):
        for rows in (logits, logits[1]):
            assert np.array_equal(
                build.sample_logits(swapped(rows), rng=5, **options),
                build.sample_logits(rows, rng=5, **options),
            )
            assert np.array_equal(
                build.sample_logits(swapped(rows), size=7, rng=5, **options),
                build.sample_logits(rows, size=7, rng=5, **options),
            )
            got = build.filter_logits(swapped(rows), **options)
            assert got.dtype.isnative
            np.testing.assert_array_equal(got, build.filter_logits(rows, **options))
    expected = reference.filter_logits(logits[1].astype(np.float64).tolist(), top_p=0.8)
    np.testing.assert_array_equal(
        np.isfinite(build.filter_logits(swapped(logits[1]), top_p=0.8)), np.isfinite(expected)
    )


def test_training_kernels_read_swapped_arrays():
    rng = np.random.default_rng(6)
    logits, targets = rng.normal(size=(4, 10)), np.array([1, 2, 3, 4])
    losses, grad = cross_entropy_grad(logits, targets)
    swapped_losses, swapped_grad = cross_entropy_grad(swapped(logits), swapped(targets))
    np.testing.assert_array_equal(swapped_losses, losses)
    np.testing.assert_array_equal(swapped_grad, grad)
    E, W1, W2 = rng.normal(size=(10, 2)), rng.normal(size=(4, 3)), rng.normal(size=(3, 10))
    native, other = TrainState(E, W1, W2), TrainState(swapped(E), swapped(W1), swapped(W2))
    windows = np.array([[1, 2], [3, 4]])
    assert other.step(swapped(windows), swapped([5, 6], np.int64), 0.1) == native.step(
        windows, [5, 6], 0.1
    )
    np.testing.assert_array_equal(other.W2, native.W2)


def test_model_built_from_swapped_arrays_and_positions():
    blog = TinyLM.from_blog()
    model = TinyLM(
        blog.config, blog.vocab, swapped(blog.embedding.table), swapped(blog.W1), swapped(blog.W2)
    )
    np.testing.assert_array_equal(model.logits("el cielo es"), blog.logits("el cielo es"))
    positions = swapped([3, 1, 4], np.int64)
    np.testing.assert_array_equal(model.logits(positions), blog.logits([3, 1, 4]))
    assert model.generate(positions, 12, rng=0) == blog.generate("el cielo es", 12, rng=0)
    np.testing.assert_array_equal(
        model.embedding.lookup(positions), blog.embedding.lookup([3, 1, 4])
    )


# ===========================================================================
# One rule for numbers
# ===========================================================================

BOOL_TEMPERATURE_CALLS = {
    "softmax": lambda t: tinyllm.softmax([1.0, 2.0], temperature=t),
    "log_softmax": lambda t: tinyllm.log_softmax([1.0, 2.0], temperature=t),
    "sample_logits": lambda t: tinyllm.sample_logits([1.0, 2.0], temperature=t, rng=0),
    "filter_logits": lambda t: tinyllm.filter_logits([1.0, 2.0], temperature=t),
    "next_token_probs": lambda t: TinyLM.from_blog().next_token_probs("el cielo es", temperature=t),
    "generate": lambda t: TinyLM.from_blog().generate("el cielo es", 3, temperature=t, rng=0),
    "reference.softmax": lambda t: reference.softmax([1.0, 2.0], temperature=t),
    "reference.sample_logits": lambda t: reference.sample_logits([1.0, 2.0], temperature=t, rng=0),
}


@pytest.mark.parametrize(
    "call", list(BOOL_TEMPERATURE_CALLS.values()), ids=list(BOOL_TEMPERATURE_CALLS)
)
@pytest.mark.parametrize("flag", [True, False, np.bool_(True)], ids=repr)
def test_a_bool_is_not_a_temperature_anywhere(call, flag):
    with pytest.raises(TypeError, match="temperature must be a real number"):
        call(flag)


@pytest.mark.parametrize(
    "call", list(BOOL_TEMPERATURE_CALLS.values()), ids=list(BOOL_TEMPERATURE_CALLS)
)
@pytest.mark.parametrize("t", [np.float32(0.5), np.float64(2.0), np.int64(1), 1, 0.5], ids=repr)
def test_numpy_and_python_numbers_are_temperatures(call, t):
    call(t)


def test_numpy_integers_are_accepted_wherever_ints_are():
    i = np.int64
    assert tinyllm.softmax(np.ones((2, 3)), axis=i(0)).shape == (2, 3)
    assert tinyllm.sample_logits([1.0, 2.0, 3.0], top_k=i(2), size=i(4), rng=i(7)).shape == (4,)
    assert tinyllm.sample_logits(
        [1.0, 2.0, 3.0], top_k=np.uint8(2), size=(i(2), np.int32(3)), rng=np.uint16(7)
    ).shape == (2, 3)
    model = TinyLM.from_blog()
    assert model.generate("el cielo es", i(5), rng=i(3)) == model.generate("el cielo es", 5, rng=3)
    assert len(model.draw_next("el cielo es", draws=np.int32(6), rng=0).tokens) == 6
    config = TinyLMConfig(vocab_size=i(5), dim=np.int32(2), context=np.uint8(3), hidden=i(1))
    assert config == TinyLMConfig(vocab_size=5, dim=2, context=3, hidden=1)
    assert type(config.vocab_size) is int
    assert model.generate([i(3), np.int32(1), np.uint64(4)], 4, rng=0) == model.generate(
        "el cielo es", 4, rng=0
    )


# ===========================================================================
# temperature=0 is greedy everywhere
# ===========================================================================

logit_rows = hnp.arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.sampled_from([-INF, -3.0, -1.0, 0.0, 0.5, 2.0, 2.0, 7.25]),  # ties are common
).filter(lambda x: np.isfinite(x).any())


@settings(derandomize=True, max_examples=200, deadline=None)
@given(logit_rows)
def test_temperature_zero_is_the_greedy_token_everywhere(x):
    best = int(np.argmax(x))  # numpy's argmax: the first of the ties
    onehot = np.eye(len(x))[best]
    for build in ISAS:
        np.testing.assert_array_equal(build.softmax(x, temperature=0), onehot)
        np.testing.assert_array_equal(build.softmax(x.astype(np.float32), temperature=0.0), onehot)
        logp = build.log_softmax(x, temperature=0)
        assert logp[best] == 0 and np.isneginf(np.delete(logp, best)).all()
    assert tinyllm.sample_logits(x, temperature=0) == best
    np.testing.assert_array_equal(np.isfinite(tinyllm.filter_logits(x, temperature=0)), onehot > 0)
    assert reference.softmax(x.tolist(), temperature=0) == onehot.tolist()
    assert reference.sample_logits(x.tolist(), temperature=0) == best


def test_temperature_zero_along_any_axis_and_negative_zero():
    x = np.array([[1.0, 5.0, 5.0], [9.0, 2.0, -INF]])
    np.testing.assert_array_equal(tinyllm.softmax(x, axis=0, temperature=0), [[0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(tinyllm.softmax(x, temperature=-0.0), [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="NaN"):
        tinyllm.softmax([1.0, np.nan], temperature=0)
    with pytest.raises(ValueError, match=r"\+inf"):
        tinyllm.softmax([1.0, INF], temperature=0)


def test_model_probabilities_at_temperature_zero_are_one_hot():
    model = TinyLM.from_blog()
    onehot = [1.0, 0.0, 0.0, 0.0, 0.0]  # azul, the most likely token
    np.testing.assert_array_equal(model.next_token_probs("el cielo es", temperature=0), onehot)
    trace = model.trace("el cielo es", temperature=0)
    np.testing.assert_array_equal(trace.probs, onehot)
    draws = model.draw_next("el cielo es", draws=50, temperature=0, rng=0)
    assert set(draws.tokens) == {"azul"}
    np.testing.assert_array_equal(draws.probs, onehot)


# ===========================================================================
# Generation: interruptible, and sized before it starts
# ===========================================================================


def seconds_to_stop_after_ctrl_c(call, delay: float = 0.3) -> float:
    """What Ctrl-C does (SIGINT's handler, in the main thread) ``delay`` seconds into
    ``call()``, which must run longer: the seconds until its KeyboardInterrupt arrives."""
    sent = []

    def interrupt():
        sent.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(delay, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
        stopped = time.perf_counter()
    finally:
        timer.cancel()
    assert sent
    return stopped - sent[0]


def test_ctrl_c_stops_a_long_generation_within_half_a_second():
    model = TinyLM.from_blog()
    # ~10 s of work
    call = lambda: model.generate_positions("el cielo es", 100_000_000, rng=0)  # noqa: E731
    assert seconds_to_stop_after_ctrl_c(call) < 0.5


def test_interrupting_a_slow_large_model_step_is_prompt_too():
    config = TinyLMConfig(vocab_size=20_000, dim=16, context=4, hidden=128, dtype="float32")
    model = TinyLM.random(config, seed=0)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.generate_positions([1, 2, 3, 4], 10_000_000, rng=0)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 0.3 + 0.5


def test_slices_give_the_same_tokens_as_one_call():
    """Generation runs in slices of a few ms; the tokens do not depend on where they fall."""
    model = TinyLM.from_blog()
    n = 250_000  # several slices of the blog model
    one = model.generate_positions("el cielo es", n, rng=1, top_p=0.9)
    generator = np.random.default_rng(1)
    context, parts = [3, 1, 4], []
    for size in (1, 99_999, 150_000):
        parts += model.generate_positions(context, size, rng=generator, top_p=0.9)
        context = ([3, 1, 4] + parts)[-3:]
    assert parts == one


@pytest.mark.parametrize("method", ["generate", "generate_positions"])
def test_a_number_of_tokens_that_cannot_be_held_is_refused_up_front(method):
    model = TinyLM.from_blog()
    start = time.perf_counter()
    with pytest.raises(
        ValueError, match=r"max_new_tokens=10000000000000000 would need .* of memory"
    ):
        getattr(model, method)("el cielo es", 10**16, rng=0)
    with pytest.raises(ValueError, match="memory"):
        model.draw_next("el cielo es", draws=10**16, rng=0)
    assert time.perf_counter() - start < 1.0
    # stream() holds nothing: a huge count is fine, and lazy
    stream = model.stream("el cielo es", 10**16, rng=0)
    assert [next(stream) for _ in range(3)] == model.generate("el cielo es", 3, rng=0).split()


def test_train_step_refuses_a_loss_above_the_limit_and_changes_nothing():
    rng = np.random.default_rng(9)
    state = TrainState(rng.normal(size=(10, 2)), rng.normal(size=(4, 3)), rng.normal(size=(3, 10)))
    before = state.W2.copy()
    with pytest.raises(Diverged, match=r"above 0\.01"):
        state.step([[1, 2]], [3], 0.1, max_loss=0.01)
    assert state.steps == 0
    np.testing.assert_array_equal(state.W2, before)
    loss = state.step([[1, 2]], [3], 0.1, max_loss=1e3)
    assert state.steps == 1 and math.isfinite(loss)
    with pytest.raises(ValueError, match="max_loss"):
        state.step([[1, 2]], [3], 0.1, max_loss=0.0)


def test_vocab_positions_of_the_other_byte_order():
    vocab = Vocab(["a", "b", "c"])
    assert vocab.decode(swapped([2, 0, 1], np.int64)) == "c a b"
