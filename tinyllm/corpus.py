"""Text to learn from: the built-in Spanish corpus, reading a corpus file, and its windows.

The built-in corpus (``tinyllm/data/corpus_es.txt``, written for this project) is a
few hundred short sentences in the blog's world: the sky, the sea, colours, the
weather and the cold ("el cielo es azul.", "el hielo es frío.").

A corpus is plain UTF-8 text (a byte-order mark at its start is skipped). Lines
that start with ``#`` are comments; blank lines, and lines of nothing but invisible
characters, are skipped; every other line is one piece of text (a sentence, or a
paragraph).
For training, the lines are tokenized and put one after the other into one stream
of tokens, and every run of ``c`` consecutive tokens is an example whose target is
the token that follows it.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

from tinyllm.vocab import Vocab, _require_text, _visible

__all__ = ["BUILTIN_NAME", "builtin_text", "read_text", "corpus_lines", "encode_lines", "windows"]

#: The byte-order mark (U+FEFF) that some editors write at the start of a UTF-8 file.
BOM = "\ufeff"

#: How the command line and the saved models name the built-in corpus.
BUILTIN_NAME = "built-in corpus_es.txt"


def builtin_text() -> str:
    """The text of the built-in Spanish corpus (shipped in the package)."""
    return resources.files("tinyllm").joinpath("data/corpus_es.txt").read_text(encoding="utf-8")


def read_text(path: str | os.PathLike) -> str:
    """The text of a corpus file, as UTF-8, without the byte-order mark some editors put first.

    Raises
    ------
    ValueError
        The file is not UTF-8 text.
    OSError
        The file cannot be read (missing, a directory, no permission).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{os.fspath(path)} is not UTF-8 text (byte {exc.start})") from None


def corpus_lines(text: str) -> list[str]:
    """The lines of ``text`` that are neither blank nor ``#`` comments, stripped.

    Invisible characters (:func:`tinyllm.vocab.tokenize` drops them: a byte-order
    mark, zero-width spaces, ...) are left out first, so that they neither hide a
    comment's ``#`` nor make a blank line count as text.
    """
    _require_text(text)
    lines = (_visible(line).strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def encode_lines(vocab: Vocab, lines: list[str]) -> np.ndarray:
    """All the lines' tokens as one stream of positions (intp), in order."""
    stream: list[int] = []
    for line in lines:
        stream.extend(vocab.encode(line))
    return np.asarray(stream, dtype=np.intp)


def windows(stream: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Every example of a stream: windows (N, c) of c tokens and the token after each (N,).

    ``N = len(stream) - c``; zero when the stream is not longer than the context.
    """
    stream = np.asarray(stream, dtype=np.intp)
    n = max(len(stream) - context, 0)
    if n == 0:
        return np.empty((0, context), dtype=np.intp), np.empty(0, dtype=np.intp)
    index = np.arange(n)[:, None] + np.arange(context)[None, :]
    return np.ascontiguousarray(stream[index]), stream[context:].copy()
