"""A stand-in linter for the CMake and Make tests: it counts its runs and writes on both streams.

``lint.py NAME [ARG...]`` appends a line to ``$LINT_COUNTS/NAME``, prints its arguments and
working directory on stdout and a warning on stderr. ``--write FILE`` also writes FILE;
``--fail`` makes it report an error and exit 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Count the run, then behave as the arguments ask."""
    name, *args = argv
    counts = Path(os.environ["LINT_COUNTS"])
    counts.mkdir(parents=True, exist_ok=True)
    with (counts / name).open("a") as count:
        count.write("run\n")
    if "--write" in args:
        output = Path(args[args.index("--write") + 1])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(f"made by {name}\n")
    print(f"{name}: checked {' '.join(args)} in {Path.cwd().name}", flush=True)
    print(f"{name}: warning: something to look at", file=sys.stderr, flush=True)
    if "--fail" in args:
        print(f"{name}: error: this code is wrong", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
