"""tinyllm._compiled: the kernels' single import point and its install message.

The failure cases run in a fresh interpreter (a subprocess), on the tinyllm that
this test-suite imports (a checkout or an installed wheel), so nothing here
depends on where the tests themselves live.
"""

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
from tinyllm import _compiled

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
}


def _exported_modules():
    return sorted({EXPORTS[name] for name in _compiled.__all__ if name in EXPORTS})


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
    assert set(EXPORTS) <= set(_compiled.__all__)
    for name, stem in EXPORTS.items():
        module = _compiled.module(stem)
        assert module.__name__ in (f"tinyllm.{stem}", f"tinyllm.{stem}_avx2", f"tinyllm.{stem}_avx512")
        assert getattr(_compiled, name) is getattr(module, name)


def test_simd_build_follows_the_cpu_and_the_environment():
    import tinyllm._softmax as baseline

    avx2 = baseline._cpu_has_avx2_fma()
    avx512 = baseline._cpu_has_avx512()
    assert avx2 or not avx512
    builds = [m.__name__ for m in _compiled.builds("_softmax")]
    runnable = ["tinyllm._softmax"] + ["tinyllm._softmax_avx2"] * avx2 + ["tinyllm._softmax_avx512"] * avx512
    assert builds[0] == "tinyllm._softmax" and builds == [b for b in runnable if b in builds]
    made = {b.rpartition("_")[2] for b in builds[1:]}
    auto = next((v for v in ("avx512", "avx2") if v in made), "baseline")
    wanted = os.environ.get("TINYLLM_SIMD", "").strip().lower()
    forced = {"baseline": "baseline", "avx2": "avx2" if "avx2" in made else "baseline"}.get(wanted, auto)
    assert _compiled.SIMD == forced
    suffix = "" if _compiled.SIMD == "baseline" else f"_{_compiled.SIMD}"
    assert _compiled.module("_softmax").__name__ == f"tinyllm._softmax{suffix}"
    code = "import tinyllm, tinyllm._compiled as c; print(c.SIMD, tinyllm.softmax is c.module('_softmax').softmax)"
    for env, want in (({"TINYLLM_SIMD": "baseline"}, "baseline"), ({"TINYLLM_SIMD": ""}, auto),
                      ({"TINYLLM_SIMD": "avx2"}, "avx2" if "avx2" in made else "baseline"),
                      ({"TINYLLM_SIMD": "avx512"}, auto)):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=PACKAGE_DIR.parent, env={**os.environ, **env}, timeout=120)
        assert result.stdout.split() == [want, "True"], result.stderr


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
    assert Path(output.strip()[len("imported from "):]).resolve() == PACKAGE_DIR / "__init__.py"


# ===========================================================================
# A compiled module that is missing
# ===========================================================================

@pytest.mark.parametrize("module", _exported_modules())
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
    return stem + (".cp39-win_amd64.pyd" if path.suffix == ".pyd"
                   else ".cpython-39-x86_64-linux-gnu.so")


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
    _assert_install_message(output, "tinyllm._linalg")
    assert "built for another Python" in output
    assert "_linalg.cp" in output  # the file that was found is named


def test_message_when_nothing_was_built(tmp_path):
    error = ModuleNotFoundError("No module named 'tinyllm._softmax'", name="tinyllm._softmax")
    message = _compiled.install_message(error, package_dir=tmp_path)
    assert "no compiled _softmax module" in message
    assert "pip install tinyllm" in message
    assert str(tmp_path) in message
