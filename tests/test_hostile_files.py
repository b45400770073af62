"""Hostile files and paths: what tinyllm writes (models, figures, reports) and what it
reads (model files), with the destinations and inputs users really bring.

Writes: special files at the destination (directory, FIFO, socket, device, links to
them), symbolic and hard links, an output that is an input, modes and the umask, long
and empty names, bytes paths, a full disk, Ctrl-C. Reads: special files as --model
(a FIFO must not hang), permission denied, files that are not models, damaged zips,
headers that lie (zip bombs, huge shapes, object arrays), deep or long JSON,
big-endian arrays, and a hypothesis fuzz of random, truncated and bit-flipped files.

Special files are only ever created inside pytest's temporary directory.
"""

from __future__ import annotations

import errno
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm import TinyLM, TinyLMConfig, _files
from tinyllm.cli import main
from tinyllm.io import MAX_META_CHARS, load_metadata, save_model

POSIX = os.name == "posix"
ROOT = POSIX and os.geteuid() == 0
needs_posix = pytest.mark.skipif(not POSIX, reason="POSIX file modes and special files")
needs_root = pytest.mark.skipif(not ROOT, reason="os.mknod of a device needs root")
TEMP_NAME = ".tinyllm-"  # every temporary file's name starts with this


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    assert err.startswith("tinyllm ") and ": error: " in err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert TEMP_NAME not in err and ".tmp" not in err


def snapshot(folder: Path) -> dict:
    """Every entry of ``folder``: kind, mode and contents (bytes for regular files)."""
    entries = {}
    for p in sorted(folder.iterdir()):
        s = p.lstat()
        content = (
            p.read_bytes()
            if stat.S_ISREG(s.st_mode)
            else os.readlink(p)
            if p.is_symlink()
            else None
        )
        entries[p.name] = (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), content)
    return entries


def small_model(seed: int = 0, dtype: str = "float64") -> TinyLM:
    return TinyLM.random(TinyLMConfig(6, 3, 2, 4, dtype=dtype), seed=seed)


def same_model(a: TinyLM, b: TinyLM) -> bool:
    return (
        a.config == b.config
        and a.vocab == b.vocab
        and all(
            x.dtype == y.dtype and x.tobytes() == y.tobytes()
            for x, y in ((a.embedding.table, b.embedding.table), (a.W1, b.W1), (a.W2, b.W2))
        )
    )


def make_special(kind: str, path: Path) -> None:
    """A directory, FIFO, socket or device node at ``path`` (inside tmp_path only)."""
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(path)
    elif kind == "socket":
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no Unix sockets on this platform")
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError as exc:  # e.g. a socket path too long on macOS
            pytest.skip(f"cannot bind a Unix socket in tmp_path: {exc}")
        finally:
            sock.close()
    elif kind in ("char-device", "block-device"):
        if not ROOT:
            pytest.skip("os.mknod of a device needs root")
        kind_bit = stat.S_IFCHR if kind == "char-device" else stat.S_IFBLK
        os.mknod(path, 0o600 | kind_bit, os.makedev(1, 3))  # 1,3 is /dev/null's number
    else:
        raise AssertionError(kind)


def symlink(link: Path, target) -> None:
    """``link`` -> ``target``, or skip where symbolic links cannot be made (Windows without
    the privilege)."""
    try:
        link.symlink_to(target)
    except (OSError, NotImplementedError) as exc:
        pytest.skip(f"cannot make symbolic links here: {exc}")


SPECIAL = ["directory", "fifo", "socket", "char-device", "block-device"]
DESCRIBED = {
    "directory": "a directory",
    "fifo": "a FIFO",
    "socket": "a socket",
    "char-device": "a character device",
    "block-device": "a block device",
}


