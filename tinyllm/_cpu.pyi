# Hand-written stub for the Cython module tinyllm._cpu (src/_cpu.pyx): which build of
# the kernels (instruction set) tinyllm runs. Keep in step with the .pyx; the lint step
# of .ci/run runs mypy.stubtest on it.
from types import ModuleType
from typing import Literal, TypeAlias

_ISA: TypeAlias = Literal["avx512", "avx2", "baseline"]

ISAS: tuple[_ISA, ...]  # best first
active_table: object  # a PyCapsule of const Kernels**: the table in use, read by the stage modules
CHOSEN: str  # the instruction set picked at import (TINYLLM_SIMD, else the best)

def cpu_runs(isa: str) -> bool: ...
def kernels_module(isa: str) -> ModuleType: ...  # tinyllm._kernels_<isa>
def built(isa: str) -> bool: ...
def available() -> list[str]: ...  # built and runnable, baseline first
def active() -> str: ...
def use(isa: str) -> str | None: ...  # returns the instruction set used before
def best_available(wanted: str = "") -> str: ...
