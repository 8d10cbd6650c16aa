"""Turn an strace log of a command into the paths it read, probed, listed and changed.

Pure: it reads lines of ``strace -f -y -xx`` output (every string hex-escaped, every file
descriptor followed by ``<path>``) and never looks at the file system. Relative names are
resolved as the kernel resolved them at the time: against the directory behind a call's
descriptor (``AT_FDCWD<...>`` is the process's working directory), or the working directory
each process had then (followed through ``chdir``, ``fchdir`` and ``fork``). ``..`` is kept,
not folded away, so a later look-up goes through the same links.
"""

from __future__ import annotations

import os
import re

from jobstamps.trace.paths import DROPPED_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SYSCALLS", "Access", "Ignore", "parse", "tidy", "unescape"]

#: The system calls to trace (``strace -e trace=...``): every way to read, probe, list or
#: change a path, to run a program, to change directory and to start a process.
SYSCALLS = (
    "open,openat,openat2,creat,execve,execveat,stat,lstat,newfstatat,statx,access,faccessat,"
    "faccessat2,readlink,readlinkat,getdents,getdents64,chdir,fchdir,rename,renameat,"
    "renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,symlink,symlinkat,truncate,"
    "mknod,mknodat,clone,clone3,fork,vfork"
)

_RESULT = re.compile(r"\)\s+= ")
#: A string (under -xx every byte of one is written \\xHH, so none holds a quote), or a
#: character that nests or separates arguments.
_TOKENS = re.compile(r'"[^"]*"|[{}\[\]()<>,]')
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_TMPFILE")


class Access:
    """What a traced command did to paths, in absolute form.

    ``read``: files opened for reading or run (``executed``: run); ``stated``: paths looked
    at (stat, access, readlink), mapped to whether links were followed; ``absent``: failed
    look-ups, mapped the same way; ``listed``: directories whose entries were read;
    ``changed``: paths created, written, renamed or removed; ``read_then_changed``: paths read
    before the command changed them; ``exits``: each process's end (``"exited with 0"``,
    ``"killed by SIGKILL"``); ``first``: the first process (the command itself).
    """

    def __init__(self) -> None:
        self.read: dict[str, None] = {}
        self.executed: dict[str, None] = {}
        self.stated: dict[str, bool] = {}
        self.absent: dict[str, bool] = {}
        self.listed: dict[str, None] = {}
        self.changed: dict[str, None] = {}
        self.read_then_changed: dict[str, None] = {}
        self.exits: dict[int, str] = {}
        self.first = 0

    def volatile(self, directory: str) -> list[str]:
        """Name the entries of ``directory`` that the command created, renamed or removed."""
        prefix = directory.rstrip("/") + "/"
        return sorted(
            {
                path[len(prefix) :]
                for path in self.changed
                if path.startswith(prefix) and "/" not in path[len(prefix) :]
            }
        )

    def is_own(self, path: str) -> bool:
        """Whether ``path``, or a directory above it, was changed by the command."""
        changed = self.changed
        while path:
            if path in changed:
                return True
            path = path[: path.rfind("/")]
        return False


class _Call:
    """One finished system call: who made it, its name, its arguments and its result."""

    def __init__(self, pid: int, name: str, args: list[str], result: str) -> None:
        self.pid = pid
        self.name = name
        self.args = args
        self.result = result

    @property
    def ok(self) -> bool:
        return not self.result.startswith("-1")

    @property
    def absent(self) -> bool:
        return self.result.split(" ", 2)[1:2] in (["ENOENT"], ["ENOTDIR"])


def unescape(text: str) -> str:
    r"""Decode a ``-xx`` string (``"\\x2f\\x74"``) into the path it names."""
    body = text.strip()
    if body.startswith('"'):
        body = body[1 : body.rindex('"')]
    try:  # -xx writes every byte as \\xHH
        return os.fsdecode(bytes.fromhex(body.replace("\\x", "")))
    except ValueError:
        return os.fsdecode(_unhex(body))


