"""Training end to end: vocabulary from text, the built-in corpus, the training loop,
save/load, the tanh model's generation, and the train / plot / --model commands."""

import io
import json
import os
import sys

import numpy as np
import pytest

from tinyllm import TinyLM, TinyLMConfig, UnknownTokenError, Vocab, blog
from tinyllm._compiled import TrainState, sample_logits
from tinyllm.cli import main
from tinyllm.corpus import builtin_text, corpus_lines, encode_lines, windows
from tinyllm.io import load_metadata, save_model
from tinyllm.train import (
    STOP_REASONS,
    TrainingDiverged,
    TrainOptions,
    _split_lines,
    fit,
    learning_rate,
    train,
)
from tinyllm.vocab import tokenize

# The seeded run of the README and of test_training_learns_the_builtin_corpus: the
# defaults (at most 30 epochs, early stopping with patience 5, weight decay 0.3).
SEEDED = TrainOptions(epochs=30, seed=0)
# Issue 13's target: the model it keeps has a validation loss at most the best epoch's
# of the old default run (2.55: no weight decay, epoch 3 of 30), and within 2 % of the
# lowest of the same run without early stopping. Measured: 2.1957 at epoch 11 of 16,
# the lowest of all 30 epochs.
VAL_TARGET = 2.55


@pytest.fixture(scope="module")
def trained():
    return train(options=SEEDED)


# -- vocabulary from text ------------------------------------------------------
def test_tokenize_words_and_punctuation():
    assert tokenize("El cielo es azul.") == ["el", "cielo", "es", "azul", "."]
    assert tokenize("¿De qué color es el CIELO?") == [
        "¿",
        "de",
        "qué",
        "color",
        "es",
        "el",
        "cielo",
        "?",
    ]
    assert tokenize("fri\u0301o, frío") == ["frío", ",", "frío"]  # NFC first
    assert tokenize("es azul.", "whitespace") == ["es", "azul."]
    with pytest.raises(ValueError, match="tokenizer"):
        tokenize("x", "bpe")


def test_vocab_from_text_counts_unk_and_decode():
    v = Vocab.from_text("El cielo es azul. El mar es azul. El sol es amarillo.", min_count=2)
    assert v.tokens == ("<unk>", "el", "es", ".", "azul")  # by count, ties: first seen
    assert v.tokenizer == "words" and v.unk_position == 0 and v.ids == tuple(range(5))
    assert v.encode("El cielo es azul.") == [1, 0, 2, 4, 3]  # cielo: below min_count
    assert v.encode("la luna") == [0, 0]  # unknown at encode time
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
    with pytest.raises(UnknownTokenError, match=r"'es\.'"):
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
    def lrs(**kw):
        return [learning_rate(TrainOptions(lr=1.0, **kw), s, 10) for s in range(1, 11)]

    assert lrs() == [1.0] * 10
    lin = lrs(schedule="linear")
    assert lin[0] == 1.0 and lin[-1] == pytest.approx(0.1) and lin == sorted(lin, reverse=True)
    cos = lrs(schedule="cosine", warmup=2)
    assert cos[:2] == [0.5, 1.0] and cos[2] == 1.0 and 0 < cos[-1] < 0.05
    assert all(lr > 0 for lr in lin + cos)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=0.0), "learning rate"),
        (dict(lr=-1.0), "learning rate"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(epochs=0), "epochs"),
        (dict(schedule="step"), "schedule"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(val_fraction=1.0), "val_fraction"),
        (dict(batch_size=0), "batch_size"),
        (dict(patience=0), r"patience must be >= 1, or None for no early stopping, got 0"),
        (dict(patience=-3), "patience must be >= 1"),
        (dict(weight_decay=-0.1), r"weight decay must be finite and >= 0, got -0.1"),
        (dict(weight_decay=float("nan")), "weight decay"),
        (dict(weight_decay=float("inf")), "weight decay"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patience=1.5), "patience must be an integer or None"),
        (dict(patience=True), "patience"),
        (dict(patience="5"), "patience"),
        (dict(weight_decay="0.1"), "weight decay must be a number"),
        (dict(weight_decay=False), "weight decay"),
    ],
)
def test_bad_option_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        TrainOptions(**kwargs)


