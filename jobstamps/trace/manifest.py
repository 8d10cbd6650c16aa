"""Traced results shared through a remote cache, as ccache shares its manifests.

A traced command's remote key names a *manifest*: a small JSON document listing candidate
results, each with the traced set it was made with, written so that it means the same on
every machine:

- a path inside the base directory is written relative to it; a path outside it stays
  absolute, and matches only on machines that have the same path (the interpreter, shared
  libraries, ``/etc``);
- a path outside the base directory that shares more than ``/`` with it (an upward search for
  a configuration file above the checkout, a sibling checkout named by ``../``) is checked
  both where it is and relative to the base directory (``/home/a/setup.cfg`` and
  ``../setup.cfg``): the command may have found it either way. Such a candidate fits only a
  base directory as deep as its own, except for names looked for in every directory above
  the base directory up to ``/`` and found in none (an upward search that found nothing):
  they are checked in every directory above the other machine's base directory. The
  directories on the way to the base directory are left out: they say where the checkout
  is, which the key ignores on purpose;
- a file by the digest of its contents, never by time; a look-up that found nothing, a
  listing, a link's target, a path's type as :mod:`jobstamps.trace.paths` records them.

Each candidate's result is a record of its own, keyed by the manifest key and its traced set,
so machines whose traced sets differ keep results side by side. A machine replays a candidate
only when every one of its entries holds there; it then stores the result with the traced set
in its own local form (:func:`choose`), so its later hits are local hits.
"""

from __future__ import annotations

import json
import os
import stat
import zlib

from jobstamps import fingerprint, key
from jobstamps.fingerprint import HASH
from jobstamps.portable import content_digest, inside, relative
from jobstamps.trace import paths
from jobstamps.trace.parse import Ignore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobstamps.portable import Memo
    from jobstamps.trace.paths import Entry

    #: One result a manifest names: its record's key, the depth of the base directory it was
    #: made under, and its traced set in portable form.
    Candidate = dict[str, Any]

__all__ = ["Digests", "choose", "decode", "encode", "merge", "portable_set", "result_key"]

FORMAT = "jobstamps-manifest-1"
#: A manifest keeps this many candidates, newest first: enough for the machines of a team
#: whose toolchains differ, small enough to be read on every remote look-up.
MAX_CANDIDATES = 8
#: No manifest is read beyond this size once inflated (a hostile server could send a bomb).
MAX_MANIFEST = 64 << 20
_KINDS = frozenset("fkKlnNaAduU")
#: Look-ups that found nothing in every directory above the base directory, up to ``/`` (an
#: upward search for a configuration file): ``u`` as ``a``, ``U`` as ``A``, at any depth.
_UPWARD = {"a": "u", "A": "U"}


class Digests:
    """The content digests of one command's traced files, kept together in one memo.

    A traced set holds hundreds of files (an interpreter's modules, a tool's stubs): one memo
    read and one written per look-up, where a memo a file would create hundreds of files.
    Each digest is remembered by its file's path and stat (see
    :func:`jobstamps.portable.content_digest`), so a file is read once until it changes; the
    memo keeps only the digests used last time.
    """

    def __init__(self, memo: Memo, command: str) -> None:
        self._memo = memo
        self._name = key.command_key(["jobstamps-traced-digests-1", command])
        self._known: dict[str, str] = {}
        for line in (memo.get(self._name) or "").splitlines():
            name, _, digest = line.partition(" ")
            self._known[name] = digest
        self._used: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        """Return the digest remembered under ``name``, or ``None``."""
        digest = self._used.get(name) or self._known.get(name)
        if digest is not None:
            self._used[name] = digest
        return digest

    def put(self, name: str, value: str) -> None:
        """Remember a digest until :meth:`save`."""
        self._used[name] = value

    def save(self) -> None:
        """Write the digests used since this was made, if any is new; never fails the caller."""
        if any(self._known.get(name) != digest for name, digest in self._used.items()):
            self._memo.put(self._name, "".join(f"{n} {d}\n" for n, d in self._used.items()))
            self._known = dict(self._used)


def _depth(base: str) -> int:
    return base.rstrip("/").count("/")


def _places(path: str, kind: str, base: str) -> list[str]:
    """Write ``path`` as it means the same elsewhere (see the module's text)."""
    if kind in {"k", "K", "l"} and base.startswith(os.path.normpath(path).rstrip("/") + "/"):
        return []  # a directory on the way to the checkout: where it is, not what it holds
    if inside(path, base):
        return [relative(path, base)]
    if os.path.commonpath([path, base]) == "/":
        return [path]
    return [os.path.relpath(path, base), path]


