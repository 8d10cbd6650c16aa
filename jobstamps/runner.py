"""Run a wrapped command: relay its output live while recording it, then classify how it ended.

Output is read from pipes as it comes, written straight to this process's own stdout and
stderr, and recorded as a list of ``(stream, size)`` chunks plus their bytes, so a replay
can repeat both the streams and their interleaving. When stdout and stderr lead to the same
place (a terminal, ``2>&1``, a build tool's log pipe) the command gets a single channel for
both, which keeps their order exact; where they are a terminal, that channel is a terminal
too. Large output is spilled to a temporary file in the cache instead of being held in
memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from jobstamps.fingerprint import blake2b
from jobstamps.replay import Writer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType
    from typing import Any

    from jobstamps.store import Store

__all__ = ["Outcome", "report_start_failure", "run", "run_plain"]

#: Output up to this size is stored inside the entry; more goes to a blob.
INLINE_LIMIT = 64 * 1024
_READ = 64 * 1024


class Outcome:
    """How a run ended, and what it printed.

    Output larger than :data:`INLINE_LIMIT` waits in a temporary file in the cache until the
    caller decides: :meth:`keep` makes it a blob for an entry, :meth:`discard` removes it.
    """

    def __init__(self, store: Store | None) -> None:
        self.exit_code = 0
        self.why_not_stored = ""  # empty when the result says something about the inputs
        self.relay_error = ""  # why the output could not be relayed to our own stdout/stderr
        self.chunks: list[tuple[int, int]] = []
        self.data = b""  # the output, when it fits inline
        self.spilled: tuple[str, str, int] | None = None  # (temporary path, digest, size)
        self.blob: tuple[str, int] | None = None  # (digest, size) once kept
        self._store = store

    def add_chunk(self, stream: int, size: int) -> None:
        """Note that ``size`` more bytes came on ``stream`` (1 or 2)."""
        if self.chunks and self.chunks[-1][0] == stream:
            self.chunks[-1] = (stream, self.chunks[-1][1] + size)
        else:
            self.chunks.append((stream, size))

    def keep(self) -> list[tuple[str, int]]:
        """Move spilled output into the cache as a blob; return the blobs the payload needs."""
        if self.spilled is None or self._store is None:
            return []
        tmp, digest, size = self.spilled
        self._store.adopt_blob(tmp, digest)
        self.spilled, self.blob = None, (digest, size)
        return [self.blob]

    def discard(self) -> None:
        """Remove spilled output that will not be stored."""
        if self.spilled is not None:
            try:
                os.unlink(self.spilled[0])
            except OSError:
                pass
            self.spilled = None

    def payload(self) -> dict[str, object]:
        """Return the entry payload for this outcome (after :meth:`keep`)."""
        payload: dict[str, object] = {"code": self.exit_code, "chunks": self.chunks}
        if self.blob:
            payload["blob"] = self.blob[0]
        else:
            payload["data"] = self.data
        return payload


class _Recorder:
    """Collects output in memory, spilling to a temporary file in the cache when it grows."""

    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._parts: list[bytes] = []
        self._size = 0
        self._fd = -1
        self._tmp = ""
        self._hasher = blake2b(digest_size=20)
        self.failed = ""

    def add(self, data: bytes) -> None:
        if self.failed:
            return
        self._size += len(data)
        self._hasher.update(data)
        if self._fd < 0:
            self._parts.append(data)
            if self._size <= INLINE_LIMIT or self._store is None:
                return
            try:
                self._tmp = self._store.temp_path()
                self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as error:
                self.failed = f"the output could not be spilled to the cache ({error.strerror})"
                self._parts = []
                return
            data, self._parts = b"".join(self._parts), []
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:
            self.failed = f"the output could not be spilled to the cache ({error.strerror})"
            self.discard()

    def finish(self, outcome: Outcome) -> None:
        """Hand the recording to ``outcome``: inline bytes, or the spilled file."""
        if self._fd < 0:
            outcome.data = b"".join(self._parts)
            return
        os.close(self._fd)
        self._fd = -1
        outcome.spilled = (self._tmp, self._hasher.hexdigest(), self._size)

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = ""


class _Signals:
    """While the command runs, note signals sent to jobstamp and pass them on to the command.

    The terminal already sends ^C to the whole foreground process group, so SIGINT is only
    noted; SIGTERM and SIGHUP are forwarded so the command can clean up.
    """

    def __init__(self, active: bool) -> None:
        self.received: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Any] = {}
        self._active = active

    def __enter__(self) -> _Signals:  # noqa: PYI034 - typing.Self would import typing
        if not self._active:
            return self
        names = ("SIGINT", "SIGTERM", "SIGHUP")
        for signum in (getattr(signal, name) for name in names if hasattr(signal, name)):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.proc is not None and signum != signal.SIGINT:
            try:
                self.proc.send_signal(signum)
            except OSError:
                pass


def run(
    argv: Sequence[str],
    executable: str,
    cwd: str,
    stdin_data: bytes | None,
    merged: bool,
    store: Store | None,
    relay: bool = True,
    handle_signals: bool = True,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    stop: int | None = None,
) -> Outcome:
    """Run ``argv`` (``executable`` is the resolved ``argv[0]``) and record what it prints.

    ``relay`` writes the output live to this process's stdout and stderr as well;
    ``handle_signals`` (main thread only) notes and forwards signals sent to this process;
    ``started`` is given the process once it runs. Once the descriptor ``stop`` is readable
    (the caller knows the command has ended, and its output was read meanwhile) the pipes and
    the process are no longer waited for, and the exit status reads 0: the caller knows it.
    Without a ``store`` the whole output is kept in memory.
    """
    outcome = Outcome(store)
    recorder = _Recorder(store)
    out_r, out_w = _channel(1)
    err_r, err_w = (out_r, out_w) if merged else _channel(2)
    readers = {out_r: 1} if merged else {out_r: 1, err_r: 2}
    with _Signals(handle_signals) as signals:
        try:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    executable=executable,
                    cwd=cwd,
                    stdin=subprocess.PIPE if stdin_data is not None else None,
                    stdout=out_w,
                    stderr=err_w,
                    close_fds=False,  # see run_plain
                )
            finally:
                for fd in {out_w, err_w}:
                    os.close(fd)
            signals.proc = proc
            if started is not None:
                started(proc)
            pending = memoryview(stdin_data or b"")
            stopped = _pump(proc, readers, pending, outcome, recorder, relay, stop)
            returncode = 0 if stopped else proc.wait()
        except BaseException:
            recorder.discard()
            raise
        finally:
            for fd in readers:
                os.close(fd)
    _classify(outcome, returncode, signals.received)
    if recorder.failed:
        outcome.why_not_stored = outcome.why_not_stored or recorder.failed
    else:
        recorder.finish(outcome)
    return outcome


def _channel(fd: int) -> tuple[int, int]:
    """Return ``(read end, write end)`` for the command's side of our ``fd``.

    Where ``fd`` is a terminal the command gets a terminal too (a pseudo-terminal the size of
    ours), so tools that colour or lay out their output for terminals do so as without
    jobstamp; elsewhere it gets a pipe.
    """
    if not os.isatty(fd):
        return os.pipe()
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        # Our terminal's settings, but no output processing: our terminal does that once,
        # when the bytes reach it, so they are recorded exactly as the command wrote them.
        attributes = termios.tcgetattr(fd)
        attributes[1] &= ~termios.OPOST
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
    except (OSError, termios.error):
        pass
    return master, slave


def _pump(  # noqa: C901 - one loop over every source of events
    proc: subprocess.Popen[bytes],
    readers: dict[int, int],
    pending: memoryview,
    outcome: Outcome,
    recorder: _Recorder,
    relay: bool,
    stop: int | None = None,
) -> bool:
    """Relay and record output until every pipe closes, feeding stdin as the command reads.

    A pipe closed here is removed from ``readers``. Returns whether ``stop`` ended it.
    """
    import selectors

    writer = Writer()
    with selectors.DefaultSelector() as selector:
        for fd, stream in readers.items():
            selector.register(fd, selectors.EVENT_READ, stream)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin, selectors.EVENT_WRITE, 0)
        if stop is not None:
            selector.register(stop, selectors.EVENT_READ, -1)
        open_streams = len(readers)
        while open_streams > 0:
            for key, _ in selector.select():
                if key.data == -1:
                    open_streams = -1  # after the rest of this round
                    continue
                if key.data == 0:
                    pending = _feed(proc, selector, pending)
                    continue
                data = _read(key.fd)
                if not data:
                    selector.unregister(key.fd)
                    open_streams -= 1
                    continue
                if relay:
                    writer.write(key.data, data)
                    if key.data in writer.broken:
                        # Our reader went away (``| head``): so does the command's, as it
                        # would without jobstamp, and the command gets SIGPIPE.
                        # What it printed is incomplete now: never stored.
                        selector.unregister(key.fd)
                        del readers[key.fd]
                        os.close(key.fd)
                        open_streams -= 1
                        outcome.why_not_stored = "jobstamp's own output was closed early"
                        continue
                recorder.add(data)
                outcome.add_chunk(key.data, len(data))
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    # The recording is complete all the same (the command's pipe stayed open), so the result
    # is stored; the caller reports the failure and exits non-zero.
    outcome.relay_error = writer.problem()
    return open_streams < 0


def _read(fd: int) -> bytes:
    """Read what is there; ``b""`` at the end (a terminal whose last writer left says EIO)."""
    try:
        return os.read(fd, _READ)
    except OSError:
        return b""


def _feed(proc: subprocess.Popen[bytes], selector: object, pending: memoryview) -> memoryview:
    """Write what the command's stdin pipe takes now; close it when all is written."""
    assert proc.stdin is not None  # noqa: S101 - registered only with a stdin pipe
    try:
        if pending:
            pending = pending[os.write(proc.stdin.fileno(), pending[:_READ]) :]
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        pending = pending[:0]  # the command stopped reading; it decides what that means
    if not pending:
        selector.unregister(proc.stdin)  # type: ignore[attr-defined]
        proc.stdin.close()
    return pending


