"""The command line (tinyllm.cli): explain, generate and sample, and bad input as one line
of error and exit status 2."""

import json
import subprocess
import sys

import pytest

from tinyllm import TinyLM
from tinyllm.cli import main

from conftest import BLOG_IDS, BLOG_LOGITS, BLOG_PART2_LOGITS, BLOG_PROBS, BLOG_X


@pytest.fixture(scope="module")
def model():
    return TinyLM.from_blog()


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_explain_prints_every_stage(capsys):
    status, out, err = run(capsys, "explain", "el cielo es")
    assert status == 0 and err == ""
    for needle in (
        "  ".join(map(str, BLOG_IDS)),
        str(BLOG_X[:2]),
        str(BLOG_X),
        "f1 = x · W1  1.0",
        str(BLOG_LOGITS),
        f"azul   {BLOG_PROBS[0]}",
        f"es     {BLOG_PROBS[4]}",
    ):
        assert needle in out, needle
    # stages appear in the blog's order
    stages = ("1. words", "2. ids", "3. embeddings", "4. x", "5. f1", "6. logits", "7. softmax")
    order = [out.index(s) for s in stages]
    assert order == sorted(order)


def test_explain_json(capsys):
    status, out, _ = run(capsys, "explain", "el cielo es", "--json")
    d = json.loads(out)
    assert status == 0 and d["part"] == 3 and d["ids"] == BLOG_IDS
    assert d["f1"] == pytest.approx([1.0], abs=1e-12)
    assert d["logits"] == pytest.approx(BLOG_LOGITS, abs=1e-12)
    assert d["probs"] == pytest.approx(BLOG_PROBS, abs=1e-9)


def test_explain_parts_1_and_2(capsys):
    status, out, _ = run(capsys, "explain", "el cielo es", "--part", "1")
    assert status == 0 and "= 402.0" in out and "frío" in out
    status, out, _ = run(capsys, "explain", "el cielo es", "--part", "2", "--json")
    d = json.loads(out)
    assert d["f1"] == 1800.0 and d["logits"] == BLOG_PART2_LOGITS


def test_generate(capsys, model):
    status, out, err = run(capsys, "generate", "el cielo es", "-n", "10", "--seed", "0")
    assert status == 0 and err == ""
    assert out.strip() == "el cielo es " + model.generate("el cielo es", 10, rng=0)
    status, out, _ = run(
        capsys,
        "generate",
        "el cielo es",
        "-n",
        "4",
        "--seed",
        "3",
        "--top-k",
        "2",
        "--top-p",
        "0.9",
        "--min-p",
        "0.1",
        "--temperature",
        "0.7",
        "--json",
    )
    d = json.loads(out)
    assert d["continuation"] == model.generate(
        "el cielo es", 4, rng=3, top_k=2, top_p=0.9, min_p=0.1, temperature=0.7
    )
    assert d["positions"] == [model.vocab.position(t) for t in d["tokens"]]


def test_sample_prints_each_draw_and_chart(capsys, model):
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "20", "--seed", "0")
    assert status == 0
    lines = out.splitlines()
    drawn = model.draw_next("el cielo es", 20, rng=0).tokens
    assert lines[:20] == [f"{i}: el cielo es {t}" for i, t in enumerate(drawn)]
    assert "observed" in out and "model" in out and "0.4982" in out
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "50", "--seed", "1", "--json")
    assert status == 0 and sum(json.loads(out)["counts"].values()) == 50


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "el mar es"], "unknown word 'mar'"),
        (["explain", "cielo es"], "needs at least 3"),
        (["explain", "el cielo es", "--temperature", "-1"], "temperature"),
        (
            ["explain", "el cielo es", "--part", "1", "--temperature", "2"],
            "--temperature needs --part 3",
        ),
        (
            ["explain", "el cielo es", "--part", "2", "--temperature", "1"],
            "--temperature needs --part 3",
        ),
        (
            ["sample", "el cielo es", "--seed", "-3"],
            "sample: error: an rng seed must be >= 0, got -3",
        ),
        (
            ["generate", "el cielo es", "--top-p", "2"],
            "generate: error: top_p must be in (0, 1], got 2.0",
        ),
        (["train", "--momentum", "0.5"], "--momentum applies to --optimizer sgd only"),
        (["explain", "el cielo es", "--temperature", "nan"], "temperature"),
        (["explain", "el cielo", "--part", "1"], "exactly 3 words"),
        (["generate", "el cielo es", "--top-k", "0"], "top_k"),
        (["generate", "el cielo es", "--min-p", "1.5"], "min_p"),
        (["generate", "el cielo es", "--temperature", "-1"], "temperature"),
        (["generate", "el cielo es", "-n", "-1"], "max_new_tokens"),
        (["generate", "el mar es"], "unknown word"),
        (["sample", "el cielo es", "--draws", "-5"], "draws"),
        (["sample", "cielo es"], "needs at least 3"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["explain", "el cielo es", "--part", "4"])
    assert info.value.code == 2


def test_python_dash_m_and_exit_status():
    ok = subprocess.run(
        [sys.executable, "-m", "tinyllm", "explain", "el cielo es"],
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    assert ok.returncode == 0 and str(BLOG_PROBS[0]) in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tinyllm", "explain", "el mar es"],
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_argparse_errors_are_one_line(capsys):
    for argv, message in (
        (
            ["plot", "embeddings", "--out", "x.png", "--max-labels", "-1"],
            "tinyllm plot embeddings: error: argument --max-labels: must be >= 0, got -1",
        ),
        (
            ["generate", "el cielo es", "-n", "1e3"],
            "tinyllm generate: error: argument -n/--max-new-tokens: must be an integer, got '1e3'",
        ),
        (["sample"], "tinyllm sample: error: the following arguments are required: prompt"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert capsys.readouterr() == ("", message + "\n")


def test_sample_draws_zero_and_one(capsys):
    status, out, err = run(capsys, "sample", "el cielo es", "--draws", "0")
    assert status == 0 and err == "" and "0 draws of the next token" in out
    assert "azul        0  0.0000" in out and "0.4982" in out
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "1", "--seed", "0")
    assert status == 0 and "1 draw of the next token" in out
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "0", "--json")
    assert (
        status == 0
        and json.loads(out)["draws"] == []
        and sum(json.loads(out)["counts"].values()) == 0
    )


def test_explain_temperature_zero_is_the_greedy_limit(capsys):
    status, out, err = run(capsys, "explain", "el cielo es", "--temperature", "0")
    assert status == 0 and err == ""
    assert "7. softmax(logits / T) at T=0, the greedy limit" in out
    assert "azul   1.0000000000  ████████████████████████████████████████" in out
    assert "frío   0.0000000000  \n" in out and "most likely next word: azul (100.0%)" in out
    status, out, _ = run(capsys, "explain", "el cielo es", "--temperature", "0", "--json")
    assert json.loads(out)["probs"] == [1.0, 0.0, 0.0, 0.0, 0.0]
