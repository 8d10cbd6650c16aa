"""The typed decorator, ``@jobstamps.memoize``."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import jobstamps
import support
from jobstamps import Memoized, memoize
from jobstamps.errors import UsageError
from jobstamps.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable

COUNTER = "JOBSTAMPS_TEST_COUNTER"


def bump() -> None:
    support.bump(os.environ[COUNTER])


def runs() -> int:
    return support.runs(os.environ[COUNTER])


@pytest.fixture(autouse=True)
def counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Memoized functions count their runs in the file this names (it is not an argument)."""
    path = str(tmp_path / "runs")
    monkeypatch.setenv(COUNTER, path)
    return path


@memoize
def square(x: int) -> int:
    """Return ``x`` squared."""
    bump()
    return x * x


@memoize(method="hash")
def scale(x: float, factor: float = 2.0) -> float:
    bump()
    return x * factor


@memoize(dependencies=lambda path: [path], method="hash")
def count_lines(path: str) -> int:
    bump()
    with open(path, encoding="utf-8") as handle:
        return len(handle.readlines())


@memoize(outputs=lambda path, *_: [path])
def make(path: str, text: str) -> str:
    bump()
    Path(path).write_text(text)
    return text


@memoize(outputs=lambda path, *_: [path], restore_outputs=True)
def make_restorable(path: str, text: str) -> str:
    bump()
    Path(path).write_text(text)
    return text


@memoize(enabled=False)
def uncached(x: int) -> int:
    bump()
    return x


def test_a_bare_decorator_runs_once() -> None:
    assert square(3) == 9
    assert square(3) == 9
    assert square(x=3) == 9
    assert runs() == 1
    assert square(4) == 16
    assert runs() == 2


def test_the_wrapper_looks_like_the_function() -> None:
    assert isinstance(square, Memoized)
    for name in functools.WRAPPER_ASSIGNMENTS:
        assert getattr(square, name) == getattr(square.__wrapped__, name)
    assert square.__doc__ == "Return ``x`` squared."
    assert square.__module__ == __name__
    assert square.__wrapped__(5) == 25
    assert runs() == 1  # calling the wrapped function bypasses the cache
    assert square(5) == 25
    assert runs() == 2


def test_results_keep_their_types() -> None:
    typed: int = square(2)  # mypy checks the decorator keeps the signature
    assert type(typed) is int
    assert scale(1.5) == 3.0
    assert scale(1.5, factor=2.0) == 3.0
    assert scale(1.5, 3) == 4.5
    assert runs() == 3


def test_out_of_date_and_check_call_in_cache_run_nothing(isolated_cache: Path) -> None:
    stamp = square.out_of_date(6)
    assert stamp is not None
    assert stamp.startswith(str(isolated_cache))
    assert square.check_call_in_cache(6) is False
    assert runs() == 0
    square(6)
    assert square.out_of_date(6) is None
    assert square.check_call_in_cache(6) is True
    assert square.check_call_in_cache(7) is False
    assert runs() == 1


