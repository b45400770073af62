"""How people see the model: plain text for terminals, HTML for notebooks and the classroom.

- :func:`trace_text`, :func:`draws_text`: the pipeline of one prediction and the
  draws of :meth:`~tinyllm.TinyLM.draw_next` as plain text, optionally fitted to a
  terminal's width (``Trace`` and ``Draws`` print this as their ``repr``;
  ``tinyllm explain`` prints :func:`trace_text` unfitted);
- :func:`trace_html`, :func:`draws_html`, :func:`model_html`: the same as HTML for
  notebooks (JupyterLab calls ``_repr_html_``, which returns these);
- :func:`page_html`: one self-contained page for a classroom (``tinyllm explain
  PROMPT --html FILE``): the pipeline as the blog post's diagram, words → ids →
  embedding rows → x → f1 → logits → probability bars, and the model.

Every function is pure and returns a string. The HTML is self-contained: inline CSS
and SVG, no script, no link, no URL, so it renders offline and from a file. Every
piece of text from outside (words, tokens, titles, file names) goes through
:func:`html.escape`, so a token like ``<script>`` shows as text. Colours come from
JupyterLab's theme variables with fallbacks (``currentColor`` and translucent greys
that read on white and on black); only the stand-alone page follows the system's
``prefers-color-scheme``, since in a notebook the theme, not the system, sets the
background. Long vectors and large vocabularies are cut (the first numbers, the most
likely tokens), so a page stays small whatever the model's size.

Every human-readable label comes from :data:`LABELS`, through :func:`label`, in the
language of the locale (``LANG=es_ES.UTF-8``, as the command line) or the one chosen
with :func:`set_language` (``set_language("es")``: Spanish, ``None``: the locale's
again); English otherwise. The Spanish words are in the package's gettext catalogue
(:mod:`tinyllm._i18n`). The numbers are the same in both languages.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tinyllm._i18n import N_, _, language, ngettext, set_language

if TYPE_CHECKING:
    from tinyllm.model import Draws, TinyLM, Trace

__all__ = [
    "LABELS",
    "label",
    "language",
    "set_language",
    "number",
    "vector",
    "bar",
    "top_positions",
    "columns",
    "clip",
    "trace_text",
    "draws_text",
    "trace_html",
    "draws_html",
    "model_html",
    "page_html",
]

BAR_WIDTH = 40  # characters of a text bar at probability 1
TOP_TOKENS = 12  # a vocabulary up to this size is listed whole, else its most likely tokens
TERMINAL_WIDTH = 80  # what the reprs fit in
TOKEN_COLUMNS = 16  # a fitted text cuts longer words and tokens to this many columns
HTML_NUMBERS = 16  # an HTML vector or row shows at most this many numbers
HTML_ROWS = 16  # and an HTML list of words at most this many
HTML_CHARS = 48  # an HTML word or token is cut to this many characters
SVG_BAR = 160  # pixels of an HTML bar at probability 1

# ---------------------------------------------------------------------------
# Labels: every word a person reads, in one place
# ---------------------------------------------------------------------------
#: The text of every label, by key, in English. A tuple is (singular, plural), chosen
#: by ``n``. Words are marked ``N_`` for the catalogue and translated when shown
#: (:func:`label`); formulas, the same in every language, are not marked.
LABELS: dict[str, str | tuple[str, str]] = {
    # the pipeline
    "words": N_("words"),
    "ids": N_("ids"),
    "embeddings": N_("embeddings"),
    "x": "x",
    "f1": "f1 = x · W1",
    "f1_tanh": "f1 = tanh(x · W1)",
    "logits": N_("logits"),
    "probabilities": N_("probabilities"),
    "embeddings_shape": N_("{rows}x{cols}, one row per word"),
    "flattened": N_("flattened row by row, {numbers}"),
    "numbers": N_("{n} number", "{n} numbers"),
    "logits_note": N_("f2 = f1 · W2, one per token"),
    "softmax": "softmax(logits)",
    "softmax_t": "softmax(logits / T={t})",
    "softmax_greedy": N_("softmax(logits / T) at T=0, the greedy limit (all on the largest logit)"),
    "most_likely_of": N_("the {shown} most likely of {total} tokens"),
    "more_tokens": N_("… {n} more"),
    "unknown_word": N_("{word} is not in the vocabulary: the model reads it as {token}"),
    "best": N_("most likely next word: {token} ({p})"),
    "part3_title": N_('Part 3 — vectors and embeddings: "{prompt}"'),
    "model_title": N_('{name} ({model}): "{prompt}"'),
    "trace_title": N_('Trace of "{prompt}"'),
    # the arrows of the diagram
    "via_vocab": N_("vocabulary"),
    "via_table": N_("embedding table"),
    "via_flatten": N_("flatten"),
    "via_w1": "· W1",
    "via_w1_tanh": "tanh(· W1)",
    "via_w2": "· W2",
    "via_softmax": "softmax",
    # the draws
    "draws_title": N_(
        '{n} draw of the next token after "{prompt}"',
        '{n} draws of the next token after "{prompt}"',
    ),
    "token": N_("token"),
    "count": N_("count"),
    "observed": N_("observed"),
    "model": N_("model"),
    # the model
    "model_name": "TinyLM",
    "vocab_size": N_("vocabulary size (V)"),
    "dim": N_("numbers per embedding (d)"),
    "context": N_("words it reads (c)"),
    "hidden": N_("hidden units (h)"),
    "activation": N_("hidden layer"),
    "linear": N_("linear, f1 = x · W1 (as in the blog)"),
    "tanh": N_("tanh, f1 = tanh(x · W1)"),
    "weights": N_("weights"),
    "weights_value": N_("{dtype}, {params} parameters, {size}"),
    "weights_value_packed": N_("{dtype}, W2 in {format}, {params} parameters, {size}"),
    "first_tokens": N_("first tokens"),
    "bytes": N_("{n} byte", "{n} bytes"),
    # the page
    "the_model": N_("The model"),
    "footer": N_("Made by tinyllm {version}: the same numbers as tinyllm explain --json."),
}


def label(key: str, n: int | None = None, **fields: object) -> str:
    """The label ``key`` of :data:`LABELS` in the current language (:func:`language`),
    with ``fields`` (and ``n``) filled in.

    Parameters
    ----------
    key : str
        A key of :data:`LABELS`.
    n : int, optional
        For a label with a singular and a plural: which one (and the ``{n}`` field).
    **fields
        The label's other ``{fields}``.
    """
    text = LABELS[key]
    if isinstance(text, tuple):
        if n is None:
            raise TypeError(f"label {key!r} has a singular and a plural: give n")
        text = ngettext(text[0], text[1], n)
    else:
        text = _(text)
    if n is not None:
        fields["n"] = n
    return text.format(**fields)


# ---------------------------------------------------------------------------
# Numbers and text for people
# ---------------------------------------------------------------------------
def number(v: float) -> str:
    """Short form for display: 1.0000000000000002 -> '1.0', 0.30000000000000004 -> '0.3'."""
    text = f"{float(v):.10g}"
    return text if any(ch in text for ch in ".en") else text + ".0"


def vector(values: Iterable[float], limit: int = 12, room: int | None = None) -> str:
    """``[a, b, ...]``; a vector longer than ``limit`` shows its first 8 entries and its
    length, and with ``room`` as many as fit in that many columns."""
    values = list(values)
    if len(values) <= limit:
        text = "[" + ", ".join(number(v) for v in values) + "]"
        if room is None or columns(text) <= room:
            return text
    shown = [f"{v:.4g}" for v in values[:8]]
    while True:
        text = "[" + ", ".join([*shown, f"… ({label('numbers', n=len(values))})"]) + "]"
        if room is None or columns(text) <= room or not shown:
            return text
        shown.pop()


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``round(p * width)`` blocks."""
    return "█" * round(p * width)


