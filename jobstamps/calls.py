"""Python function calls as jobs: key a call, run it through the engine, pickle its result.

A long-lived process repeats calls, so two things are remembered per process (both bounded):

- the job of a call whose function is a plain function closing over nothing and whose
  arguments and paths are plain strings and numbers: its key is not worked out again;
- the files (entry, dependencies, outputs) as they were stated just before the engine last
  decided the call was fresh. Every later call states them all again; when not one stat
  changed (and each file had settled, older than the racy window, when first stated, so that
  a later edit must change its stat signature) the stored result is replayed without the
  engine's checks. Anything else goes through the engine.
"""

from __future__ import annotations

import os
import pickle
import stat
import sys
import time
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, Union

from jobstamps import fingerprint, settings
from jobstamps.canonical import call_key, describe_callable
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import UsageError, one_line
from jobstamps.key import abspaths
from jobstamps.store import Store, default_root

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from jobstamps.storage.layered import Layered

__all__ = ["Options", "PathsSpec", "method_name", "out_of_date", "run_call"]

R = TypeVar("R")
PathsSpec = Union[  # noqa: UP007 - a runtime alias: "X | Y" of strings is not evaluable
    Iterable["str | os.PathLike[str]"], Callable[..., Iterable["str | os.PathLike[str]"]], None
]
#: Argument types whose equality is their key's (no float: ``0.0 == -0.0``).
_PLAIN = frozenset({str, int, bool, bytes, type(None)})
_REMEMBERED = 4096  # calls remembered per process, per kind


def _say(message: str) -> None:
    print(f"jobstamps: {one_line(message)}", file=sys.stderr, flush=True)


def method_name(method: object) -> str:
    """Normalise a method given as ``MTimeMethod``/``HashMethod`` (class or instance) or name."""
    name = MTIME if method is None else getattr(method, "jobstamps_method", method)
    if name in {MTIME, HASH}:
        return HASH if settings.always_hash() else str(name)
    raise UsageError(
        f"unknown jobstamps method {method!r}. Use jobstamp.MTimeMethod or jobstamp.HashMethod"
    )


class _Cache:
    """One cache directory as the API uses it: its store, engine, and calls known fresh."""

    def __init__(self, root: str) -> None:
        self.store = Store(root, keep_in_memory=True)
        self.engine = Engine(self.store)
        #: key -> (paths and their stat signatures, the pickled result): see the module's text.
        self.fresh: dict[str, tuple[list[tuple[str, fingerprint.Signature]], bytes]] = {}


_caches: dict[str, _Cache] = {}
#: Jobs of plain calls: identity -> (the function's code and defaults then, the working
#: directory its paths were resolved in if they were relative, the job).
_jobs: dict[tuple[Any, ...], tuple[Any, Any, str | None, Job]] = {}


