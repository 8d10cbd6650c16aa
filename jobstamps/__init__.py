"""Skip slow, idempotent work when nothing it depends on has changed.

``jobstamps.jobstamp.run(func, *args, **kwargs)`` is the original API; ``jobstamps.memoize``
is the decorator. Importing this package stays cheap: the ``jobstamp`` command imports it on
every cache hit, so the API modules load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps import jobstamp
    from jobstamps._version import __version__
    from jobstamps.decorator import Memoized, memoize
    from jobstamps.errors import JobstampsError

__all__ = ["JobstampsError", "Memoized", "__version__", "jobstamp", "memoize"]


_LAZY = {
    "__version__": "jobstamps._version",
    "memoize": "jobstamps.decorator",
    "Memoized": "jobstamps.decorator",
    "JobstampsError": "jobstamps.errors",
    "jobstamp": None,
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'jobstamps' has no attribute {name!r}")
    import importlib

    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"jobstamps.{name}")
    return getattr(importlib.import_module(module), name)
