"""The ``tinyllm`` command line.

    tinyllm explain  "el cielo es"                 the pipeline stage by stage
    tinyllm generate "el cielo es" -n 10 --seed 0  sample a continuation
    tinyllm sample   "el cielo es" --draws 20      the notebooks' experiment
    tinyllm train [CORPUS.txt] --out model.npz     learn a model from text
    tinyllm quantize model.npz --to int8 --out q.npz   store W2 in 16 or 8 bits
    tinyllm plot embeddings --out emb.png          the embeddings as labelled points
    tinyllm bench [--full] [--json FILE]           tinyllm against NumPy, PyTorch, Python

explain, generate and sample use the blog's model, or a trained one with
``--model FILE``. Errors in what the user typed (unknown words, short prompts, bad
options, options that do not apply, sizes that would not fit in memory, unreadable or
unwritable files, a missing optional dependency) and a training run that diverges
print one line to stderr and exit with status 2, without a traceback.

The streams are whatever the user brings:

- a reader that goes away (``tinyllm generate ... | head -c 100``) ends the command
  quietly with status 0: the output was for that reader alone. When only the reader of
  stderr goes away (``tinyllm train ... 2>&1 | head -5``) the log lines are dropped and
  the command carries on: train still saves its model;
- an encoding that cannot show a character (``PYTHONIOENCODING=ascii``, cp1252
  consoles) gets a plain one instead: ``█`` -> ``#``, ``í`` -> ``i``, ``—`` -> ``-``,
  ``…`` -> ``...``; JSON is then written with ``\\u`` escapes, so it stays exact;
- Ctrl-C (SIGINT) ends any command at its next chunk of work with one line,
  ``tinyllm <command>: interrupted``, and status 130; files are left as they were
  (an interrupted train saves nothing).

``generate`` writes its tokens as they are drawn, chunk by chunk, in memory that does
not grow with ``-n``.

Every message is in the user's language (:mod:`tinyllm._i18n`): ``--lang en|es``,
before or after the command, else the locale's; help and usage errors too, since
``--lang`` is read before the rest of the line (written in full: an abbreviation such
as ``--lan es`` is only seen by argparse, after the help is built). Errors raised with
English text by argparse and the library are translated here from the templates of
KNOWN_MESSAGES; one that matches none is shown as it is.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tinyllm import _i18n, blog, display
from tinyllm._arrays import check_memory
from tinyllm._compiled import __all__ as _COMPILED_FUNCTIONS
from tinyllm._compiled import as_generator
from tinyllm._console import ReaderGone, emit, guarded_streams, point_at_devnull, say, to_json
from tinyllm._i18n import N_, _, ngettext
from tinyllm._version import __version__
from tinyllm.display import BAR_WIDTH
from tinyllm.display import bar as _bar
from tinyllm.display import number as _num
from tinyllm.display import top_positions as _top
from tinyllm.display import vector as _vec
from tinyllm.model import Draws, TinyLM
from tinyllm.vocab import UnknownTokenError

GENERATE_CHUNK = 4096  # generate: most tokens per call of the compiled loop
CHUNK_SECONDS = 0.05  # generate: chunks are sized to take about this long (output flows,
# Ctrl-C is seen between chunks)
SAMPLE_CHUNK = 1 << 16  # sample: draws per call; only their counts are kept

# What --json holds per generated token or drawn token (lists of tokens and positions,
# the continuation, the JSON text), plus a few copies of the longest token: an estimate
# for refusing sizes that cannot fit, measured at about 60 and 30 bytes.
JSON_BYTES_PER_TOKEN = 120
JSON_BYTES_PER_DRAW = 60


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------
def _stages(stages: Sequence[tuple[str, str]], gap: int) -> list[str]:
    """``1. name   value`` per stage, the values in one column, ``gap`` spaces after the
    longest name."""
    heads = [f"{step}. {name}" for step, (name, _value) in enumerate(stages, 1)]
    width = max(len(head) for head in heads) + gap
    return [f"{head:<{width}}{value}" for head, (_name, value) in zip(heads, stages)]


def format_part1(r: blog.Part1Result) -> str:
    w1, w2, w3 = r.weights
    x1, x2, x3 = r.ids
    lines = [
        _("Part 1 — relations and functions: {formula}").format(
            formula="y = x1*w1 - x2*w2 + x3*w3"
        ),
        "",
        *_stages(
            [
                (display.label("words"), "  ".join(r.words)),
                (display.label("ids"), f"x = ({x1}, {x2}, {x3})"),
                ("w", f"({_num(w1)}, {_num(w2)}, {_num(w3)})"),
                ("y", f"{x1}*{_num(w1)} - {x2}*{_num(w2)} + {x3}*{_num(w3)} = {_num(r.y)}"),
            ],
            gap=3,
        ),
        "",
        _("y is the id of: {word}").format(word=r.word)
        if r.word
        else _("y is not the id of any word (the post's first problem)"),
    ]
    return "\n".join(lines)


def format_part2(r: blog.Part2Result) -> str:
    tw = max(len(t) for t in r.tokens)
    lines = [
        _("Part 2 — creativity and probabilities: f1, f2, normalise by the sum"),
        "",
        *_stages(
            [
                (display.label("words"), "  ".join(r.words)),
                (display.label("ids"), "  ".join(str(i) for i in r.ids)),
                ("f1", f"{_num(r.f1)}   (x1*1.0 + x2*0.5 + x3*1.5)"),
                (display.label("logits"), f"{_vec(r.logits)}   (f2 = f1 * w_f2)"),
                (
                    "v/sum(v)",
                    "(" + _("sum {total}").format(total=_num(float(r.logits.sum()))) + "):",
                ),
            ],
            gap=2,
        ),
    ]
    for token, p in zip(r.tokens, r.probs):
        lines.append(f"     {token:<{tw}}  {p:.6f}  {_bar(float(p))}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
def format_epoch(stats) -> str:
    """train's log line for one epoch."""
    val = (
        ""
        if stats.val_loss is None
        else "  "
        + _("val loss {loss:.4f} (perplexity {perplexity:7.2f})").format(
            loss=stats.val_loss, perplexity=stats.val_perplexity
        )
    )
    return _(
        "epoch {epoch:>3}  loss {loss:.4f} (perplexity {perplexity:7.2f}){val}  lr {lr:.3g}  "
        "{speed:,.0f} tokens/s"
    ).format(
        epoch=stats.epoch,
        loss=stats.train_loss,
        perplexity=stats.train_perplexity,
        val=val,
        lr=stats.lr,
        speed=stats.tokens_per_second,
    )


