"""Per-file results written back in the order the files were given, and jobstamp's own lines."""

from __future__ import annotations

from jobstamps import fileresults
from jobstamps.errors import say
from jobstamps.replay import Writer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from jobstamps.fileresults import Payload

__all__ = ["InOrder", "count", "error_line"]


def error_line(message: str) -> None:
    """Write one ``jobstamp:`` line to stderr (:func:`jobstamps.errors.say`)."""
    say(message)


def count(number: int, noun: str) -> str:
    """Say ``number`` of ``noun``: ``1 file``, ``2 files``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


class InOrder:
    """Writes the files' results in the order they were given, each as soon as it is due.

    A file given twice is written twice, as the unwrapped command would check it twice.
    ``before`` is called before a result is written (to clear a progress line).
    """

    def __init__(self, before: Callable[[], None] = lambda: None) -> None:
        self.before = before
        self.order: list[int] = []  # the files as given, a file given twice twice
        self.firsts: dict[int, int] = {}  # each file's first place in that order
        self.printed = 0  # how many of them were written
        # The summaries written ("All checks passed!"): runs that printed the same, once.
        self.tails: set[tuple[tuple[int, bytes], ...]] = set()
        self.writer = Writer()
        self.open_line = False  # whether the last bytes written did not end a line

    def take(self, files: list[str]) -> list[str]:
        """Note the order of ``files``; return them without repeats (a file's index in it)."""
        position = {file: index for index, file in enumerate(dict.fromkeys(files))}
        self.order = [position[file] for file in files]
        self.firsts = {index: place for place, index in reversed(list(enumerate(self.order)))}
        return list(position)

    def flush(self, results: list[Payload | None], held: set[str]) -> None:
        """Write the results that are due: every file's, in order, up to the first still running.

        A result from a run whose every file is written now comes with that run's lines of no
        file, where they were (once, at a file's first place); else only with its own lines.
        ``held`` names the runs with a result held back (their lines of no file wait for it).
        """
        runs: dict[str, int] = {}
        for result in results:
            if result is not None and "run" in result:
                runs[result["run"][0]] = runs.get(result["run"][0], 0) + 1
        while self.printed < len(self.order):
            index = self.order[self.printed]
            result = results[index]
            if result is None or ("run" in result and result["run"][0] in held):
                return  # wait: its run's lines of no file depend on a result yet to come
            first = self.firsts[index] == self.printed
            token, size = result.get("run", ("", -1))
            whole = first and runs.get(token) == size
            self.before()
            for fd, data in fileresults.pieces(result, result.get("gaps", []) if whole else []):
                self._write(fd, data)
            tail = tuple((fd, data) for fd, data in result.get("tail", [])) if whole else ()
            if tail and tail not in self.tails:
                self.tails.add(tail)
                for fd, data in tail:
                    self._write(fd, data)
            self.printed += 1

    def _write(self, fd: int, data: bytes) -> None:
        self.writer.write(fd, data)
        if data:
            self.open_line = not data.endswith(b"\n")
