"""Keys of command invocations, and the path and executable facts that go into them.

Imported on every ``jobstamp`` hit, so it stays small; Python calls are keyed by
:mod:`jobstamps.canonical`.
"""

from __future__ import annotations

import os

from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "abspaths",
    "command_fields",
    "command_key",
    "executable_identity",
    "resolve_executable",
    "same_destination",
]


def command_key(fields: Sequence[str]) -> str:
    """Return the key of a command invocation described by ``fields`` (see ``jobstamps.cli``)."""
    data = "\0".join(("jobstamps-command-1", *fields)).encode("utf-8", "surrogateescape")
    return blake2b(data, digest_size=20).hexdigest()


def abspaths(paths: Sequence[str | os.PathLike[str]], cwd: str | None = None) -> list[str]:
    """Resolve paths against ``cwd`` (default: the working directory), keeping symlinks."""
    if not paths:
        return []
    base = cwd or os.getcwd()
    return [os.path.normpath(os.path.join(base, os.fspath(p))) for p in paths]


def resolve_executable(name: str, cwd: str, path: str | None) -> str | None:
    """Find the file a command name runs, as ``execvp`` would; ``None`` when there is none.

    A name with a slash is taken relative to ``cwd``; otherwise each ``path`` entry is tried.
    A file found without execute permission is still returned, so the caller can tell
    "not executable" (126) from "not found" (127).
    """
    if os.sep in name or (os.altsep and os.altsep in name):
        candidate = os.path.join(cwd, name)
        return candidate if os.path.isfile(candidate) else None
    fallback = None
    for entry in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(cwd, entry or ".", name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            fallback = fallback or candidate
    return fallback


def executable_identity(path: str) -> str:
    """Identify an executable by path, size and modification time, as ccache does by default.

    Upgrading or reinstalling the tool changes it; copying the same bytes elsewhere does not
    matter because the path is part of it too.
    """
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}"


def same_destination(a: int, b: int) -> bool:
    """Whether two file descriptors lead to the same file, pipe or terminal."""
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


def _env_field(name: str) -> str:
    """Describe a declared variable by a digest of its value: entries and logs never show it."""
    value = os.environ.get(name)
    if value is None:
        return f"{name} unset"
    text = f"jobstamps-env\0{name}\0{value}".encode("utf-8", "surrogateescape")
    return f"{name}={blake2b(text, digest_size=16).hexdigest()}"


def command_fields(
    cwd: str,
    executable: str,
    method: str,
    argv: Sequence[str],
    dependencies: Sequence[str] = (),
    outputs: Sequence[str] = (),
    env_names: Sequence[str] = (),
    stdin_digest: str = "-",
) -> tuple[list[str], bool]:
    """Describe a command invocation for :func:`command_key`; also say if stdout is stderr.

    Besides what is given, the key notes whether stdout and stderr are terminals and whether
    they lead to the same place: output recorded for one is not replayed into the other.
    """
    merged = same_destination(1, 2)
    fields = [
        cwd,
        executable_identity(executable),
        method,
        f"tty:{int(os.isatty(1))}{int(os.isatty(2))} merged:{int(merged)}",
        f"argv:{len(argv)}",
        *argv,
        f"deps:{len(dependencies)}",
        *dependencies,
        f"outputs:{len(outputs)}",
        *outputs,
        f"env:{len(env_names)}",
        *(_env_field(name) for name in env_names),
        f"stdin:{stdin_digest}",
    ]
    return fields, merged
