"""English and Spanish (tinyllm._i18n, tinyllm._catalogue): the catalogue, the choice of
language, the command line, the displays and the figures in both.

The catalogue: every message of the sources is in it and translated, each translation
has the same ``{fields}`` as its original, and the committed ``.mo`` is what the
``.po`` compiles to (byte for byte what GNU msgfmt writes, where it is installed). The
language: ``--lang`` (before or after the command) over the locale (LANGUAGE, LC_ALL,
LC_MESSAGES, LANG, as gettext reads them), English otherwise. In both languages the
numbers are the same, errors are one line that keeps its meaning (the same numbers,
words, options and paths), and the HTML escapes what comes from outside.
"""

from __future__ import annotations

import argparse
import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_display import (
    Rendered,
    assert_shows_the_json,
    explain_dict,
    hostile_model,
)

from tinyllm import TinyLM, TinyLMConfig, _catalogue, _i18n, cli, display
from tinyllm.cli import main

from conftest import BLOG_IDS, BLOG_LOGITS, BLOG_PROBS, BLOG_PROMPT, BLOG_X

LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
@pytest.fixture
def locale(monkeypatch):
    """``locale("es_ES.UTF-8")``: from now on the environment says only LANG=that."""

    def set_lang(lang: str | None) -> None:
        for variable in LOCALE_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        if lang is not None:
            monkeypatch.setenv("LANG", lang)

    return set_lang


def run(capsys, *argv):
    """``tinyllm ARGV`` in this process: its status (usage errors and --help included),
    stdout and stderr."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def child(*argv, lang: str | None = None, **env):
    """``python -m tinyllm ARGV`` in a child process whose locale is only ``LANG=lang``."""
    environ = {k: v for k, v in os.environ.items() if k not in LOCALE_VARIABLES}
    environ.update({"LANG": lang} if lang else {}, PYTHONIOENCODING="utf-8", **env)
    p = subprocess.run(
        [sys.executable, "-m", "tinyllm", *map(str, argv)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environ,
        timeout=60,
    )
    return p.returncode, p.stdout, p.stderr


def messages() -> list[_catalogue.Message]:
    """The Spanish catalogue's entries, without the header."""
    return [m for m in _catalogue.read_po(_catalogue.po_path("es")) if m.msgid]


def one_error_line(status: int, err: str, command: str) -> str:
    """The message of a one-line error of ``tinyllm <command>``."""
    prefix = f"tinyllm {command}: error: " if command else "tinyllm: error: "
    assert status == 2, err
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len(prefix) : -1]


# ---------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------
def test_every_message_is_translated():
    untranslated = [m.msgid for m in messages() if not all(m.msgstr) or "fuzzy" in m.flags]
    assert untranslated == []
    assert len(messages()) > 150  # the whole command line, the displays and the figures


def test_every_translation_has_the_fields_of_its_original():
    for m in messages():
        want = _catalogue.fields(m.msgid_plural or m.msgid)
        assert _catalogue.fields(m.msgid) == want, m.msgid
        for text in m.msgstr:
            assert _catalogue.fields(text) == want, (m.msgid, text)


def test_fields_are_parsed_with_their_format():
    assert _catalogue.fields("época {epoch:>3}  {loss:.4f} {{literal}} {w!r}") == [
        "epoch:>3",
        "loss:.4f",
        "w!r",
    ]
    assert _catalogue.fields("no fields") == []


def test_the_catalogue_holds_every_marked_message_and_no_other():
    used = {m.key for m in _catalogue.extract()}
    assert used == {m.key for m in messages()}
    # the markers are where the messages are: the command line, the displays, the figures
    files = {ref for m in _catalogue.extract() for ref in m.references}
    assert {"tinyllm/cli.py", "tinyllm/display.py", "tinyllm/plot.py"} <= files


def test_the_committed_mo_is_the_po_compiled():
    po = _catalogue.po_path("es")
    assert _catalogue.mo_path("es").read_bytes() == _catalogue.compile_mo(_catalogue.read_po(po))
    assert _catalogue.problems("es") == []


def test_the_po_is_in_the_form_update_writes():
    """``python -m tinyllm._catalogue update`` changes nothing in the committed .po."""
    po = _catalogue.po_path("es")
    merged = _catalogue.merge(_catalogue.extract(), _catalogue.read_po(po), "es")
    assert _catalogue.format_po(merged) == po.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_the_mo_is_what_gnu_msgfmt_writes(tmp_path):
    """msgfmt checks the python-brace-format fields too; its .mo differs only in the
    offset it writes for an empty hash table (Python's msgfmt.py writes 0 there)."""
    gnu = tmp_path / "gnu.mo"
    subprocess.run(
        ["msgfmt", "--check", "--no-hash", "-o", gnu, _catalogue.po_path("es")],
        check=True,
        capture_output=True,
    )
    ours = _catalogue.mo_path("es").read_bytes()
    theirs = gnu.read_bytes()
    assert len(ours) == len(theirs) and ours[:24] == theirs[:24] and ours[28:] == theirs[28:]


