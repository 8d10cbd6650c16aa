"""Say why a command line missed: compare its key with the last one stored for it.

Every stored command result leaves a pointer from its command line and working directory to
its key. When the same command line then misses under a new key, the two keys' fields are
compared, so ``--explain`` can say what differs (the executable, an environment variable, a
terminal, the dependency list) instead of only "nothing is stored". Used only when explaining.
"""

from __future__ import annotations

from jobstamps.fingerprint import digest_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from jobstamps.store import Store

__all__ = ["describe_change", "remember", "shell_words", "slot_of", "why_new"]

_HEAD = ("working directory", "executable", "method", "output streams")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./-_")
_GROUPS = {"argv": "arguments", "deps": "dependencies", "outputs": "outputs", "env": "environment"}
_GROUPS["python"] = "Python environment"  # the interpreter and distributions (key.py)
_GROUPS["trace"] = "tracing"  # --trace and its --trace-ignore globs (cli.py)


def shell_words(argv: Sequence[str]) -> str:
    """Write ``argv`` as a POSIX shell command line that runs it (quoted only where needed)."""
    return " ".join(
        word if word and _SAFE.issuperset(word) else "'" + word.replace("'", "'\\''") + "'"
        for word in argv
    )


def slot_of(fields: Sequence[str]) -> str:
    """Name the command line (arguments and working directory) that ``fields`` describe."""
    arguments = _parse(fields).get("arguments", [])
    assert isinstance(arguments, list)  # noqa: S101 - _parse makes lists of groups
    text = "\0".join([fields[0], *arguments])
    return digest_bytes(text.encode("utf-8", "surrogateescape"))


def remember(store: Store, slot: str, key: str) -> None:
    """Note that ``key`` is the latest result stored for the command line ``slot``."""
    from jobstamps._fs import atomic_write

    try:
        atomic_write(store.pointer_path(slot), [key.encode()])
    except OSError:
        pass  # only explanations lose by it


def why_new(store: Store, slot: str, fields: Sequence[str]) -> str:
    """Explain a key nothing is stored under, from the last key stored for the same command."""
    from jobstamps._fs import read_private

    data = read_private(store.pointer_path(slot))  # never through a link
    previous = data.decode("ascii", "replace").strip() if data is not None else ""
    if not previous:
        return "this command line has not been stored from this directory before"
    entry, _ = store.read(previous)
    old = entry.get("payload", {}).get("fields") if entry else None
    if not old:
        return "the result last made by this command line is gone (not stored, evicted or cleared)"
    return describe_change(old, fields)


def describe_change(old: Sequence[str], new: Sequence[str]) -> str:
    """Say how the invocation described by ``new`` differs from ``old``."""
    before, after = _parse(old), _parse(new)
    changes = []
    for name in (*_HEAD, *_GROUPS.values(), "standard input"):
        was, now = before.get(name), after.get(name)
        if name == "tracing":  # absent when off
            was, now = was or [], now or []
        if was == now:
            continue
        if name == "environment" and isinstance(was, list) and isinstance(now, list):
            changes.append(f"environment changed ({_env_change(was, now)})")
        elif isinstance(was, list) and isinstance(now, list):
            gone = [item for item in was if item not in now]
            added = [item for item in now if item not in was]
            modified = _modified(gone, added)
            detail = "; ".join(
                part
                for part in (
                    *modified,
                    f"was {', '.join(gone)}" if gone else "",
                    f"now {', '.join(added)}" if added else "",
                )
                if part
            )
            changes.append(f"{name} changed ({detail or 'order'})")
        elif name == "executable":
            changes.append(f"executable changed ({_executable_change(str(was), str(now))})")
        else:
            changes.append(f"{name} changed ({_show(name, was)} -> {_show(name, now)})")
    if not changes:
        return "nothing differs from the last result stored for this command line"
    return "since the last stored result, the " + "; the ".join(changes)


_MODIFIED = " (modified "


