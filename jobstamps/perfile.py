"""Per-file caching at batch speed: ``jobstamp --per-file [OPTION...] -- COMMAND -- FILE...``.

Each FILE is a job of its own, ``COMMAND ARG... FILE``, depending on that file and the declared
configuration files, with an entry of its own. Unchanged files replay their stored messages;
the stale ones run together, as few large invocations as the argument-length limit and
``--jobs`` allow, and the output of each run is divided among its files by the rule in
:mod:`jobstamps.attribution` and kept in the form of :mod:`jobstamps.fileresults`. A run
whose failure cannot be pinned on its files is repeated on smaller batches (bisection) until
every file has a result from a run it can be trusted from; a failure two runs over disjoint
files share is no file's. The results are written in the order the files were given.
"""

from __future__ import annotations

import argparse
import os
import stat

from jobstamps import fileresults, fingerprint, key, settings
from jobstamps.attribution import anonymous, owners, path_forms, split_lines
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import CacheDirectoryError, JobstampsError, NotShareableError, UsageError
from jobstamps.options import TABLE, check_trace, env_name
from jobstamps.replay import Writer
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from concurrent.futures import Future
    from typing import Any

    from jobstamps.attribution import Line
    from jobstamps.fileresults import Payload
    from jobstamps.runner import Outcome
    from jobstamps.sharing import Shared, Sharing
    from jobstamps.trace.command import BatchTracer

__all__ = ["PerFile", "batches", "main", "parse"]

