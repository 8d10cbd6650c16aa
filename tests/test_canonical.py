"""Canonical keys of Python calls: equal calls key alike everywhere, different ones apart."""

from __future__ import annotations

import collections
import dataclasses
import decimal
import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

import support
from jobstamps.canonical import call_key, describe_callable, encode
from jobstamps.errors import JobstampsError, UnhashableArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable


def key(func: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    return call_key(func, args, kwargs, None)


def job(a: Any, b: Any = 2, *rest: Any, c: Any = 3, **extra: Any) -> Any:
    return (a, b, rest, c, extra)


def other(a: Any, b: Any = 2, *rest: Any, c: Any = 3, **extra: Any) -> Any:
    return (a, b, rest, c, extra)


@dataclasses.dataclass
class Point:
    x: Any
    y: Any


class Counter:
    def __init__(self, start: int) -> None:
        self.start = start

    def add(self, n: int) -> int:
        return self.start + n


def make_adder(n: int) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + n

    return add


def make_scaler(n: int) -> Callable[[int], int]:
    def scale(x: int, factor: int = n) -> int:
        return x * factor

    return scale


def apply(func: Callable[[int], int], value: int) -> int:
    return func(value)


# -- encoding values -----------------------------------------------------------------------


def test_values_of_different_types_encode_differently() -> None:
    values: list[Any] = [
        None,
        True,
        False,
        0,
        1,
        1.0,
        -0.0,
        0.0,
        1j,
        "1",
        b"1",
        bytearray(b"1"),
        (1,),
        [1],
        {1},
        frozenset({1}),
        {1: None},
        Point(1, 1),
        Point,
        int,
        len,
        os,
        ...,
        NotImplemented,
        job,
        other,
    ]
    encodings = [encode(value) for value in values]
    assert len(set(encodings)) == len(values)


def test_encoding_is_repeatable_for_equal_values() -> None:
    def build() -> Any:
        return {
            "list": [1, 2.5, "three", b"four", None],
            "nested": {"set": {1, 2, 3}, "tuple": (Point(1, [2]), frozenset("ab"))},
            "decimal": decimal.Decimal("1.10"),
            "path": Path("a/b"),
        }

    assert encode(build()) == encode(build())
    changed = build()
    changed["nested"]["tuple"][0].y.append(3)
    assert encode(changed) != encode(build())


def test_dict_insertion_order_does_not_matter() -> None:
    forward = {str(i): i for i in range(50)}
    backward = {str(i): i for i in reversed(range(50))}
    assert list(forward) != list(backward)
    assert encode(forward) == encode(backward)
    assert encode(forward) != encode({**forward, "0": -1})


def test_set_order_does_not_matter() -> None:
    # 1 and 9 share a slot in a small set, so insertion order decides iteration order.
    first: set[int] = set()
    second: set[int] = set()
    for n in (1, 9, 17):
        first.add(n)
    for n in (17, 9, 1):
        second.add(n)
    assert list(first) != list(second)
    assert encode(first) == encode(second)
    assert encode(frozenset(first)) == encode(frozenset(second))
    assert encode(first) != encode(first | {2})


def test_attribute_order_of_objects_does_not_matter() -> None:
    forward, backward = Counter(1), Counter(1)
    vars(backward).clear()
    backward.extra = "x"  # type: ignore[attr-defined]
    backward.start = 1
    forward.extra = "x"  # type: ignore[attr-defined]
    assert list(vars(forward)) != list(vars(backward))
    assert encode(forward) == encode(backward)
    assert encode(forward) != encode(Counter(2))


def test_recursive_values_are_encoded() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    other_loop: list[Any] = [1]
    other_loop.append(other_loop)
    assert encode(loop) == encode(other_loop)
    assert encode(loop) != encode([1, [1]])
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert encode(cycle) == encode(cycle)


def test_shared_values_key_like_copies() -> None:
    # Equal arguments are equal calls, however their parts happen to be shared.
    shared = [0]
    assert encode([shared, shared]) == encode([shared, [0]])


def test_equal_immutable_values_key_alike_however_shared() -> None:
    one = (1, 2)
    two = tuple(n for n in one)
    assert one is not two
    assert encode((one, one)) == encode((one, two))


def test_dict_subclass_order_does_not_matter() -> None:
    forward: collections.defaultdict[str, int] = collections.defaultdict(int)
    backward: collections.defaultdict[str, int] = collections.defaultdict(int)
    for name in "abc":
        forward[name] += 1
    for name in "cba":
        backward[name] += 1
    assert forward == backward
    assert encode(forward) == encode(backward)


def test_float_encoding_is_exact() -> None:
    assert encode(0.1 + 0.2) != encode(0.3)
    assert encode(float("nan")) == encode(float("nan"))
    assert encode(1e300) != encode(1e300 * 10)


def test_strings_with_lone_surrogates_are_encoded() -> None:
    assert encode("\udcff") != encode("\udcfe")


def test_bound_methods_key_by_their_object() -> None:
    assert encode(Counter(1).add) == encode(Counter(1).add)
    assert encode(Counter(1).add) != encode(Counter(2).add)
    assert encode("a".upper) != encode("b".upper)
    assert encode("a".upper) != encode("a".lower)


class Varargs:
    def method(*args: Any) -> Any:
        return args

    @classmethod
    def build(cls, n: int = 1) -> Any:
        return cls, n


def test_bound_methods_bind_their_arguments_whatever_their_signature() -> None:
    assert key(Varargs().method, 1) != key(Varargs().method, 2)
    assert key(Varargs().method, 1) == key(Varargs().method, 1)
    assert key(Varargs.build, n=1) == key(Varargs.build) == key(Varargs.build, 1)
    assert key(Varargs.build, 2) != key(Varargs.build, 1)


def test_partials_key_by_their_arguments() -> None:
    assert encode(functools.partial(job, 1)) == encode(functools.partial(job, 1))
    assert encode(functools.partial(job, 1)) != encode(functools.partial(job, 2))
    assert encode(functools.partial(job, 1)) != encode(functools.partial(other, 1))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(threading.Lock(), id="lock"),
        pytest.param((n for n in range(3)), id="generator"),
        pytest.param({"nested": [threading.Lock()]}, id="nested-lock"),
    ],
)
def test_values_without_a_canonical_form_are_refused(value: object) -> None:
    with pytest.raises(UnhashableArgumentError) as caught:
        encode(value)
    message = str(caught.value)
    assert "cannot key a value of type" in message
    assert "Pass plain data" in message
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, JobstampsError)


