"""The local cache first, a remote cache second: results moved between the two levels.

:class:`Layered` holds one local :class:`~jobstamps.store.Store` and the
:class:`~jobstamps.storage.remote.Remote` behind it. It looks records up, turns a record into
what the local cache keeps (a payload, its blobs downloaded into the local cache) and what the
local cache keeps into a record to upload. It decides nothing: which jobs are looked up,
whether a record suits a job, and storing it as that job's entry belong to the code above
(:mod:`jobstamps.sharing`).
"""

from __future__ import annotations

import os
import time

from jobstamps._fs import open_private
from jobstamps.fingerprint import blake2b
from jobstamps.storage.records import (
    INLINE_LIMIT,
    MANIFEST,
    PICKLE,
    Record,
    RecordError,
    sha256_hex,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobstamps.storage.remote import Remote
    from jobstamps.store import Store

    #: A stored output file as a record names it: ``(relative path, mode, local blob)``; the
    #: blob is ``""`` when the file was not stored.
    StoredOutput = tuple[str, int, str]

__all__ = ["Layered"]

_BLOCK = 1 << 20


class Layered:
    """One local store with a remote behind it: records looked up, blobs moved between them."""

    def __init__(self, store: Store, remote: Remote) -> None:
        self.store = store
        self.remote = remote

    def close(self) -> None:
        """Finish the uploads (up to a deadline) and add this invocation's counts locally."""
        self.remote.close()
        self.store.note_remote(self.remote.stats.as_dict())

    # -- from the remote ------------------------------------------------------------------

    def get_records(self, keys: Sequence[str]) -> dict[str, Record]:
        """Look up many remote keys at once; return the records found and verified, by key."""
        return self.remote.get_records(keys)

    def refuse(self, why: str) -> None:
        """Count a record that does not fit what it was asked for as the remote's failure."""
        self.remote.fail(RecordError(why))

    def payload(
        self, record: Record, blobs: list[tuple[str, int]], inline: bool
    ) -> dict[str, Any] | None:
        """Turn a record's result into a local payload; ``None`` when its blob cannot be had.

        A payload in a blob becomes a local blob (added to ``blobs``), or bytes in the entry
        if ``inline``. Raises :class:`OSError` when the local cache cannot take it.
        """
        data: bytes | None = record.data
        if record.blob is not None and (inline or record.kind in {PICKLE, MANIFEST}):
            data = self.remote.get_blob(*record.blob)
            if data is None:
                return None
        if record.kind == PICKLE:
            return {"pickle": data}
        if record.kind == MANIFEST:
            return {"data": data}
        payload: dict[str, Any] = {"code": record.exit_code, "chunks": list(record.chunks)}
        if record.blob is None or inline:
            payload["data"] = data
            return payload
        local = self.download(*record.blob)
        if local is None:
            return None
        blobs.append(local)
        payload["blob"] = local[0]
        return payload

    def download(self, digest: str, size: int) -> tuple[str, int] | None:
        """Fetch a remote blob into the local cache; return its local ``(digest, size)``.

        ``None`` when the remote does not have it whole; :class:`OSError` when the local
        cache cannot take it.
        """
        store = self.store
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

    def release(self, blobs: Sequence[tuple[str, int]]) -> None:
        """Remove blobs downloaded for an entry that was not stored, unless others use them."""
        for digest, _ in blobs:
            self.store.release_blob(digest)

    # -- to the remote --------------------------------------------------------------------

    def record(
        self, key: str, kind: str, payload: dict[str, Any], outputs: Sequence[StoredOutput]
    ) -> tuple[Record | None, dict[str, bytes | str]]:
        """Build the record of a stored result, and name the blobs it needs.

        ``None`` when an output file was not stored (there is nothing to send for it). Raises
        :class:`OSError` when a stored blob went meanwhile (evicted).
        """
        store = self.store
        sources: dict[str, bytes | str] = {}
        shared_outputs = []
        for relative, mode, stored in outputs:
            if not stored:
                return None, {}
            sha, size = _sha256_file(store.blob_path(stored))
            sources[sha] = store.blob_path(stored)
            shared_outputs.append((relative, mode, sha, size))
        chunks: list[tuple[int, int]] = []
        code = 0
        if kind in {PICKLE, MANIFEST}:
            data = payload["pickle" if kind == PICKLE else "data"]
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
        record = Record(key, kind, code, chunks, data, blob, shared_outputs, created=time.time_ns())
        return record, sources

    def upload(self, record: Record, sources: dict[str, bytes | str]) -> None:
        """Send a record and the blobs it names (bytes, or a file's path) in the background."""
        self.remote.put_record(record, sources)


def _sha256_file(path: str) -> tuple[str, int]:
    import hashlib

    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size
