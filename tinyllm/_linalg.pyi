# Hand-written stub for the Cython module tinyllm._linalg (src/_linalg.pyx).
# Cython makes no stubs: keep this in step with the .pyx; the lint step of
# .ci/run runs mypy.stubtest on it. The comment after each argument is the Cython type
# the entry point hands to its kernel after validation and coercion
# (`floating` is Cython's fused float/double: float32 stays float32 when every
# input is float32, anything else is computed in float64).
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEBUG_CHECKS: bool  # bint: built with TINYLLM_DEBUG_CHECKS=1 (bounds/wraparound checks on)

def dot(
    x: ArrayLike,  # const floating[::1], shape (n,)
    w: ArrayLike,  # const floating[::1], shape (n,)
) -> float: ...  # double
@overload
def project(
    h: NDArray[np.float32],  # const float[:, ::1], shape (k,) or (B, k)
    W: NDArray[np.float32],  # const float[:, ::1], shape (k, V)
    out: NDArray[np.float32] | None = None,  # float[:, ::1], shape (V,) or (B, V)
) -> NDArray[np.float32]: ...
@overload
def project(
    h: ArrayLike,  # const double[:, ::1], shape (k,) or (B, k)
    W: ArrayLike,  # const double[:, ::1], shape (k, V)
    out: NDArray[np.float64] | None = None,  # double[:, ::1], shape (V,) or (B, V)
) -> NDArray[np.float64]: ...
def _read_bandwidth_probe(
    words: NDArray[np.uint64],  # const uint64_t[::1], shape (n,)
) -> int: ...  # uint64_t: the OR of every word
