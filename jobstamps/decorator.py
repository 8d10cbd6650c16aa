"""The typed decorator: ``@jobstamps.memoize(dependencies=..., outputs=...)``.

Dependencies and outputs are paths, or a callable that receives the call's arguments and
returns paths, so a function that processes a file can name that file::

    @jobstamps.memoize(dependencies=lambda path: [path])
    def count_lines(path: str) -> int: ...
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from jobstamps import calls

if TYPE_CHECKING:
    import inspect
    import os
    from collections.abc import Callable

__all__ = ["Memoized", "memoize"]

P = ParamSpec("P")
R = TypeVar("R")


class Memoized(Generic[P, R]):
    """A function whose results are stored on disk; call it as the function itself."""

    __name__: str  # copied from the function, as functools.wraps does
    __qualname__: str

    def __init__(self, func: Callable[P, R], options: calls.Options, enabled: bool) -> None:
        self.__wrapped__ = func
        self.options = options
        self.enabled = enabled
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the stored result of this call, or run the function and store it."""
        if not self.enabled:
            return self.__wrapped__(*args, **kwargs)
        return calls.run_call(self.options, self.__wrapped__, args, kwargs)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Bind to ``instance`` when decorating a method; the instance is part of the key."""
        if instance is None:
            return self
        return _BoundMemoized(self, instance)

    def out_of_date(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Return what would make this call run (a path or reason), or ``None``; runs nothing."""
        if not self.enabled:
            return "disabled"
        return calls.out_of_date(self.options, self.__wrapped__, args, kwargs)

    def check_call_in_cache(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Return whether this call would be answered from the cache (joblib's name)."""
        return self.out_of_date(*args, **kwargs) is None


class _BoundMemoized:
    """A memoized method bound to its object: calls and ``out_of_date`` pass the object first."""

    def __init__(self, memoized: Memoized[..., Any], instance: object) -> None:
        self.__func__ = memoized
        self.__self__ = instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Return the stored result of this call, or run the method and store it."""
        return self.__func__(self.__self__, *args, **kwargs)

    def out_of_date(self, *args: Any, **kwargs: Any) -> str | None:
        """Return what would make this call run (a path or reason), or ``None``; runs nothing."""
        return self.__func__.out_of_date(self.__self__, *args, **kwargs)

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Return whether this call would be answered from the cache (joblib's name)."""
        return self.out_of_date(*args, **kwargs) is None

    @property
    def __signature__(self) -> inspect.Signature:
        """The method's signature without its first parameter, as for any bound method."""
        import inspect

        signature = inspect.signature(self.__func__.__wrapped__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])

    def __getattr__(self, name: str) -> Any:
        """Look other attributes (``__wrapped__``, ``options``, ``__doc__``) up on the method."""
        return getattr(self.__func__, name)


@overload
def memoize(func: Callable[P, R], /) -> Memoized[P, R]: ...
@overload
def memoize(
    *,
    dependencies: calls.PathsSpec = None,
    outputs: calls.PathsSpec = None,
    method: str = "mtime",
    cache_dir: str | os.PathLike[str] | None = None,
    restore_outputs: bool = False,
    enabled: bool = True,
    trace: bool = False,
) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...
def memoize(
    func: Callable[P, R] | None = None,
    /,
    *,
    dependencies: calls.PathsSpec = None,
    outputs: calls.PathsSpec = None,
    method: str = "mtime",
    cache_dir: str | os.PathLike[str] | None = None,
    restore_outputs: bool = False,
    enabled: bool = True,
    trace: bool = False,
) -> Memoized[P, R] | Callable[[Callable[P, R]], Memoized[P, R]]:
    """Store a function's results on disk and reuse them while nothing they depend on changed.

    Parameters
    ----------
    func
        The function, when the decorator is used bare (``@memoize``).
    dependencies, outputs
        Files the result depends on, and files the function creates: paths, or a callable
        taking the call's arguments and returning paths. A changed or missing dependency, or a
        missing or changed output, makes the call run again.
    method
        ``"mtime"`` (stat fingerprint: mtime, ctime, size, inode) or ``"hash"`` (contents).
    cache_dir
        Where entries live; default ``$JOBSTAMPS_CACHE_DIR`` or the per-user cache.
    restore_outputs
        Store output files too and restore deleted ones instead of running again.
    enabled
        ``False`` calls the function every time and stores nothing.
    trace
        Also record the files the call opens and the directories it lists (in its own
        thread, through an audit hook) and run it again when any of them changes.

    """
    calls.method_name(method)  # reject a bad method at decoration time
    options = calls.Options(dependencies, outputs, method, cache_dir, restore_outputs, trace)

    def decorate(function: Callable[P, R]) -> Memoized[P, R]:
        return Memoized(function, options, enabled)

    return decorate if func is None else decorate(func)
