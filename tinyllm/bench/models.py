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

:class:`NumpyLoop` is the *best* NumPy loop we can write, for one prompt or a batch:
every buffer allocated once (``np.take(..., out=)``, ``np.dot(x, W1, out=f1)``,
``np.dot(f1, W2, out=logits)``, ``np.exp(..., out=)``, ``np.cumsum(..., out=)``), in
a few idioms (:data:`NUMPY_LOOPS`); the benchmark keeps the fastest and names it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import tinyllm
from tinyllm.reference import PythonLM

__all__ = [
    "PythonLM",
    "NumpyLM",
    "NumpyLoop",
    "NUMPY_LOOPS",
    "LARGE_CONFIG",
    "blog_model",
    "large_model",
    "shape_model",
    "check_same_model",
]


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


#: The idioms of :class:`NumpyLoop`: name -> (the product, the draw, a label).
NUMPY_LOOPS = {
    "dot": ("dot", "cumsum", "np.dot(out=) twice, exp(out=), cumsum(out=) + searchsorted"),
    "matmul": ("matmul", "cumsum", "np.matmul(out=) twice, exp(out=), cumsum(out=) + searchsorted"),
    "dot-blocks": ("dot", "blocks", "np.dot(out=) twice, exp(out=), two-level block draw"),
}


class NumpyLoop:
    """The best NumPy loop: the model step into preallocated buffers, for B sequences.

    One step gathers the B contexts' embedding rows into ``x`` (B, c·d), then
    ``f1 = x @ W1`` (B, h) (tanh in place when the model has it), ``logits = f1 @ W2``
    (B, V), ``e = exp(logits - max)`` and draws one token per row with ``u`` in
    [0, 1). With B = 1 the buffers are vectors, so NumPy's BLAS runs a matrix-vector
    product (``gemv``), faster than a 1-row ``gemm``. Nothing is allocated per step
    but the row maxima and the B positions.

    Parameters
    ----------
    model : tinyllm.TinyLM
        Its weights, in its dtype (float32 or float64).
    idiom : str
        A key of :data:`NUMPY_LOOPS`.
    batch : int
        The number of sequences B stepped together.
    """

    def __init__(self, model: tinyllm.TinyLM, idiom: str = "dot", batch: int = 1):
        from tinyllm.bench.numpy_idioms import BlockDraw

        self.product, draw, self.label = NUMPY_LOOPS[idiom]
        self.vocab = model.vocab
        self.context = model.config.context
        self.tanh = model.config.activation == "tanh"
        self.E, self.W1, self.W2 = model.embedding.table, model.W1, model.W2
        self.batch = batch
        B, V, h = batch, model.config.vocab_size, model.config.hidden
        dtype = self.W2.dtype
        # B = 1: vectors (gemv); else matrices (gemm).
        rows = () if B == 1 else (B,)
        self.x = np.empty((B, self.context, model.config.dim), dtype=dtype)
        self.x_flat = self.x.reshape(*rows, -1)
        self.f1 = np.empty((*rows, h), dtype=dtype)
        self.logits = np.empty((*rows, V), dtype=dtype)
        self.e = self.logits.reshape(B, V)  # exp is computed in place of the logits
        self.top = np.empty((B, 1), dtype=dtype)
        self.cum = np.empty(V, dtype=np.float64)
        self.blocks = BlockDraw(V, dtype) if draw == "blocks" else None
        self.last = V - 1

    def _multiply(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        if self.product == "dot":
            np.dot(a, b, out=out)
        else:
            np.matmul(a, b, out=out)

    def logits_of(self, contexts: np.ndarray) -> np.ndarray:
        """The logits (B, V) (or (V,) for B = 1) of ``contexts`` (B, c) positions."""
        np.take(self.E, contexts, axis=0, out=self.x)
        self._multiply(self.x_flat, self.W1, self.f1)
        if self.tanh:
            np.tanh(self.f1, out=self.f1)
        self._multiply(self.f1, self.W2, self.logits)
        return self.logits

    def step(self, contexts: np.ndarray, u: np.ndarray) -> list[int]:
        """One token per row of ``contexts`` (B, c), drawn with ``u`` (B,) in [0, 1)."""
        self.logits_of(contexts)
        e = self.e
        np.max(e, axis=1, keepdims=True, out=self.top)
        np.subtract(e, self.top, out=e)
        np.exp(e, out=e)
        drawn = []
        for row, ub in zip(e, u.tolist()):
            if self.blocks is not None:
                drawn.append(self.blocks(row, ub))
                continue
            np.cumsum(row, dtype=np.float64, out=self.cum)
            at = int(np.searchsorted(self.cum, ub * self.cum[-1], side="right"))
            drawn.append(min(at, self.last))
        return drawn

    def generate(self, prompts: list[list[int]], n: int, rng: np.random.Generator) -> list[str]:
        """Continue each of the B ``prompts`` (positions) with ``n`` tokens, as texts."""
        B = len(prompts)
        return continue_batch(lambda c: self.step(c, rng.random(B)), prompts, n, self)


def continue_batch(step, prompts: list[list[int]], n: int, loop) -> list[str]:
    """The generation loop around a batched ``step(contexts (B, c)) -> B positions``:
    ``n`` steps, each context shifted by the token drawn; the B continuations as texts
    (``loop.vocab.decode``; ``loop.context`` is c)."""
    contexts = np.array([p[-loop.context :] for p in prompts], dtype=np.intp)
    new = np.empty((len(prompts), n), dtype=np.intp)
    for t in range(n):
        drawn = step(contexts)
        new[:, t] = drawn
        contexts[:, :-1] = contexts[:, 1:]
        contexts[:, -1] = drawn
    return [loop.vocab.decode(row) for row in new.tolist()]


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


def shape_model(V: int, hidden: int) -> tuple[tinyllm.TinyLM, list[int]]:
    """:data:`LARGE_CONFIG` with another V and h (random weights from seed 0); prompt 0..7."""
    config = dataclasses.replace(LARGE_CONFIG, vocab_size=V, hidden=hidden)
    return tinyllm.TinyLM.random(config, seed=0), list(range(config.context))


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
        context = prompt[-model.config.context :]
        if hasattr(other, "logits_of"):  # a batched loop: every row of a batch
            rows = other.logits_of(np.array([context] * other.batch))
        else:
            rows = other.logits(context)
        for got in np.asarray(rows, dtype=np.float64).reshape(-1, len(expected)):
            if not np.allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max()):
                raise AssertionError(f"{type(other).__name__} does not compute the model's logits")
