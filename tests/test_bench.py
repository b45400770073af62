"""tinyllm bench (tinyllm/bench/): the baselines are fair, the command runs and reports.

A baseline that keeps other tokens than tinyllm is not a baseline: every NumPy,
PyTorch and plain-Python filter must keep exactly what ``tinyllm.filter_logits``
keeps, on every logit family (ties, -inf masks, flat and peaked rows), and draw only
from it. Then a tiny run of ``tinyllm bench`` must print a well-formed table and
write a well-formed JSON, and bad options must be one line of error and status 2.
"""

import json
import math
import random
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.bench import families, generation, models, ops, report, runner, targets
from tinyllm.bench import numpy_idioms as npi
from tinyllm.bench import python_idioms as pyi
from tinyllm.cli import main

try:
    from tinyllm.bench import torch_idioms as tmi
except ImportError:  # PyTorch is optional
    tmi = None

ROOT = Path(__file__).resolve().parent.parent
SIZES = (5, 1000, 4096)
DTYPES = ("float32", "float64")


def supports(keyword: str) -> bool:
    """Whether this build's filter_logits takes ``keyword`` (issue 11's new ones may not)."""
    try:
        tinyllm.filter_logits(np.zeros(3), **{keyword: 0.9 if keyword != "history" else [0]})
    except TypeError:
        return False
    return True


def tinyllm_kept(x: np.ndarray, **options) -> set[int]:
    return set(np.flatnonzero(np.isfinite(tinyllm.filter_logits(x, **options))).tolist())


# ---------------------------------------------------------------------------
# Each filter's kept set, by every idiom
# ---------------------------------------------------------------------------


def kept_sets(name: str, param, x: np.ndarray) -> dict[str, set[int]]:
    """{idiom: the set it keeps} for the filter ``name``, every library."""
    xl = x.tolist()
    numpy_kept = {
        "top_k": {
            "argsort": npi.top_k_argsort_kept,
            "partition": npi.top_k_partition_kept,
            "argpartition": npi.top_k_argpartition_kept,
        },
        "top_p": {
            "argsort": npi.top_p_argsort_kept,
            "sort": lambda x, p: npi.TopPSort(len(x), x.dtype).kept(x, p),
            "partition": lambda x, p: npi.TopPPartition(len(x), x.dtype).kept(x, p),
        },
        "min_p": {"mask": npi.min_p_mask_kept, "threshold": npi.min_p_threshold_kept},
        "typical_p": {
            "argsort": npi.typical_argsort_kept,
            "partition": npi.typical_partition_kept,
        },
    }[name]
    found = {f"numpy:{k}": set(np.asarray(f(x, param)).tolist()) for k, f in numpy_kept.items()}
    python_kept = {
        "top_k": pyi.top_k_kept,
        "top_p": pyi.top_p_kept,
        "min_p": pyi.min_p_kept,
        "typical_p": pyi.typical_kept,
    }[name]
    found["python"] = set(python_kept(xl, param))
    if tmi is not None:
        scores = {
            "top_k": tmi.top_k_scores,
            "top_p": tmi.top_p_scores,
            "min_p": tmi.min_p_scores,
            "typical_p": tmi.typical_scores,
        }[name](tmi.tensor(x), param)
        found["torch"] = set(np.flatnonzero(np.isfinite(scores.numpy())).tolist())
    return found


FILTERS = (("top_k", ops.TOP_K), ("top_p", ops.TOP_P), ("min_p", ops.MIN_P))


@pytest.mark.parametrize("family", families.FAMILIES)
@pytest.mark.parametrize("V", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "param"), FILTERS)
def test_every_idiom_keeps_what_tinyllm_keeps(family, V, dtype, name, param):
    x = families.logits(family, V, dtype)
    want = tinyllm_kept(x, **{name: param})
    for idiom, got in kept_sets(name, param, x).items():
        assert got == want, f"{idiom}: {len(got - want)} extra, {len(want - got)} missing"