@pytest.fixture
def umask():
    """Set the umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def subprocess_env() -> dict:
    """The environment for a child ``python`` that imports this tinyllm."""
    env = dict(os.environ)
    package_parent = str(Path(tinyllm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


# ---------------------------------------------------------------------------
# Writing: destinations that are not regular files
# ---------------------------------------------------------------------------
WRITERS = {
    "save_model": lambda path: save_model(small_model(), path),
    "write_text": lambda path: _files.write_text(path, "text"),
    "check_writable": _files.check_writable,
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("through_link", [False, True])
def test_a_special_destination_is_refused_and_left_alone(tmp_path, kind, writer, through_link):
    node = tmp_path / "node"
    make_special(kind, node)
    target = node
    if through_link:
        target = tmp_path / "link"
        symlink(target, "node")
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match=DESCRIBED[kind]) as caught:
        WRITERS[writer](target)
    message = str(caught.value)
    assert str(target) in message and TEMP_NAME not in message
    if kind == "directory":
        assert isinstance(caught.value, IsADirectoryError)
    assert snapshot(tmp_path) == before  # the node (and the link) as they were


@pytest.mark.parametrize("kind", SPECIAL)
def test_figures_refuse_a_special_destination_before_drawing(tmp_path, kind):
    pytest.importorskip("matplotlib")
    from tinyllm import plot
    from tinyllm.train import EpochStats

    node = tmp_path / "node"
    make_special(kind, node)
    before = snapshot(tmp_path)
    history = [
        EpochStats(
            epoch=1,
            steps=3,
            train_loss=2.0,
            train_perplexity=7.4,
            val_loss=None,
            val_perplexity=None,
            lr=0.01,
            seconds=0.1,
            tokens_per_second=10.0,
        )
    ]
    for draw in (
        lambda p: plot.embeddings(TinyLM.from_blog(), p),
        lambda p: plot.loss_curve(history, p),
    ):
        with pytest.raises(OSError, match=DESCRIBED[kind]):
            draw(node)
    assert snapshot(tmp_path) == before


def test_plot_embeddings_max_labels(tmp_path):
    pytest.importorskip("matplotlib")
    from tinyllm import plot

    with pytest.raises(ValueError, match="max_labels must be >= 0"):
        plot.embeddings(TinyLM.from_blog(), tmp_path / "e.png", max_labels=-1)
    assert not (tmp_path / "e.png").exists()
    plot.embeddings(TinyLM.from_blog(), tmp_path / "e.png", max_labels=0)
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(os.listdir(tmp_path)) == ["e.png"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_cli_train_refuses_a_special_out_before_training(tmp_path, capsys, kind):
    node = tmp_path / "node"
    make_special(kind, node)
    before = snapshot(tmp_path)
    started = time.perf_counter()
    status, out, err = run(capsys, "train", "--out", node)
    assert time.perf_counter() - started < 5  # no training happened
    assert_one_line_error(status, err, str(node), DESCRIBED[kind])
    assert out == "" and "epoch" not in err
    assert snapshot(tmp_path) == before
    status, _, err = run(capsys, "train", "--out", tmp_path / "m.npz", "--plot-loss", node)
    assert_one_line_error(status, err, DESCRIBED[kind])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", SPECIAL)
def test_cli_plot_refuses_a_special_out(tmp_path, capsys, kind):
    pytest.importorskip("matplotlib")
    node = tmp_path / "node"
    make_special(kind, node)
    before = snapshot(tmp_path)
    status, _, err = run(capsys, "plot", "embeddings", "--out", node)
    assert_one_line_error(status, err, DESCRIBED[kind])
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Writing: links
# ---------------------------------------------------------------------------
def test_a_symlink_stays_a_link_and_its_target_is_replaced(tmp_path):
    old, new = small_model(1), small_model(2)
    (tmp_path / "models").mkdir()
    real = tmp_path / "models" / "real.npz"
    old.save(real)
    link = tmp_path / "link.npz"
    symlink(link, Path("models") / "real.npz")
    new.save(link)
    assert link.is_symlink() and os.readlink(link) == str(Path("models") / "real.npz")
    assert same_model(TinyLM.load(real), new)
    assert sorted(os.listdir(tmp_path / "models")) == ["real.npz"]  # no temporary file
    # A chain of links: the last target is replaced, every link stays.
    chain = tmp_path / "chain.npz"
    symlink(chain, "link.npz")
    old.save(chain)
    assert chain.is_symlink() and link.is_symlink() and same_model(TinyLM.load(real), old)


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.npz"
    symlink(link, "target.npz")
    small_model().save(link)
    assert link.is_symlink() and (tmp_path / "target.npz").is_file()
    assert same_model(TinyLM.load(link), small_model())
    # ... but not a missing folder of the target.
    broken = tmp_path / "broken.npz"
    symlink(broken, Path("no") / "such" / "target.npz")
    with pytest.raises(FileNotFoundError, match="folder does not exist") as caught:
        small_model().save(broken)
    assert str(broken) in str(caught.value)


def test_a_symlink_loop_is_a_clean_error(tmp_path):
    symlink(tmp_path / "a", "b")
    symlink(tmp_path / "b", "a")
    before = snapshot(tmp_path)
    with pytest.raises(OSError) as caught:
        small_model().save(tmp_path / "a")
    assert str(tmp_path / "a") in str(caught.value) and TEMP_NAME not in str(caught.value)
    assert snapshot(tmp_path) == before


def test_a_hard_link_keeps_the_old_contents(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    small_model(1).save(a)
    os.link(a, b)
    small_model(2).save(a)
    assert same_model(TinyLM.load(a), small_model(2))
    assert same_model(TinyLM.load(b), small_model(1))  # the other name: the old file


# ---------------------------------------------------------------------------
# Writing: an output that is an input
# ---------------------------------------------------------------------------
def _same_file_spellings(tmp_path: Path, name: str) -> dict[str, Path]:
    """Other names of tmp_path/name: ./name (relative), a hard link, a symbolic link."""
    original = tmp_path / name
    hard, soft = tmp_path / ("hard-" + name), tmp_path / ("soft-" + name)
    os.link(original, hard)
    symlink(soft, name)
    return {"same": original, "dotted": tmp_path / "." / name, "hard link": hard, "symlink": soft}


@pytest.mark.parametrize("spelling", ["same", "dotted", "hard link", "symlink"])
def test_cli_train_refuses_out_equal_to_the_corpus(tmp_path, capsys, spelling):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("el cielo es azul.\nel hielo es frío.\n" * 5, encoding="utf-8")
    corpus.chmod(0o640)
    out = _same_file_spellings(tmp_path, "corpus.txt")[spelling]
    before = snapshot(tmp_path)
    status, stdout, err = run(capsys, "train", corpus, "--out", out, "--epochs", 1)
    assert_one_line_error(status, err, "--out and the corpus are the same file")
    assert stdout == "" and "epoch" not in err
    assert snapshot(tmp_path) == before


def test_cli_train_refuses_out_equal_to_plot_loss(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out, loss in (
        ("m.npz", "./m.npz"),
        ("m.npz", str(tmp_path / "m.npz")),
        ("x/../m.npz", "m.npz"),
    ):
        (tmp_path / "x").mkdir(exist_ok=True)
        status, _, err = run(capsys, "train", "--out", out, "--plot-loss", loss)
        assert_one_line_error(status, err, "--out and --plot-loss are the same file")
        assert not (tmp_path / "m.npz").exists() and "epoch" not in err
    # An existing model, through a hard link: untouched.
    small_model().save(tmp_path / "m.npz")
    os.link(tmp_path / "m.npz", tmp_path / "h.png")
    before = snapshot(tmp_path)
    status, _, err = run(capsys, "train", "--out", "m.npz", "--plot-loss", "h.png")
    assert_one_line_error(status, err, "same file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("spelling", ["same", "dotted", "hard link", "symlink"])
def test_cli_plot_refuses_out_equal_to_model(tmp_path, capsys, spelling):
    pytest.importorskip("matplotlib")
    small_model().save(tmp_path / "m.npz")
    out = _same_file_spellings(tmp_path, "m.npz")[spelling]
    before = snapshot(tmp_path)
    status, _, err = run(capsys, "plot", "embeddings", "--model", tmp_path / "m.npz", "--out", out)
    assert_one_line_error(status, err, "--out and --model are the same file")
    assert snapshot(tmp_path) == before


def test_same_file():
    assert _files.same_file("x", "./x") and _files.same_file(b"x", "x")
    assert not _files.same_file("x", "y")


# ---------------------------------------------------------------------------
# Writing: modes, names, paths
# ---------------------------------------------------------------------------
@needs_posix
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o000])
def test_a_new_file_gets_0666_minus_the_umask(tmp_path, umask, mask):
    umask(mask)
    writers = {
        "model.npz": lambda p: small_model().save(p),
        "text.md": lambda p: _files.write_text(p, "x"),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


@needs_posix
@pytest.mark.parametrize(
    "mode, mask", [(0o644, 0o077), (0o600, 0o022), (0o640, 0o000), (0o444, 0o022)]
)
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, mode, mask):
    path = tmp_path / "model.npz"
    small_model(1).save(path)
    path.chmod(mode)
    umask(mask)
    small_model(2).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert same_model(TinyLM.load(path), small_model(2))


@needs_posix
def test_a_replaced_figure_keeps_its_mode(tmp_path, umask):
    pytest.importorskip("matplotlib")
    from tinyllm import plot

    path = tmp_path / "emb.png"
    path.write_bytes(b"old")
    path.chmod(0o644)
    umask(0o077)
    plot.embeddings(TinyLM.from_blog(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes()[:4] == b"\x89PNG"


@needs_posix  # Windows: MAX_PATH counts the whole path
def test_a_long_legal_name_saves_and_a_too_long_one_is_a_clean_error(tmp_path):
    try:
        name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        name_max = 255
    longest = tmp_path / ("m" * (name_max - 4) + ".npz")
    small_model().save(longest)
    assert same_model(TinyLM.load(longest), small_model())
    too_long = tmp_path / ("m" * name_max + ".npz")
    with pytest.raises(OSError) as caught:
        small_model().save(too_long)
    assert TEMP_NAME not in str(caught.value) and "m" * name_max in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == [longest.name]


def test_paths_empty_bytes_and_wrong_types(tmp_path):
    for call in (
        lambda: small_model().save(""),
        lambda: small_model().save(b""),
        lambda: TinyLM.load(""),
        lambda: _files.check_writable(""),
    ):
        with pytest.raises(ValueError, match="path is empty"):
            call()
    with pytest.raises(ValueError, match="NUL"):
        small_model().save("a\0b")
    bytes_path = os.fsencode(tmp_path / "bytes.npz")
    small_model().save(bytes_path)  # os.fspath semantics: bytes work
    assert same_model(TinyLM.load(bytes_path), small_model())
    assert load_metadata(bytes_path)["format"] == "tinyllm"
    for bad in (3, None, ["m.npz"]):
        with pytest.raises(TypeError, match="path"):
            small_model().save(bad)
        with pytest.raises(TypeError, match="path"):
            TinyLM.load(bad)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--out", ""], "--out: the path is empty"),
        (["train", "--out", "m.npz", "--plot-loss", ""], "--plot-loss: the path is empty"),
        (["train", "--out", "{missing}/m.npz"], "folder does not exist"),
        (["plot", "embeddings", "--out", ""], "--out: the path is empty"),
        (["generate", "--model", "", "el cielo es"], "the path is empty"),
    ],
)
def test_cli_bad_paths_fail_at_once(tmp_path, capsys, monkeypatch, argv, message):
    if "plot" in argv:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    status, _, err = run(capsys, *[a.format(missing=tmp_path / "missing") for a in argv])
    assert time.perf_counter() - started < 5 and "epoch" not in err
    assert_one_line_error(status, err, message)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Writing: failures leave the old file and no temporary file
# ---------------------------------------------------------------------------
class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, fd: int, room: int):
        self.fd, self.room = fd, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return os.write(self.fd, data)

    def fileno(self):
        return self.fd

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


@needs_posix
@pytest.mark.parametrize("room", [0, 100, 1500])
def test_a_full_disk_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch, room):
    path = tmp_path / "model.npz"
    small_model(1).save(path)
    path.chmod(0o644)
    before = snapshot(tmp_path)
    monkeypatch.setattr(
        _files.os, "fdopen", lambda fd, mode: io.BufferedWriter(_FullDisk(fd, room))
    )
    with pytest.raises(OSError) as caught:
        small_model(2).save(path)
    assert caught.value.errno == errno.ENOSPC
    message = str(caught.value)
    assert "No space left on device" in message and str(path) in message
    assert "unchanged" in message and TEMP_NAME not in message
    assert snapshot(tmp_path) == before


def test_a_failing_fsync_or_ctrl_c_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_model(1).save(path)
    before = snapshot(tmp_path)
    for error in (OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()):

        def failing_fsync(fd, error=error):
            raise error

        monkeypatch.setattr(_files.os, "fsync", failing_fsync)
        with pytest.raises(type(error)) as caught:
            small_model(2).save(path)
        assert TEMP_NAME not in str(caught.value)
        assert snapshot(tmp_path) == before
    monkeypatch.undo()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        small_model(2).save(path)
    assert snapshot(tmp_path) == before


def test_the_file_and_its_folder_are_flushed_to_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(stat.S_IFMT(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(_files.os, "fsync", recording_fsync)
    small_model().save(tmp_path / "m.npz")
    assert synced[0] == stat.S_IFREG  # the data, before the rename
    if POSIX:
        assert synced[1:] == [stat.S_IFDIR]  # then the folder's new entry


# ---------------------------------------------------------------------------
# Reading: files that are not regular, or not readable
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["directory", "socket", "char-device", "block-device"])
def test_load_refuses_a_special_file_at_once(tmp_path, capsys, kind):
    node = tmp_path / "node"
    make_special(kind, node)
    link = tmp_path / "link"
    symlink(link, "node")
    for path in (node, link):
        with pytest.raises(OSError, match=DESCRIBED[kind]) as caught:
            TinyLM.load(path)
        assert str(path) in str(caught.value)
        with pytest.raises(OSError, match=DESCRIBED[kind]):
            load_metadata(path)
        status, _, err = run(capsys, "generate", "--model", path, "el cielo es")
        assert_one_line_error(status, err, DESCRIBED[kind])


@needs_posix
def test_a_fifo_as_model_fails_within_a_second(tmp_path):
    """A FIFO with no writer blocks open() for ever; tinyllm must not even try."""
    fifo = tmp_path / "fifo"
    make_special("fifo", fifo)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm", "generate", "--model", str(fifo), "el cielo es"],
        capture_output=True,
        text=True,
        timeout=30,
        env=subprocess_env(),
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 2 and done.stdout == ""
    expected = f"tinyllm generate: error: {fifo} is a FIFO (named pipe), not a model file\n"
    assert done.stderr == expected
    # The child's own time to fail, without Python's start-up: well under a second.
    probe = textwrap.dedent(f"""
        import time, tinyllm
        t = time.perf_counter()
        try:
            tinyllm.TinyLM.load({str(fifo)!r})
        except OSError:
            pass
        print(time.perf_counter() - t)
    """)
    child = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        env=subprocess_env(),
    )
    assert float(child.stdout) < 1.0, (child.stdout, child.stderr, elapsed)


def test_open_regular_does_not_block_on_a_fifo_swapped_in(tmp_path, monkeypatch):
    """Between the stat and the open a FIFO may replace the file: the open must not hang."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "model.npz"
    small_model().save(path)
    real_stat = os.stat

    def stat_then_swap(p, *args, **kwargs):
        result = real_stat(p, *args, **kwargs)
        if os.fspath(p) == str(path):
            os.unlink(path)
            os.mkfifo(path)
        return result

    monkeypatch.setattr(_files.os, "stat", stat_then_swap)
    with pytest.raises(OSError, match="FIFO"):
        _files.open_regular(path, "model file")


