"""The files tinyllm writes and reads: one writer, one opener, and the checks before work.

Every file tinyllm writes (a model, the loss curve, the embeddings figure, the
benchmark reports) goes through :func:`atomic_writer` (or :func:`write_bytes` /
:func:`write_text`):

- The destination must be a regular file or not exist. A directory, FIFO, socket or
  device at that path is refused, never replaced.
- A symbolic link is followed: its target is replaced and the link stays a link. A
  dangling link creates its target (the folder of the target must exist).
- The data goes to a temporary file with a short name (``.tinyllm-XXXXXXXX.tmp``) in
  the destination's folder, which is flushed to disk and then renamed over the
  destination (``os.replace``, atomic on POSIX and Windows). The folder is then
  flushed too (POSIX). Any failure, Ctrl-C included, removes the temporary file and
  leaves the previous file as it was. Error messages name the destination, never the
  temporary file.
- A new file gets the usual mode (``0o666`` minus the umask); a replaced file keeps
  its mode (and, where allowed, its owner and group). Other hard links to a replaced
  file keep the old contents: a rename gives the name a new file.

Commands call :func:`check_outputs` before any long work, so that a bad destination
or an output that would overwrite an input fails at once. Readers open files with
:func:`open_regular`, which refuses a directory, FIFO, socket or device without
blocking on it.

Paths may be ``str``, ``bytes`` or path-like (``os.fspath``); bytes are decoded with
the file-system encoding.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from typing import BinaryIO

__all__ = [
    "as_path",
    "check_writable",
    "check_outputs",
    "atomic_writer",
    "write_bytes",
    "write_text",
    "open_regular",
    "same_file",
]

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO must not wait
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)


def as_path(path, what: str = "path") -> str:
    """``path`` as a ``str`` (``os.fspath``, bytes decoded), refusing an empty one.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    what : str
        How messages name it, e.g. ``"--out"`` or ``"model file"``.

    Raises
    ------
    TypeError
        ``path`` is not a path.
    ValueError
        ``path`` is empty or contains a NUL character.
    """
    try:
        name = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(
            f"{what} must be a str, bytes or os.PathLike path, got {type(path).__name__}"
        ) from None
    if not name:
        raise ValueError(f"{what}: the path is empty (give a file name)")
    if "\0" in name:
        raise ValueError(f"{what} {name!r} contains a NUL character")
    return name


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _refuse_unless_regular(name: str, mode: int, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = _kind(mode)
    message = f"{name} is {kind}, not {what}"
    raise IsADirectoryError(message) if stat.S_ISDIR(mode) else OSError(message)


def _destination(name: str) -> tuple[str, os.stat_result | None]:
    """The file a write to ``name`` replaces (symbolic links followed) and its stat.

    The stat is None when nothing is there yet (a new file, or a dangling link's target).
    """
    target = os.path.realpath(name) if os.path.islink(name) else os.path.abspath(name)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, None
    except OSError as exc:  # a loop of links, a name too long, a file used as a folder
        raise _about(exc, name, "cannot write there") from None
    _refuse_unless_regular(name, st.st_mode, "a regular file: refusing to replace it")
    return target, st


def _about(exc: OSError, name: str, doing: str, after: str = "") -> OSError:
    """``exc`` again, about ``name`` (never a temporary file), saying what failed."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        reason = "its folder does not exist"
    if exc.errno:
        return type(exc)(exc.errno, f"{doing} ({reason}){after}", name)
    return type(exc)(f"{doing} {name} ({reason}){after}")


def _new_temporary(folder: str) -> tuple[int, str]:
    """Create a temporary file in ``folder``: a short name, mode 0o666 minus the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".tinyllm-{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", folder)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def check_writable(path) -> None:
    """Raise now if a file cannot be written at ``path`` (call it before long work).

    Refuses a destination that is a directory, FIFO, socket or device, and a folder
    that is missing or not writable. ``path`` itself is not touched: a temporary file
    is created in its folder and removed.

    Raises
    ------
    OSError
        ``IsADirectoryError`` for a directory, ``FileNotFoundError`` for a missing
        folder, ``PermissionError`` for a folder that is not writable, ``OSError``
        for a FIFO, socket or device. The message names ``path``.
    ValueError
        ``path`` is empty.
    """
    name = as_path(path)
    target, _ = _destination(name)
    try:
        fd, tmp = _new_temporary(os.path.dirname(target))
    except OSError as exc:
        raise _about(exc, name, "cannot write there") from None
    os.close(fd)
    _remove_quietly(tmp)


def same_file(a, b) -> bool:
    """True when ``a`` and ``b`` name the same file (``os.path.samefile``), existing or not.

    Hard links, symbolic links and spellings like ``./x`` and ``x`` are the same file;
    two paths to files that do not exist yet are the same when they resolve to one path.
    """
    a, b = as_path(a), as_path(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_outputs(
    outputs: Mapping[str, object], inputs: Mapping[str, object] | None = None
) -> None:
    """Check the files a command will write, before it starts working.

    Parameters
    ----------
    outputs : mapping of label to path or None
        What the command writes, by the name the user gave it (``{"--out": ...}``).
        None means "not asked for".
    inputs : mapping of label to path or None, optional
        What the command reads. An output may not be the same file as an input, nor
        as another output.

    Raises
    ------
    ValueError
        An output is empty, or two of the paths are the same file (the message names
        both labels).
    OSError
        An output cannot be written (see :func:`check_writable`).
    """
    given_outputs = [(label, as_path(p, label)) for label, p in outputs.items() if p is not None]
    given_inputs = [
        (label, as_path(p, label)) for label, p in (inputs or {}).items() if p is not None
    ]
    for _, name in given_outputs:
        check_writable(name)
    for i, (label, name) in enumerate(given_outputs):
        for other, other_name in given_outputs[:i]:
            if same_file(name, other_name):
                raise ValueError(
                    f"{other} and {label} are the same file ({name}): give each output its own name"
                )
        for other, other_name in given_inputs:
            if same_file(name, other_name):
                raise ValueError(
                    f"{label} and {other} are the same file ({name}): "
                    "refusing to overwrite an input"
                )


def _keep_owner_and_mode(tmp: str, old: os.stat_result) -> None:
    """Give the temporary file the replaced file's owner, group (where allowed) and mode."""
    if hasattr(os, "chown"):
        for uid, gid in ((-1, old.st_gid), (old.st_uid, -1)):
            with contextlib.suppress(OSError):  # not ours to give away: it stays the writer's
                os.chown(tmp, uid, gid)
    os.chmod(tmp, stat.S_IMODE(old.st_mode))


def _sync_folder(folder: str) -> None:
    """Flush the folder's entry of the renamed file to disk (POSIX; best effort)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path) -> Iterator[BinaryIO]:
    """A binary file to write; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The destination: a regular file, a symbolic link to one, or nothing yet.

    Yields
    ------
    file
        A binary file open for writing (a temporary file in the destination's folder).

    Raises
    ------
    OSError
        The destination is not a regular file, its folder is missing or not writable,
        or writing failed (e.g. ``No space left on device``). The previous file is
        then unchanged and no temporary file is left behind.

    Examples
    --------
    >>> with atomic_writer("figure.png") as f:          # doctest: +SKIP
    ...     fig.savefig(f, format="png")
    """
    name = as_path(path)
    target, old = _destination(name)
    folder = os.path.dirname(target)
    try:
        fd, tmp = _new_temporary(folder)
    except OSError as exc:
        raise _about(exc, name, "cannot write there") from None
    try:
        if old is not None:
            _keep_owner_and_mode(tmp, old)
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns it now
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if fd != -1:
            os.close(fd)
        _remove_quietly(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            raise _about(
                exc, name, "could not write the file", "; any previous file is unchanged"
            ) from None
        raise
    _sync_folder(folder)


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_writer`."""
    with atomic_writer(path) as f:
        f.write(data)


def write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` through :func:`atomic_writer`."""
    write_bytes(path, text.encode("utf-8"))


def open_regular(path, what: str = "file") -> BinaryIO:
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    A directory, FIFO, socket or device is refused from its ``stat``, before it is
    opened; the file is opened without blocking (so a FIFO swapped in meanwhile
    cannot hang the reader) and checked again.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    what : str
        How messages name the file, e.g. ``"model file"``.

    Raises
    ------
    FileNotFoundError
        ``no such <what>: <path>``.
    PermissionError
        ``permission denied`` reading ``path``.
    OSError
        ``path`` is a directory (``IsADirectoryError``), a FIFO, socket or device.
    ValueError
        ``path`` is empty.
    """
    name = as_path(path, what)

    def opened(call, *args):
        try:
            return call(*args)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such {what}: {name}") from None
        except PermissionError as exc:
            raise PermissionError(
                exc.errno, f"permission denied reading the {what}", name
            ) from None

    _refuse_unless_regular(name, opened(os.stat, name).st_mode, f"a {what}")
    fd = opened(os.open, name, os.O_RDONLY | _O_BINARY | _O_NONBLOCK | _O_NOCTTY)
    try:
        _refuse_unless_regular(name, os.fstat(fd).st_mode, f"a {what}")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
