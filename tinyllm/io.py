"""Saving and loading a model: one ``.npz`` file, written atomically.

The format (version 2) is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) with
four or five entries and nothing that needs pickle, so it is read with
``allow_pickle=False``:

=============  ===========================================================
``meta``       a 0-d unicode array holding JSON: ``{"format": "tinyllm",
               "version": 2, "config": {...}, "weight_format": "...",
               "vocab": {"tokens", "ids", "tokenizer"}, "training": {...}
               or null}``
``embeddings`` (V, d) in the configuration's dtype
``W1``         (c*d, h)
``W2``         (h, V): in the configuration's dtype when ``weight_format`` is
               that dtype ("float32" or "float64"); otherwise the packed
               values of :mod:`tinyllm.formats` (float16, uint16 holding
               bfloat16's bits, or int8 in [-127, 127]), the configuration's
               dtype being float32
``W2_scales``  (V,) float32, finite and > 0: int8 only, one scale per column
=============  ===========================================================

Version 1 (tinyllm before weight formats) is the same without ``weight_format`` and
``W2_scales``: ``W2`` in the configuration's dtype. It still loads.

One file rather than a JSON + ``.npz`` pair: it cannot be separated from its
configuration, is replaced in one rename, and ``numpy.load`` opens it anywhere.
``python -c "import numpy as np; print(np.load('m.npz')['meta'])"`` shows the JSON.

A save goes through :func:`tinyllm._files.atomic_writer`: a temporary file in the
destination's folder, flushed to disk and renamed over the destination, so an
interrupted save never leaves a half-written file under the real name. A directory,
FIFO, socket or device at the destination is refused; a symbolic link keeps pointing
at the (replaced) model; a replaced file keeps its mode.

A load trusts nothing in the file. It refuses a directory, FIFO or device without
blocking on it, reads the zip directory and each entry's ``.npy`` header (a few
hundred bytes), and checks every shape and dtype against the configuration and the
weight format before it decompresses anything large: a small file that claims, or
inflates to, gigabytes is refused at once. Then the packed values are checked (int8
in [-127, 127], scales finite and > 0, no infinity or NaN in float16 or bfloat16).
The JSON is bounded in size (:data:`MAX_META_CHARS`) and nesting
(:data:`MAX_META_DEPTH`). Every failure is a ``ValueError`` naming the file, or an
``OSError`` (missing, permission denied, not a regular file).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from tinyllm._files import as_path, atomic_writer, check_writable, open_regular
from tinyllm.config import TinyLMConfig
from tinyllm.formats import FORMATS, PACKED_FORMATS, VALUE_DTYPES, QuantizedMatrix
from tinyllm.vocab import Vocab

__all__ = [
    "FORMAT",
    "VERSION",
    "MAX_META_CHARS",
    "MAX_META_DEPTH",
    "save_model",
    "load_model",
    "load_metadata",
    "check_writable",
]

FORMAT = "tinyllm"
VERSION = 2
#: The format versions this tinyllm reads (it writes :data:`VERSION`).
READS_VERSIONS = (1, 2)
_ARRAYS = ("embeddings", "W1", "W2")  # in every file
_SCALES = "W2_scales"  # in int8 files

#: Longest JSON a model file may hold, in characters: far above what ``tinyllm train``
#: writes (about 2 million for a 100 000-token vocabulary, 200 per epoch of history),
#: and bounded so that a small compressed file cannot expand its JSON without limit.
MAX_META_CHARS = 1 << 24
#: Deepest nesting of lists and objects in that JSON (tinyllm writes 4 levels).
MAX_META_DEPTH = 32

_NPY_HEADER_MAX = 10_000  # bytes of an .npy header dict (NumPy's own limit)
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this
_CHUNK = 1 << 20  # bytes read from an entry at a time


def _meta(model, training: dict[str, Any] | None) -> str:
    c = model.config
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "config": {
                "vocab_size": c.vocab_size,
                "dim": c.dim,
                "context": c.context,
                "hidden": c.hidden,
                "dtype": c.dtype,
                "activation": c.activation,
            },
            "weight_format": model.weight_format,
            "vocab": {
                "tokens": list(model.vocab.tokens),
                "ids": list(model.vocab.ids),
                "tokenizer": model.vocab.tokenizer,
            },
            "training": training,
        },
        ensure_ascii=False,
    )


def save_model(model, path, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    model : TinyLM
    path : str, bytes or path-like
        The file to write (any name; ``.npz`` is the convention). Replaced if it is a
        regular file (or a symbolic link to one: the link's target is replaced).
    training : dict, optional
        JSON-ready facts about how the model was trained, stored with it.

    Raises
    ------
    OSError
        ``path`` is a directory, FIFO, socket or device, its folder does not exist or
        is not writable, or the disk is full; any previous file is then unchanged.
    ValueError
        ``path`` is empty, or the JSON would be longer than :data:`MAX_META_CHARS`.
    """
    meta = _meta(model, training)
    if len(meta) > MAX_META_CHARS:
        raise ValueError(
            f"the model's JSON would hold {len(meta):,} characters, more than the "
            f"{MAX_META_CHARS:,} a model file may hold (a shorter training history?)"
        )
    packed = model.packed_W2
    W2 = {"W2": model.W2} if packed is None else {"W2": packed.values}
    if packed is not None and packed.scales is not None:
        W2[_SCALES] = packed.scales
    with atomic_writer(path) as f:
        np.savez(f, meta=np.array(meta), embeddings=model.embedding.table, W1=model.W1, **W2)


