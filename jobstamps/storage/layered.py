"""The local cache first, a remote cache second, for every front end.

Remote hits fill the local cache; what is stored locally is uploaded.

Front ends describe each job twice: its local :class:`~jobstamps.engine.Job`, and a
:class:`Shared` holding its remote key (:mod:`jobstamps.portable`) and the dependency
fingerprints that key was computed from. On a local miss, :meth:`Layered.fill` looks up many
jobs in one :meth:`~jobstamps.storage.remote.Remote.get_records` call; every record that passes
its checks is turned back into a local entry (for the local key, with those fingerprints, so a
dependency changed meanwhile means no entry) and then replayed like any local hit. After a
run was stored, :meth:`Layered.upload` sends its record in the background.
"""

from __future__ import annotations

import os
import time

from jobstamps import portable
from jobstamps._fs import open_private
from jobstamps.engine import ReplayError
from jobstamps.fingerprint import blake2b
from jobstamps.storage.records import (
    COMMAND,
    INLINE_LIMIT,
    PICKLE,
    Record,
    RecordError,
    sha256_hex,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobstamps.engine import Engine, Job
    from jobstamps.fingerprint import Fingerprint
    from jobstamps.storage.remote import Remote

__all__ = ["Layered", "Shared", "open_layered"]

_BLOCK = 1 << 20


def open_layered(
    engine: Engine, cwd: str, url: str | None, read_only: bool, base_dir: str | None
) -> Layered | None:
    """Put the configured remote (``url``, else ``JOBSTAMPS_REMOTE``) behind ``engine``'s store.

    ``None`` when no remote is configured or its client library is missing (said once).
    Raises :class:`~jobstamps.errors.UsageError` for a URL or base directory that cannot work.
    """
    from jobstamps.storage.remote import base_directory, open_remote

    base = base_directory(cwd, base_dir)
    if not base:
        return None
    remote = open_remote(url, read_only=read_only, store=engine.store)
    return Layered(engine, remote, base) if remote is not None else None


class Shared:
    """A job as a remote cache knows it.

    ``deps`` are the dependency fingerprints taken before the remote ``key`` was computed
    from the dependencies' contents; ``extra`` is added to a payload filled from a record
    (what the front end keeps beside the result, such as the key's fields for explanations).
    """

    def __init__(
        self,
        job: Job,
        key: str,
        deps: list[Fingerprint | None],
        kind: str = COMMAND,
        extra: dict[str, Any] | None = None,
        inline: bool = False,
    ) -> None:
        self.job = job
        self.key = key
        self.deps = deps
        self.kind = kind
        self.extra = extra or {}
        self.inline = inline  # the front end replays output held in the entry, never a blob


class Layered:
    """One engine's local store, with a remote behind it, for jobs under one base directory."""

    def __init__(self, engine: Engine, remote: Remote, base: str) -> None:
        self.engine = engine
        self.remote = remote
        self.base = base

    def close(self) -> None:
        """Finish the uploads (up to a deadline) and add this invocation's counts locally."""
        self.remote.close()
        self.engine.store.note_remote(self.remote.stats.as_dict())

    # -- lookups --------------------------------------------------------------------------

    def fill(self, shared: Sequence[Shared]) -> set[str]:
        """Look up every job remotely at once; store the results found as local entries.

        Returns the local keys filled: replay those through the engine as local hits.
        """
        records = self.remote.get_records([item.key for item in shared])
        filled = set()
        try:
            with self.engine.store.batch():  # many results: written in one pack if the store may
                for item in shared:
                    record = records.get(item.key)
                    if record is not None and self._fill_one(item, record):
                        filled.add(item.job.key)
        except OSError as error:
            self.engine.say(f"not filled from the remote cache: {error.strerror or error}")
            return set()
        if filled:
            self._trim()
        return filled

    def _trim(self) -> None:
        """Keep the local cache within its size limit, once for every result filled."""
        store = self.engine.store
        try:
            if store.max_size:
                store.trim()
        except OSError as error:
            self.engine.say(f"the cache could not be trimmed ({error.strerror or error})")

    def _fill_one(self, item: Shared, record: Record) -> bool:
        job = item.job
        if record.kind != item.kind:
            self.remote.fail(RecordError(f"a {record.kind} record was served for a {item.kind}"))
            return False
        blobs: list[tuple[str, int]] = []
        try:
            payload = self._payload(record, blobs, item.inline)
            if payload is None or not self._restore_outputs(job, record, blobs):
                self._release(blobs)
                return False
        except (OSError, ReplayError) as error:
            why = error.strerror if isinstance(error, OSError) and error.strerror else error
            self.engine.say(f"not filled from the remote cache: {why}")
            self._release(blobs)
            return False
        problem = self.engine.adopt(job, item.deps, {**payload, **item.extra}, blobs)
        if problem:
            self._release(blobs)
            self.engine.say(f"not filled from the remote cache: {problem}")
            return False
        self.engine.say(f"filled {job.about} from the remote cache {self.remote.settings.name}")
        return True

    def _payload(
        self, record: Record, blobs: list[tuple[str, int]], inline: bool
    ) -> dict[str, Any] | None:
        """Turn a record's result into a local payload; ``None`` when its blob cannot be had.

        A payload in a blob becomes a local blob, or bytes in the entry if ``inline``.
        """
        data: bytes | None = record.data
        if record.blob is not None and (inline or record.kind == PICKLE):
            data = self.remote.get_blob(*record.blob)
            if data is None:
                return None
        if record.kind == PICKLE:
            return {"pickle": data}
        payload: dict[str, Any] = {"code": record.exit_code, "chunks": list(record.chunks)}
        if record.blob is None or inline:
            payload["data"] = data
            return payload
        local = self._download(*record.blob)
        if local is None:
            return None
        blobs.append(local)
        payload["blob"] = local[0]
        return payload

    def _restore_outputs(self, job: Job, record: Record, blobs: list[tuple[str, int]]) -> bool:
        """Write the record's output files where this job declares them."""
        declared = {portable.relative(path, self.base): path for path in job.outputs}
        named = [relative for relative, _, _, _ in record.outputs]
        if sorted(named) != sorted(declared) or len(set(named)) != len(named):
            self.remote.fail(RecordError("a record's output files are not the job's outputs"))
            return False
        for relative, mode, digest, size in record.outputs:
            local = self._download(digest, size)
            if local is None:
                return False
            blobs.append(local)
            self.engine.restore(declared[relative], local[0], mode)
        return True

    def _download(self, digest: str, size: int) -> tuple[str, int] | None:
        """Fetch a remote blob into the local cache; return its local ``(digest, size)``."""
        store = self.engine.store
        tmp = store.temp_path()
        hasher = blake2b(digest_size=20)
        fd = open_private(tmp, os.O_WRONLY)

        def sink(piece: bytes) -> None:
            hasher.update(piece)
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]

        try:
            try:
                fetched = self.remote.fetch_blob(digest, size, sink)
            finally:
                os.close(fd)
        except BaseException:
            os.unlink(tmp)
            raise
        if not fetched:
            os.unlink(tmp)
            return None
        local = hasher.hexdigest()
        store.adopt_blob(tmp, local)
        return local, size

    def _release(self, blobs: list[tuple[str, int]]) -> None:
        for digest, _ in blobs:
            self.engine.store.release_blob(digest)

    # -- uploads --------------------------------------------------------------------------

    def upload(self, item: Shared, deps: list[Fingerprint | None], payload: dict[str, Any]) -> None:
        """Send the result just stored for ``item`` to the remote, in the background.

        Nothing goes when a dependency changed after the remote key was worked out (``deps``
        are the fingerprints the stored entry holds), or when an output file was not stored
        (without ``--restore-outputs`` there is nothing to send for it).
        """
        if deps != item.deps or self.remote.settings.read_only or not self.remote.usable:
            return
        try:
            record, sources = self._record(item, payload)
        except OSError as error:  # a stored blob went meanwhile (evicted): nothing to send
            self.engine.say(f"not uploaded: {error.strerror or error}")
            return
        if record is not None:
            self.remote.put_record(record, sources)

    def _record(
        self, item: Shared, payload: dict[str, Any]
    ) -> tuple[Record | None, dict[str, bytes | str]]:
        """Build the record of a stored result, and name the blobs it needs."""
        store = self.engine.store
        sources: dict[str, bytes | str] = {}
        outputs = []
        if item.job.outputs:
            entry, _ = store.read(item.job.key)
            if entry is None:
                return None, {}
            for path, recorded, blob, mode in entry["outputs"]:
                if recorded is None or not blob:
                    return None, {}
                sha, size = _sha256_file(store.blob_path(blob))
                sources[sha] = store.blob_path(blob)
                outputs.append((portable.relative(path, self.base), mode, sha, size))
        if item.kind == PICKLE:
            data, chunks, code = payload["pickle"], [], 0
        else:
            chunks, code = payload["chunks"], payload["code"]
            data = payload.get("data", b"")
        blob = None
        if "blob" in payload:
            path = store.blob_path(payload["blob"])
            if sum(size for _, size in chunks) <= INLINE_LIMIT:
                with open(path, "rb") as handle:
                    data = handle.read()
            else:
                blob = _sha256_file(path)
                sources[blob[0]], data = path, b""
        elif len(data) > INLINE_LIMIT:
            blob = (sha256_hex(data), len(data))
            sources[blob[0]], data = data, b""
        record = Record(
            item.key, item.kind, code, chunks, data, blob, outputs, created=time.time_ns()
        )
        return record, sources


def _sha256_file(path: str) -> tuple[str, int]:
    import hashlib

    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size