# Ties at the boundary, -inf masks, a row with one finite logit; k beyond V.
CRAFTED = [
    ([1.0, 3.0, 3.0, 3.0, 0.0, -math.inf, 3.0], "top_k", 2),
    ([1.0, 3.0, 3.0, 3.0, 0.0, -math.inf, 3.0], "top_k", 50),
    ([2.0, 2.0, 2.0, 2.0], "top_p", 0.6),
    ([0.0, -math.inf, 5.0, 5.0, -1.0], "top_p", 0.3),
    ([-math.inf, -math.inf, 4.0, -math.inf], "top_p", 0.9),
    ([-math.inf, -math.inf, 4.0, -math.inf], "top_k", 3),
    ([-math.inf, -math.inf, 4.0, -math.inf], "min_p", 0.5),
    ([0.0, math.log(0.05) + 1e-9, math.log(0.05) - 1e-9, -math.inf], "min_p", 0.05),
]


@pytest.mark.parametrize(("row", "name", "param"), CRAFTED)
def test_ties_and_masks(row, name, param):
    x = np.array(row)
    want = tinyllm_kept(x, **{name: param})
    for idiom, got in kept_sets(name, param, x).items():
        assert got == want, idiom


@settings(max_examples=60, deadline=None)
@given(
    row=st.lists(
        st.sampled_from([-math.inf, -2.0, 0.0, 1.0, 1.5, 3.0]), min_size=2, max_size=40
    ).filter(lambda r: any(v > -math.inf for v in r)),
    k=st.integers(1, 45),
    q=st.sampled_from([0.01, 0.3, 0.9]),
)
def test_top_k_and_min_p_on_many_ties(row, k, q):
    """Few distinct values: ties everywhere, at every threshold."""
    x = np.array(row)
    for name, param in (("top_k", k), ("min_p", q)):
        want = tinyllm_kept(x, **{name: param})
        for idiom, got in kept_sets(name, param, x).items():
            assert got == want, (name, idiom)


@pytest.mark.parametrize("family", families.FAMILIES)
@pytest.mark.parametrize("V", SIZES)
def test_typical_idioms_agree(family, V):
    """Every typical-p idiom keeps the same set, and tinyllm's once it has typical_p."""
    x = families.logits(family, V, "float64")
    found = kept_sets("typical_p", ops.TYPICAL_P, x)
    first = found["numpy:argsort"]
    assert first and all(x[i] > -math.inf for i in first)
    for idiom, got in found.items():
        assert got == first, idiom
    if supports("typical_p"):
        assert first == tinyllm_kept(x, typical_p=ops.TYPICAL_P)


def test_typical_by_hand():
    """p = (0.5, 0.25, 0.125, 0.125): H = 1.75 bits; |-log2 p - H| = 0.75, 0.25, 1.25,
    1.25. By distance: token 1 (0.25), token 0 (0.5 more: 0.75 >= 0.7)."""
    x = np.log(np.array([0.5, 0.25, 0.125, 0.125]))
    for idiom, got in kept_sets("typical_p", 0.7, x).items():
        assert got == {0, 1}, idiom


# ---------------------------------------------------------------------------
# The draws: only from the kept set; the custom draws follow the distribution
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["normal-1", "masked", "equal", "zipf"])
def test_filter_draws_stay_in_the_kept_set(family):
    x = families.logits(family, 1000, "float32")
    for name, param in (*FILTERS, ("typical_p", ops.TYPICAL_P)):
        kept = kept_sets(name, param, x)["numpy:argsort" if name != "min_p" else "numpy:mask"]
        op = next(o for o in ops.build_ops() if o.name == name)
        row = ops.Row(x)
        for idiom in op.idioms:
            draw = idiom.make(row)
            drawn = {int(draw()) for _ in range(40)}
            assert drawn <= kept, (name, idiom.key)


def frequencies(draw, n: int, V: int) -> np.ndarray:
    return np.bincount([int(draw()) for _ in range(n)], minlength=V) / n


@pytest.mark.parametrize("dtype", DTYPES)
def test_best_plain_draws_follow_the_distribution(dtype):
    """cumsum, block and torch draws against softmax(x / T): within 5 standard errors."""
    x = np.array([2.0, -math.inf, 0.5, 1.0, 0.0, 1.5, -1.0] * 5, dtype=dtype)  # > 1 block
    T, n = ops.TEMPERATURE, 5_000
    p = npi.softmax(x.astype(np.float64) / T)
    makers = [npi.temperature_cumsum, npi.temperature_blocks, npi.temperature_choice]
    draws = [make(x, T, np.random.default_rng(0)) for make in makers]
    draws += [npi.sample_blocks(p, np.random.default_rng(0))]
    draws += [pyi.temperature(x.tolist(), T, random.Random(0))]
    if tmi is not None:
        draws += [tmi.temperature_cumsum(tmi.tensor(x), T, tmi.generator(0))]
    error = 5 * np.sqrt(p * (1 - p) / n) + 1e-12
    for draw in draws:
        assert np.all(np.abs(frequencies(draw, n, len(x)) - p) <= error)


