import pytest

from tinyllm import UnknownTokenError, Vocab, blog


@pytest.fixture
def v():
    return blog.vocab()


def test_positions_and_ids(v):
    assert v.tokens == ("azul", "cielo", "frío", "el", "es")
    assert v.ids == (227, 350, 402, 578, 698)
    assert len(v) == 5 and list(v) == list(v.tokens)
    assert [v.position(t) for t in v.tokens] == [0, 1, 2, 3, 4]
    assert v.id_of(2) == 402 and v.position_of_id(578) == 3 and v[4] == "es"


def test_encode_decode_round_trip(v):
    assert v.encode("el cielo es") == [3, 1, 4]
    assert v.decode([3, 1, 4, 0]) == "el cielo es azul"
    assert v.encode(v.decode([2, 2, 0, 1])) == [2, 2, 0, 1]


def test_whitespace_case_and_unicode_forms(v):
    assert v.encode("  El\tCIELO\nes ") == [3, 1, 4]
    decomposed = "fri\u0301o"  # 'i' + combining acute: NFD spelling of "frío"
    assert v.encode(decomposed) == [2]
    assert v.encode("FRÍO") == [2]


def test_unaccented_spelling_matches_when_unambiguous(v):
    # Part 3 of the blog writes "frio".
    assert v.encode("frio") == [2]
    assert "frio" in v and "mar" not in v
    ambiguous = Vocab(["éa", "ea", "ça"])
    assert ambiguous.encode("ea") == [1]  # exact spelling wins
    assert ambiguous.encode("ca") == [2]  # unique unaccented form
    amb2 = Vocab(["té", "tè"])
    with pytest.raises(UnknownTokenError):
        amb2.encode("te")  # two accented tokens: ambiguous, no guess


def test_unknown_word_names_it_and_suggests(v):
    with pytest.raises(UnknownTokenError) as info:
        v.encode("el cielo ez")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.word == "ez" and "'ez'" in str(err)
    assert "es" in err.suggestions and "es" in str(err)
    with pytest.raises(UnknownTokenError) as info:
        v.encode("mar")
    assert info.value.suggestions and set(info.value.suggestions) <= set(v.tokens)


@pytest.mark.parametrize(
    "tokens, ids, exc",
    [
        ([], None, ValueError),
        (["a", "a"], None, ValueError),
        (["a", "A"], None, ValueError),
        (["a b"], None, ValueError),
        ([""], None, ValueError),
        ([3], None, TypeError),
        (["a", "b"], [1], ValueError),
        (["a", "b"], [1, 1], ValueError),
        (["a"], [1.5], TypeError),
    ],
)
def test_bad_vocab(tokens, ids, exc):
    with pytest.raises(exc):
        Vocab(tokens, ids)


def test_bad_positions_and_ids(v):
    with pytest.raises(ValueError, match="out of range"):
        v.decode([5])
    with pytest.raises(ValueError, match="out of range"):
        v.decode([-1])
    with pytest.raises(TypeError):
        v.decode(["el"])
    with pytest.raises(ValueError, match="no token has id"):
        v.position_of_id(403)
    with pytest.raises(TypeError):
        v.encode(["el"])


def test_default_ids_equality_repr():
    a = Vocab(["x", "y"])
    assert a.ids == (0, 1)
    assert a == Vocab(["x", "y"]) and a != Vocab(["y", "x"])
    assert "x=0" in repr(a)


def test_decode_checks_every_position_with_its_own_message(v):
    import numpy as np

    assert v.decode([]) == ""
    assert v.decode((3, 1, 4)) == "el cielo es"
    assert v.decode(iter([3, 1])) == "el cielo"
    assert v.decode(np.array([3, 1, 4])) == "el cielo es"
    assert v.decode([np.int64(3), 1]) == "el cielo"
    with pytest.raises(TypeError, match="True"):
        v.decode([3, True])  # a bool is not a position
    with pytest.raises(TypeError, match=r"1\.0"):
        v.decode([3, 1.0])
    with pytest.raises(ValueError, match="position 7 "):
        v.decode([7, -1])  # the first bad one is named
    with pytest.raises(ValueError, match="position -1 "):
        v.decode([0, -1, 7])


def test_decode_spacing_of_the_words_tokenizer():
    v = Vocab.from_text("¿El cielo es azul? Sí, (muy) azul.")
    text = "¿el cielo es azul? sí, (muy) azul."
    assert v.decode(v.encode(text)) == text
    plain = Vocab.from_text("el cielo es azul")  # no punctuation: spaces only
    assert plain.decode(plain.encode("es azul el cielo")) == "es azul el cielo"


