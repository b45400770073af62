"""The ``tinyllm`` command line.

    tinyllm explain  "el cielo es"                 the pipeline stage by stage
    tinyllm generate "el cielo es" -n 10 --seed 0  sample a continuation
    tinyllm sample   "el cielo es" --draws 20      the notebooks' experiment
    tinyllm train [CORPUS.txt] --out model.npz     learn a model from text
    tinyllm plot embeddings --out emb.png          the embeddings as labelled points

explain, generate and sample use the blog's model, or a trained one with
``--model FILE``. Errors in what the user typed (unknown words, short prompts, bad
options, unreadable or unwritable files, a missing optional dependency) print one
line to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from tinyllm import blog
from tinyllm._version import __version__
from tinyllm.model import TinyLM, Trace
from tinyllm.vocab import _NO_SPACE_BEFORE

BAR_WIDTH = 40
TOP_TOKENS = 12   # explain lists every token of a vocabulary up to this size, else the top ones


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


def _bar(p: float) -> str:
    return "█" * round(p * BAR_WIDTH)


def format_trace(trace: Trace, title: str, activation: str | None = None) -> str:
    """The pipeline stage by stage, as the blog shows it."""
    width = max(len(w) for w in trace.words)
    lines = [title, ""]
    lines.append(f"1. words        {'  '.join(trace.words)}")
    lines.append(f"2. ids          {'  '.join(str(i) for i in trace.ids)}")
    lines.append(f"3. embeddings   ({len(trace.words)}x{trace.embeddings.shape[1]}, one row per word)")
    for word, row in zip(trace.words, trace.embeddings):
        lines.append(f"     {word:<{width}}  {_vec(row)}")
    lines.append(f"4. x            {_vec(trace.x)}   (flattened row by row, {trace.x.size} numbers)")
    f1 = _vec(trace.f1) if trace.f1.size > 1 else _num(trace.f1[0])
    lines.append(f"5. f1 = tanh(x · W1)  {f1}" if activation == "tanh" else f"5. f1 = x · W1  {f1}")
    lines.append(f"6. logits       {_vec(trace.logits)}   (f2 = f1 · W2, one per token)")
    temp = "" if trace.temperature == 1.0 else f" / T={_num(trace.temperature)}"
    lines.append(f"7. softmax(logits{temp}):")
    order = list(range(len(trace.tokens)))
    if len(order) > TOP_TOKENS:                 # a trained vocabulary: the most likely ones
        order = sorted(order, key=lambda i: -trace.probs[i])[:TOP_TOKENS]
        lines[-1] += f"   (the {TOP_TOKENS} most likely of {len(trace.tokens)} tokens)"
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
        f"y is the id of: {r.word}" if r.word else "y is not the id of any word (the post's first problem)",
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
    val = ("" if stats.val_loss is None
           else f"  val loss {stats.val_loss:.4f} (perplexity {stats.val_perplexity:7.2f})")
    return (f"epoch {stats.epoch:>3}  loss {stats.train_loss:.4f} (perplexity "
            f"{stats.train_perplexity:7.2f}){val}  lr {stats.lr:.3g}  "
            f"{stats.tokens_per_second:,.0f} tokens/s")


def _cmd_train(args: argparse.Namespace) -> str:
    from tinyllm import corpus, io, train

    # Everything that can be checked is checked before training: nothing is lost.
    options = train.TrainOptions(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        momentum=args.momentum, schedule=args.schedule, warmup=args.warmup,
        val_fraction=args.val_fraction, seed=args.seed)
    if args.plot_loss:
        from tinyllm.plot import require_matplotlib

        require_matplotlib()
        io.check_writable(args.plot_loss)
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    if progress:
        train.progress_bar(0, True).close()           # ImportError now if tqdm is missing
    io.check_writable(args.out)
    if args.corpus is None:
        text, name = corpus.builtin_text(), corpus.BUILTIN_NAME
    else:
        text, name = corpus.read_text(args.corpus), os.path.basename(args.corpus)
    activation = None if args.activation == "none" else args.activation
    quiet = args.quiet

    def on_epoch(stats) -> None:
        if not quiet:
            print(format_epoch(stats), file=sys.stderr, flush=True)

    result = train.train(text, dim=args.dim, context=args.context, hidden=args.hidden,
                         activation=activation, dtype=args.dtype, min_count=args.min_count,
                         options=options, progress=progress, on_epoch=on_epoch, corpus=name)
    io.save_model(result.model, args.out, training=result.to_dict())
    if args.plot_loss:
        from tinyllm.plot import loss_curve

        loss_curve(result.history, args.plot_loss, title=f"tinyllm train: {name}")
    model = result.model
    last = result.history[-1]
    lines = [f"trained {model!r} on {name}: {result.train_examples} examples "
             f"({result.val_examples} held out), {result.steps} steps",
             f"final loss {last.train_loss:.4f} (perplexity {last.train_perplexity:.2f})"
             + ("" if last.val_loss is None else
                f", validation {last.val_loss:.4f} (perplexity {last.val_perplexity:.2f})"),
             f"saved to {args.out}"]
    if args.plot_loss:
        lines.append(f"loss curve: {args.plot_loss}")
    probe = " ".join(model.vocab.tokens[p] for p in model.encode_prompt(blog.PROMPT)) \
        if _knows(model, blog.PROMPT) else None
    if probe is not None:
        probs = model.next_token_probs(blog.PROMPT)
        best = int(probs.argmax())
        lines.append(f'after "{blog.PROMPT}" it predicts: {model.vocab[best]} ({probs[best]:.1%})')
    return "\n".join(lines)


def _knows(model: TinyLM, prompt: str) -> bool:
    """True when every word of ``prompt`` is a real token of the model (not <unk>)."""
    words = model.vocab.split(prompt)
    return len(words) >= model.config.context and all(
        model.vocab._lookup(w) is not None for w in words)


def _cmd_plot(args: argparse.Namespace) -> str:
    from tinyllm import io, plot

    plot.require_matplotlib()
    io.check_writable(args.out)
    model = _load_model(args)
    plot.embeddings(model, args.out, max_labels=args.max_labels,
                    title="Embeddings del blog" if args.model is None else f"Embeddings: {args.model}")
    return f"wrote {args.out}"


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _add_train_parser(commands) -> None:
    from tinyllm.train import OPTIMIZERS, SCHEDULES, TrainOptions

    d = TrainOptions()
    train = commands.add_parser(
        "train", help="learn embeddings and weights from text",
        description="Train a model on CORPUS.txt (the built-in Spanish corpus when no file is "
                    "given): a vocabulary from the text (lowercase, words and punctuation), "
                    "random weights from --seed, then minibatch gradient descent on the "
                    "next-token cross-entropy. Prints loss and perplexity per epoch (stderr) "
                    "and saves the model to --out.",
    )
    train.add_argument("corpus", nargs="?", default=None, metavar="CORPUS.txt",
                       help="UTF-8 text, one sentence per line, # comments (default: built-in)")
    train.add_argument("--out", default="model.npz", metavar="FILE",
                       help="where to save the model (default model.npz)")
    train.add_argument("--dim", type=int, default=16, help="d, numbers per embedding (default 16)")
    train.add_argument("--context", type=int, default=3, help="c, tokens the model reads (default 3)")
    train.add_argument("--hidden", type=int, default=32, help="h, hidden units (default 32)")
    train.add_argument("--activation", choices=("none", "tanh"), default="none",
                       help="of the hidden layer (default none, as in the blog)")
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument("--min-count", type=int, default=1,
                       help="words seen fewer times become <unk> (default 1)")
    train.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    train.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    train.add_argument("--lr", type=float, default=d.lr, help=f"learning rate, > 0 (default {d.lr})")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    train.add_argument("--momentum", type=float, default=d.momentum, help="for sgd (default 0.9)")
    train.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                       help="learning-rate schedule (default constant)")
    train.add_argument("--warmup", type=int, default=d.warmup, help="warm-up steps (default 0)")
    train.add_argument("--val-fraction", type=float, default=d.val_fraction,
                       help="share of lines held out for validation (default 0.1)")
    train.add_argument("--seed", type=int, default=d.seed, help="seeds everything (default 0)")
    train.add_argument("--plot-loss", metavar="PNG", default=None,
                       help="also draw the loss curve (needs matplotlib)")
    train.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                       help="progress bar: auto = on a terminal when tqdm is installed")
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(run=_cmd_train)


def _add_plot_parser(commands) -> None:
    plot = commands.add_parser("plot", help="draw figures (needs matplotlib)",
                               description="Draw a figure as a PNG.")
    figures = plot.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    emb = figures.add_parser(
        "embeddings", help="the embeddings as labelled points",
        description="Every token's embedding as a labelled point, like the blog's figure: "
                    "axes Sustantivo and Adjetivo for the blog's model, the first two "
                    "principal components when d > 2.")
    _add_model_argument(emb)
    emb.add_argument("--out", required=True, metavar="PNG", help="the PNG to write")
    emb.add_argument("--max-labels", type=int, default=60,
                     help="draw at most this many tokens, the most frequent first (default 60)")
    emb.set_defaults(run=_cmd_plot)

def _load_model(args: argparse.Namespace) -> TinyLM:
    """The model of ``--model FILE``, or the blog's."""
    path = getattr(args, "model", None)
    return TinyLM.from_blog() if path is None else TinyLM.load(path)