def test_permission_denied_says_so(tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.npz"
    small_model().save(path)
    if not ROOT and POSIX:
        path.chmod(0)
    else:  # root reads anything: fake the refusal where the reader opens the file
        real_open = os.open

        def refusing_open(p, *args, **kwargs):
            if os.fspath(p) == str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(p))
            return real_open(p, *args, **kwargs)

        monkeypatch.setattr(_files.os, "open", refusing_open)
    with pytest.raises(PermissionError, match="permission denied") as caught:
        TinyLM.load(path)
    assert str(path) in str(caught.value) and "corrupt" not in str(caught.value)
    status, _, err = run(capsys, "explain", "--model", path, "el cielo es")
    assert_one_line_error(status, err, "permission denied", str(path))


# ---------------------------------------------------------------------------
# Reading: files that are not tinyllm models
# ---------------------------------------------------------------------------
def _model_bytes(model: TinyLM | None = None, compressed: bool = False) -> bytes:
    model = model or small_model()
    buffer = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(
        buffer,
        meta=np.array(_meta_json(model)),
        embeddings=model.embedding.table,
        W1=model.W1,
        W2=model.W2,
    )
    return buffer.getvalue()


def _meta_json(model: TinyLM, **changes) -> str:
    from tinyllm.io import _meta

    meta = json.loads(_meta(model, None))
    meta.update(changes)
    return json.dumps(meta)


