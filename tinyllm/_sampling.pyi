# Hand-written stub for the Cython module tinyllm._sampling (src/_sampling.pyx).
# Cython makes no stubs: keep this in step with the .pyx; the lint step of .ci/run
# runs mypy.stubtest on it. The comment after each argument is the C type the entry
# point hands to its kernels after validation: rows of a (V,) or (B, V) input as
# `const floating*` (float32 stays float32, other real dtypes are read as float64),
# and the draws written as int64.
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat, SupportsIndex, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

# None: fresh entropy; an int >= 0: numpy.random.default_rng(seed); a Generator:
# its bit generator's bitgen_t, used under its lock.
_RNG: TypeAlias = int | np.integer | np.random.Generator | None
# The shape of the draws per row: Py_ssize_t or a tuple/list of them, each >= 0.
_Size: TypeAlias = SupportsIndex | Sequence[SupportsIndex]

@overload
def sample(
    weights: ArrayLike,  # const floating*, shape (V,) or (B, V), >= 0
    size: None = None,
    rng: _RNG = None,  # bitgen_t*
) -> Any: ...  # int for 1-D weights, an int64 array of shape (B,) for 2-D (as numpy's choice)
@overload
def sample(
    weights: ArrayLike,  # const floating*, shape (V,) or (B, V), >= 0
    size: _Size,
    rng: _RNG = None,  # bitgen_t*
) -> NDArray[np.int64]: ...  # int64_t, shape size or (B,) + size
@overload
def sample_logits(
    logits: ArrayLike,  # const floating*, shape (V,) or (B, V); -inf masks
    temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    size: None = None,
    rng: _RNG = None,  # bitgen_t*
    *,
    typical_p: SupportsFloat | None = None,  # double, in (0, 1]
    top_n_sigma: SupportsFloat | None = None,  # double, >= 0
    min_tokens_to_keep: SupportsIndex = 1,  # Py_ssize_t, >= 1
    logit_bias: Mapping[SupportsIndex, SupportsFloat] | None = None,  # position -> bias (or -inf)
    repetition_penalty: SupportsFloat = 1.0,  # double, > 0
    presence_penalty: SupportsFloat = 0.0,  # double
    frequency_penalty: SupportsFloat = 0.0,  # double
    penalty_last_n: SupportsIndex | None = 64,  # Py_ssize_t, >= 0; None: all of history
    history: ArrayLike | None = None,  # int64_t*, positions the penalties read
) -> Any: ...  # int for 1-D logits, an int64 array of shape (B,) for 2-D (as numpy's choice)
@overload
def sample_logits(
    logits: ArrayLike,  # const floating*, shape (V,) or (B, V); -inf masks
    temperature: SupportsFloat = 1.0,  # double, >= 0 (0: greedy argmax)
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    *,
    size: _Size,
    rng: _RNG = None,  # bitgen_t*
    typical_p: SupportsFloat | None = None,  # double, in (0, 1]
    top_n_sigma: SupportsFloat | None = None,  # double, >= 0
    min_tokens_to_keep: SupportsIndex = 1,  # Py_ssize_t, >= 1
    logit_bias: Mapping[SupportsIndex, SupportsFloat] | None = None,  # position -> bias (or -inf)
    repetition_penalty: SupportsFloat = 1.0,  # double, > 0
    presence_penalty: SupportsFloat = 0.0,  # double
    frequency_penalty: SupportsFloat = 0.0,  # double
    penalty_last_n: SupportsIndex | None = 64,  # Py_ssize_t, >= 0; None: all of history
    history: ArrayLike | None = None,  # int64_t*, positions the penalties read
) -> NDArray[np.int64]: ...  # int64_t, shape size or (B,) + size
@overload
def filter_logits(
    logits: NDArray[np.float32],  # const float*, shape (V,) or (B, V)
    temperature: SupportsFloat = 1.0,  # double, >= 0
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    out: NDArray[np.float32] | None = None,  # float*, shape of logits
    *,
    typical_p: SupportsFloat | None = None,  # double, in (0, 1]
    top_n_sigma: SupportsFloat | None = None,  # double, >= 0
    min_tokens_to_keep: SupportsIndex = 1,  # Py_ssize_t, >= 1
    logit_bias: Mapping[SupportsIndex, SupportsFloat] | None = None,  # position -> bias (or -inf)
    repetition_penalty: SupportsFloat = 1.0,  # double, > 0
    presence_penalty: SupportsFloat = 0.0,  # double
    frequency_penalty: SupportsFloat = 0.0,  # double
    penalty_last_n: SupportsIndex | None = 64,  # Py_ssize_t, >= 0; None: all of history
    history: ArrayLike | None = None,  # int64_t*, positions the penalties read
) -> NDArray[np.float32]: ...
@overload
def filter_logits(
    logits: ArrayLike,  # const double*, shape (V,) or (B, V)
    temperature: SupportsFloat = 1.0,  # double, >= 0
    top_k: SupportsIndex | None = None,  # Py_ssize_t, >= 1
    top_p: SupportsFloat | None = None,  # double, in (0, 1]
    min_p: SupportsFloat | None = None,  # double, in [0, 1]
    out: NDArray[np.float64] | None = None,  # double*, shape of logits
    *,
    typical_p: SupportsFloat | None = None,  # double, in (0, 1]
    top_n_sigma: SupportsFloat | None = None,  # double, >= 0
    min_tokens_to_keep: SupportsIndex = 1,  # Py_ssize_t, >= 1
    logit_bias: Mapping[SupportsIndex, SupportsFloat] | None = None,  # position -> bias (or -inf)
    repetition_penalty: SupportsFloat = 1.0,  # double, > 0
    presence_penalty: SupportsFloat = 0.0,  # double
    frequency_penalty: SupportsFloat = 0.0,  # double
    penalty_last_n: SupportsIndex | None = 64,  # Py_ssize_t, >= 0; None: all of history
    history: ArrayLike | None = None,  # int64_t*, positions the penalties read
) -> NDArray[np.float64]: ...

# Test hook (not API): the weights and block sums of the one-draw path without
# filters, or None where that path does not apply.
def _exp_weights(
    logits: NDArray[np.floating],  # const float/double[::1]
    temperature: float,  # double
) -> tuple[NDArray[np.floating], NDArray[np.float64]] | None: ...

# Test hook (not API): the filters' exp (kernels/filters.pxi) of values <= 0.
def _filter_exp(s: ArrayLike) -> NDArray[np.float64]: ...  # const double* -> double*
def as_generator(
    rng: int | np.integer[Any] | np.random.Generator | None,  # object
    func: str = ...,  # str
) -> np.random.Generator: ...
