"""The ``tinyllm`` command line.

    tinyllm explain  "el cielo es"                 the pipeline stage by stage
    tinyllm generate "el cielo es" -n 10 --seed 0  sample a continuation
    tinyllm sample   "el cielo es" --draws 20      the notebooks' experiment
    tinyllm train [CORPUS.txt] --out model.npz     learn a model from text
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
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tinyllm import blog
from tinyllm._arrays import check_memory
from tinyllm._compiled import __all__ as _COMPILED_FUNCTIONS
from tinyllm._compiled import as_generator
from tinyllm._console import ReaderGone, emit, guarded_streams, point_at_devnull, say, to_json
from tinyllm._version import __version__
from tinyllm.model import Draws, TinyLM, Trace

BAR_WIDTH = 40
TOP_TOKENS = (
    12  # explain and sample list every token of a vocabulary up to this size, else the top ones
)

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
def _num(v: float) -> str:
    """Short form for display: 1.0000000000000002 -> '1.0', 0.30000000000000004 -> '0.3'."""
    text = f"{v:.10g}"
    return text if any(ch in text for ch in ".en") else text + ".0"


def _vec(values, limit: int = 12) -> str:
    """``[a, b, ...]``; a long vector shows its first entries and its length."""
    values = list(values)
    if len(values) <= limit:
        return "[" + ", ".join(_num(v) for v in values) + "]"
    shown = ", ".join(f"{v:.4g}" for v in values[:8])
    return f"[{shown}, … ({len(values)} numbers)]"


def _bar(p: float, width: int = BAR_WIDTH) -> str:
    return "█" * round(p * width)


def _plural(n: int, noun: str) -> str:
    """'1 step', '2 steps', '0 draws'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _top(probs: np.ndarray) -> list[int]:
    """The positions to list: all of a small vocabulary in its own order, else the
    TOP_TOKENS most likely (ties: the lower position first)."""
    if len(probs) <= TOP_TOKENS:
        return list(range(len(probs)))
    return sorted(range(len(probs)), key=lambda i: (-probs[i], i))[:TOP_TOKENS]


def format_trace(
    trace: Trace, title: str, activation: str | None = None, unknown: Sequence[bool] = ()
) -> str:
    """The pipeline stage by stage, as the blog shows it.

    ``unknown[i]`` marks a word of the prompt that the vocabulary does not know: the
    model reads it as ``<unk>``, and the words say so (``mar (<unk>)``).
    """
    unknown = [bool(u) for u in unknown] + [False] * (len(trace.words) - len(unknown))
    read = list(zip(trace.words, (trace.tokens[p] for p in trace.positions), unknown))
    words = [f"{w} ({token})" if u else w for w, token, u in read]
    width = max(len(w) for w in words)
    lines = [title, ""]
    lines.append(f"1. words        {'  '.join(words)}")
    lines += [
        f"     {w!r} is not in the vocabulary: the model reads it as {token}"
        for w, token, u in read
        if u
    ]
    lines.append(f"2. ids          {'  '.join(str(i) for i in trace.ids)}")
    lines.append(
        f"3. embeddings   ({len(trace.words)}x{trace.embeddings.shape[1]}, one row per word)"
    )
    for word, row in zip(words, trace.embeddings):
        lines.append(f"     {word:<{width}}  {_vec(row)}")
    lines.append(
        f"4. x            {_vec(trace.x)}   "
        f"(flattened row by row, {_plural(trace.x.size, 'number')})"
    )
    f1 = _vec(trace.f1) if trace.f1.size > 1 else _num(trace.f1[0])
    lines.append(f"5. f1 = tanh(x · W1)  {f1}" if activation == "tanh" else f"5. f1 = x · W1  {f1}")
    lines.append(f"6. logits       {_vec(trace.logits)}   (f2 = f1 · W2, one per token)")
    if trace.temperature == 0:
        lines.append("7. softmax(logits / T) at T=0, the greedy limit (all on the largest logit):")
    else:
        temp = "" if trace.temperature == 1.0 else f" / T={_num(trace.temperature)}"
        lines.append(f"7. softmax(logits{temp}):")
    order = _top(trace.probs)
    if len(order) < len(trace.tokens):  # a trained vocabulary: the most likely ones
        lines[-1] += f"   (the {len(order)} most likely of {len(trace.tokens)} tokens)"
    tw = max(len(trace.tokens[i]) for i in order)
    for i in order:
        p = trace.probs[i]
        lines.append(f"     {trace.tokens[i]:<{tw}}  {p:.10f}  {_bar(float(p))}")
    best = int(trace.probs.argmax())
    lines.append("")
    lines.append(f"most likely next word: {trace.tokens[best]} ({trace.probs[best]:.1%})")
    return "\n".join(lines)


