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
# project hands a batch to NumPy's BLAS (np.matmul) from this many rows and B * k * V
# multiply-adds on; its rows may then differ from single-row results in the last bits.
BLAS_SWITCH: tuple[int, int]  # (BLAS_MIN_ROWS, BLAS_MIN_WORK)

def dot(
    x: ArrayLike,  # const floating[::1], shape (n,)
    w: ArrayLike,  # const floating[::1], shape (n,)
) -> float: ...  # double

# project: batches from BLAS_SWITCH on go to np.matmul (rows may differ from the
# single projections in the last bits); smaller ones and single rows to the kernel.
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
def _project_kernel(
    h: ArrayLike,  # any batch on the kernel, never BLAS (benchmark and tests)
    W: ArrayLike,
) -> NDArray[np.float32] | NDArray[np.float64]: ...