# -- NumPy integers, bools, bytes ------------------------------------------------


def test_numpy_integer_ids_are_accepted_and_kept_as_ints():
    import numpy as np

    v = Vocab(["azul", "cielo"], ids=[np.int64(227), np.intp(350)])
    assert v.ids == (227, 350) and all(type(i) is int for i in v.ids)
    assert v.id_of(np.int64(1)) == 350 and type(v.id_of(1)) is int
    assert v.position_of_id(np.int32(350)) == 1
    assert Vocab(["a", "b"], ids=np.array([5, 6])).ids == (5, 6)
    assert Vocab.from_text("a a b", min_count=np.int64(2)).tokens == ("<unk>", "a")


@pytest.mark.parametrize("bad_id", [True, False, 1.0, "1", None])
def test_ids_must_be_integers_not_bools(bad_id):
    import numpy as np

    with pytest.raises(TypeError, match="an id must be an integer"):
        Vocab(["a", "b"], ids=[0, bad_id])
    with pytest.raises(TypeError, match="an id must be an integer"):
        Vocab(["a", "b"], ids=[0, np.bool_(True)])


def test_position_of_id_wants_an_integer(v):
    with pytest.raises(TypeError, match="an id must be an integer, got True"):
        v.position_of_id(True)  # not the token with id 1
    with pytest.raises(TypeError, match="an id must be an integer"):
        v.position_of_id("227")


@pytest.mark.parametrize("text", [b"el cielo es", bytearray(b"el cielo es"), memoryview(b"el")])
def test_bytes_are_not_text(v, text):
    from tinyllm.vocab import tokenize

    kind = type(text).__name__
    for call in (
        v.encode,
        v.split,
        v.position,
        v.suggest,
        tokenize,
        lambda t: tokenize(t, "whitespace"),
    ):
        with pytest.raises(TypeError, match=f"must be a str, not {kind}: decode it first"):
            call(text)
    # As positions, bytes would read as the small ints 101, 108, ...: refused too.
    with pytest.raises(TypeError, match=f"positions must be a sequence of integers, got {kind}"):
        v.decode(text)
    assert text not in v


def test_positions_are_not_text_nor_a_single_int(v):
    with pytest.raises(TypeError, match="got str"):
        v.decode("el cielo")
    with pytest.raises(TypeError, match="got int"):
        v.decode(3)


def test_numpy_positions_are_accepted(v):
    import numpy as np

    assert v.decode(np.array([3, 1, 4], dtype=np.intp)) == "el cielo es"
    assert v.decode(np.array([3, 1], dtype=np.uint8)) == "el cielo"
    assert v.decode([np.int64(3), np.int32(1), np.uint16(4)]) == "el cielo es"
    with pytest.raises(TypeError, match="a position must be an integer"):
        v.decode([np.bool_(True)])
    with pytest.raises(TypeError, match="a position must be an integer"):
        v.decode(np.array([3.0]))


# -- invisible characters ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u00ad",
        "\u200e",
        "\u202e",
        "\u2066",
        "\u3164",
        "\ufe0f",
        "\U000e0041",
        "\u0301",
        "\u0301\u0302",
        "\x00",
        "\u2028",
        "\ufeff\u200b\u00ad",
    ],
)
@pytest.mark.parametrize("tokenizer", ["whitespace", "words"])
def test_a_token_needs_a_visible_character(token, tokenizer):
    with pytest.raises(ValueError, match=r"visible character|non-empty word without spaces"):
        Vocab(["a", token], tokenizer=tokenizer)


@pytest.mark.parametrize("token", ["a\u200bb", "a\x00b", "a\u2029b"])
def test_a_zero_width_space_or_a_control_splits_a_token(token):
    with pytest.raises(ValueError, match="without spaces"):
        Vocab(["x", token])


def test_invisible_characters_in_a_token_are_ignored_when_matching(v):
    # The soft hyphen, word joiner, BOM and bidi marks are nothing: "ci\xadelo" is "cielo".
    assert v.encode("\ufeffel ci\u00adelo\u2060 \u200ees") == [3, 1, 4]
    assert v.encode("el\u200bcielo\u200bes") == [3, 1, 4]  # a zero-width space splits
    soft = Vocab(["\u00adhola", "mundo"])
    assert soft.encode("hola mundo") == [0, 1] and soft.decode([0]) == "\u00adhola"
    with pytest.raises(ValueError, match="same word"):
        Vocab(["hola", "ho\u00adla"])


def test_a_message_spells_out_an_invisible_token():
    with pytest.raises(ValueError, match=r"U\+200B U\+00AD"):
        Vocab(["a", "\u200b\u00ad"])
