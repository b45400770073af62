"""The displays (tinyllm.display): Trace, Draws and TinyLM as text and as HTML, and the
classroom page of ``tinyllm explain PROMPT --html FILE``.

The numbers shown are the numbers computed (the page against ``explain --json``), every
piece of outside text is escaped (a vocabulary with ``<script>alert(1)</script>``), the
HTML loads nothing (no URL, no script), stays small whatever the model's size, the
text fits 80 columns, and every label comes from ``display.LABELS``. The last section
opens the page in a real browser (headless Chromium): skipped where there is none,
unless ``TINYLLM_BROWSER_REQUIRED=1`` (CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_files import DESCRIBED, SPECIAL, make_special, snapshot, symlink

from tinyllm import TinyLM, TinyLMConfig, Vocab, display
from tinyllm.cli import main

from conftest import BLOG_IDS, BLOG_LOGITS, BLOG_PROBS, BLOG_PROMPT, BLOG_X

HOSTILE = "<script>alert(1)</script>"
#: Tokens too long or too wide for a line.
LONG_TOKENS = ["cielo" * 20, "日本語" * 15, "👩‍💻" * 30]
HOSTILE_TOKENS = [
    HOSTILE,
    "el",
    "cielo",
    "es",
    "&amp;",
    '"onmouseover=alert(1)',
    "</style>",
    "日本語",
]
#: Every element the displays may use: anything else (script, img, a, link, iframe,
#: object...) would be markup that came from outside.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h4", "div",
    "section", "span", "table", "tbody", "tr", "td", "th", "svg", "rect", "footer",
}  # fmt: skip
VOID_TAGS = {"meta", "rect"}  # elements without an end tag (rect's is optional)
PAGE_LIMIT = 200_000  # bytes: the target for the classroom page


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    assert err.startswith("tinyllm explain: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture
def model() -> TinyLM:
    return TinyLM.from_blog()


def hostile_model(
    vocab_size: int = 0, dim: int = 2, context: int = 3, long: bool = False, **kw
) -> TinyLM:
    """A model whose vocabulary holds markup, entities, quotes and wide characters (and
    ``vocab_size`` more long hostile tokens; ``long``: LONG_TOKENS too)."""
    tokens = HOSTILE_TOKENS + (LONG_TOKENS if long else [])
    tokens += [f"<b>{'x' * 200}{i}</b>" for i in range(vocab_size)]
    config = TinyLMConfig(len(tokens), dim, context, kw.pop("hidden", 1), **kw)
    return TinyLM.random(config, Vocab(tokens), seed=0)


class Rendered(HTMLParser):
    """What a page or fragment shows. ``stages[name]`` is the list of rows of the
    element marked ``data-stage="name"``, each row ``(data-position, [(class, text)])``
    for its cells; ``text`` is every visible string; ``tags`` and ``attrs`` every
    element and attribute."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: Counter = Counter()
        self.attrs: list[tuple[str, str, str | None]] = []
        self.stages: dict[str, list] = {}
        self.text: list[str] = []
        self._stage: str | None = None
        self._stage_end: tuple[str, int] = ("", 0)  # the tag that closes the stage, its depth
        self._open: Counter = Counter()  # open elements, by tag
        self._row: list | None = None
        self._cell: list | None = None
        self._hidden = 0  # inside <style> or <title>
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag not in VOID_TAGS:
            self._open[tag] += 1
        self.attrs += [(tag, name, value) for name, value in attrs]
        a = dict(attrs)
        if "data-stage" in a:
            self._stage = a["data-stage"]
            self._stage_end = (tag, self._open[tag])
            self.stages[self._stage] = []
        if tag == "tr" and self._stage is not None:
            self._row = [a.get("data-position"), []]
            self.stages[self._stage].append(self._row)
        if tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("class") or "", ""]
            self._row[1].append(self._cell)
        if tag in ("style", "title"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if (tag, self._open[tag]) == self._stage_end:
            self._stage, self._stage_end = None, ("", 0)
        self._open[tag] -= 1
        if tag in ("td", "th"):
            self._cell = None
        if tag == "tr":
            self._row = None
        if tag in ("style", "title"):
            self._hidden -= 1

    def handle_data(self, data):
        if self._hidden:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell[1] += data

    def cells(self, stage: str, css_class: str = "tl-n") -> list[list[str]]:
        """The texts of the cells of ``css_class`` in each row of ``stage``."""
        return [[t for c, t in cells if css_class in c.split()] for _, cells in self.stages[stage]]

    def visible(self) -> str:
        return " ".join(self.text)


def shown(token: str) -> str:
    """A word or token as the HTML shows it: cut to HTML_CHARS characters."""
    n = display.HTML_CHARS
    return token if len(token) <= n else token[: n - 1] + "…"


def assert_shows_the_json(page: str, d: dict) -> None:
    """Every number of ``page`` is the number of ``explain --json`` (``d``) at its place,
    as the text shows it, and every stage shows the first of its numbers."""
    r = Rendered(page)
    rows, numbers = display.HTML_ROWS, display.HTML_NUMBERS

    def close(text: str, value: float) -> None:
        assert text == display.number(value)
        assert float(text) == pytest.approx(value, rel=1e-9, abs=1e-300)

    words = [cells[0] for cells in r.cells("words", "tl-w") if cells]
    expected = [
        shown(w) + (f" → {shown(t)}" if w in d["unknown"] else "")
        for w, t in zip(d["words"], d["read_as"])
    ]
    assert words == expected[:rows]
    ids = [cells[0] for cells in r.cells("ids") if cells]
    assert ids == [str(i) for i in d["ids"][:rows]]
    embeddings = [cells for cells in r.cells("embeddings") if cells]
    assert len(embeddings) == min(len(d["embeddings"]), rows)
    for texts, row in zip(embeddings, d["embeddings"]):
        assert len(texts) == min(len(row), numbers)
        for text, value in zip(texts, row):
            close(text, value)
    for stage in ("x", "f1"):
        texts = [cells[0] for cells in r.cells(stage) if cells]
        assert len(texts) == min(len(d[stage]), numbers)
        for text, value in zip(texts, d[stage]):
            close(text, value)
    probs = np.array(d["probs"])
    top = display.top_positions(probs)
    for stage in ("logits", "probs"):
        positions = [int(p) for p, _ in r.stages[stage] if p is not None]
        assert positions == top, stage
    for (position, cells), tokens in zip(r.stages["logits"], r.cells("logits", "tl-w")):
        if position is not None:
            i = int(position)
            assert tokens == [shown(d["tokens"][i])]
            close(next(t for c, t in cells if c == "tl-n"), d["logits"][i])
    for position, cells in r.stages["probs"]:
        if position is not None:
            p = d["probs"][int(position)]
            assert [t for c, t in cells if c == "tl-n"] == [f"{p:.10f}", f"{p:.1%}"]
    best = int(probs.argmax())
    assert f"({probs[best]:.1%})" in r.visible()


def explain_json(capsys, *argv) -> dict:
    status, out, _ = run(capsys, "explain", *argv, "--json")
    assert status == 0
    return json.loads(out)


def explain_html(capsys, tmp_path: Path, *argv) -> str:
    page = tmp_path / "page.html"
    status, out, err = run(capsys, "explain", *argv, "--html", page)
    assert (status, out, err) == (0, f"wrote {page}\n", "")
    return page.read_text(encoding="utf-8")


def text_lines(text: str) -> list[str]:
    return text.split("\n")


# ---------------------------------------------------------------------------
# Text: numbers, and 80 columns
# ---------------------------------------------------------------------------
def test_explain_text_is_unchanged_by_the_move_to_display(capsys):
    """The README's block (test_readme) and these: the stages as explain printed them."""
    status, out, _ = run(capsys, "explain", "El cielo ES", "--temperature", "0.5")
    assert status == 0
    assert "\n1. words        El  cielo  ES\n2. ids          578  350  698\n" in out
    assert "\n7. softmax(logits / T=0.5):\n     azul   0.7024589951  " in out


def test_trace_repr_is_the_pipeline(model):
    trace = model.trace(BLOG_PROMPT)
    text = repr(trace)
    lines = text_lines(text)
    assert lines[0] == 'Trace of "el cielo es"'
    assert "2. ids          " + "  ".join(map(str, BLOG_IDS)) in lines
    assert "4. x            " + display.vector(BLOG_X) in lines
    assert "5. f1 = x · W1  1.0" in lines
    for token, p in zip(("azul", "cielo", "frío", "el", "es"), BLOG_PROBS):
        assert any(line.startswith(f"     {token:<5}  {p:.10f}  ") for line in lines), token
    assert lines[-1] == "most likely next word: azul (49.8%)"
    assert str(trace) == text  # print(trace) shows the same


def test_draws_repr_counts_beside_probabilities(model):
    draws = model.draw_next(BLOG_PROMPT, 1000, rng=0)
    lines = text_lines(repr(draws))
    assert lines[0] == '1000 draws of the next token after "el cielo es"'
    for token, p in zip(draws.vocab, BLOG_PROBS):
        count = draws.counts[token]
        row = next(line for line in lines if line.startswith(f"  {token} "))
        assert f" {count} " in row and f"{count / 1000:.4f}" in row and f"{p:.4f}" in row
    one = model.draw_next(BLOG_PROMPT, 1, rng=0)
    assert repr(one).startswith('1 draw of the next token after "el cielo es"')


def test_draws_repr_of_a_large_vocabulary_adds_up():
    model = TinyLM.random(TinyLMConfig(300, 4, 3, 5), seed=3)
    draws = model.draw_next("t1 t2 t3", 500, rng=1)
    lines = text_lines(repr(draws))
    rows = [re.match(r"  (.+?)\s+(\d+)\s+\d\.\d{4}\b", line) for line in lines[2:]]
    assert all(rows) and len(rows) == display.TOP_TOKENS + 1
    assert rows[-1][1] == f"… {300 - display.TOP_TOKENS} more"
    assert sum(int(row[2]) for row in rows) == 500


def test_tinylm_repr_is_one_line_with_the_configuration(model):
    assert repr(model) == "TinyLM(vocab_size=5, dim=2, context=3, hidden=1, dtype=float64)"
    big = TinyLM.random(TinyLMConfig(32_000, 64, 8, 16, dtype="float32"), seed=0)
    assert repr(big) == "TinyLM(vocab_size=32000, dim=64, context=8, hidden=16, dtype=float32)"
    assert max(len(repr(m)) for m in (model, big)) <= display.TERMINAL_WIDTH


def fitted_cases() -> list:
    """Traces and draws that are hard to fit: long, wide and hostile tokens, long
    vectors, unknown words, tanh, temperature 0."""
    blog = TinyLM.from_blog()
    hostile = hostile_model(20, dim=7, context=5, long=True, hidden=30, activation="tanh")
    trained = TinyLM.random(
        TinyLMConfig(5, 3, 3, 2), Vocab(["<unk>", "a", "b", "c", "d"], tokenizer="words"), seed=1
    )
    return [
        blog.trace(BLOG_PROMPT),
        blog.trace(BLOG_PROMPT, temperature=0),
        hostile.trace(f"el {HOSTILE} cielo es 日本語"),
        hostile.trace(" ".join([*LONG_TOKENS, HOSTILE, "el"])),
        trained.trace("a " + "mar" * 40 + " 海洋 b"),
        hostile.draw_next("el es cielo es el", 300, rng=0),
        blog.draw_next(BLOG_PROMPT, 0, rng=0),
    ]


@pytest.mark.parametrize("case", range(7))
def test_reprs_fit_80_columns(case):
    shown_object = fitted_cases()[case]
    text = repr(shown_object)
    for line in text_lines(text):
        assert display.columns(line) <= display.TERMINAL_WIDTH, line
    assert text.count("\n") >= 6


tokens = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=60
).filter(lambda t: t == t.strip() and any(not c.isspace() for c in t))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(tokens, min_size=3, max_size=8, unique_by=lambda t: t.casefold()),
    dim=st.integers(1, 40),
    width=st.integers(40, 120),
)
def test_any_vocabulary_fits_any_width(words, dim, width):
    try:
        vocab = Vocab(words)
    except ValueError:  # tokens the vocabulary refuses (invisible, or equal after folding)
        return
    model = TinyLM.random(TinyLMConfig(len(vocab), dim, 3, 3), vocab, seed=0)
    trace = model.trace(list(range(3)))
    draws = model.draw_next(list(range(3)), 20, rng=0)
    for text in (display.trace_text(trace, width=width), display.draws_text(draws, width=width)):
        for line in text_lines(text):
            assert display.columns(line) <= width, (width, line)


