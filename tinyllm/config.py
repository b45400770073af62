"""The model's shape: vocabulary size, embedding dimension, context length, hidden size,
precision and the optional activation of the hidden layer."""

from __future__ import annotations

from dataclasses import dataclass

from tinyllm._arrays import as_dtype_name, checked_int

__all__ = ["ACTIVATIONS", "TinyLMConfig"]

#: The activations the hidden layer may have (None: none, the blog's model).
ACTIVATIONS = (None, "tanh")


@dataclass(frozen=True)
class TinyLMConfig:
    """Sizes of a :class:`~tinyllm.TinyLM`, validated on creation.

    Parameters
    ----------
    vocab_size : int
        V, the number of tokens (and of logits).
    dim : int
        d, the numbers per embedding (the blog uses 2).
    context : int
        c, how many tokens the model reads (the blog uses 3). The flattened
        input ``x`` has ``c * d`` numbers.
    hidden : int
        h, the outputs of ``f1`` (the blog uses 1).
    dtype : {"float64", "float32"}
        Precision of the weights and of every computation.
    activation : {None, "tanh"}, default None
        None: ``f1 = x @ W1``, as in the blog. ``"tanh"``: ``f1 = tanh(x @ W1)``, a
        non-linear hidden layer (it makes a difference for ``hidden > 1``: without
        it ``W1 @ W2`` is just one linear map).
    """

    vocab_size: int
    dim: int = 2
    context: int = 3
    hidden: int = 1
    dtype: str = "float64"
    activation: str | None = None

    def __post_init__(self):
        for name in ("vocab_size", "dim", "context", "hidden"):
            object.__setattr__(self, name, checked_int(name, getattr(self, name), 1))
        object.__setattr__(self, "dtype", as_dtype_name(self.dtype))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be None or 'tanh', got {self.activation!r}")

    @property
    def input_size(self) -> int:
        """``c * d``: the length of the flattened context ``x``."""
        return self.context * self.dim