def top_positions(probs: np.ndarray, top: int = TOP_TOKENS) -> list[int]:
    """The positions to list: all of a small vocabulary in its own order, else the
    ``top`` most likely (ties: the lower position first)."""
    if len(probs) <= top:
        return list(range(len(probs)))
    return sorted(range(len(probs)), key=lambda i: (-probs[i], i))[:top]


_ZWJ = "\u200d"


def _char_columns(text: str) -> Iterator[tuple[str, int]]:
    """Each character of ``text`` with the terminal columns it takes: 2 for a wide one
    (CJK, most emoji), 0 for a combining mark, an invisible format character, a skin
    tone and the emoji after a zero-width joiner (👩‍💻 is drawn as one), else 1."""
    previous = ""
    for ch in text:
        if (
            previous == _ZWJ
            or unicodedata.category(ch) in ("Mn", "Me", "Cf")
            or "\U0001f3fb" <= ch <= "\U0001f3ff"
        ):
            yield ch, 0
        else:
            yield ch, 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        previous = ch


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes (see :func:`clip`)."""
    return sum(n for _char, n in _char_columns(text))


def clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal columns, ending in "…" when cut.

    Wide characters (CJK, emoji) take two columns, combining marks none; a cut never
    separates a letter from its marks.
    """
    if columns(text) <= width:
        return text
    kept, used = [], 1  # room for the "…"
    for ch, n in _char_columns(text):
        used += n
        if used > width:
            break
        kept.append(ch)
    return "".join(kept) + "…"