def test_python_gettext_reads_the_mo():
    t = gettext.translation("tinyllm", str(_i18n.LOCALEDIR), languages=["es"])
    assert t.gettext("words") == "palabras"
    assert t.ngettext("{n} number", "{n} numbers", 1) == "{n} número"
    assert t.ngettext("{n} number", "{n} numbers", 0) == "{n} números"


def broken_catalogue(tmp_path, monkeypatch, change) -> list[str]:
    """The problems of a copy of the catalogue after ``change(messages)``."""
    locale_dir = tmp_path / "locale"
    shutil.rmtree(locale_dir, ignore_errors=True)
    shutil.copytree(_i18n.LOCALEDIR, locale_dir)
    monkeypatch.setattr(_catalogue, "LOCALEDIR", locale_dir)
    po = _catalogue.po_path("es")
    entries = _catalogue.read_po(po)
    change(entries)
    _catalogue.write_po(entries, po)
    return _catalogue.problems("es")


def test_the_checks_catch_a_broken_catalogue(tmp_path, monkeypatch):
    def wrong_field(entries):
        m = next(m for m in entries if m.msgid == "saved to {path}")
        m.msgstr = ["guardado en {ruta}"]

    found = broken_catalogue(tmp_path, monkeypatch, wrong_field)
    assert any("['ruta'] instead of ['path']" in p for p in found), found
    assert any(".mo is not" in p for p in found), found

    def untranslated_and_gone(entries):
        entries[1].msgstr = [""] * len(entries[1].msgstr)
        del entries[2]

    found = broken_catalogue(tmp_path, monkeypatch, untranslated_and_gone)
    assert any(p.startswith("untranslated: ") for p in found), found
    assert any(p.startswith("not in the catalogue: ") for p in found), found

    def a_percent(entries):  # argparse would fail to %-format this help text
        m = next(m for m in entries if m.msgid == "no per-epoch lines")
        m.msgstr = ["sin líneas por época (100%)"]

    found = broken_catalogue(tmp_path, monkeypatch, a_percent)
    assert any(p.startswith("a % the original does not have") for p in found), found


def test_extraction_refuses_an_f_string(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text('def f(n):\n    return _(f"{n} words")\n')
    with pytest.raises(ValueError, match=r"pkg/m.py:2: _\(\) of an f-string"):
        _catalogue.extract(package)
    (package / "m.py").write_text('x = N_("a", "b")\ny = _("c" "d")\nz = _(x)\n')
    assert [m.key for m in _catalogue.extract(package)] == [("a", "b"), ("cd", None)]


def test_the_tool_compiles_and_checks(tmp_path, monkeypatch, capsys):
    locale_dir = tmp_path / "locale"
    shutil.copytree(_i18n.LOCALEDIR, locale_dir)
    monkeypatch.setattr(_catalogue, "LOCALEDIR", locale_dir)
    _catalogue.mo_path("es").write_bytes(b"stale")
    assert _catalogue.main(["check"]) == 1
    assert _catalogue.main(["compile"]) == 0
    assert _catalogue.main(["check"]) == 0
    assert _catalogue.main(["update"]) == 0 and "0 to translate" in capsys.readouterr().out
    assert _catalogue.main(["frobnicate"]) == 2


# ---------------------------------------------------------------------------
# Which language
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "en"),
        ({"LANG": "es_ES.UTF-8"}, "es"),
        ({"LANG": "es_MX.UTF-8"}, "es"),
        ({"LANG": "es_AR"}, "es"),
        ({"LANG": "es"}, "es"),
        ({"LANG": "es_ES@euro"}, "es"),
        ({"LANG": "spanish"}, "es"),  # a locale alias
        ({"LANG": "C"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "POSIX"}, "en"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),  # a language tinyllm does not speak
        ({"LANG": "es_ES.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "es_ES.UTF-8"}, "es"),
        ({"LANG": "en_US.UTF-8", "LANGUAGE": "fr:es"}, "es"),  # a list: the first spoken
        ({"LANG": "es_ES.UTF-8", "LANGUAGE": "en:es"}, "en"),  # English is spoken too
        ({"LANG": "es_ES.UTF-8", "LANGUAGE": ""}, "es"),  # empty: not set
        ({"LANG": "es_ES.UTF-8", "LC_ALL": "C"}, "en"),
    ],
)
def test_the_locale_chooses_the_language(environ, expected):
    assert _i18n.locale_language(environ) == expected


