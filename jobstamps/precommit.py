"""Per-file caching for pre-commit hooks: a file is linted again only when it changed.

pre-commit appends the file names to a hook's arguments, so the hook is called as
``python -m jobstamps.precommit [OPTION...] -- COMMAND [ARG...] -- FILE...``. Each file is
a job of its own, ``COMMAND [ARG...] FILE``, depending on that file and the declared
configuration files: unchanged files replay their stored output and status, changed ones
run in parallel processes. Output comes back in the order of the files, and the status is
combined the way pre-commit combines its batches.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from jobstamps import key, runner, settings
from jobstamps.engine import HASH, MTIME, Engine, Job, ReplayError
from jobstamps.errors import JobstampsError, UsageError
from jobstamps.replay import Writer
from jobstamps.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["main"]

USAGE = "python -m jobstamps.precommit [OPTION...] -- COMMAND [ARG...] -- FILE..."


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors become :class:`UsageError`, not an exit."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}. Run 'python -m jobstamps.precommit --help'")


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m jobstamps.precommit",
        usage=USAGE,
        allow_abbrev=False,
        description=(
            "Run COMMAND once per FILE (pre-commit appends the file names after the final '--'), "
            "replaying the stored output and status of files that did not change since they "
            "were last checked. Safe for linters whose verdict on a file depends only on that "
            "file and the declared dependencies."
        ),
        epilog=(
            "example (.pre-commit-config.yaml): "
            "args: [--use-hashes, --dependencies, setup.cfg, --, flake8, --]"
        ),
    )
    parser.add_argument(
        "--dependencies",
        nargs="*",
        default=[],
        metavar="PATH",
        help="configuration files every result depends on (may be missing; creating one re-runs)",
    )
    parser.add_argument(
        "--use-hashes",
        action="store_true",
        help="compare files by content, so results survive a fresh checkout (recommended)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="make the value of environment variable NAME part of the key (repeatable)",
    )
    parser.add_argument(
        "--stamp-directory", metavar="DIR", help="cache directory (default: the per-user cache)"
    )
    parser.add_argument(
        "--explain", action="store_true", help="say on stderr why each file ran or was replayed"
    )
    parser.add_argument(
        "--no-store-failures", action="store_true", help="do not store results with a non-zero exit"
    )
    parser.add_argument(
        "--force", action="store_true", help="run every file, and store the new results"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="files to check at once (default: the number of processors)",
    )
    return parser


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split ``argv`` into options, the wrapped command and the file names pre-commit added."""
    if "--" not in argv and not {"-h", "--help"} & set(argv):
        raise UsageError(
            "no command given. Set the hook's args to [OPTION..., --, COMMAND, ARG..., --]"
        )
    first = argv.index("--") if "--" in argv else len(argv)
    options = _parser().parse_args(argv[:first])
    last = len(argv) - 1 - argv[::-1].index("--")
    if first == last:
        raise UsageError(
            "the arguments must end with '--', so that the file names pre-commit appends are "
            "told apart from the command's own arguments. "
            "Write args: [OPTION..., --, COMMAND, ARG..., --]"
        )
    command, files = list(argv[first + 1 : last]), list(argv[last + 1 :])
    if not command:
        raise UsageError("no command between the two '--'. Write: " + USAGE)
    if options.jobs < 1:
        raise UsageError(
            f"--jobs must be at least 1, not {options.jobs}. Omit it to use every processor"
        )
    return options, command, files


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hook; return the exit status to give pre-commit."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        options, command, files = parse(args)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        _error(str(error))
        return 2
    cwd = os.getcwd()
    executable = key.resolve_executable(command[0], cwd, os.environ.get("PATH"))
    if executable is None:
        _error(
            f"command not found: {command[0]}. Check its name, PATH and the hook's "
            "additional_dependencies"
        )
        return 127
    if not os.access(executable, os.X_OK):
        _error(f"cannot run {command[0]}: permission denied. Make it executable")
        return 126
    if not files or settings.disabled():
        # No file names (pass_filenames: false, always_run): what it reads is unknown, so no cache.
        return runner.run_plain([*command, *files], executable)
    try:
        return _PerFile(options, command, executable, cwd).run(files)
    except JobstampsError as error:
        _error(str(error))
        return 2
    except KeyboardInterrupt:
        return 130


def _error(message: str) -> None:
    sys.stderr.write(f"jobstamp: {message}\n")
    sys.stderr.flush()


