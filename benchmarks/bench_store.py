"""Storing and reading many results at once: one file each, against one pack.

Run from a checkout or with jobstamps installed::

    python benchmarks/bench_store.py               # 2,823 results (Django's *.py files), 5 rounds
    python benchmarks/bench_store.py --results 500 --rounds 9
    python benchmarks/bench_store.py --dir /path/on/another/disk
    python benchmarks/bench_store.py --json

A per-file run over a large tree, or a fill from a remote cache, stores one small result per
file. Each round writes the same results into an empty cache twice, in turns: one file each
(as the command line stores results), and in one batch (as the per-file mode does: a pack once
there are enough of them); then reads every result back through a new store, as the next run
does. The results are shaped like the per-file mode's (a file and three configuration files as
dependencies, a line of output). File creation is what a busy or slow disk makes expensive, so
quote the load average printed with the figures; ``--dir`` chooses the disk (default: the
temporary directory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

import benchlib
from benchlib import quantile

WAYS = ("one file each", "one batch")


def results(count: int) -> dict[str, dict[str, Any]]:
    """``count`` entries shaped as the per-file mode stores them, by key."""
    now = time.time_ns()
    made = {}
    for number in range(count):
        key = f"{number:040x}"
        path = f"/home/dev/project/src/module_{number}.py"
        deps = [
            [name, (now, now, 1000 + number, number, 64769, 0o100644, f"{number:040x}", False)]
            for name in (path, "/home/dev/project/setup.cfg", "/home/dev/project/tox.ini")
        ]
        made[key] = {
            "about": path,
            "created": now,
            "method": "hash",
            "deps": deps,
            "outputs": [],
            "blobs": [],
            "payload": {"code": 0, "chunks": [], "data": b""},
        }
    return made


def store_at(root: str) -> Any:
    """A store at ``root`` that keeps packs, as the per-file mode's does."""
    from jobstamps.store import Store

    made = Store(root)
    made.packs = True
    return made


def write(root: str, entries: dict[str, dict[str, Any]], together: bool) -> float:
    """Store ``entries`` into an empty cache at ``root``; return the seconds it took."""
    store = store_at(root)
    start = time.perf_counter()
    if together:
        with store.batch():
            for key, entry in entries.items():
                store.write(key, dict(entry))
    else:
        for key, entry in entries.items():
            store.write(key, dict(entry))
    return time.perf_counter() - start


def read(root: str, keys: list[str]) -> float:
    """Read every entry back through a new store; return the seconds it took."""
    store = store_at(root)
    start = time.perf_counter()
    found = sum(store.read(key)[0] is not None for key in keys)
    elapsed = time.perf_counter() - start
    if found != len(keys):
        raise benchlib.BenchError(f"read back {found} of {len(keys)} results")
    return elapsed


def files_under(root: str) -> int:
    """Count the files the cache holds under ``v1/e``."""
    return sum(len(names) for _, _, names in os.walk(os.path.join(root, "v1", "e")))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, and return every figure."""
    results_: dict[str, Any] = {**benchlib.machine(), "jobstamps": benchlib.import_jobstamps()}
    entries = results(args.results)
    keys = list(entries)
    samples: dict[str, dict[str, list[float]]] = {way: {"write": [], "read": []} for way in WAYS}
    files: dict[str, int] = {}
    with benchlib.workdir("bench_store", directory=args.dir) as workdir:
        for turn in range(args.rounds):
            order = WAYS if turn % 2 == 0 else WAYS[::-1]
            for way in order:
                root = os.path.join(workdir, f"cache-{turn}-{WAYS.index(way)}")
                samples[way]["write"].append(write(root, entries, way == "one batch"))
                samples[way]["read"].append(read(root, keys))
                files[way] = files_under(root)
                shutil.rmtree(root)
    summary: dict[str, Any] = {}
    for way, measured in samples.items():
        summary[way] = {
            step: {
                "median_ms": statistics.median(values) * 1e3,
                "p10_ms": quantile(values, 0.1) * 1e3,
                "p90_ms": quantile(values, 0.9) * 1e3,
            }
            for step, values in measured.items()
        }
        summary[way]["files"] = files[way]
    base = summary["one file each"]["write"]["median_ms"]
    return {
        **results_,
        "results": args.results,
        "rounds": args.rounds,
        "directory": os.path.abspath(args.dir or tempfile.gettempdir()),
        "ways": summary,
        "write_ratio": summary["one batch"]["write"]["median_ms"] / base,
        "load_average_end": benchlib.load_average(),
    }


def table(found: dict[str, Any]) -> str:
    """Render the results as a compact table."""
    lines = [
        f"jobstamps {found['jobstamps']}, " + benchlib.describe_machine(found),
        "",
        (
            f"{found['results']} per-file results into an empty cache in {found['directory']}: "
            f"medians of {found['rounds']} rounds"
        ),
        f"  {'':16}{'files':>7}{'write':>11}{'p10':>10}{'p90':>10}{'read back':>12}",
    ]
    for way in WAYS:
        figures = found["ways"][way]
        lines.append(
            f"  {way:16}{figures['files']:>7}{figures['write']['median_ms']:>8.1f} ms"
            f"{figures['write']['p10_ms']:>7.1f} ms{figures['write']['p90_ms']:>7.1f} ms"
            f"{figures['read']['median_ms']:>9.1f} ms"
        )
    lines.append(f"  one batch writes in {found['write_ratio']:.1%} of the time of one file each")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=benchlib.positive, default=2823, help="(2823)")
    parser.add_argument("--rounds", type=benchlib.positive, default=5, help="(5)")
    parser.add_argument("--dir", help="make the caches in this directory (default: TMPDIR)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    return benchlib.report("bench_store", args, run, table)


if __name__ == "__main__":
    raise SystemExit(main())
