"""Benchmark tinyllm against the pure-Python reference, NumPy, SciPy and PyTorch, in one run.

How to run it (from the repository root, with tinyllm built or installed)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py           # full, ~10 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --quick   # < 1 min
    python bench/run.py --only softmax --quick        # just the cases whose name matches
    python bench/run.py --plot                        # also bench/results/speedup.png

Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (as above) if your environment sets them:
they force an old OpenBLAS kernel choice and slow current NumPy, which would flatter
tinyllm. The report warns when they are set and the JSON records them, with the BLAS
NumPy loads (library, kernel, threads; via threadpoolctl if installed). Optional
contenders: ``pip install scipy torch matplotlib threadpoolctl``; a contender that is
not installed is simply left out (its column shows –).

What it measures, all in one process:

* Kernels (``cases.py`` holds the table): softmax, log_softmax, sample (one draw, and
  ``size=`` draws), sample_logits with a temperature and with top-p, project and dot,
  for V in {5, 1 000, 32 000, 1 000 000}, float32 and float64, batch 1 and 64.
  Contenders: tinyllm, idiomatic NumPy, scipy.special, PyTorch CPU ops and the
  pure-Python ``tinyllm.reference`` (not timed on inputs of more than 100 000
  numbers). Every contender runs at tinyllm's thread count (1, single-threaded
  kernels, unless ``--threads``): PyTorch through ``torch.set_num_threads``, NumPy's
  BLAS through threadpoolctl. ``--blas-threads 0`` leaves NumPy's BLAS at its default
  (all cores): on a shared machine its threads then wait for busy cores and its
  times swing by 5x between runs. The header and the JSON show the counts used.
* project's memory bandwidth: bytes of W read per second, as a fraction of the
  bandwidth of ``np.copyto`` on arrays much larger than the caches.
* Issue 3: ``sample(p, size=n)`` against n separate calls and ``rng.choice(size=n)``.
* End to end: tokens per second of ``TinyLM.generate`` for the blog's model and a
  larger one (V=32 000, d=64, c=8, h=256, float32) against the same model step in
  NumPy and in pure Python (``models.py``).
* Memory: tracemalloc's peak while generating N = 100 and N = 10 000 tokens.
* Accuracy: softmax against a long-double reference.
* The targets of issue 4 (``targets.py``), each MET or NOT MET.

How to read it: every case times each contender in interleaved rounds (each round
times every contender once, so a noisy neighbour slows them all alike) and keeps the
median per contender. Speed-up = the other's time ÷ tinyllm's time: 3× means tinyllm
takes a third of the time; below 1× tinyllm is slower. Absolute times move between
runs and machines; ratios measured side by side are what to compare. A † marks a
ratio whose timings varied by more than 50 % between rounds.

Output: the Markdown report on stdout and in ``bench/results/latest.md``; every
figure (all samples, medians, ratios), the machine (CPU model and flags, threads,
versions, BLAS, environment) in ``bench/results/latest.json``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

try:
    import tinyllm
except ImportError:  # not installed: the checkout this script sits in (built in place)
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    import tinyllm

import baselines as bl
import cases
import machine
import models
import report
import targets
from measure import Timing, interleaved

from tinyllm import _files as files

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ratios(times: dict[str, Timing], base: str = "tinyllm") -> dict[str, float]:
    """Speed-up of ``base`` against every other contender: their time ÷ its time."""
    return {name: t.median / times[base].median for name, t in times.items() if name != base}


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------


def run_kernels(plan: cases.Plan, selected, rounds: int, min_time: float) -> list[dict]:
    entries = []
    for case in cases.kernel_cases(plan):
        if not selected(case.key):
            continue
        start = time.perf_counter()
        times = interleaved(case.contenders, rounds, min_time)
        entries.append(
            {
                "key": case.key,
                "op": case.op,
                "dtype": case.dtype,
                "batch": case.batch,
                "dims": case.dims,
                "times": {n: t.to_dict() for n, t in times.items()},
                "ratios": ratios(times),
                "skipped": case.skipped,
            }
        )
        log(f"  {case.key:<45} {time.perf_counter() - start:5.1f} s")
    return entries


# ---------------------------------------------------------------------------
# project's memory bandwidth
# ---------------------------------------------------------------------------

#: W of at least this many bytes: the project cases whose bandwidth is reported.
BANDWIDTH_MIN_W = 8 * 2**20


def bandwidth_references(array_bytes: int) -> dict:
    """Two streams over float64 arrays far larger than the caches, timed like contenders.

    copy: ``np.copyto(dst, src)``, counted as bytes read + written (STREAM's convention);
    read: ``np.dot(a, a)``, bytes read (one stream, as project reads W).
    """
    src = np.ones(array_bytes // 8)
    dst = np.empty_like(src)
    return {
        "copy": (lambda: np.copyto(dst, src), 2 * src.nbytes),
        "read": (lambda: np.dot(src, src), src.nbytes),
    }


def run_bandwidth(plan: cases.Plan, array_bytes: int, rounds: int, min_time: float):
    """GB/s of W reached by project (one row), in the same interleaved rounds as the
    copy and read references, so machine load hits all of them alike."""
    references = bandwidth_references(array_bytes)
    rows = []
    for dtype in plan.dtypes:
        for k, V in plan.project_shapes:
            w_bytes = k * V * np.dtype(dtype).itemsize
            if w_bytes < BANDWIDTH_MIN_W:
                continue
            h, W = cases.make_project_inputs(k, V, dtype, 1)
            contenders = cases.available(cases.project_contenders(h, W, False))
            contenders.update({name: fn for name, (fn, _) in references.items()})
            times = interleaved(contenders, rounds, min_time)
            ref_gb_s = {
                name: moved / times[name].median / 1e9 for name, (_, moved) in references.items()
            }
            for name in ("tinyllm", "numpy", "torch"):
                if name in times:
                    gb_s = w_bytes / times[name].median / 1e9
                    rows.append(
                        {
                            "case": f"project {dtype} B=1 k={k} V={V}",
                            "w_bytes": w_bytes,
                            "contender": name,
                            "gb_s": gb_s,
                            "copy_gb_s": ref_gb_s["copy"],
                            "read_gb_s": ref_gb_s["read"],
                            "of_copy": gb_s / ref_gb_s["copy"],
                            "of_read": gb_s / ref_gb_s["read"],
                        }
                    )
            log(f"  bandwidth project {dtype} k={k} V={V}")
    return {"array_bytes": array_bytes, "rows": rows} if rows else None


# ---------------------------------------------------------------------------
# Issue 3: many draws from one distribution
# ---------------------------------------------------------------------------


def run_draws(dtypes, sizes, rounds: int, min_time: float, V: int = 32_000) -> list[dict]:
    rows = []
    for dtype in dtypes:
        p = cases.make_probs(V, dtype, 1)
        for size in sizes:
            contenders = cases.available(cases.sample_contenders(p, True, size=size))
            one_rng = np.random.default_rng(2)
            contenders["tinyllm one call"] = lambda: tinyllm.sample(p, rng=one_rng)
            times = interleaved(contenders, rounds, min_time)
            one, tiny = times.pop("tinyllm one call").median, times["tinyllm"].median
            rows.append(
                {
                    "dtype": dtype,
                    "V": V,
                    "size": size,
                    "times": {n: t.to_dict() for n, t in times.items()},
                    "one_call_s": one,
                    "ratios": ratios(times),
                    "cost_vs_one_call": tiny / one,
                    "vs_separate_calls": size * one / tiny,
                }
            )
            log(f"  draws {dtype} V={V} size={size}")
    return rows


# ---------------------------------------------------------------------------
# End to end: generation
# ---------------------------------------------------------------------------


def check_same_model(model: tinyllm.TinyLM, prompt: list[int], *impls) -> None:
    """The NumPy and Python versions must compute tinyllm's logits, or the race is unfair."""
    expected = model.logits(prompt)
    rtol = 1e-3 if model.config.dtype == "float32" else 1e-9
    for impl in impls:
        got = np.asarray(impl.logits(prompt[-model.config.context :]), dtype=np.float64)
        if not np.allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max()):
            raise AssertionError(f"{type(impl).__name__} does not compute the model's logits")


