"""Batched generation: TinyLM.generate and generate_positions on a list of prompts give
each sequence exactly what it would get alone, with its own Generator."""

import numpy as np
import pytest
from test_hostile_arrays import seconds_to_stop_after_ctrl_c

import tinyllm
from tinyllm import TinyLM, TinyLMConfig


@pytest.fixture(scope="module")
def models():
    def random(dtype):
        config = TinyLMConfig(vocab_size=300, dim=4, context=3, hidden=24, dtype=dtype)
        return TinyLM.random(config, seed=1)

    return {"blog": TinyLM.from_blog(), "float32": random("float32"), "float64": random("float64")}


def prompts_of(model, B, seed=0):
    rng = np.random.default_rng(seed)
    c, V = model.config.context, model.config.vocab_size
    return [rng.integers(0, V, size=c + i % 3).tolist() for i in range(B)]


OPTIONS = [
    {},
    {"temperature": 0},
    {"temperature": 0.8, "top_k": 7, "top_p": 0.9},
    {"min_p": 0.1, "repetition_penalty": 1.5, "penalty_last_n": 4},
    {"typical_p": 0.7, "presence_penalty": 0.3, "frequency_penalty": 0.1},
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("name", ["blog", "float32", "float64"])
def test_each_sequence_gets_its_tokens_alone(models, name, options):
    model = models[name]
    prompts = prompts_of(model, 6)
    seeds = [11, 12, 13, 14, 15, 16]
    batch = model.generate_positions(prompts, 25, rng=seeds, **options)
    alone = [model.generate_positions(p, 25, rng=s, **options) for p, s in zip(prompts, seeds)]
    assert batch == alone
    texts = model.generate(prompts, 25, rng=seeds, **options)
    assert texts == [model.generate(p, 25, rng=s, **options) for p, s in zip(prompts, seeds)]


def test_a_single_seed_is_split_with_seed_sequence_spawn(models):
    model = models["float32"]
    prompts = prompts_of(model, 4)
    streams = np.random.SeedSequence(2024).spawn(4)
    alone = [
        model.generate_positions(p, 30, rng=np.random.default_rng(s))
        for p, s in zip(prompts, streams)
    ]
    assert model.generate_positions(prompts, 30, rng=2024) == alone


def test_a_generator_is_split_with_its_spawn(models):
    model = models["float32"]
    prompts = prompts_of(model, 3)
    children = np.random.default_rng(5).spawn(3)
    alone = [model.generate_positions(p, 30, rng=g) for p, g in zip(prompts, children)]
    assert model.generate_positions(prompts, 30, rng=np.random.default_rng(5)) == alone


def test_no_seed_gives_independent_sequences(models):
    model = models["float32"]
    out = model.generate_positions([prompts_of(model, 1)[0]] * 4, 40)
    assert len(out) == 4 and all(len(seq) == 40 for seq in out)
    assert len({tuple(seq) for seq in out}) > 1


def test_lengths_and_stop_words_per_sequence():
    model = TinyLM.from_blog()
    prompts = ["el cielo es"] * 4
    lengths = [0, 3, 9, 20]
    seeds = [1, 2, 3, 4]
    batch = model.generate(prompts, lengths, rng=seeds, stop=["frío"])
    alone = [model.generate(p, n, rng=s, stop=["frío"]) for p, n, s in zip(prompts, lengths, seeds)]
    assert batch == alone
    assert batch[0] == ""


def test_texts_and_positions_mix_in_one_batch(models):
    model = models["blog"]
    mixed = ["el cielo es", model.encode_prompt("es el cielo")]
    assert model.generate(mixed, 5, rng=[0, 1]) == [
        model.generate(mixed[0], 5, rng=0),
        model.generate(mixed[1], 5, rng=1),
    ]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_new_tokens": [1, 2]}, ValueError, "max_new_tokens has 2 items for 3 prompts"),
        ({"rng": [1, 2]}, ValueError, "rng has 2 items for 3 prompts"),
        ({"max_new_tokens": [1, -1, 2]}, ValueError, "max_new_tokens"),
        ({"rng": -1}, ValueError, "rng"),
    ],
)
def test_bad_batch_arguments(kwargs, error, match):
    model = TinyLM.from_blog()
    with pytest.raises(error, match=match):
        model.generate(["el cielo es"] * 3, **kwargs)


