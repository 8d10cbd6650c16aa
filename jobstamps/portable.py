"""Keys that mean the same on every machine, for results shared through a remote cache.

A local key names files by absolute path and the executable by path and stat: right for one
machine, useless for another. A remote key is worked out only on a local miss, from:

- contents, never times: every dependency's digest (a directory's by its tree), as in hash
  mode, whatever mode the local entry uses;
- paths relative to a base directory (like ccache's ``base_dir``): ``--base-dir`` or
  ``JOBSTAMPS_BASE_DIR``, else the root of the git repository holding the working directory
  (the nearest ancestor with a ``.git``), else the working directory. The working directory,
  the dependencies, the outputs and every command argument that is an absolute path inside
  the base directory are written relative to it; a path outside it stays absolute, and so
  matches only on machines that have the same path;
- the executable by the contents of what it runs (:mod:`jobstamps.launchers`: the end of its
  link chain, a script's interpreter and package version file; each digest is remembered in
  the local cache by path and stat, so it is read once), its Python environment's
  distributions (names only), and its path relative to the base directory, or else its name
  alone (``flake8``); a program that cannot be identified (a shim) is not shared;
- the environment only as declared (``--env``, by digests), and whether stdout and stderr
  are terminals and merged.

Each field of the key comes with a label that shows no secret, for ``--show-key``.
"""

from __future__ import annotations

import os
import time

from jobstamps import fingerprint, key, launchers
from jobstamps.errors import UsageError
from jobstamps.launchers import inside

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    #: A part of a remote key: a label that can be shown, and the field that is keyed.
    Part = tuple[str, str]

    class Memo(Protocol):
        """Where key code remembers what it worked out: an ASCII value by name, kept or not.

        The local cache provides one (:attr:`jobstamps.store.Store.memos`); key code only
        uses it, so it never writes a file itself.
        """

        def get(self, name: str) -> str | None:
            """Return the value remembered under ``name``, or ``None``."""

        def put(self, name: str, value: str) -> None:
            """Remember ``value`` under ``name``; never fail the caller."""


__all__ = [
    "base_directory",
    "command_key",
    "command_parts",
    "content_digest",
    "dependency_digests",
    "first_outside",
    "inside",
    "program_parts",
    "python_key",
    "relative",
    "show",
]

#: Starts an argument that was an absolute path inside the base directory (then written
#: relative to it), and every other argument, as given: no argument can pass for another.
_BASE = "{base}/"
_VERBATIM = "="
#: Hex characters of a content digest: a remembered value of any other size is not one.
_DIGEST_SIZE = 40


def base_directory(cwd: str, given: str | None = None) -> str:
    """Return the base directory: ``given``, ``JOBSTAMPS_BASE_DIR``, the git root, or ``cwd``.

    Raises :class:`UsageError` for a given directory that does not exist.
    """
    given = given or os.environ.get("JOBSTAMPS_BASE_DIR") or None
    if given is not None:
        resolved = os.path.realpath(os.path.join(cwd, given))
        if not os.path.isdir(resolved):
            raise UsageError(
                f"base directory {given} is not a directory. Name the top of the checkout "
                "with --base-dir or JOBSTAMPS_BASE_DIR"
            )
        return resolved
    directory = cwd
    while not os.path.lexists(os.path.join(directory, ".git")):
        parent = os.path.dirname(directory)
        if parent == directory:
            return cwd
        directory = parent
    return directory


def relative(path: str, base: str) -> str:
    """Write the absolute ``path`` relative to ``base`` if it is inside; else leave it as is."""
    if path == base:
        return os.curdir
    if inside(path, base):
        return path[len(base.rstrip(os.sep)) + 1 :]
    return path


def first_outside(paths: Sequence[str], base: str) -> str | None:
    """Return the first of ``paths`` outside ``base``, if any.

    An output file is restored where the other machine's base directory puts it: one outside
    it has no such place, so a result with one is not shared.
    """
    return next((path for path in paths if not inside(path, base)), None)


