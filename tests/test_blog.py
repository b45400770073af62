"""The numbers of the blog's three parts (../shared/reference/README.md)."""
import numpy as np
import pytest

from tinyllm import blog


def test_part1_linear_model():
    r = blog.part1()
    assert r.ids == [578, 350, 698]
    assert r.y == 402.0 and r.word == "frío"
    r2 = blog.part1(weights=(1.0, 2.0, 0.5))
    assert r2.y == 227.0 and r2.word == "azul"
    r3 = blog.part1(weights=(1.0, 1.0, 1.0))
    assert r3.y == 926.0 and r3.word is None   # not an id at all: the post's first problem


def test_part2_probabilities():
    r = blog.part2()
    assert r.f1 == 1800.0
    np.testing.assert_array_equal(r.logits, [4500, 1260, 3600, 360, 900])
    assert r.logits.sum() == 10620
    np.testing.assert_allclose(r.probs, [0.423729, 0.118644, 0.338983, 0.033898, 0.084746],
                               atol=5e-7)


def test_part3_trace():
    tr = blog.part3()
    np.testing.assert_allclose(tr.probs, [0.4981509447, 0.0823437973, 0.3021438211,
                                          0.0499440377, 0.0674173992], atol=1e-9)


def test_parts_1_and_2_need_three_words():
    with pytest.raises(ValueError, match="exactly 3 words"):
        blog.part1("el cielo")
    with pytest.raises(ValueError, match="exactly 3 words"):
        blog.part2("azul el cielo es")


def test_frio_spelling_of_part3():
    assert blog.part1("el frio es").ids == [578, 402, 698]
