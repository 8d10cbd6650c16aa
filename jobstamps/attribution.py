"""Which lines of a linter run's output are which file's: a pure function of bytes and names.

A run over several files prints one stream of lines (or two); per-file mode stores each file's
lines with that file. :func:`owners` says, for every line, the file it is about, or ``None``
for a line of no file (a summary, a progress line, a preamble). The rules, from the formats
of real linters:

- A line names a file when it begins with the file's path and a colon (``a.py:1:8: F401``,
  ruff's grouped ``a.py:``), when it is the path alone (yamllint's standard format, eslint's
  stylish format: the name, then indented messages), or when a whitespace-separated word of
  it is the path, possibly followed by a colon and a location (``--> a.py:1:8``,
  ``ERROR: /abs/a.py Imports are incorrectly sorted``, ``would reformat a.py``,
  ``In a.sh line 2:``, ``Checking a.c ...``); a name with neither a dot nor a slash
  (``test``, ``all``) is a word like any other there, but before ``line`` (``In test line
  2:``).
- A header introduces the next file: one unnamed line just before a file's line, which either
  opens a paragraph (after a blank line, or first in its stream) whose file line is an
  indented location (ruff's rule line above ``--> a.py:1:8``) or ends with the file's module
  name (pylint's ``************* Module b``).
- Unnamed lines between two named lines continue the earlier one (code excerpts, carets,
  notes). After a stream's last named line, only lines that look like a continuation do
  (:func:`_continues`), and, after an indented location (ruff's ``--> a.py:1:8``), every
  line of that block up to a blank line; the rest (a summary) is no file's, as is what comes
  before a stream's first file.
"""

from __future__ import annotations

import os

from jobstamps import key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    #: One line of output, with its stream (1 or 2); the last line may lack its newline.
    Line = tuple[int, bytes]

__all__ = ["anonymous", "owners", "path_forms", "split_lines"]


def split_lines(chunks: Sequence[tuple[int, int]], data: bytes) -> list[Line]:
    """Cut recorded output into lines, each with its stream, in the order they were completed."""
    lines: list[Line] = []
    partial: dict[int, list[bytes]] = {}
    offset = 0
    for fd, size in chunks:
        piece = data[offset : offset + size]
        offset += size
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            head = partial.pop(fd, [])
            lines.append((fd, b"".join([*head, piece[start : end + 1]])))
            start = end + 1
        if start < len(piece):
            partial.setdefault(fd, []).append(piece[start:])
    lines.extend((fd, b"".join(rest)) for fd, rest in partial.items())
    return lines


def path_forms(files: Sequence[str], cwd: str) -> dict[bytes, int]:
    """Map every spelling a tool may print for each file to the file's index.

    As passed, absolute, relative to ``cwd``, and with or without a leading ``./``. A name as
    passed is that file's before any other spelling; ``..`` is resolved as the kernel does
    (``link/../a.py`` is not the ``a.py`` beside the link).
    """
    forms = {os.fsencode(name): index for index, name in enumerate(files)}
    for index, (name, absolute) in enumerate(zip(files, key.abspaths(files, cwd), strict=True)):
        spellings = [absolute]
        if absolute.startswith(cwd + os.sep):
            relative = absolute[len(cwd) + 1 :]
            spellings += [relative, "./" + relative]
        if name.startswith("./"):
            spellings.append(name[2:])
        for spelling in spellings:
            forms.setdefault(os.fsencode(spelling), index)
    return forms


def _plain(line: bytes) -> bytes:
    """Return ``line`` without terminal colour and style sequences (``ESC [ ... m``)."""
    if b"\x1b" not in line:
        return line
    import re

    return re.sub(rb"\x1b\[[0-9;:?]*[ -/]*[@-~]", b"", line)


def _located(text: bytes, forms: dict[bytes, int]) -> int | None:
    """Return the file ``text`` begins with, followed by a colon (the longest that matches)."""
    found = None
    colon = text.find(b":")
    while colon > 0:
        index = forms.get(text[:colon])
        if index is not None:
            found = index
        colon = text.find(b":", colon + 1)
    return found


def _named(
    text: bytes, following: bytes | None, forms: dict[bytes, int], spaces: int = 0
) -> int | None:
    """Return the file a line names (see the module's text), or ``None``.

    A word of a code excerpt (a line above its caret) names nothing, nor does a bare word of
    an indented line (a code frame): there only a word with a location does (``--> a.py:1``).
    A name holding up to ``spaces`` spaces is tried as several words, longest first, so that
    ``my a.py`` is not taken for ``a.py``. A line whose words name several files without a
    location (``Checked a.py, b.py: 1 problem``) is a summary, and names none.
    """
    found = _located(text, forms)
    if found is not None:
        return found
    bare = text.strip()
    if bare in forms:
        return forms[bare]
    if _caret(following):
        return None
    loose = not _indented(text)
    words = bare.split()
    first = None
    for place in range(len(words)):
        for end in range(min(len(words), place + 1 + spaces), place, -1):
            word = b" ".join(words[place:end])
            located = _located(word, forms)
            found = _bare_word(word, words[end : end + 1], forms) if loose else None
            if first is None and located is not None and found is None:
                return located
            found = located if found is None else found
            if found is not None:
                if first is not None and found != first:
                    return None
                first = found
                break
    return first


