"""Weight formats: ``W2`` stored in 16 or 8 bits, and what that costs in accuracy.

Each generated token reads all of ``W2`` (h x V numbers), so at large V the time per
token is the time to read it: halving its bytes nearly halves that time. A model made
by :meth:`tinyllm.TinyLM.quantize` keeps ``W2`` in one of these formats (the
embeddings and ``W1`` stay float32, and every computation is float32):

============  =========================  ============================================
format        bytes per weight           what is stored
============  =========================  ============================================
``float16``   2                          IEEE half precision (``|w| <= 65504``)
``bfloat16``  2                          the upper 16 bits of the float32, rounded to
                                         nearest even (float32's range, 8-bit mantissa)
``int8``      1 (+ 4 per column)         ``values`` in [-127, 127] and one float32
                                         ``scale`` per column (token): column ``j``
                                         means ``values[:, j] * scales[j]``
============  =========================  ============================================

The conversions are exact rules, so that the same float32 or float64 ``W2`` always
gives the same bytes (:func:`quantize`):

- float16: ``W2.astype(float16)`` (round to nearest even); a weight above 65504 in
  magnitude is an error rather than an infinity.
- bfloat16: the float32 bits rounded to nearest even at bit 16; a weight that rounds
  to infinity is an error.
- int8: per column, ``s_j = max_i |W2[i, j]| / 127`` as float32 (a column of zeros
  gets ``s_j = 1``), ``values = clip(rint(W2 / s_j), -127, 127)``. (A column whose
  largest weight is below 1.5e-36 gets a subnormal scale, and fewer bits.)

The int8 projection also quantises its input: ``f1`` is scaled to [-127, 127] per
call, the dot products are exact integer sums, and each logit is rescaled once
(:func:`int8_project` is the exact NumPy reference of the compiled kernel). float16
and bfloat16 weights are converted to float32 and used as they are.

:func:`quantization_error` measures what each format loses against float64 on a set
of contexts: the logits' relative RMS error, the total-variation distance of the
next-token probabilities and how often the most likely token stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinyllm.model import TinyLM

__all__ = [
    "FORMATS",
    "PACKED_FORMATS",
    "QuantizedMatrix",
    "QuantizationError",
    "quantize",
    "int8_project",
    "reference_logits",
    "quantization_error",
]

#: Every weight format a model may have (:attr:`tinyllm.TinyLM.weight_format`).
FORMATS = ("float32", "float64", "float16", "bfloat16", "int8")
#: The formats that store ``W2`` packed (:class:`QuantizedMatrix`); the others are
#: plain arrays of the model's dtype.
PACKED_FORMATS = ("float16", "bfloat16", "int8")

#: The dtype of ``values`` per packed format (bfloat16: the upper half of a float32's bits).
VALUE_DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8),
}

FLOAT16_MAX = 65504.0
INT8_MAX = 127


def check_format(fmt, allowed: tuple[str, ...] = FORMATS) -> str:
    """``fmt`` if it is one of ``allowed``; otherwise a ValueError listing them."""
    if not isinstance(fmt, str) or fmt not in allowed:
        raise ValueError(f"unknown weight format {fmt!r}; expected one of {', '.join(allowed)}")
    return fmt


@dataclass(frozen=True, eq=False)
class QuantizedMatrix:
    """A weight matrix stored in a packed format: ``values`` and, for int8, ``scales``.

    Parameters
    ----------
    format : {"float16", "bfloat16", "int8"}
    values : numpy.ndarray, shape (h, V)
        float16, uint16 (bfloat16's bits) or int8 in [-127, 127].
    scales : numpy.ndarray of float32, shape (V,), or None
        int8 only: finite and > 0; column ``j`` means ``values[:, j] * scales[j]``.

    The arrays are checked (dtype, shape, finite, in range) and kept as read-only
    C-contiguous copies. Make one from a float matrix with :func:`quantize`.

    Raises
    ------
    ValueError
        An unknown format, or arrays that do not fit it (the message says which).
    """

    format: str
    values: np.ndarray
    scales: np.ndarray | None = None

    def __post_init__(self):
        fmt = check_format(self.format, PACKED_FORMATS)
        values = np.asarray(self.values)
        expected = VALUE_DTYPES[fmt]
        if values.dtype.newbyteorder("=") != expected:
            raise ValueError(f"{fmt} values must be {expected}, got {values.dtype}")
        if values.ndim != 2 or values.size == 0:
            raise ValueError(
                f"{fmt} values must be a non-empty 2-D matrix, got shape {values.shape}"
            )
        values = _read_only(values.astype(expected, order="C"))
        if fmt == "float16" and not np.isfinite(values).all():
            raise ValueError("float16 values contain NaN or infinite values")
        if fmt == "bfloat16" and ((values & 0x7F80) == 0x7F80).any():
            raise ValueError("bfloat16 values contain NaN or infinite values")
        if fmt == "int8" and (values == -128).any():
            raise ValueError("int8 values must be in [-127, 127], got -128")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "scales", self._checked_scales(fmt, values.shape[1]))

    def _checked_scales(self, fmt: str, columns: int) -> np.ndarray | None:
        if fmt != "int8":
            if self.scales is not None:
                raise ValueError(f"{fmt} values take no scales")
            return None
        if self.scales is None:
            raise ValueError("int8 values need scales (one float32 per column)")
        scales = np.asarray(self.scales)
        if scales.dtype.newbyteorder("=") != np.float32:
            raise ValueError(f"int8 scales must be float32, got {scales.dtype}")
        if scales.shape != (columns,):
            raise ValueError(f"int8 scales have shape {scales.shape}, expected ({columns},)")
        scales = scales.astype(np.float32)
        if not (np.isfinite(scales) & (scales > 0)).all():
            raise ValueError("int8 scales must be finite and > 0")
        return _read_only(scales)

    @property
    def shape(self) -> tuple[int, int]:
        """(h, V), the shape of the matrix it stands for."""
        return self.values.shape

    @property
    def nbytes(self) -> int:
        """Bytes stored: the values and the scales."""
        return self.values.nbytes + (0 if self.scales is None else self.scales.nbytes)

    def dequantize(self) -> np.ndarray:
        """The matrix it stands for, as a new float32 array of shape (h, V).

        float16 and bfloat16 convert exactly; int8 gives ``float32(values * scales)``.
        """
        if self.format == "float16":
            return self.values.astype(np.float32)
        if self.format == "bfloat16":
            return (self.values.astype(np.uint32) << 16).view(np.float32)
        assert self.scales is not None
        return self.values.astype(np.float32) * self.scales

    def __repr__(self) -> str:
        return f"QuantizedMatrix(format={self.format!r}, shape={self.shape})"


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def quantize(W, fmt: str) -> QuantizedMatrix:
    """``W`` (a float32 or float64 matrix) stored in the packed format ``fmt``.

    Parameters
    ----------
    W : array_like, shape (h, V)
        Finite real numbers.
    fmt : {"float16", "bfloat16", "int8"}
        The rules are in the module docstring.

    Returns
    -------
    QuantizedMatrix

    Raises
    ------
    ValueError
        An unknown format; ``W`` not a non-empty 2-D matrix, or holding NaN or an
        infinity; a weight out of the format's range (float16: above 65504 in
        magnitude; bfloat16: rounding to infinity), naming the largest weight.

    Examples
    --------
    >>> q = quantize([[1.0, -0.5], [0.25, 2.0]], "int8")
    >>> q.values
    array([[127, -32],
           [ 32, 127]], dtype=int8)
    >>> q.scales
    array([0.00787402, 0.01574803], dtype=float32)
    >>> q.dequantize()
    array([[ 1.       , -0.503937 ],
           [ 0.2519685,  2.       ]], dtype=float32)
    """
    fmt = check_format(fmt, PACKED_FORMATS)
    W = _checked_float_matrix(W)
    largest = float(np.abs(W).max())
    if fmt == "float16":
        if largest > FLOAT16_MAX:
            raise ValueError(
                f"a weight of magnitude {largest:g} does not fit in float16 "
                f"(largest {FLOAT16_MAX:g}); use bfloat16 or int8"
            )
        return QuantizedMatrix(fmt, W.astype(np.float16))
    if fmt == "bfloat16":
        return QuantizedMatrix(fmt, _bfloat16_bits(W, largest))
    return QuantizedMatrix(fmt, *_int8_columns(W))


def _checked_float_matrix(W) -> np.ndarray:
    """``W`` as a float32 or float64 array (others: float64), checked finite and 2-D."""
    W = np.asarray(W)
    if W.dtype.kind not in "biuf":
        raise TypeError(f"the weights must be real numbers, got dtype {W.dtype}")
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"the weights must be a non-empty 2-D matrix, got shape {W.shape}")
    if W.dtype not in (np.float32, np.float64):
        W = W.astype(np.float64)
    if not np.isfinite(W).all():
        raise ValueError("the weights contain NaN or infinite values")
    return W


def _bfloat16_bits(W: np.ndarray, largest: float) -> np.ndarray:
    """The bfloat16 bits of ``W``: its float32 bits rounded to nearest even at bit 16."""
    with np.errstate(over="ignore"):  # a float64 beyond float32: reported just below
        bits = np.ascontiguousarray(W, dtype=np.float32).view(np.uint32).astype(np.uint64)
    # Adding 0x7FFF plus the lowest kept bit, then cutting, rounds to nearest even.
    upper = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    if ((upper & 0x7F80) == 0x7F80).any():
        raise ValueError(
            f"a weight of magnitude {largest:g} does not fit in bfloat16 (it rounds to infinity)"
        )
    return upper


def _int8_columns(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and float32 per-column scales of ``W`` (the module docstring's rule)."""
    amax = np.abs(W).max(axis=0)
    scales = (amax / INT8_MAX).astype(np.float32)
    # A column of zeros (or of weights too small for a float32 scale, which a float32
    # model would flush to zero too) gets scale 1 and values 0.
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(W / scales.astype(W.dtype)), -INT8_MAX, INT8_MAX).astype(np.int8)
    return values, scales


