"""The traced set: recorded from what a run used, checked against the file system on a hit."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from jobstamps.fingerprint import MTIME
from jobstamps.trace import paths
from jobstamps.trace.parse import Access, Ignore
from support import backdate

if TYPE_CHECKING:
    from pathlib import Path

LATER = time.time_ns() + 10**12  # a run that started after every file here was written


def recorded(access: Access, started_ns: int = LATER) -> list[paths.Entry]:
    entries, why = paths.record(access, MTIME, started_ns, Ignore())
    assert why == ""
    return entries


def test_every_kind_holds_until_its_path_changes(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kept").write_text("")
    (tmp_path / "f").write_text("1")
    (tmp_path / "ln").symlink_to("f")
    access = Access()
    access.read["/".join((str(tmp_path), "f"))] = None
    access.stated[str(tmp_path / "ln")] = False
    access.stated[str(tmp_path / "d")] = True
    access.listed[str(tmp_path / "d")] = None
    for name in ("a", "b", "c", "e", "g"):  # grouped: one listing answers for them
        access.absent[str(tmp_path / name)] = True
    access.absent[str(tmp_path / "gone" / "x")] = True
    entries = recorded(access)
    assert paths.check(entries, MTIME) is None

    (tmp_path / "gone").mkdir()
    assert paths.check(entries, MTIME) is None  # a directory alone is not what was looked for
    (tmp_path / "gone" / "x").write_text("")
    assert paths.check(entries, MTIME) == (
        str(tmp_path / "gone"),
        f"{tmp_path}/gone/x was created, where the command looked for it",
    )
    (tmp_path / "gone" / "x").unlink()
    (tmp_path / "e").write_text("")
    assert paths.check(entries, MTIME) == (
        str(tmp_path),
        f"{tmp_path}/e was created, where the command looked for it",
    )
    (tmp_path / "e").unlink()
    (tmp_path / "d" / "new").write_text("")
    found = paths.check(entries, MTIME)
    assert found is not None
    assert found[1] == f"the listing of {tmp_path}/d changed: new was added"
    (tmp_path / "d" / "new").unlink()
    (tmp_path / "ln").unlink()
    (tmp_path / "ln").symlink_to("d")
    assert paths.check(entries, MTIME) == (
        str(tmp_path / "ln"),
        f"symbolic link {tmp_path}/ln leads elsewhere now",
    )
    (tmp_path / "ln").unlink()
    (tmp_path / "ln").symlink_to("f")
    assert paths.check(entries, MTIME) is None
    (tmp_path / "f").write_text("22")
    found = paths.check(entries, MTIME)
    assert found is not None
    assert found[1].startswith(f"traced file {tmp_path}/f changed: ")


def test_the_commands_own_paths_and_names_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "made").mkdir()
    (tmp_path / "out.txt").write_text("")
    access = Access()
    access.listed[str(tmp_path)] = None
    access.absent[str(tmp_path / "made")] = True  # looked for, then made
    access.changed[str(tmp_path / "made")] = None
    access.changed[str(tmp_path / "out.txt")] = None
    access.read[str(tmp_path / "made" / "x")] = None
    entries = recorded(access)
    assert entries == [[str(tmp_path), "d", [[], ["made", "out.txt"], []]]]
    (tmp_path / "out.txt").unlink()  # the command's own: never a reason to run again
    assert paths.check(entries, MTIME) is None


def test_a_file_read_then_changed_or_changed_during_the_run_is_not_stored(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "cfg"
    cfg.write_text("")
    access = Access()
    access.read[str(cfg)] = None
    access.read_then_changed[str(cfg)] = None
    assert paths.record(access, MTIME, LATER, Ignore()) == (
        [],
        f"the command changed {cfg} after reading it",
    )
    access.read_then_changed.clear()
    backdate(cfg, 60)
    started = time.time_ns()
    os.utime(cfg)  # someone else, while the command ran
    assert paths.record(access, MTIME, started, Ignore()) == (
        [],
        f"{cfg} changed while the command ran",
    )


def test_ignored_paths_are_never_recorded(tmp_path: Path) -> None:
    access = Access()
    access.read["/proc/self/status"] = None
    access.read[str(tmp_path / "x.log")] = None
    access.absent[str(tmp_path / "__pycache__" / "m.pyc")] = True
    entries, _ = paths.record(access, MTIME, LATER, Ignore(["*.log"]))
    assert entries == []
