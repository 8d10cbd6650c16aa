"""Per-file checking: each file's stored result looked up, replayed or run, and stored.

Each FILE is a job of its own, ``COMMAND ARG... FILE``, depending on that file and the declared
configuration files, with an entry of its own. Unchanged files replay their stored messages;
the stale ones run in batches (:mod:`jobstamps.perfile.schedule`), and the results are
written in the order the files were given (:mod:`jobstamps.perfile.printing`).
"""

from __future__ import annotations

import os
import stat

from jobstamps import fileresults, fingerprint, key, settings
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import CacheDirectoryError, UsageError
from jobstamps.perfile.printing import InOrder, count, error_line
from jobstamps.perfile.remote import Remote
from jobstamps.perfile.schedule import Scheduler, run_uncached
from jobstamps.progress import EVERY, Progress
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from jobstamps.fileresults import Payload
    from jobstamps.trace.command import BatchTracer

__all__ = ["PerFile"]

_REPORT = "Please report this bug with the command line and the output of jobstamp --version"


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
        if options.trace:
            from jobstamps.trace import key_fields
            from jobstamps.trace.command import BatchTracer

            self.fields += key_fields(options.trace_ignore)
            self.tracer = BatchTracer(cwd, self.engine, options.trace_ignore, self.method)
            self.engine.traced_sets = {}  # each batch's set checked once for all its files
        self.declared_fingerprints: dict[str, Any] | None = None
        self.why_stale: dict[int, str] = {}  # files to run, unless the remote cache has them
        self.files: list[str] = []  # each file once, in the order given
        self.results: list[Payload | None] = []
        self.recordings: dict[int, Any] = {}  # the stale files' jobs, begun
        self.progress = Progress()
        self.printer = InOrder(self.progress.clear)
        self.stale: list[int] = []  # the files to run (or that ran)
        self.scheduler = Scheduler(
            command,
            executable,
            cwd,
            self.merged,
            self.tracer,
            self.store,
            options.jobs,
            self.files,
            self.results,
            self.notes,
            self._store,
            self.progress.clear,
        )
        # Stored failures whose status came from a run over several files (see Scheduler).
        self.shared: dict[int, Payload] = {}
        # The remote cache, once a local miss opened it, and the stale files as it knows them.
        self.remote = Remote(options, command, executable, cwd, self.merged, self.job, self.store)

    def job(self, file: str) -> Job:
        """Describe the job of checking one file; declared files that do not exist are left out.

        The engine compares the list of dependencies with the stored one, so creating or
        deleting a declared file re-runs.
        """
        # 2: lines are divided by jobstamps.attribution; results divided by the rule before
        # it (a header kept with the file before it) are not replayed. 3, traced: the batch's
        # traced set is stored once and named by each result, which versions before did not
        # check.
        version = "pre-commit-per-file-3" if self.tracer else "pre-commit-per-file-2"
        return Job(
            key.command_key([version, *self.fields, f"file:{file}"]),
            [*key.abspaths([file], self.cwd), *self.present],
            method=self.method,
            about=file,
        )

    def run(self, files: list[str]) -> int:
        """Check every file; write the results in the order of ``files``; return the status."""
        self.files.extend(self.printer.take(files))
        self.results.extend([None] * len(self.files))
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
            printed, order = self.printer.printed, self.printer.order
            rest = [self.files[index] for index in order[printed:]]
            written = (self.results[index] for index in order[:printed])
            done = max((r["code"] for r in written if r), key=abs, default=0)
            code = run_uncached(self.command, rest, self.executable) if rest else 0
            return code if abs(code) > abs(done) else done
        finally:
            self.progress.close()  # interrupted

    def _run(self) -> int:
        stale = self.stale
        try:
            with self.store.batch():  # entries refreshed by replays: written together
                self._look_up(stale)
        except OSError:
            pass  # refreshed fingerprints not kept: those files are compared by content again
        remote = self.options.remote or os.environ.get("JOBSTAMPS_REMOTE")
        if stale and remote and self.tracer is None:  # traced results stay local
            self.progress.clear()  # the remote cache may have something to say
            stale = self.stale = self.remote.fill(
                self.engine, self.files, stale, self.recordings, self.notes, self._replay
            )
        for index in stale:
            self._miss(index)
        self._flush()
        runs = self._run_stale(stale) if stale else 0
        self._seal_families()
        self._confirm_shared()
        runs += self._recheck_shared(stale)
        self._flush()
        self.progress.close()
        self.store.flush_stats()
        self.remote.close()
        if stale:
            self._trim()
        if self.explaining:
            self.notes.insert(
                0,
                f"{count(len(self.files), 'file')}: {len(self.files) - len(stale)} replayed, "
                f"{len(stale)} ran in {count(runs, 'run')}",
            )
            self._say()
        if self.scheduler.cache_problem:
            error_line(f"results were not stored: {self.scheduler.cache_problem}")
        if self.options.summary or settings.summary():
            error_line(f"{count(len(self.files) - len(stale), 'file')} replayed, {len(stale)} ran")
        status = max((r["code"] for r in self.results if r), key=abs, default=0)
        problem = self.printer.writer.problem()
        if problem:
            error_line(problem)
            return status or 1
        return status

    def _look_up(self, stale: list[int]) -> None:
        """Replay every file whose stored result is fresh; mark the others to run."""
        for index, file in enumerate(self.files):
            if self.progress.due():
                self._show(index - len(stale), 0)
            job = self.job(file)
            why = "a re-run was forced"
            if not self.options.force:
                why = self._replay(index, job)
                if not why:
                    continue
            # A miss is counted once the remote cache, if any, did not have it either.
            self._begin(index, job, why, stale, count=False)

    def _recheck_shared(self, stale: list[int]) -> int:
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
            self._begin(index, self.job(self.files[index]), why, again)
        self.shared.clear()
        stale += again
        return self._run_stale(again)

    def _seal_families(self) -> None:
        """Mark the failures of a run as its own once the files it did not name all passed.

        The run failed, and not for the files it did not name: it would fail again over the
        files it named, so those may be replayed together without a run (see
        :func:`jobstamps.perfile.schedule._share`).
        """
        for named, silent in self.scheduler.families:
            if all((self.results[i] or {"code": 1})["code"] == 0 for i in silent):
                token = os.urandom(8).hex()
                for index in named:
                    payload = {**(self.results[index] or {}), "shared": [token, len(named)]}
                    self.results[index] = payload
                    # A traced result whose batch's reads are not known was not stored.
                    untraced = self.tracer is not None and "traced_set" not in payload
                    if not self.options.no_store_failures and not untraced:
                        blobs = _blobs(payload)
                        self.engine.commit(self.recordings[index], payload, blobs, trim=False)

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

    def show(self, files: list[str]) -> int:
        """Write each file's remote key parts on stdout (``--show-key``); run nothing."""
        return self.remote.show(list(dict.fromkeys(files)))

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
        self.recordings[index] = self.engine.begin(job, self._declared_fingerprints(), count)

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
        """Write the results that are due; a shared failure held back holds its run's files."""
        held = {payload["run"][0] for payload in self.shared.values() if "run" in payload}
        self.printer.flush(self.results, held)

    def _run_stale(self, stale: list[int]) -> int:
        """Run the stale files until each has a result; return how many runs it took."""
        return self.scheduler.run(stale, self._tick, EVERY if self.progress.on else None)

    def _tick(self, finished: bool) -> None:
        """Write the results a finished run made due; show the progress when it is due."""
        if finished:
            self._flush()
        if self.progress.due():
            ran = sum(self.results[index] is not None for index in self.stale)
            self._show(len(self.files) - len(self.stale), ran)

    def _show(self, replayed: int, ran: int) -> None:
        """Show how many files are done, unless a line written is still open."""
        if not self.printer.open_line:
            self.progress.draw(
                f"jobstamp: {replayed + ran}/{len(self.files)} files done "
                f"({replayed} replayed, {ran} ran)"
            )

    def _store(self, index: int, payload: Payload) -> str:
        """Store file ``index``'s result unless told not to; return why it could not be."""
        file = self.files[index]
        if payload["code"] and self.options.no_store_failures:
            self.notes.append(
                f"not stored: it failed (exit status {payload['code']}) and "
                f"--no-store-failures is set ({file})"
            )
            return ""
        problem = self.engine.commit(self.recordings[index], payload, _blobs(payload), trim=False)
        if problem:
            self.notes.append(f"not stored: {problem} ({file})")
        else:
            self.remote.upload(index, payload, self.recordings[index].deps)
        return problem

    def _say(self) -> None:
        self.progress.close()
        for note in self.notes:
            error_line(note)
        self.notes.clear()


def _blobs(payload: Payload) -> list[tuple[str, int]]:
    """List the blobs a result needs: the traced set of its batch, if it names one."""
    shared = payload.get("traced_set")
    return [(str(shared[0]), int(shared[1]))] if shared else []