FORM = "[OPTION...] -- COMMAND [ARG...] -- FILE..."
#: Options that mean here what they mean to the command (:data:`jobstamps.options.TABLE`).
_AS_THE_COMMAND = (
    "--stamp-directory",
    "--no-store-failures",
    "--remote",
    "--remote-read-only",
    "--base-dir",
    "--show-key",
)
_CHANGING = "a dependency is missing, unreadable or changing"
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
    parser.add_argument("--trace", action="store_true", help=TABLE["--trace"][3])
    parser.add_argument(
        "--trace-ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help=TABLE["--trace-ignore"][3],
    )
    only = "with --per-file: "  # the option table's words for options of this mode only
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar=TABLE["--jobs"][2],
        help=TABLE["--jobs"][3].removeprefix(only),
    )
    parser.add_argument(
        "--summary", action="store_true", help=TABLE["--summary"][3].removeprefix(only)
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
    check_trace(options.trace, options.trace_ignore, options.show_key)
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
    executable = _executable(command, cwd)
    if isinstance(executable, int):
        return executable
    checker = (
        None
        if _uncached(options, command, files, cwd)
        else _checker(options, command, executable, cwd)
    )
    if checker is None:
        return run_uncached(command, files, executable)
    try:
        return checker.show(files) if options.show_key else checker.run(files)
    except KeyboardInterrupt:
        return 130


def _executable(command: list[str], cwd: str) -> str | int:
    """Return the program ``command`` runs, or the exit status that says it cannot run."""
    executable = key.resolve_executable(command[0], cwd, os.environ.get("PATH"))
    if executable is None:
        error_line(f"command not found: {command[0]}. Check its name and PATH")
        return 127
    if not os.access(executable, os.X_OK):
        error_line(f"cannot run {command[0]}: permission denied. Make it executable")
        return 126
    return executable


def _uncached(options: argparse.Namespace, command: list[str], files: list[str], cwd: str) -> bool:
    """Whether the files must be checked without the cache (nothing to key on, or no cache)."""
    if (not files or settings.disabled()) and not options.show_key:
        # No file names (pass_filenames: false, always_run): what it reads is unknown, so no cache.
        return True
    unkeyed = key.unfingerprintable([*command[1:], *options.dependencies, *files], cwd)
    if unkeyed is not None:  # read once, as is: a result keyed on it would lie
        if options.explain or settings.debugging():
            error_line(f"running without the cache: {unkeyed} is a pipe or a device")
        return True
    return False


def _checker(
    options: argparse.Namespace, command: list[str], executable: str, cwd: str
) -> PerFile | None:
    """Set up the per-file check, or say in one line why the cache cannot be used (``None``)."""
    try:
        return PerFile(options, command, executable, cwd)
    except JobstampsError as error:  # --trace where tracing cannot work
        error_line(f"{error}; running the command without the cache")
    except OSError as error:  # CacheDirectoryError, or a path the system cannot follow
        if not isinstance(error, CacheDirectoryError):
            error = CacheDirectoryError(
                f"cache directory {error.filename} cannot be used ({error.strerror or error})"
            )
        error_line(f"{error}; running the command without the cache")
    return None


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


# -- a run's output, divided among its files ---------------------------------------------------


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
        self.tracer: BatchTracer | None = None
        #: Per file of a traced batch: its traced set, or None and why it cannot be stored.
        self.traced: dict[int, tuple[list[Any] | None, str]] = {}
        if options.trace:
            from jobstamps.trace import key_fields
            from jobstamps.trace.command import BatchTracer

            self.fields += key_fields(options.trace_ignore)
            self.tracer = BatchTracer(cwd, self.engine, options.trace_ignore, self.method)
        self.declared_fingerprints: dict[str, Any] | None = None
        self.why_stale: dict[int, str] = {}  # files to run, unless the remote cache has them
        self.files: list[str] = []
        self.results: list[Payload | None] = []
        self.order: list[int] = []  # the files as given, a file given twice twice
        self.firsts: dict[int, int] = {}  # each file's first place in that order
        self.printed = 0  # how many of them were written
        # The summaries written ("All checks passed!"): runs that printed the same, once.
        self.tails: set[tuple[tuple[int, bytes], ...]] = set()
        self.siblings: dict[tuple[int, ...], _Siblings] = {}
        self.writer = Writer()
        self.cache_problem = ""
        # Stored failures whose status came from a run over several files (see _settle).
        self.shared: dict[int, Payload] = {}
        # Failed runs that named some files and not others: (named, not named) file indices.
        self.families: list[tuple[list[int], list[int]]] = []
        # The remote cache, once a local miss opened it, and the stale files as it knows them.
        self.layered: Sharing | None = None
        self.remote_jobs: dict[int, Shared] = {}

    def job(self, file: str) -> Job:
        """Describe the job of checking one file; declared files that do not exist are left out.

        The engine compares the list of dependencies with the stored one, so creating or
        deleting a declared file re-runs.
        """
        # 2: lines are divided by jobstamps.attribution; results divided by the rule before
        # it (a header kept with the file before it) are not replayed.
        return Job(
            key.command_key(["pre-commit-per-file-2", *self.fields, f"file:{file}"]),
            [*key.abspaths([file], self.cwd), *self.present],
            method=self.method,
            about=file,
        )

    def run(self, files: list[str]) -> int:
        """Check every file; write the results in the order of ``files``; return the status."""
        position = {file: index for index, file in enumerate(dict.fromkeys(files))}
        self.files = list(position)
        self.order = [position[file] for file in files]
        self.firsts = {index: place for place, index in reversed(list(enumerate(self.order)))}
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
            rest = [self.files[index] for index in self.order[self.printed :]]
            written = (self.results[index] for index in self.order[: self.printed])
            done = max((r["code"] for r in written if r), key=abs, default=0)
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
        remote = self.options.remote or os.environ.get("JOBSTAMPS_REMOTE")
        if stale and remote and self.tracer is None:  # traced results stay local
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
        if self.options.summary or settings.summary():
            error_line(f"{_count(len(self.files) - len(stale), 'file')} replayed, {len(stale)} ran")
        status = max((r["code"] for r in self.results if r), key=abs, default=0)
        problem = self.writer.problem()
        if problem:
            error_line(problem)
            return status or 1
        return status

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
            self.shared.clear()
            return 0
        # Nothing else fails: whether these do must be seen again, each without the files it
        # failed with (its messages may be warnings that fail no run).
        again: list[int] = []
        for index in self.shared:
            why = "its stored failure came from a run that other files failed too"
            self._begin(index, self.job(self.files[index]), why, again, recordings)
        self.shared.clear()
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
        from jobstamps.sharing import Shared, open_sharing

        options = self.options
        self.layered = open_sharing(
            self.engine, self.cwd, options.remote, options.remote_read_only, options.base_dir
        )
        if self.layered is None:
            return stale
        base = self.layered.base
        try:
            program = self._program(base)
        except NotShareableError as error:
            self.notes.append(f"not shared: {error}")
            return stale
        for index in stale:
            recording = recordings[index]
            parts = self._parts(program, base, index, recording.deps)
            if parts is not None:
                remote_key = portable.command_key(parts)
                job = recording.job
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

    def _program(self, base: str) -> list[tuple[str, str]]:
        """Identify the program for every file's remote key; raise :class:`NotShareableError`."""
        from jobstamps import portable

        try:
            return portable.program_parts(self.executable, self.cwd, base, self.store.memos)
        except OSError as error:
            raise NotShareableError(f"the program cannot be read ({error.strerror})") from None

    def _parts(
        self, program: list[tuple[str, str]], base: str, index: int, deps: list[Any]
    ) -> list[tuple[str, str]] | None:
        """Return the parts of file ``index``'s remote key; ``None`` if a dependency changed."""
        from jobstamps import portable

        job = self.job(self.files[index])
        digests = portable.dependency_digests(job.dependencies, deps)
        if digests is None:
            return None
        return portable.command_parts(
            program,
            base,
            self.cwd,
            [*self.command, self.files[index]],
            job.dependencies,
            digests,
            (),
            self.options.env,
            "-",
            self.merged,
            per_file=True,
        )

    def show(self, files: list[str]) -> int:
        """Write each file's remote key parts on stdout (``--show-key``); run nothing."""
        from jobstamps import portable

        self.files = list(dict.fromkeys(files))
        base = portable.base_directory(self.cwd, self.options.base_dir)
        try:
            program = self._program(base)
        except NotShareableError as error:
            os.write(1, f"not shared: {error}\n".encode("utf-8", "surrogateescape"))
            return 1
        code = 0
        for index, file in enumerate(self.files):
            job = self.job(file)
            deps = [fingerprint.record(path, job.method) for path in job.dependencies]
            parts = self._parts(program, base, index, deps)
            text = portable.show(parts) if parts is not None else f"not shared: {_CHANGING}\n"
            code = code if parts is not None else 1
            os.write(1, f"file {file}\n{text}".encode("utf-8", "surrogateescape"))
        return code

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
            fileresults.check(payload)
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
        """Write the results that are due: every file's, in order, up to the first still running.

        A result from a run whose every file is written now comes with that run's lines of no
        file, where they were (once, at a file's first place); else only with its own lines.
        """
        held = {payload["run"][0] for payload in self.shared.values() if "run" in payload}
        runs: dict[str, int] = {}
        for result in self.results:
            if result is not None and "run" in result:
                runs[result["run"][0]] = runs.get(result["run"][0], 0) + 1
        while self.printed < len(self.order):
            index = self.order[self.printed]
            result = self.results[index]
            if result is None or ("run" in result and result["run"][0] in held):
                return  # wait: its run's lines of no file depend on a result yet to come
            first = self.firsts[index] == self.printed
            token, size = result.get("run", ("", -1))
            whole = first and runs.get(token) == size
            for fd, data in fileresults.pieces(result, result.get("gaps", []) if whole else []):
                self.writer.write(fd, data)
            tail = tuple((fd, data) for fd, data in result.get("tail", [])) if whole else ()
            if tail and tail not in self.tails:
                self.tails.add(tail)
                for fd, data in tail:
                    self.writer.write(fd, data)
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
                for batch in self._siblings(batches(stale, self.files, jobs, room)):
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
            if self.tracer is not None:
                own = key.abspaths([self.files[i] for i in batch], self.cwd)
                outcome, entries, why = self.tracer.run(argv, self.cwd, self.merged, own)
                self.traced.update(dict.fromkeys(batch, (entries, why)))
                return outcome
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
        group = self.siblings.pop(tuple(batch), None)
        if group is not None:
            group.pending -= 1
        again = self._judge(batch, outcome, recordings, group)
        if group is not None and not group.pending:  # no sibling left to fail alike
            for held, lines, owner_of, (code, _) in group.held:
                again += self._divide(held, code, lines, owner_of, recordings)
            group.held.clear()
        return again

    def _judge(
        self,
        batch: list[int],
        outcome: Outcome | OSError,
        recordings: dict[int, Any],
        group: _Siblings | None,
    ) -> list[list[int]]:
        if isinstance(outcome, OSError):
            self._not_started(batch, outcome)
            return []
        lines = split_lines(outcome.chunks, outcome.data)
        code = outcome.exit_code
        if outcome.why_not_stored:  # a crash: nothing it printed can be trusted
            return self._crashed(batch, code, lines, outcome.why_not_stored)
        forms = path_forms([self.files[i] for i in batch], self.cwd)
        owner_of = owners(lines, forms)
        if group is None or not code or any(owner is not None for owner in owner_of):
            return self._divide(batch, code, lines, owner_of, recordings)
        failure = (code, anonymous(lines, forms))
        if not failure[1].strip():  # silence is no evidence: bisect
            return self._divide(batch, code, lines, owner_of, recordings)
        if group.failure == failure:
            self._not_a_files(batch, code, [])  # said once already
            return []
        twin = next((held for held in group.held if held[3] == failure), None)
        if twin is None:  # wait for a sibling that may fail alike
            group.held.append((batch, lines, owner_of, failure))
        else:
            group.held.remove(twin)
            group.failure = failure
            self._not_a_files(twin[0], code, twin[1])
            self._not_a_files(batch, code, [])
        return []

    def _divide(
        self,
        batch: list[int],
        code: int,
        lines: list[Line],
        owner_of: list[int | None],
        recordings: dict[int, Any],
    ) -> list[list[int]]:
        """Store what a run says of each of its files; return the batches to run again."""
        named = sorted({owner for owner in owner_of if owner is not None})
        silent = [index for position, index in enumerate(batch) if position not in named]
        shared = _share(len(named), len(batch), not silent)
        if code == 0 or not silent:
            self._keep_run(batch, code, lines, owner_of, range(len(batch)), shared, recordings)
            return []
        if len(batch) == 1:  # alone: its whole output and status are its result
            self._keep(batch[0], fileresults.make(code, lines), recordings)
            return []
        self.notes.append(
            f"a run over {self._names(batch)} failed (exit status {code}) without naming "
            f"{_count(len(silent), 'file')}: running those again in smaller batches"
        )
        if not named:
            return self._siblings(_halves(batch))  # its lines will come again from those runs
        self._keep_run(batch, code, lines, owner_of, named, shared, recordings)
        if shared is not None:
            self.families.append(([batch[p] for p in named], silent))
        return [silent]

    def _keep_run(
        self,
        batch: list[int],
        code: int,
        lines: list[Line],
        owner_of: list[int | None],
        members: Sequence[int],
        shared: list[Any] | None,
        recordings: dict[int, Any],
    ) -> None:
        """Keep the results that a run gives its ``members`` (positions in ``batch``).

        With lines of no file, each result records the run (a token and how many files took
        their results from it) and where those lines were, to print them when every one of
        those files is printed again together (:meth:`_flush`).
        """
        own, gaps, tail = fileresults.layout(lines, owner_of, members)
        run = [os.urandom(8).hex(), len(members)] if tail or any(gaps.values()) else None
        for position in members:
            payload = fileresults.make(code if own[position] else 0, own[position], shared)
            if run is not None:
                payload["run"] = run
            if gaps[position]:
                payload["gaps"] = gaps[position]
            if tail and position == members[-1]:
                payload["tail"] = [[fd, data] for fd, data in tail]
            self._keep(batch[position], payload, recordings)

    def _siblings(self, runs: list[list[int]]) -> list[list[int]]:
        """Remember that ``runs`` run side by side, over files no two of them share."""
        if len(runs) > 1:
            group = _Siblings(len(runs))
            for batch in runs:
                self.siblings[tuple(batch)] = group
        return runs

    def _not_a_files(self, batch: list[int], code: int, lines: list[Line]) -> None:
        """Give ``batch`` a failure that is no file's: shown once, stored for none."""
        for index in batch:
            self.results[index] = {"code": code, "chunks": [], "data": b""}
        if lines:
            self.results[batch[0]] = fileresults.make(code, lines)
            self.notes.append(
                f"runs over disjoint files failed alike (exit status {code}) without naming "
                "any: the failure is not a file's, so it is shown once and stored for none"
            )

    def _crashed(self, batch: list[int], code: int, lines: list[Line], why: str) -> list[list[int]]:
        """Split a run killed by a signal in halves; a file that crashes alone keeps nothing."""
        if len(batch) == 1:
            self.results[batch[0]] = fileresults.make(code, lines)
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
        if self.tracer is not None:
            traced, why = self.traced.get(index, (None, "its run was not traced"))
            if traced is None:
                self.notes.append(f"not stored: {why} ({file})")
                return
            payload = {**payload, "traced": traced}
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


class _Siblings:
    """Runs over disjoint files that ran side by side: a run's halves, or a first set of batches.

    Two of them that fail alike, file names aside, naming no file, fail for something other
    than their files (a configuration error): the failure is shown once and stored for none,
    instead of being bisected down to every single file.
    """

    def __init__(self, size: int) -> None:
        self.pending = size
        #: Runs that failed naming no file, waiting for a sibling: (batch, lines, owners, failure).
        self.held: list[tuple[list[int], list[Line], list[int | None], tuple[int, bytes]]] = []
        self.failure: tuple[int, bytes] | None = None  # the failure two of them shared


def _halves(batch: list[int]) -> list[list[int]]:
    half = len(batch) // 2
    return [batch[:half], batch[half:]]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