def _npz(path: Path, **entries) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in entries.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=True)
            zf.writestr(key + ".npy", buffer.getvalue())
    return path


def _entries(model: TinyLM) -> dict:
    return dict(
        meta=np.array(_meta_json(model)), embeddings=model.embedding.table, W1=model.W1, W2=model.W2
    )


NOT_MODELS = {
    "empty": (b"", "the file is empty"),
    "text": (b"el cielo es azul.\n", "not a zip archive"),
    "binary": (bytes(range(256)) * 4, "not a zip archive"),
    "npy": (
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"
        + b" " * 57
        + b"\n"
        + bytes(24),
        "single .npy array",
    ),
    "zip of text": (None, "no meta entry"),
    "zip header only": (b"PK\x03\x04" + bytes(26), "corrupt or truncated"),
}


@pytest.mark.parametrize("case", sorted(NOT_MODELS))
def test_a_file_that_is_not_a_model_says_so(tmp_path, capsys, case):
    data, message = NOT_MODELS[case]
    path = tmp_path / "file.npz"
    if data is None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("notes.txt", "hello")
    else:
        path.write_bytes(data)
    with pytest.raises(ValueError, match="not a tinyllm model file") as caught:
        TinyLM.load(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "pickle" not in str(caught.value)
    status, _, err = run(capsys, "generate", "--model", path, "el cielo es")
    assert_one_line_error(status, err, message)


def test_every_truncation_is_a_clean_error(tmp_path):
    data = _model_bytes()
    path = tmp_path / "cut.npz"
    for length in sorted({*range(0, 64), *range(64, len(data), 97), len(data) - 1}):
        path.write_bytes(data[:length])
        with pytest.raises(ValueError, match=r"not a tinyllm model file|truncated|corrupt"):
            TinyLM.load(path)


@pytest.mark.parametrize("key", ["meta", "embeddings", "W1", "W2"])
def test_object_arrays_are_refused_without_pickle(tmp_path, key):
    entries = _entries(small_model())
    entries[key] = np.array([{"a": 1}, None], dtype=object)
    _npz(tmp_path / "obj.npz", **entries)
    with pytest.raises(ValueError) as caught:
        TinyLM.load(tmp_path / "obj.npz")
    message = str(caught.value)
    assert "pickle" not in message
    assert "holds object values" in message or "JSON string" in message


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("W1", np.zeros((6, 4), dtype=np.int64), "W1 is int64, the configuration says float64"),
        ("W1", np.zeros((6, 4), dtype=np.complex128), "W1 is complex128"),
        ("W2", np.zeros((4, 7)), "W2 has shape (4, 7), expected (4, 6)"),
        ("embeddings", np.zeros(18), "embeddings has shape (18,)"),
        ("W2", np.zeros((4, 6), dtype=[("a", "<f8")]), "not numbers"),
        ("meta", np.array([b"{}"]), "not a JSON string"),
        ("meta", np.array("{not json"), "not valid JSON"),
        ("meta", np.array("[1, 2]"), "does not describe a tinyllm model"),
    ],
)
def test_arrays_that_disagree_with_the_configuration(tmp_path, key, value, message):
    entries = _entries(small_model())
    entries[key] = value
    _npz(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError) as caught:
        TinyLM.load(tmp_path / "bad.npz")
    assert message in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"config": [1, 2]},
        {"config": {"vocab_size": "6"}},
        {"vocab": "tokens"},
        {
            "vocab": {
                "tokens": [1, 2, 3, 4, 5, 6],
                "ids": [0, 1, 2, 3, 4, 5],
                "tokenizer": "whitespace",
            }
        },
        {"config": {"vocab_size": 10**12, "dim": 3, "context": 2, "hidden": 4}},
        {"config": {"vocab_size": 6, "dim": 3, "context": 2, "hidden": 4, "dtype": "object"}},
    ],
)
def test_json_that_does_not_fit_is_a_clean_error(tmp_path, change):
    model = small_model()
    entries = _entries(model)
    entries["meta"] = np.array(_meta_json(model, **change))
    _npz(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match="consistent tinyllm model"):
        TinyLM.load(tmp_path / "bad.npz")