# ---------------------------------------------------------------------------
# The projection, in NumPy: the references of the compiled kernels
# ---------------------------------------------------------------------------
def int8_project(f1, values, scales) -> np.ndarray:
    """``f1 @ W2`` as the int8 kernel computes it, exactly (float32 logits).

    ``f1`` is quantised per row: ``amax = max|f1|``, ``inv = 127 / amax`` (0 when
    ``amax`` is 0), ``q = clip(rint(f1 * inv), -127, 127)`` (a float32 multiply,
    round half to even); the dot products ``isum_j = sum_i q_i * values[i, j]`` are
    exact integers; ``logits_j = float32(isum_j) * (amax / 127 * scales[j])``, every
    operation in float32.

    Parameters
    ----------
    f1 : array_like of float32, shape (h,) or (B, h)
        Finite.
    values : numpy.ndarray of int8, shape (h, V)
    scales : numpy.ndarray of float32, shape (V,)

    Returns
    -------
    numpy.ndarray of float32, shape (V,) or (B, V)

    Notes
    -----
    Against the float64 product of the same ``f1`` and ``values * scales``, each
    logit is off by at most ``sum_i |values[i, j]| * scales[j] * amax / 254`` (the
    rounding of ``f1``, half a step of ``amax / 127`` per entry) plus float32
    rounding, about ``h * 2**-24`` relative: the tests check this bound.
    """
    f1 = np.asarray(f1, dtype=np.float32)
    if not np.isfinite(f1).all():
        raise ValueError("f1 contains NaN or infinite values")
    amax = np.abs(f1).max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(INT8_MAX) / amax, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(f1 * inv), -INT8_MAX, INT8_MAX)
    isum = q.astype(np.int64) @ np.asarray(values).astype(np.int64)
    a_scale = amax / np.float32(INT8_MAX)
    return isum.astype(np.float32) * (a_scale * np.asarray(scales, dtype=np.float32))


