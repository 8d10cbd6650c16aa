"""Memos: small facts remembered beside the entries, such as an executable's content digest.

Key code (:mod:`jobstamps.portable`) is handed a :class:`Memos` to use, and never learns where
or how the facts are kept. A memo is a name and an ASCII value; losing one costs only the work
of finding the fact again, so writing one never fails the caller.
"""

from __future__ import annotations

from jobstamps._fs import atomic_write, read_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.store import Store

__all__ = ["Memos"]


class Memos:
    """The memos of one store, by name (a digest of what the fact depends on)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, name: str) -> str | None:
        """Return the value remembered under ``name``, or ``None``.

        A byte that is not ASCII reads as U+FFFD, so a damaged memo never passes for a value.
        """
        data = read_private(self._store.memo_path(name))
        return None if data is None else data.decode("ascii", "replace")

    def put(self, name: str, value: str) -> None:
        """Remember ``value`` under ``name``, written atomically; never fails the caller."""
        try:
            self._store.create()
            atomic_write(self._store.memo_path(name), [value.encode("ascii")])
        except OSError:
            pass  # remembered next time, perhaps
