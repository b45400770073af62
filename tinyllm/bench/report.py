"""The results as a table (plain text or Markdown), as JSON, and as a PNG of ratios."""

from __future__ import annotations

import json
from collections import defaultdict

from tinyllm._files import atomic_writer, write_text
from tinyllm.bench.families import FAMILIES
from tinyllm.bench.ops import LIBRARIES, PYTHON_MAX

NOISY = 0.5  # a timing whose rounds spread more than this (max-min over median) gets a †
ORDER = ("numpy", "torch", "python", "tinyllm")


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------


def us(seconds: float) -> str:
    """Microseconds, 3 significant figures."""
    value = seconds * 1e6
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 1 else f"{value:.2f}"


def ratio(value: float | None, noisy: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×"
    return text + (" †" if noisy else "")


def si(value: float) -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g}"


def size(V: int) -> str:
    """1 000 000 -> '10⁶'-style short forms for round powers of ten, else '32,000'."""
    if V >= 1_000_000 and str(V).rstrip("0") == "1":
        return f"1e{len(str(V)) - 1}"
    return f"{V:,}"


def table(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    """Markdown (columns after the first two right-aligned) or aligned plain text."""
    if markdown:
        align = ["---" if i < 2 else "---:" for i in range(len(header))]
        return ["| " + " | ".join(line) + " |" for line in [header, align, *rows]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


# ---------------------------------------------------------------------------
# Columns: one per library and role; "best" is the fastest idiom of the library
# ---------------------------------------------------------------------------


def columns(op_info: dict) -> list[tuple[str, str]]:
    """The (library, role) columns of an op, in the report's order."""
    present = {(i["library"], i["role"]) for i in op_info["idioms"].values()}
    return [
        (library, role)
        for library in ORDER
        for role in ("common", "best")
        if (library, role) in present
    ]


def column_title(op_info: dict, library: str, role: str) -> str:
    names = [
        key.split(":", 1)[1]
        for key, i in op_info["idioms"].items()
        if i["library"] == library and i["role"] == role
    ]
    if library == "tinyllm":
        return "vs tinyllm " + "/".join(names)
    if role == "best":
        return f"vs {LIBRARIES[library]} best ({', '.join(names)})"
    return f"vs {LIBRARIES[library]} {'/'.join(names)}"


def legend(op_info: dict) -> str:
    parts = []
    for library, role in columns(op_info):
        idioms = [
            f"{key.split(':', 1)[1]}: {i['label']}"
            for key, i in op_info["idioms"].items()
            if i["library"] == library and i["role"] == role
        ]
        what = f"{LIBRARIES[library]} {role}" if library != "tinyllm" else "tinyllm"
        if role == "best" and library != "tinyllm":
            what += " (the fastest of these and the common one, per case)"
        parts.append(f"{what}: " + "; ".join(idioms))
    return ". ".join(parts) + "."


def cell(records: list[dict], library: str, role: str) -> str:
    """The ratio of a column in one case; for "best", the winning idiom's name too."""
    chosen = [
        r
        for r in records
        if r["library"] == library
        and r["role"] != "measured"  # tinyllm's own call is the reference, not a variant
        and (role == "best" or r["role"] == role)
    ]
    if not chosen:
        return "–"
    best = min(chosen, key=lambda r: r["ratio"])
    tiny = next(r for r in records if r["idiom"] == "tinyllm")
    text = ratio(best["ratio"], max(best["spread"], tiny["spread"]) > NOISY)
    if role == "best" and len(chosen) > 1:
        text += f" {best['idiom'].split(':', 1)[1]}"
    return text


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def header(results: dict) -> list[str]:
    m = results["machine"]
    cpu, v, threads = m["cpu"], m["versions"], m["threads"]
    missing = [name for name, version in v.items() if not version]
    lines = [
        f"tinyllm bench ({results['mode']}): {cpu['model']}, "
        f"{cpu.get('usable_cpus', cpu['logical_cpus'])} usable CPUs, {m['platform']}",
        "versions: "
        + ", ".join(f"{name} {version}" for name, version in v.items() if version)
        + (f"; not installed: {', '.join(missing)}" if missing else ""),
        f"threads: tinyllm 1, PyTorch {threads['torch'] or '–'}, "
        f"NumPy's BLAS {threads['numpy_blas'] or 'not limited'}; BLAS: {m['blas']['summary']}",
        f"method: median of up to {results['plan']['rounds']} interleaved rounds per case "
        f"(at most {results['plan']['budget']:g} s of them), samples of "
        f"≥ {results['plan']['min_time'] * 1e3:g} ms; took {results['seconds']:.0f} s. "
        "ratio = the idiom's time ÷ tinyllm's (3× = tinyllm takes a third of the time), "
        "from this one run.",
    ]
    lines += [f"note: {note}" for note in results["notes"]]
    lines += [f"not run: {s['op']}: {s['reason']}" for s in results["skipped"] if "idiom" not in s]
    if any("idiom" in s and s["op"] != "generate" for s in results["skipped"]):
        lines.append(f"Python: not timed above {PYTHON_MAX:,} numbers (–).")
    return lines + [""]


def op_sections(results: dict, markdown: bool) -> list[str]:
    by_case: dict[tuple, list[dict]] = defaultdict(list)
    for r in results["results"]:
        if r["op"] != "generate":
            by_case[(r["op"], r["family"], r["V"], r["dtype"])].append(r)
    lines: list[str] = []
    for op, info in results["ops"].items():
        cases = [(key, recs) for key, recs in by_case.items() if key[0] == op]
        if not cases:
            continue
        cols = columns(info)
        dtypes = len({key[3] for key, _ in cases}) > 1
        head = ["family", "V"] + (["dtype"] if dtypes else []) + ["tinyllm µs"]
        head += [column_title(info, library, role) for library, role in cols]
        rows = []
        for (_, family, V, dtype), recs in cases:
            tiny = next(r for r in recs if r["idiom"] == "tinyllm")
            rows.append(
                [FAMILIES.get(family, family), size(V)]
                + ([dtype] if dtypes else [])
                + [us(tiny["seconds"])]
                + [cell(recs, library, role) for library, role in cols]
            )
        title = info["title"] + ("" if dtypes else f", {cases[0][0][3]}")
        lines += [f"## {title}" if markdown else title, ""]
        lines += table(head, rows, markdown) + ["", legend(info), ""]
    return lines


GENERATION_ORDER = ("blog", "large", "8k-h128", "32k-h64")


def generation_cell(records: list[dict], row: dict, library: str, **match) -> str:
    """The fastest of ``library``'s idioms (with ``match``ed fields) at the row's model
    and batch, as its time per token ÷ the row's, and the idiom's name when it has
    several; "–" when none ran."""
    chosen = [
        r
        for r in records
        if r["library"] == library
        and r["family"] == row["family"]
        and r["batch"] == row["batch"]
        and all(r[k] == v for k, v in match.items())
    ]
    if not chosen:
        return "–"
    best = min(chosen, key=lambda r: r["seconds"])
    text = ratio(best["seconds"] / row["seconds"], max(best["spread"], row["spread"]) > NOISY)
    names = {r["idiom"] for r in chosen}
    return text + (f" {best['idiom'].split(':', 1)[1]}" if len(names) > 1 else "")


def generation_section(results: dict, markdown: bool) -> list[str]:
    """One row per tinyllm variant (model, weight format, batch, threads): tokens/s,
    W2's read rate next to the read floor, the gain over one prompt, and the ratios to
    the NumPy, PyTorch and Python loops at the same batch size."""
    records = [r for r in results["results"] if r["op"] == "generate"]
    skipped = [s for s in results["skipped"] if s.get("op") == "generate" and "idiom" in s]
    if not records and not skipped:
        return []
    order = {name: i for i, name in enumerate(GENERATION_ORDER)}
    tiny = sorted(
        (r for r in records if r["library"] == "tinyllm"),
        key=lambda r: (order.get(r["family"], len(order)), r["batch"], r["threads"]),
    )
    head = [
        "model", "format", "B", "threads", "tinyllm tokens/s", "W2 MiB", "W2 GB/s",
        "read floor GB/s", "× B=1", "vs NumPy best", "vs NumPy x@W1@W2",
        "vs PyTorch float32", "vs PyTorch bfloat16", "vs Python loop",
    ]  # fmt: skip
    rows = []
    for r in tiny:
        single = next(
            (
                o
                for o in tiny
                if (o["family"], o["dtype"], o["threads"], o["batch"])
                == (r["family"], r["dtype"], r["threads"], 1)
            ),
            None,
        )
        floor, rate = r.get("read_floor_gb_per_s"), r.get("gb_per_s")
        mib = r["w2_bytes"] / 2**20
        rows.append(
            [
                r["family"],
                r["dtype"],
                str(r["batch"]),
                str(r["threads"]),
                si(1 / r["seconds"]),
                f"{mib:.3g}" if mib >= 0.01 else "< 0.01",
                (f"{rate:.3g}" if rate else "–") + (f" ({rate / floor:.0%})" if floor else ""),
                f"{floor:.3g}" if floor else "–",
                ratio(single["seconds"] / r["seconds"]) if single and r["batch"] > 1 else "–",
                generation_cell(records, r, "numpy", role="best"),
                generation_cell(records, r, "numpy", role="common"),
                generation_cell(records, r, "torch", dtype="float32"),
                generation_cell(records, r, "torch", dtype="bfloat16"),
                generation_cell(records, r, "python"),
            ]
        )
    title = (
        "Generation: tokens/s of TinyLM.generate per weight format, batch size B and "
        "thread count, against the same model step in NumPy, PyTorch and plain Python"
    )
    lines = [f"## {title}" if markdown else title, ""]
    if rows:
        lines += table(head, rows, markdown) + [""]
    from tinyllm.bench.generation import MODELS

    shown = dict.fromkeys(r["family"] for r in tiny)
    idioms: dict[str, str] = {}
    for r in records:
        if r["library"] != "tinyllm" and r.get("label"):
            idioms.setdefault(r["idiom"], r["label"])
    lines += [
        "Models: "
        + "; ".join(f"{name}: {MODELS[name][1]}" for name in shown if name in MODELS)
        + ". Random weights from seed 0, except the blog's.",
        "tokens/s: all B sequences together. W2 GB/s: W2's bytes in that format ÷ the "
        "time of one step (each step reads W2 once, for the whole batch), and the share "
        "of the read floor: the fastest plain read of a buffer of W2's size on one core "
        "(tinyllm._linalg._read_bandwidth_probe, best of several runs); both for W2 of "
        "1 MiB or more. × B=1: tokens/s "
        "÷ the same format's with one prompt. vs X: X's time per token ÷ tinyllm's, at "
        "the same B, in the same interleaved rounds; NumPy and PyTorch float32 run the "
        "float32 weights whatever tinyllm's format; the fastest idiom of each column is "
        "named when it has several.",
        "Idioms: " + "; ".join(f"{key}: {label}" for key, label in idioms.items()) + ".",
    ]
    lines += [f"not run: {s['family']} {s['idiom']}: {s['reason']}" for s in skipped]
    return lines + [""]


def targets_section(results: dict, markdown: bool) -> list[str]:
    rows = []
    for t in results["targets"]:
        worst = t["worst"]
        where = (
            f"{FAMILIES.get(worst['family'], worst['family'])}, V={size(worst['V'])}"
            if worst
            else "–"
        )
        if worst and "batch" in worst:  # generation: the model, tinyllm's format, B
            where = f"{worst['family']}, {worst['dtype']}, B={worst['batch']}"
        rows.append(
            [
                t["goal"],
                t["vs"],
                ratio(worst["ratio"]) if worst else "–",
                where,
                f"{t['met']}/{t['cases']}",
                t["status"],
            ]
        )
    title = "Targets: the worst case of each (every family and size it applies to)"
    return (
        [f"## {title}" if markdown else title, ""]
        + table(["target", "vs", "worst", "where", "met", "status"], rows, markdown)
        + [""]
    )


def render(results: dict, markdown: bool = False) -> str:
    """The whole report: header, one table per op, generation, targets."""
    lines = header(results)
    lines += op_sections(results, markdown)
    lines += generation_section(results, markdown)
    lines += targets_section(results, markdown)
    return "\n".join(lines).rstrip() + "\n"


def write_json(results: dict, path) -> None:
    """The results as JSON, replacing ``path`` atomically."""
    write_text(path, json.dumps(results, indent=1) + "\n")


# ---------------------------------------------------------------------------
# The plot
# ---------------------------------------------------------------------------


def plot(results: dict, path) -> None:
    """Ratio against the best NumPy idiom vs V, one panel per op, one line per family.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    from tinyllm.plot import require_matplotlib

    Figure, FigureCanvasAgg = require_matplotlib()
    best: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in results["results"]:
        if r["library"] == "numpy" and r["dtype"] == "float32" and r["op"] != "generate":
            line = best[r["op"]][r["family"]]
            line[r["V"]] = min(line.get(r["V"], float("inf")), r["ratio"])
    panels = list(best)
    cols = min(3, max(len(panels), 1))
    rows = max(-(-len(panels) // cols), 1)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    FigureCanvasAgg(fig)
    for n, op in enumerate(panels, 1):
        ax = fig.add_subplot(rows, cols, n)
        for family, points in best[op].items():
            xs = sorted(points)
            ax.plot(
                xs, [points[V] for V in xs], marker="o", ms=3, label=FAMILIES.get(family, family)
            )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(results["ops"].get(op, {}).get("title", op), fontsize=7)
        ax.set_xlabel("V", fontsize=8)
        ax.tick_params(labelsize=7)
        if n == 1:
            ax.legend(fontsize=6)
    fig.suptitle("tinyllm's speed-up over the best NumPy idiom (float32; above grey: faster)")
    fig.tight_layout()
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=110)
