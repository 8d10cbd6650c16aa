"""Per-file caching at batch speed: ``jobstamp --per-file [OPTION...] -- COMMAND -- FILE...``.

Each FILE is a job of its own, ``COMMAND ARG... FILE``, depending on that file and the declared
configuration files, with an entry of its own. Unchanged files replay their stored messages;
the stale ones run together, as few large invocations as the argument-length limit and
``--jobs`` allow, and the output of each run is divided among its files by the rule in
:func:`attribute`. A run whose failure cannot be pinned on its files is repeated on smaller
batches (bisection) until every file has a result from a run it can be trusted from.
"""

from __future__ import annotations

import argparse
import os
import stat

from jobstamps import fingerprint, key, settings
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import CacheDirectoryError, UsageError
from jobstamps.options import TABLE, env_name
from jobstamps.replay import Writer
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future
    from typing import Any

    from jobstamps.runner import Outcome
    from jobstamps.storage.layered import Layered, Shared

    #: A stored result: ``{"code": status, "chunks": [(stream, size), ...], "data": bytes}``.
    Payload = dict[str, Any]
    #: One line of output, with its stream (1 or 2); the last line may lack its newline.
    Line = tuple[int, bytes]

__all__ = ["PerFile", "attribute", "batches", "main", "parse", "split_lines"]

FORM = "[OPTION...] -- COMMAND [ARG...] -- FILE..."
#: Options that mean here what they mean to the command (:data:`jobstamps.options.TABLE`).
_AS_THE_COMMAND = (
    "--stamp-directory",
    "--no-store-failures",
    "--remote",
    "--remote-read-only",
    "--base-dir",
)
_REPORT = "Please report this bug with the command line and the output of jobstamp --version"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors become :class:`UsageError`, not an exit."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}. Run '{self.prog} --help'")


def _parser(prog: str) -> _Parser:
    parser = _Parser(
        prog=prog,
        usage=f"{prog} {FORM}",
        allow_abbrev=False,
        description=(
            "Check each FILE as 'COMMAND ARG... FILE', replaying the stored output and status "
            "of files that did not change since they were last checked; the changed ones run "
            "in a few large batches. Safe for linters whose verdict on a file depends only on "
            "that file and the declared dependencies."
        ),
        epilog=f"example: {prog} --use-hashes --dependencies setup.cfg -- flake8 -- src/*.py",
    )
    parser.add_argument(
        "--dependencies",
        nargs="*",
        default=[],
        metavar="PATH",
        help="configuration files every result depends on (may be missing; creating one re-runs)",
    )
    parser.add_argument(
        "--use-hashes",
        action="store_true",
        help="compare files by content, so results survive a fresh checkout (recommended)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=env_name,
        metavar="NAME",
        help="make the value of environment variable NAME part of the key (repeatable)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="say on stderr how many files ran and why each stale one did",
    )
    parser.add_argument(
        "--force", action="store_true", help="run every file, and store the new results"
    )
    for name in _AS_THE_COMMAND:
        _, kind, metavar, text = TABLE[name]
        if kind == "flag":
            parser.add_argument(name, action="store_true", help=text)
        else:
            parser.add_argument(name, metavar=metavar, help=text)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="linter processes at once (default: the number of processors)",
    )
    return parser