def test_an_open_file_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "f").open("w") as handle, pytest.raises(UnhashableArgumentError) as caught:
        encode(handle)
    assert "TextIOWrapper" in str(caught.value)


def test_a_value_nested_too_deeply_is_refused() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnhashableArgumentError, match=r"nested too deeply\. Pass a flatter value"):
        encode(deep)


# -- keying calls --------------------------------------------------------------------------


def test_positional_and_keyword_arguments_key_alike() -> None:
    assert key(job, 1) == key(job, a=1) == key(job, 1, 2) == key(job, 1, b=2, c=3)
    assert key(job, 1) != key(job, 2)
    assert key(job, 1) != key(job, 1, 3)
    assert key(job, 1, c=4) != key(job, 1)


def test_keyword_order_does_not_matter() -> None:
    assert key(job, 1, x=1, y=2) == key(job, 1, y=2, x=1)
    assert key(job, 1, x=1, y=2) != key(job, 1, x=2, y=1)


def test_extra_positional_arguments_are_keyed() -> None:
    assert key(job, 1, 2, 3) != key(job, 1, 2, 4)
    assert key(job, 1, 2, 3) == key(job, 1, 2, 3)


def test_options_are_part_of_the_key() -> None:
    assert call_key(job, (1,), {}, (["/a"], [], "mtime")) != call_key(
        job, (1,), {}, (["/a"], [], "hash")
    )
    assert call_key(job, (1,), {}, (["/a"], [], "mtime")) != call_key(
        job, (1,), {}, (["/a", "/b"], [], "mtime")
    )


def test_a_call_that_does_not_fit_the_signature_is_still_keyed() -> None:
    assert key(job) != key(job, b=1)
    assert key(job, 1, unknown=2) != key(job, 1)


def test_different_functions_with_one_body_key_apart() -> None:
    assert job.__code__.co_code == other.__code__.co_code
    assert key(job, 1) != key(other, 1)