def test_set_language_overrides_the_locale_and_none_restores_it(locale):
    locale("es_ES.UTF-8")
    assert _i18n.language() == "es" and display.label("words") == "palabras"
    display.set_language("en")
    assert _i18n.language() == "en" and display.label("words") == "words"
    with _i18n.using("es"):
        assert display.label("numbers", n=1) == "1 número"
    assert display.label("numbers", n=1) == "1 number"
    display.set_language(None)
    assert display.label("words") == "palabras"
    with pytest.raises(ValueError, match="lang must be one of en, es or None, got 'fr'"):
        display.set_language("fr")


def test_a_missing_catalogue_falls_back_to_english(monkeypatch):
    monkeypatch.setattr(_i18n, "LOCALEDIR", Path("/nonexistent"))
    _i18n._translations.cache_clear()
    try:
        with _i18n.using("es"):
            assert display.label("words") == "words"
    finally:
        _i18n._translations.cache_clear()


# ---------------------------------------------------------------------------
# The command line: Spanish with LANG=es_* or --lang es, English otherwise
# ---------------------------------------------------------------------------
SPANISH_EXPLAIN = ("1. palabras", "2. ids", "3. embeddings", "(3x2, una fila por palabra)")
ENGLISH_EXPLAIN = ("1. words", "2. ids", "3. embeddings", "(3x2, one row per word)")


def assert_explain(out: str, lang: str) -> None:
    """explain's text in ``lang``, with the blog's numbers."""
    for label in SPANISH_EXPLAIN if lang == "es" else ENGLISH_EXPLAIN:
        assert label in out, (label, out)
    for other in ENGLISH_EXPLAIN[:1] if lang == "es" else SPANISH_EXPLAIN[:1]:
        assert other not in out
    for needle in ("  ".join(map(str, BLOG_IDS)), str(BLOG_X), str(BLOG_LOGITS)):
        assert needle in out
    for p in BLOG_PROBS:
        assert f"{p:.10f}" in out
    best = "siguiente palabra más probable" if lang == "es" else "most likely next word"
    assert f"{best}: azul (49.8%)" in out


@pytest.mark.parametrize(
    ("lang", "argv", "expected"),
    [
        ("es_ES.UTF-8", [], "es"),
        ("es_MX.UTF-8", [], "es"),
        ("C", ["--lang", "es"], "es"),
        ("en_US.UTF-8", ["--lang=es"], "es"),
        ("es_ES.UTF-8", ["--lang", "en"], "en"),
        ("C", [], "en"),
        ("C.UTF-8", [], "en"),
        ("en_US.UTF-8", [], "en"),
        (None, [], "en"),
    ],
)
def test_explain_follows_lang_and_the_locale(capsys, locale, lang, argv, expected):
    locale(lang)
    for where in ("before", "after"):  # --lang before or after the command
        line = (
            [*argv, "explain", BLOG_PROMPT]
            if where == "before"
            else ["explain", BLOG_PROMPT, *argv]
        )
        status, out, err = run(capsys, *line)
        assert status == 0 and err == ""
        assert_explain(out, expected)
        assert out.startswith(
            'Parte 3 — vectores y embeddings: "el cielo es"'
            if expected == "es"
            else 'Part 3 — vectors and embeddings: "el cielo es"'
        )


def test_a_real_process_reads_lang():
    status, out, err = child("explain", BLOG_PROMPT, lang="es_ES.UTF-8")
    assert status == 0 and err == ""
    assert_explain(out, "es")
    status, out, _ = child("explain", BLOG_PROMPT, lang="C")
    assert_explain(out, "en")
    status, out, _ = child("--lang", "es", "explain", BLOG_PROMPT, lang="en_US.UTF-8")
    assert_explain(out, "es")


def test_help_in_both_languages(capsys, locale):
    locale("es_ES.UTF-8")
    status, out, _ = run(capsys, "-h")
    assert status == 0
    assert out.startswith("uso: tinyllm [-h] [--lang {en,es}]")
    for text in ("argumentos posicionales:", "opciones:", "muestra esta ayuda y termina"):
        assert text in out
    assert "muestra el proceso paso a paso con sus números" in out  # explain's help
    status, out, _ = child("generate", "-h", lang="es_ES.UTF-8")
    assert status == 0 and out.startswith("uso: tinyllm generate")
    assert "--model ARCHIVO" in out and "--logit-bias PALABRA=SESGO" in out
    assert "conserva los k tokens más probables" in out
    status, out, _ = child("generate", "-h", lang="C")
    assert status == 0 and out.startswith("usage: tinyllm generate")
    assert "--model FILE" in out and "keep the k most likely tokens" in out
    assert "uso:" not in out


