"""Results shared through a remote cache, for every front end: what to look up, what to keep.

Remote hits fill the local cache; what is stored locally is uploaded.

Front ends describe each job twice: its local :class:`~jobstamps.engine.Job`, and a
:class:`Shared` holding its remote key (:mod:`jobstamps.portable`) and the dependency
fingerprints that key was computed from. On a local miss, :meth:`Sharing.fill` looks up many
jobs at once; every record that fits its job is turned back into a local entry by the engine
(for the local key, with those fingerprints, so a dependency changed meanwhile means no entry)
and then replayed like any local hit. After a run was stored, :meth:`Sharing.upload` sends its
record in the background. Moving the bytes between the two levels is
:mod:`jobstamps.storage.layered`'s; the decisions are made here.

A traced job's remote key names a manifest (:mod:`jobstamps.trace.manifest`): the result
filled is the first candidate whose traced set holds on this machine, and a result uploaded
is added to the manifest beside those of machines whose traced sets differ.
"""

from __future__ import annotations

from jobstamps import portable
from jobstamps.engine import ReplayError
from jobstamps.errors import UsageError
from jobstamps.storage.records import COMMAND, MANIFEST
from jobstamps.trace import manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from jobstamps.engine import Engine, Job
    from jobstamps.fingerprint import Fingerprint
    from jobstamps.storage.layered import Layered
    from jobstamps.storage.records import Record
    from jobstamps.storage.remote import Remote
    from jobstamps.trace.manifest import Candidate
    from jobstamps.trace.paths import Entry

__all__ = ["Shared", "Sharing", "base_directory", "open_sharing"]


def open_sharing(
    engine: Engine, cwd: str, url: str | None, read_only: bool, base_dir: str | None
) -> Sharing | None:
    """Put the configured remote (``url``, else ``JOBSTAMPS_REMOTE``) behind ``engine``'s store.

    ``None`` when no remote is configured or its client library is missing (said once).
    Raises :class:`~jobstamps.errors.UsageError` for a URL or base directory that cannot work.
    """
    from jobstamps.storage.layered import Layered
    from jobstamps.storage.remote import open_remote

    base = base_directory(cwd, base_dir)
    if not base:
        return None
    remote = open_remote(url, read_only=read_only, store=engine.store)
    return Sharing(engine, Layered(engine.store, remote), base) if remote is not None else None


def base_directory(cwd: str, given: str | None, warn: Callable[[str], None] | None = None) -> str:
    """Return the base directory for sharing (see :func:`jobstamps.portable.base_directory`).

    ``""`` when ``JOBSTAMPS_BASE_DIR`` names no directory: said through ``warn``, and the
    remote is not used (a setting of the environment does not fail the command). Raises
    :class:`~jobstamps.errors.UsageError` for ``given`` (``--base-dir``) that names none.
    """
    from jobstamps.storage.remote import SettingError, ignored, stderr_line

    try:
        return portable.base_directory(cwd, given)
    except UsageError as error:
        if given:
            raise
        (warn or stderr_line)(ignored(SettingError(str(error), "JOBSTAMPS_BASE_DIR")))
        return ""


class Shared:
    """A job as a remote cache knows it.

    ``deps`` are the dependency fingerprints taken before the remote ``key`` was computed
    from the dependencies' contents; ``extra`` is added to a payload filled from a record
    (what the front end keeps beside the result, such as the key's fields for explanations).
    A ``traced`` job's key names a manifest of candidate results.
    """

    def __init__(
        self,
        job: Job,
        key: str,
        deps: list[Fingerprint | None],
        kind: str = COMMAND,
        extra: dict[str, Any] | None = None,
        inline: bool = False,
        traced: bool = False,
    ) -> None:
        self.job = job
        self.key = key
        self.deps = deps
        self.kind = kind
        self.extra = extra or {}
        self.inline = inline  # the front end replays output held in the entry, never a blob
        self.traced = traced
        #: The manifest's candidates as read on the look-up (``None``: not read yet).
        self.candidates: list[Candidate] | None = None