def _hidden(model: TinyLM, contexts: np.ndarray, dtype) -> np.ndarray:
    """f1 of each context (B, h), computed in NumPy in ``dtype``."""
    E = np.asarray(model.embedding.table, dtype=dtype)
    W1 = np.asarray(model.W1, dtype=dtype)
    x = E[contexts].reshape(len(contexts), -1)
    f1 = x @ W1
    return np.tanh(f1) if model.config.activation == "tanh" else f1


def reference_logits(model: TinyLM, contexts) -> np.ndarray:
    """The logits of ``model`` for each context, computed in NumPy as its kernels do.

    float32 and float64 models: ``f1 @ W2`` in their dtype. float16 and bfloat16:
    float32 arithmetic on ``W2`` converted to float32. int8: :func:`int8_project`.
    (``f1`` comes from NumPy's matrix product, whose rounding may differ from the
    kernel's in the last bits.)

    Parameters
    ----------
    model : TinyLM
    contexts : array_like of int, shape (B, c)
        Vocabulary positions, ``c`` per context.

    Returns
    -------
    numpy.ndarray, shape (B, V), in the model's computing dtype
    """
    contexts = _checked_contexts(model, contexts)
    dtype = np.dtype(model.config.dtype)
    f1 = _hidden(model, contexts, dtype)
    packed = model.packed_W2
    if packed is not None and packed.format == "int8":
        return int8_project(f1, packed.values, packed.scales)
    return f1 @ model.W2