def _cmd_train(args: argparse.Namespace) -> str:
    from tinyllm import corpus, io, train
    from tinyllm._files import check_outputs

    # Everything that can be checked is checked before training: nothing is lost.
    if args.momentum is not None and args.optimizer != "sgd":
        raise ValueError(
            _("--momentum applies to --optimizer sgd only, not {optimizer}").format(
                optimizer=args.optimizer
            )
        )
    momentum = train.TrainOptions.momentum if args.momentum is None else args.momentum
    if args.patience and args.val_fraction == 0:
        raise ValueError(
            _(
                "--patience needs validation examples, and --val-fraction 0 holds out none "
                "(--patience 0 turns early stopping off)"
            )
        )
    patience = train.TrainOptions.patience if args.patience is None else args.patience or None
    options = train.TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=momentum,
        schedule=args.schedule,
        warmup=args.warmup,
        val_fraction=args.val_fraction,
        seed=args.seed,
        patience=patience,
        weight_decay=args.weight_decay,
    )
    if args.plot_loss is not None:
        from tinyllm.plot import require_matplotlib

        require_matplotlib()
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    if progress:
        train.require_tqdm()  # ImportError now if tqdm is missing
    check_outputs(
        {"--out": args.out, "--plot-loss": args.plot_loss}, inputs={"the corpus": args.corpus}
    )
    if args.corpus is None:
        text, name = corpus.builtin_text(), corpus.BUILTIN_NAME
        shown = _("built-in {file}").format(file="corpus_es.txt")  # the saved name stays
    else:
        text, name = corpus.read_text(args.corpus), os.path.basename(args.corpus)
        shown = name
    activation = None if args.activation == "none" else args.activation
    quiet = args.quiet

    def on_epoch(stats) -> None:
        if not quiet:
            print(format_epoch(stats), file=sys.stderr, flush=True)

    result = train.train(
        text,
        dim=args.dim,
        context=args.context,
        hidden=args.hidden,
        activation=activation,
        dtype=args.dtype,
        min_count=args.min_count,
        options=options,
        progress=progress,
        on_epoch=on_epoch,
        corpus=name,
    )
    io.save_model(result.model, args.out, training=result.to_dict())
    if args.plot_loss:
        from tinyllm.plot import loss_curve

        loss_curve(
            result.history,
            args.plot_loss,
            title=f"tinyllm train: {shown}",
            kept_epoch=result.kept_epoch,
        )
    model = result.model
    examples = ngettext("{n} example", "{n} examples", result.train_examples)
    steps = ngettext("{n} step", "{n} steps", result.steps)
    lines = [
        _("trained {model} on {corpus}: {examples} ({held_out} held out), {steps}").format(
            model=repr(model),
            corpus=shown,
            examples=examples.format(n=result.train_examples),
            held_out=result.val_examples,
            steps=steps.format(n=result.steps),
        ),
        *_kept_lines(result),
        _("saved to {path}").format(path=args.out),
    ]
    if args.plot_loss:
        lines.append(_("loss curve: {path}").format(path=args.plot_loss))
    probe = (
        " ".join(model.vocab.tokens[p] for p in model.encode_prompt(blog.PROMPT))
        if _knows(model, blog.PROMPT)
        else None
    )
    if probe is not None:
        probs = model.next_token_probs(blog.PROMPT)
        best = int(probs.argmax())
        lines.append(
            _('after "{prompt}" it predicts: {token} ({p:.1%})').format(
                prompt=blog.PROMPT, token=model.vocab[best], p=probs[best]
            )
        )
    return "\n".join(lines)


def _kept_lines(result) -> list[str]:
    """Why training ended and which epoch's weights were kept, with its losses."""
    kept = result.kept
    lines = []
    if result.stopped == "patience":
        patience = result.options.patience
        lines.append(
            ngettext(
                "stopped early after epoch {epoch}: no lower validation loss in {n} epoch",
                "stopped early after epoch {epoch}: no lower validation loss in {n} epochs",
                patience,
            ).format(epoch=result.history[-1].epoch, n=patience)
        )
    why = _("the lowest validation loss") if result.early_stopping else _("the last")
    val = (
        ""
        if kept.val_loss is None
        else _(", validation {loss:.4f} (perplexity {perplexity:.2f})").format(
            loss=kept.val_loss, perplexity=kept.val_perplexity
        )
    )
    lines.append(
        _("kept epoch {epoch} ({why}): loss {loss:.4f} (perplexity {perplexity:.2f}){val}").format(
            epoch=kept.epoch,
            why=why,
            loss=kept.train_loss,
            perplexity=kept.train_perplexity,
            val=val,
        )
    )
    return lines