class Sharing:
    """One engine's local store, with a remote behind it, for jobs under one base directory."""

    def __init__(self, engine: Engine, layered: Layered, base: str) -> None:
        self.engine = engine
        self.layered = layered
        self.base = base
        self.digests: dict[str, manifest.Digests] = {}  # by manifest key

    @property
    def remote(self) -> Remote:
        """The remote cache behind the local one."""
        return self.layered.remote

    def close(self) -> None:
        """Finish the uploads (up to a deadline) and add this invocation's counts locally."""
        self.layered.close()

    # -- lookups --------------------------------------------------------------------------

    def fill(self, shared: Sequence[Shared]) -> set[str]:
        """Look up every job remotely at once; store the results found as local entries.

        Returns the local keys filled: replay those through the engine as local hits.
        """
        records = self.layered.get_records([item.key for item in shared])
        explained = self._resolve([item for item in shared if item.traced], records)
        missing = [item for item in shared if item.key not in records and item not in explained]
        self._say_missing(len(missing), len(shared))
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

    def _resolve(self, traced: Sequence[Shared], records: dict[str, Record]) -> list[Shared]:
        """Replace each traced job's manifest in ``records`` by the result that fits here.

        Returns the jobs whose manifest was found but held no result that fits (said why).
        """
        chosen: dict[str, str] = {}
        explained = []
        for item in traced:
            record = records.pop(item.key, None)
            item.candidates = self._candidates(record) if record is not None else []
            if not item.candidates:
                continue
            digests = self._digests(item)
            found, local, why = manifest.choose(
                item.candidates, self.base, item.job.method, digests
            )
            digests.save()
            if found is None:
                count = len(item.candidates)
                self.engine.say(
                    f"not filled from the remote cache: it holds {count} traced "
                    f"result{'s' if count > 1 else ''} of this command, none made with the files "
                    f"here (newest: {why})"
                )
                explained.append(item)
                continue
            item.extra["traced"] = local
            chosen[item.key] = found["result"]
        results = self.layered.get_records(list(chosen.values())) if chosen else {}
        for item in traced:
            result = chosen.get(item.key)
            if result in results:
                records[item.key] = results[result]
            elif result is not None and self.remote.usable:
                self.engine.say(
                    "not filled from the remote cache: the result its manifest names is gone"
                )
                explained.append(item)
        return explained

    def _digests(self, item: Shared) -> manifest.Digests:
        """Return the remembered digests of ``item``'s traced files (read once per invocation)."""
        if item.key not in self.digests:
            self.digests[item.key] = manifest.Digests(self.engine.store.memos, item.key)
        return self.digests[item.key]

    def _candidates(self, record: Record) -> list[Candidate]:
        """Read the candidates of a manifest record; ``[]`` for one that cannot be had."""
        if record.kind != MANIFEST:
            self.layered.refuse(f"a {record.kind} record was served for a manifest")
            return []
        payload = self.layered.payload(record, [], inline=True)
        if payload is None:
            return []
        try:
            return manifest.decode(payload["data"])
        except ValueError as error:
            self.layered.refuse(str(error))
            return []

    def _say_missing(self, missing: int, asked: int) -> None:
        """Say that the remote was asked and lacks results, and how to find out why."""
        if not missing or not self.remote.usable:
            return  # a remote that failed has said so already
        what = "this job's remote key" if asked == 1 else f"{missing} of the {asked} remote keys"
        self.engine.say(
            f"the remote cache {self.remote.settings.name} was asked and has no result for "
            f"{what}: to see why, diff the output of the same jobstamp command with --show-key "
            "on this machine and on the one that stored the result"
        )

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
        layered = self.layered
        if record.kind != item.kind:
            layered.refuse(f"a {record.kind} record was served for a {item.kind}")
            return False
        blobs: list[tuple[str, int]] = []
        try:
            payload = layered.payload(record, blobs, item.inline)
            if payload is None or not self._restore_outputs(job, record, blobs):
                layered.release(blobs)
                return False
        except (OSError, ReplayError) as error:
            why = error.strerror if isinstance(error, OSError) and error.strerror else error
            self.engine.say(f"not filled from the remote cache: {why}")
            layered.release(blobs)
            return False
        problem = self.engine.adopt(job, item.deps, {**payload, **item.extra}, blobs)
        if problem:
            layered.release(blobs)
            self.engine.say(f"not filled from the remote cache: {problem}")
            return False
        self.engine.say(f"filled {job.about} from the remote cache {self.remote.settings.name}")
        return True

    def _restore_outputs(self, job: Job, record: Record, blobs: list[tuple[str, int]]) -> bool:
        """Write the record's output files where this job declares them."""
        declared = {portable.relative(path, self.base): path for path in job.outputs}
        named = [relative for relative, _, _, _ in record.outputs]
        if sorted(named) != sorted(declared) or len(set(named)) != len(named):
            self.layered.refuse("a record's output files are not the job's outputs")
            return False
        for relative, mode, digest, size in record.outputs:
            local = self.layered.download(digest, size)
            if local is None:
                return False
            blobs.append(local)
            self.engine.restore(declared[relative], local[0], mode)
        return True

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
            outputs = self._stored_outputs(item.job)
            if outputs is None:
                return
            key, traced = item.key, None
            if item.traced:
                traced = self._portable_traced(item, payload)
                if traced is None:
                    return
                key = manifest.result_key(item.key, traced, self.base)
            record, sources = self.layered.record(key, item.kind, payload, outputs)
        except OSError as error:  # a stored blob went meanwhile (evicted): nothing to send
            self.engine.say(f"not uploaded: {error.strerror or error}")
            return
        if record is None:
            return
        self.layered.upload(record, sources)
        if traced is not None:
            self._upload_manifest(item, manifest.candidate(key, traced, self.base))

    def _portable_traced(self, item: Shared, payload: dict[str, Any]) -> list[Entry] | None:
        """Write a traced result's set as other machines check it; ``None`` (said why) if none."""
        digests = self._digests(item)
        traced = manifest.portable_set(payload["traced"], self.base, digests)
        digests.save()
        if traced is None:
            self.engine.say("not uploaded: a traced file changed after the command ran")
        return traced

    def _upload_manifest(self, item: Shared, new: Candidate) -> None:
        """Add a result just uploaded to its manifest, beside other machines' results.

        Two machines adding at once may lose one addition: that machine's next upload adds it.
        """
        if item.candidates is None:  # not looked up (a forced run): read it now
            found = self.layered.get_records([item.key]).get(item.key)
            item.candidates = self._candidates(found) if found is not None else []
        data = manifest.encode(manifest.merge(item.candidates, new))
        record, sources = self.layered.record(item.key, MANIFEST, {"data": data}, [])
        if record is not None:
            self.layered.upload(record, sources)

    def _stored_outputs(self, job: Job) -> list[tuple[str, int, str]] | None:
        """Name the job's stored output files as a record does; ``None`` if none is stored."""
        if not job.outputs:
            return []
        entry, _ = self.engine.store.read(job.key)
        if entry is None:
            return None
        return [
            (portable.relative(path, self.base), mode, blob if recorded is not None else "")
            for path, recorded, blob, mode in entry["outputs"]
        ]