def test_dependencies_from_the_arguments(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.write_text("one\ntwo\n")
    assert count_lines(str(text)) == 2
    support.backdate(text, 10)  # hash mode: a touch alone does not matter
    assert count_lines(str(text)) == 2
    assert runs() == 1
    text.write_text("one\ntwo\nthree\n")
    assert count_lines.out_of_date(str(text)) == str(text)
    assert count_lines(str(text)) == 3
    assert runs() == 2


def test_outputs_from_the_arguments(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make(str(out), "made")
    make(str(out), "made")
    assert runs() == 1
    out.unlink()
    assert make.out_of_date(str(out), "made") == str(out)
    make(str(out), "made")
    assert out.read_text() == "made"
    assert runs() == 2


def test_restore_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_restorable(str(out), "made")
    out.unlink()
    assert make_restorable(str(out), "made") == "made"
    assert out.read_text() == "made"
    assert runs() == 1


def test_fixed_dependencies_and_cache_dir(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[a]\n")

    @memoize(dependencies=[config], cache_dir=tmp_path / "cache")
    def configured(x: int) -> int:
        bump()
        return x

    configured(1)
    configured(1)
    assert runs() == 1
    assert Store(str(tmp_path / "cache")).stats()["entries"] == 1
    config.write_text("[b]\n")
    configured(1)
    assert runs() == 2


def test_dependencies_given_as_an_iterator_are_kept(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[a]\n")

    @memoize(dependencies=iter([str(config)]))
    def read() -> str:
        bump()
        return config.read_text()

    assert read() == "[a]\n"
    assert read() == "[a]\n"
    assert read() == "[a]\n"
    config.write_text("[b]\n")
    assert read() == "[b]\n"


def test_a_single_path_is_one_dependency(tmp_path: Path) -> None:
    config = tmp_path / "config.ini"
    config.write_text("[a]\n")

    @memoize(dependencies=str(config))
    def configured() -> str:
        bump()
        return "done"

    configured()
    configured()
    assert runs() == 1
    assert configured.out_of_date() is None


def test_disabled_runs_every_time_and_stores_nothing(isolated_cache: Path) -> None:
    assert uncached(1) == 1
    assert uncached(1) == 1
    assert runs() == 2
    assert uncached.out_of_date(1) == "disabled"
    assert uncached.check_call_in_cache(1) is False
    assert not isolated_cache.exists()


def test_jobstamps_disabled_applies_to_the_decorator(
    monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> None:
    monkeypatch.setenv("JOBSTAMPS_DISABLED", "1")
    square(8)
    square(8)
    assert runs() == 2
    assert square.out_of_date(8) == "JOBSTAMPS_DISABLED"
    assert not isolated_cache.exists()


def test_a_bad_method_is_refused_when_decorating() -> None:
    with pytest.raises(UsageError, match="unknown jobstamps method 'sha1'"):
        memoize(method="sha1")


def test_a_bad_method_is_refused_even_when_hashes_are_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBSTAMPS_ALWAYS_USE_HASHES", "1")
    with pytest.raises(UsageError):
        memoize(method="sha1")


def test_always_use_hashes_applies_to_the_decorator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSTAMPS_ALWAYS_USE_HASHES", "1")
    text = tmp_path / "text"
    text.write_text("x\n")

    @memoize(dependencies=[text])
    def read() -> str:
        bump()
        return text.read_text()

    read()
    support.backdate(text, 10)
    read()
    assert runs() == 1


def test_an_unpicklable_result_is_returned_and_not_stored(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    @memoize
    def make_function() -> Callable[[], int]:
        bump()
        return lambda: 1

    monkeypatch.setenv("JOBSTAMPS_DEBUG", "1")
    assert make_function()() == 1
    assert make_function()() == 1
    assert runs() == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert "cannot be pickled" in err


def test_nested_functions_with_one_name_do_not_collide() -> None:
    def build(label: str) -> Memoized[[], str]:
        @memoize
        def job() -> str:
            bump()
            return label

        return job

    first = build("first")
    assert first() == "first"

    @memoize
    def job() -> str:
        bump()
        return "outer"

    assert job() == "outer"
    assert runs() == 2


def test_a_method_can_be_memoized() -> None:
    class Greeter:
        def __init__(self, name: str) -> None:
            self.name = name

        @memoize
        def greet(self, greeting: str) -> str:
            bump()
            return f"{greeting}, {self.name}"

    ada: Any = Greeter("Ada")  # typed loosely: the fix must also type the bound method
    bob: Any = Greeter("Bob")
    assert ada.greet("hello") == "hello, Ada"
    assert ada.greet("hello") == "hello, Ada"
    assert bob.greet("hello") == "hello, Bob"
    assert runs() == 2


def test_a_memoized_method_bound_to_an_object_has_the_signature_of_a_bound_method() -> None:
    import inspect

    class Greeter:
        @memoize
        def greet(self, greeting: str = "hello") -> str:
            return greeting

    assert list(inspect.signature(Greeter().greet).parameters) == ["greeting"]
    assert list(inspect.signature(Greeter.greet).parameters) == ["self", "greeting"]


def test_memoized_methods_do_not_keep_their_objects_alive() -> None:
    import gc
    import weakref

    class Greeter:
        def __init__(self, name: str) -> None:
            self.name = name

        @memoize
        def greet(self, greeting: str = "hello") -> str:
            bump()
            return f"{greeting}, {self.name}"

    greeters: list[Any] = [Greeter(f"n{n}") for n in range(50)]
    for greeter in greeters:
        assert greeter.greet(greeting="hi") == f"hi, {greeter.name}"
        assert greeter.greet() == f"hello, {greeter.name}"
        assert greeter.greet.out_of_date(greeting="hi") is None
    alive = [weakref.ref(greeter) for greeter in greeters]
    del greeters, greeter
    gc.collect()
    assert [ref for ref in alive if ref() is not None] == []


def test_the_package_exposes_the_api_lazily() -> None:
    assert jobstamps.memoize is memoize
    assert jobstamps.Memoized is Memoized
    assert jobstamps.jobstamp.run is not None
    assert issubclass(jobstamps.JobstampsError, Exception)
    assert jobstamps.__version__ == "1.3.0"
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = jobstamps.missing


def test_importing_the_package_stays_lean() -> None:
    done = support.run_python(
        "import sys, jobstamps\n"
        "print(sorted(m for m in sys.modules if m.startswith('jobstamps')))\n"
        "print('pickle' in sys.modules, 'inspect' in sys.modules)\n"
    )
    assert done.stdout == "['jobstamps']\nFalse False\n"


def keyword_only(*, a: int, b: Any = None) -> Any:
    bump()
    return (a, b)


def test_keyword_only_arguments_in_any_order() -> None:
    wrapped = memoize(keyword_only)
    assert wrapped(a=1, b=[2]) == (1, [2])
    assert wrapped(b=[2], a=1) == (1, [2])
    assert runs() == 1
