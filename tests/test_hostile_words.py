"""Words as people really write them: other scripts, emoji, invisible characters, bytes.

The "words" tokenizer keeps combining marks with their letters, keeps an emoji
sequence whole, and never makes a token of an invisible character (a zero-width
space splits words, the other invisible characters are nothing). Prompts are str
or positions, never bytes. See the docstring of tinyllm/vocab.py.
"""

import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyllm import TinyLM, Vocab
from tinyllm.corpus import corpus_lines, read_text
from tinyllm.train import TrainOptions, train
from tinyllm.vocab import tokenize

ZWSP, ZWNJ, ZWJ, WJ, BOM, SHY = "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
VS15, VS16 = "\ufe0e", "\ufe0f"
HANGUL_FILLERS = "\u115f\u1160\u3164\uffa0"
# Everything a text can hide: invisible format characters, variation selectors,
# fillers, controls, a lone surrogate, combining marks, emoji parts.
INVISIBLE = (
    ZWSP
    + ZWNJ
    + ZWJ
    + WJ
    + BOM
    + SHY
    + BIDI
    + VS15
    + VS16
    + HANGUL_FILLERS
    + "\u034f\u180e\u2061\u2062\u2063\u2064\U000e0001\U000e0067\U000e007f\U000e0100"
    + "\U0001d173\U0001bca0\ufff9"
)
CONTROLS = "\x00\x01\x08\x1b\x7f\x80\x9f"
MARKS = "\u0301\u0302\u0308\u0323\u0327\u0338\u093f\u094d\u0e31\u0e48\u064e\u05b4\u20e3\u20dd"
EMOJI_PARTS = "😀👍👨👩👧💻❤🔥🏴🏳🌈#1\U0001f3fb\U0001f3fd🇪🇸🇫🇷"
# Prepended concatenation marks: format characters that are drawn (۝ end of ayah).
VISIBLE_FORMAT = {
    *map(chr, range(0x0600, 0x0606)),
    "\u06dd",
    "\u070f",
    "\u0890",
    "\u0891",
    "\u08e2",
    "\U000110bd",
    "\U000110cd",
}


def is_visible(ch):
    """A character that is drawn on its own (not a mark, format, control or space)."""
    if ch in VISIBLE_FORMAT:
        return True
    return (
        unicodedata.category(ch) not in {"Mn", "Mc", "Me", "Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}
        and ch not in HANGUL_FILLERS
        and not ch.isspace()
    )


# -- real scripts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # Devanagari: vowel signs, virama
        ("ภาษาไทย ดีมาก", ["ภาษาไทย", "ดีมาก"]),  # Thai: vowels and tone marks
        ("اَلْعَرَبِيَّةُ لُغَةٌ", ["اَلْعَرَبِيَّةُ", "لُغَةٌ"]),  # Arabic with harakat
        ("שָׁלוֹם עוֹלָם", ["שָׁלוֹם", "עוֹלָם"]),  # Hebrew with points
        ("বাংলা ভাষা", ["বাংলা", "ভাষা"]),  # Bengali
        ("தமிழ் மொழி", ["தமிழ்", "மொழி"]),  # Tamil
        ("İstanbul İZMİR", ["i\u0307stanbul", "i\u0307zmi\u0307r"]),  # İ folds to i + U+0307
        ("Tie\u0302\u0301ng Vie\u0323\u0302t", ["tiếng", "việt"]),  # Vietnamese, decomposed
        (
            "\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165",
            ["한국어"],
        ),  # Korean jamo compose (NFC)
        ("한국어 ㄱㄴ", ["한국어", "ㄱㄴ"]),
        ("日本語のテキスト", ["日本語のテキスト"]),  # no spaces: one run
        ("naïve café", ["naïve", "café"]),
        ("x\u0301\u0302\u0323y", ["x\u0323\u0301\u0302y"]),  # stacked marks, reordered by NFC
    ],
)
def test_combining_marks_stay_with_their_letters(text, tokens):
    assert tokenize(text) == tokens
    v = Vocab.from_text(text)
    assert v.decode(v.encode(text)) == " ".join(tokens)


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("👨\u200d👩\u200d👧 familia", ["👨\u200d👩\u200d👧", "familia"]),  # ZWJ sequence
        ("👩🏽\u200d💻!", ["👩🏽\u200d💻", "!"]),  # skin tone, then ZWJ
        ("👍🏽👍", ["👍🏽", "👍"]),  # skin tone modifier
        ("🇪🇸🇫🇷", ["🇪🇸", "🇫🇷"]),  # flags: pairs
        ("❤\ufe0f ❤", ["❤", "❤"]),  # variation selector dropped
        ("❤\ufe0f\u200d🔥", ["❤\u200d🔥"]),
        ("#\ufe0f\u20e3 1\ufe0f\u20e3", ["#\u20e3", "1\u20e3"]),  # keycaps
        (
            "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f x",  # flag of Scotland
            ["🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "x"],
        ),
        ("hola😀", ["hola", "😀"]),
        ("a\u200d😀", ["a", "😀"]),  # a joiner after a letter
        ("😀\u200d", ["😀"]),  # a joiner at the end
        ("😀\u200d\u200d😀", ["😀", "😀"]),
    ],
)
def test_an_emoji_sequence_is_one_token(text, tokens):
    assert tokenize(text) == tokens