def _cmd_explain(args: argparse.Namespace) -> str:
    if args.model is not None and args.part != 3:
        raise ValueError("--part 1 and --part 2 replay the blog's own models; --model needs --part 3")
    if args.part == 1:
        result = blog.part1(args.prompt)
        return json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_part1(result)
    if args.part == 2:
        result = blog.part2(args.prompt)
        return json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_part2(result)
    model = _load_model(args)
    trace = model.trace(args.prompt, temperature=args.temperature)
    if args.json:
        return json.dumps({"part": 3, **trace.to_dict()}, ensure_ascii=False)
    title = (f'Part 3 — vectors and embeddings: "{args.prompt}"' if args.model is None
             else f'{args.model} ({model!r}): "{args.prompt}"')
    return format_trace(trace, title, model.config.activation)


def format_draws(draws, show_each: bool = True) -> str:
    """Each draw as the notebooks print it, then observed frequency beside probability."""
    lines = [f"{i}: {draws.prompt} {token}" for i, token in enumerate(draws.tokens)] if show_each else []
    tw = max(len(t) for t in draws.vocab)
    half = BAR_WIDTH // 2
    lines += ["", f"{len(draws.tokens)} draws of the next token:",
              f"  {'token':<{tw}}  {'count':>6}  {'observed':<{half + 7}}  model"]
    for token, freq, p in zip(draws.vocab, draws.frequencies.values(), draws.probs):
        lines.append(f"  {token:<{tw}}  {draws.counts[token]:>6}  {freq:6.4f} "
                     f"{'█' * round(freq * half):<{half}}  {p:6.4f} {'█' * round(float(p) * half)}")
    return "\n".join(lines)