def test_block_draw_reaches_every_block():
    """V not a multiple of the block: the tail block and the first are drawn too."""
    V = 1000
    w = np.zeros(V)
    w[[0, 517, V - 1]] = 1.0
    draw, rng = npi.BlockDraw(V, w.dtype), np.random.default_rng(0)
    assert {draw(w, rng.random()) for _ in range(300)} == {0, 517, V - 1}


@pytest.mark.parametrize("family", families.FAMILIES)
def test_greedy_idioms_pick_tinyllms_token(family):
    x = families.logits(family, 1000, "float32")
    want = tinyllm.sample_logits(x, temperature=0)
    op = next(o for o in ops.build_ops() if o.name == "greedy")
    for idiom in op.idioms:
        assert idiom.make(ops.Row(x))() == want, idiom.key


@pytest.mark.parametrize("family", ["normal-1", "masked", "trained"])
def test_penalties_match(family):
    """The penalised logits of every idiom; tinyllm's too once it has the keywords."""
    row = ops.history_row(family, 1000, "float64")
    x, window, r = row.x, row.window, ops.REPETITION_PENALTY
    y = npi.penalize(x, window, r, np.empty_like(x))
    seen = set(window.tolist())
    for i in range(len(x)):
        if i not in seen or x[i] == -math.inf:
            assert y[i] == x[i]
        else:
            assert y[i] == (x[i] / r if x[i] > 0 else x[i] * r)
    assert pyi.penalize(x.tolist(), window.tolist(), r) == y.tolist()
    if tmi is not None:
        got = tmi.penalty_scores(tmi.tensor(x), tmi.tensor(window), r).numpy()
        assert np.array_equal(got, y)
    if supports("history"):
        T = ops.TEMPERATURE
        options = dict(repetition_penalty=r, penalty_last_n=ops.PENALTY_LAST_N)
        got = tinyllm.filter_logits(x, temperature=T, history=row.extra["history"], **options)
        assert np.allclose(got, y / T, rtol=1e-12)


def test_unsupported_ops_are_the_missing_keywords():
    """typical_p and the penalties are skipped exactly while sample_logits lacks them."""
    by_name = {op.name: op for op in ops.build_ops()}
    assert (ops.unsupported(by_name["typical_p"]) is None) == supports("typical_p")
    assert (ops.unsupported(by_name["penalties"]) is None) == supports("history")
    for name in ("temperature", "greedy", "top_k", "top_p", "min_p", "sample", "softmax"):
        assert ops.unsupported(by_name[name]) is None


# ---------------------------------------------------------------------------
# Families and targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", families.FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_families_are_seeded_rows(family, dtype):
    x = families.logits(family, 1001, dtype)
    assert x.shape == (1001,) and x.dtype == dtype and x.flags.c_contiguous
    assert np.array_equal(x, families.logits(family, 1001, dtype))
    assert not np.isnan(x).any() and not (x == np.inf).any()
    masked = np.count_nonzero(x == -np.inf)
    assert masked == (500 if family == "masked" else 0)
    assert (np.ptp(x[x > -np.inf]) == 0) == (family == "equal")
    with pytest.raises(ValueError, match="unknown logit family"):
        families.logits("nope", 10)


def test_targets_name_the_worst_case():
    def record(family, V, library, role, ratio):
        return dict(op="top_p", family=family, V=V, dtype="float32", idiom=f"{library}:x",
                    library=library, role=role, ratio=ratio)  # fmt: skip

    results = [
        record("equal", 32_000, "numpy", "best", 2.0),
        record("equal", 32_000, "numpy", "common", 1.5),  # best = the faster: 1.5
        record("zipf", 10**6, "numpy", "best", 4.0),
        record("zipf", 1000, "numpy", "best", 0.5),  # below 32k: not this target's
    ]
    best = next(t for t in targets.targets() if t.op == "top_p" and t.role == "best")
    row = targets.check(best, results)
    assert row["status"] == "NOT MET" and (row["met"], row["cases"]) == (1, 2)
    assert row["worst"] == {"ratio": 1.5, "family": "equal", "V": 32_000, "dtype": "float32"}
    row = targets.check(best, [r for r in results if r["family"] == "zipf"])
    assert row["status"] == "MET"
    assert targets.check(best, [])["status"] == "not measured"


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