def _classify(outcome: Outcome, returncode: int, interrupted: list[int]) -> None:
    """Exit like a shell would: 128+N for a signal. Only a normal, uninterrupted end is stored."""
    if returncode < 0:
        outcome.exit_code = 128 - returncode
        outcome.why_not_stored = f"the command was killed by signal {-returncode}"
    elif interrupted:
        outcome.exit_code = 128 + interrupted[0]
        outcome.why_not_stored = f"jobstamp was interrupted by signal {interrupted[0]}"
    else:
        outcome.exit_code = returncode  # why_not_stored may already say its output was cut


def report_start_failure(name: str, error: OSError) -> int:
    """Say why the command could not start; return the shell's exit status for it."""
    import errno

    from jobstamps.errors import one_line

    name = one_line(name)
    if error.errno in {errno.ENOENT, errno.ENOTDIR}:
        print(f"jobstamp: command not found: {name}. Check its name and PATH", file=sys.stderr)
        return 127
    reason = error.strerror or str(error)
    print(f"jobstamp: cannot run {name}: {reason}. Check that it is executable", file=sys.stderr)
    return 126


def run_plain(argv: Sequence[str], executable: str | None = None) -> int:
    """Run a command without recording it, as a shell would; return its exit status.

    Descriptors this process inherited reach the command, as through ``env`` or ``nice``
    (``<(...)`` in bash, a make jobserver); those it opened itself are not inheritable.
    """
    try:
        returncode = subprocess.call(list(argv), executable=executable, close_fds=False)
    except OSError as error:
        return report_start_failure(argv[0], error)
    except KeyboardInterrupt:
        return 130
    return 128 - returncode if returncode < 0 else returncode
