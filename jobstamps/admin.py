"""Cache management and information options of ``jobstamp``: stats, clear, size limit, paths."""

from __future__ import annotations

import re
import sys

from jobstamps.errors import CacheDirectoryError, UsageError
from jobstamps.options import help_text as _help_text
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobstamps.options import Options

__all__ = ["format_size", "parse_size", "run"]

# ccache's units: a bare number is GiB; k, M, G, T are decimal, with an "i" binary; "B" optional.
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([kKMGT])(i?)B?)?\s*")
_POWERS = {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4}
_DECIMAL_UNITS = ("kB", "MB", "GB", "TB")


def parse_size(text: str) -> int:
    """Parse a size as ccache's ``--max-size`` does: ``5`` (GiB), ``500M``, ``2Gi``, ``0``.

    ``k``, ``M``, ``G``, ``T`` are powers of 1000, ``Ki``, ``Mi``, ``Gi``, ``Ti`` powers of
    1024, a trailing ``B`` is allowed, and a number without a unit is in GiB; 0 means no limit.
    """
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(
            f"--max-size: '{text}' is not a size; write e.g. 500M (MB), 2Gi (GiB), "
            "5 (GiB, as in ccache) or 0 for no limit"
        )
    number, letter, binary = match.groups()
    unit = (1024 if binary else 1000) ** _POWERS[letter] if letter else 1 << 30
    size = int(float(number) * unit)
    if size == 0 and float(number) != 0:
        raise UsageError(
            f"--max-size: '{text}' is less than a byte; write e.g. 500M, or 0 for no limit"
        )
    return size


def format_size(size: int) -> str:
    """Format a byte count in decimal units, as ``ccache --show-stats`` does."""
    if size < 1000:  # noqa: PLR2004 - decimal units
        return f"{size} B"
    value = float(size)
    for unit in _DECIMAL_UNITS:
        value /= 1000
        if value < 1000 or unit == _DECIMAL_UNITS[-1]:  # noqa: PLR2004 - decimal units
            break
    return f"{value:.1f} {unit}"


def run(options: Options, help_text: Callable[[], str] = _help_text) -> int:
    """Carry out the information and management options in a fixed order; return the status.

    A cache that cannot be used, or an action that fails, is reported in one line (status 1).
    """
    if options.help:
        print(help_text(), end="")
        return 0
    if options.version:
        from jobstamps._version import __version__

        print(f"jobstamp {__version__}")
        return 0
    if options.cmake_dir or options.make_include:
        from jobstamps import integrations

        if options.cmake_dir:
            print(integrations.cmake_dir())
        if options.make_include:
            print(integrations.make_include())
        return 0
    size = parse_size(options.max_size) if options.max_size is not None else None
    try:
        store = Store(options.stamp_directory)
    except OSError as error:  # a relative directory, from a working directory since deleted
        print(
            f"jobstamp: the working directory cannot be found ({error.strerror}), so neither "
            "can the cache directory. Run jobstamp from a directory that exists",
            file=sys.stderr,
        )
        return 1
    try:
        return _manage(store, options, size)
    except (CacheDirectoryError, OSError) as error:
        print(f"jobstamp: {_problem(store, error)}", file=sys.stderr)
        return 1


def _manage(store: Store, options: Options, size: int | None) -> int:
    store.exists()  # refuses an unusable or unsafe directory
    if options.clear:
        _clear(store)
    if size is not None:
        store.max_size = size
        freed = store.trim()
        limit = store.max_size
        shown = f"{format_size(limit)} ({limit} bytes)" if limit else "none"
        print(f"Set the size limit to {shown}", end="")
        print(f"; evicted {format_size(freed)}" if freed else "")
    if options.show_stats:
        _show_stats(store)
    if options.zero_stats:  # after showing them: "-sz" shows a build's statistics, as in ccache
        if store.exists():
            store.zero_stats()
        print(f"Statistics zeroed in {store.root}")
    return 0


def _clear(store: Store) -> None:
    """Remove the stored results; the store refuses a directory that is not its cache."""
    if not store.exists():
        print(f"Nothing to clear: {store.root} does not exist")
        return
    store.clear()
    print(f"Cleared {store.root}")


def _problem(store: Store, error: OSError) -> str:
    """Put an error of the cache directory into one line that says what to do."""
    if isinstance(error, CacheDirectoryError):
        return str(error)
    where = f" ({error.filename})" if error.filename not in {None, store.root} else ""
    return (
        f"cache directory {store.root} cannot be used: {error.strerror or error}{where}. "
        "Choose another directory with --stamp-directory or JOBSTAMPS_CACHE_DIR"
    )


def _show_stats(store: Store) -> None:
    stats = (
        store.stats()
        if store.exists()
        else dict.fromkeys(("entries", "blobs", "bytes", "hits", "misses"), 0)
    )
    limit = store.max_size
    lookups = stats["hits"] + stats["misses"]
    rate = f"{100 * stats['hits'] / lookups:.0f}%" if lookups else "-"
    rows = [
        ("cache directory", store.root),
        ("results", str(stats["entries"])),
        (
            "size",
            format_size(stats["bytes"])
            + (f" (limit {format_size(limit)})" if limit else " (no limit)"),
        ),
        ("hits", str(stats["hits"])),
        ("misses", str(stats["misses"])),
        ("hit rate", rate),
    ]
    remote = store.remote_stats() if store.exists() else {}
    if remote:
        rows += [
            ("remote hits", str(remote.get("hits", 0))),
            ("remote misses", str(remote.get("misses", 0))),
            ("remote errors", str(remote.get("errors", 0))),
            ("remote uploads", str(remote.get("uploads", 0))),
            ("remote received", format_size(remote.get("bytes_down", 0))),
            ("remote sent", format_size(remote.get("bytes_up", 0))),
        ]
    for name, value in rows:
        print(f"{name:<17}{value}")
