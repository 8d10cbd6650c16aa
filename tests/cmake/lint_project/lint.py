"""A stand-in linter for the CMake and Make tests: it counts its runs and writes on both streams.

``lint.py NAME [ARG...]`` appends a line to ``$LINT_COUNTS/NAME``, prints its arguments and
working directory on stdout and a warning on stderr. ``--write FILE`` also writes FILE;
``--fail`` makes it report an error and exit 1. ``--config NAME`` looks for NAME in the
working directory and its parents, as linters find their configuration, and prints the first
line of the nearest one (or that there is none): a file it reads that is declared nowhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def configuration(name: str) -> str:
    """The first line of the nearest file ``name`` in the working directory or a parent."""
    for directory in [Path.cwd(), *Path.cwd().parents]:
        if (directory / name).is_file():
            return f"config {(directory / name).read_text().splitlines()[0]}"
    return "no config"


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
    if "--config" in args:
        print(f"{name}: {configuration(args[args.index('--config') + 1])}", flush=True)
    print(f"{name}: checked {' '.join(args)} in {Path.cwd().name}", flush=True)
    print(f"{name}: warning: something to look at", file=sys.stderr, flush=True)
    if "--fail" in args:
        print(f"{name}: error: this code is wrong", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