def test_functions_with_one_name_in_two_modules_key_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = """
        def job(x):
            return x * 2
    """
    first = support.load_module(tmp_path / "keys_first.py", source, monkeypatch)
    second = support.load_module(tmp_path / "keys_second.py", source, monkeypatch)
    assert describe_callable(first.job) == "keys_first:job"
    assert key(first.job, 1) != key(second.job, 1)


def test_builtins_and_methods_without_source_are_keyed() -> None:
    assert key(len, [1]) != key(abs, [1])
    assert key(len, [1]) == key(len, [1])
    assert key(str.upper, "a") != key(str.lower, "a")


def test_lambdas_are_keyed_by_their_code() -> None:
    def first(x: int) -> int:
        return x + 1

    assert key(lambda x: x + 1, 1) != key(lambda x: x + 2, 1)
    assert key(lambda x: x + 1, 1) != key(first, 1)


def test_functions_without_source_are_keyed_by_their_code() -> None:
    plus_one = eval("lambda x: x + 1")  # noqa: S307 - a function with no source file
    plus_one_again = eval("lambda x: x + 1")  # noqa: S307
    plus_two = eval("lambda x: x + 2")  # noqa: S307
    assert key(plus_one, 1) == key(plus_one_again, 1)
    assert key(plus_one, 1) != key(plus_two, 1)


def test_a_mock_with_a_name_is_keyed() -> None:
    job_mock = mock.Mock(__name__="job", return_value=1)
    assert key(job_mock, 1) == key(job_mock, 1)
    assert key(job_mock, 1) != key(job_mock, 2)


def test_a_mock_keys_alike_after_it_was_called() -> None:
    job_mock = mock.Mock(__name__="job", return_value=1)
    before = key(job_mock, 1)
    job_mock(1)
    job_mock(1)
    assert key(job_mock, 1) == before


def test_closures_over_different_values_key_apart() -> None:
    assert key(make_adder(1), 1) != key(make_adder(2), 1)
    assert key(apply, make_adder(1), 1) != key(apply, make_adder(2), 1)


def test_functions_with_different_defaults_key_apart_as_arguments() -> None:
    assert key(apply, make_scaler(2), 1) != key(apply, make_scaler(3), 1)


def test_defaults_of_the_called_function_are_keyed() -> None:
    # The called function's own defaults are applied to its arguments, so this is safe.
    assert key(make_scaler(2), 1) != key(make_scaler(3), 1)


# -- across processes and edits ------------------------------------------------------------

KEYS_MODULE = """
    import collections
    import dataclasses
    import decimal
    import enum
    import functools
    import pathlib

    class Point:
        def __init__(self, x, y):
            self.x = x
            self.y = y

    Pair = collections.namedtuple("Pair", "left right")

    @dataclasses.dataclass
    class Settings:
        names: frozenset
        limits: dict

    class Mode(enum.Enum):
        FAST = {"a", "b"}
        SLOW = 2

    @functools.lru_cache
    def cached(x):
        return x

    @functools.singledispatch
    def dispatched(x):
        return x

    @dispatched.register
    def _(x: int):
        return x + 1

    def job(a, b=2, *rest, c=None, **extra):
        return a

    def values():
        names = {f"name-{i}" for i in range(40)}
        return [
            names,
            frozenset(names),
            {name: len(name) for name in sorted(names, reverse=True)},
            {("t", 1): {"s", "t", "u"}, "b": [1, 2.5, None, b"x", 3j]},
            Point({"y", "x"}, {"k": {"v", "w"}}),
            Pair(names, frozenset(names)),
            Settings(frozenset(names), {name: {name} for name in names}),
            Mode.FAST,
            Mode,
            cached,
            dispatched,
            collections.OrderedDict((name, 1) for name in sorted(names)),
            decimal.Decimal("1.10"),
            pathlib.PurePosixPath("a/b"),
        ]
"""

