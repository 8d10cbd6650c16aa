"""Canonical encoding of Python calls: equal calls give equal keys in every process.

Values are encoded by type and content (dicts and sets in sorted order, other objects
through their pickle reduction), never by ``repr`` or address, and equal values encode
equally however they share objects. A function is identified by module, qualified name, a
digest of its source and code, its defaults and what it closes over, so editing it (or
closing over another value) changes its keys. A class defined outside the standard library
is identified by its definition too (source, methods' code, plain-data attributes, bases), so
are its instances; ``__main__`` functions and classes by their script's path as well.
"""

from __future__ import annotations

import os
import sys
import types
import weakref
from typing import Generic, TypeVar

from jobstamps.errors import UnhashableArgumentError
from jobstamps.fingerprint import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from inspect import Signature
    from types import CodeType
    from typing import Any

__all__ = ["call_key", "describe_callable", "encode"]

T = TypeVar("T")

_code_digests: dict[CodeType, bytes] = {}


class _ByIdentity(Generic[T]):
    """Values worked out for objects, by identity (not equality), kept while each object lives.

    A cache must not keep user objects alive, nor mistake one object for another that
    merely compares equal (a callable dataclass, a class whose metaclass defines ``==``).
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[weakref.ref[Any], T]] = {}

    def get(self, obj: object) -> T | None:
        """Return the value stored for ``obj``, or ``None``."""
        known = self._known.get(id(obj))
        return known[1] if known is not None and known[0]() is obj else None

    def put(self, obj: object, value: T) -> None:
        """Store ``value`` for ``obj`` until ``obj`` is collected (if it can be referred to)."""
        number = id(obj)
        try:
            ref = weakref.ref(obj, lambda dead: self._forget(number, dead))
        except TypeError:  # cannot be referred to weakly: not cached
            return
        self._known[number] = (ref, value)

    def _forget(self, number: int, dead: weakref.ref[Any]) -> None:
        known = self._known.get(number)
        if known is not None and known[0] is dead:
            del self._known[number]


#: Signatures by callable: a cached callable must not keep user objects alive.
_signatures: _ByIdentity[Signature] = _ByIdentity()
#: Digests of class sources by class (a class's attributes are read on every call).
_class_sources: _ByIdentity[bytes] = _ByIdentity()
_main_paths: dict[str, str] = {}  # ``__main__.__file__`` -> the script's resolved path
_BUILTIN_KINDS = frozenset({"builtin_function_or_method", "method-wrapper", "wrapper_descriptor"})
_PLAIN_DEPTH = 8


class _UnkeyableError(UnhashableArgumentError):
    """A value that cannot be keyed, with what :func:`call_key` needs to name the culprit."""

    def __init__(self, kind: str, reason: str, advice: str) -> None:
        super().__init__(f"cannot key a value of type {kind}: {reason}. {advice}")
        self.kind = kind
        self.reason = reason
        self.advice = advice


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
            raise _UnkeyableError(
                type(value).__qualname__, "it is nested too deeply", "Pass a flatter value"
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


def _other(value: Any, kind: type, out: list[bytes], path: dict[int, int] | None) -> None:
    name = kind.__name__
    if kind is bytearray or kind is complex or value is Ellipsis or value is NotImplemented:
        data = repr(value).encode()
        out.append(b"x%s%d:%s" % (name.encode(), len(data), data))
    elif isinstance(value, type):
        out.append(_class(value))
    elif name == "module":
        out.append(_named(b"m", value))
    elif name == "function" and hasattr(value, "__code__"):
        _function(value, out, path)
    elif name in _BUILTIN_KINDS:
        out.append(_named(b"B", value))
        owner = getattr(value, "__self__", None)
        if owner is not None and type(owner).__name__ != "module":
            _encode(owner, out, path)
    elif hasattr(value, "__self__") and hasattr(value, "__func__"):  # a bound method
        out.append(b"M")
        _encode(value.__self__, out, path)
        _encode(value.__func__, out, path)
    elif callable(getattr(value, "__wrapped__", None)) and _in_library(kind):
        # A wrapper from the standard library (functools.cache, lru_cache): it does what the
        # function it wraps does.
        out.append(b"W" + _class(kind))
        _encode(value.__wrapped__, out, path)
    else:
        _reduced(value, kind, out, path)


def _function(value: Any, out: list[bytes], path: dict[int, int] | None) -> None:
    """Encode a Python function: its name, code, defaults and what it closes over."""
    out.append(_named(b"F", value) + _code_digest(value))
    registry = getattr(value, "registry", None)
    if isinstance(registry, types.MappingProxyType) and hasattr(value, "dispatch"):
        # functools.singledispatch: what it does is its implementations, by type; its own
        # closure holds caches (weak references) that say nothing about that.
        _unordered(b"D", list(registry.items()), out, path)
        return
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


def _reduced(value: Any, kind: type, out: list[bytes], path: dict[int, int] | None) -> None:
    """Encode an object through its pickle reduction: constructor, arguments, state, items."""
    try:
        reduced = value.__reduce_ex__(4)
    except Exception as error:  # noqa: BLE001 - any failure means "cannot be keyed"
        raise _UnkeyableError(
            kind.__qualname__,
            str(error),
            "Pass plain data (or an object that can be pickled) instead",
        ) from None
    if isinstance(reduced, str):
        wrapped = getattr(value, "__wrapped__", None)
        if callable(wrapped):  # a global wrapper: it does what the function it wraps does
            out.append(b"W" + _class(kind))
            _encode(wrapped, out, path)
            return
        out.append(b"g" + f"{kind.__module__}.{reduced}".encode() + b";")
        return
    out.append(b"o" + _class(kind))
    parts = (*reduced, None, None, None, None)
    _encode((parts[0], parts[1], parts[2]), out, path)
    _encode(None if parts[3] is None else list(parts[3]), out, path)
    if parts[4] is None:
        out.append(b"N")
    elif _ordered(value):
        items = list(parts[4])
        out.append(b"O%d:" % len(items))
        for item in items:
            _sequence(item, out, path)
    else:
        _unordered(b"d", list(parts[4]), out, path)


def _ordered(mapping: object) -> bool:
    """Whether the order of a mapping's items decides its equality (``OrderedDict``)."""
    collections = sys.modules.get("collections")
    return collections is not None and isinstance(mapping, collections.OrderedDict)


