"""The ``jobstamp`` command: run a command once, then replay its output while nothing changed.

``main`` is the entry point of the installed launcher and of ``python -m jobstamps``. A cache
hit must cost little more than starting Python, so this module parses its options by hand
from one table (no ``argparse``) and imports the runner only on a miss.
"""

from __future__ import annotations

import os
import sys

from jobstamps.errors import CacheDirectoryError, JobstampsError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from jobstamps.engine import Engine
    from jobstamps.store import Store

__all__ = ["Options", "main", "parse"]

_USAGE = "usage: jobstamp [OPTION...] -- COMMAND [ARG...]"
_REPORT = "Please report this bug with the command line and the output of jobstamp --version"

# option: (attribute, kind, metavar, help). Kinds: flag, value, append, paths, action.
_TABLE: dict[str, tuple[str, str, str, str]] = {
    "--dependencies": (
        "dependencies",
        "paths",
        "PATH...",
        "files the result depends on; a change to any re-runs",
    ),
    "--output-files": (
        "output_files",
        "paths",
        "PATH...",
        "files the command creates; a missing or changed one re-runs",
    ),
    "--stamp-directory": (
        "stamp_directory",
        "value",
        "DIR",
        "cache directory (default: $JOBSTAMPS_CACHE_DIR, else the per-user cache)",
    ),
    "--use-hashes": (
        "use_hashes",
        "flag",
        "",
        "compare dependencies by content, so a touch or a fresh checkout still hits",
    ),
    "--env": (
        "env",
        "append",
        "NAME",
        "make the value of environment variable NAME part of the key (repeatable)",
    ),
    "--stdin": (
        "stdin",
        "flag",
        "",
        "read standard input, make it part of the key and pass it to the command",
    ),
    "--explain": (
        "explain",
        "flag",
        "",
        "say on stderr why the command ran or was replayed (also JOBSTAMPS_DEBUG=1)",
    ),
    "--restore-outputs": (
        "restore_outputs",
        "flag",
        "",
        "store output files and restore deleted ones on a hit",
    ),
    "--no-store-failures": (
        "no_store_failures",
        "flag",
        "",
        "do not store results with a non-zero exit status",
    ),
    "--per-file": (
        "per_file",
        "flag",
        "",
        "check each FILE on its own: --per-file [OPTION...] -- COMMAND [ARG...] -- FILE...",
    ),
    "--force": (
        "force",
        "flag",
        "",
        "run the command even if nothing changed, and store the new result",
    ),
    "--show-stats": (
        "show_stats",
        "action",
        "",
        "show the cache's location, size, hits and misses",
    ),
    "--clear": ("clear", "action", "", "remove every stored result"),
    "--max-size": (
        "max_size",
        "value",
        "SIZE",
        "limit the cache to SIZE (500M, 5G; 0: none), evicting least recently used results",
    ),
    "--cmake-dir": (
        "cmake_dir",
        "action",
        "",
        "print the directory of the CMake package, for -DJobstamps_DIR=...",
    ),
    "--make-include": ("make_include", "action", "", "print the path of the GNU Make include file"),
    "--version": ("version", "action", "", "print the version"),
    "--help": ("help", "action", "", "show this help"),
}
_ALIASES = {"-h": "--help"}

_EXAMPLES = """\
examples:
  jobstamp --dependencies src/a.py setup.cfg -- flake8 src/a.py
  jobstamp --use-hashes --dependencies main.c --env CFLAGS -- clang-tidy main.c
  git show HEAD:x.py | jobstamp --stdin -- flake8 -
  jobstamp --output-files gen.h --restore-outputs --dependencies gen.py -- python gen.py
  jobstamp --show-stats
  jobstamp --max-size 2G

The command's stdout, stderr and exit status are stored and replayed exactly while the
command line, executable, working directory, declared environment, dependencies and outputs
are unchanged. Relative paths are taken from the working directory.
"""


