"""A file's result in per-file mode: its own lines, and its run's lines of no file in place."""

from __future__ import annotations

import pytest

from jobstamps import fileresults
from jobstamps.engine import ReplayError

#: A run over files 0, 1 and 2 on two streams: a preamble, file 0's message between two lines
#: of no file on the other stream, file 2's message, and a summary. File 1 printed nothing.
LINES = [
    (1, b"Checking 3 files\n"),
    (1, b"a.py:1: E1\n"),
    (2, b"progress 1/3\n"),
    (1, b"  ^\n"),
    (1, b"c.py:3: E2\n"),
    (1, b"Found 2 errors."),
]
OWNERS = [None, 0, None, 0, 2, None]


def written(results: dict[int, fileresults.Payload], whole: bool) -> list[tuple[int, bytes]]:
    pieces = []
    for member in sorted(results):
        result = results[member]
        pieces += fileresults.pieces(result, result.get("gaps", []) if whole else [])
        pieces += [(fd, data) for fd, data in result.get("tail", [])] if whole else []
    return [piece for piece in pieces if piece[1]]


def results_of(members: list[int]) -> dict[int, fileresults.Payload]:
    own, gaps, tail = fileresults.layout(LINES, OWNERS, members)
    results = {member: fileresults.make(1, own[member]) for member in members}
    for member in members:
        results[member]["gaps"] = gaps[member]
    results[members[-1]]["tail"] = [[fd, data] for fd, data in tail]
    for result in results.values():
        fileresults.check(result)
    return results


def joined(pieces: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Merge adjacent pieces of one stream, so that writes compare as the bytes they make."""
    merged: list[tuple[int, bytes]] = []
    for fd, data in pieces:
        if merged and merged[-1][0] == fd:
            merged[-1] = (fd, merged[-1][1] + data)
        else:
            merged.append((fd, data))
    return merged


@pytest.mark.parametrize("members", [[0, 1, 2], [0, 2]])
def test_a_whole_run_is_written_back_byte_for_byte_in_its_order(members: list[int]) -> None:
    assert joined(written(results_of(members), whole=True)) == joined(LINES)


def test_a_file_alone_writes_only_its_own_lines() -> None:
    results = results_of([0, 1, 2])
    assert joined(written({0: results[0]}, whole=False)) == [(1, b"a.py:1: E1\n  ^\n")]
    assert written({1: results[1]}, whole=False) == []


@pytest.mark.parametrize(
    "damage",
    [
        {"gaps": [[99, 1, b"x\n"]]},  # beyond the file's own output
        {"gaps": [[5, 1, b"x\n"], [0, 1, b"y\n"]]},  # out of order
        {"gaps": [[0, 1, "text"]]},
        {"tail": [[1, "text"]]},
        {"run": ["token"]},
    ],
)
def test_a_malformed_run_record_is_not_replayed(damage: dict[str, object]) -> None:
    result = {**fileresults.make(1, [(1, b"a.py:1: E1\n")]), **damage}
    with pytest.raises(ReplayError):
        fileresults.check(result)