class _PerFile:
    """Checks each file against the cache, runs the ones that changed and prints in order."""

    def __init__(
        self, options: argparse.Namespace, command: list[str], executable: str, cwd: str
    ) -> None:
        self.options = options
        self.command = command
        self.executable = executable
        self.cwd = cwd
        self.method = HASH if options.use_hashes or settings.always_hash() else MTIME
        self.explain = options.explain or settings.debugging()
        self.store = Store(options.stamp_directory)
        self.store.exists()  # raises for an unusable cache directory before any work is done
        self.declared = key.abspaths(options.dependencies, cwd)
        # pre-commit reads both streams through one pipe or terminal: the linter then gets a
        # single pipe too, which keeps the exact order of its lines (two pipes cannot).
        self.fields, self.merged = key.command_fields(
            cwd, executable, self.method, command, self.declared, (), options.env
        )

    def job(self, file: str) -> Job:
        """Describe the job of checking one file; declared files that do not exist are left out.

        The engine compares the list of dependencies with the stored one, so creating or
        deleting a declared file re-runs.
        """
        present = [path for path in self.declared if os.path.lexists(path)]
        return Job(
            key.command_key(["pre-commit-per-file-1", *self.fields, f"file:{file}"]),
            [*key.abspaths([file], self.cwd), *present],
            method=self.method,
            about=file,
        )

    def run(self, files: list[str]) -> int:
        """Check every file; write the results in the order of ``files``; return the status."""
        status = 0
        writer = Writer()
        unique = list(dict.fromkeys(files))
        with ThreadPoolExecutor(max_workers=min(self.options.jobs, len(unique))) as pool:
            try:
                for result, notes in pool.map(self.check_file, unique):
                    for note in notes:
                        writer.write(2, f"jobstamp: {note}\n".encode())
                    offset = 0
                    for fd, size in result["chunks"]:
                        writer.write(fd, result["data"][offset : offset + size])
                        offset += size
                    if abs(result["code"]) > abs(status):
                        status = result["code"]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return status

    def check_file(self, file: str) -> tuple[dict[str, Any], list[str]]:
        """Replay or run the job of one file; return its result and the explanations.

        A result is a payload as :mod:`jobstamps.runner` stores it inline: the exit status,
        the ``(stream, size)`` chunks and the bytes. Nothing is written here: other files
        are being checked at the same time.
        """
        notes: list[str] = []
        engine = Engine(self.store, explain=notes.append if self.explain else None)
        argv = [*self.command[1:], file]

        def compute() -> tuple[dict[str, Any], dict[str, Any] | None, list[tuple[str, int]]]:
            result, why_not = _capture(
                self.command[0], self.executable, argv, self.cwd, self.merged
            )
            if not why_not and result["code"] and self.options.no_store_failures:
                why_not = f"it failed (exit status {result['code']}) and --no-store-failures is set"
            if why_not:
                engine.say(f"not stored: {why_not}")
            return result, None if why_not else result, []

        try:
            result = engine.run(self.job(file), compute, _check_payload, force=self.options.force)
        except JobstampsError:
            raise
        except Exception as error:  # noqa: BLE001 - a bug must not fail the commit
            notes.append(
                f"internal error while checking {file} ({error!r}). It was linted without the "
                "cache; please report this message to the jobstamps developers"
            )
            result, _ = _capture(self.command[0], self.executable, argv, self.cwd, self.merged)
        return result, notes


def _check_payload(payload: dict[str, Any]) -> dict[str, Any]:
    try:
        sizes = sum(size for _, size in payload["chunks"])
        whole = sizes == len(payload["data"]) and isinstance(payload["code"], int)
    except (KeyError, TypeError, ValueError):
        whole = False
    if not whole:
        raise ReplayError("the stored output is malformed")
    return payload


def _capture(
    name: str, executable: str, args: list[str], cwd: str, merged: bool
) -> tuple[dict[str, Any], str]:
    """Run ``name ARG...`` with no input; return its result and why not to store it, if so.

    Nothing is written while it runs (other files are checked at the same time), and signals
    stay with the main thread.
    """
    try:
        outcome = runner.run(
            [name, *args],
            executable,
            cwd,
            b"",
            merged,
            None,
            relay=False,
            handle_signals=False,
        )
    except OSError as error:
        code = 127 if isinstance(error, FileNotFoundError) else 126
        message = f"jobstamp: cannot run {name}: {error.strerror}\n".encode()
        return {"code": code, "chunks": [(2, len(message))], "data": message}, "it did not start"
    return outcome.payload(), outcome.why_not_stored


if __name__ == "__main__":
    raise SystemExit(main())
