"""tinyllm._compiled and tinyllm._cpu: the compiled modules' single import point, its
install message, and the choice of the kernels' instruction set.

The failure cases run in a fresh interpreter (a subprocess), on the tinyllm that
this test-suite imports (a checkout or an installed wheel), so nothing here
depends on where the tests themselves live.
"""

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import _compiled, _cpu

PACKAGE_DIR = Path(tinyllm.__file__).resolve().parent

#: Exported name -> compiled module it comes from.
EXPORTS = {
    "dot": "_linalg",
    "project": "_linalg",
    "softmax": "_softmax",
    "log_softmax": "_softmax",
    "sample": "_sampling",
    "sample_logits": "_sampling",
    "filter_logits": "_sampling",
    "as_generator": "_sampling",
    "forward": "_generate",
    "Generation": "_generate",
    "BatchGeneration": "_generate",
    "PackedMatrix": "_generate",
    "TrainState": "_train",
    "Diverged": "_train",
    "cross_entropy_grad": "_train",
}


def _compiled_modules():
    """Every compiled module the package needs: the ones with an API, and the kernels."""
    return [*_compiled.COMPILED_MODULES, "_kernels_baseline"]


# Run in the subprocess before the import under test: only the import system's
# own finders (an editable install adds one that would find the checkout's
# build), the package folder first on sys.path, and optionally a finder that
# makes one compiled module impossible to import.
_PRELUDE = """
import sys, types
sys.meta_path[:] = [f for f in sys.meta_path
                    if getattr(f, "__module__", "").startswith("_frozen_importlib")]
sys.path.insert(0, {parent!r})
BLOCKED = {blocked!r}

class BlockCompiled:
    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, BlockCompiled())
if {bare_package!r}:
    # tinyllm without running its __init__: tests _compiled on its own.
    package = types.ModuleType("tinyllm")
    package.__path__ = [{package_dir!r}]
    sys.modules["tinyllm"] = package
"""