def test_generates_filters_and_penalties_in_spanish(capsys):
    status, out, _ = run(capsys, "--lang", "es", "generate", BLOG_PROMPT, "--help")
    assert status == 0 and out.startswith("uso: tinyllm generate")
    text = " ".join(out.split())  # argparse wraps the help at its own width
    for option, help_es in [
        ("--typical-p TYPICAL_P", "muestreo localmente típico"),
        ("--top-n-sigma TOP_N_SIGMA", "a menos de n desviaciones estándar del mayor"),
        ("--min-tokens-to-keep MIN_TOKENS_TO_KEEP", "cada filtro conserva al menos"),
        ("--repetition-penalty REPETITION_PENALTY", "divide (multiplica si es negativo)"),
        ("--presence-penalty PRESENCE_PENALTY", "resta esto al logit de cada token reciente"),
        ("--frequency-penalty FREQUENCY_PENALTY", "resta esto multiplicado por las veces"),
        ("--penalty-last-n PENALTY_LAST_N", "(por defecto 64; -1: todos, 0: ninguno)"),
        ("--logit-bias PALABRA=SESGO", "suma SESGO al logit de PALABRA (-inf la prohíbe)"),
        ("--stop PALABRA", "se detiene antes de generar esta palabra (o palabras)"),
    ]:
        assert option in text and help_es in text, (option, help_es)
    assert "tras el sesgo de los logits, las penalizaciones y los filtros" in text


def test_bench_help_in_spanish(capsys):
    status, out, _ = run(capsys, "--lang", "es", "bench", "--help")
    assert status == 0 and out.startswith("uso: tinyllm bench")
    text = " ".join(out.split())
    assert "Mide los kernels y el bucle de generación de tinyllm frente a NumPy" in text
    assert "--json ARCHIVO" in text and "--min-time SEGUNDOS" in text
    assert "todos los tamaños de 5 a 10^7, también float64 (unos 20 minutos)" in text
    assert "rondas cronometradas por caso (por defecto 3; --full 5)" in text
    status, out, _ = run(capsys, "--lang", "es", "-h")
    assert "mide tinyllm frente a NumPy, PyTorch y Python puro" in " ".join(out.split())
    status, out, _ = run(capsys, "--lang", "en", "bench", "--help")
    assert out.startswith("usage: tinyllm bench") and "--min-time SECONDS" in out


def help_texts(lang: str) -> dict[tuple[str, str], str]:
    """(command, option) -> its help, and (command, "description") -> the command's
    description, for every command and subcommand, in ``lang``."""

    def walk(parser: argparse.ArgumentParser):
        yield parser.prog, "description", parser.description
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)
            elif action.help not in (None, argparse.SUPPRESS):
                yield parser.prog, action.dest, action.help

    with _i18n.using(lang):
        return {(prog, what): text for prog, what, text in walk(cli.build_parser())}


def test_every_help_text_is_translated():
    """An option added without _() would show its English help under --lang es."""
    english, spanish = help_texts("en"), help_texts("es")
    assert english.keys() == spanish.keys()
    assert ("tinyllm bench", "min_time") in english  # the walk reaches every command
    assert ("tinyllm generate", "repetition_penalty") in english
    assert [key for key in english if english[key] == spanish[key]] == []


def test_train_log_line_and_summary_in_both_languages(capsys, locale, tmp_path):
    locale("es_ES.UTF-8")
    status, out, err = run(capsys, "train", "--epochs", "1", "--out", tmp_path / "m.npz")
    assert status == 0
    assert re.match(
        r"época   1  pérdida \d\.\d{4} \(perplejidad +\d+\.\d\d\)  "
        r"pérdida val \d\.\d{4} \(perplejidad +\d+\.\d\d\)  lr 0\.01  [\d,]+ tokens/s\n$",
        err,
    ), err
    assert "entrenado TinyLM(vocab_size=163" in out and "con corpus_es.txt incluido" in out
    assert "se conserva la época 1 (la menor pérdida de validación)" in out
    assert f"guardado en {tmp_path / 'm.npz'}" in out
    assert 'después de "el cielo es" predice: ' in out
    status, out, err = run(
        capsys, "train", "--epochs", "1", "--out", tmp_path / "m.npz", "--lang", "en"
    )
    assert status == 0 and re.match(r"epoch   1  loss \d\.\d{4} \(perplexity ", err), err
    assert "on built-in corpus_es.txt" in out and "kept epoch 1 (the lowest" in out