def _knows(model: TinyLM, prompt: str) -> bool:
    """True when every word of ``prompt`` is a real token of the model (not <unk>)."""
    words = model.vocab.split(prompt)
    return len(words) >= model.config.context and all(w in model.vocab for w in words)


def _cmd_quantize(args: argparse.Namespace) -> str:
    from tinyllm import io
    from tinyllm._files import check_outputs

    check_outputs({"--out": args.out}, inputs={"MODEL": args.model})
    model = TinyLM.load(args.model)
    quantized = model.quantize(args.to)
    # The training facts stay with the weights they describe.
    io.save_model(quantized, args.out, training=io.load_metadata(args.model).get("training"))
    w2_before = model.nbytes - model.embedding.table.nbytes - model.W1.nbytes
    w2_after = quantized.nbytes - quantized.embedding.table.nbytes - quantized.W1.nbytes
    return _(
        "wrote {path}: W2 in {format} ({w2_before} -> {w2_after}), all weights {before} -> {after}"
    ).format(
        path=args.out,
        format=quantized.weight_format,
        w2_before=display.byte_size(w2_before),
        w2_after=display.byte_size(w2_after),
        before=display.byte_size(model.nbytes),
        after=display.byte_size(quantized.nbytes),
    )


def _add_quantize_parser(commands) -> None:
    from tinyllm.formats import PACKED_FORMATS

    quantize = commands.add_parser(
        "quantize",
        help=_("store a model's W2 in 16 or 8 bits"),
        description=_(
            "Write MODEL with W2 stored in --to: float16 or bfloat16 (half the bytes of "
            "float32) or int8 with one scale per token (a quarter). The embeddings and W1 "
            "become float32. What each format costs in accuracy is in the README."
        ),
    )
    quantize.add_argument("model", metavar="MODEL", help=_("a model saved by 'tinyllm train'"))
    quantize.add_argument("--to", required=True, choices=PACKED_FORMATS, help=_("the format"))
    quantize.add_argument(
        "--out", required=True, metavar=_("FILE"), help=_("where to save the quantized model")
    )
    quantize.set_defaults(run=_cmd_quantize)


def _cmd_plot(args: argparse.Namespace) -> str:
    from tinyllm import plot
    from tinyllm._files import check_outputs

    plot.require_matplotlib()
    check_outputs({"--out": args.out}, inputs={"--model": args.model})
    model = _load_model(args)
    plot.embeddings(
        model,
        args.out,
        max_labels=args.max_labels,
        title=_("The blog's embeddings")
        if args.model is None
        else _("Embeddings: {model}").format(model=args.model),
    )
    return _("wrote {path}").format(path=args.out)


#: The largest count an option takes: what a 64-bit integer holds (no array, loop or
#: file could use more). Seeds have no limit.
MAX_COUNT = 2**63 - 1


def _integer(minimum: int | None = None, maximum: int | None = MAX_COUNT):
    """An argparse type: an integer, <= ``maximum`` and >= ``minimum`` when given.

    Most counts' minimum is checked by the library, with the same wording ("must be
    >= 0, got -1"); a minimum here is for those it does not check.
    """

    def parse(text) -> int:
        text = str(text)
        try:
            value = int(text)
        except ValueError:
            digits = text.strip().lstrip("+-").isdigit()  # more digits than int() reads
            problem = (
                _("is too long a number, got {value}")
                if digits
                else _("must be an integer, got {value}")
            )
            raise argparse.ArgumentTypeError(problem.format(value=_shown(text))) from None
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                _("must be at most {maximum}, got {value}").format(
                    maximum=maximum, value=_shown(text)
                )
            )
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(
                _("must be >= {minimum}, got {value}").format(minimum=minimum, value=value)
            )
        return value

    return parse


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _default(value) -> str:
    """ "default VALUE", for a help text."""
    return _("default {value}").format(value=value)


