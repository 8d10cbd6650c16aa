"""What a program named on a command line really runs, for keys shared between machines.

A local key sees the program's path and stat: reinstalling a tool changes them. A remote key
sees contents, and a launcher's contents are the same in every version of its tool: a
``node_modules/.bin`` link to a package's ``bin/cli.js``, a version manager's shim, a shell
wrapper around a jar. So the files a launcher stands for are named here, for the remote key to
digest: the end of its link chain, the interpreter its ``#!`` line runs (and that one's, in
turn), and the version file of the package holding it (``package.json``, ``VERSION``). A
program whose version is chosen elsewhere (a shim, a shell script outside the base directory
in no package) raises :class:`~jobstamps.errors.NotShareableError`: its results are not shared.
"""

from __future__ import annotations

import os

from jobstamps import key
from jobstamps.errors import NotShareableError

__all__ = ["MANIFESTS", "SHELLS", "files_run", "inside"]

#: Interpreters of scripts whose job is to run another program.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash"})
#: Version files of a package, looked for beside a script and in the directories above it.
MANIFESTS = ("package.json", "VERSION", "version.txt")
#: Programs that run the tool their link is named after, at a version set elsewhere.
_DISPATCHERS = frozenset({"mise", "rtx", "volta-shim", "proto-shim"})
#: How many directories above a script's are searched for its package's version file.
_UP = 3
#: How many interpreters deep a ``#!`` line is followed.
_DEPTH = 3


def inside(path: str, base: str) -> bool:
    """Whether the absolute ``path`` is ``base`` or below it."""
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def files_run(executable: str, cwd: str, base: str) -> list[tuple[str, str, bool]]:
    """Name the files ``executable`` stands for: ``(what, path, script)`` for each.

    ``script`` marks a file whose ``#!`` line is left out of its digest (its interpreter is
    named on its own). The first is the end of the link chain. Raises
    :class:`~jobstamps.errors.NotShareableError` for a program that cannot be identified, and
    :class:`OSError` for one that cannot be read.
    """
    path_variable = os.environ.get("PATH")
    found: list[tuple[str, str, bool]] = []
    what, program = "program", executable
    for _ in range(_DEPTH):
        target = _target(program)
        interpreter = _interpreter(target, cwd, path_variable)
        found.append((what, target, interpreter is not None))
        python = key.python_interpreter(target, cwd, path_variable)
        if python is not None and python != target:
            _target(python)  # keyed with its environment on its own, unless it is a shim
        if interpreter is None or python is not None:
            return found  # a binary, or Python
        manifest = _manifest(target, base)
        if manifest is not None:
            found.append(("package version file", manifest, False))
        elif os.path.basename(interpreter) in SHELLS and not inside(target, base):
            raise NotShareableError(
                f"{program} is a shell script outside the base directory, in no package with "
                "a version file: what it runs cannot be identified. Name the program it runs "
                "instead, or put the wrapper in the checkout"
            )
        what, program = f"interpreter of {what}", interpreter
    raise NotShareableError(f"{executable} runs interpreters of interpreters too deep to follow")


def _target(program: str) -> str:
    """Follow ``program``'s link chain to its file; refuse a version manager's shim."""
    target = os.path.realpath(program)
    os.stat(target)  # a broken link, or a loop: OSError
    name, real = os.path.basename(program), os.path.basename(target)
    shim = "shims" in {os.path.basename(os.path.dirname(p)) for p in (program, target)}
    if shim or (real in _DISPATCHERS and real != name):
        raise NotShareableError(
            f"{program} is a version manager's shim: the version it runs is chosen elsewhere. "
            f'Name the tool itself (e.g. "$(pyenv which {name})" or "$(asdf which {name})")'
        )
    return target


def _interpreter(script: str, cwd: str, path_variable: str | None) -> str | None:
    """Return the program the ``#!`` line of ``script`` runs; ``None`` for no such line."""
    with open(script, "rb") as handle:
        head = handle.read(1024)
    if not head.startswith(b"#!"):
        return None
    words = os.fsdecode(head[2:].partition(b"\n")[0]).split()
    if not words:
        raise NotShareableError(f"{script} has an empty #! line")
    name = words[0]
    if os.path.basename(name) == "env":
        # the first word that is no option of env and no assignment (env -S A=1 node)
        name = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), "")
        found = key.resolve_executable(name, cwd, path_variable) if name else None
        if found is None:
            raise NotShareableError(f"the interpreter {name or '?'} of {script} is not on PATH")
        return found
    return name


def _manifest(script: str, base: str) -> str | None:
    """Return the version file of the package holding ``script``, if there is one.

    The search stops at ``node_modules`` (a package's own directory is below it) and at the
    base directory.
    """
    directory = os.path.dirname(script)
    for _ in range(_UP):
        if os.path.basename(directory) == "node_modules":
            return None
        for name in MANIFESTS:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
        parent = os.path.dirname(directory)
        if directory in {base, parent}:
            return None
        directory = parent
    return None