def test_off_switches_are_accepted():
    options = TrainOptions(patience=None, weight_decay=0)
    assert options.patience is None and options.weight_decay == 0
    assert TrainOptions(patience=np.int64(2), weight_decay=np.float32(0.5)).patience == 2


def _validation_loss(model, options, text=None):
    """The loss of ``model`` on the lines ``fit`` holds out with ``options``, recomputed."""
    lines = corpus_lines(builtin_text() if text is None else text)
    _, held = _split_lines(lines, options.val_fraction, np.random.default_rng(options.seed))
    val_w, val_t = windows(encode_lines(model.vocab, held), model.config.context)
    state = TrainState(model.embedding.table, model.W1, model.W2, batch_size=options.batch_size)
    return state.loss(val_w, val_t)


def test_training_learns_the_builtin_corpus(trained):
    """Seeded defaults: the loss falls, training stops early, the model kept is the best
    epoch's (at most VAL_TARGET) and "el cielo es" continues with "azul"."""
    history = trained.history
    assert history[-1].steps == trained.steps
    assert history[0].train_loss > 3.0 and history[-1].train_loss < 1.5
    assert history[-1].train_perplexity == pytest.approx(np.exp(history[-1].train_loss))
    assert trained.val_examples > 0 and trained.early_stopping
    val = [h.val_loss for h in history]
    assert trained.stopped == "patience" and len(history) < 30
    kept = trained.kept
    assert kept.epoch == trained.kept_epoch == int(np.argmin(val)) + 1
    assert len(history) == kept.epoch + SEEDED.patience  # stopped after `patience` epochs
    assert kept.val_loss == min(val) <= VAL_TARGET
    assert history[-1].val_loss > kept.val_loss  # so the restore mattered
    model = trained.model
    # The weights are exactly the kept epoch's: the same validation loss, to the bit.
    assert _validation_loss(model, SEEDED) == kept.val_loss
    probs = model.next_token_probs("el cielo es")
    assert model.vocab[int(probs.argmax())] == "azul" and probs.max() > 0.5
    assert model.vocab[int(model.logits("el hielo es").argmax())] == "frío"
    facts = trained.to_dict()
    assert facts["kept_epoch"] == kept.epoch and facts["stopped"] == "patience"
    assert facts["options"]["patience"] == 5 and facts["options"]["weight_decay"] == 0.3


def test_early_stopping_keeps_nearly_the_lowest_loss_of_the_whole_run(trained):
    """The target of issue 13: the same run without early stopping (patience None: every
    epoch, the last kept) goes the same way, and the kept model is within 2 % of its
    lowest validation loss."""
    full = train(options=TrainOptions(epochs=30, seed=0, patience=None))
    assert len(full.history) == 30 and full.stopped == "epochs" and not full.early_stopping
    assert full.kept_epoch == 30 and full.model.W2.tobytes() != trained.model.W2.tobytes()
    assert _validation_loss(full.model, SEEDED) == full.history[-1].val_loss
    assert [h.val_loss for h in full.history[: len(trained.history)]] == [
        h.val_loss for h in trained.history
    ]  # stopping early changes nothing before it stops
    lowest = min(h.val_loss for h in full.history)
    assert trained.kept.val_loss <= 1.02 * lowest
    assert trained.kept.val_loss <= VAL_TARGET < full.history[-1].val_loss + 0.3


def test_patience_stops_and_restores_the_best_epoch():
    """Without weight decay the validation loss is lowest at epoch 3 and then climbs:
    patience 2 stops after epoch 5 and keeps epoch 3; a patience longer than the run
    still keeps the best epoch, not the last."""
    base = dict(seed=0, weight_decay=0.0)
    short = train(options=TrainOptions(epochs=30, patience=2, **base))
    val = [h.val_loss for h in short.history]
    assert len(val) == 5 and short.stopped == "patience" and short.kept_epoch == 3
    assert val[2] == pytest.approx(2.5473, abs=1e-4) and val[2] < min(val[3:])
    options = TrainOptions(epochs=5, patience=2, **base)
    assert _validation_loss(short.model, options) == val[2]
    # All epochs run (no 2 epochs in a row without improvement... the run ends first).
    whole = train(options=TrainOptions(epochs=5, patience=10, **base))
    assert len(whole.history) == 5 and whole.stopped == "epochs" and whole.kept_epoch == 3
    np.testing.assert_array_equal(whole.model.W2, short.model.W2)
    # Stopping exactly at the last epoch is "epochs", not early.
    last = train(options=TrainOptions(epochs=5, patience=2, **base))
    assert last.stopped == "epochs" and last.kept_epoch == 3
    assert set(STOP_REASONS) == {"epochs", "patience", "diverged"}