def parse(argv: Sequence[str], prog: str) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split ``argv`` into options, the command and the files; raise :class:`UsageError`."""
    if "--" not in argv and not {"-h", "--help"} & set(argv):
        raise UsageError(f"no command given. Write: {prog} {FORM}")
    first = argv.index("--") if "--" in argv else len(argv)
    options = _parser(prog).parse_args(argv[:first])
    last = len(argv) - 1 - argv[::-1].index("--")
    if first == last:
        raise UsageError(
            f"the command must end with '--', followed by the files to check. Write: {prog} {FORM}"
        )
    command, files = list(argv[first + 1 : last]), list(argv[last + 1 :])
    if not command:
        raise UsageError(f"no command between the two '--'. Write: {prog} {FORM}")
    if options.jobs < 1:
        raise UsageError(
            f"--jobs must be at least 1, not {options.jobs}. Omit it to use every processor"
        )
    return options, command, files


def main(argv: Sequence[str], prog: str = "jobstamp --per-file") -> int:
    """Run the per-file mode over ``argv`` (``--per-file`` among the options is ignored)."""
    args = list(argv)
    end = args.index("--") if "--" in args else len(args)
    if "--per-file" in args[:end]:
        args.remove("--per-file")
    try:
        options, command, files = parse(args, prog)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        error_line(str(error))
        return 2
    return run(options, command, files)


def run(options: argparse.Namespace, command: list[str], files: list[str]) -> int:
    """Check ``files`` with ``command`` through the cache; return the combined exit status."""
    try:
        cwd = os.getcwd()
    except OSError:
        error_line("the working directory no longer exists; running the command without the cache")
        return run_uncached(command, files)
    executable = key.resolve_executable(command[0], cwd, os.environ.get("PATH"))
    if executable is None:
        error_line(f"command not found: {command[0]}. Check its name and PATH")
        return 127
    if not os.access(executable, os.X_OK):
        error_line(f"cannot run {command[0]}: permission denied. Make it executable")
        return 126
    if not files or settings.disabled():
        # No file names (pass_filenames: false, always_run): what it reads is unknown, so no cache.
        return run_uncached(command, files, executable)
    try:
        checker = PerFile(options, command, executable, cwd)
    except OSError as error:  # CacheDirectoryError, or a path the system cannot follow
        if not isinstance(error, CacheDirectoryError):
            error = CacheDirectoryError(
                f"cache directory {error.filename} cannot be used ({error.strerror or error})"
            )
        error_line(f"{error}; running the command without the cache")
        return run_uncached(command, files, executable)
    try:
        return checker.run(files)
    except KeyboardInterrupt:
        return 130


def error_line(message: str) -> None:
    """Write one ``jobstamp:`` line to stderr, whatever the bytes in it."""
    try:
        os.write(2, f"jobstamp: {message}\n".encode("utf-8", "surrogateescape"))
    except (OSError, UnicodeEncodeError):
        pass


def run_uncached(command: list[str], files: list[str], executable: str | None = None) -> int:
    """Run ``command`` on ``files`` without the cache, in as few runs as the length limit allows.

    The output goes straight through; the status is the largest, as pre-commit combines its
    batches.
    """
    from jobstamps import runner

    status = 0
    for batch in batches(list(range(len(files))), files, 1, _room(command)) or [[]]:
        code = runner.run_plain([*command, *(files[i] for i in batch)], executable)
        status = code if abs(code) > abs(status) else status
    return status


# -- dividing a batch's output among its files --------------------------------------------------


def split_lines(chunks: Sequence[tuple[int, int]], data: bytes) -> list[Line]:
    """Cut recorded output into lines, each with its stream, in the order they were completed."""
    lines: list[Line] = []
    partial: dict[int, list[bytes]] = {}
    offset = 0
    for fd, size in chunks:
        piece = data[offset : offset + size]
        offset += size
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            head = partial.pop(fd, [])
            lines.append((fd, b"".join([*head, piece[start : end + 1]])))
            start = end + 1
        if start < len(piece):
            partial.setdefault(fd, []).append(piece[start:])
    lines.extend((fd, b"".join(rest)) for fd, rest in partial.items())
    return lines


def path_forms(files: Sequence[str], cwd: str) -> dict[bytes, int]:
    """Map every spelling a tool may print for each file to the file's index.

    As passed, absolute, relative to ``cwd``, and with or without a leading ``./``. A name as
    passed is that file's before any other spelling; ``..`` is resolved as the kernel does
    (``link/../a.py`` is not the ``a.py`` beside the link).
    """
    forms = {os.fsencode(name): index for index, name in enumerate(files)}
    for index, (name, absolute) in enumerate(zip(files, key.abspaths(files, cwd), strict=True)):
        spellings = [absolute]
        if absolute.startswith(cwd + os.sep):
            relative = absolute[len(cwd) + 1 :]
            spellings += [relative, "./" + relative]
        if name.startswith("./"):
            spellings.append(name[2:])
        for spelling in spellings:
            forms.setdefault(os.fsencode(spelling), index)
    return forms


def _plain(line: bytes) -> bytes:
    """Return ``line`` without terminal colour and style sequences (``ESC [ ... m``)."""
    if b"\x1b" not in line:
        return line
    import re

    return re.sub(rb"\x1b\[[0-9;:?]*[ -/]*[@-~]", b"", line)


def _owner(line: bytes, forms: dict[bytes, int]) -> int | None:
    """Return the file a ``path:...`` line is about (the longest path that matches)."""
    found = None
    colon = line.find(b":")
    while colon > 0:
        index = forms.get(line[:colon])
        if index is not None:
            found = index
        colon = line.find(b":", colon + 1)
    return found


def _continues(line: bytes, following: bytes | None) -> bool:
    """Whether a line after a file's last message still belongs to it.

    Blank and indented lines (carets, code frames, notes), a ``path:N`` location in another
    file (a header's note), or a source line followed by its caret line do; a line such as
    ``Found 3 errors.`` does not.
    """
    if not line.strip() or line[:1] in {b" ", b"\t"}:
        return True
    if following is not None and b"^" in following and not following.strip(b" \t\r\n^~"):
        return True
    name, colon, rest = line.partition(b":")
    return bool(colon) and bool(name) and not name[-1:].isspace() and rest[:1].isdigit()


def attribute(
    lines: Sequence[Line], forms: dict[bytes, int]
) -> tuple[dict[int, list[Line]], list[Line]]:
    """Divide a run's lines among its files; return ``({file: lines}, lines of no file)``.

    A line that begins with a file's path and a colon (``path:line:col: message``) starts that
    file's messages; the lines after it that do not begin with a file's path continue them.
    After the last such line of a stream, only lines that look like continuations do
    (:func:`_continues`): the rest of the stream (a summary, a traceback) belongs to no file,
    as do lines before a stream's first file message.
    """
    plain = [_plain(data) for _, data in lines]
    owners = [_owner(text, forms) for text in plain]
    following: list[bytes | None] = [None] * len(lines)
    ahead: dict[int, bytes] = {}
    for position in range(len(lines) - 1, -1, -1):
        fd = lines[position][0]
        following[position] = ahead.get(fd)
        ahead[fd] = plain[position]
    last_head: dict[int, int] = {}
    for position, ((fd, _), owner) in enumerate(zip(lines, owners, strict=True)):
        if owner is not None:
            last_head[fd] = position
    owned: dict[int, list[Line]] = {}
    unowned: list[Line] = []
    current: dict[int, int | None] = {}
    for position, (line, head) in enumerate(zip(lines, owners, strict=True)):
        fd = line[0]
        owner = head
        if owner is None:
            owner = current.get(fd)
            trailing = owner is not None and position > last_head[fd]
            if trailing and not _continues(plain[position], following[position]):
                owner = None
        current[fd] = owner
        if owner is None:
            unowned.append(line)
        else:
            owned.setdefault(owner, []).append(line)
    return owned, unowned


def _share(named: int, size: int, whole: bool) -> list[Any] | None:
    """Mark the failures of a run in which ``named`` of ``size`` files printed messages.

    With several files named, the run's status cannot be pinned on one of them (some may
    have printed only warnings). A run that named every one of its files marks its failures
    with its own token and size: files replayed together with every other file of that run
    would fail again, as that run did.
    """
    if named < 2:  # noqa: PLR2004 - one file named: the failure is its own
        return None
    return [os.urandom(8).hex() if whole else "", size]


def _payload(code: int, lines: Sequence[Line], shared: list[Any] | None = None) -> Payload:
    """Make a stored result; ``shared`` marks a failure whose status other files shared."""
    chunks: list[tuple[int, int]] = []
    for fd, data in lines:
        if chunks and chunks[-1][0] == fd:
            chunks[-1] = (fd, chunks[-1][1] + len(data))
        else:
            chunks.append((fd, len(data)))
    payload = {"code": code, "chunks": chunks, "data": b"".join(data for _, data in lines)}
    if shared and code:
        payload["shared"] = shared
    return payload


# -- batches ------------------------------------------------------------------------------------


def _room(command: Sequence[str]) -> int:
    """Bytes left for file names on one command line (as xargs and pre-commit reckon it)."""
    try:
        limit = os.sysconf("SC_ARG_MAX")
    except (AttributeError, ValueError, OSError):
        limit = 1 << 15
    environment = (
        sum(len(k) + len(v) + 2 for k, v in os.environb.items()) if os.name == "posix" else 0
    )
    limit = max(min(limit - 2048 - environment, 1 << 17), 1 << 12)
    return limit - sum(len(os.fsencode(arg)) + 1 for arg in command)


def batches(indices: list[int], files: Sequence[str], jobs: int, room: int) -> list[list[int]]:
    """Split ``indices`` into ``jobs`` batches or more (given enough), each fitting ``room``."""
    if not indices:
        return []
    most = -(-len(indices) // jobs)
    result: list[list[int]] = [[]]
    used = 0
    for index in indices:
        size = len(os.fsencode(files[index])) + 1
        if result[-1] and (len(result[-1]) >= most or used + size > room):
            result.append([])
            used = 0
        result[-1].append(index)
        used += size
    return result


# -- the whole run ------------------------------------------------------------------------------


class PerFile:
    """Looks every file up, runs the stale ones in batches, stores and prints each file's result."""

    def __init__(
        self, options: argparse.Namespace, command: list[str], executable: str, cwd: str
    ) -> None:
        self.options = options
        self.command = command
        self.executable = executable
        self.cwd = cwd
        self.method = HASH if options.use_hashes or settings.always_hash() else MTIME
        self.explaining = bool(options.explain) or settings.debugging()
        self.notes: list[str] = []
        self.store = Store(options.stamp_directory, keep_in_memory=True)
        self.store.packs = True  # results filled from a remote at once go into one file
        self.store.exists()  # raises for an unusable cache directory before any work is done
        self.engine = Engine(self.store, self.notes.append if self.explaining else None)
        self.declared = key.abspaths(options.dependencies, cwd)
        # pre-commit reads both streams through one pipe or terminal: the linter then gets a
        # single pipe too, which keeps the exact order of its lines (two pipes cannot).
        self.fields, self.merged = key.command_fields(
            cwd, executable, self.method, command, self.declared, (), options.env
        )
        self.present = [path for path in self.declared if os.path.lexists(path)]
        self.declared_fingerprints: dict[str, Any] | None = None
        self.why_stale: dict[int, str] = {}  # files to run, unless the remote cache has them
        self.files: list[str] = []
        self.results: list[Payload | None] = []
        self.printed = 0
        # Lines of no file, by run; runs that printed the same ("All checks passed!") once.
        self.trailer: dict[tuple[Line, ...], None] = {}
        self.writer = Writer()
        self.cache_problem = ""
        # Stored failures whose status came from a run over several files (see _settle).
        self.shared: dict[int, Payload] = {}
        # Failed runs that named some files and not others: (named, not named) file indices.
        self.families: list[tuple[list[int], list[int]]] = []
        # The remote cache, once a local miss opened it, and the stale files as it knows them.
        self.layered: Layered | None = None
        self.remote_jobs: dict[int, Shared] = {}

    def job(self, file: str) -> Job:
        """Describe the job of checking one file; declared files that do not exist are left out.

        The engine compares the list of dependencies with the stored one, so creating or
        deleting a declared file re-runs.
        """
        return Job(
            key.command_key(["pre-commit-per-file-1", *self.fields, f"file:{file}"]),
            [*key.abspaths([file], self.cwd), *self.present],
            method=self.method,
            about=file,
        )

    def run(self, files: list[str]) -> int:
        """Check every file; write the results in the order of ``files``; return the status."""
        self.files = list(dict.fromkeys(files))
        self.results = [None] * len(self.files)
        try:
            return self._run()
        except UsageError as error:  # a remote URL or base directory that cannot work
            self._say()
            error_line(str(error))
            return 2
        except Exception as error:  # noqa: BLE001 - jobstamps must not fail the commit or build
            self._say()
            if isinstance(error, CacheDirectoryError):  # made unusable while in use
                error_line(f"{error}; checking the remaining files without the cache")
            else:
                error_line(
                    f"internal error ({error!r}); checking the remaining files without the "
                    f"cache. {_REPORT}"
                )
            rest = self.files[self.printed :]
            done = max((r["code"] for r in self.results[: self.printed] if r), key=abs, default=0)
            code = run_uncached(self.command, rest, self.executable) if rest else 0
            return code if abs(code) > abs(done) else done

    def _run(self) -> int:
        stale: list[int] = []
        recordings: dict[int, Any] = {}
        try:
            with self.store.batch():  # entries refreshed by replays: written together
                self._look_up(stale, recordings)
        except OSError:
            pass  # refreshed fingerprints not kept: those files are compared by content again
        if stale and (self.options.remote or os.environ.get("JOBSTAMPS_REMOTE")):
            stale = self._fill(stale, recordings)
        for index in stale:
            self._miss(index)
        self._flush()
        runs = self._run_stale(stale, recordings) if stale else 0
        self._seal_families(recordings)
        self._confirm_shared()
        runs += self._recheck_shared(stale, recordings)
        self._flush()
        self.store.flush_stats()
        if self.layered is not None:
            self.layered.close()
        if stale:
            self._trim()
        if self.explaining:
            self.notes.insert(
                0,
                f"{_count(len(self.files), 'file')}: {len(self.files) - len(stale)} replayed, "
                f"{len(stale)} ran in {_count(runs, 'run')}",
            )
            self._say()
        if self.cache_problem:
            error_line(f"results were not stored: {self.cache_problem}")
        for fd, data in (line for lines in self.trailer for line in lines):
            self.writer.write(fd, data)
        return max((r["code"] for r in self.results if r), key=abs, default=0)

    def _look_up(self, stale: list[int], recordings: dict[int, Any]) -> None:
        """Replay every file whose stored result is fresh; mark the others to run."""
        for index, file in enumerate(self.files):
            job = self.job(file)
            why = "a re-run was forced"
            if not self.options.force:
                why = self._replay(index, job)
                if not why:
                    continue
            # A miss is counted once the remote cache, if any, did not have it either.
            self._begin(index, job, why, stale, recordings, count=False)

    def _recheck_shared(self, stale: list[int], recordings: dict[int, Any]) -> int:
        """Settle the shared failures still held; return how many runs that took."""
        if not self.shared or any(result and result["code"] for result in self.results):
            for index, payload in self.shared.items():
                self._take_shared(index, payload)
            return 0
        # Nothing else fails: whether these do must be seen again, each without the files it
        # failed with (its messages may be warnings that fail no run).
        again: list[int] = []
        for index in self.shared:
            why = "its stored failure came from a run that other files failed too"
            self._begin(index, self.job(self.files[index]), why, again, recordings)
        stale += again
        return self._run_stale(again, recordings)

    def _seal_families(self, recordings: dict[int, Any]) -> None:
        """Mark the failures of a run as its own once the files it did not name all passed.

        The run failed, and not for the files it did not name: it would fail again over the
        files it named, so those may be replayed together without a run (see _share).
        """
        for named, silent in self.families:
            if all((self.results[i] or {"code": 1})["code"] == 0 for i in silent):
                token = os.urandom(8).hex()
                for index in named:
                    payload = {**(self.results[index] or {}), "shared": [token, len(named)]}
                    self.results[index] = payload
                    if not self.options.no_store_failures:
                        self.engine.commit(recordings[index], payload, trim=False)

    def _confirm_shared(self) -> None:
        """Take the shared failures of a run whose every file is replayed here: it stands."""
        groups: dict[str, list[int]] = {}
        for index, payload in self.shared.items():
            token, size = payload["shared"]
            if token:
                groups.setdefault(token, []).append(index)
                if len(groups[token]) == size:
                    for member in groups[token]:
                        self._take_shared(member, self.shared[member])
        for index in list(self.shared):
            if self.results[index] is not None:
                del self.shared[index]

    def _fill(self, stale: list[int], recordings: dict[int, Any]) -> list[int]:
        """Look every stale file up in the remote cache at once; return those still stale.

        A result found is stored locally for the file, with the fingerprints its remote key was
        computed from, and replayed from there like any local result. With ``--force`` nothing
        is looked up; the results stored are uploaded all the same.
        """
        from jobstamps import portable
        from jobstamps.storage.layered import Shared, open_layered
        from jobstamps.storage.remote import warn_if_visible

        options = self.options
        warn_if_visible(options.remote)
        self.layered = open_layered(
            self.engine, self.cwd, options.remote, options.remote_read_only, options.base_dir
        )
        if self.layered is None:
            return stale
        base = self.layered.base
        try:
            program = portable.program_fields(self.executable, self.cwd, base, self.store)
        except OSError as error:
            self.notes.append(f"not shared: the program cannot be read ({error.strerror})")
            return stale
        for index in stale:
            recording = recordings[index]
            job = recording.job
            digests = portable.dependency_digests(job.dependencies, recording.deps)
            if digests is None:
                continue
            remote_key = portable.command_key(
                program,
                base,
                self.cwd,
                [*self.command, self.files[index]],
                job.dependencies,
                digests,
                (),
                options.env,
                "-",
                self.merged,
                per_file=True,
            )
            self.remote_jobs[index] = Shared(job, remote_key, list(recording.deps), inline=True)
        if options.force:  # run them all; share what they store
            return stale
        filled = self.layered.fill(list(self.remote_jobs.values()))
        left = []
        for index in stale:
            shared = self.remote_jobs.get(index)
            if shared is None or shared.job.key not in filled or self._replay(index, shared.job):
                left.append(index)
            else:
                self.notes.append(f"replayed {self.files[index]} from the remote cache")
        return left

    def _upload(self, index: int, payload: Payload, deps: list[Any]) -> None:
        """Share a file's stored result, unless its failure was pinned on a whole batch."""
        shared = self.remote_jobs.get(index)
        if self.layered is not None and shared is not None and not payload.get("shared"):
            self.layered.upload(shared, deps, payload)

    def _take_shared(self, index: int, payload: Payload) -> None:
        """Replay a shared failure held until it was known to stand: a hit after all."""
        self.store.note(hit=True)
        self.results[index] = payload

    def _trim(self) -> None:
        """Keep the cache within its size limit, once for all the results stored."""
        try:
            if self.store.max_size:
                self.store.trim()
        except OSError as error:
            self.notes.append(f"the cache could not be trimmed ({error.strerror or error})")

    def _begin(
        self,
        index: int,
        job: Job,
        why: str,
        stale: list[int],
        recordings: dict[int, Any],
        count: bool = True,
    ) -> None:
        """Mark file ``index`` to run, fingerprinting its dependencies first.

        Without ``count``, the miss is counted and explained by :meth:`_miss`, once the remote
        cache did not have the file's result either.
        """
        stale.append(index)
        if count:
            self._say_running(index, why)
        else:
            self.why_stale[index] = why
        recordings[index] = self.engine.begin(job, self._declared_fingerprints(), count)

    def _miss(self, index: int) -> None:
        """Count and explain a miss held back by :meth:`_begin`."""
        self.store.note(hit=False)
        self._say_running(index, self.why_stale.pop(index, ""))

    def _say_running(self, index: int, why: str) -> None:
        if self.explaining:
            self.notes.append(f"running {self.files[index]}: {why}")

    def _declared_fingerprints(self) -> dict[str, Any]:
        """Fingerprint the declared files once for every file's job (directories: each time)."""
        if self.declared_fingerprints is None:
            self.declared_fingerprints = {}
            for path in self.present:
                found = fingerprint.record(path, self.method)
                if found is not None and not stat.S_ISDIR(found[5]):
                    self.declared_fingerprints[path] = found
        return self.declared_fingerprints

    def _replay(self, index: int, job: Job) -> str:
        """Take a stored result for file ``index`` if it is fresh; else return why not."""
        verdict = self.engine.check(job)
        if not verdict.fresh:
            return verdict.why
        assert verdict.entry is not None  # noqa: S101 - fresh verdicts carry their entry
        payload = verdict.entry["payload"]
        try:
            _check_payload(payload)
            self.engine.accept(job, verdict)
        except (ReplayError, OSError) as error:
            return f"the stored result cannot be replayed ({error})"
        if payload.get("shared") and payload["code"]:
            self.shared[index] = payload  # a hit once it is known to stand (_take_shared)
        else:
            self.store.note(hit=True)
            self.results[index] = payload
        return ""

    def _flush(self) -> None:
        """Write the results that are due: every file's, in order, up to the first still running."""
        while self.printed < len(self.files):
            result = self.results[self.printed]
            if result is None:
                return
            offset = 0
            for fd, size in result["chunks"]:
                self.writer.write(fd, result["data"][offset : offset + size])
                offset += size
            self.printed += 1

    def _say(self) -> None:
        for note in self.notes:
            error_line(note)
        self.notes.clear()

    # -- running the stale files ---------------------------------------------------------------

    def _run_stale(self, stale: list[int], recordings: dict[int, Any]) -> int:
        """Run the stale files in batches until each has a result; return how many runs it took."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        jobs = self.options.jobs
        room = _room(self.command)
        runs = 0
        with ThreadPoolExecutor(max_workers=min(jobs, len(stale))) as pool:
            running: dict[Future[Outcome | OSError], list[int]] = {}

            def start(batch: list[int]) -> None:
                running[pool.submit(self._capture, batch)] = batch

            try:
                for batch in batches(stale, self.files, jobs, room):
                    start(batch)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        batch = running.pop(future)
                        runs += 1
                        for again in self._settle_stored(batch, future.result(), recordings):
                            start(again)
                    self._flush()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return runs

    def _capture(self, batch: list[int]) -> Outcome | OSError:
        from jobstamps import runner

        argv = [*self.command, *(self.files[i] for i in batch)]
        try:
            return runner.run(
                argv,
                self.executable,
                self.cwd,
                b"",
                self.merged,
                None,
                relay=False,
                handle_signals=False,
            )
        except OSError as error:
            return error

    def _settle_stored(
        self, batch: list[int], outcome: Outcome | OSError, recordings: dict[int, Any]
    ) -> list[list[int]]:
        """:meth:`_settle`, with the results of a large run written together (one pack)."""
        again: list[list[int]] = []
        try:
            with self.store.batch():
                again = self._settle(batch, outcome, recordings)
        except OSError as error:
            self.cache_problem = f"the cache could not be written ({error.strerror or error})"
        return again

    def _settle(
        self, batch: list[int], outcome: Outcome | OSError, recordings: dict[int, Any]
    ) -> list[list[int]]:
        """Give the files of a finished run their results; return the batches to run again."""
        if isinstance(outcome, OSError):
            self._not_started(batch, outcome)
            return []
        lines = split_lines(outcome.chunks, outcome.data)
        code = outcome.exit_code
        if outcome.why_not_stored:  # a crash: nothing it printed can be trusted
            return self._crashed(batch, code, lines, outcome.why_not_stored)
        owned, unowned = attribute(lines, path_forms([self.files[i] for i in batch], self.cwd))
        silent = [index for position, index in enumerate(batch) if position not in owned]
        shared = _share(len(owned), len(batch), not silent)
        if code == 0 or not silent:
            for position, index in enumerate(batch):
                lines_of = owned.get(position, [])
                self._keep(index, _payload(code if lines_of else 0, lines_of, shared), recordings)
            self.trailer[tuple(unowned)] = None
            return []
        if len(batch) == 1:  # alone: its whole output and status are its result
            self._keep(batch[0], _payload(code, lines), recordings)
            return []
        for position, index in enumerate(batch):
            if position in owned:
                self._keep(index, _payload(code, owned[position], shared), recordings)
        if shared is not None:
            self.families.append(([batch[p] for p in owned], silent))
        self.notes.append(
            f"a run over {self._names(batch)} failed (exit status {code}) without naming "
            f"{_count(len(silent), 'file')}: running those again in smaller batches"
        )
        if len(silent) == len(batch):
            return _halves(batch)  # its lines will come again from the smaller runs
        self.trailer[tuple(unowned)] = None
        return [silent]

    def _crashed(self, batch: list[int], code: int, lines: list[Line], why: str) -> list[list[int]]:
        """Split a run killed by a signal in halves; a file that crashes alone keeps nothing."""
        if len(batch) == 1:
            self.results[batch[0]] = _payload(code, lines)
            self.notes.append(f"not stored: {why} ({self.files[batch[0]]})")
            return []
        self.notes.append(
            f"a run over {self._names(batch)} ended early ({why}): running them again in halves"
        )
        return _halves(batch)

    def _not_started(self, batch: list[int], error: OSError) -> None:
        """Say once that the command could not start; give its files the shell's status."""
        from jobstamps import runner

        code = runner.report_start_failure(self.command[0], error)
        for index in batch:
            self.results[index] = {"code": code, "chunks": [], "data": b""}

    def _names(self, batch: list[int]) -> str:
        more = ", ..." if len(batch) > 1 else ""
        return f"{_count(len(batch), 'file')} ({self.files[batch[0]]}{more})"

    def _keep(self, index: int, payload: Payload, recordings: dict[int, Any]) -> None:
        """Make ``payload`` file ``index``'s result, and store it unless told not to."""
        self.results[index] = payload
        file = self.files[index]
        if payload["code"] and self.options.no_store_failures:
            self.notes.append(
                f"not stored: it failed (exit status {payload['code']}) and "
                f"--no-store-failures is set ({file})"
            )
            return
        problem = self.engine.commit(recordings[index], payload, trim=False)
        if problem:
            self.notes.append(f"not stored: {problem} ({file})")
            if problem.startswith("the cache could not be written"):
                self.cache_problem = problem
        else:
            self._upload(index, payload, recordings[index].deps)


def _halves(batch: list[int]) -> list[list[int]]:
    half = len(batch) // 2
    return [batch[:half], batch[half:]]


def _check_payload(payload: Payload) -> None:
    """Raise :class:`ReplayError` unless ``payload`` is a whole stored result."""
    try:
        whole = sum(size for _, size in payload["chunks"]) == len(payload["data"])
        whole = whole and isinstance(payload["code"], int)
    except (KeyError, TypeError, ValueError):
        whole = False
    if not whole:
        raise ReplayError("the stored output is malformed")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
