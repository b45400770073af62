"""Check what the sdist and the wheel hold (run by .ci/run after `python -m build`).

    python .ci/check_dists.py DIST_DIR

The sdist must carry everything needed to build and test (the Cython sources,
the stubs, the tests, README and LICENSE) and nothing generated (.c, compiled
modules). The wheel must carry one compiled module and one .pyi stub per
src/*.pyx, py.typed, and no sources or tests. The compiled modules expected are
read from this checkout's src/, so a new kernel is checked without editing this.
An x86-64 wheel (not Windows) also carries each module's SIMD builds,
``tinyllm/<name>_avx2.*`` and ``tinyllm/<name>_avx512.*``, with their stubs (setup.py
makes both); the sdist does not carry those stubs.

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

SIMD_SUFFIXES = ("_avx2", "_avx512")        # setup.py's SIMD_FLAGS
SIMD_STUBS = tuple(f"{v}.pyi" for v in SIMD_SUFFIXES)

ROOT = Path(__file__).resolve().parent.parent
KERNELS = sorted(p.stem for p in (ROOT / "src").glob("*.pyx"))
PXDS = sorted(p.name for p in (ROOT / "src").glob("*.pxd"))
TESTS = sorted(p.name for p in (ROOT / "tests").glob("*.py"))
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
        {"README.md", "LICENSE", "pyproject.toml", "setup.py", "MANIFEST.in", "PKG-INFO",
         "tinyllm/py.typed", "tinyllm/__init__.py", "tinyllm/_version.py",
         "tinyllm/_compiled.py"}
        | {f"src/{k}.pyx" for k in KERNELS}
        | {f"src/{p}" for p in PXDS}
        | {f"tinyllm/{k}.pyi" for k in KERNELS}
        | {f"tests/{t}" for t in TESTS}
    )
    problems = [f"missing {n}" for n in sorted(expected - names)]
    problems += [f"generated file {n}" for n in sorted(names)
                 if n.endswith(GENERATED) or (n.startswith("tinyllm/") and n.endswith(SIMD_STUBS))]
    problems += [f"build output {n}" for n in sorted(names) if n.startswith(("build/", "dist/"))]
    stem = file_stem(metadata["Name"], metadata["Version"])
    if path.name != f"{stem}.tar.gz" or tops != {stem}:
        problems.append(f"expected {stem}.tar.gz holding {stem}/, "
                        f"found {path.name} holding {sorted(tops)}")
    fail(problems, path.name)
    print(f"{path.name}: ok ({len(names)} entries; {len(KERNELS)} .pyx, {len(PXDS)} .pxd, "
          f"{len(TESTS)} test files, no generated C)")


def check_wheel(path):
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(metadata_name).decode())
    problems = []
    stem = file_stem(metadata["Name"], metadata["Version"])
    if not path.name.startswith(f"{stem}-"):
        problems.append(f"a wheel of {metadata['Name']} {metadata['Version']} is named {stem}-..., "
                        f"not {path.name}")
    simd = "x86_64" in path.name and "win" not in path.name  # setup.py: x86-64 with gcc/clang
    for kernel in KERNELS + ([f"{k}{v}" for k in KERNELS for v in SIMD_SUFFIXES] if simd else []):
        compiled = [n for n in names if n.startswith(f"tinyllm/{kernel}.")
                    and n.endswith((".so", ".pyd"))]
        if len(compiled) != 1:
            problems.append(f"expected one compiled tinyllm/{kernel} module, found {compiled}")
        if f"tinyllm/{kernel}.pyi" not in names:
            problems.append(f"missing stub tinyllm/{kernel}.pyi")
    if "tinyllm/py.typed" not in names:
        problems.append("missing tinyllm/py.typed")
    problems += [f"source file {n}" for n in sorted(names)
                 if n.endswith((".pyx", ".pxd", ".c", ".cpp", ".html"))]
    problems += [f"test file {n}" for n in sorted(names)
                 if n.startswith("tests/") or "/tests/" in n or n.endswith("conftest.py")]
    problems += [f"stray top-level entry {n}" for n in sorted(names)
                 if not n.startswith(("tinyllm/", f"{stem}.dist-info/"))]
    for field in ("Name", "Version", "Summary", "License-Expression", "Requires-Python",
                  "Classifier", "Requires-Dist", "Description-Content-Type"):
        if not metadata.get_all(field):
            problems.append(f"metadata has no {field}")
    fail(problems, path.name)
    print(f"{path.name}: ok ({len(KERNELS)} compiled modules with stubs"
          f"{' and their AVX2 builds' if simd else ''}, py.typed, "
          f"no sources or tests; Requires-Python {metadata['Requires-Python']}, "
          f"License-Expression {metadata['License-Expression']})")


def main(dist_dir):
    dist_dir = Path(dist_dir)
    sdists = sorted(dist_dir.glob("*.tar.gz"))
    wheels = sorted(dist_dir.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        fail([f"expected one sdist and one wheel in {dist_dir}, "
              f"found {[p.name for p in sdists + wheels]}"], "dist")
    check_sdist(sdists[0])
    check_wheel(wheels[0])


if __name__ == "__main__":
    main(*sys.argv[1:])