def _local(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def portable_set(entries: Sequence[Entry], base: str, memo: Memo) -> list[Entry] | None:
    """Write a local traced set in portable form; ``None`` if a file changed since it was traced.

    A file traced by its stat alone is read now (its digest remembered in ``memo``).
    """
    shared: list[Entry] = []
    for path, kind, data in entries:
        where, what, value = str(path), str(kind), data
        if what == "f":
            value = _digest_of(where, data)  # type: ignore[arg-type]
            if value is None:
                value = _settled_digest(where, data, memo)  # type: ignore[arg-type]
            if value is None:
                return None
        shared += [[place, what, value] for place in _places(where, what, base)]
    return _upward(shared, base)


def _level(path: str, depth: int) -> int:
    """How many directories above the base directory a portable path is; 0 if not one."""
    if path == "/":
        return depth
    parts = path.split("/")
    return len(parts) if all(part == ".." for part in parts) else 0


def _upward(shared: list[Entry], base: str) -> list[Entry]:
    """Write names looked for and not found in every directory above the base as one entry.

    Such a search finds nothing above another machine's base directory either only if it
    finds nothing in any directory above it, however many there are: checked that way, it
    does not tie the result to a base directory as deep.
    """
    depth = _depth(base)
    levels: dict[tuple[str, str], set[int]] = {}
    for path, kind, data in shared:
        level = _level(str(path), depth)
        if kind in _UPWARD and 0 < level <= depth:
            for name in data:  # type: ignore[attr-defined]
                levels.setdefault((str(kind), str(name)), set()).add(level)
    everywhere = {found for found, at in levels.items() if len(at) == depth}
    if not everywhere:
        return shared
    kept: list[Entry] = []
    for path, kind, data in shared:
        if kind in _UPWARD and 0 < _level(str(path), depth) <= depth:
            rest = [name for name in data if (kind, name) not in everywhere]  # type: ignore[attr-defined]
            if rest:
                kept.append([path, kind, rest])
        else:
            kept.append([path, kind, data])
    for kind, upward in _UPWARD.items():
        names = sorted(name for found, name in everywhere if found == kind)
        if names:
            kept.append(["..", upward, names])
    return kept


def _above(base: str) -> list[str]:
    """Return the directories above ``base``, up to ``/``."""
    found = []
    directory = base
    while directory != "/":
        directory = os.path.dirname(directory)
        found.append(directory)
    return found


def _digest_of(path: str, recorded: fingerprint.Fingerprint) -> str | None:
    """Return the digest a hash-mode fingerprint holds, if the file has not changed since."""
    if recorded[6] and fingerprint.changed_since(path, recorded, contents=False) is None:
        return recorded[6]
    return None


def _settled_digest(path: str, recorded: fingerprint.Fingerprint, memo: Memo) -> str | None:
    try:
        digest = content_digest(path, memo)
    except OSError:
        return None
    return digest if fingerprint.changed_since(path, recorded, contents=False) is None else None


def result_key(manifest_key: str, traced: Sequence[Entry], base: str) -> str:
    """Key the result made with ``traced`` (portable) apart from the others of its manifest."""
    text = json.dumps(traced, separators=(",", ":"))
    return key.command_key([FORMAT, manifest_key, f"depth:{_depth(base)}", text])


def candidate(result: str, traced: list[Entry], base: str) -> Candidate:
    """Describe one result for a manifest."""
    return {"result": result, "depth": _depth(base), "traced": traced}


def merge(candidates: Sequence[Candidate], new: Candidate) -> list[Candidate]:
    """Put ``new`` first, drop an older copy of it, keep the newest :data:`MAX_CANDIDATES`."""
    others = [item for item in candidates if item["result"] != new["result"]]
    return [new, *others][:MAX_CANDIDATES]


def encode(candidates: Sequence[Candidate]) -> bytes:
    """Return a manifest's bytes: ASCII JSON (names that are not UTF-8 survive escaped), zlib.

    A traced set of thousands of paths shrinks about tenfold: a manifest mostly travels
    inside its record.
    """
    text = json.dumps({"format": FORMAT, "candidates": list(candidates)}).encode("ascii")
    return zlib.compress(text, 6)


def decode(data: bytes) -> list[Candidate]:
    """Read a manifest; raise :class:`ValueError` for one that is damaged or of another format."""
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(data, MAX_MANIFEST)
    except zlib.error as error:
        raise ValueError(f"a manifest cannot be inflated ({error})") from None
    if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise ValueError("a manifest is cut short, too large or followed by other data")
    try:
        document = json.loads(text.decode("ascii"))
    except (ValueError, UnicodeError) as error:
        raise ValueError(f"a manifest is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("a manifest of another format")
    candidates = document.get("candidates")
    if not isinstance(candidates, list):
        raise ValueError("a manifest without candidates")  # noqa: TRY004 - damaged data
    for item in candidates:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("result"), str)
            and item["result"].isascii()
            and item["result"].isalnum()
            and isinstance(item.get("depth"), int)
            and isinstance(item.get("traced"), list)
            and all(_valid(entry) for entry in item["traced"])
        ):
            raise ValueError("a manifest's candidate is damaged")
    return candidates


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3  # noqa: PLR2004 - path, kind, data
        and isinstance(entry[0], str)
        and bool(entry[0])
        and "\0" not in entry[0]
        and entry[1] in _KINDS
        and (entry[1] != "f" or isinstance(entry[2], str))
    )