def test_deeply_nested_json_is_a_clean_error(tmp_path):
    model = small_model()
    entries = _entries(model)
    deep = _meta_json(model)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    entries["meta"] = np.array(deep)
    _npz(tmp_path / "deep.npz", **entries)
    for read in (TinyLM.load, load_metadata):
        with pytest.raises(ValueError, match="nests 100,001 levels deep"):
            read(tmp_path / "deep.npz")
    # Brackets inside strings do not count.
    entries["meta"] = np.array(_meta_json(model)[:-1] + ', "x": "' + "[" * 1000 + '"}')
    _npz(tmp_path / "fine.npz", **entries)
    assert same_model(TinyLM.load(tmp_path / "fine.npz"), model)


# ---------------------------------------------------------------------------
# Reading: headers that lie, zip bombs
# ---------------------------------------------------------------------------
def _npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _deflated(header: bytes, zeros: int, block: int = 1 << 24) -> bytes:
    """Raw deflate data for ``header`` + ``zeros`` zero bytes, made without compressing
    them all: one compressed block of zeros, repeated (a full flush makes blocks
    independent)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [squeeze.compress(header) + squeeze.flush(zlib.Z_FULL_FLUSH)]
    block_data = squeeze.compress(bytes(block)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    parts += [block_data] * (zeros // block)
    parts.append(squeeze.compress(bytes(zeros % block)) + squeeze.flush(zlib.Z_FINISH))
    return b"".join(parts)


def _raw_zip(path: Path, members: dict[str, tuple[bytes, int, int, int]]) -> Path:
    """A zip written by hand: name -> (stored data, method, uncompressed size, CRC-32)."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, (data, method, size, crc) in members.items():
        offset = local.tell()
        encoded = name.encode()
        local.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(encoded),
                0,
            )
            + encoded
            + data
        )
        central.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + encoded
        )
    directory = central.getvalue()
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), local.tell(), 0
    )
    path.write_bytes(local.getvalue() + directory + end)
    return path


