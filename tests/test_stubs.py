"""The hand-written .pyi stubs of the compiled modules, checked by mypy.stubtest.

Cython generates no stubs, so each ``tinyllm/_<name>.pyi`` is written by hand
(the Cython types in comments, as pandas does) and must match what the compiled
module really exports: names, parameters, defaults. stubtest imports the
compiled modules, so this runs against whichever tinyllm the tests import: the
checkout's in-place build or an installed wheel.
"""

import os
import subprocess
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import tinyllm

PACKAGE_DIR = Path(tinyllm.__file__).resolve().parent


def _compiled_stems():
    return sorted({
        path.name.split(".")[0]
        for path in PACKAGE_DIR.iterdir()
        if any(path.name.endswith(suffix) for suffix in EXTENSION_SUFFIXES)
    })


def _stub_stems():
    return sorted(path.stem for path in PACKAGE_DIR.glob("_*.pyi"))


def test_every_compiled_module_has_a_stub_and_py_typed():
    compiled = _compiled_stems()
    assert compiled, f"no compiled modules in {PACKAGE_DIR}"
    assert _stub_stems() == compiled
    assert (PACKAGE_DIR / "py.typed").is_file()


def _in_site_packages(folder):
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    return any(Path(root).resolve() == folder for root in roots)


def test_stubtest(tmp_path):
    pytest.importorskip(
        "mypy.stubtest", reason="mypy is not installed (it is in the test extra: pip install '.[test]')"
    )
    modules = [f"tinyllm.{stem}" for stem in _stub_stems()]
    # Cython adds a `__test__` dict (for doctests) to every module; it is no API.
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text(r"tinyllm\._\w+\.__test__" + "\n")
    # follow_imports = silent: the stubs are checked, not the pure-Python modules
    # that importing the package pulls in (tinyllm/__init__.py and the model).
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {tmp_path / 'mypy_cache'}\nfollow_imports = silent\n")

    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    parent = PACKAGE_DIR.parent
    if not _in_site_packages(parent):
        # A checkout (in-place or editable build): point mypy at the same stubs
        # the tests import. An installed wheel is found through its py.typed
        # (and mypy refuses site-packages on MYPYPATH).
        env["MYPYPATH"] = str(parent)
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config),
         "--allowlist", str(allowlist), *modules],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout, result.stdout
