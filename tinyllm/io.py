"""Saving and loading a model: one ``.npz`` file, written atomically.

The format (version 1) is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) with
four entries and nothing that needs pickle, so it is read with ``allow_pickle=False``:

=============  ===========================================================
``meta``       a 0-d unicode array holding JSON: ``{"format": "tinyllm",
               "version": 1, "config": {...}, "vocab": {"tokens", "ids",
               "tokenizer"}, "training": {...} or null}``
``embeddings`` (V, d) in the configuration's dtype
``W1``         (c*d, h)
``W2``         (h, V)
=============  ===========================================================

One file rather than a JSON + ``.npz`` pair: it cannot be separated from its
configuration, is replaced in one rename, and ``numpy.load`` opens it anywhere.
``python -c "import numpy as np; print(np.load('m.npz')['meta'])"`` shows the JSON.

A save writes to a temporary file in the destination's folder, flushes it to disk
and renames it over the destination (``os.replace``, atomic on POSIX and Windows),
so an interrupted save never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from tinyllm.config import TinyLMConfig
from tinyllm.vocab import Vocab

__all__ = ["FORMAT", "VERSION", "save_model", "load_model", "load_metadata", "check_writable"]

FORMAT = "tinyllm"
VERSION = 1
_ARRAYS = ("embeddings", "W1", "W2")


def _meta(model, training: dict[str, Any] | None) -> str:
    c = model.config
    return json.dumps({
        "format": FORMAT,
        "version": VERSION,
        "config": {"vocab_size": c.vocab_size, "dim": c.dim, "context": c.context,
                   "hidden": c.hidden, "dtype": c.dtype, "activation": c.activation},
        "vocab": {"tokens": list(model.vocab.tokens), "ids": list(model.vocab.ids),
                  "tokenizer": model.vocab.tokenizer},
        "training": training,
    }, ensure_ascii=False)


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError now if a file cannot be written at ``path`` (before long work).

    Creates and removes a temporary file in the destination folder; ``path``
    itself is not touched.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tinyllm-check-", dir=folder)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write there ({exc.strerror})", path) from None
    os.close(fd)
    os.unlink(tmp)


def save_model(model, path: str | os.PathLike, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    model : TinyLM
    path : str or path-like
        The file to write (any name; ``.npz`` is the convention). Replaced if it exists.
    training : dict, optional
        JSON-ready facts about how the model was trained, stored with it.

    Raises
    ------
    OSError
        The folder does not exist or is not writable; ``path`` is then unchanged.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(_meta(model, training)), embeddings=model.embedding.table,
                     W1=model.W1, W2=model.W2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"no such model file: {name}")
    try:
        loaded = np.load(name, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not a model archive")
        with loaded as npz:
            missing = [k for k in ("meta", *_ARRAYS) if k not in npz.files]
            if missing:
                raise ValueError(f"the archive has no {', '.join(missing)} entry")
            meta_text = npz["meta"]
            arrays = {k: npz[k] for k in _ARRAYS}
    except ValueError as exc:
        raise ValueError(f"{name} is not a tinyllm model file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{name} is not a tinyllm model file (corrupt or truncated: "
                         f"{type(exc).__name__}: {exc})") from None
    try:
        if meta_text.shape != () or meta_text.dtype.kind != "U":
            raise ValueError("the meta entry is not a JSON string")
        meta = json.loads(str(meta_text))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("the meta entry does not describe a tinyllm model")
    except ValueError as exc:
        raise ValueError(f"{name} is not a tinyllm model file: {exc}") from None
    version = meta.get("version")
    if version != VERSION:
        raise ValueError(f"{name} is a tinyllm model of format version {version!r}; this tinyllm "
                         f"reads version {VERSION} (a newer tinyllm may read it)")
    return meta, arrays


def load_model(path: str | os.PathLike):
    """The model saved in ``path`` by :func:`save_model`, bit for bit.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not a tinyllm model (corrupt, truncated, wrong format version), or its
        arrays do not match its configuration (the message says which).
    """
    from tinyllm.model import TinyLM

    meta, arrays = _read(path)
    name = os.fspath(path)
    try:
        config = TinyLMConfig(**meta["config"])
        v = meta["vocab"]
        vocab = Vocab(v["tokens"], v["ids"], tokenizer=v["tokenizer"])
        for key in _ARRAYS:
            if arrays[key].dtype != np.dtype(config.dtype):
                raise ValueError(f"{key} is {arrays[key].dtype}, the configuration says {config.dtype}")
        return TinyLM(config, vocab, arrays["embeddings"], arrays["W1"], arrays["W2"])
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"{name} does not hold a consistent tinyllm model: {detail}") from None


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON stored with a model (configuration, vocabulary, training facts)."""
    return _read(path)[0]
