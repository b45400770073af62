# Hand-written stub for the Cython module tinyllm._sampling (src/_sampling.pyx).
# Cython makes no stubs: keep this in step with the .pyx; tests/test_stubs.py
# runs mypy.stubtest on it. The comment after each argument is the Cython type
# the entry point hands to its kernels after validation: rows of a (V,) or (B, V)
# input as `const floating[:, ::1]` (float32 stays float32, other real dtypes are
# read as float64), and the draws written as int64.
from collections.abc import Sequence
from typing import Any, SupportsFloat, SupportsIndex, TypeAlias, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

# None: fresh entropy; an int >= 0: numpy.random.default_rng(seed); a Generator:
# its bit generator's bitgen_t, used under its lock.
_RNG: TypeAlias = int | np.integer | np.random.Generator | None
# The shape of the draws per row: Py_ssize_t or a tuple/list of them, each >= 0.
_Size: TypeAlias = SupportsIndex | Sequence[SupportsIndex]
# The items of Generation.take_tokens (the vocabulary's strings).
_T = TypeVar("_T")

@overload
def sample(
    weights: ArrayLike,  # const floating[:, ::1], shape (V,) or (B, V), >= 0
    size: None = None,
    rng: _RNG = None,  # bitgen_t*
) -> Any: ...  # int for 1-D weights, an int64 array of shape (B,) for 2-D (as numpy's choice)
@overload
def sample(
    weights: ArrayLike,  # const floating[:, ::1], shape (V,) or (B, V), >= 0
    size: _Size,
    rng: _RNG = None,  # bitgen_t*
) -> NDArray[np.int64]: ...  # int64_t, shape size or (B,) + size
@overload
def sample_logits(
    logits: ArrayLike,  # const floating[:, ::1], shape (V,) or (B, V); -inf masks
    temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    size: None = None,
    rng: _RNG = None,  # bitgen_t*
) -> Any: ...  # int for 1-D logits, an int64 array of shape (B,) for 2-D (as numpy's choice)
@overload
def sample_logits(
    logits: ArrayLike,  # const floating[:, ::1], shape (V,) or (B, V); -inf masks
    temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    *,
    size: _Size,
    rng: _RNG = None,  # bitgen_t*
) -> NDArray[np.int64]: ...  # int64_t, shape size or (B,) + size
@overload
def filter_logits(
    logits: NDArray[np.float32],  # const float[:, ::1], shape (V,) or (B, V)
    temperature: SupportsFloat = 1.0,  # double, >= 0
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    out: NDArray[np.float32] | None = None,  # float[:, ::1], shape of logits
) -> NDArray[np.float32]: ...
@overload
def filter_logits(
    logits: ArrayLike,  # const double[:, ::1], shape (V,) or (B, V)
    temperature: SupportsFloat = 1.0,  # double, >= 0
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    out: NDArray[np.float64] | None = None,  # double[:, ::1], shape of logits
) -> NDArray[np.float64]: ...

# Test hook (not API): the weights and block sums of the one-draw path without
# filters, or None where that path does not apply.
def _exp_weights(
    logits: NDArray[np.floating],  # const float/double[::1]
    temperature: float,  # double
) -> tuple[NDArray[np.floating], NDArray[np.float64]] | None: ...

def as_generator(
    rng: int | np.integer[Any] | np.random.Generator | None,  # object
    func: str = ...,  # str
) -> np.random.Generator: ...

@disjoint_base  # a Cython extension type: cannot share a subclass with another base
class Generation:
    # The model's arrays, one dtype, C-contiguous: const floating* inside the loop.
    embeddings: np.ndarray  # shape (V, d)
    W1: np.ndarray  # shape (c*d, h)
    W2: np.ndarray  # shape (h, V)
    def __init__(
        self,
        embeddings: np.ndarray,  # const floating*, shape (V, d)
        W1: np.ndarray,  # const floating*, shape (c*d, h)
        W2: np.ndarray,  # const floating*, shape (h, V)
        context: ArrayLike,  # int64_t*, c positions (copied; updated in place)
        temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
        top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
        top_p: SupportsFloat | None = None,  # double, in (0, 1]
        min_p: SupportsFloat | None = None,  # double, in [0, 1]
        rng: _RNG = None,  # bitgen_t*, used under the Generator's lock
        tanh: bool = False,  # bint: f1 = tanh(x @ W1)
    ) -> None: ...
    def take(self, n: int) -> NDArray[np.int64]: ...  # Py_ssize_t -> int64_t, shape (n,)
    # Py_ssize_t; tuple of V items -> list of tokens[position] (no per-token int or array)
    def take_tokens(self, n: int, tokens: tuple[_T, ...]) -> list[_T]: ...
    # A copy of the last step's logits, shape (V,), in the weights' dtype; None before any.
    def last_logits(self) -> NDArray[np.floating[Any]] | None: ...
