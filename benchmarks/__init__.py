"""The benchmarks: each a module (``python -m benchmarks.<name>``) that prints its figures and writes JSON to
benchmarks/results/. Shared here: what more than one of them needs."""

import json
import subprocess
import sys
from pathlib import Path

_GENERATE = (
    "import json, sys; from pathlib import Path; from world import generate_world; "
    "a = json.loads(sys.argv[1]); generate_world(out_dir=Path(a.pop('out_dir')), **a)"
)


def generate_apart(out_dir: Path, **kwargs) -> None:
    """``world.generate_world(out_dir=out_dir, **kwargs)`` in a child process. Linux keeps a process's peak RSS
    across fork and exec, so a benchmark whose children report their own peak (``ru_maxrss``) must not have held a
    world itself: the children would report its peak as theirs."""
    args = json.dumps({"out_dir": str(out_dir), **kwargs})
    subprocess.run([sys.executable, "-c", _GENERATE, args], check=True, cwd=Path(__file__).resolve().parent.parent)
