"""``@jobstamps.memoize(trace=True)`` and ``jobstamps_trace=True``: what a call opens decides."""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import TYPE_CHECKING

import jobstamps
from jobstamps import jobstamp
from support import bump, runs

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def written(path: Path, text: str) -> None:
    """Write ``path``, then let the clock pass the margin within which a traced file is taken
    as changed during the call (jobstamps.trace.paths.CHANGED_MARGIN_NS), so it is stored."""
    path.write_text(text)
    time.sleep(0.05)


def test_a_file_read_listed_or_looked_for_reruns_when_it_changes(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    (tmp_path / "d").mkdir()
    cfg = tmp_path / "cfg.txt"
    written(cfg, "1")

    @jobstamps.memoize(trace=True)
    def job(where: str) -> tuple[str, list[str], bool]:
        bump(counter)
        with open(os.path.join(where, "cfg.txt"), encoding="utf-8") as handle:
            text = handle.read()
        try:
            with open(os.path.join(where, "extra.txt"), encoding="utf-8"):
                extra = True
        except FileNotFoundError:
            extra = False
        names = sorted(os.listdir(os.path.join(where, "d")))
        with open(os.path.join(where, "d", "made.txt"), "w", encoding="utf-8") as handle:
            handle.write("own output")
        return text, names, extra

    assert job(str(tmp_path)) == ("1", [], False)
    assert job(str(tmp_path)) == ("1", [], False)
    assert runs(counter) == 1
    written(cfg, "22")
    assert job(str(tmp_path)) == ("22", ["made.txt"], False)
    assert job(str(tmp_path)) == ("22", ["made.txt"], False)
    assert runs(counter) == 2  # its own output in the listed directory changed nothing
    written(tmp_path / "extra.txt", "")
    assert job(str(tmp_path)) == ("22", ["made.txt"], True)
    written(tmp_path / "d" / "new.txt", "")
    assert job(str(tmp_path)) == ("22", ["made.txt", "new.txt"], True)
    assert runs(counter) == 4


def test_a_module_imported_by_the_call_reruns_when_its_source_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = tmp_path / "count"
    monkeypatch.syspath_prepend(str(tmp_path))
    written(tmp_path / "tracedmod.py", "VALUE = 1\n")

    def job() -> int:
        bump(counter)
        sys.modules.pop("tracedmod", None)
        return int(importlib.import_module("tracedmod").VALUE)

    for _ in range(2):
        assert jobstamp.run(job, jobstamps_trace=True) == 1
    assert runs(counter) == 1
    written(tmp_path / "tracedmod.py", "VALUE = 2  # edited\n")
    assert jobstamp.run(job, jobstamps_trace=True) == 2
    assert runs(counter) == 2
    assert jobstamp.run(job) == 2  # untraced: a key of its own
    assert runs(counter) == 3


def test_a_cache_directory_holding_the_files_read_still_sees_them_change(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    written(data, "1")

    @jobstamps.memoize(trace=True, cache_dir=tmp_path)
    def job(path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read()

    assert job(str(data)) == "1"
    written(data, "22")
    assert job(str(data)) == "22"
