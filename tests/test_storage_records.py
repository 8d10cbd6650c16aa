"""Records on the wire: round trips, and every way a record must be refused."""

from __future__ import annotations

import os
import struct

import pytest

from jobstamps.storage.records import (
    INLINE_LIMIT,
    MAGIC,
    MANIFEST,
    MAX_RECORD,
    PICKLE,
    Record,
    RecordError,
    decode,
    encode,
    sha256_hex,
)
from support import run_python

KEY = "ab" * 20
OTHER = "cd" * 20
SECRET = b"team secret"


def command_record(key: str = KEY) -> Record:
    output = b"src/a.py:1:1: F401 'os' imported but unused\nwarning\n"
    return Record(
        key,
        exit_code=1,
        chunks=[(1, 44), (2, len(output) - 44)],
        data=output,
        outputs=[("gen/out.h", 0o100644, sha256_hex(b"x"), 1)],
        created=1_700_000_000_000_000_000,
    )


def field(tag: bytes, value: bytes) -> bytes:
    return struct.pack(">cI", tag, len(value)) + value


def hand_made(chunks: bytes = b"", data: bytes = b"", outputs: bytes = b"") -> list[bytes]:
    """Return the fields of a record made by hand, as a hostile server could."""
    return [
        field(b"k", KEY.encode()),
        field(b"t", b"command"),
        field(b"w", bytes(8)),
        field(b"x", bytes(4)),
        field(b"c", chunks),
        field(b"d", data),
        *([field(b"o", outputs)] if outputs else []),
        field(b"e", b""),
    ]


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
def test_command_record_round_trips(secret: bytes | None) -> None:
    record = command_record()
    assert decode(encode(record, secret), KEY, secret) == record


def test_large_output_is_named_by_its_blob() -> None:
    blob = os.urandom(INLINE_LIMIT + 1)
    record = Record(KEY, chunks=[(1, len(blob))], blob=(sha256_hex(blob), len(blob)))
    data = encode(record)
    assert len(data) < 200
    assert decode(data, KEY).blob == (sha256_hex(blob), len(blob))


def test_record_for_another_key_is_rejected() -> None:
    with pytest.raises(RecordError, match="another key"):
        decode(encode(command_record(OTHER), SECRET), KEY, SECRET)
    with pytest.raises(RecordError, match="another key"):
        decode(encode(command_record(OTHER)), KEY)


def test_unsigned_record_is_rejected_when_a_key_is_shared() -> None:
    with pytest.raises(RecordError, match="not signed"):
        decode(encode(command_record()), KEY, SECRET)


def test_record_signed_with_another_secret_is_rejected() -> None:
    with pytest.raises(RecordError, match="does not verify"):
        decode(encode(command_record(), b"the attacker's"), KEY, SECRET)


def test_tampered_signed_record_is_rejected_whatever_byte_changed() -> None:
    data = encode(command_record(), SECRET)
    for index in range(len(data)):
        forged = bytearray(data)
        forged[index] ^= 0x01
        with pytest.raises(RecordError):
            decode(bytes(forged), KEY, SECRET)


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
def test_record_cut_short_anywhere_is_rejected(secret: bytes | None) -> None:
    data = encode(command_record(), secret)
    for length in range(len(data)):
        with pytest.raises(RecordError):
            decode(data[:length], KEY, secret)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", MAGIC, os.urandom(300), MAGIC + os.urandom(300), b"\x80\x04K\x01."],
    ids=["empty", "text", "magic-only", "random", "magic-then-random", "a-pickle"],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode(data, KEY)


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
def test_manifest_record_round_trips_as_data(secret: bytes | None) -> None:
    record = Record(KEY, kind=MANIFEST, data=b'{"format": "jobstamps-manifest-1"}')
    assert decode(encode(record, secret), KEY, secret) == record
    with pytest.raises(ValueError, match="a manifest record has no output chunks"):
        encode(Record(KEY, kind=MANIFEST, chunks=[(1, 1)], data=b"x"))


def test_pickle_record_is_never_accepted_without_the_key() -> None:
    record = Record(KEY, kind=PICKLE, data=b"\x80\x04K\x01.")
    with pytest.raises(RecordError, match="only signed"):
        decode(encode(record), KEY)
    # Signed by whoever, it is still refused by a reader without the key.
    with pytest.raises(RecordError, match="only signed"):
        decode(encode(record, SECRET), KEY)
    assert decode(encode(record, SECRET), KEY, SECRET).data == b"\x80\x04K\x01."


def test_fields_out_of_order_repeated_or_unknown_are_rejected() -> None:
    good = hand_made()
    assert decode(MAGIC + b"".join(good), KEY).exit_code == 0
    swapped = [good[1], good[0], *good[2:]]
    repeated = [good[0], *good]
    unknown = [*good[:-1], field(b"z", b"1"), good[-1]]
    for fields in (swapped, repeated, unknown, good[:-1]):
        with pytest.raises(RecordError):
            decode(MAGIC + b"".join(fields), KEY)


def test_output_chunks_must_add_up_to_the_output() -> None:
    forged = MAGIC + b"".join(hand_made(chunks=struct.pack(">BQ", 1, 1 << 40), data=b"short"))
    with pytest.raises(RecordError, match="add up"):
        decode(forged, KEY)
    with pytest.raises(ValueError, match="add up"):
        encode(Record(KEY, chunks=[(1, 3)], data=b"four"))
    with pytest.raises(ValueError, match="stdout"):
        encode(Record(KEY, chunks=[(3, 4)], data=b"four"))


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "a/../../b", "", "nul\0byte"])
def test_output_paths_outside_the_tree_are_refused(path: str) -> None:
    entry = (path, 0o644, sha256_hex(b""), 0)
    with pytest.raises(ValueError, match="output path"):
        encode(Record(KEY, outputs=[entry]))
    output = struct.pack(">I32sQ", 0o644, bytes(32), 0) + os.fsencode(path)
    forged = MAGIC + b"".join(hand_made(outputs=output))
    with pytest.raises(RecordError, match="output path"):
        decode(forged, KEY)


def test_non_utf8_output_path_round_trips() -> None:
    path = os.fsdecode(b"gen/caf\xe9.h")
    record = Record(KEY, outputs=[(path, 0o644, sha256_hex(b""), 0)])
    assert decode(encode(record), KEY).outputs[0][0] == path


def test_oversized_record_is_rejected_before_it_is_read() -> None:
    with pytest.raises(RecordError, match="larger"):
        decode(MAGIC + bytes(MAX_RECORD), KEY)


def test_decoding_records_never_imports_pickle() -> None:
    code = (
        "import sys\n"
        "from jobstamps.storage import records\n"
        "r = records.Record('ab' * 20, data=b'x', chunks=[(1, 1)])\n"
        "records.decode(records.encode(r, b's'), 'ab' * 20, b's')\n"
        "print('pickle' in sys.modules)\n"
    )
    result = run_python(code)
    assert result.stdout.strip() == "False"
