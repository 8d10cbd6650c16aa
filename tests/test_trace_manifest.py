"""Traced sets written to mean the same on every machine, and manifests of candidate results."""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobstamps.fingerprint import HASH, MTIME
from jobstamps.store import Store
from jobstamps.trace import manifest, paths
from jobstamps.trace.parse import Access, Ignore
from support import backdate, settle

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jobstamps.portable import Memo
    from jobstamps.trace.paths import Entry

LATER = 2**62  # a run that started after every file here was written


def memos_in(root: Path) -> Memo:
    """The memo of a local cache at ``root``, as the key code is handed it."""
    return Store(str(root)).memos


def checkout(root: Path) -> Path:
    """A base directory holding a configuration file, a source and a directory listed."""
    base = root / "work" / "project"
    (base / "src").mkdir(parents=True)
    for path, text in ((base / "setup.cfg", "[tool]\n"), (base / "src" / "a.py", "x = 1\n")):
        path.write_text(text)
        backdate(path, 60)
    return base


def traced(base: Path, system: Path, method: str = MTIME) -> list[Entry]:
    """What a tool run in ``base/src`` used: the checkout's files, a system file, look-ups."""
    access = Access()
    access.read[str(base / "setup.cfg")] = None
    access.read[str(base / "src" / "a.py")] = None
    access.read[str(system)] = None
    access.listed[str(base)] = None
    access.stated[str(base.parent)] = True  # on the way to the checkout
    access.absent[str(base / "src" / ".tool.ini")] = True
    access.absent[str(base.parent / ".tool.ini")] = True  # an upward search above the checkout
    entries, why = paths.record(access, method, LATER, Ignore())
    assert why == ""
    return entries


@pytest.fixture
def system() -> Iterator[Path]:
    """A file far from every checkout, at the same path on both machines (a library)."""
    top = Path(tempfile.mkdtemp(dir="/var/tmp"))  # apart from /tmp, where the checkouts are
    path = top / "lib.so"
    path.write_bytes(b"\x7fELF")
    backdate(path, 60)
    yield path
    shutil.rmtree(top)


def test_paths_are_written_relative_to_the_base_and_files_by_contents(
    tmp_path: Path, system: Path
) -> None:
    base = checkout(tmp_path / "a")
    shared = manifest.portable_set(traced(base, system), str(base), memos_in(tmp_path / "c"))
    assert shared is not None
    places = {(str(path), str(kind)) for path, kind, _ in shared}
    assert ("setup.cfg", "f") in places
    assert ("src/a.py", "f") in places
    assert (".", "d") in places
    assert ("src", "a") in places
    # Above the checkout: checked relative to the base and where it is; the way there: left out.
    assert ("..", "a") in places
    assert (str(base.parent), "a") in places
    assert not any(kind == "k" for _, kind in places)
    assert not any(str(base) in json.dumps(entry) for entry in shared if entry[0] != str(system))
    digests = {str(path): data for path, kind, data in shared if kind == "f"}
    assert len(str(digests["setup.cfg"])) == 40  # a content digest, not a stat


@pytest.mark.parametrize("method", [MTIME, HASH])
def test_a_candidate_holds_in_another_checkout_with_the_same_files(
    tmp_path: Path, system: Path, method: str
) -> None:
    a, b = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    shared = manifest.portable_set(traced(a, system, method), str(a), memos_in(tmp_path / "c"))
    assert shared is not None
    made = manifest.candidate(manifest.result_key("k" * 40, shared, str(a)), shared, str(a))
    memos = memos_in(tmp_path / "d")
    found, local, why = manifest.choose([made], str(b), method, memos)
    assert (found, why) == (made, "")
    # In B's own form: B's later hits are local hits that check B's files.
    assert {str(path) for path, _, _ in local} >= {str(b / "setup.cfg"), str(b / "src")}
    assert paths.check(local, method) is None
    (b / "src" / "a.py").write_text("x = 2\n")
    assert paths.check(local, method) is not None


def test_the_first_difference_is_named_and_no_candidate_is_chosen(
    tmp_path: Path, system: Path
) -> None:
    a, b = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    memos = memos_in(tmp_path / "c")
    shared = manifest.portable_set(traced(a, system), str(a), memos)
    assert shared is not None
    made = manifest.candidate("r" * 40, shared, str(a))
    (b / "setup.cfg").write_text("[tool]\nother = 1\n")
    assert manifest.choose([made], str(b), MTIME, memos)[2] == (
        "traced file setup.cfg has other contents here"
    )
    (b / "setup.cfg").write_text("[tool]\n")
    (b / "src" / ".tool.ini").write_text("")
    why = manifest.choose([made], str(b), MTIME, memos)[2]
    assert why == f"{b / 'src' / '.tool.ini'} was created, where the command looked for it"
    (b / "src" / ".tool.ini").unlink()
    (b.parent / ".tool.ini").write_text("")  # found by B's upward search above its checkout
    assert manifest.choose([made], str(b), MTIME, memos)[0] is None