KEYS_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import keys_subject as m
from jobstamps.canonical import call_key, encode
names = {f"name-{i}" for i in range(40)}
print(json.dumps({
    "order": list(names),
    "values": [encode(v).hex() for v in m.values()],
    "call": call_key(m.job, (names,), {"c": {"k", "l"}, "z": {"b": 1, "a": 2}}, ("x",)),
}))
"""


def keys_in_subprocess(directory: Path, seed: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = support.run_python(KEYS_SCRIPT, str(directory), env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_keys_are_equal_across_processes_and_hash_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = support.load_module(tmp_path / "keys_subject.py", KEYS_MODULE, monkeypatch)
    first = keys_in_subprocess(tmp_path, "1")
    second = keys_in_subprocess(tmp_path, "2")
    assert first["order"] != second["order"], "the seeds should order sets differently"
    names = {f"name-{i}" for i in range(40)}
    here = {
        "values": [encode(v).hex() for v in subject.values()],
        "call": call_key(subject.job, (names,), {"z": {"a": 2, "b": 1}, "c": {"l", "k"}}, ("x",)),
    }
    for there in (first, second):
        assert there["values"] == here["values"]
        assert there["call"] == here["call"]


def test_keys_are_equal_whether_the_process_ran_dash_c_or_a_script(tmp_path: Path) -> None:
    # Python 3.13 files ``python -c``'s script under ``<string>``, the pseudo-file that code
    # made by ``exec`` (a namedtuple's ``__new__``) names: its source must not reach the key.
    (tmp_path / "keys_subject.py").write_text(textwrap.dedent(KEYS_MODULE), encoding="utf-8")
    script = tmp_path / "keys_script.py"
    script.write_text(KEYS_SCRIPT, encoding="utf-8")
    from_file = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=support.TIMEOUT,
        check=True,
    )
    from_dash_c = support.run_python(KEYS_SCRIPT, str(tmp_path))
    assert json.loads(from_file.stdout)["values"] == json.loads(from_dash_c.stdout)["values"]


EDIT_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import edited
from jobstamps.canonical import call_key
print(call_key(edited.job, (1,), {}, None))
"""


def test_editing_a_function_changes_its_key(tmp_path: Path) -> None:
    module = tmp_path / "edited.py"
    original = "def job(x):\n    return x * 2\n\n\ndef helper():\n    return 1\n"
    module.write_text(original)
    first = support.run_python(EDIT_SCRIPT, str(tmp_path)).stdout
    assert support.run_python(EDIT_SCRIPT, str(tmp_path)).stdout == first
    # Another function of the module changing does not matter.
    module.write_text(original.replace("return 1", "return 2"))
    assert support.run_python(EDIT_SCRIPT, str(tmp_path)).stdout == first
    # The function's own body does, even when only its text changes.
    module.write_text(original.replace("x * 2", "x * 3"))
    edited = support.run_python(EDIT_SCRIPT, str(tmp_path)).stdout
    assert edited != first
    module.write_text(original.replace("x * 2", "x * 2  # doubled"))
    assert support.run_python(EDIT_SCRIPT, str(tmp_path)).stdout not in {first, edited}


def test_describe_callable_names_module_and_qualified_name() -> None:
    assert describe_callable(job) == f"{__name__}:job"
    assert describe_callable(Counter.add) == f"{__name__}:Counter.add"
    assert describe_callable(len) == "builtins:len"


# -- wrapped functions, classes by their definition, scripts -------------------------------


def load_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, *versions: dict[str, str]
) -> list[Any]:
    """Import versions of one module (``template`` filled in) from separate directories."""
    modules = []
    for number, fields in enumerate(versions):
        (tmp_path / str(number)).mkdir()
        path = tmp_path / str(number) / "versioned.py"
        modules.append(support.load_module(path, template.format(**fields), monkeypatch))
    return modules


CACHED_CONVERT = """
    import functools

    @functools.{decorator}
    def convert(x):
        return x * {factor}
"""


@pytest.mark.parametrize("decorator", ["cache", "lru_cache", "lru_cache(maxsize=8)"])
def test_functools_cached_functions_key_by_the_function_they_wrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decorator: str
) -> None:
    first = support.load_module(
        tmp_path / "convert_a.py", CACHED_CONVERT.format(decorator=decorator, factor=2), monkeypatch
    )
    second = support.load_module(
        tmp_path / "convert_b.py", CACHED_CONVERT.format(decorator=decorator, factor=2), monkeypatch
    )
    # Two modules' convert never share results, as arguments or as the function called.
    assert key(first.convert, 1) != key(second.convert, 1)
    assert key(apply, first.convert, 1) != key(apply, second.convert, 1)
    assert key(first.convert, 1) == key(first.convert, 1)
    first.convert(1)  # what the cache holds does not matter
    assert key(apply, first.convert, 1) == key(apply, first.convert, 1)


