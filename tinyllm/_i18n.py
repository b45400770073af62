"""The user's language, English or Spanish, through the standard ``gettext`` machinery.

Messages are written in English where they are used and marked there: ``_("...")``
translates at once, ``ngettext(singular, plural, n)`` picks the form for ``n``, and
``N_("...")`` (or ``N_(singular, plural)``) only marks text that is translated later,
where it is shown (the labels of :data:`tinyllm.display.LABELS`, the known error
templates of the command line). Fields are ``str.format`` fields, ``{name}``, filled in
after translation, so a translation may move them.

The Spanish catalogue is ``tinyllm/locale/es/LC_MESSAGES/tinyllm.po``, compiled to the
``tinyllm.mo`` beside it; both ship in the package. ``python -m tinyllm._catalogue
update`` brings the ``.po`` up to date with the marked messages and ``... compile``
writes the ``.mo`` (see :mod:`tinyllm._catalogue`).

Which language:

1. the one set by :func:`set_language` (the command line's ``--lang``), else
2. the locale, read as Python's :mod:`gettext` reads it: the first of ``LANGUAGE``,
   ``LC_ALL``, ``LC_MESSAGES`` and ``LANG`` that is set and not empty; ``LANGUAGE`` may
   list several (``fr:es``). The first entry tinyllm speaks wins (``es_ES.UTF-8``,
   ``es_MX``, ``es`` are Spanish; ``en_US`` is English); ``C`` and ``POSIX`` mean
   English, and so does a locale that names no language tinyllm speaks.
"""

from __future__ import annotations

import contextlib
import functools
import gettext
import locale
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import overload

__all__ = [
    "LANGUAGES",
    "DOMAIN",
    "LOCALEDIR",
    "language",
    "set_language",
    "using",
    "locale_language",
    "_",
    "N_",
    "ngettext",
]

LANGUAGES = ("en", "es")  # English: the messages as written; Spanish: the catalogue
DOMAIN = "tinyllm"
LOCALEDIR = Path(__file__).resolve().parent / "locale"

#: Where gettext looks for the language, in this order (the first that is set wins).
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_chosen: str | None = None  # set_language's choice; None: the locale's


def locale_language(environ: Mapping[str, str] | None = None) -> str:
    """The language the locale asks for: ``"es"`` or ``"en"`` (see the module's notes).

    Parameters
    ----------
    environ : mapping, optional
        The environment to read; default ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    for variable in LOCALE_VARIABLES:
        value = environ.get(variable)
        if value:
            break
    else:
        return "en"
    for entry in value.split(":"):
        if entry in ("C", "POSIX") or entry.startswith(("C.", "POSIX.")):
            return "en"
        # es_ES.UTF-8@euro -> es; locale.normalize also knows aliases (spanish -> es_ES).
        code = locale.normalize(entry).split(".")[0].split("@")[0].split("_")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"


def language() -> str:
    """The language messages are shown in now: ``"en"`` or ``"es"``."""
    return _chosen if _chosen is not None else locale_language()


def set_language(lang: str | None) -> None:
    """Show messages in ``lang`` (``"en"`` or ``"es"``) from now on; None: follow the locale.

    Raises
    ------
    ValueError
        ``lang`` is not one of :data:`LANGUAGES` (or None).
    """
    global _chosen
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)} or None, got {lang!r}")
    _chosen = lang


@contextlib.contextmanager
def using(lang: str | None) -> Iterator[None]:
    """Inside the block, messages are in ``lang`` (None: as they were); then as before."""
    before = _chosen
    if lang is not None:
        set_language(lang)
    try:
        yield
    finally:
        set_language(before)


@functools.cache
def _translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of ``lang``; for English (or a missing catalogue) the messages as
    written."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, str(LOCALEDIR), languages=[lang], fallback=True)


def _(message: str) -> str:
    """``message`` in the current language."""
    return _translations(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of ``singular``/``plural`` for ``n``, in the current language."""
    return _translations(language()).ngettext(singular, plural, n)


@overload
def N_(message: str) -> str: ...
@overload
def N_(message: str, plural: str) -> tuple[str, str]: ...
def N_(message: str, plural: str | None = None) -> str | tuple[str, str]:
    """Mark ``message`` (with its ``plural``) for the catalogue without translating it
    now: it is translated where it is shown. Returns it as it is (a pair with a plural)."""
    return message if plural is None else (message, plural)
