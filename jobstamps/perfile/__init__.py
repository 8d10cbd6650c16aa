"""Per-file caching at batch speed: ``jobstamp --per-file [OPTION...] -- COMMAND -- FILE...``.

Each FILE is a job of its own, ``COMMAND ARG... FILE``, depending on that file and the declared
configuration files, with an entry of its own. Unchanged files replay their stored messages
(:mod:`~jobstamps.perfile.check`); the stale ones run together, as few large invocations as the
argument-length limit and ``--jobs`` allow, and the output of each run is divided among its
files by the rule in :mod:`jobstamps.attribution` and kept in the form of
:mod:`jobstamps.fileresults`. A run whose failure cannot be pinned on its files is repeated on
smaller batches (bisection) until every file has a result from a run it can be trusted from
(:mod:`~jobstamps.perfile.schedule`). The results are written in the order the files were
given (:mod:`~jobstamps.perfile.printing`); :mod:`~jobstamps.perfile.command` reads the
command line.
"""

from __future__ import annotations

from jobstamps.perfile.check import PerFile
from jobstamps.perfile.command import FORM, main, parse, run
from jobstamps.perfile.printing import error_line
from jobstamps.perfile.schedule import batches, run_uncached

__all__ = ["FORM", "PerFile", "batches", "error_line", "main", "parse", "run", "run_uncached"]
