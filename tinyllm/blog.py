"""The blog series "Mi camino a entender (por fin) los LLMs", parts 1 to 3, with its numbers.

Each part is a stage of the same idea, so each is reachable here and replays
with the blog's own numbers:

- part 1: a linear function of the prompt's ids, ``x1*w1 - x2*w2 + x3*w3``,
  lands on an id (402.0, "frío"; with w2 = 2.0, 227.0, "azul");
- part 2: ``f1`` (a weighted sum of the ids, 1800.0) and ``f2`` (one score per
  token), normalised by dividing by the sum;
- part 3: embeddings, the flattened context, ``f1`` = 1.0, logits and softmax:
  :func:`part3_model` (= ``TinyLM.from_blog()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyllm._compiled import dot, project
from tinyllm.config import TinyLMConfig
from tinyllm.model import TinyLM, Trace
from tinyllm.vocab import Vocab

__all__ = [
    "TOKENS",
    "IDS",
    "EMBEDDINGS",
    "W_F1",
    "W_F2",
    "PROMPT",
    "vocab",
    "part1",
    "part2",
    "part3",
    "part3_model",
    "Part1Result",
    "Part2Result",
]

# The dictionary of all three parts, in dictionary (= logit) order.
TOKENS = ("azul", "cielo", "frío", "el", "es")
IDS = (227, 350, 402, 578, 698)
PROMPT = "el cielo es"

# Part 1: f(x1, x2, x3) = x1*w1 - x2*w2 + x3*w3.
PART1_WEIGHTS = (1.0, 1.5, 0.5)

# Part 2: f1 = x1*1.0 + x2*0.5 + x3*1.5 on the ids; f2 scales it per token.
PART2_W_F1 = (1.0, 0.5, 1.5)

# Part 3: a 2-number embedding per token ("how much a noun", "how much an adjective").
EMBEDDINGS = (
    (-0.2, 0.9),  # azul
    (0.8, -0.1),  # cielo
    (-0.4, 0.7),  # frío
    (0.3, -0.6),  # el
    (0.1, -0.1),  # es
)
W_F1 = (1.0, 0.5, 1.5, 1.0, 0.5, 1.5)  # f1 weights over the flattened 3x2 context
W_F2 = (2.5, 0.7, 2.0, 0.2, 0.5)  # f2: one weight per token (parts 2 and 3)


def vocab() -> Vocab:
    """The blog's five tokens with their ids (azul=227 ... es=698)."""
    return Vocab(TOKENS, IDS)


def _prompt_ids(prompt: str, v: Vocab) -> list[int]:
    positions = v.encode(prompt)
    if len(positions) != 3:
        raise ValueError(
            f"parts 1 and 2 of the blog read exactly 3 words, the prompt has {len(positions)}"
        )
    return [v.id_of(p) for p in positions]


@dataclass(frozen=True)
class Part1Result:
    """Part 1: ``y = x1*w1 - x2*w2 + x3*w3`` over the ids of the prompt."""

    words: list[str]
    ids: list[int]  # x = (578, 350, 698) for "el cielo es"
    weights: tuple[float, float, float]
    y: float  # 402.0 with the blog's weights
    word: str | None  # the token whose id is y, if there is one

    def to_dict(self) -> dict:
        return {
            "part": 1,
            "words": self.words,
            "ids": self.ids,
            "weights": list(self.weights),
            "y": self.y,
            "word": self.word,
        }


def part1(prompt: str = PROMPT, weights: tuple[float, float, float] = PART1_WEIGHTS) -> Part1Result:
    """Part 1's linear model. ``part1().y == 402.0`` ("frío"); with ``w2 = 2.0``, 227.0 ("azul").

    As the post says, the output need not be an id at all: ``word`` is None then.
    """
    v = vocab()
    ids = _prompt_ids(prompt, v)
    w1, w2, w3 = (float(w) for w in weights)
    # The minus sign on x2 is the post's own formula; a dot product with (w1, -w2, w3).
    y = dot(np.array(ids, dtype=np.float64), np.array([w1, -w2, w3]))
    word = None
    if float(y).is_integer() and int(y) in v.ids:
        word = v[v.position_of_id(int(y))]
    return Part1Result(prompt.split(), ids, (w1, w2, w3), y, word)


@dataclass(frozen=True)
class Part2Result:
    """Part 2: ``f1`` on the ids, ``f2`` one score per token, normalised by their sum."""

    words: list[str]
    ids: list[int]
    f1: float  # 1800.0 for "el cielo es"
    logits: np.ndarray  # (4500, 1260, 3600, 360, 900)
    probs: np.ndarray  # logits / sum(logits) (sum 10620)
    tokens: list[str]

    def to_dict(self) -> dict:
        return {
            "part": 2,
            "words": self.words,
            "ids": self.ids,
            "f1": self.f1,
            "logits": self.logits.tolist(),
            "probs": self.probs.tolist(),
            "tokens": self.tokens,
        }


def part2(prompt: str = PROMPT) -> Part2Result:
    """Part 2's model: ``f1 = 1800.0``, logits ``(4500, 1260, 3600, 360, 900)``, ``v / sum(v)``.

    The post normalises by the sum (real models use softmax, part 3). That only
    works because every score here is positive; with a negative score it would
    not be a probability, which is why ``ValueError`` is raised then.
    """
    v = vocab()
    ids = _prompt_ids(prompt, v)
    f1 = dot(np.array(ids, dtype=np.float64), np.array(PART2_W_F1))
    logits = project(np.array([f1]), np.array([W_F2]))
    if (logits <= 0).any():
        raise ValueError("normalising by the sum needs every score > 0")
    return Part2Result(prompt.split(), ids, f1, logits, logits / logits.sum(), list(TOKENS))


def part3_model(dtype: str = "float64") -> TinyLM:
    """Part 3's model: embeddings (5, 2), ``W1`` (6, 1) and ``W2`` (1, 5) from the post."""
    config = TinyLMConfig(vocab_size=5, dim=2, context=3, hidden=1, dtype=dtype)
    return TinyLM(
        config,
        vocab(),
        np.array(EMBEDDINGS),
        np.array(W_F1).reshape(6, 1),
        np.array(W_F2).reshape(1, 5),
    )


def part3(prompt: str = PROMPT, temperature: float = 1.0) -> Trace:
    """Part 3 end to end: the :class:`~tinyllm.model.Trace` of the blog's model on ``prompt``."""
    return part3_model().trace(prompt, temperature=temperature)
