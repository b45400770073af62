"""Training end to end: vocabulary from text, the built-in corpus, the training loop,
save/load, the tanh model's generation, and the train / plot / --model commands."""

import json
import os
import sys

import numpy as np
import pytest

from tinyllm import TinyLM, TinyLMConfig, UnknownTokenError, Vocab, blog
from tinyllm._compiled import sample_logits
from tinyllm.cli import main
from tinyllm.corpus import builtin_text, corpus_lines, windows
from tinyllm.io import load_metadata, save_model
from tinyllm.train import TrainingDiverged, TrainOptions, fit, learning_rate, train
from tinyllm.vocab import tokenize

# The seeded run of the README and of test_training_learns_the_builtin_corpus.
SEEDED = TrainOptions(epochs=30, seed=0)
LOSS_BOUND = 1.2        # its final training loss (measured 0.90; the first epoch's is 3.5)


@pytest.fixture(scope="module")
def trained():
    return train(options=SEEDED)


# -- vocabulary from text ------------------------------------------------------
def test_tokenize_words_and_punctuation():
    assert tokenize("El cielo es azul.") == ["el", "cielo", "es", "azul", "."]
    assert tokenize("¿De qué color es el CIELO?") == ["¿", "de", "qué", "color", "es", "el", "cielo", "?"]
    assert tokenize("fri\u0301o, frío") == ["frío", ",", "frío"]          # NFC first
    assert tokenize("es azul.", "whitespace") == ["es", "azul."]
    with pytest.raises(ValueError, match="tokenizer"):
        tokenize("x", "bpe")


def test_vocab_from_text_counts_unk_and_decode():
    v = Vocab.from_text("El cielo es azul. El mar es azul. El sol es amarillo.", min_count=2)
    assert v.tokens == ("<unk>", "el", "es", ".", "azul")          # by count, ties: first seen
    assert v.tokenizer == "words" and v.unk_position == 0 and v.ids == tuple(range(5))
    assert v.encode("El cielo es azul.") == [1, 0, 2, 4, 3]          # cielo: below min_count
    assert v.encode("la luna") == [0, 0]                              # unknown at encode time
    assert v.decode([1, 0, 2, 4, 3]) == "el <unk> es azul."
    full = Vocab.from_text("¿el cielo es azul? sí.")
    assert full.decode(full.encode("¿el cielo es azul? sí.")) == "¿el cielo es azul? sí."
    assert Vocab.from_text("a b", unk=False).tokens == ("a", "b")
    with pytest.raises(UnknownTokenError):
        Vocab.from_text("a b", unk=False).encode("c")
    with pytest.raises(ValueError, match="no words"):
        Vocab.from_text("  \n ")
    with pytest.raises(ValueError, match="min_count"):
        Vocab.from_text("a b", min_count=0)
    with pytest.raises(ValueError, match="min_count=3"):
        Vocab.from_text("a b", min_count=3)
    with pytest.raises(ValueError, match="one word or one punctuation"):
        Vocab(["es.", "a"], tokenizer="words")


def test_blog_vocab_is_unchanged():
    v = blog.vocab()
    assert v.tokenizer == "whitespace" and v.unk_position is None
    assert v.encode("El cielo es") == [3, 1, 4] and v.encode("frio") == [2]
    with pytest.raises(UnknownTokenError, match="'es.'"):
        v.encode("el cielo es.")
    assert v != Vocab(v.tokens, v.ids, tokenizer="words")