def test_editing_a_functools_cached_function_changes_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = load_twice(
        tmp_path,
        monkeypatch,
        CACHED_CONVERT,
        {"decorator": "cache", "factor": "2"},
        {"decorator": "cache", "factor": "3"},
    )
    assert describe_callable(before.convert) == describe_callable(after.convert)
    assert key(before.convert, 1) != key(after.convert, 1)
    assert key(apply, before.convert, 1) != key(apply, after.convert, 1)


CALLABLE_CLASS = """
    class Converter:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return x * self.factor{suffix}
"""


def test_editing_a_callable_objects_call_method_changes_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = load_twice(
        tmp_path, monkeypatch, CALLABLE_CLASS, {"suffix": ""}, {"suffix": " + 1"}
    )
    assert key(before.Converter(2), 1) != key(after.Converter(2), 1)
    assert key(apply, before.Converter(2), 1) != key(apply, after.Converter(2), 1)
    assert key(before.Converter(2), 1) == key(before.Converter(2), 1)
    assert key(before.Converter(2), 1) != key(before.Converter(3), 1)


NAMEDTUPLE = """
    import collections

    Point = collections.namedtuple("Point", "{fields}")
"""


def test_namedtuples_with_other_fields_key_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xy, yx = load_twice(tmp_path, monkeypatch, NAMEDTUPLE, {"fields": "x y"}, {"fields": "y x"})
    assert describe_callable(xy.Point) == describe_callable(yx.Point)
    assert encode(xy.Point(1, 2)) != encode(yx.Point(1, 2))
    assert encode(xy.Point) != encode(yx.Point)
    assert encode(xy.Point(1, 2)) == encode(xy.Point(1, 2))


DATA_CLASS = """
    import dataclasses

    @dataclasses.dataclass
    class Options:
        {first}: int = 0
        {second}: int = 0

        def total(self):
            return self.{first} - self.{second}
"""


def test_classes_with_other_definitions_key_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = load_twice(
        tmp_path,
        monkeypatch,
        DATA_CLASS,
        {"first": "a", "second": "b"},
        {"first": "b", "second": "a"},
    )
    assert encode(before.Options(1, 2)) != encode(after.Options(1, 2))
    assert key(apply, before.Options, 1) != key(apply, after.Options, 1)


def test_classes_that_come_with_python_are_keyed_by_name() -> None:
    assert encode(int) == encode(int)
    assert encode(collections.OrderedDict) != encode(collections.Counter)
    assert encode(int).endswith(b";")
    assert encode(Path).endswith(b";")
    assert not encode(Point).endswith(b";")  # defined here: by its definition
    import joblib

    assert not encode(joblib.Memory).endswith(b";")  # installed: by its methods' code


def test_class_digests_do_not_keep_classes_alive() -> None:
    import gc
    import weakref

    made = type("Made", (), {"x": 1, "method": lambda self: self})
    encode(made())
    alive = weakref.ref(made)
    del made
    gc.collect()
    assert alive() is None


class SameNamed(type):
    """A metaclass whose classes compare equal by name."""

    def __eq__(cls, other: object) -> bool:
        return getattr(other, "__name__", None) == cls.__name__

    def __hash__(cls) -> int:
        return hash(cls.__name__)


def test_classes_equal_to_each_other_keep_their_own_definitions() -> None:
    first = SameNamed("Shape", (), {"sides": 3})
    second = SameNamed("Shape", (), {"sides": 4})
    assert first == second
    assert encode(first) != encode(second)
    assert encode(second) == encode(SameNamed("Shape", (), {"sides": 4}))


@dataclasses.dataclass(frozen=True)
class Doubler:
    """A callable value: equal instances of other classes must not share a signature."""

    def __call__(self, x: int) -> int:
        return x * 2


@dataclasses.dataclass(frozen=True)
class Adder:
    def __call__(self, x: int, y: int = 1) -> int:
        return x + y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (Adder, Doubler))

    def __hash__(self) -> int:
        return hash(Doubler())