def test_a_generator_shared_between_sequences_is_refused():
    model = TinyLM.from_blog()
    g = np.random.default_rng(0)
    with pytest.raises(ValueError, match="Generator of its own"):
        model.generate(["el cielo es"] * 2, 3, rng=[g, g])


def test_a_bad_prompt_in_a_batch_is_named_like_a_single_one():
    model = TinyLM.from_blog()
    with pytest.raises(tinyllm.UnknownTokenError):
        model.generate(["el cielo es", "el mar es"], 3)
    with pytest.raises(ValueError, match="needs at least 3"):
        model.generate(["el cielo es", "el cielo"], 3)


def test_one_prompt_as_positions_is_not_a_batch():
    model = TinyLM.from_blog()
    positions = model.encode_prompt("el cielo es")
    assert isinstance(model.generate(positions, 3, rng=0), str)
    assert isinstance(model.generate_positions(positions, 3, rng=0), list)
    with pytest.raises(ValueError, match="needs at least 3"):  # an empty prompt, not a batch
        model.generate([], 3)


def test_a_bad_prompt_says_which_one():
    model = TinyLM.from_blog()
    with pytest.raises(ValueError, match="prompt 1 of the batch: the prompt has 2 tokens"):
        model.generate(["el cielo es", "el cielo"], 3)
    with pytest.raises(
        tinyllm.UnknownTokenError, match="prompt 2 of the batch: unknown word 'mar'"
    ) as info:
        model.generate(["el cielo es", "es el cielo", "el mar es"], 3)
    assert info.value.word == "mar"  # still the vocabulary's error, with its attributes
    with pytest.raises(TypeError, match="prompt 0 of the batch: a position must be an integer"):
        model.generate_positions([["el", "cielo", "es"]], 3)


@pytest.mark.parametrize("method", ["stream", "stream_positions", "continuation"])
def test_streams_take_one_prompt(method):
    model = TinyLM.from_blog()
    with pytest.raises(
        TypeError, match=f"{method} takes one prompt.*generate and generate_positions"
    ):
        getattr(model, method)(["el cielo es", "es el cielo"], 3)


@pytest.mark.parametrize("stop", [None, ["t5"]])
def test_ctrl_c_stops_a_long_batch_within_half_a_second(stop):
    """The batched loop runs in slices of a few ms, with a look for signals between them."""
    config = TinyLMConfig(vocab_size=20_000, dim=16, context=4, hidden=128, dtype="float32")
    model = TinyLM.random(config, seed=0)
    prompts, seeds = [[1, 2, 3, 4]] * 4, [0, 1, 2, 3]
    call = lambda: model.generate_positions(prompts, 1_000_000, rng=seeds, stop=stop)  # noqa: E731
    assert seconds_to_stop_after_ctrl_c(call) < 0.5


def test_a_batch_too_large_for_memory_is_refused_before_any_work(monkeypatch):
    import tinyllm._arrays as arrays

    monkeypatch.setattr(arrays, "physical_memory", lambda: 10_000_000)
    model = TinyLM.random(TinyLMConfig(vocab_size=20_000, dim=4, context=2, hidden=8))
    with pytest.raises(ValueError, match=r"a batch of 20 prompts would need .*\(generate fewer"):
        model.generate_positions([[0, 1]] * 20, 3)
    assert len(model.generate_positions([[0, 1]] * 2, 3)) == 2  # 1.6 MB: fine


def test_a_batch_computes_its_first_logits_together_and_names_an_overflow():
    config = TinyLMConfig(vocab_size=50, dim=2, context=2, hidden=4, dtype="float32")
    rng = np.random.default_rng(0)
    E = rng.standard_normal((50, 2)).astype(np.float32)
    E[7] = 3e38  # a context holding token 7 overflows f1, and so the logits
    model = TinyLM(config, tinyllm.Vocab([f"t{i}" for i in range(50)]), E,
                   np.ones((4, 4), np.float32), np.ones((4, 50), np.float32))  # fmt: skip
    with pytest.raises(ValueError, match=r"token 0 are not finite.*\(sequence 1 of the batch\)"):
        model.generate_positions([[1, 2], [7, 7], [3, 4]], 3, rng=[0, 1, 2])
    with pytest.raises(ValueError, match="token 0 are not finite"):  # alone: when made
        model.continuation([7, 7], 3)
    assert len(model.generate_positions([[1, 2], [3, 4]], 3, rng=[0, 1])) == 2