def _import_in_subprocess(target, package_dir=PACKAGE_DIR, blocked=None, bare_package=False):
    code = _PRELUDE.format(
        parent=str(package_dir.parent),
        package_dir=str(package_dir),
        blocked=blocked,
        bare_package=bare_package,
    ) + textwrap.dedent(f"""
        try:
            import {target}
        except ImportError as exc:
            print(type(exc).__name__)
            print(exc)
        else:
            print("imported from", {target}.__file__)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=package_dir.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _assert_install_message(output, module):
    assert output.startswith("ImportError\n"), output
    assert "could not be imported" in output
    assert module in output
    assert "pip install tinyllm" in output
    assert 'pip install -e ".[test]"' in output
    assert "C compiler" in output
    # The original error is shown.
    assert "ModuleNotFoundError: No module named" in output


# ===========================================================================
# The happy path
# ===========================================================================


def test_exports_are_the_compiled_functions():
    assert set(EXPORTS) | {"SIMD"} == set(_compiled.__all__)
    for name, stem in EXPORTS.items():
        assert getattr(_compiled, name) is getattr(importlib.import_module(f"tinyllm.{stem}"), name)


def test_instruction_set_follows_the_cpu_and_the_environment():
    avx2, avx512 = _cpu.cpu_runs("avx2"), _cpu.cpu_runs("avx512")
    assert avx2 or not avx512
    made = [isa for isa in ("baseline", "avx2", "avx512") if _cpu.built(isa)]
    assert made[0] == "baseline"
    runnable = ["baseline"] + ["avx2"] * avx2 + ["avx512"] * avx512
    assert _cpu.available() == [isa for isa in runnable if isa in made]
    best = _cpu.available()[-1]
    wanted = os.environ.get("TINYLLM_SIMD", "").strip().lower()
    assert _compiled.SIMD == _cpu.CHOSEN == _cpu.best_available(wanted)
    assert _cpu.best_available("") == best and _cpu.best_available("nonsense") == best
    assert _cpu.best_available("baseline") == "baseline"
    code = "import tinyllm, tinyllm._cpu as c; print(tinyllm._compiled.SIMD, c.active())"
    for env, want in (
        ({"TINYLLM_SIMD": "baseline"}, "baseline"),
        ({"TINYLLM_SIMD": ""}, best),
        ({"TINYLLM_SIMD": "avx2"}, "avx2" if "avx2" in _cpu.available() else "baseline"),
        ({"TINYLLM_SIMD": "avx512"}, best),
    ):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=PACKAGE_DIR.parent,
            env={**os.environ, **env},
            timeout=120,
        )
        assert result.stdout.split() == [want, want], result.stderr


def test_use_switches_every_kernel_at_once():
    x = np.random.default_rng(0).normal(size=(3, 500))
    start = _cpu.active()
    try:
        for isa in _cpu.available():
            previous = _cpu.use(isa)
            assert _cpu.active() == isa and previous in _cpu.available()
            assert isa == _cpu.kernels_module(isa).ISA
            np.testing.assert_allclose(
                tinyllm.softmax(x), np.exp(x) / np.exp(x).sum(-1, keepdims=True), rtol=1e-12
            )
    finally:
        _cpu.use(start)
    with pytest.raises(ValueError, match="not available"):
        _cpu.use("avx1024")
    assert _cpu.active() == start


def test_package_exports_the_kernels():
    for name in ("dot", "project", "softmax", "log_softmax"):
        assert getattr(tinyllm, name) is getattr(_compiled, name)


def test_version_is_single_sourced():
    from tinyllm._version import __version__

    assert tinyllm.__version__ == __version__
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return
    try:
        assert version("tinyllm") == __version__
    except PackageNotFoundError:
        pytest.skip("tinyllm is imported from a folder, not installed")


def test_subprocess_imports_the_same_tinyllm():
    output = _import_in_subprocess("tinyllm")
    assert output.startswith("imported from "), output
    # resolve(): temporary folders are reached through symlinks on macOS.
    assert Path(output.strip()[len("imported from ") :]).resolve() == PACKAGE_DIR / "__init__.py"


# ===========================================================================
# A compiled module that is missing
# ===========================================================================


@pytest.mark.parametrize("module", _compiled_modules())
def test_missing_compiled_module_gives_install_message(module):
    output = _import_in_subprocess(
        "tinyllm._compiled", blocked=f"tinyllm.{module}", bare_package=True
    )
    _assert_install_message(output, f"tinyllm.{module}")


def test_import_tinyllm_without_kernels_gives_install_message():
    output = _import_in_subprocess("tinyllm", blocked="tinyllm._linalg")
    _assert_install_message(output, "tinyllm._linalg")


# ===========================================================================
# Compiled modules built for another Python
# ===========================================================================


def _foreign_name(path):
    """The file name an extension module would have if built for CPython 3.9."""
    stem = path.name.split(".")[0]
    return stem + (
        ".cp39-win_amd64.pyd" if path.suffix == ".pyd" else ".cpython-39-x86_64-linux-gnu.so"
    )


def test_build_for_another_python_gives_install_message(tmp_path):
    copy = tmp_path / "tinyllm"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    renamed = []
    for path in copy.iterdir():
        if any(path.name.endswith(suffix) for suffix in EXTENSION_SUFFIXES):
            path.rename(copy / _foreign_name(path))
            renamed.append(path.name)
    assert renamed, f"no compiled modules found in {PACKAGE_DIR}"

    output = _import_in_subprocess("tinyllm._compiled", package_dir=copy, bare_package=True)
    _assert_install_message(output, "tinyllm._cpu")  # the first one imported
    assert "built for another Python" in output
    assert "_cpu.cp" in output  # the file that was found is named


def test_message_when_nothing_was_built(tmp_path):
    error = ModuleNotFoundError("No module named 'tinyllm._softmax'", name="tinyllm._softmax")
    message = _compiled.install_message(error, package_dir=tmp_path)
    assert "no compiled _softmax module" in message
    assert "pip install tinyllm" in message
    assert str(tmp_path) in message