class Options:
    """Parsed command line: one attribute per option, plus ``command``."""

    def __init__(self) -> None:
        self.dependencies: list[str] = []
        self.output_files: list[str] = []
        self.stamp_directory: str | None = None
        self.use_hashes = False
        self.env: list[str] = []
        self.stdin = False
        self.explain = False
        self.restore_outputs = False
        self.no_store_failures = False
        self.force = False
        self.show_stats = False
        self.clear = False
        self.max_size: str | None = None
        self.cmake_dir = False
        self.make_include = False
        self.version = False
        self.help = False
        self.command: list[str] | None = None

    def actions(self) -> bool:
        """Whether a cache-management or information option was given."""
        flags = (self.show_stats, self.clear, self.cmake_dir, self.make_include)
        return any(flags) or self.version or self.help or self.max_size is not None


def parse(argv: Sequence[str]) -> Options:  # noqa: C901, PLR0912 - one loop over one table
    """Parse ``argv``; raise :class:`UsageError` for anything it cannot mean."""
    options = Options()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            options.command = list(argv[index:])
            break
        name, has_value, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        name = _ALIASES.get(name, name)
        spec = _TABLE.get(name)
        if spec is None:
            if not arg.startswith("-"):
                raise UsageError(f"'{arg}' is not an option; put the command after '--'")
            raise UsageError(f"unknown option {name}")
        attribute, kind, _, _ = spec
        if kind in {"flag", "action"}:
            if has_value:
                raise UsageError(f"{name} takes no value")
            setattr(options, attribute, True)
        elif kind == "paths":
            paths = getattr(options, attribute)
            if has_value:
                paths.append(value)
            while index < len(argv) and not argv[index].startswith("-"):
                paths.append(argv[index])
                index += 1
        else:
            if not has_value:
                if index >= len(argv) or argv[index] == "--":
                    raise UsageError(f"{name} needs a value")
                value = argv[index]
                index += 1
            if kind == "append":
                getattr(options, attribute).append(value)
            else:
                setattr(options, attribute, value)
    if options.actions():
        if options.command is not None:
            raise UsageError("cache-management options take no command after '--'")
    elif options.command is None:
        raise UsageError("no command given: write it after '--'")
    elif not options.command:
        raise UsageError("no command after '--'")
    return options


def _help() -> str:
    lines = [
        _USAGE,
        "",
        "Run COMMAND, or replay its stored result if nothing it depends on changed.",
        "",
        "options:",
    ]
    for name, (_, kind, metavar, text) in _TABLE.items():
        label = f"{name} {metavar}" if metavar else name
        if kind == "action" and name == "--help":
            label = "-h, --help"
        lines.append(f"  {label:<26}{text}")
    return "\n".join(lines) + "\n\n" + _EXAMPLES


def _error(message: str, usage: bool = False) -> None:
    text = f"jobstamp: {message}\n"
    if usage:
        text += _USAGE + " (see jobstamp --help)\n"
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobstamp`` command line; return its exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--per-file" in args[: args.index("--") if "--" in args else None]:
        from jobstamps import perfile

        return perfile.main(args)
    try:
        options = parse(args)
        if options.actions():
            from jobstamps import admin

            return admin.run(options, _help)
        return _Invocation(options).run()
    except UsageError as error:
        _error(str(error), usage=True)
        return 2
    except CacheDirectoryError as error:
        _error(str(error), usage=True)
        return 2
    except JobstampsError as error:
        _error(str(error))
        return 1
    except KeyboardInterrupt:
        return 130


