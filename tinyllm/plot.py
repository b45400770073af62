"""Figures (optional: ``pip install 'tinyllm-cython[plot]'`` installs matplotlib).

- :func:`embeddings`: every token's embedding as a labelled point, like the figure of
  part 3 of the blog. For the blog's model the axes are "Noun" and "Adjective"
  ("Sustantivo" and "Adjetivo" in Spanish, as in the post) from -1 to 1 (wider if
  training moved a point outside); for another 2-D model, its two dimensions; for
  d > 2 the first two principal components of the embedding table (centred; the axis
  labels say how much of the variance each one explains); for d = 1 the single
  dimension.
- :func:`loss_curve`: training and validation loss per epoch, with the epoch whose
  weights training kept marked.

Both draw on a matplotlib ``Figure`` with the Agg canvas (no pyplot state, no window)
and write a PNG through :func:`tinyllm._files.atomic_writer`: the destination is
checked before drawing (a directory, FIFO or device is refused) and replaced in one
rename, so a failed or interrupted plot leaves any previous file as it was.
:func:`embeddings_figure` and :func:`loss_figure` return that ``Figure`` instead, for
a notebook to show (``notebooks/``) or a caller to draw on further.

Titles, axis labels and legends are in the language of :mod:`tinyllm._i18n` (the
locale's, or the command line's ``--lang``), as the displays are.
"""

from __future__ import annotations

import numpy as np

from tinyllm._arrays import checked_int
from tinyllm._files import atomic_writer
from tinyllm._i18n import _

__all__ = [
    "PLOT_MISSING",
    "require_matplotlib",
    "embeddings",
    "embeddings_figure",
    "embedding_coordinates",
    "loss_curve",
    "loss_figure",
]

PLOT_MISSING = (
    "plotting needs matplotlib, which is not installed: "
    "pip install 'tinyllm-cython[plot]' (or pip install matplotlib)"
)


