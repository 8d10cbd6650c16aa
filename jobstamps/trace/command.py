"""``jobstamp --trace``: run the command traced and turn what it used into the stored set.

Where tracing cannot work the command runs without the cache (the caller does that), after
one line on standard error saying why; a result whose trace cannot be trusted is not stored.
"""

from __future__ import annotations

from jobstamps.errors import say
from jobstamps.trace import paths, strace
from jobstamps.trace.parse import Ignore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from jobstamps.engine import Engine
    from jobstamps.runner import Outcome

__all__ = ["BatchTracer", "run"]


def run(
    argv: Sequence[str],
    cwd: str,
    stdin_data: bytes | None,
    merged: bool,
    engine: Engine,
    globs: Sequence[str],
    method: str,
) -> tuple[Outcome | None, list[paths.Entry] | None]:
    """Run ``argv`` traced; return its outcome and traced set (``None``: do not store it).

    ``(None, None)`` means it cannot be traced here: the caller runs it without the cache.
    """
    try:
        tracer = strace.find_strace(cwd)
    except strace.TraceUnavailableError as error:
        say(f"{error}; running the command without the cache")
        return None, None
    traced = strace.run(tracer, argv, cwd, stdin_data, merged, engine.store)
    outcome = traced.outcome
    if outcome.why_not_stored:
        if traced.left_behind:
            say(
                "the command left a process running in the background, whose reads cannot be "
                "traced to their end, so the result was not stored. Start background processes "
                "outside jobstamp --trace"
            )
        return outcome, None
    dropped = Ignore(globs, cwd, [engine.store.data])
    entries, why = paths.record(traced.access, method, traced.started_ns, dropped, dropped.globs)
    if why:
        outcome.why_not_stored = why
        return outcome, None
    engine.say(f"traced {len(entries)} paths the command used")
    return outcome, entries


class BatchTracer:
    """Trace the batches of ``--per-file --trace``.

    What a batch read outside its own files becomes a dependency of every file in it (each
    file is a dependency of its own result already). Raises
    :class:`~jobstamps.trace.strace.TraceUnavailableError` where tracing cannot work.
    """

    def __init__(self, cwd: str, engine: Engine, globs: Sequence[str], method: str) -> None:
        self.strace = strace.find_strace(cwd)
        self.store = engine.store
        self.dropped = Ignore(globs, cwd, [engine.store.data])
        self.method = method

    def run(
        self, argv: Sequence[str], cwd: str, merged: bool, own: Sequence[str]
    ) -> tuple[Outcome, list[paths.Entry] | None, str]:
        """Run one batch traced (output kept in memory, nothing relayed).

        Returns its outcome, and its traced set less the files ``own``, or ``None`` and why
        its results must not be stored (``""`` when the outcome says why).
        """
        traced = strace.run(self.strace, argv, cwd, b"", merged, self.store, in_memory=True)
        if traced.outcome.why_not_stored:
            return traced.outcome, None, ""
        skip = set(own)
        entries, why = paths.record(
            traced.access,
            self.method,
            traced.started_ns,
            lambda path: path in skip or self.dropped(path),
            self.dropped.globs,
        )
        return traced.outcome, (None if why else entries), why
