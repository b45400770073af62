# Hand-written stub for the Cython module tinyllm._train (src/_train.pyx).
# Cython makes no stubs: keep this in step with the .pyx; tests/test_stubs.py
# runs mypy.stubtest on it. The comment after each argument is the Cython type
# the kernels get after validation (`floating`: float32 when every weight is
# float32, else float64; positions are intp).
from typing import Any, SupportsFloat

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

def cross_entropy_grad(
    logits: ArrayLike,  # floating[:, ::1], shape (B, V) (a copy becomes the gradient)
    targets: ArrayLike,  # const intp_t[::1], shape (B,)
    scale: float = 1.0,  # double
) -> tuple[NDArray[np.float64], NDArray[Any]]: ...

@disjoint_base  # a Cython extension type: cannot share a subclass with another base
class TrainState:
    E: NDArray[Any]  # floating[:, ::1], shape (V, d)
    W1: NDArray[Any]  # floating[:, ::1], shape (c*d, h)
    W2: NDArray[Any]  # floating[:, ::1], shape (h, V)
    tanh: bool  # bint
    optimizer: str  # "adam" or "sgd"
    batch_size: int  # Py_ssize_t
    steps: int  # long: updates applied so far
    momentum: float  # double
    beta1: float  # double
    beta2: float  # double
    eps: float  # double
    def __init__(
        self,
        E: ArrayLike,
        W1: ArrayLike,
        W2: ArrayLike,
        *,
        tanh: bool = False,
        optimizer: str = "adam",
        batch_size: int = 32,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def loss(
        self,
        windows: ArrayLike,  # const intp_t[:, ::1], shape (N, c)
        targets: ArrayLike,  # const intp_t[::1], shape (N,)
    ) -> float: ...
    def gradients(
        self,
        windows: ArrayLike,  # const intp_t[:, ::1], shape (B, c)
        targets: ArrayLike,  # const intp_t[::1], shape (B,)
    ) -> tuple[float, NDArray[Any], NDArray[Any], NDArray[Any]]: ...
    def step(
        self,
        windows: ArrayLike,  # const intp_t[:, ::1], shape (B, c)
        targets: ArrayLike,  # const intp_t[::1], shape (B,)
        lr: SupportsFloat,  # double, finite and > 0
        max_loss: SupportsFloat | None = None,  # double > 0; None: no limit
    ) -> float: ...
