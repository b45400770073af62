"""The notebooks in notebooks/ run end to end and print exactly what they have stored.

Each notebook is executed with nbclient, in a fresh kernel that imports the tinyllm
under test, and every code cell's text must equal the text stored in the .ipynb: what
it printed (stdout and stderr) and the plain-text form of what it displayed, in order.
A number that changes fails here. One thing is normalised, because it changes from
run to run by itself: memory addresses (``0x7f...``). The notebooks print no timings
and draw nothing without a seed. Figures are not compared pixel by pixel (the pixels
depend on matplotlib's version and fonts), but a cell that stored a figure must still
draw one, and its text (``<Figure size 500x500 with 1 Axes>``) is compared. The stored
outputs themselves must show the blog's numbers (``conftest.BLOG_*``), so storing
them again cannot hide a wrong number.

After an intended change, execute the notebooks and store their outputs again:

    python tests/test_notebooks.py                  # every notebook, in place
    python tests/test_notebooks.py notebooks/3_vectores_y_embeddings.ipynb

Executing needs the ``notebooks`` extra (``pip install -e ".[notebooks]"``: ipykernel,
nbclient, nbformat, matplotlib); without it those tests are skipped, and so is this
whole file when there is no notebooks/ folder beside tests/ (the wheel's tests run
from a copy of tests/ alone). ``TINYLLM_NOTEBOOKS=required`` turns either skip into a
failure (CI sets it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))

#: Seconds one cell may take (the slowest, a training run, takes well under one).
CELL_TIMEOUT = 120

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def _skip(reason: str) -> None:
    if os.environ.get("TINYLLM_NOTEBOOKS") == "required":
        pytest.fail(f"TINYLLM_NOTEBOOKS=required, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def execute(path: Path):
    """Run the notebook at ``path`` top to bottom in a fresh kernel; the executed notebook.

    The kernel runs in the notebook's folder and imports the tinyllm this process
    imports (its folder goes first on PYTHONPATH), so a checkout's notebooks run
    against that checkout. Streams are merged per cell (stdout arrives in chunks
    whose boundaries depend on timing) and no timestamps are recorded, so executing
    twice gives the same file.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        A cell raised; the message shows the cell and the traceback.
    """
    # Building matplotlib's font cache (first use in a fresh environment) prints a
    # line on stderr: build it here, in this process, not in the kernel's first figure.
    import matplotlib.font_manager  # noqa: F401
    import nbformat
    from nbclient import NotebookClient

    import tinyllm

    notebook = nbformat.read(path, as_version=4)
    tinyllm_root = str(Path(tinyllm.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tinyllm_root, env.get("PYTHONPATH")]))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        coalesce_streams=True,
    )
    return client.execute(env=env)


def _joined(text: str | list[str]) -> str:
    """A notebook file stores a multi-line text as a list of lines."""
    return text if isinstance(text, str) else "".join(text)


def cell_texts(cell: dict) -> list[str]:
    """A code cell's outputs as text, in order: what the comparison sees.

    A stream is ``stdout: <text>``; a display or a result is its ``text/plain`` (the
    richer ``text/html`` form shows the same object), marked ``[image]`` when it
    carries a PNG; an error is its name and message. Memory addresses become ``0x…``.
    """
    texts = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream":
            text = f"{output['name']}: {_joined(output['text'])}"
        elif kind in ("execute_result", "display_data"):
            data = output["data"]
            image = " [image]" if "image/png" in data else ""
            text = f"{kind}{image}: {_joined(data.get('text/plain', ''))}"
        else:
            text = f"{kind}: {output.get('ename')}: {output.get('evalue')}"
        texts.append(_ADDRESS.sub("0x…", text))
    return texts


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def stored(path: Path) -> dict:
    """The notebook as saved, outputs included (read as plain JSON: no extra needed)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def stored_text(prefix: str) -> str:
    """Every stored text output of the notebook whose name starts with ``prefix``."""
    (path,) = [p for p in NOTEBOOKS if p.name.startswith(prefix)]
    return "\n".join(t for cell in code_cells(stored(path)) for t in cell_texts(cell))


