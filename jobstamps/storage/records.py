r"""What a remote cache holds for a key: a result as plain data, checked before it is believed.

A record is the magic line, then fields in a fixed order, each a one-byte tag, a 4-byte
big-endian length and that many bytes::

    jobstamps-record-1\n
    k  key             the key the record answers (ASCII); a record served for another is refused
    t  kind            b"command" (output and exit status), b"pickle" (a Python API result) or
                       b"manifest" (a traced command's candidate results, as compressed
                       JSON: :mod:`jobstamps.trace.manifest`)
    w  created         8 bytes, nanoseconds since the epoch, when the job ran
    x  exit status     4 bytes, signed (command records)
    c  chunks          9 bytes each: stream (1 stdout, 2 stderr) and a size, in output order
    d  payload         the output bytes (or the pickle), inline; or else
    b  payload blob    32 bytes of sha256 and an 8-byte size: the payload is that blob
    o  output file     repeatable: 4-byte mode, 32-byte sha256, 8-byte size, relative path
    e  end             empty: a record cut short at a field boundary is still refused
    m  MAC             last, with a shared key: HMAC-SHA256 over every byte before its tag

Decoding is slicing bytes and reading integers: a hostile server cannot make it run code (no
pickle, no marshal). With a shared key (``JOBSTAMPS_REMOTE_KEY``) every record must carry a
MAC that verifies. Without one, records are unsigned and a command record is believed as data:
a hostile server can then at worst make a job's replay pass or fail, with output of its
choosing; a pickle record, which would run code when loaded, is never accepted unsigned.

Blobs are named by sha256 of their content on every remote (the local cache names them by
blake2b): bazel's ``/cas/`` needs it, and the reader checks every byte it downloads against it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from jobstamps.storage.backend import RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "COMMAND",
    "INLINE_LIMIT",
    "MANIFEST",
    "MAX_RECORD",
    "PICKLE",
    "Record",
    "RecordError",
    "decode",
    "encode",
    "sha256_hex",
]

MAGIC = b"jobstamps-record-1\n"
COMMAND = "command"
PICKLE = "pickle"
MANIFEST = "manifest"
#: Payloads up to this size travel inside the record; larger ones as a blob of their own.
INLINE_LIMIT = 256 * 1024
#: No record is read beyond this size (a hostile server could send gigabytes).
MAX_RECORD = INLINE_LIMIT + (1 << 20)

_ORDER = b"ktwxcdboem"
_HEAD = struct.Struct(">cI")
_CHUNK = struct.Struct(">BQ")
_BLOB = struct.Struct(">32sQ")
_OUTPUT = struct.Struct(">I32sQ")
_MAC_SIZE = 32
_SHA256_HEX = 64


class RecordError(RemoteError):
    """A record was refused: damaged, forged, unsigned where needed, or for another key."""


class Record:
    """One stored result, as data.

    ``blob`` is ``(sha256 hex, size)`` of the payload when it is not inline in ``data``;
    ``outputs`` lists ``(relative path, mode, sha256 hex, size)`` of output files to restore.
    """

    __slots__ = ("blob", "chunks", "created", "data", "exit_code", "key", "kind", "outputs")

    def __init__(
        self,
        key: str,
        kind: str = COMMAND,
        exit_code: int = 0,
        chunks: Sequence[tuple[int, int]] = (),
        data: bytes = b"",
        blob: tuple[str, int] | None = None,
        outputs: Sequence[tuple[str, int, str, int]] = (),
        created: int = 0,
    ) -> None:
        self.key = key
        self.kind = kind
        self.exit_code = exit_code
        self.chunks = [(int(stream), int(size)) for stream, size in chunks]
        self.data = bytes(data)
        self.blob = blob
        self.outputs = list(outputs)
        self.created = created

    @property
    def size(self) -> int:
        """The payload's size, inline or in its blob."""
        return self.blob[1] if self.blob is not None else len(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Record(key={self.key!r}, kind={self.kind!r}, exit_code={self.exit_code}, "
            f"size={self.size}, blob={self.blob!r}, outputs={len(self.outputs)})"
        )


def sha256_hex(data: bytes) -> str:
    """Return the name of ``data`` as a remote blob."""
    return hashlib.sha256(data).hexdigest()


def _mac(secret: bytes, signed: bytes) -> bytes:
    return hmac.new(secret, signed, hashlib.sha256).digest()


def encode(record: Record, secret: bytes | None = None) -> bytes:
    """Return the bytes of ``record``, signed when a ``secret`` is given.

    Raises :class:`ValueError` for a record :func:`decode` would refuse.
    """
    _validate(record)
    fields = [
        (b"k", record.key.encode("ascii")),
        (b"t", record.kind.encode("ascii")),
        (b"w", struct.pack(">Q", record.created)),
    ]
    if record.kind == COMMAND:
        fields.append((b"x", struct.pack(">i", record.exit_code)))
        fields.append((b"c", b"".join(_CHUNK.pack(*chunk) for chunk in record.chunks)))
    if record.blob is None:
        fields.append((b"d", record.data))
    else:
        fields.append((b"b", _BLOB.pack(bytes.fromhex(record.blob[0]), record.blob[1])))
    for path, mode, digest, size in record.outputs:
        packed = _OUTPUT.pack(mode, bytes.fromhex(digest), size) + os.fsencode(path)
        fields.append((b"o", packed))
    fields.append((b"e", b""))
    parts = [MAGIC]
    for tag, value in fields:
        parts += [_HEAD.pack(tag, len(value)), value]
    body = b"".join(parts)
    if secret:
        body += _HEAD.pack(b"m", _MAC_SIZE) + _mac(secret, body)
    return body


def decode(data: bytes, key: str, secret: bytes | None = None) -> Record:
    """Return the record in ``data`` if it may answer ``key``; else raise :class:`RecordError`.

    With a ``secret`` the record must be signed with it; without one, a pickle record is refused.
    """
    if len(data) > MAX_RECORD:
        raise RecordError(f"a record of {len(data)} bytes is larger than any we write")
    fields, signed_end = _split(data)
    if secret:
        if b"m" not in fields:
            raise RecordError("a record is not signed (is JOBSTAMPS_REMOTE_KEY set everywhere?)")
        if not hmac.compare_digest(fields[b"m"][0], _mac(secret, data[:signed_end])):
            raise RecordError("a record's signature does not verify (forged, or another key)")
    try:
        record = _build(fields)
    except (ValueError, UnicodeError, struct.error) as error:
        raise RecordError(f"a record is damaged ({error})") from None
    if record.key != key:
        raise RecordError("a record made for another key was served for this one")
    if record.kind == PICKLE and not secret:
        raise RecordError("a Python result is accepted only signed with JOBSTAMPS_REMOTE_KEY")
    return record


def _split(data: bytes) -> tuple[dict[bytes, list[bytes]], int]:
    """Cut ``data`` into its fields by tag; also return where the signed part ends."""
    if not data.startswith(MAGIC):
        raise RecordError("a record is damaged or of another format")
    fields: dict[bytes, list[bytes]] = {}
    offset = len(MAGIC)
    order = 0
    signed_end = len(data)
    while offset < len(data):
        if offset + _HEAD.size > len(data):
            raise RecordError("a record is truncated")
        tag, size = _HEAD.unpack_from(data, offset)
        position = _ORDER.find(tag)
        if position < order or (tag in fields and tag != b"o"):
            raise RecordError(f"a record has an unknown or misplaced field {tag!r}")
        order = position
        start = offset + _HEAD.size
        if start + size > len(data):
            raise RecordError("a record is truncated")
        if tag == b"m":
            signed_end = offset
            if size != _MAC_SIZE or start + size != len(data):
                raise RecordError("a record's signature is malformed")
        fields.setdefault(tag, []).append(data[start : start + size])
        offset = start + size
    return fields, signed_end


def _one(fields: dict[bytes, list[bytes]], tag: bytes) -> bytes:
    if tag not in fields:
        raise ValueError(f"field {tag.decode()} is missing")
    return fields[tag][0]


def _build(fields: dict[bytes, list[bytes]]) -> Record:
    kind = _one(fields, b"t").decode("ascii")
    chunks: list[tuple[int, int]] = []
    exit_code = 0
    if kind == COMMAND:
        (exit_code,) = struct.unpack(">i", _one(fields, b"x"))
        packed = _one(fields, b"c")
        if len(packed) % _CHUNK.size:
            raise ValueError("chunk list of a wrong size")
        chunks = [chunk for chunk in _CHUNK.iter_unpack(packed)]  # noqa: C416 - tuples, typed
    blob = None
    if b"b" in fields:
        digest, size = _BLOB.unpack(fields[b"b"][0])
        blob = (digest.hex(), size)
    outputs = []
    for packed in fields.get(b"o", []):
        mode, digest, size = _OUTPUT.unpack_from(packed)
        outputs.append((os.fsdecode(packed[_OUTPUT.size :]), mode, digest.hex(), size))
    (created,) = struct.unpack(">Q", _one(fields, b"w"))
    record = Record(
        key=_one(fields, b"k").decode("ascii"),
        kind=kind,
        exit_code=exit_code,
        chunks=chunks,
        data=fields.get(b"d", [b""])[0],
        blob=blob,
        outputs=outputs,
        created=created,
    )
    if b"e" not in fields:
        raise ValueError("the record is cut short")
    if (b"d" in fields) == (b"b" in fields):
        raise ValueError("the payload must be either inline or a blob")
    _validate(record)
    return record


def _validate(record: Record) -> None:  # noqa: C901 - one check per line reads best
    """Raise :class:`ValueError` unless ``record`` is consistent and safe to act on."""
    if not record.key or not record.key.isascii() or not record.key.isalnum():
        raise ValueError("the key must be ASCII letters and digits")
    if record.kind not in {COMMAND, PICKLE, MANIFEST}:
        raise ValueError(f"unknown kind {record.kind!r}")
    if record.kind != COMMAND and record.chunks:
        raise ValueError(f"a {record.kind} record has no output chunks")
    if any(stream not in {1, 2} or size < 0 for stream, size in record.chunks):
        raise ValueError("output chunks go to stdout (1) or stderr (2)")
    if record.kind == COMMAND and sum(size for _, size in record.chunks) != record.size:
        raise ValueError("the output chunks do not add up to the output's size")
    if not -(2**31) <= record.exit_code < 2**31 or not 0 <= record.created < 2**64:
        raise ValueError("exit status or time out of range")
    if record.blob is not None:
        _check_digest(record.blob[0])
        if record.data:
            raise ValueError("the payload must be either inline or a blob")
    for path, mode, digest, size in record.outputs:
        _check_digest(digest)
        parts = path.replace("\\", "/").split("/")
        if not path or "\0" in path or os.path.isabs(path) or ".." in parts:
            raise ValueError(f"output path {path!r} is not relative and inside the tree")
        if not 0 <= mode < 2**32 or not 0 <= size < 2**64:
            raise ValueError("output mode or size out of range")


def _check_digest(digest: str) -> None:
    if len(digest) != _SHA256_HEX or digest.strip("0123456789abcdef"):
        raise ValueError(f"{digest!r} is not a sha256 in lowercase hex")