def run_generation(name: str, make, tokens: dict[str, int], rounds: int, min_time: float) -> dict:
    model, prompt = make()
    py, npy = models.PythonLM(model), models.NumpyLM(model)
    check_same_model(model, prompt, py, npy)
    g_tiny, g_np, g_py = np.random.default_rng(0), np.random.default_rng(0), random.Random(0)
    contenders = {
        "tinyllm": lambda: model.generate(prompt, tokens["tinyllm"], rng=g_tiny),
        "numpy": lambda: npy.generate(prompt, tokens["numpy"], g_np),
        "python": lambda: py.generate(prompt, tokens["python"], g_py),
    }
    times = interleaved(contenders, rounds, min_time)
    per_token = {n: t.median / tokens[n] for n, t in times.items()}
    log(f"  generation {name}")
    return {
        "model": name,
        "config": repr(model),
        "tokens_per_call": tokens,
        "times": {n: t.to_dict() for n, t in times.items()},
        "tokens_per_s": {n: 1 / s for n, s in per_token.items()},
        "ratios": {n: s / per_token["tinyllm"] for n, s in per_token.items() if n != "tinyllm"},
    }


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


def traced_peak(fn):
    """(peak bytes traced by tracemalloc above the starting level while ``fn`` runs, result)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


def consume(iterator) -> None:
    for _ in iterator:
        pass


def run_memory(token_counts: dict[str, tuple[int, ...]]) -> dict:
    rows, verdicts = [], []
    for name, make in (("blog", models.blog_model), ("large", models.large_model)):
        model, prompt = make()
        logits_bytes = model.config.vocab_size * np.dtype(model.config.dtype).itemsize
        model_rows = []
        for n in token_counts[name]:
            gen_peak, text = traced_peak(lambda: model.generate(prompt, n, rng=0))
            stream_peak, _ = traced_peak(lambda: consume(model.stream_positions(prompt, n, rng=0)))
            model_rows.append(
                {
                    "model": name,
                    "n": n,
                    "generate_peak": gen_peak,
                    "result_bytes": sys.getsizeof(text),
                    "stream_peak": stream_peak,
                    "logits_bytes": logits_bytes,
                }
            )
            log(f"  memory {name} N={n}")
        rows += model_rows
        verdicts.append(memory_verdict(name, model_rows[0], model_rows[-1]))
    return {"rows": rows, "verdicts": verdicts}


def memory_verdict(name: str, small: dict, large: dict) -> str:
    """One honest sentence: how the peak grows per extra token, and whether arrays stay behind."""
    extra = large["n"] - small["n"]
    gen = (large["generate_peak"] - small["generate_peak"]) / extra
    stream = (large["stream_peak"] - small["stream_peak"]) / extra
    array_header = sys.getsizeof(np.empty(0))  # the smallest possible array object
    kept = (
        "no per-token arrays are kept"
        if stream < array_header
        else (f"**something per token is kept** ({stream:.0f} B/token while streaming)")
    )
    why = (
        " (the returned text, its word list and the list of positions)"
        if gen >= 1
        else (" (the growing result stays below one step's working set)")
    )
    return (
        f"{name}: from N={small['n']:,} to N={large['n']:,} the `generate` peak grows by "
        f"{round(gen)} B/token{why}, "
        f"the `stream` peak by {round(stream)} B/token: {kept} "
        f"(one logits array is {small['logits_bytes']:,} B, an empty array {array_header} B)."
    )


# ---------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------


def softmax_error(V: int, dtype: str) -> float:
    """Largest relative error of tinyllm.softmax against the same inputs in long double."""
    x = cases.make_logits(V, dtype, 1, seed=3)
    exact = np.exp(x.astype(np.longdouble) - x.max())
    exact /= exact.sum()
    return float(np.max(np.abs(tinyllm.softmax(x).astype(np.longdouble) - exact) / exact))


def run_accuracy(plan: cases.Plan) -> list[dict]:
    return [
        {
            "key": f"accuracy softmax {dtype} V={V}",
            "error": softmax_error(V, dtype),
            "reference_eps": float(np.finfo(np.longdouble).eps),
        }
        for dtype in plan.dtypes
        for V in targets.ALL_V
    ]


# ---------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------


def figures(results: dict) -> dict[str, dict[str, float]]:
    """Every measured figure a target can name: {case key: {contender: speed-up or error}}."""
    found = {e["key"]: e["ratios"] for e in results["kernels"]}
    found.update({f"generation {g['model']}": g["ratios"] for g in results["generation"]})
    found.update({a["key"]: {"error": a["error"]} for a in results["accuracy"]})
    return found


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Benchmark tinyllm against pure Python, NumPy, SciPy and PyTorch.",
        epilog="Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer sizes, rounds and tokens (under a minute)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case (7; quick 3)")
    parser.add_argument(
        "--min-time", type=float, help="seconds of calls per sample (0.03; quick 0.005)"
    )
    parser.add_argument(
        "--only",
        metavar="REGEX",
        help="only cases/sections whose name matches, e.g. 'softmax float32' "
        "or 'generation|memory'",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="tinyllm's thread count (1 today); PyTorch and NumPy's BLAS are pinned to it",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        help="NumPy's BLAS threads (default: --threads; 0: the BLAS default)",
    )
    parser.add_argument(
        "--plot",
        nargs="?",
        const=RESULTS / "speedup.png",
        type=Path,
        metavar="PNG",
        help="draw speed-up vs size (default %(const)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="where latest.json and latest.md go (default %(default)s)",
    )
    return parser.parse_args(argv)


def check_outputs(args: argparse.Namespace) -> None:
    """Fail now, not after the run, if a report or the plot cannot be written."""
    folders = [args.out] + ([args.plot.parent] if args.plot else [])
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        json_path, md_path = report.outputs(args.out)
        files.check_outputs({"latest.json": json_path, "latest.md": md_path, "--plot": args.plot})
    except (OSError, ValueError) as exc:
        sys.exit(f"bench/run.py: error: {exc}")


def main(argv=None) -> None:
    args = parse_args(argv)
    check_outputs(args)
    quick = args.quick
    plan = cases.QUICK if quick else cases.FULL
    rounds = args.rounds or (3 if quick else 7)
    min_time = args.min_time or (0.005 if quick else 0.03)
    pattern = re.compile(args.only) if args.only else None

    def selected(name: str) -> bool:
        return pattern is None or bool(pattern.search(name))

    if bl.torch is not None:
        bl.torch.set_num_threads(args.threads)
    started = time.perf_counter()
    blas_limit = args.threads if args.blas_threads is None else args.blas_threads
    with machine.blas_threads(blas_limit):
        results: dict = {"machine": machine.describe(args.threads)}
        if results["machine"]["env"]["openblas_tuning_vars_set"]:
            log(
                "warning: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set and slow NumPy down; run "
                "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py`"
            )
        log("kernels")
        results["kernels"] = run_kernels(plan, selected, rounds, min_time)
        results["bandwidth"] = (
            run_bandwidth(plan, 2**26 if quick else 2**28, rounds, min_time)
            if selected("bandwidth")
            else None
        )
        results["draws"] = (
            run_draws(
                plan.dtypes[-1:] if quick else plan.dtypes, (1, 1_000, 100_000), rounds, min_time
            )
            if selected("draws")
            else []
        )
        gen_tokens = {
            "blog": {"tinyllm": 200, "numpy": 200, "python": 200},
            "large": {"tinyllm": 20, "numpy": 20, "python": 1 if quick else 2},
        }
        results["generation"] = [
            run_generation(name, make, gen_tokens[name], rounds, min_time)
            for name, make in (("blog", models.blog_model), ("large", models.large_model))
            if selected(f"generation {name}")
        ]
        results["memory"] = (
            run_memory({"blog": (100, 10_000), "large": (100, 1_000 if quick else 10_000)})
            if selected("memory")
            else None
        )
        results["accuracy"] = run_accuracy(plan) if selected("accuracy") else []
    results["targets"] = targets.check_all(figures(results))
    results["meta"] = {
        "mode": "quick" if quick else "full",
        "rounds": rounds,
        "blas_threads_limit": blas_limit or "library default",
        "min_time": min_time,
        "only": args.only,
        "argv": sys.argv[1:],
        "not_run": cases.not_run(plan),
        "seconds": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    json_path, md_path = report.write(results, args.out)
    print(report.markdown(results))
    log(f"wrote {json_path} and {md_path} ({results['meta']['seconds']:.0f} s)")
    if args.plot:
        log(report.plot(results, args.plot))


if __name__ == "__main__":
    main()