def test_without_validation_every_epoch_runs_and_the_last_is_kept():
    result = train(options=TrainOptions(epochs=3, val_fraction=0.0, patience=1))
    assert result.val_examples == 0 and not result.early_stopping
    assert len(result.history) == 3 and result.kept_epoch == 3 and result.stopped == "epochs"
    assert all(h.val_loss is None for h in result.history)


def test_weight_decay_reaches_every_step_of_fit():
    """One step on the whole corpus, through fit, is TrainState's step with the decay;
    the decay makes the weights smaller."""
    text = "el cielo es azul.\nel hielo es frío.\n"
    vocab = Vocab.from_text(text)
    start = TinyLM.random(TinyLMConfig(len(vocab), dim=4, context=3, hidden=5), vocab, seed=3)
    w, t = windows(np.asarray(vocab.encode(text.replace("\n", " "))), 3)
    for wd in (0.0, 0.3, 2.0):
        options = TrainOptions(epochs=1, batch_size=len(w), lr=0.1, val_fraction=0, weight_decay=wd)
        model = fit(start, text, options).model
        state = TrainState(
            start.embedding.table, start.W1, start.W2, batch_size=len(w), weight_decay=wd
        )
        state.step(w, t, 0.1)  # (fit shuffles the batch: the sums' rounding differs)
        np.testing.assert_allclose(model.W2, state.W2, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(model.embedding.table, state.E, rtol=1e-12, atol=1e-15)
    strong = fit(start, text, TrainOptions(epochs=20, lr=0.05, val_fraction=0, weight_decay=5))
    plain = fit(start, text, TrainOptions(epochs=20, lr=0.05, val_fraction=0, weight_decay=0))
    assert np.linalg.norm(strong.model.W2) < 0.8 * np.linalg.norm(plain.model.W2)


def test_training_is_reproducible_and_tanh_trains(trained):
    again = train(options=TrainOptions(epochs=3, seed=0))
    other = train(options=TrainOptions(epochs=3, seed=0))
    np.testing.assert_array_equal(again.model.W2, other.model.W2)
    assert [h.train_loss for h in again.history] == [h.train_loss for h in trained.history[:3]]
    tanh = train(
        activation="tanh",
        options=TrainOptions(
            epochs=8, optimizer="sgd", lr=0.3, schedule="cosine", warmup=5, seed=1
        ),
    )
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
    assert result.stopped == "diverged" and result.kept_epoch is None and result.kept is None
    for w in (result.model.embedding.table, result.model.W1, result.model.W2):
        assert np.isfinite(w).all()


# -- the tanh model generates as a step-by-step forward pass + the sampler ------
def test_tanh_generation_matches_a_step_by_step_forward():
    config = TinyLMConfig(vocab_size=12, dim=3, context=3, hidden=6, activation="tanh")
    model = TinyLM.random(config, seed=4)
    plain = TinyLM(
        TinyLMConfig(12, 3, 3, 6), model.vocab, model.embedding.table, model.W1, model.W2
    )
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
    models = [
        TinyLM.from_blog(dtype),
        TinyLM.random(TinyLMConfig(7, 3, 2, 4, dtype=dtype, activation="tanh"), seed=2),
        trained.model,
    ]
    for i, model in enumerate(models):
        path = tmp_path / f"m{i}.npz"
        model.save(path)
        back = TinyLM.load(path)
        assert back.config == model.config and back.vocab == model.vocab
        assert back.vocab.tokenizer == model.vocab.tokenizer
        for a, b in (
            (back.embedding.table, model.embedding.table),
            (back.W1, model.W1),
            (back.W2, model.W2),
        ):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert TinyLM.load(tmp_path / "m0.npz").vocab.ids == blog.IDS
    meta = load_metadata(tmp_path / "m0.npz")
    assert meta["format"] == "tinyllm" and meta["version"] == 2
    assert meta["weight_format"] == dtype


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
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left


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


def _npy_bytes(array) -> bytes:
    """``array`` as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_bad_model_files(tmp_path):
    good = tmp_path / "good.npz"
    TinyLM.from_blog().save(good)
    data = good.read_bytes()
    cases = {
        "truncated": lambda p: p.write_bytes(data[: len(data) // 2]),
        "garbage": lambda p: p.write_bytes(b"hello, not a model"),
        "empty": lambda p: p.write_bytes(b""),
        "npy": lambda p: p.write_bytes(_npy_bytes(np.zeros(3))),
        "pickle": lambda p: np.savez(
            p, meta=np.array([{"a": 1}], dtype=object), embeddings=0, W1=0, W2=0
        ),
    }
    for name, make in cases.items():
        path = tmp_path / f"{name}.npz"
        make(path)
        with pytest.raises(ValueError, match="not a tinyllm model"):
            TinyLM.load(path)
    for changes, match in (
        (dict(meta={"version": 3}), "version 3"),
        (dict(W2=np.zeros((1, 4))), "W2 has shape"),
        (dict(W1=np.zeros((6, 1), dtype=np.float32)), "float32"),
        (dict(W1=None), "no W1"),
        (
            dict(meta={"vocab": {"tokens": ["a"], "ids": [0], "tokenizer": "whitespace"}}),
            "vocab has 1",
        ),
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
    status, stdout, err = run(
        capsys,
        "train",
        corpus,
        "--dim",
        4,
        "--context",
        3,
        "--hidden",
        8,
        "--epochs",
        20,
        "--seed",
        1,
        "--out",
        out,
        "--lr",
        0.05,
        "--patience",
        0,
    )
    assert status == 0, err
    assert "saved to" in stdout and 'after "el cielo es" it predicts: azul' in stdout
    assert err.count("epoch ") == 20 and "perplexity" in err
    assert "\nkept epoch 20 (the last): loss " in stdout and "stopped early" not in stdout
    model = TinyLM.load(out)
    assert (model.config.dim, model.config.context, model.config.hidden) == (4, 3, 8)
    facts = load_metadata(out)["training"]
    assert facts["corpus"] == "corpus.txt" and facts["options"]["patience"] is None
    assert (facts["kept_epoch"], facts["stopped"]) == (20, "epochs")
    status, stdout, _ = run(
        capsys, "generate", "--model", out, "el cielo es", "-n", 3, "--temperature", 0
    )
    assert status == 0 and stdout.strip() == "el cielo es azul. el"
    status, stdout, _ = run(capsys, "explain", "--model", out, "el hielo es")
    assert status == 0 and "most likely next word: frío" in stdout
    status, stdout, _ = run(
        capsys, "sample", "--model", out, "el cielo es", "--draws", 5, "--seed", 0
    )
    assert status == 0 and "5 draws" in stdout


def test_cli_train_stops_early_and_says_which_epoch_it_kept(tmp_path, capsys, trained):
    """The README's run: the default options, early stopping after epoch 16, epoch 11
    kept; the log, the saved facts and the saved weights agree."""
    out = tmp_path / "m.npz"
    status, stdout, err = run(capsys, "train", "--seed", 0, "--out", out)
    assert status == 0, err
    kept = trained.kept
    last = trained.history[-1].epoch
    assert err.count("epoch ") == last and f"epoch {last:>3}  loss" in err
    assert f"stopped early after epoch {last}: no lower validation loss in 5 epochs\n" in stdout
    assert (
        f"kept epoch {kept.epoch} (the lowest validation loss): loss {kept.train_loss:.4f} "
        f"(perplexity {kept.train_perplexity:.2f}), validation {kept.val_loss:.4f} "
        f"(perplexity {kept.val_perplexity:.2f})\n" in stdout
    )
    assert 'after "el cielo es" it predicts: azul' in stdout
    facts = load_metadata(out)["training"]
    assert (facts["kept_epoch"], facts["stopped"]) == (kept.epoch, "patience")
    assert len(facts["history"]) == last
    assert facts["options"]["weight_decay"] == 0.3 and facts["options"]["patience"] == 5
    saved = TinyLM.load(out)
    assert saved.W2.tobytes() == trained.model.W2.tobytes()
    assert _validation_loss(saved, SEEDED) == kept.val_loss
    # The options reach the run: no decay, patience 2 (the old curve: best at epoch 3).
    status, stdout, _ = run(
        capsys, "train", "--seed", 0, "--out", out, "-q", "--weight-decay", 0, "--patience", 2
    )
    assert status == 0 and "stopped early after epoch 5: no lower validation loss in 2" in stdout
    assert "kept epoch 3 (the lowest validation loss)" in stdout and "validation 2.5473" in stdout


def test_cli_train_without_validation(tmp_path, capsys):
    out = tmp_path / "m.npz"
    argv = ["train", "--val-fraction", 0, "--epochs", 2, "--out", out, "-q"]
    status, stdout, err = run(capsys, *argv)
    assert status == 0, err  # the default patience has nothing to watch: every epoch runs
    assert "kept epoch 2 (the last): loss " in stdout and "validation" not in stdout
    status, stdout, err = run(capsys, *argv, "--patience", 3)
    assert status == 2 and stdout == "" and err.count("\n") == 1
    assert err.startswith("tinyllm train: error: --patience needs validation examples")
    status, _, _ = run(capsys, *argv, "--patience", 0)
    assert status == 0


def test_cli_generate_with_trained_model(capsys, model_file):
    status, stdout, err = run(
        capsys, "generate", "--model", model_file, "El cielo es", "-n", 8, "--seed", 0
    )
    assert status == 0 and stdout.startswith("El cielo es") and err == ""
    status, stdout, _ = run(capsys, "explain", "--model", model_file, "el mar es", "--json")
    assert json.loads(stdout)["part"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "{empty}"], "corpus is empty"),
        (["train", "{short}", "--context", "3"], "needs at least 4"),
        (["train", "--lr", "0"], "learning rate"),
        (["train", "--lr", "-0.5"], "learning rate"),
        (["train", "--weight-decay", "-0.1"], "weight decay must be finite and >= 0, got -0.1"),
        (["train", "--weight-decay", "nan"], "weight decay must be finite"),
        (["train", "--weight-decay", "inf"], "weight decay must be finite"),
        (["train", "--out", "{nodir}/m.npz"], "m.npz"),
        (["train", "{missing}"], "No such file"),
        (["generate", "--model", "{missing}", "el cielo es"], "no such model file"),
        (["generate", "--model", "{corrupt}", "el cielo es"], "not a tinyllm model"),
        (["explain", "--model", "{corrupt}", "el cielo es", "--part", "1"], "--part 3"),
        (
            [
                "train",
                "--epochs",
                "1",
                "--lr",
                "1e37",
                "--optimizer",
                "sgd",
                "--dtype",
                "float32",
                "--out",
                "{out}",
            ],
            "stopped at step",
        ),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    (tmp_path / "short.txt").write_text("el cielo\n", encoding="utf-8")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out.npz"
    out.write_bytes(b"the previous model")
    names = dict(
        empty=tmp_path / "empty.txt",
        short=tmp_path / "short.txt",
        nodir=tmp_path / "no" / "dir",
        missing=tmp_path / "missing.txt",
        corrupt=tmp_path / "corrupt.npz",
        out=out,
    )
    status, stdout, err = run(capsys, *[a.format(**names) for a in argv])
    assert status == 2 and stdout == ""
    assert message in err and err.strip().count("\n") == 0 and "Traceback" not in err
    assert out.read_bytes() == b"the previous model"  # nothing lost


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--patience", "-1"], "argument --patience: must be >= 0, got -1"),
        (["--patience", "2.5"], "argument --patience: must be an integer, got '2.5'"),
        (["--weight-decay", "x"], "argument --weight-decay: invalid float value: 'x'"),
    ],
)
def test_cli_train_option_types(tmp_path, capsys, argv, message):
    """Values that are not numbers of the option's kind: argparse's one line, status 2."""
    with pytest.raises(SystemExit) as info:
        main(["train", *argv, "--out", str(tmp_path / "m.npz")])
    assert info.value.code == 2
    assert capsys.readouterr() == ("", f"tinyllm train: error: {message}\n")
    assert not (tmp_path / "m.npz").exists()


def test_cli_missing_optional_dependencies(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    status, _, err = run(capsys, "plot", "embeddings", "--out", tmp_path / "e.png")
    assert status == 2 and "pip install 'tinyllm-cython[plot]'" in err and err.count("\n") == 1
    status, _, err = run(
        capsys, "train", "--plot-loss", tmp_path / "l.png", "--out", tmp_path / "m"
    )
    assert status == 2 and "matplotlib" in err and not (tmp_path / "m").exists()
    status, _, err = run(capsys, "train", "--progress", "on", "--out", tmp_path / "m")
    assert status == 2 and "pip install 'tinyllm-cython[progress]'" in err
    # auto: no tqdm means no bar, and training goes on.
    status, _, _ = run(capsys, "train", "--epochs", "1", "--out", tmp_path / "m", "-q")
    assert status == 0 and (tmp_path / "m").exists()


def test_plot_embeddings(tmp_path, capsys, model_file):
    pytest.importorskip(
        "matplotlib", reason="matplotlib is not installed (pip install 'tinyllm-cython[plot]')"
    )
    from tinyllm.plot import embedding_coordinates

    points, xlabel, ylabel = embedding_coordinates(TinyLM.from_blog())
    assert (xlabel, ylabel) == ("Noun", "Adjective")  # in Spanish the post's: tests/test_i18n.py
    np.testing.assert_array_equal(points, blog.EMBEDDINGS)
    points, xlabel, _ = embedding_coordinates(TinyLM.load(model_file))
    assert points.shape == (len(TinyLM.load(model_file).vocab), 2) and "principal" in xlabel
    for argv in (
        ["plot", "embeddings", "--out", tmp_path / "blog.png"],
        ["plot", "embeddings", "--model", model_file, "--out", tmp_path / "trained.png"],
    ):
        status, _, err = run(capsys, *argv)
        assert status == 0, err
        assert argv[-1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, err = run(
        capsys,
        "train",
        "--epochs",
        "2",
        "--out",
        tmp_path / "m.npz",
        "--plot-loss",
        tmp_path / "loss.png",
        "-q",
    )
    assert status == 0, err
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_loss_curve_marks_the_kept_epoch(tmp_path, trained):
    pytest.importorskip(
        "matplotlib", reason="matplotlib is not installed (pip install 'tinyllm-cython[plot]')"
    )
    from tinyllm.plot import loss_curve, loss_figure

    kept = trained.kept
    fig = loss_figure(trained.history, "t", kept.epoch)
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    mark = f"kept: epoch {kept.epoch} (validation {kept.val_loss:.3f})"
    assert labels[:2] == ["training", "validation"] and mark in labels
    vline = ax.get_lines()[labels.index(mark)]
    assert list(vline.get_xdata()) == [kept.epoch, kept.epoch]
    assert mark in [t.get_text() for t in ax.get_legend().get_texts()]
    plain = loss_figure(trained.history, "t")
    assert [line.get_label() for line in plain.axes[0].get_lines()] == ["training", "validation"]
    path = tmp_path / "loss.png"
    loss_curve(trained.history, path, kept_epoch=kept.epoch)
    assert path.read_bytes()[:4] == b"\x89PNG"
    path.write_bytes(b"the previous curve")
    for bad in (0, len(trained.history) + 1):
        with pytest.raises(ValueError, match="kept_epoch"):
            loss_curve(trained.history, path, kept_epoch=bad)
    assert path.read_bytes() == b"the previous curve"


def test_plot_figures_for_notebooks():
    """embeddings_figure and loss_figure return the Figure the PNG writers save: the
    blog's five points on its axes, and one line per loss (validation only when there is one)."""
    pytest.importorskip("matplotlib")
    from tinyllm.plot import embeddings_figure, loss_figure

    (ax,) = embeddings_figure(TinyLM.from_blog()).axes
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), blog.EMBEDDINGS)
    assert [t.get_text() for t in ax.texts] == list(blog.TOKENS)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xlim()) == ("Noun", "Adjective", (-1, 1))
    (ax,) = embeddings_figure(TinyLM.from_blog(), max_labels=2, title="E").axes
    assert [t.get_text() for t in ax.texts] == ["azul", "cielo"]
    assert ax.get_title() == "E (2 of 5 tokens)"
    with pytest.raises(ValueError, match="max_labels"):
        embeddings_figure(TinyLM.from_blog(), max_labels=-1)
    # A trained copy of the blog's model whose "azul" left the post's square: still drawn.
    moved = TinyLM.from_blog()
    table = np.array(blog.EMBEDDINGS)
    table[0] = [-1.8, 0.9]
    moved = TinyLM(moved.config, moved.vocab, table, moved.W1, moved.W2)
    (ax,) = embeddings_figure(moved).axes
    assert ax.get_xlim() == ax.get_ylim() and ax.get_xlim()[0] < -1.8

    text = "el cielo es azul.\nel mar es azul.\nel hielo es frío.\nla nieve es blanca.\n"
    history = train(text, dim=2, hidden=2, options=TrainOptions(epochs=3, val_fraction=0.5)).history
    (ax,) = loss_figure(history, title="T").axes
    assert ax.get_title() == "T"
    assert [line.get_label() for line in ax.get_lines()] == ["training", "validation"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [h.train_loss for h in history])
    no_val = train(text, dim=2, hidden=2, options=TrainOptions(epochs=2, val_fraction=0))
    assert [line.get_label() for line in loss_figure(no_val.history).axes[0].get_lines()] == [
        "training"
    ]