@pytest.mark.parametrize(
    "text, width",
    [
        ("abc", 3),
        ("日本語", 6),
        ("é", 1),
        ("e\u0301", 1),
        ("👩‍💻", 2),
        ("👍🏽", 2),
        ("🇪🇸", 2),
        ("a\u200bb", 2),
    ],
)
def test_columns(text, width):
    assert display.columns(text) == width


def test_clip_cuts_to_the_width_and_keeps_marks_with_letters():
    assert display.clip("abcdef", 6) == "abcdef"
    assert display.clip("abcdef", 4) == "abc…"
    assert display.clip("日本語", 4) == "日…"
    assert display.clip("e\u0301e\u0301e\u0301", 2) == "e\u0301…"


def test_number_and_vector():
    assert display.number(1.0000000000000002) == "1.0"
    assert display.number(0.30000000000000004) == "0.3"
    assert display.number(2) == "2.0" and display.number(1e-20) == "1e-20"
    assert display.vector([0.3, -0.6]) == "[0.3, -0.6]"
    values = list(np.linspace(-1, 1, 30))
    assert display.vector(values).endswith(", … (30 numbers)]")
    assert display.vector(values, room=25) == "[-1, … (30 numbers)]"
    assert display.vector(values, room=5) == "[… (30 numbers)]"  # never less than this