# ---------------------------------------------------------------------------
# Reading: headers first, then the JSON, then the arrays the JSON asks for
# ---------------------------------------------------------------------------
class _Bad(ValueError):
    """What is wrong with the file (the caller adds its name)."""


# Errors that the zip and deflate readers raise on a damaged archive.
_DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    struct.error,
    NotImplementedError,
    OverflowError,
    IndexError,
)


def _open_archive(f) -> zipfile.ZipFile:
    start = f.read(6)
    f.seek(0)
    try:
        return zipfile.ZipFile(f)
    except (*_DAMAGED, ValueError) as exc:
        if not start:
            raise _Bad("the file is empty") from None
        if start == b"\x93NUMPY":
            raise _Bad("it holds a single .npy array, not a model archive") from None
        if start.startswith(b"PK"):
            raise _Bad(f"the zip archive is corrupt or truncated ({exc})") from None
        raise _Bad("not a zip archive") from None


def _entries(
    archive: zipfile.ZipFile, file_size: int, keys: tuple[str, ...]
) -> dict[str, zipfile.ZipInfo]:
    """The entries ``keys``, checked to be readable and to fit in the file as stored."""
    infos = {}
    for key in keys:
        try:
            info = archive.getinfo(key + ".npy")
        except KeyError:
            raise _Bad(f"the archive has no {key} entry") from None
        if info.flag_bits & 0x1:
            raise _Bad(f"the {key} entry is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            bound = info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            bound = info.compress_size * _DEFLATE_MAX_RATIO + 1024
        else:
            raise _Bad(
                f"the {key} entry uses compression method {info.compress_type}; "
                "tinyllm reads stored or deflated entries (numpy.savez, savez_compressed)"
            )
        if info.header_offset + info.compress_size > file_size:
            raise _Bad(f"the {key} entry runs past the end of the file (truncated)")
        if info.file_size > bound:
            raise _Bad(
                f"the {key} entry claims {info.file_size:,} bytes, more than its "
                f"{info.compress_size:,} stored bytes can hold (corrupt)"
            )
        infos[key] = info
    return infos


def _read_exactly(member, n: int, what: str) -> bytes:
    data = member.read(n)
    if len(data) != n:
        raise _Bad(f"the {what} ends early (truncated)")
    return data


class _Header:
    """An ``.npy`` entry's header: shape, dtype, order, and where its data starts."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str):
        self.key, self.info = key, info
        with archive.open(info) as member:
            try:
                version = np.lib.format.read_magic(member)
            except ValueError:
                raise _Bad(f"the {key} entry is not a .npy array") from None
            if version not in ((1, 0), (2, 0)):
                raise _Bad(
                    f"the {key} entry is a .npy file of version {version}, "
                    "which tinyllm does not read"
                )
            length_format = "<H" if version == (1, 0) else "<I"
            raw_length = _read_exactly(member, struct.calcsize(length_format), f"{key} entry")
            (length,) = struct.unpack(length_format, raw_length)
            if length > _NPY_HEADER_MAX:  # read it only once its size is known to be sane
                raise _Bad(f"the {key} entry has a {length:,}-byte header (corrupt)")
            header = raw_length + _read_exactly(member, length, f"{key} entry")
            self.data_offset = member.tell()
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        try:
            self.shape, self.fortran_order, self.dtype = reader(io.BytesIO(header))
        except ValueError:
            raise _Bad(f"the {key} entry's .npy header is not valid") from None
        if self.dtype.hasobject or self.dtype.fields is not None or self.dtype.itemsize == 0:
            raise _Bad(f"the {key} entry holds {self.dtype} values, not numbers or text")
        self.nbytes = int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize
        if info.file_size != self.data_offset + self.nbytes:
            raise _Bad(
                f"the {key} entry's size ({info.file_size:,} bytes) does not match "
                f"its header (shape {self.shape}, {self.dtype}): corrupt"
            )

    def read(self, archive: zipfile.ZipFile) -> np.ndarray:
        """The entry's array (decompressed now), in native byte order."""
        count = self.nbytes // self.dtype.itemsize
        try:
            array = np.empty(count, dtype=self.dtype)
        except MemoryError:
            raise _Bad(
                f"the {self.key} entry needs {self.nbytes:,} bytes of memory, "
                "more than is available"
            ) from None
        raw = array.view(np.uint8)
        with archive.open(self.info) as member:
            _read_exactly(member, self.data_offset, f"{self.key} entry")
            for start in range(0, raw.size, _CHUNK):
                chunk = _read_exactly(member, min(_CHUNK, raw.size - start), f"{self.key} entry")
                raw[start : start + len(chunk)] = np.frombuffer(chunk, np.uint8)
            member.read(1)  # at the end: zipfile checks the CRC-32
        if self.fortran_order:
            array = array.reshape(self.shape[::-1]).T
        else:
            array = array.reshape(self.shape)
        if not array.dtype.isnative:  # e.g. '>f8' written on a big-endian machine
            array = array.astype(array.dtype.newbyteorder("="))
        return array


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _nesting_depth(text: str) -> int:
    """How deep lists and objects nest in the JSON ``text`` (brackets in strings ignored)."""
    skeleton = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    steps = np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64) - np.isin(
        skeleton, (ord("]"), ord("}"))
    )
    return int(np.cumsum(steps).max(initial=0))


