"""Per-file scheduling: the stale files run in batches, and a run's output divided among them.

The stale files run together, as few large invocations as the argument-length limit and
``--jobs`` allow, and the output of each run is divided among its files by the rule in
:mod:`jobstamps.attribution`. A run whose failure cannot be pinned on its files is repeated
on smaller batches (bisection) until every file has a result from a run it can be trusted
from; a failure two runs over disjoint files share is no file's.
"""

from __future__ import annotations

import os

from jobstamps import fileresults, key
from jobstamps.attribution import anonymous, owners, path_forms, split_lines
from jobstamps.perfile.printing import count

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from concurrent.futures import Future
    from typing import Any

    from jobstamps.attribution import Line
    from jobstamps.fileresults import Payload
    from jobstamps.runner import Outcome
    from jobstamps.store import Store
    from jobstamps.trace.command import BatchTracer

__all__ = ["Scheduler", "batches", "run_uncached"]


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


class Scheduler:
    """Runs the stale files in batches until each has a result, and divides each run's output.

    ``files``, ``results`` and ``notes`` are the caller's lists, filled in place; each result
    a run gives a file goes to ``store_result``, which stores it and returns why it could not
    (``""``); ``before_error`` is called before a line is written to stderr directly.
    """

    def __init__(
        self,
        command: list[str],
        executable: str,
        cwd: str,
        merged: bool,
        tracer: BatchTracer | None,
        store: Store,
        jobs: int,
        files: list[str],
        results: list[Payload | None],
        notes: list[str],
        store_result: Callable[[int, Payload], str],
        before_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.command = command
        self.executable = executable
        self.cwd = cwd
        self.merged = merged
        self.tracer = tracer
        self.store = store
        self.jobs = jobs
        self.files = files
        self.results = results
        self.notes = notes
        self.store_result = store_result
        self.before_error = before_error
        #: Per file of a traced batch: its traced set, or None and why it cannot be stored.
        self.traced: dict[int, tuple[list[Any] | None, str]] = {}
        #: Each batch's traced set once stored, by the id of its entries: digest and size.
        self.stored_sets: dict[int, tuple[str, int]] = {}
        self.siblings: dict[tuple[int, ...], _Siblings] = {}
        # Failed runs that named some files and not others: (named, not named) file indices.
        self.families: list[tuple[list[int], list[int]]] = []
        self.cache_problem = ""

    def run(self, stale: list[int], tick: Callable[[bool], None], interval: float | None) -> int:
        """Run the stale files in batches until each has a result; return how many runs it took.

        ``tick`` is called after every wait: told whether a run finished (and results may be
        due for writing), every ``interval`` seconds at least (``None``: only when one did).
        """
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        jobs = self.jobs
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
                    done, _ = wait(running, interval, FIRST_COMPLETED)
                    for future in done:
                        batch = running.pop(future)
                        runs += 1
                        for again in self._settle_stored(batch, future.result()):
                            start(again)
                    tick(bool(done))
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

    def _settle_stored(self, batch: list[int], outcome: Outcome | OSError) -> list[list[int]]:
        """:meth:`_settle`, with the results of a large run written together (one pack)."""
        again: list[list[int]] = []
        try:
            with self.store.batch():
                again = self._settle(batch, outcome)
        except OSError as error:
            self.cache_problem = f"the cache could not be written ({error.strerror or error})"
        return again

    def _settle(self, batch: list[int], outcome: Outcome | OSError) -> list[list[int]]:
        """Give the files of a finished run their results; return the batches to run again."""
        group = self.siblings.pop(tuple(batch), None)
        if group is not None:
            group.pending -= 1
        again = self._judge(batch, outcome, group)
        if group is not None and not group.pending:  # no sibling left to fail alike
            for held, lines, owner_of, (code, _) in group.held:
                again += self._divide(held, code, lines, owner_of)
            group.held.clear()
        return again

    def _judge(
        self,
        batch: list[int],
        outcome: Outcome | OSError,
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
            return self._divide(batch, code, lines, owner_of)
        failure = (code, anonymous(lines, forms))
        if not failure[1].strip():  # silence is no evidence: bisect
            return self._divide(batch, code, lines, owner_of)
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
    ) -> list[list[int]]:
        """Store what a run says of each of its files; return the batches to run again."""
        named = sorted({owner for owner in owner_of if owner is not None})
        silent = [index for position, index in enumerate(batch) if position not in named]
        shared = _share(len(named), len(batch), not silent)
        if code == 0 or not silent:
            self._keep_run(batch, code, lines, owner_of, range(len(batch)), shared)
            return []
        if len(batch) == 1:  # alone: its whole output and status are its result
            self._keep(batch[0], fileresults.make(code, lines))
            return []
        self.notes.append(
            f"a run over {self._names(batch)} failed (exit status {code}) without naming "
            f"{count(len(silent), 'file')}: running those again in smaller batches"
        )
        if not named:
            return self._siblings(_halves(batch))  # its lines will come again from those runs
        self._keep_run(batch, code, lines, owner_of, named, shared)
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
    ) -> None:
        """Keep the results that a run gives its ``members`` (positions in ``batch``).

        With lines of no file, each result records the run (a token and how many files took
        their results from it) and where those lines were, to print them when every one of
        those files is written again together (:meth:`InOrder.flush`).
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
            self._keep(batch[position], payload)

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

        self.before_error()
        code = runner.report_start_failure(self.command[0], error)
        for index in batch:
            self.results[index] = {"code": code, "chunks": [], "data": b""}

    def _names(self, batch: list[int]) -> str:
        more = ", ..." if len(batch) > 1 else ""
        return f"{count(len(batch), 'file')} ({self.files[batch[0]]}{more})"

    def _keep(self, index: int, payload: Payload) -> None:
        """Make ``payload`` file ``index``'s result, and have it stored (with its traced set).

        A traced result names its batch's traced set (``traced_set``) in ``results`` too, so
        that one stored again later (a run's failures sealed) keeps it.
        """
        self.results[index] = payload
        if self.tracer is not None:
            traced, why = self.traced.get(index, (None, "its run was not traced"))
            if traced is None:
                self.notes.append(f"not stored: {why} ({self.files[index]})")
                return
            try:
                digest, size = self._stored_set(traced)
            except OSError as error:
                self.cache_problem = f"the cache could not be written ({error.strerror or error})"
                return
            payload = self.results[index] = {**payload, "traced_set": [digest, size]}
        problem = self.store_result(index, payload)
        if problem.startswith("the cache could not be written"):
            self.cache_problem = problem

    def _stored_set(self, traced: list[Any]) -> tuple[str, int]:
        """Store a batch's traced set once for all its files; return its digest and size."""
        found = self.stored_sets.get(id(traced))
        if found is None:
            from jobstamps.trace import shared

            found = self.stored_sets[id(traced)] = shared.put(self.store, traced)
        return found


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