# -- the command line on a trained model: <unk>, many tokens, plurals -----------
def test_cli_explain_says_when_a_word_is_read_as_unk(capsys, model_file):
    status, out, err = run(capsys, "explain", "--model", model_file, "el marrr es")
    assert status == 0 and err == ""
    assert "1. words        el  marrr (<unk>)  es" in out
    assert "'marrr' is not in the vocabulary: the model reads it as <unk>" in out
    assert "2. ids          2  0  3" in out or "  0  " in out.split("2. ids")[1].splitlines()[0]
    status, out, _ = run(capsys, "explain", "--model", model_file, "el marrr es", "--json")
    d = json.loads(out)
    assert d["words"] == ["el", "marrr", "es"] and d["read_as"] == ["el", "<unk>", "es"]
    assert d["unknown"] == ["marrr"] and d["ids"][1] == 0
    status, out, _ = run(capsys, "explain", "--model", model_file, "el cielo es", "--json")
    assert json.loads(out)["unknown"] == [] and "(<unk>)" not in out


def test_cli_sample_shows_the_top_tokens_of_a_large_vocabulary(capsys, model_file):
    model = TinyLM.load(model_file)
    V = len(model.vocab)
    status, out, _ = run(
        capsys, "sample", "--model", model_file, "el cielo es", "--draws", 500, "--seed", 0
    )
    assert status == 0
    table = out.split("of the next token:\n")[1].splitlines()[1:]
    assert len(table) == 12 + 1 and table[-1].lstrip().startswith(f"… {V - 12} more")
    probs = model.next_token_probs("el cielo es")
    top = [model.vocab[i] for i in np.argsort(-probs, kind="stable")[:12]]
    assert [row.split()[0] for row in table[:12]] == top
    counts = [int(row.split()[-5 if row.lstrip().startswith("…") else 1]) for row in table[:12]]
    rest = int(table[-1].split()[3])
    assert sum(counts) + rest == 500
    assert float(table[-1].split()[-2 if table[-1].endswith("█") else -1]) == pytest.approx(
        1 - probs[np.argsort(-probs, kind="stable")[:12]].sum(), abs=1e-4
    )