# ---------------------------------------------------------------------------
# Labels: one place
# ---------------------------------------------------------------------------
def marked_labels() -> dict:
    """Every label replaced by its key in capitals, with its {fields} kept."""
    marked = {}
    for key, text in display.LABELS.items():
        forms = text if isinstance(text, tuple) else (text,)
        fields = {f for form in forms for _, f, _, _ in string.Formatter().parse(form) if f}
        mark = key.upper() + "".join(f" {{{f}}}" for f in sorted(fields))
        marked[key] = (mark, mark) if isinstance(text, tuple) else mark
    return marked


def test_every_label_comes_from_labels(monkeypatch, model, capsys, tmp_path):
    """With every label replaced, no English word is left: only the model's tokens, the
    prompt's words, numbers and the names of the blog's functions."""
    monkeypatch.setattr(display, "LABELS", marked_labels())
    trace = model.trace(BLOG_PROMPT)
    draws = model.draw_next(BLOG_PROMPT, 10, rng=0)
    texts = [
        repr(trace),
        repr(draws),
        Rendered(trace._repr_html_()).visible(),
        Rendered(draws._repr_html_()).visible(),
        Rendered(model._repr_html_()).visible(),
        Rendered(explain_html(capsys, tmp_path, BLOG_PROMPT)).visible(),
        run(capsys, "explain", BLOG_PROMPT)[1],
    ]
    known = set(model.vocab.tokens) | {"tinyllm", "float64"}
    for text in texts:
        words = set(re.findall(r"[a-zà-ÿ][a-zà-ÿ0-9]+", text)) - known
        assert not words, (words, text)
    # The page declares the language of its labels (Spanish: tests/test_i18n.py).
    page = Rendered(explain_html(capsys, tmp_path, BLOG_PROMPT))
    assert ("html", "lang", "en") in page.attrs