# -- the corpus ----------------------------------------------------------------
def test_builtin_corpus():
    lines = corpus_lines(builtin_text())
    assert 250 <= len(lines) <= 600
    assert "el cielo es azul." in lines and "el hielo es frío." in lines
    assert all(not line.startswith("#") for line in lines)
    w, t = windows(np.arange(5), 3)
    np.testing.assert_array_equal(w, [[0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(t, [3, 4])
    assert windows(np.arange(3), 3)[0].shape == (0, 3)


# -- the training loop -----------------------------------------------------------
def test_learning_rate_schedules():
    lrs = lambda **kw: [learning_rate(TrainOptions(lr=1.0, **kw), s, 10) for s in range(1, 11)]
    assert lrs() == [1.0] * 10
    lin = lrs(schedule="linear")
    assert lin[0] == 1.0 and lin[-1] == pytest.approx(0.1) and lin == sorted(lin, reverse=True)
    cos = lrs(schedule="cosine", warmup=2)
    assert cos[:2] == [0.5, 1.0] and cos[2] == 1.0 and 0 < cos[-1] < 0.05
    assert all(lr > 0 for lr in lin + cos)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=0.0), "learning rate"), (dict(lr=-1.0), "learning rate"),
    (dict(lr=float("nan")), "learning rate"), (dict(epochs=0), "epochs"),
    (dict(schedule="step"), "schedule"), (dict(optimizer="lbfgs"), "optimizer"),
    (dict(val_fraction=1.0), "val_fraction"), (dict(batch_size=0), "batch_size"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainOptions(**kwargs)


def test_training_learns_the_builtin_corpus(trained):
    """Seeded: the loss falls below LOSS_BOUND and "el cielo es" continues with "azul"."""
    history = trained.history
    assert len(history) == 30 and history[-1].steps == trained.steps
    assert history[0].train_loss > 3.0
    assert history[-1].train_loss < LOSS_BOUND
    assert history[-1].train_perplexity == pytest.approx(np.exp(history[-1].train_loss))
    assert history[-1].val_loss is not None and trained.val_examples > 0
    model = trained.model
    probs = model.next_token_probs("el cielo es")
    assert model.vocab[int(probs.argmax())] == "azul" and probs.max() > 0.5
    assert model.vocab[int(model.logits("el hielo es").argmax())] == "frío"


def test_training_is_reproducible_and_tanh_trains(trained):
    again = train(options=TrainOptions(epochs=3, seed=0))
    other = train(options=TrainOptions(epochs=3, seed=0))
    np.testing.assert_array_equal(again.model.W2, other.model.W2)
    assert [h.train_loss for h in again.history] == [h.train_loss for h in trained.history[:3]]
    tanh = train(activation="tanh", options=TrainOptions(epochs=8, optimizer="sgd", lr=0.3,
                                                         schedule="cosine", warmup=5, seed=1))
    assert tanh.model.config.activation == "tanh"
    assert tanh.history[-1].train_loss < tanh.history[0].train_loss


def test_bad_corpora():
    with pytest.raises(ValueError, match="empty"):
        train("# only a comment\n\n")
    with pytest.raises(ValueError, match="needs at least 4"):
        train("el cielo", context=3)
    with pytest.raises(UnknownTokenError):
        fit(TinyLM.from_blog(), "el cielo es verde")


def test_divergence_names_the_step_and_keeps_the_last_good_weights():
    with pytest.raises(TrainingDiverged, match=r"step \d+ \(epoch 1\)") as info:
        train(dtype="float32", options=TrainOptions(epochs=2, lr=1e37, optimizer="sgd"))
    err = info.value
    assert isinstance(err, ValueError)
    result = err.result
    assert result.steps == err.step - 1
    for w in (result.model.embedding.table, result.model.W1, result.model.W2):
        assert np.isfinite(w).all()


# -- the tanh model generates as a step-by-step forward pass + the sampler ------
def test_tanh_generation_matches_a_step_by_step_forward():
    config = TinyLMConfig(vocab_size=12, dim=3, context=3, hidden=6, activation="tanh")
    model = TinyLM.random(config, seed=4)
    plain = TinyLM(TinyLMConfig(12, 3, 3, 6), model.vocab, model.embedding.table, model.W1, model.W2)
    assert not np.allclose(model.logits([0, 1, 2]), plain.logits([0, 1, 2]))
    prompt = [3, 1, 4]
    for options in (dict(temperature=0.7), dict(top_k=4), dict(top_p=0.9), dict(temperature=0)):
        got = model.generate_positions(prompt, 25, rng=7, **options)
        rng = np.random.default_rng(7)
        context, expected = list(prompt), []
        for _ in range(25):
            x = model.embedding.table[context].reshape(-1)
            logits = np.tanh(x @ model.W1) @ model.W2
            token = int(sample_logits(logits, rng=rng, **options))
            expected.append(token)
            context = context[1:] + [token]
        assert got == expected, options
    trace = model.trace([0, 1, 2])
    np.testing.assert_allclose(trace.f1, np.tanh(trace.x @ model.W1), rtol=1e-12)
    with pytest.raises(ValueError, match="activation"):
        TinyLMConfig(5, activation="relu")


# -- save and load -------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_bit_exact(tmp_path, trained, dtype):
    models = [TinyLM.from_blog(dtype),
              TinyLM.random(TinyLMConfig(7, 3, 2, 4, dtype=dtype, activation="tanh"), seed=2),
              trained.model]
    for i, model in enumerate(models):
        path = tmp_path / f"m{i}.npz"
        model.save(path)
        back = TinyLM.load(path)
        assert back.config == model.config and back.vocab == model.vocab
        assert back.vocab.tokenizer == model.vocab.tokenizer
        for a, b in ((back.embedding.table, model.embedding.table), (back.W1, model.W1),
                     (back.W2, model.W2)):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert TinyLM.load(tmp_path / "m0.npz").vocab.ids == blog.IDS
    meta = load_metadata(tmp_path / "m0.npz")
    assert meta["format"] == "tinyllm" and meta["version"] == 1


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    TinyLM.from_blog().save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(KeyboardInterrupt):
        TinyLM.random(TinyLMConfig(5), seed=1).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]       # no temporary file left


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    meta = json.loads(str(entries["meta"]))
    for key, value in changes.items():
        if key == "meta":
            meta.update(value)
        elif value is None:
            entries.pop(key)
        else:
            entries[key] = value
    entries["meta"] = np.array(json.dumps(meta))
    np.savez(path, **entries)


def test_bad_model_files(tmp_path):
    good = tmp_path / "good.npz"
    TinyLM.from_blog().save(good)
    data = good.read_bytes()
    cases = {
        "truncated": lambda p: p.write_bytes(data[: len(data) // 2]),
        "garbage": lambda p: p.write_bytes(b"hello, not a model"),
        "empty": lambda p: p.write_bytes(b""),
        "npy": lambda p: np.save(open(p, "wb"), np.zeros(3)),
        "pickle": lambda p: np.savez(p, meta=np.array([{"a": 1}], dtype=object), embeddings=0, W1=0, W2=0),
    }
    for name, make in cases.items():
        path = tmp_path / f"{name}.npz"
        make(path)
        with pytest.raises(ValueError, match="not a tinyllm model"):
            TinyLM.load(path)
    for changes, match in (
        (dict(meta={"version": 2}), "version 2"),
        (dict(W2=np.zeros((1, 4))), "W2 has shape"),
        (dict(W1=np.zeros((6, 1), dtype=np.float32)), "float32"),
        (dict(W1=None), "no W1"),
        (dict(meta={"vocab": {"tokens": ["a"], "ids": [0], "tokenizer": "whitespace"}}), "vocab has 1"),
        (dict(meta={"config": {"vocab_size": 5, "colour": 1}}), "consistent"),
    ):
        path = tmp_path / "changed.npz"
        path.write_bytes(data)
        _rewrite(path, **changes)
        with pytest.raises(ValueError, match=match):
            TinyLM.load(path)
    with pytest.raises(FileNotFoundError):
        TinyLM.load(tmp_path / "missing.npz")
    with pytest.raises(OSError):
        save_model(TinyLM.from_blog(), tmp_path / "no" / "such" / "dir.npz")


# -- the command line ----------------------------------------------------------
def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, trained):
    path = tmp_path_factory.mktemp("model") / "trained.npz"
    save_model(trained.model, path)
    return path


def test_cli_train_then_generate_explain_sample(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("el cielo es azul.\nel hielo es frío.\n" * 20, encoding="utf-8")
    out = tmp_path / "m.npz"
    status, stdout, err = run(capsys, "train", corpus, "--dim", 4, "--context", 3, "--hidden", 8,
                              "--epochs", 20, "--seed", 1, "--out", out, "--lr", 0.05)
    assert status == 0, err
    assert "saved to" in stdout and 'after "el cielo es" it predicts: azul' in stdout
    assert err.count("epoch ") == 20 and "perplexity" in err
    model = TinyLM.load(out)
    assert (model.config.dim, model.config.context, model.config.hidden) == (4, 3, 8)
    assert load_metadata(out)["training"]["corpus"] == "corpus.txt"
    status, stdout, _ = run(capsys, "generate", "--model", out, "el cielo es", "-n", 3,
                            "--temperature", 0)
    assert status == 0 and stdout.strip() == "el cielo es azul. el"
    status, stdout, _ = run(capsys, "explain", "--model", out, "el hielo es")
    assert status == 0 and "most likely next word: frío" in stdout
    status, stdout, _ = run(capsys, "sample", "--model", out, "el cielo es", "--draws", 5, "--seed", 0)
    assert status == 0 and "5 draws" in stdout


def test_cli_generate_with_trained_model(capsys, model_file):
    status, stdout, err = run(capsys, "generate", "--model", model_file, "El cielo es", "-n", 8,
                              "--seed", 0)
    assert status == 0 and stdout.startswith("El cielo es") and err == ""
    status, stdout, _ = run(capsys, "explain", "--model", model_file, "el mar es", "--json")
    assert json.loads(stdout)["part"] == 3


@pytest.mark.parametrize("argv, message", [
    (["train", "{empty}"], "corpus is empty"),
    (["train", "{short}", "--context", "3"], "needs at least 4"),
    (["train", "--lr", "0"], "learning rate"),
    (["train", "--lr", "-0.5"], "learning rate"),
    (["train", "--out", "{nodir}/m.npz"], "m.npz"),
    (["train", "{missing}"], "No such file"),
    (["generate", "--model", "{missing}", "el cielo es"], "no such model file"),
    (["generate", "--model", "{corrupt}", "el cielo es"], "not a tinyllm model"),
    (["explain", "--model", "{corrupt}", "el cielo es", "--part", "1"], "--part 3"),
    (["train", "--epochs", "1", "--lr", "1e37", "--optimizer", "sgd", "--dtype", "float32",
      "--out", "{out}"], "stopped at step"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    (tmp_path / "short.txt").write_text("el cielo\n", encoding="utf-8")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out.npz"
    out.write_bytes(b"the previous model")
    names = dict(empty=tmp_path / "empty.txt", short=tmp_path / "short.txt",
                 nodir=tmp_path / "no" / "dir", missing=tmp_path / "missing.txt",
                 corrupt=tmp_path / "corrupt.npz", out=out)
    status, stdout, err = run(capsys, *[a.format(**names) for a in argv])
    assert status == 2 and stdout == ""
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert out.read_bytes() == b"the previous model"       # nothing lost


def test_cli_missing_optional_dependencies(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    status, _, err = run(capsys, "plot", "embeddings", "--out", tmp_path / "e.png")
    assert status == 2 and "pip install 'tinyllm-cython[plot]'" in err and err.count("\n") == 1
    status, _, err = run(capsys, "train", "--plot-loss", tmp_path / "l.png", "--out", tmp_path / "m")
    assert status == 2 and "matplotlib" in err and not (tmp_path / "m").exists()
    status, _, err = run(capsys, "train", "--progress", "on", "--out", tmp_path / "m")
    assert status == 2 and "pip install 'tinyllm-cython[progress]'" in err
    # auto: no tqdm means no bar, and training goes on.
    status, stdout, _ = run(capsys, "train", "--epochs", "1", "--out", tmp_path / "m", "-q")
    assert status == 0 and (tmp_path / "m").exists()


def test_plot_embeddings(tmp_path, capsys, model_file):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install 'tinyllm-cython[plot]')")
    from tinyllm.plot import embedding_coordinates

    points, xlabel, ylabel = embedding_coordinates(TinyLM.from_blog())
    assert (xlabel, ylabel) == ("Sustantivo", "Adjetivo")
    np.testing.assert_array_equal(points, blog.EMBEDDINGS)
    points, xlabel, _ = embedding_coordinates(TinyLM.load(model_file))
    assert points.shape == (len(TinyLM.load(model_file).vocab), 2) and "principal" in xlabel
    for argv in (["plot", "embeddings", "--out", tmp_path / "blog.png"],
                 ["plot", "embeddings", "--model", model_file, "--out", tmp_path / "trained.png"]):
        status, stdout, err = run(capsys, *argv)
        assert status == 0, err
        assert argv[-1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, err = run(capsys, "train", "--epochs", "2", "--out", tmp_path / "m.npz",
                         "--plot-loss", tmp_path / "loss.png", "-q")
    assert status == 0, err
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
