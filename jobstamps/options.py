"""The ``jobstamp`` command line's options: one table, the parsed result, and the parser.

Both the command (:mod:`jobstamps.cli`) and the cache management options
(:mod:`jobstamps.admin`) read options from here. A cache hit parses its command line too, so
the parser is written by hand from the table (no ``argparse``, no ``re``).
"""

from __future__ import annotations

import os

from jobstamps.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ALIASES", "TABLE", "USAGE", "Options", "check_trace", "env_name", "help_text", "parse"]

USAGE = "usage: jobstamp [OPTION...] -- COMMAND [ARG...]"

#: option: (attribute, kind, metavar, help). Kinds: ``flag`` (on or off), ``value`` (one
#: value), ``append`` (one value, repeatable), ``paths`` (the words up to the next option;
#: ``--opt=PATH`` takes exactly one and may be repeated), ``action`` (cache management or
#: information instead of running a command; may not be given with one).
TABLE: dict[str, tuple[str, str, str, str]] = {
    "--dependencies": (
        "dependencies",
        "paths",
        "PATH...",
        "files the result depends on; a change to any re-runs (--dependencies=-x: one file)",
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
    "--trace": (
        "trace",
        "flag",
        "",
        "find what the command reads by tracing it (Linux, strace): no --dependencies needed",
    ),
    "--trace-ignore": (
        "trace_ignore",
        "append",
        "GLOB",
        "leave paths matching GLOB out of the traced set (repeatable; no '/': any component)",
    ),
    "--per-file": (
        "per_file",
        "flag",
        "",
        "check each FILE on its own: --per-file [OPTION...] -- COMMAND [ARG...] -- FILE...",
    ),
    "--jobs": (
        "jobs",
        "value",
        "N",
        "with --per-file: linter processes at once (default: the number of processors)",
    ),
    "--summary": (
        "summary",
        "flag",
        "",
        "with --per-file: say on stderr how many files were replayed and ran (JOBSTAMPS_SUMMARY=1)",
    ),
    "--force": (
        "force",
        "flag",
        "",
        "run the command even if nothing changed, and store the new result",
    ),
    "--remote": (
        "remote",
        "value",
        "URL",
        (
            "share results through a remote cache: http[s]://... or redis://... "
            "(also JOBSTAMPS_REMOTE)"
        ),
    ),
    "--remote-read-only": (
        "remote_read_only",
        "flag",
        "",
        "use the remote cache's results but upload none (also JOBSTAMPS_REMOTE_READ_ONLY)",
    ),
    "--base-dir": (
        "base_dir",
        "value",
        "DIR",
        (
            "paths below DIR are shared as relative (default: the git root, else the "
            "working directory; also JOBSTAMPS_BASE_DIR)"
        ),
    ),
    "--show-key": (
        "show_key",
        "flag",
        "",
        (
            "print what the command's remote key is made of, a digest a line, and run "
            "nothing: diff two machines' listings to see why one misses"
        ),
    ),
    "--show-stats": (
        "show_stats",
        "action",
        "",
        "show the cache's location, size, hits and misses",
    ),
    "--zero-stats": ("zero_stats", "action", "", "set the hit and miss counts to zero"),
    "--clear": ("clear", "action", "", "remove every stored result (the statistics stay)"),
    "--max-size": (
        "max_size",
        "value",
        "SIZE",
        "evict least recently used results beyond SIZE (2: 2 GiB, 500M, 500Mi; 0: none)",
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

#: Short spellings; ccache's for the cache management options.
ALIASES = {"-h": "--help", "-s": "--show-stats", "-C": "--clear", "-M": "--max-size"}
ALIASES["-z"] = "--zero-stats"

_EXAMPLES = """\
examples:
  jobstamp --dependencies src/a.py setup.cfg -- flake8 src/a.py
  jobstamp --trace -- mypy src
  jobstamp --use-hashes --dependencies main.c --env CFLAGS -- clang-tidy main.c
  git show HEAD:x.py | jobstamp --stdin -- flake8 -
  jobstamp --output-files gen.h --restore-outputs --dependencies gen.py -- python gen.py
  jobstamp --remote redis://cache.example:6379/0 -- flake8 src
  jobstamp --show-stats
  jobstamp --max-size 2G

The command's stdout, stderr and exit status are stored and replayed exactly while the
command line, executable, working directory, declared environment, dependencies and outputs
are unchanged. Relative paths are taken from the working directory.
"""


def env_name(value: str) -> str:
    """Return ``value`` if it can name an environment variable, else raise :class:`UsageError`.

    ``--env FOO=1`` would key on a variable that never exists, so changing ``FOO`` would replay.
    """
    if not value or "=" in value:
        raise UsageError(f"--env takes the name of a variable, not '{value}'")
    return value


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
        self.trace = False
        self.trace_ignore: list[str] = []
        self.per_file = False  # handled by jobstamps.perfile before parsing
        self.jobs: str | None = None  # per-file mode only
        self.summary = False  # per-file mode only
        self.force = False
        self.remote: str | None = None
        self.remote_read_only = False
        self.base_dir: str | None = None
        self.show_key = False
        self.show_stats = False
        self.zero_stats = False
        self.clear = False
        self.max_size: str | None = None
        self.cmake_dir = False
        self.make_include = False
        self.version = False
        self.help = False
        self.command: list[str] | None = None

    def actions(self) -> bool:
        """Whether a cache-management or information option was given."""
        flags = (self.show_stats, self.zero_stats, self.clear, self.cmake_dir, self.make_include)
        return any(flags) or self.version or self.help or self.max_size is not None


class _Parser:
    """One pass over ``argv``, remembering what a usage error should point at."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = argv
        self.index = 0
        self.options = Options()
        self.last_list: tuple[str, list[str]] | None = None  # option and the words it took
        self.list_end = -1  # where the last list of words ended

    def run(self) -> Options:
        argv = self.argv
        while self.index < len(argv):
            arg = argv[self.index]
            self.index += 1
            if arg == "--":
                self.options.command = list(argv[self.index :])
                break
            self._option(arg)
        self._check()
        return self.options

    def _option(self, arg: str) -> None:
        if arg.startswith("--"):
            name, has_value, value = arg.partition("=")
        elif arg[:2] in ALIASES and len(arg) > 2:  # noqa: PLR2004 - as getopt reads them:
            if TABLE[ALIASES[arg[:2]]][1] in {"flag", "action"}:  # "-sz" is "-s -z"
                self._option(arg[:2])
                self._option("-" + arg[2:])
                return
            name, has_value, value = arg[:2], "=", arg[2:]  # "-M5G" is "-M 5G"
        else:
            name, has_value, value = arg, "", ""
        name = ALIASES.get(name, name)
        spec = TABLE.get(name)
        if spec is None:
            raise self._unknown(arg, name)
        attribute, kind, _, _ = spec
        if kind in {"flag", "action"}:
            if has_value:
                raise UsageError(f"{name} takes no value")
            setattr(self.options, attribute, True)
        elif kind == "paths":
            self._paths(name, getattr(self.options, attribute), has_value, value)
        else:
            self._value(name, attribute, kind, value if has_value else None)

    def _value(self, name: str, attribute: str, kind: str, value: str | None) -> None:
        if value is None:
            if self.index >= len(self.argv) or self.argv[self.index] == "--":
                raise UsageError(f"{name} needs a value")
            value = self.argv[self.index]
            self.index += 1
        if name == "--env":
            env_name(value)
        if kind == "append":
            getattr(self.options, attribute).append(value)
        else:
            setattr(self.options, attribute, value)

    def _paths(self, name: str, paths: list[str], has_value: str, value: str) -> None:
        if has_value:
            taken = [value]
        else:
            start = self.index
            while self.index < len(self.argv) and not self.argv[self.index].startswith("-"):
                self.index += 1
            taken = list(self.argv[start : self.index])
            if not taken:
                raise UsageError(
                    f"{name} lists no file; name at least one, or leave the option out"
                )
        if "" in taken:
            raise UsageError(
                f"{name} got an empty file name; write '.' to mean the working directory"
            )
        paths += taken
        self.last_list = (name, taken)
        self.list_end = self.index

    def _unknown(self, arg: str, name: str) -> UsageError:
        if not arg.startswith("-"):
            return UsageError(f"'{arg}' is not an option; put the command after '--'")
        if self.last_list is not None and self.list_end == self.index - 1 and "--" not in self.argv:
            # The words before it were most likely the command, taken as files.
            start = self._command_start()
            return UsageError(
                f"unknown option {name}: the command seems to start at '{start}', which "
                f"{self.last_list[0]} took for a file; put the command after '--': "
                f"jobstamp [OPTION...] -- {start} ..."
            )
        return UsageError(f"unknown option {name}")

    def _command_start(self) -> str:
        """Guess which word of the last file list began the command: the first that is no file."""
        assert self.last_list is not None  # noqa: S101 - only asked after a file list
        words = self.last_list[1]
        return next((word for word in words if not os.path.lexists(word)), words[-1])

    def _check(self) -> None:
        options = self.options
        for name in ("--jobs", "--summary"):
            if getattr(options, name[2:]) not in {None, False}:
                raise UsageError(f"{name} works only with --per-file")
        if options.actions():
            if options.command is not None:
                raise UsageError("cache-management options take no command after '--'")
        elif options.command is None:
            hint = ""
            if self.last_list is not None:
                hint = f" (the command seems to start at '{self._command_start()}')"
            raise UsageError(f"no command given: write it after '--'{hint}")
        elif not options.command:
            raise UsageError("no command after '--'")
        check_trace(options.trace, options.trace_ignore, show_key=False)


def check_trace(trace: bool, ignored: list[str], show_key: bool) -> None:
    """Refuse the tracing options that mean nothing together (every mode's rule).

    ``show_key`` is refused with ``--trace`` where traced results are not shared (per file).
    """
    if ignored and not trace:
        raise UsageError("--trace-ignore needs --trace: it names paths left out of a trace")
    if show_key and trace:
        raise UsageError(
            "--show-key shows a remote key, and per-file traced results are not shared"
        )


def parse(argv: Sequence[str]) -> Options:
    """Parse ``argv``; raise :class:`UsageError` for anything it cannot mean."""
    return _Parser(argv).run()


def help_text() -> str:
    """Return the text of ``jobstamp --help``."""
    shorts = {long: short for short, long in ALIASES.items()}
    lines = [
        USAGE,
        "",
        "Run COMMAND, or replay its stored result if nothing it depends on changed.",
        "",
        "options:",
    ]
    for name, (_, _, metavar, text) in TABLE.items():
        label = f"{name} {metavar}" if metavar else name
        if name in shorts:
            label = f"{shorts[name]}, {label}"
        lines.append(f"  {label:<26}{text}")
    return "\n".join(lines) + "\n\n" + _EXAMPLES
