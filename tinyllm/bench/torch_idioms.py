"""The PyTorch idioms (CPU, one thread: the runner calls ``torch.set_num_threads(1)``).

Filters are written the way Hugging Face transformers' logits processors are (the
code most PyTorch users run): each one returns the scores with the removed tokens
set to -inf (``*_scores``), then ``softmax`` + ``torch.multinomial`` draw. Two
changes keep them exact, so that each keeps what ``tinyllm.filter_logits`` keeps:
sorts are stable (ties to the lower index) and top-k drops surplus ties at its
threshold (transformers keeps them all). MinP skips transformers' argsort for
``min_tokens_to_keep`` (a no-op at 1), which makes it faster, not slower.
Plain draws have two idioms: ``multinomial(softmax(x / T))`` (common) and
``cumsum`` + ``searchsorted`` into preallocated tensors (best).

Imported only when PyTorch is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Draw = Callable[[], int]
NEG_INF = float("-inf")


def tensor(a: np.ndarray) -> torch.Tensor:
    """The array as a tensor sharing its memory."""
    return torch.from_numpy(a)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def multinomial(scores: torch.Tensor, gen: torch.Generator, T: float = 1.0) -> int:
    """The draw after a processor: ``multinomial(softmax(scores / T), 1)``."""
    if T != 1.0:
        scores = scores / T
    return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen))


# ---------------------------------------------------------------------------
# Plain draws
# ---------------------------------------------------------------------------


def sample_multinomial(p: torch.Tensor, gen) -> Draw:
    """Common: ``torch.multinomial(p, 1)``."""
    return lambda: int(torch.multinomial(p, 1, generator=gen))


class CumsumDraw:
    """Best: cumulative sums into a preallocated float64 tensor, ``searchsorted``."""

    def __init__(self, V: int, gen: torch.Generator):
        self.cum = torch.empty(V, dtype=torch.float64)
        self.u = torch.empty(1, dtype=torch.float64)
        self.gen = gen

    def __call__(self, w: torch.Tensor) -> int:
        torch.cumsum(w, 0, dtype=torch.float64, out=self.cum)
        self.u.uniform_(generator=self.gen).mul_(self.cum[-1])
        return min(int(torch.searchsorted(self.cum, self.u, right=True)), len(w) - 1)


def sample_cumsum(p: torch.Tensor, gen) -> Draw:
    draw = CumsumDraw(len(p), gen)
    return lambda: draw(p)


def temperature_multinomial(t: torch.Tensor, T: float, gen) -> Draw:
    """Common: ``multinomial(softmax(t / T), 1)``."""
    return lambda: multinomial(t, gen, T)


def temperature_cumsum(t: torch.Tensor, T: float, gen) -> Draw:
    """Best: exp((t - max) / T) into a buffer, then :class:`CumsumDraw`."""
    work, draw, inv_t = torch.empty_like(t), CumsumDraw(len(t), gen), 1.0 / T

    def call() -> int:
        torch.sub(t, t.max(), out=work)
        return draw(work.mul_(inv_t).exp_())

    return call


def greedy_argmax(t: torch.Tensor) -> Draw:
    return lambda: int(torch.argmax(t))


# ---------------------------------------------------------------------------
# Filters: transformers-style processors
# ---------------------------------------------------------------------------


def top_k_scores(t: torch.Tensor, k: int) -> torch.Tensor:
    """TopKLogitsWarper: mask what is below the k-th largest (``torch.topk``); surplus
    ties at that value are masked from the highest index down."""
    k = min(k, len(t))
    threshold = torch.topk(t, k).values[-1]
    remove = t < threshold
    surplus = len(t) - int(remove.sum()) - k
    if surplus > 0 and threshold > NEG_INF:
        ties = torch.nonzero(t == threshold).flatten()
        remove[ties[len(ties) - surplus :]] = True
    return t.masked_fill(remove, NEG_INF)


def top_p_scores(t: torch.Tensor, p: float) -> torch.Tensor:
    """TopPLogitsWarper: sort (descending, stable), softmax, cumsum; remove a token
    once the mass before it reaches p; scatter back; masked_fill."""
    ordered, order = torch.sort(t, descending=True, stable=True)
    probs = ordered.softmax(dim=-1)
    remove_sorted = probs.cumsum(dim=-1) - probs >= p
    remove = remove_sorted.scatter(0, order, remove_sorted)
    return t.masked_fill(remove, NEG_INF)


def min_p_scores(t: torch.Tensor, q: float) -> torch.Tensor:
    """MinPLogitsWarper: softmax; remove p < q * max(p)."""
    probs = torch.softmax(t, dim=-1)
    return t.masked_fill(probs < q * probs.amax(), NEG_INF)


def typical_scores(t: torch.Tensor, tau: float) -> torch.Tensor:
    """TypicalLogitsWarper: log_softmax, entropy, |-log p - H| sorted (stable), cumsum
    of the probabilities in that order, remove past the prefix reaching tau."""
    log_p = torch.log_softmax(t, dim=-1)
    p = log_p.exp()
    entropy = -(log_p * p).nansum()
    _, order = torch.sort((-log_p - entropy).abs(), stable=True)
    cum = p.gather(-1, order).cumsum(dim=-1)
    last = int((cum < tau * cum[-1]).sum())
    remove_sorted = torch.arange(len(t)) > last
    remove = remove_sorted.scatter(0, order, remove_sorted)
    return t.masked_fill(remove, NEG_INF)


def filtered(scores_of: Callable[[torch.Tensor, float], torch.Tensor]):
    """The draw of a filter: its processor, then softmax + multinomial."""

    def make(t: torch.Tensor, param, gen) -> Draw:
        return lambda: multinomial(scores_of(t, param), gen)

    return make


def penalty_scores(t: torch.Tensor, window: torch.Tensor, r: float) -> torch.Tensor:
    """RepetitionPenaltyLogitsProcessor: gather the seen tokens' scores, divide the
    positive ones by r and multiply the others, scatter back."""
    score = torch.gather(t, 0, window)
    score = torch.where(score > 0, score / r, score * r)
    return t.scatter(0, window, score)


def penalty(t: torch.Tensor, window: torch.Tensor, r: float, T: float, gen) -> Draw:
    return lambda: multinomial(penalty_scores(t, window, r), gen, T)


# ---------------------------------------------------------------------------
# Generation: the model step in PyTorch
# ---------------------------------------------------------------------------

#: The idioms of :class:`TorchLoop`: name -> (the draw, a label).
TORCH_LOOPS = {
    "cumsum": ("cumsum", "matmul(out=) twice, exp_, cumsum(out=) + searchsorted"),
    "multinomial": ("multinomial", "matmul(out=) twice, softmax + multinomial"),
}


class TorchLoop:
    """The model step in PyTorch, weights in ``dtype`` (float32 or bfloat16), for B
    sequences, into preallocated tensors: ``index_select(out=)``, ``matmul(x, W1,
    out=f1)``, ``matmul(f1, W2, out=logits)``, then the draw in float32 (the logits
    are copied into a float32 buffer first when the weights are bfloat16). The
    tensors are matrices even for B = 1: ``matmul`` of a vector with ``out=`` resizes
    its output (deprecated), and a 1-row ``mm`` measured as fast as ``mv``."""

    def __init__(self, model, dtype: str = "float32", idiom: str = "cumsum", batch: int = 1):
        self.draw, self.label = TORCH_LOOPS[idiom]
        self.vocab, self.context, self.batch = model.vocab, model.config.context, batch
        self.tanh = model.config.activation == "tanh"
        kind = getattr(torch, dtype)

        def weights(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.asarray(a, dtype=np.float32), dtype=kind)  # a copy

        self.E, self.W1, self.W2 = (weights(a) for a in (model.embedding.table, model.W1, model.W2))
        B, V, h = batch, model.config.vocab_size, model.config.hidden
        self.x = torch.empty((B * self.context, model.config.dim), dtype=kind)
        self.x_flat = self.x.view(B, -1)
        self.f1 = torch.empty((B, h), dtype=kind)
        self.logits = torch.empty((B, V), dtype=kind)
        self.work = torch.empty((B, V), dtype=torch.float32)
        self.cum = torch.empty((B, V), dtype=torch.float64)
        self.u = torch.empty((B, 1), dtype=torch.float64)
        self.index = torch.empty(B * self.context, dtype=torch.long)
        self.last = V - 1

    def logits_of(self, contexts: np.ndarray) -> torch.Tensor:
        """The logits (B, V) of ``contexts`` (B, c) positions."""
        self.index.copy_(torch.from_numpy(np.ascontiguousarray(contexts, dtype=np.int64).ravel()))
        torch.index_select(self.E, 0, self.index, out=self.x)
        torch.matmul(self.x_flat, self.W1, out=self.f1)
        if self.tanh:
            self.f1.tanh_()
        torch.matmul(self.f1, self.W2, out=self.logits)
        return self.logits

    def step(self, contexts: np.ndarray, gen: torch.Generator) -> list[int]:
        """One token per row of ``contexts`` (B, c)."""
        work = self.work
        work.copy_(self.logits_of(contexts))
        if self.draw == "multinomial":
            drawn = torch.multinomial(torch.softmax(work, dim=-1), 1, generator=gen)
            return drawn.view(-1).tolist()
        work.sub_(work.amax(dim=1, keepdim=True)).exp_()
        torch.cumsum(work, 1, dtype=torch.float64, out=self.cum)
        self.u.uniform_(generator=gen).mul_(self.cum[:, -1:])
        drawn = torch.searchsorted(self.cum, self.u, right=True).clamp_(max=self.last)
        return drawn.view(-1).tolist()

    def generate(self, prompts: list[list[int]], n: int, gen: torch.Generator) -> list[str]:
        """Continue each of the B ``prompts`` (positions) with ``n`` tokens, as texts."""
        from tinyllm.bench.models import continue_batch

        return continue_batch(lambda c: self.step(c, gen), prompts, n, self)