def test_label_plural_and_fields():
    assert display.label("numbers", n=1) == "1 number"
    assert display.label("numbers", n=6) == "6 numbers"
    assert display.label("best", token="azul", p="49.8%") == "most likely next word: azul (49.8%)"
    with pytest.raises(TypeError, match="give n"):
        display.label("numbers")


# ---------------------------------------------------------------------------
# HTML: the numbers, escaping, nothing loaded, size
# ---------------------------------------------------------------------------
def test_trace_html_shows_the_blogs_numbers(model):
    html = model.trace(BLOG_PROMPT)._repr_html_()
    assert_shows_the_json(html, explain_dict(model, BLOG_PROMPT))
    r = Rendered(html)
    assert r.cells("logits") == [[display.number(v)] for v in BLOG_LOGITS]
    assert [c[0] for c in r.cells("probs")] == [f"{p:.10f}" for p in BLOG_PROBS]
    stages = [s for s in r.stages if s != "model"]
    assert stages == ["words", "ids", "embeddings", "x", "f1", "logits", "probs"]
    assert "most likely next word: azul (49.8%)" in r.visible()


def explain_dict(model: TinyLM, prompt: str, temperature: float = 1.0) -> dict:
    """What explain --json prints for ``model`` (without going through the CLI)."""
    trace = model.trace(prompt, temperature=temperature)
    d = trace.to_dict()
    d["read_as"] = [trace.tokens[p] for p in trace.positions]
    d["unknown"] = [w for w, u in zip(trace.words, trace.unknown) if u]
    return d


