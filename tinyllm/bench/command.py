"""``tinyllm bench``: its options and what it does with them.

The command line (:mod:`tinyllm.cli`) adds a ``bench`` parser with
:func:`add_arguments` and calls :func:`command` with the parsed options: everything
that can be checked (sizes, rounds, the ``--only`` pattern, output files, matplotlib
for ``--plot``) is checked before the first case runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re

from tinyllm._console import say
from tinyllm._i18n import N_, _

#: The largest row --sizes takes: 10⁸ float32 numbers are 400 MB, and the idioms
#: hold a few copies.
MAX_SIZE = 10**8

#: The command's description, translated where the parser is built.
DESCRIPTION = N_(
    "Time tinyllm's kernels and generation loop against NumPy (its common idiom and "
    "the best one we can write), PyTorch when installed, and plain Python, on this "
    "machine, every contender on one thread, and print the ratios (the idiom's time ÷ "
    "tinyllm's). Quick by default (under a minute): V = 5 and 32,000, float32, every "
    "logit family; --full: V = 5 … 10⁷, float64 too (about 20 minutes on a 2-core "
    "machine)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tinyllm bench``."""
    from tinyllm.cli import _integer

    parser.add_argument(
        "--full",
        action="store_true",
        help=_("every size from 5 to 10^7, float64 too (about 20 minutes)"),
    )
    parser.add_argument("--json", metavar=_("FILE"), help=_("also write every figure as JSON"))
    parser.add_argument("--markdown", action="store_true", help=_("print the tables as Markdown"))
    parser.add_argument(
        "--plot", metavar="PNG", help=_("also draw the ratios against size (needs matplotlib)")
    )
    parser.add_argument(
        "--only",
        metavar="REGEX",
        help=_(
            "only the cases whose name matches, e.g. 'top_p' or 'normal-1 V=32000' "
            "(names: 'OP FAMILY V=SIZE DTYPE', 'generate blog')"
        ),
    )
    parser.add_argument(
        "--sizes",
        type=_integer(2, MAX_SIZE),
        nargs="+",
        metavar="V",
        help=_("the row sizes to run instead of the plan's"),
    )
    parser.add_argument(
        "--rounds",
        type=_integer(1, 1000),
        metavar="N",
        help=_("timed rounds per case (default 3; --full 5)"),
    )
    parser.add_argument(
        "--min-time",
        type=float,
        metavar=_("SECONDS"),
        help=_("least time of one timed sample (default 0.002; --full 0.01)"),
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help=_("progress bar on stderr (auto: on a terminal)"),
    )


def plan_from(args: argparse.Namespace):
    """The plan the options ask for (ValueError for a bad --only or --min-time)."""
    from tinyllm.bench import runner

    plan = runner.FULL if args.full else runner.QUICK
    changes: dict = {}
    if args.sizes:
        changes["sizes"] = tuple(dict.fromkeys(args.sizes))
    if args.rounds:
        changes["rounds"] = args.rounds
    if args.min_time is not None:
        if not (math.isfinite(args.min_time) and 0 <= args.min_time <= 60):
            raise ValueError(
                _("--min-time must be between 0 and 60 seconds, got {value}").format(
                    value=args.min_time
                )
            )
        changes["min_time"] = args.min_time
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as exc:
            # Python's own reason (position and problem) stays as re says it.
            raise ValueError(
                _("--only {pattern} is not a regular expression: {reason}").format(
                    pattern=repr(args.only), reason=exc
                )
            ) from None
        changes["only"] = args.only
    return dataclasses.replace(plan, **changes)


def command(args: argparse.Namespace) -> str:
    """Run the benchmark; write --json and --plot; return the report to print."""
    from tinyllm._files import check_outputs
    from tinyllm.bench import report, runner

    plan = plan_from(args)
    if args.plot is not None:
        from tinyllm.plot import require_matplotlib

        require_matplotlib()
    check_outputs({"--json": args.json, "--plot": args.plot})
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    results = runner.run(plan, progress=progress)
    if args.json is not None:
        report.write_json(results, args.json)
        say("bench", _("wrote {path}").format(path=args.json))
    if args.plot is not None:
        report.plot(results, args.plot)
        say("bench", _("wrote {path}").format(path=args.plot))
    return report.render(results, markdown=args.markdown)