def test_sample_and_the_blogs_first_parts_in_spanish(capsys, locale):
    locale("es_ES.UTF-8")
    status, out, _ = run(capsys, "sample", BLOG_PROMPT, "--draws", "20", "--seed", "0")
    assert status == 0 and "20 muestras del siguiente token:" in out
    assert re.search(r"token +veces +observado +modelo", out)
    assert "0.4982" in out and "0: el cielo es " in out
    status, out, _ = run(capsys, "explain", BLOG_PROMPT, "--part", "1")
    assert status == 0 and "1. palabras   el  cielo  es" in out
    assert "= 402.0" in out and "y es el id de: frío" in out
    status, out, _ = run(capsys, "explain", BLOG_PROMPT, "--part", "2")
    assert status == 0 and "(suma 10620.0):" in out and "0.423729" in out
    status, out, _ = run(capsys, "explain", BLOG_PROMPT, "--json")
    assert json.loads(out)["probs"] == pytest.approx(BLOG_PROBS, abs=1e-9)  # JSON: no words


def test_english_output_is_unchanged_by_translation(capsys, locale):
    """The English text is the messages as written: parts 1 and 2 keep their layout."""
    locale("C")
    _, out, _ = run(capsys, "explain", BLOG_PROMPT, "--part", "1")
    assert "1. words   el  cielo  es\n2. ids     x = (578, 350, 698)\n3. w       (1.0" in out
    _, out, _ = run(capsys, "explain", BLOG_PROMPT, "--part", "2")
    assert "5. v/sum(v)  (sum 10620.0):" in out and "4. logits    [4500.0," in out


def test_the_language_does_not_outlive_the_command(capsys, locale):
    locale("C")
    run(capsys, "--lang", "es", "explain", BLOG_PROMPT)
    run(capsys, "explain", "el mar es", "--lang", "es")  # an error too
    assert _i18n.language() == "en" and display.label("words") == "words"


# ---------------------------------------------------------------------------
# Errors: one line in both languages, with the same meaning
# ---------------------------------------------------------------------------
#: English words that a Spanish message should no longer hold (outside quotes and paths).
#: --logit-bias for every word of the blog's model: every logit is -inf.
BAN_EVERY_WORD = [f"--logit-bias={word}=-inf" for word in ("azul", "cielo", "frío", "el", "es")]
#: a bias and a negative frequency penalty that add up to more than the float range
#: once azul has been drawn (greedy: the first new token).
OVERFLOW_A_LOGIT = ["--logit-bias=azul=1e308", "--frequency-penalty=-1e308", "--temperature=0"]

ENGLISH_WORDS = {"must", "got", "the", "is", "not", "and", "of", "needs", "would", "such"}


