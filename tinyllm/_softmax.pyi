# Hand-written stub for the Cython module tinyllm._softmax (src/_softmax.pyx).
# Cython makes no stubs: keep this in step with the .pyx; the lint step of .ci/run
# runs mypy.stubtest on it. The comment after each argument is its Cython type
# (for arrays: what the kernel gets after the slices along `axis` are laid out
# as contiguous rows). float32 stays float32; other real dtypes become float64.
from typing import SupportsFloat, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

@overload
def softmax(
    x: NDArray[np.float32],  # const float[:, ::1], rows = slices along axis
    axis: SupportsIndex = -1,  # Py_ssize_t
    temperature: SupportsFloat = 1.0,  # double, finite and > 0
    out: NDArray[np.float32] | None = None,  # float[:, ::1], shape of x
) -> NDArray[np.float32]: ...
@overload
def softmax(
    x: ArrayLike,  # const double[:, ::1], rows = slices along axis
    axis: SupportsIndex = -1,  # Py_ssize_t
    temperature: SupportsFloat = 1.0,  # double, finite and > 0
    out: NDArray[np.float64] | None = None,  # double[:, ::1], shape of x
) -> NDArray[np.float64]: ...
@overload
def log_softmax(
    x: NDArray[np.float32],  # const float[:, ::1], rows = slices along axis
    axis: SupportsIndex = -1,  # Py_ssize_t
    temperature: SupportsFloat = 1.0,  # double, finite and > 0
    out: NDArray[np.float32] | None = None,  # float[:, ::1], shape of x
) -> NDArray[np.float32]: ...
@overload
def log_softmax(
    x: ArrayLike,  # const double[:, ::1], rows = slices along axis
    axis: SupportsIndex = -1,  # Py_ssize_t
    temperature: SupportsFloat = 1.0,  # double, finite and > 0
    out: NDArray[np.float64] | None = None,  # double[:, ::1], shape of x
) -> NDArray[np.float64]: ...

# Hooks for the tests and benchmarks (not part of the API).
def _exp(
    x: NDArray[np.floating], nonpos: bool = False
) -> NDArray[np.floating]: ...  # const float/double[::1]
