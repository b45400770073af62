"""The command line's output streams, as users bring them.

- An encoding that cannot show a character (``PYTHONIOENCODING=ascii``, cp1252
  consoles) gets a plain one instead: ``█`` -> ``#``, ``í`` -> ``i``, ``—`` -> ``-``,
  ``…`` -> ``...`` (the codec error handler ``tinyllm-plain``); JSON is then written
  with ``\\u`` escapes, so it stays exact.
- A reader of stdout that goes away (``| head``) ends the command quietly
  (:class:`ReaderGone`); a reader of stderr that goes away only drops the log lines
  (:class:`Log`), so that ``train`` still saves its model.

:func:`guarded_streams` sets this up around one command, :func:`emit` writes its
output, :func:`say` writes its one-line messages.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import os
import sys
import unicodedata
from collections.abc import Iterable, Iterator

#: Plain stand-ins for characters tinyllm prints, where the encoding lacks them.
#: Other characters lose their accents (NFKD without combining marks: í -> i).
PLAIN = {
    "█": "#",
    "—": "-",
    "–": "-",
    "−": "-",
    "·": "*",
    "…": "...",
    "→": "->",
    "×": "x",
    "≥": ">=",
    "≤": "<=",
    "«": '"',
    "»": '"',
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "¿": "?",
    "¡": "!",
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "đ": "d",
    "ł": "l",
    "Æ": "AE",
    "Œ": "OE",
    "Ø": "O",
}
PLAIN_ERRORS = "tinyllm-plain"


def plain(char: str) -> str:
    """An ASCII stand-in for ``char``: from PLAIN, else without accents, else '?'."""
    if char in PLAIN:
        return PLAIN[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and base.isascii() else "?"


def _plain_replacement(error: UnicodeError) -> tuple[str | bytes, int]:
    """The codec error handler ``tinyllm-plain``: what an encoding cannot show, in plain
    characters. Lone surrogates (undecodable bytes of a file name, as Python keeps
    them) are written back as those bytes."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    if all("\udc80" <= ch <= "\udcff" for ch in bad):
        return codecs.lookup_error("surrogateescape")(error)
    return "".join(plain(ch) for ch in bad), error.end


codecs.register_error(PLAIN_ERRORS, _plain_replacement)


def _encodes(stream, text: str) -> bool:
    """Whether ``stream``'s encoding can write ``text`` as it is."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def to_json(obj) -> str:
    """``obj`` as JSON text: UTF-8 on a UTF-8 stdout, else ASCII with \\u escapes (exact,
    not transliterated, and still valid JSON for a reader that expects UTF-8)."""
    text = json.dumps(obj, ensure_ascii=False)
    return text if _is_utf(sys.stdout) and _encodes(sys.stdout, text) else json.dumps(obj)


def _is_utf(stream) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name.startswith("utf")
    except LookupError:
        return False


def _plain_errors(stream):
    """Make ``stream`` write plain stand-ins for what its encoding cannot show (instead of
    failing, or writing \\xed); returns the function that undoes it."""
    if getattr(stream, "errors", None) not in (
        "strict",
        "backslashreplace",
        "surrogateescape",
    ) or not hasattr(stream, "reconfigure"):
        return lambda: None
    errors = stream.errors
    try:
        stream.reconfigure(errors=PLAIN_ERRORS)
    except (OSError, ValueError):
        return lambda: None

    def undo() -> None:
        with contextlib.suppress(OSError, ValueError):
            stream.reconfigure(errors=errors)

    return undo


def point_at_devnull(stream) -> None:
    """Send what is left for ``stream``'s file descriptor to the null device: its reader
    is gone, and the interpreter's last flush must not fail (the Python docs' recipe
    for BrokenPipeError)."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


class ReaderGone(Exception):
    """The reader of stdout went away (a closed pipe): stop, quietly."""


class Log:
    """stderr while a command runs. When its reader goes away, the rest is dropped
    instead of stopping the command: train still saves its model."""

    def __init__(self, stream):
        self._stream = stream
        self._gone = stream is None

    def write(self, text: str) -> int:
        self._call("write", text)
        return len(text)

    def flush(self) -> None:
        self._call("flush")

    def isatty(self) -> bool:
        return not self._gone and self._stream.isatty()

    def _call(self, method: str, *args) -> None:
        if self._gone:
            return
        try:
            getattr(self._stream, method)(*args)
        except BrokenPipeError:
            self._gone = True
            point_at_devnull(self._stream)
        except ValueError:  # "I/O operation on closed file", and nothing else
            if not getattr(self._stream, "closed", False):
                raise
            self._gone = True

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_streams() -> Iterator[None]:
    """For one command: plain characters where an encoding lacks some, stderr that
    survives its reader, and stdout flushed (or sent to the null device) before the
    interpreter's own last flush."""
    undo = [_plain_errors(sys.stdout), _plain_errors(sys.stderr)]
    stderr = sys.stderr
    sys.stderr = Log(stderr)
    try:
        yield
    finally:
        sys.stderr = stderr
        if sys.stdout is not None:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                point_at_devnull(sys.stdout)
            except (OSError, ValueError):
                pass
        for restore in undo:
            restore()


def emit(output: str | Iterable[str]) -> None:
    """Write a command's output to stdout, a piece at a time, flushing each (pieces are
    generate's chunks); a line end after the last."""
    pieces = itertools.chain([output] if isinstance(output, str) else output, ["\n"])
    try:
        for piece in pieces:
            if sys.stdout is None:  # stdout closed before we started (>&-)
                raise ReaderGone
            sys.stdout.write(piece)
            sys.stdout.flush()
    except BrokenPipeError:
        raise ReaderGone from None


def say(command: str | None, message: str) -> None:
    """One line on stderr: ``tinyllm <command>: <message>``."""
    prog = "tinyllm" if command is None else f"tinyllm {command}"
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