def _stored(array: np.ndarray) -> tuple[bytes, int, int, int]:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    data = buffer.getvalue()
    return data, zipfile.ZIP_STORED, len(data), zlib.crc32(data)


def _bomb(path: Path, w2_shape=(4, 2**28 // 4), meta=None) -> Path:
    """A small file whose W2 inflates to ``prod(w2_shape) * 8`` bytes (2 GiB by default)."""
    model = small_model()
    header = _npy_header(w2_shape)
    zeros = int(np.prod(w2_shape)) * 8
    members = {
        "meta.npy": _stored(np.array(meta if meta is not None else _meta_json(model))),
        "embeddings.npy": _stored(model.embedding.table),
        "W1.npy": _stored(model.W1),
        # The CRC is left wrong: a reader that inflates everything only finds out at the end.
        "W2.npy": (_deflated(header, zeros), zipfile.ZIP_DEFLATED, len(header) + zeros, 0),
    }
    return _raw_zip(path, members)


PEAK_RSS = textwrap.dedent("""
    import resource, sys, time
    import tinyllm
    started = time.perf_counter()
    try:
        tinyllm.TinyLM.load(sys.argv[1])
        outcome = "loaded"
    except (ValueError, OSError) as exc:
        outcome = type(exc).__name__ + ": " + str(exc)
    seconds = time.perf_counter() - started
    # Linux: this process's own high-water mark. ru_maxrss would also count the parent's
    # memory at the fork (exec records the forked copy's peak), e.g. a pytest that
    # imported PyTorch.
    try:
        with open("/proc/self/status") as status:
            hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
        peak_mb = int(hwm[0]) / 2**10   # kB
    except (OSError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 2**10   # bytes vs KiB
    print(f"{peak_mb:.0f} {seconds:.3f} {outcome}")
""")


@needs_posix
def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    path = _bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 3 * 2**20  # 2 GiB of W2 in about 2 MB
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    peak_mb, seconds, outcome = done.stdout.split(" ", 2)
    assert outcome.startswith("ValueError")
    assert "W2 has shape (4, 67108864), expected (4, 6)" in outcome
    assert float(peak_mb) < 300, done.stdout  # measured: about 70 MB
    assert float(seconds) < 1.0, done.stdout


def test_headers_that_claim_huge_arrays(tmp_path):
    model = small_model()
    # A header claiming (4, 10**12) but 8 bytes of data behind it.
    header = _npy_header((4, 10**12))
    members = {
        "meta.npy": _stored(np.array(_meta_json(model))),
        "embeddings.npy": _stored(model.embedding.table),
        "W1.npy": _stored(model.W1),
        "W2.npy": (
            header + bytes(8),
            zipfile.ZIP_STORED,
            len(header) + 8,
            zlib.crc32(header + bytes(8)),
        ),
    }
    with pytest.raises(ValueError, match="does not match its header"):
        TinyLM.load(_raw_zip(tmp_path / "huge.npz", members))
    # A configuration that agrees with a (4, 10**8) W2, and a zip entry that claims its
    # 3.2 GB: more than 8 deflated bytes can ever expand to.
    meta = _meta_json(model, config={"vocab_size": 10**8, "dim": 3, "context": 2, "hidden": 4})
    members["meta.npy"] = _stored(np.array(meta))
    header = _npy_header((4, 10**8))
    members["W2.npy"] = (bytes(8), zipfile.ZIP_DEFLATED, len(header) + 32 * 10**8, 0)
    with pytest.raises(ValueError, match="more than its 8 stored bytes can hold"):
        TinyLM.load(_raw_zip(tmp_path / "claims.npz", members))
    # A .npy header that says its own length is 4 GiB (format 2.0).
    lying = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1)
    members["W2.npy"] = (lying, zipfile.ZIP_STORED, len(lying), zlib.crc32(lying))
    with pytest.raises(ValueError, match="header"):
        TinyLM.load(_raw_zip(tmp_path / "header.npz", members))


def test_a_json_bomb_is_refused_before_it_inflates(tmp_path):
    chars = MAX_META_CHARS + 1
    header = _npy_header((), descr=f"<U{chars}")
    members = {
        "meta.npy": (_deflated(header, 4 * chars), zipfile.ZIP_DEFLATED, len(header) + 4 * chars, 0)
    }
    model = small_model()
    members.update(
        {
            "embeddings.npy": _stored(model.embedding.table),
            "W1.npy": _stored(model.W1),
            "W2.npy": _stored(model.W2),
        }
    )
    path = _raw_zip(tmp_path / "json-bomb.npz", members)
    for read in (TinyLM.load, load_metadata):
        with pytest.raises(ValueError, match="characters long, more than"):
            read(path)


def test_unsupported_or_encrypted_entries(tmp_path):
    model = small_model()
    data, _, size, crc = _stored(model.W2)
    members = {
        "meta.npy": _stored(np.array(_meta_json(model))),
        "embeddings.npy": _stored(model.embedding.table),
        "W1.npy": _stored(model.W1),
        "W2.npy": (data, zipfile.ZIP_LZMA, size, crc),
    }
    with pytest.raises(ValueError, match="compression method 14"):
        TinyLM.load(_raw_zip(tmp_path / "lzma.npz", members))
    raw = bytearray(_model_bytes())
    raw[6] |= 1  # the first entry's "encrypted" flag, locally
    for start in [m for m in range(len(raw)) if raw[m : m + 4] == b"PK\x01\x02"]:
        raw[start + 8] |= 1  # ... and every entry's in the central directory
    (tmp_path / "encrypted.npz").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="encrypted"):
        TinyLM.load(tmp_path / "encrypted.npz")