class Options:
    """How one call is cached: the files it reads and writes, the method, where entries live."""

    def __init__(
        self,
        dependencies: PathsSpec = None,
        outputs: PathsSpec = None,
        method: object = None,
        cache_dir: str | os.PathLike[str] | None = None,
        restore_outputs: bool = False,
        trace: bool = False,
    ) -> None:
        self.dependencies = _fixed(dependencies)
        self.outputs = _fixed(outputs)
        self.method = method
        self.cache_dir = cache_dir
        self.restore_outputs = restore_outputs
        self.trace = trace  # record what the call opens and lists (jobstamps.trace.audit)

    def job(self, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Job:
        """Describe calling ``func(*args, **kwargs)`` as a job."""
        given_deps = _paths(self.dependencies, args, kwargs)
        given_outputs = _paths(self.outputs, args, kwargs)
        method = method_name(self.method)
        how = (method, bool(self.restore_outputs), bool(self.trace))
        identity = _plain_call(func, args, kwargs, given_deps, given_outputs, how)
        if identity is not None:
            known = _jobs.get(identity)
            if (
                known is not None
                and known[0] is func.__code__
                and known[1] is func.__defaults__
                and (known[2] is None or known[2] == os.getcwd())
            ):
                return known[3]
        deps = abspaths(given_deps)
        outputs = abspaths(given_outputs)
        # What a traced hit checks differs: another key (untraced keys stay as they were).
        traced = ("trace",) if self.trace else ()
        key = call_key(func, args, kwargs, (deps, outputs, method, *traced))
        job = Job(key, deps, outputs, method, self.restore_outputs, lambda: describe_callable(func))
        if identity is not None:
            _remember_job(identity, [*given_deps, *given_outputs], [*deps, *outputs], job)
        return job

    def cache(self) -> _Cache:
        """Return this call's cache directory (one object per directory)."""
        given = self.cache_dir
        if type(given) is str:
            known = _caches.get(given)  # by the name given (only absolute ones are kept): quick
            if known is not None:
                return known
        root = os.path.abspath(given) if given else default_root()
        cache = _caches.get(root)
        if cache is None:
            cache = _caches[root] = _Cache(root)
        if type(given) is str and os.path.isabs(given):
            _caches[given] = cache
        return cache

    def engine(self) -> Engine:
        """Return the engine over this call's cache directory (explaining, when asked to)."""
        engine = self.cache().engine
        return Engine(engine.store, _say) if settings.debugging() else engine


def _fixed(spec: PathsSpec) -> PathsSpec:
    """Keep paths given as an iterator (``glob.iglob``) for every call, not just the first.

    Paths given as a sequence become a tuple of strings, used as they are by every call.
    """
    if not (type(spec) is list or type(spec) is tuple) and (
        spec is None or callable(spec) or isinstance(spec, (str, os.PathLike))
    ):
        return spec
    return tuple(map(os.fspath, spec))


def _paths(spec: PathsSpec, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Sequence[str]:
    if type(spec) is tuple:  # made by _fixed
        return spec
    if spec is None:
        return ()
    if callable(spec):
        spec = spec(*args, **kwargs)
    if isinstance(spec, (str, os.PathLike)):
        return [os.fspath(spec)]  # one path given alone
    return [os.fspath(p) for p in spec]


def _plain_call(
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    deps: Sequence[str],
    outputs: Sequence[str],
    how: tuple[str, bool, bool],
) -> tuple[Any, ...] | None:
    """Identify a call whose key cannot change while its function lives; else ``None``.

    That is a plain function closing over nothing, with plain defaults, called with plain
    values (and their types: ``1 == True``). Its code and defaults are checked on use.
    """
    if not isinstance(func, types.FunctionType) or func.__closure__ is not None:
        return None
    values = (*args, *kwargs.values()) if kwargs else tuple(args)
    kinds = tuple(map(type, values))
    if not _PLAIN.issuperset(kinds) or func.__kwdefaults__:
        return None
    defaults = func.__defaults__
    if defaults is not None and not _PLAIN.issuperset(map(type, defaults)):
        return None
    # Counts, not separators: a path may be "" (the working directory).
    return (func, how, kinds, values, *kwargs, len(deps), *deps, len(outputs), *outputs)


def _remember_job(
    identity: tuple[Any, ...], given: list[str], resolved: list[str], job: Job
) -> None:
    """Remember a plain call's job, if its paths resolved lexically (no ``..``, no links).

    A path that resolved otherwise depends on the file system at the time: worked out anew.
    """
    cwd = os.getcwd()
    for path, absolute in zip(given, resolved, strict=True):
        if ".." in path.split(os.sep) or os.path.normpath(os.path.join(cwd, path)) != absolute:
            return
    if len(_jobs) >= _REMEMBERED:
        _jobs.clear()
    needs_cwd = not all(os.path.isabs(path) for path in given)
    func = identity[0]
    _jobs[identity] = (func.__code__, func.__defaults__, cwd if needs_cwd else None, job)


def _settled(paths: Sequence[str]) -> list[tuple[str, fingerprint.Signature]] | None:
    """State the entry and then each regular file in ``paths``, if all have settled.

    ``None`` when one is missing, not a regular file (a directory stands for files below it),
    or was changed within the racy window: then only the engine can tell. A file is
    identified by its whole stat signature, as the engine identifies it: where the change
    time is the creation time (Windows), an edit shows only in the modification time or size.
    """
    settled_before = time.time_ns() - fingerprint.RACY_WINDOW_NS
    signatures = []
    for index, path in enumerate(paths):
        try:
            st = os.stat(path)
        except OSError:
            return None
        if index and (
            not stat.S_ISREG(st.st_mode)
            or st.st_mtime_ns > settled_before
            or st.st_ctime_ns > settled_before
        ):
            return None  # the entry (index 0) is written by rename: a new entry, a new inode
        signatures.append((path, fingerprint.stat_signature(st)))
    return signatures


def _replay_unchanged(
    cache: _Cache, key: str, signatures: list[tuple[str, fingerprint.Signature]], data: bytes
) -> tuple[bool, Any]:
    """Replay the result of ``key`` if no file it was checked with changed since."""
    stat_path = os.stat
    try:
        for path, before in signatures:
            st = stat_path(path)
            # fingerprint.stat_signature(st), written out: this loop is most of a hit
            if (
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_size,
                st.st_ino,
                st.st_dev,
                st.st_mode,
            ) != before:
                break
        else:
            result = pickle.loads(data)  # noqa: S301 - our own private cache, checked
            cache.store.note(hit=True)
            cache.store.touch(key)
            return True, result
    except Exception:  # noqa: BLE001, S110 - gone, or cannot be unpickled: the engine says
        pass
    cache.fresh.pop(key, None)
    return False, None


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
    cache = options.cache()
    explaining = settings.debugging()
    job = options.job(func, args, kwargs)
    key = job.key
    fresh = cache.fresh.get(key)  # never for a traced call: its traced set is checked too
    if fresh is not None and not explaining:
        hit, result = _replay_unchanged(cache, key, *fresh)
        if hit:
            return result  # type: ignore[no-any-return]
    engine = _engine(cache, explaining, func, args, kwargs, shared=not options.trace)
    entry = cache.store.entry_path(key)
    before = (
        None
        if job.restore_outputs or options.trace
        else _settled([entry, *job.dependencies, *job.outputs])
    )

    def compute() -> tuple[R, dict[str, Any] | None, Sequence[tuple[str, int]]]:
        if options.trace:
            return _traced(engine, job, func, args, kwargs)
        result = func(*args, **kwargs)
        return result, _payload(engine, job, result), ()

    def replay(payload: dict[str, Any]) -> R:
        data = payload["pickle"]
        try:
            result: R = pickle.loads(data)  # noqa: S301 - our own private cache
        except Exception as error:  # noqa: BLE001 - e.g. the result's class was renamed
            raise ReplayError(f"the stored result cannot be unpickled: {error}") from None
        if before is not None:  # a hit, checked by the engine after ``before`` was taken
            if len(cache.fresh) >= _REMEMBERED:
                cache.fresh.clear()
            cache.fresh[key] = (before, data)
        return result

    return engine.run(job, compute, replay)


def _payload(engine: Engine, job: Job, result: object) -> dict[str, Any] | None:
    """Pickle a result to store; ``None`` (and say why) when it cannot be."""
    try:
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - any pickling failure: return, don't store
        engine.say(f"not stored: the result of {job.about} cannot be pickled ({error})")
        return None
    return {"pickle": data}


def _traced(
    engine: Engine, job: Job, func: Callable[..., R], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[R, dict[str, Any] | None, Sequence[tuple[str, int]]]:
    """Run a traced call: store what it opened and listed with its result (``trace=True``)."""
    from jobstamps.trace import audit, paths
    from jobstamps.trace.parse import Ignore

    started = time.time_ns()
    with audit.recording() as access:
        result = func(*args, **kwargs)
    payload = _payload(engine, job, result)
    if payload is None:
        return result, None, ()
    entries, why = paths.record(access, job.method, started, Ignore((), trees=[engine.store.data]))
    if why:
        engine.say(f"not stored: {why}")
        return result, None, ()
    payload["traced"] = entries
    return result, payload, ()


#: The remote cache of this process, once a miss opened it (``None`` in it: none usable).
_remote: list[Layered | None] = []
#: Whether the remote was found unusable for Python results, and said so.
_unsigned: list[bool] = []
#: What :func:`_warn_once` said.
_said: set[str] = set()


def _engine(
    cache: _Cache,
    explaining: bool,
    func: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    shared: bool = True,
) -> Engine:
    """Return the engine for one call: explaining if asked to, with the remote if configured.

    ``shared=False`` keeps the remote out (traced results stay local).
    """
    engine = Engine(cache.store, _say) if explaining else cache.engine
    if shared and os.environ.get("JOBSTAMPS_REMOTE"):
        engine = _with_remote(engine, func, args, kwargs)
    return engine


def _with_remote(
    engine: Engine, func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Engine:
    """Return an engine that looks up and shares this call's result through the remote cache.

    Only with ``JOBSTAMPS_REMOTE_KEY``: results are pickles, which run code when loaded, so
    they are taken only from records signed with the shared key. Without it the remote is not
    used, as said once under ``JOBSTAMPS_DEBUG``.
    """
    if not os.environ.get("JOBSTAMPS_REMOTE_KEY"):
        if settings.debugging() and not _unsigned:
            _unsigned.append(True)
            _say(
                "the remote cache is not used for Python results without JOBSTAMPS_REMOTE_KEY "
                "(results are pickles: they are shared only signed)"
            )
        return engine
    shared_engine = Engine(engine.store, _say if settings.debugging() else None)
    state: dict[str, Any] = {}

    def fill(job: Job) -> bool:
        from jobstamps import portable
        from jobstamps.sharing import Shared, Sharing, base_directory
        from jobstamps.storage.records import PICKLE

        layered = _open_remote(shared_engine.store)
        if layered is None or (job.outputs and not job.restore_outputs):
            return False
        base = base_directory(os.getcwd(), None, _warn_once)
        if not base:
            return False
        outside = portable.first_outside(job.outputs, base)
        if outside is not None:
            shared_engine.say(f"not shared: output file {outside} is outside {base}")
            return False
        deps = [fingerprint.record(path, job.method) for path in job.dependencies]
        digests = portable.dependency_digests(job.dependencies, deps)
        if digests is None:
            return False
        where = (
            [portable.relative(path, base) for path in job.dependencies],
            [portable.relative(path, base) for path in job.outputs],
            bool(job.restore_outputs),
        )
        call = call_key(func, args, kwargs, ("jobstamps-remote", *where))
        remote_key = portable.python_key(call, base, job.dependencies, digests, job.outputs)
        state["sharing"] = sharing = Sharing(shared_engine, layered, base)
        state["shared"] = shared = Shared(job, remote_key, deps, PICKLE)
        return job.key in sharing.fill([shared])

    def stored(job: Job, deps: list[Any], payload: dict[str, Any]) -> None:
        shared = state.get("shared")
        if shared is not None and shared.job is job:
            state["sharing"].upload(shared, deps, payload)

    shared_engine.fill, shared_engine.stored = fill, stored
    return shared_engine


def _warn_once(line: str) -> None:
    """Say ``line`` on standard error the first time only (a setting ignored for the process)."""
    if line not in _said:
        _said.add(line)
        sys.stderr.write(line + "\n")


def _open_remote(store: Store) -> Layered | None:
    """Open the remote cache once per process; at exit, finish the uploads and count them."""
    if not _remote:
        import atexit

        from jobstamps.storage.layered import Layered
        from jobstamps.storage.remote import open_remote

        remote = open_remote(store=store)
        layered = Layered(store, remote) if remote is not None else None
        _remote.append(layered)
        if layered is not None:
            atexit.register(layered.close)
    return _remote[0]
