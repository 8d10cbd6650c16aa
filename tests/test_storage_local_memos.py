"""Memos: small facts kept beside the entries, private, and never a failure for the caller."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from jobstamps.store import Store

if TYPE_CHECKING:
    from pathlib import Path

NAME = "ab" + "0" * 38


def test_a_memo_is_read_back_from_a_private_file(store: Store) -> None:
    assert store.memos.get(NAME) is None
    store.memos.put(NAME, "f" * 40)
    assert Store(store.root).memos.get(NAME) == "f" * 40  # another process reads it too
    path = store.memo_path(NAME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(os.path.dirname(path)) == [NAME]  # no temporary left


def test_a_byte_that_is_not_ascii_never_reads_as_a_letter(store: Store) -> None:
    store.memos.put(NAME, "f" * 40)
    with open(store.memo_path(NAME), "wb") as handle:
        handle.write("\N{LATIN SMALL LETTER E WITH ACUTE}".encode() + b"f" * 38)
    known = store.memos.get(NAME)
    assert known is not None
    assert len(known) == 40  # one character a byte, as the bytes were
    assert not known.isalnum()


def test_putting_a_memo_never_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    memos = Store(str(tmp_path / "file" / "cache")).memos  # the cache cannot be made
    memos.put(NAME, "f" * 40)
    assert memos.get(NAME) is None
