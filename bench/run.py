"""``tinyllm bench`` from a checkout, writing ``bench/results/latest.json`` by default.

The benchmark itself lives in the package (``tinyllm/bench/``), so that an installed
wheel has it too; this script runs the same command::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py            # quick, < 1 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --full     # V = 5 … 10⁷
    python bench/run.py --only 'top_p' --markdown --plot bench/results/ratios.png

Every option of ``tinyllm bench --help`` works here. Unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE (as above) if your environment sets them: they force an old OpenBLAS
kernel choice and slow NumPy down, which would flatter tinyllm.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
# The checkout's own tinyllm when it is built in place (its compiled modules beside the
# sources), else the installed one.
if any(p.suffix in (".so", ".pyd") for p in (CHECKOUT / "tinyllm").glob("_sampling*")):
    sys.path.insert(0, str(CHECKOUT))

from tinyllm.cli import main  # noqa: E402

RESULTS = CHECKOUT / "bench" / "results"


def run(argv: list[str]) -> int:
    """``tinyllm bench ARGV``, with ``--json bench/results/latest.json`` unless given."""
    if not any(arg == "--json" or arg.startswith("--json=") for arg in argv):
        RESULTS.mkdir(parents=True, exist_ok=True)
        argv = [*argv, "--json", str(RESULTS / "latest.json")]
    return main(["bench", *argv])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
