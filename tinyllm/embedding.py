"""The embedding table: one vector of ``d`` numbers per token."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinyllm._arrays import as_weight_matrix

__all__ = ["Embedding"]


class Embedding:
    """A ``(V, d)`` table whose row ``i`` is the embedding of the token at position ``i``.

    Parameters
    ----------
    table : array_like, shape (V, d)
        Finite real numbers. Stored as a read-only copy in ``dtype``.
    dtype : {"float64", "float32"}, default "float64"

    Examples
    --------
    >>> emb = Embedding([[-0.2, 0.9], [0.8, -0.1]])
    >>> emb.lookup([1, 0])
    array([[ 0.8, -0.1],
           [-0.2,  0.9]])
    """

    def __init__(self, table, dtype="float64"):
        self._table = as_weight_matrix(table, "embedding table", dtype)

    @property
    def table(self) -> np.ndarray:
        """The read-only ``(V, d)`` table."""
        return self._table

    @property
    def vocab_size(self) -> int:
        return self._table.shape[0]

    @property
    def dim(self) -> int:
        return self._table.shape[1]

    def __repr__(self) -> str:
        return f"Embedding(vocab_size={self.vocab_size}, dim={self.dim}, dtype={self._table.dtype})"

    def lookup(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The embeddings of ``positions``: an ``(n, d)`` matrix, row ``j`` of ``positions[j]``.

        Raises
        ------
        ValueError
            A position is out of range, or ``positions`` is not 1-D.
        TypeError
            ``positions`` are not integers.
        """
        pos = np.asarray(positions)
        if pos.size == 0:
            pos = pos.astype(np.intp)
        if pos.dtype.kind not in "iu":
            raise TypeError(f"positions must be integers, got dtype {pos.dtype}")
        if pos.ndim != 1:
            raise ValueError(f"positions must be 1-D, got shape {pos.shape}")
        bad = (pos < 0) | (pos >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"position {int(pos[bad][0])} is out of range for {self.vocab_size} embeddings"
            )
        return self._table[pos]

    __call__ = lookup