def _named(tag: bytes, obj: object) -> bytes:
    name = describe_callable(obj)
    if getattr(obj, "__module__", None) == "__main__":
        # Two scripts may each define the same function over different helpers.
        name += "@" + _main_script()
    data = name.encode("utf-8", "surrogatepass")
    return b"%s%d:%s" % (tag, len(data), data)


def _main_script() -> str:
    """Return the resolved path of the running ``__main__`` script ("" for ``-c`` or a prompt)."""
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(file, str):
        return ""
    resolved = _main_paths.get(file)
    if resolved is None:
        resolved = _main_paths[file] = os.path.realpath(file)
    return resolved


def describe_callable(obj: object) -> str:
    """Name a callable (or class, or module) for keys and messages: ``module:qualname``."""
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return f"{module}:{name}"


def _class(cls: type) -> bytes:
    """Encode a class: its name, and for a class outside the standard library its definition.

    Only the source's digest is cached (per class, held weakly): attributes and methods can be
    reassigned while the program runs, so they are read on every call.
    """
    return _named(b"c", cls) + (b";" if _in_library(cls) else _class_digest(cls))


def _in_library(cls: type) -> bool:
    """Whether ``cls`` comes with Python (built in, or in the standard library)."""
    module = getattr(cls, "__module__", None)
    if not isinstance(module, str):
        return False
    top = module.partition(".")[0]
    return top == "builtins" or top in sys.stdlib_module_names


def _class_digest(cls: type) -> bytes:
    """Digest a class's definition: source, bases, metaclass, methods' code, plain attributes."""
    hasher = blake2b(_class_source(cls), digest_size=20)
    for base in cls.__bases__:
        hasher.update(_class(base))
    if type(cls) is not type:
        hasher.update(_class(type(cls)))
    members = vars(cls)
    for name in sorted(members):
        if name == "__firstlineno__":  # where it is in its file: moving it changes nothing
            continue
        part = _member(members[name])
        if part is not None:
            hasher.update(_str(name) + part)
    return hasher.digest()


def _class_source(cls: type) -> bytes:
    """Return the digest of a class's source (``N`` for none), cached per class (held weakly).

    The source of an installed package's class is left out: finding it parses the whole
    module (a tenth of a second for a large one), and its methods' code covers an upgrade.
    """
    source = _class_sources.get(cls)
    if source is None:
        source = b"N"
        if not _installed(cls):
            import inspect

            try:
                source = blake2b(_str(inspect.getsource(cls)), digest_size=20).digest()
            except (OSError, TypeError, IndexError, SyntaxError):  # generated, or compiled
                pass
        _class_sources.put(cls, source)
    return source


def _installed(cls: type) -> bool:
    """Whether ``cls`` comes from an installed distribution (in a site-packages directory)."""
    import site

    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return False
    directories = [*site.getsitepackages(), site.getusersitepackages()]
    return any(file.startswith(os.path.join(top, "")) for top in directories)


def _member(value: object) -> bytes | None:
    """Encode what a class attribute contributes to the class's behaviour, if anything."""
    kind = type(value).__name__
    if kind in {"staticmethod", "classmethod"}:
        value = value.__func__  # type: ignore[attr-defined]
        kind = type(value).__name__
    if kind == "cached_property":
        value = value.func  # type: ignore[attr-defined]
        kind = type(value).__name__
    if kind == "function" and hasattr(value, "__code__"):
        return b"F" + _code_digest(value)
    if kind == "property":
        accessors = (value.fget, value.fset, value.fdel)  # type: ignore[attr-defined]
        return b"P" + b"".join(_member(f) or b"N" for f in accessors)
    if _plain(value, _PLAIN_DEPTH):
        return encode(value)
    return None  # descriptors, nested classes, instances: named by the source, if at all