def bad_commands(tmp_path: Path) -> list[tuple[str, list]]:
    """Command lines with a mistake in them, with the command that reports it:
    argparse's, the command line's and the library's errors, about words, numbers,
    files and sizes."""
    folder = tmp_path / "a folder"  # a space in a path
    folder.mkdir(exist_ok=True)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    out = tmp_path / "m.npz"
    return [
        ("", ["bogus"]),
        ("", []),
        ("explain", ["explain"]),
        ("explain", ["explain", BLOG_PROMPT, "--part", "4"]),
        ("explain", ["explain", BLOG_PROMPT, "--json", "--html", tmp_path / "p.html"]),
        ("", ["explain", BLOG_PROMPT, "--bogus"]),
        ("generate", ["generate", BLOG_PROMPT, "--top-k", "x"]),
        ("generate", ["generate", BLOG_PROMPT, "--temperature", "hot"]),
        ("generate", ["generate", BLOG_PROMPT, "--logit-bias", "azul"]),
        ("", ["--lang", "fr", "explain", BLOG_PROMPT]),
        ("explain", ["explain", "el mar es"]),
        ("generate", ["generate", "el cielo"]),
        ("generate", ["generate", BLOG_PROMPT, "--temperature", "-1"]),
        ("generate", ["generate", BLOG_PROMPT, "--top-p", "2"]),
        ("generate", ["generate", BLOG_PROMPT, "-n", "-1"]),
        ("generate", ["generate", BLOG_PROMPT, "--seed", "-1"]),
        ("generate", ["generate", BLOG_PROMPT, "--presence-penalty", "nan"]),
        ("generate", ["generate", BLOG_PROMPT, "--repetition-penalty", "0"]),
        ("generate", ["generate", BLOG_PROMPT, "--frequency-penalty", "inf"]),
        ("generate", ["generate", BLOG_PROMPT, "--typical-p", "0"]),
        ("generate", ["generate", BLOG_PROMPT, "--top-n-sigma", "-1"]),
        ("generate", ["generate", BLOG_PROMPT, "--min-tokens-to-keep", "0"]),
        ("generate", ["generate", BLOG_PROMPT, "--penalty-last-n", "-2"]),
        ("generate", ["generate", BLOG_PROMPT, "--logit-bias", "azul=x"]),
        ("generate", ["generate", BLOG_PROMPT, "--logit-bias", "azul=inf"]),
        ("generate", ["generate", BLOG_PROMPT, "--logit-bias", "mar=1"]),
        ("generate", ["generate", BLOG_PROMPT, *BAN_EVERY_WORD]),
        ("generate", ["generate", BLOG_PROMPT, *OVERFLOW_A_LOGIT]),
        ("generate", ["generate", BLOG_PROMPT, "--stop", " "]),
        ("generate", ["generate", BLOG_PROMPT, "--stop", "mar"]),
        ("bench", ["bench", "--min-time", "100"]),
        ("bench", ["bench", "--sizes", "1"]),
        ("bench", ["bench", "--rounds", "0"]),
        ("bench", ["bench", "--json", folder]),
        ("generate", ["generate", BLOG_PROMPT, "--json", "-n", str(2**62)]),
        ("explain", ["explain", BLOG_PROMPT, "--part", "1", "--temperature", "0.5"]),
        ("explain", ["explain", "el cielo", "--part", "1"]),
        ("generate", ["generate", BLOG_PROMPT, "--model", tmp_path / "missing.npz"]),
        ("generate", ["generate", BLOG_PROMPT, "--model", empty]),
        ("generate", ["generate", BLOG_PROMPT, "--model", folder]),
        ("explain", ["explain", BLOG_PROMPT, "--html", tmp_path / "no" / "p.html"]),
        ("train", ["train", tmp_path / "missing.txt", "--out", out]),
        ("train", ["train", tmp_path / "empty.txt", "--out", out]),
        ("train", ["train", "--out", folder]),
        ("train", ["train", "--out", out, "--plot-loss", out]),
        ("train", ["train", "--lr", "0", "--out", out]),
        ("train", ["train", "--weight-decay", "-1", "--out", out]),
        ("train", ["train", "--momentum", "0.9", "--out", out]),
        ("train", ["train", "--out", ""]),
    ]


def meaning(message: str, tmp_path: Path) -> list[str]:
    """What a message says that no translation changes: numbers, quoted words, options
    and paths (a path with its spaces)."""
    parts = [str(tmp_path / p) for p in ("a folder", "missing.npz", "missing.txt", "m.npz")]
    found = [p for p in parts if p in message]
    for p in found:
        message = message.replace(p, " ")
    found += re.findall(r"'[^']*'|--[a-z-]+|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", message)
    return sorted(found)


def test_errors_keep_their_meaning_in_spanish(capsys, locale, tmp_path):
    for command, argv in bad_commands(tmp_path):
        locale("C")
        status, _, err = run(capsys, *argv)
        english = one_error_line(status, err, command)
        locale("es_ES.UTF-8")
        status, _, err = run(capsys, *argv)
        spanish = one_error_line(status, err, command)
        assert spanish != english, argv
        assert meaning(spanish, tmp_path) == meaning(english, tmp_path), (english, spanish)
        outside = re.sub(r"'[^']*'", "", spanish.replace(str(tmp_path), ""))
        left = ENGLISH_WORDS & set(re.findall(r"[a-z]+", outside))
        assert not left, (left, spanish)


