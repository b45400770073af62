"""The command line against the streams, signals, sizes and option values users bring.

Real processes (``python -m tinyllm``) for what only a process shows: a reader that
closes the pipe early, an encoding without "█" or "í", Ctrl-C, peak memory. In-process
``main(argv)`` for the rest, and hypothesis for random option values. The rule in every
case: exit 0, or one line on stderr and exit 2 (130 for Ctrl-C), never a traceback, and
no file changed that should not be.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm import TinyLM, TinyLMConfig, Vocab, _console, cli
from tinyllm.cli import main

from conftest import BLOG_PROBS

POSIX = os.name == "posix"
posix_only = pytest.mark.skipif(not POSIX, reason="pipes, signals and rusage as on POSIX")

# The folder that holds the tinyllm being tested (a checkout or site-packages), so the
# child processes import the same one.
ENV = {**os.environ, "PYTHONPATH": str(Path(tinyllm.__file__).resolve().parent.parent)}
TINYLLM = [sys.executable, "-m", "tinyllm"]

CORPUS = "¿el cielo es azul? sí, el cielo es azul.\nel hielo es frío; el mar es azul.\n" * 6


def run(capsys, *argv):
    """main(argv) in-process: (status, stdout, stderr); argparse's exit counts as a status."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, out, err, command):
    assert status == 2, err
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"tinyllm {command}: error: ") and "Traceback" not in err


def child(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*TINYLLM, *map(str, argv)], env=kwargs.pop("env", ENV), **kwargs)


# ---------------------------------------------------------------------------
# A reader that goes away
# ---------------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "el cielo es"],
        ["explain", "el cielo es", "--json"],
        ["sample", "el cielo es", "--draws", "300"],
        ["generate", "el cielo es", "-n", "1000000"],
        ["--help"],
    ],
)
def test_closed_stdout_ends_quietly(argv):
    """The reader closes the pipe at once (`| head -c 0`): no traceback, status 0."""
    p = child(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=30) == 0 and err == ""


