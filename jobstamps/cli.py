"""The ``jobstamp`` command: run a command once, then replay its output while nothing changed.

``main`` is the entry point of the installed launcher and of ``python -m jobstamps``. A cache
hit must cost little more than starting Python, so options are parsed by hand
(:mod:`jobstamps.options`) and the runner is imported only on a miss.
"""

from __future__ import annotations

import os
import sys

from jobstamps.errors import (
    CacheDirectoryError,
    JobstampsError,
    NotShareableError,
    UsageError,
    one_line,
)
from jobstamps.options import USAGE, Options, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from jobstamps.engine import Engine, Job
    from jobstamps.sharing import Shared, Sharing
    from jobstamps.store import Store

__all__ = ["Options", "main", "parse"]

_REPORT = "Please report this bug with the command line and the output of jobstamp --version"


def _error(message: str, usage: bool = False) -> None:
    text = f"jobstamp: {one_line(message)}\n"
    if usage:
        text += USAGE + " (see jobstamp --help)\n"
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobstamp`` command line; return its exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--per-file" in args[: args.index("--") if "--" in args else None]:
        from jobstamps import perfile

        return perfile.main(args)
    try:
        options = parse(args)
        if options.actions():
            from jobstamps import admin

            return admin.run(options)
        return _Invocation(options).run()
    except UsageError as error:
        _error(str(error), usage=True)
        return 2
    except CacheDirectoryError as error:  # one the user chose: say why, with no usage text
        _error(str(error))
        return 2
    except JobstampsError as error:
        _error(str(error))
        return 1
    except KeyboardInterrupt:
        return 130