def format_part1(r: blog.Part1Result) -> str:
    w1, w2, w3 = r.weights
    x1, x2, x3 = r.ids
    lines = [
        "Part 1 — relations and functions: y = x1*w1 - x2*w2 + x3*w3",
        "",
        f"1. words   {'  '.join(r.words)}",
        f"2. ids     x = ({x1}, {x2}, {x3})",
        f"3. w       ({_num(w1)}, {_num(w2)}, {_num(w3)})",
        f"4. y       {x1}*{_num(w1)} - {x2}*{_num(w2)} + {x3}*{_num(w3)} = {_num(r.y)}",
        "",
        f"y is the id of: {r.word}"
        if r.word
        else "y is not the id of any word (the post's first problem)",
    ]
    return "\n".join(lines)


def format_part2(r: blog.Part2Result) -> str:
    tw = max(len(t) for t in r.tokens)
    lines = [
        "Part 2 — creativity and probabilities: f1, f2, normalise by the sum",
        "",
        f"1. words     {'  '.join(r.words)}",
        f"2. ids       {'  '.join(str(i) for i in r.ids)}",
        f"3. f1        {_num(r.f1)}   (x1*1.0 + x2*0.5 + x3*1.5)",
        f"4. logits    {_vec(r.logits)}   (f2 = f1 * w_f2)",
        f"5. v/sum(v)  (sum {_num(float(r.logits.sum()))}):",
    ]
    for token, p in zip(r.tokens, r.probs):
        lines.append(f"     {token:<{tw}}  {p:.6f}  {_bar(float(p))}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
def format_epoch(stats) -> str:
    val = (
        ""
        if stats.val_loss is None
        else f"  val loss {stats.val_loss:.4f} (perplexity {stats.val_perplexity:7.2f})"
    )
    return (
        f"epoch {stats.epoch:>3}  loss {stats.train_loss:.4f} (perplexity "
        f"{stats.train_perplexity:7.2f}){val}  lr {stats.lr:.3g}  "
        f"{stats.tokens_per_second:,.0f} tokens/s"
    )


def _cmd_train(args: argparse.Namespace) -> str:
    from tinyllm import corpus, io, train
    from tinyllm._files import check_outputs

    # Everything that can be checked is checked before training: nothing is lost.
    if args.momentum is not None and args.optimizer != "sgd":
        raise ValueError(f"--momentum applies to --optimizer sgd only, not {args.optimizer}")
    momentum = train.TrainOptions.momentum if args.momentum is None else args.momentum
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
    else:
        text, name = corpus.read_text(args.corpus), os.path.basename(args.corpus)
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

        loss_curve(result.history, args.plot_loss, title=f"tinyllm train: {name}")
    model = result.model
    last = result.history[-1]
    lines = [
        f"trained {model!r} on {name}: {_plural(result.train_examples, 'example')} "
        f"({result.val_examples} held out), {_plural(result.steps, 'step')}",
        f"final loss {last.train_loss:.4f} (perplexity {last.train_perplexity:.2f})"
        + (
            ""
            if last.val_loss is None
            else f", validation {last.val_loss:.4f} (perplexity {last.val_perplexity:.2f})"
        ),
        f"saved to {args.out}",
    ]
    if args.plot_loss:
        lines.append(f"loss curve: {args.plot_loss}")
    probe = (
        " ".join(model.vocab.tokens[p] for p in model.encode_prompt(blog.PROMPT))
        if _knows(model, blog.PROMPT)
        else None
    )
    if probe is not None:
        probs = model.next_token_probs(blog.PROMPT)
        best = int(probs.argmax())
        lines.append(f'after "{blog.PROMPT}" it predicts: {model.vocab[best]} ({probs[best]:.1%})')
    return "\n".join(lines)


def _knows(model: TinyLM, prompt: str) -> bool:
    """True when every word of ``prompt`` is a real token of the model (not <unk>)."""
    words = model.vocab.split(prompt)
    return len(words) >= model.config.context and all(w in model.vocab for w in words)


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
        title="Embeddings del blog" if args.model is None else f"Embeddings: {args.model}",
    )
    return f"wrote {args.out}"


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
            raise argparse.ArgumentTypeError(
                f"{'is too long a number' if digits else 'must be an integer'}, got {_shown(text)}"
            ) from None
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {_shown(text)}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _add_train_parser(commands) -> None:
    from tinyllm.train import OPTIMIZERS, SCHEDULES, TrainOptions

    d = TrainOptions()
    train = commands.add_parser(
        "train",
        help="learn embeddings and weights from text",
        description="Train a model on CORPUS.txt (the built-in Spanish corpus when no file is "
        "given): a vocabulary from the text (lowercase, words and punctuation), "
        "random weights from --seed, then minibatch gradient descent on the "
        "next-token cross-entropy. Prints loss and perplexity per epoch (stderr) "
        "and saves the model to --out.",
    )
    train.add_argument(
        "corpus",
        nargs="?",
        default=None,
        metavar="CORPUS.txt",
        help="UTF-8 text, one sentence per line, # comments (default: built-in)",
    )
    train.add_argument(
        "--out",
        default="model.npz",
        metavar="FILE",
        help="where to save the model (default model.npz)",
    )
    train.add_argument(
        "--dim", type=_integer(), default=16, help="d, numbers per embedding (default 16)"
    )
    train.add_argument(
        "--context", type=_integer(), default=3, help="c, tokens the model reads (default 3)"
    )
    train.add_argument("--hidden", type=_integer(), default=32, help="h, hidden units (default 32)")
    train.add_argument(
        "--activation",
        choices=("none", "tanh"),
        default="none",
        help="of the hidden layer (default none, as in the blog)",
    )
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument(
        "--min-count",
        type=_integer(),
        default=1,
        help="words seen fewer times become <unk> (default 1)",
    )
    train.add_argument("--epochs", type=_integer(), default=d.epochs, help=f"default {d.epochs}")
    train.add_argument(
        "--batch-size", type=_integer(), default=d.batch_size, help=f"default {d.batch_size}"
    )
    train.add_argument(
        "--lr", type=float, default=d.lr, help=f"learning rate, > 0 (default {d.lr})"
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    train.add_argument(
        "--momentum",
        type=float,
        default=None,
        help=f"for --optimizer sgd, in [0, 1) (default {d.momentum})",
    )
    train.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help="learning-rate schedule (default constant)",
    )
    train.add_argument(
        "--warmup", type=_integer(), default=d.warmup, help="warm-up steps (default 0)"
    )
    train.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="share of lines held out for validation (default 0.1)",
    )
    train.add_argument(
        "--seed", type=_integer(maximum=None), default=d.seed, help="seeds everything (default 0)"
    )
    train.add_argument(
        "--plot-loss",
        metavar="PNG",
        default=None,
        help="also draw the loss curve (needs matplotlib)",
    )
    train.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar: auto = on a terminal when tqdm is installed",
    )
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(run=_cmd_train)