def _sampling_options(args: argparse.Namespace) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                min_p=args.min_p, rng=args.seed)


def _cmd_generate(args: argparse.Namespace) -> str:
    model = _load_model(args)
    positions = model.generate_positions(args.prompt, args.max_new_tokens, **_sampling_options(args))
    continuation = model.vocab.decode(positions)
    if args.json:
        return json.dumps({"prompt": args.prompt, "continuation": continuation,
                           "tokens": [model.vocab[p] for p in positions], "positions": positions,
                           "seed": args.seed}, ensure_ascii=False)
    if not continuation:
        return args.prompt
    glue = "" if model.vocab.tokenizer == "words" and continuation[0] in _NO_SPACE_BEFORE else " "
    return f"{args.prompt}{glue}{continuation}"


def _cmd_sample(args: argparse.Namespace) -> str:
    model = _load_model(args)
    draws = model.draw_next(args.prompt, args.draws, temperature=args.temperature, rng=args.seed)
    if args.json:
        return json.dumps({**draws.to_dict(), "seed": args.seed}, ensure_ascii=False)
    return format_draws(draws, show_each=args.draws <= args.show_max)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="FILE", default=None,
                        help="a model saved by 'tinyllm train' (default: the blog's model)")


def _add_sampling_arguments(parser: argparse.ArgumentParser, filters: bool) -> None:
    parser.add_argument("prompt", help='the prompt, e.g. "el cielo es"')
    _add_model_argument(parser)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random draws (same seed, same output); default: fresh")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="divide the logits by T first; 0 is greedy (default 1)")
    if filters:
        parser.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
        parser.add_argument("--top-p", type=float, default=None,
                            help="keep the smallest set of most likely tokens with mass >= p")
        parser.add_argument("--min-p", type=float, default=None,
                            help="keep tokens with probability >= min_p x the largest")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyllm",
        description="The toy language model of 'Mi camino a entender (por fin) los LLMs'.",
    )
    parser.add_argument("--version", action="version", version=f"tinyllm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain", help="show the pipeline stage by stage with its numbers",
        description="Run the blog's model on PROMPT and print every stage: "
                    "words, ids, embeddings, x, f1, logits, softmax.",
    )
    explain.add_argument("prompt", help='the prompt, e.g. "el cielo es"')
    explain.add_argument("--part", type=int, choices=(1, 2, 3), default=3,
                         help="which part of the blog to replay (default: 3)")
    explain.add_argument("--temperature", type=float, default=1.0,
                         help="divide the logits by T before softmax (part 3; default 1)")
    explain.add_argument("--json", action="store_true", help="print the same as JSON")
    _add_model_argument(explain)
    explain.set_defaults(run=_cmd_explain)

    generate = commands.add_parser(
        "generate", help="continue a prompt, token by token",
        description="Sample a continuation of PROMPT from the blog's model: each new token "
                    "is drawn from softmax(logits / T) after the top-k, top-p and min-p "
                    "filters, and the model then reads the last 3 tokens.",
    )
    _add_sampling_arguments(generate, filters=True)
    generate.add_argument("-n", "--max-new-tokens", type=int, default=10,
                          help="how many tokens to generate (default 10)")
    generate.set_defaults(run=_cmd_generate)

    sample = commands.add_parser(
        "sample", help="draw the next token many times and count (the notebooks' experiment)",
        description="Draw the next token after PROMPT --draws times, print each draw, then "
                    "each token's observed frequency beside the model's probability.",
    )
    _add_sampling_arguments(sample, filters=False)
    sample.add_argument("--draws", type=int, default=20, help="how many draws (default 20)")
    sample.add_argument("--show-max", type=int, default=100, help=argparse.SUPPRESS)
    sample.set_defaults(run=_cmd_sample)

    _add_train_parser(commands)
    _add_plot_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinyllm`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        output = args.run(args)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"tinyllm {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        print(f"tinyllm {args.command}: error: {_one_line(detail)}", file=sys.stderr)
        return 2
    print(output)
    return 0


def _one_line(message) -> str:
    return " ".join(str(message).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
