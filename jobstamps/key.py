"""Keys of command invocations, and the path and executable facts that go into them.

Imported on every ``jobstamp`` hit, so it stays small; Python calls are keyed by
:mod:`jobstamps.canonical`.
"""

from __future__ import annotations

import os
import stat

from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "abspaths",
    "command_fields",
    "command_key",
    "env_field",
    "executable_identity",
    "python_environment",
    "python_interpreter",
    "resolve_executable",
    "same_destination",
    "streams_field",
    "unfingerprintable",
]

#: Names of a descriptor of this process: what they lead to cannot be fingerprinted.
_DESCRIPTOR_NAMES = ("/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/", "/dev/stdin")


def command_key(fields: Sequence[str]) -> str:
    """Return the key of a command invocation described by ``fields`` (see ``jobstamps.cli``)."""
    data = "\0".join(("jobstamps-command-1", *fields)).encode("utf-8", "surrogateescape")
    return blake2b(data, digest_size=20).hexdigest()


def abspaths(paths: Sequence[str | os.PathLike[str]], cwd: str | None = None) -> list[str]:
    """Resolve paths against ``cwd`` (default: the working directory) as the kernel does.

    ``..`` follows the symbolic link before it, as when the file is opened (``link/../x`` is
    ``x`` beside the link's target), so such a path's parent is resolved; the last component
    is kept as given, so that a link there is still the dependency. A path without ``..`` is
    only tidied (``.``, doubled slashes), which costs no system call.
    """
    if not paths:
        return []
    base = cwd or os.getcwd()
    return [_kernel_path(os.path.join(base, os.fspath(p))) for p in paths]


def _kernel_path(path: str) -> str:
    if f"{os.sep}.." not in path:
        return os.path.normpath(path)
    head, tail = os.path.split(path.rstrip(os.sep) or os.sep)
    if tail in {"", os.curdir, os.pardir}:
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(head), tail)


def unfingerprintable(names: Sequence[str], cwd: str, stdin: bool = True) -> str | None:
    """Return the first of ``names`` that is a pipe or a device (not ``/dev/null``), else None.

    Such an argument or dependency (``<(...)`` in bash is ``/dev/fd/63``) reads differently
    each time while its name stays the same, so no result keyed on it may be stored or
    replayed. A name is caught by its form even when that descriptor is closed here, and by
    what it leads to; a name that merely contains one (``--config=/dev/fd/63``) counts too.
    ``-`` names the standard input the command inherits (``stdin``) when that is one.
    """
    for name in names:
        if name == "-":
            if stdin and _piped(0):
                return "- (standard input)"
            continue
        if any(form in name for form in _DESCRIPTOR_NAMES) or ("/proc/" in name and "/fd/" in name):
            return name
        try:
            mode = os.stat(os.path.join(cwd, name)).st_mode
        except (OSError, ValueError):
            continue
        if (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)) and (
            os.path.realpath(os.path.join(cwd, name)) != os.devnull
        ):
            return name
    return None


def _piped(fd: int) -> bool:
    """Whether descriptor ``fd`` is a pipe, a socket or a device other than ``/dev/null``."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if stat.S_ISCHR(st.st_mode):
        try:
            return st.st_rdev != os.stat(os.devnull).st_rdev
        except OSError:
            return True
    return stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)


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
    """Identify an executable by path and stat: size, modification and change time, inode, mode.

    Upgrading or reinstalling the tool changes it, and so does copying another tool over it
    with the same size and modification time (``cp -p``): the inode or change time differs.
    """
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode:o}"


def python_environment(
    executable: str, cwd: str, path: str | None, installed_when: bool = True
) -> list[str]:
    """Name what a Python executable imports from: its interpreter and installed distributions.

    For a Python interpreter, or a script whose ``#!`` line runs one (a console script such as
    ``bin/flake8``), returns the interpreter's identity and the names of the ``*.dist-info``
    and ``*.egg-info`` directories in ``lib/python*/site-packages`` (or ``dist-packages``) of
    its environment (the interpreter's ``..``), so that upgrading a plugin or library re-runs;
    for anything else, nothing. With ``installed_when``, each such directory's modification
    time too: reinstalling a distribution at the same version (a patched plugin) replaces its
    ``.dist-info`` and re-runs. Costs one small read, and a listing and a stat per directory;
    the interpreter is not started.
    """
    interpreter = python_interpreter(executable, cwd, path)
    if interpreter is None:
        return []
    try:
        st = os.stat(interpreter)
    except OSError:
        return []
    found = [f"{interpreter} ({st.st_size} bytes, {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino})"]
    prefix = os.path.dirname(os.path.dirname(interpreter))
    lib = os.path.join(prefix, "lib")
    try:
        versions = sorted(name for name in os.listdir(lib) if name.startswith("python"))
    except OSError:
        return found
    for version in versions:
        for leaf in ("site-packages", "dist-packages"):
            site = os.path.join(lib, version, leaf)
            try:
                names = os.listdir(site)
                when = f" (modified {os.stat(site).st_mtime_ns})" if installed_when else ""
            except OSError:
                continue
            found.append(f"{version}/{leaf}{when}")
            found.extend(sorted(n for n in names if n.endswith((".dist-info", ".egg-info"))))
    return found


_PIP_LONG = b"'''exec' \""


def python_interpreter(executable: str, cwd: str, path: str | None) -> str | None:
    """Return the Python interpreter ``executable`` is, or runs as a script; else ``None``."""
    if _is_python(executable):
        return executable
    try:
        fd = os.open(executable, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        head = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not head.startswith(b"#!"):
        return None
    first, _, rest = head.partition(b"\n")
    words = os.fsdecode(first[2:]).split()
    if words == ["/bin/sh"] and rest.startswith(_PIP_LONG):
        # pip's form for an interpreter path too long for a #! line
        words = [os.fsdecode(rest[len(_PIP_LONG) :].partition(b'"')[0])]
    if len(words) > 1 and os.path.basename(words[0]) == "env":
        name = next((word for word in words[1:] if not word.startswith("-")), "")
        interpreter = resolve_executable(name, cwd, path) if name else None
    else:
        interpreter = words[0] if words else None
    return interpreter if interpreter is not None and _is_python(interpreter) else None


def _is_python(path: str) -> bool:
    return os.path.basename(path).startswith(("python", "pypy"))


def same_destination(a: int, b: int) -> bool:
    """Whether two file descriptors lead to the same file, pipe or terminal."""
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


def streams_field(merged: bool) -> str:
    """Say whether stdout and stderr are terminals, and whether they lead to the same place."""
    return f"tty:{int(os.isatty(1))}{int(os.isatty(2))} merged:{int(merged)}"


def env_field(name: str) -> str:
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
    python = python_environment(executable, cwd, os.environ.get("PATH"))
    fields = [
        cwd,
        executable_identity(executable),
        method,
        streams_field(merged),
        f"python:{len(python)}",
        *python,
        f"argv:{len(argv)}",
        *argv,
        f"deps:{len(dependencies)}",
        *dependencies,
        f"outputs:{len(outputs)}",
        *outputs,
        f"env:{len(env_names)}",
        *(env_field(name) for name in env_names),
        f"stdin:{stdin_digest}",
    ]
    return fields, merged