def choose(
    candidates: Sequence[Candidate], base: str, method: str, memo: Memo
) -> tuple[Candidate | None, list[Entry], str]:
    """Find the first candidate whose traced set holds here, and that set in local form.

    Returns ``(candidate, local entries, "")``, or ``(None, [], why)`` naming what differs
    here for the newest candidate.
    """
    first_why = ""
    for item in candidates:
        local, why = _localize(item, base, method, memo)
        if local is not None:
            return item, local, ""
        first_why = first_why or why
    return None, [], first_why


def _localize(
    item: Candidate, base: str, method: str, memo: Memo
) -> tuple[list[Entry] | None, str]:
    """Check a candidate's traced set here; return it in local form, or why it does not hold.

    Files are compared last, by contents read together: the other entries cost a stat each.
    """
    traced: list[Entry] = item["traced"]
    if item["depth"] != _depth(base) and any(
        ".." in str(path).split("/") and kind not in {"u", "U"} for path, kind, _ in traced
    ):
        return None, "it looked above its base directory, which is at another depth here"
    local: list[Entry] = []
    files: list[tuple[str, str, str, fingerprint.Fingerprint]] = []
    never = Ignore()  # what no trace records (/proc, /dev: reading there could block)
    for path, kind, data in traced:
        where = _local(str(path), base)
        if never(where):
            return None, f"it names {where}, which no trace records"
        shown = where if str(path).startswith("..") else str(path)
        if kind == "f":
            # The stat comes before the read: a change in between shows in a later stat.
            recorded = fingerprint.record(where, fingerprint.MTIME)
            if recorded is None:
                return None, f"traced file {shown} does not exist or cannot be read here"
            if not stat.S_ISREG(recorded[5]):
                return None, f"traced file {shown} is not a regular file here"
            files.append((shown, where, str(data), recorded))
            continue
        checked = [[where, kind, data]]
        if kind in {"u", "U"}:
            absent = "a" if kind == "u" else "A"
            checked = [[directory, absent, data] for directory in _above(base)]
        found = paths.check(checked, method)
        if found is not None:
            return None, found[1]
        local += checked
    why = _compare_files(files, method, memo, local)
    return (None, why) if why else (local, "")


def _compare_files(
    files: list[tuple[str, str, str, fingerprint.Fingerprint]],
    method: str,
    memo: Memo,
    local: list[Entry],
) -> str:
    """Compare each file's contents here with its digest, adding it to ``local``; say why not."""
    for (shown, where, digest, recorded), here in zip(
        files, _digest_all([where for _, where, _, _ in files], memo), strict=True
    ):
        why = ""
        if isinstance(here, OSError):
            why = f"cannot be read here ({here.strerror or here})"
        elif here != digest:
            why = "has other contents here"
        elif fingerprint.changed_since(where, recorded, contents=False) is not None:
            why = "changed while it was being checked"
        if why:
            return f"traced file {shown} {why}"
        local.append(
            [where, "f", (*recorded[:6], here, recorded[7]) if method == HASH else recorded]
        )
    return ""


#: From this many files on, their contents are read by a few threads at once (hashing
#: releases the interpreter's lock): a traced set holds an interpreter's libraries.
_THREADS_FROM = 16


def _digest_all(files: list[str], memo: Memo) -> list[str | OSError]:
    """Return the content digest of each file (remembered in ``memo``), or why it is unreadable."""

    def one(path: str) -> str | OSError:
        try:
            return content_digest(path, memo)
        except OSError as error:
            return error

    if len(files) < _THREADS_FROM:
        return [one(path) for path in files]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, files))