def test_a_set_that_looked_above_its_checkout_fits_only_a_checkout_as_deep(
    tmp_path: Path, system: Path
) -> None:
    a, deeper = checkout(tmp_path / "a"), checkout(tmp_path / "b" / "deeper")
    memos = memos_in(tmp_path / "c")
    shared = manifest.portable_set(traced(a, system), str(a), memos)
    assert shared is not None
    made = manifest.candidate("r" * 40, shared, str(a))
    why = manifest.choose([made], str(deeper), MTIME, memos)[2]
    assert why == "it looked above its base directory, which is at another depth here"
    inside_only = [entry for entry in shared if not str(entry[0]).startswith("..")]
    made = manifest.candidate("r" * 40, inside_only, str(a))
    assert manifest.choose([made], str(deeper), MTIME, memos)[0] == made


def test_a_path_that_climbs_out_of_the_checkout_through_a_subdirectory_ties_it_to_a_depth(
    tmp_path: Path,
) -> None:
    a, deeper = checkout(tmp_path / "a"), checkout(tmp_path / "b" / "deeper")
    access = Access()
    access.absent[str(a / "src" / ".." / ".." / ".tool.ini")] = True  # from src, two up
    access.stated[str(a / "src" / ".." / "..")] = True  # the way there: left out
    entries, why = paths.record(access, MTIME, LATER, Ignore())
    assert why == ""
    memos = memos_in(tmp_path / "c")
    shared = manifest.portable_set(entries, str(a), memos)
    assert shared == [["src/../..", "a", [".tool.ini"]]]
    made = manifest.candidate("r" * 40, shared, str(a))
    why = manifest.choose([made], str(deeper), MTIME, memos)[2]
    assert why == "it looked above its base directory, which is at another depth here"
    assert manifest.choose([made], str(checkout(tmp_path / "c")), MTIME, memos)[0] == made


def test_a_search_that_found_nothing_up_to_the_root_fits_a_checkout_at_any_depth(
    tmp_path: Path, system: Path
) -> None:
    a, deeper = checkout(tmp_path / "a"), checkout(tmp_path / "b" / "deeper")
    entries = traced(a, system)
    access = Access()
    for directory in [*a.parents]:  # as mypy looks for its configuration without a .git
        access.absent[str(directory / ".tool.ini")] = True
        access.absent[str(directory / "tool.toml")] = True
    found, why = paths.record(access, MTIME, LATER, Ignore())
    assert why == ""
    memos = memos_in(tmp_path / "c")
    shared = manifest.portable_set(
        [entry for entry in entries if entry[1] != "a"] + found, str(a), memos
    )
    assert shared is not None
    assert ["..", "u", [".tool.ini", "tool.toml"]] in shared
    made = manifest.candidate("r" * 40, shared, str(a))
    found_here, local, _ = manifest.choose([made], str(deeper), MTIME, memos)
    assert found_here == made
    assert [str(deeper.parent.parent), "a", [".tool.ini", "tool.toml"]] in local
    (deeper.parent.parent / "tool.toml").write_text("")  # above B's checkout only
    why = manifest.choose([made], str(deeper), MTIME, memos)[2]
    assert (
        why == f"{deeper.parent.parent / 'tool.toml'} was created, where the command looked for it"
    )


def test_a_system_file_is_compared_where_it_is_by_contents(tmp_path: Path, system: Path) -> None:
    a, b = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    memos = memos_in(tmp_path / "c")
    shared = manifest.portable_set(traced(a, system), str(a), memos)
    assert shared is not None
    made = manifest.candidate("r" * 40, shared, str(a))
    system.write_bytes(b"\x7fELF")  # rewritten, same contents: another stat, same digest
    assert manifest.choose([made], str(b), MTIME, memos)[0] == made
    system.write_bytes(b"\x7fELF2")
    assert manifest.choose([made], str(b), MTIME, memos)[2] == (
        f"traced file {system} has other contents here"
    )


