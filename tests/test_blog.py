"""The numbers of the blog's three parts (../shared/reference/README.md)."""

import numpy as np
import pytest

from tinyllm import blog

from conftest import BLOG_IDS, BLOG_PART2_LOGITS, BLOG_PART2_PROBS, BLOG_PROBS


def test_part1_linear_model():
    r = blog.part1()
    assert r.ids == BLOG_IDS
    assert r.y == 402.0 and r.word == "frío"
    r2 = blog.part1(weights=(1.0, 2.0, 0.5))
    assert r2.y == 227.0 and r2.word == "azul"
    r3 = blog.part1(weights=(1.0, 1.0, 1.0))
    assert r3.y == 926.0 and r3.word is None  # not an id at all: the post's first problem


def test_part2_probabilities():
    r = blog.part2()
    assert r.f1 == 1800.0
    np.testing.assert_array_equal(r.logits, BLOG_PART2_LOGITS)
    assert r.logits.sum() == 10620
    np.testing.assert_allclose(r.probs, BLOG_PART2_PROBS, atol=5e-7)


def test_part3_trace():
    tr = blog.part3()
    np.testing.assert_allclose(tr.probs, BLOG_PROBS, atol=1e-9)


def test_parts_1_and_2_need_three_words():
    with pytest.raises(ValueError, match="exactly 3 words"):
        blog.part1("el cielo")
    with pytest.raises(ValueError, match="exactly 3 words"):
        blog.part2("azul el cielo es")


def test_frio_spelling_of_part3():
    assert blog.part1("el frio es").ids == [578, 402, 698]