def _parse_meta(archive: zipfile.ZipFile, header: _Header) -> dict[str, Any]:
    if header.shape != () or header.dtype.kind != "U":
        raise _Bad("the meta entry is not a JSON string")
    chars = header.dtype.itemsize // 4
    if chars > MAX_META_CHARS:
        raise _Bad(
            f"its JSON would be {chars:,} characters long, more than the "
            f"{MAX_META_CHARS:,} a model file may hold"
        )
    try:
        text = str(header.read(archive)[()])
    except UnicodeError:
        raise _Bad("the meta entry is not valid text") from None
    depth = _nesting_depth(text)
    if depth > MAX_META_DEPTH:
        raise _Bad(f"its JSON nests {depth:,} levels deep, more than the {MAX_META_DEPTH} allowed")
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _Bad(f"the meta entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Bad("the meta entry does not describe a tinyllm model")
    return meta


class _Inconsistent(ValueError):
    """The file is a tinyllm model whose parts do not agree (the caller adds its name)."""


class _OtherVersion(ValueError):
    """A tinyllm model of another format version (the caller adds its name)."""


def _config(meta: dict[str, Any]) -> TinyLMConfig:
    try:
        settings = meta["config"]
        if not isinstance(settings, dict):
            raise TypeError("the config entry is not an object")
        return TinyLMConfig(**settings)
    except KeyError as exc:
        raise _Inconsistent(f"missing {exc}") from None
    except (TypeError, ValueError) as exc:
        raise _Inconsistent(str(exc)) from None


def _weight_format(meta: dict[str, Any], config: TinyLMConfig) -> str:
    """How the file stores W2: its ``weight_format`` (version 2), or the dtype (version 1)."""
    if meta["version"] == 1:
        return config.dtype
    fmt = meta.get("weight_format")
    if fmt not in FORMATS:
        raise _Inconsistent(
            f"its weight format is {fmt!r}; this tinyllm reads {', '.join(FORMATS)}"
        )
    if fmt in PACKED_FORMATS and config.dtype != "float32":
        raise _Inconsistent(
            f"W2 in {fmt} goes with dtype float32, the configuration says {config.dtype}"
        )
    if fmt not in PACKED_FORMATS and fmt != config.dtype:
        raise _Inconsistent(f"the weight format {fmt} differs from the dtype {config.dtype}")
    return fmt


def _check_against(config: TinyLMConfig, fmt: str, headers: dict[str, _Header]) -> None:
    """Every array's shape and dtype as the configuration and the weight format say
    (before reading any)."""
    dtype = np.dtype(config.dtype)
    expected = {
        "embeddings": ((config.vocab_size, config.dim), dtype),
        "W1": ((config.input_size, config.hidden), dtype),
        "W2": ((config.hidden, config.vocab_size), VALUE_DTYPES.get(fmt, dtype)),
        _SCALES: ((config.vocab_size,), np.dtype(np.float32)),
    }
    for key, h in headers.items():
        if key == "meta":
            continue
        shape, want = expected[key]
        if h.dtype.newbyteorder("=") != want:
            if key == _SCALES:
                says = "expected float32"
            elif key == "W2" and fmt in PACKED_FORMATS:
                says = f"W2 in {fmt} is stored as {want}"
            else:
                says = f"the configuration says {config.dtype}"
            raise _Inconsistent(f"{key} is {h.dtype.newbyteorder('=')}, {says}")
        if h.shape != shape:
            raise _Inconsistent(f"{key} has shape {h.shape}, expected {shape}")


def _read(path, arrays: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON of the model file at ``path`` and, if ``arrays``, its checked arrays."""
    name = as_path(path, "model file")
    with open_regular(name, "model file") as f:
        file_size = os.fstat(f.fileno()).st_size
        try:
            with _open_archive(f) as archive:
                infos = _entries(archive, file_size, ("meta", *_ARRAYS))
                headers = {key: _Header(archive, infos[key], key) for key in infos}
                meta = _parse_meta(archive, headers["meta"])
                version = meta.get("version")
                if version not in READS_VERSIONS or isinstance(version, bool):
                    raise _OtherVersion(
                        f"is a tinyllm model of format version {version!r}; "
                        f"this tinyllm reads versions 1 to {VERSION} (a newer "
                        "tinyllm may read it)"
                    )
                if not arrays:
                    return meta, {}
                config = _config(meta)
                fmt = _weight_format(meta, config)
                if fmt == "int8":
                    (info,) = _entries(archive, file_size, (_SCALES,)).values()
                    headers[_SCALES] = _Header(archive, info, _SCALES)
                _check_against(config, fmt, headers)
                return meta, {key: headers[key].read(archive) for key in headers if key != "meta"}
        except _Inconsistent as exc:
            raise ValueError(f"{name} does not hold a consistent tinyllm model: {exc}") from None
        except _OtherVersion as exc:
            raise ValueError(f"{name} {exc}") from None
        except _Bad as exc:
            raise ValueError(f"{name} is not a tinyllm model file: {exc}") from None
        except (*_DAMAGED, ValueError) as exc:
            raise ValueError(
                f"{name} is not a tinyllm model file (corrupt or truncated: "
                f"{type(exc).__name__}: {exc})"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # zipfile seeking to an offset before the start
                raise ValueError(
                    f"{name} is not a tinyllm model file (corrupt: an offset "
                    "points outside the file)"
                ) from None
            raise type(exc)(
                exc.errno, f"cannot read the model file ({exc.strerror})", name
            ) from None


def load_model(path):
    """The model saved in ``path`` by :func:`save_model`, bit for bit.

    Parameters
    ----------
    path : str, bytes or path-like

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PermissionError
        ``path`` cannot be read ("permission denied").
    OSError
        ``path`` is a directory (``IsADirectoryError``), a FIFO, socket or device.
    ValueError
        Not a tinyllm model (not a zip archive, corrupt, truncated, wrong format
        version, JSON too long or too deep), or its arrays do not match its
        configuration (the message says which). The message names ``path``.
    """
    from tinyllm.model import TinyLM

    meta, arrays = _read(path)
    name = as_path(path)
    try:
        config = _config(meta)
        v = meta["vocab"]
        if not isinstance(v, dict):
            raise TypeError("the vocab entry is not an object")
        vocab = Vocab(v["tokens"], v["ids"], tokenizer=v["tokenizer"])
        fmt = _weight_format(meta, config)
        W2 = (
            QuantizedMatrix(fmt, arrays["W2"], arrays.get(_SCALES))
            if fmt in PACKED_FORMATS
            else arrays["W2"]
        )
        return TinyLM(config, vocab, arrays["embeddings"], arrays["W1"], W2)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{name} does not hold a consistent tinyllm model: {detail}") from None


def load_metadata(path) -> dict[str, Any]:
    """The JSON stored with a model (configuration, vocabulary, training facts).

    Reads only the archive's directory, the entries' headers and the JSON; raises
    as :func:`load_model` does for a file that is not a tinyllm model.
    """
    return _read(path, arrays=False)[0]