def test_callables_equal_to_each_other_keep_their_own_signatures() -> None:
    doubler = Doubler()  # alive, so its signature stays cached
    assert key(doubler, x=1) == key(doubler, 1)
    assert Adder() == doubler
    # Bound to Adder's own signature, y's default is part of the key.
    assert key(Adder(), 1) == key(Adder(), 1, 1) != key(Adder(), 1, 2)


def test_ordered_dicts_in_another_order_key_apart() -> None:
    forward = collections.OrderedDict([("a", 1), ("b", 2)])
    backward = collections.OrderedDict([("b", 2), ("a", 1)])
    assert forward != backward
    assert encode(forward) != encode(backward)
    assert encode(forward) == encode(collections.OrderedDict([("a", 1), ("b", 2)]))
    assert encode(forward) != encode(dict(forward))
    # A plain dict's equality ignores order, and so does its key.
    assert encode(dict(forward)) == encode(dict(backward))


SINGLEDISPATCH = """
    import functools

    @functools.singledispatch
    def describe(value):
        return "value"

    @describe.register
    def _(value: int):
        return "int {suffix}"
"""


def test_singledispatch_functions_are_keyed_by_their_implementations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = load_twice(
        tmp_path, monkeypatch, SINGLEDISPATCH, {"suffix": "one"}, {"suffix": "two"}
    )
    assert before.describe(1) == "int one"  # fills its dispatch cache, which is not keyed
    first = key(before.describe, 1)
    assert key(before.describe, 1) == first
    assert key(after.describe, 1) != first
    assert key(apply, before.describe, 1) != key(apply, after.describe, 1)

    @before.describe.register  # type: ignore[untyped-decorator]
    def _(value: str) -> str:
        return "str"

    assert key(before.describe, 1) != first


def test_an_unkeyable_argument_is_named_with_its_type() -> None:
    with pytest.raises(UnhashableArgumentError) as caught:
        key(job, 1, c={"nested": [threading.Lock()]})
    message = str(caught.value)
    assert message == (
        f"cannot key argument 'c' of {__name__}:job (type dict, holding a lock): "
        "cannot pickle '_thread.lock' object. "
        "Pass plain data (or an object that can be pickled) instead"
    )
    assert "\n" not in message


def test_an_unkeyable_function_is_named() -> None:
    lock = threading.Lock()

    def locked(x: int) -> int:
        with lock:
            return x

    with pytest.raises(UnhashableArgumentError) as caught:
        key(locked, 1)
    assert str(caught.value).startswith(
        f"cannot key the function {describe_callable(locked)} (type function, holding a lock)"
    )
    with pytest.raises(UnhashableArgumentError, match=r"cannot key argument 'func' .*lock"):
        key(apply, locked, 1)


def test_an_argument_nested_too_deeply_is_named() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnhashableArgumentError) as caught:
        key(job, deep)
    assert str(caught.value) == (
        f"cannot key argument 'a' of {__name__}:job (type list): "
        "it is nested too deeply. Pass a flatter value"
    )


MAIN_SCRIPT = """
import sys
from jobstamps import jobstamp

def helper():
    return {value!r}

def job():
    return helper()

print(jobstamp.run(job))
"""


def test_main_scripts_with_the_same_function_do_not_share_results(
    tmp_path: Path, isolated_cache: Path
) -> None:
    results = []
    for value in ("first", "second"):
        script = tmp_path / value / "script.py"
        script.parent.mkdir()
        script.write_text(MAIN_SCRIPT.format(value=value))
        for _ in range(2):  # the second run replays the first
            done = subprocess.run(
                [sys.executable, str(script)],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            results.append(done.stdout.strip())
    assert results == ["first", "first", "second", "second"]
    assert len(support.cache_entries(isolated_cache)) == 2


def test_changing_a_class_attribute_after_a_call_changes_the_key() -> None:
    class Scale:
        factor = 2

        def apply(self, value: int) -> int:
            return value * self.factor

    def scaled(scale: Scale, value: int) -> int:
        return scale.apply(value)

    before = key(scaled, Scale(), 1)
    Scale.factor = 3
    assert key(scaled, Scale(), 1) != before
    Scale.apply = lambda self, value: value + self.factor  # type: ignore[method-assign]
    changed = key(scaled, Scale(), 1)
    assert changed != before
    Scale.factor = 2
    assert key(scaled, Scale(), 1) not in {before, changed}