# ---------------------------------------------------------------------------
# Reading: files other writers make
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, order", [("float64", ">"), ("float32", ">"), ("float64", "<")])
def test_any_byte_order_and_layout_loads(tmp_path, dtype, order):
    model = small_model(3, dtype)
    entries = _entries(model)
    for key in ("embeddings", "W1", "W2"):
        entries[key] = entries[key].astype(entries[key].dtype.newbyteorder(order))
    entries["W1"] = np.asfortranarray(entries["W1"])
    _npz(tmp_path / "swapped.npz", **entries)
    back = TinyLM.load(tmp_path / "swapped.npz")
    assert same_model(back, model) and back.W2.dtype.isnative
    assert back.next_token_probs([0, 1]).tobytes() == model.next_token_probs([0, 1]).tobytes()


def test_a_compressed_model_loads(tmp_path):
    model = small_model(4)
    (tmp_path / "c.npz").write_bytes(_model_bytes(model, compressed=True))
    assert same_model(TinyLM.load(tmp_path / "c.npz"), model)


# ---------------------------------------------------------------------------
# Fuzz: random, truncated and bit-flipped files load or fail cleanly
# ---------------------------------------------------------------------------
VALID = {
    "stored": _model_bytes(small_model(5)),
    "compressed": _model_bytes(small_model(5), compressed=True),
}
fuzz = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _load_or_clean_error(path: Path) -> None:
    try:
        TinyLM.load(path)
    except (ValueError, OSError) as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message and "pickle" not in message, message