# -- invisible characters -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, tokens",
    [
        (BOM + "el cielo", ["el", "cielo"]),  # byte-order mark
        ("el" + BOM + "cielo", ["elcielo"]),  # U+FEFF inside: a no-break joiner
        ("el" + ZWSP + "cielo" + ZWSP, ["el", "cielo"]),  # zero-width space: a word break
        ("coo" + SHY + "perar", ["cooperar"]),  # soft hyphen
        ("es" + WJ + "azul", ["esazul"]),
        ("mi" + ZWNJ + "xto", ["mixto"]),
        ("\u202eazul\u202c \u2067cielo\u2069 \u200fes\u200e", ["azul", "cielo", "es"]),  # bidi
        ("\u3164 \u115f el", ["el"]),  # Hangul fillers
        ("a\x00b\x1bc\x7fd", ["a", "b", "c", "d"]),  # controls split
        ("a\ud800b", ["a", "b"]),  # a lone surrogate splits
        ("\u0301el \u0301", ["el"]),  # orphan marks
        ("x\U000e0067\U000e0062 y", ["x", "y"]),  # tag letters after no flag
        ("\u06dd\u0661\u0662", ["\u06dd", "\u0661\u0662"]),  # end of ayah is visible
    ],
)
def test_invisible_characters_are_never_tokens(text, tokens):
    assert tokenize(text) == tokens
    assert all(any(map(is_visible, t)) for t in tokenize(text, "whitespace"))


def test_whitespace_tokenizer_drops_invisible_characters_too():
    assert tokenize(BOM + "El\u200bcielo \u200b es" + SHY + " \u0301 azul.", "whitespace") == [
        "El",
        "cielo",
        "es",
        "azul.",
    ]
    blog = TinyLM.from_blog()
    assert blog.encode_prompt(BOM + "el ci" + SHY + "elo\u200bes") == [3, 1, 4]


def test_corpus_file_with_a_bom_and_invisible_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(
        b"\xef\xbb\xbf# a comment after the BOM\n"
        + "el cielo es azul.\n\u200b\u200e\n\ufeff# another\n".encode()
    )
    text = read_text(path)
    assert not text.startswith(BOM)
    assert corpus_lines(text) == ["el cielo es azul."]
    assert corpus_lines(BOM + "# comment\nhola") == ["hola"]
    with pytest.raises(TypeError, match="decode it first"):
        corpus_lines(b"el cielo es azul.")


def test_a_model_trained_on_invisible_characters_never_predicts_one():
    text = "\n".join(
        [
            BOM + "el cielo es azul.",
            "el" + ZWSP + "mar es azul" + ZWSP + ".",
            "el hielo es fr" + SHY + "ío." + WJ,
            "\u200e\u202ela nieve es blanca.\u202c",
            ZWSP + ZWNJ + ZWJ,  # a line of nothing visible
            "la hoja es verde. ❤\ufe0f" + ZWJ,
        ]
        * 3
    )
    result = train(text, options=TrainOptions(epochs=1, seed=0))
    tokens = result.model.vocab.tokens
    assert all(any(map(is_visible, t)) and not any(ch.isspace() for ch in t) for t in tokens)
    assert not {ZWSP, ZWNJ, ZWJ, BOM, SHY, WJ} & set("".join(tokens))
    assert {"el", "mar", "azul", "frío", "nieve", "❤"} <= set(tokens)
    generated = result.model.generate("el cielo es", 50, rng=0)
    assert all(any(map(is_visible, t)) for t in generated.split())


