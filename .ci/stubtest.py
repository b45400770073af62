"""Check the hand-written stubs of the compiled modules against the modules themselves.

Cython generates no ``.pyi``: each compiled module with a Python API has one written by
hand beside it (``tinyllm/_<name>.pyi``, the Cython types in comments, as pandas does),
and ``mypy.stubtest`` compares it with what the module really exports: names,
parameters, defaults. The kernel builds (``tinyllm._kernels_<isa>``) export only a
capsule for ``tinyllm._cpu`` and have no stub. Run by ``.ci/lint``, against the
tinyllm that Python imports (the checkout's build, or an installed wheel).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import tinyllm
from tinyllm._compiled import COMPILED_MODULES


def main() -> int:
    package = Path(tinyllm.__file__).resolve().parent
    missing = [stem for stem in COMPILED_MODULES if not (package / f"{stem}.pyi").is_file()]
    if missing or not (package / "py.typed").is_file():
        print(f"missing in {package}: {', '.join(f'{m}.pyi' for m in missing) or 'py.typed'}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        # Cython adds a `__test__` dict (for doctests) to every module; it is no API.
        allowlist = Path(tmp, "allowlist.txt")
        allowlist.write_text(r"tinyllm\._\w+\.__test__" + "\n")
        # follow_imports = silent: the stubs are checked, not the pure-Python modules
        # that importing the package pulls in.
        config = Path(tmp, "mypy.ini")
        config.write_text(f"[mypy]\ncache_dir = {tmp}/cache\nfollow_imports = silent\n")
        env = dict(os.environ)
        env.pop("MYPYPATH", None)
        roots = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
        if package.parent not in roots:
            # A checkout: point mypy at the same stubs Python imports. An installed
            # wheel is found through its py.typed (mypy refuses site-packages here).
            env["MYPYPATH"] = str(package.parent)
        command = [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "--mypy-config-file",
            str(config),
            "--allowlist",
            str(allowlist),
            *(f"tinyllm.{stem}" for stem in COMPILED_MODULES),
        ]
        return subprocess.run(command, cwd=tmp, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
