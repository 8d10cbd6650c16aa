"""The decision every front end shares: replay a stored result, or run and store a new one.

A job is a key plus the files it reads (dependencies) and writes (outputs). It is fresh when
an entry is stored for its key, every dependency still matches the fingerprint recorded
*before* the stored run, and every output still matches what that run left (or can be
restored from the cache). Anything else, including any doubt, means "run".
"""

from __future__ import annotations

import os
import time

from jobstamps import fingerprint
from jobstamps.errors import CacheDirectoryError
from jobstamps.fingerprint import HASH, MTIME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, TypeVar

    from jobstamps._fs import FileLock
    from jobstamps.store import Store

    T = TypeVar("T")

__all__ = ["HASH", "MTIME", "Engine", "Job", "ReplayError", "Verdict"]

_BLOCK = 1 << 20


class ReplayError(Exception):
    """A stored result turned out unusable while replaying it; the job runs instead."""


class Job:
    """What identifies a job and what it touches. Paths must be absolute."""

    def __init__(
        self,
        key: str,
        dependencies: Sequence[str] = (),
        outputs: Sequence[str] = (),
        method: str = MTIME,
        restore_outputs: bool = False,
        about: str | Callable[[], str] = "",
        why_new: Callable[[], str] | None = None,
    ) -> None:
        self.key = key
        self.dependencies = list(dependencies)
        self.outputs = list(outputs)
        self.method = method
        self.restore_outputs = restore_outputs
        self._about = about
        self.why_new = why_new  # explains a key with nothing stored, when asked to explain

    @property
    def about(self) -> str:
        """Name the job in explanations (worked out only when one is given)."""
        if callable(self._about):
            self._about = self._about()
        return self._about or self.key[:12]


class Verdict:
    """The outcome of checking a job: fresh or not, and why.

    ``trigger`` is what the original jobstamps reported: the stamp (entry) path when nothing
    usable is stored, else the path of the output or dependency that makes the job run.
    """

    def __init__(self, trigger: str | None, why: str, entry: dict[str, Any] | None = None) -> None:
        self.trigger = trigger
        self.why = why
        self.entry = entry
        self.refreshed: dict[tuple[str, int], fingerprint.Fingerprint] = {}
        self.restore: list[int] = []

    @property
    def fresh(self) -> bool:
        """Whether the stored result may be replayed."""
        return self.trigger is None


class _Recording:
    """Dependency fingerprints taken just before a job runs, and the listings of its trees."""

    def __init__(
        self,
        job: Job,
        deps: list[fingerprint.Fingerprint | None],
        listings: dict[str, fingerprint.Listing],
    ) -> None:
        self.job = job
        self.deps = deps
        self.listings = listings