def _bare_word(word: bytes, after: list[bytes], forms: dict[bytes, int]) -> int | None:
    """Return the file ``word`` names (``a.py``, ``a.py:``, ``test`` before ``line``), or None."""
    for candidate in (word, word.rstrip(b":,;")):
        if candidate in forms and (_pathlike(candidate) or after == [b"line"]):
            return forms[candidate]
    return None


def _pathlike(name: bytes) -> bool:
    """Whether ``name`` reads as a path, not as a word (``test``, ``all``) of a sentence."""
    return b"/" in name or b"." in name


def _indented(text: bytes) -> bool:
    return text[:1] in {b" ", b"\t"}


def _caret(text: bytes | None) -> bool:
    """Whether ``text`` points at a column of the line above (``    ^``, ``^-- SC2086``)."""
    return text is not None and text.lstrip(b" \t")[:1] == b"^"


def _location(text: bytes) -> bool:
    """Whether ``text`` begins with a ``path:N`` location (a note in another file)."""
    name, colon, rest = text.partition(b":")
    return bool(colon) and bool(name) and not name[-1:].isspace() and rest[:1].isdigit()


def _continues(text: bytes, following: bytes | None) -> bool:
    """Whether a line after a stream's last named line still belongs to that file.

    Indented lines (carets, code frames, notes), a ``path:N`` location in another file (a
    header's note), a source line followed by its caret line, or a line ending in a colon
    followed by unindented text (shellcheck's ``Did you mean:`` and the fixed line) do; a
    line such as ``Found 3 errors.`` or ``For more information:`` (followed by an indented
    list) does not. Blank lines are decided by the line after them.
    """
    if _indented(text) or _caret(following) or _location(text):
        return True
    return (
        text.rstrip().endswith(b":")
        and following is not None
        and bool(following.strip())
        and not _indented(following)
    )


def _module(text: bytes, name: bytes) -> bool:
    """Whether ``text`` ends with the module name of file ``name`` (``Module pkg.b``)."""
    stem = os.path.splitext(os.path.basename(name))[0]
    words = text.split()
    return bool(words) and (words[-1] == stem or words[-1].endswith(b"." + stem))


def _names(forms: dict[bytes, int]) -> dict[int, bytes]:
    """Map each file's index to one spelling of its name (its module name is read from it)."""
    names: dict[int, bytes] = {}
    for form, index in forms.items():
        names.setdefault(index, form)
    return names


def owners(lines: Sequence[Line], forms: dict[bytes, int]) -> list[int | None]:
    """Return, for each of ``lines``, the index of the file it is about, or ``None``."""
    plain = [_plain(data) for _, data in lines]
    streams: dict[int, list[int]] = {}
    for position, (fd, _) in enumerate(lines):
        streams.setdefault(fd, []).append(position)
    named: list[int | None] = [None] * len(lines)
    spaces = max((form.count(b" ") for form in forms), default=0)
    for positions in streams.values():
        for place, at in enumerate(positions):
            following = plain[positions[place + 1]] if place + 1 < len(positions) else None
            named[at] = _named(plain[at], following, forms, spaces)
    names = _names(forms)
    result: list[int | None] = [None] * len(lines)
    for positions in streams.values():
        _headers(positions, plain, named, names)
        _follow(positions, plain, named, result)
    return result


def _headers(
    positions: list[int], plain: list[bytes], named: list[int | None], names: dict[int, bytes]
) -> None:
    """Name a header line after the file whose first line it stands just before."""
    found = dict.fromkeys(range(len(positions)))
    for place in range(1, len(positions)):
        owner = named[positions[place]]
        if owner is None or named[positions[place - 1]] is not None:
            continue
        header = plain[positions[place - 1]]
        if not header.strip() or _indented(header) or _location(header) or _caret(header):
            continue
        # A block's title: it opens a paragraph whose location is indented (ruff's full
        # format: the rule, then ``--> a.py:1:8``); a preamble before ``a.py:1:1`` is not.
        opens = place == 1 or not plain[positions[place - 2]].strip()
        if (opens and _indented(plain[positions[place]])) or _module(header, names[owner]):
            found[place - 1] = owner
    for place, owner in found.items():
        if owner is not None:
            named[positions[place]] = owner


def _follow(
    positions: list[int], plain: list[bytes], named: list[int | None], result: list[int | None]
) -> None:
    """Give one stream's unnamed lines to the file they continue, or to none."""
    last = max((place for place, at in enumerate(positions) if named[at] is not None), default=-1)
    texts = [plain[at] for at in positions]
    current: int | None = None
    block = False  # in an indented location's block, or a suggestion: up to a blank line
    for place, at in enumerate(positions):
        text = texts[place]
        if named[at] is not None:
            current = named[at]
            block = _indented(text)
        elif current is not None and place > last:
            ahead = place
            while ahead < len(texts) and not texts[ahead].strip():
                ahead += 1  # a blank line goes with the line after it
            if ahead == len(texts):
                pass  # trailing blank lines end the file's messages
            elif ahead > place:
                block = False
                if not _continues(texts[ahead], _at(texts, ahead + 1)):
                    current = None
            elif not block:
                if not _continues(text, _at(texts, place + 1)):
                    current = None
                block = text.rstrip().endswith(b":")  # a suggestion follows, up to a blank
        result[at] = current


def _at(texts: list[bytes], place: int) -> bytes | None:
    return texts[place] if place < len(texts) else None


def anonymous(lines: Sequence[Line], forms: dict[bytes, int]) -> bytes:
    """Return the text of ``lines`` with every file's name taken out, to compare two runs."""
    text = b"".join(_plain(data) for _, data in lines)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, b"\0")
    return text
