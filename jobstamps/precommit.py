"""The pre-commit hooks: a front end over :mod:`jobstamps.perfile`.

pre-commit appends the file names to a hook's arguments, so the hook is called as
``python -m jobstamps.precommit [OPTION...] -- COMMAND [ARG...] -- FILE...``. The ready-made
hooks name themselves first (``--hook ID``), so that a mistake can be explained in the terms
of that hook, and their command is in their entry: jobstamps options are then given in
``args`` after ``--jobstamps--``, e.g. ``args: [--max-line-length=100, --jobstamps--,
--explain, --]``.
"""

from __future__ import annotations

import sys

from jobstamps import perfile
from jobstamps.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["OPTIONS_MARK", "main"]

PROG = "python -m jobstamps.precommit"
#: In a hook's command, what follows this (up to the final ``--``) are jobstamps options.
OPTIONS_MARK = "--jobstamps--"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hook; return the exit status to give pre-commit."""
    args = list(sys.argv[1:] if argv is None else argv)
    hook = ""
    if args[:1] == ["--hook"] and len(args) > 1:
        hook, args = args[1], args[2:]
    try:
        args = _arrange(args, hook)
    except UsageError as error:
        perfile.error_line(str(error))
        return 2
    return perfile.main(args, PROG)


def _arrange(args: list[str], hook: str) -> list[str]:
    """Move options given after ``--jobstamps--`` in front; check the arguments end with ``--``."""
    separators = [i for i, arg in enumerate(args) if arg == "--"]
    if not separators:
        if {"-h", "--help"} & set(args):
            return args
        raise UsageError(
            "no command given. Set the hook's args to [OPTION..., --, COMMAND, ARG..., --]"
        )
    first, last = separators[0], separators[-1]
    if first == last:
        if hook and hook != "jobstamp":
            raise UsageError(
                f"the args of hook {hook} must end with '--', so that the file names pre-commit "
                "appends are told apart from the linter's own arguments. Write args: "
                f"[LINTER OPTION..., --], with jobstamps options after {OPTIONS_MARK}: "
                f"args: [{OPTIONS_MARK}, --explain, --]"
            )
        raise UsageError(
            "the arguments must end with '--', so that the file names pre-commit appends are "
            "told apart from the command's own arguments. "
            "Write args: [OPTION..., --, COMMAND, ARG..., --]"
        )
    command = args[first + 1 : last]
    if OPTIONS_MARK not in command:
        return args
    mark = command.index(OPTIONS_MARK)
    extra, command = command[mark + 1 :], command[:mark]
    return [*args[:first], *extra, "--", *command, *args[last:]]


if __name__ == "__main__":
    raise SystemExit(main())