def test_draws_html_shows_counts_and_probabilities(model):
    draws = model.draw_next(BLOG_PROMPT, 1000, rng=0)
    r = Rendered(draws._repr_html_())
    assert '1000 draws of the next token after "el cielo es"' in r.visible()
    rows = r.stages["draws"][1:]  # under the header
    tokens = [cells[0] for cells in r.cells("draws", "tl-w")[1:]]
    assert tokens == list(draws.vocab)
    for token, p, numbers in zip(tokens, BLOG_PROBS, r.cells("draws")[1:]):
        count = draws.counts[token]
        assert numbers == [str(count), f"{count / 1000:.4f}", f"{p:.4f}"]
    assert len(rows) == 5 and r.tags["svg"] == 2 * 5


def test_model_html_shows_configuration_vocabulary_and_weights():
    model = TinyLM.random(TinyLMConfig(300, 16, 4, 20, dtype="float32", activation="tanh"), seed=0)
    r = Rendered(model._repr_html_())
    table = {cells[0][1]: cells[1][1] for _, cells in r.stages["model"]}
    assert table["vocabulary size (V)"] == "300"
    assert table["numbers per embedding (d)"] == "16"
    assert table["words it reads (c)"] == "4"
    assert table["hidden units (h)"] == "20"
    assert table["hidden layer"].startswith("tanh")
    params = 300 * 16 + 64 * 20 + 20 * 300
    assert table["weights"] == f"float32, {params:,} parameters, {params * 4 / 1024:.1f} KiB"
    assert table["first tokens"].startswith("t0, t1, t2") and "… 288 more" in table["first tokens"]


def every_html(model: TinyLM, prompt: str) -> list[str]:
    trace = model.trace(prompt)
    return [
        trace._repr_html_(),
        model.draw_next(prompt, 50, rng=0)._repr_html_(),
        model._repr_html_(),
        display.page_html(trace, f"{HOSTILE} & {prompt}", model),
    ]


@pytest.mark.parametrize("which", ["trace", "draws", "model", "page"])
def test_html_escapes_hostile_tokens(which):
    model = hostile_model()
    html = every_html(model, f"el {HOSTILE} 日本語 &amp; </style>")[
        ["trace", "draws", "model", "page"].index(which)
    ]
    r = Rendered(html)
    assert set(r.tags) <= ALLOWED_TAGS, set(r.tags) - ALLOWED_TAGS
    assert not [a for a in r.attrs if a[1].lower().startswith("on")]
    assert html.count("</style>") == 1 and "<script" not in html.lower()
    visible = r.visible()
    for token in HOSTILE_TOKENS:
        assert token in visible, token  # shown as text, exactly
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("which", ["trace", "draws", "model", "page"])
def test_html_loads_nothing(which):
    html = every_html(hostile_model(), "el cielo es")[
        ["trace", "draws", "model", "page"].index(which)
    ]
    lowered = html.lower()
    for needle in ("http:", "https:", "//", "url(", "@import", "<script", "<link", "<img", "src="):
        if needle == "//":
            assert "://" not in lowered
        else:
            assert needle not in lowered, needle
    assert not [a for a in Rendered(html).attrs if a[1] in ("src", "href", "action", "srcset")]


def test_page_is_a_whole_document_that_forbids_loading():
    model = TinyLM.from_blog()
    page = display.page_html(model.trace(BLOG_PROMPT), "t", model)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    assert page.rstrip().endswith("</html>")
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in page
    assert '<meta name="color-scheme" content="light dark">' in page
    assert "prefers-color-scheme:dark" in page


def test_notebook_html_follows_the_notebook_theme_not_the_system():
    """In JupyterLab the theme sets the background, whatever the system's scheme: the
    fragments use its variables and never prefers-color-scheme."""
    model = TinyLM.from_blog()
    for html in every_html(model, BLOG_PROMPT)[:3]:
        assert "prefers-color-scheme" not in html
        assert "var(--jp-content-font-color1,currentColor)" in html
        assert "var(--jp-brand-color1," in html


