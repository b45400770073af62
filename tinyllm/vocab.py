"""The vocabulary: tokens <-> positions, with the blog's optional ids.

A *position* is the row of a token in the embedding table and its index in the
logits; an *id* is the number the blog gives it (azul -> 227). Words are matched
after Unicode NFC and case folding, and an unaccented spelling matches an
accented token when that is unambiguous ("frio" -> "frío", as part 3 writes it).

Two ways to cut text into tokens (the vocabulary's ``tokenizer``):

- ``"whitespace"`` (the blog's vocabulary, and the default): split on whitespace,
  so "es azul." is the two words ``es`` and ``azul.``;
- ``"words"`` (a vocabulary built by :meth:`Vocab.from_text`): runs of letters and
  digits are words and every other visible character is a token of its own, so
  "¿es azul?" is ``¿ es azul ?``. ``decode`` then writes no space before closing
  punctuation (``. , ; : ! ? ) ] } » …``) nor after opening punctuation
  (``¿ ¡ ( [ { «``).

A vocabulary that holds the token ``<unk>`` maps every unknown word to it (a
vocabulary built from text has it for the words seen fewer than ``min_count``
times); one without it raises :class:`UnknownTokenError`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["UNK", "TOKENIZERS", "UnknownTokenError", "Vocab", "tokenize"]

#: The token that stands for every word the vocabulary does not know.
UNK = "<unk>"

#: How a vocabulary cuts text into tokens (see the module docstring).
TOKENIZERS = ("whitespace", "words")

# A word (letters, digits, underscore) or any single other visible character.
_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
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


def _fold(word: str) -> str:
    """NFC, then case folding (which may un-normalise, hence NFC again)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", word).casefold())


def tokenize(text: str, tokenizer: str = "words") -> list[str]:
    """Cut ``text`` into tokens, as a vocabulary with this ``tokenizer`` does.

    ``"words"`` lowercases (NFC, then case folding) and splits words from
    punctuation: ``tokenize("El cielo es azul.") == ["el", "cielo", "es", "azul", "."]``.
    ``"whitespace"`` only splits on whitespace and keeps the case.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer == "words":
        return _WORD_OR_MARK.findall(_fold(text))
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )


class Vocab:
    """An ordered set of tokens, each with a position and an id.

    Parameters
    ----------
    tokens : sequence of str
        The tokens in position order. Non-empty, without whitespace, and distinct
        after NFC and case folding.
    ids : sequence of int, optional
        One distinct id per token (the blog's 227, 350, ...). Defaults to the
        positions 0, 1, 2, ...
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

    def __init__(self, tokens: Iterable[str], ids: Iterable[int] | None = None,
                 tokenizer: str = "whitespace"):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError("a vocabulary needs at least one token")
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"tokens must be strings, got {token!r}")
            if not token or token != token.strip() or len(token.split()) != 1:
                raise ValueError(f"a token must be a non-empty word without spaces, got {token!r}")
            if tokenizer == "words" and token != UNK and tokenize(token) != [_fold(token)]:
                raise ValueError(
                    f"with tokenizer='words' a token must be one word or one punctuation mark, "
                    f"got {token!r}")
        ids = tuple(range(len(tokens))) if ids is None else tuple(ids)
        if len(ids) != len(tokens):
            raise ValueError(f"{len(ids)} ids for {len(tokens)} tokens: need one id per token")
        for id_ in ids:
            if isinstance(id_, bool) or not isinstance(id_, int):
                raise TypeError(f"ids must be integers, got {id_!r}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be distinct")

        self._tokens = tokens
        self._ids = ids
        self._tokenizer = tokenizer
        self._position_of_id = {id_: pos for pos, id_ in enumerate(ids)}
        self._by_folded: dict[str, int] = {}
        for pos, token in enumerate(tokens):
            folded = _fold(token)
            if folded in self._by_folded:
                other = tokens[self._by_folded[folded]]
                raise ValueError(f"tokens {other!r} and {token!r} are the same word after case folding")
            self._by_folded[folded] = pos
        # Unaccented spellings, kept only where they point at exactly one token.
        unaccented: dict[str, set[int]] = {}
        for folded, pos in self._by_folded.items():
            unaccented.setdefault(_strip_accents(folded), set()).add(pos)
        self._by_unaccented = {k: next(iter(v)) for k, v in unaccented.items() if len(v) == 1}
        self._unk = self._by_folded.get(UNK)
        # decode's spacing: True where a token takes no space before / after it.
        self._glued = tokenizer == "words" and any(
            t in _NO_SPACE_BEFORE or t in _NO_SPACE_AFTER for t in tokens)

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
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        words = tokenize(text, "words")
        if not words:
            raise ValueError("the text has no words: cannot build a vocabulary from it")
        counts = Counter(words)
        first_seen: dict[str, int] = {}
        for i, word in enumerate(words):
            first_seen.setdefault(word, i)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w != UNK),
                      key=lambda w: (-counts[w], first_seen[w]))
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
        return (self._tokens == other._tokens and self._ids == other._ids
                and self._tokenizer == other._tokenizer)

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
        try:
            return self._position_of_id[id_]
        except KeyError:
            raise ValueError(f"no token has id {id_!r}") from None

    def _checked_position(self, position: int) -> int:
        if isinstance(position, bool) or not hasattr(position, "__index__"):
            raise TypeError(f"a position must be an integer, got {position!r}")
        position = position.__index__()
        if not 0 <= position < len(self):
            raise ValueError(f"position {position} is out of range for {len(self)} tokens")
        return position

    def _checked_positions(self, positions: Iterable[int]) -> list[int]:
        """``positions`` as a new list of ints, each checked as :meth:`_checked_position`.

        Plain ints (the usual case) are checked in bulk: their types, then min and max.
        Anything else (bools, NumPy integers, a bad value) goes one by one, so the
        first bad position raises, with its own message.
        """
        items = list(positions)
        if (items and {*map(type, items)} == {int}
                and min(items) >= 0 and max(items) < len(self._tokens)):
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
        return self._join([vocabulary[p] for p in self._checked_positions(positions)])

    def _join(self, tokens: list[str]) -> str:
        """Tokens of this vocabulary as text, spaced as :meth:`decode` spaces them."""
        if not self._glued:   # whitespace tokenizer, or no punctuation token: plain spaces
            return " ".join(tokens)
        parts: list[str] = []
        for i, token in enumerate(tokens):
            if i and token not in _NO_SPACE_BEFORE and tokens[i - 1] not in _NO_SPACE_AFTER:
                parts.append(" ")
            parts.append(token)
        return "".join(parts)
