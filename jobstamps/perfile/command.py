"""Per-file mode's front end: its command line, and whether the cache can be used at all."""

from __future__ import annotations

import argparse
import os

from jobstamps import key, settings
from jobstamps.errors import CacheDirectoryError, JobstampsError, UsageError
from jobstamps.options import TABLE, check_trace, env_name
from jobstamps.perfile.check import PerFile
from jobstamps.perfile.printing import error_line
from jobstamps.perfile.schedule import run_uncached

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["FORM", "main", "parse", "run"]

FORM = "[OPTION...] -- COMMAND [ARG...] -- FILE..."
#: Options that mean here what they mean to the command (:data:`jobstamps.options.TABLE`).
_AS_THE_COMMAND = (
    "--stamp-directory",
    "--no-store-failures",
    "--remote",
    "--remote-read-only",
    "--base-dir",
    "--show-key",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors become :class:`UsageError`, not an exit."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}. Run '{self.prog} --help'")


def _parser(prog: str) -> _Parser:
    parser = _Parser(
        prog=prog,
        usage=f"{prog} {FORM}",
        allow_abbrev=False,
        description=(
            "Check each FILE as 'COMMAND ARG... FILE', replaying the stored output and status "
            "of files that did not change since they were last checked; the changed ones run "
            "in a few large batches. Safe for linters whose verdict on a file depends only on "
            "that file and the declared dependencies."
        ),
        epilog=f"example: {prog} --use-hashes --dependencies setup.cfg -- flake8 -- src/*.py",
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
        type=env_name,
        metavar="NAME",
        help="make the value of environment variable NAME part of the key (repeatable)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="say on stderr how many files ran and why each stale one did",
    )
    parser.add_argument(
        "--force", action="store_true", help="run every file, and store the new results"
    )
    for name in _AS_THE_COMMAND:
        _, kind, metavar, text = TABLE[name]
        if kind == "flag":
            parser.add_argument(name, action="store_true", help=text)
        else:
            parser.add_argument(name, metavar=metavar, help=text)
    parser.add_argument("--trace", action="store_true", help=TABLE["--trace"][3])
    parser.add_argument(
        "--trace-ignore",
        action="append",
        default=[],
        metavar="GLOB",
        help=TABLE["--trace-ignore"][3],
    )
    only = "with --per-file: "  # the option table's words for options of this mode only
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar=TABLE["--jobs"][2],
        help=TABLE["--jobs"][3].removeprefix(only),
    )
    parser.add_argument(
        "--summary", action="store_true", help=TABLE["--summary"][3].removeprefix(only)
    )
    return parser


def parse(argv: Sequence[str], prog: str) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split ``argv`` into options, the command and the files; raise :class:`UsageError`."""
    if "--" not in argv and not {"-h", "--help"} & set(argv):
        raise UsageError(f"no command given. Write: {prog} {FORM}")
    first = argv.index("--") if "--" in argv else len(argv)
    options = _parser(prog).parse_args(argv[:first])
    last = len(argv) - 1 - argv[::-1].index("--")
    if first == last:
        raise UsageError(
            f"the command must end with '--', followed by the files to check. Write: {prog} {FORM}"
        )
    command, files = list(argv[first + 1 : last]), list(argv[last + 1 :])
    if not command:
        raise UsageError(f"no command between the two '--'. Write: {prog} {FORM}")
    if options.jobs < 1:
        raise UsageError(
            f"--jobs must be at least 1, not {options.jobs}. Omit it to use every processor"
        )
    check_trace(options.trace, options.trace_ignore, options.show_key)
    return options, command, files


def main(argv: Sequence[str], prog: str = "jobstamp --per-file") -> int:
    """Run the per-file mode over ``argv`` (``--per-file`` among the options is ignored)."""
    args = list(argv)
    end = args.index("--") if "--" in args else len(args)
    if "--per-file" in args[:end]:
        args.remove("--per-file")
    try:
        options, command, files = parse(args, prog)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except UsageError as error:
        error_line(str(error))
        return 2
    return run(options, command, files)


def run(options: argparse.Namespace, command: list[str], files: list[str]) -> int:
    """Check ``files`` with ``command`` through the cache; return the combined exit status."""
    try:
        cwd = os.getcwd()
    except OSError:
        error_line("the working directory no longer exists; running the command without the cache")
        return run_uncached(command, files)
    executable = _executable(command, cwd)
    if isinstance(executable, int):
        return executable
    checker = (
        None
        if _uncached(options, command, files, cwd)
        else _checker(options, command, executable, cwd)
    )
    if checker is None:
        return run_uncached(command, files, executable)
    try:
        return checker.show(files) if options.show_key else checker.run(files)
    except KeyboardInterrupt:
        return 130


def _executable(command: list[str], cwd: str) -> str | int:
    """Return the program ``command`` runs, or the exit status that says it cannot run."""
    executable = key.resolve_executable(command[0], cwd, os.environ.get("PATH"))
    if executable is None:
        error_line(f"command not found: {command[0]}. Check its name and PATH")
        return 127
    if not os.access(executable, os.X_OK):
        error_line(f"cannot run {command[0]}: permission denied. Make it executable")
        return 126
    return executable


def _uncached(options: argparse.Namespace, command: list[str], files: list[str], cwd: str) -> bool:
    """Whether the files must be checked without the cache (nothing to key on, or no cache)."""
    if (not files or settings.disabled()) and not options.show_key:
        # No file names (pass_filenames: false, always_run): what it reads is unknown, so no cache.
        return True
    unkeyed = key.unfingerprintable([*command[1:], *options.dependencies, *files], cwd)
    if unkeyed is not None:  # read once, as is: a result keyed on it would lie
        if options.explain or settings.debugging():
            error_line(f"running without the cache: {unkeyed} is a pipe or a device")
        return True
    return False


def _checker(
    options: argparse.Namespace, command: list[str], executable: str, cwd: str
) -> PerFile | None:
    """Set up the per-file check, or say in one line why the cache cannot be used (``None``)."""
    try:
        return PerFile(options, command, executable, cwd)
    except JobstampsError as error:  # --trace where tracing cannot work
        error_line(f"{error}; running the command without the cache")
    except OSError as error:  # CacheDirectoryError, or a path the system cannot follow
        if not isinstance(error, CacheDirectoryError):
            error = CacheDirectoryError(
                f"cache directory {error.filename} cannot be used ({error.strerror or error})"
            )
        error_line(f"{error}; running the command without the cache")
    return None