def _add_train_parser(commands) -> None:
    from tinyllm.train import OPTIMIZERS, SCHEDULES, TrainOptions

    d = TrainOptions()
    train = commands.add_parser(
        "train",
        help=_("learn embeddings and weights from text"),
        description=_(
            "Train a model on CORPUS.txt (the built-in Spanish corpus when no file is "
            "given): a vocabulary from the text (lowercase, words and punctuation), "
            "random weights from --seed, then minibatch gradient descent on the "
            "next-token cross-entropy. Prints loss and perplexity per epoch (stderr) "
            "and saves the model to --out."
        ),
    )
    train.add_argument(
        "corpus",
        nargs="?",
        default=None,
        metavar="CORPUS.txt",
        help=_("UTF-8 text, one sentence per line, # comments (default: built-in)"),
    )
    train.add_argument(
        "--out",
        default="model.npz",
        metavar=_("FILE"),
        help=_("where to save the model (default model.npz)"),
    )
    train.add_argument(
        "--dim", type=_integer(), default=16, help=_("d, numbers per embedding (default 16)")
    )
    train.add_argument(
        "--context", type=_integer(), default=3, help=_("c, tokens the model reads (default 3)")
    )
    train.add_argument(
        "--hidden", type=_integer(), default=32, help=_("h, hidden units (default 32)")
    )
    train.add_argument(
        "--activation",
        choices=("none", "tanh"),
        default="none",
        help=_("of the hidden layer (default none, as in the blog)"),
    )
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument(
        "--min-count",
        type=_integer(),
        default=1,
        help=_("words seen fewer times become <unk> (default 1)"),
    )
    train.add_argument("--epochs", type=_integer(), default=d.epochs, help=_default(d.epochs))
    train.add_argument(
        "--batch-size", type=_integer(), default=d.batch_size, help=_default(d.batch_size)
    )
    train.add_argument(
        "--lr",
        type=float,
        default=d.lr,
        help=_("learning rate, > 0 (default {value})").format(value=d.lr),
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    train.add_argument(
        "--momentum",
        type=float,
        default=None,
        help=_("for --optimizer sgd, in [0, 1) (default {value})").format(value=d.momentum),
    )
    train.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help=_("learning-rate schedule (default constant)"),
    )
    train.add_argument(
        "--warmup", type=_integer(), default=d.warmup, help=_("warm-up steps (default 0)")
    )
    train.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=_("share of lines held out for validation (default 0.1)"),
    )
    train.add_argument(
        "--seed",
        type=_integer(maximum=None),
        default=d.seed,
        help=_("seeds everything (default 0)"),
    )
    train.add_argument(
        "--patience",
        type=_integer(0),
        default=None,
        metavar="N",
        help=_(
            "early stopping: stop after N epochs without a lower validation loss and keep "
            "the epoch that had the lowest (default {value}; 0: train every epoch, keep "
            "the last)"
        ).format(value=d.patience),
    )
    train.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        metavar="WD",
        help=_(
            "decoupled weight decay: each step first scales the weights by 1 - lr * WD, "
            "as AdamW (default {value}; 0: off)"
        ).format(value=d.weight_decay),
    )
    train.add_argument(
        "--plot-loss",
        metavar="PNG",
        default=None,
        help=_("also draw the loss curve (needs matplotlib)"),
    )
    train.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help=_("progress bar: auto = on a terminal when tqdm is installed"),
    )
    train.add_argument("-q", "--quiet", action="store_true", help=_("no per-epoch lines"))
    train.set_defaults(run=_cmd_train)


def _add_plot_parser(commands) -> None:
    plot = commands.add_parser(
        "plot",
        help=_("draw figures (needs matplotlib)"),
        description=_("Draw a figure as a PNG."),
    )
    figures = plot.add_subparsers(dest="figure", required=True, metavar=_("FIGURE"))
    emb = figures.add_parser(
        "embeddings",
        help=_("the embeddings as labelled points"),
        description=_(
            "Every token's embedding as a labelled point, like the blog's figure: "
            "axes Noun and Adjective for the blog's model, the first two "
            "principal components when d > 2."
        ),
    )
    _add_model_argument(emb)
    emb.add_argument("--out", required=True, metavar="PNG", help=_("the PNG to write"))
    emb.add_argument(
        "--max-labels",
        type=_integer(0),
        default=60,
        help=_("draw at most this many tokens, the most frequent first (default 60)"),
    )
    emb.set_defaults(run=_cmd_plot)


def _add_bench_parser(commands) -> None:
    from tinyllm.bench import command

    bench = commands.add_parser(
        "bench",
        help=_("time tinyllm against NumPy, PyTorch and plain Python here"),
        description=_(command.DESCRIPTION),
    )
    command.add_arguments(bench)
    bench.set_defaults(run=command.command)


def _load_model(args: argparse.Namespace) -> TinyLM:
    """The model of ``--model FILE``, or the blog's."""
    path = getattr(args, "model", None)
    return TinyLM.from_blog() if path is None else TinyLM.load(path)


def _cmd_explain(args: argparse.Namespace) -> str:
    if args.part != 3:
        for option, given in (
            ("--model", args.model is not None),
            ("--temperature", args.temperature is not None),
            ("--html", args.html is not None),
        ):
            if given:
                raise ValueError(
                    _(
                        "--part 1 and --part 2 replay the blog's own models; "
                        "{option} needs --part 3"
                    ).format(option=option)
                )
    if args.part == 1:
        part1 = blog.part1(args.prompt)
        return to_json(part1.to_dict()) if args.json else format_part1(part1)
    if args.part == 2:
        part2 = blog.part2(args.prompt)
        return to_json(part2.to_dict()) if args.json else format_part2(part2)
    if args.html is not None:
        from tinyllm._files import check_outputs, write_text

        check_outputs({"--html": args.html}, inputs={"--model": args.model})
    model = _load_model(args)
    temperature = 1.0 if args.temperature is None else args.temperature
    trace = model.trace(args.prompt, temperature=temperature)
    if args.json:
        return to_json(
            {
                "part": 3,
                **trace.to_dict(),
                "read_as": [trace.tokens[p] for p in trace.positions],
                # The words the vocabulary does not know: the model reads them as <unk>.
                "unknown": [w for w, u in zip(trace.words, trace.unknown) if u],
            }
        )
    title = (
        display.label("part3_title", prompt=args.prompt)
        if args.model is None
        else display.label("model_title", name=args.model, model=repr(model), prompt=args.prompt)
    )
    if args.html is not None:
        write_text(args.html, display.page_html(trace, title, model))
        return _("wrote {path}").format(path=args.html)
    return display.trace_text(trace, title)


@dataclass(frozen=True)
class Tally:
    """``sample``'s draws, counted: each token's count beside the model's probability."""

    prompt: str
    draws: int  # how many
    counts: Counter  # token -> times drawn
    probs: np.ndarray  # (V,) the model's probabilities
    vocab: tuple[str, ...]  # the tokens, in the order of probs
    each: list[str] | None  # every draw in order, when they are few enough to show