class _Invocation:
    """One run of a wrapped command through the cache."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.command: list[str] = options.command or []
        self.exit_code: int | None = None  # set once the command has run

    def run(self) -> int:
        try:
            return self._cached()
        except (JobstampsError, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - never fail a build for our own bug
            if self.exit_code is not None:
                _error(f"internal error after the command ran: {error!r}. {_REPORT}")
                return self.exit_code
            _error(f"internal error: {error!r}; running the command without the cache. {_REPORT}")
            return _run_plain(self.command)

    def _cached(self) -> int:
        from jobstamps import key, settings
        from jobstamps.engine import HASH, MTIME, Engine, Job
        from jobstamps.fingerprint import digest_bytes
        from jobstamps.store import Store

        options = self.options
        cwd = os.getcwd()
        executable = key.resolve_executable(self.command[0], cwd, os.environ.get("PATH"))
        if executable is None:
            if os.path.isdir(os.path.join(cwd, self.command[0])) and os.sep in self.command[0]:
                _error(f"cannot run {self.command[0]}: it is a directory. Name a program")
                return 126
            _error(f"command not found: {self.command[0]}. Check its name and PATH")
            return 127
        if not os.access(executable, os.X_OK):
            _error(f"cannot run {self.command[0]}: permission denied. Make it executable")
            return 126
        if settings.disabled():
            return _run_plain(self.command)
        # An unusable or unsafe directory is refused by the engine before anything runs.
        store = Store(options.stamp_directory)
        method = HASH if options.use_hashes or settings.always_hash() else MTIME
        deps = key.abspaths(options.dependencies, cwd)
        outputs = key.abspaths(options.output_files, cwd)
        stdin_data = _read_stdin() if options.stdin else None
        fields, merged = key.command_fields(
            cwd,
            executable,
            method,
            self.command,
            deps,
            outputs,
            options.env,
            digest_bytes(stdin_data) if stdin_data is not None else "-",
        )
        job = Job(
            key.command_key(fields),
            deps,
            outputs,
            method,
            options.restore_outputs,
            " ".join(self.command),
            lambda: _why_new(store, fields),
        )
        engine = Engine(store, _say if options.explain or settings.debugging() else None)

        def compute() -> tuple[int, dict[str, Any] | None, list[tuple[str, int]]]:
            code, payload, blobs = self._execute(engine, executable, cwd, stdin_data, merged)
            if payload is not None:
                from jobstamps import explain

                payload["fields"] = fields  # for explaining a later miss of this command line
                explain.remember(store, explain.slot_of(fields), job.key)
            return code, payload, blobs

        def replay(payload: dict[str, Any]) -> int:
            from jobstamps.replay import replay as write_back

            return write_back(payload, store)

        return engine.run(job, compute, replay, force=options.force)

    def _execute(
        self, engine: Engine, executable: str, cwd: str, stdin_data: bytes | None, merged: bool
    ) -> tuple[int, dict[str, Any] | None, list[tuple[str, int]]]:
        from jobstamps import runner

        try:
            outcome = runner.run(self.command, executable, cwd, stdin_data, merged, engine.store)
        except OSError as error:
            self.exit_code = runner.report_start_failure(self.command[0], error)
            return self.exit_code, None, []
        self.exit_code = outcome.exit_code
        why = outcome.why_not_stored
        if not why and self.options.no_store_failures and outcome.exit_code != 0:
            why = f"it failed (exit status {outcome.exit_code}) and --no-store-failures is set"
        if why:
            outcome.discard()
            engine.say(f"not stored: {why}")
            return outcome.exit_code, None, []
        try:
            blobs = outcome.keep()
        except OSError as error:
            outcome.discard()
            engine.say(f"not stored: the output could not be stored ({error.strerror})")
            return outcome.exit_code, None, []
        return outcome.exit_code, outcome.payload(), blobs


def _why_new(store: Store, fields: list[str]) -> str:
    from jobstamps import explain

    return explain.why_new(store, explain.slot_of(fields), fields)


def _say(message: str) -> None:
    _error(message)


def _read_stdin() -> bytes:
    parts = []
    while True:
        try:
            block = os.read(0, 1 << 16)
        except OSError:
            break
        if not block:
            break
        parts.append(block)
    return b"".join(parts)


def _run_plain(command: list[str]) -> int:
    from jobstamps import runner

    return runner.run_plain(command)