def _argument(arg: str, base: str) -> str:
    """Write a command argument that is an absolute path inside ``base`` relative to it.

    Each form has a mark of its own, so an argument that is literally ``{base}/x`` is not
    taken for the path ``x`` in the base directory.
    """
    if os.path.isabs(arg) and os.path.normpath(arg) == arg and inside(arg, base):
        return _BASE + relative(arg, base)
    return _VERBATIM + arg


def content_digest(path: str, memo: Memo, script: bool = False) -> str:
    """Return the digest of a file's contents, remembered in ``memo`` by its path and stat.

    For a ``script`` (run by an interpreter identified on its own) the lines naming where the
    interpreter is on this machine are left out. A file modified within the racy window is
    digested every time: an edit within one timestamp tick would leave its stat unchanged.
    Raises :class:`OSError` if it cannot be read.
    """
    st = os.stat(path)
    signature = (
        f"jobstamps-memo-1\0{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
        f"\0{st.st_ino}\0{st.st_dev}\0{st.st_mode}\0{int(script)}"
    )
    name = fingerprint.digest_bytes(signature.encode("utf-8", "surrogateescape"))
    known = memo.get(name)
    if known is not None and len(known) == _DIGEST_SIZE and known.isascii() and known.isalnum():
        return known
    digest = _script_digest(path) if script else fingerprint.digest_file(path)
    after = os.stat(path)
    settled = max(after.st_mtime_ns, after.st_ctime_ns) < time.time_ns() - (
        fingerprint.RACY_WINDOW_NS
    )
    if settled and (after.st_mtime_ns, after.st_ctime_ns, after.st_ino) == (
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
    ):
        memo.put(name, digest)  # remembered next time, perhaps; the digest is right either way
    return digest


#: The second line of pip's form for an interpreter path too long for a ``#!`` line.
_PIP_LONG = b"\x27\x27\x27exec\x27"


def _script_digest(path: str) -> str:
    """Digest a script without the ``#!`` line (or pip's three lines) naming its interpreter."""
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n", 3)
    skip = 3 if len(lines) > 3 and lines[1].startswith(_PIP_LONG) else 1  # noqa: PLR2004
    return fingerprint.digest_bytes(b"\n".join(lines[skip:]) if len(lines) > skip else b"")


def dependency_digests(
    paths: Sequence[str], recorded: Sequence[fingerprint.Fingerprint | None]
) -> list[str] | None:
    """Return the content digest of each dependency when ``recorded`` was taken.

    The digest in a fingerprint is used as it is; a file fingerprinted by its stat alone is
    read now, and must not have changed since. ``None`` when a dependency is missing,
    unreadable or changed: such a result is not shared.
    """
    digests = []
    for path, fp in zip(paths, recorded, strict=True):
        if fp is None:
            return None
        if fp[6]:
            digests.append(fp[6])
            continue
        try:
            digests.append(fingerprint.digest_file(path))
        except OSError:
            return None
        if fingerprint.changed_since(path, fp) is not None:
            return None
    return digests


def program_parts(executable: str, cwd: str, base: str, memo: Memo) -> list[Part]:
    """Identify an executable by name and by the contents of what it runs, not by where it is.

    What it runs: the end of its link chain, its ``#!`` line's interpreter, the version file
    of its package (:func:`jobstamps.launchers.files_run`), and a Python environment's
    distributions. Work it out once per invocation and pass it to :func:`command_key` for
    every job. Each file's digest is remembered in ``memo`` (see :func:`content_digest`).
    Raises :class:`~jobstamps.errors.NotShareableError` for a program that cannot be
    identified (a shim) and :class:`OSError` for one that cannot be read.
    """
    path_variable = os.environ.get("PATH")
    name = _portable_name(executable, base)
    parts = [(f"program name {name}", name)]
    for what, path, script in launchers.files_run(executable, cwd, base):
        shown = _portable_name(path, base)
        digest = content_digest(path, memo, script)
        parts.append((f"{what} {shown}", f"{what}\0{shown}\0{digest}"))
    interpreter = key.python_interpreter(executable, cwd, path_variable)
    if interpreter is not None:
        parts.append(("python interpreter", content_digest(interpreter, memo)))
        # Names only: when a machine installed them is its own affair.
        found = key.python_environment(executable, cwd, path_variable, installed_when=False)[1:]
        parts.append((f"python environment: {len(found)}", f"python:{len(found)}"))
        parts += [(f"python {item}", item) for item in found]
    return parts


