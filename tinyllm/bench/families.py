"""The logit families every sampling case runs on: one seeded row of V logits each.

A sampler's cost may depend on the shape of the distribution (a top-p nucleus is a
handful of tokens on peaked logits and most of the vocabulary on flat ones), so every
operation is timed on each of these:

- ``normal-0.3``, ``normal-1``, ``normal-3``: N(0, σ) for σ = 0.3 (flat: what a high
  temperature or an untrained model gives), 1 and 3 (peaked);
- ``equal``: every logit 0 (all ties: the ranking is the index order);
- ``zipf``: a power law, logit = -1.1 log(rank), ranks shuffled over the vocabulary
  (word frequencies look like this);
- ``masked``: N(0, 1) with a random half of the tokens at -inf (a grammar or a ban
  list masking them);
- ``trained``: the logits of a model trained on the built-in corpus (``tinyllm train``'s
  defaults, seed 0) after the blog's prompt, resampled to V values from their
  empirical quantiles and shuffled: the shape of a real model's output at any V.

Rows are made in float64 and cast, so both dtypes see the same numbers.
"""

from __future__ import annotations

import functools

import numpy as np

#: Family id -> how the report names it.
FAMILIES = {
    "normal-0.3": "N(0, 0.3)",
    "normal-1": "N(0, 1)",
    "normal-3": "N(0, 3)",
    "equal": "all equal",
    "zipf": "Zipf, shuffled",
    "masked": "half −inf",
    "trained": "trained model",
}

ZIPF_EXPONENT = 1.1


def logits(family: str, V: int, dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """One row of ``V`` logits of ``family`` (an id of :data:`FAMILIES`), C-contiguous.

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES`.
    V : int
        The row's length, >= 2.
    dtype : {"float32", "float64"}
    seed : int
        The same seed gives the same row.

    Returns
    -------
    numpy.ndarray, shape (V,)

    Raises
    ------
    ValueError
        An unknown family.
    """
    rng = np.random.default_rng(seed)
    if family.startswith("normal-") and family in FAMILIES:
        row = rng.standard_normal(V) * float(family.removeprefix("normal-"))
    elif family == "equal":
        row = np.zeros(V)
    elif family == "zipf":
        row = rng.permutation(-ZIPF_EXPONENT * np.log(np.arange(1, V + 1)))
    elif family == "masked":
        row = rng.standard_normal(V)
        row[rng.permutation(V)[: V // 2]] = -np.inf
    elif family == "trained":
        row = rng.permutation(_resampled(_trained_row(), V))
    else:
        raise ValueError(f"unknown logit family {family!r}; known: {', '.join(FAMILIES)}")
    return np.ascontiguousarray(row, dtype=dtype)


def _resampled(values: np.ndarray, V: int) -> np.ndarray:
    """V values with the empirical distribution of ``values``: its quantiles at
    (i + 1/2) / V, linearly interpolated (the largest and smallest stay in range)."""
    ordered = np.sort(values)
    at = (np.arange(V) + 0.5) / V * (len(ordered) - 1)
    return np.interp(at, np.arange(len(ordered)), ordered)


@functools.cache
def _trained_row() -> np.ndarray:
    """The next-token logits after the blog's prompt of a model trained on the built-in
    corpus with ``tinyllm train``'s defaults (seed 0; a fraction of a second)."""
    from tinyllm import blog, corpus, train

    model = train.train(corpus.builtin_text(), progress=False).model
    return np.asarray(model.logits(model.encode_prompt(blog.PROMPT)), dtype=np.float64)
