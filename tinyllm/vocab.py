"""The vocabulary: tokens <-> positions, with the blog's optional ids.

A *position* is the row of a token in the embedding table and its index in the
logits; an *id* is the number the blog gives it (azul -> 227). Words are matched
after Unicode NFC and case folding, and an unaccented spelling matches an
accented token when that is unambiguous ("frio" -> "frío", as part 3 writes it).

Two ways to cut text into tokens (the vocabulary's ``tokenizer``):

- ``"whitespace"`` (the blog's vocabulary, and the default): split on whitespace,
  so "es azul." is the two words ``es`` and ``azul.``;
- ``"words"`` (a vocabulary built by :meth:`Vocab.from_text`): runs of letters and
  digits, with the combining marks written on them, are words, and every other
  visible character is a token of its own, so "¿es azul?" is ``¿ es azul ?``.
  ``decode`` then writes no space before closing punctuation
  (``. , ; : ! ? ) ] } » …``) nor after opening punctuation (``¿ ¡ ( [ { «``).

Every script is cut the same way: a combining mark (Unicode categories Mn, Mc,
Me) belongs to the letter it is written on, so Devanagari "हिन्दी", Thai "ภาษาไทย",
Arabic with its harakat, Hebrew with its points and the "i̇" that case folding
makes of "İ" each stay one word. An emoji is one token with what is written on it
(skin tone, keycap, tag letters of a subdivision flag), as are emoji joined by a
zero-width joiner (👩‍💻, 👨‍👩‍👧) and a flag's two regional indicators (🇪🇸).

Invisible characters are never tokens, with either tokenizer. The zero-width space
(U+200B), control characters and lone surrogates separate words as a space does.
The other invisible characters (Unicode's Default_Ignorable_Code_Point and format
characters: soft hyphen, byte-order mark U+FEFF, word joiner, zero-width
non-joiner, bidirectional controls, variation selectors, Hangul fillers, ...) are
dropped, so "co\u00adoperar" is "cooperar" and "❤️" is "❤"; only a zero-width
joiner between two emoji, and the tag letters after a flag, are kept, as part of
their emoji. A combining mark with no letter or symbol before it is dropped too.

A vocabulary that holds the token ``<unk>`` maps every unknown word to it (a
vocabulary built from text has it for the words seen fewer than ``min_count``
times); one without it raises :class:`UnknownTokenError`.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["UNK", "TOKENIZERS", "UnknownTokenError", "Vocab", "tokenize"]

#: The token that stands for every word the vocabulary does not know.
UNK = "<unk>"

#: How a vocabulary cuts text into tokens (see the module docstring).
TOKENIZERS = ("whitespace", "words")

_NO_SPACE_BEFORE = frozenset(".,;:!?)]}»…%")
_NO_SPACE_AFTER = frozenset("¿¡([{«")


class UnknownTokenError(ValueError):
    """A word that is not in the vocabulary. ``word`` and ``suggestions`` say which."""

    def __init__(self, word: str, suggestions: Sequence[str] = ()):
        self.word = word
        self.suggestions = tuple(suggestions)
        message = f"unknown word {word!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)


# -- characters ---------------------------------------------------------------
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): code points
# that are drawn as nothing. ``unicodedata`` does not have it; this is Unicode 14's
# list, which also reserves unassigned ranges for invisible characters to come.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Format characters (category Cf) that *are* drawn: Prepended_Concatenation_Mark
# (the Arabic number sign, end of ayah, ...). Every other Cf is invisible.
_VISIBLE_FORMAT = frozenset(
    (*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD)
)
_ZWSP, _ZWJ = "\u200b", "\u200d"
_TAG_LETTERS = range(0xE0020, 0xE0080)  # after a black flag: the flag of a region
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
# Combining marks and format characters are all in planes 0, 1 and 14.
_SCANNED = (range(0x20000), range(0xE0000, 0xF0000))


class _Patterns(NamedTuple):
    # Applied in this order by _visible(); each pass sees the text the one before left.
    separators: re.Pattern[str]  # invisible characters that split words: become a space
    dropped: re.Pattern[str]  # invisible characters that do not: removed
    orphan_marks: re.Pattern[str]  # combining marks with no letter or symbol to sit on
    unjoined: re.Pattern[str]  # joiners and tag letters that are not part of an emoji
    suspect: re.Pattern[str]  # finds what one of the passes may change
    tokens: re.Pattern[str]  # the "words" tokenizer's tokens, in text already cleaned


def _ranges(code_points: Iterable[int]) -> str:
    """The inside of a regex ``[...]`` matching exactly ``code_points``, as ranges."""
    runs: list[list[int]] = []
    for cp in sorted(code_points):
        if runs and cp == runs[-1][1] + 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in runs
    )


def _one_of(code_points: Iterable[int]) -> str:
    """A regex matching one character of ``code_points``.

    ``re`` tests a class of BMP characters against a bitmap but astral ones range by
    range, so in one class every character would pay for the ~150 astral ranges of
    the marks (5x slower tokenizing); the astral part is only tried on an astral
    character.
    """
    code_points = set(code_points)
    bmp = _ranges(cp for cp in code_points if cp <= 0xFFFF)
    astral = _ranges(cp for cp in code_points if cp > 0xFFFF)
    parts = [f"[{bmp}]"] if bmp else []
    if astral:
        parts.append(f"[\\U00010000-\\U0010ffff](?<=[{astral}])")
    return f"(?:{'|'.join(parts)})"


@functools.cache
def _patterns() -> _Patterns:
    """The tokenizers' regular expressions, built on first use from the Unicode data of
    this Python (the ``re`` module has no ``\\p{M}``); takes ~50 ms."""
    category = unicodedata.category
    marks, invisible, separators = set(), set(), {ord(_ZWSP)}
    for cp in (cp for scanned in _SCANNED for cp in scanned):
        kind = category(chr(cp))
        if kind in ("Mn", "Mc", "Me"):
            marks.add(cp)
        elif kind == "Cf" and cp not in _VISIBLE_FORMAT:
            invisible.add(cp)
        elif kind == "Cs" or (kind == "Cc" and not chr(cp).isspace()):
            separators.add(cp)
    invisible.update(cp for first, last in _DEFAULT_IGNORABLE for cp in range(first, last + 1))
    mark = _one_of(marks)
    tag = _one_of(_TAG_LETTERS)
    # A symbol: any visible character that is not a letter, digit or mark (nor whitespace).
    symbol = f"(?![\\w\\s]|{mark}|{_one_of(invisible | separators)})(?s:.)"
    extend = f"(?:{mark}|{_one_of(_SKIN_TONES)})"  # what is written on a symbol
    emoji = f"{symbol}{extend}*{tag}*"
    # Marks after a space, the start, a joiner or a tag letter sit on nothing visible.
    orphan_marks = f"(^|\\s|{_ZWJ}|{tag}){mark}+"
    return _Patterns(
        separators=re.compile(_one_of(separators)),
        dropped=re.compile(_one_of(invisible - separators - {ord(_ZWJ), *_TAG_LETTERS})),
        orphan_marks=re.compile(orphan_marks),
        # A joiner is kept only between two emoji, tag letters only after one.
        unjoined=re.compile(
            f"{_ZWJ}(?:(?!{symbol})|(?<!{symbol}{_ZWJ})(?<!{extend}{_ZWJ}))"
            f"|{tag}(?<!{symbol}{tag})(?<!{extend}{tag})(?<!{tag}{tag}){tag}*"
        ),
        suspect=re.compile(f"{_one_of(invisible | separators)}|{orphan_marks}"),
        tokens=re.compile(
            f"\\w+(?:{mark}+\\w*)*"  # a word, with its marks
            f"|{_one_of(_REGIONAL_INDICATORS)}{{2}}"  # a flag
            f"|{emoji}(?:{_ZWJ}{emoji})*"
        ),  # a symbol or an emoji sequence
    )


def _require_text(text: object, what: str = "text") -> None:
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{what} must be a str, not {type(text).__name__}: "
            f"decode it first (for example data.decode('utf-8'))"
        )
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")


def _visible(text: str) -> str:
    """``text`` without its invisible characters (see the module docstring): the
    zero-width space, controls and lone surrogates become spaces, the others go."""
    patterns = _patterns()
    if not patterns.suspect.search(text):  # the usual case: nothing to do
        return text
    text = patterns.dropped.sub("", patterns.separators.sub(" ", text))
    text = patterns.orphan_marks.sub(r"\1", text)
    # Last: it judges joiners and tag letters by the marks and symbols that stay.
    return patterns.unjoined.sub("", text)


def _fold_visible(text: str) -> str:
    """Visible text in NFC, case-folded (which may un-normalise, hence NFC again)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _fold(word: str) -> str:
    """The visible characters of ``word``, in NFC, case-folded: how words are matched."""
    return _fold_visible(_visible(word))