def _pad(text: str, width: int) -> str:
    """``text`` followed by spaces up to ``width`` columns."""
    return text + " " * max(width - columns(text), 0)


def _percent(p: float) -> str:
    return f"{p:.1%}"


# ---------------------------------------------------------------------------
# What a trace shows, in the order of the pipeline (shared by text and HTML)
# ---------------------------------------------------------------------------
def _read_words(trace: Trace) -> list[tuple[str, str, bool]]:
    """(word as typed, token the model reads, whether the word is unknown), per word."""
    unknown = list(trace.unknown) + [False] * (len(trace.words) - len(trace.unknown))
    tokens = (trace.tokens[p] for p in trace.positions)
    return [(word, token, bool(u)) for word, token, u in zip(trace.words, tokens, unknown)]


def _f1_label(trace: Trace) -> str:
    return label("f1_tanh" if trace.activation == "tanh" else "f1")


def _softmax_label(trace: Trace) -> str:
    if trace.temperature == 0:
        return label("softmax_greedy")
    if trace.temperature == 1.0:
        return label("softmax")
    return label("softmax_t", t=number(trace.temperature))


def _best(trace: Trace) -> tuple[str, str]:
    """The most likely next token and its probability as a percentage."""
    best = int(trace.probs.argmax())
    return trace.tokens[best], _percent(float(trace.probs[best]))


def _default_title(trace: Trace) -> str:
    return label("trace_title", prompt=" ".join(trace.words))