def test_the_page_and_the_fragments_stay_small_for_a_large_hostile_model():
    model = hostile_model(20_000, dim=64, context=40, hidden=300)
    prompt = " ".join([HOSTILE] * 40)
    trace = model.trace(prompt)
    page = display.page_html(trace, HOSTILE * 100, model)
    assert len(page.encode("utf-8")) < PAGE_LIMIT
    assert_shows_the_json(page, explain_dict(model, prompt))
    for html in every_html(model, prompt)[:3]:
        assert len(html.encode("utf-8")) < PAGE_LIMIT


# ---------------------------------------------------------------------------
# explain --html FILE
# ---------------------------------------------------------------------------
def test_explain_html_has_the_numbers_of_explain_json(capsys, tmp_path):
    page = explain_html(capsys, tmp_path, BLOG_PROMPT)
    assert_shows_the_json(page, explain_json(capsys, BLOG_PROMPT))
    assert len(page.encode("utf-8")) < PAGE_LIMIT
    r = Rendered(page)
    assert r.tags["h1"] == 1 and 'Part 3 — vectors and embeddings: "el cielo es"' in r.visible()
    assert r.stages["model"] and "float64, 21 parameters, 168 bytes" in r.visible()


@pytest.mark.parametrize("temperature", ["0", "0.5", "2"])
def test_explain_html_with_a_temperature(capsys, tmp_path, temperature):
    argv = (BLOG_PROMPT, "--temperature", temperature)
    page = explain_html(capsys, tmp_path, *argv)
    assert_shows_the_json(page, explain_json(capsys, *argv))
    header = "softmax(logits / T) at T=0" if temperature == "0" else f"T={temperature}"
    assert header in Rendered(page).visible()


def test_explain_html_with_a_trained_model(capsys, tmp_path):
    vocab = Vocab(["<unk>", "el", "cielo", "es", "azul", "<b>", "日本語"], tokenizer="whitespace")
    model = TinyLM.random(TinyLMConfig(len(vocab), 5, 3, 4, activation="tanh"), vocab, seed=2)
    path = tmp_path / "<i>model.npz"
    model.save(path)
    argv = ("el mar <b>", "--model", path)
    page = explain_html(capsys, tmp_path, *argv)
    d = explain_json(capsys, *argv)
    assert d["unknown"] == ["mar"]
    assert_shows_the_json(page, d)
    visible = Rendered(page).visible()
    assert "'mar' is not in the vocabulary: the model reads it as <unk>" in visible
    assert f"{path} (" in visible and "&lt;i&gt;model.npz" in page
    assert "f1 = tanh(x · W1)" in visible


def test_explain_html_of_a_large_model_is_small_and_has_its_numbers(capsys, tmp_path):
    model = TinyLM.random(TinyLMConfig(32_000, 16, 8, 64, dtype="float32"), seed=0)
    path = tmp_path / "big.npz"
    model.save(path)
    argv = ("t1 t2 t3 t4 t5 t6 t7 t31999", "--model", path)
    page = explain_html(capsys, tmp_path, *argv)
    assert len(page.encode("utf-8")) < PAGE_LIMIT
    assert_shows_the_json(page, explain_json(capsys, *argv))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["el mar es"], "unknown word 'mar'"),
        (["cielo es"], "needs at least 3"),
        (["el cielo es", "--part", "1"], "--html needs --part 3"),
        (["el cielo es", "--part", "2"], "--html needs --part 3"),
        (["el cielo es", "--temperature", "-1"], "temperature"),
        (["el cielo es", "--model", "missing.npz"], "no such model file"),
    ],
)
def test_explain_html_errors_are_one_line_and_write_nothing(
    capsys, tmp_path, monkeypatch, argv, message
):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "explain", *argv, "--html", "page.html")
    assert_one_line_error(status, err, message)
    assert out == "" and sorted(os.listdir(tmp_path)) == []


