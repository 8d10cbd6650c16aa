"""Per-file results in a remote cache: every stale file looked up at once, each stored one shared.

Each file's remote key is its portable key (:mod:`jobstamps.portable`), worked out from the
same fingerprints as its local entry, so that a result filled from the remote is stored
locally and replayed from there like any local result.
"""

from __future__ import annotations

import os

from jobstamps import fingerprint
from jobstamps.errors import NotShareableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from jobstamps.engine import Engine, Job
    from jobstamps.fileresults import Payload
    from jobstamps.sharing import Shared, Sharing
    from jobstamps.store import Store

__all__ = ["Remote"]

_CHANGING = "a dependency is missing, unreadable or changing"


class Remote:
    """The stale files as the remote cache knows them, once a local miss opened it."""

    def __init__(
        self,
        options: argparse.Namespace,
        command: list[str],
        executable: str,
        cwd: str,
        merged: bool,
        job: Callable[[str], Job],
        store: Store,
    ) -> None:
        self.options = options
        self.command = command
        self.executable = executable
        self.cwd = cwd
        self.merged = merged
        self.job = job
        self.store = store
        self.layered: Sharing | None = None
        self.jobs: dict[int, Shared] = {}  # by file index

    def fill(
        self,
        engine: Engine,
        files: list[str],
        stale: list[int],
        recordings: dict[int, Any],
        notes: list[str],
        replay: Callable[[int, Job], str],
    ) -> list[int]:
        """Look every stale file up in the remote cache at once; return those still stale.

        A result found is stored locally for the file, with the fingerprints its remote key was
        computed from, and replayed from there (``replay``, which returns why it could not be)
        like any local result. With ``--force`` nothing is looked up; the results stored are
        uploaded all the same.
        """
        from jobstamps import portable
        from jobstamps.sharing import Shared, open_sharing

        options = self.options
        self.layered = open_sharing(
            engine, self.cwd, options.remote, options.remote_read_only, options.base_dir
        )
        if self.layered is None:
            return stale
        base = self.layered.base
        try:
            program = self._program(base)
        except NotShareableError as error:
            notes.append(f"not shared: {error}")
            return stale
        for index in stale:
            recording = recordings[index]
            parts = self._parts(program, base, files[index], recording.deps)
            if parts is not None:
                remote_key = portable.command_key(parts)
                job = recording.job
                self.jobs[index] = Shared(job, remote_key, list(recording.deps), inline=True)
        if options.force:  # run them all; share what they store
            return stale
        filled = self.layered.fill(list(self.jobs.values()))
        left = []
        for index in stale:
            shared = self.jobs.get(index)
            if shared is None or shared.job.key not in filled or replay(index, shared.job):
                left.append(index)
            else:
                notes.append(f"replayed {files[index]} from the remote cache")
        return left

    def _program(self, base: str) -> list[tuple[str, str]]:
        """Identify the program for every file's remote key; raise :class:`NotShareableError`."""
        from jobstamps import portable

        try:
            return portable.program_parts(self.executable, self.cwd, base, self.store.memos)
        except OSError as error:
            raise NotShareableError(f"the program cannot be read ({error.strerror})") from None

    def _parts(
        self, program: list[tuple[str, str]], base: str, file: str, deps: list[Any]
    ) -> list[tuple[str, str]] | None:
        """Return the parts of ``file``'s remote key; ``None`` if a dependency changed."""
        from jobstamps import portable

        job = self.job(file)
        digests = portable.dependency_digests(job.dependencies, deps)
        if digests is None:
            return None
        return portable.command_parts(
            program,
            base,
            self.cwd,
            [*self.command, file],
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

        base = portable.base_directory(self.cwd, self.options.base_dir)
        try:
            program = self._program(base)
        except NotShareableError as error:
            os.write(1, f"not shared: {error}\n".encode("utf-8", "surrogateescape"))
            return 1
        code = 0
        for file in files:
            job = self.job(file)
            deps = [fingerprint.record(path, job.method) for path in job.dependencies]
            parts = self._parts(program, base, file, deps)
            text = portable.show(parts) if parts is not None else f"not shared: {_CHANGING}\n"
            code = code if parts is not None else 1
            os.write(1, f"file {file}\n{text}".encode("utf-8", "surrogateescape"))
        return code

    def upload(self, index: int, payload: Payload, deps: list[Any]) -> None:
        """Share a file's stored result, unless its failure was pinned on a whole batch."""
        shared = self.jobs.get(index)
        if self.layered is not None and shared is not None and not payload.get("shared"):
            self.layered.upload(shared, deps, payload)

    def close(self) -> None:
        """Finish the uploads, if the remote cache was opened."""
        if self.layered is not None:
            self.layered.close()