def format_draws(tally: Tally) -> str:
    """Each draw as the notebooks print it, then observed frequency beside probability
    (for a large vocabulary: the TOP_TOKENS most likely tokens and the rest together)."""
    lines = [f"{i}: {tally.prompt} {token}" for i, token in enumerate(tally.each or ())]
    n = max(tally.draws, 1)
    order = _top(tally.probs)
    rows = [(tally.vocab[i], tally.counts[tally.vocab[i]], float(tally.probs[i])) for i in order]
    if len(order) < len(tally.vocab):
        count = tally.draws - sum(r[1] for r in rows)
        rest = 1.0 - sum(float(tally.probs[i]) for i in order)
        more = display.label("more_tokens", n=len(tally.vocab) - len(order))
        rows.append((more, count, max(rest, 0.0)))
    tw = max(len(r[0]) for r in rows)
    half = BAR_WIDTH // 2
    heads = [display.label(key) for key in ("token", "count", "observed", "model")]
    lines += [
        "",
        ngettext("{n} draw of the next token:", "{n} draws of the next token:", tally.draws).format(
            n=tally.draws
        ),
        f"  {heads[0]:<{tw}}  {heads[1]:>6}  {heads[2]:<{half + 7}}  {heads[3]}",
    ]
    for token, count, p in rows:
        lines.append(
            f"  {token:<{tw}}  {count:>6}  {count / n:6.4f} "
            f"{_bar(count / n, half):<{half}}  {p:6.4f} {_bar(p, half)}"
        )
    return "\n".join(lines)


def _sampling_options(args: argparse.Namespace, model: TinyLM) -> dict:
    # top_k beyond the vocabulary keeps every token, as top_k = V does.
    top_k = None if args.top_k is None else min(args.top_k, model.config.vocab_size)
    return dict(
        temperature=args.temperature,
        top_k=top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        typical_p=args.typical_p,
        top_n_sigma=args.top_n_sigma,
        min_tokens_to_keep=args.min_tokens_to_keep,
        logit_bias=dict(args.logit_bias) if args.logit_bias else None,
        repetition_penalty=args.repetition_penalty,
        presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty,
        penalty_last_n=None if args.penalty_last_n < 0 else args.penalty_last_n,
        stop=args.stop,
    )


def _check_json_memory(count: int, bytes_each: int, option: str) -> None:
    """--json holds everything it prints: refuse a count whose output cannot fit."""
    check_memory(
        count * bytes_each,
        _("--json with {option} {count}").format(option=option, count=count),
        _(
            "--json holds all of its output; without it the memory does not grow with {option}"
        ).format(option=option),
    )


def _position_chunks(
    model: TinyLM, prompt: str, n: int, options: dict, generator: np.random.Generator
) -> Iterator[list[int]]:
    """The positions of up to ``n`` new tokens after ``prompt``, chunk by chunk.

    The same tokens as one ``model.generate_positions(prompt, n, rng=generator)``: one
    generation, its context and penalty history carried from chunk to chunk. Chunks
    are sized to take about CHUNK_SECONDS (at most GENERATE_CHUNK tokens), so output
    flows and Ctrl-C is seen soon whatever the model's size. The options are checked
    before the first chunk; a stop word ends the chunks early.
    """
    continuation = model.continuation(prompt, n, rng=generator, **options)
    size = min(n, GENERATE_CHUNK, 16)
    while True:  # at least one chunk (empty for n = 0): the first next() checks
        start = time.perf_counter()
        positions = continuation.take(size)
        elapsed = time.perf_counter() - start
        yield positions
        if continuation.done:
            return
        if elapsed < CHUNK_SECONDS / 2:
            size = min(2 * size, GENERATE_CHUNK)
        elif elapsed > 2 * CHUNK_SECONDS:
            size = max(size // 2, 1)


def _text_pieces(model: TinyLM, prompt: str, chunks: Iterable[list[int]]) -> Iterator[str]:
    """The prompt, then each chunk as text, spaced as one decode of the whole
    continuation would space it (the joints too)."""
    vocab = model.vocab
    yield prompt
    last = None
    for positions in chunks:
        if not positions:
            continue
        if last is None:
            text = vocab.decode(positions)
            yield vocab.separator(prompt, vocab[positions[0]]) + text
        else:  # decoded after the previous chunk's last token, then that token cut off
            yield vocab.decode([last, *positions])[len(vocab[last]) :]
        last = positions[-1]


def _cmd_generate(args: argparse.Namespace) -> str | Iterator[str]:
    model = _load_model(args)
    n = args.max_new_tokens
    if args.json:
        longest = max(len(json.dumps(t)) for t in model.vocab.tokens)
        _check_json_memory(n, JSON_BYTES_PER_TOKEN + 3 * longest, "-n")
    generator = as_generator(args.seed, args.command)
    chunks = _position_chunks(model, args.prompt, n, _sampling_options(args, model), generator)
    first = next(chunks)  # bad options fail here, before any output
    chunks = itertools.chain([first], chunks)
    if not args.json:
        return _text_pieces(model, args.prompt, chunks)
    positions = [p for chunk in chunks for p in chunk]
    return to_json(
        {
            "prompt": args.prompt,
            "continuation": model.vocab.decode(positions),
            "tokens": [model.vocab[p] for p in positions],
            "positions": positions,
            "seed": args.seed,
        }
    )


def _cmd_sample(args: argparse.Namespace) -> str:
    model = _load_model(args)
    n = args.draws
    if args.json:
        longest = max(len(json.dumps(t)) for t in model.vocab.tokens)
        _check_json_memory(n, JSON_BYTES_PER_DRAW + 2 * longest, "--draws")
    keep = args.json or n <= args.show_max  # the draws themselves are printed
    generator = as_generator(args.seed, args.command)
    counts: Counter = Counter()
    drawn: list[str] = []
    done = 0
    while True:  # in chunks: memory does not grow with n, and Ctrl-C is seen
        size = min(n - done, SAMPLE_CHUNK)
        part = model.draw_next(args.prompt, size, temperature=args.temperature, rng=generator)
        counts.update(part.tokens)
        if keep:
            drawn += part.tokens
        done += size
        if done >= n:
            break
    if args.json:
        draws = Draws(part.prompt, drawn, part.probs, part.vocab)
        return to_json({**draws.to_dict(), "seed": args.seed})
    return format_draws(
        Tally(part.prompt, n, counts, part.probs, part.vocab, drawn if keep else None)
    )


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar=_("FILE"),
        default=None,
        help=_("a model saved by 'tinyllm train' (default: the blog's model)"),
    )