# -- bytes and NumPy positions as prompts --------------------------------------------


@pytest.mark.parametrize("prompt", [b"el cielo es", bytearray(b"el cielo es")])
def test_a_bytes_prompt_is_a_type_error(prompt):
    model = TinyLM.from_blog()
    for call in (
        model.encode_prompt,
        model.logits,
        model.next_token_probs,
        model.trace,
        lambda p: model.generate(p, 3, rng=0),
        lambda p: model.generate_positions(p, 3),
        lambda p: model.stream(p, 3),
        lambda p: model.draw_next(p, 3, rng=0),
    ):
        with pytest.raises(TypeError, match=r"got bytes|got bytearray"):
            call(prompt)


def test_numpy_positions_are_a_prompt():
    model = TinyLM.from_blog()
    text = model.generate("el cielo es", 5, rng=0)
    for prompt in (
        np.array([3, 1, 4]),
        np.array([3, 1, 4], dtype=np.intp),
        [np.int64(3), np.int64(1), np.int64(4)],
        (3, np.int32(1), 4),
    ):
        assert model.generate(prompt, 5, rng=0) == text
    with pytest.raises(TypeError, match="a position must be an integer"):
        model.generate([3, 1, np.bool_(True)], 5)


# -- properties ----------------------------------------------------------------------

hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.integers(0, 0x10FFFF).map(chr),  # anything, lone surrogates too
        st.sampled_from(INVISIBLE + CONTROLS + MARKS + EMOJI_PARTS),
        st.sampled_from("el cielo es azul. ¿Sí? (mar) हिन्दी ภาษา İ"),
    ),
    max_size=40,
)


def invisible_inside(token):
    """The invisible characters of a token other than an emoji's joiners and tag letters."""
    return [
        ch
        for ch in token
        if unicodedata.category(ch) in {"Cf", "Cc", "Cs"}
        and ch not in VISIBLE_FORMAT
        and ch != ZWJ
        and not 0xE0020 <= ord(ch) <= 0xE007F
    ]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text)
def test_tokens_are_always_visible(text):
    for tokenizer in ("words", "whitespace"):
        tokens = tokenize(text, tokenizer)
        for token in tokens:
            assert token and not any(ch.isspace() for ch in token), (tokenizer, token)
            assert any(map(is_visible, token)), (tokenizer, token)
            assert not invisible_inside(token), (tokenizer, token)
            assert not set(token) & set(HANGUL_FILLERS + VS15 + VS16 + BOM + SHY)
        # Cutting the tokens again, spaced, gives them back.
        assert tokenize(" ".join(tokens), tokenizer) == tokens
    for token in tokenize(text):
        assert not unicodedata.category(token[0]).startswith("M"), token  # no lone mark


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_text)
def test_a_vocabulary_of_any_text_encodes_and_decodes_it(text):
    if not tokenize(text):
        with pytest.raises(ValueError, match="no words"):
            Vocab.from_text(text)
        return
    v = Vocab.from_text(text)  # every token passes Vocab's own checks
    positions = v.encode(text)
    assert v.unk_position not in positions  # every word of the text is known
    assert v.encode(v.decode(positions)) == positions
    assert [v[p] for p in positions] == tokenize(text)
    assert Vocab(v.tokens, v.ids, tokenizer="words") == v


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(), min_size=1, max_size=8), min_size=1, max_size=6))
def test_bytes_are_refused_whatever_they_hold(words):
    data = " ".join(words).encode("utf-8", "surrogatepass")  # any bytes will do
    v = Vocab.from_text("el cielo es azul")
    for call in (tokenize, v.encode, v.split, v.decode, TinyLM.from_blog().encode_prompt):
        with pytest.raises(TypeError):
            call(data)


def test_decode_never_glues_tokens_into_one():
    v = Vocab.from_text("¿ \U0001f3fb ( \U0001f3fd")  # lone skin tones are symbols
    text = v.decode(v.encode("¿ \U0001f3fb ( \U0001f3fd"))
    assert text == "¿ \U0001f3fb ( \U0001f3fd"
    assert tokenize(text) == ["¿", "\U0001f3fb", "(", "\U0001f3fd"]
