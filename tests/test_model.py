import numpy as np
import pytest

import tinyllm
from tinyllm import Embedding, TinyLM, TinyLMConfig, UnknownTokenError, Vocab
from tinyllm import reference as ref

from conftest import BLOG_IDS, BLOG_LOGITS, BLOG_PROBS, BLOG_X


# -- configuration -------------------------------------------------------------
def test_config_defaults_and_validation():
    c = TinyLMConfig(vocab_size=5)
    assert (c.dim, c.context, c.hidden, c.dtype, c.input_size) == (2, 3, 1, "float64", 6)
    assert TinyLMConfig(5, dtype=np.float32).dtype == "float32"
    with pytest.raises(ValueError, match="context must be >= 1"):
        TinyLMConfig(5, context=0)
    with pytest.raises(TypeError, match="dim must be an integer"):
        TinyLMConfig(5, dim=2.5)
    with pytest.raises(TypeError):
        TinyLMConfig(True)
    with pytest.raises(ValueError, match="dtype"):
        TinyLMConfig(5, dtype="int32")
    with pytest.raises(ValueError, match="vocab_size"):
        TinyLMConfig(-1)


# -- embedding -----------------------------------------------------------------
def test_embedding_lookup():
    emb = Embedding([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert emb.vocab_size == 3 and emb.dim == 2
    np.testing.assert_array_equal(emb.lookup([2, 0, 2]), [[5, 6], [1, 2], [5, 6]])
    assert emb.lookup(np.array([1], dtype=np.uint8)).shape == (1, 2)
    assert not emb.table.flags.writeable
    assert Embedding([[1, 2]], dtype="float32").table.dtype == np.float32


@pytest.mark.parametrize(
    "table, exc",
    [
        ([[1.0, np.nan]], ValueError),
        ([[np.inf, 1.0]], ValueError),
        ([1.0, 2.0], ValueError),
        (np.zeros((0, 2)), ValueError),
        ([[1 + 1j]], TypeError),
        ([[1e300]], None),
    ],
)
def test_embedding_bad_tables(table, exc):
    if exc is None:
        with pytest.raises(ValueError, match="overflows"):
            Embedding(table, dtype="float32")
        return
    with pytest.raises(exc):
        Embedding(table)


def test_embedding_bad_positions():
    emb = Embedding([[1.0], [2.0]])
    with pytest.raises(ValueError, match="out of range"):
        emb.lookup([2])
    with pytest.raises(ValueError, match="out of range"):
        emb.lookup([-1])
    with pytest.raises(TypeError):
        emb.lookup([0.5])
    with pytest.raises(ValueError, match="1-D"):
        emb.lookup([[0]])


# -- the blog's model ----------------------------------------------------------
def test_blog_model_golden_numbers():
    model = TinyLM.from_blog()
    tr = model.trace("el cielo es")
    assert tr.words == ["el", "cielo", "es"] and tr.ids == BLOG_IDS
    np.testing.assert_array_equal(tr.embeddings, np.reshape(BLOG_X, (3, 2)))
    np.testing.assert_array_equal(tr.x, BLOG_X)
    np.testing.assert_allclose(tr.f1, [1.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.logits, BLOG_LOGITS, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.probs, BLOG_PROBS, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.next_token_probs("el cielo es"), BLOG_PROBS, atol=1e-9)
    assert tr.tokens[int(np.argmax(tr.probs))] == "azul"


def test_blog_model_float32():
    model = TinyLM.from_blog("float32")
    probs = model.next_token_probs("EL Cielo es")
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, BLOG_PROBS, rtol=1e-5)


def test_temperature_matches_reference():
    model = TinyLM.from_blog()
    for t in (0.1, 0.5, 2.0, 10.0):
        got = model.next_token_probs("el cielo es", temperature=t)
        np.testing.assert_allclose(got, ref.softmax(BLOG_LOGITS, temperature=t), rtol=1e-12)
    # 0 is greedy, as in generate: all the mass on the most likely token
    np.testing.assert_array_equal(
        model.next_token_probs("el cielo es", temperature=0), [1.0, 0.0, 0.0, 0.0, 0.0]
    )
    with pytest.raises(ValueError, match="temperature"):
        model.next_token_probs("el cielo es", temperature=-1)


def test_long_prompt_uses_last_context_words():
    model = TinyLM.from_blog()
    np.testing.assert_array_equal(
        model.logits("azul frío el cielo es"), model.logits("el cielo es")
    )
    assert model.trace("azul frío el cielo es").words == ["el", "cielo", "es"]
    assert model.context_positions([0, 3, 1, 4]) == [3, 1, 4]


def test_short_prompt_says_how_many_needed():
    model = TinyLM.from_blog()
    with pytest.raises(ValueError, match=r"has 2 tokens.*needs at least 3"):
        model.logits("cielo es")
    with pytest.raises(ValueError, match="has 0 tokens"):
        model.logits("   ")


def test_unknown_word_in_prompt():
    with pytest.raises(UnknownTokenError, match="'mar'"):
        TinyLM.from_blog().logits("el mar es")


def test_trace_to_dict_is_json_ready():
    import json

    d = TinyLM.from_blog().trace("el cielo es").to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["f1"] == pytest.approx([1.0]) and d["ids"] == BLOG_IDS


def test_forward_matches_pure_python_on_random_models():
    for seed in range(5):
        cfg = TinyLMConfig(vocab_size=7, dim=3, context=4, hidden=5)
        model = TinyLM.random(cfg, seed=seed)
        positions = list(np.random.default_rng(seed).integers(0, 7, size=6))
        ctx = positions[-4:]
        x = [v for p in ctx for v in model.embedding.table[p].tolist()]
        f1 = ref.project(x, model.W1.tolist())
        logits = ref.project(f1, model.W2.tolist())
        np.testing.assert_allclose(model.logits(positions), logits, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            model.next_token_probs(positions), ref.softmax(logits), rtol=1e-12
        )


def test_model_rejects_mismatched_arrays():
    cfg = TinyLMConfig(vocab_size=2, dim=1, context=1, hidden=1)
    vocab = Vocab(["a", "b"])
    ok = dict(embeddings=[[1.0], [2.0]], W1=[[1.0]], W2=[[1.0, 2.0]])
    TinyLM(cfg, vocab, **ok)
    with pytest.raises(ValueError, match="W2 has shape"):
        TinyLM(cfg, vocab, **{**ok, "W2": [[1.0, 2.0, 3.0]]})
    with pytest.raises(ValueError, match="embeddings has shape"):
        TinyLM(cfg, vocab, **{**ok, "embeddings": [[1.0, 2.0], [2.0, 3.0]]})
    with pytest.raises(ValueError, match="NaN"):
        TinyLM(cfg, vocab, **{**ok, "W1": [[np.nan]]})
    with pytest.raises(ValueError, match="vocab has 3 tokens"):
        TinyLM(cfg, Vocab(["a", "b", "c"]), **ok)
    with pytest.raises(TypeError):
        TinyLM({"vocab_size": 2}, vocab, **ok)


def test_weights_are_read_only():
    model = TinyLM.from_blog()
    with pytest.raises(ValueError):
        model.W1[0, 0] = 5.0
    assert tinyllm.TinyLM is TinyLM