@posix_only
def test_closed_stdout_mid_stream_stops_generating():
    """`generate -n 10**8 | head -c 200`: the output flows at once; when the reader
    goes, generation stops (long before the 10**8 tokens) with status 0."""
    p = child(
        "generate",
        "el cielo es",
        "-n",
        10**8,
        "--seed",
        0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert select.select([p.stdout], [], [], 20)[0], "no output within 20 s"
    first = p.stdout.read(200)
    p.stdout.close()
    assert p.wait(timeout=10) == 0
    assert first.decode().startswith("el cielo es ") and p.stderr.read() == b""


@posix_only
@pytest.mark.parametrize("progress", ["off", "on"])
def test_train_survives_a_closed_stderr(tmp_path, progress):
    """`tinyllm train 2>&1 | head`: the log's reader goes away; training goes on, the
    model is saved, status 0."""
    if progress == "on":
        pytest.importorskip("tqdm")
    out = tmp_path / "m.npz"
    p = child(
        "train",
        "--epochs",
        3,
        "--out",
        out,
        "--progress",
        progress,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stderr.close()
    stdout = p.stdout.read().decode()
    assert p.wait(timeout=60) == 0
    assert f"saved to {out}" in stdout and "3 epochs" not in stdout
    assert TinyLM.load(out).config.dim == 16


@posix_only
def test_stdout_and_stderr_closed_before_start(tmp_path):
    """`>&-` and `2>&-`: Python starts with no sys.stdout / sys.stderr at all."""
    out = tmp_path / "m.npz"
    for argv, status in (
        (["explain", "el cielo es"], 0),
        (["explain", "el mar es"], 2),
        (["train", "--epochs", "1", "--out", out], 0),
    ):
        p = subprocess.run(
            [*TINYLLM, *map(str, argv)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            timeout=60,
            preexec_fn=lambda: (os.close(1), os.close(2)),
        )
        assert p.returncode == status, argv
    assert out.exists()


# ---------------------------------------------------------------------------
# Encodings without "█", "í" or "—"
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "trained.npz"
    assert main(["train", "--epochs", "2", "--out", str(path), "-q", "--progress", "off"]) == 0
    return path


def plain_in(encoding: str, text: str) -> str:
    """``text`` as it must come out in ``encoding``: what it lacks, in plain characters."""

    def fits(ch):
        try:
            ch.encode(encoding)
        except UnicodeEncodeError:
            return False
        return True

    return "".join(ch if fits(ch) else _console.plain(ch) for ch in text)


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "el cielo es"],
        ["explain", "el cielo es", "--part", "1"],
        ["explain", "el cielo es", "--part", "2"],
        ["sample", "el cielo es", "--draws", "5", "--seed", "0"],
        ["generate", "el cielo es", "-n", "40", "--seed", "0"],
    ],
)
def test_encodings_without_the_characters(capsys, encoding, argv):
    """PYTHONIOENCODING=ascii or cp1252 (Windows redirections): the same text, with plain
    stand-ins for what the encoding lacks; status 0."""
    env = {**ENV, "PYTHONIOENCODING": encoding}
    p = subprocess.run([*TINYLLM, *argv], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    text = p.stdout.decode(encoding)  # it is that encoding, nothing else
    _, utf8, _ = run(capsys, *argv)
    assert text == plain_in(encoding, utf8)
    assert "█" not in text and ("#" in text) == ("█" in utf8)
    if encoding == "ascii" and argv[1:] == ["el cielo es"]:
        assert "Part 3 - vectors" in text and f"frio   {BLOG_PROBS[2]}  ############\n" in text


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "el cielo es", "--json"],
        ["generate", "el cielo es", "-n", "30", "--seed", "1", "--json"],
        ["sample", "el cielo es", "--draws", "7", "--seed", "2", "--json"],
    ],
)
def test_json_stays_exact_in_any_encoding(capsys, encoding, argv):
    env = {**ENV, "PYTHONIOENCODING": encoding}
    p = subprocess.run([*TINYLLM, *argv], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b""
    p.stdout.decode("ascii")  # \u escapes, valid UTF-8 too
    _, utf8, _ = run(capsys, *argv)
    assert json.loads(p.stdout) == json.loads(utf8)
    assert "frío" in json.dumps(json.loads(p.stdout), ensure_ascii=False)


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_train_and_errors_in_a_plain_encoding(tmp_path, encoding, trained_file):
    env = {**ENV, "PYTHONIOENCODING": encoding}
    corpus = tmp_path / "c.txt"
    corpus.write_text("—el cielo es azul… ¡sí!\n" * 10, encoding="utf-8")
    p = subprocess.run(
        [*TINYLLM, "train", str(corpus), "--epochs", "2", "--out", str(tmp_path / "m.npz")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0 and b"epoch   2" in p.stderr and b"saved to" in p.stdout
    p = subprocess.run(
        [*TINYLLM, "explain", "el cielo es frío.", "--model", str(trained_file)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stderr == b""
    p = subprocess.run(
        [*TINYLLM, "explain", "el mar es frío"], env=env, capture_output=True, timeout=60
    )
    err = p.stderr.decode(encoding)
    assert p.returncode == 2 and err.count("\n") == 1 and "unknown word 'mar'" in err


def test_transliteration_table():
    assert "".join(map(_console.plain, "█—…·íñÁ¿")) == "#-...*inA?"
    assert _console.plain("字") == "?"
    assert "azul █ frío".encode("ascii", _console.PLAIN_ERRORS) == b"azul # frio"
    assert "—…".encode("cp1252", _console.PLAIN_ERRORS) == "—…".encode("cp1252")  # it has them


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------
INTERRUPT_SECONDS = 0.5 + 0.5  # the limit, plus slack for a loaded test machine


def interrupt(p: subprocess.Popen) -> tuple[float, bytes, bytes]:
    start = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    return time.perf_counter() - start, out, err


def busy(p: subprocess.Popen, cpu_seconds: float) -> None:
    """Wait until the child has used ``cpu_seconds`` of CPU (a few times what starting
    Python and importing tinyllm take), or 2 s where /proc cannot tell."""
    stat = Path(f"/proc/{p.pid}/stat")
    if not stat.exists():
        time.sleep(2.0)
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") >= cpu_seconds:
            return
        time.sleep(0.05)
    raise AssertionError("the child did not get going within 60 s")


@posix_only
def test_ctrl_c_during_generate():
    p = child(
        "generate", "el cielo es", "-n", 10**8, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert select.select([p.stdout], [], [], 20)[0], "no output within 20 s"
    p.stdout.read(100)
    seconds, _, err = interrupt(p)
    assert p.returncode == 130 and seconds < INTERRUPT_SECONDS
    assert err == b"tinyllm generate: interrupted\n"


@posix_only
def test_ctrl_c_during_sample():
    p = child(
        "sample", "el cielo es", "--draws", 10**12, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    busy(p, cpu_seconds=1.0)  # past the imports, drawing (it prints at the end)
    seconds, out, err = interrupt(p)
    assert p.returncode == 130 and seconds < INTERRUPT_SECONDS
    assert out == b"" and err == b"tinyllm sample: interrupted\n"


@posix_only
def test_ctrl_c_during_train_leaves_the_previous_model(tmp_path):
    out = tmp_path / "model.npz"
    out.write_bytes(b"the previous model")
    out.chmod(0o640)
    p = child(
        "train", "--epochs", 100000, "--out", out, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stderr.readline().startswith(b"epoch   1"), "training did not start"
    seconds, stdout, err = interrupt(p)
    assert p.returncode == 130 and seconds < INTERRUPT_SECONDS
    assert (
        stdout == b"" and err.endswith(b"tinyllm train: interrupted\n") and b"Traceback" not in err
    )
    assert err.count(b"interrupted") == 1
    assert out.read_bytes() == b"the previous model" and out.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left


def test_interrupt_in_process_is_status_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TinyLM, "continuation", interrupted)  # what `generate` calls
    assert run(capsys, "generate", "el cielo es") == (130, "", "tinyllm generate: interrupted\n")


# ---------------------------------------------------------------------------
# Memory that does not grow with -n and --draws
# ---------------------------------------------------------------------------
def peak_rss_mb(*argv) -> float:
    """The peak RSS of `tinyllm ARGV > /dev/null`, measured by a fresh helper process."""
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, *TINYLLM, *map(str, argv)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return int(p.stdout) / (2**20 if sys.platform == "darwin" else 2**10)  # bytes / KiB


@posix_only
def test_generate_memory_does_not_grow_with_n():
    small = peak_rss_mb("generate", "el cielo es", "-n", 10**5, "--seed", 0)
    large = peak_rss_mb("generate", "el cielo es", "-n", 3 * 10**6, "--seed", 0)
    assert large < small + 20, (small, large)  # holding every token: 100+ MB more


@posix_only
def test_sample_memory_does_not_grow_with_draws():
    small = peak_rss_mb("sample", "el cielo es", "--draws", 10**4, "--seed", 0)
    large = peak_rss_mb("sample", "el cielo es", "--draws", 10**6, "--seed", 0)
    assert large < small + 8, (small, large)  # holding every draw: about 16 MB more


# ---------------------------------------------------------------------------
# Sizes refused before anything is allocated
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--batch-size", str(10**12)],
        ["train", "--dim", str(10**9)],
        ["train", "--hidden", str(10**9)],
        ["train", "--context", str(10**18)],
        ["train", "--dim", str(2**63 - 1), "--hidden", str(2**63 - 1)],
        ["sample", "el cielo es", "--draws", str(10**13), "--json"],
        ["generate", "el cielo es", "-n", str(10**13), "--json"],
        ["generate", "el cielo es", "-n", str(2**63 - 1), "--json"],
    ],
)
def test_sizes_that_cannot_fit_are_refused_with_the_size(tmp_path, capsys, argv):
    out = tmp_path / "m.npz"
    extra = ["--out", str(out), "-q"] if argv[0] == "train" else []
    start = time.perf_counter()
    status, stdout, err = run(capsys, *argv, *extra)
    assert time.perf_counter() - start < 10
    assert_one_line_error(status, stdout, err, argv[0])
    assert re.search(r"would need [\d.]+ [GTP]iB of memory; this machine has [\d.]+ [GTP]iB", err)
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "el cielo es", "-n", "9223372036854775808"],
        ["sample", "el cielo es", "--draws", str(10**30)],
        ["train", "--dim", str(10**400)],
        ["train", "--batch-size", "9" * 5000],
    ],
)
def test_counts_beyond_64_bits_are_a_clear_error(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert_one_line_error(status, out, err, argv[0])
    assert re.search(
        r"argument [-\w/]+: (must be at most 9223372036854775807|is too long a number)", err
    )
    assert len(err) < 200


def test_huge_n_streams_without_json(capsys, monkeypatch):
    """-n 2**63 - 1 is no error: the text streams (here cut short after 3 chunks)."""
    chunks = []
    real = cli._position_chunks

    def three_chunks(*args):
        for chunk in real(*args):
            chunks.append(chunk)
            yield chunk
            if len(chunks) == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_position_chunks", three_chunks)
    status, out, err = run(capsys, "generate", "el cielo es", "-n", 2**63 - 1, "--seed", 0)
    assert status == 130 and err == "tinyllm generate: interrupted\n"
    assert out.startswith("el cielo es ") and len(out.split()) == 3 + sum(map(len, chunks))


# ---------------------------------------------------------------------------
# Random option values: exit 0, or one line and exit 2
# ---------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(
        [
            "0",
            "-1",
            "-0",
            "+5",
            "1_0",
            "0x10",
            "1e3",
            "2.5",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e-320",
            "1e308",
            "1e9",
            "",
            " ",
            "٣",
            "9223372036854775808",
            str(10**30),
            str(-(10**30)),
            "1" * 5000,
        ]
    ),
    st.text(max_size=6),
)
HUGE_IS_SLOW = st.one_of(
    st.integers(-3, 40).map(str),  # counts that run long
    st.sampled_from(["-1", "", "nan", "1e3", "٣", "x", str(-(10**30))]),
)
INTERNAL = re.compile(
    r"\b(?:softmax|log_softmax|filter_logits|sample_logits|sample|generate|"
    r"draw_next|as_generator|TrainState|Generation|project|dot)(?:\.\w+)*: "
)


def check_outcome(status, out, err, command):
    if status == 0:
        assert "Traceback" not in err
        return
    assert_one_line_error(status, out, err, command)
    message = err.split(": error: ", 1)[1]
    assert not INTERNAL.search(message), err
    assert "ssize_t" not in message and "C long" not in message, err


def options(draw, table: dict) -> list[str]:
    argv = []
    for option, values in table.items():
        if draw(st.booleans()):
            argv += [option, draw(values)]
    return argv


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.data())
def test_fuzz_generate_and_sample(capsys, data):
    command = data.draw(st.sampled_from(["generate", "sample"]))
    table = {"--seed": NUMBERS, "--temperature": NUMBERS}
    if command == "generate":
        table |= {"-n": HUGE_IS_SLOW, "--top-k": NUMBERS, "--top-p": NUMBERS, "--min-p": NUMBERS}
    else:
        table |= {"--draws": HUGE_IS_SLOW}
    json_flag = ["--json"] if data.draw(st.booleans()) else []
    argv = [command, "el cielo es", *options(data.draw, table), *json_flag]
    status, out, err = run(capsys, *argv)
    check_outcome(status, out, err, command)
    if status == 0 and json_flag:
        json.loads(out)