def test_cli_plurals(tmp_path, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("el cielo es azul\n", encoding="utf-8")
    status, out, err = run(
        capsys,
        "train",
        corpus,
        "--epochs",
        1,
        "--val-fraction",
        0,
        "--out",
        tmp_path / "m.npz",
        "--dim",
        2,
        "--hidden",
        2,
    )
    assert status == 0, err
    assert ": 1 example (0 held out), 1 step\n" in out


def test_cli_progress_on_draws_no_bar_before_training(tmp_path, capsys):
    pytest.importorskip("tqdm")
    status, _, err = run(
        capsys, "train", tmp_path / "missing.txt", "--progress", "on", "--out", tmp_path / "m.npz"
    )
    assert status == 2 and err.count("\n") == 1 and err.startswith("tinyllm train: error:")


# -- memory checked before anything is allocated --------------------------------
def test_training_memory_covers_what_a_run_holds():
    from tinyllm._compiled import TrainState
    from tinyllm.train import training_memory

    for optimizer in ("adam", "sgd"):
        for dtype in ("float32", "float64"):
            config = TinyLMConfig(vocab_size=50, dim=4, context=3, hidden=8, dtype=dtype)
            model = TinyLM.random(config)
            state = TrainState(
                model.embedding.table, model.W1, model.W2, optimizer=optimizer, batch_size=16
            )
            arrays = [model.embedding.table, model.W1, model.W2, state.E, state.W1, state.W2]
            held = sum(a.nbytes for a in arrays)
            weights = model.embedding.table.nbytes + model.W1.nbytes + model.W2.nbytes
            moments = 2 if optimizer == "adam" else 1
            # + gradients, moments, the trained model, and the (B, V) logits at least
            at_least = held + (1 + moments + 1) * weights + 16 * 50 * np.dtype(dtype).itemsize
            estimate = training_memory(config, 16, optimizer)
            assert at_least <= estimate <= 2 * at_least
    big = TinyLMConfig(vocab_size=163, dim=16, context=3, hidden=32)
    assert training_memory(big, 10**12) > 2**50 and training_memory(big, 32, examples=10**6) > 10**7


def test_memory_is_refused_before_allocating(monkeypatch):
    from tinyllm import _arrays

    monkeypatch.setattr(_arrays, "physical_memory", lambda: 10**6)

    def no_model(*args, **kwargs):
        raise AssertionError("allocated before the check")

    with monkeypatch.context() as m:
        m.setattr(TinyLM, "random", no_model)
        with pytest.raises(
            ValueError,
            match=r"training \(vocabulary 163, dim 64, context 3, "
            r"hidden 64, batch size 32, float64, adam\) would need "
            r"[\d.]+ MiB of memory; this machine has 976.6 KiB",
        ):
            train(dim=64, hidden=64)
    monkeypatch.setattr(_arrays, "physical_memory", lambda: 10**5)
    vocab = Vocab.from_text(builtin_text())
    model = TinyLM.random(TinyLMConfig(vocab_size=len(vocab), dim=16, hidden=32), vocab)
    with pytest.raises(ValueError, match="batch size 32"):
        fit(model, builtin_text())


# -- divergence, Adam and SGD alike ---------------------------------------------
@pytest.mark.parametrize("optimizer, lr", [("adam", 1e9), ("adam", 10.0), ("sgd", 1e9)])
def test_a_loss_far_above_a_uniform_guess_stops_training(optimizer, lr):
    """Adam with a huge learning rate keeps every number finite (2e30) but the loss
    explodes: stopped at the step where it does, with the weights from before it."""
    with pytest.raises(
        TrainingDiverged, match=r"stopped at step \d+ \(epoch 1\): the loss is .*(above|nan|inf)"
    ) as info:
        train(options=TrainOptions(epochs=2, lr=lr, optimizer=optimizer))
    result = info.value.result
    assert result.steps == info.value.step - 1 >= 1
    assert info.value.step <= 5  # stopped at once, not epochs later
    for w in (result.model.embedding.table, result.model.W1, result.model.W2):
        assert np.isfinite(w).all()


def test_a_confident_starting_model_is_not_divergence():
    """The threshold is also 10 x the starting loss: a model that starts far from the
    corpus (large weights) trains instead of being called diverged at step 2."""
    vocab = Vocab.from_text(builtin_text())
    config = TinyLMConfig(vocab_size=len(vocab), dim=8, context=3, hidden=8)
    start = TinyLM.random(config, vocab, seed=1)
    loud = TinyLM(config, vocab, start.embedding.table * 8, start.W1 * 8, start.W2 * 8)
    result = fit(loud, builtin_text(), TrainOptions(epochs=2, lr=0.01))
    assert result.history[0].train_loss > 10 * np.log(len(vocab))
    assert result.history[-1].train_loss < result.history[0].train_loss