def _checked_contexts(model: TinyLM, contexts) -> np.ndarray:
    contexts = np.asarray(contexts)
    c, V = model.config.context, model.config.vocab_size
    if contexts.dtype.kind not in "iu" or contexts.ndim != 2 or contexts.shape[1] != c:
        raise ValueError(
            f"contexts must be integer positions of shape (B, {c}), got "
            f"{contexts.dtype} of shape {contexts.shape}"
        )
    if contexts.size and not ((contexts >= 0) & (contexts < V)).all():
        raise ValueError(f"contexts hold a position out of range for {V} tokens")
    return contexts


@dataclass(frozen=True)
class QuantizationError:
    """What a weight format loses against float64, over a set of contexts.

    Attributes
    ----------
    format : str
    logits_rel_rms : float
        ``||logits - logits64|| / ||logits64||`` over every context and token.
    tv_mean, tv_max : float
        The total-variation distance ``0.5 * sum|p - p64|`` of the next-token
        probabilities (temperature 1), mean and largest over the contexts.
    top1_agreement : float
        The share of contexts whose most likely token is float64's.
    contexts : int
        How many contexts were measured.
    """

    format: str
    logits_rel_rms: float
    tv_mean: float
    tv_max: float
    top1_agreement: float
    contexts: int


def quantization_error(model: TinyLM, fmt: str, contexts) -> QuantizationError:
    """How far ``model.quantize(fmt)``'s predictions are from ``model``'s in float64.

    The reference is ``model``'s own weights with every operation in float64; the
    quantised model's logits are :func:`reference_logits` (the kernels' arithmetic in
    NumPy). Measure on a float64 model, so that the reference is not itself rounded.

    Parameters
    ----------
    model : TinyLM
    fmt : {"float32", "float64", "float16", "bfloat16", "int8"}
    contexts : array_like of int, shape (B, c)
        B >= 1 contexts of ``c`` vocabulary positions.

    Returns
    -------
    QuantizationError
    """
    contexts = _checked_contexts(model, contexts)
    if len(contexts) == 0:
        raise ValueError("quantization_error needs at least one context")
    exact = _hidden(model, contexts, np.float64) @ np.asarray(model.W2, dtype=np.float64)
    approx = reference_logits(model.quantize(fmt), contexts).astype(np.float64)
    p, p_exact = _softmax64(approx), _softmax64(exact)
    tv = 0.5 * np.abs(p - p_exact).sum(axis=1)
    return QuantizationError(
        format=fmt,
        logits_rel_rms=float(np.sqrt(((approx - exact) ** 2).sum() / (exact**2).sum())),
        tv_mean=float(tv.mean()),
        tv_max=float(tv.max()),
        top1_agreement=float((approx.argmax(axis=1) == exact.argmax(axis=1)).mean()),
        contexts=len(contexts),
    )


def _softmax64(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