class _Invocation:
    """One run of a wrapped command through the cache."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.command: list[str] = options.command or []
        self.exit_code: int | None = None  # set once the command has run
        self.method = ""  # the fingerprint method, once chosen
        self.made = False  # whether a run made a result to store

    def run(self) -> int:
        try:
            os.getcwd()
        except OSError as error:
            _error(
                f"the working directory cannot be found ({error.strerror}), so the cache "
                "is not used. Run jobstamp from a directory that exists"
            )
            return _run_plain(self.command)
        try:
            return self._cached()
        except CacheDirectoryError as error:
            if self.exit_code is None and self.options.stamp_directory is not None:
                raise
            return self._uncached(error)
        except (JobstampsError, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - never fail a build for our own bug
            if self.exit_code is not None:
                _error(f"internal error after the command ran: {error!r}. {_REPORT}")
                return self.exit_code
            _error(f"internal error: {error!r}; running the command without the cache. {_REPORT}")
            return _run_plain(self.command)

    def _uncached(self, error: CacheDirectoryError) -> int:
        """Say in one line why the cache is not used; run the command if it has not run."""
        then = "the result was not stored" if self.exit_code is not None else "running without it"
        where = "" if self.options.stamp_directory else " (JOBSTAMPS_CACHE_DIR sets it)"
        if error.path:
            _error(f"cache {error.path} is unusable ({error.why}); {then}. {error.advice}{where}")
        else:
            _error(f"{error}; {then}{where}")
        if self.exit_code is not None:
            return self.exit_code
        return _run_plain(self.command)

    def _cached(self) -> int:
        from jobstamps import key, settings
        from jobstamps.engine import HASH, MTIME, Engine, Job
        from jobstamps.fingerprint import digest_bytes
        from jobstamps.store import Store

        options = self.options
        cwd = os.getcwd()
        executable = key.resolve_executable(self.command[0], cwd, os.environ.get("PATH"))
        if executable is None:
            if os.path.isdir(os.path.join(cwd, self.command[0])) and os.sep in self.command[0]:
                _error(f"cannot run {self.command[0]}: it is a directory. Name a program")
                return 126
            _error(f"command not found: {self.command[0]}. Check its name and PATH")
            return 127
        if not os.access(executable, os.X_OK):
            _error(f"cannot run {self.command[0]}: permission denied. Make it executable")
            return 126
        plain = self._without_cache(cwd)
        if plain is not None:
            return plain
        # An unusable or unsafe directory is refused by the engine before anything runs.
        store = Store(options.stamp_directory)
        method = HASH if options.use_hashes or settings.always_hash() else MTIME
        self.method = method
        deps = key.abspaths(options.dependencies, cwd)
        outputs = key.abspaths(options.output_files, cwd)
        stdin_data = _read_stdin() if options.stdin else None
        fields, merged = key.command_fields(
            cwd,
            executable,
            method,
            self.command,
            deps,
            outputs,
            options.env,
            digest_bytes(stdin_data) if stdin_data is not None else "-",
        )
        fields += _trace_fields(options)  # what a hit checks differs: another key
        job = Job(
            key.command_key(fields),
            deps,
            outputs,
            method,
            options.restore_outputs,
            lambda: _quoted(self.command),
            lambda: _why_new(store, fields),
        )
        engine = Engine(store, _say if options.explain or settings.debugging() else None)

        def compute() -> tuple[int, dict[str, Any] | None, list[tuple[str, int]]]:
            code, payload, blobs = self._execute(engine, executable, cwd, stdin_data, merged)
            if payload is not None:
                from jobstamps import explain

                self.made = True
                payload["fields"] = fields  # for explaining a later miss of this command line
                explain.remember(store, explain.slot_of(fields), job.key)
            return code, payload, blobs

        def replay(payload: dict[str, Any]) -> int:
            from jobstamps.replay import Writer
            from jobstamps.replay import replay as write_back

            writer = Writer()
            return _delivered(write_back(payload, store, writer), writer.problem())

        if self._shared():
            sharing = _Sharing(self, engine, cwd, executable, fields, merged, stdin_data)
            code = sharing.run(job, compute, replay)
        else:
            code = engine.run(job, compute, replay, force=options.force)
        self._warn_unwritable(store)
        self._note_unchecked(engine, store, job)
        return code

    def _without_cache(self, cwd: str) -> int | None:
        """Run the command plain where it cannot be cached (``None`` where it can)."""
        from jobstamps import settings

        uncached = self._why_uncached(cwd)
        if not uncached:
            return None
        if self.options.show_key:
            _error(f"{_quoted(self.command)} has no key: {uncached}")
            return 1
        if self.options.explain or settings.debugging():
            _say(f"running {_quoted(self.command)}: {uncached}")
        return _run_plain(self.command)

    def _why_uncached(self, cwd: str) -> str:
        """Say why the command must run without the cache; empty if it need not."""
        from jobstamps import key, settings

        if settings.disabled() and not self.options.show_key:  # a key is shown all the same
            return "caching is off (JOBSTAMPS_DISABLED is set)"
        named = [*self.command[1:], *self.options.dependencies, *self.options.output_files]
        unkeyed = key.unfingerprintable(named, cwd, stdin=not self.options.stdin)
        return f"{unkeyed} is a pipe or a device, so it is not cached" if unkeyed else ""

    def _note_unchecked(self, engine: Engine, store: Store, job: Job) -> None:
        """Say that no file is checked for this result: it replays until the key changes.

        Under ``--explain`` on every run and replay; else one hint when a run stored such a
        result and stderr is a terminal (captured output stays the command's own).
        """
        if job.dependencies or job.outputs or self.options.trace:
            return
        said = (
            "no file is checked for this result (no --dependencies, no --trace), so it is "
            "used again until the command line, the program or its environment changes"
        )
        if engine.explaining:
            engine.say(f"{said}. Add --trace to re-run it when a file it reads changes")
        elif self.made and not store.unwritable and os.isatty(2):
            _error(f"hint: {said}; add --trace to re-run it when a file it reads changes")

    def _shared(self) -> bool:
        """Whether a remote cache is asked for (checked by name: a hit imports nothing)."""
        options = self.options
        return bool(options.show_key or options.remote or os.environ.get("JOBSTAMPS_REMOTE"))

    def _warn_unwritable(self, store: Store) -> None:
        """Say that a run's result could not be stored (a replay loses nothing by it)."""
        if store.unwritable and self.exit_code is not None:
            where = "" if self.options.stamp_directory else " (JOBSTAMPS_CACHE_DIR sets it)"
            _error(
                f"cache {store.root} cannot be written ({store.unwritable}); the result was not "
                f"stored. {store.advice}{where}"
            )

    def _execute(
        self, engine: Engine, executable: str, cwd: str, stdin_data: bytes | None, merged: bool
    ) -> tuple[int, dict[str, Any] | None, list[tuple[str, int]]]:
        from jobstamps import runner

        self._warn_missing(cwd)
        traced: list[Any] | None = None
        try:
            if self.options.trace:
                from jobstamps.trace import command

                outcome, traced = command.run(
                    self.command,
                    cwd,
                    stdin_data,
                    merged,
                    engine,
                    self.options.trace_ignore,
                    self.method,
                )
                if outcome is None:
                    self.exit_code = _run_plain(self.command)
                    return self.exit_code, None, []
            else:
                outcome = runner.run(
                    self.command, executable, cwd, stdin_data, merged, engine.store
                )
        except OSError as error:
            self.exit_code = runner.report_start_failure(self.command[0], error)
            return self.exit_code, None, []
        self.exit_code = _delivered(outcome.exit_code, outcome.relay_error)
        why = outcome.why_not_stored
        if not why and self.options.no_store_failures and outcome.exit_code != 0:
            why = f"it failed (exit status {outcome.exit_code}) and --no-store-failures is set"
        if why:
            outcome.discard()
            engine.say(f"not stored: {why}")
            return self.exit_code, None, []
        try:
            blobs = outcome.keep()
        except OSError as error:
            outcome.discard()
            engine.say(f"not stored: the output could not be stored ({error.strerror})")
            return self.exit_code, None, []
        payload = outcome.payload()
        if traced is not None:
            payload["traced"] = traced
        return self.exit_code, payload, blobs

    def _warn_missing(self, cwd: str) -> None:
        """Say which declared dependency is missing: a result made without it never hits."""
        for given in self.options.dependencies:
            if not os.path.exists(os.path.join(cwd, given)):
                _error(
                    f"dependency {given} does not exist, so the result will not be replayed. "
                    "Create it or drop it from --dependencies"
                )


class _Sharing:
    """The remote cache behind one invocation: opened on a local miss, closed at the end."""

    def __init__(
        self,
        invocation: _Invocation,
        engine: Engine,
        cwd: str,
        executable: str,
        fields: list[str],
        merged: bool,
        stdin_data: bytes | None,
    ) -> None:
        self.options = invocation.options
        self.command = invocation.command
        self.engine = engine
        self.cwd = cwd
        self.executable = executable
        self.fields = fields
        self.merged = merged
        self.stdin_data = stdin_data
        self.opened = False
        self.layered: Sharing | None = None
        self.shared: Shared | None = None
        self.described: tuple[Job, list[Any]] | None = None  # what ``shared`` was worked out for

    def run(
        self,
        job: Job,
        compute: Callable[[], tuple[int, dict[str, Any] | None, list[tuple[str, int]]]],
        replay: Callable[[dict[str, Any]], int],
    ) -> int:
        """Run the job through the engine, with the remote behind the local cache.

        With ``--show-key``, show its remote key instead.
        """
        if self.options.show_key:
            return self.show(job)
        self.engine.fill, self.engine.stored = self.fill, self.stored
        try:
            return self.engine.run(job, compute, replay, force=self.options.force)
        finally:
            if self.layered is not None:
                self.layered.close()

    def _open(self) -> Sharing | None:
        """Open the remote (once), on the first local miss or stored run."""
        if not self.opened:
            from jobstamps.sharing import open_sharing
            from jobstamps.storage.remote import warn_if_visible

            self.opened = True
            options = self.options
            warn_if_visible(options.remote)
            self.layered = open_sharing(
                self.engine, self.cwd, options.remote, options.remote_read_only, options.base_dir
            )
        return self.layered

    def parts(self, job: Job, base: str, deps: list[Any]) -> list[tuple[str, str]]:
        """Work out the parts of ``job``'s remote key from the dependency fingerprints ``deps``.

        Raises :class:`NotShareableError`, saying why, for a result that is kept locally only.
        """
        from jobstamps import fingerprint, portable

        if job.outputs and not job.restore_outputs:
            raise NotShareableError("output files are shared only with --restore-outputs")
        outside = portable.first_outside(job.outputs, base)
        if outside is not None:
            raise NotShareableError(
                f"output file {outside} is outside the base directory {base} (--base-dir sets it)"
            )
        digests = portable.dependency_digests(job.dependencies, deps)
        if digests is None:
            raise NotShareableError("a dependency is missing, unreadable or changing")
        stdin = fingerprint.digest_bytes(self.stdin_data) if self.stdin_data is not None else "-"
        try:
            program = portable.program_parts(
                self.executable, self.cwd, base, self.engine.store.memos
            )
        except OSError as error:
            why = error.strerror or error
            raise NotShareableError(f"the program cannot be read ({why})") from None
        parts = portable.command_parts(
            program,
            base,
            self.cwd,
            self.command,
            job.dependencies,
            digests,
            job.outputs,
            self.options.env,
            stdin,
            self.merged,
        )
        traced = _trace_fields(self.options)  # a manifest of results, by their traced sets
        return parts + [(field, field) for field in traced]

    def show(self, job: Job) -> int:
        """Write the parts of ``job``'s remote key on stdout (``--show-key``); run nothing."""
        from jobstamps import fingerprint, portable

        base = portable.base_directory(self.cwd, self.options.base_dir)
        deps = [fingerprint.record(path, job.method) for path in job.dependencies]
        try:
            text = portable.show(self.parts(job, base, deps))
        except NotShareableError as error:
            text, code = f"not shared: {error}\n", 1
        else:
            code = 0
        os.write(1, text.encode("utf-8", "surrogateescape"))
        return code

    def _describe(self, job: Job, base: str, deps: list[Any]) -> Shared | None:
        """Describe ``job`` to the remote, from the dependency fingerprints ``deps``."""
        from jobstamps import portable
        from jobstamps.sharing import Shared

        self.described = (job, deps)
        try:
            remote_key = portable.command_key(self.parts(job, base, deps))
        except NotShareableError as error:
            self.engine.say(f"not shared: {error}")
            return None
        extra = {"fields": self.fields}
        return Shared(job, remote_key, deps, extra=extra, traced=self.options.trace)

    def fill(self, job: Job) -> bool:
        """Look the job up remotely; store a hit locally (replayed next by the engine)."""
        from jobstamps import fingerprint

        layered = self._open()
        if layered is None:
            return False
        deps = [fingerprint.record(path, job.method) for path in job.dependencies]
        self.shared = self._describe(job, layered.base, deps)
        if self.shared is None or job.key not in layered.fill([self.shared]):
            return False
        from jobstamps import explain

        # As for a run: a later miss of this command line can say what changed since.
        explain.remember(self.engine.store, explain.slot_of(self.fields), job.key)
        return True

    def stored(self, job: Job, deps: list[Any], payload: dict[str, Any]) -> None:
        """Upload a result just stored, keyed by the dependencies it was stored with."""
        layered = self._open()
        if layered is None or layered.remote.settings.read_only:
            return
        if self.described is None or self.described[0] is not job or self.described[1] != deps:
            self.shared = self._describe(job, layered.base, deps)  # --force, or changed since
        if self.shared is not None:
            layered.upload(self.shared, deps, payload)


def _delivered(code: int, problem: str) -> int:
    """Report output that could not be written; fail with the command's status, or 1."""
    if not problem:
        return code
    _error(problem)
    return code or 1


def _trace_fields(options: Options) -> list[str]:
    """Describe the tracing asked for, as fields of the key (none without ``--trace``)."""
    if not options.trace:
        return []
    from jobstamps.trace import key_fields

    return key_fields(options.trace_ignore)


def _why_new(store: Store, fields: list[str]) -> str:
    from jobstamps import explain

    return explain.why_new(store, explain.slot_of(fields), fields)


def _quoted(command: list[str]) -> str:
    from jobstamps.explain import shell_words

    return shell_words(command)


def _say(message: str) -> None:
    _error(message)


def _read_stdin() -> bytes:
    parts = []
    while True:
        try:
            block = os.read(0, 1 << 16)
        except OSError:
            break
        if not block:
            break
        parts.append(block)
    return b"".join(parts)


def _run_plain(command: list[str]) -> int:
    from jobstamps import runner

    return runner.run_plain(command)
