"""The README shows real output: check it against the command line.

Skipped where the README is not beside the tests (the installed-wheel run in CI).
"""

import re
from pathlib import Path

import pytest

from tinyllm.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="README.md is not beside tests/")


def cli_output(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_main_command_output_is_the_one_shown(capsys):
    text = README.read_text(encoding="utf-8")
    command = re.search(r"python -m pip install \. && tinyllm (generate .*)", text).group(1)
    assert command == 'generate "el cielo es" -n 10 --seed 0'
    shown = re.search(r"The first prints `(el cielo es[^`]*)`", text).group(1)
    assert cli_output(capsys, "generate", "el cielo es", "-n", "10", "--seed", "0").strip() == shown


def test_explain_block_is_the_real_output(capsys):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```text\n(Part 3 — vectors and embeddings.*?)```", text, re.S).group(1)
    assert cli_output(capsys, "explain", "el cielo es") == block


def test_spanish_explain_block_is_the_real_output(capsys):
    """The Spanish section shows what `--lang es` prints, and says how to ask for it."""
    text = README.read_text(encoding="utf-8")
    spanish = text[text.index("## En español") :]
    assert 'tinyllm --lang es explain "el cielo es"' in spanish and "LANG=es_ES.UTF-8" in spanish
    block = re.search(r"```text\n(Parte 3 — vectores y embeddings.*?)```", spanish, re.S).group(1)
    assert cli_output(capsys, "--lang", "es", "explain", "el cielo es") == block
    assert "--html pagina.html" in spanish  # the page for the classroom


def test_quantize_line_is_the_real_output(capsys, tmp_path, monkeypatch):
    """The "Weight formats" section's `tinyllm quantize` line, on `train --seed 0`'s model."""
    text = README.read_text(encoding="utf-8")
    shown = re.search(r"# (wrote model-int8\.npz: W2 in int8 [^\n]*)", text).group(1)
    monkeypatch.chdir(tmp_path)
    cli_output(capsys, "train", "--seed", "0", "--out", "model.npz", "--progress", "off", "-q")
    out = cli_output(capsys, "quantize", "model.npz", "--to", "int8", "--out", "model-int8.npz")
    assert out.strip() == shown