def require_matplotlib():
    """Import matplotlib's Figure and Agg canvas, or raise ImportError with the install command."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(PLOT_MISSING) from None
    return Figure, FigureCanvasAgg


def _is_blog_model(model) -> bool:
    from tinyllm import blog

    return model.vocab.tokens == blog.TOKENS and model.config.dim == 2


def embedding_coordinates(model) -> tuple[np.ndarray, str, str]:
    """The 2-D points to draw, one row per token, and the two axis labels."""
    table = np.asarray(model.embedding.table, dtype=np.float64)
    d = table.shape[1]
    if _is_blog_model(model):
        return table, _("Noun"), _("Adjective")
    if d == 1:
        return np.column_stack([table[:, 0], np.zeros(len(table))]), _dimension(1), ""
    if d == 2:
        return table, _dimension(1), _dimension(2)
    centred = table - table.mean(axis=0)
    _u, s, vt = np.linalg.svd(centred, full_matrices=False)
    share = s**2 / max(float((s**2).sum()), 1e-300)
    # Fix each component's sign (the largest loading positive): the same figure every time.
    signs = np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])
    signs[signs == 0] = 1
    points = centred @ (vt[:2].T * signs)
    component = _("principal component {i} ({share:.0%} of the variance)")
    return (
        points,
        component.format(i=1, share=share[0]),
        component.format(i=2, share=share[1]),
    )


def _dimension(i: int) -> str:
    return _("dimension {i}").format(i=i)


def embeddings_figure(model, max_labels: int = 60, title: str | None = None):
    """``model``'s embeddings as labelled points: a matplotlib ``Figure`` (not saved).

    In a notebook, the figure shows where it is the cell's last expression. Parameters
    as in :func:`embeddings`, which draws this figure and saves it.

    Raises
    ------
    ValueError
        ``max_labels`` is negative.
    ImportError
        matplotlib is not installed (the message says how to install it).
    """
    max_labels = checked_int("max_labels", max_labels, 0)
    Figure, Canvas = require_matplotlib()
    points, xlabel, ylabel = embedding_coordinates(model)
    n = min(len(points), max_labels)
    fig = Figure(figsize=(7, 6) if n > 10 else (5, 5))
    Canvas(fig)
    ax = fig.add_subplot()
    ax.scatter(points[:n, 0], points[:n, 1], s=18, color="tab:blue")
    for token, (x, y) in zip(model.vocab.tokens[:n], points[:n]):
        ax.annotate(token, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if _is_blog_model(model):
        # The post's square from -1 to 1, made larger (and kept square) when a trained
        # copy of the blog's model has moved a point outside it.
        limit = max(1.0, 1.1 * float(np.abs(points).max()))
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
    ax.axvline(0, color="0.8", linewidth=0.8, zorder=0)
    shown = "" if n == len(points) else " " + _("({shown} of {total} tokens)")
    ax.set_title((title or _("Embeddings")) + shown.format(shown=n, total=len(points)))
    fig.tight_layout()
    return fig


def embeddings(model, path, max_labels: int = 60, title: str | None = None) -> None:
    """Draw ``model``'s embeddings as labelled points and save a PNG at ``path``.

    Parameters
    ----------
    model : TinyLM
    path : str, bytes or path-like
        The PNG to write (replaced atomically if it exists).
    max_labels : int, default 60
        Only the first ``max_labels`` tokens are drawn, each with its label (a
        trained vocabulary is ordered by frequency, so these are the most common
        words); the title says how many of all when that is not all of them.
    title : str, optional

    Raises
    ------
    ValueError
        ``max_labels`` is negative.
    OSError
        ``path`` cannot be written (see :func:`tinyllm._files.atomic_writer`).
    """
    max_labels = checked_int("max_labels", max_labels, 0)
    require_matplotlib()
    with atomic_writer(path) as f:
        embeddings_figure(model, max_labels, title).savefig(f, format="png", dpi=120)


def loss_curve(history, path, title: str | None = None, kept_epoch: int | None = None) -> None:
    """Plot training (and validation) loss per epoch from a list of :class:`EpochStats`.

    Parameters
    ----------
    history : list of EpochStats
    path : str, bytes or path-like
        The PNG to write (replaced atomically if it exists).
    title : str, optional
        Default "Training".
    kept_epoch : int, optional
        The epoch whose weights were kept (:attr:`TrainResult.kept_epoch`): a dashed
        vertical line, its losses circled, the legend giving its validation loss.

    Raises
    ------
    ValueError
        ``kept_epoch`` is not one of the epochs of ``history``.
    """
    require_matplotlib()
    _kept_stats(history, kept_epoch)  # a bad kept_epoch fails before the file is touched
    with atomic_writer(path) as f:
        loss_figure(history, title, kept_epoch).savefig(f, format="png", dpi=120)


def _kept_stats(history, kept_epoch):
    """The EpochStats of ``kept_epoch`` (None for None); ValueError if it has none."""
    if kept_epoch is None:
        return None
    kept_epoch = checked_int("kept_epoch", kept_epoch, 1)
    for stats in history:
        if stats.epoch == kept_epoch:
            return stats
    raise ValueError(f"kept_epoch {kept_epoch} is not an epoch of the history")


def loss_figure(history, title: str | None = None, kept_epoch: int | None = None):
    """Training (and validation) loss per epoch: a matplotlib ``Figure`` (not saved).

    Parameters as in :func:`loss_curve`, which draws this figure and saves it.
    """
    kept = _kept_stats(history, kept_epoch)
    Figure, Canvas = require_matplotlib()
    fig = Figure(figsize=(6, 4))
    Canvas(fig)
    ax = fig.add_subplot()
    epochs = [h.epoch for h in history]
    ax.plot(epochs, [h.train_loss for h in history], marker="o", markersize=3, label=_("training"))
    has_val = any(h.val_loss is not None for h in history)
    if has_val:
        ax.plot(
            epochs, [h.val_loss for h in history], marker="o", markersize=3, label=_("validation")
        )
    if kept is not None:
        if kept.val_loss is None:
            label = _("kept: epoch {epoch}").format(epoch=kept.epoch)
        else:
            label = _("kept: epoch {epoch} (validation {loss:.3f})").format(
                epoch=kept.epoch, loss=kept.val_loss
            )
        ax.axvline(kept.epoch, color="0.35", linestyle="--", linewidth=1, label=label)
        losses = [kept.train_loss] + ([kept.val_loss] if kept.val_loss is not None else [])
        ax.plot(
            [kept.epoch] * len(losses),
            losses,
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="0.2",
        )
    ax.set_xlabel(_("epoch"))
    ax.set_ylabel(_("cross-entropy (nats per token)"))
    ax.set_title(_("Training") if title is None else title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
