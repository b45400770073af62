"""What tinyllm is compared with: idiomatic NumPy, SciPy and PyTorch versions of each kernel.

Every function takes ready-made inputs (arrays, tensors, generators) and does what a
user of that library would write. Batched versions work on (B, V) and draw one token
per row. SciPy and PyTorch are optional: ``scipy_special`` and ``torch`` are None when
they are not installed, and the cases leave their columns out.
"""

from __future__ import annotations

import importlib

import numpy as np


def optional(module: str):
    """The module, or None if it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


scipy_special = optional("scipy.special")
torch = optional("torch")


# ---------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------


def np_softmax(x: np.ndarray) -> np.ndarray:
    """``e = np.exp(x - x.max()); e / e.sum()``, along the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def np_draw_rows(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of (B, V) weights: cumulative sums, then the first cum > u * total.

    NumPy has no batched ``choice``; this vectorised inverse-CDF draw is the idiom.
    """
    cum = np.cumsum(p, axis=-1)
    u = rng.random((p.shape[0], 1)) * cum[:, -1:]
    return np.minimum((cum <= u).sum(axis=-1), p.shape[-1] - 1)


def np_sample(p: np.ndarray, rng: np.random.Generator, size=None):
    """``rng.choice(V, p=p)`` for one distribution; :func:`np_draw_rows` for a batch."""
    if p.ndim == 1:
        return rng.choice(p.shape[0], p=p, size=size)
    return np_draw_rows(p, rng)


def np_sample_logits(x: np.ndarray, temperature: float, rng: np.random.Generator):
    """NumPy softmax of ``x / T``, then ``Generator.choice`` (or the batched draw)."""
    return np_sample(np_softmax(x / temperature), rng)


def np_top_p(x: np.ndarray, top_p: float, rng: np.random.Generator):
    """Top-p with argsort: sort the probabilities, keep the smallest head whose mass
    reaches ``top_p``, draw from it."""
    p = np_softmax(x)
    if x.ndim == 1:
        order = np.argsort(-p, kind="stable")
        head = p[order]
        n = int(np.searchsorted(np.cumsum(head), top_p)) + 1
        head = head[:n]
        return int(order[rng.choice(n, p=head / head.sum())])
    order = np.argsort(-p, axis=-1, kind="stable")
    head = np.take_along_axis(p, order, axis=-1)
    head[np.cumsum(head, axis=-1) - head >= top_p] = 0.0  # mass before the token reached p
    j = np_draw_rows(head, rng)
    return np.take_along_axis(order, j[:, None], axis=-1)[:, 0]


def np_dot(a: np.ndarray, b: np.ndarray) -> float:
    return np.dot(a, b)


def np_project(h: np.ndarray, W: np.ndarray) -> np.ndarray:
    return h @ W


# ---------------------------------------------------------------------------
# SciPy
# ---------------------------------------------------------------------------


def scipy_softmax(x: np.ndarray) -> np.ndarray:
    return scipy_special.softmax(x, axis=-1)


def scipy_log_softmax(x: np.ndarray) -> np.ndarray:
    return scipy_special.log_softmax(x, axis=-1)


# ---------------------------------------------------------------------------
# PyTorch (CPU; the thread count is set once in run.py)
# ---------------------------------------------------------------------------


def torch_softmax(t):
    return torch.softmax(t, dim=-1)


def torch_log_softmax(t):
    return torch.log_softmax(t, dim=-1)


def torch_sample(p, gen, size=None):
    """``torch.multinomial``: one draw per row, or ``size`` draws with replacement."""
    if size is None:
        return torch.multinomial(p, 1, generator=gen)
    return torch.multinomial(p, size, replacement=True, generator=gen)


def torch_sample_logits(t, temperature: float, gen):
    return torch.multinomial(torch.softmax(t / temperature, dim=-1), 1, generator=gen)


def torch_top_p(t, top_p: float, gen):
    """The Hugging Face recipe: sort, cumulative sum, zero the tail, multinomial."""
    head, order = torch.sort(torch.softmax(t, dim=-1), dim=-1, descending=True)
    head[head.cumsum(dim=-1) - head >= top_p] = 0.0
    return order.gather(-1, torch.multinomial(head, 1, generator=gen))


def torch_dot(a, b):
    return torch.dot(a, b)


def torch_project(h, W):
    return h @ W  # torch.mv / torch.mm on the transposed layout


def torch_generator(seed: int = 0):
    return torch.Generator().manual_seed(seed)
