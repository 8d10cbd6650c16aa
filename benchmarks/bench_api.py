"""Cache-hit cost of the jobstamps Python API, against joblib.Memory and functools.cache.

Run from a checkout or with jobstamps installed (joblib is needed, diskcache is shown when
installed: ``pip install '.[bench]'``)::

    python benchmarks/bench_api.py            # full run, a table (about 20 seconds)
    python benchmarks/bench_api.py --quick    # a short run with fewer rounds and files
    python benchmarks/bench_api.py --json     # the same figures as JSON on stdout

It reports, in one run:

1. The hit time per call of ``jobstamp.run`` and ``@jobstamps.memoize`` against
   ``joblib.Memory(...).cache`` and ``functools.cache`` on one function (a file path and a
   small dict of options, the file declared as a dependency), and the ratio joblib/jobstamps.
   Goal: hits at least 5x faster than joblib.Memory.
2. The hit time of a small call, ``jobstamp.run(f, 12345, "abcdef",
   jobstamps_dependencies=<10 small files>, jobstamps_cache_output_directory=D)`` with ``f``
   returning a small dict, and of ``@jobstamps.memoize`` on the same call, against
   ``joblib.Memory(D).cache(f)``, with diskcache's ``memoize`` (which checks no files) and
   ``functools.cache`` as references, and the spread (10th and 90th percentiles) of each.
   Goal: hits at least 5x faster than joblib.Memory here too.
3. The hit time with 10,000 dependency files in hash mode against mtime mode, after the first
   run recorded them. Goal: hash mode within 1.5x of mtime mode, because a hit must not read
   unchanged files again (the run checks that no file is re-read).
4. The cost of a miss (new arguments) and of the first run over the files, for context.

Figures are medians of many rounds; the contenders take turns in each round, so that drift
(frequency scaling, other processes) hits all of them alike. Every cache lives in a temporary
directory, removed at the end; the user's cache is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import benchlib
from benchlib import BenchError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HIT_GOAL = 5.0  # joblib.Memory hit time / jobstamps hit time, at least
HASH_GOAL = 1.5  # hash-mode hit time / mtime-mode hit time, at most
NO_CACHE = "no cache (runs the job)"
ENV_SETTINGS = ("JOBSTAMPS_DEBUG", "JOBSTAMPS_DISABLED", "JOBSTAMPS_ALWAYS_USE_HASHES")

CALLS = {"summarize": 0, "count_files": 0, "small_job": 0}
SMALL_DEPENDENCIES = 10


def summarize(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """The job every cache wraps; counts its runs, so that a hit that ran shows."""
    CALLS["summarize"] += 1
    return text_summary(path, options)


def text_summary(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Count the lines and words of a text file (the uncached baseline)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    words = text.split()
    if options.get("lower"):
        words = [word.lower() for word in words]
    return {"lines": text.count("\n"), "words": len(words), "unique": len(set(words))}


def summarize_items(path: str, items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """``summarize`` for functools.cache, which needs hashable arguments (no dict)."""
    return summarize(path, dict(items))


def small_job(number: int, text: str) -> dict[str, Any]:
    """The small call: a quick function of two plain arguments returning a small dict."""
    CALLS["small_job"] += 1
    return {"number": number, "text": text, "length": len(text)}


def count_files(directory: str) -> int:
    """The job with many dependencies: count the files in a directory."""
    CALLS["count_files"] += 1
    return len(os.listdir(directory))


# -- measuring -------------------------------------------------------------------------------


def batch_size(call: Callable[[], object], target_ns: int) -> int:
    """How many calls make one timed batch of about ``target_ns`` (timer overhead stays small)."""
    best = min(_time_calls(call, 1) for _ in range(5))
    return max(1, min(100_000, target_ns // max(best, 1)))


def _time_calls(call: Callable[[], object], count: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(count):
        call()
    return time.perf_counter_ns() - start


def interleaved_medians(
    contenders: dict[str, Callable[[], object]], rounds: int, target_ns: int, warmup: int
) -> dict[str, float]:
    """Return the median nanoseconds per call of each contender."""
    samples = interleaved_samples(contenders, rounds, target_ns, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_samples(
    contenders: dict[str, Callable[[], object]], rounds: int, target_ns: int, warmup: int
) -> dict[str, list[float]]:
    """Return the nanoseconds per call of each contender in each round.

    Each round times one batch of every contender, starting with a different one each round.
    """
    for call in contenders.values():
        _time_calls(call, warmup)
    sizes = {name: batch_size(call, target_ns) for name, call in contenders.items()}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for turn in range(rounds):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_time_calls(contenders[name], sizes[name]) / sizes[name])
    return samples


def expect_no_calls(name: str, before: int, what: str) -> None:
    """Fail unless every call measured as a hit really was one (the job did not run)."""
    if CALLS[name] != before:
        raise BenchError(f"{what}: {CALLS[name] - before} calls ran the job instead of hitting")


@contextlib.contextmanager
def digests_counted() -> Iterator[list[str]]:
    """Collect the files jobstamps reads to hash them, while active (hits should read none)."""
    from jobstamps import fingerprint

    original = fingerprint.digest_file
    read: list[str] = []

    def counting(path: str) -> str:
        read.append(path)
        return original(path)

    fingerprint.digest_file = counting
    try:
        yield read
    finally:
        fingerprint.digest_file = original


def settle(paths: list[str]) -> None:
    """Wait until ``paths`` are older than jobstamps' racy window, so hits need not hash them.

    A file changed within the window of being recorded is hashed on every check (its stat
    could hide a later edit); ``os.utime`` cannot help, since it sets the change time to now.
    """
    from jobstamps.fingerprint import RACY_WINDOW_NS

    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in map(os.stat, paths))
    wait_ns = newest + RACY_WINDOW_NS + 200_000_000 - time.time_ns()
    if wait_ns > 0:
        time.sleep(wait_ns / 1e9)


# -- the two benchmarks ----------------------------------------------------------------------


def make_files(workdir: str, files: int) -> tuple[str, list[str]]:
    """Create the input of ``summarize`` and ``files`` small dependency files; return paths."""
    dep = os.path.join(workdir, "input.txt")
    with open(dep, "w", encoding="utf-8") as handle:
        handle.writelines(f"line {n} of the input, with a few Words in it\n" for n in range(200))
    return dep, small_files(os.path.join(workdir, "deps"), files)


def small_files(directory: str, files: int) -> list[str]:
    """Create ``files`` small files in a new ``directory``; return their paths."""
    os.mkdir(directory)
    paths = [os.path.join(directory, f"dep{n:05d}.txt") for n in range(files)]
    for number, path in enumerate(paths):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"dependency {number}\n".encode())
        finally:
            os.close(fd)
    return paths


def bench_hits(workdir: str, dep: str, rounds: int, misses: int, target_ns: int) -> dict[str, Any]:
    """Hit (and miss) time of each cache on ``summarize`` with one dependency file."""
    import joblib

    import jobstamps
    from jobstamps import jobstamp

    options: dict[str, Any] = {"lower": True, "min_length": 3, "language": "en"}

    memoized = jobstamps.memoize(dependencies=lambda path, _options: [path])(summarize)
    joblib_cached = joblib.Memory(os.path.join(workdir, "joblib"), verbose=0).cache(summarize)
    functools_cached = functools.cache(summarize_items)

    def calls_for(opts: dict[str, Any]) -> dict[str, Callable[[], object]]:
        return {
            "jobstamp.run": lambda: jobstamp.run(
                summarize, dep, opts, jobstamps_dependencies=[dep]
            ),
            "jobstamps.memoize": lambda: memoized(dep, opts),
            "joblib.Memory.cache": lambda: joblib_cached(dep, opts),
            "functools.cache": lambda: functools_cached(dep, tuple(sorted(opts.items()))),
            NO_CACHE: lambda: text_summary(dep, opts),
        }

    # Misses first, timed one at a time: each call has options no call had before (the two
    # jobstamps front ends share entries, so they must not share options either).
    names = [name for name in calls_for(options) if name != NO_CACHE]
    miss_samples: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(misses):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            fresh = calls_for({**options, "miss": f"{name} {turn}"})[name]
            miss_samples[name].append(_time_calls(fresh, 1))

    hits = calls_for(options)
    for call in hits.values():
        call()  # records the entry
    if jobstamp.out_of_date(summarize, dep, options, jobstamps_dependencies=[dep]) is not None:
        raise BenchError("jobstamp.run did not record its call; hits cannot be measured")
    before = CALLS["summarize"]
    with digests_counted() as digests:
        hit_ns = interleaved_medians(hits, rounds, target_ns, warmup=20)
    expect_no_calls("summarize", before, "cache hits")

    ratios = {
        name: hit_ns["joblib.Memory.cache"] / hit_ns[name]
        for name in ("jobstamp.run", "jobstamps.memoize")
    }
    return {
        "rounds": rounds,
        "hit_us": {name: ns / 1e3 for name, ns in hit_ns.items()},
        "miss_us": {name: statistics.median(v) / 1e3 for name, v in miss_samples.items()},
        "files_hashed_on_hits": len(digests),
        "ratio_joblib_over_jobstamps": ratios,
        "goal": HIT_GOAL,
        "goal_met": all(ratio >= HIT_GOAL for ratio in ratios.values()),
    }


def bench_small_call(workdir: str, deps: list[str], rounds: int, target_ns: int) -> dict[str, Any]:
    """Hit time of each cache on ``small_job(12345, "abcdef")``, ``deps`` declared."""
    import joblib

    import jobstamps
    from jobstamps import jobstamp

    store = os.path.join(workdir, "small-jobstamps")
    memoized = jobstamps.memoize(dependencies=deps, cache_dir=store)(small_job)
    joblib_cached = joblib.Memory(os.path.join(workdir, "small-joblib"), verbose=0).cache(small_job)
    hits: dict[str, Callable[[], object]] = {
        "jobstamp.run": lambda: jobstamp.run(
            small_job,
            12345,
            "abcdef",
            jobstamps_dependencies=deps,
            jobstamps_cache_output_directory=store,
        ),
        "jobstamps.memoize": lambda: memoized(12345, "abcdef"),
        "joblib.Memory.cache": lambda: joblib_cached(12345, "abcdef"),
    }
    diskcache_version = _diskcache_version()
    if diskcache_version:
        diskcache = importlib.import_module("diskcache")  # untyped: imported by name
        cache = diskcache.Cache(os.path.join(workdir, "small-diskcache"))
        disk_cached = cache.memoize()(small_job)
        hits["diskcache.memoize"] = lambda: disk_cached(12345, "abcdef")
    functools_cached = functools.cache(small_job)
    hits["functools.cache"] = lambda: functools_cached(12345, "abcdef")

    for call in hits.values():
        call()  # records the entry
    before = CALLS["small_job"]
    with digests_counted() as digests:
        samples = interleaved_samples(hits, rounds, target_ns, warmup=200)
    expect_no_calls("small_job", before, "cache hits of the small call")
    if diskcache_version:
        cache.close()

    def percentile(values: list[float], fraction: float) -> float:
        return sorted(values)[round(fraction * (len(values) - 1))] / 1e3

    hit_us = {name: statistics.median(values) / 1e3 for name, values in samples.items()}
    ratios = {
        name: hit_us["joblib.Memory.cache"] / hit_us[name]
        for name in ("jobstamp.run", "jobstamps.memoize")
    }
    return {
        "rounds": rounds,
        "dependencies": len(deps),
        "diskcache": diskcache_version,
        "hit_us": hit_us,
        "hit_p10_us": {name: percentile(values, 0.1) for name, values in samples.items()},
        "hit_p90_us": {name: percentile(values, 0.9) for name, values in samples.items()},
        "files_hashed_on_hits": len(digests),
        "ratio_joblib_over_jobstamps": ratios,
        "goal": HIT_GOAL,
        "goal_met": all(ratio >= HIT_GOAL for ratio in ratios.values()),
    }


def bench_dependencies(paths: list[str], rounds: int) -> dict[str, Any]:
    """Hit time with many dependency files (``paths``), hash mode against mtime mode."""
    from jobstamps import jobstamp

    directory = os.path.dirname(paths[0])
    methods = {"mtime": jobstamp.MTimeMethod, "hash": jobstamp.HashMethod}

    def call(method: object) -> Callable[[], object]:
        return lambda: jobstamp.run(
            count_files, directory, jobstamps_dependencies=paths, jobstamps_method=method
        )

    contenders = {name: call(method) for name, method in methods.items()}
    first_ns = {name: float(_time_calls(run, 1)) for name, run in contenders.items()}
    rereads = {}
    for name, run in contenders.items():
        run()  # refreshes any fingerprint recorded as racy
        with digests_counted() as digests:
            run()
        rereads[name] = len(digests)
    before = CALLS["count_files"]
    hit_ns = interleaved_medians(contenders, rounds, target_ns=1, warmup=1)
    expect_no_calls("count_files", before, "hits over many dependencies")
    ratio = hit_ns["hash"] / hit_ns["mtime"]
    return {
        "files": len(paths),
        "rounds": rounds,
        "hit_ms": {name: ns / 1e6 for name, ns in hit_ns.items()},
        "first_run_ms": {name: ns / 1e6 for name, ns in first_ns.items()},
        "files_reread_on_hit": rereads,
        "ratio_hash_over_mtime": ratio,
        "goal": HASH_GOAL,
        "goal_met": ratio <= HASH_GOAL,
    }


# -- reporting -------------------------------------------------------------------------------


def duration(microseconds: float) -> str:
    """Format a duration with a unit that keeps three significant figures."""
    if microseconds >= 1000:
        return f"{microseconds / 1000:.3g} ms"
    return f"{microseconds:.3g} µs"


def table(results: dict[str, Any]) -> str:
    """Render the results as a compact, human-readable table."""
    api, small, deps = results["api"], results["small"], results["dependencies"]
    lines = [
        f"jobstamps {results['jobstamps']} ({results['jobstamps_path']}) "
        f"vs joblib {results['joblib']}, "
        f"Python {results['python']} ({results['implementation']}), "
        f"{results['system']} {results['machine']}, {results['cpu_count']} CPUs"
        + (", quick run" if results["quick"] else ""),
        "",
        f"Hits on summarize(path, options), 1 dependency file (medians of {api['rounds']} rounds)",
        f"  {'':26}{'hit':>10}{'miss':>12}",
    ]
    for name, hit in api["hit_us"].items():
        miss = api["miss_us"].get(name)
        miss_text = duration(miss) if miss else ""
        lines.append(f"  {name:26}{duration(hit):>10}{miss_text:>12}".rstrip())
    for name, ratio in api["ratio_joblib_over_jobstamps"].items():
        lines.append(
            _ratio_line(f"joblib / {name}", ratio, ">=", api["goal"], ratio >= api["goal"])
        )
    lines += [
        "",
        (
            f"Hits on small_job(12345, 'abcdef') returning a small dict, "
            f"{small['dependencies']} dependency files (medians of {small['rounds']} rounds)"
        ),
        f"  {'':26}{'hit':>10}{'p10':>10}{'p90':>10}",
    ]
    for name, hit in small["hit_us"].items():
        spread = (duration(small[f"hit_{p}_us"][name]) for p in ("p10", "p90"))
        lines.append(f"  {name:26}{duration(hit):>10}" + "".join(f"{t:>10}" for t in spread))
    if not small["diskcache"]:
        lines.append("  (diskcache is not installed: 'pip install diskcache' to compare)")
    for name, ratio in small["ratio_joblib_over_jobstamps"].items():
        lines.append(
            _ratio_line(f"joblib / {name}", ratio, ">=", small["goal"], ratio >= small["goal"])
        )
    lines += [
        "",
        f"Hits with {deps['files']:,} dependency files (medians of {deps['rounds']} rounds)",
        f"  {'':26}{'hit':>10}{'first run':>12}{'files re-read on a hit':>25}",
    ]
    for name, hit in deps["hit_ms"].items():
        first = duration(deps["first_run_ms"][name] * 1e3)
        reread = deps["files_reread_on_hit"][name]
        lines.append(f"  {name + ' mode':26}{duration(hit * 1e3):>10}{first:>12}{reread:>25}")
    lines.append(
        _ratio_line(
            "hash / mtime", deps["ratio_hash_over_mtime"], "<=", deps["goal"], deps["goal_met"]
        )
    )
    return "\n".join(lines)


def _ratio_line(label: str, ratio: float, relation: str, goal: float, met: bool) -> str:
    verdict = "met" if met else "MISSED"
    return f"  {label:26}{ratio:>9.2f}x   goal {relation} {goal:g}x: {verdict}"


@functools.lru_cache(maxsize=1)
def _diskcache_version() -> str:
    """Return the version of diskcache, or "" when it is not installed (it is optional)."""
    try:
        diskcache = importlib.import_module("diskcache")
    except ImportError:
        return ""
    return str(diskcache.__version__)


@functools.lru_cache(maxsize=1)
def _import_joblib() -> str:
    try:
        import joblib
    except ImportError:
        raise BenchError(
            "joblib is not installed. Run 'python -m pip install joblib' and try again"
        ) from None
    return str(joblib.__version__)


def run(quick: bool) -> dict[str, Any]:
    """Run both benchmarks in a temporary directory and return every figure."""
    workdir = tempfile.mkdtemp(prefix="jobstamps-bench-")
    # Before jobstamps is imported, so that nothing can reach the user's cache.
    os.environ["JOBSTAMPS_CACHE_DIR"] = os.path.join(workdir, "cache")
    for name in ENV_SETTINGS:
        os.environ.pop(name, None)
    try:
        version = benchlib.import_jobstamps()
        joblib_version = _import_joblib()
        dep, paths = make_files(workdir, files=1_000 if quick else 10_000)
        small_deps = small_files(os.path.join(workdir, "small"), SMALL_DEPENDENCIES)
        settle([dep, *paths, *small_deps])
        api = bench_hits(
            workdir,
            dep,
            rounds=21 if quick else 301,
            misses=3 if quick else 21,
            target_ns=500_000 if quick else 2_000_000,
        )
        small = bench_small_call(
            workdir,
            small_deps,
            rounds=21 if quick else 301,
            target_ns=500_000 if quick else 2_000_000,
        )
        deps = bench_dependencies(paths, rounds=5 if quick else 31)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "jobstamps": version,
        "jobstamps_path": os.path.dirname(sys.modules["jobstamps"].__file__ or ""),
        "joblib": joblib_version,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "quick": quick,
        "api": api,
        "small": small,
        "dependencies": deps,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="few rounds and 1,000 files")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    return benchlib.report("bench_api", args, lambda args: run(args.quick), table)


if __name__ == "__main__":
    raise SystemExit(main())