def test_explain_html_and_json_together_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["explain", BLOG_PROMPT, "--json", "--html", str(tmp_path / "p.html")])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(
        "tinyllm explain: error: argument --html: not allowed with argument --json"
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("through_link", [False, True])
def test_explain_html_refuses_a_special_destination(capsys, tmp_path, kind, through_link):
    node = tmp_path / "node"
    make_special(kind, node)
    target = node
    if through_link:
        target = tmp_path / "link"
        symlink(target, "node")
    before = snapshot(tmp_path)
    status, out, err = run(capsys, "explain", BLOG_PROMPT, "--html", target)
    assert_one_line_error(status, err, str(target), DESCRIBED[kind])
    assert out == "" and ".tmp" not in err
    assert snapshot(tmp_path) == before


def test_explain_html_through_a_symlink_replaces_its_target(capsys, tmp_path):
    (tmp_path / "pages").mkdir()
    real = tmp_path / "pages" / "real.html"
    real.write_text("old", encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "link.html"
    symlink(link, Path("pages") / "real.html")
    status, _, _ = run(capsys, "explain", BLOG_PROMPT, "--html", link)
    assert (
        status == 0 and link.is_symlink() and os.readlink(link) == str(Path("pages") / "real.html")
    )
    assert real.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    if os.name == "posix":
        assert real.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    dangling = tmp_path / "dangling.html"
    symlink(dangling, "new.html")
    assert run(capsys, "explain", BLOG_PROMPT, "--html", dangling)[0] == 0
    assert (tmp_path / "new.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_explain_html_refuses_to_overwrite_the_model(capsys, tmp_path):
    path = tmp_path / "model.npz"
    TinyLM.from_blog().save(path)
    before = path.read_bytes()
    status, _, err = run(capsys, "explain", BLOG_PROMPT, "--model", path, "--html", path)
    assert_one_line_error(status, err, "--html and --model are the same file")
    assert path.read_bytes() == before


def test_explain_html_into_a_missing_folder(capsys, tmp_path):
    status, _, err = run(capsys, "explain", BLOG_PROMPT, "--html", tmp_path / "no" / "p.html")
    assert_one_line_error(status, err, "folder does not exist")


# ---------------------------------------------------------------------------
# In a real browser (headless Chromium)
# ---------------------------------------------------------------------------
BROWSER_REQUIRED = os.environ.get("TINYLLM_BROWSER_REQUIRED") == "1"


@pytest.fixture(scope="module")
def browser() -> str:
    """The path of a Chromium (or Chrome) to run headless."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if BROWSER_REQUIRED:
        pytest.fail("TINYLLM_BROWSER_REQUIRED=1 but no chromium on PATH")
    pytest.skip("no headless browser (install Debian's chromium to run these)")


def chromium(browser: str, tmp_path: Path, *args: str) -> str:
    """Run the browser headless on ``args``; its stdout."""
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",  # concurrent runs do not share one
            *args,
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(browser: str, tmp_path: Path, page: Path, dark: bool = False) -> np.ndarray:
    """The page as the browser draws it, 1400x1000, as RGB floats in [0, 1]."""
    image = pytest.importorskip("matplotlib.image")
    png = tmp_path / f"shot-{'dark' if dark else 'light'}-{page.stem}.png"
    args = ["--window-size=1400,1000", f"--screenshot={png}", page.as_uri()]
    chromium(browser, tmp_path, *(["--force-dark-mode", *args] if dark else args))
    return image.imread(str(png))[..., :3]


def longest_run(mask: np.ndarray) -> int:
    """The longest horizontal run of True pixels in ``mask`` (H, W)."""
    longest = 0
    for row in mask:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        if edges.size:
            longest = max(longest, int((edges[1::2] - edges[::2]).max()))
    return longest


def assert_readable(rgb: np.ndarray, dark: bool, longest_bar: float) -> None:
    """Not blank: a background of the expected lightness, text in contrast with it, and
    the longest blue bar as long as the largest probability it draws (``longest_bar``)."""
    pixels = rgb.reshape(-1, 3)
    packed = (pixels * 255).round().astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    colours, counts = np.unique(packed, return_counts=True)
    top = int(colours[counts.argmax()])
    background = np.array([top >> 16, (top >> 8) & 255, top & 255]) / 255
    lightness = pixels @ np.array([0.2126, 0.7152, 0.0722])
    background_lightness = background @ np.array([0.2126, 0.7152, 0.0722])
    assert (background_lightness < 0.2) if dark else (background_lightness > 0.8)
    assert len(colours) > 50  # anti-aliased text, not a flat image
    assert counts.max() < 0.97 * len(pixels)  # something is drawn
    # text (grey, unlike the bars and badges) far from the background: readable on it
    grey = (rgb.max(axis=-1) - rgb.min(axis=-1) < 0.1).reshape(-1)
    text = grey & (np.abs(lightness - background_lightness) > 0.5)
    assert text.sum() > 8000, text.sum()
    opposite = (lightness > 0.8) if dark else (lightness < 0.2)
    assert opposite.mean() < 0.06, opposite.mean()  # thin text, not panels of that colour
    blue = (rgb[..., 2] - rgb[..., 0] > 0.3) & (rgb[..., 2] > 0.5)
    assert abs(longest_run(blue) - longest_bar * display.SVG_BAR) <= 2  # the bars


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_page_renders_in_a_browser(browser, capsys, tmp_path, dark):
    path = tmp_path / "page.html"
    assert run(capsys, "explain", BLOG_PROMPT, "--html", path)[0] == 0
    assert_readable(screenshot(browser, tmp_path, path, dark), dark, max(BLOG_PROBS))


def test_the_browser_shows_the_numbers_of_explain_json(browser, capsys, tmp_path):
    path = tmp_path / "page.html"
    assert run(capsys, "explain", BLOG_PROMPT, "--html", path)[0] == 0
    dom = chromium(browser, tmp_path, "--dump-dom", path.as_uri())
    assert_shows_the_json(dom, explain_json(capsys, BLOG_PROMPT))
    for p in BLOG_PROBS:
        assert f"{p:.10f}" in dom


def test_the_browser_shows_hostile_tokens_as_text(browser, tmp_path):
    model = hostile_model()
    path = tmp_path / "hostile.html"
    prompt = f"el {HOSTILE} 日本語"
    path.write_text(display.page_html(model.trace(prompt), HOSTILE, model), encoding="utf-8")
    dom = chromium(browser, tmp_path, "--dump-dom", path.as_uri())
    r = Rendered(dom)
    assert "script" not in r.tags and set(r.tags) <= ALLOWED_TAGS
    assert_shows_the_json(dom, explain_dict(model, prompt))
    assert HOSTILE in r.visible()


#: The look of a JupyterLab output area: its theme's variables, and the rules it gives
#: every table of an output (aligned right, striped rows, centred, a smaller font).
NOTEBOOK_THEMES = {
    "light": "--jp-layout-color0:#fff;--jp-layout-color2:#eee;"
    "--jp-content-font-color1:rgba(0,0,0,.87);--jp-content-font-color2:rgba(0,0,0,.54);"
    "--jp-ui-font-color1:rgba(0,0,0,.87);--jp-border-color1:#bdbdbd;"
    "--jp-brand-color1:#1976d2;--jp-warn-color1:#f57c00;--jp-row:#f5f5f5",
    "dark": "--jp-layout-color0:#111;--jp-layout-color2:#424242;"
    "--jp-content-font-color1:#fff;--jp-content-font-color2:rgba(255,255,255,.7);"
    "--jp-ui-font-color1:rgba(255,255,255,.87);--jp-border-color1:#616161;"
    "--jp-brand-color1:#1976d2;--jp-warn-color1:#f57c00;--jp-row:#212121",
}
NOTEBOOK_CSS = """
body{background:var(--jp-layout-color0);margin:0}
.out{color:var(--jp-content-font-color1);font-size:14px;padding:8px}
.out table{color:var(--jp-ui-font-color1);font-size:12px;table-layout:fixed;margin:0 auto 1em}
.out td,.out th,.out tr{padding:.5em;text-align:right;line-height:normal}
.out tbody tr:nth-child(odd){background:var(--jp-layout-color0)}
.out tbody tr:nth-child(even){background:var(--jp-row)}
"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_notebook_displays_read_in_jupyterlab_themes(browser, tmp_path, theme):
    """The fragments inside a JupyterLab-like output area, in its light and dark theme
    (the system's scheme stays light: the theme alone must make it readable)."""
    model = TinyLM.from_blog()
    outputs = "".join(
        f'<div class="out">{html}</div>' for html in every_html(model, BLOG_PROMPT)[:3]
    )
    path = tmp_path / f"notebook-{theme}.html"
    path.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>:root{{{NOTEBOOK_THEMES[theme]}}}'
        f"{NOTEBOOK_CSS}</style></head><body>{outputs}</body></html>",
        encoding="utf-8",
    )
    assert_readable(screenshot(browser, tmp_path, path), theme == "dark", max(BLOG_PROBS))