def _word_bias(text: str) -> tuple[str, float]:
    """``WORD=BIAS`` of --logit-bias, e.g. ``azul=-2`` or ``azul=-inf``.

    A bias of NaN or +inf is refused here, naming the word: the library would name
    the token's position, which the user never typed.
    """
    word, sep, bias = text.rpartition("=")
    if not sep or not word:
        raise argparse.ArgumentTypeError(
            _("expected {metavar}, got {value}").format(metavar=_("WORD=BIAS"), value=repr(text))
        )
    try:
        value = float(bias)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("BIAS must be a number, got {value}").format(value=repr(bias))
        ) from None
    if math.isnan(value) or value == math.inf:
        raise argparse.ArgumentTypeError(
            _("BIAS must be finite, or -inf to ban the word, got {value}").format(value=repr(bias))
        )
    return word, value


def _add_sampling_arguments(parser: argparse.ArgumentParser, filters: bool) -> None:
    parser.add_argument("prompt", help=_('the prompt, e.g. "el cielo es"'))
    _add_model_argument(parser)
    parser.add_argument(
        "--seed",
        type=_integer(maximum=None),
        default=None,
        help=_("seed of the random draws (same seed, same output); default: fresh"),
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help=_("divide the logits by T first; 0 is greedy (default 1)"),
    )
    if filters:
        parser.add_argument(
            "--top-k", type=_integer(), default=None, help=_("keep the k most likely tokens")
        )
        parser.add_argument(
            "--top-p",
            type=float,
            default=None,
            help=_("keep the smallest set of most likely tokens with mass >= p"),
        )
        parser.add_argument(
            "--min-p",
            type=float,
            default=None,
            help=_("keep tokens with probability >= min_p x the largest"),
        )
        parser.add_argument(
            "--typical-p",
            type=float,
            default=None,
            help=_("locally typical sampling: keep the tokens closest to the entropy, mass >= p"),
        )
        parser.add_argument(
            "--top-n-sigma",
            type=float,
            default=None,
            help=_("keep logits within n standard deviations of the largest"),
        )
        parser.add_argument(
            "--min-tokens-to-keep",
            type=_integer(),
            default=1,
            help=_("every filter keeps at least this many tokens (default 1)"),
        )
        parser.add_argument(
            "--repetition-penalty",
            type=float,
            default=1.0,
            help=_("divide (multiply if negative) the logits of recent tokens (default 1: off)"),
        )
        parser.add_argument(
            "--presence-penalty",
            type=float,
            default=0.0,
            help=_("subtract this from the logit of each recent token (default 0)"),
        )
        parser.add_argument(
            "--frequency-penalty",
            type=float,
            default=0.0,
            help=_("subtract this times each recent token's count (default 0)"),
        )
        parser.add_argument(
            "--penalty-last-n",
            type=_integer(-1),
            default=64,
            help=_(
                "how many recent tokens the penalties read, prompt included "
                "(default 64; -1: all, 0: none)"
            ),
        )
        parser.add_argument(
            "--logit-bias",
            type=_word_bias,
            action="append",
            metavar=_("WORD=BIAS"),
            help=_("add BIAS to WORD's logit (-inf bans it); may be repeated"),
        )
        parser.add_argument(
            "--stop",
            action="append",
            metavar=_("WORD"),
            help=_("stop before this word (or words) is generated; may be repeated"),
        )
    parser.add_argument("--json", action="store_true", help=_("print JSON instead of text"))


