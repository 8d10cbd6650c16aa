"""Canonical keys: equal calls and equal command lines give equal keys in every process.

Python values are encoded by type and content (dicts and sets in sorted order, objects
through their pickle reduction), never by ``repr`` or address. A function is identified by
module, qualified name and a digest of its source and code, so editing it changes its keys.
"""

from __future__ import annotations

import os

from jobstamps.errors import UnhashableArgumentError
from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import CodeType
    from typing import Any

__all__ = [
    "abspaths",
    "call_key",
    "command_fields",
    "command_key",
    "describe_callable",
    "encode",
    "executable_identity",
    "resolve_executable",
    "same_destination",
]

_code_digests: dict[CodeType, bytes] = {}
_signatures: dict[Any, Any] = {}


def _frame(tag: bytes, data: bytes) -> bytes:
    return tag + str(len(data)).encode() + b":" + data


class _Encoder:
    """Writes one canonical byte string for a tree of Python values.

    Equal values encode equally however they share objects; only a reference back to an
    object being encoded (a cycle) is written as a reference, to the depth it stands at.
    """

    def __init__(self, path: dict[int, int] | None = None) -> None:
        self.out: list[bytes] = []
        self._path: dict[int, int] = {} if path is None else path

    def encode(self, value: Any) -> None:  # noqa: C901, PLR0912 - one branch per type family
        out = self.out
        kind = type(value)
        if value is None or value is Ellipsis or value is NotImplemented:
            out.append(_frame(b"K", repr(value).encode()))
        elif kind is bool:
            out.append(b"T" if value else b"F")
        elif kind is int:
            out.append(_frame(b"i", str(value).encode()))
        elif kind is float:
            out.append(_frame(b"f", value.hex().encode()))
        elif kind is complex:
            out.append(_frame(b"j", f"{value.real.hex()},{value.imag.hex()}".encode()))
        elif kind is str:
            out.append(_frame(b"s", value.encode("utf-8", "surrogatepass")))
        elif kind is bytes:
            out.append(_frame(b"b", value))
        elif kind is bytearray:
            out.append(_frame(b"y", bytes(value)))
        elif isinstance(value, type):
            out.append(_frame(b"c", _qualified(value).encode()))
        elif _is_module(value):
            out.append(_frame(b"m", value.__name__.encode()))
        else:
            depth = self._path.get(id(value))
            if depth is not None:
                out.append(_frame(b"r", str(depth).encode()))
                return
            self._path[id(value)] = len(self._path)
            try:
                self._container(value, kind)
            finally:
                del self._path[id(value)]

    def _container(self, value: Any, kind: type) -> None:
        out = self.out
        if kind is tuple or kind is list:
            out.append(_frame(b"t" if kind is tuple else b"l", str(len(value)).encode()))
            for item in value:
                self.encode(item)
        elif kind is dict:
            self._unordered(b"d", list(value.items()))
        elif kind is set or kind is frozenset:
            self._unordered(b"S" if kind is set else b"Z", list(value))
        elif _is_function(value):
            out.append(_frame(b"F", _qualified(value).encode()) + _code_digest(value))
            # What the code closes over and its defaults decide what it does, too.
            cells = []
            for cell in value.__closure__ or ():
                try:
                    cells.append(cell.cell_contents)
                except ValueError:  # noqa: PERF203 - a cell not yet bound
                    cells.append(Ellipsis)
            self.encode((value.__defaults__, value.__kwdefaults__, cells))
        elif _is_builtin(value):
            owner = getattr(value, "__self__", None)
            out.append(_frame(b"B", _qualified(value).encode()))
            if owner is not None and not _is_module(owner):
                self.encode(owner)
        else:
            self._reduced(value)

    def _unordered(self, tag: bytes, items: list[Any]) -> None:
        encoded = []
        for item in items:
            sub = _Encoder(self._path)
            sub.encode(item)
            encoded.append(b"".join(sub.out))
        encoded.sort()
        self.out.append(_frame(tag, str(len(encoded)).encode()))
        self.out.extend(encoded)

    def _reduced(self, value: Any) -> None:
        if hasattr(value, "__self__") and hasattr(value, "__func__"):  # bound method
            self.out.append(b"M")
            self.encode(value.__self__)
            self.encode(value.__func__)
            return
        try:
            reduced = value.__reduce_ex__(4)
        except Exception as error:  # noqa: BLE001 - any failure means "cannot be keyed"
            raise UnhashableArgumentError(
                f"cannot key a value of type {type(value).__qualname__}: {error}. "
                "Pass plain data (or an object that can be pickled) instead"
            ) from None
        if isinstance(reduced, str):
            self.out.append(_frame(b"g", f"{type(value).__module__}.{reduced}".encode()))
            return
        self.out.append(_frame(b"o", _qualified(type(value)).encode()))
        callable_, args, state = (*reduced[:3], None, None)[:3]
        self.encode((callable_, args, state))
        items = reduced[3] if len(reduced) > 3 else None  # noqa: PLR2004 - pickle's layout
        self.encode(None if items is None else list(items))
        pairs = reduced[4] if len(reduced) > 4 else None  # noqa: PLR2004 - pickle's layout
        if pairs is None:
            self.encode(None)
        else:
            self._unordered(b"d", list(pairs))


def _qualified(obj: object) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return f"{module}:{name}"


def _is_function(value: object) -> bool:
    return type(value).__name__ == "function" and hasattr(value, "__code__")


