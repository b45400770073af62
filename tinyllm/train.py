"""Training: learn the embeddings and weights from text by gradient descent.

The model predicts the token that follows each window of ``c`` tokens; training
lowers the mean cross-entropy ``-log p(next token)`` over the corpus:

- the text is cut into tokens (:meth:`Vocab.from_text`: lowercase, words and
  punctuation), its lines are put in one stream, and every run of ``c`` tokens is an
  example whose target is the token after it;
- a seeded share of the lines (``val_fraction``) is held out for validation;
- each epoch shuffles the training examples (from ``seed``) and walks through them in
  minibatches; per batch the compiled kernels (:class:`tinyllm._train.TrainState`) run
  forward, loss, backward and the optimizer update (SGD with momentum, or Adam)
  without the GIL; Python only orchestrates the epochs;
- every update first shrinks the weights by ``1 - lr * weight_decay``: decoupled weight
  decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), so Adam is
  torch.optim.AdamW; SGD gets the same decoupled decay (their SGDW), not the L2 term
  that torch.optim.SGD's ``weight_decay`` adds to the gradient;
- the learning rate of step ``s`` (1-based) of ``S`` follows ``schedule``, after an
  optional linear warm-up over the first ``warmup`` steps (``lr * s / warmup``)::

      constant   lr
      linear     lr * (1 - p)                 p = (s - 1 - warmup) / (S - warmup)
      cosine     lr * (1 + cos(pi * p)) / 2   (from lr down towards 0)

- after each epoch: the training loss (the mean of that epoch's batch losses), the
  validation loss, and their perplexities ``exp(loss)``;
- early stopping: with ``patience`` = N, training stops when the validation loss has
  not gone below its lowest so far for N epochs in a row, and the model returned has
  the weights of the epoch with the lowest validation loss (copied when that epoch
  ended), even when every epoch ran. ``patience=None`` trains every epoch and keeps
  the last. Without validation examples (``val_fraction=0``, a one-line corpus) there
  is nothing to watch: every epoch runs and the last is kept. The result says which
  epoch it kept (``kept_epoch``) and why training ended (``stopped``).

If a step's loss, a gradient or an updated weight is not finite, or the loss is far
above a uniform guess's (more than ``DIVERGED_FACTOR`` times the larger of ``log V``,
the starting loss and 1), training stops with :class:`TrainingDiverged`, which names
the step and carries the model with the weights from before that step. SGD and Adam
alike: Adam's updates have the size of the learning rate whatever the gradients, so a
learning rate far too large leaves every number finite while the loss explodes.

Memory is checked before anything is allocated: :func:`training_memory` estimates
what a run holds (weights, gradients, the optimizer's moments, the batch buffers and
the examples), and a run that would need more than the machine's physical memory
raises ValueError with the amount it would need.

Progress bar: ``progress=None`` shows a tqdm bar when tqdm is installed and stderr is
a terminal, and nothing otherwise (no bar in logs, pipes and tests); ``True`` asks for
one and raises ImportError with the install command if tqdm is missing; ``False``
never shows one. ``pip install 'tinyllm-cython[progress]'`` installs tqdm.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyllm._arrays import check_memory
from tinyllm._compiled import Diverged, TrainState
from tinyllm.config import TinyLMConfig
from tinyllm.corpus import builtin_text, corpus_lines, encode_lines, windows
from tinyllm.model import TinyLM
from tinyllm.vocab import Vocab

__all__ = [
    "SCHEDULES",
    "OPTIMIZERS",
    "STOP_REASONS",
    "DIVERGED_FACTOR",
    "TrainOptions",
    "EpochStats",
    "TrainResult",
    "TrainingDiverged",
    "learning_rate",
    "fit",
    "train",
    "held_out_examples",
    "progress_bar",
    "require_tqdm",
    "training_memory",
]

SCHEDULES = ("constant", "linear", "cosine")
OPTIMIZERS = ("adam", "sgd")
#: Why training ended (TrainResult.stopped): every epoch ran; the validation loss did
#: not improve for ``patience`` epochs; a step diverged (TrainingDiverged's result).
STOP_REASONS = ("epochs", "patience", "diverged")

#: A batch loss above this many times max(log V, the starting loss, 1) means training
#: diverged (log V is the loss of a uniform guess over the V tokens).
DIVERGED_FACTOR = 10.0

PROGRESS_MISSING = (
    "the progress bar needs tqdm, which is not installed: "
    "pip install 'tinyllm-cython[progress]' (or pip install tqdm)"
)


@dataclass(frozen=True)
class TrainOptions:
    """How to train (validated on creation).

    Parameters
    ----------
    epochs : int, default 30
        Passes over the training examples (>= 1).
    batch_size : int, default 32
        Examples per step (>= 1); the last batch of an epoch may be smaller.
    lr : float, default 0.01
        The (peak) learning rate: finite and > 0.
    optimizer : {"adam", "sgd"}, default "adam"
        Adam, or SGD with ``momentum``.
    momentum : float, default 0.9
        SGD's momentum, in [0, 1).
    schedule : {"constant", "linear", "cosine"}, default "constant"
        How the learning rate changes over the steps (see the module docstring).
    warmup : int, default 0
        Steps of linear warm-up from 0 to ``lr`` before the schedule.
    val_fraction : float, default 0.1
        Share of the corpus lines held out for validation, in [0, 1). 0, or a corpus
        of one line, means no validation.
    seed : int, default 0
        Seeds the initial weights, the validation split and the shuffling: the same
        seed gives the same model.
    patience : int or None, default 5
        Early stopping: stop after this many epochs (>= 1) in a row without a new
        lowest validation loss, and keep the weights of the epoch that had it. None
        switches it off: every epoch runs and the last one's weights are kept.
    weight_decay : float, default 0.3
        Decoupled weight decay ``wd``, finite and >= 0: every update first does
        ``p *= 1 - lr * wd`` (as torch.optim.AdamW; the same for SGD). 0 switches it off.

    Notes
    -----
    The defaults of ``patience`` and ``weight_decay`` were chosen by measurement on the
    built-in corpus (seeds 0-4, 30 epochs): without decay the validation loss is lowest
    at epoch 2 or 3 and then climbs; with ``weight_decay=0.3`` it goes lower (2.20
    instead of 2.55 for seed 0) and later (epochs 9-11), and ``patience=5`` kept the
    run's lowest validation loss for all five seeds.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.01
    optimizer: str = "adam"
    momentum: float = 0.9
    schedule: str = "constant"
    warmup: int = 0
    val_fraction: float = 0.1
    seed: int = 0
    patience: int | None = 5
    weight_decay: float = 0.3

    def __post_init__(self):
        for name, low in (("epochs", 1), ("batch_size", 1), ("warmup", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"the learning rate must be finite and > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.patience is not None:
            if isinstance(self.patience, bool) or not isinstance(self.patience, (int, np.integer)):
                raise TypeError(
                    f"patience must be an integer or None (no early stopping), "
                    f"got {self.patience!r}"
                )
            if self.patience < 1:
                raise ValueError(
                    f"patience must be >= 1, or None for no early stopping, got {self.patience}"
                )
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, (int, float, np.integer, np.floating)):
            raise TypeError(f"the weight decay must be a number, got {wd!r}")
        if not (math.isfinite(wd) and wd >= 0):
            raise ValueError(f"the weight decay must be finite and >= 0, got {wd!r}")


@dataclass(frozen=True)
class EpochStats:
    """What one epoch did."""

    epoch: int  # 1-based
    steps: int  # steps so far, all epochs
    train_loss: float  # mean batch loss over the epoch
    train_perplexity: float  # exp(train_loss)
    val_loss: float | None  # mean loss on the held-out lines (None: no validation)
    val_perplexity: float | None
    lr: float  # the learning rate of the epoch's last step
    seconds: float  # wall time of the epoch (validation included)
    tokens_per_second: float  # training examples per second of stepping

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """A trained model and how it got there.

    ``kept_epoch`` is the epoch (1-based) whose weights ``model`` has: with early
    stopping the one with the lowest validation loss, else the last. None when the
    weights are from the middle of an epoch (a diverged run keeps those from before
    the step that diverged). ``stopped`` says why training ended (:data:`STOP_REASONS`):
    ``"epochs"`` (every epoch ran), ``"patience"`` (the validation loss did not improve
    for ``options.patience`` epochs) or ``"diverged"``.
    """

    model: TinyLM
    history: list[EpochStats]
    options: TrainOptions
    train_examples: int
    val_examples: int
    steps: int
    corpus: str = ""  # a name for the corpus (for the saved file)
    kept_epoch: int | None = None
    stopped: str = "epochs"

    @property
    def early_stopping(self) -> bool:
        """Whether early stopping watched the validation loss (a patience, and
        validation examples to compute it on)."""
        return _watches(self.options, self.val_examples)

    @property
    def kept(self) -> EpochStats | None:
        """The kept epoch's statistics (None if the weights are not an epoch's)."""
        return None if self.kept_epoch is None else self.history[self.kept_epoch - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (saved with the model by ``tinyllm train``)."""
        return {
            "corpus": self.corpus,
            "options": asdict(self.options),
            "train_examples": self.train_examples,
            "val_examples": self.val_examples,
            "steps": self.steps,
            "kept_epoch": self.kept_epoch,
            "stopped": self.stopped,
            "history": [h.to_dict() for h in self.history],
        }


class TrainingDiverged(ValueError):
    """The loss exploded, or it or an update became NaN or infinite, at ``step``;
    training stopped.

    ``result`` holds the model with the weights from before that step (the last
    good ones) and the history of the finished epochs.
    """

    def __init__(self, message: str, step: int, epoch: int, result: TrainResult):
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.result = result


def learning_rate(options: TrainOptions, step: int, total_steps: int) -> float:
    """The learning rate of ``step`` (1-based) out of ``total_steps`` (always > 0)."""
    lr = float(options.lr)
    if options.warmup and step <= options.warmup:
        return lr * step / options.warmup
    if options.schedule == "constant":
        return lr
    p = (step - 1 - options.warmup) / max(total_steps - options.warmup, 1)
    p = min(max(p, 0.0), 1.0 - 1e-12)
    if options.schedule == "linear":
        return lr * (1.0 - p)
    return lr * 0.5 * (1.0 + math.cos(math.pi * p))


def require_tqdm():
    """tqdm's bar class; ImportError with the install command when tqdm is missing.

    Draws nothing: ``tinyllm train --progress on`` asks this before any work starts.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(PROGRESS_MISSING) from None
    return tqdm


def progress_bar(total: int, progress: bool | None, desc: str = "training"):
    """A tqdm bar of ``total`` steps, or None (see the module docstring for ``progress``)."""
    if progress is False:
        return None
    try:
        tqdm = require_tqdm()
    except ImportError:
        if progress:
            raise
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------
def training_memory(
    config: TinyLMConfig, batch_size: int, optimizer: str = "adam", examples: int = 0
) -> int:
    """The bytes a training run holds at its peak: an estimate from the sizes alone.

    Parameters
    ----------
    config : TinyLMConfig
        V, d, c, h and the dtype of the model.
    batch_size : int
        B, examples per step.
    optimizer : {"adam", "sgd"}
    examples : int, default 0
        N, the training examples, when known.

    Returns
    -------
    int
        ``itemsize * (copies * W + B * (V + 2*c*d + 2*h)) + 8 * N * (2*c + 3)``, where
        W = V*d + c*d*h + h*V is one set of weights and ``copies`` counts the model
        trained from, the weights being trained, their gradients, the optimizer's
        moments (Adam 2, SGD 1), the best epoch's weights (early stopping) and the
        trained model; the batch buffers are the
        (B, V) logits, (B, c*d) inputs and their gradient, (B, h) hidden values and
        theirs; the examples are windows of c positions, targets, and the shuffling.
    """
    V, d, c, h = config.vocab_size, config.dim, config.context, config.hidden
    itemsize = np.dtype(config.dtype).itemsize
    weights = V * d + c * d * h + h * V
    copies = 5 + (2 if optimizer == "adam" else 1)
    batch = batch_size * (V + 2 * c * d + 2 * h)
    return itemsize * (copies * weights + batch) + 8 * examples * (2 * c + 3)


def _check_memory(config: TinyLMConfig, options: TrainOptions, examples: int = 0) -> None:
    """ValueError, before anything is allocated, for a run that needs more memory than
    the machine has (:func:`tinyllm._arrays.check_memory`)."""
    check_memory(
        training_memory(config, options.batch_size, options.optimizer, examples),
        f"training (vocabulary {config.vocab_size}, dim {config.dim}, context "
        f"{config.context}, hidden {config.hidden}, batch size {options.batch_size}, "
        f"{config.dtype}, {options.optimizer})",
    )


def _split_lines(lines: list[str], val_fraction: float, rng: np.random.Generator):
    if val_fraction <= 0 or len(lines) < 2:
        return lines, []
    n_val = min(max(1, round(val_fraction * len(lines))), len(lines) - 1)
    held = set(rng.permutation(len(lines))[:n_val].tolist())
    return (
        [l for i, l in enumerate(lines) if i not in held],
        [l for i, l in enumerate(lines) if i in held],
    )


def _split_examples(vocab: Vocab, lines: list[str], context: int, options: TrainOptions, rng):
    """The training and held-out examples (windows and targets) of ``lines``: a share
    ``options.val_fraction`` of the lines is held out, drawn from ``rng`` (the run's
    generator, seeded with ``options.seed``)."""
    train_lines, val_lines = _split_lines(lines, options.val_fraction, rng)
    train_w, train_t = windows(encode_lines(vocab, train_lines), context)
    val_w, val_t = windows(encode_lines(vocab, val_lines), context)
    if len(train_w) == 0:  # the held-out lines took too much: use everything
        train_w, train_t = windows(encode_lines(vocab, lines), context)
        val_w, val_t = val_w[:0], val_t[:0]
    return train_w, train_t, val_w, val_t


def held_out_examples(
    model: TinyLM, text: str | None = None, options: TrainOptions | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The validation examples a training run held out: what :func:`fit` measured
    ``val_loss`` on.

    Parameters
    ----------
    model : TinyLM
        The trained model (its vocabulary and context).
    text : str, optional
        The corpus it was trained on; the built-in corpus when None.
    options : TrainOptions, optional
        The run's options (``val_fraction`` and ``seed`` decide the split), as saved
        in the model file's ``training`` facts; the defaults when None.

    Returns
    -------
    windows : numpy.ndarray of intp, shape (N, c)
        Each example's ``c`` context positions.
    targets : numpy.ndarray of intp, shape (N,)
        The position that followed.
    """
    options = TrainOptions() if options is None else options
    lines = corpus_lines(builtin_text() if text is None else text)
    rng = np.random.default_rng(options.seed)
    return _split_examples(model.vocab, lines, model.config.context, options, rng)[2:]


def fit(
    model: TinyLM,
    text: str,
    options: TrainOptions | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    corpus: str = "",
) -> TrainResult:
    """Train ``model``'s weights on ``text`` (encoded with ``model.vocab``).

    Parameters
    ----------
    model : TinyLM
        The starting point; it is not changed (its weights are read-only): the
        trained model is returned.
    text : str
        The corpus (see :mod:`tinyllm.corpus`: one sentence or paragraph per line,
        ``#`` comments).
    options : TrainOptions, optional
    progress : bool or None
        The progress bar (see the module docstring).
    on_epoch : callable, optional
        Called with each epoch's :class:`EpochStats` as soon as it is done.
    corpus : str
        A name for the corpus, kept in the result.

    Returns
    -------
    TrainResult
        The model has the weights of ``kept_epoch``: with early stopping
        (``options.patience``) and validation examples, the epoch with the lowest
        validation loss; otherwise the last.

    Raises
    ------
    ValueError
        An empty corpus, or one with no more tokens than the context.
    UnknownTokenError
        A word of the corpus is not in the vocabulary (and it has no ``<unk>``).
    ValueError
        The run would need more memory than the machine has (:func:`training_memory`).
    TrainingDiverged
        A step's loss went far above a uniform guess's, or the loss or an update
        stopped being finite (a ``ValueError``; see the module docstring).
    """
    options = TrainOptions() if options is None else options
    if model.packed_W2 is not None:
        raise ValueError(
            f"cannot train a model whose W2 is stored in {model.weight_format}: train in "
            f"float32 or float64, then quantize (model.quantize({model.weight_format!r}))"
        )
    cfg = model.config
    c = cfg.context
    lines = corpus_lines(text)
    stream = encode_lines(model.vocab, lines)
    if len(stream) == 0:
        raise ValueError("the corpus is empty: it has no words to learn from")
    if len(stream) <= c:
        raise ValueError(
            f"the corpus has {len(stream)} token{'s' if len(stream) != 1 else ''}; "
            f"a context of {c} needs at least {c + 1}"
        )
    _check_memory(cfg, options, examples=len(stream) - c)
    rng = np.random.default_rng(options.seed)
    train_w, train_t, val_w, val_t = _split_examples(model.vocab, lines, c, options, rng)

    state = TrainState(
        model.embedding.table,
        model.W1,
        model.W2,
        tanh=cfg.activation == "tanh",
        optimizer=options.optimizer,
        batch_size=options.batch_size,
        momentum=options.momentum,
        weight_decay=options.weight_decay,
    )
    n = len(train_w)
    B = options.batch_size
    per_epoch = -(-n // B)
    total = per_epoch * options.epochs
    history: list[EpochStats] = []
    bar = progress_bar(total, progress)

    def result(weights, kept_epoch: int | None, stopped: str) -> TrainResult:
        trained = TinyLM(cfg, model.vocab, *weights)
        return TrainResult(
            trained,
            list(history),
            options,
            n,
            len(val_w),
            state.steps,
            corpus,
            kept_epoch=kept_epoch,
            stopped=stopped,
        )

    patience = options.patience if _watches(options, len(val_w)) else None
    best = _Best()
    stopped = "epochs"
    step = 0
    lr = learning_rate(options, 1, total)
    # Divergence: a batch loss far above a uniform guess's (log V) or the starting
    # model's (the first step's loss, computed before any update), or 1 for a tiny V.
    max_loss = None
    try:
        for epoch in range(1, options.epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(n)
            losses = np.empty(per_epoch)
            for i in range(per_epoch):
                idx = order[i * B : (i + 1) * B]
                step += 1
                lr = learning_rate(options, step, total)
                try:
                    losses[i] = state.step(train_w[idx], train_t[idx], lr, max_loss=max_loss)
                except Diverged as exc:
                    raise TrainingDiverged(
                        f"training stopped at step {step} (epoch {epoch}): {exc}; the weights "
                        f"from before that step are kept "
                        f"(try a smaller learning rate than {options.lr:g})",
                        step,
                        epoch,
                        result((state.E, state.W1, state.W2), None, "diverged"),
                    ) from None
                if max_loss is None:
                    max_loss = DIVERGED_FACTOR * max(math.log(cfg.vocab_size), losses[i], 1.0)
                if bar is not None:
                    bar.update(1)
            stepping = time.perf_counter() - start
            train_loss = float(losses.mean())
            val_loss = state.loss(val_w, val_t) if len(val_w) else None
            stats = EpochStats(
                epoch=epoch,
                steps=step,
                train_loss=train_loss,
                train_perplexity=_perplexity(train_loss),
                val_loss=val_loss,
                val_perplexity=None if val_loss is None else _perplexity(val_loss),
                lr=lr,
                seconds=time.perf_counter() - start,
                tokens_per_second=n / stepping if stepping > 0 else float("inf"),
            )
            history.append(stats)
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}")
            if on_epoch is not None:
                on_epoch(stats)
            if patience is not None:
                best.see(stats, state)
                if epoch < options.epochs and epoch - best.epoch >= patience:
                    stopped = "patience"
                    break
    finally:
        if bar is not None:
            bar.close()
    if patience is not None and best.weights is not None:
        return result(best.weights, best.epoch, stopped)
    return result((state.E, state.W1, state.W2), len(history), stopped)


def _watches(options: TrainOptions, val_examples: int) -> bool:
    """Early stopping watches the validation loss, when there is one to watch."""
    return options.patience is not None and val_examples > 0


class _Best:
    """The epoch with the lowest validation loss so far, and a copy of its weights."""

    def __init__(self):
        self.epoch = 0  # none yet: a NaN or infinite loss is never the best
        self.loss = math.inf
        self.weights: tuple[np.ndarray, ...] | None = None

    def see(self, stats: EpochStats, state) -> None:
        """Remember ``stats``'s epoch if its validation loss is the lowest so far."""
        if stats.val_loss is not None and stats.val_loss < self.loss:
            self.epoch, self.loss = stats.epoch, stats.val_loss
            self.weights = (state.E.copy(), state.W1.copy(), state.W2.copy())


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def train(
    text: str | None = None,
    *,
    dim: int = 16,
    context: int = 3,
    hidden: int = 32,
    activation: str | None = None,
    dtype: str = "float64",
    min_count: int = 1,
    options: TrainOptions | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    corpus: str | None = None,
) -> TrainResult:
    """Build a vocabulary from ``text``, start from random weights and train.

    Parameters
    ----------
    text : str, optional
        The corpus; the built-in Spanish corpus when None.
    dim, context, hidden : int
        d, c and h of the new model.
    activation : {None, "tanh"}
        The hidden layer's activation (:class:`TinyLMConfig`).
    dtype : {"float64", "float32"}
    min_count : int, default 1
        Words seen fewer times become ``<unk>`` (:meth:`Vocab.from_text`).
    options, progress, on_epoch
        As in :func:`fit`; ``options.seed`` also seeds the initial weights.
    corpus : str, optional
        A name for the corpus, kept in the result.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        An empty corpus, sizes that would need more memory than the machine has
        (:func:`training_memory`, checked before the model is made), or as :func:`fit`
        raises.
    TrainingDiverged
        As :func:`fit`.

    Examples
    --------
    >>> result = train(options=TrainOptions(epochs=30, seed=0))      # doctest: +SKIP
    >>> result.model.vocab[int(result.model.logits("el cielo es").argmax())]  # doctest: +SKIP
    'azul'
    """
    options = TrainOptions() if options is None else options
    if text is None:
        text = builtin_text()
        corpus = "built-in corpus_es.txt" if corpus is None else corpus
    if not corpus_lines(text):
        raise ValueError("the corpus is empty: it has no words to learn from")
    vocab = Vocab.from_text("\n".join(corpus_lines(text)), min_count=min_count)
    config = TinyLMConfig(
        vocab_size=len(vocab),
        dim=dim,
        context=context,
        hidden=hidden,
        dtype=dtype,
        activation=activation,
    )
    _check_memory(config, options)
    model = TinyLM.random(config, vocab, seed=options.seed)
    return fit(model, text, options, progress=progress, on_epoch=on_epoch, corpus=corpus or "")