class Engine:
    """Checks, records and replays jobs against one :class:`~jobstamps.store.Store`."""

    def __init__(self, store: Store, explain: Callable[[str], None] | None = None) -> None:
        self.store = store
        self._explain = explain
        #: Called on a local miss, under the job's lock, before the job runs: may store an
        #: entry for the job from elsewhere (a remote cache) and return whether it did.
        self.fill: Callable[[Job], bool] | None = None
        #: Called after a run's result was stored, with the job, the dependency fingerprints
        #: the entry holds, and its payload (to share it further).
        self.stored: Callable[[Job, list[fingerprint.Fingerprint | None], dict[str, Any]], None]
        self.stored = _ignore
        #: A dict makes each traced set stored once for many results (``traced_set``) be
        #: checked once, its verdict kept by digest: for one run over many files only, which
        #: takes the files as they were when it began. ``None``: each check reads the files.
        self.traced_sets: dict[str, tuple[str, str] | None] | None = None

    @property
    def explaining(self) -> bool:
        """Whether explanations were asked for."""
        return self._explain is not None

    def say(self, message: str) -> None:
        """Pass an explanation to whoever asked for them."""
        if self._explain is not None:
            self._explain(message)

    # -- checking ---------------------------------------------------------------------------

    def check(self, job: Job) -> Verdict:
        """Decide whether ``job`` is fresh, reading the store and the files but changing nothing."""
        stamp = self.store.entry_path(job.key)
        if not self.store.exists():
            return Verdict(stamp, "nothing is stored yet (the cache directory is new)")
        entry, problem = self.store.read(job.key)
        if entry is None:
            return Verdict(stamp, problem)
        if (
            entry.get("method") != job.method
            or [d[0] for d in entry["deps"]] != job.dependencies
            or [o[0] for o in entry["outputs"]] != job.outputs
        ):
            return Verdict(stamp, "the stored entry was made with other settings")
        for digest, size in entry["blobs"]:
            if not self.store.has_blob(digest, size):
                return Verdict(stamp, "stored data that the entry needs is missing")
        verdict = Verdict(None, "", entry)
        found = (
            self._check_outputs(job, verdict)
            or self._check_deps(job, verdict)
            or self._check_traced(job, entry)
        )
        if found is None:
            return verdict
        if self._explain is not None and found.trigger in job.dependencies:
            found.why = self._name_tree_changes(job, entry, found)
        return found

    def _name_tree_changes(self, job: Job, entry: dict[str, Any], verdict: Verdict) -> str:
        """Name the files below a changed directory dependency, from its stored listing.

        Only explanations read listings; without one (or an older one) the reason stands.
        """
        path = verdict.trigger
        listed = _decode_listing(self.store.read_listing(job.key), entry["created"])
        if path not in listed:
            return verdict.why
        changes = fingerprint.tree_changes(path, job.method, listed[path])
        return f"dependency {path} changed: {changes}" if changes else verdict.why

    @staticmethod
    def _check_outputs(job: Job, verdict: Verdict) -> Verdict | None:
        assert verdict.entry is not None  # noqa: S101 - set by check()
        for index, (path, recorded, blob, _) in enumerate(verdict.entry["outputs"]):
            if recorded is None:  # the stored run did not make it: never replayed
                state = "is missing" if not os.path.lexists(path) else "exists now"
                return Verdict(path, f"output {path} {state}; the stored run did not create it")
            if not os.path.lexists(path):
                if job.restore_outputs and blob:
                    verdict.restore.append(index)
                    continue
                return Verdict(path, f"output {path} is missing")
            why, refreshed = fingerprint.check(path, job.method, recorded)
            if why:
                return Verdict(path, f"output {path} changed since it was made: {why}")
            if refreshed:
                verdict.refreshed["outputs", index] = refreshed
        return None

    @staticmethod
    def _check_deps(job: Job, verdict: Verdict) -> Verdict | None:
        assert verdict.entry is not None  # noqa: S101 - set by check()
        for index, (path, recorded) in enumerate(verdict.entry["deps"]):
            if recorded is None:
                state = fingerprint.why_unrecorded(path, job.method)
                return Verdict(path, f"dependency {path} {state}")
            why, refreshed = fingerprint.check(path, job.method, recorded)
            if why:
                return Verdict(path, f"dependency {path} changed: {why}")
            if refreshed:
                verdict.refreshed["deps", index] = refreshed
        return None

    def _check_traced(self, job: Job, entry: dict[str, Any]) -> Verdict | None:
        """Check the paths a traced run used (see :mod:`jobstamps.trace.paths`), if it was traced.

        They are held in the result, or in a set stored once for many (``traced_set``).
        """
        payload = entry.get("payload")
        if not isinstance(payload, dict):
            return None
        traced, shared = payload.get("traced"), payload.get("traced_set")
        if traced is None and shared is None:
            return None
        from jobstamps.trace import paths

        found = paths.check(traced, job.method) if traced is not None else None
        if found or shared is None:
            return Verdict(*found) if found else None
        digest = str(shared[0])
        memo = self.traced_sets
        if memo is not None and digest in memo:
            found = memo[digest]
        else:
            from jobstamps.trace import shared as sets

            entries = sets.load(self.store, digest)
            if entries is None:
                missing = "the traced set stored for the entry is missing or damaged"
                found = (self.store.entry_path(job.key), missing)
            else:
                found = paths.check(entries, job.method)
            if memo is not None:
                memo[digest] = found
        return Verdict(*found) if found else None

    # -- a hit ------------------------------------------------------------------------------

    def accept(self, job: Job, verdict: Verdict) -> None:
        """Complete a hit: restore missing outputs, refresh settled fingerprints, mark it used."""
        entry = verdict.entry
        assert entry is not None  # noqa: S101 - only fresh verdicts get here
        for index in verdict.restore:
            path, _, blob, mode = entry["outputs"][index]
            self.restore(path, blob, mode)
            restored = fingerprint.record(path, job.method)
            verdict.refreshed["outputs", index] = restored  # type: ignore[assignment]
            self.say(f"restored output {path} from the cache")
        if verdict.refreshed:
            entry = {**entry, "deps": list(entry["deps"]), "outputs": list(entry["outputs"])}
            for (kind, index), new in verdict.refreshed.items():
                entry[kind][index] = [*entry[kind][index][:1], new, *entry[kind][index][2:]]
            try:
                self.store.write(job.key, entry)
            except OSError:
                self.store.touch(job.key)
        else:
            self.store.touch(job.key)

    def restore(self, path: str, blob: str, mode: int) -> None:
        """Copy a stored output back, in blocks: outputs may be larger than memory should hold.

        Its digest is checked before the copy is renamed into place.
        """
        from jobstamps._fs import atomic_write

        def blocks() -> Iterator[bytes]:
            hasher = fingerprint.blake2b(digest_size=20)
            fd = self.store.open_blob(blob)
            try:
                while block := os.read(fd, _BLOCK):
                    hasher.update(block)
                    yield block
            finally:
                os.close(fd)
            if hasher.hexdigest() != blob:
                raise ReplayError(f"the stored copy of {path} is damaged")

        atomic_write(path, blocks(), private=False)
        os.chmod(path, mode & 0o7777)

    # -- a miss -----------------------------------------------------------------------------

    def begin(
        self,
        job: Job,
        known: dict[str, fingerprint.Fingerprint | None] | None = None,
        count: bool = True,
    ) -> _Recording:
        """Fingerprint the dependencies just before the job runs; count a miss unless told not.

        ``known`` holds fingerprints of files (not directories) just taken for many jobs at
        once: a change since shows when the result is stored, as any change during the run.
        """
        if count:
            self.store.note(hit=False)
        listings: dict[str, fingerprint.Listing] = {}
        known = known or {}
        deps = [
            known[path] if path in known else fingerprint.record(path, job.method, listings)
            for path in job.dependencies
        ]
        return _Recording(job, deps, listings)

    def commit(
        self,
        recording: _Recording,
        payload: dict[str, Any],
        blobs: Sequence[tuple[str, int]] = (),
        trim: bool = True,
        ran: bool = True,
    ) -> str:
        """Store the result of a finished run; return ``""``, or why it was not stored.

        ``trim=False`` leaves the size limit to the caller, who stores many results at once.
        ``ran=False`` stores a result made elsewhere (see :meth:`adopt`).
        """
        job = recording.job
        for path, before in zip(job.dependencies, recording.deps, strict=True):
            if before is None:
                # Stored all the same, so that out_of_date() names the missing file; a missing
                # dependency never hits.
                continue
            # Any change counts, even back to the same contents: the job may have read either.
            # A result made elsewhere was made for the recorded contents, not from the file:
            # a racy file's contents are compared with them at every replay, so are not read
            # again here.
            why = fingerprint.changed_since(path, before, contents=ran)
            if why:
                return f"dependency {path} changed while the job ran ({why})"
        try:
            self.store.create()
            outputs: list[list[object]] = []
            needed = list(blobs)
            for path in job.outputs:
                recorded = fingerprint.record(path, job.method)
                if recorded is None:
                    # Stored all the same, so that out_of_date() names the missing output; an
                    # entry with a missing output never hits.
                    self.say(f"declared output {path} was not created; it runs again next time")
                    outputs.append([path, None, "", 0])
                    continue
                blob = ""
                if job.restore_outputs and os.path.isfile(path):
                    blob, size = self.store.put_file(path)
                    needed.append((blob, size))
                    if fingerprint.changed_since(path, recorded):
                        return f"output {path} changed while it was being stored"
                outputs.append([path, recorded, blob, os.stat(path).st_mode])
            created = time.time_ns()
            self._keep_listings(recording, created)
            entry = {
                "about": job.about,
                "created": created,
                "method": job.method,
                "deps": [
                    [path, fp] for path, fp in zip(job.dependencies, recording.deps, strict=True)
                ],
                "outputs": outputs,
                "blobs": needed,
                "payload": payload,
            }
            self.store.write(job.key, entry)
            if trim and self.store.max_size:
                self.store.trim()
        except OSError as error:
            return f"the cache could not be written ({error.strerror or error})"
        return ""

    def adopt(
        self,
        job: Job,
        deps: list[fingerprint.Fingerprint | None],
        payload: dict[str, Any],
        blobs: Sequence[tuple[str, int]] = (),
    ) -> str:
        """Store a result made elsewhere for ``job``, as :meth:`commit` stores a run's.

        ``deps`` are the dependency fingerprints taken before the result was looked up: the
        result is stored only if no dependency changed since. Return ``""``, or why not. The
        cache is not trimmed: the caller does that once for all it adopts.
        """
        return self.commit(_Recording(job, deps, {}), payload, blobs, trim=False, ran=False)

    def _keep_listings(self, recording: _Recording, created: int) -> None:
        """Store the listings of the job's trees beside its entry, to name what changes in them.

        Read only to explain a miss: a hit costs nothing more.
        """
        if recording.listings:
            data = _encode_listing(created, recording.listings)
            self.store.write_listing(recording.job.key, data)

    # -- the whole protocol -----------------------------------------------------------------

    def run(
        self,
        job: Job,
        compute: Callable[[], tuple[T, dict[str, Any] | None, Sequence[tuple[str, int]]]],
        replay: Callable[[dict[str, Any]], T],
        force: bool = False,
    ) -> T:
        """Replay ``job`` if fresh, else run ``compute`` (once across processes) and store it.

        ``compute`` returns ``(result, payload, blobs)``; a ``None`` payload is not stored.
        ``replay`` turns a stored payload back into a result, or raises :class:`ReplayError`.
        Identical jobs in other processes wait on a per-key lock, then replay this result.
        """
        if force:
            self.say(f"running {job.about}: a re-run was forced")
        else:
            result = self._try_replay(job, replay, announce=True)
            if result is not _MISS:
                return result  # type: ignore[return-value]
        lock = self._lock(job)
        try:
            if not force and lock is not None:
                result = self._try_replay(job, replay, announce=False)
                if result is _MISS:
                    result = self._try_fill(job, replay)
                if result is not _MISS:
                    return result  # type: ignore[return-value]
            recording = self.begin(job)
            value, payload, blobs = compute()
            if payload is not None:
                self._store(recording, payload, blobs)
            return value
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    def _store(
        self, recording: _Recording, payload: dict[str, Any], blobs: Sequence[tuple[str, int]]
    ) -> None:
        """Store a run's result, say whether it was, and pass it on to :attr:`stored`."""
        job = recording.job
        problem = self.commit(recording, payload, blobs)
        if problem:
            for digest, _ in blobs:  # made for this entry, unless shared
                self.store.release_blob(digest)
            self.say(f"not stored: {problem}")
            return
        self.say(f"stored the result of {job.about}")
        self.stored(job, recording.deps, payload)

    def _try_fill(self, job: Job, replay: Callable[[dict[str, Any]], T]) -> object:
        """Replay a result :attr:`fill` found elsewhere and stored, if it found one."""
        if self.fill is None or not self.fill(job):
            return _MISS
        return self._try_replay(job, replay, announce=True)

    def _lock(self, job: Job) -> FileLock | None:
        """Take the job's lock; ``None`` where there can be none (read-only or full disk)."""
        try:
            self.store.create()
            return self.store.lock(job.key).__enter__()
        except CacheDirectoryError:
            raise
        except OSError:
            return None  # run anyway; storing may well fail too, and says so

    def _try_replay(
        self, job: Job, replay: Callable[[dict[str, Any]], T], announce: bool
    ) -> object:
        verdict = self.check(job)
        if not verdict.fresh:
            if announce and self._explain is not None:
                why = verdict.why
                if job.why_new is not None and verdict.trigger == self.store.entry_path(job.key):
                    why += f"; {job.why_new()}"
                self.say(f"running {job.about}: {why}")
            return _MISS
        entry = verdict.entry
        assert entry is not None  # noqa: S101 - fresh verdicts carry their entry
        try:
            self.accept(job, verdict)
            result = replay(entry["payload"])
        except (ReplayError, OSError) as error:
            if announce:  # else the first try, before the lock, said so already
                self.say(f"running {job.about}: the stored result cannot be replayed ({error})")
            return _MISS
        self.store.note(hit=True)
        if self._explain is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["created"] / 1e9))
            self.say(f"replayed {job.about}: nothing changed since it ran at {when}")
        return result


