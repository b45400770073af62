"""The model step written twice more, for the end-to-end comparison: pure Python and NumPy.

Both compute what ``TinyLM.generate`` computes, with the model's own weights:

    context (last c positions) -> embedding rows -> flatten -> x @ W1 -> @ W2 -> softmax -> draw

Each is what a competent user of that tool would write: the Python one is
``tinyllm.reference.PythonLM`` (the weights as lists of columns, so each output is one
``sum(map(mul, ...))`` dot product, the blog's formulation, and draws with
``random.choices``, what the blog's notebooks use); the NumPy one uses ``@`` and draws
with cumsum + searchsorted (faster than ``rng.choice(V, p=p)``, which checks and
normalises ``p`` on every call).
All three return the continuation as text (``vocab.decode``), so they do the same work.
"""

from __future__ import annotations

import numpy as np

import tinyllm
from tinyllm.reference import PythonLM

__all__ = ["PythonLM", "NumpyLM", "LARGE_CONFIG", "blog_model", "large_model", "check_same_model"]


class NumpyLM:
    """The model step in idiomatic NumPy, in the model's dtype."""

    def __init__(self, model: tinyllm.TinyLM):
        self.vocab = model.vocab
        self.context = model.config.context
        self.E, self.W1, self.W2 = model.embedding.table, model.W1, model.W2
        self.last = model.config.vocab_size - 1

    def logits(self, context: list[int]) -> np.ndarray:
        return self.E[context].reshape(-1) @ self.W1 @ self.W2

    def next_position(self, context: list[int], rng: np.random.Generator) -> int:
        logits = self.logits(context)
        cum = np.cumsum(np.exp(logits - logits.max()))
        return min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), self.last)

    def generate(self, prompt: list[int], n: int, rng: np.random.Generator) -> str:
        """The same loop as the pure-Python one, around this next_position."""
        return PythonLM.generate(self, prompt, n, rng)  # type: ignore[arg-type]


#: The larger configuration of issue 4.
LARGE_CONFIG = tinyllm.TinyLMConfig(
    vocab_size=32_000, dim=64, context=8, hidden=256, dtype="float32"
)


def blog_model() -> tuple[tinyllm.TinyLM, list[int]]:
    """The blog's part-3 model and its prompt "el cielo es" as positions."""
    model = tinyllm.TinyLM.from_blog()
    return model, model.encode_prompt("el cielo es")


def large_model() -> tuple[tinyllm.TinyLM, list[int]]:
    """V = 32 000, d = 64, c = 8, h = 256, float32, random weights from seed 0; prompt 0..7."""
    return tinyllm.TinyLM.random(LARGE_CONFIG, seed=0), list(range(LARGE_CONFIG.context))


def check_same_model(model: tinyllm.TinyLM, prompt: list[int], *others) -> None:
    """The NumPy and Python versions must compute tinyllm's logits, or the race is unfair.

    Raises
    ------
    AssertionError
        One of ``others`` computes different logits for ``prompt``.
    """
    expected = model.logits(prompt)
    rtol = 1e-3 if model.config.dtype == "float32" else 1e-9
    for other in others:
        got = np.asarray(other.logits(prompt[-model.config.context :]), dtype=np.float64)
        if not np.allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max()):
            raise AssertionError(f"{type(other).__name__} does not compute the model's logits")
