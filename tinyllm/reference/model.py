"""The model's forward pass and generation in pure Python: the teaching version of
``TinyLM.logits`` and ``TinyLM.generate``.

Plain lists and ``math``, no NumPy, as the blog writes it::

    x      = the context's embeddings, flattened row by row       (c*d numbers)
    f1     = [dot(x, column) for each column of W1]               (h numbers; tanh if asked)
    logits = [dot(f1, column) for each column of W2]              (V numbers)

It is the oracle of the tests for ``tinyllm._generate.forward`` and the baseline of
the benchmarks' end-to-end comparison (a competent plain-Python loop: each output is
one ``sum(map(mul, ...))`` dot product, and the draws use ``random.choices``, as the
blog's notebooks do).
"""

from __future__ import annotations

import math
import random
from operator import mul

__all__ = ["forward", "PythonLM"]


def forward(embeddings, W1, W2, context, tanh: bool = False):
    """``(x, f1, logits)`` of one context of positions, as lists of floats.

    Parameters
    ----------
    embeddings : list of lists, (V, d)
    W1 : list of lists, (c*d, h)
    W2 : list of lists, (h, V)
    context : list of int, length c
    tanh : bool, default False
        ``f1 = tanh(x @ W1)``.
    """
    x = [float(v) for p in context for v in embeddings[p]]
    f1 = [sum(map(mul, x, column)) for column in zip(*W1)]
    if tanh:
        f1 = [math.tanh(v) for v in f1]
    logits = [sum(map(mul, f1, column)) for column in zip(*W2)]
    return x, f1, logits


class PythonLM:
    """A model's generation step in pure Python (its weights as Python floats).

    Parameters
    ----------
    model : tinyllm.TinyLM
        Read once: its weights become lists (columns of W1 and W2, for the dot products).
    """

    def __init__(self, model):
        self.vocab = model.vocab
        self.context = model.config.context
        self.tanh = model.config.activation == "tanh"
        self.embeddings = model.embedding.table.tolist()  # V rows of d
        self.W1_columns = model.W1.T.tolist()  # h columns of c*d
        self.W2_columns = model.W2.T.tolist()  # V columns of h
        self.positions = range(model.config.vocab_size)

    def logits(self, context: list[int]) -> list[float]:
        """The logits of the token after ``context`` (its last c positions are read)."""
        x = [v for p in context[-self.context :] for v in self.embeddings[p]]
        f1 = [sum(map(mul, x, column)) for column in self.W1_columns]
        if self.tanh:
            f1 = [math.tanh(v) for v in f1]
        return [sum(map(mul, f1, column)) for column in self.W2_columns]

    def next_position(self, context: list[int], rng: random.Random) -> int:
        """One draw from softmax(logits), with ``random.choices``."""
        logits = self.logits(context)
        m = max(logits)
        weights = [math.exp(v - m) for v in logits]
        return rng.choices(self.positions, weights=weights)[0]

    def generate(self, prompt: list[int], n: int, rng: random.Random) -> str:
        """Continue ``prompt`` (positions) with ``n`` drawn tokens, as text."""
        context, new = list(prompt[-self.context :]), []
        for _ in range(n):
            position = self.next_position(context, rng)
            context = context[1:] + [position]
            new.append(position)
        return self.vocab.decode(new)
