# Hand-written stub for the Cython module tinyllm._generate (src/_generate.pyx).
# Cython makes no stubs: keep this in step with the .pyx; the lint step of .ci/run
# runs mypy.stubtest on it. The comment after each argument is the C type the
# kernels see.
from collections.abc import Iterable, Mapping
from typing import Any, SupportsFloat, SupportsIndex, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

# None: fresh entropy; an int >= 0: numpy.random.default_rng(seed); a Generator:
# its bit generator's bitgen_t, used under its lock.
_RNG: TypeAlias = int | np.integer | np.random.Generator | None
# The items of Generation.take_tokens (the vocabulary's strings).
_T = TypeVar("_T")

@disjoint_base
class PackedMatrix:
    # W2 (h, V) in panels of 64 columns (16 for int8): float32, float16, uint16 (bfloat16) or int8
    # values (int8 with (V,) float32 column scales); copied, any layout.
    format: str  # "float32", "float16", "bfloat16" or "int8"
    shape: tuple[int, int]
    def __init__(self, values: ArrayLike, scales: ArrayLike | None = None) -> None: ...
    @property
    def nbytes(self) -> int: ...

# The int8 projection's path in the kernels in use: "avx512-vnni", "avx512", "avx2" or "portable".
def int8_path() -> str: ...

# Let int8 use VNNI where the CPU has it (or not); returns whether it did (tests, bench).
def set_int8_vnni(on: bool) -> bool: ...

# (x, f1, logits) of one context, in the weights' dtype: shapes (c*d,), (h,), (V,).
def forward(
    embeddings: np.ndarray,  # const floating*, shape (V, d)
    W1: np.ndarray | PackedMatrix,  # const floating*, shape (c*d, h); packed: float32
    W2: np.ndarray | PackedMatrix,  # const floating*, shape (h, V); packed: float32 E, W1
    context: ArrayLike,  # int64_t*, c positions
    tanh: bool = False,  # bint: f1 = tanh(x @ W1)
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]: ...

@disjoint_base  # a Cython extension type: cannot share a subclass with another base
class Generation:
    # The model's arrays, one dtype, C-contiguous: const floating* inside the loop.
    embeddings: np.ndarray  # shape (V, d)
    W1: np.ndarray | PackedMatrix  # shape (c*d, h)
    W2: np.ndarray | PackedMatrix  # shape (h, V)
    def __init__(
        self,
        embeddings: np.ndarray,  # const floating*, shape (V, d)
        W1: np.ndarray | PackedMatrix,  # const floating*, shape (c*d, h); packed: float32
        W2: np.ndarray | PackedMatrix,  # const floating*, shape (h, V); packed: float32
        context: ArrayLike,  # int64_t*, c positions (copied; updated in place)
        temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
        top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
        top_p: SupportsFloat | None = None,  # double, in (0, 1]
        min_p: SupportsFloat | None = None,  # double, in [0, 1]
        rng: _RNG = None,  # bitgen_t*, used under the Generator's lock
        tanh: bool = False,  # bint: f1 = tanh(x @ W1)
        *,
        typical_p: SupportsFloat | None = None,  # double, in (0, 1]
        top_n_sigma: SupportsFloat | None = None,  # double, >= 0
        min_tokens_to_keep: SupportsIndex = 1,  # Py_ssize_t, >= 1
        logit_bias: Mapping[SupportsIndex, SupportsFloat]
        | None = None,  # position -> bias (or -inf)
        repetition_penalty: SupportsFloat = 1.0,  # double, > 0
        presence_penalty: SupportsFloat = 0.0,  # double
        frequency_penalty: SupportsFloat = 0.0,  # double
        penalty_last_n: SupportsIndex | None = 64,  # Py_ssize_t, >= 0; None: all of history
        history: ArrayLike | None = None,  # int64_t*, positions the penalties read
        first_logits: bool = True,  # the first token's logits now (False: at the first step)
    ) -> None: ...
    def take(self, n: int) -> NDArray[np.int64]: ...  # Py_ssize_t -> int64_t, shape (n,)
    # Py_ssize_t; tuple of V items -> list of tokens[position] (no per-token int or array)
    def take_tokens(self, n: int, tokens: tuple[_T, ...]) -> list[_T]: ...
    # A copy of the last step's logits, shape (V,), in the weights' dtype; None before any.
    def last_logits(self) -> NDArray[np.floating[Any]] | None: ...

@disjoint_base
class BatchGeneration:
    # Generations of one model stepped together (one read of W1 and W2 per step).
    def __init__(self, generations: Iterable[Generation]) -> None: ...
    @property
    def active(self) -> list[int]: ...  # positions (as made) of the sequences still in it
    def retire(self, index: int) -> None: ...  # Py_ssize_t: a position as made
    # Py_ssize_t -> int64_t, shape (len(active), n), rows in the order of active
    def take(self, n: int) -> NDArray[np.int64]: ...