def _unhex(body: str) -> bytes:
    out = bytearray()
    index = 0
    while index < len(body):
        if body.startswith("\\x", index):
            out.append(int(body[index + 2 : index + 4], 16))
            index += 4
        elif body[index] == "\\" and index + 1 < len(body):  # \n, \t, \\ and the like
            out += {"n": b"\n", "t": b"\t", "\\": b"\\", '"': b'"'}.get(
                body[index + 1], body[index + 1].encode()
            )
            index += 2
        else:
            out += body[index].encode("utf-8", "surrogateescape")
            index += 1
    return bytes(out)


def _split(args: str) -> list[str]:
    """Split a call's arguments at the top-level commas (strings, braces and brackets kept)."""
    parts, depth, start = [], 0, 0
    for match in _TOKENS.finditer(args):
        char = match.group()
        if char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(args[start : match.start()].strip())
            start = match.end()
    tail = args[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _annotated(arg: str) -> str | None:
    r"""Return the path strace printed behind a descriptor (``3<\\x2f...>``), if any."""
    start = arg.find("<")
    if start < 0 or not arg.endswith(">"):
        return None
    inner = arg[start + 1 : -1]
    if inner.endswith(" (deleted)"):
        return None
    if not inner.startswith("\\x"):
        return None  # a pipe, socket or anonymous descriptor
    return unescape(inner)


def tidy(path: str) -> str:
    """Drop ``.`` components and doubled slashes, keeping ``..`` as the kernel walks it."""
    parts = [part for part in path.split("/") if part not in {"", "."}]
    return "/" + "/".join(parts)


class _Parser:
    def __init__(self, cwd: str) -> None:
        self.access = Access()
        self.cwd: dict[int, str] = {}
        self.start_cwd = cwd
        self.pending: dict[int, str] = {}
        self.seen_read: set[str] = set()

    def feed(self, raw: str) -> None:
        line = raw.rstrip("\n")
        pid_text, _, rest = line.partition(" ")
        if not pid_text.isdigit():
            return
        pid = int(pid_text)
        rest = rest.lstrip()
        if not self.access.first:
            self.access.first = pid
        if pid not in self.cwd:
            self.cwd[pid] = self.parent_cwd()
        if rest.startswith("+++ "):
            self.access.exits[pid] = rest[4:].removesuffix(" +++")
            return
        if rest.startswith("<... "):
            name, _, tail = rest[5:].partition(" resumed>")
            rest = self.pending.pop(pid, name + "(") + tail
        if rest.endswith("<unfinished ...>"):
            self.pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
            return
        call = _parse_call(pid, rest)
        if call is not None:
            self.handle(call)

    def parent_cwd(self) -> str:
        """Guess a new process's working directory: its parent's, while its fork is pending.

        A child's first calls can be logged before its parent's ``fork`` returns; the parent
        is then one of the processes in the middle of a fork.
        """
        forking = {
            self.cwd.get(pid, self.start_cwd)
            for pid, call in self.pending.items()
            if call.startswith(("clone", "fork", "vfork"))
        }
        return forking.pop() if len(forking) == 1 else self.start_cwd

    def where(self, pid: int) -> str:
        return self.cwd.get(pid, self.start_cwd)

    def resolve(self, pid: int, path: str, dirfd: str | None = None) -> str:
        if path.startswith("/"):
            return tidy(path)
        base = self.where(pid)
        if dirfd is not None:
            annotated = _annotated(dirfd)
            if annotated is not None:
                base = annotated
                if dirfd.startswith("AT_FDCWD"):
                    self.cwd[pid] = annotated
        return tidy(base + "/" + path)

    def handle(self, call: _Call) -> None:  # noqa: C901, PLR0912 - one table of calls
        name, args = call.name, call.args
        if name in _FORKS:
            if call.ok and call.result.split(" ")[0].isdigit():
                self.cwd.setdefault(int(call.result.split(" ")[0]), self.where(call.pid))
            return
        if name in {"getdents", "getdents64"}:
            path = _annotated(args[0]) if args else None
            if call.ok and path is not None:
                self.access.listed.setdefault(path)
            return
        if name == "fchdir":
            path = _annotated(args[0]) if args else None
            if call.ok and path is not None:
                self.cwd[call.pid] = path
            return
        spec = _PATHS.get(name)
        if spec is None or len(args) <= spec[1]:
            return
        dirfd = args[spec[0]] if spec[0] >= 0 else None
        if not args[spec[1]].startswith('"'):
            return
        given = unescape(args[spec[1]])
        if not given:  # fstatat(fd, "", AT_EMPTY_PATH): a descriptor, not a name
            return
        path = _opened(call, self.resolve(call.pid, given, dirfd), spec[2])
        kind = spec[2]
        if kind == "chdir":
            if call.ok:
                self.cwd[call.pid] = path
            return
        if kind == "change":
            if call.ok:
                self.change(path)
                if len(spec) > 3:  # noqa: PLR2004 - a second path (rename, link)
                    other = args[spec[3]] if len(args) > spec[3] else ""
                    other_dirfd = args[spec[3] - 1] if spec[4] else None
                    if other.startswith('"'):
                        self.change(self.resolve(call.pid, unescape(other), other_dirfd))
            return
        follow = not _nofollow(name, args)
        if kind == "open":
            flags = args[spec[1] + 1] if len(args) > spec[1] + 1 else ""
            writes = any(flag in flags for flag in _WRITE_FLAGS)
            if call.ok and writes:
                self.change(path)
                return
            follow = "O_NOFOLLOW" not in flags
            kind = "read"
        if call.ok:
            if kind == "read":
                self.access.read.setdefault(path)
                if name.startswith("execve"):
                    self.access.executed.setdefault(path)
                self.seen_read.add(path)
            else:
                self.access.stated.setdefault(path, follow)
        else:  # not found, or refused (EACCES, ELOOP: what the path is now decides)
            (self.access.absent if call.absent else self.access.stated).setdefault(path, follow)

    def change(self, path: str) -> None:
        if path in self.seen_read and path not in self.access.changed:
            self.access.read_then_changed.setdefault(path)
        self.access.changed.setdefault(path)


def _opened(call: _Call, path: str, kind: str) -> str:
    """Name a file opened through a kernel view (``/proc/self/cwd/a.py``) by what it opened."""
    if kind == "open" and call.ok and path.startswith(_KERNEL_VIEWS):
        return _annotated(call.result.split(" ", 1)[0]) or path
    return path


def _nofollow(name: str, args: list[str]) -> bool:
    if name in {"lstat", "readlink", "readlinkat"}:
        return True
    return any("AT_SYMLINK_NOFOLLOW" in arg for arg in args[2:])


_FORKS = frozenset({"clone", "clone3", "fork", "vfork"})

#: call: (descriptor argument or -1, path argument, what it does[, second path, at-style]).
_PATHS: dict[str, tuple[int, int, str] | tuple[int, int, str, int, bool]] = {
    "open": (-1, 0, "open"),
    "openat": (0, 1, "open"),
    "openat2": (0, 1, "open"),
    "creat": (-1, 0, "change"),
    "execve": (-1, 0, "read"),
    "execveat": (0, 1, "read"),
    "stat": (-1, 0, "stat"),
    "lstat": (-1, 0, "stat"),
    "newfstatat": (0, 1, "stat"),
    "statx": (0, 1, "stat"),
    "access": (-1, 0, "stat"),
    "faccessat": (0, 1, "stat"),
    "faccessat2": (0, 1, "stat"),
    "readlink": (-1, 0, "stat"),
    "readlinkat": (0, 1, "stat"),
    "chdir": (-1, 0, "chdir"),
    "rename": (-1, 0, "change", 1, False),
    "renameat": (0, 1, "change", 3, True),
    "renameat2": (0, 1, "change", 3, True),
    "unlink": (-1, 0, "change"),
    "unlinkat": (0, 1, "change"),
    "rmdir": (-1, 0, "change"),
    "mkdir": (-1, 0, "change"),
    "mkdirat": (0, 1, "change"),
    "mknod": (-1, 0, "change"),
    "mknodat": (0, 1, "change"),
    "link": (-1, 1, "change"),
    "linkat": (2, 3, "change"),
    "symlink": (-1, 1, "change"),
    "symlinkat": (1, 2, "change"),
    "truncate": (-1, 0, "change"),
}


def _parse_call(pid: int, text: str) -> _Call | None:
    """Split ``name(args) = result`` (the result may carry an error name and a comment)."""
    open_at = text.find("(")
    ends = list(_RESULT.finditer(text))
    if open_at <= 0 or not ends or ends[-1].start() < open_at:
        return None
    name = text[:open_at]
    result = text[ends[-1].end() :].strip()
    return _Call(pid, name, _split(text[open_at + 1 : ends[-1].start()]), result)


#: Never recorded: the kernel's views (they change all the time and are no files of the
#: project), and the tools' own caches (:data:`jobstamps.trace.paths.DROPPED_NAMES`).
DROPPED_TREES = ("/proc", "/sys", "/dev")
#: Files of a project may live there all the same: ``/dev/shm`` is a file system in memory.
_KEPT_TREES = ("/dev/shm/",)  # noqa: S108 - a path compared, nothing made there
#: Where a name may lead to a file of the project (``/proc/self/cwd/a.py``, ``/dev/fd/3``):
#: a file opened through one is recorded by the path of what was opened.
_KERNEL_VIEWS = ("/proc/", "/dev/fd/", "/dev/std")


class Ignore:
    """Which paths a traced set leaves out: the defaults, the cache, and ``--trace-ignore``.

    A glob without ``/`` matches any one component of a path (``*.log``, ``.tox``); one with
    ``/`` matches the whole absolute path (relative ones are taken from ``cwd``), with ``*``
    crossing slashes as in :mod:`fnmatch`.
    """

    def __init__(
        self, globs: Iterable[str] = (), cwd: str = "/", trees: Iterable[str] = ()
    ) -> None:
        self.trees = tuple(tree.rstrip("/") for tree in (*DROPPED_TREES, *trees))
        self.prefixes = tuple(tree + "/" for tree in self.trees)
        self.dropped_parts = re.compile(
            "/(?:" + "|".join(map(re.escape, sorted(DROPPED_NAMES))) + ")/"
        )
        self.names = [glob for glob in globs if "/" not in glob]
        self.paths = [tidy(os.path.join(cwd, glob)) for glob in globs if "/" in glob]

    @property
    def globs(self) -> list[str]:
        """The user's globs, those with ``/`` made absolute (for leaving names out of listings)."""
        return [*self.names, *self.paths]

    def __call__(self, path: str) -> bool:
        """Whether ``path`` is left out."""
        if (path in self.trees or path.startswith(self.prefixes)) and not path.startswith(
            _KEPT_TREES
        ):
            return True
        if self.dropped_parts.search(path + "/"):
            return True
        if not (self.names or self.paths):
            return False
        from fnmatch import fnmatchcase

        parts = path.split("/")
        if any(fnmatchcase(part, glob) for glob in self.names for part in parts if part):
            return True
        return any(fnmatchcase(path, glob) for glob in self.paths)


def parse(lines: Iterable[str], cwd: str) -> Access:
    """Read an strace log; ``cwd`` is where the command started."""
    parser = _Parser(cwd)
    for line in lines:
        parser.feed(line)
    return parser.access