@FUZZ
@given(st.data())
def test_fuzz_explain(capsys, data):
    prompt = data.draw(st.one_of(st.just("el cielo es"), st.text(max_size=12)))
    argv = ["explain", prompt, *options(data.draw, {"--temperature": NUMBERS, "--part": NUMBERS})]
    if data.draw(st.booleans()):
        argv.append("--json")
    status, out, err = run(capsys, *argv)
    check_outcome(status, out, err, "explain")


SIZES = st.one_of(
    st.integers(-2, 12).map(str),  # no moderately large sizes: they are
    st.sampled_from(["", "nan", "1e3", str(10**12), str(10**40)]),
)  # slow, not wrong


@FUZZ
@given(st.data())
def test_fuzz_train(tmp_path_factory, capsys, data):
    folder = tmp_path_factory.mktemp("fuzz")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    table = {
        "--dim": SIZES,
        "--context": SIZES,
        "--hidden": SIZES,
        "--batch-size": SIZES,
        "--min-count": SIZES,
        "--lr": NUMBERS,
        "--warmup": NUMBERS,
        "--seed": NUMBERS,
        "--val-fraction": NUMBERS,
        "--momentum": NUMBERS,
        "--patience": NUMBERS,
        "--weight-decay": NUMBERS,
        "--optimizer": st.sampled_from(["adam", "sgd", "lbfgs"]),
        "--schedule": st.sampled_from(["constant", "linear", "cosine", ""]),
        "--dtype": st.sampled_from(["float32", "float64", "float16"]),
        "--epochs": st.sampled_from(["1", "0", "-1", "x"]),
    }
    argv = [
        "train",
        corpus,
        "--out",
        folder / "m.npz",
        "-q",
        "--progress",
        "off",
        "--epochs",
        "1",
        *options(data.draw, table),
    ]
    status, out, err = run(capsys, *argv)
    check_outcome(status, out, err, "train")
    assert (folder / "m.npz").exists() == (status == 0)


