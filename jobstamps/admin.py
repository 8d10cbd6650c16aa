"""Cache management and information options of ``jobstamp``: stats, clear, size limit, paths."""

from __future__ import annotations

import re

from jobstamps.errors import UsageError
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobstamps.cli import Options

__all__ = ["format_size", "parse_size", "run"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Parse ``500M``, ``5G``, ``1.5GiB``, ``1024`` (bytes) or ``0`` (no limit)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(
            f"--max-size: '{text}' is not a size; write e.g. 500M, 5G or 0 for no limit"
        )
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size == 0 and float(match.group(1)) != 0:
        raise UsageError(
            f"--max-size: '{text}' is less than a byte; write e.g. 500M, or 0 for no limit"
        )
    return size


def format_size(size: int) -> str:
    """Format a byte count the way ``--max-size`` reads it."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:  # noqa: PLR2004 - binary units
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def run(options: Options, help_text: Callable[[], str]) -> int:
    """Carry out the information and management options in a fixed order; return 0."""
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
    store = Store(options.stamp_directory)
    store.exists()  # refuses an unusable or unsafe directory
    if options.clear:
        store.clear()
        print(f"Cleared {store.root}")
    if options.max_size is not None:
        store.max_size = parse_size(options.max_size)
        freed = store.trim()
        limit = store.max_size
        print(f"Set the size limit to {format_size(limit) if limit else 'none'}", end="")
        print(f"; evicted {format_size(freed)}" if freed else "")
    if options.show_stats:
        _show_stats(store)
    return 0


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
    for name, value in rows:
        print(f"{name:<17}{value}")
