"""The ``tinyllm`` command line.

    tinyllm explain  "el cielo es"                 the pipeline stage by stage
    tinyllm generate "el cielo es" -n 10 --seed 0  sample a continuation
    tinyllm sample   "el cielo es" --draws 20      the notebooks' experiment

Errors in what the user typed (unknown words, short prompts, bad options) print
one line to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tinyllm import blog
from tinyllm._version import __version__
from tinyllm.model import TinyLM, Trace

BAR_WIDTH = 40


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------
def _num(v: float) -> str:
    """Short form for display: 1.0000000000000002 -> '1.0', 0.30000000000000004 -> '0.3'."""
    text = f"{v:.10g}"
    return text if any(ch in text for ch in ".en") else text + ".0"


def _vec(values) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _bar(p: float) -> str:
    return "█" * round(p * BAR_WIDTH)


def format_trace(trace: Trace, title: str) -> str:
    """The pipeline stage by stage, as the blog shows it."""
    width = max(len(w) for w in trace.words)
    lines = [title, ""]
    lines.append(f"1. words        {'  '.join(trace.words)}")
    lines.append(f"2. ids          {'  '.join(str(i) for i in trace.ids)}")
    lines.append(f"3. embeddings   ({len(trace.words)}x{trace.embeddings.shape[1]}, one row per word)")
    for word, row in zip(trace.words, trace.embeddings):
        lines.append(f"     {word:<{width}}  {_vec(row)}")
    lines.append(f"4. x            {_vec(trace.x)}   (flattened row by row, {trace.x.size} numbers)")
    lines.append(f"5. f1 = x · W1  {_vec(trace.f1) if trace.f1.size > 1 else _num(trace.f1[0])}")
    lines.append(f"6. logits       {_vec(trace.logits)}   (f2 = f1 · W2, one per token)")
    temp = "" if trace.temperature == 1.0 else f" / T={_num(trace.temperature)}"
    lines.append(f"7. softmax(logits{temp}):")
    tw = max(len(t) for t in trace.tokens)
    for token, p in zip(trace.tokens, trace.probs):
        lines.append(f"     {token:<{tw}}  {p:.10f}  {_bar(float(p))}")
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
def _cmd_explain(args: argparse.Namespace) -> str:
    if args.part == 1:
        result = blog.part1(args.prompt)
        return json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_part1(result)
    if args.part == 2:
        result = blog.part2(args.prompt)
        return json.dumps(result.to_dict(), ensure_ascii=False) if args.json else format_part2(result)
    model = TinyLM.from_blog()
    trace = model.trace(args.prompt, temperature=args.temperature)
    if args.json:
        return json.dumps({"part": 3, **trace.to_dict()}, ensure_ascii=False)
    return format_trace(trace, f'Part 3 — vectors and embeddings: "{args.prompt}"')


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
    model = TinyLM.from_blog()
    positions = model.generate_positions(args.prompt, args.max_new_tokens, **_sampling_options(args))
    continuation = model.vocab.decode(positions)
    if args.json:
        return json.dumps({"prompt": args.prompt, "continuation": continuation,
                           "tokens": [model.vocab[p] for p in positions], "positions": positions,
                           "seed": args.seed}, ensure_ascii=False)
    return f"{args.prompt} {continuation}".rstrip()


def _cmd_sample(args: argparse.Namespace) -> str:
    model = TinyLM.from_blog()
    draws = model.draw_next(args.prompt, args.draws, temperature=args.temperature, rng=args.seed)
    if args.json:
        return json.dumps({**draws.to_dict(), "seed": args.seed}, ensure_ascii=False)
    return format_draws(draws, show_each=args.draws <= args.show_max)


def _add_sampling_arguments(parser: argparse.ArgumentParser, filters: bool) -> None:
    parser.add_argument("prompt", help='the prompt, e.g. "el cielo es"')
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tinyllm`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        output = args.run(args)
    except (ValueError, TypeError) as exc:
        print(f"tinyllm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(output)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
