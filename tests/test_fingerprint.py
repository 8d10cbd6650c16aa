"""Fingerprints: stat signatures compared for equality, content digests, racy files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

import support
from jobstamps import fingerprint
from jobstamps.fingerprint import HASH, MTIME, check, digest_bytes, digest_file, record

if TYPE_CHECKING:
    from pathlib import Path

METHODS = [MTIME, HASH]


def stat_of(path: Path) -> tuple[int, int, int, int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)


def replace_keeping_times(path: Path, data: bytes) -> None:
    """Put ``data`` in a new file over ``path`` with the old modification time (``cp -p``)."""
    before = os.stat(path)
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(fresh, path)


def recorded_now(path: str | Path, method: str) -> fingerprint.Fingerprint:
    """Record ``path``, which must exist."""
    recorded = record(str(path), method)
    assert recorded is not None
    return recorded


def why_changed(path: str | Path, method: str, recorded: fingerprint.Fingerprint) -> str:
    """Check ``path``, which must have changed (so nothing is refreshed); return why."""
    why, refreshed = check(str(path), method, recorded)
    assert why is not None
    assert refreshed is None
    return why


@pytest.fixture
def dep(tmp_path: Path) -> Path:
    path = tmp_path / "dep.txt"
    path.write_bytes(b"original contents\n")
    return path


# -- digests -------------------------------------------------------------------------------


def test_digest_file_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # several read chunks
    path = tmp_path / "big"
    path.write_bytes(data)
    assert digest_file(str(path)) == digest_bytes(data)
    assert digest_bytes(data) != digest_bytes(data[:-1])
    assert len(digest_bytes(b"")) == 40


def test_digest_fd_digests_what_is_left_to_read(tmp_path: Path) -> None:
    # Blobs are checked through a descriptor opened without following links.
    data = os.urandom(3 << 20)
    path = tmp_path / "big"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fingerprint.digest_fd(fd) == digest_bytes(data)
        os.lseek(fd, 5, os.SEEK_SET)
        assert fingerprint.digest_fd(fd) == digest_bytes(data[5:])
    finally:
        os.close(fd)


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    return root


def test_the_digest_of_a_tree_covers_names_and_contents(tmp_path: Path) -> None:
    one, two = make_tree(tmp_path / "one"), make_tree(tmp_path / "two")
    assert digest_file(str(one)) == digest_file(str(two))
    (two / "sub" / "b.txt").write_text("B")
    assert digest_file(str(one)) != digest_file(str(two))
    (two / "sub" / "b.txt").write_text("b")
    (two / "sub" / "b.txt").rename(two / "sub" / "c.txt")
    assert digest_file(str(one)) != digest_file(str(two))


def test_a_tree_leaves_out_version_control_and_caches(tmp_path: Path) -> None:
    one, two = make_tree(tmp_path / "one"), make_tree(tmp_path / "two")
    for name in (".git", "__pycache__", ".mypy_cache"):
        (two / name).mkdir()
        (two / name / "x").write_text("tools rewrite these")
    assert digest_file(str(one)) == digest_file(str(two))
    (two / ".gitignore").write_text("not a folder: it counts")
    assert digest_file(str(one)) != digest_file(str(two))


@pytest.mark.parametrize("method", METHODS)
def test_a_tree_changes_when_a_file_below_it_does(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, method)
    assert check(str(tree), method, recorded) == (None, None)
    (tree / "sub" / "b.txt").write_text("B")
    why_changed(tree, method, recorded)
    (tree / "sub" / "b.txt").write_text("b")
    (tree / "sub" / "new.txt").write_text("")
    why_changed(tree, method, recorded)
    (tree / "sub" / "new.txt").unlink()
    assert (check(str(tree), method, recorded)[0] is None) == (method == HASH)


def test_a_tree_in_mtime_mode_says_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, MTIME)
    support.backdate(tree / "a.txt", 60)
    assert check(str(tree), MTIME, recorded) == (
        "entries below it were added, removed or modified",
        None,
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("link", ["to-directory", "dangling"])
def test_a_tree_with_symbolic_links_can_be_recorded(tmp_path: Path, method: str, link: str) -> None:
    tree = make_tree(tmp_path / "tree")
    target = tree / "sub" if link == "to-directory" else tree / "nowhere"
    (tree / "link").symlink_to(target)
    recorded = recorded_now(tree, method)  # recent, hence racy, hence hashed in both modes
    assert check(str(tree), method, recorded)[0] is None


# -- record --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_record_of_a_missing_path_is_none(tmp_path: Path, method: str) -> None:
    (tmp_path / "file").write_text("")
    assert record(str(tmp_path / "absent"), method) is None
    assert record(str(tmp_path / "file" / "below"), method) is None  # a parent is a file


@pytest.mark.parametrize("method", METHODS)
def test_a_path_that_cannot_be_stated_counts_as_missing(tmp_path: Path, method: str) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert record(str(loop), method) is None
    assert record(str(tmp_path / ("x" * 300)), method) is None
    recorded = (1, 1, 1, 1, 1, 1, "", False)
    assert check(str(loop), method, recorded)[0] is not None


def test_record_takes_the_stat_signature(dep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, MTIME)
    assert recorded[:6] == stat_of(dep)
    assert recorded[6:] == ("", False)  # a settled file is not read in mtime mode


def test_record_in_hash_mode_stores_the_content_digest(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    assert recorded[6] == digest_bytes(b"original contents\n")
    assert recorded[7] is False


@pytest.mark.parametrize("method", METHODS)
def test_a_file_written_just_now_is_racy_and_hashed(dep: Path, method: str) -> None:
    recorded = recorded_now(dep, method)
    assert recorded[7] is True
    assert recorded[6] == digest_bytes(b"original contents\n")


def test_an_old_modification_time_with_a_recent_change_time_is_racy(dep: Path) -> None:
    # Restoring an old mtime (cp -p, tar) does not make a file safe to judge by its stat:
    # the change time still says it was written just now.
    support.backdate(dep, 3600)
    recorded = recorded_now(dep, MTIME)
    assert recorded[7] is True
    assert recorded[6] == digest_bytes(b"original contents\n")


# -- check: mtime mode ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_an_untouched_file_is_unchanged(
    dep: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, method)
    assert check(str(dep), method, recorded) == (None, None)


@pytest.mark.parametrize("method", METHODS)
def test_a_deleted_file_is_missing(dep: Path, method: str) -> None:
    recorded = recorded_now(dep, method)
    dep.unlink()
    assert check(str(dep), method, recorded) == ("it is missing", None)


def test_mtime_mode_treats_a_touch_as_a_change(dep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, MTIME)
    os.utime(dep, ns=(recorded[0] + 1_000_000, recorded[0] + 1_000_000))
    assert "modification time" in why_changed(dep, MTIME, recorded)


def test_mtime_mode_treats_an_older_modification_time_as_a_change(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git checkout, cp -p and tar restore older files: "newer than" would miss these.
    support.settle(monkeypatch)
    recorded = recorded_now(dep, MTIME)
    replace_keeping_times(dep, b"restored content!\n")  # same size
    support.backdate(dep, 86400)
    assert "modification time" in why_changed(dep, MTIME, recorded)


def test_mtime_mode_sees_a_new_inode_with_the_same_times_and_size(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, MTIME)
    replace_keeping_times(dep, b"ORIGINAL CONTENTS\n")
    assert os.stat(dep).st_mtime_ns == recorded[0]
    assert "inode" in why_changed(dep, MTIME, recorded)


def test_mtime_mode_names_a_size_change(dep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, MTIME)
    with dep.open("ab") as handle:
        handle.write(b"more")
    os.utime(dep, ns=(recorded[0], recorded[0]))
    why = why_changed(dep, MTIME, recorded)
    assert "size" in why
    assert "modification time" not in why


# -- check: hash mode ----------------------------------------------------------------------


def test_hash_mode_accepts_a_touch_and_refreshes_the_fingerprint(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    support.backdate(dep, 60)
    why, refreshed = check(str(dep), HASH, recorded)
    assert why is None
    assert refreshed == (*stat_of(dep), recorded[6], False)
    # The refreshed fingerprint is itself unchanged next time, without reading the file.
    assert check(str(dep), HASH, refreshed) == (None, None)


def test_hash_mode_accepts_identical_contents_in_a_new_file(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    inode = os.stat(dep).st_ino
    copy = dep.with_name("copy")
    copy.write_bytes(dep.read_bytes())
    os.replace(copy, dep)
    assert os.stat(dep).st_ino != inode
    why, refreshed = check(str(dep), HASH, recorded)
    assert why is None
    assert refreshed is not None
    assert refreshed[3] == os.stat(dep).st_ino


def test_hash_mode_sees_a_content_change(dep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    replace_keeping_times(dep, b"ORIGINAL CONTENTS\n")
    assert check(str(dep), HASH, recorded) == ("its contents changed", None)


def test_hash_mode_sees_a_file_turned_into_a_directory(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    dep.unlink()
    dep.mkdir()
    why, _ = check(str(dep), HASH, recorded)
    assert why == "its contents changed"


def test_hash_mode_trusts_an_unchanged_settled_stat_without_reading(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stat cache: a recorded digest that does not match the file proves it was not read.
    support.settle(monkeypatch)
    recorded = (*stat_of(dep), digest_bytes(b"something else"), False)
    assert check(str(dep), HASH, recorded) == (None, None)


# -- racy files ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_racy_file_is_judged_by_its_contents(dep: Path, method: str) -> None:
    # Same stat as recorded, but recorded racy with the digest of other contents: an edit
    # within one timestamp tick that kept the size. Only the contents can tell.
    recorded = (*stat_of(dep), digest_bytes(b"original CONTENTS\n"), True)
    assert check(str(dep), method, recorded) == ("its contents changed", None)


@pytest.mark.parametrize("method", METHODS)
def test_a_racy_file_with_the_same_contents_is_unchanged(
    dep: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", 3600 * 10**9)  # racy however slow the test
    recorded = recorded_now(dep, method)
    assert recorded[7] is True
    # Still racy: nothing worth storing anew.
    assert check(str(dep), method, recorded) == (None, None)


@pytest.mark.parametrize("method", METHODS)
def test_a_racy_file_that_settled_is_refreshed_as_not_racy(
    dep: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = recorded_now(dep, method)
    assert recorded[7] is True
    support.settle(monkeypatch)
    why, refreshed = check(str(dep), method, recorded)
    assert why is None
    assert refreshed == (*recorded[:7], False)


@pytest.mark.parametrize("method", METHODS)
def test_a_same_size_edit_with_the_old_modification_time_is_seen(dep: Path, method: str) -> None:
    recorded = recorded_now(dep, method)
    dep.write_bytes(b"ORIGINAL contents\n")
    os.utime(dep, ns=(recorded[0], recorded[0]))
    assert os.stat(dep).st_size == recorded[2]
    why_changed(dep, method, recorded)


def test_racy_window_counts_from_the_later_of_both_times(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", 10**9 * 3600 * 24 * 365)
    old = recorded_now(dep, MTIME)
    assert old[7] is True
    monkeypatch.setattr(fingerprint, "RACY_WINDOW_NS", 0)
    settled = recorded_now(dep, MTIME)
    assert settled[7] is False
    assert settled[6] == ""


# -- the mode is part of a file's identity ---------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_chmod_is_a_change_in_both_methods(
    dep: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, method)
    dep.chmod(0o755)
    assert "mode" in why_changed(dep, method, recorded)


def test_a_chmod_below_a_tree_is_a_change_in_hash_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, HASH)
    (tree / "sub" / "b.txt").chmod(0o755)
    assert check(str(tree), HASH, recorded)[0] == "its contents changed"


def test_a_fingerprint_of_an_earlier_shape_never_matches(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    st = os.stat(dep)
    old = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, "", False)
    for method in METHODS:
        why = why_changed(dep, method, old)  # type: ignore[arg-type]
        assert why == "it was recorded by another version of jobstamps"


# -- changes while a job runs ------------------------------------------------------------------


def test_changed_since_sees_contents_put_back_with_their_old_times(
    dep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    recorded = recorded_now(dep, HASH)
    assert fingerprint.changed_since(str(dep), recorded) is None
    before = os.stat(dep)
    dep.write_bytes(b"ORIGINAL CONTENTS\n")
    dep.write_bytes(b"original contents\n")
    os.utime(dep, ns=(before.st_atime_ns, before.st_mtime_ns))
    # Same contents, so a hit would accept it; but the job may have read the other version.
    assert check(str(dep), HASH, recorded)[0] is None
    assert fingerprint.changed_since(str(dep), recorded) == "its change time changed"


def test_changed_since_without_contents_compares_the_stat_alone(dep: Path) -> None:
    recorded = recorded_now(dep, HASH)
    assert recorded[7] is True  # written just now
    # The same stat with other contents: an edit within one timestamp tick.
    same_tick = (*recorded[:6], "0" * 40, True)
    assert fingerprint.changed_since(str(dep), same_tick) == "its contents changed"
    assert fingerprint.changed_since(str(dep), same_tick, contents=False) is None
    dep.write_text("a longer input\n")
    assert fingerprint.changed_since(str(dep), recorded, contents=False) is not None


# -- trees -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_tree_follows_a_link_to_a_directory(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    elsewhere = make_tree(tmp_path / "elsewhere")
    (tree / "vendor").symlink_to(elsewhere)
    recorded = recorded_now(tree, method)
    assert check(str(tree), method, recorded) == (None, None)
    (elsewhere / "sub" / "b.txt").write_text("B")
    assert check(str(tree), method, recorded)[0] is not None


@pytest.mark.parametrize("method", METHODS)
def test_a_link_loop_in_a_tree_ends_and_stands_for_where_it_leads(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A link back to an ancestor (or a second way to a directory already covered) stands for
    # the path where that directory was covered, so the walk ends and always gives one answer.
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    (tree / "sub" / "up").symlink_to("..")
    (tree / "sub" / "again").symlink_to("../sub")
    recorded = recorded_now(tree, method)
    assert recorded_now(tree, method) == recorded
    assert check(str(tree), method, recorded) == (None, None)
    (tree / "sub" / "up").unlink()
    (tree / "sub" / "up").symlink_to(".")  # a loop to another directory
    assert check(str(tree), method, recorded)[0] is not None


@pytest.mark.parametrize("method", METHODS)
def test_a_new_empty_sub_directory_is_a_change(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, method)
    (tree / "sub" / "empty").mkdir()
    assert check(str(tree), method, recorded)[0] is not None


@pytest.mark.parametrize("method", METHODS)
def test_creating_an_excluded_folder_anywhere_in_a_tree_is_no_change(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What running a linter does (__pycache__, .ruff_cache): the tree's own times change, its
    # covered entries do not.
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, method)
    for folder in (tree / "__pycache__", tree / "sub" / ".ruff_cache"):
        folder.mkdir()
        (folder / "data").write_text("rewritten by tools")
    assert check(str(tree), method, recorded) == (None, None)


@pytest.mark.parametrize("method", METHODS)
def test_tree_fingerprints_keep_entries_apart(tmp_path: Path, method: str) -> None:
    # {a -> T, bx} and {a -> Tb, x} once ran together into the same bytes.
    one, two = tmp_path / "one", tmp_path / "two"
    for root, target, name in ((one, "T", "bx"), (two, "Tb", "x")):
        root.mkdir()
        (root / "a").symlink_to(target)
        (root / name).write_text("same")
    assert digest_file(str(one)) != digest_file(str(two))
    assert recorded_now(one, method)[:6] != recorded_now(two, method)[:6]


def test_why_unrecorded_tells_missing_from_present(tmp_path: Path) -> None:
    assert fingerprint.why_unrecorded(str(tmp_path / "absent"), HASH) == "does not exist"
    assert fingerprint.why_unrecorded(str(tmp_path / "absent" / "x"), MTIME) == "does not exist"
    (tmp_path / "now").write_text("")
    assert fingerprint.why_unrecorded(str(tmp_path / "now"), HASH) == (
        "was missing or unreadable when the result was stored"
    )


# -- files that are not regular: never opened ---------------------------------------------

FIFO_PROBE = """
import os, sys
from jobstamps import fingerprint
path, method = sys.argv[1], sys.argv[2]
recorded = fingerprint.record(path, method)
assert recorded is not None
assert fingerprint.check(path, method, recorded) == (None, None), "unchanged"
print(recorded[6])
"""


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("where", ["itself", "in-a-tree"])
def test_a_fifo_is_fingerprinted_without_being_opened(
    tmp_path: Path, method: str, where: str
) -> None:
    # Recent, hence racy, hence read in mtime mode too; opening a FIFO would hang, which the
    # timeout turns into a failure.
    tree = make_tree(tmp_path / "tree")
    os.mkfifo(tree / "fifo")
    path = tree / "fifo" if where == "itself" else tree
    done = support.run_python(FIFO_PROBE, str(path), method, timeout=30)
    if where == "itself":
        assert done.stdout.startswith("special:")


def test_a_chmod_of_a_tree_itself_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    support.settle(monkeypatch)
    tree = make_tree(tmp_path / "tree")
    recorded = recorded_now(tree, MTIME)
    tree.chmod(0o700)
    assert check(str(tree), MTIME, recorded) == ("its mode changed", None)