def _is_builtin(value: object) -> bool:
    return type(value).__name__ in {
        "builtin_function_or_method",
        "method-wrapper",
        "wrapper_descriptor",
    }


def _is_module(value: object) -> bool:
    return type(value).__name__ == "module"


def _code_digest(func: Any) -> bytes:
    """Digest of a function's source (where available) and compiled code, cached per code."""
    code = func.__code__
    digest = _code_digests.get(code)
    if digest is None:
        hasher = blake2b(digest_size=20)
        try:
            import inspect

            hasher.update(inspect.getsource(func).encode("utf-8", "surrogatepass"))
        except (OSError, TypeError):
            pass
        hasher.update(_code_bytes(code))
        digest = hasher.digest()
        _code_digests[code] = digest
    return digest


def _code_bytes(code: CodeType) -> bytes:
    encoder = _Encoder()
    consts = [_code_bytes(c) if type(c) is type(code) else c for c in code.co_consts]
    encoder.encode((code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts))
    return b"".join(encoder.out)


def encode(value: object) -> bytes:
    """Return the canonical byte encoding of ``value``; raise if it has none."""
    encoder = _Encoder()
    try:
        encoder.encode(value)
    except RecursionError:
        raise UnhashableArgumentError(
            "cannot key a value nested this deeply. Pass a flatter value"
        ) from None
    return b"".join(encoder.out)


def _bound_arguments(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> object:
    """Normalise a call so ``f(1)``, ``f(x=1)`` and ``f(1, y=<default>)`` key alike."""
    try:
        signature = _signatures.get(func, False)
    except TypeError:  # an unhashable callable
        signature = False
    if signature is False:
        import inspect

        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            signature = None
        try:
            _signatures[func] = signature
        except TypeError:
            pass
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            pass  # the call itself will fail; key it as given
        else:
            bound.apply_defaults()
            return dict(bound.arguments)
    return (tuple(args), dict(kwargs))


def call_key(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], extra: object
) -> str:
    """Return the key of calling ``func(*args, **kwargs)`` with jobstamps options ``extra``."""
    identity: object = func
    if type(func).__module__ == "unittest.mock":
        # A test double's state records its calls; it stands for the function it is named as.
        identity = ("mock", type(func).__qualname__, getattr(func, "__name__", ""))
    payload = encode(("jobstamps-call-1", identity, _bound_arguments(func, args, kwargs), extra))
    return blake2b(payload, digest_size=20).hexdigest()


def describe_callable(func: object) -> str:
    """Name a callable for messages: ``module:qualname``."""
    return _qualified(func)


def command_key(fields: Sequence[str]) -> str:
    """Return the key of a command invocation described by ``fields`` (see ``jobstamps.cli``)."""
    data = "\0".join(("jobstamps-command-1", *fields)).encode("utf-8", "surrogateescape")
    return blake2b(data, digest_size=20).hexdigest()


def abspaths(paths: Sequence[str | os.PathLike[str]], cwd: str | None = None) -> list[str]:
    """Resolve paths against ``cwd`` (default: the working directory), keeping symlinks."""
    base = cwd or os.getcwd()
    return [os.path.normpath(os.path.join(base, os.fspath(p))) for p in paths]


def resolve_executable(name: str, cwd: str, path: str | None) -> str | None:
    """Find the file a command name runs, as ``execvp`` would; ``None`` when there is none.

    A name with a slash is taken relative to ``cwd``; otherwise each ``path`` entry is tried.
    A file found without execute permission is still returned, so the caller can tell
    "not executable" (126) from "not found" (127).
    """
    if os.sep in name or (os.altsep and os.altsep in name):
        candidate = os.path.join(cwd, name)
        return candidate if os.path.isfile(candidate) else None
    fallback = None
    for entry in (path if path is not None else os.defpath).split(os.pathsep):
        candidate = os.path.join(cwd, entry or ".", name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            fallback = fallback or candidate
    return fallback


def executable_identity(path: str) -> str:
    """Identify an executable by path, size and modification time, as ccache does by default.

    Upgrading or reinstalling the tool changes it; copying the same bytes elsewhere does not
    matter because the path is part of it too.
    """
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}"


def same_destination(a: int, b: int) -> bool:
    """Whether two file descriptors lead to the same file, pipe or terminal."""
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


def command_fields(
    cwd: str,
    executable: str,
    method: str,
    argv: Sequence[str],
    dependencies: Sequence[str] = (),
    outputs: Sequence[str] = (),
    env_names: Sequence[str] = (),
    stdin_digest: str = "-",
) -> tuple[list[str], bool]:
    """Describe a command invocation for :func:`command_key`; also say if stdout is stderr.

    Besides what is given, the key notes whether stdout and stderr are terminals and whether
    they lead to the same place: output recorded for one is not replayed into the other.
    """
    merged = same_destination(1, 2)
    fields = [
        cwd,
        executable_identity(executable),
        method,
        f"tty:{int(os.isatty(1))}{int(os.isatty(2))} merged:{int(merged)}",
        f"argv:{len(argv)}",
        *argv,
        f"deps:{len(dependencies)}",
        *dependencies,
        f"outputs:{len(outputs)}",
        *outputs,
        f"env:{len(env_names)}",
        *(
            f"{name}={os.environ[name]}" if name in os.environ else f"{name} unset"
            for name in env_names
        ),
        f"stdin:{stdin_digest}",
    ]
    return fields, merged
