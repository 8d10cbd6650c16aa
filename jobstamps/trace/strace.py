"""Run a command under ``strace`` and read back what it used (see :mod:`.parse`).

The trace goes to a file of its own (``-o``), so the command's output and exit status reach
the runner exactly as without it; strace exits as the command did. ``--seccomp-bpf`` stops
the command only on the traced calls, ``-y`` names the file behind every descriptor, ``-xx``
writes every name in hexadecimal so no byte of it is ambiguous, and ``-q`` keeps attach and
detach chatter out while each process's end is still logged.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from jobstamps import key, runner
from jobstamps.errors import JobstampsError
from jobstamps.trace.parse import SYSCALLS, Access, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from jobstamps.store import Store

__all__ = ["FLAGS", "TraceUnavailableError", "Traced", "run"]

#: ``?`` before each call: one an architecture lacks (``open`` on arm64) is left out, not
#: an error.
FLAGS = (
    "-f",
    "--seccomp-bpf",
    "-y",
    "-q",
    "-xx",
    "-e",
    "signal=none",
    "-e",
    "trace=" + ",".join("?" + name for name in SYSCALLS.split(",")),
)

#: How long processes the command started may outlive it before they count as left behind.
GRACE_S = 0.5
_POLL_S = 0.05


class TraceUnavailableError(JobstampsError):
    """The command cannot be traced here: no strace, or strace cannot trace."""


class Traced:
    """A traced run: how it ended, what it used, when it started, and what went wrong."""

    def __init__(
        self, outcome: runner.Outcome, access: Access, started_ns: int, left_behind: bool
    ) -> None:
        self.outcome = outcome
        self.access = access
        self.started_ns = started_ns
        self.left_behind = left_behind


def find_strace(cwd: str) -> str:
    """Return the strace to use; raise :class:`TraceUnavailableError` when it cannot trace."""
    path = os.environ.get("PATH")
    strace = key.resolve_executable("strace", cwd, path)
    if strace is None:
        raise TraceUnavailableError(
            "--trace needs strace, which is not on PATH. Install it (apt-get install strace)"
        )
    probe = key.resolve_executable("true", cwd, path) or "/bin/true"
    try:
        done = subprocess.run(
            [strace, *FLAGS, "-o", os.devnull, "--", probe],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TraceUnavailableError(
            f"strace ({strace}) cannot be run ({error}). Check the installation of strace"
        ) from error
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = said[0] if said else f"exit status {done.returncode}"
        raise TraceUnavailableError(
            f"strace ({strace}) cannot trace here ({why}). Allow ptrace (e.g. a container's "
            "--cap-add=SYS_PTRACE) or leave out --trace"
        )
    return strace


class _Watch:
    """Notice a command that exits while processes it started keep running (a daemon).

    strace waits for every process it traces, so such a command would keep jobstamp waiting
    as long as its daemon lives. Once the command itself has ended and something is still
    traced :data:`GRACE_S` later, jobstamp stops waiting (strace traces the rest to its end).
    """

    def __init__(self, log: str) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_r, self.stop_w = os.pipe()
        self.done = threading.Event()
        self.left_behind = False
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def started(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.proc is not None:
            self._thread.join()
        os.close(self.stop_r)
        os.close(self.stop_w)

    def _watch(self) -> None:
        first = b""
        ended_at = 0.0
        rest = b""
        with open(self.log, "rb") as handle:
            while not self.done.wait(_POLL_S):
                if not ended_at:
                    *lines, rest = (rest + handle.read()).split(b"\n")
                    for line in lines:
                        pid, _, call = line.partition(b" ")
                        first = first or pid
                        if pid == first and call.lstrip().startswith(b"+++ "):
                            ended_at = time.monotonic()
                elif time.monotonic() - ended_at > GRACE_S:
                    # strace keeps tracing what is left (letting go would make the calls a
                    # seccomp filter stops fail with ENOSYS): only jobstamp stops waiting.
                    self.left_behind = True
                    os.write(self.stop_w, b"x")
                    return


def run(
    strace: str,
    argv: Sequence[str],
    cwd: str,
    stdin_data: bytes | None,
    merged: bool,
    store: Store,
    in_memory: bool = False,
) -> Traced:
    """Run ``argv`` under ``strace`` as :func:`jobstamps.runner.run` runs it; parse the trace.

    ``in_memory`` keeps the whole output in memory and relays none of it, and leaves signals
    alone (a per-file batch, run in a thread of its own).
    """
    log = store.temp_path()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        watch = _Watch(log)
        started_ns = time.time_ns()
        try:
            outcome = runner.run(
                [strace, *FLAGS, "-o", log, "--", *argv],
                strace,
                cwd,
                stdin_data,
                merged,
                None if in_memory else store,
                relay=not in_memory,
                handle_signals=not in_memory,
                started=watch.started,
                stop=watch.stop_r,
            )
        finally:
            watch.stop()
        with open(log, encoding="ascii", errors="surrogateescape") as handle:
            access = parse(handle, cwd)
    finally:
        try:
            os.unlink(log)
        except OSError:
            pass
    _add_interpreters(access)
    _judge(outcome, access, watch.left_behind)
    return Traced(outcome, access, started_ns, watch.left_behind)


def _judge(outcome: runner.Outcome, access: Access, left_behind: bool) -> None:
    """Take the command's own exit status from the trace, and say when it cannot be stored."""
    end = access.exits.get(access.first, "")
    if left_behind:
        if end.startswith("exited with "):
            outcome.exit_code = int(end.removeprefix("exited with ").split()[0])
        outcome.why_not_stored = outcome.why_not_stored or (
            "the command left a process running in the background, so what it reads was not "
            "traced to its end"
        )
    elif not end and not outcome.why_not_stored:
        outcome.why_not_stored = "the trace of the command is incomplete"


def _add_interpreters(access: Access) -> None:
    """Add the interpreter of each script run (its ``#!`` line): the kernel reads it unseen."""
    for program in list(access.executed):
        path, seen = program, {program}
        while True:
            try:
                with open(path, "rb") as handle:
                    head = handle.read(256)
            except OSError:
                break
            if not head.startswith(b"#!"):
                break
            words = os.fsdecode(head[2:].partition(b"\n")[0]).split()
            if not words or not words[0].startswith("/") or words[0] in seen:
                break
            path = words[0]
            seen.add(path)
            access.read.setdefault(path)
