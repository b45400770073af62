"""Turning the results into Markdown, JSON and (optionally) a PNG of speed-ups."""

from __future__ import annotations

import json
from pathlib import Path

from cases import PYTHON_MAX_ELEMENTS, TITLES

from tinyllm._files import atomic_writer, write_text

#: Column order and display names of the contenders.
NAMES = {
    "tinyllm": "tinyllm",
    "numpy": "NumPy",
    "scipy": "SciPy",
    "torch": "PyTorch",
    "python": "Python",
}
NOISY = 0.5  # a timing whose rounds spread more than this (max-min over median) gets a †


# ---------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------


def us(seconds: float | None) -> str:
    """Microseconds, 3 significant figures (thousands separated)."""
    if seconds is None:
        return "–"
    value = seconds * 1e6
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 1 else f"{value:.2f}"


def num(value: float) -> str:
    """3 significant figures, thousands separated."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def ratio(value: float | None, noisy: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×"
    return text + (" †" if noisy else "")


def si(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def nbytes(value: float | None) -> str:
    if value is None:
        return "–"
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= factor:
            return f"{num(value / factor)} {unit}"
    return f"{value:.0f} B"


def table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    """A Markdown table; columns from ``right_from`` on are right-aligned."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def header(results: dict) -> list[str]:
    m, meta = results["machine"], results["meta"]
    v = m["versions"]
    cpu = m["cpu"]
    lines = [
        "# tinyllm benchmarks",
        "",
        f"- Machine: {cpu['model']}, {cpu.get('usable_cpus', cpu['logical_cpus'])} usable CPUs, "
        f"SIMD: {', '.join(cpu['simd']) or 'unknown'}; {m['platform']}",
        "- Versions: "
        + ", ".join(f"{name} {version}" for name, version in v.items() if version)
        + ", not installed: "
        + (", ".join(n for n, ver in v.items() if not ver) or "none"),
        f"- Threads: tinyllm {m['threads']['tinyllm']}, PyTorch {m['threads']['torch']}, "
        f"NumPy's BLAS {m['threads']['numpy_blas']}. BLAS: {m['blas']['summary']}",
        "- tinyllm kernels from: "
        + ", ".join(sorted(set(m["tinyllm_build"]["kernel_modules"].values()))),
        f"- Method: {meta['mode']} run, median of {meta['rounds']} interleaved rounds, each sample "
        f"≥ {meta['min_time'] * 1e3:g} ms of calls; took {meta['seconds']:.0f} s. "
        "Speed-up = other's time ÷ tinyllm's time (> 1: tinyllm is faster).",
    ]
    slowing = m["env"]["openblas_tuning_vars_set"]
    if slowing:
        lines.append(
            f"- **Warning**: {', '.join(slowing)} set: they slow NumPy's BLAS; run "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py`."
        )
    if m["tinyllm_build"]["debug_checks"]:
        lines.append("- **Warning**: tinyllm was built with TINYLLM_DEBUG_CHECKS=1 (slower).")
    return lines + [""]


def _noisy(entry: dict, name: str) -> bool:
    times = entry["times"]
    return max(times[name]["spread"], times["tinyllm"]["spread"]) > NOISY


def kernel_section(results: dict) -> list[str]:
    lines = ["## Kernels: median µs per call, and speed-up of tinyllm", ""]
    by_op: dict[str, list[dict]] = {}
    for entry in results["kernels"]:
        by_op.setdefault(entry["op"], []).append(entry)
    for op, entries in by_op.items():
        present = [n for n in NAMES if any(n in e["times"] for e in entries)]
        others = [n for n in present if n != "tinyllm"]
        head = (
            ["dtype", "B", "size"]
            + [f"{NAMES[n]} µs" for n in present]
            + [f"vs {NAMES[n]}" for n in others]
        )
        rows = []
        for e in entries:
            size = ", ".join(f"{k}={v:,}" for k, v in e["dims"].items())
            rows.append(
                [e["dtype"], str(e["batch"]), size]
                + [us(e["times"][n]["median_s"]) if n in e["times"] else "–" for n in present]
                + [ratio(e["ratios"].get(n), n in e["times"] and _noisy(e, n)) for n in others]
            )
        lines += [f"### {TITLES.get(op, op)}", ""] + table(head, rows, right_from=1) + [""]
        if any(e["skipped"] for e in entries):
            lines += [
                f"Python –: not timed above {PYTHON_MAX_ELEMENTS:,} numbers per input "
                "(seconds per call).",
                "",
            ]
    if results["meta"].get("not_run"):
        lines += [f"Not run: {', '.join(results['meta']['not_run'])} (GBs of temporaries).", ""]
    lines += [
        "† one of the two timings varied by more than 50 % between rounds "
        "(noisy machine): read that ratio with care.",
        "",
    ]
    return lines


def bandwidth_section(results: dict) -> list[str]:
    bw = results.get("bandwidth")
    if not bw:
        return []
    l3 = results["machine"]["cpu"].get("l3_bytes")
    lines = [
        "## project: memory bandwidth reached",
        "",
        "Bytes of W read ÷ time of one `project` (h of shape (k,)), against two references "
        f"timed in the same interleaved rounds on {nbytes(bw['array_bytes'])} float64 "
        "arrays at the run's thread counts: copy (`np.copyto`, bytes read + written ÷ "
        "time) and read (`np.dot(a, a)`, bytes read ÷ time).",
        "",
    ]
    if l3:
        lines += [
            f"The last-level cache holds {nbytes(l3)}: a W no larger than that can stay "
            "cached between calls (as W2 does in a generation loop), so its figures may "
            "exceed the memory bandwidth.",
            "",
        ]
    rows = [
        [
            r["case"],
            nbytes(r["w_bytes"]),
            NAMES[r["contender"]],
            f"{r['gb_s']:.1f}",
            f"{r['copy_gb_s']:.1f}",
            f"{r['read_gb_s']:.1f}",
            f"{r['of_copy']:.0%}",
            f"{r['of_read']:.0%}",
        ]
        for r in bw["rows"]
    ]
    head = [
        "case",
        "W size",
        "contender",
        "GB/s of W",
        "copy GB/s",
        "read GB/s",
        "% of copy",
        "% of read",
    ]
    return lines + table(head, rows, right_from=3) + [""]


def draws_section(results: dict) -> list[str]:
    rows_in = results.get("draws")
    if not rows_in:
        return []
    present = [n for n in NAMES if any(n in r["times"] for r in rows_in)]
    lines = [
        "## Many draws from one distribution (issue 3): `size=` costs far less than size × V",
        "",
        "One cumulative table per distribution, then a binary search per draw. "
        "'one call' is `tinyllm.sample(p)` (size=None) in the same rounds; "
        "'separate calls' = size × that time.",
        "",
    ]
    head = (
        ["dtype", "V", "size"]
        + [f"{NAMES[n]} ns/draw" for n in present]
        + ["tinyllm time ÷ one call", "vs separate calls", "vs choice(size=)"]
    )
    rows = []
    for r in rows_in:
        per_draw = [
            num(r["times"][n]["median_s"] / r["size"] * 1e9) if n in r["times"] else "–"
            for n in present
        ]
        rows.append(
            [r["dtype"], f"{r['V']:,}", f"{r['size']:,}"]
            + per_draw
            + [
                f"{r['cost_vs_one_call']:.3g}",
                ratio(r["vs_separate_calls"]),
                ratio(r["ratios"].get("numpy")),
            ]
        )
    return lines + table(head, rows, right_from=1) + [""]


def generation_section(results: dict) -> list[str]:
    gens = results.get("generation")
    if not gens:
        return []
    head = (
        ["model", "tokens per call (tinyllm / NumPy / Python)"]
        + [f"{NAMES[n]} tokens/s" for n in ("tinyllm", "numpy", "python")]
        + ["vs NumPy", "vs Python"]
    )
    rows = []
    for g in gens:
        calls = " / ".join(str(t) for t in g["tokens_per_call"].values())
        rows.append(
            [g["model"], calls]
            + [si(g["tokens_per_s"].get(n)) for n in ("tinyllm", "numpy", "python")]
            + [ratio(g["ratios"].get("numpy")), ratio(g["ratios"].get("python"))]
        )
    return (
        [
            "## End to end: generation (tokens per second)",
            "",
            "`TinyLM.generate` against the same model step in NumPy and in pure Python "
            "(bench/models.py), temperature 1, no filters. Speed-up = tinyllm tokens/s ÷ "
            "other's.",
            "",
        ]
        + table(head, rows, right_from=1)
        + [""]
    )


def memory_section(results: dict) -> list[str]:
    mem = results.get("memory")
    if not mem:
        return []
    head = ["model", "N tokens", "generate: peak", "its result", "stream: peak", "one logits array"]
    rows = [
        [
            m["model"],
            f"{m['n']:,}",
            nbytes(m["generate_peak"]),
            nbytes(m["result_bytes"]),
            nbytes(m["stream_peak"]),
            nbytes(m["logits_bytes"]),
        ]
        for m in mem["rows"]
    ]
    lines = [
        "## Memory: peak traced by tracemalloc while generating N tokens",
        "",
        "`generate` returns a string (it holds the N new tokens); `stream` consumes "
        "`stream_positions` without keeping anything. A per-token array left behind "
        "would make the peak grow by ≥ V × itemsize per token.",
        "",
    ]
    lines += table(head, rows, right_from=1) + [""]
    for verdict in mem["verdicts"]:
        lines.append(f"- {verdict}")
    lines += [
        "- tracemalloc sees Python objects and NumPy's array buffers, not C `malloc` "
        "inside the kernels; the peak at small N is one step's working set, so "
        "arrays allocated and freed within a step show up there, not as growth.",
        "",
    ]
    return lines


def targets_section(results: dict) -> list[str]:
    rows = []
    for t in results["targets"]:
        needed = f"≥ {t['needed']:g}×" if t["more_is_better"] else f"≤ {t['needed']:g}"
        if t["measured"] is None:
            measured = "–"
        elif t["more_is_better"]:
            measured = ratio(t["measured"])
        else:
            measured = f"{t['measured']:.2g}"
        status = f"**{t['status']}**" if t["status"] == "NOT MET" else t["status"]
        rows.append([t["goal"], t["case"], NAMES.get(t["vs"], t["vs"]), measured, needed, status])
    met = sum(t["status"] == "MET" for t in results["targets"])
    not_met = sum(t["status"] == "NOT MET" for t in results["targets"])
    return (
        [
            "## Targets (issue 4)",
            "",
            f"{met} met, {not_met} not met, "
            f"{len(results['targets']) - met - not_met} not measured in this run.",
            "",
        ]
        + table(["target", "case", "vs", "measured", "needed", "status"], rows, right_from=3)
        + [""]
    )


def markdown(results: dict) -> str:
    sections = (
        header,
        kernel_section,
        bandwidth_section,
        draws_section,
        generation_section,
        memory_section,
        targets_section,
    )
    return "\n".join(line for section in sections for line in section(results))


def outputs(out_dir: Path) -> tuple[Path, Path]:
    """Where :func:`write` puts the JSON and the Markdown report."""
    return out_dir / "latest.json", out_dir / "latest.md"


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write both reports, each replaced atomically (tinyllm's one file writer)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = outputs(out_dir)
    write_text(json_path, json.dumps(results, indent=1, default=str) + "\n")
    write_text(md_path, markdown(results))
    return json_path, md_path


# ---------------------------------------------------------------------------
# The plot
# ---------------------------------------------------------------------------


def plot(results: dict, path: Path) -> str:
    """Speed-up against size, one panel per operation; returns a message for the user.

    Lines: tinyllm against NumPy (solid) and PyTorch (dashed), one colour per dtype
    and batch; the grey line is parity. (Python's ratios are in the tables.)
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot needs matplotlib: pip install matplotlib (no PNG written)"
    by_op: dict[str, list[dict]] = {}
    for entry in results["kernels"]:
        by_op.setdefault(entry["op"], []).append(entry)
    if not by_op:
        return "--plot: no kernel cases measured, no PNG written"
    cols = min(3, len(by_op))
    rows = -(-len(by_op) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (op, entries) in zip(axes.flat, by_op.items()):
        _plot_op(ax, op, entries)
    for ax in list(axes.flat)[len(by_op) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(
        "tinyllm speed-up = other's time ÷ tinyllm's (above the grey line: tinyllm faster)"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return f"plot: {path}"


PLOT_COLOURS = {
    ("float32", 1): "tab:blue",
    ("float64", 1): "tab:orange",
    ("float32", 64): "tab:green",
    ("float64", 64): "tab:red",
}
PLOT_STYLES = {"numpy": "-", "torch": "--"}


def _size(entry: dict) -> int:
    dims = entry["dims"]
    return dims.get("n") or dims.get("k", 1) * dims["V"]


def _plot_op(ax, op: str, entries: list[dict]) -> None:
    for (dtype, batch), colour in PLOT_COLOURS.items():
        line = [e for e in entries if e["dtype"] == dtype and e["batch"] == batch]
        for name, style in PLOT_STYLES.items():
            points = sorted((_size(e), e["ratios"][name]) for e in line if name in e["ratios"])
            if points:
                xs, ys = zip(*points)
                ax.plot(
                    xs,
                    ys,
                    style,
                    color=colour,
                    marker="o",
                    ms=3,
                    label=f"vs {NAMES[name]}, {dtype}, B={batch}",
                )
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(TITLES.get(op, op), fontsize=8)
    ax.set_xlabel("k × V" if op == "project" else ("n" if op == "dot" else "V"), fontsize=8)
    ax.tick_params(labelsize=7)