TINY = ["bench", "--sizes", "5", "--rounds", "1", "--min-time", "0", "--progress", "off"]
RECORD_FIELDS = {"op", "family", "V", "dtype", "idiom", "library", "role", "seconds", "ratio"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run (V = 5, one round) with --json and --markdown, shared by the tests."""
    path = tmp_path_factory.mktemp("bench") / "results.json"
    # Not the V = 32k model's generation: its plain-Python copy takes seconds to build.
    status = main([*TINY, "--json", str(path), "--markdown", "--only", "^(?!generate large)"])
    return status, path


def test_tiny_run_writes_well_formed_json(tiny_run):
    status, path = tiny_run
    assert status == 0
    results = json.loads(path.read_text())
    assert results["schema"] == runner.SCHEMA and results["mode"] == "quick"
    assert {"cpu", "platform", "versions", "threads", "blas"} <= set(results["machine"])
    assert results["machine"]["threads"]["tinyllm"] == 1
    if tmi is not None:
        assert results["machine"]["threads"]["torch"] == 1
    records = results["results"]
    assert records and all(set(r) >= RECORD_FIELDS for r in records)
    assert all(r["seconds"] > 0 and r["ratio"] > 0 for r in records)
    cases: dict[tuple, dict[str, dict]] = {}
    for r in records:
        cases.setdefault((r["op"], r["family"], r["V"], r["dtype"]), {})[r["idiom"]] = r
    skipped = {s["op"] for s in results["skipped"] if "idiom" not in s}
    for op in ops.build_ops():
        measured = [key for key in cases if key[0] == op.name]
        if op.name in skipped:
            assert not measured
            continue
        expected = len(families.FAMILIES) if op.every_family else 1
        assert len(measured) == expected, op.name
        for key in measured:
            contenders = cases[key]
            assert contenders["tinyllm"]["ratio"] == 1.0
            assert set(contenders) == {"tinyllm"} | {i.key for i in op.idioms}
            for r in contenders.values():
                assert r["ratio"] == pytest.approx(r["seconds"] / contenders["tinyllm"]["seconds"])
    generated = [r for r in records if r["op"] == "generate"]
    assert {r["family"] for r in generated} == {"blog"}
    assert all(set(r) >= RECORD_FIELDS | {"batch", "threads", "h", "w2_bytes"} for r in generated)
    blog = {r["idiom"]: r for r in generated}
    assert set(blog) == {"tinyllm", "numpy:loop", "python:loop"} | {
        f"numpy:{idiom}" for idiom in models.NUMPY_LOOPS
    }
    assert blog["tinyllm"]["dtype"] == "float64" and blog["tinyllm"]["ratio"] == 1.0
    assert "gb_per_s" not in blog["tinyllm"]  # W2 of 40 bytes: no read rate
    goals = {t["goal"]: t for t in results["targets"]}
    assert goals["generation, blog model: ≥ 30× plain Python"]["cases"] == 1
    assert {t["status"] for t in results["targets"]} <= {"MET", "NOT MET", "not measured"}


def test_tiny_run_prints_markdown_tables(tiny_run, capsys):
    status = main([*TINY, "--only", "top_p|softmax normal-1|generate blog", "--markdown"])
    out, err = capsys.readouterr()
    assert status == 0 and "Traceback" not in err
    assert "## sample_logits(x, top_p=0.9): one draw, float32" in out
    header = next(line for line in out.splitlines() if line.startswith("| family | V |"))
    assert "vs NumPy argsort" in header and "vs NumPy best (sort, partition)" in header
    assert "vs Python loop" in header
    rows = [line for line in out.splitlines() if line.startswith("| ") and "×" in line]
    assert len(rows) >= len(families.FAMILIES) + 2
    assert all(line.count("|") == header.count("|") for line in rows[: len(families.FAMILIES)])
    assert "| blog | float64 | 1 | 1 |" in out and "## Targets" in out
    assert "## Generation: tokens/s of TinyLM.generate per weight format" in out
    generation_head = next(line for line in out.splitlines() if line.startswith("| model |"))
    for column in ("tinyllm tokens/s", "W2 GB/s", "read floor GB/s", "vs NumPy best"):
        assert f"| {column} |" in generation_head


def test_progress_bar_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "ratios.png"
    argv = [*TINY[:-2], "--progress", "on", "--only", "greedy normal-1", "--plot", str(png)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "\r[" in err and "1/1" in err and f"wrote {png}" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sample_logits(x, temperature=0)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sizes", "1"], "must be >= 2"),
        (["--sizes", "x"], "must be an integer"),
        (["--sizes", str(10**9)], "must be at most"),
        (["--rounds", "0"], "must be >= 1"),
        (["--min-time", "-1"], "--min-time must be between 0 and 60"),
        (["--min-time", "nan"], "--min-time must be between 0 and 60"),
        (["--only", "("], "is not a regular expression"),
        (["--progress", "sometimes"], "invalid choice"),
        (["--json", "{dir}"], "is a directory"),
        (["--json", "{dir}/a.json", "--plot", "{dir}/a.json"], "are the same file"),
        (["--json", "{dir}/missing/a.json"], "folder does not exist"),
    ],
)
def test_bad_options_are_one_line_and_status_2(argv, message, tmp_path, capsys):
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    try:
        status = main(["bench", *argv])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.startswith("tinyllm bench: error: ") and err.count("\n") == 1
    assert message in err


def test_plot_without_matplotlib_is_an_error_before_any_work(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    png = tmp_path / "x.png"
    status = main(["bench", "--plot", str(png), "--only", "nothing"])
    _, err = capsys.readouterr()
    assert status == 2 and "matplotlib" in err and err.count("\n") == 1
    assert not png.exists()


@pytest.mark.skipif(not (ROOT / "bench" / "run.py").exists(), reason="a checkout only")
def test_bench_run_py_is_the_same_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.json"
    argv = ["run.py", *TINY[1:], "--only", "greedy", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "bench" / "run.py"), run_name="__main__")
    assert done.value.code == 0
    assert "sample_logits(x, temperature=0)" in capsys.readouterr().out
    assert {r["op"] for r in json.loads(out.read_text())["results"]} == {"greedy"}


# ---------------------------------------------------------------------------
# The read floor's probe
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.integers(0, 2**64 - 1), max_size=300), start=st.integers(0, 3))
def test_read_probe_ors_every_word(words, start):
    """Every word counts: the vector body, the tail, any length and alignment (a slice
    that starts 8 bytes into the array makes the vector loads unaligned)."""
    from tinyllm._linalg import _read_bandwidth_probe

    buffer = np.array([0] * start + words, dtype=np.uint64)[start:]
    want = int(np.bitwise_or.reduce(buffer)) if len(words) else 0
    assert _read_bandwidth_probe(buffer) == want


def test_read_probe_sees_one_bit_anywhere():
    from tinyllm._linalg import _read_bandwidth_probe

    words = np.zeros(1000, dtype=np.uint64)
    for at in (0, 15, 16, 17, 511, 999):
        words[:] = 0
        words[at] = 1 << (at % 64)
        assert _read_bandwidth_probe(words) == 1 << (at % 64)
    words.flags.writeable = False  # a read-only buffer is read as well
    assert _read_bandwidth_probe(words) == 1 << (999 % 64)


@pytest.mark.parametrize(
    ("buffer", "error"),
    [
        (np.ones(4, dtype=np.float64), ValueError),
        (np.ones(8, dtype=np.uint64)[::2], ValueError),
        (np.ones((2, 2), dtype=np.uint64), ValueError),
        ([1, 2], TypeError),
    ],
)
def test_read_probe_refuses_what_it_cannot_read(buffer, error):
    from tinyllm._linalg import _read_bandwidth_probe

    with pytest.raises(error):
        _read_bandwidth_probe(buffer)


# ---------------------------------------------------------------------------
# Generation: the loops compute the model's logits, formats, batches, the section
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    """d = 64, c = 8 as the large model, V = 4096, h = 64: W2 float32 is exactly 1 MiB."""
    return models.shape_model(4096, 64)


@pytest.mark.parametrize("idiom", list(models.NUMPY_LOOPS))
@pytest.mark.parametrize("batch", [1, 3])
def test_numpy_loops_compute_the_models_logits(small_model, idiom, batch):
    model, prompt = small_model
    loop = models.NumpyLoop(model, idiom, batch)
    models.check_same_model(model, prompt, loop)  # every row of the batch
    loop.W2 = loop.W2 * np.float32(1.01)  # a loop that computes something else is caught
    with pytest.raises(AssertionError, match="does not compute the model's logits"):
        models.check_same_model(model, prompt, loop)


def test_numpy_loops_draw_the_same_tokens(small_model):
    """The idioms differ in speed only: the same u gives the same tokens, one prompt or
    a batch (gemm rows against gemv), with cumsum or the block draw."""
    model, _ = small_model
    contexts = np.random.default_rng(0).integers(0, 4096, size=(5, 8))
    u = np.random.default_rng(1).random(5)
    batched = {
        idiom: models.NumpyLoop(model, idiom, 5).step(contexts, u) for idiom in models.NUMPY_LOOPS
    }
    single = [
        models.NumpyLoop(model, "dot", 1).step(contexts[b : b + 1], u[b : b + 1])[0]
        for b in range(5)
    ]
    for idiom, drawn in batched.items():
        assert drawn == single, idiom
    assert len(set(single)) > 1


def test_numpy_loop_generates_texts_of_n_tokens(small_model):
    model, prompt = small_model
    texts = models.NumpyLoop(model, "dot", 2).generate(
        [prompt, prompt], 4, np.random.default_rng(0)
    )
    assert len(texts) == 2 and all(len(t.split()) == 4 for t in texts)
    again = models.NumpyLoop(model, "dot", 2).generate(
        [prompt, prompt], 4, np.random.default_rng(0)
    )
    assert again == texts


@pytest.mark.skipif(tmi is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("idiom", ["cumsum", "multinomial"])
@pytest.mark.parametrize("batch", [1, 3])
def test_torch_loops(small_model, idiom, batch):
    model, prompt = small_model
    loop = tmi.TorchLoop(model, "float32", idiom, batch)
    models.check_same_model(model, prompt, loop)
    half = tmi.TorchLoop(model, "bfloat16", idiom, batch)
    want = model.logits(prompt)
    got = half.logits_of(np.array([prompt[-8:]] * batch)).float().numpy()
    assert np.all(np.abs(got - want) <= 0.03 * np.abs(want).max())  # bfloat16: 8 bits
    texts = loop.generate([prompt] * batch, 3, tmi.generator(0))
    assert len(texts) == batch and all(len(t.split()) == 3 for t in texts)


def test_w2_bytes_and_read_floor():
    assert generation.w2_bytes("float32", 256, 32_000) == 256 * 32_000 * 4
    assert generation.w2_bytes("bfloat16", 256, 32_000) == 256 * 32_000 * 2
    assert generation.w2_bytes("int8", 256, 32_000) == 256 * 32_000 + 4 * 32_000  # + scales
    floor = generation.read_floor(2**20, min_time=0.0)
    assert math.isfinite(floor) and 0.1 < floor < 10_000  # GB/s


def test_missing_formats_and_batches_are_skipped_with_the_reason(small_model, monkeypatch):
    model, prompt = small_model
    assert generation.in_format(model, "float32") == (model, None)
    monkeypatch.delattr(tinyllm.TinyLM, "quantize", raising=False)
    variant, why = generation.in_format(model, "int8")
    assert variant is None and "TinyLM.quantize is missing" in why
    monkeypatch.setattr(tinyllm.TinyLM, "generate", lambda self, p, n, rng=None: "a b")
    assert "returned str, not 2 texts" in generation.batch_unsupported(model, prompt)

    def refuses(self, prompt, n, rng=None):
        raise TypeError("a position must be an integer")

    monkeypatch.setattr(tinyllm.TinyLM, "generate", refuses)
    why = generation.batch_unsupported(model, prompt)
    assert "no batch of prompts" in why and "a position must be an integer" in why


def test_generation_case_times_every_format_and_batch(small_model, monkeypatch):
    monkeypatch.setitem(generation.MODELS, "small", (lambda: small_model, "V = 4096, h = 64"))
    case = generation.GenerationCase(
        "small", generation.FORMATS, (1, 2), (1, 2),
        tokens={"tinyllm": 2, "numpy": 2, "torch": 2, "python": 0},
    )  # fmt: skip
    records, skipped = generation.time_case(case, rounds=1, min_time=0.0, budget=None)
    expected = {"tinyllm threads=2"} | ({"torch"} if ops.torch_module() is None else set())
    assert {s["idiom"] for s in skipped} == expected  # (CI runs without PyTorch)
    tiny = {(r["dtype"], r["batch"]): r for r in records if r["library"] == "tinyllm"}
    assert set(tiny) == {(f, B) for f in generation.FORMATS for B in (1, 2)}
    for (fmt, B), r in tiny.items():
        assert r["threads"] == 1 and r["tokens_per_call"] == 2 * B and r["h"] == 64
        assert r["w2_bytes"] == generation.w2_bytes(fmt, 64, 4096)
        assert ("gb_per_s" in r) == ("read_floor_gb_per_s" in r) == (r["w2_bytes"] >= 2**20)
        if "gb_per_s" in r:  # bytes of one step ÷ its time
            assert r["gb_per_s"] == pytest.approx(r["w2_bytes"] / (r["seconds"] * B) / 1e9)
        assert r["ratio"] == pytest.approx(r["seconds"] / tiny[("float32", B)]["seconds"])
    idioms = {(r["idiom"], r["dtype"], r["batch"]) for r in records if r["library"] != "tinyllm"}
    want = {("numpy:loop", "float32", 1)}
    want |= {(f"numpy:{i}", "float32", B) for i in models.NUMPY_LOOPS for B in (1, 2)}
    if tmi is not None:
        torch_dtypes = ("float32", "bfloat16")
        want |= {
            (f"torch:{i}", d, B) for i in tmi.TORCH_LOOPS for d in torch_dtypes for B in (1, 2)
        }
    assert idioms == want
    results = {"results": records, "skipped": skipped}
    lines = report.generation_section(results, markdown=True)
    rows = [line for line in lines if line.startswith("| small |")]
    assert len(rows) == 8 and all(line.count("|") == lines[2].count("|") for line in rows)
    assert "| small | float16 | 2 | 1 |" in "\n".join(rows)
    assert "not run: small tinyllm threads=2: TinyLM.generate has no threads= option yet" in lines


def test_generation_targets():
    def record(library, dtype, batch, seconds, role="best", family="large"):
        return dict(op="generate", family=family, V=32_000, dtype=dtype, batch=batch, threads=1,
                    idiom=f"{library}:x", library=library, role=role, seconds=seconds)  # fmt: skip

    results = [
        record("tinyllm", "float32", 1, 1.0, "measured"),
        record("tinyllm", "float16", 1, 0.5, "measured"),
        record("tinyllm", "float32", 8, 0.2, "measured"),
        record("numpy", "float32", 1, 1.2),
        record("numpy", "float32", 1, 1.5, "common"),
        record("numpy", "float32", 8, 0.1),
    ]
    by_goal = {t.goal: t for t in targets.generation_targets(vnni=True)}
    f16 = targets.check_generation(by_goal["float16: ≥ 2.5× the best float32 NumPy loop"], results)
    assert f16["status"] == "NOT MET" and f16["worst"]["ratio"] == pytest.approx(1.2 / 0.5)
    assert f16["worst"]["batch"] == 1 and f16["worst"]["dtype"] == "float16"
    batch = targets.check_generation(
        by_goal["float32, 8 prompts: ≥ 4× one prompt's tokens/s"], results
    )
    assert batch["status"] == "MET" and batch["worst"]["ratio"] == pytest.approx(5.0)
    int8 = next(t for t in by_goal.values() if t.fmt == "int8")
    assert int8.needed == 5 and targets.check_generation(int8, results)["status"] == "not measured"
    assert next(t for t in targets.generation_targets(vnni=False) if t.fmt == "int8").needed == 2.5


def test_a_variant_slower_than_tinyllm_is_reported():
    """The tinyllm column of the penalties: tinyllm's own call is not its variant."""
    records = [
        dict(idiom="tinyllm", library="tinyllm", role="measured", ratio=1.0, spread=0.0),
        dict(idiom="tinyllm:no-penalties", library="tinyllm", role="best", ratio=1.05, spread=0.0),
    ]
    assert report.cell(records, "tinyllm", "best") == "1.05×"