# ---------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------
def trace_text(trace: Trace, title: str | None = None, width: int | None = None) -> str:
    """The pipeline stage by stage as plain text (what ``tinyllm explain`` prints).

    Parameters
    ----------
    trace : Trace
        One forward pass (:meth:`tinyllm.TinyLM.trace`).
    title : str, optional
        The first line; default ``Trace of "<the words>"``.
    width : int, optional
        Fit every line in this many terminal columns: words and tokens are cut to
        TOKEN_COLUMNS, vectors show fewer numbers, bars are shorter, and what still
        does not fit is cut with "…". None: everything as it is.

    Returns
    -------
    str
        The lines, without a final line end.
    """

    def cut(text: str) -> str:
        return clip(text, TOKEN_COLUMNS) if width else text

    def stage(step: int, name: str, value: str = "") -> str:
        # "1. words        el ...": values start in one column, two spaces after a long name
        head = f"{step}. {name}"
        return f"{_pad(head, 14)}  {value}" if value else head

    def room(*around: str) -> int | None:
        return None if width is None else width - sum(columns(a) for a in around)

    def noted(step: int, name: str, values: np.ndarray, note: str) -> str:
        # fitted: the note only if it fits beside as many numbers as fit alone
        line = stage(step, name, vector(values, room=room(" " * 16)))
        if width is None or columns(line + note) <= width:
            return line + note
        return line

    read = _read_words(trace)
    words = [cut(f"{w} ({token})" if u else w) for w, token, u in read]
    wide = max(columns(w) for w in words)
    lines = [title if title is not None else _default_title(trace), ""]
    lines.append(stage(1, label("words"), "  ".join(words)))
    lines += [
        "     " + label("unknown_word", word=repr(cut(w)), token=cut(token))
        for w, token, u in read
        if u
    ]
    lines.append(stage(2, label("ids"), "  ".join(str(i) for i in trace.ids)))
    rows, cols = trace.embeddings.shape
    shape = label("embeddings_shape", rows=rows, cols=cols)
    lines.append(stage(3, label("embeddings"), f"({shape})"))
    for word, row in zip(words, trace.embeddings):
        lines.append(f"     {_pad(word, wide)}  {vector(row, room=room(' ' * (7 + wide)))}")
    note = f"   ({label('flattened', numbers=label('numbers', n=trace.x.size))})"
    lines.append(noted(4, label("x"), trace.x, note))
    f1_name = _f1_label(trace)
    f1 = (
        vector(trace.f1, room=room(f"5. {f1_name}  ")) if trace.f1.size > 1 else number(trace.f1[0])
    )
    lines.append(stage(5, f1_name, f1))
    lines.append(noted(6, label("logits"), trace.logits, f"   ({label('logits_note')})"))
    order = top_positions(trace.probs)
    header = f"7. {_softmax_label(trace)}:"
    if len(order) < len(trace.tokens):  # a trained vocabulary: the most likely ones
        header += f"   ({label('most_likely_of', shown=len(order), total=len(trace.tokens))})"
    lines.append(header)
    tokens = {i: cut(trace.tokens[i]) for i in order}
    tw = max(columns(t) for t in tokens.values())
    bar_width = BAR_WIDTH if width is None else max(min(BAR_WIDTH, width - tw - 21), 0)
    for i in order:
        p = float(trace.probs[i])
        lines.append(f"     {_pad(tokens[i], tw)}  {p:.10f}  {bar(p, bar_width)}")
    token, p_best = _best(trace)
    lines += ["", label("best", token=cut(token), p=p_best)]
    if width is not None:
        lines = [clip(line, width) for line in lines]
    return "\n".join(lines)


def _draw_rows(
    counts: Mapping[str, int], draws: int, probs: np.ndarray, vocab: Sequence[str]
) -> list[tuple[str, int, float]]:
    """(token, count, model probability) per listed token: every token of a small
    vocabulary, else the TOP_TOKENS most likely and one row for the rest."""
    order = top_positions(probs)
    rows = [(vocab[i], counts.get(vocab[i], 0), float(probs[i])) for i in order]
    if len(order) < len(vocab):
        rest = 1.0 - sum(float(probs[i]) for i in order)
        count = draws - sum(r[1] for r in rows)
        rows.append((label("more_tokens", n=len(vocab) - len(order)), count, max(rest, 0.0)))
    return rows


