import pytest

from tinyllm import UnknownTokenError, Vocab
from tinyllm import blog


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
    assert ambiguous.encode("ea") == [1]      # exact spelling wins
    assert ambiguous.encode("ca") == [2]      # unique unaccented form
    amb2 = Vocab(["té", "tè"])
    with pytest.raises(UnknownTokenError):
        amb2.encode("te")                      # two accented tokens: ambiguous, no guess


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


@pytest.mark.parametrize("tokens, ids, exc", [
    ([], None, ValueError),
    (["a", "a"], None, ValueError),
    (["a", "A"], None, ValueError),
    (["a b"], None, ValueError),
    ([""], None, ValueError),
    ([3], None, TypeError),
    (["a", "b"], [1], ValueError),
    (["a", "b"], [1, 1], ValueError),
    (["a"], [1.5], TypeError),
])
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
        v.decode([3, True])                       # a bool is not a position
    with pytest.raises(TypeError, match="1.0"):
        v.decode([3, 1.0])
    with pytest.raises(ValueError, match="position 7 "):
        v.decode([7, -1])                         # the first bad one is named
    with pytest.raises(ValueError, match="position -1 "):
        v.decode([0, -1, 7])


def test_decode_spacing_of_the_words_tokenizer():
    v = Vocab.from_text("¿El cielo es azul? Sí, (muy) azul.")
    text = "¿el cielo es azul? sí, (muy) azul."
    assert v.decode(v.encode(text)) == text
    plain = Vocab.from_text("el cielo es azul")       # no punctuation: spaces only
    assert plain.decode(plain.encode("es azul el cielo")) == "es azul el cielo"