# ---------------------------------------------------------------------------
# Training that diverges
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer, lr", [("adam", "1e9"), ("sgd", "1e9")])
def test_divergence_exits_2_and_keeps_the_previous_model(tmp_path, capsys, optimizer, lr):
    out = tmp_path / "model.npz"
    out.write_bytes(b"the previous model")
    out.chmod(0o644)
    status, stdout, err = run(
        capsys, "train", "--lr", lr, "--optimizer", optimizer, "--epochs", "3", "--out", out, "-q"
    )
    assert_one_line_error(status, stdout, err, "train")
    assert re.search(r"stopped at step \d+ \(epoch \d\)", err)
    assert out.read_bytes() == b"the previous model" and out.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["model.npz"]


# ---------------------------------------------------------------------------
# Generation in chunks is generation in one call
# ---------------------------------------------------------------------------
def punctuated_model() -> TinyLM:
    vocab = Vocab.from_text(CORPUS)
    config = TinyLMConfig(vocab_size=len(vocab), dim=6, context=4, hidden=12, activation="tanh")
    return TinyLM.random(config, vocab, seed=3)


@pytest.mark.parametrize("make_model", [TinyLM.from_blog, punctuated_model])
@pytest.mark.parametrize(
    "sampling",
    [
        {},
        {"temperature": 0.7, "top_k": 4},
        {"top_p": 0.8},
        {"min_p": 0.2, "temperature": 1.5},
        {"temperature": 0},
    ],
)
def test_chunks_are_the_tokens_of_one_call(monkeypatch, make_model, sampling):
    model = make_model()
    context = model.context_positions([0, 1, 2, 3][: model.config.context])
    for n, largest in ((0, 5), (1, 5), (17, 4), (700, 5), (5000, 64), (9000, 4096)):
        monkeypatch.setattr(cli, "GENERATE_CHUNK", largest)
        chunks = list(cli._position_chunks(model, context, n, sampling, np.random.default_rng(9)))
        assert all(len(chunk) <= largest for chunk in chunks)
        joined = [p for chunk in chunks for p in chunk]
        assert joined == model.generate_positions(context, n, rng=9, **sampling), (n, largest)