_MISS = object()


def _ignore(*_: object) -> None:
    """Do nothing (the default of :attr:`Engine.stored`)."""


_LISTING = "jobstamps-listing-1"


def _encode_listing(created: int, trees: dict[str, fingerprint.Listing]) -> bytes:
    """Write listings as NUL-ended fields (no name holds a NUL), stamped with their entry."""
    fields = [_LISTING, str(created)]
    for path, entries in trees.items():
        fields += [path, str(len(entries))]
        for name, signature in entries:
            fields += [name, signature]
    return "".join(f"{field}\0" for field in fields).encode("utf-8", "surrogateescape")


def _decode_listing(data: bytes | None, created: int) -> dict[str, fingerprint.Listing]:
    """Read listings written with the entry made at ``created``; ``{}`` for any other file."""
    fields = (data or b"").decode("utf-8", "surrogateescape").split("\0")
    if fields[:2] != [_LISTING, str(created)] or fields[-1]:
        return {}
    trees, index = {}, 2
    try:
        while index < len(fields) - 1:
            path, count = fields[index], int(fields[index + 1])
            names = fields[index + 2 : index + 2 + 2 * count]
            if count < 0 or len(names) != 2 * count:
                return {}
            trees[path] = list(zip(names[::2], names[1::2], strict=True))
            index += 2 + 2 * count
    except ValueError:
        return {}
    return trees
