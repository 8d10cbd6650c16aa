"""Blobs: stored output by content, shared between entries, never read through a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobstamps.fingerprint import digest_bytes
from jobstamps.store import Store
from support import set_mtime


def test_blobs_are_content_addressed_and_deduplicated(store: Store) -> None:
    digest = store.put_bytes(b"output bytes")
    assert digest == digest_bytes(b"output bytes")
    assert store.put_bytes(b"output bytes") == digest
    assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"
    assert store.has_blob(digest, 12)
    assert not store.has_blob(digest, 13)
    assert not store.has_blob(digest_bytes(b"other"), 5)
    assert store.stats()["blobs"] == 1


def test_a_truncated_blob_is_replaced(store: Store) -> None:
    digest = store.put_bytes(b"output bytes")
    Path(store.blob_path(digest)).write_bytes(b"out")
    assert not store.has_blob(digest, 12)
    assert store.put_bytes(b"output bytes") == digest
    assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"


def test_put_file_stores_a_copy(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "made"
    source.write_bytes(b"\x00binary\xff")
    digest, size = store.put_file(str(source))
    assert size == 8
    source.write_bytes(b"changed later")
    assert Path(store.blob_path(digest)).read_bytes() == b"\x00binary\xff"


def test_a_streamed_blob_is_adopted(store: Store) -> None:
    tmp = store.temp_path()
    assert os.path.basename(tmp).startswith(".tmp-")
    Path(tmp).write_bytes(b"streamed")
    assert store.stats()["blobs"] == 0  # a temporary file is not a blob
    digest = digest_bytes(b"streamed")
    store.adopt_blob(tmp, digest)
    assert not os.path.exists(tmp)
    assert store.has_blob(digest, 8)


def test_a_damaged_blob_of_the_right_size_is_replaced(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"output bytes")
    digest = store.put_bytes(b"output bytes")
    for put in (lambda: store.put_bytes(b"output bytes"), lambda: store.put_file(str(source))):
        Path(store.blob_path(digest)).write_bytes(b"OUTPUT BYTES")
        put()
        assert Path(store.blob_path(digest)).read_bytes() == b"output bytes"


def test_a_blob_replaced_by_a_link_is_never_read_through_it(store: Store, tmp_path: Path) -> None:
    digest = store.put_bytes(b"output bytes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"output bytes")  # the right contents, outside the cache
    os.unlink(store.blob_path(digest))
    os.symlink(elsewhere, store.blob_path(digest))
    assert not store.has_blob(digest, len(b"output bytes"))
    assert not store.blob_intact(digest)
    with pytest.raises(OSError, match=r"Too many levels|not a regular"):
        store.open_blob(digest)


def test_releasing_a_blob_keeps_one_that_was_there_before(store: Store) -> None:
    digest = store.put_bytes(b"shared")
    set_mtime(store.blob_path(digest), 10)
    again = Store(store.root)
    tmp = again.temp_path()
    Path(tmp).write_bytes(b"shared")
    assert again.adopt_blob(tmp, digest) is False
    again.release_blob(digest)
    assert Path(store.blob_path(digest)).read_bytes() == b"shared"
    made = Store(store.root)
    tmp = made.temp_path()
    Path(tmp).write_bytes(b"new")
    assert made.adopt_blob(tmp, digest_bytes(b"new")) is True
    made.release_blob(digest_bytes(b"new"))
    assert not os.path.exists(made.blob_path(digest_bytes(b"new")))