def test_a_file_changed_since_it_was_traced_is_not_shared(tmp_path: Path, system: Path) -> None:
    base = checkout(tmp_path / "a")
    entries = traced(base, system)
    (base / "setup.cfg").write_text("[tool]\nchanged = 1\n")
    assert manifest.portable_set(entries, str(base), memos_in(tmp_path / "c")) is None


@pytest.mark.parametrize("path", ["/proc/kmsg", "/dev/zero", "src/.mypy_cache/x.json"])
def test_a_candidate_naming_a_path_no_trace_records_is_refused(tmp_path: Path, path: str) -> None:
    base = checkout(tmp_path / "b")
    made = manifest.candidate("r" * 40, [[path, "f", "0" * 40]], str(base))
    why = manifest.choose([made], str(base), MTIME, memos_in(tmp_path / "c"))[2]
    assert why.endswith("which no trace records")


def test_digests_are_kept_in_one_memo_per_command_with_those_used_last(tmp_path: Path) -> None:
    memo = memos_in(tmp_path / "c")
    first = manifest.Digests(memo, "command")
    assert first.get("a") is None
    first.put("a", "1" * 40)
    first.put("b", "2" * 40)
    assert first.get("a") == "1" * 40  # before it is saved too
    first.save()
    again = manifest.Digests(memo, "command")
    assert (again.get("a"), again.get("b")) == ("1" * 40, "2" * 40)
    assert manifest.Digests(memo, "another command").get("a") is None
    latest = manifest.Digests(memo, "command")
    latest.get("b")
    latest.put("c", "3" * 40)
    latest.save()
    kept = manifest.Digests(memo, "command")
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, "2" * 40, "3" * 40)


def test_a_candidate_is_checked_with_the_digests_remembered_for_its_command(
    tmp_path: Path, system: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)  # the files here count as settled: their digests are remembered
    a, b = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    shared = manifest.portable_set(traced(a, system), str(a), memos_in(tmp_path / "c"))
    assert shared is not None
    made = manifest.candidate("r" * 40, shared, str(b))
    memo = memos_in(tmp_path / "d")
    digests = manifest.Digests(memo, "command")
    assert manifest.choose([made], str(b), MTIME, digests)[0] == made
    digests.save()
    name = digests._name  # noqa: SLF001 - where the digests are kept
    lines = (memo.get(name) or "").splitlines()
    assert len(lines) == 3  # the checkout's two files and the system file, by their stat
    assert manifest.choose([made], str(b), MTIME, manifest.Digests(memo, "command"))[0] == made
    # Proves the remembered digests are what is compared next time (no file is read again).
    memo.put(name, "".join(f"{line[:40]} {'f' * 40}\n" for line in lines))
    why = manifest.choose([made], str(b), MTIME, manifest.Digests(memo, "command"))[2]
    assert why.endswith("has other contents here")


def test_merge_puts_the_newest_first_once_and_keeps_a_few() -> None:
    made = [manifest.candidate(f"{n:040d}", [], "/b") for n in range(20)]
    merged: list[manifest.Candidate] = []
    for item in made:
        merged = manifest.merge(merged, item)
    merged = manifest.merge(merged, made[15])
    assert [item["result"] for item in merged[:2]] == [made[15]["result"], made[19]["result"]]
    assert len(merged) == manifest.MAX_CANDIDATES
    assert manifest.decode(manifest.encode(merged)) == merged


DAMAGED = b'{"format": "jobstamps-manifest-1", "candidates": [%s]}'


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"format": "jobstamps-manifest-0", "candidates": []}',
        b'{"format": "jobstamps-manifest-1"}',
        DAMAGED % b'{"result": "../x", "depth": 1, "traced": []}',
        DAMAGED % b'{"result": "ab", "depth": 1, "traced": [["a", "f", 1]]}',
        DAMAGED % b'{"result": "ab", "depth": 1, "traced": [["a", "x", null]]}',
    ],
    ids=["json", "format", "no-candidates", "result", "digest", "kind"],
)
def test_a_damaged_manifest_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="a manifest"):
        manifest.decode(zlib.compress(data))


@pytest.mark.parametrize(
    "data",
    [
        b"not compressed",
        manifest.encode([])[:-3],
        manifest.encode([]) + b"more",
        zlib.compress(b" " * (manifest.MAX_MANIFEST + 1)),
    ],
    ids=["raw", "cut-short", "trailing", "bomb"],
)
def test_a_manifest_that_cannot_be_inflated_whole_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="a manifest"):
        manifest.decode(data)