if not NOTEBOOKS and __name__ != "__main__":
    _skip(f"no notebooks in {NOTEBOOKS_DIR} (the tests run outside the checkout)")


@pytest.fixture(scope="module")
def can_execute() -> None:
    missing = []
    for module in ("nbclient", "nbformat", "ipykernel", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        _skip(f"executing the notebooks needs {', '.join(missing)}: pip install -e '.[notebooks]'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_prints_what_it_stored(path, can_execute):
    before = code_cells(stored(path))
    now = code_cells(execute(path))
    assert len(now) == len(before)
    for number, (old, new) in enumerate(zip(before, now), start=1):
        assert cell_texts(new) == cell_texts(old), (
            f"{path.name}, code cell {number}, printed something else than it stored "
            f"(if the change is intended: python tests/test_notebooks.py notebooks/{path.name})"
            f"\n--- its source:\n{_joined(old['source'])}"
        )


def test_every_notebook_stores_its_outputs():
    """A notebook saved without outputs would compare its empty outputs with themselves."""
    assert [p.name[:2] for p in NOTEBOOKS] == ["1_", "2_", "3_", "4_"]
    for path in NOTEBOOKS:
        cells = code_cells(stored(path))
        assert cells, f"{path.name} has no code"
        assert all(cell["execution_count"] for cell in cells), f"{path.name}: run it and save"
        assert any(cell["outputs"] for cell in cells), f"{path.name} stores no output"
        assert path.stat().st_size < 300_000, f"{path.name}: smaller figures, please"


def test_stored_outputs_show_the_blogs_numbers():
    """What the stored notebooks print is the blog's, so re-storing cannot hide a regression."""
    from conftest import BLOG_IDS, BLOG_PART2_PROBS, BLOG_PROBS

    tokens = ["azul", "cielo", "frío", "el", "es"]
    part1 = stored_text("1_")
    assert f"execute_result: {BLOG_IDS}" in part1
    assert "y = 402.0 → frío" in part1 and "y = 227.0 → azul" in part1
    part2 = stored_text("2_")
    assert "execute_result: 1800.0" in part2 and "suma de los logits: 10620.0" in part2
    assert "array([4500., 1260., 3600.,  360.,  900.])" in part2
    assert "".join(f"{t:6} {p:.6f}\n" for t, p in zip(tokens, BLOG_PART2_PROBS)) in part2
    part3 = stored_text("3_")
    assert "".join(f"{t:6} {p:.4f}\n" for t, p in zip(tokens, BLOG_PROBS)) in part3
    assert "array([2.5, 0.7, 2. , 0.2, 0.5])" in part3 and "sum(x * w_f1) = 1.0\n" in part3
    # The README's seeded generation (tinyllm generate "el cielo es" -n 10 --seed 0).
    assert "'frío azul azul azul frío frío cielo el frío frío'" in part3
    assert "azul 49.8%  frío 30.2%" in stored_text("4_")


def test_cell_texts_normalises_only_addresses():
    """What the comparison ignores (an address) and what it does not (a digit)."""

    def texts(plain: str | list[str]) -> list[str]:
        output = {"output_type": "execute_result", "data": {"text/plain": plain}}
        return cell_texts({"outputs": [output]})

    assert texts("<object at 0x7f3a2c>") == texts("<object at 0x55d1e0>")
    assert texts("azul 0.4982") != texts("azul 0.4981")
    assert texts(["a\n", "b"]) == texts("a\nb")
    printed = {"outputs": [{"output_type": "stream", "name": "stdout", "text": "402.0\n"}]}
    assert cell_texts(printed) == ["stdout: 402.0\n"]


def main(argv: list[str]) -> int:
    """Execute the given notebooks (all of them by default) and save them with their outputs."""
    import nbformat

    # As `python -m pytest` run from the checkout does: this checkout's tinyllm first.
    sys.path.insert(0, str(ROOT))
    paths = [Path(arg) for arg in argv] or NOTEBOOKS
    for path in paths:
        nbformat.write(execute(path), path)
        print(f"executed and saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