def _portable_name(path: str, base: str) -> str:
    """Name a file by its path relative to ``base`` if it is inside, else by its name alone."""
    return relative(path, base) if inside(path, base) else os.path.basename(path)


def command_key(parts: Sequence[Part]) -> str:
    """Return the remote key made of ``parts`` (from :func:`command_parts`)."""
    return key.command_key([field for _, field in parts])


def command_parts(
    program: Sequence[Part],
    base: str,
    cwd: str,
    argv: Sequence[str],
    dependencies: Sequence[str],
    digests: Sequence[str],
    outputs: Sequence[str],
    env_names: Sequence[str],
    stdin_digest: str,
    merged: bool,
    per_file: bool = False,
) -> list[Part]:
    """Return the parts of the remote key of a command invocation (see the module's text).

    ``per_file`` marks the result of one file of a batch (:mod:`jobstamps.perfile`): its own
    lines of the batch's output, not the whole output of the command run on it alone.
    ``program`` comes from :func:`program_parts`. Each part is ``(label, field)``: the label
    names it in :func:`show` without any value that could be a secret (an argument that is
    no path in the base directory, a variable's value); the field is what is keyed.
    """
    cwd_shown = relative(cwd, base)
    arguments = [_argument(arg, base) for arg in argv[1:]]
    return [  # per-file 2: a file's lines as jobstamps.attribution divides a batch's output
        ("format", "jobstamps-remote-per-file-2" if per_file else "jobstamps-remote-2"),
        (f"working directory {cwd_shown}", cwd_shown),
        (f"program: {len(program)}", f"program:{len(program)}"),
        *program,
        ("output streams", key.streams_field(merged)),
        (f"arguments: {len(argv)}", f"argv:{len(argv)}"),
        # the program as it is named here, not as on the machine that stored it
        (f"argument 0 {program[0][1]}", program[0][1]),
        *(
            (f"argument {number} {arg if arg.startswith(_BASE) else '(shown by digest)'}", arg)
            for number, arg in enumerate(arguments, 1)
        ),
        (f"dependencies: {len(dependencies)}", f"deps:{len(dependencies)}"),
        *(
            (f"dependency {relative(p, base)}", f"{relative(p, base)}\0{d}")
            for p, d in zip(dependencies, digests, strict=True)
        ),
        (f"outputs: {len(outputs)}", f"outputs:{len(outputs)}"),
        *((f"output {relative(path, base)}", relative(path, base)) for path in outputs),
        (f"environment: {len(env_names)}", f"env:{len(env_names)}"),
        *((f"environment {name}", key.env_field(name)) for name in env_names),
        ("standard input", f"stdin:{stdin_digest}"),
    ]


def show(parts: Sequence[Part]) -> str:
    """Write the remote key and its parts, each with a digest, one a line, for ``diff``.

    Two machines' listings differ in the lines of the parts that differ.
    """
    lines = [f"{command_key(parts)}  remote key"]
    lines += [
        f"{fingerprint.digest_bytes(field.encode('utf-8', 'surrogateescape'))[:16]}  {label}"
        for label, field in parts
    ]
    return "\n".join(lines) + "\n"


def python_key(
    call: str,
    base: str,
    dependencies: Sequence[str],
    digests: Sequence[str],
    outputs: Sequence[str],
) -> str:
    """Return the remote key of a Python call from the key of the call and its files' contents.

    ``call`` names the function and its arguments as given (relative paths in arguments are
    what makes a call portable), keyed without the absolute paths of its files; the files are
    named relative to ``base``.
    """
    import sys

    fields = [
        "jobstamps-remote-call-1",
        call,
        f"python:{sys.version_info[0]}.{sys.version_info[1]}",
        f"deps:{len(dependencies)}",
        *(f"{relative(p, base)}\0{d}" for p, d in zip(dependencies, digests, strict=True)),
        f"outputs:{len(outputs)}",
        *(relative(path, base) for path in outputs),
    ]
    return key.command_key(fields)