class _Formatter(argparse.HelpFormatter):
    """argparse's help, with "usage:" in the user's language."""

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """argparse in the user's language, with its errors as one line: ``tinyllm
    <command>: error: <message>``. Every parser and subparser takes ``-h`` and ``--lang``
    (so ``--lang`` may come before or after the command)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        self.add_argument(
            "-h",
            "--help",
            action="help",
            default=argparse.SUPPRESS,
            help=_("show this help message and exit"),
        )
        self.add_argument(
            "--lang",
            choices=_i18n.LANGUAGES,
            default=argparse.SUPPRESS,
            help=_("language of the messages: en or es (default: the locale's, as LANG)"),
        )

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_translated(_one_line(message))}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, its help in the current language (:mod:`tinyllm._i18n`)."""
    parser = _Parser(
        prog="tinyllm",
        description=_("The toy language model of 'Mi camino a entender (por fin) los LLMs'."),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"tinyllm {__version__}",
        help=_("show the version and exit"),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))

    explain = commands.add_parser(
        "explain",
        help=_("show the pipeline stage by stage with its numbers"),
        description=_(
            "Run the blog's model on PROMPT and print every stage: "
            "words, ids, embeddings, x, f1, logits, softmax."
        ),
    )
    explain.add_argument("prompt", help=_('the prompt, e.g. "el cielo es"'))
    explain.add_argument(
        "--part",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help=_("which part of the blog to replay (default: 3)"),
    )
    explain.add_argument(
        "--temperature",
        type=float,
        default=None,
        help=_(
            "divide the logits by T before softmax; 0 is the greedy limit (part 3 only; default 1)"
        ),
    )
    outputs = explain.add_mutually_exclusive_group()
    outputs.add_argument("--json", action="store_true", help=_("print the same as JSON"))
    outputs.add_argument(
        "--html",
        metavar=_("FILE"),
        default=None,
        help=_("write the same as one self-contained HTML page, for a classroom (part 3)"),
    )
    _add_model_argument(explain)
    explain.set_defaults(run=_cmd_explain)

    generate = commands.add_parser(
        "generate",
        help=_("continue a prompt, token by token"),
        description=_(
            "Sample a continuation of PROMPT from the blog's model: each new token "
            "is drawn from softmax(logits / T) after the logit bias, the penalties and "
            "the top-n-sigma, top-k, top-p, min-p and typical-p filters, and the model then "
            "reads the last 3 tokens. The text is written as it is drawn."
        ),
    )
    _add_sampling_arguments(generate, filters=True)
    generate.add_argument(
        "-n",
        "--max-new-tokens",
        type=_integer(),
        default=10,
        help=_("how many tokens to generate (default 10)"),
    )
    generate.set_defaults(run=_cmd_generate)

    sample = commands.add_parser(
        "sample",
        help=_("draw the next token many times and count (the notebooks' experiment)"),
        description=_(
            "Draw the next token after PROMPT --draws times, print each draw, then "
            "each token's observed frequency beside the model's probability."
        ),
    )
    _add_sampling_arguments(sample, filters=False)
    sample.add_argument(
        "--draws", type=_integer(), default=20, help=_("how many draws (default 20)")
    )
    sample.add_argument("--show-max", type=_integer(0), default=100, help=argparse.SUPPRESS)
    sample.set_defaults(run=_cmd_sample)

    _add_train_parser(commands)
    _add_quantize_parser(commands)
    _add_plot_parser(commands)
    _add_bench_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinyllm`` script; returns the exit status.

    0: done, or the reader of stdout went away early (``| head``); 2: an error, one
    line on stderr (usage errors exit with 2 through argparse's SystemExit); 130:
    interrupted (Ctrl-C), one line on stderr. Messages are in the language of
    ``--lang``, else the locale's (:mod:`tinyllm._i18n`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = None
    with guarded_streams(), _i18n.using(_requested_language(argv)):
        try:
            args = build_parser().parse_args(argv)
            command = args.command
            with _i18n.using(getattr(args, "lang", None)):
                return _run(args)
        except KeyboardInterrupt:
            say(command, _("interrupted"))
            return 130
        except ReaderGone:
            point_at_devnull(sys.stdout)
            return 0


def _requested_language(argv: Sequence) -> str | None:
    """The language of ``--lang L`` or ``--lang=L`` (the last, before a lone ``--``), read
    before parsing so that the help and the usage errors are in it too."""
    lang = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            value = argv[i + 1]
        elif isinstance(arg, str) and arg.startswith("--lang="):
            value = arg.partition("=")[2]
        else:
            continue
        if value in _i18n.LANGUAGES:
            lang = value
    return lang


def _run(args: argparse.Namespace) -> int:
    """Run the command and write its output; an error is one line on stderr, status 2."""
    try:
        emit(args.run(args))
    except (ValueError, TypeError, ImportError, OverflowError) as exc:
        say(args.command, f"error: {_error_message(exc)}")
        return 2
    except MemoryError as exc:  # a size the checks let through but the machine could not
        detail = _translated(_one_line(exc)) or _("try smaller sizes")
        say(args.command, f"error: {_('out of memory: {detail}').format(detail=detail)}")
        return 2
    except OSError as exc:  # a file that cannot be read or written
        if exc.strerror and exc.filename:
            detail = f"{_translated(_one_line(exc.strerror))}: {_one_line(exc.filename)}"
        else:
            detail = _translated(_one_line(exc))
        say(args.command, f"error: {detail}")
        return 2
    return 0


# ---------------------------------------------------------------------------
# Errors in the user's language
# ---------------------------------------------------------------------------
#: What argparse and the library say, as it reads in English; the command line shows
#: each translated, its fields as they were (the library's own messages stay English
#: for Python callers). A message that matches none is shown as it is. The first
#: template that matches the whole message wins, so a longer one goes first.
KNOWN_MESSAGES = [
    # argparse
    N_("the following arguments are required: {arguments}"),
    N_("unrecognized arguments: {arguments}"),
    N_("argument {argument}: {message}"),
    N_("invalid choice: {value} (choose from {choices})"),
    N_("invalid {type} value: {value}"),
    N_("expected one argument"),
    N_("not allowed with argument {argument}"),
    N_("ambiguous option: {option} could match {matches}"),
    N_("ignored explicit argument {value}"),
    # numbers out of range
    N_("{name} must be finite and >= {minimum}, got {value}"),
    N_("{name} must be finite and > {minimum}, got {value}"),
    N_("{name} must be finite, got {value}"),
    N_("{name} must be >= {minimum}, got {value}"),
    N_("{name} must be at most {maximum}, got {value}"),
    N_("{name} must be in {interval}, got {value}"),
    N_("{name}: position {position} is out of range for {n} tokens"),
    N_("an rng seed"),
    N_("the learning rate"),
    N_("the weight decay"),
    # prompts
    N_("the prompt has {n} token; this model reads {context}, so it needs at least {context}"),
    N_("the prompt has {n} tokens; this model reads {context}, so it needs at least {context}"),
    N_("parts 1 and 2 of the blog read exactly 3 words, the prompt has {n}"),
    # generation: the logit bias, the penalties and the stop words
    N_(
        "every logit of token {token} is -inf after logit_bias and the penalties; "
        "at least one token must be allowed"
    ),
    N_(
        "a logit of token {token} is +inf after logit_bias and the penalties; "
        "use smaller biases or penalties"
    ),
    N_("the logits of token {token} are not finite: the model's weights overflow the float range"),
    N_("stop: {text} holds no word"),
    # files
    N_("no such model file: {path}"),
    N_("permission denied reading the model file"),
    N_("{path} is not a tinyllm model file: {reason}"),
    N_("{path} does not hold a consistent tinyllm model: {reason}"),
    N_("the file is empty"),
    N_("not a zip archive"),
    N_("the zip archive is corrupt or truncated ({reason})"),
    N_("it holds a single .npy array, not a model archive"),
    N_("the archive has no meta entry"),
    N_("{path} is {kind}, not a model file"),
    N_("{path} is {kind}, not a regular file: refusing to replace it"),
    N_("a directory"),
    N_("a FIFO (named pipe)"),
    N_("a socket"),
    N_("a character device"),
    N_("a block device"),
    N_("{name}: the path is empty (give a file name)"),
    N_("model file"),
    N_("{name} and {other} are the same file ({path}): refusing to overwrite an input"),
    N_("{name} and {other} are the same file ({path}): give each output its own name"),
    N_("the corpus"),
    N_("cannot write there ({reason})"),
    N_("its folder does not exist"),
    N_("No such file or directory"),
    N_("Permission denied"),
    N_("Is a directory"),
    N_("Not a directory"),
    N_("No space left on device"),
    N_("Read-only file system"),
    N_("File name too long"),
    N_("Too many levels of symbolic links"),
    # sizes
    N_("{name} would need {size} of memory; this machine has {total} ({reason})"),
    N_("{name} would need {size} of memory; this machine has {total}"),
    N_("training ({details})"),
    # training
    N_("the corpus is empty: it has no words to learn from"),
    N_("the corpus has {n} token; a context of {context} needs at least {minimum}"),
    N_("the corpus has {n} tokens; a context of {context} needs at least {minimum}"),
    N_(
        "training stopped at step {step} (epoch {epoch}): {reason}; the weights from before "
        "that step are kept (try a smaller learning rate than {lr})"
    ),
    N_("the loss is {loss}, above {limit}"),
    N_("the loss is {loss}"),
    N_("a gradient or an updated weight is not finite"),
    # weight formats
    N_(
        "a weight of magnitude {value} does not fit in float16 (largest {largest}); "
        "use bfloat16 or int8"
    ),
    N_("a weight of magnitude {value} does not fit in bfloat16 (it rounds to infinity)"),
    N_("its weight format is {format}; this tinyllm reads {formats}"),
    N_("{key} is {dtype}, W2 in {format} is stored as {stored}"),
    N_("int8 values must be in [-127, 127], got -128"),
    N_("int8 scales must be finite and > 0"),
    N_("{format} values contain NaN or infinite values"),
    # optional dependencies
    N_(
        "plotting needs matplotlib, which is not installed: "
        "pip install 'tinyllm-cython[plot]' (or pip install matplotlib)"
    ),
    N_(
        "the progress bar needs tqdm, which is not installed: "
        "pip install 'tinyllm-cython[progress]' (or pip install tqdm)"
    ),
]

#: Fields that hold a message of their own (translated in turn); the others (numbers,
#: paths, words, option names) are shown as they are.
_NESTED = {"message", "name", "other", "kind", "reason"}


def _error_message(exc: BaseException) -> str:
    """The one line that says what went wrong, in the user's language."""
    if isinstance(exc, UnknownTokenError):  # its parts are known: no need to match
        word = repr(exc.word)
        if not exc.suggestions:
            return _("unknown word {word}").format(word=word)
        choices = functools.reduce(
            lambda a, b: _("{choices} or {choice}").format(choices=a, choice=b),
            [repr(s) for s in exc.suggestions],
        )
        return _("unknown word {word}; did you mean {choices}?").format(word=word, choices=choices)
    return _translated(_one_line(exc))


def _translated(message: str) -> str:
    """``message`` in the user's language, if it is one of KNOWN_MESSAGES."""
    if _i18n.language() == "en":
        return message
    for template in KNOWN_MESSAGES:
        match = _pattern(template).fullmatch(message)
        if match:
            fields = {
                name: _translated(value) if name in _NESTED else value
                for name, value in match.groupdict().items()
            }
            return _(template).format(**fields)
    return message


@functools.cache
def _pattern(template: str) -> re.Pattern:
    """What ``template.format(...)`` gives, as a regular expression with one group per
    field (a path takes the longest match: it may hold any text)."""
    pattern, seen = "", set()
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is None:
            continue
        if name in seen:
            pattern += f"(?P={name})"
        else:
            pattern += f"(?P<{name}>.+)" if name == "path" else f"(?P<{name}>.+?)"
            seen.add(name)
    return re.compile(pattern, re.DOTALL)


# "softmax: ", "TrainState.step: ", "generate: ": the name of the function that raised,
# which means nothing to whoever typed the command.
_INTERNAL_PREFIX = re.compile(
    r"^(?:(?:{})(?:\.\w+)*: )+".format(
        "|".join(sorted({*_COMPILED_FUNCTIONS, "generate", "draw_next"}))
    )
)


def _one_line(message) -> str:
    """``message`` on one line, without the name of the internal function that raised."""
    return _INTERNAL_PREFIX.sub("", " ".join(str(message).split()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