def test_spanish_errors_read_as_the_blog_says(capsys, locale, tmp_path):
    locale("es_ES.UTF-8")
    cases = {
        ("explain", "el mar es"): (
            "palabra desconocida 'mar'; ¿quisiste decir 'frío' o 'azul' o 'es'?"
        ),
        ("generate", "el cielo"): (
            "la frase tiene 2 tokens; este modelo lee 3, así que necesita al menos 3"
        ),
        ("generate", BLOG_PROMPT, "--temperature", "-1"): (
            "temperature debe ser un número finito >= 0, no -1.0"
        ),
        ("generate", BLOG_PROMPT, "--top-k", "x"): (
            "argumento --top-k: debe ser un número entero, no 'x'"
        ),
        ("bogus",): (
            "argumento COMANDO: opción no válida: 'bogus' "
            "(elige entre 'explain', 'generate', 'sample', 'train', 'quantize', 'plot', 'bench')"
        ),
        ("generate", BLOG_PROMPT, "--repetition-penalty", "0"): (
            "repetition_penalty debe ser un número finito > 0, no 0.0"
        ),
        ("generate", BLOG_PROMPT, "--logit-bias", "azul"): (
            "argumento --logit-bias: se esperaba PALABRA=SESGO, no 'azul'"
        ),
        ("generate", BLOG_PROMPT, "--logit-bias", "azul=inf"): (
            "argumento --logit-bias: SESGO debe ser un número finito, o -inf para prohibir "
            "la palabra, no 'inf'"
        ),
        ("generate", BLOG_PROMPT, "--typical-p", "2"): "typical_p debe estar en (0, 1], no 2.0",
        ("generate", BLOG_PROMPT, "--top-n-sigma", "-1"): (
            "top_n_sigma debe ser un número finito >= 0, no -1.0"
        ),
        ("generate", BLOG_PROMPT, "--min-tokens-to-keep", "0"): (
            "min_tokens_to_keep debe ser >= 1, no 0"
        ),
        ("generate", BLOG_PROMPT, *BAN_EVERY_WORD): (
            "todos los logits del token 0 son -inf tras logit_bias y las penalizaciones; "
            "al menos un token debe estar permitido"
        ),
        ("generate", BLOG_PROMPT, *OVERFLOW_A_LOGIT): (
            "un logit del token 1 es +inf tras logit_bias y las penalizaciones; "
            "usa sesgos o penalizaciones más pequeños"
        ),
        ("generate", BLOG_PROMPT, "--stop", " "): "stop: ' ' no contiene ninguna palabra",
        ("generate", BLOG_PROMPT, "--stop", "mar"): (
            "palabra desconocida 'mar'; ¿quisiste decir 'frío' o 'azul' o 'es'?"
        ),
        ("bench", "--min-time", "100"): "--min-time debe estar entre 0 y 60 segundos, no 100.0",
        ("generate", BLOG_PROMPT, "--model", tmp_path / "missing.npz"): (
            f"no existe el archivo del modelo: {tmp_path / 'missing.npz'}"
        ),
    }
    for argv, expected in cases.items():
        status, _, err = run(capsys, *argv)
        command = "" if argv[0] == "bogus" else argv[0]
        assert one_error_line(status, err, command) == expected


def test_an_unknown_message_is_shown_as_it_is(locale):
    """A library message without a template stays English after "error:", whole."""
    locale("es_ES.UTF-8")
    unknown = "the weights are all zero; their sum must be > 0"  # sample's, not the CLI's
    assert cli._translated(unknown) == unknown
    # a field that is not a message of its own stays as it is, even if it reads like one
    assert cli._translated("the file is empty") == "el archivo está vacío"
    assert cli._translated("no such model file: the file is empty") == (
        "no existe el archivo del modelo: the file is empty"
    )
    locale("C")
    assert cli._translated("the file is empty") == "the file is empty"


def test_every_known_message_reads_in_both_languages(locale):
    """Each template matches what it formats (so the library's English message is
    recognised) and its Spanish has the same fields."""
    locale("es_ES.UTF-8")
    for template in cli.KNOWN_MESSAGES:
        names = {f.split(":")[0] for f in _catalogue.fields(template)}
        english = template.format(**{name: f"<{name}>" for name in names})
        match = cli._pattern(template).fullmatch(english)
        assert match and match.groupdict() == {name: f"<{name}>" for name in names}, template
        assert cli._translated(english) != english, template


def test_interrupted_in_spanish(capsys, locale, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TinyLM, "trace", interrupted)
    locale("es_ES.UTF-8")
    assert run(capsys, "explain", BLOG_PROMPT) == (130, "", "tinyllm explain: interrumpido\n")


def test_an_os_error_in_spanish(capsys, locale, tmp_path):
    locale("es_ES.UTF-8")
    status, _, err = run(capsys, "train", tmp_path / "missing.txt", "--out", tmp_path / "m")
    message = one_error_line(status, err, "train")
    assert message == f"No existe el archivo o el directorio: {tmp_path / 'missing.txt'}"


# ---------------------------------------------------------------------------
# The displays and the page
# ---------------------------------------------------------------------------
@pytest.fixture
def model() -> TinyLM:
    return TinyLM.from_blog()


def test_trace_text_and_html_in_spanish_with_the_same_numbers(model, locale):
    locale("es_ES.UTF-8")
    trace = model.trace(BLOG_PROMPT)
    text = repr(trace)
    assert text.startswith('Paso a paso: "el cielo es"\n\n1. palabras     el  cielo  es')
    assert "siguiente palabra más probable: azul (49.8%)" in text
    html = trace._repr_html_()
    assert_shows_the_json(html, explain_dict(model, BLOG_PROMPT))
    visible = Rendered(html).visible()
    for label in ("palabras", "aplanado fila por fila, 6 números", "uno por token"):
        assert label in visible
    assert "words" not in visible and "flattened" not in visible
    locale("C")
    assert "1. words" in repr(trace) and "palabras" not in trace._repr_html_()