def draws_text(draws: Draws, width: int | None = None) -> str:
    """The draws of :meth:`~tinyllm.TinyLM.draw_next` as a text chart: each token's
    observed frequency beside the model's probability.

    Parameters
    ----------
    draws : Draws
    width : int, optional
        Fit every line in this many terminal columns (tokens are cut to
        TOKEN_COLUMNS). None: as it is.
    """
    n = len(draws.tokens)
    rows = _draw_rows(draws.counts, n, draws.probs, draws.vocab)
    if width:
        rows = [(clip(t, TOKEN_COLUMNS), c, p) for t, c, p in rows]
    tw = max(columns(r[0]) for r in [*rows, (label("token"), 0, 0.0)])
    half = BAR_WIDTH // 2
    if width is not None:  # the two bars share what is left
        half = max(min(half, (width - tw - 33) // 2), 0)
    lines = [
        label("draws_title", n=n, prompt=draws.prompt),
        f"  {_pad(label('token'), tw)}  {label('count'):>6}  "
        f"{_pad(label('observed'), half + 7)}  {label('model')}",
    ]
    for token, count, p in rows:
        observed = count / max(n, 1)
        lines.append(
            f"  {_pad(token, tw)}  {count:>6}  {observed:6.4f} "
            f"{_pad(bar(observed, half), half)}  {p:6.4f} {bar(p, half)}".rstrip()
        )
    if width is not None:
        lines = [clip(line, width) for line in lines]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------
def _e(text: object) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def _short(text: str) -> str:
    """A word or token cut to HTML_CHARS characters, escaped."""
    return _e(text if len(text) <= HTML_CHARS else text[: HTML_CHARS - 1] + "…")


# Scoped to .tinyllm, so that a notebook's other outputs are left alone. Colours:
# JupyterLab's theme variables first, then what reads on any background. The tables
# are set with !important where notebooks style every table of an output (cells
# aligned right, striped rows, centred tables, a smaller font).
_CSS = """
.tinyllm{--tl-fg:var(--jp-content-font-color1,currentColor);
--tl-muted:var(--jp-content-font-color2,currentColor);
--tl-line:var(--jp-border-color1,rgba(127,127,127,.45));
--tl-card:var(--jp-layout-color2,rgba(127,127,127,.08));
--tl-accent:var(--jp-brand-color1,#3b82f6);--tl-accent2:var(--jp-warn-color1,#f59e0b);
color:var(--tl-fg);font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",
"DejaVu Sans",sans-serif);line-height:1.35;max-width:100%;overflow-x:auto;text-align:left}
.tinyllm .tl-title{font-weight:600;font-size:1.1em;margin:.2em 0 .6em}
.tinyllm .tl-flow{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.4em}
.tinyllm .tl-stage{border:1px solid var(--tl-line);border-radius:6px;background:var(--tl-card);
padding:.4em .6em;margin:0}
.tinyllm .tl-stage h4{margin:0 0 .3em;font-size:.95em;font-weight:600;white-space:nowrap;
line-height:1.35}
.tinyllm .tl-step{display:inline-block;min-width:1.3em;height:1.3em;line-height:1.3em;
border-radius:50%;text-align:center;background:var(--tl-accent);color:#fff;font-size:.8em;
margin-right:.3em}
.tinyllm .tl-arrow{align-self:center;text-align:center;font-size:1.4em;color:var(--tl-muted);
opacity:.8;padding:0 .1em}
.tinyllm .tl-arrow span{display:block;font-size:.5em;white-space:nowrap}
.tinyllm table{border-collapse:collapse;border:0;color:inherit;margin:0!important;
font-size:inherit!important;table-layout:auto!important}
.tinyllm tr,.tinyllm td,.tinyllm th{background:transparent!important;border:0;
padding:.1em .45em!important;text-align:left!important;vertical-align:middle;
line-height:1.35!important}
.tinyllm th{font-weight:600;font-size:.85em;color:var(--tl-muted)}
.tinyllm .tl-n{font-family:var(--jp-code-font-family,ui-monospace,"DejaVu Sans Mono",monospace);
font-variant-numeric:tabular-nums;text-align:right!important;white-space:nowrap}
.tinyllm .tl-w{font-weight:600;white-space:nowrap}
.tinyllm .tl-more{font-style:italic;color:var(--tl-muted);white-space:nowrap}
.tinyllm .tl-group td{border-top:1px solid var(--tl-line)}
.tinyllm .tl-unk{color:var(--tl-accent2);font-weight:400}
.tinyllm .tl-note{font-size:.8em;color:var(--tl-muted);margin-top:.3em;max-width:11em}
.tinyllm .tl-best td{font-weight:700}
.tinyllm svg.tl-bar{display:block;overflow:visible;max-width:none}
.tinyllm svg.tl-bar .tl-track{fill:currentColor;opacity:.12}
.tinyllm svg.tl-bar .tl-fill{fill:var(--tl-accent)}
.tinyllm svg.tl-bar .tl-fill2{fill:var(--tl-accent2)}
.tinyllm .tl-result{margin-top:.7em;font-size:1.05em}
.tinyllm .tl-key{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin:0 .3em}
"""

# The stand-alone page: the system's light or dark scheme, larger type for a projector.
_PAGE_CSS = """
:root{color-scheme:light dark}
body{margin:0;background:Canvas;color:CanvasText;font-size:18px}
main{padding:1.5em 2em;max-width:80em}
h1{font-size:1.5em;margin:0 0 .8em;font-family:system-ui,"DejaVu Sans",sans-serif}
h2{font-size:1.15em;margin:1.6em 0 .5em;font-family:system-ui,"DejaVu Sans",sans-serif}
footer{margin-top:2em;font-size:.8em;opacity:.75;font-family:system-ui,"DejaVu Sans",sans-serif}
@media (prefers-color-scheme:dark){.tinyllm{--tl-accent:#60a5fa;--tl-accent2:#fbbf24}
.tinyllm .tl-step{color:#111}}
"""


def _style() -> str:
    return f"<style>{_CSS}</style>"


def _svg_bar(p: float, css_class: str = "tl-fill") -> str:
    """A horizontal bar, ``p`` of SVG_BAR pixels long, on a faint track."""
    fill = round(min(max(p, 0.0), 1.0) * SVG_BAR, 2)
    return (
        f'<svg class="tl-bar" width="{SVG_BAR}" height="12" viewBox="0 0 {SVG_BAR} 12" '
        f'aria-hidden="true"><rect class="tl-track" width="{SVG_BAR}" height="12" rx="2"/>'
        f'<rect class="{css_class}" width="{fill}" height="12" rx="2"/></svg>'
    )


def _numbers_cells(values: Iterable[float]) -> str:
    """One ``<td>`` per number (at most HTML_NUMBERS), then one saying how many there are."""
    values = list(values)
    cells = "".join(f'<td class="tl-n">{_e(number(v))}</td>' for v in values[:HTML_NUMBERS])
    if len(values) > HTML_NUMBERS:
        more = label("more_tokens", n=len(values) - HTML_NUMBERS)
        cells += f'<td class="tl-more">{_e(more)}</td>'
    return cells


def _column(values: Iterable[float], groups: int = 0) -> str:
    """A vector as a column of numbers (at most HTML_NUMBERS); a line between groups
    of ``groups`` (x: one group per word)."""
    values = list(values)
    rows = []
    for i, v in enumerate(values[:HTML_NUMBERS]):
        group = ' class="tl-group"' if groups and i and i % groups == 0 else ""
        rows.append(f'<tr{group}><td class="tl-n">{_e(number(v))}</td></tr>')
    if len(values) > HTML_NUMBERS:
        more = label("more_tokens", n=len(values) - HTML_NUMBERS)
        rows.append(f'<tr><td class="tl-more">{_e(more)}</td></tr>')
    return f"<table>{''.join(rows)}</table>"


def _stage(step: int, key: str, name: str, body: str, note: str = "") -> str:
    note_html = f'<div class="tl-note">{_e(note)}</div>' if note else ""
    return (
        f'<section class="tl-stage" data-stage="{key}"><h4><span class="tl-step">{step}</span>'
        f"{_e(name)}</h4>{body}{note_html}</section>"
    )


def _arrow(via: str) -> str:
    return f'<div class="tl-arrow" aria-hidden="true"><span>{_e(via)}</span>→</div>'


def _more_rows(shown: int, total: int, span: int) -> str:
    if shown >= total:
        return ""
    more = _e(label("more_tokens", n=total - shown))
    return f'<tr><td class="tl-more" colspan="{span}">{more}</td></tr>'


def _trace_body(trace: Trace) -> str:
    """The diagram: one card per stage, arrows between, then the most likely word."""
    read = _read_words(trace)[:HTML_ROWS]
    c = len(trace.words)
    word_rows = "".join(
        f'<tr><td class="tl-w">{_short(w)}'
        + (f' <span class="tl-unk">→ {_short(token)}</span>' if u else "")
        + "</td></tr>"
        for w, token, u in read
    )
    words = f"<table>{word_rows}{_more_rows(len(read), c, 1)}</table>"
    notes = " ".join(label("unknown_word", word=repr(w), token=token) for w, token, u in read if u)
    ids = "".join(f'<tr><td class="tl-n">{i}</td></tr>' for i in trace.ids[:HTML_ROWS])
    ids_table = f"<table>{ids}{_more_rows(len(read), c, 1)}</table>"
    emb_rows = "".join(f"<tr>{_numbers_cells(row)}</tr>" for row in trace.embeddings[:HTML_ROWS])
    rows, cols = trace.embeddings.shape
    embeddings = f"<table>{emb_rows}{_more_rows(len(read), c, cols)}</table>"

    order = top_positions(trace.probs)
    best = int(trace.probs.argmax())
    logit_rows, prob_rows = [], []
    for i in order:
        p = float(trace.probs[i])
        mark = ' class="tl-best"' if i == best else ""
        token = f'<td class="tl-w">{_short(trace.tokens[i])}</td>'
        logit_rows.append(
            f'<tr{mark} data-position="{i}">{token}'
            f'<td class="tl-n">{_e(number(trace.logits[i]))}</td></tr>'
        )
        prob_rows.append(
            f'<tr{mark} data-position="{i}">{token}<td class="tl-n">{p:.10f}</td>'
            f'<td>{_svg_bar(p)}</td><td class="tl-n">{_e(_percent(p))}</td></tr>'
        )
    v = len(trace.tokens)
    logits_note = label("logits_note")
    if len(order) < v:
        logits_note += "; " + label("most_likely_of", shown=len(order), total=v)
    tanh = trace.activation == "tanh"
    flow = [
        _stage(1, "words", label("words"), words, notes),
        _arrow(label("via_vocab")),
        _stage(2, "ids", label("ids"), ids_table),
        _arrow(label("via_table")),
        _stage(
            3,
            "embeddings",
            label("embeddings"),
            embeddings,
            label("embeddings_shape", rows=rows, cols=cols),
        ),
        _arrow(label("via_flatten")),
        _stage(
            4,
            "x",
            label("x"),
            _column(trace.x, groups=cols),
            label("flattened", numbers=label("numbers", n=trace.x.size)),
        ),
        _arrow(label("via_w1_tanh" if tanh else "via_w1")),
        _stage(5, "f1", _f1_label(trace), _column(trace.f1)),
        _arrow(label("via_w2")),
        _stage(
            6,
            "logits",
            label("logits"),
            f"<table>{''.join(logit_rows)}{_more_rows(len(order), v, 2)}</table>",
            logits_note,
        ),
        _arrow(label("via_softmax")),
        _stage(
            7,
            "probs",
            _softmax_label(trace),
            f"<table>{''.join(prob_rows)}{_more_rows(len(order), v, 4)}</table>",
        ),
    ]
    token, p_best = _best(trace)
    result = f'<div class="tl-result">{_e(label("best", token=token, p=p_best))}</div>'
    return f'<div class="tl-flow">{"".join(flow)}</div>{result}'


def trace_html(trace: Trace, title: str | None = None) -> str:
    """The pipeline as the blog post's diagram, as an HTML fragment for a notebook.

    Parameters
    ----------
    trace : Trace
    title : str, optional
        Shown above the diagram; default ``Trace of "<the words>"``.

    Returns
    -------
    str
        A ``<div class="tinyllm">`` with its own ``<style>``: words → ids → embedding
        rows → x → f1 → logits → probability bars, then the most likely next word.
    """
    title = _default_title(trace) if title is None else title
    return (
        f'<div class="tinyllm tinyllm-trace">{_style()}'
        f'<div class="tl-title">{_e(title)}</div>{_trace_body(trace)}</div>'
    )


def draws_html(draws: Draws) -> str:
    """The draws of :meth:`~tinyllm.TinyLM.draw_next` as an HTML fragment: each token's
    count and observed frequency beside the model's probability, as two bars."""
    n = len(draws.tokens)
    rows = []
    for token, count, p in _draw_rows(draws.counts, n, draws.probs, draws.vocab):
        observed = count / max(n, 1)
        rows.append(
            f'<tr><td class="tl-w">{_short(token)}</td><td class="tl-n">{count}</td>'
            f'<td class="tl-n">{observed:.4f}</td><td>{_svg_bar(observed)}</td>'
            f'<td class="tl-n">{p:.4f}</td><td>{_svg_bar(p, "tl-fill2")}</td></tr>'
        )
    head = (
        f"<tr><th>{_e(label('token'))}</th><th>{_e(label('count'))}</th>"
        f'<th colspan="2"><span class="tl-key" style="background:var(--tl-accent)"></span>'
        f"{_e(label('observed'))}</th>"
        f'<th colspan="2"><span class="tl-key" style="background:var(--tl-accent2)"></span>'
        f"{_e(label('model'))}</th></tr>"
    )
    title = label("draws_title", n=n, prompt=draws.prompt)
    return (
        f'<div class="tinyllm tinyllm-draws">{_style()}<div class="tl-title">{_e(title)}</div>'
        f'<table data-stage="draws">{head}{"".join(rows)}</table></div>'
    )


def byte_size(n: int) -> str:
    """512 bytes, 1.5 KiB, 31.3 MiB."""
    if n < 1024:
        return label("bytes", n=n)
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _model_table(model: TinyLM) -> str:
    c = model.config
    params = model.embedding.table.size + model.W1.size + c.hidden * c.vocab_size
    weights = (
        label("weights_value", dtype=c.dtype, params=f"{params:,}", size=byte_size(model.nbytes))
        if model.packed_W2 is None
        else label(
            "weights_value_packed",
            dtype=c.dtype,
            format=model.weight_format,
            params=f"{params:,}",
            size=byte_size(model.nbytes),
        )
    )
    tokens = model.vocab.tokens
    first = ", ".join(_short(t) for t in tokens[:TOP_TOKENS])
    if len(tokens) > TOP_TOKENS:
        first += ", " + _e(label("more_tokens", n=len(tokens) - TOP_TOKENS))
    rows = [
        (label("vocab_size"), f'<span class="tl-n">{c.vocab_size}</span>'),
        (label("dim"), f'<span class="tl-n">{c.dim}</span>'),
        (label("context"), f'<span class="tl-n">{c.context}</span>'),
        (label("hidden"), f'<span class="tl-n">{c.hidden}</span>'),
        (label("activation"), _e(label("tanh" if c.activation == "tanh" else "linear"))),
        (label("weights"), _e(weights)),
        (label("first_tokens"), first),
    ]
    body = "".join(f"<tr><th>{_e(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table data-stage="model">{body}</table>'


def model_html(model: TinyLM) -> str:
    """A model as an HTML fragment: its configuration, vocabulary size and weight format."""
    return (
        f'<div class="tinyllm tinyllm-model">{_style()}'
        f'<div class="tl-title">{_e(label("model_name"))}</div>{_model_table(model)}</div>'
    )


def page_html(trace: Trace, title: str, model: TinyLM | None = None) -> str:
    """One self-contained HTML page: the diagram of ``trace`` and, given, the model.

    For ``tinyllm explain PROMPT --html FILE``: a teacher can project or share it. No
    script, no link, no URL (a Content-Security-Policy forbids loading anything),
    light or dark with the system, and small (long vectors and large vocabularies are
    cut as in the notebook displays).

    Parameters
    ----------
    trace : Trace
    title : str
        The page's title and heading.
    model : TinyLM, optional
        Described below the diagram.

    Returns
    -------
    str
        The whole document, ``<!DOCTYPE html>`` to ``</html>``.
    """
    from tinyllm._version import __version__

    model_section = (
        "" if model is None else f"<h2>{_e(label('the_model'))}</h2>{_model_table(model)}"
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{language()}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_CSS}{_PAGE_CSS}</style></head>\n"
        f'<body><main class="tinyllm"><h1>{_e(title)}</h1>{_trace_body(trace)}{model_section}'
        f"<footer>{_e(label('footer', version=__version__))}</footer></main></body></html>\n"
    )