def _modified(gone: list[str], added: list[str]) -> list[str]:
    """Say which directories of a Python environment were modified (an install, a removal).

    The items said are taken out of ``gone`` and ``added``.
    """
    said = []
    for old in [item for item in gone if _MODIFIED in item]:
        where, _, when = old.partition(_MODIFIED)
        new = next((item for item in added if item.startswith(where + _MODIFIED)), None)
        if new is not None:
            gone.remove(old)
            added.remove(new)
            said.append(f"{where} modified {_times(when[:-1], new[len(where + _MODIFIED) : -1])}")
    return said


def _env_change(was: list[str], now: list[str]) -> str:
    """Name the declared variables that changed; their values are never shown (nor stored)."""
    before, after = _env_states(was), _env_states(now)
    said = []
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            said.append(f"{name} is declared now")
        elif new is None:
            said.append(f"{name} is no longer declared")
        elif old == "":
            said.append(f"{name} is set now")
        elif new == "":
            said.append(f"{name} is unset now")
        else:
            said.append(f"{name} has another value")
    return "; ".join(said) or "order"


def _env_states(items: list[str]) -> dict[str, str]:
    """Map each declared variable to what stands for its value (``""``: unset)."""
    states = {}
    for item in items:
        name, is_set, state = item.partition("=")
        states[name if is_set else item.removesuffix(" unset")] = state if is_set else ""
    return states


def _executable_change(was: str, now: str) -> str:
    """Say how an executable's identity (path, size, modification time, ...) changed."""
    old, new = was.split("\0"), now.split("\0")
    if old[0] != new[0]:
        return f"{old[0]} -> {new[0]}"
    said = []
    if old[1:2] != new[1:2]:
        said.append(f"size {''.join(old[1:2])} -> {''.join(new[1:2])} bytes")
    if old[2:3] != new[2:3]:
        said.append(f"modified {_times(''.join(old[2:3]), ''.join(new[2:3]))}")
    if old[4:5] != new[4:5]:
        said.append("replaced by another file (another inode)")
    elif old[3:4] != new[3:4]:
        said.append(f"status changed {_times(''.join(old[3:4]), ''.join(new[3:4]))}")
    if old[5:6] != new[5:6]:
        said.append(f"mode {''.join(old[5:6]) or '?'} -> {''.join(new[5:6]) or '?'}")
    return f"{new[0]}: " + ", ".join(said or ["its identity changed"])


def _times(old: str, new: str) -> str:
    """Show two nanosecond timestamps as local times, to the nanosecond only where needed."""
    import time

    def shown(ns: str, exact: bool) -> str:
        if not ns.isdigit():
            return ns or "?"
        seconds, fraction = divmod(int(ns), 1_000_000_000)
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
        return f"{text}.{fraction:09d}" if exact else text

    exact = shown(old, exact=False) == shown(new, exact=False)
    return f"{shown(old, exact)} -> {shown(new, exact)}"


def _show(name: str, value: object) -> str:
    text = str(value)
    if name == "output streams":  # "tty:10 merged:0"
        ttys, _, merged = text.removeprefix("tty:").partition(" merged:")
        kinds = ["a terminal" if flag == "1" else "not a terminal" for flag in ttys]
        place = "one place" if merged == "1" else "two places"
        return f"stdout {kinds[0]}, stderr {kinds[1]}, going to {place}"
    return text


def _parse(fields: Sequence[str]) -> dict[str, object]:
    """Split the fields of :func:`jobstamps.key.command_fields` into named parts."""
    parts: dict[str, object] = dict(zip(_HEAD, fields[: len(_HEAD)], strict=False))
    index = len(_HEAD)
    while index < len(fields):
        name, _, count = fields[index].partition(":")
        index += 1
        if name in _GROUPS and count.isdigit():
            parts[_GROUPS[name]] = list(fields[index : index + int(count)])
            index += int(count)
        elif name == "stdin":
            parts["standard input"] = count
    return parts