@fuzz
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(tmp_path, data):
    path = tmp_path / "random.npz"
    path.write_bytes(data)
    _load_or_clean_error(path)


@fuzz
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes_behind_a_zip_signature(tmp_path, data):
    path = tmp_path / "zipish.npz"
    path.write_bytes(b"PK\x03\x04" + data + b"PK\x05\x06" + data[:18])
    _load_or_clean_error(path)


@fuzz
@given(
    which=st.sampled_from(sorted(VALID)),
    flips=st.lists(st.integers(0, 10**9), min_size=1, max_size=4),
)
def test_fuzz_bit_flips(tmp_path, which, flips):
    data = bytearray(VALID[which])
    for bit in flips:
        bit %= len(data) * 8
        data[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    _load_or_clean_error(path)


@fuzz
@given(
    which=st.sampled_from(sorted(VALID)),
    cut=st.floats(0, 1, exclude_max=True),
    junk=st.binary(max_size=64),
)
def test_fuzz_truncations_and_overwrites(tmp_path, which, cut, junk):
    data = VALID[which]
    at = int(cut * len(data))
    path = tmp_path / "cut.npz"
    for damaged in (data[:at], data[:at] + junk + data[at + len(junk) :]):
        path.write_bytes(damaged)
        _load_or_clean_error(path)