def test_streamed_text_is_one_decode(monkeypatch):
    """The joints between chunks are spaced as one decode spaces them ("azul?" "¿el")."""
    model = punctuated_model()
    vocab = model.vocab
    prompt = "¿el cielo es azul"
    monkeypatch.setattr(cli, "GENERATE_CHUNK", 3)
    chunks = cli._position_chunks(
        model, model.context_positions(prompt), 400, {}, np.random.default_rng(1)
    )
    text = "".join(cli._text_pieces(model, prompt, chunks))
    continuation = vocab.decode(model.generate_positions(prompt, 400, rng=1))
    glue = "" if continuation[0] in ".,;:!?" else " "
    assert text == prompt + glue + continuation
    assert any(t in continuation for t in ("?", ",", ";", "¿"))


def test_generate_output_is_unchanged_for_small_n(capsys):
    model = TinyLM.from_blog()
    status, out, _ = run(capsys, "generate", "el cielo es", "-n", "25", "--seed", "4", "--json")
    positions = model.generate_positions("el cielo es", 25, rng=4)
    assert status == 0 and json.loads(out) == {
        "prompt": "el cielo es",
        "continuation": model.vocab.decode(positions),
        "tokens": [model.vocab[p] for p in positions],
        "positions": positions,
        "seed": 4,
    }
    status, out, _ = run(capsys, "generate", "el cielo es", "-n", "25", "--seed", "4")
    assert out == "el cielo es " + model.vocab.decode(positions) + "\n"
    status, out, _ = run(capsys, "generate", "el cielo es", "-n", "0", "--seed", "4")
    assert out == "el cielo es\n"


def test_sample_in_chunks_counts_as_one_call(capsys, monkeypatch):
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 7)
    model = TinyLM.from_blog()
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "300", "--seed", "3", "--json")
    assert status == 0
    assert json.loads(out) == {**model.draw_next("el cielo es", 300, rng=3).to_dict(), "seed": 3}
    status, out, _ = run(capsys, "sample", "el cielo es", "--draws", "300", "--seed", "3")
    counts = model.draw_next("el cielo es", 300, rng=3).counts
    for token, count in counts.items():
        assert re.search(rf"^  {token}\s+{count}\s", out, re.M), (token, count)


def test_chunks_shrink_when_slow_and_grow_when_fast(monkeypatch):
    model = TinyLM.from_blog()
    context = model.context_positions("el cielo es")
    for seconds, sizes in ((0.0, [16, 8, 4, 2, 1, 1, 1, 1]), (1e9, [16, 32, 64, 128, 256, 256])):
        monkeypatch.setattr(cli, "CHUNK_SECONDS", seconds)  # every chunk slow / fast
        n = sum(sizes)
        chunks = list(cli._position_chunks(model, context, n, {}, np.random.default_rng(2)))
        assert [len(c) for c in chunks] == sizes[:-1] + [n - sum(sizes[:-1])]
        assert [p for c in chunks for p in c] == model.generate_positions(context, n, rng=2)
