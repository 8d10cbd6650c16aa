"""The original jobstamps API: ``jobstamp.run(func, *args, **kwargs)`` and ``out_of_date``.

Keyword arguments named ``jobstamps_*`` configure the cache and are not passed to ``func``:

- ``jobstamps_dependencies``: files the result depends on; a changed, added, removed or missing
  one makes the job run again.
- ``jobstamps_output_files``: files the job creates; a missing or changed one makes it run again.
- ``jobstamps_cache_output_directory``: where entries are stored (default: the per-user cache).
- ``jobstamps_method``: :class:`MTimeMethod` (default) or :class:`HashMethod`.
- ``jobstamps_restore_outputs``: store output files and restore deleted ones instead of
  running again (default ``False``, as in the original).
- ``jobstamps_trace``: also record the files the call opens and the directories it lists, and
  run it again when any of them changes (default ``False``; see ``jobstamps.trace.audit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from jobstamps import calls

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HashMethod", "MTimeMethod", "out_of_date", "run"]

R = TypeVar("R")


class MTimeMethod:
    """Judge dependencies by their stat fingerprint: mtime, ctime, size, inode and device.

    Any difference from what was recorded before the last run counts as a change; a restored
    older file is a change too.
    """

    jobstamps_method = "mtime"


class HashMethod:
    """Judge dependencies by content: a touched or re-checked-out file with the same bytes hits.

    Files whose stat fingerprint is unchanged are not read again.
    """

    jobstamps_method = "hash"


def _split(kwargs: dict[str, Any]) -> tuple[calls.Options, dict[str, Any]]:
    """Take the ``jobstamps_*`` options out of ``kwargs`` (a dict of this call's own)."""
    options = calls.Options(  # by position: this runs on every call
        kwargs.pop("jobstamps_dependencies", None),
        kwargs.pop("jobstamps_output_files", None),
        kwargs.pop("jobstamps_method", None),
        kwargs.pop("jobstamps_cache_output_directory", None),
        bool(kwargs.pop("jobstamps_restore_outputs", False)),
        bool(kwargs.pop("jobstamps_trace", False)),
    )
    return options, kwargs


def out_of_date(func: Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    """Return what would make ``run`` execute ``func``, without running anything.

    That is ``"JOBSTAMPS_DISABLED"``, the stamp (entry) path when no usable result is stored,
    the path of a missing or changed output, or of a changed dependency; ``None`` when fresh.
    """
    options, call_kwargs = _split(kwargs)
    return calls.out_of_date(options, func, args, call_kwargs)


def run(func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Return ``func(*args, **kwargs)``, stored on disk and reused while nothing changed."""
    options, call_kwargs = _split(kwargs)
    return calls.run_call(options, func, args, call_kwargs)
