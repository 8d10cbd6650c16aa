"""Canonical encoding of Python calls: equal calls give equal keys in every process.

Values are encoded by type and content (dicts and sets in sorted order, other objects
through their pickle reduction), never by ``repr`` or address, and equal values encode
equally however they share objects. A function is identified by module, qualified name, a
digest of its source and code, its defaults and what it closes over, so editing it (or
closing over another value) changes its keys.
"""

from __future__ import annotations

from jobstamps.errors import UnhashableArgumentError
from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import CodeType
    from typing import Any

__all__ = ["call_key", "describe_callable", "encode"]

_code_digests: dict[CodeType, bytes] = {}
_signatures: dict[Any, Any] = {}
_BUILTIN_KINDS = frozenset({"builtin_function_or_method", "method-wrapper", "wrapper_descriptor"})


def encode(value: object) -> bytes:
    """Return the canonical byte encoding of ``value``; raise if it has none."""
    out: list[bytes] = []
    try:
        _encode(value, out, None)
    except RecursionError:
        # Deep, or a cycle: encode again, writing a reference where a value contains itself.
        out = []
        try:
            _encode(value, out, {})
        except RecursionError:
            raise UnhashableArgumentError(
                "cannot key a value nested this deeply. Pass a flatter value"
            ) from None
    return b"".join(out)


def _str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return b"s%d:%s" % (len(data), data)


def _bool(value: bool) -> bytes:
    return b"T" if value else b"F"


#: Encoders of values that contain nothing, by exact type (subclasses are objects).
_ATOMS: dict[type, Callable[[Any], bytes]] = {
    str: _str,
    int: lambda value: b"i%d;" % value,
    type(None): lambda _: b"N",
    bool: _bool,
    float: lambda value: b"f%s;" % value.hex().encode(),
    bytes: lambda value: b"b%d:%s" % (len(value), value),
}


def _encode(value: Any, out: list[bytes], path: dict[int, int] | None) -> None:
    """Append the encoding of ``value`` to ``out``.

    ``path`` (when cycles are possible) maps the ids of the containers being encoded to their
    depth, so that a container met again inside itself is written as a reference.
    """
    kind = type(value)
    atom = _ATOMS.get(kind)
    if atom is not None:
        out.append(atom(value))
        return
    if path is not None:
        if id(value) in path:
            out.append(b"r%d;" % path[id(value)])
            return
        path[id(value)] = len(path)
    if kind is list or kind is tuple:
        out.append(b"%s%d:" % (b"l" if kind is list else b"t", len(value)))
        _sequence(value, out, path)
    elif kind is dict:
        _unordered(b"d", value.items(), out, path)
    elif kind is set or kind is frozenset:
        _unordered(b"S" if kind is set else b"Z", [(item,) for item in value], out, path)
    else:
        _other(value, kind, out, path)
    if path is not None:
        del path[id(value)]


def _sequence(values: Any, out: list[bytes], path: dict[int, int] | None) -> None:
    """Encode each value in turn; atoms inline, as most values are."""
    for item in values:
        atom = _ATOMS.get(type(item))
        if atom is None:
            _encode(item, out, path)
        else:
            out.append(atom(item))


def _unordered(tag: bytes, items: Any, out: list[bytes], path: dict[int, int] | None) -> None:
    """Encode an unordered collection of tuples (dict items, or 1-tuples of set members)."""
    encoded = []
    for item in items:
        sub: list[bytes] = []
        _sequence(item, sub, path)
        encoded.append(b"".join(sub))
    encoded.sort()
    out.append(b"%s%d:" % (tag, len(encoded)))
    out.extend(encoded)


def _other(value: Any, kind: type, out: list[bytes], path: dict[int, int] | None) -> None:  # noqa: C901 - one branch per type
    name = kind.__name__
    if kind is bytearray or kind is complex or value is Ellipsis or value is NotImplemented:
        data = repr(value).encode()
        out.append(b"x%s%d:%s" % (name.encode(), len(data), data))
    elif isinstance(value, type):
        out.append(_named(b"c", value))
    elif name == "module":
        out.append(_named(b"m", value))
    elif name == "function" and hasattr(value, "__code__"):
        out.append(_named(b"F", value) + _code_digest(value))
        # What the code closes over and its defaults decide what it does, too.
        if value.__closure__ is None and value.__defaults__ is None and not value.__kwdefaults__:
            out.append(b"N")
            return
        cells = []
        for cell in value.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # noqa: PERF203 - a cell not yet bound
                cells.append(Ellipsis)
        _encode((value.__defaults__, value.__kwdefaults__, cells), out, path)
    elif name in _BUILTIN_KINDS:
        out.append(_named(b"B", value))
        owner = getattr(value, "__self__", None)
        if owner is not None and type(owner).__name__ != "module":
            _encode(owner, out, path)
    elif hasattr(value, "__self__") and hasattr(value, "__func__"):  # a bound method
        out.append(b"M")
        _encode(value.__self__, out, path)
        _encode(value.__func__, out, path)
    else:
        _reduced(value, kind, out, path)


def _reduced(value: Any, kind: type, out: list[bytes], path: dict[int, int] | None) -> None:
    """Encode an object through its pickle reduction: constructor, arguments, state, items."""
    try:
        reduced = value.__reduce_ex__(4)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be keyed"
        raise UnhashableArgumentError(
            f"cannot key a value of type {kind.__qualname__}: {error}. "
            "Pass plain data (or an object that can be pickled) instead"
        ) from None
    if isinstance(reduced, str):
        out.append(b"g" + f"{kind.__module__}.{reduced}".encode() + b";")
        return
    out.append(_named(b"o", kind))
    parts = (*reduced, None, None, None, None)
    _encode((parts[0], parts[1], parts[2]), out, path)
    _encode(None if parts[3] is None else list(parts[3]), out, path)
    if parts[4] is None:
        out.append(b"N")
    else:
        _unordered(b"d", list(parts[4]), out, path)


def _named(tag: bytes, obj: object) -> bytes:
    data = describe_callable(obj).encode("utf-8", "surrogatepass")
    return b"%s%d:%s" % (tag, len(data), data)


def describe_callable(obj: object) -> str:
    """Name a callable (or class, or module) for keys and messages: ``module:qualname``."""
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return f"{module}:{name}"


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
    consts = [_code_bytes(c) if type(c) is type(code) else c for c in code.co_consts]
    return encode((code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts))


def _bound_arguments(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> object:
    """Normalise a call so ``f(1)``, ``f(x=1)`` and ``f(1, y=<default>)`` key alike."""
    code = getattr(func, "__code__", None)
    if (
        code is not None
        and not kwargs
        and len(args) == code.co_argcount
        and not code.co_kwonlyargcount
        and not code.co_flags & 0x0C  # no *args, no **kwargs
        and type(func).__name__ == "function"
    ):
        # Every parameter given by position: the binding is plain (and much faster).
        return dict(zip(code.co_varnames, args, strict=False))
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
    payload = encode(("jobstamps-call-2", identity, _bound_arguments(func, args, kwargs), extra))
    return blake2b(payload, digest_size=20).hexdigest()
