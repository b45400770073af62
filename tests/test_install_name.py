"""Users are told to install the distribution that pyproject.toml names.

On the package index "tinyllm" is an unrelated project; this one is published as
the distribution in pyproject.toml ([project] name) and imported as ``tinyllm``.
Every install command a user reads (README, the ImportError of a broken install,
the missing-extra messages, the release workflow) must use that name.

Skipped where pyproject.toml is not beside the tests (the installed-wheel run in
CI), and on Python 3.10, which has no tomllib.
"""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is new in Python 3.11")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
pytestmark = pytest.mark.skipif(
    not PYPROJECT.exists(), reason="pyproject.toml is not beside tests/"
)


@pytest.fixture(scope="module")
def project():
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def name(project):
    return project["name"]


def requirements_in_pip_commands(text):
    """Each argument of a ``pip install`` command in ``text`` that names a distribution
    (not an option, nor a local path such as ``.`` or ``".[test]"``)."""
    found = []
    for command in re.findall(r"pip install ([^\n`#&;)]*)", text):
        for arg in command.split():
            arg = arg.strip("'\"")
            if arg and not arg.startswith(("-", ".", "/", "$")):
                found.append(arg)
    return found


def test_the_distribution_is_not_the_unrelated_tinyllm(project, name):
    assert name != "tinyllm"
    assert project["scripts"]["tinyllm"] == "tinyllm.cli:main"  # the command keeps its name
    urls = project.get("urls", {})
    assert not any("github.com/tinyllm/" in url for url in urls.values()), urls


def test_readme_install_commands_use_the_distribution_name(name):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"python -m pip install {name}\n" in readme
    assert f"--no-binary {name} {name}" in readme
    ours = [r for r in requirements_in_pip_commands(readme) if r.lower().startswith("tinyllm")]
    assert ours, "the README tells no one how to install tinyllm"
    for requirement in ours:
        assert re.fullmatch(rf"{re.escape(name)}(\[\w+\])?", requirement), requirement


def test_messages_name_the_distribution(name):
    from tinyllm import _compiled
    from tinyllm.plot import PLOT_MISSING
    from tinyllm.train import PROGRESS_MISSING

    error = ModuleNotFoundError("No module named 'tinyllm._softmax'", name="tinyllm._softmax")
    message = _compiled.install_message(error, package_dir=ROOT)
    assert f"pip install {name}\n" in message
    assert f"pip install '{name}[plot]'" in PLOT_MISSING
    assert f"pip install '{name}[progress]'" in PROGRESS_MISSING
    for text in (message, PLOT_MISSING, PROGRESS_MISSING):
        for requirement in requirements_in_pip_commands(text):
            assert not re.fullmatch(r"tinyllm(\[\w+\])?", requirement), text


def test_release_workflow_publishes_the_distribution(name):
    workflow = ROOT / ".github" / "workflows" / "wheels.yml"
    if not workflow.exists():
        pytest.skip("the workflow is not beside tests/")
    text = workflow.read_text(encoding="utf-8")
    assert f"url: https://pypi.org/p/{name}\n" in text
    sdist_stem = re.sub(r"[-_.]+", "_", name).lower()  # how sdist file names spell it
    assert f'dist/{sdist_stem}-"$version".tar.gz' in text


def test_release_workflow_builds_with_the_cibuildwheel_ci_checks():
    workflow = ROOT / ".github" / "workflows" / "wheels.yml"
    ci = ROOT / ".ci" / "run"
    if not (workflow.exists() and ci.exists()):
        pytest.skip("the workflow and .ci/run are not beside tests/")
    pinned = re.search(r"uses: pypa/cibuildwheel@[0-9a-f]{40} # v(\S+)", workflow.read_text())[1]
    assert f'"cibuildwheel=={pinned}"' in ci.read_text()
    # Every action is pinned to a full commit, with its release in a comment.
    for line in re.findall(r"uses: (\S+.*)", workflow.read_text()):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line
