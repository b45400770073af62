"""Check what the sdist and the wheel hold (run by .ci/run after `python -m build`).

    python .ci/check_dists.py DIST_DIR

The sdist must carry everything needed to build and test (the Cython sources,
the kernels' .pxi, the stubs, the tests and the notebooks they run, README and
LICENSE) and nothing generated (.c, compiled modules). Both carry the message
catalogues (``tinyllm/locale``, the .po and the compiled .mo). The wheel must carry one
compiled module and one .pyi stub per src/*.pyx but src/_kernels.pyx, whose builds
(one per instruction set: ``tinyllm/_kernels_baseline.*``, and on x86-64 but Windows
``_kernels_avx2.*`` and ``_kernels_avx512.*``, as setup.py makes them) have no stub;
py.typed; and no sources or tests. The modules expected are read from this
checkout's src/, so a new module is checked without editing this.

Both files are named after the distribution (``tinyllm-cython``, normalised to
``tinyllm_cython-<version>``), which is not the import name ``tinyllm``; the wheel's
only other top-level entry is that ``.dist-info`` folder.
"""

import email.parser
import re
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

ISAS_X86 = ("baseline", "avx2", "avx512")  # setup.py's ISA_FLAGS

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (ROOT / "src").glob("*.pyx") if p.stem != "_kernels")
PXDS = sorted(p.name for p in (ROOT / "src").glob("*.pxd"))
PXIS = sorted(str(p.relative_to(ROOT / "src")) for p in (ROOT / "src").rglob("*.pxi"))
TESTS = sorted(p.name for p in (ROOT / "tests").glob("*.py"))
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
# The message catalogues (tinyllm/locale/<lang>/LC_MESSAGES/tinyllm.po and .mo).
CATALOGUES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("tinyllm/locale/*/*/*.[mp]o"))
GENERATED = (".c", ".cpp", ".html", ".so", ".pyd", ".dylib", ".o", ".pyc")


def file_stem(name, version):
    """How sdist and wheel file names spell a distribution (PEP 625 / the wheel spec)."""
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"


def fail(problems, what):
    if problems:
        print(f"{what}: FAILED", *problems, sep="\n  ")
        raise SystemExit(1)


def check_sdist(path):
    with tarfile.open(path) as tar:
        tops = {PurePosixPath(n).parts[0] for n in tar.getnames()}
        # Drop the leading "tinyllm_cython-X.Y.Z/".
        names = {str(PurePosixPath(*PurePosixPath(n).parts[1:])) for n in tar.getnames()}
        pkg_info = next(n for n in tar.getnames() if PurePosixPath(n).parts[1:] == ("PKG-INFO",))
        metadata = email.parser.Parser().parsestr(tar.extractfile(pkg_info).read().decode())
    expected = (
        {
            "README.md",
            "LICENSE",
            "pyproject.toml",
            "setup.py",
            "MANIFEST.in",
            "PKG-INFO",
            "tinyllm/py.typed",
            "tinyllm/__init__.py",
            "tinyllm/_version.py",
            "tinyllm/_compiled.py",
        }
        | {f"src/{m}.pyx" for m in [*MODULES, "_kernels"]}
        | {f"src/{p}" for p in PXDS + PXIS}
        | {f"tinyllm/{m}.pyi" for m in MODULES}
        | {f"tests/{t}" for t in TESTS}
        | {f"notebooks/{n}" for n in NOTEBOOKS}
        | set(CATALOGUES)
    )
    problems = [f"missing {n}" for n in sorted(expected - names)]
    problems += [f"generated file {n}" for n in sorted(names) if n.endswith(GENERATED)]
    problems += [f"build output {n}" for n in sorted(names) if n.startswith(("build/", "dist/"))]
    stem = file_stem(metadata["Name"], metadata["Version"])
    if path.name != f"{stem}.tar.gz" or tops != {stem}:
        problems.append(
            f"expected {stem}.tar.gz holding {stem}/, found {path.name} holding {sorted(tops)}"
        )
    fail(problems, path.name)
    print(
        f"{path.name}: ok ({len(names)} entries; {len(MODULES) + 1} .pyx, {len(PXDS)} .pxd, "
        f"{len(PXIS)} .pxi, {len(TESTS)} test files, {len(NOTEBOOKS)} notebooks, no generated C)"
    )


def check_wheel(path):
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(metadata_name).decode())
    problems = []
    stem = file_stem(metadata["Name"], metadata["Version"])
    if not path.name.startswith(f"{stem}-"):
        problems.append(
            f"a wheel of {metadata['Name']} {metadata['Version']} is named {stem}-..., "
            f"not {path.name}"
        )
    simd = "x86_64" in path.name and "win" not in path.name  # setup.py: x86-64 with gcc/clang
    kernels = [f"_kernels_{isa}" for isa in (ISAS_X86 if simd else ISAS_X86[:1])]
    for module in MODULES + kernels:
        compiled = [
            n for n in names if n.startswith(f"tinyllm/{module}.") and n.endswith((".so", ".pyd"))
        ]
        if len(compiled) != 1:
            problems.append(f"expected one compiled tinyllm/{module} module, found {compiled}")
        if module in MODULES and f"tinyllm/{module}.pyi" not in names:
            problems.append(f"missing stub tinyllm/{module}.pyi")
    stray = sorted(
        {n for n in names if n.startswith("tinyllm/_kernels") and n.endswith((".so", ".pyd"))}
        - {n for n in names for k in kernels if n.startswith(f"tinyllm/{k}.")}
    )
    problems += [f"unexpected kernel build {n}" for n in stray]
    if "tinyllm/py.typed" not in names:
        problems.append("missing tinyllm/py.typed")
    problems += [f"missing catalogue {n}" for n in CATALOGUES if n not in names]
    problems += [
        f"source file {n}"
        for n in sorted(names)
        if n.endswith((".pyx", ".pxd", ".pxi", ".c", ".cpp", ".html"))
    ]
    problems += [
        f"test file {n}"
        for n in sorted(names)
        if n.startswith("tests/") or "/tests/" in n or n.endswith("conftest.py")
    ]
    problems += [
        f"stray top-level entry {n}"
        for n in sorted(names)
        if not n.startswith(("tinyllm/", f"{stem}.dist-info/"))
    ]
    for field in (
        "Name",
        "Version",
        "Summary",
        "License-Expression",
        "Requires-Python",
        "Classifier",
        "Requires-Dist",
        "Description-Content-Type",
    ):
        if not metadata.get_all(field):
            problems.append(f"metadata has no {field}")
    fail(problems, path.name)
    print(
        f"{path.name}: ok ({len(MODULES)} compiled modules with stubs, kernels for "
        f"{', '.join(k.removeprefix('_kernels_') for k in kernels)}, py.typed, "
        f"no sources or tests; Requires-Python {metadata['Requires-Python']}, "
        f"License-Expression {metadata['License-Expression']})"
    )


def main(dist_dir):
    dist_dir = Path(dist_dir)
    sdists = sorted(dist_dir.glob("*.tar.gz"))
    wheels = sorted(dist_dir.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        fail(
            [
                f"expected one sdist and one wheel in {dist_dir}, "
                f"found {[p.name for p in sdists + wheels]}"
            ],
            "dist",
        )
    check_sdist(sdists[0])
    check_wheel(wheels[0])


if __name__ == "__main__":
    main(*sys.argv[1:])
