"""A stand-in checker for the per-file CMake and Make tests: it logs what it was given.

``check.py [--config FILE] FILE...`` appends one line to ``$CHECK_LOG`` per run, naming the
files it was given (tab-separated), so a test counts runs and the files each one checked.
For each file it prints ``FILE:1:1: note: <first word of the config> checked`` on stdout and,
for each line holding ``FAIL_HERE``, ``FILE:LINE:1: error: marker found`` on stderr, followed
by the offending line; it exits 1 when any marker was found.

``check.py --exec PROGRAM ARG...`` logs the arguments that end in ``.c`` the same way, then
becomes ``PROGRAM ARG...`` (a real checker, counted).
"""

from __future__ import annotations

import os
import sys


def log(files: list[str]) -> None:
    """Record one run over ``files``."""
    with open(os.environ["CHECK_LOG"], "a", encoding="utf-8", errors="surrogateescape") as out:
        out.write("\t".join(files) + "\n")


def main(argv: list[str]) -> int:
    """Log the run, then check each file (or run the real checker)."""
    if argv[:1] == ["--exec"]:
        log([arg for arg in argv if arg.endswith(".c")])
        os.execv(argv[1], argv[1:])  # noqa: S606 - it stands in for the checker
    word = "plain"
    if argv[:1] == ["--config"]:
        with open(argv[1], encoding="utf-8") as config:
            word = (config.read().split() or [word])[0]
        argv = argv[2:]
    log(argv)
    status = 0
    for name in argv:
        print(f"{name}:1:1: note: {word} checked", flush=True)
        with open(name, encoding="utf-8") as source:
            for number, line in enumerate(source, start=1):
                if "FAIL_HERE" in line:
                    sys.stderr.write(f"{name}:{number}:1: error: marker found\n    {line}")
                    sys.stderr.flush()
                    status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