def test_draws_and_model_in_spanish(model, locale):
    locale("es_MX.UTF-8")
    draws = model.draw_next(BLOG_PROMPT, 1000, rng=0)
    assert repr(draws).startswith('1000 muestras del siguiente token después de "el cielo es"')
    visible = Rendered(draws._repr_html_()).visible()
    assert '1000 muestras del siguiente token después de "el cielo es"' in visible
    for token in model.vocab.tokens:
        assert f"{draws.counts[token]} " in visible or str(draws.counts[token]) in visible
    rows = Rendered(model._repr_html_()).stages["model"]
    names = [cells[0][1] for _, cells in rows]
    assert names[:4] == [
        "tamaño del vocabulario (V)",
        "números por embedding (d)",
        "palabras que lee (c)",
        "unidades ocultas (h)",
    ]
    assert "float64, 21 parámetros, 168 bytes" in Rendered(model._repr_html_()).visible()


def test_the_page_in_spanish(capsys, locale, tmp_path):
    locale("es_ES.UTF-8")
    page = tmp_path / "página.html"
    status, out, err = run(capsys, "explain", BLOG_PROMPT, "--html", page)
    assert (status, out, err) == (0, f"se escribió {page}\n", "")
    html = page.read_text(encoding="utf-8")
    r = Rendered(html)
    assert ("html", "lang", "es") in r.attrs
    assert_shows_the_json(html, explain_dict(TinyLM.from_blog(), BLOG_PROMPT))
    visible = r.visible()
    for label in (
        'Parte 3 — vectores y embeddings: "el cielo es"',
        "diccionario",
        "tabla de embeddings",
        "aplanar",
        "El modelo",
        "Hecho con tinyllm",
        "siguiente palabra más probable: azul (49.8%)",
    ):
        assert label in visible, label
    status, _, _ = run(capsys, "--lang", "en", "explain", BLOG_PROMPT, "--html", page)
    assert status == 0 and ("html", "lang", "en") in Rendered(page.read_text("utf-8")).attrs


def test_spanish_html_escapes_what_comes_from_outside(locale):
    locale("es_ES.UTF-8")
    model = hostile_model()
    prompt = "<script>alert(1)</script> el cielo"
    for html in (
        model.trace(prompt)._repr_html_(),
        model.draw_next(prompt, 10, rng=0)._repr_html_(),
        model._repr_html_(),
        display.page_html(model.trace(prompt), f'Paso a paso: "{prompt}"', model),
    ):
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert Rendered(html).tags["script"] == 0


# ---------------------------------------------------------------------------
# The figures
# ---------------------------------------------------------------------------
def test_figures_in_both_languages(locale, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="matplotlib is not installed (pip install 'tinyllm-cython[plot]')"
    )
    from tinyllm.plot import embedding_coordinates, loss_figure
    from tinyllm.train import EpochStats

    blog = TinyLM.from_blog()
    big = TinyLM.random(TinyLMConfig(vocab_size=20, dim=5, context=3, hidden=4), seed=0)
    history = [
        EpochStats(1, 10, 2.0, 7.39, 2.5, 12.18, 0.01, 0.1, 1000.0),
        EpochStats(2, 20, 1.5, 4.48, 2.4, 11.02, 0.01, 0.1, 1000.0),
    ]
    for lang, axes, component, legend, xlabel in (
        (
            "es_ES.UTF-8",
            ("Sustantivo", "Adjetivo"),
            "componente principal 1 (",
            "conservada: época 2 (validación 2.400)",
            "época",
        ),
        (
            "C",
            ("Noun", "Adjective"),
            "principal component 1 (",
            "kept: epoch 2 (validation 2.400)",
            "epoch",
        ),
    ):
        locale(lang)
        assert embedding_coordinates(blog)[1:] == axes
        assert embedding_coordinates(big)[1].startswith(component)
        (ax,) = loss_figure(history, None, history[1].epoch).axes
        assert legend in [t.get_text() for t in ax.get_legend().get_texts()]
        assert ax.get_xlabel() == xlabel
    locale("es_ES.UTF-8")
    (ax,) = loss_figure(history, None).axes
    assert ax.get_title() == "Entrenamiento" and ax.get_ylabel().startswith("entropía cruzada")
    assert [line.get_label() for line in ax.get_lines()] == ["entrenamiento", "validación"]
