"""The package's layering: every module imports only modules on its floor or below.

The floors are the module map of the style notes, bottom up, adjusted to the tree: the
remote storage modules sit beside the local ones (the storage folder moves bytes and knows no
decision), and :mod:`jobstamps.portable` sits with the other key modules (it is handed a memo,
so it keeps nothing itself). Every import counts: at module level, inside a function, and
under ``TYPE_CHECKING``, so a cycle cannot hide behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jobstamps"

#: Bottom up. A module may import modules on its own floor and on the floors below it.
FLOORS: list[tuple[str, set[str]]] = [
    ("the ground", {"fingerprint", "settings", "errors", "_version"}),
    (
        "keys, file-system primitives, options",
        # launchers is key code (what an executable runs); integrations names installed data;
        # attribution divides output among file names, trace.parse and trace.paths turn a trace
        # into paths and check them: pure functions of what they are given
        {
            "canonical",
            "key",
            "launchers",
            "portable",
            "_fs",
            "options",
            "integrations",
            "attribution",
            "trace",
            "trace.parse",
            "trace.paths",
        },
    ),
    # trace.shared keeps a traced set that many results name as a blob of the store
    ("storage, local and remote", {"store", "storage", "storage.*", "trace.shared"}),
    ("decisions on one cache", {"engine", "explain", "admin"}),
    (
        "front-end machinery",
        # how a trace is obtained (strace, an audit hook) and used; a per-file stored result;
        # per-file batches and bisection, the replay in the order the files were given, the
        # files' results in a remote cache, and a progress line on a terminal
        {
            "calls",
            "replay",
            "runner",
            "sharing",
            "fileresults",
            "trace.*",
            "perfile.schedule",
            "perfile.printing",
            "perfile.remote",
            "progress",
        },
    ),
    ("front ends", {"perfile", "perfile.check", "perfile.command", "decorator", "jobstamp"}),
    ("entry points", {"cli", "precommit", "__main__", "jobstamps"}),
]
#: Key code works out keys from what it is given: it keeps nothing, so it imports no storage.
KEY_MODULES = {"canonical", "key", "launchers", "portable"}


def module_names() -> list[str]:
    """Name every module of the package relative to it (``storage.remote``; ``jobstamps``)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts) or "jobstamps")
    return names


def _resolve(dotted: str) -> str:
    """Name the module (relative to the package) that ``jobstamps.<dotted>`` is, or holds."""
    parts = dotted.split(".")
    while parts:
        if (PACKAGE.joinpath(*parts).with_suffix(".py")).is_file() or (
            PACKAGE.joinpath(*parts, "__init__.py")
        ).is_file():
            return ".".join(parts)
        parts.pop()  # a name defined in the module, not a module
    return "jobstamps"


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Return the package's modules that ``source`` (the text of ``module``) imports anywhere."""
    found = set()
    here = [] if module == "jobstamps" else module.split(".")
    package = here if is_package else here[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                start = ["jobstamps", *package[: len(package) - node.level + 1]]
                base = ".".join([*start, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "jobstamps" or name.startswith("jobstamps."):
                found.add(_resolve(name.removeprefix("jobstamps").lstrip(".")))
    found.discard(module)
    return found


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in it."""
    parts = [] if module == "jobstamps" else module.split(".")
    path = PACKAGE.joinpath(*parts, "__init__.py")
    is_package = path.is_file()
    if not is_package:
        path = PACKAGE.joinpath(*parts).with_suffix(".py")
    return imports_of(path.read_text(encoding="utf-8"), module, is_package)


def floor_of(module: str) -> int:
    """The number of the floor ``module`` is on (``-1``: on none)."""
    for number, (_, members) in enumerate(FLOORS):
        if module in members or any(
            member.endswith(".*") and module.startswith(member[:-1]) for member in members
        ):
            return number
    return -1


def test_the_import_parser_finds_late_guarded_and_relative_imports() -> None:
    source = """
from jobstamps import fingerprint, key
from jobstamps.storage.records import PICKLE
TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobstamps.engine import Job
def later():
    import jobstamps.calls
    from . import pipeline
    from ..store import Store
"""
    assert imports_of(source, "storage.layered") == {
        "fingerprint",
        "key",
        "storage.records",
        "engine",
        "calls",
        "storage.pipeline",
        "store",
    }


def test_every_module_is_on_a_floor() -> None:
    assert [module for module in module_names() if floor_of(module) < 0] == []


@pytest.mark.parametrize("module", module_names())
def test_a_module_imports_nothing_above_its_floor(module: str) -> None:
    floor = floor_of(module)
    above = {name: FLOORS[floor_of(name)][0] for name in imports(module) if floor_of(name) > floor}
    assert above == {}, f"{module} ({FLOORS[floor][0]}) imports from higher floors"


@pytest.mark.parametrize("module", [name for name in module_names() if floor_of(name) == 2])
def test_storage_imports_no_module_that_decides(module: str) -> None:
    deciding = {"engine", "explain", "admin", "portable", "sharing", "calls", "replay", "runner"}
    deciding |= {"perfile", "decorator", "jobstamp", "cli", "precommit"}
    assert imports(module) & deciding == set()


@pytest.mark.parametrize("module", sorted(KEY_MODULES))
def test_key_code_imports_only_the_ground_and_other_key_code(module: str) -> None:
    allowed = FLOORS[0][1] | KEY_MODULES
    assert imports(module) - allowed == set()
