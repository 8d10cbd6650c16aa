"""Python function calls as jobs: key a call, run it through the engine, pickle its result."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, Union

from jobstamps import settings
from jobstamps.canonical import call_key, describe_callable
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import UsageError
from jobstamps.key import abspaths
from jobstamps.store import Store, default_root

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["Options", "PathsSpec", "method_name", "out_of_date", "run_call"]

R = TypeVar("R")
PathsSpec = Union[  # noqa: UP007 - a runtime alias: "X | Y" of strings is not evaluable
    Iterable["str | os.PathLike[str]"], Callable[..., Iterable["str | os.PathLike[str]"]], None
]


def _say(message: str) -> None:
    print(f"jobstamps: {message}", file=sys.stderr, flush=True)


def method_name(method: object) -> str:
    """Normalise a method given as ``MTimeMethod``/``HashMethod`` (class or instance) or name."""
    name = MTIME if method is None else getattr(method, "jobstamps_method", method)
    if name in {MTIME, HASH}:
        return HASH if settings.always_hash() else str(name)
    raise UsageError(
        f"unknown jobstamps method {method!r}. Use jobstamp.MTimeMethod or jobstamp.HashMethod"
    )


class Options:
    """How one call is cached: the files it reads and writes, the method, where entries live."""

    def __init__(
        self,
        dependencies: PathsSpec = None,
        outputs: PathsSpec = None,
        method: object = None,
        cache_dir: str | os.PathLike[str] | None = None,
        restore_outputs: bool = False,
    ) -> None:
        self.dependencies = _fixed(dependencies)
        self.outputs = _fixed(outputs)
        self.method = method
        self.cache_dir = cache_dir
        self.restore_outputs = restore_outputs

    def job(self, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Job:
        """Describe calling ``func(*args, **kwargs)`` as a job."""
        deps = abspaths(_paths(self.dependencies, args, kwargs))
        outputs = abspaths(_paths(self.outputs, args, kwargs))
        method = method_name(self.method)
        key = call_key(func, args, kwargs, (deps, outputs, method))
        return Job(
            key, deps, outputs, method, self.restore_outputs, lambda: describe_callable(func)
        )

    def engine(self) -> Engine:
        """Return the engine over this call's cache directory (one per directory)."""
        root = os.path.abspath(self.cache_dir) if self.cache_dir else default_root()
        store = _stores.get(root)
        if store is None:
            store = _stores[root] = Store(root, keep_in_memory=True)
        return Engine(store, _say if settings.debugging() else None)


def _fixed(spec: PathsSpec) -> PathsSpec:
    """Keep paths given as an iterator (``glob.iglob``) for every call, not just the first."""
    if spec is None or callable(spec) or isinstance(spec, (str, os.PathLike)):
        return spec
    return list(spec)


_stores: dict[str, Store] = {}


def _paths(spec: PathsSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    if spec is None:
        return []
    if callable(spec):
        spec = spec(*args, **kwargs)
    if isinstance(spec, (str, os.PathLike)):
        return [os.fspath(spec)]  # one path given alone
    return [os.fspath(p) for p in spec]


def out_of_date(
    options: Options, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> str | None:
    """Return what would make the call run (a path, or ``"JOBSTAMPS_DISABLED"``), else ``None``."""
    if settings.disabled():
        return "JOBSTAMPS_DISABLED"
    job = options.job(func, args, kwargs)
    return options.engine().check(job).trigger


def run_call(
    options: Options, func: Callable[..., R], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> R:
    """Return ``func(*args, **kwargs)``, from the cache when nothing it depends on changed."""
    if settings.disabled():
        return func(*args, **kwargs)
    engine = options.engine()
    job = options.job(func, args, kwargs)

    def compute() -> tuple[R, dict[str, Any] | None, Sequence[tuple[str, int]]]:
        result = func(*args, **kwargs)
        try:
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - any pickling failure: return, don't store
            engine.say(f"not stored: the result of {job.about} cannot be pickled ({error})")
            return result, None, ()
        return result, {"pickle": data}, ()

    def replay(payload: dict[str, Any]) -> R:
        try:
            return pickle.loads(payload["pickle"])  # type: ignore[no-any-return] # noqa: S301 - our own private cache
        except Exception as error:  # noqa: BLE001 - e.g. the result's class was renamed
            raise ReplayError(f"the stored result cannot be unpickled: {error}") from None

    return engine.run(job, compute, replay)