def _add_plot_parser(commands) -> None:
    plot = commands.add_parser(
        "plot", help="draw figures (needs matplotlib)", description="Draw a figure as a PNG."
    )
    figures = plot.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    emb = figures.add_parser(
        "embeddings",
        help="the embeddings as labelled points",
        description="Every token's embedding as a labelled point, like the blog's figure: "
        "axes Sustantivo and Adjetivo for the blog's model, the first two "
        "principal components when d > 2.",
    )
    _add_model_argument(emb)
    emb.add_argument("--out", required=True, metavar="PNG", help="the PNG to write")
    emb.add_argument(
        "--max-labels",
        type=_integer(0),
        default=60,
        help="draw at most this many tokens, the most frequent first (default 60)",
    )
    emb.set_defaults(run=_cmd_plot)


def _add_bench_parser(commands) -> None:
    from tinyllm.bench import command

    bench = commands.add_parser(
        "bench",
        help="time tinyllm against NumPy, PyTorch and plain Python here",
        description=command.DESCRIPTION,
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
        ):
            if given:
                raise ValueError(
                    f"--part 1 and --part 2 replay the blog's own models; {option} needs --part 3"
                )
    if args.part == 1:
        part1 = blog.part1(args.prompt)
        return to_json(part1.to_dict()) if args.json else format_part1(part1)
    if args.part == 2:
        part2 = blog.part2(args.prompt)
        return to_json(part2.to_dict()) if args.json else format_part2(part2)
    model = _load_model(args)
    temperature = 1.0 if args.temperature is None else args.temperature
    trace = model.trace(args.prompt, temperature=temperature)
    # The words the vocabulary does not know: the model reads them as <unk>.
    unknown = [w not in model.vocab for w in trace.words]
    if args.json:
        return to_json(
            {
                "part": 3,
                **trace.to_dict(),
                "read_as": [trace.tokens[p] for p in trace.positions],
                "unknown": [w for w, u in zip(trace.words, unknown) if u],
            }
        )
    title = (
        f'Part 3 — vectors and embeddings: "{args.prompt}"'
        if args.model is None
        else f'{args.model} ({model!r}): "{args.prompt}"'
    )
    return format_trace(trace, title, model.config.activation, unknown)


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
        rows.append((f"… {len(tally.vocab) - len(order)} more", count, max(rest, 0.0)))
    tw = max(len(r[0]) for r in rows)
    half = BAR_WIDTH // 2
    lines += [
        "",
        f"{_plural(tally.draws, 'draw')} of the next token:",
        f"  {'token':<{tw}}  {'count':>6}  {'observed':<{half + 7}}  model",
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
    return dict(temperature=args.temperature, top_k=top_k, top_p=args.top_p, min_p=args.min_p)


def _check_json_memory(count: int, bytes_each: int, option: str) -> None:
    """--json holds everything it prints: refuse a count whose output cannot fit."""
    check_memory(
        count * bytes_each,
        f"--json with {option} {count}",
        f"--json holds all of its output; without it the memory does not grow with {option}",
    )


def _position_chunks(
    model: TinyLM, context: list[int], n: int, options: dict, generator: np.random.Generator
) -> Iterator[list[int]]:
    """The positions of ``n`` new tokens after ``context``, chunk by chunk.

    The same tokens as one ``model.generate_positions(context, n, rng=generator)``: the
    generator carries on from chunk to chunk and each chunk reads the last c positions
    of the one before. Chunks are sized to take about CHUNK_SECONDS (at most
    GENERATE_CHUNK tokens), so output flows and Ctrl-C is seen soon whatever the
    model's size. The first call, even for n = 0, checks the options.
    """
    c = model.config.context
    size, done = min(n, GENERATE_CHUNK, 16), 0
    while True:
        start = time.perf_counter()
        positions = model.generate_positions(context, size, rng=generator, **options)
        elapsed = time.perf_counter() - start
        yield positions
        done += size
        if done >= n:
            return
        context = (context + positions)[-c:]
        if elapsed < CHUNK_SECONDS / 2:
            size = min(2 * size, GENERATE_CHUNK)
        elif elapsed > 2 * CHUNK_SECONDS:
            size = max(size // 2, 1)
        size = min(size, n - done)


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
    context = model.context_positions(args.prompt)
    if args.json:
        longest = max(len(json.dumps(t)) for t in model.vocab.tokens)
        _check_json_memory(n, JSON_BYTES_PER_TOKEN + 3 * longest, "-n")
    generator = as_generator(args.seed, args.command)
    chunks = _position_chunks(model, context, n, _sampling_options(args, model), generator)
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
        metavar="FILE",
        default=None,
        help="a model saved by 'tinyllm train' (default: the blog's model)",
    )


def _add_sampling_arguments(parser: argparse.ArgumentParser, filters: bool) -> None:
    parser.add_argument("prompt", help='the prompt, e.g. "el cielo es"')
    _add_model_argument(parser)
    parser.add_argument(
        "--seed",
        type=_integer(maximum=None),
        default=None,
        help="seed of the random draws (same seed, same output); default: fresh",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divide the logits by T first; 0 is greedy (default 1)",
    )
    if filters:
        parser.add_argument(
            "--top-k", type=_integer(), default=None, help="keep the k most likely tokens"
        )
        parser.add_argument(
            "--top-p",
            type=float,
            default=None,
            help="keep the smallest set of most likely tokens with mass >= p",
        )
        parser.add_argument(
            "--min-p",
            type=float,
            default=None,
            help="keep tokens with probability >= min_p x the largest",
        )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line: ``tinyllm <command>: error: <message>``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinyllm",
        description="The toy language model of 'Mi camino a entender (por fin) los LLMs'.",
    )
    parser.add_argument("--version", action="version", version=f"tinyllm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain",
        help="show the pipeline stage by stage with its numbers",
        description="Run the blog's model on PROMPT and print every stage: "
        "words, ids, embeddings, x, f1, logits, softmax.",
    )
    explain.add_argument("prompt", help='the prompt, e.g. "el cielo es"')
    explain.add_argument(
        "--part",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="which part of the blog to replay (default: 3)",
    )
    explain.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="divide the logits by T before softmax; 0 is the greedy limit "
        "(part 3 only; default 1)",
    )
    explain.add_argument("--json", action="store_true", help="print the same as JSON")
    _add_model_argument(explain)
    explain.set_defaults(run=_cmd_explain)

    generate = commands.add_parser(
        "generate",
        help="continue a prompt, token by token",
        description="Sample a continuation of PROMPT from the blog's model: each new token "
        "is drawn from softmax(logits / T) after the top-k, top-p and min-p "
        "filters, and the model then reads the last 3 tokens. The text is "
        "written as it is drawn.",
    )
    _add_sampling_arguments(generate, filters=True)
    generate.add_argument(
        "-n",
        "--max-new-tokens",
        type=_integer(),
        default=10,
        help="how many tokens to generate (default 10)",
    )
    generate.set_defaults(run=_cmd_generate)

    sample = commands.add_parser(
        "sample",
        help="draw the next token many times and count (the notebooks' experiment)",
        description="Draw the next token after PROMPT --draws times, print each draw, then "
        "each token's observed frequency beside the model's probability.",
    )
    _add_sampling_arguments(sample, filters=False)
    sample.add_argument("--draws", type=_integer(), default=20, help="how many draws (default 20)")
    sample.add_argument("--show-max", type=_integer(0), default=100, help=argparse.SUPPRESS)
    sample.set_defaults(run=_cmd_sample)

    _add_train_parser(commands)
    _add_plot_parser(commands)
    _add_bench_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinyllm`` script; returns the exit status.

    0: done, or the reader of stdout went away early (``| head``); 2: an error, one
    line on stderr (usage errors exit with 2 through argparse's SystemExit); 130:
    interrupted (Ctrl-C), one line on stderr.
    """
    command = None
    with guarded_streams():
        try:
            args = build_parser().parse_args(argv)
            command = args.command
            return _run(args)
        except KeyboardInterrupt:
            say(command, "interrupted")
            return 130
        except ReaderGone:
            point_at_devnull(sys.stdout)
            return 0


def _run(args: argparse.Namespace) -> int:
    """Run the command and write its output; an error is one line on stderr, status 2."""
    try:
        emit(args.run(args))
    except (ValueError, TypeError, ImportError, OverflowError) as exc:
        say(args.command, f"error: {_one_line(exc)}")
        return 2
    except MemoryError as exc:  # a size the checks let through but the machine could not
        say(args.command, f"error: out of memory: {_one_line(exc) or 'try smaller sizes'}")
        return 2
    except OSError as exc:  # a file that cannot be read or written
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        say(args.command, f"error: {_one_line(detail)}")
        return 2
    return 0


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