def _plain(value: object, depth: int) -> bool:
    """Whether ``value`` is plain data: atoms, and lists, tuples, sets and dicts of them."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if depth <= 0:
        return False
    if kind is dict:
        return all(
            _plain(k, depth - 1) and _plain(v, depth - 1)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    if kind in {list, tuple, set, frozenset}:
        return all(_plain(item, depth - 1) for item in value)  # type: ignore[attr-defined]
    return False


def _code_digest(func: Any) -> bytes:
    """Digest of a function's source (where available) and compiled code, cached per code."""
    code = func.__code__
    digest = _code_digests.get(code)
    if digest is None:
        hasher = blake2b(digest_size=20)
        try:
            import inspect

            if _has_source_file(inspect.unwrap(func)):  # getsource reads what func wraps
                hasher.update(inspect.getsource(func).encode("utf-8", "surrogatepass"))
        except (OSError, TypeError, ValueError):
            pass
        hasher.update(_code_bytes(code))
        digest = hasher.digest()
        _code_digests[code] = digest
    return digest


def _has_source_file(func: Any) -> bool:
    """Whether ``func`` was compiled from a file, so that its source can be read back.

    Code compiled from a string (``exec``, ``eval``: a namedtuple's ``__new__``, a dataclass's
    ``__init__``) names a pseudo-file such as ``<string>``, and the lines found under that name
    belong to whatever else was registered there (3.13 registers ``python -c``'s script).
    """
    code = getattr(func, "__code__", None)
    return code is not None and not code.co_filename.startswith("<")


def _code_bytes(code: CodeType) -> bytes:
    consts = [_code_bytes(c) if type(c) is type(code) else c for c in code.co_consts]
    return encode((code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts))


def _signature(func: Any) -> Signature | None:
    """Return the signature of ``func`` (``None`` if it has none), cached while it lives."""
    known = _signatures.get(func)
    if known is not None:
        return known
    import inspect

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    _signatures.put(func, signature)
    return signature


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
    target: Any = func
    owner: tuple[Any, ...] = ()
    if type(func).__name__ == "method" and type(func.__func__).__name__ == "function":  # type: ignore[attr-defined]
        # A bound method: bind its function (cached for every instance, keeping none alive).
        target, owner = func.__func__, (func.__self__,)  # type: ignore[attr-defined]
    signature = _signature(target)
    if owner and (signature is None or not _takes_owner(signature)):
        target, owner = func, ()  # e.g. ``def method(*args)``: bound as it is, not cached
        signature = _signature(target)
    if signature is not None:
        try:
            bound = signature.bind(*owner, *args, **kwargs)
        except TypeError:
            pass  # the call itself will fail; key it as given
        else:
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            if owner:
                del arguments[next(iter(signature.parameters))]  # keyed with the method
            return arguments
    return (tuple(args), dict(kwargs))


def _takes_owner(signature: Signature) -> bool:
    """Whether a method's first parameter takes the object (or class) it is bound to."""
    first = next(iter(signature.parameters.values()), None)
    return first is not None and first.kind in {first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD}


def call_key(
    func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], extra: object
) -> str:
    """Return the key of calling ``func(*args, **kwargs)`` with jobstamps options ``extra``."""
    identity: object = func
    if type(func).__module__ == "unittest.mock":
        # A test double's state records its calls; it stands for the function it is named as.
        identity = ("mock", type(func).__qualname__, getattr(func, "__name__", ""))
    arguments = _bound_arguments(func, args, kwargs)
    try:
        payload = encode(("jobstamps-call-3", identity, arguments, extra))
    except _UnkeyableError as error:
        raise _blame(func, identity, arguments, error) from None
    return blake2b(payload, digest_size=20).hexdigest()


def _blame(
    func: object, identity: object, arguments: object, error: _UnkeyableError
) -> _UnkeyableError:
    """Say in one line which argument (or the function itself) cannot be keyed, and its type."""
    name = describe_callable(func)
    if isinstance(arguments, dict):
        named = [(f"argument {param!r} of {name}", value) for param, value in arguments.items()]
    else:
        positional: tuple[Any, ...] = arguments[0]  # type: ignore[index]
        keywords: dict[str, Any] = arguments[1]  # type: ignore[index]
        named = [(f"argument {n + 1} of {name}", value) for n, value in enumerate(positional)]
        named += [(f"argument {param!r} of {name}", value) for param, value in keywords.items()]
    for what, value in [(f"the function {name}", identity), *named]:
        try:
            encode(value)
        except _UnkeyableError as culprit:  # noqa: PERF203 - only on the way to an error
            kind = type(value).__qualname__
            inner = "" if culprit.kind == kind else f", holding a {culprit.kind}"
            culprit.args = (
                f"cannot key {what} (type {kind}{inner}): {culprit.reason}. {culprit.advice}",
            )
            return culprit
    return error