def _as_int(value: object, what: str) -> int:
    """``value`` as a Python int: ints and NumPy integers, not bools (nor floats)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def tokenize(text: str, tokenizer: str = "words") -> list[str]:
    """Cut ``text`` into tokens, as a vocabulary with this ``tokenizer`` does.

    ``"words"`` lowercases (NFC, then case folding) and splits words from
    punctuation: ``tokenize("El cielo es azul.") == ["el", "cielo", "es", "azul", "."]``.
    ``"whitespace"`` only splits on whitespace and keeps the case. Both drop
    invisible characters (see the module docstring).

    Raises
    ------
    TypeError
        ``text`` is not a str (bytes must be decoded first).
    ValueError
        An unknown ``tokenizer``.
    """
    _require_text(text)
    if tokenizer == "whitespace":
        return _visible(text).split()
    if tokenizer == "words":
        return _patterns().tokens.findall(_fold(text))
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )


def _checked_token(token: object, tokenizer: str) -> str:
    """``token`` folded (the key it is looked up by), if it can be a token of a vocabulary
    with this ``tokenizer``; else a TypeError or ValueError that says why not."""
    if not isinstance(token, str):
        raise TypeError(f"tokens must be strings, got {token!r}")
    visible = _visible(token)
    if token and not visible.strip():
        spelled = " ".join(f"U+{ord(ch):04X}" for ch in token[:8])
        more = " ..." if len(token) > 8 else ""
        raise ValueError(f"a token must have a visible character, got {token!r} ({spelled}{more})")
    if not token or visible != visible.strip() or len(visible.split()) != 1:
        raise ValueError(f"a token must be a non-empty word without spaces, got {token!r}")
    folded = _fold_visible(visible)
    if tokenizer == "words" and token != UNK and _patterns().tokens.findall(folded) != [folded]:
        raise ValueError(
            f"with tokenizer='words' a token must be one word or one punctuation "
            f"mark, got {token!r}"
        )
    return folded


class Vocab:
    """An ordered set of tokens, each with a position and an id.

    Parameters
    ----------
    tokens : sequence of str
        The tokens in position order. Each has a visible character and no
        whitespace (a zero-width space counts as one); they are distinct after
        dropping invisible characters, NFC and case folding.
    ids : sequence of int, optional
        One distinct id per token (the blog's 227, 350, ...): ints or NumPy
        integers, kept as ints. Defaults to the positions 0, 1, 2, ...
    tokenizer : {"whitespace", "words"}, default "whitespace"
        How :meth:`encode` cuts text into words (see the module docstring).
        With ``"words"`` every token must be one word or one punctuation mark
        (or ``<unk>``).

    Examples
    --------
    >>> v = Vocab(["azul", "cielo", "frío", "el", "es"], ids=[227, 350, 402, 578, 698])
    >>> v.encode("El cielo es")
    [3, 1, 4]
    >>> v.decode([3, 1, 4, 2])
    'el cielo es frío'
    """

    def __init__(
        self, tokens: Iterable[str], ids: Iterable[int] | None = None, tokenizer: str = "whitespace"
    ):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError("a vocabulary needs at least one token")
        folded_tokens = [_checked_token(token, tokenizer) for token in tokens]
        ids = tuple(range(len(tokens))) if ids is None else tuple(_as_int(i, "an id") for i in ids)
        if len(ids) != len(tokens):
            raise ValueError(f"{len(ids)} ids for {len(tokens)} tokens: need one id per token")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be distinct")

        self._tokens = tokens
        self._ids = ids
        self._tokenizer = tokenizer
        self._position_of_id = {id_: pos for pos, id_ in enumerate(ids)}
        self._by_folded: dict[str, int] = {}
        for pos, (token, folded) in enumerate(zip(tokens, folded_tokens)):
            if folded in self._by_folded:
                other = tokens[self._by_folded[folded]]
                raise ValueError(
                    f"tokens {other!r} and {token!r} are the same word after case folding"
                )
            self._by_folded[folded] = pos
        # Unaccented spellings, kept only where they point at exactly one token.
        unaccented: dict[str, set[int]] = {}
        for folded, pos in self._by_folded.items():
            unaccented.setdefault(_strip_accents(folded), set()).add(pos)
        self._by_unaccented = {k: next(iter(v)) for k, v in unaccented.items() if len(v) == 1}
        self._unk = self._by_folded.get(UNK)
        # decode's spacing: True where a token takes no space before / after it.
        self._glued = tokenizer == "words" and any(
            t in _NO_SPACE_BEFORE or t in _NO_SPACE_AFTER for t in tokens
        )

    @classmethod
    def from_text(cls, text: str, min_count: int = 1, unk: bool = True) -> Vocab:
        """The vocabulary of ``text``, with the ``"words"`` tokenizer.

        Parameters
        ----------
        text : str
            Any text: it is lowercased (NFC, then case folding) and cut into words
            and punctuation marks (:func:`tokenize`).
        min_count : int, default 1
            Words seen fewer times are left out (and become ``<unk>`` when encoded).
        unk : bool, default True
            Put ``<unk>`` at position 0, so that unknown words encode to it. Without
            it, unknown words (and words below ``min_count``) raise
            :class:`UnknownTokenError`.

        Returns
        -------
        Vocab
            The tokens by decreasing count (ties: first seen first), after ``<unk>``;
            ids equal positions.

        Raises
        ------
        ValueError
            ``text`` has no token, or every token is below ``min_count``.

        Examples
        --------
        >>> v = Vocab.from_text("El cielo es azul. El mar es azul.")
        >>> v.tokens
        ('<unk>', 'el', 'es', 'azul', '.', 'cielo', 'mar')
        >>> v.encode("el sol es azul.")
        [1, 0, 2, 3, 4]
        """
        try:
            count = _as_int(min_count, "min_count")
        except TypeError:
            count = 0
        if count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        words = tokenize(text, "words")
        if not words:
            raise ValueError("the text has no words: cannot build a vocabulary from it")
        counts = Counter(words)
        first_seen: dict[str, int] = {}
        for i, word in enumerate(words):
            first_seen.setdefault(word, i)
        kept = sorted(
            (w for w, n in counts.items() if n >= count and w != UNK),
            key=lambda w: (-counts[w], first_seen[w]),
        )
        if not kept:
            raise ValueError(f"no word of the text appears at least min_count={min_count} times")
        return cls(([UNK] if unk else []) + kept, tokenizer="words")

    # -- container protocol ---------------------------------------------------
    def __len__(self) -> int:
        return len(self._tokens)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __getitem__(self, position: int) -> str:
        return self._tokens[position]

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._lookup(word) is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (
            self._tokens == other._tokens
            and self._ids == other._ids
            and self._tokenizer == other._tokenizer
        )

    def __hash__(self) -> int:
        return hash((self._tokens, self._ids, self._tokenizer))

    def __repr__(self) -> str:
        pairs = ", ".join(f"{t}={i}" for t, i in zip(self._tokens[:8], self._ids[:8]))
        more = ", ..." if len(self) > 8 else ""
        return f"Vocab({len(self)} tokens: {pairs}{more})"

    @property
    def tokens(self) -> tuple[str, ...]:
        """The tokens in position order."""
        return self._tokens

    @property
    def ids(self) -> tuple[int, ...]:
        """The id of each token, in position order."""
        return self._ids

    @property
    def tokenizer(self) -> str:
        """``"whitespace"`` or ``"words"``: how :meth:`split` cuts text."""
        return self._tokenizer

    @property
    def unk_position(self) -> int | None:
        """The position of ``<unk>``, or None if the vocabulary has no such token."""
        return self._unk

    # -- lookups --------------------------------------------------------------
    def _lookup(self, word: str) -> int | None:
        _require_text(word, "a word")
        pos = self._by_folded.get(word)  # a word as split() gives it: already folded
        if pos is not None:
            return pos
        folded = _fold(word)
        pos = self._by_folded.get(folded)
        if pos is None:
            pos = self._by_unaccented.get(_strip_accents(folded))
        return pos

    def position(self, word: str) -> int:
        """The position of ``word``: ``<unk>``'s if unknown and the vocabulary has it,
        else :class:`UnknownTokenError`."""
        pos = self._lookup(word)
        if pos is None:
            if self._unk is not None:
                return self._unk
            raise UnknownTokenError(word, self.suggest(word))
        return pos

    def suggest(self, word: str, n: int = 3) -> list[str]:
        """The ``n`` known tokens closest to ``word`` in spelling (for error messages)."""
        _require_text(word, "a word")
        folded = _strip_accents(_fold(word))
        keys = {_strip_accents(_fold(t)): t for t in self._tokens}
        close = difflib.get_close_matches(folded, list(keys), n=n, cutoff=0.5)
        if not close:  # nothing similar: still name the nearest, so the user sees real tokens
            close = difflib.get_close_matches(folded, list(keys), n=n, cutoff=0.0)
        return [keys[k] for k in close]

    def id_of(self, position: int) -> int:
        """The id of the token at ``position``."""
        return self._ids[self._checked_position(position)]

    def position_of_id(self, id_: int) -> int:
        """The position of the token with id ``id_``."""
        id_ = _as_int(id_, "an id")
        try:
            return self._position_of_id[id_]
        except KeyError:
            raise ValueError(f"no token has id {id_!r}") from None

    def _checked_position(self, position: int) -> int:
        position = _as_int(position, "a position")
        if not 0 <= position < len(self):
            raise ValueError(f"position {position} is out of range for {len(self)} tokens")
        return position

    def check_positions(self, positions: Iterable[int]) -> list[int]:
        """``positions`` as a new list of ints, each a position of this vocabulary.

        Plain ints (the usual case) are checked in bulk: their types, then min and max.
        Anything else (bools, NumPy integers, a bad value) goes one by one, so the
        first bad position raises, with its own message. Text is not a sequence of
        positions: a str, or bytes (whose items would read as small ints), is a TypeError.
        """
        if isinstance(positions, (str, bytes, bytearray, memoryview)):
            hint = (
                "" if isinstance(positions, str) else " (decode bytes to a str to use them as text)"
            )
            raise TypeError(
                f"positions must be a sequence of integers, got {type(positions).__name__}{hint}"
            )
        try:
            items = list(positions)
        except TypeError:
            raise TypeError(
                f"positions must be a sequence of integers, got {type(positions).__name__}"
            ) from None
        if (
            items
            and {*map(type, items)} == {int}
            and min(items) >= 0
            and max(items) < len(self._tokens)
        ):
            return items
        return [self._checked_position(p) for p in items]

    # -- text -----------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """The words of ``text``, cut by this vocabulary's tokenizer (see :func:`tokenize`)."""
        return tokenize(text, self._tokenizer)

    def encode(self, text: str) -> list[int]:
        """The positions of the words of ``text``.

        Raises
        ------
        UnknownTokenError
            A word is not in the vocabulary (the message names it and suggests
            the closest known tokens).
        """
        return [self.position(word) for word in self.split(text)]

    def decode(self, positions: Iterable[int]) -> str:
        """The tokens at ``positions``, joined by spaces.

        With the ``"words"`` tokenizer, closing punctuation sticks to the word before
        it and opening punctuation to the word after it: ``"¿es azul?"``.
        """
        vocabulary = self._tokens
        return self.join([vocabulary[p] for p in self.check_positions(positions)])

    def join(self, tokens: list[str]) -> str:
        """Tokens of this vocabulary as text, spaced as :meth:`decode` spaces them."""
        if not self._glued:  # whitespace tokenizer, or no punctuation token: plain spaces
            return " ".join(tokens)
        parts: list[str] = []
        for i, token in enumerate(tokens):
            if i:
                parts.append(self.separator(tokens[i - 1], token))
            parts.append(token)
        return "".join(parts)

    def separator(self, previous: str, token: str) -> str:
        """What :meth:`decode` writes between two tokens: ``""`` before closing and after
        opening punctuation with the ``"words"`` tokenizer (``"azul."``, ``"¿es"``),
        ``" "`` otherwise. ``previous`` may be any text ending in a token, such as a
        prompt; only its last character counts."""
        if not self._glued or not token:
            return " "
        # A lone skin tone written right after "¿" would become part of that token.
        if token in _NO_SPACE_BEFORE or (
            previous[-1:] in _NO_SPACE_AFTER and ord(token[0]) not in _SKIN_TONES
        ):
            return ""
        return " "
