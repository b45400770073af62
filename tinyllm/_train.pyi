# Hand-written stub for the Cython module tinyllm._train (src/_train.pyx).
# Cython makes no stubs: keep this in step with the .pyx; the lint step of
# .ci/run runs mypy.stubtest on it. The comment after each argument is the Cython type
# the kernels get after validation (`floating`: float32 when every weight is
# float32, else float64; positions are intp).
from typing import Any, SupportsFloat, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import disjoint_base

# A training step that would not be finite, or whose loss is above max_loss.
class Diverged(ValueError): ...

def cross_entropy_grad(
    logits: ArrayLike,  # floating*, shape (B, V) (a copy becomes the gradient)
    targets: ArrayLike,  # const intp_t*, shape (B,)
    scale: float = 1.0,  # double
) -> tuple[NDArray[np.float64], NDArray[Any]]: ...

@disjoint_base  # a Cython extension type: cannot share a subclass with another base
class TrainState:
    E: NDArray[Any]  # floating*, shape (V, d)
    W1: NDArray[Any]  # floating*, shape (c*d, h)
    W2: NDArray[Any]  # floating*, shape (h, V)
    tanh: bool  # bint
    optimizer: str  # "adam" or "sgd"
    batch_size: int  # Py_ssize_t
    steps: int  # long: updates applied so far
    momentum: float  # double
    beta1: float  # double
    beta2: float  # double
    eps: float  # double
    weight_decay: float  # double: decoupled, p *= 1 - lr * weight_decay each step
    def __init__(
        self,
        E: ArrayLike,
        W1: ArrayLike,
        W2: ArrayLike,
        *,
        tanh: bool = False,
        optimizer: str = "adam",
        batch_size: SupportsIndex = 32,  # Py_ssize_t >= 1
        momentum: SupportsFloat = 0.9,  # double, in [0, 1)
        beta1: SupportsFloat = 0.9,  # double, in [0, 1)
        beta2: SupportsFloat = 0.999,  # double, in [0, 1)
        eps: SupportsFloat = 1e-8,  # double, > 0
        weight_decay: SupportsFloat = 0.0,  # double, finite and >= 0
    ) -> None: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def loss(
        self,
        windows: ArrayLike,  # const intp_t*, shape (N, c)
        targets: ArrayLike,  # const intp_t*, shape (N,)
    ) -> float: ...
    def gradients(
        self,
        windows: ArrayLike,  # const intp_t*, shape (B, c)
        targets: ArrayLike,  # const intp_t*, shape (B,)
    ) -> tuple[float, NDArray[Any], NDArray[Any], NDArray[Any]]: ...
    def step(
        self,
        windows: ArrayLike,  # const intp_t*, shape (B, c)
        targets: ArrayLike,  # const intp_t*, shape (B,)
        lr: SupportsFloat,  # double, finite and > 0
        max_loss: SupportsFloat | None = None,  # double > 0; None: no limit
    ) -> float: ...
